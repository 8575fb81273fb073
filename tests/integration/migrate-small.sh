#!/usr/bin/env bash
# A small container in post-copy: the target's lazy-pages daemon fetches
# every page before the commit point.  Its last word to the source's CRIU
# ends the dump (and CRIU kills the source tree), so tern holds that word
# until the commit: the move must succeed, and a rollback at that moment
# must leave the container running on its source.  Both cases are made
# certain by a fault point that holds the target's RESTORED back until
# the daemon is done (it starts fetching after 1 s without faults).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TERN_FAULT_H2=mig.target.held:delay=3000@1
inst_two_hosts
cl_ctl h1 status | grep -q "lazy pages (post-copy) yes" ||
    fail "no post-copy here: $(cl_ctl h1 status | grep containers)"

inst_memcheck mc 1
state=$INST_STATE
inst_verify h1 mc "$state" "started on h1"

echo "--- every page crosses before the commit point"
out=$(cl_ctl h1 migrate mc --to h2 --mode postcopy 2>&1) ||
    fail "the move failed: $out; h1's log: $(grep 'mig ' "$(cl_log h1)" | tail -n 15)"
echo "$out"
fault_fired h2 mig.target.held delay=3000
grep -q "mc: h2 fetched every page before the commit point" "$(cl_log h1)" ||
    fail "h2's lazy-pages daemon did not finish before the commit (the case was not made)"
[ "$(inst_where mc)" = "h2:running" ] || fail "after h1->h2 mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "moved to h2"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"

echo "--- the target refuses once it has every page: the source keeps it"
cl_stop h1
TERN_FAULT=mig.target.held:delay=3000@1,mig.target.restored:fail@1 cl_start h1
cl_wait_up h2 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
if out=$(cl_ctl h2 migrate mc --to h1 --mode postcopy 2>&1); then
	fail "the move succeeded although h1 refused: $out"
fi
echo "$out"
fault_fired h1 mig.target.restored fail
[ "$(inst_where mc)" = "h2:running" ] || fail "after the refusal mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "kept on h2 after h1 refused"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"

echo "--- and it still moves afterwards"
cl_ctl h2 migrate mc --to h1 --mode postcopy
[ "$(inst_where mc)" = "h1:running" ] || fail "after h2->h1 mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "moved back to h1"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
