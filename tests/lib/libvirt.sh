# libvirt.sh: a libvirtd of its own on each test host, and the test VM.
#
# Source it after testhost.sh, before th_setup:
#
#	. "$TERN_SRCDIR/tests/lib/testhost.sh"
#	. "$TERN_SRCDIR/tests/lib/libvirt.sh"
#	th_check || exit 77
#	lv_check || exit 77		# skip when libvirt/QEMU are missing
#	trap th_teardown EXIT
#	th_setup 2
#	lv_start h1 && lv_start h2
#	lv_domain_xml vm1 >"$TH_ROOT/vm1.xml"
#	lv_virsh h1 create "$TH_ROOT/vm1.xml"
#	lv_wait_log "$(lv_serial_log h1 vm1)" 'guestcheck check=.* ok' 60
#	lv_virsh h1 migrate --live --p2p vm1 "$(lv_uri h2)"
#
# Sourcing appends to TH_BINDS, so that every host gets its own copies of
# libvirt's directories (SUBDIR of $TH_ROOT/<host>/ -> TARGET inside):
#	libvirt/etc   -> /etc/libvirt         libvirtd.conf, qemu.conf, ...
#	libvirt/lib   -> /var/lib/libvirt     domain state, qemu's runtime
#	libvirt/log   -> /var/log/libvirt     qemu/<dom>.log, <dom>.serial
#	libvirt/cache -> /var/cache/libvirt   QEMU capabilities cache
# The host's /run is already private (testhost.sh), so /run/libvirt (the
# sockets, the pid files, qemu's monitor sockets) is the host's own.
#
# lv_start HOST runs virtlogd and libvirtd (the monolithic daemon: what
# Debian 12's libvirt 9.0 runs by default) in the foreground through
# th_spawn, so they and every QEMU they start are in the host's cgroups
# and th_crash / th_teardown kill them.  QEMU stays in the host's cgroups
# and network namespace: the qemu.conf written here turns off libvirt's
# own cgroups and mount namespace for QEMU.  libvirtd listens only on its
# unix sockets.  Each host has its own host_uuid (libvirt refuses a
# migration between two hosts with the same one), kept in
# $TH_ROOT/<host>/libvirt/host_uuid across restarts.
#
# Migration: the control connection is the destination's unix socket,
# reached through /proc/<holder>/root (lv_uri); the QEMU migration stream
# is TCP over the test network: qemu.conf sets migration_address and
# migration_host to the host's test address, so a plain
# `virsh migrate --live --p2p DOM $(lv_uri h2)` moves the guest from the
# source host's network namespace to the destination's and nothing
# listens outside the test network.
#
# Hook for other libraries (tests/lib/libvirt-tls.sh): LV_CONF_HOOKS
# names functions (space separated) that lv_start calls as FUNC HOST ETC
# after writing the host's configuration into ETC (outside view of its
# /etc/libvirt); they may edit libvirtd.conf and qemu.conf.  libvirtd is
# started with --listen when its libvirtd.conf turns on listen_tls or
# listen_tcp.
#
# Functions return non-zero and say why on stderr ("libvirt: ..."); they
# never exit the caller's shell.  Needs TERN_SRCDIR (and TERN_BUILDDIR for
# the guest).  LV_LOG_LEVEL (default 3, warnings) sets the daemons' log
# level; their logs are $TH_ROOT/<host>/log/{libvirtd,virtlogd}.log.

LV_QEMU=${LV_QEMU:-/usr/bin/qemu-system-x86_64}
LV_LOG_LEVEL=${LV_LOG_LEVEL:-3}
LV_START_TIMEOUT=${LV_START_TIMEOUT:-60}

if ! declare -F th_setup >/dev/null; then
	echo "libvirt: source tests/lib/testhost.sh before libvirt.sh" >&2
	return 1
fi

lv__add_bind() {
	local b
	for b in "${TH_BINDS[@]}"; do
		[ "$b" = "$1" ] && return 0
	done
	TH_BINDS+=("$1")
}
lv__add_bind "libvirt/etc:/etc/libvirt"
lv__add_bind "libvirt/lib:/var/lib/libvirt"
lv__add_bind "libvirt/log:/var/log/libvirt"
lv__add_bind "libvirt/cache:/var/cache/libvirt"

# --- internal helpers ---------------------------------------------------------

lv__err() {
	echo "libvirt: $*" >&2
	return 1
}

# lv__dir HOST: the host's libvirt directory (outside view).
lv__dir() { echo "$TH_ROOT/$1/libvirt"; }

# lv__conf HOST: write the host's /etc/libvirt: the system's files as
# shipped (so drivers find what they expect), without any domain,
# autostart entry or network of the machine's own libvirt, and our
# libvirtd.conf, qemu.conf and virtlogd.conf.
lv__conf() {
	local host=$1 d etc uuid addr hook
	d=$(lv__dir "$host")
	etc=$d/etc
	addr=$(th_addr "$host") || return 1
	mkdir -p "$etc" "$d/lib" "$d/log/qemu" "$d/cache" || return 1
	if [ ! -e "$d/.etc-copied" ]; then
		if [ -d /etc/libvirt ]; then
			cp -a /etc/libvirt/. "$etc/" ||
			    lv__err "cannot copy /etc/libvirt to $etc" || return 1
		fi
		rm -rf "$etc/qemu/autostart" "$etc/qemu/networks/autostart" \
		    "$etc/storage/autostart"
		rm -f "$etc"/qemu/*.xml "$etc"/qemu/networks/*.xml
		: >"$d/.etc-copied"
	fi
	if [ ! -s "$d/host_uuid" ]; then
		cat /proc/sys/kernel/random/uuid >"$d/host_uuid" || return 1
	fi
	uuid=$(cat "$d/host_uuid")
	cat >"$etc/libvirtd.conf" <<EOF || return 1
# Written by tests/lib/libvirt.sh for test host $host.
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$uuid"
log_outputs = "$LV_LOG_LEVEL:stderr"
EOF
	cat >"$etc/qemu.conf" <<EOF || return 1
# Written by tests/lib/libvirt.sh for test host $host.
# QEMU runs as root, in the host's cgroups, mount and network namespaces.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "logd"
# The migration stream goes over the test network only.
migration_address = "$addr"
migration_host = "$addr"
EOF
	cat >"$etc/virtlogd.conf" <<EOF || return 1
# Written by tests/lib/libvirt.sh for test host $host.
log_outputs = "$LV_LOG_LEVEL:stderr"
EOF
	for hook in ${LV_CONF_HOOKS:-}; do
		"$hook" "$host" "$etc" ||
		    lv__err "configuration hook $hook failed for '$host'" ||
		    return 1
	done
}

# lv__check_binds HOST: fail unless the host sees its own libvirt
# directories (libvirt.sh sourced after th_setup made the host: libvirtd
# would use the machine's).
lv__check_binds() {
	local host=$1 pair sub target inside
	for pair in etc:/etc/libvirt lib:/var/lib/libvirt \
	    log:/var/log/libvirt cache:/var/cache/libvirt; do
		sub=${pair%%:*}
		target=${pair#*:}
		inside=$(th_root_path "$host" "$target") || return 1
		[ "$(stat -c %d:%i "$inside" 2>/dev/null)" = \
		    "$(stat -c %d:%i "$(lv__dir "$host")/$sub" 2>/dev/null)" ] ||
		    lv__err "'$host' has no private $target (source libvirt.sh" \
			"before th_setup)" || return 1
	done
}

# lv__pid HOST NAME: print the recorded PID of the host's daemon NAME
# (libvirtd, virtlogd) if it is alive.
lv__pid() {
	local pid
	pid=$(cat "$(lv__dir "$1")/$2.pid" 2>/dev/null) || return 1
	th_pid_alive "$pid" || return 1
	echo "$pid"
}

# lv__seed_caps HOST: give the host a copy of the QEMU capabilities
# another host of this run has probed (same machine, same QEMU binary:
# libvirt checks the binary's ctime and the kernel and reprobes if they
# differ), which saves a probe of several seconds under TCG.
lv__seed_caps() {
	local dst src f
	dst=$(lv__dir "$1")/cache/qemu/capabilities
	compgen -G "$dst/*.xml" >/dev/null && return 0
	for f in "$TH_ROOT"/*/libvirt/cache/qemu/capabilities/*.xml; do
		[ -f "$f" ] || continue
		src=${f%/*}
		mkdir -p "$dst" && cp -p "$src"/*.xml "$dst/" 2>/dev/null
		return 0
	done
	return 0
}

lv__sock_ready() { [ -S "$1" ]; }

lv__virsh_ok() { virsh -q -c "$1" version >/dev/null 2>&1; }

# lv__stop_pid PID: SIGTERM, up to 10 s, then SIGKILL.
lv__stop_pid() {
	local pid=$1
	th_pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	if ! th_wait 10 lv__dead "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		th_wait 5 lv__dead "$pid" ||
		    lv__err "process $pid does not die" || return 1
	fi
}
lv__dead() { ! th_pid_alive "$1"; }

# --- public functions ---------------------------------------------------------

# lv_check: true if libvirt and QEMU can run here (libvirtd, virtlogd,
# virsh, qemu-system-x86_64); otherwise says why.  `lv_check || exit 77`.
lv_check() {
	local c
	for c in libvirtd virtlogd virsh "$LV_QEMU" cpio gcc; do
		command -v "$c" >/dev/null 2>&1 ||
		    lv__err "missing '$c' (./quickstart deps installs" \
			"libvirt-daemon-system, libvirt-clients, qemu-system-x86," \
			"cpio)" ||
		    return 1
	done
	compgen -G '/boot/vmlinuz-*' >/dev/null ||
	    lv__err "no kernel in /boot for the test guest (./quickstart deps" \
		"installs linux-image-amd64)" || return 1
}

# lv_uri HOST: the URI of the host's libvirtd, usable from the root
# namespace and from inside any test host (virsh -c, migrate --p2p).
lv_uri() {
	local sock
	sock=$(th_root_path "${1:-}" /run/libvirt/libvirt-sock) || return 1
	echo "qemu+unix:///system?socket=$sock"
}

# lv_start HOST: configure and start virtlogd and libvirtd inside HOST;
# returns once libvirtd answers on its socket.  Records their PIDs in
# $TH_ROOT/HOST/libvirt/{virtlogd,libvirtd}.pid.
lv_start() {
	local host=${1:-} d log uri sock pid args
	th__host "$host" || return 1
	th_holder "$host" >/dev/null || return 1
	d=$(lv__dir "$host")
	if lv__pid "$host" libvirtd >/dev/null; then
		lv__err "libvirtd of '$host' is already running"
		return 1
	fi
	lv__conf "$host" || return 1
	lv__check_binds "$host" || return 1
	lv__seed_caps "$host"
	log=$TH_ROOT/$host/log

	if ! lv__pid "$host" virtlogd >/dev/null; then
		pid=$(th_spawn "$host" "$log/virtlogd.log" virtlogd) ||
		    lv__err "cannot start virtlogd in '$host'" || return 1
		echo "$pid" >"$d/virtlogd.pid"
		sock=$(th_root_path "$host" /run/libvirt/virtlogd-sock) || return 1
		if ! th_wait 10 lv__sock_ready "$sock"; then
			lv__err "virtlogd of '$host' did not make its socket;" \
			    "$log/virtlogd.log says:"
			tail -n 20 "$log/virtlogd.log" >&2
			return 1
		fi
	fi

	# Without --listen libvirtd ignores listen_tls and listen_tcp.
	args=()
	grep -Eq '^[[:space:]]*listen_(tls|tcp)[[:space:]]*=[[:space:]]*1' \
	    "$d/etc/libvirtd.conf" && args=(--listen)
	pid=$(th_spawn "$host" "$log/libvirtd.log" libvirtd "${args[@]}") ||
	    lv__err "cannot start libvirtd in '$host'" || return 1
	echo "$pid" >"$d/libvirtd.pid"
	uri=$(lv_uri "$host") || return 1
	if ! th_wait "$LV_START_TIMEOUT" lv__virsh_ok "$uri"; then
		lv__err "libvirtd of '$host' does not answer on $uri;" \
		    "$log/libvirtd.log says:"
		tail -n 20 "$log/libvirtd.log" >&2
		return 1
	fi
	# The capabilities need every QEMU binary probed: the cache is then
	# complete, for this host's next start and for lv__seed_caps.
	virsh -q -c "$uri" capabilities >/dev/null ||
	    lv__err "libvirtd of '$host' cannot tell its capabilities" ||
	    return 1
}

# lv_virsh HOST ARGS...: virsh against the host's libvirtd.
lv_virsh() {
	local host=${1:-} uri
	uri=$(lv_uri "$host") || return 1
	shift
	virsh -q -c "$uri" "$@"
}

# lv_pids HOST: print the PIDs of the host's libvirtd, virtlogd and QEMU
# processes (those alive), one a line.
lv_pids() {
	local host=${1:-} d f pid
	th__host "$host" || return 1
	d=$(lv__dir "$host")
	for f in "$d/libvirtd.pid" "$d/virtlogd.pid"; do
		pid=$(cat "$f" 2>/dev/null) || continue
		th_pid_alive "$pid" && echo "$pid"
	done
	# QEMU's pid files: /run/libvirt/qemu/<dom>.pid inside the host.
	d=$(th_root_path "$host" /run/libvirt/qemu 2>/dev/null) || return 0
	for f in "$d"/*.pid; do
		# driver.pid is the QEMU driver's lock, libvirtd's PID.
		[ -f "$f" ] && [ "${f##*/}" != driver.pid ] || continue
		pid=$(cat "$f" 2>/dev/null) || continue
		th_pid_alive "$pid" && echo "$pid"
	done
	return 0
}

# lv_stop HOST: destroy the host's running domains, stop libvirtd and
# virtlogd (SIGTERM, then SIGKILL after 10 s).  Defined domains stay
# defined in $TH_ROOT/HOST/libvirt/etc for the next lv_start.
lv_stop() {
	local host=${1:-} dom pid rc=0 left
	th__host "$host" || return 1
	if pid=$(lv__pid "$host" libvirtd); then
		while IFS= read -r dom; do
			[ -n "$dom" ] || continue
			lv_virsh "$host" destroy "$dom" >/dev/null 2>&1 ||
			    lv__err "cannot destroy '$dom' on '$host'" || rc=1
		done < <(lv_virsh "$host" list --name 2>/dev/null)
		lv__stop_pid "$pid" || rc=1
	fi
	if pid=$(lv__pid "$host" virtlogd); then
		lv__stop_pid "$pid" || rc=1
	fi
	rm -f "$(lv__dir "$host")/libvirtd.pid" "$(lv__dir "$host")/virtlogd.pid"
	left=$(lv_pids "$host" | tr '\n' ' ')
	[ -z "$left" ] || lv__err "'$host' still runs $left" || rc=1
	return $rc
}

# lv_guest_dir: make sure the test guest is built (scripts/build-test-
# guest, offline, a no-op when up to date) and print its directory,
# $TERN_BUILDDIR/guest.
lv_guest_dir() {
	local b=${TERN_BUILDDIR:-} s=${TERN_SRCDIR:-}
	[ -n "$b" ] && [ -n "$s" ] ||
	    lv__err "TERN_SRCDIR and TERN_BUILDDIR must be set" || return 1
	"$s/scripts/build-test-guest" "$b" ||
	    lv__err "cannot build the test guest" || return 1
	echo "$b/guest"
}

# lv_domain_xml NAME [MEMORY_MIB [EXTRA_CMDLINE]]: print the test VM's
# domain XML (tests/guest/domain.xml.in): MEMORY_MIB (default 128) of
# RAM, the guest's area 32 MiB unless EXTRA_CMDLINE says otherwise
# (guestcheck.mib=, .rate=, .period=, .corrupt=: see memcheck-guest.c).
lv_domain_xml() {
	local name=${1:-} mem=${2:-128} extra=${3:-} g cmdline
	case $name in
	"" | *[!A-Za-z0-9_-]*)
		lv__err "bad domain name '$name'"
		return 1 ;;
	esac
	[[ $mem =~ ^[0-9]+$ ]] || lv__err "bad memory size '$mem'" || return 1
	case $extra in
	*[\&\<\>\'\"\|\\]*)
		lv__err "bad characters in the command line '$extra'"
		return 1 ;;
	esac
	g=$(lv_guest_dir) || return 1
	# pti=on: a CR3 write at every kernel entry and exit, so QEMU's TCG
	# drops its TLB all the time, which narrows (does not close) the
	# window in which QEMU 7.2 loses a migrating guest's writes
	# (docs/vms.md).  no_timer_check: on a loaded host TCG delivers the
	# timer too late for the kernel's IO-APIC check, which then panics
	# at boot ("IO-APIC + timer doesn't work!"), as seen under make
	# distcheck beside other test runs.
	cmdline="console=ttyS0 quiet panic=-1 pti=on no_timer_check guestcheck.mib=32${extra:+ $extra}"
	sed -e "s|@NAME@|$name|g" -e "s|@MEMORY_MIB@|$mem|g" \
	    -e "s|@KERNEL@|$g/vmlinuz|g" -e "s|@INITRD@|$g/initrd.img|g" \
	    -e "s|@CMDLINE@|$cmdline|g" \
	    -e "s|@SERIAL_LOG@|/var/log/libvirt/qemu/$name.serial|g" \
	    "$TERN_SRCDIR/tests/guest/domain.xml.in"
}

# lv_pagepat_xml NAME [MEMORY_MIB [REGION_MIB [EXTRA_CMDLINE]]]: the
# page-pattern guest's domain XML (tests/guest/pagepat-guest.c, a
# multiboot kernel, no initrd): MEMORY_MIB (default 64) of RAM, a region
# of REGION_MIB (default 32) at 16 MiB whose pages it increments in a
# loop; EXTRA_CMDLINE e.g. pagepat.lose=P.
lv_pagepat_xml() {
	local name=${1:-} mem=${2:-64} region=${3:-32} extra=${4:-} g
	case $name in
	"" | *[!A-Za-z0-9_-]*)
		lv__err "bad domain name '$name'"
		return 1 ;;
	esac
	[[ $mem =~ ^[0-9]+$ && $region =~ ^[0-9]+$ &&
	    $extra =~ ^[a-z0-9.=\ ]*$ ]] ||
	    lv__err "bad sizes or command line '$mem' '$region' '$extra'" ||
	    return 1
	[ $((16 + region)) -le "$mem" ] ||
	    lv__err "a region of $region MiB at 16 MiB needs more than" \
		"$mem MiB of RAM" || return 1
	g=$(lv_guest_dir) || return 1
	sed -e "s|@NAME@|$name|g" -e "s|@MEMORY_MIB@|$mem|g" \
	    -e "s|@KERNEL@|$g/pagepat.elf|g" -e '/@INITRD@/d' \
	    -e "s|@CMDLINE@|pagepat.mib=$region${extra:+ $extra}|g" \
	    -e "s|@SERIAL_LOG@|/var/log/libvirt/qemu/$name.serial|g" \
	    "$TERN_SRCDIR/tests/guest/domain.xml.in"
}

# lv__pmemsave HOST NAME SIZE: QEMU writes SIZE bytes of NAME's memory
# from the pagepat header on into /var/log/libvirt/qemu/NAME.pagepat
# (QMP: HMP would read the path as an expression, and virsh hides HMP's
# errors).
lv__pmemsave() {
	lv_virsh "$1" qemu-monitor-command "$2" "{\"execute\": \"pmemsave\",
	    \"arguments\": {\"val\": $((0xfff000)), \"size\": $3,
	    \"filename\": \"/var/log/libvirt/qemu/$2.pagepat\"}}" >/dev/null
}

# lv_pagepat_check HOST NAME: pause NAME on HOST, dump its header page
# and region (QEMU's pmemsave, into HOST's /var/log/libvirt/qemu), resume
# it, and check the pattern page by page (pagepat-guest.c says what must
# hold).  Prints "consistent passes=H at=K pages=N" or what is wrong
# ("INCONSISTENT: ..."); fails on the latter.
lv_pagepat_check() {
	local host=${1:-} name=${2:-} dump pages rc=0
	th__host "$host" || return 1
	dump=$(lv__dir "$host")/log/qemu/$name.pagepat
	rm -f "$dump"
	lv_virsh "$host" suspend "$name" >/dev/null ||
	    lv__err "cannot pause '$name' on '$host'" || return 1
	# The header says the region's size; dump it first.
	lv__pmemsave "$host" "$name" 16 || rc=1
	pages=$(python3 -c 'import struct,sys
m, b, n, p = struct.unpack("<4I", open(sys.argv[1], "rb").read(16))
print(n if m == 0x54504750 and b == 0x1000000 else "")' "$dump" 2>/dev/null)
	if [ $rc = 0 ] && [ -n "$pages" ]; then
		lv__pmemsave "$host" "$name" $((4096 + pages * 4096)) || rc=1
	fi
	lv_virsh "$host" resume "$name" >/dev/null ||
	    lv__err "cannot resume '$name' on '$host'" || rc=1
	[ $rc = 0 ] || lv__err "cannot dump '$name' on '$host'" || return 1
	[ -n "$pages" ] ||
	    lv__err "'$name' on '$host': no pagepat header at 0xfff000" ||
	    return 1
	python3 - "$dump" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
magic, base, n, h = struct.unpack_from("<4I", d, 0)
v = [struct.unpack_from("<I", d, 4096 * (1 + i))[0] for i in range(n)]
k = 0
while k < n and v[k] == (h + 1) & 0xffffffff:
    k += 1
bad = [i for i in range(k, n) if v[i] != h]
if bad:
    i = bad[0]
    print("INCONSISTENT: header passes=%d, pages 0..%d at %d, then page %d "
          "holds %d (%d of %d pages off; values seen %s)" % (h, k - 1, h + 1,
          i, v[i], len(bad), n, sorted(set(v))[:8]))
    sys.exit(1)
print("consistent passes=%d at=%d pages=%d" % (h, k, n))
PY
}

# lv_serial_log HOST NAME: the file (outside view) holding what domain
# NAME printed on its serial console while it ran on HOST.
lv_serial_log() {
	th__host "${1:-}" || return 1
	[ -n "${2:-}" ] || lv__err "usage: lv_serial_log HOST NAME" || return 1
	echo "$(lv__dir "$1")/log/qemu/$2.serial"
}

# lv_wait_log FILE REGEX TIMEOUT_S: wait until a line of FILE matches the
# extended REGEX.
lv_wait_log() {
	local file=${1:-} re=${2:-} t=${3:-60}
	th_wait "$t" grep -Eq -- "$re" "$file" 2>/dev/null ||
	    lv__err "no line matching '$re' in $file after ${t}s" || return 1
}

# lv_last_counter FILE: print the counter of the last "guestcheck ...
# ok" line in FILE (fails if there is none).
lv_last_counter() {
	local n
	n=$(sed -n 's/^guestcheck check=[0-9]* counter=\([0-9]*\) .* ok\r\{0,1\}$/\1/p' \
	    "${1:-}" 2>/dev/null | tail -n 1)
	[ -n "$n" ] || lv__err "no 'guestcheck ... ok' line in ${1:-}" || return 1
	echo "$n"
}

# lv_guest_verify FILE...: read the guest's console output (the serial
# logs of the hosts it ran on, in the order it ran there) and fail unless
# it shows at least one "guestcheck ... ok" line, no CORRUPT line and
# counters and check numbers that only grow from one line to the next.
# Prints a one-line summary ("ok lines=N counter=A..B" or why not).
lv_guest_verify() {
	[ $# -gt 0 ] || lv__err "usage: lv_guest_verify FILE..." || return 1
	cat -- "$@" | tr -d '\r' | awk '
	/^guestcheck check=/ {
		k = $2; sub(/^check=/, "", k); k += 0
		c = $3; sub(/^counter=/, "", c); c += 0
		if (/CORRUPT/) {
			if (!ncorrupt++) print "CORRUPT: " $0
			bad = 1; next
		}
		if (n > 0 && (c <= lastc || k <= lastk)) {
			printf "counters went back: check=%d counter=%d after " \
			    "check=%d counter=%d\n", k, c, lastk, lastc
			bad = 1
		}
		if (n == 0) first = c
		lastc = c; lastk = k; n++
	}
	END {
		if (n == 0 && !bad) { print "no guestcheck ok line"; bad = 1 }
		if (ncorrupt > 1) printf "(%d CORRUPT lines)\n", ncorrupt
		if (!bad) printf "ok lines=%d counter=%d..%d\n", n, first, lastc
		exit bad
	}'
}

# lv_ok_lines FILE: print how many "guestcheck ... ok" lines FILE has.
lv_ok_lines() {
	local n
	n=$(grep -c '^guestcheck check=.* ok' "${1:-}" 2>/dev/null) || n=0
	echo "$n"
}

lv__ok_at_least() { [ "$(lv_ok_lines "$1")" -ge "$2" ]; }

# lv_wait_ok FILE N TIMEOUT_S: wait until FILE has N "guestcheck ... ok"
# lines.
lv_wait_ok() {
	th_wait "${3:-60}" lv__ok_at_least "${1:-}" "${2:-1}" ||
	    lv__err "fewer than ${2:-1} guestcheck ok lines in ${1:-} after" \
		"${3:-60}s" || return 1
}
