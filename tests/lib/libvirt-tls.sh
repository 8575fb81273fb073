# libvirt-tls.sh: libvirt's own TLS on the libvirt test hosts, the way an
# operator encrypts a migration without tern: the libvirt control
# connection over qemu+tls:// and QEMU's native TLS for the migration
# stream (`virsh migrate --tls`, VIR_MIGRATE_TLS).  Source it after
# testhost.sh and libvirt.sh:
#
#	. "$TERN_SRCDIR/tests/lib/testhost.sh"
#	. "$TERN_SRCDIR/tests/lib/libvirt.sh"
#	. "$TERN_SRCDIR/tests/lib/libvirt-tls.sh"
#	lv_check && lv_tls_check || exit 77
#	th_setup 2
#	lv_tls_setup h1 h2		# before lv_start (or lv_stop; lv_start)
#	lv_start h1 && lv_start h2
#	lv_virsh h1 migrate --live --p2p --tls vm1 "$(lv_tls_uri h2 h1)"
#
# The certificates come from a test CA made with openssl for this run
# ($TH_ROOT/tls-ca, its key never enters a host).  Each host gets one
# RSA key and one certificate (CN = the host's name, subjectAltName = its
# test address and name, extended key usage server + client), laid out
# in $TH_ROOT/<host>/tls/ (outside any host's /etc/pki, which the test
# hosts share with the machine):
#	libvirt/  cacert.pem servercert.pem serverkey.pem clientcert.pem
#	          clientkey.pem: libvirtd's TLS listener (libvirtd.conf
#	          ca_file, cert_file, key_file) and, as pkipath= of a
#	          qemu+tls:// URI, the host's identity as a client (the source
#	          libvirtd of a --p2p migration connects to the target's).
#	qemu/     ca-cert.pem server-cert.pem server-key.pem client-cert.pem
#	          client-key.pem: qemu.conf default_tls_x509_cert_dir and
#	          migrate_tls_x509_cert_dir, with migrate_tls_x509_verify = 1:
#	          the target QEMU asks for the source's certificate, the
#	          source QEMU checks the target's against its address.
#
# lv_tls_setup registers a hook (LV_CONF_HOOKS, tests/lib/libvirt.sh)
# that, in the libvirtd.conf lv_start writes for such a host, turns on
# listen_tls on the host's test address only (port 16514; listen_tcp
# stays off: no unencrypted TCP listener), with the files above and
# auth_tls = "none" (the client certificate is the authentication), and
# adds the TLS lines to qemu.conf.  lv_start then runs libvirtd --listen.
#
# Functions:
#	lv_tls_check             openssl is there (else says so); `|| exit 77`
#	lv_tls_setup [--force] HOST...
#	                         CA (once), certificates and configuration for
#	                         each HOST; --force adds migrate_tls_force = 1
#	                         (the host's libvirt refuses a migration
#	                         without --tls); takes effect at the next
#	                         lv_start HOST
#	lv_tls_uri HOST FROM     qemu+tls://ADDR/system?pkipath=... : HOST's
#	                         libvirtd over TLS, as seen by a client on
#	                         test host FROM (with FROM's certificate);
#	                         only reachable from inside the test network
#	lv_tls_virsh FROM HOST ARGS...
#	                         virsh inside FROM, connected to HOST over TLS
#	lv_tls_dir HOST          $TH_ROOT/HOST/tls
#
# Functions return non-zero and say why on stderr ("libvirt-tls: ..."); they
# never exit the caller's shell.  LV_TLS_PORT (16514) is libvirtd's port.

LV_TLS_PORT=${LV_TLS_PORT:-16514}

if ! declare -F lv_start >/dev/null; then
	echo "libvirt-tls: source tests/lib/libvirt.sh before libvirt-tls.sh" >&2
	return 1
fi

lv_tls__err() {
	echo "libvirt-tls: $*" >&2
	return 1
}

lv_tls_dir() {
	local d
	d=$(th_dir "${1:-}") || return 1
	echo "$d/tls"
}

# lv_tls__ca: the run's test CA in $TH_ROOT/tls-ca (made once).
lv_tls__ca() {
	local ca=$TH_ROOT/tls-ca
	[ -s "$ca/ca-cert.pem" ] && return 0
	mkdir -p "$ca" && chmod 700 "$ca" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 \
	    -keyout "$ca/ca-key.pem" -out "$ca/ca-cert.pem" \
	    -subj "/O=tern test/CN=tern test libvirt CA $TH_NET" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" \
	    >"$ca/openssl.log" 2>&1 ||
	    lv_tls__err "cannot make the test CA; $ca/openssl.log says:" \
		"$(tail -n 5 "$ca/openssl.log")" || return 1
}

# lv_tls__cert HOST: HOST's key and certificate (made once) in its tls/
# directory, laid out for libvirtd and for QEMU.
lv_tls__cert() {
	local host=$1 ca=$TH_ROOT/tls-ca d addr
	d=$(lv_tls_dir "$host") || return 1
	addr=$(th_addr "$host") || return 1
	if [ ! -s "$d/cert.pem" ]; then
		mkdir -p "$d" && chmod 700 "$d" || return 1
		cat >"$d/ext.cnf" <<EOF || return 1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:$addr, DNS:$host
EOF
		{
			openssl req -new -newkey rsa:2048 -nodes -sha256 \
			    -keyout "$d/key.pem" -out "$d/req.pem" \
			    -subj "/O=tern test/CN=$host" &&
			    openssl x509 -req -in "$d/req.pem" -sha256 -days 2 \
				-CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
				-set_serial "0x$(od -An -N8 -tx1 /dev/urandom |
				    tr -d ' \n')" \
				-extfile "$d/ext.cnf" -out "$d/cert.pem"
		} >"$d/openssl.log" 2>&1 ||
		    lv_tls__err "cannot make the certificate of '$host';" \
			"$d/openssl.log says: $(tail -n 5 "$d/openssl.log")" ||
		    return 1
		rm -f "$d/req.pem"
	fi
	mkdir -p "$d/libvirt" "$d/qemu" || return 1
	cp "$ca/ca-cert.pem" "$d/libvirt/cacert.pem" &&
	    cp "$d/cert.pem" "$d/libvirt/servercert.pem" &&
	    cp "$d/cert.pem" "$d/libvirt/clientcert.pem" &&
	    cp "$d/key.pem" "$d/libvirt/serverkey.pem" &&
	    cp "$d/key.pem" "$d/libvirt/clientkey.pem" &&
	    cp "$ca/ca-cert.pem" "$d/qemu/ca-cert.pem" &&
	    cp "$d/cert.pem" "$d/qemu/server-cert.pem" &&
	    cp "$d/cert.pem" "$d/qemu/client-cert.pem" &&
	    cp "$d/key.pem" "$d/qemu/server-key.pem" &&
	    cp "$d/key.pem" "$d/qemu/client-key.pem" &&
	    chmod 600 "$d"/libvirt/*key.pem "$d"/qemu/*key.pem || return 1
}

# lv_tls__hook HOST ETC: LV_CONF_HOOKS entry; turns TLS on in the
# configuration lv_start has just written for HOST, if lv_tls_setup was
# called for it.
lv_tls__hook() {
	local host=$1 etc=$2 d addr force
	d=$(lv_tls_dir "$host") || return 1
	[ -f "$d/enabled" ] || return 0
	addr=$(th_addr "$host") || return 1
	force=$(cat "$d/enabled")
	# libvirt's configuration parser keeps the first of two equal keys:
	# the listen_tls = 0 written by libvirt.sh goes, not overridden.
	sed -i -e '/^[[:space:]]*listen_tls[[:space:]]*=/d' \
	    "$etc/libvirtd.conf" || return 1
	cat >>"$etc/libvirtd.conf" <<EOF || return 1
# Added by tests/lib/libvirt-tls.sh: libvirt's TLS listener on the test
# address only; the client's certificate from the test CA authenticates.
listen_tls = 1
listen_addr = "$addr"
tls_port = "$LV_TLS_PORT"
auth_tls = "none"
ca_file = "$d/libvirt/cacert.pem"
cert_file = "$d/libvirt/servercert.pem"
key_file = "$d/libvirt/serverkey.pem"
EOF
	cat >>"$etc/qemu.conf" <<EOF || return 1
# Added by tests/lib/libvirt-tls.sh: QEMU's native TLS for migrations
# with --tls, both ends showing a certificate of the test CA.
default_tls_x509_cert_dir = "$d/qemu"
default_tls_x509_verify = 1
migrate_tls_x509_cert_dir = "$d/qemu"
migrate_tls_x509_verify = 1
migrate_tls_force = $force
EOF
}

# --- public functions ---------------------------------------------------------

# lv_tls_check: true if the certificates can be made here (openssl).
lv_tls_check() {
	command -v openssl >/dev/null 2>&1 ||
	    lv_tls__err "missing 'openssl' (./quickstart deps installs it)"
}

# lv_tls_setup [--force] HOST...: see the header.
lv_tls_setup() {
	local force=0 host d
	if [ "${1:-}" = --force ]; then
		force=1
		shift
	fi
	[ $# -gt 0 ] || lv_tls__err "usage: lv_tls_setup [--force] HOST..." ||
	    return 1
	lv_tls_check || return 1
	lv_tls__ca || return 1
	for host in "$@"; do
		th_addr "$host" >/dev/null || return 1
		lv_tls__cert "$host" || return 1
		d=$(lv_tls_dir "$host") || return 1
		echo "$force" >"$d/enabled" || return 1
	done
	case " ${LV_CONF_HOOKS:-} " in
	*" lv_tls__hook "*) ;;
	*) LV_CONF_HOOKS="${LV_CONF_HOOKS:+$LV_CONF_HOOKS }lv_tls__hook" ;;
	esac
}

# lv_tls_uri HOST FROM: see the header.
lv_tls_uri() {
	local host=${1:-} from=${2:-} addr d
	[ -n "$from" ] || lv_tls__err "usage: lv_tls_uri HOST FROM" || return 1
	addr=$(th_addr "$host") || return 1
	d=$(lv_tls_dir "$from") || return 1
	[ -s "$d/libvirt/clientcert.pem" ] ||
	    lv_tls__err "'$from' has no certificate (lv_tls_setup $from)" ||
	    return 1
	echo "qemu+tls://$addr:$LV_TLS_PORT/system?pkipath=$d/libvirt"
}

# lv_tls_virsh FROM HOST ARGS...: see the header.
lv_tls_virsh() {
	local from=${1:-} host=${2:-} uri
	uri=$(lv_tls_uri "$host" "$from") || return 1
	shift 2
	th_exec "$from" virsh -q -c "$uri" "$@"
}
