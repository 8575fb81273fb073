#!/usr/bin/env bash
# Stop-and-copy as a pipeline: the source's CRIU dumps the memory pages
# into a page-server channel tern relays to the target's criu page-server
# (agent/ctr-mig-pages.c).  Faults on that channel, each of which must
# leave the container running on h1 with its memory intact and nothing
# on h2:
#  1. a byte of the page stream flipped on its way (mig.pages.corrupt):
#     the target's sum differs from the source's and it refuses before
#     it restores anything;
#  2. the target's page server killed mid-pages (mig.pages.server);
#  3. the link cut mid-pages (mig.pages.server:stall holds the page
#     server there, then the test cuts h2 off);
#  4. h1's disk full while it keeps its own copy of the pages it sends
#     (a 16 MiB tmpfs over mc's checkpoints there): the move stops at
#     once, naming the file and the reason;
#  6. h1's disk slower than the link (mig.pages.tee:delay): CRIU is held
#     back while the copy catches up, and the move completes.
# Each fault is armed by (re)starting a ternd with it, fired once (@1;
# 6 delays every block).  5: with no fault the pipeline moves it
# h1 -> h2 -> h1, the target checks the sum of every page, and memcheck
# verifies its memory after each move.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TERN_FAULT_H1="mig.pages.corrupt:fail@1"
CONF_H1=('heartbeat_interval_ms = 200' 'peer_timeout_ms = 2000')
CONF_H2=('heartbeat_interval_ms = 200' 'peer_timeout_ms = 2000')
inst_two_hosts
inst_memcheck mc 128
inst_verify h1 mc "$INST_STATE" "started on h1"

gone_from() {	# HOST: HOST has nothing of mc, listed or on disk
	[ -z "$(inst_field "$1" mc state)" ] &&
	    ! th_exec "$1" test -e /var/lib/tern/instances/mc
}

# failed TAG PATTERN: ternctl migrate (started as $ctl) failed saying
# PATTERN; mc runs on h1 alone, verified, and h2 has nothing of it.
failed() {
	local rc=0 out
	th_wait 60 cl__gone "$ctl" || fail "$1: migrate still waits after 60 s"
	wait "$ctl" || rc=$?
	out=$(cat "$TH_ROOT/$1.out")
	echo "$1: $out"
	[ "$rc" = 1 ] || fail "$1: migrate exited $rc: $out"
	grep -q -- "$2" <<<"$out" || fail "$1: no \"$2\" in: $out"
	th_wait 10 gone_from h2 || fail "$1: h2 kept mc: $(inst_where mc)"
	[ "$(inst_where mc)" = "h1:running" ] || fail "$1: mc is at: $(inst_where mc)"
	[ "$(inst_copies mc)" = 1 ] || fail "$1: $(inst_copies mc) copies of mc run"
	inst_verify h1 mc "$INST_STATE" "after $1"
}

mig_start() {	# TAG
	cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/$1.out" 2>&1 &
	ctl=$!
}

# 1. A flipped byte: refused by the target before any restore.
restores=$(cl_log_count h2 "mc: restoring checkpoint")
mig_start corrupt
failed corrupt "arrived damaged"
fault_fired h1 mig.pages.corrupt fail
[ "$(cl_log_count h2 "mc: restoring checkpoint")" = "$restores" ] ||
    fail "corrupt: h2 restored from damaged pages"

# 2. The target's page server dies mid-pages.
inst_rearm h2 mig.pages.server:kill@1
mig_start srvkill
failed srvkill "page-server\|page channel"
fault_fired h2 mig.pages.server kill

# 3. The link is cut while the pages cross (the dump is held mid-pages
# first, so the cut lands there).
inst_rearm h2 mig.pages.server:stall@1
mig_start cut
wait_for 30 "the page server held mid-pages" \
    grep -q "fault point mig.pages.server fired: stall" "$(cl_log h2)"
th_cut h2
failed cut "no message from h2\|lost the connection to h2\|page channel"
th_heal h2
cl_wait_up h1 2 30
cl_wait_up h2 2 30

# 4. h1's disk fills while it keeps the pages it sends (128 MiB of them,
# 16 MiB of room).  No fault point: the file system's own ENOSPC.
ckpt=/var/lib/tern/instances/mc/ckpt
th_exec h1 mount -t tmpfs -o size=16m tmpfs "$ckpt" || fail "tmpfs on $ckpt"
mig_start full
failed full "cannot keep its own copy of the pages it sends: $ckpt/[0-9]*\.pages: No space left on device; mc runs on here"
th_exec h1 umount "$ckpt" || fail "umount $ckpt"

# 5. No fault left: h1 -> h2 -> h1 over the page server, every page
# summed on both ends.
checked=$(cl_log_count h2 "page stream checked")
cl_ctl h1 migrate mc --to h2 --mode stopcopy
[ "$(inst_where mc)" = "h2:running" ] || fail "after h1->h2 mc is at: $(inst_where mc)"
[ "$(cl_log_count h2 "page stream checked")" -gt "$checked" ] ||
    fail "h2 restored without checking the page stream"
grep -q "mc: .*pages to a page server there" "$(cl_log h1)" ||
    fail "h1 did not send the pages to a page server"
inst_verify h2 mc "$INST_STATE" "moved to h2"
cl_ctl h2 migrate mc --to h1 --mode stopcopy
[ "$(inst_where mc)" = "h1:running" ] || fail "after h2->h1 mc is at: $(inst_where mc)"
inst_verify h1 mc "$INST_STATE" "moved back to h1"
# The target made its copy a whole checkpoint after the resume.
th_wait 10 th_exec h1 sh -c \
    'grep -q "pages-.*\.img" /var/lib/tern/instances/mc/ckpt/*/MANIFEST' ||
    fail "h1's checkpoint of mc lists no page image"

# 6. h1 keeps its copy on a disk slower than the link: each 4 MiB block
# takes a second to write.  CRIU's socket waits whenever 16 blocks are
# on their way to the disk (never a write on the loop); the move
# completes, the target's memory whole.
inst_rearm h1 mig.pages.tee:delay=1000
cl_ctl h1 migrate mc --to h2 --mode stopcopy
fault_fired h1 mig.pages.tee delay
held=$(sed -n 's/.*mc: timing: the pages kept here sealed .*(CRIU held back \([0-9]*\) times.*/\1/p' \
    "$(cl_log h1)" | tail -n 1)
echo "CRIU held back ${held:-?} times for h1's slow disk"
[ "${held:-0}" -gt 0 ] || fail "h1's slow disk never held CRIU back"
inst_verify h2 mc "$INST_STATE" "moved to h2 past a slow disk"
cl_stop_all || fail "a ternd did not stop cleanly (or a sanitizer spoke)"
echo "migrate-pages: ok"
