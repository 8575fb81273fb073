#!/usr/bin/env bash
# Before it answers READY, a migration's target asks its CRIU whether it
# can run processes dumped on the source's CPU (the offer carries the
# source's cpuinfo.img).  A normal h1 -> h2 migration passes the check.
# Then h3, played by rawpeer with h3's real certificate, offers h2 a
# container from a CPU claiming features this one lacks (this machine's
# own cpuinfo.img with bits set in its capability words), a garbage CPU
# description and none at all: h2 refuses each, saying why, keeps no
# instance, and goes on working.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
CRIU=${TERN_CRIU:-/opt/tern/criu/bin/criu}
[ -x "$CRIU" ] || { echo "no CRIU at $CRIU"; exit 77; }
trap th_teardown EXIT

RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 3
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"
log2=$(cl_log h2)

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 16 /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"

# Same CPU on both sides: the check passes and says so on the target.
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"
cl_ctl h1 migrate mc --to h2
grep -q "CPU check passed for mc from h1" "$log2" ||
    fail "no CPU check in h2's log"
[ "$(inst_field h2 mc state)" = running ] || fail "mc is not running on h2"
inst_verify h2 mc "$state" "moved to h2 after the CPU check"
cl_ctl h2 destroy mc >/dev/null
# CRIU's scratch files are gone (h1 dumped at startup, h2 checked).
for h in h1 h2; do
	left=$(th_exec $h find /var/lib/tern -name 'cpuinfo*')
	[ -z "$left" ] || fail "$h left $left"
done

# This machine's CPU, as CRIU describes it.
mkdir -p "$TH_ROOT/cpu"
"$CRIU" cpuinfo dump -D "$TH_ROOT/cpu" -o dump.log ||
    fail "criu cpuinfo dump: $(cat "$TH_ROOT/cpu/dump.log")"
img=$TH_ROOT/cpu/cpuinfo.img
# Word 9 is CPUID 7.0 EBX; bits 26 and 27 are avx512pf and avx512er,
# which only Xeon Phi had.
if grep -qw 'avx512er\|avx512pf' /proc/cpuinfo; then
	echo "this CPU has avx512er/avx512pf: cannot fake a richer one"
	exit 77
fi

pki="$TH_ROOT/pki"
offer() {	# NAME RAWPEER-ARGS...: offer h2 a container as h3, print the answer
	local name=$1
	shift
	th_exec h3 "$RAW" --connect "$(th_addr h2):7480" --ca "$pki/ca.pem" \
		--cert "$pki/hosts/h3/h3.pem" --key "$pki/hosts/h3/h3.key" --as h3 \
		--timeout 10000 --spec "$TH_ROOT/mc.json" --name "$name" "$@" \
		migrate-offer
}
nothing_on_h2() {	# NAME
	[ -z "$(inst_field h2 "$1" state)" ] ||
	    fail "h2 lists $1 as $(inst_field h2 "$1" state) after refusing it"
	[ -z "$(th_exec h2 ls /var/lib/tern/instances/"$1" 2>/dev/null)" ] ||
	    fail "h2 kept /var/lib/tern/instances/$1"
}

# Our own image, unmodified, through rawpeer: accepted (and called off).
out=$(offer same --cpuinfo "$img") || fail "rawpeer: $out"
echo "same CPU: $out"
grep -q "^ready" <<<"$out" || fail "h2 refused this very CPU: $out"
grep -q "CPU check passed for same from h3" "$log2" || fail "no pass for same"

# A CPU with more instructions than this one.
out=$(offer richer --cpuinfo "$img" --cpu-set 9:0x0c000000) ||
    fail "rawpeer: $out"
echo "richer CPU: $out"
grep -q "h2 cannot run h3's processes: CPU lacks avx512pf avx512er (CRIU cpuinfo check" <<<"$out" ||
    fail "no CPU refusal naming the features: $out"
grep -q "cannot run h3's processes: CPU lacks" "$log2" || fail "h2 did not log the refusal"
nothing_on_h2 richer

# Garbage instead of a cpuinfo.img.
head -c 300 /dev/urandom > "$TH_ROOT/cpu/garbage.img"
out=$(offer garbage --cpuinfo "$TH_ROOT/cpu/garbage.img") || fail "rawpeer: $out"
echo "garbage: $out"
grep -q "h2 cannot run h3's processes: CRIU cpuinfo check: " <<<"$out" ||
    fail "no clear refusal of a garbage CPU description: $out"
nothing_on_h2 garbage

# Far too large to be one.
head -c 100000 /dev/zero > "$TH_ROOT/cpu/huge.img"
out=$(offer huge --cpuinfo "$TH_ROOT/cpu/huge.img") || fail "rawpeer: $out"
echo "huge: $out"
grep -q "100000 bytes is not a CRIU cpuinfo image" <<<"$out" ||
    fail "no refusal of a huge CPU description: $out"
nothing_on_h2 huge

# No CPU description at all (an older peer).
out=$(offer none) || fail "rawpeer: $out"
echo "none: $out"
grep -q "does not describe h3's CPU" <<<"$out" ||
    fail "no refusal of an offer without cpuinfo: $out"
nothing_on_h2 none

# h2 still works: mc moves there again.
cl_ctl h2 status >/dev/null || fail "h2 stopped serving"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start again"
cl_ctl h1 migrate mc --to h2
inst_verify h2 mc "$state" "moved to h2 after the refusals"
cl_ctl h2 destroy mc >/dev/null
[ -z "$(th_exec h2 ls /var/lib/tern/instances/)" ] ||
    fail "h2 kept something: $(th_exec h2 ls /var/lib/tern/instances/)"
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-cpu: ok"
