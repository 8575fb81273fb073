#!/usr/bin/env bash
# QEMU's dirty-page tracking under TCG, without tern: the smallest
# reproduction of the QEMU 7.2 defect docs/vms.md describes ("what this
# machine taught us"), kept runnable, with its control.
#
# The page-pattern guest (tests/guest/pagepat-guest.c) with a region of
# 64 pages, few enough to stay in the TLB of QEMU's TCG, moves h1 -> h2
# with plain `virsh migrate --live --p2p --bandwidth 1`, QEMU held in
# pre-copy (max downtime 1 ms) until its pass 4, then dumped on h2 and
# checked page by page:
#  - pagepat.invlpg=1 (every write through a fresh TLB fill): must stay
#    consistent, and the migration must see the guest dirty pages (it
#    reaches pass 4 held): the test fails otherwise;
#  - without: a QEMU that clears its dirty bitmap without resetting the
#    TLB (7.2; fixed in 9.0 by commit 03bfc2188f, "physmem: Fix migration
#    dirty bitmap coherency with TCG memory access") loses every write:
#    the test says "QEMU loses writes" and passes, so that a fixed QEMU
#    shows "QEMU keeps writes" here.
# And the check can fail: pagepat.lose=P drops every write to one page
# from pass P on.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

th_setup 2
lv_start h1
lv_start h2

boot() {	# HOST NAME EXTRA
	lv_pagepat_xml "$2" 64 1 "pagepat.pages=64${3:+ $3}" >"$TH_ROOT/$2.xml"
	lv_virsh "$1" create "$TH_ROOT/$2.xml" >/dev/null || fail "create $2"
	lv_wait_log "$(lv_serial_log "$1" "$2")" 'pagepat pass=' 60 ||
	    fail "$2 does not run"
}

# --- the check can fail ---------------------------------------------------------
boot h2 lost pagepat.lose=1024
lv_wait_log "$(lv_serial_log h2 lost)" 'losing a write' 60 || fail "no loss"
v=$(lv_pagepat_check h2 lost) && fail "a lost write passed the check: $v"
echo "negative control: $v"
lv_virsh h2 destroy lost >/dev/null

# move NAME: h1 -> h2, held in pre-copy until pass 4 (or the end);
# prints the pass it reached while held and the job's last pass.
pass_of() {
	lv_virsh h1 domjobinfo "$1" 2>/dev/null |
	    sed -n 's/^Iteration: *\([0-9]*\).*/\1/p'
}
held_until() {
	local it
	kill -0 "$2" 2>/dev/null || return 0
	it=$(pass_of "$1")
	[ -n "$it" ] && [ "$it" -ge 4 ] && echo "$it" >"$TH_ROOT/$1.held"
}
move() {
	local pid rc=0
	: >"$TH_ROOT/$1.held"
	lv_virsh h1 migrate-setmaxdowntime "$1" 1 >/dev/null
	lv_virsh h1 migrate --live --p2p --bandwidth 1 "$1" "$(lv_uri h2)" &
	pid=$!
	th_wait 120 held_until "$1" "$pid" || fail "$1: migration stuck"
	lv_virsh h1 migrate-setmaxdowntime "$1" 60000 >/dev/null 2>&1 || :
	wait $pid || rc=$?
	[ $rc = 0 ] || fail "virsh migrate $1 failed"
	echo "held=$(cat "$TH_ROOT/$1.held") passes=$(lv_virsh h2 domjobinfo \
	    --completed "$1" | sed -n 's/^Iteration: *\([0-9]*\).*/\1/p')"
}

# --- control: every write through a fresh TLB entry -----------------------------
boot h1 fresh pagepat.invlpg=1
m=$(move fresh)
v=$(lv_pagepat_check h2 fresh) || fail "fresh TLB entries ($m): $v"
case $m in held=[0-9]*) ;; *) fail "fresh: QEMU saw no dirty page ($m)" ;; esac
echo "control, invlpg before each write ($m): $v"
lv_virsh h2 destroy fresh >/dev/null

# --- the defect: writes through TLB entries older than a bitmap sync -----------
boot h1 hot
m=$(move hot)
if v=$(lv_pagepat_check h2 hot); then
	echo "vm-tcg-dirty: QEMU keeps writes ($m): $v"
else
	echo "vm-tcg-dirty: QEMU loses writes through TCG TLB entries ($m): $v"
fi
lv_virsh h2 destroy hot >/dev/null
echo "vm-tcg-dirty: ok"
