#!/usr/bin/env bash
# High availability end to end, on three test hosts: h3 is the
# coordinator (its own instances are not protected, so it is never a
# failover target), h1 and h2 hold leases from it.  A protected
# container ("--ha restart") must:
#  - run on one host at a time, witnessed by the container itself
#    (tests/lib/witness.sh: every copy appends its run id, host, counter
#    and its wall clock to a file on the shared rootfs every 20 ms),
#    and no two copies may overlap in time;
#  - come back on a survivor when its host crashes (th_crash), once the
#    lease ran out plus the margin;
#  - stop by itself on a host cut off from the coordinator (th_cut: the
#    processes live on) before the coordinator gives it to another host;
#  - never run again on a host that comes back: that host learns the
#    higher epoch at its registration and discards its stale copy;
#  - once the operator destroys it, run nowhere: no grant brings it back
#    and its name is not silently reused.
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

th_setup 3
ha_setup
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"

# The witness (tests/lib/witness.sh) on the shared rootfs.
rootfs_make "$TH_ROOT/rootfs"
witness_spec "$TH_ROOT/rootfs" mc
ticks=$(witness_file "$TH_ROOT/rootfs" mc)

# Where mc runs, as the container cgroups say (whatever the ternds say).
copies() { witness_copies mc h1 h2 h3; }
state_on() { inst_field "$1" mc state; }
runs_on() { [ "$(state_on "$1")" = running ] && [ "$(copies)" = 1 ]; }
epoch_on() { inst_field "$1" mc epoch; }
# No two copies of mc overlapped in time: the container's own word.
check_ticks() { witness_check "$ticks" || fail "two copies of mc ran at once"; }
# The container says it runs on HOST (its latest record).
witness_on() { [ "$(witness_host "$ticks")" = "$1" ]; }

echo "--- a protected container on h1"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha restart >/dev/null
cl_ctl h1 start mc >/dev/null
wait_for 20 "mc running on h1" runs_on h1
wait_for 10 "mc known to the coordinator" test "$(epoch_on h1)" = 1

echo "--- h1 crashes: mc comes back on h2"
th_crash h1
wait_for 30 "mc running on h2" runs_on h2
echo "mc runs on h2 at epoch $(epoch_on h2)"
wait_for 5 "mc's own record from h2" witness_on h2
[ "$(epoch_on h2)" = 2 ] || fail "epoch $(epoch_on h2) on h2, not 2"
grep -q "failover: mc (was on h1): moved from h1 to h2 at epoch 2" \
    "$(cl_log h3)" || fail "h3 did not log the failover"
check_ticks

echo "--- h1 comes back: it discards its stale copy"
th_revive h1
cl_start h1
wait_for 20 "a lease for h1" ha_has_lease h1
gone_from_h1() { [ -z "$(state_on h1)" ]; }
wait_for 20 "mc gone from h1" gone_from_h1
grep -q "mc: discarded: instance mc belongs to host h2 (epoch 2)" \
    "$(cl_log h1)" || fail "h1 did not say why it discarded mc"
[ "$(copies)" = 1 ] || fail "$(copies) copies of mc run"

echo "--- h2 is cut off: it stops mc before anyone else starts it"
th_cut h2
stopped_on_cut() { ! grep -q . <(find "$(th__cg1 h2)" -path "*/tern/mc/*" \
    -name cgroup.procs -exec cat {} + 2>/dev/null); }
wait_for 20 "mc stopped on h2" stopped_on_cut
grep -q "lease from h3 lost" "$(cl_log h2)" || fail "h2 did not fence"
wait_for 30 "mc running again on h1" runs_on h1
[ "$(epoch_on h1)" = 3 ] || fail "epoch $(epoch_on h1) on h1, not 3"
wait_for 5 "mc's own record from h1" witness_on h1
check_ticks

echo "--- h2 heals: its fenced copy is discarded, not resumed"
th_heal h2
gone_from_h2() { [ -z "$(state_on h2)" ]; }
wait_for 20 "mc gone from h2" gone_from_h2
[ "$(copies)" = 1 ] || fail "$(copies) copies of mc run"
check_ticks

echo "--- destroyed by the operator: it runs nowhere, and nothing starts it again"
cl_ctl h1 destroy mc >/dev/null
released() { grep -q "instance mc released by h1: it runs nowhere now" "$(cl_log h3)"; }
wait_for 20 "h3 recording the release" released
sleep 3		# several grants: none may bring it back
[ "$(copies)" = 0 ] || fail "$(copies) copies of mc run after the destroy"
for h in h1 h2; do
	[ -z "$(state_on $h)" ] || fail "mc is back on $h: $(state_on $h)"
done
out=$(cl_ctl h2 create mc --spec "$TH_ROOT/mc.json" --ha restart 2>&1) &&
    fail "a new mc took the released name: $out"
grep -q "running nowhere (released at epoch 4)" <<<"$out" || fail "refusal: $out"
[ -z "$(state_on h2)" ] || fail "the refused create left mc on h2"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
