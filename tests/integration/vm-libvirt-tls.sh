#!/usr/bin/env bash
# libvirt's own TLS between two libvirt test hosts (tests/lib/libvirt-
# tls.sh): the baseline bench/vm-migrate.sh measures must really encrypt.
#
#  - libvirtd listens for TLS on the host's test address only, and on no
#    plain TCP port; a client with a certificate of the test CA gets in
#    (virsh over qemu+tls:// reaches the right host), one without a
#    certificate or with one of another CA is refused by libvirtd.
#  - The QEMU migration stream, seen on the wire: a relay on the source
#    host, between the source QEMU and the target (--migrateuri), keeps
#    the stream's first 64 KiB.  Without --tls it begins with QEMU's
#    "QEVM" magic (so the check sees a plain stream when there is one);
#    with --tls it begins with a TLS handshake record and "QEVM" appears
#    nowhere in it.
#  - With migrate_tls_force = 1 on the target, a migration without --tls
#    is refused and the guest stays on the source, running; with --tls it
#    moves.
#  - The guest checks its memory throughout: ok lines, growing counters,
#    no CORRUPT, across every host it ran on.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/libvirt-tls.sh"
th_check || exit 77
lv_check || exit 77
lv_tls_check || exit 77
command -v python3 >/dev/null || { echo "no python3 (the relay)" >&2; exit 77; }
trap th_teardown EXIT

RELAY_PORT=49300	# outside libvirt's migration port range (49152-49215)

# The relay, python3 -c "$relay_py" LADDR LPORT DADDR DPORT CAPTURE:
# accepts one connection, forwards it both ways, writes the first 64 KiB
# from the client to CAPTURE and, at the end, "done <bytes up> <bytes
# down>".
relay_py='
import socket, sys, threading
laddr, lport, daddr, dport, cap = sys.argv[1:6]
LIMIT = 65536
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((laddr, int(lport)))
ls.listen(1)
print("listening", flush=True)
a, _ = ls.accept()
ls.close()
b = socket.create_connection((daddr, int(dport)))
n = [0, 0]
def pump(src, dst, i, f):
    while True:
        d = src.recv(65536)
        if not d:
            break
        if f is not None and n[i] < LIMIT:
            f.write(d[:LIMIT - n[i]])
            f.flush()
        n[i] += len(d)
        dst.sendall(d)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
with open(cap, "wb") as f:
    t = threading.Thread(target=pump, args=(b, a, 1, None))
    t.start()
    pump(a, b, 0, f)
    t.join()
print("done", n[0], n[1], flush=True)
'

# relay_start HOST TO NAME: a relay inside HOST on its address,
# RELAY_PORT, to TO's address, same port; capture in $TH_ROOT/NAME.cap.
relay_start() {
	local log=$TH_ROOT/$3.relay.log
	th_spawn "$1" "$log" python3 -c "$relay_py" "$(th_addr "$1")" \
	    $RELAY_PORT "$(th_addr "$2")" $RELAY_PORT "$TH_ROOT/$3.cap" \
	    >/dev/null || fail "cannot start the relay in $1"
	lv_wait_log "$log" '^listening' 10 || fail "the relay in $1 does not listen"
}
# relay_done NAME: wait until the relay has seen both ends close; print
# the bytes it forwarded from the source.
relay_done() {
	local log=$TH_ROOT/$1.relay.log
	lv_wait_log "$log" '^done ' 20 || fail "relay $1 did not finish: $(cat "$log")"
	sed -n 's/^done \([0-9]*\) .*/\1/p' "$log"
}
# first_bytes FILE N: the first N bytes of FILE in hex, no spaces.
first_bytes() { od -An -tx1 -N"$2" "$1" | tr -d ' \n'; }
has_qevm() { grep -q QEVM "$1"; }

lv_guest_dir >/dev/null || fail "cannot build the test guest"
th_setup 2
a1=$(th_addr h1)
a2=$(th_addr h2)
lv_tls_setup h1 h2 || fail "lv_tls_setup"
for h in h1 h2; do
	lv_start $h || fail "libvirtd did not start on $h"
done

# --- libvirtd's TLS listener -------------------------------------------------
for h in h1 h2; do
	tcp=$(th_exec $h ss -Hltn | awk '{print $4}' | sort | tr '\n' ' ')
	[ "$tcp" = "$(th_addr $h):16514 " ] ||
		fail "$h listens on '$tcp', not on its test address's TLS port only"
done
u2=$(lv_tls_virsh h1 h2 capabilities | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' |
	head -n 1) || fail "virsh over qemu+tls:// from h1 to h2 failed"
[ "$u2" = "$(cat "$TH_ROOT/h2/libvirt/host_uuid")" ] ||
	fail "qemu+tls:// to h2 reached host UUID '$u2', not h2's"
echo "qemu+tls:// from h1 reaches h2 (host UUID $u2)"

# The TLS listener checks the client's certificate: after the handshake
# libvirtd sends one byte (1) to a client it accepts and hangs up on one
# it refuses.  A client that trusts the test CA connects from h1 with
# h1's certificate, with none, and with one of another CA.
tls_hello='
import socket, ssl, sys
addr, port, ca, cert, key = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
if cert:
    ctx.load_cert_chain(cert, key)
try:
    s = ctx.wrap_socket(socket.create_connection((addr, int(port)), timeout=10),
                        server_hostname=addr)
    b = s.recv(1)
except (OSError, ssl.SSLError) as e:
    b = repr(e).encode()
print("accepted" if b == b"\x01" else "refused %r" % b)
'
mkdir -p "$TH_ROOT/othercert"
(
	cd "$TH_ROOT/othercert"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -keyout ca-key.pem \
	    -out ca.pem -subj "/CN=another CA" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign" &&
	openssl req -new -newkey rsa:2048 -nodes -keyout key.pem \
	    -out req.pem -subj "/O=tern test/CN=h1" &&
	printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
	    'keyUsage = critical, digitalSignature, keyEncipherment' \
	    'extendedKeyUsage = clientAuth' >ext.cnf &&
	openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem \
	    -set_serial 7 -days 1 -extfile ext.cnf -out cert.pem
) >"$TH_ROOT/othercert.log" 2>&1 || fail "openssl: $(cat "$TH_ROOT/othercert.log")"
ca=$(lv_tls_dir h1)/libvirt/cacert.pem
for who in h1 none other; do
	case $who in
	h1) cert=$(lv_tls_dir h1)/cert.pem key=$(lv_tls_dir h1)/key.pem ;;
	none) cert='' key='' ;;
	other) cert=$TH_ROOT/othercert/cert.pem key=$TH_ROOT/othercert/key.pem ;;
	esac
	r=$(th_exec h1 python3 -c "$tls_hello" "$a2" 16514 "$ca" "$cert" "$key")
	echo "TLS client with certificate '$who': $r"
	case $who:$r in
	h1:accepted | none:refused* | other:refused*) ;;
	*) fail "h2's libvirtd: client certificate '$who' $r" ;;
	esac
done

# --- the guest on h1 -----------------------------------------------------------
lv_domain_xml vm1 128 "guestcheck.rate=16" >"$TH_ROOT/vm1.xml"
log1=$(lv_serial_log h1 vm1)
log2=$(lv_serial_log h2 vm1)
console=$TH_ROOT/vm1.console
: >"$console"
lv_virsh h1 create "$TH_ROOT/vm1.xml" >/dev/null || fail "cannot start vm1"
lv_wait_ok "$log1" 2 90 || fail "vm1 did not boot"

# moved FROM_LOG TO_LOG: vm1 went on on the target (2 ok lines, larger
# counter); the source's log joins the console.
moved() {
	local before after
	before=$(lv_last_counter "$1") || fail "no ok line in $1"
	lv_wait_ok "$2" 2 30 || fail "vm1 does not check on the target"
	after=$(lv_last_counter "$2")
	[ "$after" -gt "$before" ] || fail "counter $after after, $before before"
	cat "$1" >>"$console"
}

# --- negative control: a plain stream through the relay shows QEVM --------------
relay_start h1 h2 plain
lv_virsh h1 migrate --live --p2p --migrateuri "tcp://$a1:$RELAY_PORT" vm1 \
	"$(lv_tls_uri h2 h1)" || fail "plain migration h1 -> h2 failed"
bytes=$(relay_done plain)
moved "$log1" "$log2"
head=$(first_bytes "$TH_ROOT/plain.cap" 4)
echo "without --tls: $bytes bytes through the relay, starting $head"
[ "$head" = 5145564d ] || fail "the plain stream does not start with QEVM: $head"
[ "$bytes" -gt $((32 << 20)) ] || fail "only $bytes bytes went through the relay"
: >"$log1"
lv_virsh h2 migrate --live --p2p --tls vm1 "$(lv_tls_uri h1 h2)" ||
	fail "migration h2 -> h1 (--tls) failed"
moved "$log2" "$log1"

# --- h2 requires TLS ------------------------------------------------------------
lv_tls_setup --force h2 || fail "lv_tls_setup --force h2"
lv_stop h2 || fail "lv_stop h2"
lv_start h2 || fail "libvirtd did not start again on h2"
grep -q '^migrate_tls_force = 1$' "$TH_ROOT/h2/libvirt/etc/qemu.conf" ||
	fail "h2's qemu.conf lacks migrate_tls_force = 1"
: >"$log2"
if out=$(lv_virsh h1 migrate --live --p2p vm1 "$(lv_tls_uri h2 h1)" 2>&1); then
	fail "h2 accepted a migration without --tls"
fi
echo "without --tls, refused: $out"
grep -q 'VIR_MIGRATE_TLS' <<<"$out" || fail "refused for another reason: $out"
[ "$(lv_virsh h1 domstate vm1)" = running ] || fail "vm1 does not run on h1"
! lv_virsh h2 dominfo vm1 >/dev/null 2>&1 || fail "vm1 is known on h2"
n=$(lv_ok_lines "$log1")
lv_wait_ok "$log1" $((n + 1)) 10 || fail "vm1 stopped checking on h1"

relay_start h1 h2 tls
lv_virsh h1 migrate --live --p2p --tls --migrateuri "tcp://$a1:$RELAY_PORT" \
	--tls-destination "$a2" vm1 "$(lv_tls_uri h2 h1)" ||
	fail "TLS migration h1 -> h2 failed"
bytes=$(relay_done tls)
moved "$log1" "$log2"
head=$(first_bytes "$TH_ROOT/tls.cap" 2)
echo "with --tls: $bytes bytes through the relay, starting $(first_bytes "$TH_ROOT/tls.cap" 6)"
[ "$head" = 1603 ] || fail "the --tls stream does not start with a TLS handshake"
! has_qevm "$TH_ROOT/tls.cap" || fail "QEVM in the --tls stream: not encrypted"
[ "$bytes" -gt $((32 << 20)) ] || fail "only $bytes bytes went through the relay"
[ "$(lv_virsh h2 domstate vm1)" = running ] || fail "vm1 does not run on h2"

sleep 1
cat "$log2" >>"$console"
v=$(lv_guest_verify "$console") || fail "vm1 across its migrations: $v"
echo "vm1 across h1 -> h2 -> h1 -> h2: $v"
echo PASS
