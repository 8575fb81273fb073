#!/usr/bin/env bash
# stream: 4 GiB from host h1 to host h2 over (1) tern's mutual-TLS stream
# (ternctl stream-test: framed, CRC32C per chunk, credit flow control),
# (2) openssl s_server/s_client with the same certificates and cipher
# (TLS 1.3, AES-128-GCM), (3) plain TCP with netcat.  Median of 3 runs each.
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

th_setup 2 >/dev/null
cl_pki >/dev/null
cl_conf h1 'log_filters = "info"' >/dev/null
cl_conf h2 'log_filters = "info"' >/dev/null
cl_start h1 && cl_start h2
cl_wait_up h1 2 30
pki=$TH_ROOT/pki
h2addr=$(th_addr h2)

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
rate() { awk -v b="$BYTES" -v s="$1" 'BEGIN {printf "%.0f", b / s}'; }

tern_once() {
	cl_ctl h1 --json stream-test h2 --bytes "$BYTES" |
		sed -n 's/.*"elapsed_ns":\([0-9]*\).*/\1/p' |
		awk '{printf "%.4f\n", $1 / 1e9}'
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
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
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
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
}

run() {	# NAME FUNCTION
	local i t all=()
	for ((i = 0; i < RUNS; i++)); do
		t=$($2)
		all+=("$t")
		printf '  %-8s run %d: %8.3f s  %7.0f MB/s\n' "$1" $((i + 1)) "$t" \
			"$(awk -v b="$BYTES" -v s="$t" 'BEGIN {print b / s / 1e6}')" >&2
	done
	printf '%s\n' "${all[@]}" | median
}

echo "stream: $BYTES bytes h1 -> h2 (veth+bridge between two test hosts, MTU $TH_MTU), median of $RUNS"
t_tern=$(run tern tern_once)
t_ossl=$(run openssl openssl_once)
t_tcp=$(run tcp tcp_once)
r_tern=$(rate "$t_tern"); r_ossl=$(rate "$t_ossl"); r_tcp=$(rate "$t_tcp")
printf '%-34s %8.3f s  %7.0f MB/s\n' "tern mTLS stream (CRC32C, flow ctl)" "$t_tern" "$(awk -v r="$r_tern" 'BEGIN {print r/1e6}')"
printf '%-34s %8.3f s  %7.0f MB/s\n' "openssl s_server/s_client ($CIPHER)" "$t_ossl" "$(awk -v r="$r_ossl" 'BEGIN {print r/1e6}')"
printf '%-34s %8.3f s  %7.0f MB/s\n' "plain TCP (nc)" "$t_tcp" "$(awk -v r="$r_tcp" 'BEGIN {print r/1e6}')"
awk -v a="$r_tern" -v b="$r_tcp" 'BEGIN {printf "tern/tcp = %.2f\n", a / b}'
awk -v a="$r_tern" -v b="$r_ossl" 'BEGIN {printf "stream: tern/openssl = %.2f\n", a / b}'
