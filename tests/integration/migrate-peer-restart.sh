#!/usr/bin/env bash
# A migration is told when its peer's link is replaced or its peer
# restarted, rather than waiting out migration_timeout_ms.  h2 migrates a
# container to h1, whose ternd holds the restored copy (fault point) so
# h2 waits in "restoring" with the container frozen.  Then h1 is cut off,
# its ternd killed and started again; h1 drops its TCP resets and FINs, so h2's
# old link never breaks on its own (h2 has a long peer timeout): the only
# news h2 gets is h1's new connection, with a new boot id.  h2 must roll
# back at once, its container running and intact.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
command -v iptables >/dev/null || { echo "no iptables"; exit 77; }
trap th_teardown EXIT

TERN_FAULT_H1=mig.target.held:stall@1
CONF_H2=('peer_timeout_ms = 60000')
inst_two_hosts

inst_memcheck mc 8 h2
state=$INST_STATE
inst_verify h2 mc "$state" "started on h2"

cl_ctl h2 migrate mc --to h1 --mode stopcopy >"$TH_ROOT/mig.out" 2>&1 &
ctl=$!
th_wait 60 grep -q "fault point mig.target.held fired: stall" "$(cl_log h1)" ||
    fail "h1 never held the restored copy: $(cat "$TH_ROOT/mig.out")"

th_exec h1 iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP &&
    th_exec h1 iptables -A OUTPUT -p tcp --tcp-flags FIN FIN -j DROP ||
    fail "cannot drop h1's resets"
th_cut h1
kill -9 "$(cl_pid h1)"
cl_stop h1 1 >/dev/null 2>&1 || :
cl_start h1
th_heal h1
th_wait 30 grep -q "peer h1: restarted since we last saw it" "$(cl_log h2)" ||
    fail "h2 did not see h1's new connection"
# Well inside migration_timeout_ms (10 min) and h2's peer timeout (60 s).
th_wait 20 eval '! kill -0 $ctl 2>/dev/null' ||
    fail "the migration still waits after h1 restarted: $(grep 'mig ' "$(cl_log h2)" | tail -n 5)"
set +e
wait $ctl
rc=$?
set -e
[ "$rc" != 0 ] || fail "the migration succeeded: $(cat "$TH_ROOT/mig.out")"
cat "$TH_ROOT/mig.out"
[ "$(inst_where mc)" = "h2:running" ] || fail "mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "kept on h2"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
th_exec h1 iptables -F OUTPUT || :
cl_ctl h2 migrate mc --to h1 --mode stopcopy
inst_verify h1 mc "$state" "moved to h1 afterwards"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
