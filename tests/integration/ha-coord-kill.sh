#!/usr/bin/env bash
# The coordinator SIGKILLed under load (docs/ha.md, issue 13): h3
# coordinates (journal store; ha-coord-kill-etcd.sh runs this with
# HA_KILL_STORE=etcd on three etcd members), h1 and h2 run protected
# witness containers (--ha restart) that are created, destroyed, stopped
# and started again, while hosts crash and come back.  h3's ternd is
# killed at random moments (seeded: HA_KILL_SEED repeats a run) and at
# named fault points, where a crash matters most:
#   coord.add.committed     an add is in the store, no grant lists it yet
#   coord.move.committed    a failover (or a release) is in the store, the
#                           survivor has been neither nudged nor granted
#   coord.failover.moving   a host with several instances failed: one
#                           move asked of the store, the others not
#   store.synced            (journal) a batch fdatasync'd, not answered
# and its first load of the store fails (coord.load:fail): it must try
# again, not stay down.
# After each kill h3 starts again and replays.  Then, from the witnesses
# and the hosts' cgroups, never from the coordinator:
#   - no acknowledged create is lost (it runs, once, and stays protected:
#     a later crash of its host moves it), no acknowledged destroy is
#     undone (it runs nowhere, its name is not taken again);
#   - nothing runs twice: one witness process at most, and no two copies'
#     records overlap in time (witness_check);
#   - nothing is lost: what should run runs once within a bounded wait;
#   - an instance's epoch, as its host learnt it, only grows.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
STORE=${HA_KILL_STORE:-journal}
th_check || exit 77
rootfs_check || exit 77
[ "$STORE" = journal ] || etcd_check || exit 77
trap th_teardown EXIT

SEED=${HA_KILL_SEED:-$(( ($(date +%s%N) / 1000) % 32768 ))}
ROUNDS=${HA_KILL_ROUNDS:-4}
echo "store $STORE, seed $SEED (HA_KILL_SEED=$SEED repeats the random rounds)"
RANDOM=$SEED

th_setup 3
HA_COORD_CONF=()
if [ "$STORE" = etcd ]; then
	etcd_up h1 h2 h3 || fail "etcd did not come up"
	HA_COORD_CONF=("store = \"etcd\"" "etcd_endpoints = \"$(etcd_endpoints)\"")
fi
ha_setup
for h in h1 h2 h3; do cl_start $h; done
ha_wait || fail "no HA cluster"
rootfs_make "$TH_ROOT/rootfs"
# One witness for all (installed once); it ends on SIGTERM, so a stop does
# not wait out the grace period.
witness_install "$TH_ROOT/rootfs"

# --- the oracle: what the operator was told ---------------------------------
declare -A WANT=()	# NAME -> run | gone (acknowledged) | maybe (not)
declare -A EPOCH=()	# NAME -> the highest epoch a host reported
NEXT=0
KILLS=0

# HOST NAME STATE EPOCH for every instance h1 and h2 list (their word).
table() {
	local h out
	for h in h1 h2; do
		out=$(cl_ctl $h list --json 2>/dev/null) || continue	# crashed
		python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    print(sys.argv[1], i["name"], i.get("state", "") or "-", i.get("epoch", 0) or 0)' $h <<<"$out"
	done
}
# Witness processes of NAME on every host, whatever the ternds say.
copies() { witness_copies "$1" h1 h2 h3; }
leading() { cl_ctl h3 status 2>/dev/null | grep -q "coordinator:.*leading"; }
log3() { cl_log h3; }
fired() { grep -c "fault point $1 fired: kill" "$(log3)" || true; }

etcd_member_up() {
	[ "$STORE" = etcd ] || return 0
	etcd_restart "$1"
}

# --- the coordinator's deaths ------------------------------------------------
coord_kill() {
	local pid
	pid=$(cl_pid h3) || fail "h3's ternd is not running"
	rm -f "$(cl__pidfile h3)"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || :
	echo "  h3's ternd (pid $pid) SIGKILLed: $1"
}
# coord_start [FAULT]: h3's ternd again (replaying its store), leading.
coord_start() {
	TERN_FAULT=${1:-} cl_start h3 || fail "h3's ternd did not start again"
	wait_for 30 "h3 leading again" leading
}
h3_dead() { ! cl_pid h3 >/dev/null; }
# coord_died POINT N: h3's ternd killed itself at POINT (its N-th firing in
# the log); start it again.
coord_died() {
	wait_for 30 "h3 dying at $1" h3_dead
	wait "$(cat "$(cl__pidfile h3)")" 2>/dev/null || :	# reaped quietly
	[ "$(fired "$1")" -ge "$2" ] || fail "h3 died, but not at $1: $(tail -n 5 "$(log3)")"
	rm -f "$(cl__pidfile h3)"
	echo "  h3's ternd died at fault point $1"
	KILLS=$((KILLS + 1))
	coord_start
}

# --- operations, each as an operator runs them -------------------------------
live() {
	local n
	for n in "${!WANT[@]}"; do [ "${WANT[$n]}" = run ] && echo "$n"; done | sort
}
host_of() { table | awk -v n="$1" '$2 == n && $3 != "-" { print $1; exit }'; }
up_agents() {
	local h
	for h in h1 h2; do [ -e "$TH_ROOT/.th/$h.holder" ] && echo $h; done
}

# start_it HOST NAME: started, retried while the host has no lease
# (a coordinator down for more than ttl - margin fences and refuses).
start_it() {
	local i out
	for ((i = 0; i < 100; i++)); do
		out=$(cl_ctl "$1" start "$2" 2>&1) && return 0
		grep -q "already running\|is running" <<<"$out" && return 0
		sleep 0.2
	done
	fail "$2 does not start on $1: $out"
}

# op_create HOST: a new protected witness on HOST.  Acknowledged (exit 0):
# the coordinator recorded it.  Not acknowledged within its wait (the
# coordinator was down): the agent registers it at its next renewals;
# it must then be recorded too.
op_create() {
	local h=$1 name out
	NEXT=$((NEXT + 1))
	name=w$NEXT
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" $name /bin/witness \
	    "/var/log/witness-$name" >/dev/null
	if out=$(cl_ctl $h create $name --spec "$TH_ROOT/$name.json" \
	    --ha restart 2>&1); then
		echo "  create $name on $h: acknowledged"
	else
		grep -q "has not confirmed it yet" <<<"$out" ||
		    fail "create $name on $h: $out"
		echo "  create $name on $h: not confirmed yet (h3 down)"
		confirmed() { [ "$(inst_field $h $name epoch)" -ge 1 ] 2>/dev/null; }
		wait_for 30 "$name recorded once h3 was back" confirmed
	fi
	start_it $h $name
	WANT[$name]=run
	EPOCH[$name]=1
}

op_destroy() {
	local name=$1 h out
	h=$(host_of $name)
	[ -n "$h" ] || fail "$name is on no host to destroy"
	if out=$(cl_ctl $h destroy $name 2>&1); then
		WANT[$name]=gone
		echo "  destroy $name on $h: acknowledged"
	else
		# h3 did not come back within the destroy's wait.
		grep -q "has not confirmed" <<<"$out" ||
		    fail "destroy $name on $h: $out"
		WANT[$name]=maybe
		echo "  destroy $name on $h: not confirmed"
	fi
}

# op_bounce NAME: stopped and started again by the operator.
op_bounce() {
	local name=$1 h out
	h=$(host_of $name)
	[ -n "$h" ] || fail "$name is on no host to stop"
	# Fenced meanwhile (h3 down longer than ttl - margin): not running.
	out=$(cl_ctl $h stop $name 2>&1) ||
	    grep -q "^.*instance $name is [a-z]*$" <<<"$out" ||
	    fail "stop $name on $h: $out"
	start_it $h $name
	echo "  stop + start $name on $h"
}

# The agent running the most instances (a crash moves them all).
busiest() {
	table | awk '{ n[$1]++ } END { b = "h1"; if (n["h2"] > n["h1"]) b = "h2"; print b }'
}
# destroyed PID HOST NAME: the outcome of a destroy run in the background
# (ternctl's output in $TH_ROOT/destroy.out).
destroyed() {
	if wait $1; then
		WANT[$3]=gone
		echo "  destroy $3 on $2: acknowledged"
	else
		grep -q "has not confirmed" "$TH_ROOT/destroy.out" ||
		    fail "destroy $3 on $2: $(cat "$TH_ROOT/destroy.out")"
		WANT[$3]=maybe
		echo "  destroy $3 on $2: not confirmed"
	fi
}
CRASHED=
op_crash() {
	CRASHED=$1
	th_crash $1
	echo "  $1 crashed"
}
revive() {
	[ -n "$CRASHED" ] || return 0
	th_revive $CRASHED
	etcd_member_up $CRASHED || fail "etcd on $CRASHED did not come back"
	cl_start $CRASHED
	wait_for 30 "a lease for $CRASHED" ha_has_lease $CRASHED
	echo "  $CRASHED revived"
	CRASHED=
}

# --- the checks ----------------------------------------------------------------
settled() {
	local n t c h s e
	t=$(table)
	for n in "${!WANT[@]}"; do
		c=$(copies $n)
		[ "$c" -le 1 ] || { sleep 0.5; c=$(copies $n); }
		[ "$c" -le 1 ] || fail "$n runs $c times: $(grep " $n " <<<"$t" | tr '\n' ';')"
		case ${WANT[$n]} in
		run)
			[ "$c" = 1 ] || return 1
			read -r h _ s e <<<"$(awk -v n=$n '$2 == n && $3 == "running"' <<<"$t")"
			[ -n "${h:-}" ] || return 1
			[ "$(awk -v n=$n '$2 == n' <<<"$t" | wc -l)" = 1 ] || return 1
			[ "$e" -ge "${EPOCH[$n]}" ] ||
			    fail "$n's epoch went back: $e on $h after ${EPOCH[$n]}"
			EPOCH[$n]=$e ;;
		maybe)	;;	# a destroy not confirmed: it may be anywhere, once
		gone)
			[ "$c" = 0 ] || fail "$n runs again after its destroy was acknowledged: $(grep " $n " <<<"$t" | tr '\n' ';')"
			grep -q " $n " <<<"$t" && return 1 ;;
		esac
	done
	return 0
}
check_all() {
	local n out
	wait_for 40 "every acknowledged instance running once, every destroyed one nowhere ($1)" settled
	sleep 1		# a few grants: none may undo what settled
	settled || fail "it did not stay settled after $1: $(table | tr '\n' ';')"
	for n in "${!WANT[@]}"; do
		out=$(witness_check "$(witness_file "$TH_ROOT/rootfs" $n)" 2>&1) ||
		    fail "two copies of $n ran at once ($1): $out"
	done
	grep -q "does not know it at that epoch" "$(cl_log h1)" "$(cl_log h2)" &&
	    fail "the coordinator forgot an instance it had recorded ($1)"
	echo "  ok: $(live | while read -r n; do echo -n "$n@$(host_of $n):${EPOCH[$n]} "; done)"
}

# --- rounds ------------------------------------------------------------------
step() { echo "--- [${SECONDS}s] $*"; }
step "load: three protected witnesses"
op_create h1
op_create h2
op_create h1
check_all "start"

step "named: h3's first load of its store fails (etcd electing its leader)"
# Before, the coordinator gave up for good ("fix the store and restart
# ternd"): seen when h3 started while etcd's members elected a leader.
coord_kill "to arm coord.load"; KILLS=$((KILLS + 1))
coord_start "coord.load:fail@1"
fault_fired h3 coord.load fail
ha_has_lease h1 || wait_for 20 "a lease for h1 from the new h3" ha_has_lease h1

step "named: h3 dies once an add is in the store, before any grant"
coord_kill "to arm coord.add.committed"; KILLS=$((KILLS + 1))
coord_start "coord.add.committed:kill@1"
op_create h2 &
creating=$!
coord_died coord.add.committed 1
wait $creating || fail "the create did not end well"
# The background shell's bookkeeping is lost: take the new one in.
WANT[w$((NEXT + 1))]=run; EPOCH[w$((NEXT + 1))]=1; NEXT=$((NEXT + 1))
check_all "coord.add.committed"

step "named: h1 crashes; h3 dies once the first move is asked of the store"
# Everything on h1 first: several instances to move at once.
for n in $(live); do
	[ "$(host_of $n)" = h1 ] || { op_destroy $n; break; }
done
op_create h1
coord_kill "to arm coord.failover.moving"; KILLS=$((KILLS + 1))
coord_start "coord.failover.moving:kill@1"
op_crash h1
coord_died coord.failover.moving 1
check_all "coord.failover.moving"
revive

step "named: h2 crashes; h3 dies once a move is in the store, before the nudge"
coord_kill "to arm coord.move.committed"; KILLS=$((KILLS + 1))
coord_start "coord.move.committed:kill@1"
op_crash h2
coord_died coord.move.committed 1
check_all "coord.move.committed"
revive

if [ "$STORE" = journal ]; then
	step "named: h3 dies with a batch durable but not answered (a destroy, a create)"
	coord_kill "to arm store.synced"; KILLS=$((KILLS + 1))
	coord_start "store.synced:kill@1"
	# Both wait for h3's record: either may be in the batch it dies on.
	n=$(live | head -n 1)
	h=$(host_of "$n")
	cl_ctl $h destroy $n >"$TH_ROOT/destroy.out" 2>&1 &
	destroying=$!
	op_create h2 &
	creating=$!
	coord_died store.synced 1
	destroyed $destroying $h $n
	wait $creating || fail "the create did not end well"
	WANT[w$((NEXT + 1))]=run; EPOCH[w$((NEXT + 1))]=1; NEXT=$((NEXT + 1))
	check_all "store.synced"
fi

step "named: a destroy acknowledged while h3 is down, then its host crashes"
# The agent tells the coordinator of a destroy at its next renewal.  A
# destroy acknowledged before that, and its host's crash: the coordinator
# fails the instance over, and what the operator destroyed runs again.
# Unless the answer waits for the coordinator's record, and says so if
# it did not come.
h=$(busiest)
n=$(table | awk -v h=$h '$1 == h { print $2; exit }')
coord_kill "before a destroy of $n"; KILLS=$((KILLS + 1))
if out=$(cl_ctl $h destroy $n 2>&1); then
	WANT[$n]=gone
	echo "  destroy $n on $h: acknowledged with h3 down"
else
	grep -q "has not confirmed" <<<"$out" || fail "destroy $n on $h: $out"
	echo "  destroy $n on $h: not confirmed (h3 down): still protected"
fi
op_crash $h
coord_start
check_all "a destroy, then its host's crash"
revive

if [ "$STORE" = journal ]; then
	step "named: h3 killed while a release waits for its disk"
	# The grant that answers a release must list the instance until the
	# store has the release: the agent takes a grant without it as the
	# release recorded, answers the destroy and forgets it.  With the
	# release lost by h3's death, the next grant had it started again.
	coord_kill "to arm store.sync:delay"; KILLS=$((KILLS + 1))
	coord_start "store.sync:delay=4000"
	h=$(busiest)
	n=$(table | awk -v h=$h '$1 == h { print $2; exit }')
	mark=$(wc -l <"$(log3)")
	markh=$(wc -l <"$(cl_log $h)")
	cl_ctl $h destroy $n >"$TH_ROOT/destroy.out" 2>&1 &
	destroying=$!
	delayed() { grep -q "fault point store.sync fired: delay" <(sed -n "$mark,\$p" "$(log3)"); }
	if ! th_wait 20 delayed; then
		# Seen once (CI, ASan); say what the destroy and both sides did.
		kill -0 $destroying 2>/dev/null &&
		    echo "  the destroy still waits" ||
		    echo "  the destroy ended: $(cat "$TH_ROOT/destroy.out")"
		echo "  $h's log since:"
		sed -n "$markh,\$p" "$(cl_log $h)" | grep -v " debug " | tail -n 25
		echo "  h3's log since:"
		sed -n "$mark,\$p" "$(log3)" | grep -v " debug " | tail -n 25
		fail "the release of $n waiting for h3's disk: not within 20 s"
	fi
	sleep 1		# the grant that answered it has gone out
	coord_kill "with the release of $n not on its disk"; KILLS=$((KILLS + 1))
	coord_start
	destroyed $destroying $h $n
	check_all "store.sync:delay"
fi

step "a destroy acknowledged, and its host crashes at once"
h=$(busiest)
n=$(table | awk -v h=$h '$1 == h { print $2; exit }')
mark=$(wc -l <"$(log3)")
op_destroy $n
op_crash $h
failed() { grep -q "host $h is failed" <(sed -n "$mark,\$p" "$(log3)"); }
wait_for 30 "h3 declaring $h failed" failed
sleep 1		# its failovers
check_all "a destroy, then at once its host's crash"
revive

# Random rounds: a few operations while h3 is SIGKILLed after a random
# delay and started again after another.
for ((r = 1; r <= ROUNDS; r++)); do
	# Up to 4 s: past a crash's failover decision (ttl + margin).
	d1=$((RANDOM % 4000)) d2=$((RANDOM % 1500))
	step "random round $r: kill after $d1 ms, start again $d2 ms later"
	(
		sleep "$(printf '%d.%03d' $((d1 / 1000)) $((d1 % 1000)))"
		coord_kill "random round $r"
		sleep "$(printf '%d.%03d' $((d2 / 1000)) $((d2 % 1000)))"
		TERN_FAULT= cl_start h3
	) &
	killer=$!
	mapfile -t names < <(live)
	for ((k = RANDOM % 3 + 1; k > 0; k--)); do
		case $((RANDOM % 5)) in
		0 | 1) [ ${#names[@]} -ge 6 ] || op_create "h$((RANDOM % 2 + 1))" ;;
		2) [ ${#names[@]} -le 3 ] || { op_destroy "${names[0]}"; names=("${names[@]:1}"); } ;;
		3) [ ${#names[@]} = 0 ] || op_bounce "${names[RANDOM % ${#names[@]}]}" ;;
		4) op_crash "$(busiest)"; break ;;	# the last one
		esac
	done
	wait $killer || fail "h3's ternd could not be killed and started again"
	KILLS=$((KILLS + 1))
	wait_for 30 "h3 leading again" leading
	check_all "random round $r"
	[ -z "$CRASHED" ] || { revive; check_all "random round $r, revived"; }
done

step "a destroyed name stays released"
for n in "${!WANT[@]}"; do
	[ "${WANT[$n]}" = gone ] || continue
	out=$(cl_ctl h1 create $n --spec "$TH_ROOT/$n.json" --ha restart 2>&1) &&
	    fail "destroyed $n came back under a create: $out"
	grep -q "running nowhere" <<<"$out" || fail "refusal of $n: $out"
done
check_all "end"
# h3's ternd is a child of a killer's subshell: one of this shell's, for
# cl_stop to collect its exit status.
coord_kill "a last time"; KILLS=$((KILLS + 1))
coord_start
check_all "the last restart"
echo "$KILLS kills of the coordinator, $NEXT instances created," \
    "$(live | wc -l) running"
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "ha-coord-kill ($STORE): ok"
