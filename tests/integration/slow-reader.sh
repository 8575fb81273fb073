#!/usr/bin/env bash
# A peer that reads slowly, or stops reading, must not make ternd's memory
# grow: the sender's queue is bounded by send_buffer_max whatever credit the
# receiver grants.  h1 streams 2 GiB to "h2" (rawpeer, granting 4 GiB of
# credit but reading 2 MB/s) while we sample h1's RSS.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

CTL="$TERN_BUILDDIR/ternctl"
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 2
cl_pki
cl_conf h1 'send_buffer_max = 4M'
cl_conf h2
cl_start h1
pid=$(cat "$(th_root_path h1 /run/tern/ternd.pid)")
sock1="$(th_root_path h1 /run/tern/ternd.sock)"
pki="$TH_ROOT/pki"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

run_case() {	# NAME RATE SECONDS
	local name=$1 rate=$2 secs=$3 base max=0 r
	th_spawn h2 "$TH_ROOT/$name.out" "$RAW" --connect "$(th_addr h1):7480" \
		--ca "$pki/ca.pem" --cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
		--rate "$rate" --seconds "$secs" slow-sink >/dev/null
	for ((i = 0; i < 50; i++)); do
		"$CTL" -s "$sock1" hosts --json | grep -q '"name":"h2"[^}]*"state":"up"' && break
		sleep 0.1
	done
	base=$(rss)
	"$CTL" -s "$sock1" stream-test h2 --bytes 2G > "$TH_ROOT/$name.ctl" 2>&1 &
	local ctl=$!
	for ((i = 0; i < secs * 10; i++)); do
		r=$(rss)
		[ "$r" -gt "$max" ] && max=$r
		sleep 0.1
	done
	wait $ctl || true
	echo "$name: RSS baseline ${base} KiB, peak ${max} KiB ($(cat "$TH_ROOT/$name.out" | tail -1))"
	# Queue limit 4 MiB (hard cap 16 MiB) + one frame + TLS buffers.
	[ $((max - base)) -lt $((40 * 1024)) ] ||
		fail "$name: RSS grew by $(((max - base) / 1024)) MiB with a slow reader"
}

run_case slow 2000000 6
# A reader that stops reading altogether: heartbeats time out and the link
# is dropped; memory stays flat meanwhile.
run_case stalled 0 5
grep -q "no message from h2\|peer is not reading" "$(cl_log h1)" ||
	fail "stalled reader was not dropped"
"$CTL" -s "$sock1" status >/dev/null || fail "h1 stopped serving"
# Every ternd stops cleanly on SIGTERM, with no sanitizer report.
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "slow-reader: ok"
