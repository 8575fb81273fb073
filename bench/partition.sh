#!/usr/bin/env bash
# partition: partitions, pauses and coordinator losses in random order,
# each trial checked by the instance itself.  Three test hosts as in
# tests/integration/ha-partition.sh: h3 coordinates, h1 and h2 hold
# leases, a "--ha restart" witness container mc (tests/lib/witness.sh)
# runs on one of them.  A trial (tests/lib/ha.sh, ha_trial) puts one
# fault on the cluster, lets tern react, undoes it and waits until both
# agents hold a lease and exactly one copy runs; then the witness's
# records of the trial are checked for two copies running at once.
#
# Kinds: cut, coord-cut, asym-peer, asym-coord, oneway-coord,
# oneway-from-coord, pause (see
# tests/lib/ha.sh); with the etcd store also coord-crash and etcd-leader.
# Three sections, each its own cluster, trials drawn at random from the
# section's kinds (seed BENCH_PARTITION_SEED, printed):
#   unfenced  journal store, no fence_command   (BENCH_PARTITION_UNFENCED, 15)
#   fenced    journal store, fence_command      (BENCH_PARTITION_FENCED, 30)
#   etcd      etcd store (a member on each host), fence_command
#                                               (BENCH_PARTITION_ETCD, 20)
# The fence command kills every process of the host it is given, as a
# power fence would; it fails while the coordinator's own link is down.
# Per section and kind it prints trials, overlaps, the gap (the
# witness's: last record of an old copy to the first of the next, summed
# over the trial's handovers; p50 and max over the trials in which mc
# stopped) and the state rolled back.
# The last line counts the fenced sections:
#   partition: overlaps = N of M trials
# BENCH_PARTITION_BUDGET_S (1200) bounds the whole run: each section
# gets its share by trial count and says so when it is cut short.
# Exit status 1 if a fenced trial overlapped or a trial left the cluster
# broken (it ends its section).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"

N_UNFENCED=${BENCH_PARTITION_UNFENCED:-15}
N_FENCED=${BENCH_PARTITION_FENCED:-30}
N_ETCD=${BENCH_PARTITION_ETCD:-20}
BUDGET=${BENCH_PARTITION_BUDGET_S:-1200}
SEED=${BENCH_PARTITION_SEED:-$(( $(date +%s) % 32768 ))}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "partition: seed $SEED (BENCH_PARTITION_SEED), lease_ttl_ms $HA_TTL_MS," \
    "lease_margin_ms $HA_MARGIN_MS, budget $BUDGET s (BENCH_PARTITION_BUDGET_S)"

# setup SECTION: hosts, ternds, mc running on h1.
setup() {
	local h
	HA_COORD_CONF=()
	th_setup 3 >/dev/null || return 1
	if [ "$1" = etcd ]; then
		HA_ETCD=1
		etcd_up h1 h2 h3 || { echo "etcd did not come up" >&2; return 1; }
		HA_COORD_CONF+=("store = \"etcd\"" "etcd_endpoints = \"$(etcd_endpoints)\"")
	fi
	if [ "$1" != unfenced ]; then
		HA_COORD_CONF+=("fence_command = \"$(ha_fence_script)\""
		    "fence_timeout_ms = 5000")
	fi
	ha_setup 'log_filters = "info"' || return 1
	for h in h1 h2 h3; do cl_start $h || return 1; done
	ha_wait || return 1
	ha_trial_setup
}

# section NAME TRIALS BUDGET_S SEED: in a subshell with its own test hosts;
# one line per trial in $OUT/NAME ("KIND OVERLAP GAP ROLLED N S"),
# $OUT/NAME.short when the budget cut it, $OUT/NAME.broken when a trial
# broke the cluster.
section() {
	local name=$1 n=$2 budget=$3 kinds i k start
	trap th_teardown EXIT
	# Its own seed (a subshell's RANDOM is seeded afresh), so a
	# section's order does not depend on the one before it.
	RANDOM=$4
	kinds=($HA_KINDS)
	[ "$name" != etcd ] || kinds+=($HA_ETCD_KINDS)
	: >"$OUT/$name"
	echo "partition: section $name: $n trials of ${kinds[*]}"
	if ! setup "$name" >"$OUT/setup.log" 2>&1; then
		echo "  setup failed: $(tail -n 3 "$OUT/setup.log" | tr '\n' ' ')"
		echo "setup failed" >"$OUT/$name.broken"
		return 0
	fi
	start=$SECONDS
	for ((i = 1; i <= n; i++)); do
		if [ "$((SECONDS - start))" -ge "$budget" ]; then
			echo "  stopped after $((i - 1)) of $n trials: the section's" \
			    "share of the budget ($budget s) is spent"
			echo "$((i - 1)) of $n" >"$OUT/$name.short"
			break
		fi
		k=${kinds[$((RANDOM % ${#kinds[@]}))]}
		if ! ha_trial "$k" 2>"$OUT/trial.err"; then
			echo "  trial $i $k: BROKEN: $HA_WHY"
			sed 's/^/    /' "$OUT/trial.err"
			echo "trial $i $k: $HA_WHY" >"$OUT/$name.broken"
			break
		fi
		printf '  trial %2d %-17s %s -> %s: %d handover(s), gap %s s, rolled back %s%s%s\n' \
		    "$i" "$k" "$HA_FROM" "$HA_TO" "$HA_HANDOVERS" "$HA_GAP" "$HA_ROLLED" \
		    "$([ "$HA_OVERLAP" = 0 ] || echo ", OVERLAP: the old copy wrote $HA_OVERLAP_N record(s) once both ran, the last $HA_OVERLAP_S s in")" \
		    "${HA_FENCED:+, fenced $HA_FENCED}"
		echo "$k $HA_OVERLAP $HA_GAP $HA_ROLLED $HA_OVERLAP_N $HA_OVERLAP_S" >>"$OUT/$name"
	done
	cl_stop_all >/dev/null 2>&1 || :
}

# report NAME: per kind: trials, overlaps, gap p50/max, rolled back.
report() {
	[ -s "$OUT/$1" ] || { echo "  no trials"; return 0; }
	sort -k1,1 "$OUT/$1" | awk -v rb=- '
	function flush() {
		if (kind == "") return
		ng = 0
		for (i = 1; i <= n; i++) if (g[i] != "-") gs[++ng] = g[i] + 0
		# insertion sort of the gaps
		for (i = 2; i <= ng; i++) { v = gs[i]; for (j = i - 1; j >= 1 && gs[j] > v; j--) gs[j + 1] = gs[j]; gs[j + 1] = v }
		if (ng) gap = sprintf("gap p50 %.2f s, max %.2f s", gs[int((ng + 1) / 2)], gs[ng])
		else gap = "nothing moved"
		printf "  %-17s %3d trials, %d overlaps, %s, rolled back max %s\n", kind, n, ov, gap, rb
		n = 0; ov = 0; rb = "-"; delete g; delete gs
	}
	$1 != kind { flush(); kind = $1 }
	{ g[++n] = $3; ov += $2; if ($4 != "-" && (rb == "-" || $4 + 0 > rb + 0)) rb = $4 }
	END { flush() }'
}

total=$((N_UNFENCED + N_FENCED + N_ETCD))
[ "$total" -gt 0 ] || { echo "partition: no trials asked for" >&2; exit 2; }
rc=0
for s in "unfenced $N_UNFENCED" "fenced $N_FENCED" "etcd $N_ETCD"; do
	set -- $s
	[ "$2" -gt 0 ] || continue
	if [ "$1" = etcd ] && ! etcd_check; then
		echo "partition: section etcd: not run: no etcd binary (package etcd-server)"
		continue
	fi
	(section "$1" "$2" $((BUDGET * $2 / total)) $((SEED + ${#1}))) || rc=1
done

M=0 N=0
for s in unfenced fenced etcd; do
	[ -e "$OUT/$s" ] || continue
	echo "partition: $s ($(wc -l <"$OUT/$s") trials$([ ! -f "$OUT/$s.short" ] ||
	    echo ", cut short by the budget: $(cat "$OUT/$s.short")")$([ "$s" = unfenced ] ||
	    echo ", with fence_command")):"
	report "$s"
	if [ -f "$OUT/$s.broken" ]; then
		echo "  BROKEN: $(cat "$OUT/$s.broken")"
		rc=1
	fi
	[ "$s" != unfenced ] || continue
	M=$((M + $(wc -l <"$OUT/$s")))
	N=$((N + $(awk '$2 != 0' "$OUT/$s" | wc -l)))
done
if [ -e "$OUT/unfenced" ]; then
	echo "partition: without fence_command: overlaps = $(awk '$2 != 0' "$OUT/unfenced" | wc -l)" \
	    "of $(wc -l <"$OUT/unfenced") trials (a paused host's copy runs again for a moment: docs/ha.md)"
fi
[ "$N" = 0 ] || rc=1
echo "partition: overlaps = $N of $M trials"
exit $rc
