#!/usr/bin/env bash
# The lease is checked when a protected instance turns running, not only
# when its start began (issue 13, invariant 1).  h3 is the coordinator,
# h1 and h2 hold leases.  h1 starts a protected container whose start is
# held, its processes already made, by the fault point
# ctr.start.before-running (delay); h1 is cut from the coordinator while
# it waits, so its lease ends and the coordinator gives the container to
# h2.  When h1's start goes on it must not leave the container running:
# it is fenced at once (killed), and h2 runs the only copy.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

# Longer than the lease can outlive the cut (ttl - margin after the last
# renewal sent), so the start ends after the fence.
DELAY_MS=6000
th_setup 3
ha_setup
TERN_FAULT="ctr.start.before-running:delay=$DELAY_MS@1" cl_start h1
for h in h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/sh -c \
    'while :; do usleep 20000; done'

# mc's processes on one host, as its container cgroups say.
copies_on() {
	local p n=0
	for p in $(find "$(th__cg1 "$1")" -path "*/tern/mc/*" \
	    -name cgroup.procs -exec cat {} + 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sh ] && n=$((n + 1))
	done
	echo $n
}
copies() { echo $(($(copies_on h1) + $(copies_on h2) + $(copies_on h3))); }
state_on() { inst_field "$1" mc state; }
runs_on() { [ "$(state_on "$1")" = running ] && [ "$(copies)" = 1 ]; }

echo "--- a protected container on h1, its start held before it runs"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha restart >/dev/null
epoch1() { [ "$(inst_field h1 mc epoch)" = 1 ]; }
wait_for 10 "mc known to the coordinator at epoch 1" epoch1
cl_ctl h1 start mc >"$TH_ROOT/start.out" 2>&1 &
start_pid=$!
held() { grep -q "fault point ctr.start.before-running fired" "$(cl_log h1)"; }
wait_for 20 "h1's start of mc held" held
fault_fired h1 ctr.start.before-running "delay=$DELAY_MS"
[ "$(copies_on h1)" = 1 ] || fail "mc's processes are not made on h1 yet"

echo "--- h1 is cut off while it waits: its lease ends"
th_cut h1
lost() { grep -q "lease from h3 lost" "$(cl_log h1)"; }
wait_for 20 "h1 losing its lease" lost
started() { grep -q "instance mc: stopped -> running" "$(cl_log h1)"; }
wait_for 30 "h1's start of mc going on" started
none_on_h1() { [ "$(copies_on h1)" = 0 ]; }
wait_for 10 "mc killed on h1" none_on_h1
grep -q "instance mc: fenced as it turned running: this host's lease ended" \
    "$(cl_log h1)" || fail "h1 did not say why it fenced mc"
wait "$start_pid" && fail "the start answered success: $(cat "$TH_ROOT/start.out")"
grep -q "fenced as it turned running" "$TH_ROOT/start.out" ||
    fail "the start's answer: $(cat "$TH_ROOT/start.out")"

echo "--- h2 takes it over: one copy"
wait_for 30 "mc running on h2" runs_on h2
[ "$(inst_field h2 mc epoch)" = 2 ] || fail "mc not at epoch 2 on h2"
[ "$(copies_on h1)" = 0 ] || fail "mc runs on h1 again"

echo "--- h1 heals: its fenced copy is discarded, not started"
th_heal h1
wait_for 20 "a lease for h1" ha_has_lease h1
gone_from_h1() { [ -z "$(state_on h1)" ]; }
wait_for 20 "mc gone from h1" gone_from_h1
[ "$(copies)" = 1 ] || fail "$(copies) copies of mc run"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
