#!/usr/bin/env bash
# A target holds a migration's sender to what it announced: an image
# stream that carries more bytes than its announced size is cut off at
# once (a sender could otherwise fill the target's disk), the migration
# rolls back, the container keeps running on its source and the target
# keeps nothing.  The lying sender is h1's ternd at a fault point.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TERN_FAULT_H1=files.send.understate:fail@1
inst_two_hosts

inst_memcheck mc 8
state=$INST_STATE

if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then
	fail "the move succeeded with a file larger than announced: $out"
fi
echo "$out"
fault_fired h1 files.send.understate fail
grep -q "more than the [0-9]* bytes announced" <<<"$out" ||
    fail "the refusal does not say why: $out"
[ "$(inst_where mc)" = "h1:running" ] || fail "mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "kept on h1"
[ ! -e "$TH_ROOT/h2/state/instances/mc" ] || fail "h2 kept something of mc"
cl_ctl h1 migrate mc --to h2 --mode stopcopy
inst_verify h2 mc "$state" "moved to h2 afterwards"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
