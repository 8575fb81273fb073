#!/usr/bin/env bash
# Long jobs do not starve the short calls (issue 9, item 7).  A VM
# migration's libvirt call lasts as long as the migration; on libuv's
# 4 threads four of them held every thread, and an abort (--cancel), a
# checkpoint's MANIFEST, a job's stats queued behind them for good.
#
# h1's VMs live in libvirt's test driver (inside ternd, no QEMU); the
# fault point vmig.source.migrate:stall holds each migration's job on
# its thread, before libvirt's call, until an abort is sent to libvirt
# (as a real migration returns only then).  With max_vm_migrations = 4:
#  1. four migrations held: a fifth is refused, naming the option;
#  2. `ternctl migrate --cancel` still ends one (its abort is not queued
#     behind the held jobs), and the VM stays on h1;
#  3. a container checkpoint still completes (its checksums and MANIFEST
#     run on the pool);
#  4. the other three cancelled, ternd stops cleanly.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

th_setup 2
cl_pki
for h in h1 h2; do
	echo '<node></node>' >"$TH_ROOT/$h-libvirt.xml"
done
cl_conf h1 "libvirt_uri = \"test://$TH_ROOT/h1-libvirt.xml\"" \
	'max_vm_migrations = 4'
cl_conf h2 "libvirt_uri = \"test://$TH_ROOT/h2-libvirt.xml\""
TERN_FAULT=vmig.source.migrate:stall cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"

vms="v1 v2 v3 v4 v5"
for v in $vms; do
	cat >"$TH_ROOT/$v.xml" <<XML
<domain type='test'>
  <name>$v</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>
XML
	cl_ctl h1 create "$v" --kind vm --xml "$TH_ROOT/$v.xml" >/dev/null
	cl_ctl h1 start "$v" >/dev/null
	[ "$(inst_field h1 "$v" state)" = running ] ||
	    fail "$v is $(inst_field h1 "$v" state) on h1"
done

rootfs="$TH_ROOT/rootfs"
rootfs_make "$rootfs"
rootfs_spec "$rootfs" mc /bin/memcheck 16 /var/log/memcheck.state
state="$rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"

# 1: four held, a fifth refused.
declare -A MIG
for v in v1 v2 v3 v4; do
	cl_ctl h1 migrate "$v" --to h2 --mode precopy >"$TH_ROOT/$v.out" 2>&1 &
	MIG[$v]=$!
done
held() { [ "$(grep -c 'fault point vmig.source.migrate fired' \
	"$(cl_log h1)")" -ge 4 ]; }
th_wait 30 held || fail "the four migrations did not reach libvirt's call"
out=$(cl_ctl h1 migrate v5 --to h2 --mode precopy 2>&1) &&
	fail "a fifth migration started: $out"
grep -q 'max_vm_migrations' <<<"$out" ||
	fail "the fifth migration's refusal does not name max_vm_migrations: $out"
[ "$(inst_field h1 v5 state)" = running ] || fail "v5 is $(inst_field h1 v5 state)"

# 2: --cancel ends one.
cl_ctl h1 migrate v1 --cancel
ended() { ! kill -0 "${MIG[v1]}" 2>/dev/null; }
th_wait 30 ended || fail "cancel: the migration of v1 did not end"
rc=0; wait "${MIG[v1]}" || rc=$?
[ $rc != 0 ] || fail "cancel: the migration of v1 succeeded"
grep -q 'cancelled by the operator' "$TH_ROOT/v1.out" ||
	fail "cancel: not the expected error: $(cat "$TH_ROOT/v1.out")"
[ "$(inst_field h1 v1 state)" = running ] ||
	fail "v1 is $(inst_field h1 v1 state) after its cancelled migration"

# 3: a checkpoint while three migrations are still held.
cl_ctl h1 checkpoint mc --leave-running >"$TH_ROOT/ckpt.out" 2>&1 &
ck=$!
ckpt_done() { ! kill -0 "$ck" 2>/dev/null; }
th_wait 60 ckpt_done || fail "the checkpoint did not complete while VM migrations were held"
wait "$ck" || fail "checkpoint failed: $(cat "$TH_ROOT/ckpt.out")"
[ "$(inst_field h1 mc generation)" = 1 ] || fail "mc has no checkpoint"

# 4: the rest cancelled; nothing left.
for v in v2 v3 v4; do
	cl_ctl h1 migrate "$v" --cancel >/dev/null
done
for v in v2 v3 v4; do
	rc=0; wait "${MIG[$v]}" || rc=$?
	[ $rc != 0 ] || fail "$v: the migration succeeded"
	[ "$(inst_field h1 "$v" state)" = running ] ||
	    fail "$v is $(inst_field h1 "$v" state)"
done
cl_ctl h1 stop mc >/dev/null
cl_stop h1 || fail "h1's ternd did not stop by itself"
cl_stop h2 || fail "h2's ternd did not stop by itself"
cl_check_log h1
cl_check_log h2
echo "vm-longjobs: ok"
