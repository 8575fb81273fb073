#!/usr/bin/env bash
# A container whose init exits in the moment between CRIU's resume on the
# target and ternd's reading of CRIU's answer: its SIGCHLD came before
# ternd watched it, and nothing else may come.  CRIU's answer is held
# back 3 s on both hosts (fault point ctr.target.answer); meanwhile the
# test sends the memcheck workload SIGTERM, on which it exits 0.  Each
# move must end with the instance stopped on its target, its error
# quoting that exit status (the workload's own word, where a guess would
# say "unknown"), and no zombie left:
#  1. h1 -> h2 stop-and-copy, resumed early (its memory copied in after);
#  2. h2 -> h1 stop-and-copy, restored whole (stopcopy_resume_early off);
#  3. h1 -> h2 post-copy, its memory fetched from h1 as it exits.
# After a stop-and-copy, the move's checkpoint on the target restores it,
# its memory verified.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

CONF_H1=('stopcopy_resume_early = false')
TERN_FAULT_H1='ctr.target.answer:delay=3000'
TERN_FAULT_H2='ctr.target.answer:delay=3000'
inst_two_hosts

root=$TH_ROOT/rootfs
rootfs_make "$root"
state() { echo "$root/var/log/$1.state"; }

nfired() { grep -c "fault point ctr.target.answer fired" "$(cl_log "$1")" || true; }
fired_since() { [ "$(nfired "$1")" -gt "$2" ]; }

# zombies HOST: the zombie children of HOST's ternd.
zombies() {
	local pid
	pid=$(cl_pid "$1")
	ps -o stat=,pid= --ppid "$pid" | awk '$1 ~ /^Z/ { print $2 }'
}

# term HOST NAME: SIGTERM to NAME's memcheck on HOST (found by its
# cgroup: ternd may not know its pid yet).
term() {
	local pids
	pids=$(inst_memcheck_pids "$2" "$1")
	[ "$(wc -w <<<"$pids")" = 1 ] ||
	    fail "$2 on $1: memcheck processes '$pids', not one"
	kill -TERM $pids
}

# exits_unwatched LABEL NAME FROM TO MODE: move NAME, make it exit while
# CRIU's answer is held on TO, and check how the move and NAME end.
exits_unwatched() {
	local label=$1 name=$2 from=$3 to=$4 mode=$5 before out rc err i
	echo "--- $label: $name $from -> $to ($mode), exits before it is watched"
	before=$(nfired "$to")
	set +e
	cl_ctl "$from" migrate "$name" --to "$to" --mode "$mode" \
	    >"$TH_ROOT/$name.out" 2>&1 &
	local mig=$!
	set -e
	wait_for 60 "$label: CRIU's answer held on $to" \
	    fired_since "$to" "$before"
	term "$to" "$name"
	set +e
	wait "$mig"
	rc=$?
	set -e
	out=$(cat "$TH_ROOT/$name.out")
	echo "ternctl migrate: exit $rc: $out"
	# Past the commit point, the move is done whatever the workload does.
	[ "$rc" = 0 ] || fail "$label: the move failed: $out"
	for ((i = 0; i < 100; i++)); do
		[ "$(inst_field "$to" "$name" state)" = stopped ] && break
		sleep 0.1
	done
	[ "$(inst_where "$name")" = "$to:stopped" ] ||
	    fail "$label: $name did not settle after its init exited: $(inst_where "$name")"
	err=$(inst_field "$to" "$name" last_error)
	echo "$name: $err"
	grep -q "init exited with status 0" <<<"$err" ||
	    fail "$label: $name's error does not quote its own exit (0): $err"
	# (A CRIU that just exited may be one for a moment.)
	for ((i = 0; i < 20; i++)); do
		[ -z "$(zombies "$to")" ] && break
		sleep 0.1
	done
	[ -z "$(zombies "$to")" ] ||
	    fail "$label: zombie children of $to's ternd: $(zombies "$to")"
	[ "$mode" = stopcopy ] || return 0
	cl_ctl "$to" restore "$name" >/dev/null ||
	    fail "$label: $name does not restore on $to"
	inst_verify "$to" "$name" "$(state "$name")" "restored on $to"
}

# mk NAME HOST MIB: a memcheck container NAME on HOST, ready.
mk() {
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$root" "$1" /bin/memcheck "$3" \
	    "/var/log/$1.state"
	cl_ctl "$2" create "$1" --spec "$TH_ROOT/$1.json" >/dev/null
	cl_ctl "$2" start "$1" >/dev/null
	inst_wait_ready "$(state "$1")" || fail "$1 did not start on $2"
}
mk qa h1 64
mk qb h2 64
mk qc h1 64

exits_unwatched 1 qa h1 h2 stopcopy
exits_unwatched 2 qb h2 h1 stopcopy
exits_unwatched 3 qc h1 h2 postcopy
echo "PASS: an init that exits before it is watched stops its instance"
