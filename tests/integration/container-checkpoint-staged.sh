#!/usr/bin/env bash
# Leave-running checkpoints with their pages staged in memory (on by
# default, checkpoint_staging_mb): CRIU sends the pages to memory ternd
# reserved before the freeze, and they become page images after the
# thaw.  The workload checks its own memory after each checkpoint and
# after a restore from a staged one (its pages all from the instant of
# the dump, or memcheck's sums fail).  Faults at each step (no memory to
# be had, the transfer broken, the writing after the thaw failing): the
# container runs on, unharmed; a failed checkpoint is never published;
# the next one works.  A container bigger than what is left of the
# budget is checkpointed as without staging.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 1
cl_pki
cl_conf h1 'checkpoint_staging_mb = 1024'
# The first checkpoint finds no memory to stage in, the second has its
# transfer broken while the pages flow (a MiB of them in),
# the third fails writing the pages after the thaw.
TERN_FAULT=ckpt.staging.reserve:fail@1,ckpt.staging.read:fail@1,ckpt.staging.replay:fail@1 \
	cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"

rootfs="$TH_ROOT/rootfs"
rootfs_make "$rootfs"
ROOTFS_SPEC_MEMORY=$((512 << 20)) ROOTFS_SPEC_PIDS=64 \
	rootfs_spec "$rootfs" mc /bin/memcheck 128 /var/log/memcheck.state
state="$rootfs/var/log/memcheck.state"
info() { inst_field h1 mc "$1"; }
verify() { inst_verify h1 mc "$state" "$1"; }
ckdir="$(th_dir h1)/state/instances/mc/ckpt"
staged() { cl_log_count h1 "mc: checkpoint $1 into .*pages staged in"; }
thawed() {
	[ "$(cat "$(th__cg1 h1)/tern/mc/freezer.state")" = THAWED ] ||
		fail "mc's cgroup left $(cat "$(th__cg1 h1)/tern/mc/freezer.state") $1"
}

cl_ctl h1 create mc --spec "$TH_ROOT/mc.json"
cl_ctl h1 start mc
inst_wait_ready "$state" ||
	fail "memcheck did not start: $(cat "$rootfs/.tern-console.log" 2>/dev/null)"
verify "started"

# 1: no memory to stage in: CRIU writes the pages itself, as without.
out=$(cl_ctl h1 checkpoint mc --leave-running)
echo "$out"
fault_fired h1 ckpt.staging.reserve fail
grep -q "checkpoint 1 is written by criu while mc stands still" "$(cl_log h1)" ||
	fail "no word of the fallback in the log"
[ "$(staged 1)" = 0 ] || fail "checkpoint 1 says it was staged"
[ -f "$ckdir/1/MANIFEST" ] || fail "checkpoint 1 not published"
[ "$(info state)" = running ] || fail "mc is $(info state) after checkpoint 1"
verify "after checkpoint 1 (not staged)"

# fails_at POINT PATTERN WHEN: a leave-running checkpoint fails at fault
# point POINT, saying PATTERN (grep -E); nothing is published, mc runs
# on, thawed, and its memory verifies.
fails_at() {
	local point=$1 pattern=$2 when=$3 out rc=0
	out=$(cl_ctl h1 checkpoint mc --leave-running 2>&1) || rc=$?
	echo "failed: $out"
	fault_fired h1 "$point" fail
	[ $rc = 1 ] && grep -Eq "$pattern" <<<"$out" ||
		fail "$when: exit $rc: $out"
	[ ! -e "$ckdir/2/MANIFEST" ] || fail "a checkpoint that failed $when was published"
	[ "$(info state)" = running ] || fail "mc is $(info state) $when"
	[ "$(info generation)" = 1 ] || fail "generation $(info generation) $when"
	thawed "$when"
	verify "$when"
}

# 2: the transfer breaks after megabytes of pages: CRIU thaws mc.
fails_at ckpt.staging.read \
	"staging the pages: fault point ckpt.staging.read, [1-9][0-9]{6,} bytes in" \
	"after a broken staged transfer"
# 3: the pages cannot be written after the thaw: mc ran on meanwhile.
fails_at ckpt.staging.replay "writing the staged pages of checkpoint 2" \
	"after the staged pages failed to be written"

# 4: staged, published, and mc runs on.
before=$(staged 2)
out=$(cl_ctl h1 checkpoint mc --leave-running)
echo "$out"
[ "$(staged 2)" = $((before + 1)) ] || fail "checkpoint 2 was not staged"
[ -f "$ckdir/2/MANIFEST" ] || fail "checkpoint 2 not published"
ls "$ckdir/2"/pages-*.img >/dev/null || fail "no page images in checkpoint 2"
[ "$(info state)" = running ] || fail "mc is $(info state) after a staged checkpoint"
verify "after a staged checkpoint"

# Restored from the staged checkpoint: its memory is one instant's.
cl_ctl h1 stop mc
cl_wait_reaped h1 || fail "mc's init was left a zombie"
cl_ctl h1 restore mc --generation 2
[ "$(info state)" = running ] || fail "mc is $(info state) after restore"
verify "restored from a staged checkpoint"
# And again from the one CRIU wrote itself.
cl_ctl h1 stop mc
cl_ctl h1 restore mc --generation 1
verify "restored from checkpoint 1"

# Over the budget: CRIU writes the pages, and the log says why.
cl_stop h1 || fail "ternd did not stop cleanly"
cl_conf h1 'checkpoint_staging_mb = 64'
cl_start h1
cl_ctl h1 checkpoint mc --leave-running
grep -q "mc: checkpoint 3 is written by criu while mc stands still: staging its pages would take [0-9]* MiB, and 64 of checkpoint_staging_mb = 64 are left" "$(cl_log h1)" ||
	fail "no word of the budget in the log"
[ "$(staged 3)" = 0 ] || fail "checkpoint 3 was staged past the budget"
verify "after a checkpoint past the staging budget"
cl_ctl h1 destroy mc

cl_stop_all || fail "a ternd did not stop cleanly"
echo "container-checkpoint-staged: ok"
