#!/usr/bin/env bash
# coord-scale: one coordinator (a real ternd, role = "coordinator", the
# journal store) on test host h2, and on h1 agentsim (tests/tools/
# agentsim.c): N simulated agents in one process, each its own host to the
# coordinator (its own mutual-TLS link and certificate from the cluster
# CA), speaking the lease protocol as agent/ha.c does.  Every agent holds
# BENCH_COORD_INSTANCES (1) protected instances, the victim (the first)
# BENCH_COORD_VICTIM (1000).  Per run:
#   registered   how long until all N hold every instance at an epoch
#                (connects paced at BENCH_COORD_WINDOW (16) handshakes at
#                once, under the mesh's max_pending_handshakes, 32)
#   steady       BENCH_COORD_STEADY_S (30) s of renewals every ttl/3: the
#                coordinator's CPU (utime + stime from /proc/PID/stat over
#                the wall time) and renew->grant latency p50/p99 (agentsim)
#   failover     the victim stops renewing; from the earliest decision
#                the rules allow (its last grant + ttl + margin) to the
#                coordinator having recorded every move (its log's last
#                "failover: ..." line) and to survivors being granted all
#                of them (agentsim)
# BENCH_COORD_CHECKPOINT=1: the agents' instances (not the victim's) are
# --ha checkpoint (no replica reported): every grant's keep-list looks at
# each of them.
# Runs for each N in BENCH_COORD_AGENTS ("100 1000"), a fresh store each;
# the last line is the CPU share with the largest N.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"

AGENTS=${BENCH_COORD_AGENTS:-100 1000}
PER=${BENCH_COORD_INSTANCES:-1}
VICTIM=${BENCH_COORD_VICTIM:-1000}
STEADY=${BENCH_COORD_STEADY_S:-30}
WINDOW=${BENCH_COORD_WINDOW:-16}
TTL=${BENCH_COORD_TTL_MS:-2000}
# The mesh's heartbeat, both ways (ternd's default; peer_timeout 5 times).
HEARTBEAT=${BENCH_COORD_HEARTBEAT_MS:-1000}
MARGIN=${BENCH_COORD_MARGIN_MS:-500}
CKPT=${BENCH_COORD_CHECKPOINT:-}
[ "$CKPT" = 1 ] || CKPT=
SIM=$TERN_BUILDDIR/tests/tools/agentsim

th_check || { echo "coord-scale: needs root and the test host tools" >&2; exit 2; }
trap th_teardown EXIT
th_setup 2 >/dev/null
cl_pki >/dev/null

# conf N: h2's ternd.conf, the coordinator with N agents as peers (they
# dial it: their names sort before h2's).
conf() {
	local n=$1 i peers="" addr
	addr=$(th_addr h1)
	for ((i = 0; i < n; i++)); do
		peers+=$(printf '"a%05d@%s:%s",\n' "$i" "$addr" "$CL_PORT")$'\n'
	done
	cl_conf h2 'role = "coordinator"' "lease_ttl_ms = $TTL" \
	    "lease_margin_ms = $MARGIN" 'log_filters = "info"' \
	    "heartbeat_interval_ms = $HEARTBEAT" \
	    "peer_timeout_ms = $((HEARTBEAT * 5))" \
	    "peers = [
$peers]"
}

leading() { cl_ctl h2 status 2>/dev/null | grep -q "coordinator:.*leading"; }
stamp() { date -d "$1" +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# run N: one coordinator, N agents; prints the figures, sets CPU.
run() {
	local n=$1 out from log moves last earliest granted decided
	out=$TH_ROOT/agentsim-$n.out
	cl_stop h2 >/dev/null 2>&1 || :
	rm -rf "$(th_dir h2)/state/coord"
	conf "$n"
	log=$(cl_log h2)
	from=$({ wc -l <"$log"; } 2>/dev/null || echo 0)
	cl_start h2
	th_wait 20 leading || { echo "coord-scale: h2 does not lead" >&2; exit 2; }
	echo "--- $n agents ($((n - 1)) with $PER instance(s) each, the victim with $VICTIM)"
	if ! th_exec h1 "$SIM" --coordinator h2 --address "$(th_addr h2):$CL_PORT" \
	    --ca-file "$TH_ROOT/pki/ca.pem" --ca-dir "$TH_ROOT/pki" \
	    --cert-dir "$TH_ROOT/pki/sim" --agents "$n" --instances "$PER" \
	    --victim-instances "$VICTIM" --ttl "$TTL" --margin "$MARGIN" \
	    --steady "$STEADY" --window "$WINDOW" --heartbeat "$HEARTBEAT" \
	    --cpu-pid "$(cl_pid h2)" ${CKPT:+--checkpoint} \
	    >"$out" 2>"$out.err"; then
		cat "$out" >&2
		tail -n 20 "$out.err" >&2
		echo "coord-scale: agentsim failed with $n agents" >&2
		exit 1
	fi
	grep -v '^agentsim: ' "$out" | sed 's/^/  /'
	CPU=$(sed -n 's/^coordinator cpu: .* = \([0-9.]*\)% of one core$/\1/p' "$out")
	# The coordinator's word: the time of its last recorded move.
	moves=$(awk -v from="$from" 'NR > from && /failover: a00000-[0-9]+ .*moved from/' \
	    "$log" | wc -l)
	last=$(awk -v from="$from" 'NR > from && /failover: a00000-[0-9]+ .*moved from/ { t = $1 } END { print t }' "$log")
	earliest=$(sed -n 's/.*earliest decision (grant + ttl + margin) \([0-9.]*\)$/\1/p' "$out")
	granted=$(sed -n 's/^failover: all [0-9]* instances granted to survivors at \([0-9.]*\),.*/\1/p' "$out")
	if [ -z "$last" ] || [ "$moves" -lt "$VICTIM" ]; then
		echo "coord-scale: the coordinator logged $moves of $VICTIM moves" >&2
		exit 1
	fi
	decided=$(sub "$(stamp "$last")" "$earliest")
	echo "  failover decision time ($n agents, $VICTIM instances): all moves recorded $decided s after the earliest allowed decision, granted to survivors $(sub "$granted" "$earliest") s after it"
	DECIDED=$decided
	cl_stop h2 >/dev/null || { echo "coord-scale: ternd on h2 did not stop cleanly" >&2; exit 1; }
}

SUMMARY=""
echo "coord-scale: ttl $TTL ms, margin $MARGIN ms, heartbeat $HEARTBEAT ms, ${STEADY} s steady; the coordinator on h2 ($(nproc) cores shared with everything else)"
for n in $AGENTS; do
	run "$n"
	SUMMARY+="  $n agents: coordinator cpu $CPU%, failover of $VICTIM decided in $DECIDED s"$'\n'
done
printf '%s' "$SUMMARY"
echo "coord-scale: failover decision time = $DECIDED s ($VICTIM instances)"
echo "coord-scale: coordinator cpu share = $CPU%"
