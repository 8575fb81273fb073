# shellcheck shell=bash
# rootfs.sh: minimal container root filesystems and specs for tests.
#
# Source it from a bash test script:
#
#	. "$TERN_SRCDIR/tests/lib/rootfs.sh"
#	rootfs_check || exit 77			# busybox-static missing
#	rootfs_make "$tmp/rootfs"
#	ROOTFS_SPEC_MEMORY=67108864 rootfs_spec "$tmp/rootfs" web \
#	    /bin/memcheck 32 /var/log/memcheck.state
#	ctr start web "$tmp/web.json"
#
# rootfs_make DIR: DIR/bin with Debian's static busybox (package
# busybox-static) and a link per applet, DIR/bin/memcheck (the static
# workload from $TERN_BUILDDIR/tests/workloads/memcheck, if built), empty
# DIR/{proc,dev,tmp,var/log,root}, and a minimal DIR/etc (passwd, group,
# hosts).
#
# rootfs_spec DIR NAME ARGS...: write DIR/../NAME.json, a spec for the
# rootfs DIR (root.path relative to the spec's directory) running ARGS
# with PATH=/bin and cwd /.  The environment changes it:
#	ROOTFS_SPEC_HOSTNAME	hostname (default: none, the container's name)
#	ROOTFS_SPEC_MEMORY	linux.resources.memory.limit, bytes
#	ROOTFS_SPEC_PIDS	linux.resources.pids.limit
#	ROOTFS_SPEC_CPU_SHARES	linux.resources.cpu.shares
#	ROOTFS_SPEC_NETWORK=1	a network namespace of its own
#	ROOTFS_SPEC_READONLY=1	root.readonly
#	ROOTFS_SPEC_ROOT	root.path instead of DIR's name
#	ROOTFS_SPEC_SHARED=1	"tern": {"shared_storage": true} (the rootfs is
#				on storage every host sees: it can migrate)
#	ROOTFS_SPEC_UNCONFINED	tern.unconfined: the array's items, e.g. '"all"' or
#				'"seccomp", "devices"'
#
# Functions return non-zero and say why on stderr ("rootfs: ..."); they
# never exit the caller's shell.

ROOTFS_BUSYBOX=${ROOTFS_BUSYBOX:-/bin/busybox}

rootfs__err() {
	echo "rootfs: $*" >&2
	return 1
}

# rootfs_check: true if a static busybox is there.
rootfs_check() {
	[ -x "$ROOTFS_BUSYBOX" ] ||
	    rootfs__err "$ROOTFS_BUSYBOX missing (apt-get install busybox-static)" ||
	    return 1
	# ldd fails on a static binary.
	if ldd "$ROOTFS_BUSYBOX" >/dev/null 2>&1; then
		rootfs__err "$ROOTFS_BUSYBOX is dynamically linked (install busybox-static, not busybox)"
		return 1
	fi
	return 0
}

rootfs_make() {
	local dir=${1:-} applet memcheck
	[ -n "$dir" ] || rootfs__err "usage: rootfs_make DIR" || return 1
	rootfs_check || return 1
	mkdir -p "$dir"/{bin,proc,dev,tmp,etc,var/log,root} ||
	    rootfs__err "cannot create directories in $dir" || return 1
	chmod 1777 "$dir/tmp"
	cp "$ROOTFS_BUSYBOX" "$dir/bin/busybox" ||
	    rootfs__err "cannot copy $ROOTFS_BUSYBOX to $dir/bin" || return 1
	for applet in $("$dir/bin/busybox" --list); do
		[ "$applet" = busybox ] && continue
		ln -sf busybox "$dir/bin/$applet" ||
		    rootfs__err "cannot link $dir/bin/$applet" || return 1
	done
	memcheck=${TERN_BUILDDIR:-.}/tests/workloads/memcheck
	if [ -x "$memcheck" ]; then
		cp "$memcheck" "$dir/bin/memcheck" ||
		    rootfs__err "cannot copy $memcheck" || return 1
	else
		echo "rootfs: $memcheck not built; $dir/bin/memcheck left out" >&2
	fi
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
	    >"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$dir/etc/hosts"
}

# rootfs__json STRING: STRING as a JSON string literal.
rootfs__json() {
	local s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		# shellcheck disable=SC1003
		case $c in
		'"') out+='\"' ;;
		'\') out+='\\' ;;
		$'\n') out+='\n' ;;
		$'\t') out+='\t' ;;
		$'\r') out+='\r' ;;
		*) out+=$c ;;
		esac
	done
	printf '"%s"' "$out"
}

rootfs_spec() {
	local dir=${1:-} name=${2:-} spec args='' sep='' a res='' rsep='' tern
	[ -n "$dir" ] && [ -n "$name" ] && [ $# -ge 3 ] ||
	    rootfs__err "usage: rootfs_spec DIR NAME ARGS..." || return 1
	shift 2
	dir=${dir%/}
	spec="$(dirname "$dir")/$name.json"
	for a in "$@"; do
		args+="$sep$(rootfs__json "$a")"
		sep=", "
	done
	if [ -n "${ROOTFS_SPEC_MEMORY:-}" ]; then
		res+="$rsep\"memory\": {\"limit\": $ROOTFS_SPEC_MEMORY}"
		rsep=", "
	fi
	if [ -n "${ROOTFS_SPEC_PIDS:-}" ]; then
		res+="$rsep\"pids\": {\"limit\": $ROOTFS_SPEC_PIDS}"
		rsep=", "
	fi
	if [ -n "${ROOTFS_SPEC_CPU_SHARES:-}" ]; then
		res+="$rsep\"cpu\": {\"shares\": $ROOTFS_SPEC_CPU_SHARES}"
		rsep=", "
	fi
	{
		echo '{'
		echo '	"ociVersion": "1.0.2",'
		echo '	"process": {'
		echo "		\"args\": [$args],"
		echo '		"env": ["PATH=/bin", "HOME=/root", "TERM=dumb"],'
		echo '		"cwd": "/"'
		echo '	},'
		echo "	\"root\": {\"path\": $(rootfs__json "${ROOTFS_SPEC_ROOT:-$(basename "$dir")}"), \"readonly\": $([ "${ROOTFS_SPEC_READONLY:-}" = 1 ] && echo true || echo false)},"
		if [ -n "${ROOTFS_SPEC_HOSTNAME:-}" ]; then
			echo "	\"hostname\": $(rootfs__json "$ROOTFS_SPEC_HOSTNAME"),"
		fi
		echo '	"linux": {'
		printf '		"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}%s],\n' \
		    "$([ "${ROOTFS_SPEC_NETWORK:-}" = 1 ] && echo ', {"type": "network"}')"
		echo "		\"resources\": {$res}"
		tern=
		[ "${ROOTFS_SPEC_SHARED:-}" = 1 ] && tern='"shared_storage": true'
		if [ -n "${ROOTFS_SPEC_UNCONFINED:-}" ]; then
			tern+="${tern:+, }\"unconfined\": [$ROOTFS_SPEC_UNCONFINED]"
		fi
		if [ -n "$tern" ]; then
			echo '	},'
			echo "	\"tern\": {$tern}"
		else
			echo '	}'
		fi
		echo '}'
	} >"$spec" || rootfs__err "cannot write $spec" || return 1
}
