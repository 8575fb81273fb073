#!/usr/bin/env bash
# ternctl host drain moves both kinds through the one engine: h1 runs the
# test VM and a memcheck container; drained (drain_parallel 2: both at
# once), each runs on h2, the VM's console history consistent across the
# move and the container's memory verified, nothing left on h1 (in tern's
# table or libvirt's).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
lv_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 2
lv_start h1
lv_start h2
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

vm_create h1 g1 128 "guestcheck.rate=2"
vm_wait_checks h1 g1 2
inst_memcheck mc 8
state=$INST_STATE
inst_verify h1 mc "$state" "started on h1"

out=$(cl_ctl h1 host drain h1 2>&1) || fail "the drain failed: $out"
echo "$out"
grep -q "^g1: moved to h2 (.*) in [0-9]* ms$" <<<"$out" || fail "g1: $out"
grep -q "^mc: moved to h2 (.*) in [0-9]* ms$" <<<"$out" || fail "mc: $out"
grep -q "h1 drained: 2 moved, 0 not moved" <<<"$out" || fail "summary: $out"
[ "$(inst_where g1)" = "h2:running" ] || fail "g1 is at: $(inst_where g1)"
[ "$(vm_copies g1)" = 1 ] || fail "g1 runs $(vm_copies g1) times"
vm_defined h1 g1 && fail "g1 still defined on h1"
vm_settle g1 h1 h2
vm_wait_checks h2 g1 2
vm_verify g1 "drained h1->h2"
[ "$(inst_where mc)" = "h2:running" ] || fail "mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "drained to h2"

cl_ctl h1 host undrain h1
cl_stop_all || fail "a ternd did not stop cleanly"
echo "host-drain-vm: ok"
