#!/usr/bin/env bash
# container-migrate: a container with 1 GiB of memory (memcheck rewrites
# about half of it per second) moved between two test hosts by tern
# (ternctl migrate; auto picks post-copy on this kernel, and stop-and-copy
# runs too for comparison; everything over mutual TLS, images checksummed
# and verified before restore, one commit point) and, in the same run, by
# what an operator would script by hand with the same CRIU (plain TCP, no
# encryption, nothing verified):
#  tar|nc       criu dump, the images tar'd over nc, criu restore;
#  page-server  criu page-server on the target, criu dump --page-server
#               (the memory never touches the source's disk), the other
#               images tar'd over nc, criu restore;
#  lazy         criu dump --lazy-pages (it then serves the memory from
#               the source), the other images tar'd over nc, criu
#               lazy-pages --page-server and criu restore --lazy-pages on
#               the target: CRIU's post-copy;
#  page-server --tls  the page-server method with CRIU's own TLS on the
#               page channel (the hosts' tern certificates): not the
#               goal's anchor, but like for like with tern's encryption;
#  page-server, lazy restore  the page-server method, restored with its
#               memory left to a criu lazy-pages on the target's own
#               images (what tern's stop-and-copy target does since it
#               resumes early): a stop-and-copy anchor too.
# Frozen time: from the dump's start until the restored tree runs (for
# tern its frozen_ms).  Seen: the longest stall of its own progress that
# memcheck reports (it ticks every 10 ms; "stall max_ms=" in its state
# file), over the whole move, post-copy's page faults included.  Each
# mode's ratios take the best manual method of that mode (least frozen)
# as the denominator; the last line is stop-and-copy's frozen ratio.
# Before the ratios, "loop: worst lateness ms = N": how late either
# ternd's event loop ran at worst during tern's migrations (goal < 20),
# and "loop: longest callback ms = N", the most CPU its callbacks ran for
# in one part of a loop turn (daemon/loop-probe.h; load aside).
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
die() { echo "container-migrate: FAIL: $*" >&2; exit 1; }

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

# ready_mc WHAT: memcheck on h1, run in, its memory checked: the stall it
# reports next counts from here.
ready_mc() {
	start_mc h1
	sleep 2
	inst_verify h1 mc "$state" "$1, before" >/dev/null
}

# seen_stall: the stall memcheck reported with its last check (the line
# before the counter line).
seen_stall() {
	tail -n 2 "$state" | sed -n 's/^stall max_ms=\([0-9]*\) .*/\1/p'
}

echo "container-migrate: $MIB MiB memcheck container, h1 -> h2 (veth+bridge, MTU $TH_MTU)"

# The event loops' worst lateness during a migration (ternctl status
# --reset-loop-probe before, ternctl status after; daemon/loop-probe.h).
loop_reset() { local h; for h; do cl_ctl "$h" status --reset-loop-probe >/dev/null; done; }
loop_worst() { cl_ctl "$1" --json status | sed -n 's/.*"loop_worst_ms":\([0-9]*\).*/\1/p'; }
# ... and the most CPU its thread used between two ticks (near the
# lateness: a callback ran that long; far below: it waited for the CPU).
loop_busy() { cl_ctl "$1" --json status | sed -n 's/.*"loop_worst_busy_ms":\([0-9]*\).*/\1/p'; }
# ... and its longest callback (CPU; whatever the machine's load).
loop_cb() { cl_ctl "$1" --json status | sed -n 's/.*"loop_longest_callback_ms":\([0-9]*\).*/\1/p'; }

# tern MODE: sets total, frozen, seen, mode_used, loop_src, loop_dst and
# cb (the longer of the two longest callbacks)
tern() {
	local out t0 t1
	ready_mc "tern $1"
	loop_reset h1 h2
	t0=$(now)
	out=$(cl_ctl h1 --json migrate mc --to h2 --mode "$1")
	t1=$(now)
	loop_src=$(loop_worst h1) loop_dst=$(loop_worst h2)
	cb_src=$(loop_cb h1) cb_dst=$(loop_cb h2)
	cb=$(( cb_src > cb_dst ? cb_src : cb_dst ))
	echo "  tern $1: loop: worst lateness ms = $loop_src (source)," \
	    "$loop_dst (target); busy at most $(loop_busy h1), $(loop_busy h2) ms;" \
	    "longest callback $cb_src, $cb_dst ms" >&2
	inst_verify h2 mc "$state" "tern $1" >&2
	seen=$(seen_stall)
	total=$(ms "$t0" "$t1")
	frozen=$(echo "$out" | sed -n 's/.*"frozen_ms":\([0-9]*\).*/\1/p')
	mode_used=$(echo "$out" | sed -n 's/.*"mode":"\([a-z]*\)".*/\1/p')
	cl_ctl h2 destroy mc >/dev/null
}
tern stopcopy
sc_total=$total sc_frozen=$frozen sc_seen=$seen sc_loop="$loop_src/$loop_dst"
sc_worst=$(( loop_src > loop_dst ? loop_src : loop_dst )) sc_cb=$cb
tern auto
tern_total=$total tern_frozen=$frozen tern_mode=$mode_used tern_seen=$seen
tern_loop="$loop_src/$loop_dst"
tern_worst=$(( loop_src > loop_dst ? loop_src : loop_dst )) tern_cb=$cb

# --- by hand, with the same CRIU -----------------------------------------------
src="$TH_ROOT/h1/state/manual" dst="$TH_ROOT/h2/state/manual"
img=/var/lib/tern/manual	# both, as each host sees it
h1a=$(th_addr h1) h2a=$(th_addr h2)

# man_start WHAT PORT: a fresh memcheck container on h1 (sets pid, fz,
# its freezer cgroup, and ext_dump and ext_rst, the external mounts CRIU
# must be told of), empty image directories, and on h2 a listener that
# untars what comes to PORT into the images (started before the clock
# runs, as an operator would).
man_start() {
	# The last method's images go before the container starts, as
	# tern's go with its destroy: memory freed a moment before the
	# clock runs costs a tenth of cold memory on this VM (free page
	# reporting), and only a method that freed it then would gain.
	rm -rf "$src" "$dst"
	ready_mc "$1"
	pid=$(inst_field h1 mc pid)
	fz=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup")
	inst_criu_externals h1 "$pid"
	ext_dump=("${CRIU_EXT_DUMP[@]}") ext_rst=("${CRIU_EXT_RESTORE[@]}")
	mkdir -p "$src" "$dst"
	th_spawn h2 "$TH_ROOT/nc.log" bash -c "nc -l -N $h2a $2 | tar -C $img -x" >/dev/null
	recv=$TH_SPAWN_PID
	sleep 0.3
}

# man_copy PORT: h1's images to h2, tar over nc.
man_copy() {
	th_exec h1 bash -c "tar -C $img -c . | nc -N $h2a $1"
	wait "$recv"
}

# man_restore [OPTION...]: criu restore on h2; returns once the tree runs.
# The tree stays in h2's cgroups, not the ones it had on h1 (ternd there
# empties them when the dump has killed the container).
man_restore() {
	th_exec h2 "$criu" restore -D "$img" -o restore.log -d \
		--pidfile "$img/restore.pid" --root "$TH_ROOT/rootfs" \
		--manage-cgroups=ignore \
		"${ext_rst[@]}" "$@" 2>/dev/null
}

# man_end WHAT: the restored memcheck checks its memory and reports its
# stall (sets seen); then it is killed, and ternd on h1 lets go of mc.
man_end() {
	local rpid
	rpid=$(cat "$dst/restore.pid")
	inst_verify_pid "$rpid" mc "$state" "$1" >&2
	seen=$(seen_stall)
	kill -KILL "$rpid"
	th_wait 10 eval '! th_pid_alive '"$rpid" || die "$1: $rpid outlived SIGKILL"
	cl_ctl h1 destroy mc >/dev/null
}

# status_wait FIFO_FD: until a CRIU started with --status-fd says it is
# ready (a byte on the pipe; nothing within 60 s: it failed).
status_wait() {
	local b
	b=$(timeout 60 dd bs=1 count=1 status=none <&"$1" | od -An -tx1) || b=
	[ -n "$b" ] || die "CRIU did not get ready (logs in $src, $dst)"
}

# tar|nc: criu dump on h1, the images tar'd over nc to h2, criu restore.
man_start "criu dump + tar|nc" 7700
t0=$(now)
th_exec h1 "$criu" dump -t "$pid" -D "$img" -o dump.log \
	--freeze-cgroup "/sys/fs/cgroup/freezer$fz" "${ext_dump[@]}" 2>/dev/null
t1=$(now)
man_copy 7700
t2=$(now)
man_restore
t3=$(now)
man_end "criu dump + tar|nc"
man_total=$(ms "$t0" "$t3")
man_frozen=$man_total	# the tree stands still from the dump to the restore
man_seen=$seen
echo "  tar|nc: dump $(ms "$t0" "$t1") ms, copy $(ms "$t1" "$t2") ms, restore $(ms "$t2" "$t3") ms" >&2

# page-server: criu page-server on h2 takes the memory straight from the
# dump; the rest of the images follow over nc.  "--tls": the same with
# CRIU's own TLS (GnuTLS) on the page channel and the hosts' tern
# certificates, so the memory crosses with the protection tern gives it.
fifo="$TH_ROOT/criu-status"
rm -f "$fifo" && mkfifo "$fifo"
exec {sfd}<>"$fifo"
tls_args() {	# HOST
	local etc
	etc="$(th_dir "$1")/etc"
	echo --tls --tls-cacert "$etc/ca.pem" --tls-cert "$etc/$1.pem" \
	    --tls-key "$etc/$1.key" --tls-no-cn-verify
}
# page_server WHAT PORT [--tls | --lazy]: one such move; sets ps_run
# (total = frozen) and seen.  --lazy: the restore leaves the memory to a
# criu lazy-pages on h2's own images and returns at once (as tern's
# target does); ps_all: until that daemon has all of it.
page_server() {
	local what=$1 port=$2 tls1=() tls2=() rst=() t0 t1 t2 t3 lp
	if [ "${3:-}" = --tls ]; then
		read -r -a tls1 <<<"$(tls_args h1)"
		read -r -a tls2 <<<"$(tls_args h2)"
	fi
	[ "${3:-}" = --lazy ] && rst=(--lazy-pages)
	man_start "$what" "$port"
	th_spawn h2 "$TH_ROOT/page-server.out" "$criu" page-server -D "$img" \
		-o page-server.log --address "$h2a" --port $((port + 1)) \
		"${tls2[@]}" --status-fd 3 3>"$fifo" >/dev/null
	ps_pid=$TH_SPAWN_PID
	status_wait "$sfd"
	t0=$(now)
	th_exec h1 "$criu" dump -t "$pid" -D "$img" -o dump.log \
		--page-server --address "$h2a" --port $((port + 1)) "${tls1[@]}" \
		--freeze-cgroup "/sys/fs/cgroup/freezer$fz" "${ext_dump[@]}" 2>/dev/null ||
		die "$what: criu dump failed: $src/dump.log"
	t1=$(now)
	wait "$ps_pid" || die "$what: criu page-server failed: $dst/page-server.log"
	man_copy "$port"
	if [ ${#rst[@]} != 0 ]; then
		th_spawn h2 "$TH_ROOT/lazy-local.out" "$criu" lazy-pages \
			-D "$img" -o lazy-pages.log --status-fd 3 3>"$fifo" >/dev/null
		lp=$TH_SPAWN_PID
		status_wait "$sfd"
	fi
	t2=$(now)
	man_restore "${rst[@]}"
	t3=$(now)
	if [ ${#rst[@]} != 0 ]; then
		wait "$lp" || die "$what: criu lazy-pages failed: $dst/lazy-pages.log"
	fi
	ps_all=$(ms "$t0" "$(now)")
	man_end "$what"
	ps_run=$(ms "$t0" "$t3")
	echo "  $what: dump $(ms "$t0" "$t1") ms, copy $(ms "$t1" "$t2") ms, restore $(ms "$t2" "$t3") ms${rst[*]:+, all memory in at $ps_all ms}" >&2
}
page_server "criu page-server" 7710
ps_total=$ps_run ps_frozen=$ps_run ps_seen=$seen
page_server "criu page-server --tls" 7730 --tls
pt_total=$ps_run pt_frozen=$ps_run pt_seen=$seen
page_server "criu page-server, lazy restore" 7740 --lazy
pl_total=$ps_all pl_frozen=$ps_run pl_seen=$seen

# lazy: criu dump --lazy-pages writes all but the memory, then serves it
# from h1; criu lazy-pages on h2 feeds the restored tree from there, on
# its faults and in the background, until it has all of it.
man_start "criu lazy" 7720
t0=$(now)
th_spawn h1 "$TH_ROOT/lazy-dump.out" "$criu" dump -t "$pid" -D "$img" \
	-o dump.log --lazy-pages --address "$h1a" --port 7721 --status-fd 3 \
	--freeze-cgroup "/sys/fs/cgroup/freezer$fz" "${ext_dump[@]}" \
	3>"$fifo" >/dev/null
dump_pid=$TH_SPAWN_PID
status_wait "$sfd"
t1=$(now)
man_copy 7720
th_spawn h2 "$TH_ROOT/lazy-pages.out" "$criu" lazy-pages -D "$img" \
	-o lazy-pages.log --page-server --address "$h1a" --port 7721 \
	--status-fd 3 3>"$fifo" >/dev/null
lp_pid=$TH_SPAWN_PID
status_wait "$sfd"
t2=$(now)
man_restore --lazy-pages
t3=$(now)
wait "$lp_pid" || die "criu lazy-pages failed: $dst/lazy-pages.log"
wait "$dump_pid" || die "criu dump --lazy-pages failed: $src/dump.log"
t4=$(now)
man_end "criu lazy"
lz_total=$(ms "$t0" "$t4")
lz_frozen=$(ms "$t0" "$t3")
lz_seen=$seen
echo "  lazy: dump $(ms "$t0" "$t1") ms, copy + lazy-pages up $(ms "$t1" "$t2") ms, restore $(ms "$t2" "$t3") ms, the rest of the memory $(ms "$t3" "$t4") ms" >&2
exec {sfd}>&-

printf '%-56s %8s %8s %8s\n' "" "total" "frozen" "seen"
row() { printf '%-56s %6sms %6sms %6sms\n' "$@"; }
row "tern migrate --mode stopcopy (mTLS, verified)" \
	"$sc_total" "$sc_frozen" "$sc_seen"
row "tern migrate --mode auto ($tern_mode, mTLS)" \
	"$tern_total" "$tern_frozen" "$tern_seen"
row "criu dump + tar|nc + criu restore (plain, unverified)" \
	"$man_total" "$man_frozen" "$man_seen"
row "criu page-server + dump + tar|nc + restore (plain)" \
	"$ps_total" "$ps_frozen" "$ps_seen"
row "criu page-server --tls + dump + tar|nc + restore" \
	"$pt_total" "$pt_frozen" "$pt_seen"
row "criu page-server + dump + tar|nc + lazy restore (plain)" \
	"$pl_total" "$pl_frozen" "$pl_seen"
row "criu dump/lazy-pages/restore --lazy-pages (plain)" \
	"$lz_total" "$lz_frozen" "$lz_seen"
echo "(frozen: until the restored tree runs; seen: memcheck's longest stall;"
echo " a lazy restore's total: until all of its memory is in)"

# Each mode's anchor: its best manual method, the least frozen.
sc_best=tar\|nc sc_bf=$man_frozen sc_bs=$man_seen
if [ "$ps_frozen" -lt "$sc_bf" ]; then
	sc_best=page-server sc_bf=$ps_frozen sc_bs=$ps_seen
fi
if [ "$pl_frozen" -lt "$sc_bf" ]; then
	sc_best="page-server, lazy restore" sc_bf=$pl_frozen sc_bs=$pl_seen
fi
if [ "$tern_mode" = postcopy ]; then
	au_best=lazy au_bf=$lz_frozen au_bs=$lz_seen
else
	au_best=$sc_best au_bf=$sc_bf au_bs=$sc_bs
fi
echo "best manual: stopcopy $sc_best, $tern_mode $au_best"
echo "loop: worst lateness ms = $(( sc_worst > tern_worst ? sc_worst : tern_worst ))" \
    "(source/target: stopcopy $sc_loop, auto $tern_loop; goal < 20)"
echo "loop: longest callback ms = $(( sc_cb > tern_cb ? sc_cb : tern_cb ))" \
    "(CPU; stopcopy $sc_cb, auto $tern_cb)"
ratio() { awk -v a="$2" -v b="$3" -v m="$1" \
	'BEGIN {printf "container-migrate: %s = %.2f\n", m, a / (b > 0 ? b : 1)}'; }
# Not the goal's anchor (the issue names the plain methods), but the
# like-for-like one: the memory crosses encrypted both ways.
ratio "stopcopy frozen tern/page-server-tls" "$sc_frozen" "$pt_frozen"
ratio "$tern_mode seen tern/best manual" "$tern_seen" "$au_bs"
ratio "$tern_mode frozen tern/best manual" "$tern_frozen" "$au_bf"
ratio "stopcopy seen tern/best manual" "$sc_seen" "$sc_bs"
ratio "stopcopy frozen tern/best manual" "$sc_frozen" "$sc_bf"
