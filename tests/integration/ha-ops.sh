#!/usr/bin/env bash
# Operating HA from any host (docs/ha.md "Operating it"), on three test
# hosts (tests/lib/ha.sh: h3 coordinates, h1 and h2 hold leases):
#  - ternctl ha status shows the same picture on every host, the
#    coordinator's own included (each ternd asks the coordinator over the
#    mesh);
#  - ternctl ha set from h2 changes a container of h1's; nonsense (an
#    unknown instance, out-of-range values, too many replicas, a policy
#    this version cannot give) is refused with the instance's name and
#    changes nothing (ha status before and after are the same);
#  - --policy none stops the lease gating the instance: cut off from the
#    coordinator, h1 keeps running it (a protected one would be fenced);
#  - h1 crashes: ternctl failovers --json on h2 shows the move (from h1 to
#    h2, epoch 2, its outcome once h2 runs it), and still does after the
#    coordinator's ternd restarted (the history is in its store).  h2's
#    first start of the taken-over container fails (fault point
#    ha.takeover.start): h2 tells the coordinator, which records it and,
#    with no other host to try, leaves it to h2, whose next try runs it.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 3
ha_setup
cl_start h1
TERN_FAULT=ha.takeover.start:fail@1 cl_start h2
cl_start h3
ha_wait || fail "no HA cluster"

rootfs_make "$TH_ROOT/rootfs"
rootfs_spec "$TH_ROOT/rootfs" mc /bin/sh -c 'while :; do usleep 20000; done'

# ha status --json on HOST, reduced to one line per instance and host
# (the replicas' ages would differ between two calls).
status_of() {
	cl_ctl "$1" ha status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for i in d["instances"]:
    print("instance %s owner=%s epoch=%d policy=%s priority=%d interval=%d "
          "replicas=%d" % (i["name"], i["owner"], i["epoch"], i["policy"],
          i["priority"], i["interval_ms"], i["replicas_wanted"]))
for h in d["hosts"]:
    print("host %s %s drained=%s" % (h["name"], h["state"], h["drained"]))
print("coordinator %s leading=%s" % (d["coordinator"], d["leading"]))'
}
# One field of mc's status line on HOST.
mc_status() { status_of "$1" | grep "^instance mc "; }
# ternctl ha set ARGS on h2 must fail (exit 1, or 2 for a usage error)
# saying PATTERN, and change nothing.
refused() {
	local want=$1 code=$2 out st=0
	shift 2
	out=$(cl_ctl h2 ha set "$@" 2>&1) || st=$?
	[ "$st" = "$code" ] || fail "ha set $*: exit $st, not $code: $out"
	grep -q -- "$want" <<<"$out" || fail "ha set $*: \"$out\" lacks \"$want\""
	[ "$(status_of h1)" = "$before" ] ||
	    fail "ha set $* changed something: $(status_of h1)"
}

echo "--- a protected container on h1"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha restart >/dev/null
cl_ctl h1 start mc >/dev/null
runs_on() { [ "$(inst_field "$1" mc state)" = running ]; }
wait_for 20 "mc running on h1" runs_on h1
known() { mc_status h3 | grep -q "owner=h1 epoch=1 policy=restart"; }
wait_for 10 "mc in the coordinator's records" known

echo "--- ha status: the same picture from every host"
s3=$(status_of h3)
grep -q "^host h1 up drained=False" <<<"$s3" || fail "h3's status: $s3"
grep -q "^host h2 up drained=False" <<<"$s3" || fail "h3's status: $s3"
grep -q "^coordinator h3 leading=True" <<<"$s3" || fail "h3's status: $s3"
for h in h1 h2; do
	[ "$(status_of $h)" = "$s3" ] || fail "ha status on $h: $(status_of $h)"
done
out=$(cl_ctl h1 ha status mc)
grep -q "^mc  *container  *h1  *1  *restart  *0 " <<<"$out" ||
    fail "ha status mc: $out"

echo "--- ha set from h2, for an instance on h1"
out=$(cl_ctl h2 ha set mc --priority 5)
grep -q "mc: policy restart, priority 5" <<<"$out" || fail "ha set: $out"
mc_status h1 | grep -q "priority=5 " || fail "priority not set: $(mc_status h1)"
grep -q "instance mc: protection set to restart, priority 5" \
    "$(cl_log h3)" || fail "h3 did not log the change"

echo "--- nonsense is refused, nothing changes"
before=$(status_of h1)
refused "no instance ghost in the coordinator's records" 1 ghost --priority 1
refused "instance mc: priority 5000 is out of range" 1 mc --priority 5000
refused "instance mc: interval 0 ms is out of range" 1 mc --interval 0
refused "instance mc: 5 replicas: give 1 to 1" 1 mc --replicas 5
refused "instance mc: 9 replicas" 1 mc --replicas 9
refused "instance mc: checkpoint protection needs --interval and --replicas" \
    1 mc --policy checkpoint
refused "instance mc: nothing to set" 1 mc
refused "--policy bogus: none, restart or checkpoint" 2 mc --policy bogus
refused "--interval -5: not a non-negative number" 2 mc --interval -5
refused "--priority 1x: not a number" 2 mc --priority 1x

echo "--- --policy none: no lease gates mc any more"
cl_ctl h2 ha set mc --policy none >/dev/null
unprotected() { grep -q "instance mc: protection none, was restart" "$(cl_log h1)"; }
wait_for 10 "h1 told mc is not protected" unprotected
th_cut h1
lost() { grep -q "lease from h3 lost" "$(cl_log h1)"; }
wait_for 20 "h1 losing its lease" lost
h1_failed() { status_of h3 | grep -q "^host h1 failed"; }
wait_for 20 "h3 calling h1 failed" h1_failed
runs_on h1 || fail "unprotected mc was stopped on h1: $(inst_field h1 mc state)"
mc_status h3 | grep -q "owner=h1 epoch=1 policy=none" ||
    fail "unprotected mc moved: $(mc_status h3)"
th_heal h1
wait_for 20 "a lease for h1 again" ha_has_lease h1
cl_ctl h2 ha set mc --policy restart >/dev/null
protected() { grep -q "instance mc: protection restart, was none" "$(cl_log h1)"; }
wait_for 10 "h1 told mc is protected again" protected
runs_on h1 || fail "mc not running on h1: $(inst_field h1 mc state)"

echo "--- h1 crashes: the move is in the history, seen from h2"
th_crash h1
wait_for 30 "mc running on h2" runs_on h2
failovers_of() {
	cl_ctl "$1" failovers --json | python3 -c '
import json, sys
for f in json.load(sys.stdin)["failovers"]:
    print("%s from=%s to=%s epoch=%d outcome=%s decided=%s" % (f["instance"],
          f["from"], f["to"], f["epoch"], f["outcome"],
          "yes" if f["time_unix_ms"] >= f.get("failed_unix_ms", 0) > 0 else "no"))'
}
ran() { [ "$(failovers_of h2)" = "mc from=h1 to=h2 epoch=2 outcome=running decided=yes" ]; }
wait_for 20 "the failover and its outcome in the history" ran
fault_fired h2 ha.takeover.start fail
grep -q "failover of mc: could not start on h2: fault point ha.takeover.start" \
    "$(cl_log h3)" || fail "h3 did not hear that h2 could not start mc"
grep -q "failover of mc: no other host may take it; it stays with h2" \
    "$(cl_log h3)" || fail "h3 did not say mc stays with h2"
out=$(cl_ctl h2 failovers)
grep -q "mc: h1 -> h2 at epoch 2, decided .* after h1 failed, running (could not start on h2: fault point ha.takeover.start)" \
    <<<"$out" || fail "ternctl failovers: $out"
[ "$(cl_ctl h2 failovers --limit 1 --json)" = \
    "$(cl_ctl h2 failovers --json)" ] || fail "--limit 1 differs"

echo "--- the coordinator's ternd restarts: the history is still there"
cl_stop h3 || fail "h3's ternd did not stop cleanly"
cl_start h3
leads() { cl_ctl h3 status | grep -q "coordinator:.*leading"; }
wait_for 20 "h3 leading again" leads
same() { [ "$(failovers_of h2 2>/dev/null)" = "mc from=h1 to=h2 epoch=2 outcome=running decided=yes" ]; }
wait_for 20 "h2 reaching h3 again, the history unchanged" same
mc_status h2 | grep -q "owner=h2 epoch=2 policy=restart priority=5 " ||
    fail "after the restart: $(mc_status h2)"

echo "--- h1 comes back: it does not run mc"
th_revive h1
cl_start h1
wait_for 20 "a lease for h1" ha_has_lease h1
gone_from_h1() { [ -z "$(inst_field h1 mc state)" ]; }
wait_for 20 "mc gone from h1" gone_from_h1
[ "$(failovers_of h1)" = "mc from=h1 to=h2 epoch=2 outcome=running decided=yes" ] ||
    fail "failovers on h1: $(failovers_of h1)"
cl_ctl h2 stop mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
