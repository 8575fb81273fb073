#!/usr/bin/env bash
# Issue 9 #8: clients that open TCP connections to the peer port and never
# start TLS cannot exhaust ternd.  Beyond max_pending_handshakes new
# connections are closed at once (and that is logged); meanwhile ternctl is
# served, the established peer link stays up, and once the flood stops a
# real peer connects.  The flood comes from h2's address to h1 only, a
# bounded number of sockets.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap 'rc=$?; exec 3>&- 2>/dev/null || true; th_teardown "$rc"' EXIT

CTL="$TERN_BUILDDIR/ternctl"
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"
CAP=8
FLOOD=40

th_setup 3
cl_pki
# A long handshake deadline, so the flood's sockets stay pending for as long
# as the test holds them, and the cap alone is what refuses the rest.
cl_conf h1 "max_pending_handshakes = $CAP" 'handshake_timeout_ms = 60000'
cl_conf h2
cl_conf h3
cl_start h1
cl_start h3
sock1="$(th_root_path h1 /run/tern/ternd.sock)"
log="$(cl_log h1)"
pki="$TH_ROOT/pki"
h3_since() {
	"$CTL" -s "$sock1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == "h3":
        print(h["state"], h["since_ms"])'
}
for ((i = 0; i < 100; i++)); do
	[ "$(h3_since | cut -d' ' -f1)" = up ] && break
	sleep 0.1
done
before=$(h3_since)
[ "${before%% *}" = up ] || fail "h3 never came up on h1"

# The flood: FLOOD plain TCP connections held open, sending nothing, until
# the test closes the flooder's stdin.  It reports how many the kernel
# accepted and, later, how many h1 closed on it.
fifo="$TH_ROOT/flood.in"
mkfifo "$fifo"
th_exec h2 python3 -c '
import socket, sys, time
addr, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection((addr, 7480), timeout=5)
    socks.append(s)
print("open", len(socks), flush=True)
sys.stdin.read()
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("closed-by-peer", closed, flush=True)
' "$(th_addr h1)" "$FLOOD" < "$fifo" > "$TH_ROOT/flood.out" 2>&1 &
flood_pid=$!
exec 3> "$fifo"
for ((i = 0; i < 100; i++)); do
	grep -q '^open' "$TH_ROOT/flood.out" && break
	sleep 0.1
done
grep -q "^open $FLOOD" "$TH_ROOT/flood.out" ||
	fail "flooder: $(cat "$TH_ROOT/flood.out")"
for ((i = 0; i < 50; i++)); do
	grep -q "TLS handshakes already pending" "$log" && break
	sleep 0.1
done
grep -q "refused [0-9]* peer connections*: $CAP TLS handshakes already pending (max_pending_handshakes)" "$log" ||
	fail "h1 never refused a connection for the cap"
echo "ok: the cap was hit: $(grep -m1 'TLS handshakes already pending' "$log" | sed 's/.*warn *//')"

# Under the flood: ternctl is served and h3's link did not move.
"$CTL" -s "$sock1" status > /dev/null || fail "h1 stopped serving ternctl during the flood"
"$CTL" -s "$sock1" ping h3 > /dev/null || fail "h1 cannot ping h3 during the flood"
during=$(h3_since)
[ "${during%% *}" = up ] || fail "h3 is ${during%% *} on h1 during the flood"
[ "${during##* }" -ge "${before##* }" ] || fail "h3's link flapped during the flood"
echo "ok: ternctl served and the h3 link up during the flood"

# The flood ends; a real peer is let in.
exec 3>&-
wait "$flood_pid" || fail "flooder: $(cat "$TH_ROOT/flood.out")"
closed=$(sed -n 's/^closed-by-peer //p' "$TH_ROOT/flood.out")
[ "$closed" -ge $((FLOOD - CAP)) ] ||
	fail "only $closed of the flood's connections were closed by h1 (want >= $((FLOOD - CAP)))"
echo "ok: h1 closed $closed of $FLOOD flood connections at once"
ok=0
for ((i = 0; i < 50; i++)); do
	if th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
	    --cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
	    hello 2>&1 | grep -q "^hello: h1"; then
		ok=1
		break
	fi
	sleep 0.1
done
[ $ok = 1 ] || fail "a real peer could not connect after the flood"
echo "ok: a real peer connects after the flood"
after=$(h3_since)
[ "${after%% *}" = up ] || fail "h3 is ${after%% *} after the flood"
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "handshake-flood: ok"
