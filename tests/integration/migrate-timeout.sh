#!/usr/bin/env bash
# A target that stays connected but never answers (here rawpeer, claiming
# CRIU, ignoring the offer): after migration_timeout_ms the source rolls
# back and the container keeps running, unharmed.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"

th_setup 2
cl_pki
cl_conf h1 'migration_timeout_ms = 2000'
cl_conf h2
cl_start h1
cl_wait_criu h1 || fail "h1 cannot run containers"
pki="$TH_ROOT/pki"
th_spawn h2 "$TH_ROOT/silent.out" "$RAW" --connect "$(th_addr h1):7480" \
	--ca "$pki/ca.pem" --cert "$pki/hosts/h2/h2.pem" --key "$pki/hosts/h2/h2.key" \
	--as h2 --caps criu --seconds 30 silent >/dev/null
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
echo "$out" | grep -q "no progress for 2000 ms" || fail "no timeout reason: $out"
grep -q "ignored: migrate_offer" "$TH_ROOT/silent.out" || fail "the offer never reached h2"
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state)"
inst_verify h1 mc "$state" "after a migration timed out"
cl_ctl h1 destroy mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-timeout: ok"
