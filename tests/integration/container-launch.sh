#!/usr/bin/env bash
# container-launch: the container launcher (checkpoint/container.c), driven
# through tests/tools/ctr on busybox rootfs made by tests/lib/rootfs.sh.
#
# Checks: pid 1 in its own pid namespace, its host name, only its rootfs
# visible, memory and pids limits in the cgroups (and enforced), lo only
# in a network namespace of its own, a read-only rootfs; memcheck answers
# SIGUSR1 with "ok"; freeze stops it and thaw resumes it; kill empties the
# cgroup; bad specs and rootfs give clear errors and leave nothing behind.
#
# Needs root, the cgroup v1 memory, cpu, pids and freezer controllers and
# busybox-static (exit 77, skipped, without them).  Uses TERN_BUILDDIR
# (tests/tools/ctr, tests/workloads/memcheck) and TERN_SRCDIR.
# shellcheck disable=SC2015,SC2016  # ok() never fails; sh -c scripts
set -euo pipefail

builddir=${TERN_BUILDDIR:-.}
srcdir=${TERN_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ctr=$builddir/tests/tools/ctr
cgroot=/sys/fs/cgroup
# cgdir CTRL NAME: the container's cgroup; tern nests containers below the
# cgroup of the process that starts them (here: this script, via ctr).
cgdir() {
	local base
	base=$(awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' /proc/self/cgroup)
	[ "$base" = / ] && base=
	echo "$cgroot/$1$base/tern/$2"
}

skip() {
	echo "container-launch: skipped: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root"
for c in memory cpu pids freezer; do
	[ -f "$cgroot/$c/cgroup.procs" ] ||
	    skip "no cgroup v1 $c controller at $cgroot/$c"
done
# shellcheck source=tests/lib/rootfs.sh
. "$srcdir/tests/lib/rootfs.sh"
rootfs_check || skip "no static busybox"
for f in "$ctr" "$builddir/tests/workloads/memcheck"; do
	if [ ! -x "$f" ]; then
		echo "container-launch: $f not built (make check builds it)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-container-launch.XXXXXX")
prefix=cl$$
names=()
bg_pids=()
failures=0

cleanup() {
	local n p
	set +e
	for n in "${names[@]}"; do
		"$ctr" kill "$n" >/dev/null 2>&1
		"$ctr" rm "$n" >/dev/null 2>&1
	done
	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

ok() {
	echo "ok: $*"
}

# wait_for TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# new_container SHORT: a fresh rootfs $tmp/SHORT/rootfs; sets $name.
new_container() {
	name=$prefix-$1
	names+=("$name")
	mkdir -p "$tmp/$1"
	rootfs_make "$tmp/$1/rootfs" 2>"$tmp/$1/rootfs.err" || {
		cat "$tmp/$1/rootfs.err" >&2
		return 1
	}
}

# run_fg SHORT: start the container of $tmp/SHORT/$name.json and wait for
# it; $rc is ctr's exit status, $console the container's console log.
run_fg() {
	rc=0
	timeout 30 "$ctr" start "$name" "$tmp/$1/$name.json" \
	    >"$tmp/$1/ctr.out" 2>"$tmp/$1/ctr.err" </dev/null || rc=$?
	console=$tmp/$1/rootfs/.tern-console.log
}

# has FILE TEXT: FILE holds a line that is exactly TEXT.
has() {
	grep -qxF -- "$2" "$1" 2>/dev/null
}

cgroup_gone() {
	local c
	for c in memory cpu pids freezer; do
		[ ! -e "$(cgdir "$c" "$1")" ] || return 1
	done
}

# --- hello: pid 1, own host name, only its rootfs, limits ------------------

check_hello() {
	local d=hello host=box-$$ v
	new_container $d || return 0
	ROOTFS_SPEC_HOSTNAME=$host ROOTFS_SPEC_MEMORY=67108864 \
	    ROOTFS_SPEC_PIDS=32 rootfs_spec "$tmp/$d/rootfs" "$name" \
	    sh -c 'echo hello; echo pid=$$; hostname; cat /proc/self/status;
		[ -e /work ] && echo sees-work; [ -e '"$tmp"' ] && echo sees-tmp;
		echo maxpid=$(ls /proc | grep "^[0-9]" | sort -n | tail -n 1)'
	run_fg $d
	[ "$rc" = 0 ] || fail "hello: ctr start exit $rc: $(cat "$tmp/$d/ctr.err")"
	has "$console" hello && has "$console" pid=1 && ok "hello: runs as pid 1" ||
	    fail "hello: no \"hello\" and \"pid=1\" in $(cat "$console" 2>&1)"
	has "$console" "$host" && ok "hello: host name $host" ||
	    fail "hello: host name not $host: $(cat "$console")"
	# /proc is the container's: cat is pid 2 or 3 there, one level deep.
	if grep -qE '^NSpid:[[:space:]]+[0-9]+$' "$console" &&
	    grep -qE '^Pid:[[:space:]]+[23]$' "$console"; then
		ok "hello: /proc shows its own pid namespace"
	else
		fail "hello: /proc/self/status is not the container's: $(grep -E '^(Pid|NSpid)' "$console")"
	fi
	if grep -qE '^sees-' "$console"; then
		fail "hello: sees the host's files: $(grep -E '^sees-' "$console")"
	else
		ok "hello: sees only its rootfs"
	fi
	# The shell, the command substitution, ls, grep, sort and tail.
	v=$(sed -n 's/^maxpid=//p' "$console")
	[ -n "$v" ] && [ "$v" -le 10 ] && ok "hello: only its processes in /proc" ||
	    fail "hello: largest pid in its /proc is \"$v\""
	v=$(cat "$(cgdir memory "$name")/memory.limit_in_bytes" 2>&1)
	[ "$v" = 67108864 ] && ok "hello: memory.limit_in_bytes $v" ||
	    fail "hello: memory.limit_in_bytes is $v, not 67108864"
	v=$(cat "$(cgdir pids "$name")/pids.max" 2>&1)
	[ "$v" = 32 ] && ok "hello: pids.max $v" ||
	    fail "hello: pids.max is $v, not 32"
	"$ctr" rm "$name" && cgroup_gone "$name" && ok "hello: cgroups removed" ||
	    fail "hello: cgroups of $name left behind"
}

# --- limits enforced ---------------------------------------------------------

check_limits() {
	local d=pids
	new_container $d || return 0
	ROOTFS_SPEC_PIDS=8 rootfs_spec "$tmp/$d/rootfs" "$name" sh -c \
	    'i=0; while [ $i -lt 12 ]; do sleep 30 & i=$((i+1)); done; echo forked-all'
	run_fg $d
	if grep -q "can't fork" "$console" && ! has "$console" forked-all; then
		ok "pids: the 9th process cannot fork"
	else
		fail "pids: limit of 8 not enforced (exit $rc): $(cat "$console")"
	fi
	"$ctr" kill "$name" >/dev/null 2>&1 || :

	d=oom
	new_container $d || return 0
	ROOTFS_SPEC_MEMORY=33554432 rootfs_spec "$tmp/$d/rootfs" "$name" \
	    memcheck 64 /var/log/state
	if grep -qE '^/' /proc/swaps 2>/dev/null; then
		echo "skip: memory limit enforcement (swap is on)"
		return 0
	fi
	run_fg $d
	[ "$rc" = 137 ] && ok "memory: 64 MiB in a 32 MiB container is OOM-killed" ||
	    fail "memory: memcheck 64 under a 32 MiB limit: exit $rc, not 137"
}

# --- a network namespace of its own; a read-only rootfs ---------------------

check_netns_readonly() {
	local d=net
	new_container $d || return 0
	ROOTFS_SPEC_NETWORK=1 rootfs_spec "$tmp/$d/rootfs" "$name" sh -c \
	    'echo links=$(grep -c : /proc/net/dev); ip link show lo'
	run_fg $d
	if has "$console" links=1 && grep -q '<LOOPBACK,UP' "$console"; then
		ok "network: only lo, and it is up"
	else
		fail "network: (exit $rc) $(cat "$console")"
	fi

	d=ro
	new_container $d || return 0
	ROOTFS_SPEC_READONLY=1 rootfs_spec "$tmp/$d/rootfs" "$name" sh -c \
	    'touch /new 2>/dev/null && echo rw-root; echo x >/tmp/x && echo tmp-rw; echo console-rw'
	run_fg $d
	if has "$console" tmp-rw && has "$console" console-rw &&
	    ! has "$console" rw-root && [ ! -e "$tmp/$d/rootfs/new" ]; then
		ok "readonly: / read-only, /tmp and the console log writable"
	else
		fail "readonly: (exit $rc) $(cat "$console" 2>&1)"
	fi
}

# --- memcheck: SIGUSR1, freeze, thaw, pids, kill ------------------------------

# more_lines FILE N: FILE has more than N lines.
more_lines() {
	[ "$(wc -l <"$1")" -gt "$2" ]
}

# last_counter FILE: N of the last "counter=N ok" line.
last_counter() {
	sed -n 's/^counter=\([0-9]*\) ok$/\1/p' "$1" | tail -n 1
}

check_memcheck() {
	local d=mc state out pid bg n1 n2 lines st v
	new_container $d || return 0
	rootfs_spec "$tmp/$d/rootfs" "$name" memcheck 32 /var/log/memcheck.state
	state=$tmp/$d/rootfs/var/log/memcheck.state
	out=$tmp/$d/ctr.out
	"$ctr" start "$name" "$tmp/$d/$name.json" >"$out" 2>"$tmp/$d/ctr.err" \
	    </dev/null &
	bg=$!
	bg_pids+=("$bg")
	if ! wait_for 10 grep -q '^[0-9]' "$out"; then
		fail "memcheck: no pid from ctr start: $(cat "$tmp/$d/ctr.err")"
		return 0
	fi
	pid=$(head -n 1 "$out")
	if ! wait_for 20 has "$state" "ready pid=1"; then
		fail "memcheck: not ready: $(cat "$state" "$tmp/$d/rootfs/.tern-console.log" 2>&1)"
		return 0
	fi
	ok "memcheck: ready as pid 1 (pid $pid outside)"

	kill -USR1 "$pid"
	if wait_for 10 grep -q '^counter=[0-9]* ok$' "$state"; then
		ok "memcheck: SIGUSR1 answered $(tail -n 1 "$state")"
	else
		fail "memcheck: no ok after SIGUSR1: $(cat "$state")"
	fi
	grep -q CORRUPT "$state" && fail "memcheck: $(grep CORRUPT "$state")"

	v=$("$ctr" pids "$name" 2>&1)
	[ "$v" = "$pid" ] && ok "pids: $v" || fail "pids: \"$v\", not $pid"

	# Frozen, it cannot answer; thawed, it answers with a larger counter.
	n1=$(last_counter "$state")
	"$ctr" freeze "$name" || fail "freeze failed"
	v=$(cat "$(cgdir freezer "$name")/freezer.state")
	[ "$v" = FROZEN ] && ok "freeze: $v" || fail "freeze: state $v"
	lines=$(wc -l <"$state")
	kill -USR1 "$pid"
	sleep 1
	[ "$(wc -l <"$state")" = "$lines" ] &&
	    ok "freeze: no answer while frozen" ||
	    fail "freeze: answered while frozen: $(tail -n 1 "$state")"
	"$ctr" thaw "$name" || fail "thaw failed"
	if wait_for 10 more_lines "$state" "$lines"; then
		n2=$(last_counter "$state")
		[ -n "$n2" ] && [ "$n2" -gt "$n1" ] &&
		    ok "thaw: answered, counter $n1 -> $n2" ||
		    fail "thaw: counter $n1 -> ${n2:-none}: $(tail -n 1 "$state")"
	else
		fail "thaw: no answer after thaw"
	fi

	"$ctr" kill "$name" || fail "kill failed"
	v=$(cat "$(cgdir freezer "$name")/cgroup.procs" 2>&1)
	[ -z "$v" ] && ok "kill: cgroup empty" || fail "kill: left $v"
	st=0
	wait "$bg" || st=$?
	[ "$st" = 137 ] && ok "kill: ctr start reaped it (exit $st)" ||
	    fail "kill: ctr start exit $st, not 137"
	"$ctr" rm "$name" && cgroup_gone "$name" || fail "rm: cgroups left"
}

# --- errors --------------------------------------------------------------------

# expect_start_error SHORT TEXT: ctr start must fail with TEXT on stderr and
# leave no cgroup behind.
expect_start_error() {
	local d=$1 text=$2
	run_fg "$d"
	if [ "$rc" != 2 ]; then
		fail "$d: ctr start exit $rc, not 2: $(cat "$tmp/$d/ctr.err")"
	elif ! grep -qF -- "$text" "$tmp/$d/ctr.err"; then
		fail "$d: stderr does not hold \"$text\": $(cat "$tmp/$d/ctr.err")"
	elif ! cgroup_gone "$name"; then
		fail "$d: cgroups of $name left behind"
	else
		ok "$d: $(head -n 1 "$tmp/$d/ctr.err")"
	fi
}

check_errors() {
	local d
	d=noroot
	new_container $d || return 0
	ROOTFS_SPEC_ROOT=missing rootfs_spec "$tmp/$d/rootfs" "$name" sh
	expect_start_error $d "ctr: container $name: root.path $tmp/$d/missing: No such file or directory: create the rootfs there or fix root.path in the spec"

	d=noproc
	new_container $d || return 0
	rmdir "$tmp/$d/rootfs/proc"
	rootfs_spec "$tmp/$d/rootfs" "$name" sh
	expect_start_error $d "ctr: container $name: $tmp/$d/rootfs/proc: No such file or directory: the rootfs needs empty proc and dev directories"

	d=noexec
	new_container $d || return 0
	rootfs_spec "$tmp/$d/rootfs" "$name" nosuchprogram
	expect_start_error $d "ctr: container $name: cannot execute nosuchprogram (looked in PATH /bin inside $tmp/$d/rootfs): No such file or directory"

	d=nocwd
	new_container $d || return 0
	rootfs_spec "$tmp/$d/rootfs" "$name" sh
	sed -i 's|"cwd": "/"|"cwd": "/srv/app"|' "$tmp/$d/$name.json"
	expect_start_error $d "ctr: container $name: process.cwd /srv/app: No such file or directory inside the container"

	d=seccomp
	new_container $d || return 0
	rootfs_spec "$tmp/$d/rootfs" "$name" sh
	sed -i 's|"linux": {|"linux": {"seccomp": {},|' "$tmp/$d/$name.json"
	expect_start_error $d "ctr: $tmp/$d/$name.json: linux.seccomp is not supported by tern"

	d=badname
	new_container $d || return 0
	rootfs_spec "$tmp/$d/rootfs" "$name" sh
	rc=0
	"$ctr" start Bad_Name "$tmp/$d/$name.json" >/dev/null \
	    2>"$tmp/$d/ctr.err" || rc=$?
	[ "$rc" = 2 ] && grep -qF 'container "Bad_Name": invalid name' "$tmp/$d/ctr.err" &&
	    ok "badname: $(cat "$tmp/$d/ctr.err")" ||
	    fail "badname: exit $rc: $(cat "$tmp/$d/ctr.err")"
}

check_hello
check_limits
check_netns_readonly
check_memcheck
check_errors

if [ "$failures" != 0 ]; then
	echo "container-launch: $failures failure(s)"
	exit 1
fi
echo "container-launch: ok"
