#!/usr/bin/env bash
# Two leave-running checkpoints with staged pages at the same time, on one
# host, sharing one checkpoint_staging_mb: each holds its own share of
# the budget while its pages flow, gives all of it back when it ends
# (staged, fallen back, or failed), and neither's pages end up in the
# other's checkpoint: each container checks its own memory after every
# round and after a restore from its staged checkpoint.
#
# The budget fits both containers' estimates with less than one to spare,
# so a share that was not given back makes one of the next pair fall back
# to CRIU writing its own pages; the test counts which were staged.  And
# a budget for one: of two at once, one is staged and the other is
# written by CRIU, with the budget named as the reason.
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
# Each estimate is its container's memory (96 MiB of memcheck and a few
# more) plus 16 MiB: about 115 MiB.  Two fit in 300; a third does not,
# nor two once a share of one is lost.
cl_conf h1 'checkpoint_staging_mb = 300'
# The first reservation fails: that checkpoint falls back to CRIU writing
# its pages while its container stands still.
TERN_FAULT=ckpt.staging.reserve:fail@1 cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"

log=$(cl_log h1)
for c in mc1 mc2; do
	rootfs_make "$TH_ROOT/$c"
	ROOTFS_SPEC_MEMORY=$((512 << 20)) ROOTFS_SPEC_PIDS=64 \
		rootfs_spec "$TH_ROOT/$c" "$c" /bin/memcheck 96 /var/log/memcheck.state
	cl_ctl h1 create "$c" --spec "$TH_ROOT/$c.json"
	cl_ctl h1 start "$c"
	inst_wait_ready "$TH_ROOT/$c/var/log/memcheck.state" ||
		fail "$c did not start: $(cat "$TH_ROOT/$c/.tern-console.log" 2>/dev/null)"
done
state() { echo "$TH_ROOT/$1/var/log/memcheck.state"; }
verify() { inst_verify h1 "$1" "$(state "$1")" "$2"; }
staged() { grep -c "$1: checkpoint $2 into .*pages staged in" "$log" || true; }
fell_back() { grep -c "$1: .*checkpoint $2 is written by criu while" "$log" || true; }

# pair GEN: both checkpoint at once (each holds its share from before its
# freeze until its pages are written: about half a second here); both are published as generation
# GEN, both run on, and each checks its own memory.
pair() {
	local gen=$1 c pid pids=() rc=0
	for c in mc1 mc2; do
		cl_ctl h1 checkpoint "$c" --leave-running > "$TH_ROOT/$c.ckpt.$gen" 2>&1 &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=$?
	done
	cat "$TH_ROOT"/mc?.ckpt."$gen"
	[ $rc = 0 ] || fail "a checkpoint of round $gen failed (exit $rc)"
	for c in mc1 mc2; do
		[ -f "$(th_dir h1)/state/instances/$c/ckpt/$gen/MANIFEST" ] ||
			fail "$c: checkpoint $gen not published"
		[ "$(inst_field h1 "$c" state)" = running ] ||
			fail "$c is $(inst_field h1 "$c" state) after round $gen"
		verify "$c" "after round $gen"
	done
}

# 1: one reservation fails: that one falls back, the other is staged.
pair 1
fault_fired h1 ckpt.staging.reserve fail
s=$(( $(staged mc1 1) + $(staged mc2 1) ))
f=$(( $(fell_back mc1 1) + $(fell_back mc2 1) ))
[ "$s/$f" = 1/1 ] ||
	fail "round 1: $s staged and $f fallen back, not one of each"

# 2 and 3: both staged each time, so every share came back.
for gen in 2 3; do
	pair "$gen"
	for c in mc1 mc2; do
		[ "$(staged "$c" "$gen")" = 1 ] || fail "$c: checkpoint $gen" \
			"was not staged: $(grep "$c: checkpoint $gen " "$log" | tail -3)"
	done
done

# Restored from its own staged checkpoint, each finds its own memory.
for c in mc1 mc2; do
	cl_ctl h1 stop "$c"
	cl_ctl h1 restore "$c" --generation 3
	[ "$(inst_field h1 "$c" state)" = running ] ||
		fail "$c is $(inst_field h1 "$c" state) after its restore"
	verify "$c" "restored from staged checkpoint 3"
done
cl_wait_reaped h1 || fail "an init was left a zombie"

# 4: room for one: the other is written by CRIU, which says why.
cl_stop h1 || fail "ternd did not stop cleanly"
cl_conf h1 'checkpoint_staging_mb = 200'
cl_start h1
pair 4
s=$(( $(staged mc1 4) + $(staged mc2 4) ))
over=$(grep -cE "mc[12]: checkpoint 4 is written by criu while mc[12] stands still: staging its pages would take [0-9]+ MiB, and [0-9]+ of checkpoint_staging_mb = 200 are left" "$log" || true)
[ "$s/$over" = 1/1 ] ||
	fail "round 4: $s staged and $over refused for the budget, not one of each"
for c in mc1 mc2; do
	cl_ctl h1 destroy "$c"
done

cl_stop_all || fail "a ternd did not stop cleanly"
echo "container-checkpoint-staged-pair: ok"
