#!/usr/bin/env bash
# Partitions with the etcd store: three etcd members, one on each test
# host, h3 the coordinator (store = "etcd", with the test's fence_command),
# h1 and h2 agents, a "--ha restart" witness container mc.  Every trial
# (tests/lib/ha.sh, ha_trial) is checked by the container's own records
# (no two copies may overlap) and ends with exactly one copy running:
#  - the owner h1 paused (every process frozen, its etcd member too) while
#    the coordinator's store talks to that member: the store turns to
#    another member, the coordinator fences h1 and mc runs on h2, once
#    (before the fix the store asked the frozen member for ever and no
#    lease was granted again);
#  - the coordinator's host crashed (its etcd member with it): the owner
#    self-fences, nobody starts mc while h3 is down (the agents name h3
#    as their coordinator: nobody else grants them a lease); h3 booted
#    again leads once its quiet period is over and mc runs again, once;
#  - etcd's raft leader SIGKILLed, then started again: the coordinator's
#    store finds the next leader; mc never runs twice;
#  - the owner's link cut: it self-fences (the fence command powers it
#    off first), mc runs on the peer; the owner back discards its copy.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
etcd_check || exit 77
trap th_teardown EXIT

th_setup 3
etcd_up h1 h2 h3 || fail "etcd did not come up"
HA_ETCD=1
HA_COORD_CONF=("store = \"etcd\"" "etcd_endpoints = \"$(etcd_endpoints)\""
    "fence_command = \"$(ha_fence_script)\"" "fence_timeout_ms = 5000")
ha_setup 'log_filters = "info"'
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"
ha_trial_setup || fail "no witness container mc writing from h1"

trial() {
	echo "--- $1 (mc on $(ha_owner))"
	ha_trial "$1" || fail "$1: $HA_WHY"
	echo "$1: $HA_FROM -> $HA_TO, $HA_HANDOVERS handover(s), gap $HA_GAP s, rolled back $HA_ROLLED," \
	    "overlap $HA_OVERLAP${HA_FENCED:+, fenced: $HA_FENCED}"
	[ "$HA_OVERLAP" = 0 ] || fail "$1: two copies of mc ran at once (the witness says so)"
}

# First, while the coordinator's store still talks to h1's member (the
# first endpoint) and mc runs on h1: h1 paused, its member with it.  The
# member's kernel accepts connections but nothing answers them; the
# store must turn to another member, or the coordinator (which stepped
# down as its own etcd lease went unrenewed) campaigns at the frozen one
# for ever and nobody holds a lease again.
l3=$(wc -l <"$(cl_log h3)")
trial pause
tail -n +"$((l3 + 1))" "$(cl_log h3)" | grep -q "store: etcd at http://$(th_addr h1):2379 did not answer" ||
    fail "pause: h3's store never waited on h1's frozen member (the trial tested nothing)"
[ "$HA_FENCED" = h1 ] || fail "pause: fenced '$HA_FENCED', not h1"

trial coord-crash
grep -q "coordinator h3 leads" <(tail -n 40 "$(cl_log h3)") || fail "h3 did not lead again"
trial etcd-leader
trial cut
[ "$HA_TO" != "$HA_FROM" ] || fail "cut: mc stayed on $HA_FROM"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
