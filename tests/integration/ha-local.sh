#!/usr/bin/env bash
# The agent and the coordinator of one host ("agent+coordinator") talk
# through the mesh as two hosts do (main/ternd.c has the mesh deliver the
# lease messages a host sends itself): h1 runs both roles, h2 is an agent
# of h1's coordinator.  Both hold leases, a protected container on h1 is
# registered (epoch 1) and runs, and both ternds stop cleanly.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 2
cl_pki
cl_conf h1 "role = \"agent+coordinator\"" "coordinator = \"h1\"" \
    "lease_ttl_ms = 2000" "lease_margin_ms = 500"
cl_conf h2 "coordinator = \"h1\"" "lease_ttl_ms = 2000" "lease_margin_ms = 500"
for h in h1 h2; do cl_start $h; done
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"

has_lease() { cl_ctl "$1" status | grep -q "lease from h1, valid"; }
for h in h1 h2; do
	wait_for 20 "a lease for $h" has_lease $h
done
leads() { cl_ctl h1 status | grep -q "coordinator:.*leading, 2 hosts"; }
wait_for 10 "h1 leading, knowing both hosts" leads

rootfs_make "$TH_ROOT/rootfs"
rootfs_spec "$TH_ROOT/rootfs" mc /bin/sh -c 'while :; do usleep 20000; done'
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha restart >/dev/null
[ "$(inst_field h1 mc epoch)" = 1 ] || fail "mc on h1 at epoch $(inst_field h1 mc epoch)"
cl_ctl h1 start mc >/dev/null
runs() { [ "$(inst_field h1 mc state)" = running ]; }
wait_for 20 "mc running on h1" runs
sleep 3		# several renewals: the lease stays, mc is not fenced
has_lease h1 || fail "h1 lost its own lease: $(cl_ctl h1 status)"
runs || fail "mc stopped on h1: $(inst_field h1 mc state)"
grep -q "instance mc: fenced\|instance mc: killed at once" "$(cl_log h1)" &&
    fail "h1 fenced mc"
cl_ctl h1 stop mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
