#!/usr/bin/env bash
# A target holding a restored copy gives up after migration_timeout_ms
# when its source stops answering, even while that host keeps sending it
# other data: only this migration's own bytes are its progress.  h1's
# ternd ignores RESTORED (fault point) and streams test data to h2 the
# whole time; h2 (3 s timeout) must discard its copy, and h1 then rolls
# back: the container runs on h1, intact.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TERN_FAULT_H1=mig.source.restored:stall@1
CONF_H2=('migration_timeout_ms = 3000')
inst_two_hosts

inst_memcheck mc 8
state=$INST_STATE

# Other traffic from h1 to h2 for longer than the test needs (bounded).
( for ((i = 0; i < 40; i++)); do
	cl_ctl h1 stream-test h2 --bytes 50000000 >/dev/null 2>&1 || :
	sleep 0.2
done ) &
noise=$!
cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/mig.out" 2>&1 &
ctl=$!
th_wait 60 grep -q "fault point mig.source.restored fired: stall" "$(cl_log h1)" ||
    fail "the fault point did not fire on h1"
th_wait 20 eval '! kill -0 $ctl 2>/dev/null' || {
	kill $noise 2>/dev/null || :
	fail "h2 still holds its copy 20 s later: $(grep 'mig ' "$(cl_log h2)" | tail -n 3)"
}
kill $noise 2>/dev/null || :
wait $noise 2>/dev/null || :
cat "$TH_ROOT/mig.out"
grep -q "mc: no progress for 3000 ms in state held" "$(cl_log h2)" ||
    fail "h2 did not time out: $(grep 'mig ' "$(cl_log h2)" | tail -n 3)"
[ "$(inst_where mc)" = "h1:running" ] || fail "mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "kept on h1"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
