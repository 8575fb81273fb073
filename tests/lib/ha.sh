# shellcheck shell=bash
# ha.sh: a cluster of three test hosts for high availability, as the HA
# tests and bench/failover.sh use it: h3 the coordinator, h1 and h2
# agents holding leases from it.  Source it after testhost.sh, cluster.sh
# and assert.sh.
#
#	ha_setup [CONF...]	after th_setup 3: the PKI and each ternd.conf:
#				lease_ttl_ms HA_TTL_MS (2000), lease_margin_ms
#				HA_MARGIN_MS (500); CONF lines go to every host
#				(log filters, ...), HA_COORD_CONF's to h3 only
#				(its store)
#	ha_wait			once the ternds run (cl_start: each test starts
#				them its own way): all up, h1 and h2 able to run
#				containers and holding a lease; fails saying why
#	ha_has_lease HOST	HOST holds a valid lease from h3 (its status)
#
# and the partition trials (below).

HA_TTL_MS=${HA_TTL_MS:-2000}
HA_MARGIN_MS=${HA_MARGIN_MS:-500}

ha_setup() {
	local lease=("lease_ttl_ms = $HA_TTL_MS"
	    "lease_margin_ms = $HA_MARGIN_MS")
	cl_pki >/dev/null || return 1
	cl_conf h1 "coordinator = \"h3\"" "${lease[@]}" "$@" >/dev/null &&
	    cl_conf h2 "coordinator = \"h3\"" "${lease[@]}" "$@" >/dev/null &&
	    cl_conf h3 "role = \"coordinator\"" "${lease[@]}" "$@" \
	    ${HA_COORD_CONF[@]+"${HA_COORD_CONF[@]}"} >/dev/null
}

ha_has_lease() { cl_ctl "$1" status | grep -q "lease from h3, valid"; }

ha_wait() {
	local h
	cl_wait_up h1 3 30 || return 1
	for h in h1 h2; do
		cl_wait_criu $h || {
			echo "ha: $h cannot run containers" >&2
			return 1
		}
	done
	for h in h1 h2; do
		th_wait 30 ha_has_lease $h || {
			echo "ha: $h holds no lease from h3:" \
			    "$(cl_ctl $h status | grep -i lease)" >&2
			return 1
		}
	done
	cl_ctl h3 status | grep -q "coordinator:.*leading" || {
		echo "ha: h3 does not lead: $(cl_ctl h3 status)" >&2
		return 1
	}
}

# --- partitions: ha-partition*.sh and bench/partition.sh ---------------------
#
# One trial puts one fault on the cluster (HA_NAME, a "--ha restart"
# witness container, runs on one of h1 and h2: the owner; the other is
# its peer), lets tern react, undoes the fault and waits until the
# cluster is whole again: both agents hold a lease, exactly one copy
# runs and writes.  Then the witness's records from just before the
# fault on are checked: the container's own word, never ternd's.
#
#	ha_fence_script		write $TH_ROOT/fence (a power fence for
#				fence_command: kills every process of the
#				host it is given), print its path
#	ha_trial KIND		run one trial (kinds below); returns 0 when
#				the cluster did what the rules say and is
#				whole again, 1 with HA_WHY otherwise.  Sets
#				HA_OVERLAP (0/1: two copies' records met in
#				time), HA_OVERLAP_N and HA_OVERLAP_S (how many
#				records the old copy wrote once both ran, from
#				the new one's first or a paused host's resume
#				on, and the last one's time after that),
#				HA_HANDOVERS (how often it stopped and
#				started), HA_GAP (s it ran nowhere, summed
#				over them; "-" if it never stopped),
#				HA_ROLLED (increments lost, summed),
#				HA_FROM, HA_TO, HA_FENCED (hosts the fence
#				command powered off)
#	ha_owner		the agent the instance runs on (its latest
#				record)
#	ha_trial_setup		once ha_wait passed: the witness container
#				HA_NAME (--ha restart) on a fresh rootfs,
#				started on h1 and writing; sets HA_WITNESS;
#				1 saying why if not
#
# Kinds: cut (the owner's link), coord-cut (the coordinator's link),
# asym-peer (owner and peer cannot reach each other, both reach h3),
# asym-coord (the owner and h3 cannot reach each other, both reach the
# peer), oneway-coord (the owner's packets to h3 are dropped, h3's to it
# arrive), oneway-from-coord (h3's packets to the owner dropped: the
# owner's renewals arrive, the grants do not; the owner's mesh link to h3
# times out and is closed, so h3 stops hearing it too), pause (every process of the owner stopped past ttl + margin,
# then resumed); with HA_ETCD=1 (etcd_up h1 h2 h3 done): coord-crash (the
# coordinator's host crashed, its etcd member with it, then booted
# again) and etcd-leader (etcd's raft leader SIGKILLed, then restarted).
#
# ha_trial_setup sets HA_WITNESS (the witness file); HA_NAME is mc.

HA_NAME=${HA_NAME:-mc}
HA_ETCD=${HA_ETCD:-0}
HA_KINDS="cut coord-cut asym-peer asym-coord oneway-coord oneway-from-coord pause"
HA_ETCD_KINDS="coord-crash etcd-leader"

ha_fence_script() {
	local f=$TH_ROOT/fence
	cat >"$f" <<FENCE
#!/bin/bash
# fence HOST: power test host HOST off, as an IPMI or hypervisor fence
# would: every process of it killed at once (tests/lib/ha.sh).  It runs
# on the coordinator's host, whose own link reaches the power switch:
# with that link down it reaches nothing and fails, as a fence device on
# the same network would.
host=\$1
case \$host in
h[0-9]*) ;;
*) echo "fence: no test host '\$host'" >&2; exit 2 ;;
esac
if [ "\$(cat /sys/class/net/t$TH_NET-eth0/carrier 2>/dev/null)" != 1 ]; then
	echo "fence: cannot reach the power switch of \$host (no link)" >&2
	exit 1
fi
. "$TERN_SRCDIR/tests/lib/testhost.sh"
TH_NET=$TH_NET
th__cg_kill "\$(th__cg1 "\$host")" "\$(th__cg2 "\$host")" || exit 1
echo "\$host" >"$TH_ROOT/.th/\$host.fenced"
echo "fence: \$host is off"
FENCE
	chmod 755 "$f" && echo "$f"
}

ha_owner() { witness_host "$HA_WITNESS"; }
# ha_trial_setup: HA_NAME created and started on h1, protected (restart),
# running the witness (or HA_WITNESS_PROGRAM, a wrapper in the rootfs
# that runs it; the test makes the rootfs first to put it there).
ha_trial_setup() {
	{ [ -x "$TH_ROOT/rootfs/bin/busybox" ] ||
	    rootfs_make "$TH_ROOT/rootfs" 2>/dev/null; } &&
	    witness_spec "$TH_ROOT/rootfs" "$HA_NAME" \
	    ${HA_WITNESS_PROGRAM:+"$HA_WITNESS_PROGRAM"} || return 1
	HA_WITNESS=$(witness_file "$TH_ROOT/rootfs" "$HA_NAME")
	cl_ctl h1 create "$HA_NAME" --spec "$TH_ROOT/$HA_NAME.json" \
	    --ha restart >/dev/null &&
	    cl_ctl h1 start "$HA_NAME" >/dev/null || return 1
	th_wait 20 eval '[ "$(ha_owner)" = h1 ]' || {
		echo "ha: $HA_NAME never wrote from h1" >&2
		return 1
	}
}
ha__other() { if [ "$1" = h1 ]; then echo h2; else echo h1; fi; }
ha__copies() { witness_copies "$HA_NAME" "$@"; }
ha__state() { inst_field "$1" "$HA_NAME" state 2>/dev/null; }
ha__gone() { [ -z "$(ha__state "$1")" ]; }
ha__fenced() { [ -e "$TH_ROOT/.th/$1.fenced" ]; }
ha__ms_sleep() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
# ha__wrote_since HOST TIME: a copy that started after TIME writes
# from HOST (from any host if HOST is "").
ha__wrote_since() {
	local l h
	# Whatever an earlier trial's overlap makes it answer: only "since".
	l=$(witness_check "$HA_WITNESS" --since "$2" 2>/dev/null || :)
	l=$(grep '^since ' <<<"$l") || return 1
	read -r _ _ _ h _ <<<"$l"
	[ -z "$1" ] || [ "$h" = "$1" ]
}
# ha__recent: the latest record is less than 1 s old (it is writing).
ha__recent() {
	local l
	l=$(witness_last "$HA_WITNESS")
	awk -v t="${l##* }" -v now="$(witness_now)" 'BEGIN { exit !(now - t < 1) }'
}
ha__etcd_member() {
	[ "$HA_ETCD" = 1 ] || return 0
	etcd_restart "$1"
}
# ha__etcd_leader: the host whose etcd member is the raft leader.
ha__etcd_leader() {
	local h
	for h in "${ETCD_HOSTS[@]}"; do
		if th_exec "$h" python3 -c '
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v3/maintenance/status",
    data=b"{}", headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=2) as r:
    s = json.load(r)
sys.exit(0 if s["header"]["member_id"] == s["leader"] else 1)' \
		    "http://$(th_addr "$h"):2379" 2>/dev/null; then
			echo "$h"
			return 0
		fi
	done
	return 1
}

# ha__back HOST: a host that crashed or was fenced boots again: its etcd
# member and its ternd start (a link th_cut stays cut).  A fence that
# fires again meanwhile (a new coordinator leader fences the host it
# still finds failed) powers it off again: booted once more.
ha__back() {
	local h=$1 try
	for try in 1 2 3; do
		if ! th_holder "$h" >/dev/null 2>&1; then
			th_crash "$h" 2>/dev/null || :	# the cgroups the fence left
			th_revive "$h" || { HA_WHY="th_revive $h failed"; return 1; }
		fi
		rm -f "$TH_ROOT/.th/$h.fenced"
		ha__etcd_member "$h" || { HA_WHY="etcd on $h did not come back"; continue; }
		cl_start "$h" >/dev/null && return 0
		HA_WHY="ternd on $h did not start"
		th_holder "$h" >/dev/null 2>&1 && ! ha__fenced "$h" && return 1
		# Said, not hidden: a fence that fires at a host that came
		# back is worth a look (bench/partition.sh prints it).
		echo "ha: $h was powered off again while it came back (a fence fired again)" >&2
	done
	return 1
}

# ha__whole: every host up, both agents holding a lease, one copy
# running and writing.  Sets HA_WHY when not, within 60 s.
ha__whole_now() {
	ha_has_lease h1 && ha_has_lease h2 &&
	    [ "$(ha__copies h1 h2 h3)" = 1 ] && ha__recent
}
# A host down or fenced (again: a coordinator newly elected after the
# trial does not know it was fenced, and fences it once more when it does
# not renew while it boots).
ha__down() {
	local h
	for h in h1 h2 h3; do
		if ! th_holder "$h" >/dev/null 2>&1 || ha__fenced "$h"; then
			echo "$h"
			return 0
		fi
	done
	return 1
}
ha__whole_or_down() { ha__whole_now || ha__down >/dev/null; }
ha__whole() {
	local h try n
	for try in 1 2 3; do
		for n in 1 2 3; do
			h=$(ha__down) || break
			[ "$try" = 1 ] || echo "ha: $h was powered off again while the cluster came back (a fence fired again)" >&2
			ha__back "$h" || return 1
		done
		th_wait 60 ha__whole_or_down || break
		ha__down >/dev/null || return 0
	done
	HA_WHY="not whole again within 60 s:"
	for h in h1 h2; do
		HA_WHY+=" $h $(cl_ctl $h status 2>&1 | grep -o 'lease from.*\|no lease.*'),"
	done
	HA_WHY+=" $(ha__copies h1 h2 h3) copies, last record: $(witness_last "$HA_WITNESS")"
	return 1
}

# ha__measure FROM_TIME [RESUMED]: check the witness's records from
# FROM_TIME on (an overlap of an earlier trial does not count again).
# An overlap is measured from RESUMED (a paused host's resume) or else
# from the newest copy's first record.
ha__measure() {
	local slice=$TH_ROOT/trial.witness out l
	awk -v from="$1" '$4 + 0 >= from' "$HA_WITNESS" >"$slice"
	HA_OVERLAP=0 HA_OVERLAP_S=0 HA_OVERLAP_N=0 HA_GAP=- HA_ROLLED=-
	if ! out=$(witness_check "$slice"); then
		HA_OVERLAP=1
		# The records an older copy wrote once both ran.
		read -r HA_OVERLAP_N HA_OVERLAP_S < <(awk -v resumed="${2:-}" '
		    { key = $1 " " $2 }
		    !(key in first) { first[key] = $4; order[++n] = key }
		    { t[NR] = $4; k[NR] = key }
		    END {
			newest = order[n]; t0 = first[newest]
			if (resumed != "" && resumed + 0 > t0) t0 = resumed + 0
			for (i = 1; i <= NR; i++)
				if (k[i] != newest && t[i] >= t0) { c++; e = t[i] }
			printf "%d %.2f\n", c, c ? e - t0 : 0
		    }' "$slice")
		grep OVERLAP <<<"$out" >&2 || :
	fi
	# A trial may stop and start it more than once: the time it ran
	# nowhere and the state lost, over every handover.
	l=$(grep '^handover' <<<"$out") || l=
	HA_HANDOVERS=0
	if [ -n "$l" ]; then
		read -r HA_HANDOVERS HA_GAP HA_ROLLED < <(sed -n \
		    's/.*: gap \([0-9.-]*\) s.*rolled back \(-\{0,1\}[0-9]*\).*/\1 \2/p' <<<"$l" |
		    awk '{ n++; g += $1; r += $2 } END { printf "%d %.2f %d\n", n, g, r }')
	fi
}

# ha__moved PEER TIME: a copy started after TIME writes from PEER,
# and none runs on the old owner any more.
ha__moved() {
	ha__wrote_since "$1" "$2" && [ "$(ha__copies "$HA_FROM")" = 0 ]
}
ha__none() { [ "$(ha__copies h1 h2)" = 0 ]; }
ha__none_on_from() { [ "$(ha__copies "$HA_FROM")" = 0 ]; }

ha_trial() {
	local kind=$1 up o p ttlm h l resumed=
	HA_WHY= HA_FENCED= HA_OVERLAP=0 HA_OVERLAP_S=0 HA_OVERLAP_N=0
	HA_GAP=- HA_ROLLED=- HA_HANDOVERS=0
	ttlm=$((HA_TTL_MS + HA_MARGIN_MS))
	o=$(ha_owner) p=$(ha__other "$o")
	case $o in h1 | h2) ;; *) HA_WHY="$HA_NAME runs on '$o', not an agent"; return 1 ;; esac
	HA_FROM=$o HA_TO=$o
	rm -f "$TH_ROOT"/.th/*.fenced
	up=$(witness_now)
	case $kind in
	cut | asym-coord | oneway-coord | oneway-from-coord)
		case $kind in
		cut) th_cut "$o" ;;
		asym-coord) th_partition "$o" h3 ;;
		oneway-coord) th_block "$o" h3 ;;
		oneway-from-coord) th_block h3 "$o" ;;
		esac || { HA_WHY="cannot $kind $o"; return 1; }
		th_wait 60 ha__moved "$p" "$up" ||
		    HA_WHY="$HA_NAME did not move from $o to $p within 60 s"
		case $kind in
		cut) th_heal "$o" ;;
		asym-coord) th_unpartition "$o" h3 ;;
		oneway-coord) th_unblock "$o" h3 ;;
		oneway-from-coord) th_unblock h3 "$o" ;;
		esac
		[ -z "$HA_WHY" ] || return 1
		HA_TO=$p ;;
	coord-cut | coord-crash)
		if [ "$kind" = coord-cut ]; then th_cut h3; else th_crash h3; fi ||
		    { HA_WHY="cannot $kind h3"; return 1; }
		# The owner stops it as its lease ends; nobody may start it.
		th_wait 30 ha__none ||
		    HA_WHY="$HA_NAME still runs on $o 30 s after h3 went"
		# Long enough for h3 to call both agents failed.
		ha__ms_sleep $((2 * ttlm))
		[ -n "$HA_WHY" ] || ha__none || HA_WHY="$HA_NAME runs again while h3 is away"
		if [ "$kind" = coord-cut ]; then th_heal h3; else ha__back h3; fi
		[ -z "$HA_WHY" ] || return 1
		th_wait 60 ha__wrote_since "" "$up" ||
		    { HA_WHY="$HA_NAME did not run again once h3 was back"; return 1; }
		HA_TO=$(ha_owner) ;;
	asym-peer)
		th_partition "$o" "$p" || { HA_WHY="cannot partition $o $p"; return 1; }
		ha__ms_sleep $((2 * ttlm))
		# Nothing moves: no copy started since the cut.
		! ha__wrote_since "" "$up" ||
		    HA_WHY="$HA_NAME restarted though $o still reached h3"
		th_unpartition "$o" "$p"
		[ -z "$HA_WHY" ] || return 1 ;;
	pause)
		th_pause "$o" || { HA_WHY="cannot pause $o"; return 1; }
		th_wait 60 ha__wrote_since "$p" "$up" ||
		    HA_WHY="$HA_NAME did not start on $p within 60 s of pausing $o"
		sleep 0.5	# the new copy runs a while beside the frozen one
		if ! ha__fenced "$o"; then
			resumed=$(witness_now)
			th_resume "$o"
		fi
		[ -z "$HA_WHY" ] || return 1
		# The resumed host must stop its copy by itself.
		th_wait 30 ha__none_on_from ||
		    { HA_WHY="$o still runs its copy 30 s after it resumed"; return 1; }
		HA_TO=$p ;;
	etcd-leader)
		# Right after another trial etcd may still be electing.
		th_wait 20 ha__etcd_leader >"$TH_ROOT/etcd-leader" ||
		    { HA_WHY="no etcd leader for 20 s"; return 1; }
		l=$(tail -n 1 "$TH_ROOT/etcd-leader")
		etcd_stop "$l"
		ha__ms_sleep $((2 * ttlm))
		ha__etcd_member "$l" || { HA_WHY="etcd on $l did not come back"; return 1; }
		HA_FROM="$o (etcd leader $l killed)" ;;
	*)
		HA_WHY="unknown trial kind $kind"; return 1 ;;
	esac
	for h in h1 h2 h3; do
		if ha__fenced "$h"; then HA_FENCED+="${HA_FENCED:+ }$h"; fi
	done
	ha__whole || return 1
	# The host it left discarded its stale copy.
	if [ "$kind" != etcd-leader ] && [ "$kind" != asym-peer ] &&
	    [ "$(ha_owner)" != "$o" ]; then
		th_wait 30 ha__gone "$o" ||
		    { HA_WHY="$o kept $HA_NAME: $(ha__state "$o")"; return 1; }
	fi
	HA_TO=$(ha_owner)
	ha__measure "$(awk -v u="$up" 'BEGIN { printf "%.2f", u - 1 }')" "$resumed"
	return 0
}

# --- the crash of a host that ran a checkpoint-protected container ---------
#
#	ha_cg2_adopt FROM TO	move every process left in test host FROM's
#				cgroup v2 path to TO's; prints how many
#
# CRIU puts a restored tree back into the cgroup v2 path it was dumped
# from (ckpt.c maps only the v1 controllers tern uses to this host's).  On
# real hosts that is ternd's own cgroup, the same path everywhere; a test
# host's is its own (tern-test/NET-FROM), which th_revive FROM empties
# with cgroup.kill.  A test that restored FROM's container on TO moves
# the restored copy to TO's path before it revives FROM.
ha_cg2_adopt() {
	local p n=0
	for p in $(find "$(th__cg2 "$1")" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		echo "$p" 2>/dev/null >"$(th__cg2 "$2")/cgroup.procs" && n=$((n + 1))
	done
	echo "$n"
}
