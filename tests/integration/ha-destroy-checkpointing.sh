#!/usr/bin/env bash
# ternctl destroy while a checkpoint runs: three test hosts, h3
# coordinates.  h1's ternd stalls its first three CRIU dumps (fault point
# criu.dump:stall@3: CRIU is stopped, as one stuck in the kernel).
#  1. A witness container mc (--ha checkpoint, 1 s interval, replica on
#     h2): its first scheduled checkpoint stalls; ternctl destroy mc
#     succeeds (it cancels the dump and destroys), the coordinator
#     records the release, no CRIU and no copy of mc is left, and
#     nothing of that generation reaches h2.
#  2. mc again, unprotected: the operator's ternctl checkpoint stalls; a
#     destroy succeeds and the checkpoint's answer is an error.
#  3. s1, protected: its scheduled checkpoint stalls; ternctl stop s1
#     succeeds (it cancels the dump and stops; before, it was refused:
#     "instance s1 is checkpointing"), and s1 stays stopped.
#  4. r1..r5, protected with a 1 s interval (the least), destroyed at
#     random moments (a dump may run or not): every destroy succeeds.
#  5. A start under way (h1 restarted with the fault point
#     ctr.start.before-running:delay: the processes made, not yet
#     running), as after an HA restart that follows a coordinator's
#     outage: ternctl destroy and ternctl stop wait for it and succeed
#     (before, both were refused: "instance p1 is starting: try again
#     when it is done", seen in ha-coord-kill.sh's CI run).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/assert.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
ha_setup
TERN_FAULT=criu.dump:stall@3 cl_start h1
cl_start h2
cl_start h3
ha_wait || fail "the cluster did not come up"

rootfs_make "$TH_ROOT/rootfs"
witness_spec "$TH_ROOT/rootfs" mc
log1=$(cl_log h1)
copies() { witness_copies mc h1 h2 h3; }
state_on() { inst_field "$1" mc state 2>/dev/null || true; }
checkpointing() { [ "$(state_on h1)" = checkpointing ]; }
stalled() { [ "$(grep -c "fault point criu.dump fired: stall" "$log1")" -ge "$1" ]; }
gone() { [ -z "$(state_on h1)" ] && [ "$(copies)" = 0 ]; }
no_criu() {
	! pgrep -f "criu.*swrk" -P "$(cl_pid h1)" >/dev/null 2>&1
}

echo "--- 1: destroy during a scheduled (stalled) replica checkpoint"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha checkpoint \
    --interval 1000 --replicas 1 >/dev/null
cl_ctl h1 start mc >/dev/null
wait_for 30 "the first dump of mc stalled" stalled 1
wait_for 10 "mc checkpointing on h1" checkpointing
out=$(cl_ctl h1 destroy mc 2>&1) || fail "destroy refused: $out"
echo "$out"
grep -q "destroyed; coordinator h3 recorded" <<<"$out" ||
    fail "the destroy did not wait for the coordinator's record: $out"
fault_fired h1 criu.dump stall
wait_for 20 "mc gone from h1" gone
no_criu || fail "a criu of h1 is still there"
grep -q "instance mc: destroy waits for its checkpoint" "$log1" ||
    fail "h1 did not say the destroy waited for the checkpoint"
! grep -q "mc: generation [0-9]* acknowledged" "$log1" ||
    fail "a generation of mc went to h2"
owner3() { cl_ctl h3 ha status 2>/dev/null | awk '$1 == "mc" { print $3 }'; }
[ "$(owner3)" = - ] || fail "h3 has mc on $(owner3)"

echo "--- 2: destroy during the operator's (stalled) checkpoint"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
cl_ctl h1 checkpoint mc --leave-running >"$TH_ROOT/ckpt.out" 2>&1 &
ckpt=$!
wait_for 20 "the operator's dump of mc stalled" stalled 2
wait_for 10 "mc checkpointing on h1" checkpointing
out=$(cl_ctl h1 destroy mc 2>&1) || fail "destroy refused: $out"
echo "$out"
if wait "$ckpt"; then
	fail "the stalled checkpoint succeeded: $(cat "$TH_ROOT/ckpt.out")"
fi
echo "checkpoint: $(cat "$TH_ROOT/ckpt.out")"
wait_for 20 "mc gone from h1" gone
no_criu || fail "a criu of h1 is still there"

echo "--- 3: stop during a scheduled (stalled) replica checkpoint"
witness_spec "$TH_ROOT/rootfs" s1
s1_state() { inst_field h1 s1 state 2>/dev/null || true; }
s1_is() { [ "$(s1_state)" = "$1" ]; }
cl_ctl h1 create s1 --spec "$TH_ROOT/s1.json" --ha checkpoint \
    --interval 1000 --replicas 1 >/dev/null
cl_ctl h1 start s1 >/dev/null
wait_for 30 "the third dump (s1's) stalled" stalled 3
wait_for 10 "s1 checkpointing on h1" s1_is checkpointing
out=$(cl_ctl h1 stop s1 2>&1) || fail "stop refused: $out"
echo "$out"
wait_for 20 "s1 stopped on h1" s1_is stopped
grep -q "instance s1: stop waits for its checkpoint" "$log1" ||
    fail "h1 did not say the stop waited for the checkpoint"
no_criu || fail "a criu of h1 is still there"
[ "$(witness_copies s1 h1 h2 h3)" = 0 ] || fail "s1 still runs"
sleep 2		# several grants and ticks: none may start or checkpoint it
s1_is stopped || fail "s1 is $(s1_state) after its stop"
cl_ctl h1 destroy s1 >/dev/null || fail "s1 could not be destroyed"

echo "--- 4: destroys at random moments of a 1 s schedule"
# A released name stays in the coordinator's records: one name a round.
for i in 1 2 3 4 5; do
	n=r$i
	witness_spec "$TH_ROOT/rootfs" $n
	cl_ctl h1 create $n --spec "$TH_ROOT/$n.json" --ha checkpoint \
	    --interval 1000 --replicas 1 >/dev/null
	cl_ctl h1 start $n >/dev/null
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.5 + r % 200 / 100 }')"
	st=$(inst_field h1 $n state 2>/dev/null || true)
	out=$(cl_ctl h1 destroy $n 2>&1) ||
	    fail "destroy $i ($n $st) refused: $out"
	echo "  destroy $i ($n was $st): ok"
	r_gone() { [ -z "$(inst_field h1 $n state 2>/dev/null || true)" ] &&
	    [ "$(witness_copies $n h1 h2 h3)" = 0 ]; }
	wait_for 20 "$n gone from h1" r_gone
done
no_criu || fail "a criu of h1 is still there"
sleep 1
[ "$(copies)" = 0 ] || fail "$(copies) copies of mc run"

echo "--- 5: destroy and stop while a start is under way"
START_MS=4000
cl_stop h1 || fail "h1's ternd did not stop cleanly"
TERN_FAULT="ctr.start.before-running:delay=$START_MS@2" cl_start h1
wait_for 20 "a lease for h1" ha_has_lease h1
log1=$(cl_log h1)
held() { [ "$(grep -c "fault point ctr.start.before-running fired" "$log1")" -ge "$1" ]; }
p_state() { inst_field h1 $1 state 2>/dev/null || true; }
for act in destroy stop; do
	n=p-$act
	witness_spec "$TH_ROOT/rootfs" $n
	cl_ctl h1 create $n --spec "$TH_ROOT/$n.json" >/dev/null
	cl_ctl h1 start $n >"$TH_ROOT/start.out" 2>&1 &
	starting=$!
	[ $act = destroy ] && nth=1 || nth=2
	wait_for 20 "h1's start of $n held" held $nth
	out=$(cl_ctl h1 $act $n 2>&1) || fail "$act of $n refused: $out"
	echo "  $act while starting: $out"
	wait "$starting" || fail "the start of $n failed: $(cat "$TH_ROOT/start.out")"
	grep -q "instance $n: $act waits until it is no longer starting" "$log1" ||
	    fail "h1 did not say the $act of $n waited for its start"
	[ "$(witness_copies $n h1 h2 h3)" = 0 ] || fail "$n still runs after its $act"
done
fault_fired h1 ctr.start.before-running "delay=$START_MS"
[ -z "$(p_state p-destroy)" ] || fail "p-destroy is $(p_state p-destroy) after its destroy"
[ "$(p_state p-stop)" = stopped ] || fail "p-stop is $(p_state p-stop) after its stop"
cl_ctl h1 destroy p-stop >/dev/null || fail "p-stop could not be destroyed"
cl_stop h1 && cl_stop h2 && cl_stop h3 || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
