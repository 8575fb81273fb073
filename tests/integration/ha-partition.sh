#!/usr/bin/env bash
# Partitions, on three test hosts (h3 the coordinator with the journal
# store, h1 and h2 agents), a "--ha restart" witness container mc: every
# trial (tests/lib/ha.sh, ha_trial) is checked by the container's own
# records (no two copies may overlap in time) and ends with exactly one
# copy running and both agents holding a lease.
#  - the owner's link cut: it self-fences, mc runs on the peer; healed, it
#    discards its stale copy;
#  - the coordinator's host cut off: the owner self-fences and nobody
#    starts mc (h3 has no host to give it to, and the agents hold no
#    lease): it runs nowhere while h3 is away, and again once it is back;
#  - asymmetric: owner and peer cannot reach each other but both reach h3:
#    nothing moves; owner and h3 cannot reach each other, both reach the
#    peer: it self-fences and mc moves; one-way, the owner's packets to h3
#    dropped while h3's reach it, and the reverse (the renewals arrive,
#    the grants do not): the same;
#  - the zombie: the owner paused as a whole (every process frozen) past
#    ttl + margin, then resumed.  Without fence_command mc is started on
#    the peer meanwhile, and the resumed owner's copy runs for a moment
#    before its ternd stops it (docs/ha.md says so): the test checks that
#    it ends (the owner stops its copy by itself and discards it) and
#    prints the overlap, whose length is the scheduler's;
#    with fence_command (tests/lib/ha.sh's script: kills every process of
#    the host, as a power fence would) there must be no overlap at all.
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
ha_setup 'log_filters = "info"'
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"
ha_trial_setup || fail "no witness container mc writing from h1"

# trial KIND [overlap-ok]: one trial; any overlap fails it unless allowed.
trial() {
	local l3
	l3=$(wc -l <"$(cl_log h3)")
	echo "--- $1 (mc on $(ha_owner))"
	ha_trial "$1" || fail "$1: $HA_WHY"
	echo "$1: $HA_FROM -> $HA_TO, $HA_HANDOVERS handover(s), gap $HA_GAP s, rolled back $HA_ROLLED," \
	    "overlap $HA_OVERLAP (${HA_OVERLAP_N} records, $HA_OVERLAP_S s)${HA_FENCED:+, fenced: $HA_FENCED}"
	if [ "$HA_OVERLAP" != 0 ] && [ "${2:-}" != overlap-ok ]; then
		fail "$1: two copies of mc ran at once (the witness says so)"
	fi
	H3_NEW=$(tail -n +"$((l3 + 1))" "$(cl_log h3)")
}
moved() { [ "$HA_TO" != "$HA_FROM" ]; }

trial cut
moved || fail "cut: mc stayed on $HA_FROM"
grep -q "lease from h3 lost" "$(cl_log "$HA_FROM")" || fail "$HA_FROM did not fence"

trial coord-cut
echo "coord-cut: h3 said: $(grep -o 'host h[12] is [a-z]*\|failover: mc.*' <<<"$H3_NEW" | tr '\n' ';')"

e=$(inst_field "$(ha_owner)" mc epoch)
trial asym-peer
[ "$HA_TO" = "$HA_FROM" ] || fail "asym-peer: mc moved from $HA_FROM to $HA_TO"
[ "$(inst_field "$HA_TO" mc epoch)" = "$e" ] || fail "asym-peer: the epoch changed"
[ "$HA_GAP" = - ] || fail "asym-peer: mc was restarted (gap $HA_GAP s)"

trial asym-coord
moved || fail "asym-coord: mc stayed on $HA_FROM"

trial oneway-coord
moved || fail "oneway-coord: mc stayed on $HA_FROM"

trial oneway-from-coord
moved || fail "oneway-from-coord: mc stayed on $HA_FROM"

# Unfenced, the zombie's overlap is allowed; that it ends is checked.
trial pause overlap-ok
moved || fail "pause: mc stayed on $HA_FROM"
grep -q "lease from h3 lost" <(tail -n 50 "$(cl_log "$HA_FROM")") ||
    fail "pause: $HA_FROM did not say it fenced on waking"
echo "pause without fence_command: once resumed, $HA_FROM's copy wrote $HA_OVERLAP_N" \
    "record(s) beside $HA_TO's, the last $HA_OVERLAP_S s after the resume, before its ternd killed it"

echo "--- h3 gets a fence_command"
HA_COORD_CONF=("fence_command = \"$(ha_fence_script)\"" "fence_timeout_ms = 5000")
cl_stop h3 || fail "h3's ternd did not stop cleanly"
ha_setup 'log_filters = "info"'
cl_start h3
wait_for 60 "the cluster whole again" ha__whole_now

trial pause
moved || fail "fenced pause: mc stayed on $HA_FROM"
[ "$HA_FENCED" = "$HA_FROM" ] || fail "fenced pause: fenced '$HA_FENCED', not $HA_FROM"
grep -q "host $HA_FROM fenced: .*the host is off" <<<"$H3_NEW" ||
    fail "fenced pause: h3 did not log the fence"

trial coord-cut
[ -z "$HA_FENCED" ] || fail "coord-cut: h3 fenced $HA_FENCED without a link"
grep -q "fencing host h[12] failed: .*exited with status 1" <<<"$H3_NEW" ||
    fail "coord-cut: h3 did not try its fence"

cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
