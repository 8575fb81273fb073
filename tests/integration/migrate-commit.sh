#!/usr/bin/env bash
# The commit point survives a restart of the source.  A stop-and-copy
# whose source ternd dies right after it sent COMMIT: the target runs the
# container, and the restarted source must know it was committed there.
# Its checkpoint stays (the target's copy is not confirmed durable yet),
# but a plain restore refuses (it would run a second copy) and says how
# to go on; destroy works.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

# State files take 300 ms to reach the disk on h1 (work.write_file), so
# a COMMIT sent before the commit record is durable would be caught.
TERN_FAULT_H1=mig.source.commit-sent:kill@1,work.write_file:delay=300
inst_two_hosts

inst_memcheck mc 8
state=$INST_STATE
inst_verify h1 mc "$state" "started on h1"

if out=$(cl_ctl h1 migrate mc --to h2 --mode stopcopy 2>&1); then
	fail "the migration answered although its source died: $out"
fi
fault_fired h1 mig.source.commit-sent kill
cl_stop h1 1 >/dev/null 2>&1 || :
th_wait 20 eval '[ "$(inst_field h2 mc state)" = running ]' ||
    fail "h2 does not run mc: $(inst_field h2 mc state)"
inst_verify h2 mc "$state" "runs on h2 after the source died"

cl_start h1
cl_wait_up h1 2 30
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
[ "$(inst_field h1 mc state)" = checkpointed ] ||
    fail "h1 has mc as: $(inst_field h1 mc state)"
inst_field h1 mc last_error | grep -q "moved to h2 by a migration that had committed" ||
    fail "h1 does not say where mc went: $(inst_field h1 mc last_error)"
if out=$(cl_ctl h1 restore mc 2>&1); then
	fail "h1 restored a second copy of mc: $out; copies: $(inst_copies mc)"
fi
echo "$out"
grep -q "committed to h2" <<<"$out" || fail "the refusal does not say why: $out"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
cl_ctl h1 destroy mc >/dev/null
[ -z "$(inst_field h1 mc state)" ] || fail "h1 still lists mc"
inst_verify h2 mc "$state" "still on h2"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2; do cl_check_log $h || fail "sanitizer report on $h"; done
echo PASS
