# cluster.sh: a tern cluster on test hosts.  Source it after testhost.sh:
#
#	. "$TERN_SRCDIR/tests/lib/testhost.sh"
#	. "$TERN_SRCDIR/tests/lib/cluster.sh"
#	th_check || exit 77
#	trap th_teardown EXIT
#	cl_up 3				# 3 hosts, PKI, configs, ternd, all up
#	cl_ctl h1 hosts
#
# Every ternd runs inside its test host: /run/tern (pid file, control
# socket) is the host's private tmpfs, /var/lib/tern its state/ dir.
# Configuration, certificates and logs live in $(th_dir HOST)/etc and
# $(th_dir HOST)/log, reachable from both sides.
#
# Environment: TERN_BUILDDIR (where ternd and ternctl are; `make check`
# sets it; default: the repository's build/), CL_PORT (7480),
# CL_START_TIMEOUT (seconds cl_start waits for the control socket, 10),
# CL_UP_TIMEOUT (seconds cl_up waits for the cluster, 30).

if [ -z "${TERN_BUILDDIR:-}" ]; then
	TERN_BUILDDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build
fi
CL_PORT=${CL_PORT:-7480}
CL_RUN_DIR=/run/tern
CL_SOCK=$CL_RUN_DIR/ternd.sock
CL_TERND=$TERN_BUILDDIR/ternd
CL_TERNCTL=$TERN_BUILDDIR/ternctl

cl__err() {
	echo "cluster: $*" >&2
	return 1
}

# cl__report: for a test that failed (th_teardown), the end of each
# host's ternd log: what the daemons last did.  Debug lines and the loop's
# lateness notes are left out (a hang's last minutes are full of them).
cl__report() {
	local h log
	for h in $TH_HOSTS; do
		log=$(cl_log "$h") && [ -s "$log" ] || continue
		echo "=== $h: the last 50 lines of its ternd log, without debug" \
		    "lines and loop lateness (TH_KEEP=1 keeps all of it)"
		grep -v -e '^[^ ]* debug ' -e '^[^ ]* info  loop: the event loop ran' \
		    "$log" | tail -n 50
		cl__report_procs "$h"
		cl__report_criu "$h"
	done
}

# cl__report_criu HOST: the end of the CRIU logs HOST wrote last (a dump
# waiting for page requests, a lazy-pages daemon that stopped asking):
# they go with the test's hosts, and a hang seen only in CI has no other
# trace of them.
cl__report_criu() {
	local f
	find "$TH_ROOT/$1/state/instances" -name '*.log' -printf '%T@ %p\n' \
	    2>/dev/null | sort -rn | head -n 3 | while read -r _ f; do
		echo "=== $1: the end of $(basename "$f") in ${f#"$TH_ROOT/$1/state/"}" \
		    "(last written $(date -r "$f" +%T))"
		tail -n 15 "$f" | cut -c1-200
	done
}

# cl__report_procs HOST: what each of HOST's processes waits in (a hang
# shows who holds whom: a CRIU blocked in a write, a fault waiting).
cl__report_procs() {
	local pids
	pids=$(find "$(th__cg1 "$1")" -name cgroup.procs -exec cat {} + \
	    2>/dev/null | sort -un | paste -sd, -)
	[ -n "$pids" ] || return 0
	echo "=== $1: its processes"
	ps -o pid,ppid,stat,wchan:24,etime,args -p "$pids" | cut -c1-160
}
[[ " ${TH_REPORTERS[*]} " == *" cl__report "* ]] || TH_REPORTERS+=(cl__report)

# cl_log_count HOST PATTERN: how many lines of HOST's ternd log match
# PATTERN (grep's basic regular expression); 0 when none do.
cl_log_count() {
	grep -c -- "$2" "$(cl_log "$1")" || true
}

# cl_log HOST: print the path of HOST's ternd log (outside the host).
cl_log() {
	local d
	d=$(th_dir "${1:-}") || return 1
	echo "$d/log/ternd.log"
}

# cl__pidfile HOST: where cl_start records the PID of HOST's ternd.
cl__pidfile() {
	local d
	d=$(th_dir "$1") || return 1
	echo "$d/ternd.spawn-pid"
}

# cl__started PID: the process's start time (clock ticks since boot,
# /proc/PID/stat's 22nd field).
cl__started() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

# cl_pid HOST: print the PID of HOST's ternd (root PID namespace), fail
# if it is not running.  PIDs wrap (pid_max 32768 here): a PID that now
# names another process, started after ours died, is not our ternd.
cl_pid() {
	local f pid was now
	f=$(cl__pidfile "${1:-}") || return 1
	pid=$(cat "$f" 2>/dev/null) || pid=
	th_pid_alive "$pid" || return 1
	was=$(cat "$f.started" 2>/dev/null) || was=
	now=$(cl__started "$pid") || return 1
	[ -z "$was" ] || [ "$was" = "$now" ] || return 1
	echo "$pid"
}

# cl_zombies HOST: print as PID(COMM) HOST's ternd's children that have
# exited and were never reaped (a process ternd forgot: each one holds a
# PID and its exit status until ternd exits).  Fails if it cannot tell.
cl_zombies() {
	local pid c stat comm kids
	pid=$(cl_pid "${1:-}") || cl__err "cl_zombies: no ternd on ${1:-}" ||
	    return 1
	kids=$(cat /proc/"$pid"/task/*/children) ||
	    cl__err "cl_zombies: this kernel lists no children" || return 1
	for c in $kids; do
		stat=$(cat "/proc/$c/stat" 2>/dev/null) || continue
		comm=${stat#*(}
		comm=${comm%)*}
		stat=${stat##*) }
		[ "${stat%% *}" = Z ] && echo "$c($comm)"
	done
	return 0
}

# cl_reaped HOST...: true if no HOST's ternd has a zombie child.
cl_reaped() {
	local h z
	for h in "$@"; do
		z=$(cl_zombies "$h") && [ -z "$z" ] || return 1
	done
}

# cl_wait_reaped HOST...: wait up to 10 s (SIGCHLD handled) for cl_reaped;
# else say which zombies each HOST's ternd holds, and fail.
cl_wait_reaped() {
	local h
	th_wait 10 cl_reaped "$@" && return 0
	for h in "$@"; do
		cl__err "$h's ternd never reaped: $(cl_zombies "$h" | tr '\n' ' ')"
	done
	return 1
}

# cl_pki: make a cluster CA in $TH_ROOT/pki (once) and a certificate for
# every host in TH_HOSTS that has none yet; copy each host's HOST.pem,
# HOST.key and ca.pem into $(th_dir HOST)/etc.  The CA key stays out of
# the hosts.
cl_pki() {
	local pki=$TH_ROOT/pki h out etc
	[ -x "$CL_TERNCTL" ] || cl__err "no ternctl at $CL_TERNCTL" || return 1
	mkdir -p "$pki" || return 1
	if [ ! -f "$pki/ca.pem" ]; then
		"$CL_TERNCTL" ca init --dir "$pki" >/dev/null ||
		    cl__err "ternctl ca init --dir $pki failed" || return 1
	fi
	for h in $TH_HOSTS; do
		out=$pki/hosts/$h
		etc=$(th_dir "$h") || return 1
		etc=$etc/etc
		if [ ! -f "$out/$h.pem" ]; then
			mkdir -p "$out" || return 1
			"$CL_TERNCTL" cert issue "$h" --ca-dir "$pki" \
			    --out "$out" >/dev/null ||
			    cl__err "ternctl cert issue $h failed" || return 1
		fi
		cp "$out/$h.pem" "$out/$h.key" "$out/ca.pem" "$etc/" &&
		    chmod 600 "$etc/$h.key" || return 1
	done
}

# cl_conf HOST [LINE...]: write $(th_dir HOST)/etc/ternd.conf for HOST,
# with every other host of TH_HOSTS as a peer.  Each extra LINE is
# appended; a `key = value` LINE replaces the default for that key
# (e.g. cl_conf h1 'peer_timeout_ms = 500').
cl_conf() {
	local host=${1:-} dir etc peers='' h line key keys=() defaults=()
	dir=$(th_dir "$host") || return 1
	shift
	etc=$dir/etc
	for h in $TH_HOSTS; do
		[ "$h" = "$host" ] && continue
		peers+="${peers:+, }\"$h@$(th_addr "$h"):$CL_PORT\""
	done
	defaults=(
		"host_name = \"$host\""
		"listen_address = \"$(th_addr "$host")\""
		"listen_port = $CL_PORT"
		"peers = [ $peers ]"
		"ca_file = \"$etc/ca.pem\""
		"cert_file = \"$etc/$host.pem\""
		"key_file = \"$etc/$host.key\""
		"revoked_file = \"$etc/revoked\""
		"rootfs_allowed_prefixes = [ \"/srv\", \"/var/lib/tern\", \"$TH_ROOT\" ]"
		"state_dir = \"/var/lib/tern\""
		"run_dir = \"$CL_RUN_DIR\""
		"log_filters = \"debug\""
		"heartbeat_interval_ms = 200"
		"peer_timeout_ms = 2000"
		"reconnect_max_ms = 1000"
		"accept_test_streams = true"
	)
	for line in "$@"; do
		case $line in
		*=*)
			key=${line%%=*}
			key=${key//[[:space:]]/}
			keys+=("$key")
			;;
		esac
	done
	{
		echo "# ternd.conf for test host $host (written by cl_conf)"
		for line in "${defaults[@]}"; do
			key=${line%% *}
			for h in "${keys[@]}"; do
				[ "$h" = "$key" ] && continue 2
			done
			echo "$line"
		done
		for line in "$@"; do
			echo "$line"
		done
	} >"$etc/ternd.conf"
}

# cl__ready PID HOST: stop waiting when ternd died or has written its pid
# file and created its control socket.
cl__ready() {
	local run
	th_pid_alive "$1" || return 0
	run=$(th_root_path "$2" "$CL_RUN_DIR") || return 0
	[ -S "$run/ternd.sock" ] &&
	    [ "$(cat "$run/ternd.pid" 2>/dev/null)" = "$1" ]
}

# cl_start HOST: start ternd -F inside HOST (config from cl_conf, written
# now if missing), its output appended to $(cl_log HOST).  Returns once
# ternd's pid file and control socket exist; fails (showing the log's
# tail) if ternd exits or CL_START_TIMEOUT passes first.
cl_start() {
	local host=${1:-} dir conf log pidf pid
	dir=$(th_dir "$host") || return 1
	[ -x "$CL_TERND" ] || cl__err "no ternd at $CL_TERND" || return 1
	conf=$dir/etc/ternd.conf
	[ -f "$conf" ] || cl_conf "$host" || return 1
	log=$(cl_log "$host")
	pidf=$(cl__pidfile "$host")
	if pid=$(cl_pid "$host"); then
		cl__err "ternd already runs on $host (pid $pid)"
		return 1
	fi
	echo "=== cl_start $host $(date '+%F %T.%N')" >>"$log"
	# Not in $(...): ternd stays a child of this shell, so cl_stop can
	# collect its exit status.
	th_spawn "$host" "$log" "$CL_TERND" -F -f "$conf" >"$pidf" || return 1
	pid=$TH_SPAWN_PID
	cl__started "$pid" >"$pidf.started" || rm -f "$pidf.started"
	th_wait "${CL_START_TIMEOUT:-10}" cl__ready "$pid" "$host"
	if ! th_pid_alive "$pid"; then
		cl__err "ternd on $host exited during start; $log ends with:"
		tail -n 30 "$log" >&2
		return 1
	fi
	if ! cl__ready "$pid" "$host"; then
		cl__err "ternd on $host has no $CL_SOCK after" \
		    "${CL_START_TIMEOUT:-10}s; $log ends with:"
		tail -n 30 "$log" >&2
		return 1
	fi
}

# cl_check_log HOST: fail if HOST's ternd log has a sanitizer report.
cl_check_log() {
	local log
	log=$(cl_log "${1:-}") || return 1
	if grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:' \
	    "$log" 2>/dev/null; then
		cl__err "sanitizer report in $log:"
		grep -E -A 30 'ERROR: [A-Za-z]+Sanitizer|runtime error:' \
		    "$log" | head -n 60 >&2
		return 1
	fi
}

# cl__gone PID: true once PID has exited.
cl__gone() { ! th_pid_alive "$1"; }

# cl_stop HOST [TIMEOUT_S]: SIGTERM HOST's ternd, wait up to TIMEOUT_S
# (5) seconds, then SIGKILL.  Returns 0 if ternd exited by itself with
# status 0 (or an unknown status, when it is not this shell's child)
# and left no sanitizer report in its log; non-zero otherwise, saying
# why.  A host without a running ternd is fine.
cl_stop() {
	local host=${1:-} timeout=${2:-5} pidf pid st=0 ours=
	pidf=$(cl__pidfile "$host") || return 1
	pid=$(cat "$pidf" 2>/dev/null) || pid=
	[ -n "$pid" ] || return 0
	# Dead already, or its PID names another process now: nothing to
	# signal, only its status to collect.
	cl_pid "$host" >/dev/null && ours=1
	rm -f "$pidf" "$pidf.started"
	if [ -n "$ours" ]; then
		kill -TERM "$pid" 2>/dev/null
		if ! th_wait "$timeout" cl__gone "$pid"; then
			disown "$pid" 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
			th_wait 5 cl__gone "$pid"
			cl__err "ternd on $host ignored SIGTERM for ${timeout}s;" \
			    "killed"
			return 1
		fi
	fi
	wait "$pid" 2>/dev/null || st=$?
	[ "$st" = 127 ] && st=0		# not our child: status unknown
	cl_check_log "$host" || return 1
	if [ "$st" != 0 ]; then
		cl__err "ternd on $host exited with status $st; $(cl_log "$host")" \
		    "ends with:"
		tail -n 20 "$(cl_log "$host")" >&2
		return "$st"
	fi
	return 0
}

# cl_stop_all: cl_stop every host's ternd; non-zero if any failed.  Call
# it at the end of a test so sanitizer reports at exit are not missed.
cl_stop_all() {
	local h rc=0
	for h in $TH_HOSTS; do
		cl_stop "$h" || rc=1
	done
	return $rc
}

# cl_ctl HOST ARGS...: run ternctl inside HOST against its ternd's
# control socket; returns ternctl's exit status.
cl_ctl() {
	local host=${1:-}
	shift
	th_exec "$host" "$CL_TERNCTL" -s "$CL_SOCK" "$@"
}

# cl__parse_hosts: read `ternctl hosts --json` output, print one
# "NAME STATE" line per host.
cl__parse_hosts() {
	python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    for h in d.get("hosts", []):
        print(h.get("name", "?"), h.get("state", "?"))
except Exception as e:
    print("cluster: cannot parse hosts --json: %s" % e, file=sys.stderr)
    sys.exit(1)
'
}

# cl_hosts HOST: print "NAME STATE" for every host HOST's ternd knows.
cl_hosts() {
	local out
	out=$(cl_ctl "${1:-}" hosts --json) || return 1
	printf '%s\n' "$out" | cl__parse_hosts
}

# cl_host_state HOST PEER: print PEER's state as HOST's ternd sees it
# (self, up, connecting, down); fail if HOST does not list PEER.
cl_host_state() {
	local name state lines
	lines=$(cl_hosts "${1:-}") || return 1
	while read -r name state; do
		if [ "$name" = "${2:-}" ]; then
			echo "$state"
			return 0
		fi
	done <<<"$lines"
	return 1
}

# cl__count_up HOST N: true if HOST lists exactly N hosts up or self.
cl__count_up() {
	local name state n=0 lines
	lines=$(cl_hosts "$1" 2>/dev/null) || return 1
	while read -r name state; do
		case $state in up | self) n=$((n + 1)) ;; esac
	done <<<"$lines"
	[ "$n" = "$2" ]
}

# cl__show_failure HOST WHAT: print what HOST sees and its log's tail.
cl__show_failure() {
	cl__err "$2"
	echo "--- ternctl hosts --json on $1:" >&2
	cl_ctl "$1" hosts --json >&2 2>&1
	echo "--- last lines of $(cl_log "$1"):" >&2
	tail -n 40 "$(cl_log "$1")" >&2 2>/dev/null
}

# cl_wait_up HOST N TIMEOUT_S: wait (polling every 0.1 s) until HOST's
# `ternctl hosts --json` lists exactly N hosts in state up or self.  On
# timeout print what it saw and the tail of HOST's log, and fail.
cl_wait_up() {
	local host=${1:-} n=${2:-} timeout=${3:-30}
	[ -n "$n" ] || cl__err "usage: cl_wait_up HOST N TIMEOUT_S" || return 1
	th_wait "$timeout" cl__count_up "$host" "$n" && return 0
	cl__show_failure "$host" \
	    "$host does not see $n hosts up after ${timeout}s"
	return 1
}

# cl__is_state HOST PEER STATE
cl__is_state() { [ "$(cl_host_state "$1" "$2" 2>/dev/null)" = "$3" ]; }

# cl_wait_state HOST PEER STATE TIMEOUT_S: wait until HOST sees PEER in
# STATE (self, up, connecting, down); like cl_wait_up on timeout.
cl_wait_state() {
	local host=${1:-} peer=${2:-} state=${3:-} timeout=${4:-30}
	[ -n "$state" ] ||
	    cl__err "usage: cl_wait_state HOST PEER STATE TIMEOUT_S" || return 1
	th_wait "$timeout" cl__is_state "$host" "$peer" "$state" && return 0
	cl__show_failure "$host" \
	    "$host does not see $peer $state after ${timeout}s"
	return 1
}

# cl_up N [TIMEOUT_S]: th_setup N hosts, cl_pki, cl_conf and cl_start
# each, then wait until every host sees all N up (CL_UP_TIMEOUT, 30 s).
cl_up() {
	local n=${1:-} timeout=${2:-${CL_UP_TIMEOUT:-30}} h
	th_setup "$n" || return 1
	cl_pki || return 1
	for h in $TH_HOSTS; do
		cl_conf "$h" || return 1
	done
	for h in $TH_HOSTS; do
		cl_start "$h" || return 1
	done
	for h in $TH_HOSTS; do
		cl_wait_up "$h" "$n" "$timeout" || return 1
	done
}
