#!/usr/bin/env bash
# A container on one host: created from a spec, started, checkpointed
# while running and stopped, restored from its verified checkpoint; the
# workload checks its own memory after every restore.  A damaged image is
# refused before CRIU reads it, and the instance is not lost.  A restarted
# ternd adopts a running container.
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
cl_conf h1
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"

rootfs="$TH_ROOT/rootfs"
rootfs_make "$rootfs"
ROOTFS_SPEC_MEMORY=$((256 << 20)) ROOTFS_SPEC_PIDS=64 \
	rootfs_spec "$rootfs" mc /bin/memcheck 64 /var/log/memcheck.state
state="$rootfs/var/log/memcheck.state"

info() { inst_field h1 mc "$1"; }
verify() { inst_verify h1 mc "$state" "$1"; }

cl_ctl h1 create mc --spec "$TH_ROOT/mc.json"
cl_ctl h1 start mc
inst_wait_ready "$state" ||
	fail "memcheck did not start: $(cat "$rootfs/.tern-console.log" 2>/dev/null)"
verify "started"

# 1: checkpoint, leave running.
cl_ctl h1 checkpoint mc --leave-running
[ "$(info state)" = running ] || fail "mc is $(info state) after a leave-running checkpoint"
[ "$(info generation)" = 1 ] || fail "generation $(info generation), want 1"
verify "after a leave-running checkpoint"

# 2: checkpoint and stop; the container is gone, its checkpoint verified.
cl_ctl h1 checkpoint mc
gone=$(date +%s%N)
[ "$(info state)" = checkpointed ] || fail "mc is $(info state)"
[ -z "$(info pid)" ] || fail "mc still has a pid"
cl_wait_reaped h1 || fail "a checkpoint's init was left a zombie"
gen2="$(th_dir h1)/state/instances/mc/ckpt/2"
[ -f "$gen2/MANIFEST" ] || fail "no MANIFEST in $gen2"
sleep 1

# Restore: running again, memory intact.
back=$(date +%s%N)
cl_ctl h1 restore mc
[ "$(info state)" = running ] || fail "mc is $(info state) after restore"
verify "restored from checkpoint 2"
# memcheck saw its own downtime: it did not tick while it did not exist,
# so its longest stall covers at least the time between the two commands
# (a clock that CRIU restores as it was at the dump would hide it).
stall=$(tail -n 2 "$state" | sed -n 's/^stall max_ms=\([0-9]*\) ticks=[1-9][0-9]*$/\1/p')
[ -n "$stall" ] || fail "no stall report before the check: $(tail -n 2 "$state")"
[ "$stall" -ge $(((back - gone) / 1000000)) ] ||
	fail "memcheck saw a stall of $stall ms, but it was gone for $(((back - gone) / 1000000)) ms"
echo "memcheck saw a stall of $stall ms (gone for $(((back - gone) / 1000000)) ms)"

# A damaged image is refused, and nothing is lost.
cl_ctl h1 checkpoint mc
gen3="$(th_dir h1)/state/instances/mc/ckpt/3"
img=$(ls "$gen3"/pages-*.img | head -n 1)
printf 'X' | dd of="$img" bs=1 seek=100 conv=notrunc status=none
set +e
out=$(cl_ctl h1 restore mc 2>&1); rc=$?
set -e
[ $rc = 1 ] || fail "restore of a damaged checkpoint exited $rc: $out"
grep -q "checksum mismatch" <<<"$out" || fail "no checksum error: $out"
[ "$(info state)" = checkpointed ] || fail "mc is $(info state) after a refused restore"
echo "refused: $out"
# An image the MANIFEST does not list would be read by CRIU all the same:
# it is refused too.
cp "$gen2/MANIFEST" "$gen2/extra.img"
set +e
out=$(cl_ctl h1 restore mc --generation 2 2>&1); rc=$?
set -e
[ $rc = 1 ] && grep -q "extra.img is not in the MANIFEST" <<<"$out" ||
	fail "unlisted image: $out"
echo "refused: $out"
rm "$gen2/extra.img"
# The older, intact generation still restores.
cl_ctl h1 restore mc --generation 2
verify "restored from checkpoint 2 after 3 was refused"

# Bad input: unknown instance, running instance restored, bad spec.
set +e
out=$(cl_ctl h1 checkpoint nosuch 2>&1); rc=$?
set -e
[ $rc = 1 ] && grep -q "no instance nosuch" <<<"$out" || fail "unknown instance: $out"
set +e
out=$(cl_ctl h1 restore mc 2>&1); rc=$?
set -e
[ $rc = 1 ] && grep -q "one copy runs at a time" <<<"$out" || fail "restore while running: $out"
echo '{"process": {"args": []}, "root": {"path": "rootfs"}}' > "$TH_ROOT/bad.json"
set +e
out=$(cl_ctl h1 create bad --spec "$TH_ROOT/bad.json" 2>&1); rc=$?
set -e
[ $rc = 1 ] && grep -q "process.args" <<<"$out" || fail "bad spec: $out"

# A restarted ternd adopts the running container, and can still stop it.
# (Its first restore will fail inside CRIU, after CRIU forked the tree.)
cl_stop h1 || fail "ternd did not stop cleanly"
kill -0 "$(info pid 2>/dev/null || echo 0)" 2>/dev/null || true
TERN_FAULT=ckpt.restore.setup-ns:fail@1,criu.notify.setup-namespaces:kill@1+1 \
	cl_start h1
for ((i = 0; i < 50; i++)); do
	[ "$(info state 2>/dev/null)" = running ] && break
	sleep 0.1
done
[ "$(info state)" = running ] || fail "mc not adopted: $(info state)"
verify "after ternd restarted"

# restore_fails POINT ACTION HOW: a restore that fault point POINT
# (ACTION) breaks after CRIU forked the tree fails; mc stays checkpointed,
# and ternd reaps the tree's init.
restore_fails() {
	local out rc
	set +e
	out=$(cl_ctl h1 restore mc 2>&1); rc=$?
	set -e
	fault_fired h1 "$1" "$2"
	[ $rc = 1 ] && grep -q "restore of mc failed" <<<"$out" ||
		fail "a restore $3: exit $rc: $out"
	echo "failed as $3: $out"
	[ "$(info state)" = checkpointed ] || fail "mc is $(info state) after a restore $3"
	cl_wait_reaped h1 || fail "the init of a restore $3 was left a zombie"
}

# CRIU fails a restore after it forked the tree: CRIU kills the tree, but
# its init is ternd's child (CRIU restores it as its sibling), which ternd
# reaps although no restore ever told it the pid.  Nothing is lost: the
# checkpoint restores next time.
cl_ctl h1 checkpoint mc
restore_fails ckpt.restore.setup-ns fail "CRIU failed"

# CRIU dies after it forked the tree but before it named it: the fault
# point kills CRIU alone and drops its setup-namespaces notification.  The
# init, ternd's child, waits in CRIU's process group for a CRIU that is
# gone; ternd finds it there, kills and reaps it.
# restored_inits: live children of h1's ternd in a pid namespace of their
# own (a restored tree's init; none while mc does not run).
restored_inits() {
	local pid c own ns
	pid=$(cl_pid h1) && own=$(readlink /proc/"$pid"/ns/pid) || return 1
	for c in $(cat /proc/"$pid"/task/*/children); do
		ns=$(readlink /proc/"$c"/ns/pid 2>/dev/null) || continue
		[ "$ns" = "$own" ] || echo "$c"
	done
}
no_restored_init() { [ -z "$(restored_inits)" ]; }
restore_fails criu.notify.setup-namespaces kill "CRIU died unannounced"
th_wait 10 no_restored_init ||
	fail "the unnamed init of a restore whose CRIU died still lives: $(restored_inits)"
cl_ctl h1 restore mc
verify "restored after CRIU failed the restore before"
cl_ctl h1 destroy mc
[ -z "$(cl_ctl h1 list --json | grep '"mc"' || true)" ] || fail "mc still listed"
# Containers nest below their host's cgroup (th_crash reaches them).
[ ! -d "$(th__cg1 h1)/tern/mc" ] || fail "mc's cgroup left behind"

cl_stop_all || fail "a ternd did not stop cleanly"
echo "container-checkpoint: ok"
