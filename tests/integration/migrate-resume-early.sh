#!/usr/bin/env bash
# Stop-and-copy resuming early: the target resumes the container once all
# of its checkpoint is there and copies its memory in afterwards from that
# local copy (a local criu lazy-pages; stopcopy_resume_early):
#  1. h1 -> h2: resumed before its memory was in, then all in; memcheck
#     verifies every byte;
#  2. h2 -> h1, where stopcopy_resume_early = false: all memory restored
#     before the resume (no loader), verified;
#  3. h1 -> h2 with h2's loader killed right after the resume (fault
#     ctr.loader): mc is killed on h2 at once, never left running on
#     missing memory, and stopped with an error that names the move's
#     checkpoint; h1 has nothing of it; ternctl restore on h2 brings it
#     back from that checkpoint, verified;
#  4. a ternd that stops waits for its loader (killed, the container
#     would run on zeros): h2's loader is held stopped (ctr.loader:stall)
#     and h2's ternd told to stop; it still runs 2 s later; the loader
#     let go, ternd exits cleanly, mc runs on, and a new ternd on h2
#     adopts it with its memory whole;
#  5. h2's loader killed as the resume goes (ctr.lazy.resume), its exit
#     racing CRIU's answer: in either order no copy runs, and the
#     checkpoint the outcome names (h1's or h2's) restores mc, verified;
#     once as the race goes, once with CRIU's answer held back
#     (ctr.target.answer), so that the tree is reaped before it is
#     watched;
#  6. h2's loader dies while h2's ternd cannot hear it (stopped): mc, asked
#     to check its memory, waits on its first missing page instead of
#     reading zeros (ternd holds the loader's userfaultfds), until ternd
#     goes on and kills it; the move's checkpoint restores it, verified.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

CONF_H1=('stopcopy_resume_early = false')
inst_two_hosts
# Large enough that its loader is still at work when the fault points
# act on it (about half a second here).
inst_memcheck mc 384
inst_verify h1 mc "$INST_STATE" "started on h1"

# restore_named ERROR WHAT: restore mc on h2 from the generation its
# ERROR names, and have memcheck verify it.
restore_named() {
	local gen
	gen=$(sed -n 's/.*ternctl restore mc --generation \([0-9]*\) .*/\1/p' <<<"$1")
	[ -n "$gen" ] || fail "no generation in mc's error: $1"
	cl_ctl h2 restore mc --generation "$gen"
	inst_verify h2 mc "$INST_STATE" "$2"
}
early="mc: lazy-pages daemon for checkpoint [0-9]* started (pages from the images here)"

# to_h1: mc to h1 unless it is there already (a case before may have
# ended with it restored on h1).
to_h1() {
	[ "$(inst_where mc)" = h1:running ] || cl_ctl h2 migrate mc --to h1 --mode stopcopy
}
# held_loader: mc back to h1, then to h2 again with h2's loader stopped
# right after the resume (ctr.loader:stall); sets loader to its pid.
held_loader() {
	to_h1
	inst_rearm h2 ctr.loader:stall@1
	cl_ctl h1 migrate mc --to h2 --mode stopcopy
	fault_fired h2 ctr.loader stall
	loader=$(sed -n 's/.*criu lazy-pages started as pid \([0-9]*\).*/\1/p' "$(cl_log h2)" | tail -n 1)
	[ -n "$loader" ] || fail "no pid of h2's loader in its log"
}

# 1. Resumed early on h2.
cl_ctl h1 migrate mc --to h2 --mode stopcopy
[ "$(inst_where mc)" = "h2:running" ] || fail "after h1->h2 mc is at: $(inst_where mc)"
[ "$(cl_log_count h2 "$early")" = 1 ] || fail "h2 did not resume mc early"
wait_for 30 "mc's memory all in on h2" \
    grep -q "instance mc: its memory is all in" "$(cl_log h2)"
inst_verify h2 mc "$INST_STATE" "moved to h2, resumed early"

# 2. h1 does not resume early: its configuration says so.
cl_ctl h2 migrate mc --to h1 --mode stopcopy
[ "$(inst_where mc)" = "h1:running" ] || fail "after h2->h1 mc is at: $(inst_where mc)"
[ "$(cl_log_count h1 "lazy-pages daemon")" = 0 ] ||
    fail "h1 resumed mc early although stopcopy_resume_early = false"
inst_verify h1 mc "$INST_STATE" "moved back to h1, all memory first"

# 3. h2's loader dies right after the resume.
inst_rearm h2 ctr.loader:fail@1
cl_ctl h1 migrate mc --to h2 --mode stopcopy
fault_fired h2 ctr.loader fail
stopped_on_h2() { [ "$(inst_field h2 mc state)" = stopped ]; }
th_wait 30 stopped_on_h2 || fail "mc on h2 is $(inst_field h2 mc state), not stopped"
err=$(inst_field h2 mc last_error)
echo "mc on h2: $err"
grep -q "still being copied in .* ternctl restore mc --generation [0-9]* brings it back" <<<"$err" ||
    fail "mc's error on h2 does not say what happened and what to do: $err"
[ "$(inst_copies mc)" = 0 ] || fail "$(inst_copies mc) copies of mc run after its loader died"
cl_wait_reaped h1 h2 ||
    fail "after the loader died: a killed init was left a zombie"
[ -z "$(inst_field h1 mc state)" ] || fail "h1 still lists mc: $(inst_where mc)"
restore_named "$err" "restored on h2 from the move's checkpoint"
[ "$(inst_where mc)" = "h2:running" ] || fail "after the restore mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"

# 4. h2's ternd stops while its loader is held.
held_loader
ternd=$(cl_pid h2)
kill -TERM "$ternd"
sleep 2
th_pid_alive "$ternd" || fail "h2's ternd exited while mc's memory was still being copied in"
kill -CONT "$loader"
th_wait 30 cl__gone "$ternd" || fail "h2's ternd did not exit once its loader was done"
cl_stop h2 || fail "h2's ternd did not stop cleanly once its loader was done"
grep -q "instance mc: its memory is all in" "$(cl_log h2)" ||
    fail "h2's ternd stopped without its loader finishing"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run after h2's ternd stopped"
cl_start h2
cl_wait_up h1 2 30
cl_wait_up h2 2 30
[ "$(inst_where mc)" = "h2:running" ] || fail "h2's new ternd did not adopt mc: $(inst_where mc)"
inst_verify h2 mc "$INST_STATE" "adopted on h2 after its loader finished"
# 5. h2's loader dies as the resume goes (ctr.lazy.resume): its exit
# and CRIU's answer race.  Whichever comes first, no copy may run on
# missing memory and one checkpoint must bring mc back: h1's (the move
# failed, h2 could not resume it) or h2's (the move committed, mc
# stopped there at once).  loader_dies_at_resume LABEL [FAULT]: one such
# move, with h2's TERN_FAULT extended by FAULT.
settled() {
	case "$(inst_where mc)" in
	h1:checkpointed|h2:stopped) return 0 ;;
	*) return 1 ;;
	esac
}
loader_dies_at_resume() {
	local label=$1 extra=${2:-} out moved err fired
	to_h1
	inst_rearm h2 "ctr.lazy.resume:fail@1${extra:+,$extra}"
	fired=$(cl_log_count h2 "fault point ctr.lazy.resume fired: fail")
	if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then moved=1; else moved=0; fi
	echo "$label: $out"
	[ "$(cl_log_count h2 "fault point ctr.lazy.resume fired: fail")" = $((fired + 1)) ] ||
	    fail "$label: the fault point ctr.lazy.resume never fired on h2"
	th_wait 30 settled || fail "$label: mc did not settle after its loader died at the resume: $(inst_where mc)"
	[ "$(inst_copies mc)" = 0 ] || fail "$label: $(inst_copies mc) copies of mc run after its loader died at the resume"
	cl_wait_reaped h1 h2 ||
	    fail "$label: after the loader died at the resume: a killed init was left a zombie"
	case "$(inst_where mc)" in
	h1:checkpointed)
		[ $moved = 0 ] || fail "$label: the move succeeded, yet mc is h1's: $out"
		grep -q "h2 could not resume it (copying its memory in from the checkpoint here failed" <<<"$out" ||
		    fail "$label: the failed move does not say why: $out"
		echo "$label: the resume failed on h2; mc is restored from h1's checkpoint"
		cl_ctl h1 restore mc
		inst_verify h1 mc "$INST_STATE" "restored on h1 after h2's loader died ($label)"
		;;
	h2:stopped)
		[ $moved = 1 ] || fail "$label: mc is h2's, yet the move failed: $out"
		err=$(inst_field h2 mc last_error)
		grep -q "ternctl restore mc --generation [0-9]* brings it back" <<<"$err" ||
		    fail "$label: mc's error on h2 does not say what to do: $err"
		echo "$label: the move committed and mc stopped on h2; it is restored from h2's copy"
		restore_named "$err" "restored on h2 after its loader died ($label)"
		;;
	esac
	[ "$(inst_copies mc)" = 1 ] || fail "$label: $(inst_copies mc) copies of mc run"
}
loader_dies_at_resume "5a, as it comes"
# 5b. CRIU's answer held back (ctr.target.answer): the loader's death
# goes first, and the tree's init is killed and reaped before the
# answer watches it.  That init's exit must still settle mc.
late="instance mc: its init [0-9]*\( was reaped before it was watched\|, killed before it was watched, is watched again\)"
early_late=$(cl_log_count h2 "$late")
loader_dies_at_resume "5b, answer late" ctr.target.answer:delay=3000@1
fault_fired h2 ctr.target.answer delay
# The order was forced: the answer found the init killed already, unless
# the resume failed on h2 (then CRIU's answer watched nothing).
[ "$(inst_where mc)" = h1:running ] ||
    [ "$(cl_log_count h2 "$late")" -gt "$early_late" ] ||
    fail "5b: CRIU's answer was held back, yet it watched an init not killed before it"

# 6. A dead loader's missing pages are never read as zeros, however late
# its ternd hears: h2's loader is held stopped (ctr.loader:stall), mc is
# asked to check its memory (it waits on the first page not in), h2's
# ternd is stopped and the loader killed.  mc must still be waiting, not
# checking zeros, when ternd goes on and kills it.
held_loader
pid=$(inst_field h2 mc pid)
[ -n "$pid" ] || fail "no pid of mc on h2"
ternd=$(cl_pid h2)
lines=$(wc -l <"$INST_STATE")
kill -USR1 "$pid"
sleep 0.5	# its check reaches a page not in yet
kill -STOP "$ternd"
kill -KILL "$loader"
sleep 1
after=$(wc -l <"$INST_STATE")
# Alive and waiting, before ternd can act: dead of SIGSEGV, or a line
# written, it read zeros.
alive=0
kill -0 "$pid" 2>/dev/null && alive=1
echo "mc (pid $pid) with its loader dead: alive=$alive, waits in $(cat "/proc/$pid/wchan" 2>/dev/null || echo '?')"
kill -CONT "$ternd"
[ $alive = 1 ] || fail "mc died after its loader did, before ternd could act (it ran on zeros)"
[ "$after" = "$lines" ] || fail "mc ran on after its loader died: $(tail -n 1 "$INST_STATE")"
th_wait 30 stopped_on_h2 || fail "mc on h2 is $(inst_field h2 mc state), not stopped"
err=$(inst_field h2 mc last_error)
echo "mc on h2: $err"
grep -q "still being copied in .* ternctl restore mc --generation [0-9]* brings it back" <<<"$err" ||
    fail "mc on h2 did not stop for its loader's death: $err"
[ "$(wc -l <"$INST_STATE")" = "$lines" ] || fail "mc answered after its loader died: $(tail -n 1 "$INST_STATE")"
[ "$(inst_copies mc)" = 0 ] || fail "$(inst_copies mc) copies of mc run after its loader died"
cl_wait_reaped h1 h2 ||
    fail "after the loader died: a killed init was left a zombie"
restore_named "$err" "restored on h2 after its loader died unheard"
cl_stop_all || fail "a ternd did not stop cleanly (or a sanitizer spoke)"
echo "migrate-resume-early: ok"
