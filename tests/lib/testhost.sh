# testhost.sh: N "test hosts" on one machine, for multi-host tests.
#
# Source it from a bash test script:
#
#	. "$TERN_SRCDIR/tests/lib/testhost.sh"
#	th_check || exit 77		# skip when not root / tools missing
#	trap th_teardown EXIT
#	th_setup 3
#	th_exec h1 ping -c1 -W1 "$(th_addr h2)"
#
# A test host is:
#  - a network namespace tern-<net>-<host> holding one end of a veth pair,
#    t<net>-eth0, with 10.213.<net>.<index>/24 and lo up.  The other end,
#    t<net>v<index>, is a port of the bridge t<net>br inside the "switch"
#    namespace tern-<net>-sw.  Nothing is added to the root namespace's
#    links, addresses or routes; there is no default route and no uplink,
#    so test traffic cannot leave the hosts.
#  - a mount namespace owned by a long-lived holder process (sleep) with
#    a private tmpfs on /run (and /run/tern), a sysfs for its own network
#    namespace (with the cgroup mounts kept), and the bind mounts listed
#    in TH_BINDS ("SUBDIR:TARGET", SUBDIR relative to the host's
#    directory).  A test may append to TH_BINDS before th_setup.
#  - a freezer cgroup /sys/fs/cgroup/freezer/tern-test/<net>-<host> (and
#    the same path under /sys/fs/cgroup/unified when it is writable) that
#    the holder and every process started through th_exec / th_spawn join,
#    so th_crash and th_teardown can kill everything of a host at once.
#  - a cgroup <base>/tern-test/<net>-<host> in each of the v1 memory, cpu,
#    pids and devices hierarchies that is mounted (/sys/fs/cgroup/<ctrl>),
#    where <base> is the cgroup the script calling th_setup is in for that
#    controller (so memory stays accounted where it was).  The same
#    processes join them.  ternd nests its containers' cgroups below its
#    own in these controllers and the freezer, so two hosts running a
#    container of the same name never share one.  The directories in use
#    are listed in /run/tern-testhosts/net-<net>.cg; th_crash removes a
#    host's (th_revive makes them again), th_teardown all of them.
#  - a directory $TH_ROOT/<host>/ with etc/, state/ (over /var/lib/tern
#    inside the host) and log/.
#
# <net> (1..250) is claimed under a lock in /run/tern-testhosts/, so test
# scripts running side by side (make -j2 check) never share names or
# addresses.  A claim whose owner process is gone is stale: the next
# script that picks that id first removes what the dead run left behind.
#
# Functions return non-zero and say why on stderr ("testhost: ...");
# they never exit the caller's shell.  They work with and without
# `set -euo pipefail` in the caller.
#
# Faults beyond a crash: th_cut / th_heal (the host's link), th_block /
# th_partition (one host cannot reach one peer, one-way or both ways),
# th_pause / th_resume (every process of the host stopped at once).
#
# A test that fails, or is stopped at its deadline (run-test exports it
# as TERN_TEST_DEADLINE), tells why from its hosts before they go:
# th_teardown calls each function in TH_REPORTERS (cluster.sh adds the
# end of every ternd log and each host's processes), so a failure seen
# only in CI can be read from the test's own log.
#
# Environment: TH_ROOT (directory for the hosts' files; default a fresh
# mktemp -d under /tmp), TH_KEEP=1 (th_teardown keeps TH_ROOT).
# Exported by th_setup: TH_ROOT, TH_NET, TH_HOSTS.

. "${BASH_SOURCE[0]%/*}/assert.sh"

TH_STATE_DIR=/run/tern-testhosts
TH_CG_V1=/sys/fs/cgroup/freezer/tern-test
TH_CG_V2=/sys/fs/cgroup/unified/tern-test
# v1 controllers (besides the freezer) in which every host gets a cgroup
# below the caller's; those not mounted are skipped.
TH_CG_CTRLS="memory cpu pids devices"
TH_PREFIX=10.213
# Link MTU of the test network: 1500 like a plain LAN; benchmarks set 9000
# (the jumbo frames a migration network is usually given).
TH_MTU=${TH_MTU:-1500}

# Per-host bind mounts, one "SUBDIR:TARGET" per element.  Later issues
# append libvirt's directories here.
if ! declare -p TH_BINDS >/dev/null 2>&1; then
	TH_BINDS=("state:/var/lib/tern")
fi

TH_NET=${TH_NET:-}
TH_HOSTS=${TH_HOSTS:-}
TH_SPAWN_PID=
if ! declare -p TH_REPORTERS >/dev/null 2>&1; then
	TH_REPORTERS=()
fi

# --- internal helpers ---------------------------------------------------------

# th__failed STATUS: the test failed, or its deadline passed (its SIGTERM
# reaches the EXIT trap with status 0).  A trap for SIGTERM would say so
# too, but bash runs it only once the foreground command ends: never,
# for a command stuck in a paused host.
th__failed() {
	[ "$1" != 0 ] && [ "$1" != 77 ] && return 0	# 77: skipped
	[ -n "${TERN_TEST_DEADLINE:-}" ] &&
	    [ "$(date +%s)" -ge "$TERN_TEST_DEADLINE" ] || return 1
	echo "testhost: the test's deadline passed" >&2
}

th__err() {
	echo "testhost: $*" >&2
	return 1
}

# th__starttime PID: print the process's start time (clock ticks since
# boot), which tells a live owner from a recycled PID.
th__starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

# th_pid_alive PID: true if PID exists and is not a zombie.
th_pid_alive() {
	local stat
	[ -n "${1:-}" ] || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# th_wait TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds (0) or
# TIMEOUT_S seconds have passed (1).
th_wait() {
	local timeout=$1 deadline
	shift
	deadline=$((SECONDS + timeout))
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

th__ns() { echo "tern-$TH_NET-$1"; }
th__sw() { echo "tern-$TH_NET-sw"; }
th__cg1() { echo "$TH_CG_V1/$TH_NET-$1"; }
th__cg2() { echo "$TH_CG_V2/$TH_NET-$1"; }
th__meta() { echo "$TH_ROOT/.th"; }

# th__cg_bases: for each controller of TH_CG_CTRLS that is mounted, print
# the tern-test directory below the caller's own cgroup in it (from
# /proc/self/cgroup: "N:ctrl1,ctrl2:/path").
th__cg_bases() {
	local ctrl id list path
	for ctrl in $TH_CG_CTRLS; do
		[ -f "/sys/fs/cgroup/$ctrl/cgroup.procs" ] || continue
		while IFS=: read -r id list path; do
			case ,$list, in
			*,"$ctrl",*)
				echo "/sys/fs/cgroup/$ctrl${path%/}/tern-test"
				break ;;
			esac
		done 2>/dev/null </proc/self/cgroup
	done
}

# th__cg_bases_of NET: the tern-test directories (memory, cpu, pids,
# devices) net id NET uses, as recorded when it was claimed, and the
# caller's own (for a run that left cgroups behind without a record).
th__cg_bases_of() {
	{
		cat "$TH_STATE_DIR/net-$1.cg" 2>/dev/null
		th__cg_bases
	} | sort -u
}

# th__cg_dirs HOST: print the host's memory, cpu, pids and devices cgroups.
th__cg_dirs() {
	local base
	while IFS= read -r base; do
		[ -n "$base" ] && echo "$base/$TH_NET-$1"
	done 2>/dev/null <"$TH_STATE_DIR/net-$TH_NET.cg"
	return 0
}

# th__host HOST: fail unless HOST is a host of this run.
th__host() {
	[ -n "$TH_NET" ] || th__err "no test hosts (call th_setup first)" || return 1
	[ -n "${1:-}" ] || th__err "missing host name" || return 1
	[ -f "$TH_ROOT/.th/$1.idx" ] || th__err "no test host '$1'" || return 1
}

th__idx() { cat "$TH_ROOT/.th/$1.idx"; }

# th__holder HOST: print the holder's PID, fail if the host is down.
th__holder() {
	local pid
	th__host "$1" || return 1
	pid=$(cat "$TH_ROOT/.th/$1.holder" 2>/dev/null) || pid=
	if [ -z "$pid" ] || ! th_pid_alive "$pid"; then
		th__err "test host '$1' is not running (crashed? use th_revive)"
		return 1
	fi
	echo "$pid"
}

# th__join HOST: move the calling (sub)shell into the host's cgroups.
# The freezer comes last: a process in it is in all of them.
th__join() {
	local cg2 d
	while IFS= read -r d; do
		echo "$BASHPID" >"$d/cgroup.procs" ||
		    th__err "cannot join cgroup $d" || return 1
	done < <(th__cg_dirs "$1")
	echo "$BASHPID" >"$(th__cg1 "$1")/cgroup.procs" ||
	    th__err "cannot join cgroup $(th__cg1 "$1")" || return 1
	cg2=$(th__cg2 "$1")
	if [ -d "$cg2" ]; then
		echo "$BASHPID" >"$cg2/cgroup.procs" 2>/dev/null || :
	fi
	return 0
}

# th__in_cgroup PID HOST: true if PID is in the host's freezer cgroup.
th__in_cgroup() {
	local line
	while IFS= read -r line; do
		case $line in
		*:freezer:/tern-test/"$TH_NET-$2") return 0 ;;
		esac
	done <"/proc/$1/cgroup" 2>/dev/null
	return 1
}

# th__cg_kill V1DIR V2DIR: freeze the cgroup, SIGKILL every task, thaw,
# and wait (up to 10 s) until it is empty.
th__cg_kill() {
	local v1=$1 v2=$2 pid i state d left
	[ -d "$v1" ] || [ -d "$v2" ] || return 0
	# Below a host's cgroup sit those of its containers (tern nests them
	# under the cgroup of the ternd that started them): the whole subtree.
	# A cgroup file write can fail quietly (the cgroup going away): under
	# the callers' set -e that must not end them without a word.
	if [ -d "$v1" ]; then
		echo FROZEN >"$v1/freezer.state" 2>/dev/null || :
		for ((i = 0; i < 50; i++)); do
			state=$(cat "$v1/freezer.state" 2>/dev/null) || break
			[ "$state" = FROZEN ] && break
			sleep 0.1
		done
		# shellcheck disable=SC2013
		for pid in $(find "$v1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
			# No "Killed" notice from bash for our own jobs.
			disown "$pid" 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
		done
		# A child frozen by itself stays frozen when its parent thaws.
		while IFS= read -r d; do
			echo THAWED >"$d/freezer.state" 2>/dev/null || :
		done < <(find "$v1" -type d 2>/dev/null)
	fi
	if [ -f "$v2/cgroup.kill" ]; then
		echo 1 >"$v2/cgroup.kill" 2>/dev/null || :
	fi
	for ((i = 0; i < 100; i++)); do
		left=
		[ -d "$v1" ] && left+=$(find "$v1" -name cgroup.procs -exec cat {} + 2>/dev/null)
		[ -d "$v2" ] && left+=$(find "$v2" -name cgroup.procs -exec cat {} + 2>/dev/null)
		[ -z "$left" ] && return 0
		for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
		sleep 0.1
	done
	th__err "cgroup $v1 still has tasks after SIGKILL: $left"
}
th__cg_remove() {
	local i
	[ -d "$1" ] || return 0
	for ((i = 0; i < 50; i++)); do
		# Children (containers' cgroups) first.
		find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ -d "$1" ] || return 0
		sleep 0.1
	done
	th__err "cannot remove cgroup $1"
}

# th__cg_make HOST: create the host's cgroups (mkdir -p; they may exist).
th__cg_make() {
	local d i
	while IFS= read -r d; do
		# Retried: a teardown elsewhere may rmdir the empty tern-test
		# between mkdir -p's parent and child.
		for ((i = 0; i < 3; i++)); do
			mkdir -p "$d" 2>/dev/null && break
		done
		[ -d "$d" ] || th__err "cannot create cgroup $d" || return 1
	done < <(th__cg1 "$1"; th__cg_dirs "$1")
	mkdir -p "$(th__cg2 "$1")" 2>/dev/null || :
}

# th__cg_remove_host HOST: remove the host's memory, cpu, pids and devices
# cgroups (with the containers' below them); its processes must be gone.
th__cg_remove_host() {
	local d rc=0
	while IFS= read -r d; do
		th__cg_remove "$d" || rc=1
	done < <(th__cg_dirs "$1")
	return $rc
}

# th__purge NET: remove everything named after net id NET: kill the
# hosts' processes, delete their cgroups and network namespaces.
th__purge() {
	local net=$1 d ns base
	for d in "$TH_CG_V1/$net"-* "$TH_CG_V2/$net"-*; do
		[ -d "$d" ] || continue
		case $d in
		"$TH_CG_V1"/*) th__cg_kill "$d" "$TH_CG_V2/${d##*/}" ;;
		*) th__cg_kill "$TH_CG_V1/${d##*/}" "$d" ;;
		esac
		th__cg_remove "$d"
	done
	# Every process was in a freezer cgroup: they are all gone now.
	while IFS= read -r base; do
		for d in "$base/$net"-*; do
			[ -d "$d" ] && th__cg_remove "$d"
		done
		rmdir "$base" 2>/dev/null || :	# unless other runs use it
	done < <(th__cg_bases_of "$net")
	rmdir "$TH_CG_V1" "$TH_CG_V2" 2>/dev/null || :
	for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
		case $ns in
		"tern-$net"-*) ip netns delete "$ns" 2>/dev/null ;;
		esac
	done
	return 0
}

# th__net_in_use NET: true if anything named after NET exists.
th__net_in_use() {
	local d base
	for d in "$TH_CG_V1/$1"-* "$TH_CG_V2/$1"-* "/run/netns/tern-$1"-*; do
		[ -e "$d" ] && return 0
	done
	while IFS= read -r base; do
		for d in "$base/$1"-*; do
			[ -e "$d" ] && return 0
		done
	done < <(th__cg_bases_of "$1")
	return 1
}

# th__claim_net: pick a free net id under the lock; set TH_NET.
th__claim_net() {
	local fd id f owner start root rc=1
	mkdir -p "$TH_STATE_DIR" || return 1
	exec {fd}>>"$TH_STATE_DIR/lock" || return 1
	if ! flock -w 120 "$fd"; then
		exec {fd}>&-
		th__err "timed out waiting for $TH_STATE_DIR/lock"
		return 1
	fi
	for ((id = 1; id <= 250; id++)); do
		f=$TH_STATE_DIR/net-$id
		if [ -e "$f" ]; then
			read -r owner start root <"$f" || owner=
			[ "$owner" = kept ] && continue
			if [ -n "$owner" ] &&
			    [ "$(th__starttime "$owner")" = "$start" ]; then
				continue
			fi
			th__purge "$id"	# stale: its owner died
		elif th__net_in_use "$id"; then
			th__purge "$id"	# left behind without a claim
		fi
		th__net_in_use "$id" && continue
		th__cg_bases >"$f.cg" || break
		echo "$$ $(th__starttime $$) $TH_ROOT" >"$f" || break
		TH_NET=$id
		rc=0
		break
	done
	flock -u "$fd"
	exec {fd}>&-
	[ "$rc" = 0 ] || th__err "no free test network id in 1..250"
}

# th__release_net: drop our claim on TH_NET.
th__release_net() {
	local fd
	[ -n "$TH_NET" ] || return 0
	exec {fd}>>"$TH_STATE_DIR/lock" || return 1
	flock -w 120 "$fd"
	rm -f "$TH_STATE_DIR/net-$TH_NET" "$TH_STATE_DIR/net-$TH_NET.cg"
	flock -u "$fd"
	exec {fd}>&-
}

# th__holder_main READYFILE HOSTDIR STASH BIND...: runs inside the fresh
# mount namespace (and the host's network namespace): sets up the mounts,
# writes its PID to READYFILE, becomes `sleep infinity`.  Copied into the
# holder with declare -f, so it must not call other functions.
th__holder_main() {
	local ready=$1 hostdir=$2 stash=$3 b sub target
	shift 3
	exec 3>"$ready" || return 1
	# Our copy of /run/netns would keep every netns (other runs' too)
	# alive as long as this mount namespace lives: drop it.
	umount --recursive --lazy /run/netns 2>/dev/null
	# A sysfs of the host's network namespace, keeping the cgroup mounts.
	if mountpoint -q /sys/fs/cgroup; then
		mkdir -p "$stash" &&
		    mount --rbind /sys/fs/cgroup "$stash" || return 1
	fi
	mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || return 1
	if mountpoint -q "$stash"; then
		mount --move "$stash" /sys/fs/cgroup || return 1
		rmdir "$stash"
	fi
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || return 1
	mkdir -p /run/tern /run/lock || return 1
	for b in "$@"; do
		sub=${b%%:*}
		target=${b#*:}
		mkdir -p "$hostdir/$sub" "$target" &&
		    mount --bind "$hostdir/$sub" "$target" || return 1
	done
	echo "$$" >&3
	exec 3>&-
	exec sleep infinity
}

# th__start_holder HOST: start the host's holder and wait until its
# mounts are in place; records its PID in $TH_ROOT/.th/HOST.holder.
th__start_holder() {
	local host=$1 meta ready log job pid=
	meta=$(th__meta)
	ready=$meta/$host.ready
	log=$TH_ROOT/$host/log/holder.log
	rm -f "$ready" "$meta/$host.holder"
	(
		th__join "$host" || exit 1
		exec nsenter --net="/run/netns/$(th__ns "$host")" \
		    unshare --mount --propagation private --fork -- \
		    bash -c "$(declare -f th__holder_main); th__holder_main \"\$@\"" \
		    holder "$ready" "$TH_ROOT/$host" "$meta/$host.stash" \
		    "${TH_BINDS[@]}"
	) </dev/null >>"$log" 2>&1 &
	job=$!
	disown "$job" 2>/dev/null
	if th_wait 10 test -s "$ready"; then
		pid=$(cat "$ready")
	fi
	if [ -z "$pid" ] || ! th_pid_alive "$pid"; then
		kill -KILL "$job" 2>/dev/null
		th__err "holder of '$host' did not start; $log says:"
		tail -n 20 "$log" >&2
		return 1
	fi
	echo "$pid" >"$meta/$host.holder"
	rm -f "$ready"
}

# th__link HOST up|down: set the switch side of HOST's veth up or down.
th__link() {
	ip -n "$(th__sw)" link set dev "t${TH_NET}v$(th__idx "$1")" "$2"
}

# th__add_host HOST: create one host (netns, veth, cgroup, dirs, holder).
th__add_host() {
	local host=$1 idx ns sw hv sv addr meta
	meta=$(th__meta)
	case $host in
	"" | *[!A-Za-z0-9_-]* | ??????????????????????????????????*)
		th__err "bad host name '$host' (use [A-Za-z0-9_-], at most 32)"
		return 1 ;;
	esac
	[ ! -e "$meta/$host.idx" ] || th__err "host '$host' exists" || return 1
	idx=$(($(cat "$meta/count") + 1))
	[ "$idx" -le 250 ] || th__err "too many hosts" || return 1
	echo "$idx" >"$meta/count"
	echo "$idx" >"$meta/$host.idx"
	ns=$(th__ns "$host")
	sw=$(th__sw)
	hv=t$TH_NET-eth0
	sv=t${TH_NET}v$idx
	addr=$TH_PREFIX.$TH_NET.$idx
	mkdir -p "$TH_ROOT/$host/etc" "$TH_ROOT/$host/state" \
	    "$TH_ROOT/$host/log" || return 1
	ip netns add "$ns" || th__err "ip netns add $ns failed" || return 1
	ip -n "$ns" link set lo up &&
	    ip -n "$sw" link add "$sv" mtu "$TH_MTU" type veth peer name "$hv" \
	    mtu "$TH_MTU" netns "$ns" &&
	    ip -n "$sw" link set "$sv" master "t${TH_NET}br" up &&
	    ip -n "$ns" addr add "$addr/24" dev "$hv" &&
	    ip -n "$ns" link set "$hv" up ||
	    th__err "network setup of '$host' failed" || return 1
	th__cg_make "$host" || return 1
	th__start_holder "$host" || return 1
	TH_HOSTS=${TH_HOSTS:+$TH_HOSTS }$host
	echo "$TH_HOSTS" >"$meta/hosts"
}

# --- public functions ---------------------------------------------------------

# th_check: true if test hosts can be made here (root, tools, freezer
# cgroup); otherwise says why.  Tests use `th_check || exit 77` to skip.
th_check() {
	local c
	[ "${EUID:-$(id -u)}" = 0 ] || th__err "test hosts need root" || return 1
	for c in ip nsenter unshare mount umount mountpoint flock; do
		command -v "$c" >/dev/null 2>&1 ||
		    th__err "missing command '$c' (install iproute2/util-linux)" ||
		    return 1
	done
	[ -d /sys/fs/cgroup/freezer ] ||
	    th__err "no cgroup v1 freezer at /sys/fs/cgroup/freezer" || return 1
}

# th_setup N [NAMES...]: create N hosts named h1..hN (or NAMES, which
# must be N names).  May be called again to add hosts to the same run.
# Exports TH_HOSTS (space separated), TH_ROOT and TH_NET.
th_setup() {
	local n=${1:-} names=() h meta sw
	[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] ||
	    th__err "usage: th_setup N [NAMES...]" || return 1
	shift
	if [ $# -gt 0 ]; then
		[ $# = "$n" ] || th__err "th_setup $n: got $# names" || return 1
		names=("$@")
	else
		for ((h = 1; h <= n; h++)); do names+=("h$h"); done
	fi
	th_check || return 1

	if [ -z "$TH_NET" ]; then
		if [ -n "${TH_ROOT:-}" ]; then
			mkdir -p "$TH_ROOT" || return 1
			TH_ROOT=$(cd "$TH_ROOT" && pwd) || return 1
		else
			TH_ROOT=$(mktemp -d /tmp/tern-th.XXXXXX) || return 1
		fi
		[ ! -e "$TH_ROOT/.th/env" ] ||
		    th__err "$TH_ROOT is in use by another run" || return 1
		export TH_ROOT
		th__claim_net || return 1
		export TH_NET
		meta=$(th__meta)
		mkdir -p "$meta" && echo 0 >"$meta/count" &&
		    echo "TH_NET=$TH_NET" >"$meta/env" || return 1
		sw=$(th__sw)
		ip netns add "$sw" &&
		    ip -n "$sw" link set lo up &&
		    ip -n "$sw" link add "t${TH_NET}br" type bridge \
			forward_delay 0 stp_state 0 &&
		    ip -n "$sw" link set "t${TH_NET}br" up ||
		    th__err "cannot create switch namespace $sw" || return 1
	fi
	for h in "${names[@]}"; do
		th__add_host "$h" || return 1
	done
	export TH_HOSTS
}

# th_attach ROOT: continue using hosts made by another shell with the
# same TH_ROOT (for instance a demo left running with th_detach).
th_attach() {
	local root=${1:-}
	[ -f "$root/.th/env" ] || th__err "no test hosts in '$root'" || return 1
	TH_ROOT=$(cd "$root" && pwd) || return 1
	TH_NET=$(sed -n 's/^TH_NET=//p' "$TH_ROOT/.th/env")
	TH_HOSTS=$(cat "$TH_ROOT/.th/hosts" 2>/dev/null) || TH_HOSTS=
	export TH_ROOT TH_NET TH_HOSTS
}

# th_detach: let the hosts outlive this shell: the net id stays claimed
# until th_teardown is called by whoever attaches later.
th_detach() {
	[ -n "$TH_NET" ] || return 0
	echo "kept 0 $TH_ROOT" >"$TH_STATE_DIR/net-$TH_NET"
}

# th_addr HOST: print the host's IPv4 address.
th_addr() {
	th__host "${1:-}" || return 1
	echo "$TH_PREFIX.$TH_NET.$(th__idx "$1")"
}

# th_dir HOST: print the host's directory, $TH_ROOT/HOST.
th_dir() {
	th__host "${1:-}" || return 1
	echo "$TH_ROOT/$1"
}

# th_netns HOST: print the name of the host's network namespace.
th_netns() {
	th__host "${1:-}" || return 1
	th__ns "$1"
}

# th_holder HOST: print the PID of the process holding the host's mount
# namespace (fails if the host is crashed).
th_holder() {
	th__holder "${1:-}"
}

# th__nsenter_wd: nsenter's --wd option keeping the caller's directory
# when it exists inside the host, else nothing (nsenter then uses /).
th__wd_arg() {
	if [ -d "/proc/$1/root$PWD" ]; then
		echo "--wd=$PWD"
	fi
}

# th_exec HOST CMD...: run CMD inside the host (its network and mount
# namespaces, its cgroups), wait for it, return its exit status.  The
# working directory is kept when it exists inside the host.
th_exec() {
	local host=${1:-} pid wd
	pid=$(th__holder "$host") || return 125
	shift
	[ $# -gt 0 ] || th__err "usage: th_exec HOST CMD..." || return 125
	wd=$(th__wd_arg "$pid")
	(
		th__join "$host" || exit 125
		exec nsenter --target "$pid" --mount --net ${wd:+"$wd"} -- "$@"
	)
}

# th_spawn HOST LOGFILE CMD...: start CMD in the background inside the
# host, stdout and stderr appended to LOGFILE (a path outside the host).
# Prints CMD's PID (root PID namespace) and also sets TH_SPAWN_PID.
# Call it without $(...) (e.g. `th_spawn h1 log cmd >pidfile`) if you
# want to `wait` for the process later: it is then a child of your shell.
# Returns once the process is in the host's cgroup.
th_spawn() {
	local host=${1:-} log=${2:-} pid wd
	pid=$(th__holder "$host") || return 1
	[ $# -ge 3 ] || th__err "usage: th_spawn HOST LOGFILE CMD..." || return 1
	shift 2
	wd=$(th__wd_arg "$pid")
	(
		th__join "$host" || exit 125
		exec nsenter --target "$pid" --mount --net ${wd:+"$wd"} -- "$@"
	) </dev/null >>"$log" 2>&1 &
	TH_SPAWN_PID=$!
	if ! th_wait 5 th__in_cgroup "$TH_SPAWN_PID" "$host"; then
		if th_pid_alive "$TH_SPAWN_PID"; then
			kill -KILL "$TH_SPAWN_PID" 2>/dev/null
			th__err "spawned process did not join the cgroup of '$host'"
			return 1
		fi
		# It already exited (fine: a short command).
	fi
	echo "$TH_SPAWN_PID"
}

# th_root_path HOST PATH: print a path that reaches PATH inside the
# host's mount namespace from outside: /proc/HOLDERPID/root/PATH.
th_root_path() {
	local pid
	pid=$(th__holder "${1:-}") || return 1
	echo "/proc/$pid/root/${2#/}"
}

# th_cut HOST: cut the host off the switch: its link goes down (the
# switch side is set down, so the host's own end loses carrier).  Packets
# are silently dropped both ways; routes and addresses stay, as when a
# cable is pulled.
th_cut() {
	th__host "${1:-}" || return 1
	th__link "$1" down || th__err "cannot cut '$1'" || return 1
	: >"$TH_ROOT/.th/$1.cut"
}

# th_heal HOST: undo th_cut (both veth ends up).
# th_limit HOST RATE: traffic towards HOST goes at most RATE (tc syntax,
# "20mbit"), shaped by tbf on its switch port; th_limit HOST off: no limit.
th_limit() {
	local dev
	th__host "${1:-}" || return 1
	dev="t${TH_NET}v$(th__idx "$1")"
	ip netns exec "$(th__sw)" tc qdisc del dev "$dev" root 2>/dev/null || :
	[ "${2:-}" = off ] && return 0
	ip netns exec "$(th__sw)" tc qdisc add dev "$dev" root tbf \
	    rate "$2" burst 64kb latency 500ms ||
	    th__err "cannot limit '$1' to $2" || return 1
}

th_heal() {
	th__host "${1:-}" || return 1
	th__link "$1" up &&
	    ip -n "$(th__ns "$1")" link set "t$TH_NET-eth0" up ||
	    th__err "cannot heal '$1'" || return 1
	rm -f "$TH_ROOT/.th/$1.cut" "$TH_ROOT/.th/$1.crashcut"
}

# th_crash HOST [--keep-link]: crash the host: cut its link (so peers see
# silence, not resets from the dying sockets: a power loss), then freeze
# its cgroup, SIGKILL all its tasks, thaw, wait until the cgroup is
# empty, and remove its memory, cpu, pids and devices cgroups.  With
# --keep-link the link stays up (a crash of all processes, peers get FIN/RST and the
# kernel still answers).  The host is then down: th_exec/th_spawn fail
# until th_revive.
th_crash() {
	local host=${1:-} cut=1
	th__host "$host" || return 1
	[ "${2:-}" = --keep-link ] && cut=
	if [ -n "$cut" ] && [ ! -e "$TH_ROOT/.th/$host.cut" ]; then
		th__link "$host" down || th__err "cannot cut '$host'" || return 1
		: >"$TH_ROOT/.th/$host.crashcut"
	fi
	th__cg_kill "$(th__cg1 "$host")" "$(th__cg2 "$host")" || return 1
	th__cg_remove_host "$host" || return 1
	rm -f "$TH_ROOT/.th/$host.holder"
}

# th_revive HOST: boot a crashed host again: a new holder (same network
# namespace, fresh mount namespace with an empty /run, same directories).
# A link cut by th_crash comes back up; one cut by th_cut stays cut.
th_revive() {
	local host=${1:-} pid
	th__host "$host" || return 1
	pid=$(cat "$TH_ROOT/.th/$host.holder" 2>/dev/null) || pid=
	if [ -n "$pid" ] && th_pid_alive "$pid"; then
		th__err "test host '$host' is running; th_crash it first"
		return 1
	fi
	th__cg_kill "$(th__cg1 "$host")" "$(th__cg2 "$host")" || return 1
	th__cg_make "$host" || return 1
	th__start_holder "$host" || return 1
	if [ -e "$TH_ROOT/.th/$host.crashcut" ]; then
		th_heal "$host" || return 1
	fi
}

# th_block HOST PEER: HOST's packets to PEER are dropped, silently (as
# by a broken switch port or a firewall: no refusal, no ICMP, the sender
# sees no error); PEER's to HOST still arrive.  HOST reaches every other
# host as before.  An iptables rule on the INPUT of PEER's namespace, so
# it holds across th_crash / th_revive and needs nothing in the mount
# namespaces.  th_unblock HOST PEER: undo it.
th__block_rule() {
	echo "INPUT -s $(th_addr "$1")/32 -m comment --comment th-block-$1 -j DROP"
}
th_block() {
	th__host "${1:-}" && th__host "${2:-}" || return 1
	[ "$1" != "$2" ] || th__err "th_block: $1 twice" || return 1
	[ ! -e "$TH_ROOT/.th/$1.block-$2" ] || return 0
	# shellcheck disable=SC2046
	ip netns exec "$(th__ns "$2")" iptables -w 10 -I $(th__block_rule "$1") ||
	    th__err "cannot block $1 -> $2 (iptables)" || return 1
	: >"$TH_ROOT/.th/$1.block-$2"
}
th_unblock() {
	th__host "${1:-}" && th__host "${2:-}" || return 1
	[ -e "$TH_ROOT/.th/$1.block-$2" ] || return 0
	# shellcheck disable=SC2046
	ip netns exec "$(th__ns "$2")" iptables -w 10 -D $(th__block_rule "$1") ||
	    th__err "cannot unblock $1 -> $2" || return 1
	rm -f "$TH_ROOT/.th/$1.block-$2"
}

# th_partition HOST PEER: HOST and PEER cannot reach each other (both
# directions blocked); each still reaches every other host.
# th_unpartition HOST PEER: undo it.
th_partition() {
	th_block "${1:-}" "${2:-}" && th_block "$2" "$1"
}
th_unpartition() {
	th_unblock "${1:-}" "${2:-}" && th_unblock "$2" "$1"
}

# th_pause HOST: stop every process of the host at once, as a hypervisor
# pausing the whole machine would (its freezer cgroup FROZEN, containers'
# cgroups below it included); nothing it runs can act until th_resume.
# Its clocks go on (CLOCK_MONOTONIC counts the pause), its link stays up.
# th_resume HOST: thaw it; everything goes on where it stopped.
th_pause() {
	local cg state i
	th__holder "${1:-}" >/dev/null || return 1
	cg=$(th__cg1 "$1")
	echo FROZEN >"$cg/freezer.state" || th__err "cannot freeze '$1'" || return 1
	for ((i = 0; i < 100; i++)); do
		state=$(cat "$cg/freezer.state" 2>/dev/null) || state=
		[ "$state" = FROZEN ] && return 0
		sleep 0.05
	done
	th__err "'$1' did not freeze (freezer.state: $state)"
}
th_resume() {
	th__host "${1:-}" || return 1
	echo THAWED >"$(th__cg1 "$1")/freezer.state" ||
	    th__err "cannot resume '$1'" || return 1
}

# th_paused HOST: true while the host is paused.
th_paused() {
	[ "$(cat "$(th__cg1 "${1:-}")/freezer.state" 2>/dev/null)" = FROZEN ]
}

# th_teardown [STATUS]: kill every process of every host, delete the
# network namespaces (hosts and switch) and cgroups, remove TH_ROOT
# (unless TH_KEEP=1) and release the net id.  Idempotent; meant for
# `trap th_teardown EXIT`.  Keeps the caller's $? (or returns STATUS: the
# test's, from an EXIT trap that ran other commands first).
th_teardown() {
	local rc=$? f
	[ -z "${1:-}" ] || rc=$1
	if [ -n "$TH_NET" ]; then
		if th__failed "$rc"; then
			for f in "${TH_REPORTERS[@]}"; do
				"$f" >&2 || :
			done
		fi
		# The hosts' processes die now: no "Killed" notices for our jobs.
		disown -a 2>/dev/null
		(
			set +eu
			th__purge "$TH_NET"
			if [ "${TH_KEEP:-0}" != 1 ] && [ -n "${TH_ROOT:-}" ] &&
			    [ -f "$TH_ROOT/.th/env" ]; then
				rm -rf -- "$TH_ROOT"
			elif [ -n "${TH_ROOT:-}" ]; then
				rm -f "$TH_ROOT/.th/env"
				echo "testhost: kept $TH_ROOT" >&2
			fi
			th__release_net
		) || :
		TH_NET=
		TH_HOSTS=
	fi
	return $rc
}
