#!/usr/bin/env bash
# While a post-copy's memory still arrives, the migration holds the
# instance on its target: what the operator or the workload does to it
# meanwhile must neither take it from under the move nor lose it.  Each
# move crosses a 40 Mbit/s link, so its 64 MiB take seconds to arrive:
#  1. h1 -> h2: checkpoint and migrate on h2 are refused with what to do;
#     a stop waits until every page is in, then stops it;
#  2. h2 -> h1: a destroy on h1 waits the same way, then destroys it (it
#     once freed the instance under the move: ternd crashed as the last
#     page came);
#  3. h1 -> h2: its init is killed, and while h2's stop of it is on the
#     thread pool (held there by fault point container.kill, delay) the
#     page transfer breaks: h2's lazy-pages daemon is killed (SIGSTOPped
#     first: when its tree dies it ends the transfer itself, sometimes
#     cleanly, sometimes as a break, milliseconds later).  The broken move
#     drops h2's copy only once that stop has ended (it once did at once,
#     and the stop's end then used the freed instance), h1 keeps the
#     record, and the operator is told that the init ended first.
#  4. h1 -> h2, migration_timeout_ms = 6000 on both: the transfer stalls
#     (h2's lazy-pages daemon SIGSTOPped).  The move breaks once no page
#     has crossed for that long (it once waited for good, and the
#     container with it): stopped on both hosts, h1 keeps the record,
#     h2's stuck daemon is killed.
# No case leaves a copy running anywhere, and h2's ternd must end cleanly
# without a sanitizer report.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

inst_two_hosts
cl_ctl h1 status | grep -q "lazy pages (post-copy) yes" ||
    { echo "SKIP: no post-copy here"; exit 77; }
inst_memcheck mc 64
inst_verify h1 mc "$INST_STATE" "started on h1"

# moving FROM TO: mc on its way FROM -> TO, running there, its memory
# still crossing a slow link (ternctl's output in $TH_ROOT/mig.out).
moving() {
	inst_postcopy_slowly mc "$1" "$2" "$TH_ROOT/mig.out"
}

# moved RC: the move ended, within 2 minutes, with exit status RC.
moved() {
	local rc i
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$INST_MIG" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$INST_MIG" 2>/dev/null ||
	    fail "the move did not end within 120 s: $(cat "$TH_ROOT/mig.out")"
	set +e
	wait "$INST_MIG"
	rc=$?
	set -e
	echo "ternctl migrate: exit $rc: $(cat "$TH_ROOT/mig.out")"
	[ "$rc" = "$1" ] || fail "the move exited $rc, not $1"
}

# refused HOST ACTION WORDS...: ternctl ACTION on HOST fails, telling the
# operator to wait until its memory is in.
refused() {
	local host=$1 verb=$2 out
	shift 2
	if out=$(cl_ctl "$host" "$verb" mc "$@" 2>&1); then
		fail "$verb on $host went ahead while mc's memory arrived: $out"
	fi
	echo "$verb on $host: $out"
	grep -q "its memory is still arriving from its source: $verb it when that is done" <<<"$out" ||
	    fail "$verb on $host: not told why, nor when to try again: $out"
}

echo "--- 1. h1 -> h2: checkpoint and migrate refused, a stop waits"
moving h1 h2
refused h2 checkpoint --leave-running
refused h2 migrate --to h1
waits=$(cl_log_count h2 "mc: stop waits until it is no longer receiving its memory (post-copy)")
out=$(cl_ctl h2 stop mc)
echo "stop on h2: $out"
[ "$(cl_log_count h2 "mc: stop waits until it is no longer receiving its memory (post-copy)")" -gt "$waits" ] ||
    fail "1: the stop on h2 did not wait for mc's memory"
moved 0
grep -q "instance mc stopped" <<<"$out" || fail "1: stop answered: $out"
# The stop went on only once every page was in.
arrived=$(grep -n "mc: every page arrived from h1" "$(cl_log h2)" | tail -n 1 | cut -d: -f1)
stopping=$(grep -n "mc: what it waited for ended (running): stopping it" "$(cl_log h2)" |
    tail -n 1 | cut -d: -f1)
[ -n "$arrived" ] && [ -n "$stopping" ] && [ "$stopping" -gt "$arrived" ] ||
    fail "1: h2 stopped mc before every page was in (lines ${arrived:-none}, ${stopping:-none})"
[ "$(inst_where mc)" = "h2:stopped" ] || fail "1: mc is at: $(inst_where mc)"
th_limit h2 off
cl_ctl h2 start mc >/dev/null
inst_wait_ready "$INST_STATE" || fail "1: memcheck did not start again on h2"

echo "--- 2. h2 -> h1: a destroy waits for every page, then destroys"
moving h2 h1
out=$(cl_ctl h1 destroy mc)
echo "destroy on h1: $out"
grep -q "mc: destroy waits until it is no longer receiving its memory (post-copy)" "$(cl_log h1)" ||
    fail "2: the destroy on h1 did not wait for mc's memory"
moved 0
grep -q "instance mc stopped and destroyed" <<<"$out" || fail "2: destroy answered: $out"
[ -z "$(inst_where mc)" ] || fail "2: after its destroy mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 0 ] || fail "2: $(inst_copies mc) copies of mc run"
th_limit h1 off
th_pid_alive "$(cl_pid h1)" || fail "2: h1's ternd died"
cl_check_log h1 || fail "2: h1's ternd"

echo "--- 3. h1 -> h2: its init dies, the pages break while h2 stops it"
inst_rearm h2 container.kill:delay=10000@1
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$INST_STATE" || fail "3: memcheck did not start on h1"
dropped=$(cl_log_count h2 "instance mc: destroyed")
moving h1 h2
lazy=$(inst_lazy_pids h2)
[ -n "$lazy" ] || fail "3: h2 has no lazy-pages daemon while mc's memory arrives"
kill -STOP $lazy
kill -KILL $(inst_memcheck_pids mc h2)
wait_for 30 "3: h2's stop of mc held on the pool" \
    grep -q "fault point container.kill fired: delay" "$(cl_log h2)"
kill -KILL $lazy
moved 1
grep -q "post-copy of mc to h2 broke after it ran there (its init ended first (init killed by signal 9)" "$TH_ROOT/mig.out" ||
    fail "3: the operator was not told what broke the move: $(cat "$TH_ROOT/mig.out")"
wait_for 30 "3: h2 dropped its copy once its stop ended" \
    eval '[ "$(cl_log_count h2 "instance mc: destroyed")" -gt "$dropped" ]'
# In this order: the move broke, the stop ended, the copy went.
order=$(grep -o "mc: post-copy from h1 broke after it ran here\|instance mc: stopping -> stopped\|instance mc: destroyed" "$(cl_log h2)" |
    tail -n 3 | tr '\n' '|')
[ "$order" = "mc: post-copy from h1 broke after it ran here|instance mc: stopping -> stopped|instance mc: destroyed|" ] ||
    fail "3: on h2, not break, stop's end, drop: $order"
[ "$(inst_where mc)" = "h1:stopped" ] || fail "3: mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 0 ] || fail "3: $(inst_copies mc) copies of mc run"
cl_wait_reaped h1 h2 || fail "3: a killed init was left a zombie"
th_limit h2 off

echo "--- 4. h1 -> h2: the transfer stalls"
for h in h1 h2; do
	cl_stop "$h" || fail "4: $h's ternd did not end cleanly"
	cl_conf "$h" 'migration_timeout_ms = 6000'
	cl_start "$h"
done
cl_wait_up h1 2 30
cl_wait_up h2 2 30
cl_wait_criu h2 || fail "4: h2 cannot run containers"
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$INST_STATE" || fail "4: memcheck did not start on h1"
moving h1 h2
lazy=$(inst_lazy_pids h2)
[ -n "$lazy" ] || fail "4: h2 has no lazy-pages daemon while mc's memory arrives"
kill -STOP $lazy
moved 1
grep -q "post-copy of mc to h2 broke after it ran there (no progress for 6000 ms in state" "$TH_ROOT/mig.out" ||
    fail "4: the operator was not told the transfer stalled: $(cat "$TH_ROOT/mig.out")"
wait_for 30 "4: mc stopped on both hosts" eval '[ "$(inst_copies mc)" = 0 ]'
[ "$(inst_where mc)" = "h1:stopped" ] || fail "4: mc is at: $(inst_where mc)"
wait_for 10 "4: h2's stuck lazy-pages daemon killed" eval '[ -z "$(inst_lazy_pids h2)" ]'
cl_wait_reaped h1 h2 || fail "4: a killed init was left a zombie"
th_limit h2 off

th_pid_alive "$(cl_pid h2)" || fail "h2's ternd died"
cl_stop h2 || fail "h2's ternd did not end cleanly"
cl_stop h1 || fail "h1's ternd did not end cleanly"
echo "PASS"
