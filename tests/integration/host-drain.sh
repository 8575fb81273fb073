#!/usr/bin/env bash
# ternctl host drain: h1 runs two memcheck containers and holds a stopped
# one; drained from h2's ternctl (forwarded to h1's ternd over the mesh),
# the running ones move through the migration engine, one to each of h2
# and h3 (the fewest instances first), and verify their memory there; the
# stopped one stays.  Every host shows h1 drained; h1 refuses a create
# and an incoming migration naming "ternctl host undrain h1", and stays
# drained across a restart of its ternd.  Undrained, it takes a migration
# again.  Bad requests change nothing.  Then a drain where h3 refuses its
# move (fault point mig.target.restored): that container still runs on
# h1, unharmed, the drain says why and exits non-zero, the other moved;
# draining h1 again moves it.  Last, one drain at a time: with each move
# held on its target (fault point mig.target.held), a second drain is
# refused, and an undrain stops the moves not yet started.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
cl_pki
for h in h1 h2 h3; do
	cl_conf "$h"
	cl_start "$h"
done
cl_wait_up h1 3 30
cl_wait_up h2 3 30
cl_wait_up h3 3 30
for h in h1 h2 h3; do
	cl_wait_criu "$h" || fail "$h cannot run containers"
done

# where NAME: "HOST:STATE" for each host listing NAME.
where() {
	local h s out=""
	for h in h1 h2 h3; do
		s=$(inst_field "$h" "$1" state)
		[ -n "$s" ] && out+="$h:$s "
	done
	echo "${out% }"
}

# drained VIEWER HOST: "true" or "false", as VIEWER's ternctl hosts says.
drained() {
	cl_ctl "$1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        print("true" if h.get("drained") else "false")' "$2"
}

wait_drained() {	# HOST true|false: on every host, within 10 s
	local v i
	for v in h1 h2 h3; do
		for ((i = 0; i < 100; i++)); do
			[ "$(drained "$v" "$1")" = "$2" ] && break
			sleep 0.1
		done
		[ "$(drained "$v" "$1")" = "$2" ] ||
		    fail "$v says $1 drained=$(drained "$v" "$1"), not $2"
	done
}

rootfs_make "$TH_ROOT/rootfs"
for n in web db idle; do
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" "$n" /bin/memcheck 8 \
	    "/var/log/$n.state"
	cl_ctl h1 create "$n" --spec "$TH_ROOT/$n.json" >/dev/null
done
for n in web db; do
	cl_ctl h1 start "$n" >/dev/null
	inst_wait_ready "$TH_ROOT/rootfs/var/log/$n.state" ||
	    fail "memcheck $n did not start"
	inst_verify h1 "$n" "$TH_ROOT/rootfs/var/log/$n.state" "started on h1"
done

echo "--- bad requests change nothing"
bad() {	# RC PATTERN ARGS...: ternctl on h2 fails with RC saying PATTERN
	local want=$1 pattern=$2 out rc
	shift 2
	set +e
	out=$(cl_ctl h2 "$@" 2>&1); rc=$?
	set -e
	[ $rc = "$want" ] || fail "$* exited $rc (not $want): $out"
	grep -q -- "$pattern" <<<"$out" || fail "$*: $out"
	echo "refused: $out"
}
bad 1 "no host nowhere" host drain nowhere
bad 2 "parallel 0: migrations at once, 1..16" host drain h1 --parallel 0
bad 2 "parallel 99: migrations at once, 1..16" host drain h1 --parallel 99
[ "$(drained h1 h1)" = false ] || fail "a refused drain drained h1"
[ "$(where web)" = "h1:running" ] || fail "web moved: $(where web)"

echo "--- drain h1 from h2"
out=$(cl_ctl h2 host drain h1 2>&1) || fail "the drain failed: $out"
echo "$out"
grep -q "^web: moved to h[23] (.*) in [0-9]* ms$" <<<"$out" || fail "web: $out"
grep -q "^db: moved to h[23] (.*) in [0-9]* ms$" <<<"$out" || fail "db: $out"
grep -q "^idle: stopped: stays$" <<<"$out" || fail "idle: $out"
grep -q "h1 drained: 2 moved, 0 not moved" <<<"$out" || fail "summary: $out"
# Both peers held nothing: one each (ties by name: h2 first).
w=$(where web) d=$(where db)
[ "$(sort <<<"${w%%:*}"$'\n'"${d%%:*}" | tr '\n' ' ')" = "h2 h3 " ] ||
    fail "web at $w, db at $d: not one on each of h2 and h3"
[ "${w#*:}" = running ] && [ "${d#*:}" = running ] || fail "web $w, db $d"
inst_verify "${w%%:*}" web "$TH_ROOT/rootfs/var/log/web.state" "drained to ${w%%:*}"
inst_verify "${d%%:*}" db "$TH_ROOT/rootfs/var/log/db.state" "drained to ${d%%:*}"
[ "$(where idle)" = "h1:stopped" ] || fail "idle is at $(where idle)"
[ "$(inst_copies web)" -le 1 ] || fail "two copies of web"
wait_drained h1 true
cl_ctl h3 hosts | grep -q "^h1 *up,drained " || fail "h3's hosts: $(cl_ctl h3 hosts)"

echo "--- a drained h1 refuses new instances"
set +e
out=$(cl_ctl h1 create new --spec "$TH_ROOT/idle.json" 2>&1); rc=$?
set -e
[ $rc = 1 ] || fail "create on a drained h1 exited $rc: $out"
grep -q "host h1 is drained.*ternctl host undrain h1" <<<"$out" || fail "create: $out"
echo "refused: $out"
set +e
out=$(cl_ctl "${w%%:*}" migrate web --to h1 2>&1); rc=$?
set -e
[ $rc = 1 ] || fail "a migration to a drained h1 exited $rc: $out"
grep -q "host h1 is drained.*ternctl host undrain h1" <<<"$out" || fail "migrate: $out"
echo "refused: $out"
[ "$(where web)" = "$w" ] || fail "after the refusal web is at $(where web)"
inst_verify "${w%%:*}" web "$TH_ROOT/rootfs/var/log/web.state" "kept after h1 refused"

echo "--- h1 stays drained across a restart"
cl_stop h1 || fail "h1's ternd did not stop cleanly"
wait_for 10 "h2 to see h1 gone" eval '[ "$(cl_host_state h2 h1)" != up ]'
bad 1 "host h1 is not up" host drain h1
cl_start h1
cl_wait_up h2 3 30
cl_wait_criu h1 || fail "h1 cannot run containers after its restart"
wait_drained h1 true

echo "--- undrain"
out=$(cl_ctl h2 host undrain h1 2>&1) || fail "undrain failed: $out"
grep -q "h1 undrained" <<<"$out" || fail "undrain: $out"
out=$(cl_ctl h2 host undrain h1 2>&1) || fail "a second undrain failed: $out"
grep -q "h1 is not drained" <<<"$out" || fail "second undrain: $out"
wait_drained h1 false
cl_ctl "${w%%:*}" migrate web --to h1 >/dev/null || fail "web did not move back to h1"
cl_ctl "${d%%:*}" migrate db --to h1 >/dev/null || fail "db did not move back to h1"
[ "$(where web)" = "h1:running" ] && [ "$(where db)" = "h1:running" ] ||
    fail "web at $(where web), db at $(where db)"
inst_verify h1 web "$TH_ROOT/rootfs/var/log/web.state" "moved back to h1"

echo "--- a move that fails: the instance stays on h1, running"
cl_stop h3 || fail "h3's ternd did not stop cleanly"
TERN_FAULT=mig.target.restored:fail@1 cl_start h3
cl_wait_up h1 3 30
cl_wait_criu h3 || fail "h3 cannot run containers"
# --json from h1 itself this time: one object per line.
set +e
out=$(cl_ctl h1 host drain h1 --parallel 2 --json 2>&1); rc=$?
set -e
echo "$out"
[ $rc = 1 ] || fail "a drain that left an instance exited $rc"
fault_fired h3 mig.target.restored fail
python3 - "$out" <<'EOF' || fail "the drain's JSON: $out"
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines()]
ends = {l["name"]: l for l in lines if l.get("event") in ("moved", "not_moved")}
assert sorted(ends) == ["db", "web"], ends
assert sorted(l["event"] for l in ends.values()) == ["moved", "not_moved"], ends
bad = [l for l in ends.values() if l["event"] == "not_moved"][0]
assert bad["to"] == "h3" and "mig.target.restored" in bad["cause"], bad
assert lines[-1]["moved"] == 1 and lines[-1]["not_moved"] == 1, lines[-1]
assert lines[-1]["stayed"] == 1 and lines[-1]["drained"] is True, lines[-1]
EOF
stuck=$(python3 -c '
import json, sys
for l in sys.argv[1].splitlines():
    l = json.loads(l)
    if l.get("event") == "not_moved":
        print(l["name"])' "$out")
moved=web
[ "$stuck" = web ] && moved=db
[ "$(where "$stuck")" = "h1:running" ] || fail "$stuck is at $(where "$stuck")"
inst_verify h1 "$stuck" "$TH_ROOT/rootfs/var/log/$stuck.state" "still on h1"
[ "$(where "$moved")" = "h2:running" ] || fail "$moved is at $(where "$moved")"
inst_verify h2 "$moved" "$TH_ROOT/rootfs/var/log/$moved.state" "drained to h2"

echo "--- draining the drained h1 again moves what is left (the fault fired once)"
out=$(cl_ctl h1 host drain h1 2>&1) || fail "the second drain failed: $out"
echo "$out"
grep -q "^$stuck: moved to h[23] (.*) in [0-9]* ms$" <<<"$out" || fail "$stuck: $out"
grep -q "h1 drained: 1 moved, 0 not moved" <<<"$out" || fail "summary: $out"
w=$(where "$stuck")
[ "$w" = "h2:running" ] || [ "$w" = "h3:running" ] || fail "$stuck is at $w"
inst_verify "${w%%:*}" "$stuck" "$TH_ROOT/rootfs/var/log/$stuck.state" \
    "drained to ${w%%:*}"

echo "--- one drain at a time; an undrain stops the moves not yet started"
out=$(cl_ctl h2 host undrain h1 2>&1) || fail "undrain: $out"
wait_drained h1 false
for n in web db; do
	w=$(where "$n")
	[ "${w%%:*}" = h1 ] || cl_ctl "${w%%:*}" migrate "$n" --to h1 >/dev/null ||
	    fail "$n did not move back to h1"
done
[ "$(where web)" = "h1:running" ] && [ "$(where db)" = "h1:running" ] ||
    fail "web at $(where web), db at $(where db)"
# Each move held 5 s on its target, after the restore.
for h in h2 h3; do
	cl_stop "$h" || fail "$h's ternd did not stop cleanly"
	TERN_FAULT=mig.target.held:delay=5000 cl_start "$h"
done
cl_wait_up h1 3 30
for h in h2 h3; do
	cl_wait_criu "$h" || fail "$h cannot run containers"
done
cl_ctl h1 host drain h1 --parallel 1 >"$TH_ROOT/drain.out" 2>&1 &
dpid=$!
wait_for 10 "the drain's first move" grep -q ": moving to " "$TH_ROOT/drain.out"
bad 1 "a drain of h1 is running" host drain h1
out=$(cl_ctl h2 host undrain h1 2>&1) || fail "undrain during the drain: $out"
rc=0
wait "$dpid" || rc=$?
out=$(cat "$TH_ROOT/drain.out")
echo "$out"
[ $rc = 1 ] || fail "a drain cut short by an undrain exited $rc"
first=$(sed -n 's/^\([a-z]*\): moving to \(h[23]\)$/\1 \2/p' <<<"$out" | head -n 1)
fault_fired "${first#* }" mig.target.held delay=5000
grep -q "^${first% *}: moved to ${first#* } " <<<"$out" || fail "first move: $out"
left=web
[ "${first% *}" = web ] && left=db
grep -q "^$left: not moved: the host was undrained meanwhile$" <<<"$out" ||
    fail "$left: $out"
grep -q "1 moved, 1 not moved" <<<"$out" || fail "summary: $out"
[ "$(where "$left")" = "h1:running" ] || fail "$left is at $(where "$left")"
inst_verify h1 "$left" "$TH_ROOT/rootfs/var/log/$left.state" "left on h1"

cl_stop_all || fail "a ternd did not stop cleanly"
echo "host-drain: ok"
