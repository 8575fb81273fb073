#!/usr/bin/env bash
# Issue 9 #1: a peer's migration offer names where the target puts the
# container's rootfs.  h2, played by rawpeer with h2's real certificate,
# offers h1 containers whose root.path climbs out with "..", lies outside
# rootfs_allowed_prefixes, or escapes through a symlink inside an allowed
# directory: h1 refuses each, saying why, creates nothing, and still takes
# a sane offer.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
CRIU=${TERN_CRIU:-/opt/tern/criu/bin/criu}
[ -x "$CRIU" ] || { echo "no CRIU at $CRIU"; exit 77; }
trap th_teardown EXIT

RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 2
cl_pki
cl_conf h1
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"
pki="$TH_ROOT/pki"
log1=$(cl_log h1)
# This machine's CPU as CRIU describes it: every offer passes the CPU check.
mkdir -p "$TH_ROOT/cpu"
"$CRIU" cpuinfo dump -D "$TH_ROOT/cpu" -o dump.log ||
	fail "criu cpuinfo dump: $(cat "$TH_ROOT/cpu/dump.log")"

offer() {	# NAME ROOT [ARGS]: offer h1 a container NAME with root.path ROOT, as h2
	local name=$1 root=$2
	shift 2
	printf '{"process": {"args": ["/bin/sh"]}, "root": {"path": "%s"}}\n' \
		"$root" > "$TH_ROOT/$name.json"
	th_exec h2 "$RAW" --connect "$(th_addr h1):7480" --ca "$pki/ca.pem" \
		--cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" --as h2 \
		--timeout 10000 --spec "$TH_ROOT/$name.json" --name "$name" \
		--cpuinfo "$TH_ROOT/cpu/cpuinfo.img" --rootfs-copy "$@" migrate-offer
}
refused() {	# NAME ROOT WHY
	local out
	out=$(offer "$1" "$2") || fail "rawpeer: $out"
	echo "$1 ($2): $out"
	grep -q "^ready" <<<"$out" && fail "h1 took a rootfs at $2"
	grep -qF -- "$3" <<<"$out" || fail "$1: no \"$3\" in the refusal: $out"
	[ -z "$(inst_field h1 "$1" state)" ] || fail "h1 lists $1 after refusing it"
	[ -z "$(th_exec h1 ls /var/lib/tern/instances/"$1" 2>/dev/null)" ] ||
		fail "h1 kept /var/lib/tern/instances/$1"
}

# The report's case: the tree would be written into /etc/cron.d.
refused dotdot /x/nonexist/../etc/cron.d 'has a ".." component'
refused dotdot-root /.. 'has a ".." component'
# Not below any allowed prefix.
refused outside /etc/evil "is not below any of rootfs_allowed_prefixes"
# Inside an allowed directory, but a symlink there leads out.
ln -s /etc "$TH_ROOT/esc"
refused symlink "$TH_ROOT/esc/evil" "(really /etc/evil) is not below any"
# An allowed prefix itself is no rootfs.
refused prefix "$TH_ROOT" "is not below any"
[ ! -e /etc/evil ] || fail "/etc/evil exists"
grep -q "has a \"..\" component" "$log1" || fail "h1 did not log the refusal"

# A sane offer is still taken (and called off by rawpeer).
out=$(offer fine "$TH_ROOT/fine/rootfs") || fail "rawpeer: $out"
echo "fine: $out"
grep -q "^ready" <<<"$out" || fail "h1 refused a rootfs below an allowed prefix: $out"
cl_ctl h1 status > /dev/null || fail "h1 stopped serving"
cl_stop_all || fail "ternd did not stop cleanly (see its log)"
echo "offer-paths: ok"
