#!/usr/bin/env bash
# A VM migration given up while the target still checks the name (the
# source cancels, or the link goes) touches nothing of the target's: a
# domain of that name that libvirt there already has, someone else's,
# stays defined (NVRAM and all).  The abort used to queue a cleanup that
# destroyed and undefined whatever had the name.  h2's check is made slow
# by a fault point, so the cancel lands while it runs.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

th_setup 2
lv_start h1
lv_start h2
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
TERN_FAULT=vmig.target.check:delay=4000 cl_start h2
cl_wait_up h1 2 30
vm_create h1 g1 128

# h2's libvirt has a g1 of its own (defined, not running): not tern's.
lv_domain_xml g1 64 >"$TH_ROOT/other-g1.xml"
lv_virsh h2 define "$TH_ROOT/other-g1.xml" >/dev/null
vm_defined h2 g1 || fail "could not define h2's own g1"

cl_ctl h1 migrate g1 --to h2 >"$TH_ROOT/mig.out" 2>&1 &
mig=$!
th_wait 30 grep -q "fault point vmig.target.check fired: delay=4000" \
    "$(cl_log h2)" || fail "h2's check never started"
cl_ctl h1 migrate --cancel g1
wait $mig && fail "the cancelled migration succeeded: $(cat "$TH_ROOT/mig.out")"
cat "$TH_ROOT/mig.out"
# The check ends 4 s after it started, and h2 gives the migration up.
th_wait 20 grep -q "vmig .* g1: \(discarded\|refused\|cannot clean\|removed\)" \
    "$(cl_log h2)" ||
    fail "h2 never gave the migration up: $(grep 'vmig' "$(cl_log h2)" | tail -n 5)"
sleep 2		# a cleanup queued behind the check has run by now
vm_defined h2 g1 || fail "h2's own g1 was undefined by the aborted migration"
grep -q "vmig .* g1: discarded before it was ready" "$(cl_log h2)" ||
    fail "h2 did not say it gave up: $(grep 'vmig' "$(cl_log h2)" | tail -n 5)"
[ "$(inst_where g1)" = "h1:running" ] || fail "g1 is at: $(inst_where g1)"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"
vm_verify g1 "kept on h1"
cl_ctl h1 destroy g1 >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
