#!/usr/bin/env bash
# The test-only "sink" stream kind (ternctl stream-test, bench/stream.sh)
# is accepted from a peer only where accept_test_streams = true: by
# default a peer cannot make ternd swallow its bytes.  h1 has the option,
# h2 keeps the default.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

th_setup 2
cl_pki
cl_conf h1 'accept_test_streams = true'
cl_conf h2 'accept_test_streams = false'
cl_start h1
cl_start h2
cl_wait_up h1 2 30

if out=$(cl_ctl h1 stream-test h2 --bytes 1M 2>&1); then
	fail "h2 took a sink stream without accept_test_streams: $out"
fi
echo "h1 -> h2 refused: $out"
grep -q "h2 takes no test streams (set accept_test_streams = true" <<<"$out" ||
    fail "the refusal does not say why: $out"
grep -q "peer h1: refused a sink stream (test streams are off: accept_test_streams)" \
    "$(cl_log h2)" || fail "h2 did not log the refusal"
! grep -q "sink stream .* opened" "$(cl_log h2)" || fail "h2 opened a sink stream"

out=$(cl_ctl h2 stream-test h1 --bytes 1M) || fail "h2 -> h1: $out"
echo "h2 -> h1: $out"
grep -q "1048576 bytes" <<<"$out" || fail "h2 -> h1 sent: $out"
grep -q "peer h2: sink stream [0-9]* opened" "$(cl_log h1)" ||
    fail "h1 did not take the sink stream"
# The link that refused is still up and works.
cl_ctl h1 ping h2 >/dev/null || fail "h1 cannot reach h2 after the refusal"
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
