#!/usr/bin/env bash
# Issue 9 #12: `ternctl cert revoke` writes a list of revoked serials; a
# ternd that loads it (SIGHUP) drops the live link made with a revoked
# certificate and refuses it at every later handshake, while the other
# links stay up.  A stolen host key stops working without replacing the CA.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

CTL="$TERN_BUILDDIR/ternctl"
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 3
cl_pki
for h in h1 h2 h3; do cl_conf $h; done
for h in h1 h2 h3; do cl_start $h; done
sock1="$(th_root_path h1 /run/tern/ternd.sock)"
log="$(cl_log h1)"
pki="$TH_ROOT/pki"
state_of() {	# HOST: "STATE SINCE_MS" as h1 sees it
	"$CTL" -s "$sock1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        print(h["state"], h["since_ms"])' "$1"
}
for ((i = 0; i < 100; i++)); do
	[ "$(state_of h2 | cut -d' ' -f1)" = up ] &&
		[ "$(state_of h3 | cut -d' ' -f1)" = up ] && break
	sleep 0.1
done
[ "$(state_of h2 | cut -d' ' -f1)" = up ] || fail "h2 never came up on h1"
h3_before=$(state_of h3)

# Revoke h2's certificate; a second revoke of the same one adds nothing.
serial=$("$CTL" cert show --json "$pki/hosts/h2/h2.pem" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"])')
"$CTL" cert revoke "$pki/hosts/h2/h2.pem" --ca-dir "$pki" | grep -q "^revoked in $pki/revoked" ||
	fail "cert revoke did not say it revoked"
"$CTL" cert revoke --serial "$(echo "$serial" | tr A-F a-f)" --ca-dir "$pki" |
	grep -q "^already revoked" || fail "a second revoke of the same serial was not a no-op"
grep -q "^$serial " "$pki/revoked" || fail "serial $serial not in $pki/revoked"
[ "$(grep -c "^$serial" "$pki/revoked")" = 1 ] || fail "serial listed twice"
# A list that does not parse is refused by a reload, which keeps the old one.
echo "not-hex" > "$(th_dir h1)/etc/revoked"
kill -HUP "$(cl_pid h1)"
for ((i = 0; i < 50; i++)); do
	grep -q "reload failed.*revoked:1: not a serial number" "$log" && break
	sleep 0.1
done
grep -q "reload failed.*revoked:1: not a serial number" "$log" ||
	fail "a malformed revocation list was not refused by the reload"
# The real list, to h1 only, then SIGHUP.
cp "$pki/revoked" "$(th_dir h1)/etc/revoked"
kill -HUP "$(cl_pid h1)"
for ((i = 0; i < 50; i++)); do
	grep -q "peer h2: its certificate (serial $serial) is revoked: dropping the link" "$log" && break
	sleep 0.1
done
grep -q "peer h2: its certificate (serial $serial) is revoked: dropping the link" "$log" ||
	fail "h1 did not drop the link made with a revoked certificate"
echo "ok: the live link with h2 dropped on reload"
# Every later handshake with h2 (either direction) is refused.
for ((i = 0; i < 100; i++)); do
	grep -q "certificate revoked" "$log" && break
	sleep 0.1
done
grep -q "certificate revoked" "$log" || fail "h1 did not refuse h2's certificate at a handshake"
[ "$(state_of h2 | cut -d' ' -f1)" != up ] || fail "h2 is up again on h1"
set +e
th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
	--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
	--timeout 3000 hello > "$TH_ROOT/raw.out" 2>&1
rc=$?
set -e
[ $rc = 3 ] || fail "rawpeer with the revoked certificate: rc $rc: $(cat "$TH_ROOT/raw.out")"
echo "ok: the revoked certificate is refused at the handshake"
# h3 never noticed.
h3_after=$(state_of h3)
[ "${h3_after%% *}" = up ] || fail "h3 is ${h3_after%% *} on h1"
[ "${h3_after##* }" -ge "${h3_before##* }" ] || fail "h3's link flapped"
"$CTL" -s "$sock1" status > /dev/null || fail "h1 stopped serving"
# A new certificate for h2 (a new serial) is let in again.
"$CTL" cert issue h2 --ca-dir "$pki" --out "$pki/hosts/h2" > /dev/null
th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
	--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
	hello | grep -q "^hello: h1" || fail "h2's reissued certificate was refused"
echo "ok: a reissued certificate gets in"
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "cert-revoke: ok"
