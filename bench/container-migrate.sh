#!/usr/bin/env bash
# container-migrate: a container with 1 GiB of memory (memcheck rewrites
# about half of it per second) moved between two test hosts by tern
# (ternctl migrate; auto picks post-copy on this kernel, and stop-and-copy
# runs too for comparison; everything over mutual TLS, images checksummed
# and verified before restore, one commit point) and, in the same run, by
# the pipeline an operator would script by hand with the same CRIU: criu
# dump, copy the images to the other host (tar over nc, no encryption),
# criu restore.  Frozen time: from the dump's start until the restored
# tree runs.  The final ratio compares auto's downtime with the manual's;
# before it, "loop: worst lateness ms = N": how late either ternd's event
# loop ran at worst during tern's migrations (goal: < 20 ms).
set -euo pipefail
export TH_MTU=${TH_MTU:-9000}
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
trap th_teardown EXIT

MIB=${BENCH_CONTAINER_MIB:-1024}
criu=$(sed -n 's/^#define CRIU_DEFAULT_PATH "\(.*\)"/\1/p' "$TERN_BUILDDIR/config.h")
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

th_setup 2 >/dev/null
cl_pki >/dev/null
cl_conf h1 'log_filters = "info"' >/dev/null
cl_conf h2 'log_filters = "info"' >/dev/null
cl_start h1 && cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 && cl_wait_criu h2
rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck "$MIB" /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"

start_mc() {	# HOST
	: > "$state"
	cl_ctl "$1" create mc --spec "$TH_ROOT/mc.json" >/dev/null
	cl_ctl "$1" start mc >/dev/null
	inst_wait_ready "$state" || exit 1
}

echo "container-migrate: $MIB MiB memcheck container, h1 -> h2 (veth+bridge, MTU $TH_MTU)"

# The event loops' worst lateness during a migration (ternctl status
# --reset-loop-probe before, ternctl status after; daemon/loop-probe.h).
loop_reset() { local h; for h; do cl_ctl "$h" status --reset-loop-probe >/dev/null; done; }
loop_worst() { cl_ctl "$1" --json status | sed -n 's/.*"loop_worst_ms":\([0-9]*\).*/\1/p'; }
# ... and the most CPU its thread used between two ticks (near the
# lateness: a callback ran that long; far below: it waited for the CPU).
loop_busy() { cl_ctl "$1" --json status | sed -n 's/.*"loop_worst_busy_ms":\([0-9]*\).*/\1/p'; }

# tern MODE: sets total, frozen, mode_used, loop_src and loop_dst

tern() {
	local out t0 t1
	start_mc h1
	sleep 2
	loop_reset h1 h2
	t0=$(now)
	out=$(cl_ctl h1 --json migrate mc --to h2 --mode "$1")
	t1=$(now)
	loop_src=$(loop_worst h1) loop_dst=$(loop_worst h2)
	echo "  tern $1: loop: worst lateness ms = $loop_src (source)," \
	    "$loop_dst (target); busy at most $(loop_busy h1), $(loop_busy h2) ms" >&2
	inst_verify h2 mc "$state" "tern $1" >&2
	total=$(ms "$t0" "$t1")
	frozen=$(echo "$out" | sed -n 's/.*"frozen_ms":\([0-9]*\).*/\1/p')
	mode_used=$(echo "$out" | sed -n 's/.*"mode":"\([a-z]*\)".*/\1/p')
	cl_ctl h2 destroy mc >/dev/null
}
tern stopcopy
sc_total=$total sc_frozen=$frozen sc_loop="$loop_src/$loop_dst"
sc_worst=$(( loop_src > loop_dst ? loop_src : loop_dst ))
tern auto
tern_total=$total tern_frozen=$frozen tern_mode=$mode_used
tern_loop="$loop_src/$loop_dst"
tern_worst=$(( loop_src > loop_dst ? loop_src : loop_dst ))

# by hand: criu dump on h1, tar | nc to h2, criu restore on h2
start_mc h1
sleep 2
pid=$(inst_field h1 mc pid)
fz=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup")
ext_dump=() ext_rst=()
for d in null zero full random urandom; do
	ext_dump+=(--external "mnt[/dev/$d]:dev-$d")
	ext_rst+=(--external "mnt[dev-$d]:/dev/$d")
done
src="$TH_ROOT/h1/state/manual" dst="$TH_ROOT/h2/state/manual"
mkdir -p "$src" "$dst"
th_spawn h2 "$TH_ROOT/nc.log" bash -c "nc -l -N $(th_addr h2) 7700 | tar -C /var/lib/tern/manual -x" >/dev/null
recv=$TH_SPAWN_PID
sleep 0.3
t0=$(now)
th_exec h1 "$criu" dump -t "$pid" -D /var/lib/tern/manual -o dump.log \
	--freeze-cgroup "/sys/fs/cgroup/freezer$fz" "${ext_dump[@]}" 2>/dev/null
t1=$(now)
th_exec h1 bash -c "tar -C /var/lib/tern/manual -c . | nc -N $(th_addr h2) 7700"
wait "$recv"
t2=$(now)
th_exec h2 "$criu" restore -D /var/lib/tern/manual -o restore.log -d \
	--root "$TH_ROOT/rootfs" "${ext_rst[@]}" 2>/dev/null
t3=$(now)
man_total=$(ms "$t0" "$t3")
man_frozen=$man_total	# the tree stands still from the dump to the restore
echo "  by hand: dump $(ms "$t0" "$t1") ms, copy $(ms "$t1" "$t2") ms, restore $(ms "$t2" "$t3") ms" >&2

printf '%-56s %8s %8s\n' "" "total" "frozen"
printf '%-56s %6sms %6sms\n' "tern migrate --mode stopcopy (mTLS, verified)" \
	"$sc_total" "$sc_frozen"
printf '%-56s %6sms %6sms\n' "tern migrate --mode auto ($tern_mode, mTLS)" \
	"$tern_total" "$tern_frozen"
printf '%-56s %6sms %6sms\n' "criu dump + tar|nc + criu restore (plain, unverified)" \
	"$man_total" "$man_frozen"
echo "loop: worst lateness ms = $(( sc_worst > tern_worst ? sc_worst : tern_worst ))" \
    "(source/target: stopcopy $sc_loop, auto $tern_loop; goal < 20)"
awk -v a="$tern_frozen" -v b="$man_frozen" \
	'BEGIN {printf "container-migrate: downtime tern/manual = %.2f\n", a / b}'
