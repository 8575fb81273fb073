#!/usr/bin/env bash
# A peer cannot make a VM migration's target hold unbounded resources
# (issue 9, item 10): h3, played by rawpeer with h3's real certificate,
# offers h2 ten VM migrations at once, then opens 40 vm-libvirt relay
# streams for one h2 made ready (each one a new connection from h2's
# ternd to its libvirtd).  h2 takes max_incoming_vm_migrations (2) of
# the offers and 8 relays, refuses the rest saying why, and logs the
# peer and the cap; its ternd's descriptors and its libvirtd's
# connections stay bounded, and it migrates a real VM afterwards.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
RAW="$TERN_BUILDDIR/tests/tools/rawpeer"
MAXIN=2		# max_incoming_vm_migrations on h2
RELAYS=8	# VMM_MAX_RELAYS (agent/vm-migration.c)

th_setup 3
lv_start h1
lv_start h2
cl_pki
cl_conf h1
cl_conf h2 "max_incoming_vm_migrations = $MAXIN"
cl_start h1
cl_start h2
cl_wait_up h1 2 30
log2=$(cl_log h2)
pid2=$(cl_pid h2)
lvpid2=$(lv__pid h2 libvirtd)
nfds() { ls "/proc/$1/fd" | wc -l; }
nsocks() { find "/proc/$1/fd" -lname 'socket:*' | wc -l; }
fds0=$(nfds "$pid2")
lv0=$(nsocks "$lvpid2")
echo "before: h2's ternd $fds0 fds, its libvirtd $lv0 sockets"

pki=$TH_ROOT/pki
: >"$TH_ROOT/flood.out"
th_exec h3 "$RAW" --connect "$(th_addr h2):7480" --ca "$pki/ca.pem" \
	--cert "$pki/hosts/h3/h3.pem" --key "$pki/hosts/h3/h3.key" --as h3 \
	--timeout 20000 --name flood --count 10 --streams 40 --seconds 5 \
	vm-flood >"$TH_ROOT/flood.out" 2>&1 &
raw=$!
th_wait 60 grep -q "^holding" "$TH_ROOT/flood.out" ||
    fail "rawpeer did not get its answers: $(cat "$TH_ROOT/flood.out")"
cat "$TH_ROOT/flood.out"
fds1=$(nfds "$pid2")
lv1=$(nsocks "$lvpid2")
echo "flooded: h2's ternd $fds1 fds, its libvirtd $lv1 sockets"
wait "$raw" || fail "rawpeer: $(cat "$TH_ROOT/flood.out")"

out=$(cat "$TH_ROOT/flood.out")
grep -q "^offers: $MAXIN ready, $((10 - MAXIN)) refused: h2 takes $MAXIN incoming VM migrations at a time (max_incoming_vm_migrations)" <<<"$out" ||
    fail "h2 did not hold the offers to its cap: $out"
grep -q "^streams: $RELAYS accepted, $((40 - RELAYS)) refused: VM migration [0-9a-f]* of flood-[0-9]: h2 takes at most $RELAYS relay streams at once" <<<"$out" ||
    fail "h2 did not hold the relays to their cap: $out"
# The engine logs every refused offer, of either kind, once.
grep -q "mig [0-9a-f]* flood-[0-9] from h3 refused: h2 takes $MAXIN incoming VM migrations" "$log2" ||
    fail "h2 did not log the refused offers with the peer"
grep -q "vmig [0-9a-f]* flood-[0-9]: refused relay [0-9a-f]*/vm-libvirt/[0-9]* from h3: too many at once (at most $RELAYS at once" "$log2" ||
    fail "h2 did not log the refused relays with the peer"
# Bounded by the cap, give or take a few of ternd's own (libvirt's
# keepalive, a control connection).
[ $((fds1 - fds0)) -le $((RELAYS + 6)) ] ||
    fail "h2's ternd went from $fds0 to $fds1 descriptors"
[ $((lv1 - lv0)) -le $((RELAYS + 4)) ] ||
    fail "h2's libvirtd went from $lv0 to $lv1 sockets"
th_pid_alive "$pid2" || fail "h2's ternd died"
cl_ctl h2 status >/dev/null || fail "h2 stopped serving"

# The offers were called off: a real VM still moves, through the relays
# it needs (their number is reported).
vm_create h1 g1 128
cl_ctl h1 migrate g1 --to h2
[ "$(inst_where g1)" = "h2:running" ] || fail "g1 is at: $(inst_where g1)"
vm_settle g1 h1 h2
vm_wait_checks h2 g1 2
vm_verify g1 "moved h1->h2 after the flood"
echo "relays of the real migration on h2:" $(grep -o "vmig [0-9a-f]* [0-9a-f]*/vm-[a-z]*/[0-9]*: relay" "$log2" | grep -v 7e57000001 | sed 's/: relay$//; s/.* //' | sort -u)
cl_ctl h2 destroy g1 >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
