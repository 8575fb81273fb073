#!/usr/bin/env bash
# Checkpoints that fail leave the container running and unharmed, and
# count for nothing: a full disk (CRIU cannot write its images), and criu
# killed in the middle of a dump (the container was frozen: ternd thaws
# it).  The workload verifies its memory after each.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 2
cl_pki
# h1 keeps its state on a 16 MiB tmpfs: too small for a 64 MiB container.
th_exec h1 mkdir -p /var/lib/tern-small
th_exec h1 mount -t tmpfs -o size=16m tmpfs /var/lib/tern-small
cl_conf h1 'state_dir = "/var/lib/tern-small"'
cl_conf h2
cl_start h1
cl_start h2
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

make_ct() {	# HOST NAME MIB
	local dir="$TH_ROOT/$2"
	mkdir -p "$dir"
	rootfs_make "$dir/rootfs"
	rootfs_spec "$dir/rootfs" "$2" /bin/memcheck "$3" /var/log/memcheck.state
	cl_ctl "$1" create "$2" --spec "$dir/$2.json" >/dev/null
	cl_ctl "$1" start "$2" >/dev/null
	inst_wait_ready "$dir/rootfs/var/log/memcheck.state" || fail "$2 did not start"
}
verify() {	# HOST NAME
	inst_verify "$1" "$2" "$TH_ROOT/$2/rootfs/var/log/memcheck.state"
}

# Disk full.
make_ct h1 small 64
set +e
out=$(cl_ctl h1 checkpoint small 2>&1); rc=$?
set -e
echo "refused: $out"
[ $rc = 1 ] || fail "checkpoint on a full disk exited $rc"
grep -q "filesystem holding it is full" <<<"$out" || fail "no reason given: $out"
[ "$(inst_field h1 small state)" = running ] || fail "small is $(inst_field h1 small state)"
[ "$(inst_field h1 small generation)" = 0 ] || fail "a failed checkpoint counted"
# ... and its partial images were removed (only CRIU's log stays).
left=$(th_exec h1 ls /var/lib/tern-small/instances/small/ckpt/1)
[ "$left" = dump.log ] || fail "a failed checkpoint left: $left"
verify h1 small

# criu killed in the middle of a dump.
criu_prefix=$(sed -n 's/^#define CRIU_DEFAULT_PATH "\(.*\)\/bin\/criu"/\1/p' "$TERN_BUILDDIR/config.h")
[ -n "$criu_prefix" ] || fail "cannot tell the CRIU prefix from config.h"
make_ct h2 big 512
cg="$(th__cg1 h2)"
cl_ctl h2 checkpoint big > "$TH_ROOT/big.out" 2>&1 &
ctl=$!
# Kill criu once it is at work on the container.  (CRIU freezes the
# cgroup only while it seizes the tasks, then holds them with ptrace; a
# criu killed in the first window leaves the cgroup frozen, and ternd must
# thaw it: the container has to answer below either way.)
killed=
for ((i = 0; i < 2000; i++)); do
	[ -z "$killed" ] || break
	for p in $(find "$cg" -name cgroup.procs -exec cat {} +); do
		# criu rewrites its command line; its executable is the loader
		# in the CRIU prefix (scripts/install-criu).
		if readlink "/proc/$p/exe" 2>/dev/null | grep -q "^$criu_prefix/"; then
			sleep 0.1
			kill -9 "$p" && killed=$p
			break
		fi
	done
	sleep 0.002
done
[ -n "$killed" ] || fail "never saw criu at work"
set +e
wait $ctl; rc=$?
set -e
out=$(cat "$TH_ROOT/big.out")
echo "refused: $out"
[ $rc = 1 ] || fail "checkpoint with criu killed exited $rc"
grep -q "killed by signal 9" <<<"$out" || fail "no reason given: $out"
[ "$(inst_field h2 big state)" = running ] || fail "big is $(inst_field h2 big state)"
[ "$(inst_field h2 big generation)" = 0 ] || fail "a failed checkpoint counted"
verify h2 big
# ... and the next checkpoint works.
cl_ctl h2 checkpoint big --leave-running
verify h2 big

# A restarted ternd trusts the container's cgroup, not a recorded pid: a
# container that died while ternd was down is not "adopted" through a pid
# that now belongs to someone else.
cl_ctl h1 destroy small >/dev/null
cl_ctl h2 destroy big >/dev/null
make_ct h2 ghost 8
gpid=$(inst_field h2 ghost pid)
cl_stop h2 || fail "ternd did not stop cleanly"
kill -9 "$gpid"
sleep 0.5
th_spawn h2 "$TH_ROOT/decoy.log" sleep 300 >/dev/null
decoy=$TH_SPAWN_PID
sed -i "s/^pid=.*/pid=$decoy/" "$(th_dir h2)/state/instances/ghost/state"
cl_start h2
for ((i = 0; i < 50; i++)); do
	[ -n "$(inst_field h2 ghost state 2>/dev/null)" ] && break
	sleep 0.1
done
[ "$(inst_field h2 ghost state)" = stopped ] || fail "ghost is $(inst_field h2 ghost state) (pid $(inst_field h2 ghost pid)), decoy $decoy"
kill -0 "$decoy" || fail "the decoy process was harmed"
cl_ctl h2 destroy ghost >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "container-faults: ok"
