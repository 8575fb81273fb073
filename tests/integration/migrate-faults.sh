#!/usr/bin/env bash
# Faults in the middle of a stop-and-copy migration (container-migrate.sh
# has the happy path, a target ternd SIGKILLed and a source ternd
# stopped): the source's ternd SIGKILLed, the link cut, the target's disk
# full, criu killed on either side, the link lost at the commit point.
# After each exactly one copy of the container runs and its memory
# verifies, `ternctl migrate` said what failed, the other host keeps
# nothing of it, and the next migration works.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

criu_prefix=$(sed -n 's/^#define CRIU_DEFAULT_PATH "\(.*\)\/bin\/criu"/\1/p' "$TERN_BUILDDIR/config.h")
[ -n "$criu_prefix" ] || fail "cannot tell the CRIU prefix from config.h"

th_setup 2
cl_pki
cl_conf h1
cl_conf h2
# Every target holds its restored copy 3 s before it says RESTORED (fault
# point mig.target.held): the source stays that long before its commit
# point, its CRIU at post-dump, so the cases that cut the link or stop
# that CRIU "while the images are on their way" act inside the window
# whatever the machine's load (it was the target's restore, ~1.3 s: a
# loaded run once saw the log line too late and found no CRIU left).
HOLD=mig.target.held:delay=3000
# h1's ternd kills itself at its first migration's frozen point (case 1).
TERN_FAULT="mig.source.frozen:kill@1,$HOLD" cl_start h1
TERN_FAULT=$HOLD cl_start h2
cl_wait_up h1 2 30
cl_wait_up h2 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

# mc is big enough that dumping and copying it take a while (a fault
# lands in the middle), on storage both hosts see.
rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 256 /var/log/mc.state
declare -A at	# where each container runs

other() { if [ "$1" = h1 ]; then echo h2; else echo h1; fi; }

# launch NAME HOST: create and start NAME (spec $TH_ROOT/NAME.json).
launch() {
	cl_ctl "$2" create "$1" --spec "$TH_ROOT/$1.json" >/dev/null
	cl_ctl "$2" start "$1" >/dev/null
	inst_wait_ready "$TH_ROOT/rootfs/var/log/$1.state" ||
	    fail "$1 did not start"
	at[$1]=$2
	verify "$1" "started on $2"
}

verify() {	# NAME WHY
	inst_verify "${at[$1]}" "$1" "$TH_ROOT/rootfs/var/log/$1.state" "$2"
}

# wait_line HOST PATTERN SEEN: until HOST's log has more than SEEN lines
# matching PATTERN (10 s).
wait_line() {
	local i
	for ((i = 0; i < 2000; i++)); do
		[ "$(cl_log_count "$1" "$2")" -gt "$3" ] && return 0
		sleep 0.005
	done
	echo "--- $1's last migration lines:" >&2
	grep -E 'migrate|peer' "$(cl_log "$1")" | tail -n 15 >&2
	fail "$1 never logged \"$2\""
}

# ternd_children HOST: the PIDs of HOST's ternd's children, wherever
# their cgroups are (CRIU moves itself out of the host's at times).
ternd_children() {
	local ternd
	ternd=$(cl_pid "$1") || return 1
	ps -o pid= --ppid "$ternd" | tr -d ' '
	return 0
}

# criu_of HOST: the PIDs of the criu HOST's ternd runs: its children
# whose executable is in the CRIU prefix (criu rewrites its command line;
# another one, a check, may run next to the dump).
# is_criu PID: PID runs the CRIU of the prefix.
is_criu() { readlink "/proc/$1/exe" 2>/dev/null | grep -q "^$criu_prefix/"; }

criu_of() {
	local p found=1
	for p in $(ternd_children "$1"); do
		if is_criu "$p"; then
			echo "$p"
			found=0
		fi
	done
	return $found
}

# tracer PID: the PID tracing PID (0: none).
tracer() { sed -n 's/^TracerPid:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null; }

# mig_start NAME TAG: ternctl migrate NAME to the other host, in the
# background ($ctl), its output in $TH_ROOT/TAG.out.
mig_start() {
	cl_ctl "${at[$1]}" migrate "$1" --to "$(other "${at[$1]}")" \
	    --mode "${MODE:-stopcopy}" >"$TH_ROOT/$2.out" 2>&1 &
	ctl=$!
}

# mig_failed TAG PATTERN: the migration started as TAG failed saying
# PATTERN.
mig_failed() {
	local rc=0 out
	th_wait 60 cl__gone "$ctl" ||
	    fail "$1: migrate still waits after 60 s: $(inst_where mc)"
	wait "$ctl" || rc=$?
	out=$(cat "$TH_ROOT/$1.out")
	echo "$1: $out"
	[ "$rc" = 1 ] || fail "$1: migrate exited $rc: $out"
	grep -q -- "$2" <<<"$out" || fail "$1: no \"$2\" in: $out"
}

gone_from() {	# HOST NAME: HOST has nothing of NAME, listed or on disk
	[ -z "$(inst_field "$1" "$2" state)" ] &&
	    ! th_exec "$1" test -e "/var/lib/tern/instances/$2"
}

# settled NAME WHY: NAME runs where it was, alone, and verifies; the
# other host has nothing of it.  Then it moves there, and runs there.
settled() {
	local ct=$1 why=$2 from=${at[$1]} to
	to=$(other "$from")
	th_wait 10 gone_from "$to" "$ct" || fail "$why: $to kept $ct:" \
	    "$(inst_where "$ct"); $(th_exec "$to" ls /var/lib/tern/instances 2>&1)"
	[ "$(inst_where "$ct")" = "$from:running" ] ||
	    fail "$why: $ct is at: $(inst_where "$ct") ($from says:" \
	    "$(inst_field "$from" "$ct" last_error))"
	[ "$(inst_copies "$ct")" = 1 ] || fail "$why: $(inst_copies "$ct") copies of $ct run"
	verify "$ct" "$why"
	cl_ctl "$from" migrate "$ct" --to "$to" --mode stopcopy ||
	    fail "$why: the next migration failed"
	at[$ct]=$to
	[ "$(inst_where "$ct")" = "$to:running" ] ||
	    fail "$why: after moving, $ct is at: $(inst_where "$ct")"
	[ "$(inst_copies "$ct")" = 1 ] ||
	    fail "$why: $(inst_copies "$ct") copies of $ct run after moving"
	verify "$ct" "moved to $to after that"
}

launch mc h1

# 1. The source's ternd is SIGKILLed while the images are on their way
# (fault point mig.source.frozen: the container frozen and dumped,
# nothing sent yet; before, a SIGKILL raced the log line "dumping ->
# sending" and once came after the commit point).  Its CRIU, holding the
# container at post-dump, outlives it: it sees its socket close, takes
# that as a refused post-dump and resumes the container.  The target
# loses the source and drops the incoming copy; the restarted source
# adopts the container.
from=${at[mc]}
pid=$(cl_pid "$from")
disown "$pid"	# no "Killed" notice
mig_start mc srckill
died() { grep -q "fault point mig.source.frozen: ternd kills itself" "$(cl_log "$from")"; }
th_wait 60 died || fail "srckill: $from's ternd did not die at mig.source.frozen"
th_wait 10 eval '! th_pid_alive '"$pid" || fail "srckill: $from's ternd still runs"
fault_fired "$from" mig.source.frozen kill
mig_failed srckill "ternd closed the connection"
TERN_FAULT=$HOLD cl_start "$from"
cl_wait_up "$from" 2 30
settled mc "the source's ternd was SIGKILLed mid-migration"

# 2. The link is cut while the images are on their way: both sides give
# up once the peer is silent for peer_timeout_ms; the source resumes its
# container, the target drops its copy.
from=${at[mc]}
to=$(other "$from")
seen=$(cl_log_count "$from" "mc: dumping -> sending")
mig_start mc cut
wait_line "$from" "mc: dumping -> sending" "$seen"
th_cut "$to"
mig_failed cut "no message from $to\|lost the connection to $to"
th_heal "$to"
cl_wait_up "$from" 2 30
cl_wait_up "$to" 2 30
settled mc "the link was cut mid-migration"

# 3. The target's disk fills up: for this case its instances live on a
# 32 MiB tmpfs, the images need 256 MiB.  The source resumes its
# container; the target removes what it had received.  The source's
# CRIU, at work inside the container when the refusal comes, is asked to
# stop, never killed: killed there it once took the container with it.
from=${at[mc]}
to=$(other "$from")
th_exec "$to" mount -t tmpfs -o size=32m tmpfs /var/lib/tern/instances
kills="mc: thawed (criu was killed)\|asked to stop, .*: killed"
killed=$(cl_log_count "$from" "$kills")
mig_start mc full
# (The target says it; by the page-server pipeline the pages fill it.)
mig_failed full "copying the images to $to: .*receiving host's disk is full\|$to refused: .*receiving host's disk is full"
[ "$(cl_log_count "$from" "$kills")" = "$killed" ] ||
    fail "full: $from killed its CRIU mid-dump: $(grep "asked to stop\|cancelling criu" "$(cl_log "$from")" | tail -n 2)"
echo "full: $from's CRIU: $(grep -o "mc: cancelling criu dump\|mc: criu stopped its dump as asked.*" "$(cl_log "$from")" | tail -n 2 | tr '\n' ' ')"
th_wait 10 gone_from "$to" mc || fail "full: $to kept mc: $(inst_where mc)"
th_exec "$to" umount /var/lib/tern/instances
settled mc "the target's disk was full"

# 4a. criu is killed on the source while it dumps (it has seized the
# container: ptrace).  The tasks are let go; the target drops its copy.
from=${at[mc]}
seen=$(cl_log_count "$from" "ckpt: mc: checkpoint .* into")
# Read before the move starts: a migrating instance lists no pid.
init=$(inst_field "$from" mc pid)
[ -n "$init" ] || fail "srccriu: mc has no pid on $from: $(inst_where mc)"
ternd=$(cl_pid "$from") || fail "srccriu: no ternd on $from"
mig_start mc srccriu
wait_line "$from" "ckpt: mc: checkpoint .* into" "$seen"
# The line comes just before ternd spawns the dump, and another criu (a
# page server, a check) may run beside it: the one to kill is the criu
# child of ternd that traces mc's init.  Polled fast: the seize is short.
criu=
for ((i = 0; i < 4000; i++)); do
	t=$(tracer "$init") || t=
	if [ -n "$t" ] && [ "$t" != 0 ] &&
	    [ "$(awk '/^PPid:/ { print $2 }' "/proc/$t/status" 2>/dev/null)" = "$ternd" ] &&
	    is_criu "$t"; then
		criu=$t
		break
	fi
	sleep 0.002
done
[ -n "$criu" ] || fail "srccriu: no criu of $from's ternd ever seized mc" \
    "(pid $init, traced by '$(tracer "$init")'; $(inst_where mc))"
kill -9 "$criu"
mig_failed srccriu "criu was killed by signal 9"
# A criu killed while its parasite code runs inside the container takes
# the container with it (CRIU's own limit; the kill lands in that window
# in some runs).  Then it must run nowhere, say so, and start again.
th_wait 10 gone_from "$(other "$from")" mc || fail "srccriu: $(other "$from") kept mc"
if [ "$(inst_where mc)" = "$from:stopped" ]; then
	echo "NOTE: srccriu: the kill took the container with it:" \
	    "$(inst_field "$from" mc last_error)"
	[ "$(inst_copies mc)" = 0 ] || fail "srccriu: a stopped mc still runs"
	: >"$TH_ROOT/rootfs/var/log/mc.state"
	cl_ctl "$from" start mc >/dev/null
	inst_wait_ready "$TH_ROOT/rootfs/var/log/mc.state" ||
	    fail "srccriu: mc did not start again"
fi
settled mc "criu was killed on the source during the dump"

# 4b. criu is killed on the target while it restores: the target says so
# and removes what CRIU had started, the source resumes its container.
# The target's ternd, started again, stops its next restore's CRIU as it
# begins (fault point criu.restore), so the kill lands in the restore
# whatever the timing (killed after the log line, a 256 MiB restore was
# once done before the kill).
from=${at[mc]}
to=$(other "$from")
cl_stop "$to" || fail "dstcriu: $to's ternd did not stop cleanly"
TERN_FAULT="criu.restore:stall@1,$HOLD" cl_start "$to"
cl_wait_up "$to" 2 30
cl_wait_criu "$to" || fail "dstcriu: $to cannot run containers"
seen=$(cl_log_count "$to" "ckpt: mc: restoring checkpoint")
held=$(cl_log_count "$to" "mc: restoring -> held")
mig_start mc dstcriu
wait_line "$to" "ckpt: mc: restoring checkpoint" "$seen"
fault_fired "$to" criu.restore stall
# The CRIU the fault stopped: ternd's child in state T (it may still be
# the wrapper shell that execs CRIU with its own loader).
stopped_child() {
	local p
	for p in $(ternd_children "$1"); do
		[ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" = T ] &&
		    echo "$p"
	done
	return 0
}
th_wait 10 eval '[ -n "$(stopped_child "$to")" ]' ||
    fail "dstcriu: no stopped criu on $to"
criu=$(stopped_child "$to" | head -n 1)
kill -9 "$criu"
[ "$(cl_log_count "$to" "mc: restoring -> held")" = "$held" ] ||
    fail "dstcriu: the restore was done although its CRIU was stopped"
mig_failed dstcriu "$to refused: .*criu was killed by signal 9"
settled mc "criu was killed on the target during the restore"

# 4c. criu is killed on the source while the container's cgroup is frozen
# (CRIU freezes it only while it seizes the tasks: a container of 100
# processes keeps it frozen for some ms).  ternd must thaw it.
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" many /bin/sh -c \
    'i=0; while [ $i -lt 100 ]; do sleep 100000 & i=$((i + 1)); done; exec /bin/memcheck 16 /var/log/many.state'
launch many "${at[mc]}"
hit=
for ((try = 1; try <= 3; try++)); do
	from=${at[many]}
	fz="$(th__cg1 "$from")/tern/many/freezer.state"
	# CRIU freezes the cgroup a few ms after it starts: follow ternd's
	# log with builtins only (no fork) for its PID, then the freezer.
	exec {lfd}<"$(cl_log "$from")"
	while read -r -u "$lfd" line; do :; done
	mig_start many frozen
	criu= part=
	for ((i = 0; i < 2000000 && ${#criu} == 0; i++)); do
		if read -r -u "$lfd" line; then
			line=$part$line part=
			case $line in
			# (a dump whose pages go to a page server runs
			# criu's command line, not swrk)
			*"criu swrk started as pid "* | \
			*"criu dump started as pid "*) criu=${line##* } ;;
			esac
		else
			part+=$line
		fi
	done
	[ -n "$criu" ] || fail "frozen: $from never started criu"
	# Until the log says the dump is over: container_kill freezes the
	# cgroup too, when the source's copy stops at the commit point.
	s=THAWED dumped=
	for ((i = 0; i < 1000000 && ${#dumped} == 0; i++)); do
		read -r s <"$fz" || s=
		[ "$s" = THAWED ] || break
		while read -r -u "$lfd" line; do
			line=$part$line part=
			case $line in
			*"many: dumping -> "*) dumped=1 ;;
			esac
		done
		part+=$line
	done
	exec {lfd}<&-
	if [ -z "$dumped" ] && { [ "$s" = FROZEN ] || [ "$s" = FREEZING ]; }; then
		kill -9 "$criu"
		read -r s <"$fz" || s=
		mig_failed frozen "criu was killed by signal 9"
		if [ "$s" = FROZEN ]; then
			hit=1
			break
		fi
		verify many "criu killed just after it thawed many (try $try)"
	else
		# Missed it: let this migration finish, try again from there.
		wait "$ctl" || fail "frozen: migrate failed: $(cat "$TH_ROOT/frozen.out")"
		at[many]=$(other "$from")
		verify many "moved without a fault (try $try)"
	fi
done
[ -n "$hit" ] || echo "NOTE: criu was never killed while many was frozen"
settled many "criu was killed on the source with the container frozen"
cl_ctl "${at[many]}" destroy many >/dev/null

# 5. The link is lost right after the commit point.  To hold the source
# there, its criu is stopped (SIGSTOP) while it waits at post-dump: the
# target's RESTORED then commits the migration, but CRIU cannot act on
# the ack, so COMMIT is not sent yet; then the link is cut.
from=${at[mc]}
to=$(other "$from")
seen=$(cl_log_count "$from" "mc: dumping -> sending")
committed=$(cl_log_count "$from" "mc: commit point")
lost=$(cl_log_count "$from" "mc: lost the connection to $to: .* at the commit point")
dropped=$(cl_log_count "$to" "mc: .*discarding the incoming copy")
mig_start mc orphan
wait_line "$from" "mc: dumping -> sending" "$seen"
# Every one: the dump must be among them (another, a page server or a
# check, may end between the look and the SIGSTOP: look again).
stopped=0
for ((try = 0; try < 20 && stopped == 0; try++)); do
	criu=$(criu_of "$from") || fail "orphan: no criu at work on $from" \
	    "(ternd's children: $(ternd_children "$from" | tr '\n' ' '))"
	for p in $criu; do
		kill -STOP "$p" 2>/dev/null && stopped=$((stopped + 1))
	done
done
[ "$stopped" -gt 0 ] || fail "orphan: every criu found ($criu) had ended"
wait_line "$from" "mc: commit point" "$committed"
th_cut "$to"
wait_line "$to" "mc: .*discarding the incoming copy" "$dropped"
wait_line "$from" "mc: lost the connection to $to: .* at the commit point" "$lost"
for p in $criu; do kill -CONT "$p" 2>/dev/null || :; done
mig_failed orphan "the link dropped at the commit point before $to confirmed it runs: check ternctl list on $to; if it does not run there, ternctl restore mc here"
# Nothing runs now.  The source never sent COMMIT, so the target cannot
# have resumed it, but ternd does not act on that: it keeps its verified
# checkpoint and asks the operator.  Do as the message says.
[ "$(inst_where mc)" = "$from:checkpointed" ] || fail "orphan: mc is at: $(inst_where mc)"
[ "$(inst_copies mc)" = 0 ] || fail "orphan: $(inst_copies mc) copies of mc run"
th_heal "$to"
cl_wait_up "$from" 2 30
cl_wait_up "$to" 2 30
th_wait 10 gone_from "$to" mc || fail "orphan: $to kept mc: $(inst_where mc)"
cl_ctl "$from" restore mc
settled mc "the link was lost at the commit point"

# 6. A stop or a destroy while mc moves, on either end: refused, saying
# what to do instead (the target holds its restored copy 3 s), and the
# move goes on.  Before, both ends said only "instance mc is migrating"
# or "... incoming".
from=${at[mc]}
to=$(other "$from")
held=$(cl_log_count "$to" "fault point mig.target.held fired")
mig_start mc busy
wait_line "$to" "fault point mig.target.held fired" "$held"
out=$(cl_ctl "$from" stop mc 2>&1) && fail "busy: $from stopped mc as it moved: $out"
echo "busy: stop on $from: $out"
grep -q "instance mc is migrating to $to (.*): not stopped; act once the move ends, or roll it back first (ternctl migrate --cancel mc)" \
    <<<"$out" || fail "busy: stop on $from: $out"
out=$(cl_ctl "$to" destroy mc 2>&1) && fail "busy: $to destroyed mc as it arrived: $out"
echo "busy: destroy on $to: $out"
grep -q "instance mc is arriving from $from (.*): not destroyed; act once the move ends, where it runs then (ternctl migrate --cancel mc on $from rolls the move back while it can)" \
    <<<"$out" || fail "busy: destroy on $to: $out"
wait "$ctl" || fail "busy: the move failed: $(cat "$TH_ROOT/busy.out")"
at[mc]=$to
[ "$(inst_where mc)" = "$to:running" ] || fail "busy: mc is at: $(inst_where mc)"
verify mc "moved on past a refused stop and destroy"

cl_ctl "${at[mc]}" destroy mc >/dev/null
for h in h1 h2; do fault_fired $h mig.target.held "delay=3000"; done
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-faults: ok"
