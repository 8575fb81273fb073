#!/usr/bin/env bash
# stream: 4 GiB from host h1 to host h2 over (1) tern's mutual-TLS stream
# (ternctl stream-test: framed, credit flow control; data frames carry no
# CRC on TLS, whose AEAD tags check every byte),
# (2) openssl s_server/s_client with the same certificates and cipher
# (TLS 1.3, AES-128-GCM), (3) plain TCP with netcat, (4) iperf3, one TCP
# stream, no encryption: the link's ceiling, and the final ratio.  The
# runs are interleaved (one of each per round), so load from elsewhere on
# the machine weighs on all of them alike; median of 3 each.  CPU seconds
# per GiB (sender + receiver process) say what each costs, whatever the
# load.  Before the last line, "loop: longest callback ms = N": the most
# CPU either ternd's loop ran callbacks for in one part of a turn during
# the tern runs (daemon/loop-probe.h); then tern's CPU per byte over
# iperf3's, and AES-128-GCM's speed on one core here: with the CPUs busy
# (2 cores, or others' load) the rate ratio follows the CPU ratio, and
# both ends' AES-GCM alone costs 2 GiB / that speed per GiB streamed.
set -euo pipefail
# Jumbo frames, as on a migration network; TH_MTU=1500 to compare.
export TH_MTU=${TH_MTU:-9000}
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
trap th_teardown EXIT

BYTES=${BENCH_STREAM_BYTES:-4294967296}
RUNS=${BENCH_RUNS:-3}
CIPHER=TLS_AES_128_GCM_SHA256
PORT=7600
IPERF_PORT=7601

th_setup 2 >/dev/null
cl_pki >/dev/null
cl_conf h1 'log_filters = "info"' >/dev/null
cl_conf h2 'log_filters = "info"' >/dev/null
cl_start h1 && cl_start h2
cl_wait_up h1 2 30
pki=$TH_ROOT/pki
h2addr=$(th_addr h2)

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
now() { date +%s.%N; }

# Each *_once prints "SECONDS CPU_SECONDS" (CPU: sender + receiver, or
# "-" when not known).
# Each ternd's longest callback of the last tern run is appended to
# $TH_ROOT/loop-cb ("SENDER RECEIVER").
loop_cb() { cl_ctl "$1" --json status | sed -n 's/.*"loop_longest_callback_ms":\([0-9]*\).*/\1/p'; }
tern_once() {
	local p1 p2 c0 c1 t
	p1=$(cl_pid h1) p2=$(cl_pid h2)
	cl_ctl h1 status --reset-loop-probe >/dev/null
	cl_ctl h2 status --reset-loop-probe >/dev/null
	c0=$(awk -v a="$(cpu_s "$p1")" -v b="$(cpu_s "$p2")" 'BEGIN {print a + b}')
	t=$(cl_ctl h1 --json stream-test h2 --bytes "$BYTES" |
		sed -n 's/.*"elapsed_ns":\([0-9]*\).*/\1/p' |
		awk '{printf "%.4f\n", $1 / 1e9}')
	c1=$(awk -v a="$(cpu_s "$p1")" -v b="$(cpu_s "$p2")" 'BEGIN {print a + b}')
	echo "$(loop_cb h1) $(loop_cb h2)" >>"$TH_ROOT/loop-cb"
	echo "$t $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')"
}

# iperf3's own receiver-side time and both ends' CPU share, from its JSON.
iperf3_once() {
	local srv
	th_spawn h2 "$TH_ROOT/iperf3-s.log" iperf3 -s -1 -B "$h2addr" \
		-p "$IPERF_PORT" > /dev/null
	srv=$TH_SPAWN_PID
	sleep 0.3
	th_exec h1 iperf3 -c "$h2addr" -p "$IPERF_PORT" -P 1 -n "$BYTES" -J \
		> "$TH_ROOT/iperf3.json"
	wait "$srv" 2>/dev/null || true
	python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))["end"]
s = e["sum_received"]["seconds"]
c = e["cpu_utilization_percent"]
print("%.4f %.2f" % (s, (c["host_total"] + c["remote_total"]) / 100 * s))' \
		"$TH_ROOT/iperf3.json"
}

openssl_once() {
	local srv t0 t1
	# s_server quits when its stdin ends: give it one that stays open.
	th_spawn h2 "$TH_ROOT/s_server.log" bash -c "openssl s_server -quiet \
		-naccept 1 -accept $h2addr:$PORT -tls1_3 -ciphersuites $CIPHER \
		-cert $pki/hosts/h2/h2.pem -key $pki/hosts/h2/h2.key \
		-CAfile $pki/ca.pem -Verify 1 -verify_return_error \
		< <(sleep 3600) > /dev/null" > /dev/null
	srv=$TH_SPAWN_PID
	sleep 0.3
	t0=$(now)
	th_exec h1 bash -c "head -c $BYTES /dev/zero | openssl s_client -quiet \
		-no_ign_eof -connect $h2addr:$PORT -tls1_3 -ciphersuites $CIPHER \
		-cert $pki/hosts/h1/h1.pem -key $pki/hosts/h1/h1.key \
		-CAfile $pki/ca.pem -verify_return_error > /dev/null 2>&1"
	wait "$srv" 2>/dev/null || true
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f -\n", b - a}'
}

tcp_once() {
	local srv t0 t1
	th_spawn h2 "$TH_ROOT/nc.log" bash -c "nc -l -N $h2addr $PORT > /dev/null" >/dev/null
	srv=$TH_SPAWN_PID
	sleep 0.3
	t0=$(now)
	th_exec h1 bash -c "head -c $BYTES /dev/zero | nc -N $h2addr $PORT"
	wait "$srv" 2>/dev/null || true
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f -\n", b - a}'
}

# Interleaved rounds; per NAME, the list of "SECONDS CPU" lines.
declare -A res
round() {	# NAME FUNCTION ROUND
	local r t c
	r=$($2)
	t=${r% *} c=${r#* }
	res[$1]+="$r"$'\n'
	printf '  %-8s run %d: %8.3f s  %7.0f MB/s  %s\n' "$1" "$3" "$t" \
		"$(awk -v b="$BYTES" -v s="$t" 'BEGIN {print b / s / 1e6}')" \
		"$([ "$c" = - ] || awk -v c="$c" -v b="$BYTES" \
		'BEGIN {printf "%.2f cpu-s/GiB", c / (b / 2^30)}')" >&2
}
med_t() { printf '%s' "${res[$1]}" | awk '{print $1}' | median; }
med_cpu() {	# NAME: median CPU seconds per GiB, or "-"
	local m
	m=$(printf '%s' "${res[$1]}" |
		awk -v b="$BYTES" '$2 != "-" {print $2 / (b / 2^30)}' | median)
	echo "${m:--}"
}

echo "stream: $BYTES bytes h1 -> h2 (veth+bridge between two test hosts, MTU $TH_MTU), median of $RUNS, interleaved"
for ((i = 1; i <= RUNS; i++)); do
	round tern tern_once "$i"
	round iperf3 iperf3_once "$i"
	round openssl openssl_once "$i"
	round tcp tcp_once "$i"
done
line() {	# LABEL NAME
	local t
	t=$(med_t "$2")
	printf '%-44s %8.3f s  %7.0f MB/s  %s\n' "$1" "$t" \
		"$(awk -v b="$BYTES" -v s="$t" 'BEGIN {print b / s / 1e6}')" \
		"$(c=$(med_cpu "$2"); [ "$c" = - ] || printf '%.2f cpu-s/GiB' "$c")"
}
line "tern mTLS stream (flow ctl)" tern
line "openssl s_server/s_client (AES-128-GCM)" openssl
line "plain TCP (nc)" tcp
line "iperf3 (one TCP stream, no TLS)" iperf3
rate() { awk -v b="$BYTES" -v s="$(med_t "$1")" 'BEGIN {print b / s}'; }
awk -v a="$(rate tern)" -v b="$(rate openssl)" 'BEGIN {printf "tern/openssl = %.2f\n", a / b}'
awk -v a="$(rate tern)" -v b="$(rate tcp)" 'BEGIN {printf "tern/tcp = %.2f\n", a / b}'
awk '{ if ($1 > s) s = $1; if ($2 > r) r = $2 } END { m = s; if (r > m) m = r
	printf("loop: longest callback ms = %d (sender %d, receiver %d)\n", m, s, r) }' \
	"$TH_ROOT/loop-cb"
# What the rate ratio is made of when the CPUs are the limit (2 cores,
# or a loaded machine): each end's CPU per byte, and the cipher's speed.
awk -v a="$(med_cpu tern)" -v b="$(med_cpu iperf3)" \
	'BEGIN { if (a != "-" && b != "-" && b > 0)
		printf "cpu: tern/iperf3 cpu-s per GiB = %.2f\n", a / b }'
openssl speed -seconds 1 -bytes 16384 -evp aes-128-gcm 2>/dev/null |
	awk '$1 == "AES-128-GCM" { sub(/k$/, "", $2)
		printf "aes-128-gcm, one core, 16 KiB records (openssl speed): %.0f MB/s\n", $2 * 1000 / 1e6 }' ||
	echo "aes-128-gcm: openssl speed did not run"
awk -v a="$(rate tern)" -v b="$(rate iperf3)" 'BEGIN {printf "stream: tern/iperf3 = %.2f\n", a / b}'
