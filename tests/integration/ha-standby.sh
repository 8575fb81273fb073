#!/usr/bin/env bash
# A standby coordinator the agents turn to (store = etcd): four test
# hosts, coordinators on h3 and h4 (etcd members on h1, h3 and h4), h1
# and h2 agents listing both (coordinator = "h3,h4"), a "--ha restart"
# witness container on each agent (mc1 on h1, mc2 on h2).
#  - h4 leads first; h3, a standby, answers the agents' renewals "not
#    leading (h4 does)": they turn to h4 without fencing for it, and
#    `ternctl status` says whose lease they hold;
#  - `ternctl ha status` asked on h3 (a coordinator-only host: it asks
#    itself, a follower) follows the "not leading" answer to h4;
#  - h4 (the leader) and h2 (an agent) crash at once: h3 takes over
#    (etcd hands it the leader key once h4's lease lapsed, it loads the
#    store again), h1 turns to it and its renewals are granted in time:
#    mc1 keeps running, never fenced (the lease TTL is large against the
#    etcd leadership lease, leader_ttl_ms); after its quiet period h3
#    fails h2 over: mc2 runs again on h1, once (the witness says so);
#    `ternctl ha status` and `failovers` on h1 now ask h3;
#  - h2 and h4 come back: h2 discards its stale mc2, one of h3 and h4
#    leads (h3, unless etcd moved the leadership meanwhile), the other
#    stands by.
# Before this, the agents named one coordinator: a list was refused, and
# with h4 alone the instances ran nowhere until h4 was back.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
. "$TERN_SRCDIR/tests/lib/assert.sh"
th_check || exit 77
rootfs_check || exit 77
etcd_check || exit 77
trap th_teardown EXIT

# The agents' lease against the coordinators' etcd lease: a standby leads
# about leader_ttl_ms (plus an etcd election, when the crashed host held
# etcd's raft leader) after the leader's host crashed; the agent turns to
# it within ttl/3 and must be granted before ttl - margin after its last
# granted renewal.
TTL=10000 MARGIN=1000 LEADER_TTL=2000

th_setup 4
etcd_up h1 h3 h4 || fail "etcd did not come up"
cl_pki >/dev/null || fail "no PKI"
lease=("lease_ttl_ms = $TTL" "lease_margin_ms = $MARGIN" 'log_filters = "info"')
for h in h1 h2; do
	cl_conf $h 'coordinator = "h3,h4"' "${lease[@]}" >/dev/null
done
for h in h3 h4; do
	cl_conf $h 'role = "coordinator"' "${lease[@]}" 'store = "etcd"' \
	    "etcd_endpoints = \"$(etcd_endpoints)\"" \
	    "leader_ttl_ms = $LEADER_TTL" >/dev/null
done

leads() { cl_ctl "$1" status | grep -q "coordinator:.*leading"; }
lease_from() { cl_ctl "$1" status | grep -q "lease from $2, valid"; }

echo "--- h4 leads, h3 stands by; the agents turn from h3 to h4"
cl_start h4
wait_for 30 "h4 leading" leads h4
cl_start h3
# The standby knows who leads (from the leader key) before the agents ask.
wait_for 30 "h3 seeing h4 lead" grep -q "store: h3 waits: h4 leads" "$(cl_log h3)"
for h in h1 h2; do cl_start $h; done
cl_wait_up h1 4 30 || fail "not all up"
for h in h1 h2; do
	cl_wait_criu $h || fail "$h cannot run containers"
	wait_for 30 "$h holding a lease from h4" lease_from $h h4
	grep -q "coordinator h3 does not lead (h4 does, it says)" "$(cl_log $h)" ||
	    fail "$h did not hear h3's 'not leading'"
	grep -q "lease renewals turn from coordinator h3 to h4" "$(cl_log $h)" ||
	    fail "$h did not turn to h4"
done
follows() { cl_ctl "$1" status | grep -q "coordinator: *following"; }
follows h3 || fail "h3 does not stand by: $(cl_ctl h3 status)"

echo "--- ternctl ha status on the standby follows 'not leading' to h4"
out=$(cl_ctl h3 ha status)
grep -q "coordinator h4 (leading)" <<<"$out" || fail "ha status on h3: $out"
grep -q "asking h4" "$(cl_log h3)" || fail "h3 did not ask h4"

echo "--- a witness container on each agent"
for i in 1 2; do
	rootfs_make "$TH_ROOT/rootfs$i" 2>/dev/null
	witness_spec "$TH_ROOT/rootfs$i" mc$i
	cl_ctl h$i create mc$i --spec "$TH_ROOT/mc$i.json" --ha restart >/dev/null
	cl_ctl h$i start mc$i >/dev/null
done
w1=$(witness_file "$TH_ROOT/rootfs1" mc1)
w2=$(witness_file "$TH_ROOT/rootfs2" mc2)
wait_for 20 "mc1 writing from h1" eval '[ "$(witness_host "$w1")" = h1 ]'
wait_for 20 "mc2 writing from h2" eval '[ "$(witness_host "$w2")" = h2 ]'
read -r run1 _ <<<"$(witness_last "$w1")"

echo "--- h4 (the leader) and h2 crash at once"
up=$(witness_now)
l1=$(wc -l <"$(cl_log h1)")
l3=$(wc -l <"$(cl_log h3)")
th_crash h4
th_crash h2
wait_for 30 "h3 leading" leads h3
wait_for 30 "h1 holding a lease from h3" lease_from h1 h3
echo "h3 leads; h1's lease comes from h3"
wrote_since() {
	local l
	l=$(witness_check "$1" --since "$up" 2>/dev/null | grep '^since ') || return 1
	read -r _ _ _ l _ <<<"$l"
	[ "$l" = "$2" ]
}
wait_for 60 "mc2 running again, on h1" wrote_since "$w2" h1
since_crash() { tail -n +"$(($2 + 1))" "$(cl_log "$1")"; }
grep -q "failover: mc2 (was on h2): moved from h2 to h1" <(since_crash h3 "$l3") ||
    fail "h3 did not log mc2's failover"
# mc1 was never stopped: the same run wrote on, and h1 never fenced.
! grep -q "lease from .* lost\|fenced" <(since_crash h1 "$l1") ||
    fail "h1 fenced: $(since_crash h1 "$l1" | grep "lost\|fenced" | head -3)"
read -r run _ <<<"$(witness_last "$w1")"
[ "$run" = "$run1" ] || fail "mc1 was started again (run $run1, now $run)"
[ "$(witness_host "$w1")" = h1 ] || fail "mc1 writes from $(witness_host "$w1")"
witness_check "$w1" >/dev/null || fail "two copies of mc1 ran at once"
witness_check "$w2" || fail "two copies of mc2 ran at once"
# The ha ops go where the lease comes from now.
out=$(cl_ctl h1 ha status)
grep -q "coordinator h3 (leading)" <<<"$out" || fail "ha status on h1: $out"
out=$(cl_ctl h1 failovers)
grep -q "mc2.*h2.*h1" <<<"$out" || fail "failovers on h1: $out"

echo "--- h2 and h4 come back: h2 discards mc2, one coordinator leads"
for h in h2 h4; do th_revive $h; done
etcd_restart h4 || fail "etcd on h4 did not come back"
cl_start h4
cl_start h2
# h3 should lead on, but an etcd hiccup (h4's member rejoining on a busy
# machine) may hand the leadership over: either is right, one at a time.
leader() { local c; for c in h3 h4; do if leads $c; then echo $c; fi; done; }
lease_from_leader() { local l; l=$(leader); [ -n "$l" ] && lease_from h2 "$l"; }
wait_for 60 "h2 holding a lease from the leader" lease_from_leader
gone_from_h2() { [ -z "$(inst_field h2 mc2 state 2>/dev/null)" ]; }
wait_for 30 "mc2 gone from h2" gone_from_h2
[ "$(witness_copies mc2 h1 h2)" = 1 ] || fail "$(witness_copies mc2 h1 h2) copies of mc2"
[ "$(witness_copies mc1 h1 h2)" = 1 ] || fail "$(witness_copies mc1 h1 h2) copies of mc1"
l=$(leader)
[ "$(wc -w <<<"$l")" = 1 ] || fail "leaders: '$l'"
s=h4; [ "$l" = h3 ] || s=h3
wait_for 30 "$s standing by" follows $s
echo "$l leads, $s stands by"
witness_check "$w1" >/dev/null || fail "two copies of mc1 ran at once"
witness_check "$w2" >/dev/null || fail "two copies of mc2 ran at once"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3 h4; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
