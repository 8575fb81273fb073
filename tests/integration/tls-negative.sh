#!/usr/bin/env bash
# Mutual TLS refuses every peer that is not what it claims: no client
# certificate, a certificate from another CA, an expired one, a host that
# is not a configured peer, a plaintext client, a Hello that lies about
# the host, and a server whose certificate names another host.  Each is
# refused with its reason in the log; no Hello (no byte of state) is sent.
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
cl_start h1

pki="$TH_ROOT/pki"
bad="$TH_ROOT/bad"
mkdir -p "$bad/other" "$bad/old"
"$CTL" ca init --dir "$bad/other" >/dev/null
"$CTL" cert issue h2 --ca-dir "$bad/other" >/dev/null
cp "$pki/ca.pem" "$pki/ca.key" "$bad/old/"
"$CTL" cert issue h2 --ca-dir "$bad/old" --days 1 --not-before-offset -864000 >/dev/null
"$CTL" cert issue intruder --ca-dir "$bad/old" >/dev/null

h1addr="$(th_addr h1):7480"
log="$(cl_log h1)"
# ternd listens for peers once its CRIU probe is done, after cl_start
# returns: under load that can take a while.
for ((i = 0; i < 300; i++)); do
	grep -q "listening for peers" "$log" && break
	sleep 0.1
done
grep -q "listening for peers" "$log" || fail "h1 never listened for peers"

# rawpeer from host h2 to h1: must exit 3 (rejected), h1 must log WHY.
expect_rejected() {	# NAME LOG-PATTERN RAWPEER-ARGS...
	local name=$1 pattern=$2 rc
	shift 2
	set +e
	th_exec h2 "$RAW" --connect "$h1addr" --ca "$pki/ca.pem" --timeout 3000 "$@" \
		> "$TH_ROOT/$name.out" 2>&1
	rc=$?
	set -e
	[ $rc = 3 ] || fail "$name: rawpeer exited $rc (want 3 = rejected): $(cat "$TH_ROOT/$name.out")"
	grep -q "^hello:" "$TH_ROOT/$name.out" && fail "$name: ternd sent its hello"
	for ((i = 0; i < 30; i++)); do
		grep -q -- "$pattern" "$log" && break
		sleep 0.1
	done
	grep -q -- "$pattern" "$log" || fail "$name: no \"$pattern\" in h1's log"
	echo "ok: $name refused ($pattern)"
}

# First the positive control: the same tool with a good certificate gets in.
th_exec h2 "$RAW" --connect "$h1addr" --ca "$pki/ca.pem" --cert "$pki/hosts/h2/h2.pem" \
	--key "$pki/hosts/h2/h2.key" --as h2 --expect-host h1 hello | grep -q "^hello: h1" ||
	fail "a good certificate was refused"

expect_rejected no-cert "peer did not return a certificate" --as h2 hello
expect_rejected other-ca "unable to get local issuer certificate" \
	--cert "$bad/other/h2.pem" --key "$bad/other/h2.key" --as h2 hello
expect_rejected expired "certificate has expired" \
	--cert "$bad/old/h2.pem" --key "$bad/old/h2.key" --as h2 hello
expect_rejected not-a-peer "host intruder is not a peer\|from host intruder: not in" \
	--cert "$bad/old/intruder.pem" --key "$bad/old/intruder.key" --as intruder hello
expect_rejected lying-hello 'hello names host "not-my-name"' \
	--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 lying-hello

# Issue 9 #12: a certificate from the cluster CA whose CN says h2 but whose
# subjectAltName says another host.  Accept used to trust the CN; both
# sides now take the one subjectAltName, and a CN must match it exactly.
openssl ecparam -name prime256v1 -genkey -noout -out "$bad/cnsan.key" 2>/dev/null
openssl req -new -key "$bad/cnsan.key" -subj /CN=h2 -out "$bad/cnsan.csr" 2>/dev/null
printf 'subjectAltName=DNS:h9\nextendedKeyUsage=serverAuth,clientAuth\n' > "$bad/cnsan.ext"
openssl x509 -req -in "$bad/cnsan.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
	-CAcreateserial -days 30 -extfile "$bad/cnsan.ext" -out "$bad/cnsan.pem" 2>/dev/null
expect_rejected cn-not-san "common name differs from its subjectAltName DNS:h9" \
	--cert "$bad/cnsan.pem" --key "$bad/cnsan.key" --as h2 hello

# Issue 9 #12: a host key that group or others may read is refused at load,
# naming the file and its mode.
etc3="$(th_dir h3)/etc"
chmod 640 "$etc3/h3.key"
set +e
th_exec h3 "$TERN_BUILDDIR/ternd" -F -f "$etc3/ternd.conf" > "$TH_ROOT/keymode.out" 2>&1
rc=$?
set -e
chmod 600 "$etc3/h3.key"
[ $rc != 0 ] || fail "ternd started with a key of mode 0640"
grep -q "$etc3/h3.key: the host key is open to group or others (mode 0640)" \
	"$TH_ROOT/keymode.out" || fail "key mode: $(cat "$TH_ROOT/keymode.out")"
echo "ok: a host key of mode 0640 refused"

# Plaintext: no TLS at all.
set +e
th_exec h2 "$RAW" --connect "$h1addr" --plain --as h2 --timeout 3000 plain-hello \
	> "$TH_ROOT/plain.out" 2>&1
set -e
grep -q "^closed" "$TH_ROOT/plain.out" || fail "plaintext client: $(cat "$TH_ROOT/plain.out")"
# ternd logs the refusal once the connection is fully closed: may lag.
for ((i = 0; i < 30; i++)); do
	grep -q "wrong version number\|packet length too long\|http request" "$log" && break
	sleep 0.1
done
grep -q "wrong version number\|packet length too long\|http request" "$log" ||
	fail "plaintext client: no TLS error logged"
echo "ok: plaintext client refused"

# A server at h2's address whose certificate names h3: h1 must refuse it.
conf2="$(th_dir h2)/etc/impostor.conf"
sed -e 's/^host_name = .*/host_name = "h3"/' \
    -e "s|^cert_file = .*|cert_file = \"$pki/hosts/h3/h3.pem\"|" \
    -e "s|^key_file = .*|key_file = \"$pki/hosts/h3/h3.key\"|" \
    -e '/^peers/d' "$(th_dir h2)/etc/ternd.conf" > "$conf2"
echo 'peers = [ "h1@'"$(th_addr h1)"':7480" ]' >> "$conf2"
th_spawn h2 "$(th_dir h2)/log/impostor.log" "$TERN_BUILDDIR/ternd" -F -f "$conf2" >/dev/null
for ((i = 0; i < 100; i++)); do
	"$CTL" -s "$(th_root_path h1 /run/tern/ternd.sock)" hosts --json |
		grep -q '"name":"h2"[^}]*hostname mismatch' && break
	sleep 0.1
done
"$CTL" -s "$(th_root_path h1 /run/tern/ternd.sock)" hosts
"$CTL" -s "$(th_root_path h1 /run/tern/ternd.sock)" hosts --json |
	grep -q '"name":"h2"[^}]*"state":"down"[^}]*hostname mismatch' ||
	fail "h1 did not refuse a server whose certificate names h3"
grep -q "authenticated" "$(th_dir h2)/log/impostor.log" &&
	fail "the impostor authenticated"
echo "ok: server with another host's certificate refused"

# Through all of it h1 kept serving.
"$CTL" -s "$(th_root_path h1 /run/tern/ternd.sock)" status >/dev/null ||
	fail "h1 stopped serving"
# Every ternd stops cleanly on SIGTERM, with no sanitizer report.
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "tls-negative: ok"
