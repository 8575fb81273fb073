#!/usr/bin/env bash
# A rootfs copied to a target that does not end up running the container
# goes away with the attempt, so a later move to that host is not
# refused as "not empty":
#  1. the target's ternd dies holding the restored copy (fault point) and
#     starts again: it discards the incoming instance and its rootfs;
#  2. the target fails to resume after COMMIT (fault point): the source
#     keeps its checkpoint and its rootfs, restores without --force (the
#     target said it does not run it), the target keeps nothing.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TH_BINDS+=("srv:/srv")		# each host's own /srv
TERN_FAULT_H2=mig.target.held:kill@1
inst_two_hosts

rootfs_make "$TH_ROOT/h1/srv/mc"
ROOTFS_SPEC_ROOT=/srv/mc rootfs_spec "$TH_ROOT/h1/srv/mc" mc /bin/memcheck 8 /var/log/memcheck.state
mv "$TH_ROOT/h1/srv/mc.json" "$TH_ROOT/mc.json"
state() { echo "$TH_ROOT/$1/srv/mc/var/log/memcheck.state"; }
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$(state h1)" || fail "memcheck did not start"

echo "--- 1. the target dies holding the restored copy"
if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then
	fail "the move succeeded although h2 died: $out"
fi
echo "$out"
fault_fired h2 mig.target.held kill
cl_stop h2 1 >/dev/null 2>&1 || :
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state) on h1"
inst_verify h1 mc "$(state h1)" "kept on h1"
[ -e "$TH_ROOT/h2/srv/mc" ] || fail "the rootfs never reached h2 (the case was not made)"
cl_start h2
cl_wait_up h1 2 30
[ ! -e "$TH_ROOT/h2/srv/mc" ] || fail "h2 kept the rootfs of the discarded incoming copy"
grep -q "instance mc: removed the incoming rootfs /srv/mc" "$(cl_log h2)" ||
    fail "h2 did not say it removed the rootfs"

echo "--- 2. the target fails to resume after COMMIT"
cl_stop h2
TERN_FAULT=mig.target.resume:fail@1 cl_start h2
cl_wait_up h1 2 30
if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then
	fail "the move succeeded although h2 failed to resume: $out"
fi
echo "$out"
fault_fired h2 mig.target.resume fail
# CRIU's log of the failed attempt is where the message says.
log=$(echo "$out" | sed -n 's|.*CRIU log: \(/var/lib/tern/failed-migrations/[^)]*restore.log\)).*|\1|p')
[ -n "$log" ] || fail "the message does not name a kept CRIU log: $out"
[ -s "$TH_ROOT/h2/state/${log#/var/lib/tern/}" ] || fail "h2 has no $log"
# The target killed CRIU with the tree it held (CRIU 4.1.1 would wait
# for the killed init for good): the message gives its reason first.
grep -q "could not resume it (its resume failed (fault point mig.target.resume); criu then: " <<<"$out" ||
    fail "the message does not say why the resume failed: $out"
[ ! -e "$TH_ROOT/h2/srv/mc" ] || fail "h2 kept the rootfs of a copy that never ran"
[ -e "$TH_ROOT/h1/srv/mc/bin/memcheck" ] || fail "h1 lost its rootfs"
[ "$(inst_where mc)" = "h1:checkpointed" ] || fail "mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 0 ] || fail "$(inst_copies mc) copies of mc run"
# The killed copy's init (CRIU made it h2's ternd's child) is reaped.
cl_wait_reaped h2 || fail "the killed copy's init was left a zombie"
cl_ctl h1 restore mc
inst_verify h1 mc "$(state h1)" "restored on h1"

echo "--- and it moves to h2 afterwards"
cl_ctl h1 migrate mc --to h2 --mode stopcopy
inst_verify h2 mc "$(state h2)" "moved to h2"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
