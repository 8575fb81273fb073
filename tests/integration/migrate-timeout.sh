#!/usr/bin/env bash
# A target that stays connected but never answers (here rawpeer, claiming
# CRIU, ignoring the offer): after migration_timeout_ms the source rolls
# back and the container keeps running, unharmed.  Bytes that keep
# crossing are progress, though: a migration held to --bandwidth may stay
# in one state longer than the timeout and still succeed.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 2
cl_pki
cl_conf h1 'migration_timeout_ms = 2000'
cl_conf h2
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"
pki="$TH_ROOT/pki"
raw=$(th_spawn h2 "$TH_ROOT/silent.out" "$RAW" --connect "$(th_addr h1):7480" \
	--ca "$pki/ca.pem" --cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" \
	--as h2 --caps criu --seconds 30 silent)
for ((i = 0; i < 50; i++)); do
	cl_ctl h1 hosts --json | grep -q '"name":"h2"[^}]*"state":"up"' && break
	sleep 0.1
done

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 16 /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"

set +e
out=$(cl_ctl h1 migrate mc --to h2 2>&1); rc=$?
set -e
echo "refused: $out"
[ $rc = 1 ] || fail "migrate to a silent peer exited $rc"
grep -q "no progress for 2000 ms" <<<"$out" || fail "no timeout reason: $out"
grep -q "ignored: migrate_offer" "$TH_ROOT/silent.out" || fail "the offer never reached h2"
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state)"
inst_verify h1 mc "$state" "after a migration timed out"

# A real h2 now, with the same timeout.  At 4 MB/s the images (16 MiB)
# take about 4 s, twice the timeout, on both sides: the source sending,
# the target receiving.
kill "$raw"
cl_conf h2 'migration_timeout_ms = 2000'
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h2 || fail "h2 cannot run containers"
out=$(cl_ctl h1 --json migrate mc --to h2 --mode stopcopy --bandwidth 4M) ||
    fail "a slow migration timed out: $out"
echo "$out"
ms=$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["total_ms"])')
[ "$ms" -gt 3000 ] || fail "took $ms ms: too fast to outlast the timeout"
[ "$(inst_where mc)" = "h2:running" ] || fail "after a slow migration mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "moved to h2 in $ms ms, timeout 2000 ms"
cl_ctl h2 destroy mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-timeout: ok"
