#!/usr/bin/env bash
# A container call that waits for the kernel does not hold ternd's event
# loop (issue 9, item 6).  Killing a container whose process is stuck in
# the kernel (D state) waits seconds for the freezer and for the cgroup
# to empty; starting one waits for its first exec.  On the loop that
# carries heartbeats, such a wait dropped every peer (peer_timeout_ms
# here is 1 s) and broke the migrations in flight.
#
# The fault points container.kill and container.start (delay=4000) make
# the kill of a stop and the start of a container take 4 s, and
# work.write_file the first write of an instance's state file (an fsync
# behind a busy disk).  Meanwhile:
#  1. other commands (list, status, a ping of h2) complete while the
#     stop is still out, and a second stop of it is refused as busy;
#  2. the same while a start is still out (a second start is refused),
#     and while the state file's write after it is still out (the file
#     does not say running yet);
#  3. neither h1 nor h2 saw its peer go down;
#  4. a migration to h2 whose image writes are slow there (each batch
#     held 300 ms by files.recv.write) succeeds: the source hears every
#     file arrive before it is written, and the restore waits for the
#     writes (the images' checksums would not match otherwise), and no
#     peer goes down meanwhile.
# Timings are not the criterion: what completes while what is still out,
# and the peers' state changes in the logs, are.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

th_setup 2
cl_pki
cl_conf h1 'heartbeat_interval_ms = 200' 'peer_timeout_ms = 1000'
cl_conf h2 'heartbeat_interval_ms = 200' 'peer_timeout_ms = 1000'
TERN_FAULT=container.kill:delay=4000@1,container.start:delay=4000@2,work.write_file:delay=4000@1 cl_start h1
TERN_FAULT=files.recv.write:delay=300 cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

rootfs="$TH_ROOT/rootfs"
rootfs_make "$rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$rootfs" mc /bin/memcheck 16 /var/log/memcheck.state
state="$rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null

fired() { cl_log_count h1 "fault point $1 fired"; }
has_fired() { [ "$(fired "$1")" -ge 1 ]; }
downs() { cl_log_count "$1" "peer $2: up -> "; }
h1_downs=$(downs h1 h2) h2_downs=$(downs h2 h1)

# alive_while PID WHAT: commands complete while PID (a ternctl whose
# container call is held) has not finished.
alive_while() {
	local pid=$1 what=$2 out
	out=$(cl_ctl h1 list) || fail "$what: list failed"
	grep -q 'mc' <<<"$out" || fail "$what: list: $out"
	cl_ctl h1 status >/dev/null || fail "$what: status failed"
	cl_ctl h1 ping h2 >/dev/null || fail "$what: ping h2 failed"
	kill -0 "$pid" 2>/dev/null ||
	    fail "$what: the held command finished before the others (the loop waited for it)"
}

# 1+2: the first start is held 4 s (the first fault of container.start).
: >"$state"
cl_ctl h1 start mc >"$TH_ROOT/start.out" 2>&1 &
st=$!
th_wait 20 has_fired container.start || fail "container.start did not fire"
alive_while "$st" "start held"
out=$(cl_ctl h1 start mc 2>&1) && fail "a second start while starting: $out"
grep -q 'starting' <<<"$out" || fail "second start: not refused as starting: $out"
wait "$st" || fail "start failed: $(cat "$TH_ROOT/start.out")"
# The start's state write ("running") is held next.
th_wait 20 has_fired work.write_file || fail "work.write_file did not fire"
statefile="$(th_dir h1)/state/instances/mc/state"
alive_write() { ! grep -q '^state=running' "$statefile"; }
alive_write || fail "the state file says running before its write was released"
cl_ctl h1 status >/dev/null || fail "write held: status failed"
cl_ctl h1 ping h2 >/dev/null || fail "write held: ping h2 failed"
alive_write ||
	fail "write held: the state write finished before the others (the loop waited for it)"
th_wait 20 grep -q '^state=running' "$statefile" || fail "the state file never said running"
inst_wait_ready "$state" || fail "memcheck did not start"
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state)"

# The stop: its kill is held 4 s.
cl_ctl h1 stop mc >"$TH_ROOT/stop.out" 2>&1 &
sp=$!
th_wait 20 has_fired container.kill || fail "container.kill did not fire"
alive_while "$sp" "stop held"
out=$(cl_ctl h1 stop mc 2>&1) && fail "a second stop while stopping: $out"
wait "$sp" || fail "stop failed: $(cat "$TH_ROOT/stop.out")"
[ "$(inst_field h1 mc state)" = stopped ] || fail "mc is $(inst_field h1 mc state)"

# 3: nobody saw a peer go.
[ "$(downs h1 h2)" = "$h1_downs" ] ||
	fail "h1 lost h2 meanwhile: $(grep 'peer h2: up -> ' "$(cl_log h1)")"
[ "$(downs h2 h1)" = "$h2_downs" ] ||
	fail "h2 lost h1 meanwhile: $(grep 'peer h1: up -> ' "$(cl_log h2)")"

# 4: a migration to h2, its image writes slow there (the target's restore
# waits for them; a second start fault holds the start).
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start again"
cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/mig.out" 2>&1 ||
	fail "migration failed: $(cat "$TH_ROOT/mig.out")"
grep -q 'fault point files.recv.write fired' "$(cl_log h2)" ||
	fail "files.recv.write did not fire on h2"
grep -q 'restore waits for .* image files still being written' "$(cl_log h2)" ||
	fail "h2 restored without waiting for the held image write"
inst_verify h2 mc "$state" "after the migration"
[ "$(downs h1 h2)" = "$h1_downs" ] || fail "h1 lost h2 during the migration"
[ "$(downs h2 h1)" = "$h2_downs" ] || fail "h2 lost h1 during the migration"
cl_ctl h2 destroy mc >/dev/null
cl_stop h1 || fail "h1's ternd did not stop by itself"
cl_stop h2 || fail "h2's ternd did not stop by itself"
cl_check_log h1
cl_check_log h2
echo "container-loop: ok"
