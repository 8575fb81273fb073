#!/usr/bin/env bash
# A peer that sends bad bytes after authenticating loses its connection,
# with the reason logged, and ternd goes on serving everyone else: here h1
# and h3 are real, h2 is played by rawpeer with h2's real certificate.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

CTL="$TERN_BUILDDIR/ternctl"
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 3
cl_pki
cl_conf h1
cl_conf h2
# h3 takes small frames: h1 must send it no frame larger than it said.
cl_conf h3 'max_frame_size = 64K'
cl_start h1
cl_start h3
sock1="$(th_root_path h1 /run/tern/ternd.sock)"
for ((i = 0; i < 100; i++)); do
	"$CTL" -s "$sock1" hosts --json | grep -q '"name":"h3"[^}]*"state":"up"' && break
	sleep 0.1
done

pki="$TH_ROOT/pki"
log="$(cl_log h1)"
h3_since() {
	"$CTL" -s "$sock1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == "h3":
        print(h["state"], h["since_ms"])'
}

check() {	# SCENARIO LOG-PATTERN
	local name=$1 pattern=$2 rc before after
	before=$(h3_since)
	set +e
	th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
		--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 --timeout 5000 \
		"$name" > "$TH_ROOT/$name.out" 2>&1
	rc=$?
	set -e
	[ $rc = 0 ] || fail "$name: connection not closed by ternd (rawpeer rc $rc): $(cat "$TH_ROOT/$name.out")"
	for ((i = 0; i < 30; i++)); do
		grep -q -- "$pattern" "$log" && break
		sleep 0.1
	done
	grep -q -- "$pattern" "$log" || fail "$name: no \"$pattern\" in h1's log"
	"$CTL" -s "$sock1" status >/dev/null || fail "$name: h1 stopped serving"
	after=$(h3_since)
	# h3 stayed up, on the same connection (its since_ms only grew).
	[ "${after%% *}" = up ] || fail "$name: h3 is ${after%% *} after the fault"
	[ "${after##* }" -ge "${before##* }" ] || fail "$name: h3's link flapped"
	echo "ok: $name -> closed ($pattern)"
}

check oversize "larger than the maximum frame size"
check truncated "peer closed the connection"
check badcrc "payload checksum mismatch"
check badheader "header checksum mismatch"
check garbage "header checksum mismatch"
check unknown-type "unknown frame type"
check unknown-field "unknown field 200"
check bad-version "protocol version 99"
check before-hello "expected hello, got ping"
check unopened-channel "data on unopened channel 5"

# Issue 9 #13: a peer's error text with ANSI sequences, CR/LF and a forged
# log line reaches h1's log escaped, on the one line that quotes it.
th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
	--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
	error-text > "$TH_ROOT/error-text.out" 2>&1 ||
	fail "error-text: $(cat "$TH_ROOT/error-text.out")"
grep -q 'peer h2 says: evil\\x1b\[2J\\x1b\]0;pwned\\x07\\r\\n2026-01-01T00:00:00.000Z error agent: FORGED line\\x9b31m (ERROR_INTERNAL)' "$log" ||
	fail "error-text: the peer's text is not escaped on one line in h1's log"
! grep -q '^2026-01-01T00:00:00.000Z error agent: FORGED' "$log" ||
	fail "error-text: the peer forged a line in h1's log"
! grep -q $'\x1b' "$log" || fail "error-text: an escape character reached h1's log"
"$CTL" -s "$sock1" hosts > "$TH_ROOT/hosts.out"
! grep -q $'\x1b' "$TH_ROOT/hosts.out" ||
	fail "error-text: an escape character reached ternctl's output"
echo "ok: error-text -> escaped"

# A second connection with h3's own certificate supersedes h3's link (a
# restarted peer reconnecting looks like this); once it goes away, h1
# redials the real h3 and it is up again.
th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
	--cert "$pki/hosts/h3/h3.pem" --key "$pki/hosts/h3/h3.key" --as h3 hello |
	grep -q "^hello: h1" || fail "a reconnect with h3's identity was refused"
real_h3_up() {
	"$CTL" -s "$sock1" hosts --json |
		grep -q '"name":"h3"[^}]*"state":"up"[^}]*"software":"tern '
}
for ((i = 0; i < 100; i++)); do
	real_h3_up && break
	sleep 0.1
done
real_h3_up || fail "the real h3 did not come back after being superseded"
echo "ok: superseded link replaced, real h3 back"

# The stream still works end to end after all that (in frames h3 accepts).
"$CTL" -s "$sock1" stream-test h3 --bytes 32M | grep -q "33554432 bytes" ||
	fail "stream to h3 after the faults"
# Every ternd stops cleanly on SIGTERM, with no sanitizer report.
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "frame-faults: ok"
