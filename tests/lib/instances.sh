# instances.sh: helpers for tests of containers run by ternd.  Source it
# after testhost.sh and cluster.sh.
#
#	cl_wait_criu HOST            wait until HOST's ternd checked CRIU
#	cl_wait_listing HOST         until HOST's ternd lists its instances
#	inst_wait_ready STATE        until memcheck wrote "ready" (20 s)
#	inst_field HOST NAME FIELD   a field of `ternctl list --json`
#	inst_verify HOST NAME STATE  make memcheck verify its memory (SIGUSR1)
#	                             and fail the test unless it says ok;
#	                             STATE is its state file, seen from outside
#	inst_where NAME              "HOST:STATE" for each of h1, h2 listing it
#	inst_copies NAME             its memcheck processes on h1 and h2
#	inst_two_hosts               h1 and h2 up, running containers
#	inst_memcheck NAME MIB       a memcheck container on h1, ready

# cl_wait_criu HOST: until HOST reports usable CRIU (up to 5 s).
cl_wait_criu() {
	local i
	for ((i = 0; i < 50; i++)); do
		cl_ctl "$1" status | grep -q "containers: *CRIU" && return 0
		sleep 0.1
	done
	echo "instances: $1 has no usable CRIU: $(cl_ctl "$1" status)" >&2
	return 1
}

# cl_wait_listing HOST: until `ternctl list` answers on HOST (up to 30 s).
# A ternd answers "still starting" until it has checked CRIU and opened
# its instances; a state read before then is empty, not "not here".
cl_wait_listing() {
	local i
	for ((i = 0; i < 300; i++)); do
		cl_ctl "$1" list >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "instances: $1 does not list its instances: $(cl_ctl "$1" list 2>&1)" >&2
	return 1
}

inst_wait_ready() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q "^ready" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "instances: memcheck did not start (no ready line in $1)" >&2
	return 1
}

inst_field() {
	cl_ctl "$1" list --json | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["name"] == sys.argv[1]:
        print(i.get(sys.argv[2], ""))' "$2" "$3"
}

inst_verify() {
	local pid
	pid=$(inst_field "$1" "$2" pid)
	if [ -z "$pid" ]; then
		echo "FAIL: $2 has no pid ($(inst_field "$1" "$2" state))" >&2
		exit 1
	fi
	inst_verify_pid "$pid" "$2" "$3" "${4:-}"
}

# inst_mask_dir HOST PID: where on HOST the directory lies that the
# masked directories of the container whose init is PID show
# (checkpoint/confine.h; nothing if it has none).  The container's
# mountinfo gives its path inside its filesystem; HOST's ternd sees where
# that filesystem is mounted.
inst_mask_dir() {
	local dev root
	read -r dev root < <(awk '$4 ~ /\/tern-masked$/ {print $3, $4; exit}' \
	    "/proc/$2/mountinfo") || true
	[ -n "${dev:-}" ] || return 0
	awk -v dev="$dev" -v root="$root" '
	    $3 == dev && index(root, ($4 == "/" ? "/" : $4 "/")) == 1 {
		rest = $4 == "/" ? root : substr(root, length($4) + 1)
		print ($5 == "/" ? "" : $5) rest
		exit
	    }' "/proc/$(cl_pid "$1")/mountinfo"
}

# inst_criu_externals HOST PID: the --external options CRIU's command
# line needs for the container on HOST whose init is PID, as ternd gives
# them (checkpoint/ckpt.c): the host's device nodes in its /dev, and its
# masked directories, binds of one empty host directory.  Sets the arrays
# CRIU_EXT_DUMP and CRIU_EXT_RESTORE.
inst_criu_externals() {
	local d dir mp key
	CRIU_EXT_DUMP=() CRIU_EXT_RESTORE=()
	for d in null zero full random urandom; do
		CRIU_EXT_DUMP+=(--external "mnt[/dev/$d]:dev-$d")
		CRIU_EXT_RESTORE+=(--external "mnt[dev-$d]:/dev/$d")
	done
	dir=$(inst_mask_dir "$1" "$2")
	[ -n "$dir" ] || return 0
	# mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
	while read -r mp; do
		key=mask${mp//\//-}
		CRIU_EXT_DUMP+=(--external "mnt[$mp]:$key")
		CRIU_EXT_RESTORE+=(--external "mnt[$key]:$dir")
	done < <(awk '$4 ~ /\/tern-masked$/ {print $5}' "/proc/$2/mountinfo")
}

# inst_verify_pid PID NAME STATE [WHAT]: as inst_verify, for a memcheck
# ternd does not know (a copy restored by hand, in the benches).
inst_verify_pid() {
	local pid=$1 name=$2 state=$3 before i
	before=$(grep -c "^counter=" "$state" || true)
	kill -USR1 "$pid"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "^counter=" "$state" || true)" -gt "$before" ] && break
		sleep 0.1
	done
	# No answer: the last line is an earlier check's.
	if [ "$(grep -c "^counter=" "$state" || true)" -le "$before" ]; then
		echo "FAIL: $name did not answer SIGUSR1 within 10 s (frozen?)" >&2
		exit 1
	fi
	if ! tail -n 1 "$state" | grep -q "^counter=[0-9]* ok$"; then
		echo "FAIL: $name says: $(tail -n 1 "$state") (a frozen or" \
		    "damaged container does not answer ok)" >&2
		exit 1
	fi
	echo "$name: $(tail -n 1 "$state") (pid $pid${4:+, $4})"
}

inst_where() {
	local h s
	for h in h1 h2; do
		s=$(inst_field $h "$1" state)
		[ -n "$s" ] && echo "$h:$s"
	done
	return 0
}

# inst_memcheck_pids NAME HOST...: the memcheck processes in NAME's
# cgroups on the HOSTs, whatever their ternds know of them.
inst_memcheck_pids() {
	local name=$1 h p dirs=()
	shift
	for h in "$@"; do dirs+=("$(th__cg1 "$h")"); done
	for p in $(find "${dirs[@]}" -path "*/tern/$name/*" -name cgroup.procs \
	    -exec cat {} + 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = memcheck ] && echo "$p"
	done
	return 0
}

# inst_lazy_pids HOST: the CRIU lazy-pages daemons on HOST (post-copy's,
# or a stop-and-copy's loader), found by their network namespace.
inst_lazy_pids() {
	local p
	for p in $(pgrep -f "sbin/criu lazy-pages" || true); do
		[ "$(ip netns identify "$p")" = "tern-$TH_NET-$1" ] && echo "$p"
	done
	return 0
}

# inst_postcopy_slowly NAME FROM TO OUT: start moving NAME FROM -> TO by
# post-copy through a 40 Mbit/s link into TO (th_limit; the caller lifts
# it), ternctl's output in OUT and its pid in INST_MIG, and return once
# NAME runs on TO, its memory still on the way (seconds of it for a
# 64 MiB memcheck).  Exits the test if it never resumes.
inst_postcopy_slowly() {
	local name=$1 from=$2 to=$3 out=$4 seen
	th_limit "$to" 40mbit
	seen=$(cl_log_count "$from" "$name: runs on $to after")
	cl_ctl "$from" migrate "$name" --to "$to" --mode postcopy >"$out" 2>&1 &
	INST_MIG=$!
	wait_for 30 "$name resumed on $to" eval \
	    '[ "$(cl_log_count "$from" "$name: runs on $to after")" -gt "$seen" ]'
}

# Whatever the ternds think: a copy one lost track of (or a frozen one)
# counts too.
inst_copies() {
	inst_memcheck_pids "$1" h1 h2 | wc -l
}

# inst_two_hosts: test hosts h1 and h2 with ternd up on both, each able
# to run containers.  TERN_FAULT_H1 / TERN_FAULT_H2 arm fault points
# (daemon/fault.h) on one of them; the arrays CONF_H1 / CONF_H2 add
# configuration lines (cl_conf).  Exits the test on failure.
inst_two_hosts() {
	local h fault conf
	th_setup 2
	cl_pki
	for h in h1 h2; do
		conf="CONF_${h^^}[@]"
		cl_conf "$h" ${!conf+"${!conf}"}
	done
	for h in h1 h2; do
		fault="TERN_FAULT_${h^^}"
		TERN_FAULT=${!fault:-} cl_start "$h"
	done
	cl_wait_up h1 2 30
	for h in h1 h2; do
		cl_wait_criu "$h" || { echo "FAIL: $h cannot run containers" >&2; exit 1; }
	done
}

# inst_rearm HOST FAULT: restart HOST's ternd (it runs nothing, so it
# leaves nothing behind) with the fault points FAULT armed, then wait
# until both hosts see each other and HOST can run containers again.
inst_rearm() {
	cl_stop "$1"
	TERN_FAULT=$2 cl_start "$1"
	cl_wait_up h1 2 30
	cl_wait_up h2 2 30
	cl_wait_criu "$1" || { echo "FAIL: $1 cannot run containers" >&2; exit 1; }
}

# inst_memcheck NAME MIB [HOST]: a memcheck container NAME of MIB MiB on
# a rootfs both hosts share, created and started on HOST (h1) and ready.
# Sets INST_STATE to memcheck's state file, as seen from outside.
inst_memcheck() {
	local name=$1 mib=$2 host=${3:-h1}
	rootfs_make "$TH_ROOT/rootfs"
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" "$name" /bin/memcheck \
	    "$mib" /var/log/memcheck.state
	INST_STATE="$TH_ROOT/rootfs/var/log/memcheck.state"
	cl_ctl "$host" create "$name" --spec "$TH_ROOT/$name.json" >/dev/null
	cl_ctl "$host" start "$name" >/dev/null
	inst_wait_ready "$INST_STATE" || { echo "FAIL: memcheck did not start" >&2; exit 1; }
}
