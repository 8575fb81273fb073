#!/usr/bin/env bash
# The commit point of a protected container's migration when the
# coordinator's word does not arrive (docs/ha.md "Moving a protected
# instance"), on three test hosts (tests/lib/ha.sh: h3 coordinates, h1
# and h2 hold leases).  The witness container mc (--ha restart) is the
# judge of "one runner" (tests/lib/witness.sh), not ternd.  Each case
# restarts h3's ternd with its fault point armed, checks that it fired,
# and ends with mc running on exactly one host and witness-check clean:
#  a) no grant for the target: the store records the move, but h3 leaves
#     mc out of the target's grants for 8 s (coord.owner-move.no-grant:
#     delay=8000): the target fences its held copy after two TTLs and
#     tells the source; the source's copy never runs again; once the
#     grant lists mc the target takes it over as a failover does;
#  b) the source's lease ends without an answer, the move recorded: h3
#     dies right after its transaction (coord.owner-move.committed: kill)
#     and stays down until the source says it gave up at its lease end;
#     mc then runs on the target (the store's owner), never on the source;
#  c) the same, the move not recorded: h3 dies as the request arrives
#     (coord.owner-move.received: kill): the target's copy never runs (no
#     grant lists it at the new epoch), and once h3 is back its grant
#     lists mc to the source at the old epoch: the source restores the
#     checkpoint it took at the commit point (the same process, nothing
#     lost).  Before, it stayed checkpointed there and ran nowhere.
#  d) as c, but the source's ternd restarts (twice) after its lease ended
#     and before h3 is back: what the commit point left (restore it if the
#     grant lists it here at its epoch) survives the restart in the
#     instance's state file.  Before, it lived in memory only: once h3
#     was back mc stayed checkpointed on h1 and ran nowhere.
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
ha_setup 'log_filters = "info"'
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"
ha_trial_setup || fail "no witness container mc writing from h1"

state_on() { inst_field "$1" mc state 2>/dev/null || true; }
runs_on() { [ "$(state_on "$1")" = running ]; }
# Witness processes running (not held by CRIU at pre-resume: a
# migration's target holds one until it resumes).
copies() { witness_running mc "$@"; }
leading() { cl_ctl h3 status 2>/dev/null | grep -q "coordinator:.*leading"; }
leases() {
	ha_has_lease h1 && ha_has_lease h2 &&
	    [ "$(cl_host_state h1 h3 2>/dev/null)" = up ] &&
	    [ "$(cl_host_state h2 h3 2>/dev/null)" = up ]
}
owner_is() {
	cl_ctl h3 ha status mc | grep -q "^mc  *container  *$1  *$2 "
}
writes_from() { [ "$(ha_owner)" = "$1" ]; }
h3_dead() { ! cl_pid h3 >/dev/null; }
h3_reap() {
	wait "$(cat "$(cl__pidfile h3)")" 2>/dev/null || :
	rm -f "$(cl__pidfile h3)"
}
# coord_restart [FAULT]: h3's ternd stopped and started (with TERN_FAULT).
coord_restart() {
	cl_stop h3 || fail "h3's ternd did not stop cleanly"
	TERN_FAULT=${1:-} cl_start h3 || fail "h3's ternd did not start again"
	wait_for 30 "h3 leading again" leading
	wait_for 30 "h1 and h2 holding leases again" leases
}
# settled_on HOST EPOCH: mc runs on HOST alone at EPOCH, and has never
# run twice.  The time it takes is bounded (the instance is never lost).
settled_on() {
	wait_for 40 "mc running on $1" runs_on "$1"
	wait_for 20 "mc owned by $1 at epoch $2" owner_is "$1" "$2"
	wait_for 10 "the witness writing from $1" writes_from "$1"
	[ "$(copies h1 h2)" = 1 ] || fail "$(copies h1 h2) copies of mc run"
	[ -z "$(state_on "$(ha__other "$1")")" ] ||
	    fail "mc is $(state_on "$(ha__other "$1")") on $(ha__other "$1")"
	witness_check "$HA_WITNESS" >/dev/null ||
	    fail "two copies of mc ran at once: $(witness_check "$HA_WITNESS")"
}
# Once a case's copies are settled, none starts later: a second look.
still_on() {
	ha__ms_sleep 1500
	[ "$(copies h1 h2)" = 1 ] || fail "$(copies h1 h2) copies of mc run"
	writes_from "$1" || fail "the witness writes from $(ha_owner)"
}
wait_for 10 "mc known to the coordinator" owner_is h1 1

echo "--- a) the target's grant does not come: its copy is fenced"
coord_restart coord.owner-move.no-grant:delay=8000@1
st=0
out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1) || st=$?
echo "migrate ($st): $out"
grep -q "fault point coord.owner-move.no-grant fired: delay=8000" \
    "$(cl_log h3)" || fail "coord.owner-move.no-grant did not fire"
fenced() {
	grep -q "mc: no lease grant from coordinator h3 listed it at epoch 2 within 4000 ms: its copy here is fenced" \
	    "$(cl_log h2)"
}
wait_for 20 "h2 fencing its copy" fenced
[ "$(copies h1 h2)" = 0 ] || fail "$(copies h1 h2) copies of mc run while h2 has no grant"
settled_on h2 2
grep -q "instance mc failed over to this host (epoch 2)" "$(cl_log h2)" ||
    fail "h2 did not take mc over from the grant"
still_on h2

echo "--- b) the source's lease ends without an answer; the move recorded"
coord_restart coord.owner-move.committed:kill@1
cl_ctl h2 migrate mc --to h1 --mode stopcopy >"$TH_ROOT/b.out" 2>&1 &
mig=$!
th_wait 60 h3_dead || fail "h3 did not die at coord.owner-move.committed"
h3_reap
fault_fired h3 coord.owner-move.committed kill
gave_up() {
	grep -q "mig .* mc: the coordinator's answer was lost and could not be learned before this host's lease ended; it never runs here again" \
	    "$(cl_log "$1")"
}
wait_for 30 "h2 giving up at its lease end" gave_up h2
[ "$(copies h1 h2)" = 0 ] || fail "$(copies h1 h2) copies of mc run while h3 is down"
cl_start h3 || fail "h3's ternd did not start again"
wait_for 30 "h3 leading again" leading
wait $mig || :
echo "migrate: $(cat "$TH_ROOT/b.out")"
settled_on h1 3
still_on h1

echo "--- c) the source's lease ends without an answer; the move not recorded"
coord_restart coord.owner-move.received:kill@1
wait_for 20 "mc running on h1" runs_on h1
run_before=$(witness_last "$HA_WITNESS" | cut -d' ' -f1)
cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/c.out" 2>&1 &
mig=$!
th_wait 60 h3_dead || fail "h3 did not die at coord.owner-move.received"
h3_reap
fault_fired h3 coord.owner-move.received kill
wait_for 30 "h1 giving up at its lease end" gave_up h1
[ "$(copies h1 h2)" = 0 ] || fail "$(copies h1 h2) copies of mc run while h3 is down"
cl_start h3 || fail "h3's ternd did not start again"
wait_for 30 "h3 leading again" leading
wait $mig || :
echo "migrate: $(cat "$TH_ROOT/c.out")"
settled_on h1 3
grep -q "instance mc: coordinator h3 lists it here at epoch 3: its migration's move was not recorded; restoring the checkpoint taken at the commit point" \
    "$(cl_log h1)" || fail "h1 did not restore mc on the store's word"
# Restored, not started anew: the same process, nothing lost.
[ "$(witness_last "$HA_WITNESS" | cut -d' ' -f1)" = "$run_before" ] ||
    fail "mc was started anew, not restored from the commit point"
still_on h1

echo "--- d) as c, and the source's ternd restarts before the coordinator is back"
coord_restart coord.owner-move.received:kill@1
wait_for 20 "mc running on h1" runs_on h1
run_before=$(witness_last "$HA_WITNESS" | cut -d' ' -f1)
restores=$(grep -c "instance mc: coordinator h3 lists it here at epoch 3: its migration's move was not recorded" "$(cl_log h1)" || :)
cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/d.out" 2>&1 &
mig=$!
th_wait 60 h3_dead || fail "h3 did not die at coord.owner-move.received"
h3_reap
fault_fired h3 coord.owner-move.received kill
wait_for 30 "h1 giving up at its lease end" gave_up h1
wait $mig || :
echo "migrate: $(cat "$TH_ROOT/d.out")"
# Twice: the first restart's ternd writes the state file the second
# reads (before, it wrote ha=0 and unconfirmed=0 at load, and the second
# restart left mc checkpointed on h1, running nowhere).
statefile="$(th_dir h1)/state/instances/mc/state"
kept() { grep -qx "unconfirmed=1" "$statefile" && grep -qx "ha=1" "$statefile"; }
for restart in 1 2; do
	cl_stop h1 || fail "h1's ternd did not stop cleanly"
	cl_start h1 || fail "h1's ternd did not start again ($restart)"
	cl_wait_listing h1 || fail "h1's ternd lists nothing after restart $restart"
	[ "$(state_on h1)" = checkpointed ] ||
	    fail "mc is '$(state_on h1)' on h1 after restart $restart, not checkpointed"
	th_wait 10 kept || fail "h1's state file lost ha=1 or unconfirmed=1" \
	    "after restart $restart: $(tr '\n' ' ' <"$statefile")"
done
[ "$(copies h1 h2)" = 0 ] || fail "$(copies h1 h2) copies of mc run while h3 is down"
cl_start h3 || fail "h3's ternd did not start again"
wait_for 30 "h3 leading again" leading
settled_on h1 3
[ "$(grep -c "instance mc: coordinator h3 lists it here at epoch 3: its migration's move was not recorded" "$(cl_log h1)" || :)" = $((restores + 1)) ] ||
    fail "h1 did not restore mc on the store's word after its restart"
[ "$(witness_last "$HA_WITNESS" | cut -d' ' -f1)" = "$run_before" ] ||
    fail "mc was started anew, not restored from the commit point"
still_on h1

cl_stop h1 && cl_stop h2 && cl_stop h3 || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
