#!/usr/bin/env bash
# A VM's target in READY straddles libvirt's commit: the source's libvirt
# may have finished (its Finish ran on the target, the domain runs there)
# before the target hears of it.  The fault point vmig.source.migrated
# kills the source's ternd right after libvirt's migration call returned
# success, before COMMIT goes.  The target loses its link while READY;
# the phase table says DISCARD, and the discard first asks libvirt: the
# domain runs there, so it is kept (never destroyed: libvirt already
# removed the source's copy).  Exactly one copy, on h2, memory intact.
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
TERN_FAULT=vmig.source.migrated:kill@1 cl_start h1
cl_start h2
cl_wait_up h1 2 30
vm_create h1 g1 128 "guestcheck.rate=2"

rc=0
out=$(cl_ctl h1 migrate g1 --to h2 --mode precopy 2>&1) || rc=$?
echo "$out"
[ $rc != 0 ] || fail "h1's ternd answered; it should have died"
grep -q "fault point vmig.source.migrated fired: kill" "$(cl_log h1)" ||
    fail "the fault point did not fire"
th_wait 30 grep -q "vmig .* g1: kept: it runs here" "$(cl_log h2)" ||
    fail "h2 did not keep g1: $(grep 'vmig' "$(cl_log h2)" | tail -n 8)"
th_wait 30 eval '[ "$(inst_field h2 g1 state)" = running ]' ||
    fail "g1 is not running on h2: $(inst_where g1)"
grep -q "the source was lost at the end" <<<"$(inst_field h2 g1 last_error)" ||
    fail "h2 does not say how g1 arrived: $(inst_field h2 g1 last_error)"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"
vm_defined h1 g1 && fail "g1 is still defined on h1"

# h1 back: it finds no domain, runs nothing.
cl_start h1
cl_wait_up h1 2 30
[ "$(inst_field h1 g1 state)" != running ] ||
    fail "h1 runs g1 again after restart: $(inst_where g1)"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"
vm_settle g1 h1 h2
vm_wait_checks h2 g1 2
vm_verify g1 "kept on h2 after the source died at the commit"
cl_ctl h2 destroy g1 >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "vm-migrate-commit: ok"
