#!/usr/bin/env bash
# Post-copy: CRIU's lazy pages, the page channel relayed over tern's
# mutual-TLS streams.  A container moves h1 -> h2 -> h1 and memcheck
# verifies its memory after each move; auto picks post-copy here and says
# why.  Past the switch the memory is split between the hosts: a cut link
# or a dead lazy-pages daemon (also one that dies as the target resumes)
# stops the container on both (never two copies, never one with holes in
# its memory), the operator is told to
# restore its last checkpoint, and that restore works.  So does a source
# ternd killed in the middle, and a target one (whose copy its guard
# kills before it reads a page it lacks).
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
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"
cl_ctl h1 status | grep -q "lazy pages (post-copy) yes" ||
    fail "no post-copy here: $(cl_ctl h1 status | grep containers)"

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 64 /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"
inst_verify h1 mc "$state" "started on h1"

out=$(cl_ctl h1 migrate mc --to h2)
echo "$out"
grep -q "(postcopy)" <<<"$out" || fail "auto did not pick post-copy: $out"
grep -q "soft-dirty" <<<"$out" || fail "auto did not say why: $out"
[ "$(inst_where mc)" = "h2:running" ] || fail "after h1->h2 mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "moved to h2 by post-copy"
cl_ctl h2 migrate mc --to h1 --mode postcopy
[ "$(inst_where mc)" = "h1:running" ] || fail "after h2->h1 mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "moved back to h1 by post-copy"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
# Once every page is in, each host's guard of missing pages (below,
# dstkill) lets the tree go: it holds nothing that could kill a container
# with all of its memory.
uffd_guards() {	# HOST's guard of missing pages
	local p
	for p in $(pgrep -f -- "--uffd-guard" || true); do
		[ "$(ip netns identify "$p")" = "tern-$TH_NET-$1" ] && echo "$p"
	done
	return 0
}
guard_holds() {	# how many userfaultfds HOST's guard holds
	local p n=0
	for p in $(uffd_guards "$1"); do
		n=$((n + $(find "/proc/$p/fd" -lname "anon_inode:\[userfaultfd\]" 2>/dev/null | wc -l)))
	done
	echo $n
}
[ -n "$(uffd_guards h1)" ] && [ -n "$(uffd_guards h2)" ] ||
    fail "no guard of missing pages runs: h1 '$(uffd_guards h1)', h2 '$(uffd_guards h2)'"
let_go() { [ "$(guard_holds h1)$(guard_holds h2)" = 00 ]; }
th_wait 10 let_go ||
    fail "after complete post-copies the guards hold userfaultfds: h1 $(guard_holds h1), h2 $(guard_holds h2)"
# Images without their pages are never kept as checkpoints.
for h in h1 h2; do
	if find "$TH_ROOT/$h/state/instances" -name MANIFEST | grep -q .; then
		fail "$h kept a post-copy generation: $(find "$TH_ROOT/$h/state/instances" -name MANIFEST)"
	fi
done

cl_ctl h1 checkpoint mc --leave-running >/dev/null
inst_verify h1 mc "$state" "checkpointed"

# stopped_on_both WHAT RC: the move (its output in $TH_ROOT/WHAT.out, its
# exit status RC) failed, told the operator what to do, and no copy of
# mc runs on either host.
stopped_on_both() {
	local what=$1 rc=$2 i
	echo "$what: $(cat "$TH_ROOT/$what.out")"
	[ "$rc" = 1 ] || fail "$what: migrate exited $rc"
	grep -q "restore its last checkpoint" "$TH_ROOT/$what.out" ||
	    fail "$what: the operator was not told what to do"
	for ((i = 0; i < 300; i++)); do
		[ "$(inst_copies mc)" = 0 ] && break
		sleep 0.1
	done
	[ "$(inst_copies mc)" = 0 ] || fail "$what: $(inst_copies mc) copies of mc still run"
	# Both copies' inits are reaped, not left zombies of ternd's.
	cl_wait_reaped h1 h2 || fail "$what: a killed init was left a zombie"
}

# moving_to_h2 CASE: start moving mc h1 -> h2 by post-copy through a slow
# link (its output in $TH_ROOT/CASE.out, the ternctl's pid in ctl) and
# return once it runs on h2, its memory on the way.
moving_to_h2() {
	inst_postcopy_slowly mc h1 h2 "$TH_ROOT/$1.out"
	ctl=$INST_MIG
}

# lost CASE ACTION...: move mc h1 -> h2 through a slow link and run ACTION
# while its memory is on the way.  Both copies must stop, and the last
# checkpoint must restore on h1.
lost() {
	local what=$1 rc
	shift
	moving_to_h2 "$what"
	"$@"
	set +e
	wait $ctl; rc=$?
	set -e
	stopped_on_both "$what" $rc
	th_limit h2 off
}

lost cut th_cut h2
th_heal h2
cl_wait_up h1 2 30
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "after the cut mc is at: $(inst_where mc)"
[ -z "$(inst_field h2 mc state)" ] || fail "h2 kept mc: $(inst_field h2 mc state)"
cl_ctl h1 restore mc >/dev/null
inst_verify h1 mc "$state" "restored on h1 after the cut"

kill_lazy() {	# the lazy-pages daemon of h2
	local pids
	pids=$(inst_lazy_pids h2)
	[ -z "$pids" ] || kill -9 $pids
}
lost lazy kill_lazy
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "after the lazy kill mc is at: $(inst_where mc)"
cl_ctl h1 restore mc >/dev/null
inst_verify h1 mc "$state" "restored on h1 after the lazy-pages daemon died"

# h2's lazy-pages daemon dies as the resume goes (ctr.lazy.resume): its
# exit and CRIU's answer race.  Either way h2 never runs mc on the memory
# it lacks, and h1's checkpoint restores it.
inst_rearm h2 ctr.lazy.resume:fail@1
set +e
cl_ctl h1 migrate mc --to h2 --mode postcopy >"$TH_ROOT/lazyresume.out" 2>&1
rc=$?
set -e
fault_fired h2 ctr.lazy.resume fail
stopped_on_both lazyresume $rc
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "lazyresume: mc is at: $(inst_where mc)"
h2_dropped() { [ -z "$(inst_field h2 mc state)" ]; }
th_wait 30 h2_dropped || fail "lazyresume: h2 kept mc: $(inst_field h2 mc state)"
# A tree left to run without its daemon reads zeros and crashes on them.
if grep -E "instance mc: .*init killed by signal (7|11)" "$(cl_log h2)"; then
	fail "lazyresume: mc ran on h2 without its memory"
fi
cl_ctl h1 restore mc >/dev/null
inst_verify h1 mc "$state" "restored on h1 after its daemon died at the resume"

# The source's ternd is SIGKILLed while the memory is on its way.  Its
# CRIU, left holding the frozen original, serves nobody; the target, its
# page source gone, stops its copy.  The restarted source kills that CRIU
# and, the switch having been recorded, the original too: nothing runs
# twice, nothing resumes with stale memory, and the checkpoint restores.
moving_to_h2 srckill
kill -9 "$(cl_pid h1)"
wait $ctl || true
echo "srckill: $(cat "$TH_ROOT/srckill.out")"
for ((i = 0; i < 300; i++)); do
	[ -z "$(inst_field h2 mc state)" ] && break
	sleep 0.1
done
[ -z "$(inst_field h2 mc state)" ] || fail "srckill: h2 kept mc: $(inst_field h2 mc state)"
th_limit h2 off
cl_start h1
cl_wait_up h1 2 30
[ "$(inst_copies mc)" = 0 ] || fail "srckill: $(inst_copies mc) copies of mc run"
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "srckill: mc is at: $(inst_where mc)"
inst_field h1 mc last_error | grep -q "moved to h2 by a migration that had committed" ||
    fail "srckill: h1 does not say what happened: $(inst_field h1 mc last_error)"
for p in $(pgrep -f "sbin/criu dump" || true); do
	[ "$(ip netns identify "$p")" = "tern-$TH_NET-h1" ] &&
	    fail "srckill: h1's criu $p is still there"
done
# It was committed to h2: a plain restore refuses (h2 might run it); the
# operator checked that h2 does not, and says so.
if out=$(cl_ctl h1 restore mc 2>&1); then
	fail "srckill: restore of an instance committed to h2 did not ask for --force"
fi
grep -q "ternctl restore mc --force" <<<"$out" ||
    fail "srckill: the refusal does not say what to do: $out"
cl_ctl h1 restore mc --force >/dev/null
inst_verify h1 mc "$state" "restored on h1 after its ternd died in a post-copy"

# The target's ternd is SIGKILLed while the memory is on its way.  Its
# lazy-pages daemon, its page source gone, exits; left to run on, the
# copy would read the pages it lacks as zeros (and a restarted ternd
# adopted it, while the source had its operator restore the checkpoint:
# two copies).  The guard that holds its userfaultfds kills it at once,
# before any ternd is back; the source stops its frozen original; the
# restarted target drops the copy's record; the checkpoint restores.
cl_ctl h1 checkpoint mc --leave-running >/dev/null
moving_to_h2 dstkill
[ "$(guard_holds h2)" -gt 0 ] || fail "dstkill: h2's guard holds none of mc's userfaultfds"
kill -9 "$(cl_pid h2)"
set +e
wait $ctl; rc=$?
set -e
echo "dstkill: $(cat "$TH_ROOT/dstkill.out")"
[ "$rc" = 1 ] || fail "dstkill: migrate exited $rc"
grep -q "restore its last checkpoint" "$TH_ROOT/dstkill.out" ||
    fail "dstkill: the operator was not told what to do"
no_copies() { [ "$(inst_copies mc)" = 0 ]; }
th_wait 10 no_copies || fail "dstkill: with h2's ternd dead, $(inst_copies mc) copies of mc run"
no_guard() { [ -z "$(uffd_guards h2)" ]; }
th_wait 10 no_guard || fail "dstkill: h2's guard $(uffd_guards h2) outlived the copy"
th_limit h2 off
cl_start h2
cl_wait_up h1 2 30
[ -z "$(inst_field h2 mc state)" ] || fail "dstkill: the restarted h2 kept mc: $(inst_field h2 mc state)"
grep -q "instance mc: ternd stopped here before all of its memory came from h1" "$(cl_log h2)" ||
    fail "dstkill: the restarted h2 does not say what became of mc"
[ "$(inst_field h1 mc state)" = checkpointed ] || fail "dstkill: mc is at: $(inst_where mc)"
cl_ctl h1 restore mc >/dev/null
inst_verify h1 mc "$state" "restored on h1 after the target's ternd died in a post-copy"
[ "$(inst_copies mc)" = 1 ] || fail "dstkill: $(inst_copies mc) copies of mc run"

# And it still moves afterwards.
cl_ctl h1 migrate mc --to h2 --mode postcopy >/dev/null
inst_verify h2 mc "$state" "moved to h2 after the failures"
cl_ctl h2 destroy mc >/dev/null

cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-postcopy: ok"
