# shellcheck shell=bash
# witness.sh: the instance as the witness of "one runner".  Source it
# after testhost.sh and rootfs.sh.
#
#	rootfs_make "$TH_ROOT/rootfs"
#	witness_spec "$TH_ROOT/rootfs" mc	# $TH_ROOT/mc.json, shared rootfs
#	...create and start mc, crash its host, let it fail over...
#	witness_check "$(witness_file "$TH_ROOT/rootfs" mc)" || fail "two copies"
#
# The workload, /bin/witness FILE (tests/workloads/witness.c, static),
# appends one record every 20 ms to FILE on the shared rootfs, from
# inside the container:
#
#	RUN HOST COUNTER TIME
#
#  RUN      8 hex digits drawn when the process starts.  It is in memory,
#           so a restore (a migration, a replica) keeps it; a cold start
#           draws a new one.
#  HOST     where the record is written, as the container sees it: its
#           freezer cgroup (/proc/self/cgroup; ternd nests its containers'
#           cgroups below its own, and a test host's is tern-test/NET-HOST),
#           read again for every record, so a restore elsewhere shows.
#           Outside test hosts it is the whole cgroup path.
#  COUNTER  incremented by this copy only, kept in memory: it survives
#           checkpoint/restore, and a restore from an older image rolls it
#           back.  A cold start carries on from the last record in FILE
#           (the state it finds on the shared disk), so a restart that
#           loses nothing shows "rolled back 0".
#  TIME     CLOCK_REALTIME, seconds with microseconds.  Not
#           /proc/uptime nor any clock a
#           time namespace shifts: CRIU restores a container with the
#           monotonic and boot clocks it had at the dump, so a restored
#           copy's uptime lags by the time from the dump to the restore
#           and its records would seem to start before the old copy
#           died.  The test hosts share one kernel, so one wall clock.
#
# witness_check FILE [--since TIME] runs tests/tools/witness-check.py:
# fails on any two copies whose time spans meet, prints each handover's
# gap and rolled-back count (see the tool's header).
#
#	witness_install ROOTFS		put /bin/witness in ROOTFS
#	witness_spec ROOTFS NAME [PROGRAM]
#					install it; write the spec of a container
#					NAME (shared storage) running it (or
#					PROGRAM FILE, a wrapper that runs it)
#	witness_file ROOTFS NAME	the record file, seen from outside
#	witness_copies NAME HOST...	witness processes in the containers
#					named NAME on those hosts (whatever
#					the ternds say)
#	witness_running NAME HOST...	the same, less those a tracer holds
#					(CRIU keeps a migration's arriving
#					copy stopped until it resumes)
#	witness_last FILE		the last record: "RUN HOST COUNTER TIME"
#	witness_host FILE		the HOST of the last record
#	witness_now			now, on the records' clock

WITNESS_CHECK=${WITNESS_CHECK:-$TERN_SRCDIR/tests/tools/witness-check.py}

witness_install() {
	local dir=${1:-} bin=${TERN_BUILDDIR:-.}/tests/workloads/witness
	[ -d "$dir/bin" ] || { echo "witness: no $dir/bin (rootfs_make first)" >&2; return 1; }
	[ -x "$bin" ] || { echo "witness: $bin not built (make check builds it)" >&2; return 1; }
	cp "$bin" "$dir/bin/witness"
}

witness_file() {
	echo "${1%/}/var/log/witness-$2"
}

witness_spec() {
	local dir=${1:-} name=${2:-} program=${3:-/bin/witness}
	[ -n "$dir" ] && [ -n "$name" ] ||
	    { echo "witness: usage: witness_spec ROOTFS NAME [PROGRAM]" >&2; return 1; }
	witness_install "$dir" || return 1
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$dir" "$name" "$program" \
	    "/var/log/witness-$name"
}

witness_check() {
	python3 "$WITNESS_CHECK" "$@"
}

# witness__count UNTRACED NAME HOST...: witness_copies (UNTRACED 0) or
# witness_running (1).
witness__count() {
	local untraced=$1 name=$2 h p n=0
	shift 2
	for h in "$@"; do
		for p in $(find "$(th__cg1 "$h")" -path "*/tern/$name/*" \
		    -name cgroup.procs -exec cat {} + 2>/dev/null); do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = witness ] || continue
			[ "$untraced" = 0 ] ||
			    grep -q "^TracerPid:[[:space:]]*0$" "/proc/$p/status" 2>/dev/null ||
			    continue
			n=$((n + 1))
		done
	done
	echo $n
}
witness_copies() { witness__count 0 "$@"; }
witness_running() { witness__count 1 "$@"; }

witness_last() {
	tail -n 1 "$1" 2>/dev/null
}

witness_host() {
	local host
	read -r _ host _ <<<"$(witness_last "$1")"
	echo "${host:-}"
}

witness_now() {
	date +%s.%6N
}
