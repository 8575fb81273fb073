#!/usr/bin/env bash
# Faults in the middle of a VM's live migration.  Each ends with the VM
# running on the source, unharmed (its own memory check goes on), the
# operator told why, and nothing left on the target: no QEMU, no domain
# defined, no instance.
#  1. the target's ternd SIGKILLed;
#  2. the link cut (both sides give up after peer_timeout_ms);
#  3. the target's libvirtd killed, then a migration refused while it is
#     down, and one that works once it is back (ternd reconnects);
#  4. the source's ternd SIGKILLed: libvirt's connections die with it,
#     libvirt rolls back, the restarted ternd finds the VM running;
#  5. the target's certificate from another CA: h1 never sees h2 up,
#     the migration is refused.
# The migrations are held to --bandwidth 4M so they are still running
# when the fault strikes (the test guest's first pass is ~90 MB).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

th_setup 2
lv_start h1
lv_start h2
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
vm_create h1 g1 128 "guestcheck.rate=2"

# mig_start TAG: migrate g1 h1 -> h2 in the background, slowly.
mig_start() {
	cl_ctl h1 migrate g1 --to h2 --mode precopy --bandwidth 4M \
	    >"$TH_ROOT/$1.out" 2>&1 &
	MIG=$!
	th_wait 20 migrating || fail "$1: the migration did not start"
	# Let QEMU's stream flow through both ternds for a moment.
	sleep 2
}
migrating() { [ "$(inst_field h1 g1 state)" = migrating ]; }

# mig_failed TAG PATTERN: it ended in failure, saying PATTERN.
mig_failed() {
	local rc=0
	wait "$MIG" || rc=$?
	cat "$TH_ROOT/$1.out"
	[ $rc != 0 ] || fail "$1: the migration succeeded"
	grep -q -- "$2" "$TH_ROOT/$1.out" || fail "$1: not the expected error"
}

# target_clean: no trace of g1 on h2 (libvirt may take a moment to tear
# down an incoming QEMU whose source went away).
h2_clean() {
	! vm_defined h2 g1 && [ -z "$(inst_field h2 g1 state 2>/dev/null)" ]
}
target_clean() {
	th_wait 30 h2_clean || fail "$1: g1 left on h2: libvirt " \
	    "$(lv_virsh h2 list --all 2>&1 | tr '\n' ' '), tern $(inst_where g1)"
	ls "$(th_root_path h2 /run/tern/vm-migrate)" 2>/dev/null | grep . &&
	    fail "$1: migration sockets left on h2"
	return 0
}

# kept WHAT: g1 runs on h1 only, its memory intact, its history whole.
kept() {
	[ "$(inst_where g1)" = "h1:running" ] ||
	    fail "$1: g1 should run on h1, is at: $(inst_where g1)"
	[ "$(vm_copies g1)" = 1 ] || fail "$1: g1 runs $(vm_copies g1) times"
	target_clean "$1"
	vm_wait_checks h1 g1 2
	vm_verify g1 "$1"
}

# --- 1. the target's ternd SIGKILLed ------------------------------------------
mig_start tkill
pid=$(cl_pid h2)
disown "$pid" 2>/dev/null || :
kill -9 "$pid"
mig_failed tkill "lost the connection to h2\|keeps running on h1"
cl_start h2
cl_wait_up h1 2 30
kept "target ternd killed"

# --- 2. the link cut ----------------------------------------------------------
mig_start cut
th_cut h2
mig_failed cut "lost the connection to h2"
th_heal h2
cl_wait_up h1 2 30
kept "link cut"

# --- 3. the target's libvirtd killed ----------------------------------------
mig_start lvkill
kill -9 "$(cat "$TH_ROOT/h2/libvirt/libvirtd.pid")"
mig_failed lvkill "keeps running on h1"
# Down: refused at once, by h2, saying why.
rc=0
out=$(cl_ctl h1 migrate g1 --to h2 2>&1) || rc=$?
echo "$out"
[ $rc != 0 ] || fail "migrated to a host without libvirtd"
grep -q 'h2 refused: no libvirt on h2 (libvirtd does not answer)' <<<"$out" ||
    fail "refusal: $out"
# Its QEMUs died with it? (libvirtd killed leaves them; ours was torn
# down with the incoming migration.)  Back up: ternd reconnects by itself.
lv_start h2
th_wait 30 grep -q 'libvirt qemu:///system: connected again' "$(cl_log h2)" ||
    fail "h2's ternd did not reconnect to libvirtd"
kept "target libvirtd killed"
out=$(cl_ctl h1 migrate g1 --to h2)
echo "$out"
vm_settle g1 h1 h2
[ "$(inst_where g1)" = "h2:running" ] || fail "after libvirtd came back: $(inst_where g1)"
vm_wait_checks h2 g1 2
vm_verify g1 "moved once libvirtd was back"
cl_ctl h2 migrate g1 --to h1 >/dev/null
vm_settle g1 h2 h1

# --- 4. the source's ternd SIGKILLed -------------------------------------
mig_start skill
pid=$(cl_pid h1)
disown "$pid" 2>/dev/null || :
kill -9 "$pid"
mig_failed skill "ternd closed the connection"
cl_start h1
cl_wait_up h1 2 30
th_wait 30 eval '[ "$(inst_field h1 g1 state)" = running ]' ||
    fail "the restarted ternd does not see g1 running: $(inst_where g1)"
kept "source ternd killed"

# --- 5. the target's certificate from another CA -----------------------------
pki=$TH_ROOT/pki
"$CL_TERNCTL" ca init --dir "$TH_ROOT/other" >/dev/null
"$CL_TERNCTL" cert issue h2 --ca-dir "$TH_ROOT/other" --out "$TH_ROOT/other" >/dev/null
cl_stop h2
cp "$TH_ROOT/other/h2.pem" "$TH_ROOT/other/h2.key" "$TH_ROOT/other/ca.pem" "$TH_ROOT/h2/etc/"
cl_start h2
sleep 3
rc=0
out=$(cl_ctl h1 migrate g1 --to h2 2>&1) || rc=$?
echo "$out"
[ $rc != 0 ] || fail "migrated to a host with another CA"
grep -q 'host h2 is not up' <<<"$out" || fail "wrong CA: $out"
grep -q 'h2.*\(unable to get local issuer\|certificate\)' "$(cl_log h1)" ||
    fail "h1's log does not say why h2 is not trusted"
kept "target with a certificate from another CA"

# ternd's exit: leaks and sanitizer reports show there.
cl_stop_all || fail "a ternd did not stop cleanly"
echo "vm-migrate-faults: ok"
