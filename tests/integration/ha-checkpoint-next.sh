#!/usr/bin/env bash
# --ha checkpoint with two replicas, when restoring one fails: four test
# hosts, h3 coordinates, h1, h2 and h4 hold leases.  A witness container
# on h1 with --replicas 2 has its generations on h2 and h4.  Restoring a
# replica fails on both (fault point replica.restore): after h1 crashes
# the coordinator moves mc to one replica host, hears that the restore
# failed there, tries the other one (the next candidate), hears the same,
# and leaves mc running nowhere rather than going back and forth or
# starting it cold.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 4
ha_setup
cl_conf h4 "coordinator = \"h3\"" "lease_ttl_ms = $HA_TTL_MS" \
    "lease_margin_ms = $HA_MARGIN_MS" >/dev/null
cl_start h1
TERN_FAULT=replica.restore:fail cl_start h2
cl_start h3
TERN_FAULT=replica.restore:fail cl_start h4
# ha_wait counts three hosts: the same checks for four.
cl_wait_up h1 4 30 || fail "not all four hosts up"
for h in h1 h2 h4; do
	cl_wait_criu $h || fail "$h cannot run containers"
	th_wait 30 ha_has_lease $h || fail "$h holds no lease from h3"
done

rootfs_make "$TH_ROOT/rootfs"
witness_spec "$TH_ROOT/rootfs" mc
copies() { witness_copies mc h1 h2 h3 h4; }
state_on() { inst_field "$1" mc state; }
runs_on() { [ "$(state_on "$1")" = running ] && [ "$(copies)" = 1 ]; }
on() {
	grep -q "replica of mc: generation [0-9]* on $1 (epoch 1) recorded" \
	    "$(cl_log h3)"
}

echo "--- mc on h1, replicated to h2 and h4"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha checkpoint \
    --interval 1000 --replicas 2 >/dev/null
cl_ctl h1 start mc >/dev/null
wait_for 20 "mc running on h1" runs_on h1
wait_for 40 "a replica of mc on h2 recorded" on h2
wait_for 40 "a replica of mc on h4 recorded" on h4

echo "--- h1 crashes; both restores fail"
th_crash h1
log3=$(cl_log h3)
tried() { grep -q "failover of mc: trying its replica on" "$log3"; }
wait_for 30 "h3 trying the next replica host" tried
nowhere() { grep -q "failover of mc: no other replica to restore" "$log3"; }
wait_for 30 "h3 giving up" nowhere
grep "failover of mc" "$log3" | sed 's/^.*coord: //'
[ "$(grep -c "failover of mc: restoring its replica on h[24] failed" "$log3")" = 2 ] ||
    fail "h3 did not hear of two failed restores"
fault_fired h2 replica.restore fail
fault_fired h4 replica.restore fail
sleep 2		# grants come and go: none may start it
[ "$(copies)" = 0 ] || fail "$(copies) copies of mc run"
cl_stop h2 && cl_stop h3 && cl_stop h4 || fail "a ternd did not stop cleanly"
for h in h2 h3 h4; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
