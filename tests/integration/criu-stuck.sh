#!/usr/bin/env bash
# CRIU and stopped tasks (issue 12, defects 2 and 5).
#
# 1. A container with a SIGSTOPped child is checkpointed (left running,
#    and stopped then restored) and moved h1 -> h2 -> h1 in auto and
#    stop-and-copy; the workload (tests/workloads/stopped) checks after
#    each that its child is still stopped and it runs.
# 2. A CRIU that hangs for good is killed at criu_timeout_ms and the
#    container thawed: it runs, the instance is back to running, stop,
#    destroy and SIGTERM work.  The hang is CRIU's own: a stopped task in a
#    cgroup frozen by the v1 freezer (fault ckpt.stopped-check:fail makes
#    ternd freeze it anyway), or CRIU stopped (fault criu.dump:stall).  A
#    migration's rollback (its no-progress timeout, ternd's shutdown)
#    cancels such a dump at once.  A restore that hangs (criu.restore:stall,
#    on a migration's target or on one host) is killed and undone.
# 3. A plain checkpoint whose CRIU dies right after ternd acked its
#    post-dump (fault ckpt.after-post-dump:kill) is a checkpoint: kept,
#    the instance checkpointed, and it restores.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
[ -x "$TERN_BUILDDIR/tests/workloads/stopped" ] || {
	echo "tests/workloads/stopped not built" >&2; exit 1; }
trap th_teardown EXIT

# A ternctl call that does not come back is the bug, not a slow machine:
# give up on it after HANG_S (no timing is measured).
HANG_S=120
ctl() {	# HOST ARGS...: ternctl, failing the test if it hangs
	local host=$1 rc=0
	shift
	th_exec "$host" timeout -s KILL $HANG_S "$CL_TERNCTL" -s "$CL_SOCK" \
	    "$@" || rc=$?
	[ $rc != 137 ] || fail "ternctl $* on $host hung (no answer in ${HANG_S}s)"
	return $rc
}

th_setup 2
cl_pki
cl_conf h1 'criu_timeout_ms = 5000'
cl_conf h2 'criu_timeout_ms = 5000'
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

rootfs="$TH_ROOT/rootfs"
rootfs_make "$rootfs"
cp "$TERN_BUILDDIR/tests/workloads/stopped" "$rootfs/bin/stopped"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$rootfs" st /bin/stopped /var/log/stopped.state
ROOTFS_SPEC_SHARED=1 rootfs_spec "$rootfs" mc /bin/memcheck 16 /var/log/memcheck.state
state="$rootfs/var/log/stopped.state"
mcstate="$rootfs/var/log/memcheck.state"

where_ok() {	# HOST WHY: st runs there, its child stopped, and only there
	[ "$(inst_where st)" = "$1:running" ] || fail "$2: st is at: $(inst_where st)"
	inst_verify "$1" st "$state" "$2"
}
freezer() { cat "$(th__cg1 "$1")/tern/st/freezer.state"; }

ctl h1 create st --spec "$TH_ROOT/st.json" >/dev/null
ctl h1 start st >/dev/null
inst_wait_ready "$state" || fail "st did not start: $(cat "$state" 2>/dev/null)"
grep "^ready" "$state"
where_ok h1 "started"

# --- 1: a stopped child is dumped, restored and moved, still stopped -----
ctl h1 checkpoint st --leave-running
where_ok h1 "after a leave-running checkpoint"
grep -q "st: 1 task stopped: CRIU seizes the tree without freezing" \
    "$(cl_log h1)" || fail "h1 did not say how it dumps a stopped task"
ctl h1 checkpoint st
[ "$(inst_field h1 st state)" = checkpointed ] || fail "st is $(inst_field h1 st state)"
ctl h1 restore st
where_ok h1 "restored"
ctl h1 migrate st --to h2 --mode auto
where_ok h2 "moved to h2 (auto)"
ctl h2 migrate st --to h1 --mode stopcopy
where_ok h1 "moved back to h1 (stop-and-copy)"
ctl h1 migrate st --to h2 --mode stopcopy
where_ok h2 "moved to h2 (stop-and-copy)"
ctl h2 migrate st --to h1 --mode auto
where_ok h1 "moved back to h1 (auto)"

# --- 2: CRIU stuck for good ------------------------------------------------
# stuck REASON ARGS...: ternctl ARGS on h1 fails, naming REASON; st runs
# on h1, thawed, its child still stopped; nothing on h2.
stuck() {
	local pattern=$1 out rc=0
	shift
	out=$(ctl h1 "$@" 2>&1) || rc=$?
	echo "refused: $out"
	[ $rc = 1 ] || fail "ternctl $* exited $rc: $out"
	grep -q -- "$pattern" <<<"$out" || fail "ternctl $*: no reason: $out"
	[ "$(freezer h1)" = THAWED ] || fail "st left $(freezer h1) after: $*"
	where_ok h1 "after a stuck criu ($*)"
}

# A stopped task in a cgroup frozen by the v1 freezer: CRIU waits in the
# kernel (ptrace_attach) for good.
cl_stop h1 || fail "h1's ternd did not stop cleanly"
TERN_FAULT=ckpt.stopped-check:fail cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
[ "$(inst_field h1 st state)" = running ] || fail "st was not adopted: $(inst_field h1 st state)"
deadline="did not finish within 5000 ms (criu_timeout_ms) and was killed"
stuck "$deadline" checkpoint st --leave-running
fault_fired h1 ckpt.stopped-check
stuck "$deadline" checkpoint st
stuck "$deadline" migrate st --to h2 --mode stopcopy
stuck "$deadline" migrate st --to h2 --mode auto
[ -z "$(inst_field h2 st state)" ] || fail "h2 kept st: $(inst_field h2 st state)"

# The migration's own timeout rolls back at once, CRIU's deadline far.
cl_stop h1 || fail "h1's ternd did not stop cleanly"
cl_conf h1 'criu_timeout_ms = 600000' 'migration_timeout_ms = 2000'
TERN_FAULT=ckpt.stopped-check:fail cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
stuck "no progress for 2000 ms in state dumping" migrate st --to h2 --mode stopcopy
grep -q "cancelling criu dump" "$(cl_log h1)" || fail "the rollback did not cancel criu"

# ... and so does a ternd told to stop: it exits (cl_stop allows 5 s).
cl_stop h1 || fail "h1's ternd did not stop cleanly"
cl_conf h1 'criu_timeout_ms = 600000'
TERN_FAULT=ckpt.stopped-check:fail cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
ctl h1 migrate st --to h2 --mode stopcopy >"$TH_ROOT/mig.out" 2>&1 &
mig=$!
for ((i = 0; i < 100; i++)); do
	[ "$(freezer h1)" = FROZEN ] && break
	sleep 0.1
done
[ "$(freezer h1)" = FROZEN ] || fail "criu never froze st"
cl_stop h1 || fail "h1's ternd ignored SIGTERM with criu stuck"
wait $mig || true
echo "while stopping: $(cat "$TH_ROOT/mig.out")"
[ "$(freezer h1)" = THAWED ] || fail "st left $(freezer h1) by a stopping ternd"
cl_conf h1 'criu_timeout_ms = 5000'
TERN_FAULT=criu.dump:stall cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
where_ok h1 "adopted after the shutdown"

# CRIU itself stopped (SIGSTOP): killed at the deadline all the same.
stuck "$deadline" checkpoint st --leave-running
fault_fired h1 criu.dump stall
stuck "$deadline" migrate st --to h2 --mode stopcopy
# SIGTERM during a stuck checkpoint: ternd gives it up and exits at once,
# not at the CRIU deadline; the container is thawed.
n=$(grep -c "fault point criu.dump fired" "$(cl_log h1)")
ctl h1 checkpoint st >"$TH_ROOT/ck.out" 2>&1 &
ck=$!
th_wait 20 eval '[ "$(grep -c "fault point criu.dump fired" "$(cl_log h1)")" -gt '"$n"' ]' ||
    fail "the checkpoint's criu never started"
cl_stop h1 2 || fail "h1's ternd waited for the CRIU deadline to stop"
wait $ck || true
echo "while stopping: $(cat "$TH_ROOT/ck.out")"
[ "$(freezer h1)" = THAWED ] || fail "st left $(freezer h1) by a stopping ternd"
# ... and a target whose restore is stuck: it gives up, st stays on h1.
cl_stop h1 || fail "h1's ternd did not stop cleanly"
cl_stop h2 || fail "h2's ternd did not stop cleanly"
cl_start h1
TERN_FAULT=criu.restore:stall cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"
stuck "did not finish within 5000 ms" migrate st --to h2 --mode stopcopy
fault_fired h2 criu.restore stall
[ -z "$(inst_field h2 st state)" ] || fail "h2 kept st: $(inst_field h2 st state)"

# After all that, stop and destroy work.
ctl h1 stop st >/dev/null
[ "$(inst_field h1 st state)" != running ] || fail "st still runs after stop"
ctl h1 destroy st >/dev/null
[ -z "$(inst_field h1 st state)" ] || fail "st not destroyed"
cl_stop h1 || fail "h1's ternd did not stop cleanly"

# --- 3: CRIU dies right after the post-dump ack -----------------------------
TERN_FAULT=ckpt.after-post-dump:kill cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
ctl h1 start mc >/dev/null
inst_wait_ready "$mcstate" || fail "memcheck did not start"
inst_verify h1 mc "$mcstate" "started"
out=$(ctl h1 checkpoint mc 2>&1) || fail "checkpoint with criu killed after the ack: $out"
echo "$out"
fault_fired h1 ckpt.after-post-dump
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "mc is $(inst_field h1 mc state)"
[ -f "$(th_dir h1)/state/instances/mc/ckpt/1/MANIFEST" ] || fail "the checkpoint was dropped"
[ "$(inst_copies mc)" = 0 ] || fail "mc still runs after its checkpoint"
# A restore that hangs is killed too, and undone: mc stays checkpointed.
cl_stop h1 || fail "h1's ternd did not stop cleanly"
TERN_FAULT=criu.restore:stall cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
out=$(ctl h1 restore mc 2>&1) && fail "a stuck restore succeeded: $out"
echo "refused: $out"
grep -q "did not finish within 5000 ms" <<<"$out" || fail "no reason: $out"
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "mc is $(inst_field h1 mc state)"
[ "$(inst_copies mc)" = 0 ] || fail "a stuck restore left mc running"
cl_stop h1 || fail "h1's ternd did not stop cleanly"
cl_start h1
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
ctl h1 restore mc >/dev/null
inst_verify h1 mc "$mcstate" "restored from the checkpoint whose criu was killed"
ctl h1 destroy mc >/dev/null

cl_stop_all || fail "a ternd did not stop cleanly"
echo "criu-stuck: ok"
