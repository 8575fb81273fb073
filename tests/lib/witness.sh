# shellcheck shell=bash
# witness.sh: the instance as the witness of "one runner".  Source it
# after testhost.sh and rootfs.sh.
#
#	rootfs_make "$TH_ROOT/rootfs"
#	witness_spec "$TH_ROOT/rootfs" mc	# $TH_ROOT/mc.json, shared rootfs
#	...create and start mc, crash its host, let it fail over...
#	witness_check "$(witness_file "$TH_ROOT/rootfs" mc)" || fail "two copies"
#
# The workload, /bin/witness FILE (busybox sh), appends one record every
# 20 ms to FILE on the shared rootfs, from inside the container:
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
#  TIME     CLOCK_REALTIME, seconds with microseconds (busybox ash's
#           $EPOCHREALTIME: no fork).  Not /proc/uptime nor any clock a
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
#	witness_spec ROOTFS NAME	install it; write the spec of a container
#					NAME (shared storage) running it
#	witness_file ROOTFS NAME	the record file, seen from outside
#	witness_copies NAME HOST...	witness processes in the containers
#					named NAME on those hosts (whatever
#					the ternds say)
#	witness_last FILE		the last record: "RUN HOST COUNTER TIME"
#	witness_host FILE		the HOST of the last record
#	witness_now			now, on the records' clock

WITNESS_CHECK=${WITNESS_CHECK:-$TERN_SRCDIR/tests/tools/witness-check.py}

witness_install() {
	local dir=${1:-}
	[ -d "$dir/bin" ] || { echo "witness: no $dir/bin (rootfs_make first)" >&2; return 1; }
	cat >"$dir/bin/witness" <<'EOF'
#!/bin/sh
# witness FILE: one "RUN HOST COUNTER TIME" line every 20 ms (see
# tests/lib/witness.sh).  TIME is the wall clock: a time namespace (a
# CRIU restore) shifts /proc/uptime, not this.
f=$1
# Without it every record would lack its time (another sh than busybox's).
[ -n "$EPOCHREALTIME" ] || { echo "witness: this sh has no \$EPOCHREALTIME" >&2; exit 1; }
read -r run </proc/sys/kernel/random/uuid
run=${run%%-*}
n=0
if [ -s "$f" ]; then
	set -- $(tail -n 1 "$f")
	case ${3:-x} in *[!0-9]*) ;; *) n=$3 ;; esac
fi
while :; do
	host=unknown
	while read -r l; do
		case $l in *:freezer:*) host=${l#*:freezer:} ;; esac
	done </proc/self/cgroup
	case $host in
	*/tern-test/*)
		host=${host#*/tern-test/}
		host=${host%%/*}
		host=${host#*-} ;;
	esac
	n=$((n + 1))
	echo "$run $host $n $EPOCHREALTIME" >>"$f"
	usleep 20000
done
EOF
	chmod 755 "$dir/bin/witness"
}

witness_file() {
	echo "${1%/}/var/log/witness-$2"
}

witness_spec() {
	local dir=${1:-} name=${2:-}
	[ -n "$dir" ] && [ -n "$name" ] ||
	    { echo "witness: usage: witness_spec ROOTFS NAME" >&2; return 1; }
	witness_install "$dir" || return 1
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$dir" "$name" /bin/witness \
	    "/var/log/witness-$name"
}

witness_check() {
	python3 "$WITNESS_CHECK" "$@"
}

witness_copies() {
	local name=$1 h p n=0
	shift
	for h in "$@"; do
		for p in $(find "$(th__cg1 "$h")" -path "*/tern/$name/*" \
		    -name cgroup.procs -exec cat {} + 2>/dev/null); do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = witness ] &&
			    n=$((n + 1))
		done
	done
	echo $n
}

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
