#!/usr/bin/env bash
# A `ternctl stop` still in its grace period when ternd stops is answered
# all the same (an instance op calls its callback exactly once,
# agent/driver.h): ternd says so in its log, and leaks nothing (under
# ASan, cl_stop fails on a leak report).  The container runs on and the
# next ternd adopts it.  Deterministic: the container's init is a shell
# as pid 1, which ignores SIGTERM, so the stop waits out its 10 s grace
# and ternd is stopped while it does.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
is_state() { [ "$(inst_field h1 stubborn state)" = "$1" ]; }

th_setup 1
cl_pki
cl_conf h1
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"
dir="$TH_ROOT/stubborn"
mkdir -p "$dir"
rootfs_make "$dir/rootfs"
# shellcheck disable=SC2016  # the container's shell expands it
rootfs_spec "$dir/rootfs" stubborn sh -c 'echo ready >/ready; while :; do sleep 1; done'
cl_ctl h1 create stubborn --spec "$dir/stubborn.json" >/dev/null
cl_ctl h1 start stubborn >/dev/null
inst_wait_ready "$dir/rootfs/ready" || fail "stubborn did not start"
pid=$(inst_field h1 stubborn pid)

cl_ctl h1 stop stubborn >"$TH_ROOT/stop.out" 2>&1 &
stopper=$!
th_wait 10 is_state stopping ||
    fail "stubborn is $(inst_field h1 stubborn state), not stopping"
cl_stop h1 || fail "ternd did not stop cleanly with a stop in its grace period"
wait "$stopper" || :
echo "ternctl stop: $(cat "$TH_ROOT/stop.out")"
grep -q "instance stubborn: ternd stops before its stop finished" \
    "$(cl_log h1)" || fail "the waiting stop was not answered"
th_pid_alive "$pid" || fail "stubborn's init $pid did not run on"

cl_start h1
th_wait 10 grep -q "instance stubborn: still running (pid $pid), adopted" \
    "$(cl_log h1)" || fail "stubborn was not adopted"
kill -KILL "$pid"
th_wait 10 is_state stopped || fail "stubborn is $(inst_field h1 stubborn state)"
cl_ctl h1 destroy stubborn >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
