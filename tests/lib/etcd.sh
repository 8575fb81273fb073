# etcd.sh: a real etcd cluster, one member per test host (Debian's
# etcd-server), for the coordinator's etcd store.  Source after
# testhost.sh.
#
#	etcd_up h1 h2 h3	start one member on each, wait for a leader
#	etcd_endpoints		"http://ADDR:2379,..." of the members
#	etcd_follower		a host whose member is not etcd's leader
#	etcd_stop h2		SIGKILL one member
#	etcd_restart h2		start a member that stopped (its host crashed
#				or was killed) again from its data, and wait
#				until it answers with a leader

ETCD_HOSTS=()

# With pre-vote (off by default in etcd 3.4) a member cut off and back
# does not force an election: cut, it cannot win one, so it does not
# raise its term; without it, its higher term deposed the leader on its
# return and every request waited for the election (docs/ha.md).
ETCD_FLAGS=(--pre-vote)

etcd_check() {
	command -v etcd >/dev/null
}

# etcd__healthy HOST: its member answers /health with a leader.
etcd__healthy() {
	th_exec "$1" python3 -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/health", timeout=1) as r:
    sys.exit(0 if b"\"true\"" in r.read() else 1)' "http://$(th_addr "$1"):2379" \
	    >/dev/null 2>&1
}

etcd_up() {
	local h cluster=
	ETCD_HOSTS=("$@")
	for h in "$@"; do
		cluster+="${cluster:+,}$h=http://$(th_addr "$h"):2380"
	done
	for h in "$@"; do
		th_spawn "$h" "$(th_dir "$h")/etcd.log" etcd --name "$h" \
		    "${ETCD_FLAGS[@]}" --data-dir "$(th_dir "$h")/etcd" \
		    --listen-client-urls "http://$(th_addr "$h"):2379" \
		    --advertise-client-urls "http://$(th_addr "$h"):2379" \
		    --listen-peer-urls "http://$(th_addr "$h"):2380" \
		    --initial-advertise-peer-urls "http://$(th_addr "$h"):2380" \
		    --initial-cluster "$cluster" --initial-cluster-state new \
		    --initial-cluster-token "tern-$TH_NET" >"$(th_dir "$h")/etcd.pid" ||
		    return 1
	done
	for h in "$@"; do
		th_wait 30 etcd__healthy "$h" || {
			echo "etcd on $h never became healthy:" >&2
			tail -n 20 "$(th_dir "$h")/etcd.log" >&2
			return 1
		}
	done
}

etcd_restart() {
	local h=$1
	th_spawn "$h" "$(th_dir "$h")/etcd.log" etcd --name "$h" \
	    "${ETCD_FLAGS[@]}" --data-dir "$(th_dir "$h")/etcd" \
	    --listen-client-urls "http://$(th_addr "$h"):2379" \
	    --advertise-client-urls "http://$(th_addr "$h"):2379" \
	    --listen-peer-urls "http://$(th_addr "$h"):2380" \
	    --initial-advertise-peer-urls "http://$(th_addr "$h"):2380" \
	    >"$(th_dir "$h")/etcd.pid" &&
	    th_wait 30 etcd__healthy "$h"
}

etcd_endpoints() {
	local h out=
	for h in "${ETCD_HOSTS[@]}"; do
		out+="${out:+,}http://$(th_addr "$h"):2379"
	done
	echo "$out"
}

# etcd_follower: a host whose member is not etcd's leader now (stopping it
# costs no election).
etcd_follower() {
	local h
	for h in "${ETCD_HOSTS[@]}"; do
		if th_exec "$h" python3 -c '
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v3/maintenance/status",
    data=b"{}", headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=2) as r:
    s = json.load(r)
sys.exit(0 if s["header"]["member_id"] != s["leader"] else 1)' \
		    "http://$(th_addr "$h"):2379" 2>/dev/null; then
			echo "$h"
			return 0
		fi
	done
	return 1
}

etcd_stop() {
	kill -KILL "$(cat "$(th_dir "$1")/etcd.pid")" 2>/dev/null || :
}
