#!/usr/bin/env bash
# A protected container migrates, its commit point a transaction in the
# coordinator's store (docs/ha.md "Moving a protected instance"), on three
# test hosts (tests/lib/ha.sh: h3 coordinates with the journal store, h1
# and h2 hold leases).  The witness container mc (--ha restart) is the
# judge of "one runner" (tests/lib/witness.sh), not ternd:
#  - stop-and-copy h1 -> h2, then auto back (mc's witness runs beside a
#    forked shell, so auto takes stop-and-copy; pc, a protected memcheck
#    container, moves by post-copy both ways and checks its memory):
#    after each, ternctl ha status names the new owner at epoch + 1, the
#    coordinator logs a migration (no failover record), one copy runs;
#  - the coordinator refuses the commit (fault point coord.owner-move:
#    fail), post-copy and stop-and-copy: the migration rolls back, the
#    container runs on h1 at the same epoch, the operator is told why;
#  - the answer is lost after the store committed (coord.owner-move.
#    committed: kill, h3's ternd dies right after the transaction, then
#    starts again): h1 asks who owns mc, learns h2 from the store, and the
#    move completes there; never two copies;
#  - the coordinator does not nudge the target (coord.owner-move.nudge:
#    fail): h2 holds pc at pre-resume until its next renewal's grant
#    lists it at the new epoch, then resumes it;
#  - h1 crashes after the moves: mc and pc are h2's, nothing fails over.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
# Leases outlive a coordinator restart (the lost-answer case), even
# under ASan.
HA_TTL_MS=6000
HA_MARGIN_MS=600
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
ha_setup 'log_filters = "info"'
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"
# A fork without exec beside the witness: lazy pages would restore the
# memory the two share copy-on-write as private copies, so auto must take
# stop-and-copy for mc.
rootfs_make "$TH_ROOT/rootfs"
cat >"$TH_ROOT/rootfs/bin/witness-fork" <<'EOF'
#!/bin/sh
trap 'exit 0' TERM
(while :; do sleep 1; done) &
/bin/witness "$1" &
wait
EOF
chmod 755 "$TH_ROOT/rootfs/bin/witness-fork"
HA_WITNESS_PROGRAM=/bin/witness-fork ha_trial_setup ||
    fail "no witness container mc writing from h1"

state_on() { inst_field "$1" mc state 2>/dev/null; }
runs_on() { [ "$(state_on "$1")" = running ]; }
gone_from() { [ -z "$(state_on "$1")" ]; }
# ternctl ha status mc on HOST names OWNER at EPOCH.
owner_is() {
	cl_ctl "$1" ha status mc | grep -q "^mc  *container  *$2  *$3 "
}
writes_from() { [ "$(ha_owner)" = "$1" ]; }
# Witness processes running (not held by CRIU at pre-resume: a
# migration's target holds one until COMMIT).
copies() { witness_running mc "$@"; }
one_copy() { [ "$(copies h1 h2)" = 1 ]; }
leading() { cl_ctl h3 status 2>/dev/null | grep -q "coordinator:.*leading"; }
# Both agents hold a lease and are linked to h3 again (a lease granted
# before a restart outlives it: that alone says nothing of the link).
leases() {
	ha_has_lease h1 && ha_has_lease h2 &&
	    [ "$(cl_host_state h1 h3 2>/dev/null)" = up ] &&
	    [ "$(cl_host_state h2 h3 2>/dev/null)" = up ]
}
fired() { grep -c "fault point $1 fired: $2" "$(cl_log h3)" || true; }
# wanted_on HOST NAME: HOST's record of NAME says it is wanted running,
# so the next grant after a lost lease starts it again.
wanted_on() { grep -qx "want=1" "$TH_ROOT/$1/state/instances/$2/state"; }
# moved_to FROM TO EPOCH: where mc is now, as everything sees it.
moved_to() {
	wait_for 30 "mc running on $2" runs_on "$2"
	wait_for 10 "mc gone from $1" gone_from "$1"
	for h in h1 h2 h3; do
		owner_is $h "$2" "$3" ||
		    fail "ha status on $h: $(cl_ctl $h ha status mc)"
	done
	wanted_on "$2" mc || fail "mc is not wanted running on $2"
	wait_for 10 "the witness writing from $2" writes_from "$2"
	one_copy || fail "$(copies h1 h2) copies of mc run"
	witness_check "$HA_WITNESS" >/dev/null ||
	    fail "two copies of mc ran at once: $(witness_check "$HA_WITNESS")"
}
# coord_restart [FAULT]: h3's ternd stopped and started (with TERN_FAULT).
coord_restart() {
	cl_stop h3 || fail "h3's ternd did not stop cleanly"
	TERN_FAULT=${1:-} cl_start h3 || fail "h3's ternd did not start again"
	wait_for 30 "h3 leading again" leading
	wait_for 30 "h1 and h2 holding leases again" leases
	# Had a lease lapsed meanwhile, the grant starts them again.
	wait_for 30 "mc running" eval '[[ "$(inst_where mc)" = *:running ]]'
	wait_for 30 "pc running" eval '[[ "$(inst_where pc)" = *:running ]]'
}

wait_for 10 "mc known to the coordinator" owner_is h1 h1 1
# pc: memcheck, which never forks, so auto moves it by post-copy; it
# checks its own memory after every move.
cl_ctl h1 status | grep -q "lazy pages (post-copy) yes" ||
    fail "no post-copy here: $(cl_ctl h1 status | grep containers)"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" pc /bin/memcheck 16 \
    /var/log/memcheck.state
PC_STATE="$TH_ROOT/rootfs/var/log/memcheck.state"
cl_ctl h1 create pc --spec "$TH_ROOT/pc.json" --ha restart >/dev/null
cl_ctl h1 start pc >/dev/null
inst_wait_ready "$PC_STATE" || fail "memcheck did not start"
pc_owner_is() {
	cl_ctl "$1" ha status pc | grep -q "^pc  *container  *$2  *$3 "
}
wait_for 10 "pc known to the coordinator" pc_owner_is h1 h1 1
# pc_moved_to FROM TO EPOCH
pc_moved_to() {
	[ "$(inst_where pc)" = "$2:running" ] ||
	    fail "pc is at: $(inst_where pc)"
	inst_verify "$2" pc "$PC_STATE" "moved to $2"
	wanted_on "$2" pc || fail "pc is not wanted running on $2"
	pc_owner_is h3 "$2" "$3" || fail "ha status: $(cl_ctl h3 ha status pc)"
}

echo "--- stop-and-copy h1 -> h2"
out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy)
echo "$out"
moved_to h1 h2 2
grep -q "instance mc: migrated from h1 to h2, epoch 2" "$(cl_log h3)" ||
    fail "h3 did not log the move"
grep -q "mig .* mc: the coordinator recorded h2 as its owner (epoch 2)" \
    "$(cl_log h1)" || fail "h1 did not wait for the store"

echo "--- post-copy (auto) h1 -> h2"
out=$(cl_ctl h1 migrate pc --to h2)
echo "$out"
grep -q "(postcopy)" <<<"$out" || fail "auto did not pick post-copy: $out"
pc_moved_to h1 h2 2

echo "--- auto h2 -> h1, both"
out=$(cl_ctl h2 migrate mc --to h1 --mode auto)
echo "$out"
grep -q "(stopcopy)" <<<"$out" || fail "auto did not pick stop-and-copy for mc: $out"
moved_to h2 h1 3
out=$(cl_ctl h2 migrate pc --to h1)
echo "$out"
grep -q "(postcopy)" <<<"$out" || fail "auto did not pick post-copy: $out"
pc_moved_to h2 h1 3
grep -q "instance pc: migrated from h2 to h1, epoch 3" "$(cl_log h3)" ||
    fail "h3 did not log pc's move back"
grep -q "instance mc: migrated from h2 to h1, epoch 3" "$(cl_log h3)" ||
    fail "h3 did not log the move back"
# A migration is not a failover.
if grep -q "failover of mc" "$(cl_log h3)"; then
	fail "h3 logged a failover: $(grep "failover of mc" "$(cl_log h3)")"
fi
out=$(cl_ctl h1 failovers)
if grep -q "mc" <<<"$out"; then fail "ternctl failovers: $out"; fi

echo "--- the coordinator refuses the commit: rolled back"
coord_restart coord.owner-move:fail
st=0
out=$(cl_ctl h1 migrate pc --to h2 --mode postcopy 2>&1) || st=$?
echo "$out"
[ "$st" != 0 ] || fail "pc's migration succeeded: $out"
[ "$(fired coord.owner-move fail)" = 1 ] || fail "coord.owner-move did not fire"
grep -q "the coordinator did not record the move: fault point coord.owner-move" \
    <<<"$out" || fail "the operator was not told why: $out"
pc_gone_from_h2() { [ -z "$(inst_field h2 pc state 2>/dev/null)" ]; }
wait_for 20 "h2's copy of pc discarded" pc_gone_from_h2
pc_moved_to h2 h1 3	# still h1's, at the same epoch
run_before=$(witness_last "$HA_WITNESS" | cut -d' ' -f1)
st=0
out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1) || st=$?
echo "$out"
[ "$st" != 0 ] || fail "the migration succeeded: $out"
[ "$(fired coord.owner-move fail)" = 2 ] || fail "coord.owner-move did not fire"
grep -q "the coordinator did not record the move: fault point coord.owner-move" \
    <<<"$out" || fail "the operator was not told why: $out"
wait_for 20 "mc running on h1 again" runs_on h1
wait_for 20 "h2's copy discarded" gone_from h2
owner_is h3 h1 3 || fail "ha status: $(cl_ctl h3 ha status mc)"
ha__ms_sleep 500
writes_from h1 || fail "the witness writes from $(ha_owner)"
# Resumed, not started again: the same process.
[ "$(witness_last "$HA_WITNESS" | cut -d' ' -f1)" = "$run_before" ] ||
    fail "mc was started anew, not resumed"
one_copy || fail "$(copies h1 h2) copies of mc run"

echo "--- the answer is lost after the store committed"
coord_restart coord.owner-move.committed:kill@1
cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/lost.out" 2>&1 &
mig=$!
h3_dead() { ! cl_pid h3 >/dev/null; }
th_wait 60 h3_dead || fail "h3 did not die at coord.owner-move.committed;" \
    "ternctl migrate: $(cat "$TH_ROOT/lost.out")"
wait "$(cat "$(cl__pidfile h3)")" 2>/dev/null || :
rm -f "$(cl__pidfile h3)"
[ "$(grep -c "fault point coord.owner-move.committed fired: kill" \
    "$(cl_log h3)")" = 1 ] || fail "h3 died, but not at the fault point"
# Neither copy runs while h1 does not know the answer: h1's is frozen,
# h2's held at pre-resume (the witness's records say it below).
[ "$(copies h1 h2)" -le 1 ] || fail "$(copies h1 h2) copies while h3 is dead"
cl_start h3 || fail "h3's ternd did not start again"
wait_for 30 "h3 leading again" leading
wait_for 30 "h1 and h2 linked to h3 again" leases
st=0
wait $mig || st=$?
cat "$TH_ROOT/lost.out"
[ "$st" = 0 ] || fail "the migration failed ($st)"
grep -q "instance mc: no answer from coordinator h3 to its move to h2; asking who owns it" \
    "$(cl_log h1)" || fail "h1 did not ask"
grep -q "the coordinator's store says h2 owns it at epoch 4: the move was recorded" \
    "$(cl_log h1)" || fail "h1 did not learn it from the store"
moved_to h1 h2 4

echo "--- the target waits for its grant (not nudged: its next renewal)"
coord_restart coord.owner-move.nudge:fail
out=$(cl_ctl h1 migrate pc --to h2)
echo "$out"
[ "$(fired coord.owner-move.nudge fail)" = 1 ] || fail "the nudge was sent"
pc_moved_to h1 h2 4
# COMMIT comes well before the next renewal (every ttl/3): h2 waits,
# then resumes on the grant.  (Should a renewal fall in between, the
# grant came first and there is nothing to wait for: said, not failed.)
if grep -q "mig .* pc: committed at epoch 4; waiting for the coordinator's grant to list it" \
    "$(cl_log h2)"; then
	grep -q "mig .* pc: the coordinator's grant lists it at epoch 4; resuming" \
	    "$(cl_log h2)" || fail "h2 did not resume pc on its grant"
else
	echo "(h2's renewal came before COMMIT: no wait)"
fi

echo "--- h1 crashes: mc and pc are h2's, nothing fails over"
# CRIU restores the v1 controllers into the target's cgroups (cg_root),
# the unified (v2) one as dumped: here, where both test hosts are one
# machine, that is h1's, whose crash (cgroup.kill) would take them along.
# Hosts that are machines do not share it: give mc's and pc's tasks
# h2's, as they would have.
for p in $(find "$(th__cg1 h2)" -path "*/tern/[mp]c/*" -name cgroup.procs \
    -exec cat {} + 2>/dev/null); do
	echo "$p" >"$(th__cg2 h2)/cgroup.procs" 2>/dev/null || :
done
th_crash h1
failed() { grep -q "host h1 is failed" "$(cl_log h3)"; }
wait_for 30 "h1 declared failed" failed
ha__ms_sleep 1000
owner_is h3 h2 4 || fail "mc moved: $(cl_ctl h3 ha status mc)"
runs_on h2 || fail "mc is $(state_on h2) on h2"
if grep -q "failover of [mp]c" "$(cl_log h3)"; then
	fail "h3 failed over: $(grep "failover of [mp]c" "$(cl_log h3)")"
fi
pc_owner_is h3 h2 4 || fail "pc moved: $(cl_ctl h3 ha status pc)"
inst_verify h2 pc "$PC_STATE" "still on h2 after h1's crash"
[ "$(copies h2)" = 1 ] || fail "mc does not run once on h2"
witness_check "$HA_WITNESS" || fail "two copies of mc ran at once"

cl_stop h2 || fail "h2's ternd did not stop cleanly"
cl_stop h3 || fail "h3's ternd did not stop cleanly"
echo "ha-migrate: ok"
