#!/usr/bin/env bash
# VM instances on one host, with a real libvirtd and QEMU (TCG): the VM
# kind of ternd's instance table and its checkpoints.
#  - bad input: a <name> that is not the instance's, XML libvirt refuses
#    (its message reaches the operator), a name libvirt already has, a
#    duplicate create (also two at once), --kind vm on a host without
#    libvirt, actions in the wrong state: refused, nothing defined;
#  - lifecycle: create, start, list, stop (the guest ignores ACPI: ternd
#    destroys it after its grace period), start, destroy (undefined);
#  - libvirt's events, no polling: virsh destroy and virsh start from
#    outside, a QEMU killed with SIGKILL;
#  - libvirtd stops (its QEMU runs on) and comes back: ternd says so,
#    reconnects, the VM is running and usable;
#  - ternd restarts: states come from libvirt;
#  - checkpoint (vm.img + domain.xml under a MANIFEST), restore,
#    --leave-running, a damaged image refused, restore of generation N.
# The guest checks its own memory on its console; its history across
# checkpoints and restores must show counters that only grow.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/libvirt.sh"
. "$TERN_SRCDIR/tests/lib/vms.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
lv_check || exit 77
trap th_teardown EXIT

T0=$SECONDS
step() { echo "--- [$((SECONDS - T0)) s] $*"; }

th_setup 2
lv_start h1
cl_pki
cl_conf h1
cl_conf h2 'libvirt_uri = ""'
cl_start h1
cl_start h2
# ternd_ready HOST: past its start (CRIU checked, instances loaded).
ternd_ready() {
	th_wait 30 eval "cl_ctl $1 list >/dev/null 2>&1" ||
	    fail "ternd on $1 does not answer: $(cl_ctl "$1" list 2>&1)"
}
ternd_ready h1
ternd_ready h2
X=$TH_ROOT/xml
mkdir -p "$X"
for n in v1 v2 v3 ext other; do
	lv_domain_xml $n >"$X/$n.xml"
done

json() {	# FIELD: from a `ternctl --json ...` answer on stdin
	python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}
state() { inst_field h1 "$1" state; }
lasterr() { inst_field h1 "$1" last_error; }
is_state() { [ "$(state "$1")" = "$2" ]; }
domstate() { lv_virsh h1 domstate "$1" 2>&1 | head -n 1; }
# defined: the domains h1's libvirtd knows, on one line.
defined() { lv_virsh h1 list --all --name | sort | tr '\n' ' ' | sed 's/ *$//'; }
listed() { cl_ctl h1 list --json | python3 -c '
import json, sys
print(" ".join(sorted(i["name"] for i in json.load(sys.stdin)["instances"])))'; }

# refused HOST PATTERN ARGS...: `ternctl ARGS` on HOST fails saying
# PATTERN; what it said is in $out.
refused() {
	local host=$1 pattern=$2 rc=0
	shift 2
	out=$(cl_ctl "$host" "$@" 2>&1) || rc=$?
	[ $rc != 0 ] || fail "ternctl $* succeeded: $out"
	grep -q -- "$pattern" <<<"$out" ||
	    fail "ternctl $*: \"$out\" does not say \"$pattern\""
	echo "refused: $*: $out"
}

# has_state NAME STATE ERROR_REGEX: ternctl list says so.
has_state() {
	[ "$(state "$1")" = "$2" ] ||
	    fail "$1 is $(state "$1"), not $2 (last error: $(lasterr "$1"))"
	grep -Eq -- "$3" <<<"$(lasterr "$1")" ||
	    fail "$1's last error \"$(lasterr "$1")\" does not match \"$3\""
}

# event NAME STATE ERROR_REGEX WHAT [S]: libvirt's event reaches ternd
# within S (3) seconds.  ternd does not poll libvirt: without the event
# nothing changes.
event() {
	local t lim=${5:-3}
	t=$(date +%s%3N)
	th_wait "$lim" is_state "$1" "$2" ||
	    fail "$4: $1 still $(state "$1") after $lim s, not $2"
	t=$(($(date +%s%3N) - t))
	has_state "$1" "$2" "$3"
	echo "$4: $1 $2 within $t ms: $(lasterr "$1")"
}

# --- bad input: refused, nothing defined ----------------------------------------
step "bad input"
refused h1 'the domain XML names it "other"' create v1 --kind vm --xml "$X/other.xml"
sed '/<name>/d' "$X/v1.xml" >"$X/noname.xml"
refused h1 'no <name> in the domain XML' create v1 --kind vm --xml "$X/noname.xml"
# Malformed: libvirt's own words must reach the operator.
sed '$d' "$X/v1.xml" >"$X/bad.xml"
lv_virsh h1 define "$X/bad.xml" >"$TH_ROOT/virsh.out" 2>&1 &&
    fail "virsh define accepted malformed XML"
why=$(sed -n 's/^error: //p' "$TH_ROOT/virsh.out" | tail -n 1)
[ -n "$why" ] || fail "virsh define: $(cat "$TH_ROOT/virsh.out")"
echo "virsh define says: $why"
refused h1 'refused the domain XML: ' create v1 --kind vm --xml "$X/bad.xml"
grep -qF -- "$why" <<<"$out" || fail "libvirt's words are not in: $out"
# Invalid rather than malformed: libvirt validates against its schema.
sed 's|<vcpu>1</vcpu>|<vcpu>one</vcpu>|' "$X/v1.xml" >"$X/invalid.xml"
refused h1 'refused the domain XML: ..' create v1 --kind vm --xml "$X/invalid.xml"
[ -z "$(defined)" ] || fail "refused creates left domains defined: $(defined)"
[ -z "$(listed)" ] || fail "refused creates left instances: $(listed)"
# A domain tern did not define is not tern's: refused, and left alone.
lv_virsh h1 define "$X/ext.xml" >/dev/null
refused h1 'libvirt here already has a domain ext' create ext --kind vm \
    --xml "$X/ext.xml"
[ "$(defined)" = ext ] || fail "after refusing ext, libvirt has: $(defined)"
[ -z "$(listed)" ] || fail "ext became an instance: $(listed)"
lv_virsh h1 undefine ext >/dev/null
refused h2 'VMs are not available on h2: libvirt_uri is empty' create v1 \
    --kind vm --xml "$X/v1.xml"
[ -z "$(cl_ctl h2 list --json | grep '"name"')" ] || fail "h2 has instances"

out=$(cl_ctl h1 create v1 --kind vm --xml "$X/v1.xml")
grep -q 'instance v1 created' <<<"$out" || fail "create v1: $out"
refused h1 'instance v1 already exists' create v1 --kind vm --xml "$X/v1.xml"
# Two creates of one name at once (with a <uuid>: libvirt would take the
# second definition as an update of the first): one wins.
sed 's|<name>v2</name>|&<uuid>6c4e2d1a-7b3f-4c55-9a0e-2f1d3c4b5a69</uuid>|' \
    "$X/v2.xml" >"$X/v2u.xml"
rc1=0 rc2=0
cl_ctl h1 create v2 --kind vm --xml "$X/v2u.xml" >"$TH_ROOT/c1" 2>&1 & p1=$!
cl_ctl h1 create v2 --kind vm --xml "$X/v2u.xml" >"$TH_ROOT/c2" 2>&1 & p2=$!
wait $p1 || rc1=$?
wait $p2 || rc2=$?
echo "two creates of v2: $(cat "$TH_ROOT/c1") / $(cat "$TH_ROOT/c2")"
[ $((rc1 == 0)) != $((rc2 == 0)) ] ||
    fail "two creates of v2 at once: exit $rc1 and $rc2"
grep -q 'already exists' "$TH_ROOT/c1" "$TH_ROOT/c2" ||
    fail "the losing create of v2 does not say it exists"
[ "$(listed)" = "v1 v2" ] || fail "instances after the creates: $(listed)"
[ "$(defined)" = "v1 v2" ] || fail "domains after the creates: $(defined)"
[ "$(domstate v1)" = "shut off" ] || fail "v1 after create: $(domstate v1)"
has_state v1 stopped '^$'
[ "$(inst_field h1 v1 kind)" = vm ] || fail "v1 kind $(inst_field h1 v1 kind)"
refused h1 'instance v1 is stopped: only a running instance can be checkpointed' \
    checkpoint v1
refused h1 'instance v1 is stopped: only a running instance migrates' \
    migrate v1 --to h2
refused h1 'instance v1 has no complete checkpoint' restore v1
refused h1 'instance v1 is stopped' stop v1

# --- lifecycle, and libvirt's events ---------------------------------------------
step "start"
out=$(cl_ctl h1 start v1)
grep -q 'instance v1 started' <<<"$out" || fail "start v1: $out"
vm_restarted h1 v1 /dev/null
has_state v1 running '^$'
[ "$(vm_copies v1)" = 1 ] || fail "v1 runs $(vm_copies v1) times"
refused h1 'instance v1 is running' start v1
refused h1 'instance v1 is running: stop it before restoring' restore v1
vm_wait_checks h1 v1 2

step "events from libvirt"
lv_virsh h1 destroy v1 >/dev/null
event v1 stopped '^destroyed$' "virsh destroy"
vm_settle v1 h1 h1
lv_virsh h1 start v1 >/dev/null
event v1 running '^started outside tern$' "virsh start"
vm_restarted h1 v1 /dev/null
vm_wait_checks h1 v1 1
kill -KILL "$(vm_qemu_pid h1 v1)"
# libvirt itself takes ~1.5 s to see that QEMU is gone.
event v1 stopped 'QEMU failed' "kill -9 of QEMU" 5
vm_settle v1 h1 h1
out=$(cl_ctl h1 start v1)
vm_restarted h1 v1 /dev/null
has_state v1 running '^$'
vm_wait_checks h1 v1 2
vm_verify v1 "after a start"

# --- libvirtd stops and comes back --------------------------------------------
# It goes in the middle of a stop: the guest ignores ACPI, and when the
# grace period is over there is no libvirtd to destroy it.  The stop
# fails and the VM runs on.  (libvirtd stopping leaves its QEMUs running.)
step "libvirtd restart, during a stop"
qemu=$(vm_qemu_pid h1 v1)
lvd=$(cat "$TH_ROOT/h1/libvirt/libvirtd.pid")
t=$SECONDS
cl_ctl h1 stop v1 >"$TH_ROOT/stop.out" 2>&1 &
stopper=$!
th_wait 5 is_state v1 stopping || fail "v1 is $(state v1), not stopping"
# Early in the grace period (10 s): a loaded machine needs the rest to
# see libvirtd go before the destroy at its end.
sleep 2
kill -TERM "$lvd"
th_wait 3 eval '! th_pid_alive '"$lvd" || fail "libvirtd ignores SIGTERM"
# Noticed: the event, or (on a loaded machine the grace period of 10 s
# may end first) the stop's destroy failing for want of libvirtd.
noticed() { [[ "$(lasterr v1)" == "lost libvirtd"* || "$(lasterr v1)" == *"is not connected"* ]]; }
th_wait 2 noticed || fail "ternd did not notice libvirtd's end: $(lasterr v1)"
echo "libvirtd stopped: v1 $(state v1): $(lasterr v1)"
refused h1 'libvirtd at .* does not answer' checkpoint v1
rc=0
wait $stopper || rc=$?
echo "stop v1 without libvirtd: $(cat "$TH_ROOT/stop.out") after $((SECONDS - t)) s"
[ $rc != 0 ] || fail "stop v1 succeeded without libvirtd"
grep -q 'cannot stop it: .*not connected' "$TH_ROOT/stop.out" ||
    fail "stop v1: $(cat "$TH_ROOT/stop.out")"
has_state v1 running 'not connected'
th_pid_alive "$qemu" || fail "v1's QEMU died with libvirtd"
lv_start h1
th_wait 15 grep -q 'libvirt .*: connected again' "$(cl_log h1)" ||
    fail "ternd did not reconnect to libvirtd"
echo "libvirtd back: $(grep 'connected again' "$(cl_log h1)" | tail -n 1)"
is_state v1 running || fail "v1 after libvirtd's restart: $(state v1)"
[ "$(vm_qemu_pid h1 v1)" = "$qemu" ] || fail "v1 has another QEMU"
vm_wait_checks h1 v1 2
vm_verify v1 "across libvirtd's restart"

# The guest ignores ACPI's power button: destroyed after 10 s.
step "stop"
t=$SECONDS
out=$(cl_ctl h1 stop v1)
echo "stop v1: $out after $((SECONDS - t)) s"
grep -q 'instance v1 stopped (destroyed after the grace period)' <<<"$out" ||
    fail "stop v1: $out"
[ $((SECONDS - t)) -ge 9 ] || fail "stop v1 did not wait for the guest"
is_state v1 stopped || fail "v1 after stop: $(state v1)"
[ "$(domstate v1)" = "shut off" ] || fail "v1 after stop: $(domstate v1)"
vm_settle v1 h1 h1
cl_ctl h1 start v1 >/dev/null
vm_restarted h1 v1 /dev/null
has_state v1 running '^$'

# --- ternd restarts -------------------------------------------------------------
# v1 runs, v2 is started outside tern while ternd is down, v3 stays off.
step "ternd restart"
cl_ctl h1 create v3 --kind vm --xml "$X/v3.xml" >/dev/null
vm_wait_checks h1 v1 1
qemu=$(vm_qemu_pid h1 v1)
cl_stop h1
lv_virsh h1 start v2 >/dev/null
cl_start h1
ternd_ready h1
th_wait 5 is_state v2 running ||
    fail "v2, started while ternd was down, is $(state v2)"
has_state v1 running '^$'
is_state v3 stopped || fail "v3 after ternd's restart: $(state v3)"
[ "$(domstate v3)" = "shut off" ] || fail "v3 in libvirt: $(domstate v3)"
[ "$(vm_qemu_pid h1 v1)" = "$qemu" ] || fail "v1 has another QEMU"
for n in v2 v3; do
	out=$(cl_ctl h1 destroy $n)
	grep -q "instance $n destroyed" <<<"$out" || fail "destroy $n: $out"
done
[ "$(defined)" = v1 ] || fail "domains after destroying v2, v3: $(defined)"
[ "$(listed)" = v1 ] || fail "instances after destroying v2, v3: $(listed)"
vm_wait_checks h1 v1 2
vm_verify v1 "across ternd's restart"

# --- checkpoint and restore --------------------------------------------------------
gendir() { echo "$TH_ROOT/h1/state/instances/v1/ckpt/$1"; }
step "checkpoint"
out=$(cl_ctl h1 --json checkpoint v1)
echo "$out"
[ "$(json generation <<<"$out")" = 1 ] || fail "first checkpoint: $out"
[ "$(json dir <<<"$out")" = /var/lib/tern/instances/v1/ckpt/1 ] ||
    fail "checkpoint dir: $out"
g=$(gendir 1)
[ "$(grep -v '^#' "$g/MANIFEST" | awk '{print $3}' | sort | tr '\n' ' ')" = \
    "domain.xml vm.img " ] || fail "MANIFEST: $(cat "$g/MANIFEST")"
(cd "$g" && grep -v '^#' MANIFEST | awk '{print $2 "  " $3}' | sha256sum -c --quiet) ||
    fail "MANIFEST's checksums"
grep -v '^#' "$g/MANIFEST" | while read -r size sum file; do
	[ "$(stat -c %s "$g/$file")" = "$size" ] || fail "size of $file"
done
grep -q '<name>v1</name>' "$g/domain.xml" || fail "domain.xml: $(head "$g/domain.xml")"
has_state v1 checkpointed '^$'
[ "$(inst_field h1 v1 generation)" = 1 ] || fail "generation $(inst_field h1 v1 generation)"
[ "$(domstate v1)" = "shut off" ] || fail "v1 after checkpoint: $(domstate v1)"
vm_settle v1 h1 h1

step "restore"
out=$(cl_ctl h1 restore v1)
echo "$out"
grep -q 'v1: restored checkpoint 1' <<<"$out" || fail "restore: $out"
vm_restarted h1 v1
has_state v1 running '^$'
[ "$(vm_copies v1)" = 1 ] || fail "v1 runs $(vm_copies v1) times"
vm_wait_checks h1 v1 2
grep -q 'guestcheck start' "$(lv_serial_log h1 v1)" &&
    fail "v1 booted afresh instead of resuming"
vm_verify v1 "checkpoint 1, restored"

step "checkpoint --leave-running"
vm_settle v1 h1 h1
cp "$(vm_history v1)" "$TH_ROOT/v1.gen2"
qemu=$(vm_qemu_pid h1 v1)
out=$(cl_ctl h1 --json checkpoint --leave-running v1)
echo "$out"
[ "$(json generation <<<"$out")" = 2 ] || fail "second checkpoint: $out"
echo "checkpoint --leave-running: v1 paused $(json frozen_ms <<<"$out") ms" \
    "(the whole checkpoint $(json duration_ms <<<"$out") ms)"
has_state v1 running '^$'
[ "$(inst_field h1 v1 generation)" = 2 ] || fail "generation $(inst_field h1 v1 generation)"
[ "$(vm_copies v1)" = 1 ] || fail "v1 runs $(vm_copies v1) times"
# A diskless guest is written live (libvirt's external memory snapshot):
# the same QEMU goes on, paused only for its switch-over.
[ "$(vm_qemu_pid h1 v1)" = "$qemu" ] ||
    fail "checkpoint --leave-running restarted v1's QEMU (not live)"
[ "$(json frozen_ms <<<"$out")" -lt 1000 ] ||
    fail "a live checkpoint paused v1 $(json frozen_ms <<<"$out") ms"
vm_wait_checks h1 v1 3
vm_verify v1 "checkpoint 2, left running"

step "damaged checkpoint"
out=$(cl_ctl h1 --json checkpoint v1)
[ "$(json generation <<<"$out")" = 3 ] || fail "third checkpoint: $out"
vm_settle v1 h1 h1
gen3_last=$(lv_last_counter "$(vm_history v1)")
img=$(gendir 3)/vm.img
off=$(($(stat -c %s "$img") / 2))
b=$(od -An -tu1 -j $off -N 1 "$img" | tr -d ' ')
printf "\\x$(printf %02x $((b ^ 0x5a)))" |
    dd of="$img" bs=1 seek=$off count=1 conv=notrunc status=none
sum=$(sha256sum <"$img")
refused h1 'vm.img: checksum mismatch' restore v1
[ "$(sha256sum <"$img")" = "$sum" ] || fail "the damaged image was changed"
has_state v1 checkpointed 'checksum mismatch'
[ "$(domstate v1)" = "shut off" ] || fail "v1 after the refusal: $(domstate v1)"
[ "$(vm_copies v1)" = 0 ] || fail "v1 runs after the refused restore"

refused h1 'instance v1 has no complete checkpoint 9' restore v1 --generation 9
has_state v1 checkpointed 'checksum mismatch'

step "restore --generation 2"
out=$(cl_ctl h1 restore v1 --generation 2)
echo "$out"
grep -q 'v1: restored checkpoint 2' <<<"$out" || fail "restore 2: $out"
vm_restarted h1 v1 "$TH_ROOT/v1.gen2"
has_state v1 running '^$'
vm_wait_checks h1 v1 2
first=$(sed -n 's/^guestcheck check=[0-9]* counter=\([0-9]*\) .* ok.*/\1/p' \
    "$(lv_serial_log h1 v1)" | head -n 1)
[ "$first" -lt "$gen3_last" ] ||
    fail "after restoring 2 the guest counts from $first, not below" \
	"checkpoint 3's $gen3_last"
echo "restored 2: counter $first (checkpoint 3 had reached $gen3_last)"
vm_verify v1 "checkpoint 2, restored after 3"

step "destroy"
out=$(cl_ctl h1 destroy v1)
grep -q 'instance v1 destroyed' <<<"$out" || fail "destroy v1: $out"
[ -z "$(defined)" ] || fail "domains after destroy: $(defined)"
[ -z "$(listed)" ] || fail "instances after destroy: $(listed)"
[ ! -e "$TH_ROOT/h1/state/instances/v1" ] || fail "v1's directory is left"

step "ternd logs"
for h in h1 h2; do
	cl_stop $h || fail "ternd on $h"
done
echo "vm-instances: ok ($((SECONDS - T0)) s)"
