#!/usr/bin/env bash
# ternctl migrate --cancel of a container (the migration engine's cancel,
# the same as a VM's): frozen at post-dump and held there (fault point
# mig.source.frozen:stall, nothing sent yet), the migration is rolled
# back: ternctl migrate says it was cancelled, the container runs on,
# unharmed, on the source only, and h2 keeps nothing.  With no migration
# a cancel is "not found".  Then the same container moves for real.
# (Past the commit point a cancel is refused: tests/unit/migrate/
# test-engine.c, test_cancel.)
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TERN_FAULT_H1='mig.source.frozen:stall@1' inst_two_hosts
inst_memcheck mc 16

# No migration of mc yet: nothing to cancel.
set +e
out=$(cl_ctl h1 migrate --cancel mc 2>&1); rc=$?
set -e
echo "nothing to cancel: $out"
[ $rc != 0 ] || fail "a cancel with no migration succeeded: $out"
grep -q "no migration of mc is running from this host" <<<"$out" ||
    fail "a cancel with no migration said: $out"

cl_ctl h1 migrate mc --to h2 --mode stopcopy >"$TH_ROOT/mig.out" 2>&1 &
ctl=$!
th_wait 20 grep -q "fault point mig.source.frozen fired: stall" \
    "$(cl_log h1)" || fail "the fault never fired: $(cat "$TH_ROOT/mig.out")"
out=$(cl_ctl h1 migrate --cancel mc 2>&1) || fail "cancel failed: $out"
echo "cancel: $out"
grep -q "cancelling the migration of mc to h2" <<<"$out" ||
    fail "cancel said: $out"
th_wait 30 cl__gone "$ctl" || fail "migrate still waits after the cancel"
rc=0
wait "$ctl" || rc=$?
out=$(cat "$TH_ROOT/mig.out")
echo "migrate: $out"
[ $rc = 1 ] || fail "a cancelled migrate exited $rc: $out"
grep -q "cancelled by the operator" <<<"$out" || fail "migrate said: $out"
[ "$(inst_where mc)" = "h1:running" ] || fail "after the cancel mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 1 ] || fail "$(inst_copies mc) copies of mc run"
inst_verify h1 mc "$INST_STATE" "after a cancelled migration"
gone_from_h2() {
	[ -z "$(inst_field h2 mc state)" ] &&
	    ! th_exec h2 test -e /var/lib/tern/instances/mc
}
th_wait 10 gone_from_h2 || fail "h2 kept mc: $(inst_where mc)"

# The fault fired once: this one goes through, and then there is
# nothing left to cancel.
cl_ctl h1 migrate mc --to h2 --mode stopcopy ||
    fail "the migration after the cancel failed"
[ "$(inst_where mc)" = "h2:running" ] || fail "after moving, mc is at: $(inst_where mc)"
inst_verify h2 mc "$INST_STATE" "moved to h2 after a cancelled attempt"
set +e
out=$(cl_ctl h1 migrate --cancel mc 2>&1); rc=$?
set -e
[ $rc != 0 ] || fail "a cancel after the move succeeded: $out"
cl_ctl h2 destroy mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-cancel: ok"
