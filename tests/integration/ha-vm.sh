#!/usr/bin/env bash
# A restart-protected VM end to end (docs/ha.md): h3 coordinates, h1 and
# h2 hold leases and each runs its own libvirtd.  The test guest (kernel
# and initrd in the build tree: no disk, so every host sees all it needs)
# is created with --ha restart on h1 and must:
#  - run again on h2 once h1 crashed (th_crash: QEMU dies with the host),
#    by its own word: a fresh boot's memory checks on h2's console;
#  - not run on h1 once h1 is back: h1 discards its copy and its
#    libvirtd never starts the domain again;
#  - be destroyed on its owner (h2) when h2 is cut off from the
#    coordinator (agent/vm-instances.c: virDomainDestroy at the lease's
#    end) before h1 starts it: never two QEMUs of it at once;
#  - not come back on h2 once h2 heals.
# (Moving it by ternctl migrate and drain: ha-migrate-vm.sh.)
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

th_setup 3
lv_start h1
lv_start h2
ha_setup
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"

state_on() { inst_field "$1" g1 state; }
epoch_on() { inst_field "$1" g1 epoch; }
runs_on() { [ "$(state_on "$1")" = running ] && [ "$(vm_copies g1)" = 1 ] &&
    lv_virsh "$1" list --name 2>/dev/null | grep -qx g1; }
qemu_alive() { [ -n "$1" ] && th_pid_alive "$1"; }
# On HOST's libvirtd g1 is not running (defined, shut off, or unknown).
not_running_on() { ! lv_virsh "$1" list --name 2>/dev/null | grep -x g1 >/dev/null; }

echo "--- a protected VM on h1"
lv_domain_xml g1 128 "guestcheck.rate=2" >"$TH_ROOT/g1.xml"
cl_ctl h1 create g1 --kind vm --xml "$TH_ROOT/g1.xml" --ha restart >/dev/null
cl_ctl h1 start g1 >/dev/null
vm_wait_checks h1 g1 2 || fail "g1 does not run on h1"
wait_for 10 "g1 known to the coordinator" test "$(epoch_on h1)" = 1
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"

echo "--- h1 crashes: g1 boots again on h2"
th_crash h1
wait_for 60 "g1 running on h2" runs_on h2
[ "$(epoch_on h2)" = 2 ] || fail "epoch $(epoch_on h2) on h2, not 2"
grep -q "failover: g1 (was on h1): moved from h1 to h2 at epoch 2" \
    "$(cl_log h3)" || fail "h3 did not log the failover"
vm_wait_checks h2 g1 2 || fail "g1's own checks do not pass on h2"
echo "g1 runs on h2 at epoch 2: $(lv_last_counter "$(lv_serial_log h2 g1)" |
    sed 's/^/counter /')"

echo "--- h1 comes back: its libvirtd does not run g1, its ternd discards it"
th_revive h1
lv_start h1
cl_start h1
wait_for 30 "a lease for h1" ha_has_lease h1
gone_from_h1() { [ -z "$(state_on h1)" ]; }
wait_for 30 "g1 gone from h1" gone_from_h1
sleep 2		# several grants: none may start it on h1
not_running_on h1 || fail "h1's libvirtd runs g1 again"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"
runs_on h2 || fail "g1 no longer runs on h2"

echo "--- h2 is cut off: g1 destroyed there before h1 starts it"
old=$(vm_qemu_pid h2 g1)
th_cut h2
# One sample every 50 ms: h1's QEMU of g1 may not exist while h2's lives.
deadline=$((SECONDS + 60)) new=
while :; do
	new=$(vm_qemu_pid h1 g1 2>/dev/null) || new=
	if [ -n "$new" ] && qemu_alive "$old"; then
		fail "g1 runs on h1 (QEMU $new) while h2's (QEMU $old) still lives"
	fi
	[ -n "$new" ] && ! qemu_alive "$old" && break
	[ "$SECONDS" -lt "$deadline" ] || fail "g1 not on h1 within 60 s of h2's cut"
	sleep 0.05
done
grep -q "instance g1: destroyed at once:" "$(cl_log h2)" ||
    fail "h2 did not destroy g1 at its lease's end"
wait_for 60 "g1 running on h1" runs_on h1
[ "$(epoch_on h1)" = 3 ] || fail "epoch $(epoch_on h1) on h1, not 3"
vm_wait_checks h1 g1 2 || fail "g1's own checks do not pass on h1"

echo "--- h2 heals: its destroyed copy is discarded, not started"
th_heal h2
gone_from_h2() { [ -z "$(state_on h2)" ]; }
wait_for 30 "g1 gone from h2" gone_from_h2
sleep 2
not_running_on h2 || fail "h2's libvirtd runs g1 again"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"

cl_ctl h1 destroy g1 >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "ha-vm: ok"
