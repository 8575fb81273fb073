#!/usr/bin/env bash
# A drain and the coordinator (h3; h1 and h2 hold leases from it):
#  - a protected container ("--ha restart") is moved by a drain like any
#    other, its commit point the coordinator's store transaction: it runs
#    on h2, the coordinator names h2 its owner at the next epoch; moved
#    back by hand (ternctl migrate), it is h1's again at the one after;
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

owner_is() { cl_ctl h2 ha status p | grep -q "^p  *container  *$1  *$2 "; }

echo "--- a drain moves a protected container"
set +e
out=$(cl_ctl h2 host drain h1 2>&1); rc=$?
set -e
echo "$out"
[ $rc = 0 ] || fail "the drain exited $rc"
grep -q "^p: moved to h2 (.*) in [0-9]* ms$" <<<"$out" || fail "p: $out"
grep -q "h1 drained: 1 moved, 0 not moved" <<<"$out" || fail "summary: $out"
runs_on h2 || fail "p is $(state_on h2) on h2"
[ -z "$(state_on h1)" ] || fail "p is still on h1: $(state_on h1)"
owner_is h2 2 || fail "ha status: $(cl_ctl h2 ha status p)"
grep -q "instance p: migrated from h1 to h2, epoch 2" "$(cl_log h3)" ||
    fail "h3 did not record the move"
cl_ctl h2 host undrain h1
cl_ctl h2 migrate p --to h1 >/dev/null
wait_for 20 "p running on h1 again" runs_on h1
owner_is h1 3 || fail "ha status: $(cl_ctl h2 ha status p)"

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
