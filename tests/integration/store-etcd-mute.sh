#!/usr/bin/env bash
# A leader whose etcd member goes mute keeps leading: the member accepts
# connections and answers nothing (its process stopped here; a member cut
# from etcd's leader behaves so for a lease keepalive, which it forwards
# to the leader and waits).  A keepalive sent there must give up well
# inside the lease and be sent again to the next member (it is
# idempotent), or the leader steps down with a quorum up and every
# agent's lease lapses behind it (found by bench/run partition, etcd
# asym-peer: "no lease renewal was granted in time").
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
th_check || exit 77
etcd_check || exit 77
f=
# A member left stopped would outlive the test: resumed first.
trap '[ -z "$f" ] || kill -CONT "$(cat "$(th_dir "$f")/etcd.pid")" 2>/dev/null || :
th_teardown' EXIT

ctl=$TERN_BUILDDIR/tests/tools/storectl
th_setup 3
etcd_up h1 h2 h3
f=$(etcd_follower) || fail "no etcd member says it follows"
# The follower first: the leader-to-be asks it first.
ep="http://$(th_addr "$f"):2379"
for h in h1 h2 h3; do
	[ "$h" = "$f" ] || ep+=",http://$(th_addr "$h"):2379"
done
ttl=2000	# ternd's default lease_ttl_ms, which its coordinator's lease takes

c=$(th_spawn "$f" "$TH_ROOT/c.out" "$ctl" lead "etcd:$ep" cm "$ttl")
wait_for 15 "cm leading" grep -q '^leads' "$TH_ROOT/c.out"
wait_for 5 "cm writing" grep -q '^wrote' "$TH_ROOT/c.out"

echo "--- $f's member stopped: connections accepted, nothing answered"
kill -STOP "$(cat "$(th_dir "$f")/etcd.pid")"
n=$(grep -c '^wrote' "$TH_ROOT/c.out" || true)
sleep $((4 * ttl / 1000))
kill -CONT "$(cat "$(th_dir "$f")/etcd.pid")"
cat "$TH_ROOT/c.out"
! grep -q '^stops' "$TH_ROOT/c.out" ||
    fail "cm stopped leading with two of three members up"
grep -q "did not answer /v3/lease/keepalive .*; sending it again to " \
    "$TH_ROOT/c.out" ||
    fail "no keepalive went to the stopped member (the test proves nothing)"
m=$(grep -c '^wrote' "$TH_ROOT/c.out" || true)
[ "$m" -gt $((n + 10)) ] ||
    fail "cm wrote $((m - n)) times in $((4 * ttl)) ms past the mute member"
kill "$c" 2>/dev/null || :
echo "store-etcd-mute: ok"
