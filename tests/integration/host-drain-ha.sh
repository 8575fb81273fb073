#!/usr/bin/env bash
# A drain and the coordinator (h3; h1 and h2 hold leases from it):
#  - a protected container ("--ha restart") is not moved by a drain (the
#    engine refuses to move one: its commit point belongs in the
#    coordinator's store, not built yet): the drain reports why, exits
#    non-zero and leaves it running where it is;
#  - the coordinator learns a host's drain mark with its renewals and
#    places no failover there: h2 drained, h1 crashes, h1 is declared
#    failed and the container runs nowhere; undrained, h2 gets it.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
ha_setup
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" p /bin/sh -c \
    'while :; do usleep 100000; done'
state_on() { inst_field "$1" p state; }
runs_on() { [ "$(state_on "$1")" = running ]; }
cl_ctl h1 create p --spec "$TH_ROOT/p.json" --ha restart >/dev/null
cl_ctl h1 start p >/dev/null
wait_for 20 "p running on h1" runs_on h1
wait_for 10 "p known to the coordinator" test "$(inst_field h1 p epoch)" = 1

echo "--- a drain does not move a protected container"
set +e
out=$(cl_ctl h2 host drain h1 2>&1); rc=$?
set -e
echo "$out"
[ $rc = 1 ] || fail "the drain exited $rc"
grep -q "^p: not moved: instance is protected by the coordinator" <<<"$out" ||
    fail "p: $out"
grep -q "h1 drained: 0 moved, 1 not moved" <<<"$out" || fail "summary: $out"
runs_on h1 || fail "p is $(state_on h1) on h1"
cl_ctl h2 host undrain h1

echo "--- no failover to a drained host"
cl_ctl h2 host drain h2
marked() { grep -q "host h2 drained: no failover goes there" "$(cl_log h3)"; }
wait_for 10 "the coordinator to record h2 drained" marked
th_crash h1
failed() { grep -q "host h1 is failed" "$(cl_log h3)"; }
wait_for 30 "h1 declared failed" failed
# The failover was planned in the check that declared h1 failed.
[ -z "$(state_on h2)" ] || fail "p came to the drained h2: $(state_on h2)"
cl_ctl h2 host undrain h2
wait_for 30 "p running on h2 once it is undrained" runs_on h2
grep -q "host h2 undrained: failovers may go there again" "$(cl_log h3)" ||
    fail "h3 did not log the undrain"
grep -q "failover: p (was on h1): moved from h1 to h2" "$(cl_log h3)" ||
    fail "h3 did not log the failover"

# h1 stays crashed: its ternd was killed, not stopped.
cl_stop h2 || fail "h2's ternd did not stop cleanly"
cl_stop h3 || fail "h3's ternd did not stop cleanly"
echo "host-drain-ha: ok"
