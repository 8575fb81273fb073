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

fail() { echo "FAIL: $*" >&2; exit 1; }

th_setup 2
cl_pki
cl_conf h1
cl_conf h2
TERN_FAULT=files.send.understate:fail@1 cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 8 /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"

if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then
	fail "the move succeeded with a file larger than announced: $out"
fi
echo "$out"
grep -q "fault point files.send.understate fired: fail" "$(cl_log h1)" ||
    fail "the fault point did not fire on h1"
echo "$out" | grep -q "more than the [0-9]* bytes announced" ||
    fail "the refusal does not say why: $out"
[ "$(inst_where mc)" = "h1:running" ] || fail "mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "kept on h1"
[ ! -e "$TH_ROOT/h2/state/instances/mc" ] || fail "h2 kept something of mc"
cl_ctl h1 migrate mc --to h2 --mode stopcopy
inst_verify h2 mc "$state" "moved to h2 afterwards"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
