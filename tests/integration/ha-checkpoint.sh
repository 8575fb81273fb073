#!/usr/bin/env bash
# Replicated checkpoints (--ha checkpoint) end to end, on three test
# hosts: h3 coordinates, h1 and h2 hold leases.  A witness container
# (tests/lib/witness.sh) below a shell that holds 8 MB that never change
# is created on h1 with --ha checkpoint --interval 2000 --replicas 1:
#  - h1 checkpoints it every 2 s, leaving it running, and sends each
#    generation to h2 as chunks; h2 acknowledges, h1 reports, h3 records;
#  - only the chunks h2 lacks cross: a later generation sends much less
#    than the first (the 8 MB stay put);
#  - the fault point replica.send.corrupt damages one chunk of the second
#    generation on the wire: h2 refuses it, h3 never records it, the next
#    one is kept again;
#  - h1 crashes: mc is restored on h2 from its replica (the witness's RUN
#    is the same: restored, not cold-started; rolled back by about an
#    interval at most), although h2's ternd dies once the generation is
#    taken in, before the restore (fault point replica.take.moved, kill):
#    restarted, it resumes the restore, which meets a cause that passes
#    (fault point replica.restore.busy) and waits for the next grant;
#  - h1 comes back and does not run it;
#  - h2 crashes in turn and restoring mc's replica on h1 meets a cause
#    that passes at every try (fault point replica.restore.busy): it
#    waits restore_wait_ms (3 s here), then fails; h3 says so, nothing
#    else is tried (no other replica), and mc runs nowhere rather than
#    cold-started.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
ha_setup 'restore_wait_ms = 3000'
TERN_FAULT=replica.send.corrupt:fail@1 cl_start h1
TERN_FAULT=replica.take.moved:kill@1 cl_start h2
cl_start h3
ha_wait || fail "no HA cluster"

rootfs_make "$TH_ROOT/rootfs"
witness_install "$TH_ROOT/rootfs"
cat >"$TH_ROOT/rootfs/bin/witness-big" <<'EOF'
#!/bin/sh
# witness-big FILE: /bin/witness FILE below a shell holding 8 MB that
# never change (most of each checkpoint stays the same).
big=$(head -c 8000000 /dev/zero | tr '\0' x)
/bin/witness "$1"
echo "${#big}"
EOF
chmod 755 "$TH_ROOT/rootfs/bin/witness-big"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/witness-big \
    /var/log/witness-mc
ticks=$(witness_file "$TH_ROOT/rootfs" mc)

copies() { witness_copies mc h1 h2 h3; }
# One runner, by the records' own time (CLOCK_REALTIME, which a restored
# copy's time namespace does not shift).
check_one() { witness_check "$ticks" >"$TH_ROOT/check.out" ||
    fail "two copies of mc ran at once: $(cat "$TH_ROOT/check.out")"; }
state_on() { inst_field "$1" mc state; }
# Running, or in one of its leave-running checkpoints (every 2 s; on a
# loaded machine one can take most of the interval).
alive_on() {
	case $(state_on "$1") in running | checkpointing) ;; *) return 1 ;; esac
	[ "$(copies)" = 1 ]
}
recorded() {
	grep -o "replica of mc: generation [0-9]* on h2 (epoch $1) recorded" \
	    "$(cl_log h3)" | awk '{print $5}'
}

echo "--- nonsense is refused"
out=$(cl_ctl h1 create bad --spec "$TH_ROOT/mc.json" --ha checkpoint \
    --interval 10 2>&1) && fail "--interval 10 accepted: $out"
grep -q "interval" <<<"$out" || fail "refusal: $out"
out=$(cl_ctl h1 create bad --spec "$TH_ROOT/mc.json" --replicas 2 2>&1) &&
    fail "--replicas without --ha checkpoint accepted: $out"
[ -z "$(state_on h1)" ] || true

echo "--- mc on h1, checkpointed to h2 every 2 s"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha checkpoint \
    --interval 2000 --replicas 1 >/dev/null
cl_ctl h1 start mc >/dev/null
wait_for 30 "mc running on h1" alive_on h1
three() { [ "$(recorded 1 | wc -l)" -ge 3 ]; }
wait_for 60 "three generations recorded by h3" three
echo "recorded: $(recorded 1 | tr '\n' ' ')"

echo "--- only what changed crosses"
crossed() {
	sed -n "s/.*mc: generation $1 acknowledged by h2 (\([0-9]*\) bytes crossed of \([0-9]*\)).*/\1 \2/p" \
	    "$(cl_log h1)"
}
gens=($(recorded 1))
read -r first total <<<"$(crossed "${gens[0]}")"
read -r later _ <<<"$(crossed "${gens[2]}")"
echo "generation ${gens[0]}: $first bytes crossed of $total;" \
    "generation ${gens[2]}: $later"
[ "$first" -ge 8000000 ] || fail "the first generation sent only $first bytes"
[ $((later * 4)) -lt "$first" ] ||
    fail "a later generation sent $later bytes, the first $first"

echo "--- a chunk damaged on the wire: that generation is not kept"
fault_fired h1 replica.send.corrupt fail
bad=$(sed -n 's/.*replica of mc from h1: generation \([0-9]*\) refused: .*digest.*/\1/p' \
    "$(cl_log h2)" | head -n 1)
[ -n "$bad" ] || fail "h2 did not refuse the damaged generation"
! grep -qx "$bad" <(recorded 1) || fail "h3 recorded damaged generation $bad"
[ "$(recorded 1 | tail -n 1)" -gt "$bad" ] ||
    fail "nothing kept after the damaged generation $bad"
echo "generation $bad refused by h2, not recorded"

echo "--- h1 crashes: mc is restored on h2 from its replica"
newest=$(recorded 1 | tail -n 1)
run=$(witness_last "$ticks" | awk '{print $1}')
th_crash h1
h2_dead() { ! cl_pid h2 >/dev/null; }
wait_for 30 "h2's ternd dying once mc's generation is taken in" h2_dead
fault_fired h2 replica.take.moved kill
TERN_FAULT=replica.restore.busy:fail@1 cl_start h2
wait_for 30 "mc running on h2" alive_on h2
restored() { grep -q "instance mc: restored from its replica" "$(cl_log h2)"; }
wait_for 10 "h2 restoring mc from its replica" restored
fault_fired h2 replica.restore.busy fail
grep -q "instance mc: its restore from replica generation [0-9]* waits: fault point replica.restore.busy" \
    "$(cl_log h2)" || fail "h2's restore did not say it waits for the next grant"
grep -q "instance mc: replica generation [0-9]* was taken in before ternd restarted: kept" \
    "$(cl_log h2)" || fail "h2's restarted ternd did not resume from the generation it had taken in"
! grep -q "instance mc: starting: " "$(cl_log h2)" ||
    fail "h2 cold-started mc: $(grep "instance mc: starting: " "$(cl_log h2)")"
got=$(sed -n 's/.*instance mc: restoring replica generation \([0-9]*\).*/\1/p' \
    "$(cl_log h2)" | tail -n 1)
[ "${got:-0}" -ge "$newest" ] ||
    fail "h2 restored generation ${got:-none}, not the newest recorded ($newest)"
echo "restored generation $got (newest recorded before the crash: $newest)"
witness_on_h2() { [ "$(witness_host "$ticks")" = h2 ]; }
wait_for 10 "mc's own record from h2" witness_on_h2
[ "$(witness_last "$ticks" | awk '{print $1}')" = "$run" ] ||
    fail "mc was cold-started on h2 (a new RUN id), not restored"
check_one
# The handover to the restored copy: same RUN, rolled back by what h1's
# copy wrote after the generation h2 restored was dumped.
l=$(grep "^handover .*: $run@h1 -> $run@h2:" "$TH_ROOT/check.out") ||
    fail "no handover h1 -> h2 of run $run: $(cat "$TH_ROOT/check.out")"
echo "$l"
roll=$(sed -n 's/.*rolled back \(-\{0,1\}[0-9]*\) (#[0-9]* -> #[0-9]*, \([0-9.]*\) s)$/\1 \2/p' <<<"$l")
[ -n "$roll" ] || fail "h2's copy did not start from a state h1's copy wrote: $l"
read -r roll lost <<<"$roll"
# 2 s of 20 ms records is ~100; allow two intervals for a slow machine
[ "$roll" -ge 0 ] && [ "$roll" -le 250 ] || fail "mc rolled back $roll records"

echo "--- h1 comes back: it does not run mc"
# CRIU puts a restored tree back into the cgroup v2 path it was dumped
# from (ckpt.c maps only the v1 controllers tern uses to this host's).
# On real hosts that is ternd's own cgroup, the same path everywhere; a
# test host's is its own (tern-test/NET-h1), which th_revive h1 empties
# with cgroup.kill.  Move the restored copy to h2's first.
moved=0
for p in $(find "$(th__cg2 h1)" -name cgroup.procs -exec cat {} + 2>/dev/null); do
	echo "$p" 2>/dev/null >"$(th__cg2 h2)/cgroup.procs" && moved=$((moved + 1))
done
echo "moved $moved restored processes from h1's cgroup v2 path to h2's"
th_revive h1
# Armed for the last part: a restore of a replica on h1 waits, in vain.
TERN_FAULT=replica.restore.busy:fail cl_start h1
wait_for 20 "a lease for h1" ha_has_lease h1
gone_from_h1() { [ -z "$(state_on h1)" ]; }
wait_for 20 "mc gone from h1" gone_from_h1
sleep 1
[ "$(copies)" = 1 ] || fail "$(copies) copies of mc run"
alive_on h2 || fail "mc does not run on h2 any more: $(state_on h2)"
check_one

echo "--- h2 crashes, the restore on h1 waits in vain: said, and mc runs nowhere"
on_h1() { grep -q "replica of mc: generation [0-9]* on h1 (epoch 2) recorded" \
    "$(cl_log h3)"; }
wait_for 30 "a replica of mc on h1 recorded" on_h1
th_crash h2
failed() { grep -q "failover of mc: restoring its replica on h1 failed: fault point replica.restore.busy" \
    "$(cl_log h3)"; }
wait_for 30 "h3 saying the restore on h1 failed" failed
fault_fired h1 replica.restore.busy fail
grep -q "instance mc: its restore from replica generation [0-9]* waits: fault point replica.restore.busy (tried again at each grant, for up to 3000 ms)" \
    "$(cl_log h1)" || fail "h1's restore did not wait before it failed"
# It failed when the wait ended, not at once: the first "waits" and the
# failure 3 s apart (log times, ISO 8601 with milliseconds).
t_of() { grep -m1 "$1" "$(cl_log h1)" | awk '{print $1}' |
    python3 -c 'import sys, datetime as d
print(d.datetime.fromisoformat(sys.stdin.read().strip().rstrip("Z")).timestamp())'; }
t0=$(t_of "instance mc: its restore from replica generation [0-9]* waits")
t1=$(t_of "instance mc: not restored from replica generation")
waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
awk -v w="$waited" 'BEGIN {exit !(w >= 2.9 && w < 20)}' ||
    fail "h1's restore failed $waited s after it began to wait, not when restore_wait_ms (3 s) ended"
echo "h1's restore waited $waited s, then failed"
grep -q "failover of mc: no other replica to restore: it stays on h1, not running" \
    "$(cl_log h3)" || fail "h3 did not say mc has nowhere else to go"
sleep 2		# grants come and go: none may start it
[ "$(copies)" = 0 ] || fail "$(copies) copies of mc run"
[ "$(state_on h1)" = stopped ] || fail "mc on h1 is $(state_on h1)"
th_revive h2
cl_start h2
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
