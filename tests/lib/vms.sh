# vms.sh: the test VM (tests/guest) as a tern instance on test hosts.
# Source after testhost.sh, cluster.sh and libvirt.sh (lv_start before
# cl_start: ternd connects to its host's libvirtd).
#
#	vm_create HOST NAME [MIB [CMDLINE]]	ternctl create --kind vm + start,
#						wait for the guest's 2nd check
#	vm_copies NAME		how many hosts' libvirtds run NAME (0, 1, 2)
#	vm_defined HOST NAME	HOST's libvirtd knows NAME
#	vm_settle NAME FROM TO	after a move: collect what the guest printed
#				on FROM into its history
#	vm_restarted HOST NAME [FILE]	a new QEMU took NAME's console on HOST
#				(a start, a restore); FILE: the history it
#				goes on from (a restore of an older state;
#				/dev/null after a fresh boot)
#	vm_qemu_pid HOST NAME	the PID of NAME's QEMU on HOST
#	vm_history NAME		the file vm_verify checks
#	vm_wait_checks HOST NAME N	N more "ok" checks on HOST's console
#	vm_verify NAME WHAT	the whole history is consistent (counters
#				only grow, no CORRUPT) or FAIL with WHAT
#	vm_pagepat_create HOST NAME [MIB [REGION_MIB]]	the page-pattern
#				guest (tests/guest/pagepat-guest.c) as an
#				instance, running its loop
#	vm_pagepat_verify HOST NAME WHAT	its memory, dumped on HOST,
#				holds the pattern, or FAIL with WHAT
#	vm_job_watch HOST NAME	start watching HOST's libvirt for NAME's
#				completed jobs (virsh event, another client
#				than ternd)
#	vm_job_field NAME FIELD	the FIELD (downtime, memory_iteration, ...)
#				of the completed job seen since, waiting
#				for it; stops watching (what it saw stays:
#				ask again for another field)
#	vm_wait_passes HOST NAME N PID	NAME's migration job on HOST is in
#				QEMU's pass N (dirty-sync-count) or later;
#				fails at once, saying what QEMU's job did,
#				if PID (the ternctl moving it) ends first
#
# The guest's console goes to a file per host, started over by every
# QEMU that takes it in there, so the history is built from each host's
# lines, collected in the order the guest ran.

declare -gA VM__OFF	# "HOST NAME" -> lines of the console already taken
declare -gA VM__QEMU	# "HOST NAME" -> the QEMU whose console that was

vm__hist() { echo "$TH_ROOT/$1.history"; }
vm_history() { vm__hist "$1"; }

# vm__collect HOST NAME: append the console lines not yet taken.  Another
# QEMU than the one last read there started the file over: its lines
# all count, whenever the test learns of it (a rolled-back move's copy
# may print before the test settles the move).
vm__collect() {
	local f n o q
	f=$(lv_serial_log "$1" "$2") || return 1
	# VM__QEMU: a PID, "-" (a QEMU that ended: any live one is new) or
	# empty (not known yet: the next live one is the file's).
	q=$(vm_qemu_pid "$1" "$2" 2>/dev/null) || q=
	if [ -n "$q" ] && [ "$q" != "${VM__QEMU["$1 $2"]:-$q}" ]; then
		VM__OFF["$1 $2"]=0
	fi
	VM__QEMU["$1 $2"]=${q:--}
	[ -f "$f" ] || return 0
	n=$(wc -l <"$f")
	o=${VM__OFF["$1 $2"]:-0}
	if [ "$n" -gt "$o" ]; then
		sed -n "$((o + 1)),${n}p" "$f" >>"$(vm__hist "$2")"
	fi
	VM__OFF["$1 $2"]=$n
}

vm__ok_lines() {
	local f n
	f=$(lv_serial_log "$1" "$2") || return 1
	n=$(grep -c 'guestcheck check=.* ok' "$f" 2>/dev/null) || :
	echo "${n:-0}"
}

vm__has_ok() { [ "$(vm__ok_lines "$1" "$2")" -ge "$3" ]; }

vm_wait_checks() {
	local host=$1 name=$2 n=$3 want
	want=$(( $(vm__ok_lines "$host" "$name") + n ))
	th_wait 60 vm__has_ok "$host" "$name" "$want" || {
		echo "FAIL: $name on $host: no $n more checks on its console:" >&2
		tail -n 20 "$(lv_serial_log "$host" "$name")" >&2
		# What the guest was doing (once in CI: a restored guest that
		# printed nothing in 60 s).
		{
			echo "console: $(wc -c <"$(lv_serial_log "$host" "$name")") bytes"
			echo "libvirt: $(lv_virsh "$host" domstate "$name" --reason 2>&1)"
			lv_virsh "$host" qemu-monitor-command "$name" --hmp \
			    "info cpus" 2>&1
			grep " $name\b" "$(cl_log "$host")" | grep -v debug |
			    tail -n 8
		} >&2 || :
		return 1
	}
}

vm_create() {
	local host=$1 name=$2 mib=${3:-128} extra=${4:-}
	lv_domain_xml "$name" "$mib" "$extra" >"$TH_ROOT/$name.xml" || return 1
	cl_ctl "$host" create "$name" --kind vm --xml "$TH_ROOT/$name.xml" \
	    >/dev/null || return 1
	cl_ctl "$host" start "$name" >/dev/null || return 1
	: >"$(vm__hist "$name")"
	vm_wait_checks "$host" "$name" 2
}

# (grep without -q: an early exit would fail lv_virsh under pipefail.)
vm_defined() {
	lv_virsh "$1" list --all --name 2>/dev/null | grep -x "$2" >/dev/null
}

vm_copies() {
	local h n=0
	for h in $TH_HOSTS; do
		lv_virsh "$h" list --name 2>/dev/null | grep -x "$1" >/dev/null &&
		    n=$((n + 1))
	done
	echo $n
}

# vm_settle NAME FROM TO: the guest left FROM for TO (or stayed: FROM =
# TO); its console lines on FROM are complete now.  (The QEMU that took
# it in on TO started that file over: vm__collect sees its new PID.)
vm_settle() {
	vm__collect "$2" "$1"
}

# vm_restarted HOST NAME [FILE]: the QEMU that runs NAME on HOST now (or
# the next one there) started the console file over (collect the old
# one's lines first).
vm_restarted() {
	VM__OFF["$1 $2"]=0
	VM__QEMU["$1 $2"]=$(vm_qemu_pid "$1" "$2" 2>/dev/null) || :
	if [ -n "${3:-}" ]; then
		cp "$3" "$(vm__hist "$2")"
	fi
}

vm_qemu_pid() {
	local f pid
	f=$(th_root_path "$1" "/run/libvirt/qemu/$2.pid") || return 1
	pid=$(cat "$f" 2>/dev/null) && th_pid_alive "$pid" || {
		echo "vms: no QEMU of $2 on $1" >&2
		return 1
	}
	echo "$pid"
}

vm_verify() {
	local name=$1 what=$2 host v
	# The host it runs on now: its lines so far.
	for host in $TH_HOSTS; do
		if lv_virsh "$host" list --name 2>/dev/null |
		    grep -x "$name" >/dev/null; then
			vm__collect "$host" "$name"
		fi
	done
	v=$(lv_guest_verify "$(vm__hist "$name")") || {
		echo "FAIL: $name $what: $v" >&2
		exit 1
	}
	echo "$name $what: $v"
}

vm_pagepat_create() {
	local host=$1 name=$2 mib=${3:-64} region=${4:-32}
	lv_pagepat_xml "$name" "$mib" "$region" >"$TH_ROOT/$name.xml" ||
	    return 1
	cl_ctl "$host" create "$name" --kind vm --xml "$TH_ROOT/$name.xml" \
	    >/dev/null || return 1
	cl_ctl "$host" start "$name" >/dev/null || return 1
	lv_wait_log "$(lv_serial_log "$host" "$name")" 'pagepat pass=' 60
}

vm_pagepat_verify() {
	local v
	v=$(lv_pagepat_check "$1" "$2") || {
		echo "FAIL: $2 $3: ${v:-no dump}" >&2
		exit 1
	}
	echo "$2 $3: $v"
}

declare -gA VM__WATCH	# NAME -> PID of its virsh event

vm_job_watch() {
	local f=$TH_ROOT/$2.jobs
	: >"$f"
	lv_virsh "$1" event --domain "$2" --event job-completed --loop \
	    >"$f" 2>&1 &
	VM__WATCH[$2]=$!
	# virsh registers before it prints anything: give it that time.
	sleep 1
}

vm__job_has() { grep -q "^[[:space:]]*$2: " "$TH_ROOT/$1.jobs"; }

vm_job_field() {
	local name=$1 field=$2 rc=0
	th_wait 20 vm__job_has "$name" "$field" || rc=1
	kill "${VM__WATCH[$name]}" 2>/dev/null || :
	wait "${VM__WATCH[$name]}" 2>/dev/null || :
	[ $rc = 0 ] || {
		echo "vms: no $field in $name's completed job:" \
		    "$(cat "$TH_ROOT/$name.jobs")" >&2
		return 1
	}
	sed -n "s/^[[:space:]]*$field: \([0-9]*\).*/\1/p" \
	    "$TH_ROOT/$name.jobs" | tail -n 1
}

vm__pass_reached() {	# HOST NAME N PID
	local it
	kill -0 "$4" 2>/dev/null || return 0	# ended: the caller says how
	it=$(lv_virsh "$1" domjobinfo "$2" 2>/dev/null |
	    sed -n 's/^Iteration: *\([0-9]*\).*/\1/p')
	[ -n "$it" ] && [ "$it" -ge "$3" ]
}

vm_wait_passes() {	# HOST NAME N PID
	th_wait 120 vm__pass_reached "$@" && kill -0 "$4" 2>/dev/null &&
	    return 0
	if kill -0 "$4" 2>/dev/null; then
		echo "vms: $2's migration on $1 never reached pass $3:" \
		    "$(lv_virsh "$1" domjobinfo "$2" 2>&1 | tr -s ' \n' ' ')" >&2
	else
		# A guest that stood still for a whole pass lets QEMU
		# converge even at a 1 ms downtime limit.
		echo "vms: $2's migration on $1 ended before pass $3:" \
		    "$(lv_virsh "$1" domjobinfo "$2" --completed 2>&1 |
		    tr -s ' \n' ' ')" >&2
	fi
	return 1
}
