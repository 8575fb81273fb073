#!/usr/bin/env bash
# Two test hosts, each with its own libvirtd (own /run/libvirt, /etc,
# /var/lib, /var/log, /var/cache and host UUID), and the test VM
# (tests/guest/memcheck-guest.c as init) live-migrated from h1 to h2 with
# plain `virsh migrate --live --p2p`: tern's own migration proxy is later
# work, this is the ground it stands on.  The guest checks its own 32 MiB
# area and says so on its serial console: the lines must go on, with
# growing counters and no CORRUPT, on h2, and the domain must be gone
# from h1.  The check must be able to fail: the guest program run as a
# process, and a second VM, corrupt a byte on purpose and must say
# CORRUPT.  th_teardown must leave no libvirtd, virtlogd or QEMU behind.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

now_ms() { date +%s%3N; }
gone() { ! th_pid_alive "$1"; }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
BOOT_TIMEOUT=90

guest=$(lv_guest_dir) || fail "cannot build the test guest"

# --- the check can fail: memcheck-guest as a plain process -----------------
out=$("$guest/memcheck-guest" -m 4 -r 4 -p 100 -n 3) ||
	fail "memcheck-guest without corruption exited $?: $out"
echo "$out"
v=$(lv_guest_verify <(echo "$out")) || fail "a clean run fails the check: $v"
rc=0
out=$("$guest/memcheck-guest" -m 4 -r 4 -p 100 -c 0 -n 3) || rc=$?
echo "$out"
[ "$rc" = 2 ] || fail "memcheck-guest -c 0 exited $rc, not 2 (corruption)"
grep -q '^guestcheck check=1 .* CORRUPT at offset [0-9]' <<<"$out" ||
	fail "memcheck-guest -c 0 did not report CORRUPT at its first check"
v=$(lv_guest_verify <(echo "$out")) && fail "lv_guest_verify missed: $out"
echo "negative (process): $v"

# --- two libvirt hosts -------------------------------------------------------
th_setup 2
for h in h1 h2; do
	t0=$(now_ms)
	lv_start $h || fail "libvirtd did not start on $h"
	echo "$h: libvirtd up in $(secs $(($(now_ms) - t0))) s, $(lv_uri $h)"
done
u1=$(lv_virsh h1 capabilities | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' | head -n 1)
u2=$(lv_virsh h2 capabilities | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' | head -n 1)
echo "host UUIDs: h1 $u1, h2 $u2"
[ -n "$u1" ] && [ -n "$u2" ] || fail "no host UUID in the capabilities"
[ "$u1" != "$u2" ] || fail "h1 and h2 have the same host UUID"
[ "$u1" = "$(cat "$TH_ROOT/h1/libvirt/host_uuid")" ] ||
	fail "h1's libvirtd does not use its host_uuid"
# libvirtd listens on its unix sockets only: no TCP port in the hosts.
for h in h1 h2; do
	tcp=$(th_exec $h ss -Hltn) || fail "ss failed in $h"
	[ -z "$tcp" ] || fail "something listens on TCP in $h: $tcp"
done
# Separate daemons, not two names for one: each knows only its domains.
[ "$(th_root_path h1 /run/libvirt)" != "$(th_root_path h2 /run/libvirt)" ] ||
	fail "h1 and h2 share /run/libvirt"

# --- the test VM on h1, a deliberately corrupting one on h2 ------------------
lv_domain_xml vm1 >"$TH_ROOT/vm1.xml"
lv_domain_xml vmbad 96 "guestcheck.mib=8 guestcheck.corrupt=2" \
	>"$TH_ROOT/vmbad.xml"
lv_virsh h1 define "$TH_ROOT/vm1.xml" >/dev/null
log1=$(lv_serial_log h1 vm1)
log2=$(lv_serial_log h2 vm1)
logbad=$(lv_serial_log h2 vmbad)
t0=$(now_ms)
lv_virsh h1 start vm1 >/dev/null
lv_virsh h2 create "$TH_ROOT/vmbad.xml" >/dev/null
lv_wait_log "$log1" '^guestcheck ready' $BOOT_TIMEOUT || fail "vm1 did not boot"
boot_ms=$(($(now_ms) - t0))
lv_wait_log "$log1" '^guestcheck check=1 .* ok' 30 ||
	fail "vm1 printed no ok line"
echo "vm1 booted in $(secs $boot_ms) s (define+start to 'guestcheck ready')"

# The negative VM: its serial log must show CORRUPT, and the check that
# judges vm1 must reject it.
lv_wait_log "$logbad" 'CORRUPT' 60 || fail "vmbad never reported CORRUPT"
v=$(lv_guest_verify "$logbad") && fail "lv_guest_verify missed vmbad: $v"
echo "negative (VM on h2): $v"
lv_virsh h2 destroy vmbad >/dev/null

# QEMU runs inside h1: its cgroup (th_teardown kills it) and netns.
qpid=$(cat "$(th_root_path h1 /run/libvirt/qemu/vm1.pid)")
grep -q ":freezer:/tern-test/$TH_NET-h1\$" "/proc/$qpid/cgroup" ||
	fail "vm1's QEMU ($qpid) is not in h1's cgroup: $(cat /proc/"$qpid"/cgroup)"
[ "$(readlink "/proc/$qpid/ns/net")" = \
    "$(readlink "/proc/$(th_holder h1)/ns/net")" ] ||
	fail "vm1's QEMU is not in h1's network namespace"
lv_wait_ok "$log1" 3 30 || fail "vm1: fewer than 3 ok lines on h1"
v=$(lv_guest_verify "$log1") || fail "vm1 on h1: $v"
echo "vm1 on h1: $v"

# The guest sees how long it was stopped, though its clocks stood still
# meanwhile (the RTC follows the host's): stopped for 2 s, the stall it
# reports after must cover that, give or take the tick or so it takes to
# see an RTC second begin.
n=$(lv_ok_lines "$log1")
lv_virsh h1 suspend vm1 >/dev/null
t0=$(now_ms)
sleep 2
stopped=$(($(now_ms) - t0))
lv_virsh h1 resume vm1 >/dev/null
lv_wait_ok "$log1" $((n + 3)) 30 || fail "vm1 checks no more after resume"
read -r hidden stall < <(tr -d '\r' <"$log1" | awk -v n="$n" '
	/^guestcheck check=.* ok$/ && ++k > n {
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^hidden_ms=/) h += substr($i, 11)
			if ($i ~ /^stall_ms=/ && substr($i, 10) + 0 > s)
				s = substr($i, 10) + 0
		}
	}
	END { print h + 0, s + 0 }')
echo "stopped for $stopped ms: the guest saw a stall of $stall ms, $hidden ms" \
	"hidden from its clock"
[ "$hidden" -ge $((stopped - 250)) ] && [ "$stall" -ge $((stopped - 250)) ] ||
	fail "the guest missed that it was stopped for $stopped ms:" \
	    "stall $stall ms, hidden $hidden ms"

# --- live migration h1 -> h2 ---------------------------------------------------
before=$(lv_last_counter "$log1")
t0=$(now_ms)
lv_virsh h1 migrate --live --p2p --persistent --undefinesource vm1 \
	"$(lv_uri h2)" || fail "virsh migrate failed"
mig_ms=$(($(now_ms) - t0))
echo "migrated in $(secs $mig_ms) s (virsh migrate --live --p2p)"
lv_virsh h2 domjobinfo --completed vm1 2>/dev/null |
	grep -E 'Time elapsed|Total downtime|Memory processed|Memory bandwidth|Iteration' || :

[ "$(lv_virsh h2 domstate vm1)" = running ] || fail "vm1 is not running on h2"
if lv_virsh h1 dominfo vm1 >/dev/null 2>&1; then
	fail "vm1 is still known on h1: $(lv_virsh h1 list --all)"
fi
th_wait 10 gone "$qpid" || fail "vm1's QEMU ($qpid) still runs on h1"

# The guest goes on checking on h2: 3 more ok lines with growing counters.
lv_wait_log "$log2" '^guestcheck check=.* ok' 30 || fail "no ok line from h2"
lv_wait_ok "$log2" 3 30 || fail "vm1: fewer than 3 ok lines on h2"
after=$(lv_last_counter "$log2")
echo "counter: $before on h1 before, $after on h2 after"
[ "$after" -gt "$before" ] || fail "the counter did not grow across the migration"
grep -q '^guestcheck \(start\|ready\)' "$log2" &&
	fail "the guest started afresh on h2 (a boot, not a migration)"
v=$(lv_guest_verify "$log1" "$log2") || fail "vm1 across h1 -> h2: $v"
echo "vm1 on h1 then h2: $v"

# --- teardown leaves nothing ---------------------------------------------------
pids=$(for h in h1 h2; do lv_pids $h; done | sort -u | tr '\n' ' ')
echo "processes of the hosts: $pids"
[ -n "$pids" ] || fail "no libvirt process recorded"
th_teardown
sleep 0.2
for p in $pids; do
	th_pid_alive "$p" && fail "process $p ($(cat /proc/"$p"/comm)) survived th_teardown"
done
echo "times: boot $(secs $boot_ms) s, migrate $(secs $mig_ms) s"
echo PASS
