#!/usr/bin/env bash
# An etcd election does not stop a protected container.  Three etcd
# members, h3 the coordinator (store = etcd, leader_ttl_ms left at its
# default), h1 an agent running mc, a "--ha restart" witness container,
# under the agents' default lease (2 s, margin 0.5 s).
#
# While etcd elects its raft leader nobody answers the coordinator's
# keepalives; the fault point store.etcd.keepalive (delay) holds one
# 2.3 s, a long election (etcd's election timeout is 1 s here).  The
# coordinator must lead on through it (3.08 s: 3/4 of its 5 s etcd
# lease less the 667 ms since the keepalive before), h1 keep its lease
# and mc never stop: its own records show one run and no pause.
# Before, the leader's etcd lease was the agents' 2 s: the coordinator
# stopped 0.83 s into the hold and granted nothing for 1.47 s, longer
# than h1's lease could last: mc was stopped and started again.
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

HOLD_MS=2300
# The leader sends a keepalive every 667 ms: the one after the first
# SKIP goes about 24 s after it leads, once mc runs (checked below).
SKIP=36

th_setup 3
rootfs_make "$TH_ROOT/rootfs"
etcd_up h1 h2 h3 || fail "etcd did not come up"
HA_ETCD=1
HA_COORD_CONF=("store = \"etcd\"" "etcd_endpoints = \"$(etcd_endpoints)\"")
ha_setup 'log_filters = "info"'
cl_start h1 && cl_start h2
TERN_FAULT="store.etcd.keepalive:delay=$HOLD_MS@1+$SKIP" cl_start h3
ha_wait || fail "no HA cluster"
ha_trial_setup || fail "no witness container mc writing from h1"
if grep -q "fault point store.etcd.keepalive fired" "$(cl_log h3)"; then
	fail "the keepalive was held before mc ran: the test tested nothing" \
	    "(h3 sent $SKIP keepalives before mc ran: raise SKIP)"
fi
first=$(witness_last "$HA_WITNESS")
read -r run0 host0 _ <<<"$first"
l1=$(wc -l <"$(cl_log h1)") l3=$(wc -l <"$(cl_log h3)")

wait_for 60 "h3 to hold its keepalive" \
    grep -q "fault point store.etcd.keepalive fired" "$(cl_log h3)"
fault_fired h3 store.etcd.keepalive "delay=$HOLD_MS"
# The hold, then as long again: a lease that ended would have shown by
# then (h1 fences at once, and mc runs again only after a quiet period).
sleep "$(awk -v h="$HOLD_MS" 'BEGIN { print 2 * h / 1000 }')"

if tail -n +"$((l3 + 1))" "$(cl_log h3)" | grep -q "stops leading"; then
	fail "h3 stopped leading while its keepalive was held:" \
	    "$(tail -n +"$((l3 + 1))" "$(cl_log h3)" | grep "stops leading" | head -n 1)"
fi
if tail -n +"$((l1 + 1))" "$(cl_log h1)" | grep -q "fenced"; then
	fail "h1's lease ended while the coordinator's keepalive was held:" \
	    "$(tail -n +"$((l1 + 1))" "$(cl_log h1)" | grep "fenced" | head -n 1)"
fi
# mc's own word: the same run on h1 from before the hold to now, one
# copy, and no record more than a second after the one before it.
last=$(witness_last "$HA_WITNESS")
read -r run1 host1 _ <<<"$last"
[ "$run1" = "$run0" ] || fail "mc started again: run $run0 before, $run1 now"
[ "$host1" = "$host0" ] || fail "mc moved: $host0 before, $host1 now"
witness_check "$HA_WITNESS" >/dev/null || fail "two copies of mc ran at once"
read -r _ _ _ t0 <<<"$first"
gap=$(awk -v t0="$t0" '$4 >= t0 { if (p != "" && $4 - p > g) g = $4 - p; p = $4 }
    END { printf "%.2f", g }' "$HA_WITNESS")
echo "mc's longest pause from before the hold on: $gap s"
awk -v g="$gap" 'BEGIN { exit !(g < 1) }' ||
    fail "mc stood still $gap s while etcd did not answer"

cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
