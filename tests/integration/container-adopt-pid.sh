#!/usr/bin/env bash
# A container a restarted ternd adopted is watched and signalled through
# a pidfd, never through its bare pid: when its init dies and the pid is
# handed to an unrelated process, `ternctl stop` must not signal that
# process, and the instance reads as stopped, saying its init is gone.
# Deterministic: ternd is held with SIGSTOP while the init is killed and
# a decoy is given its pid (through ns_last_pid), then let go.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
[ -w /proc/sys/kernel/ns_last_pid ] || { echo "cannot choose pids here"; exit 77; }
decoy=
tpid=
cleanup() {
	local rc=$?
	[ -z "$tpid" ] || kill -CONT "$tpid" 2>/dev/null || :
	[ -z "$decoy" ] || kill -KILL "$decoy" 2>/dev/null || :
	th_teardown "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

th_setup 1
cl_pki
cl_conf h1
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"
make_ct() {	# NAME: a memcheck container, started and ready
	local dir="$TH_ROOT/$1"
	mkdir -p "$dir"
	rootfs_make "$dir/rootfs"
	rootfs_spec "$dir/rootfs" "$1" /bin/memcheck 8 /var/log/memcheck.state
	cl_ctl h1 create "$1" --spec "$dir/$1.json" >/dev/null
	cl_ctl h1 start "$1" >/dev/null
	inst_wait_ready "$dir/rootfs/var/log/memcheck.state" || fail "$1 did not start"
}
make_ct ghost
make_ct calm
gpid=$(inst_field h1 ghost pid)
cpid=$(inst_field h1 calm pid)

# A clean stop leaves the container running; the next ternd adopts it.
cl_stop h1 || fail "ternd did not stop cleanly"
cl_start h1
th_wait 10 grep -q "instance ghost: still running (pid $gpid), adopted" \
    "$(cl_log h1)" || fail "ghost was not adopted: $(grep ghost "$(cl_log h1)" | tail -n 3)"
[ "$(inst_field h1 ghost state)" = running ] || fail "ghost is $(inst_field h1 ghost state)"
[ "$(inst_field h1 calm pid)" = "$cpid" ] || fail "calm was not adopted"

# An adopted container stops as usual: SIGTERM through the pidfd, its
# exit seen on the pidfd.
cl_ctl h1 stop calm
grep -q "instance calm: its adopted init $cpid exited" "$(cl_log h1)" ||
    fail "calm's exit was not seen through its pidfd"
[ "$(inst_field h1 calm state)" = stopped ] || fail "calm is $(inst_field h1 calm state)"
! th_pid_alive "$cpid" || fail "calm's init $cpid still runs"

tpid=$(cl_pid h1)
kill -STOP "$tpid"
kill -KILL "$gpid"
# Reaped (not a zombie): its pid can be handed out again.
th_wait 10 test ! -e "/proc/$gpid" || fail "ghost's init $gpid was not reaped"
for ((i = 0; i < 200; i++)); do
	echo $((gpid - 1)) >/proc/sys/kernel/ns_last_pid
	sleep 600 &
	decoy=$!
	[ "$decoy" = "$gpid" ] && break
	kill -KILL "$decoy"
	wait "$decoy" 2>/dev/null || :
	decoy=
done
[ -n "$decoy" ] || fail "could not give pid $gpid to a decoy"
echo "decoy $decoy has the pid of ghost's dead init"
kill -CONT "$tpid"
tpid=

# Whether ternd has noticed the exit yet or not, stop must not reach the
# decoy.
out=$(cl_ctl h1 stop ghost 2>&1) || :
echo "stop: $out"
for ((i = 0; i < 150; i++)); do
	[ "$(inst_field h1 ghost state)" = stopped ] && break
	sleep 0.1
done
kill -0 "$decoy" 2>/dev/null || fail "ternd signalled the decoy that reused ghost's pid"
[ "$(inst_field h1 ghost state)" = stopped ] ||
    fail "ghost is $(inst_field h1 ghost state) (pid $(inst_field h1 ghost pid))"
err=$(inst_field h1 ghost last_error)
echo "ghost: stopped, last error: $err"
grep -q "init is gone" <<<"$err" || fail "ghost's last error does not say its init is gone: $err"
cl_ctl h1 destroy ghost >/dev/null
cl_ctl h1 destroy calm >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
