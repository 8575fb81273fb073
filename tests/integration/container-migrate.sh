#!/usr/bin/env bash
# A container moves h1 -> h2 -> h1 by stop-and-copy over tern's mutual-TLS
# streams; memcheck verifies its memory after every move.  Held to
# --bandwidth it moves again, stop-and-copy and post-copy, no faster than
# the rate.  Refusals (no shared rootfs, name taken on the target, unknown
# host, a mode this host cannot do, a rate too low) and a target ternd
# killed, its CRIU killed in the restore, or a source ternd stopped in the
# middle of a migration (by auto's choice, post-copy here) leave it
# running on the source, unharmed, and nothing on the target.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

th_setup 2
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

# The rootfs is on storage both hosts see (/tmp is shared by test hosts).
rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck 64 /var/log/memcheck.state
rootfs_spec "$TH_ROOT/rootfs" private /bin/memcheck 8 /var/log/private.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"

cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$state" || fail "memcheck did not start"
inst_verify h1 mc "$state" "started on h1"

# h1 -> h2 -> h1
cl_ctl h1 migrate mc --to h2 --mode stopcopy
[ "$(inst_where mc)" = "h2:running" ] || fail "after h1->h2 mc is at: $(inst_where mc)"
inst_verify h2 mc "$state" "moved to h2"
cl_ctl h2 migrate mc --to h1 --mode stopcopy
[ "$(inst_where mc)" = "h1:running" ] || fail "after h2->h1 mc is at: $(inst_where mc)"
inst_verify h1 mc "$state" "moved back to h1"
# Each source's init, killed at the commit point, is reaped by its ternd.
cl_wait_reaped h1 h2 || fail "a source's init was left a zombie"

refused() {	# PATTERN ARGS...: migrate must fail saying PATTERN
	local pattern=$1 out rc
	shift
	set +e
	out=$(cl_ctl h1 migrate "$@" 2>&1); rc=$?
	set -e
	[ $rc = 1 ] || fail "migrate $* exited $rc: $out"
	grep -q -- "$pattern" <<<"$out" || fail "migrate $*: $out"
	[ "$(inst_field h1 mc state)" = running ] || fail "after a refusal mc is at: $(inst_where mc)"
	echo "refused: $out"
}
refused 'unknown host "nowhere"\|host nowhere is not up' mc --to nowhere
refused "soft-dirty" mc --to h2 --mode precopy
# An unknown mode is ternctl's usage error (the wire has only the four).
set +e
out=$(cl_ctl h1 migrate mc --to h2 --mode teleport 2>&1); rc=$?
set -e
[ $rc = 2 ] || fail "migrate --mode teleport exited $rc: $out"
grep -q -- "--mode teleport: mode must be" <<<"$out" ||
    fail "--mode teleport: $out"
refused "more than --max-downtime 5 ms" mc --to h2 --mode stopcopy --max-downtime 5
refused "too low: at least 1M" mc --to h2 --bandwidth 500k
refused "at ~10.0 MB/s, the --bandwidth), more than --max-downtime 2000 ms" \
    mc --to h2 --mode stopcopy --max-downtime 2000 --bandwidth 10M
cl_ctl h1 create private --spec "$TH_ROOT/private.json" >/dev/null
cl_ctl h1 start private >/dev/null
refused "shared_storage" private --to h2
cl_ctl h1 destroy private >/dev/null
cl_ctl h2 create mc --spec "$TH_ROOT/mc.json" >/dev/null
refused "already exists on h2" mc --to h2
cl_ctl h2 destroy mc >/dev/null
inst_verify h1 mc "$state" "after the refusals"

# --bandwidth: everything the migration sends shares one rate.  Only a
# lower bound on the time is checked (bytes / rate, less the first
# burst: a tenth of a second): a limiter that does nothing fails it, a
# busy machine does not.
RATE=20000000
limited() {	# FROM TO MODE: move mc at RATE, check the time it took
	local from=$1 to=$2 mode=$3 out t0 t1
	t0=$(date +%s%N)
	out=$(cl_ctl "$from" --json migrate mc --to "$to" --mode "$mode" \
	    --bandwidth 20M) || fail "limited migrate $from->$to: $out"
	t1=$(date +%s%N)
	echo "$out"
	python3 - "$out" $RATE $(((t1 - t0) / 1000000)) <<'PY' ||
import json, sys
r, rate, wall = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
least = r["bytes"] * 1000 / rate - 100
print("%s: %.1f MiB in %d ms (%d ms wall): %.1f MB/s, limit %.1f MB/s, "
      "at least %d ms" % (r["mode"], r["bytes"] / 2**20, r["total_ms"], wall,
      r["bytes"] / 1e3 / r["total_ms"], rate / 1e6, least))
assert r.get("bandwidth") == rate, "no bandwidth in the reply"
assert "limited to 20.0 MB/s" in r.get("note", ""), "no note of the limit"
assert r["bytes"] > 32 << 20, "too few bytes to tell"
assert r["total_ms"] * 1.1 >= least, "faster than the limit"
PY
	    fail "$mode $from->$to at --bandwidth 20M"
	[ "$(inst_where mc)" = "$to:running" ] || fail "after the limited $from->$to mc is at: $(inst_where mc)"
	inst_verify "$to" mc "$state" "moved to $to at --bandwidth 20M ($mode)"
}
limited h1 h2 stopcopy
if cl_ctl h1 status | grep -q "lazy pages (post-copy) yes"; then
	limited h2 h1 postcopy
else
	limited h2 h1 stopcopy
fi

# The target's ternd dies while the images are on their way (a fault
# point kills it at the first image file): the source resumes its frozen
# container; the target, restarted, has nothing.
cl_stop h2
TERN_FAULT=mig.target.file:kill@1 cl_start h2
cl_wait_up h1 2 30
if out=$(cl_ctl h1 migrate mc --to h2 2>&1); then
	fail "migrate succeeded although the target died: $out"
fi
echo "refused: $out"
fault_fired h2 mig.target.file kill
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state) on h1"
inst_verify h1 mc "$state" "after the target died mid-migration"
# (Its next restore's CRIU dies after it forked the tree.)
TERN_FAULT=ckpt.restore.setup-ns:kill@1 cl_start h2
cl_wait_up h1 2 30
[ -z "$(inst_field h2 mc state)" ] || fail "h2 kept an incoming mc: $(inst_field h2 mc state)"

# The target's CRIU is killed after it forked the tree, before it could
# answer: the source resumes, and the target reaps the tree's init
# (ternd's child: CRIU restores it as its own sibling), whose pid only
# CRIU's setup-namespaces notification gave.  (container-checkpoint.sh
# has a CRIU that fails such a restore and says so.)
if out=$(cl_ctl h1 migrate mc --to h2 2>&1); then
	fail "migrate succeeded although the target's CRIU died: $out"
fi
echo "refused: $out"
fault_fired h2 ckpt.restore.setup-ns kill
# (The source says the first thing it hears: h2's word that its CRIU was
# killed, or the page channel that the lazy-pages daemon there closed as
# the restore died: ASan's timing gave the latter.)
grep -Eq "criu.*killed by signal 9|page channel to h2 broke" <<<"$out" ||
	fail "no reason given: $out"
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state) on h1"
inst_verify h1 mc "$state" "after the target's CRIU died in its restore"
[ -z "$(inst_field h2 mc state)" ] || fail "h2 kept an incoming mc: $(inst_field h2 mc state)"
cl_wait_reaped h2 || fail "the init of a restore whose CRIU died was left a zombie on h2"

# The source's ternd is stopped (SIGTERM) in the middle, while it holds
# the container frozen (a fault point stalls it there): it rolls the
# migration back before it exits, so the container keeps running on h1.
cl_stop h1
TERN_FAULT=mig.source.frozen:stall@1 cl_start h1
cl_wait_up h1 2 30
cl_ctl h1 migrate mc --to h2 > "$TH_ROOT/stopped.out" 2>&1 &
ctl=$!
wait_for 60 "h1 holding mc frozen for the move" \
    grep -q "fault point mig.source.frozen fired: stall" "$(cl_log h1)"
cl_stop h1 || fail "h1's ternd did not stop cleanly during a migration"
wait $ctl || true
cl_start h1
cl_wait_up h1 2 30
[ "$(inst_field h1 mc state)" = running ] || fail "after the source stopped mc is at: $(inst_where mc)"
[ -z "$(inst_field h2 mc state)" ] || fail "h2 kept mc: $(inst_field h2 mc state)"
inst_verify h1 mc "$state" "after the source's ternd stopped mid-migration"

# And it still moves afterwards.
cl_ctl h1 migrate mc --to h2
inst_verify h2 mc "$state" "moved to h2 after the failure"
# It joined h2's cgroups, the v2 hierarchy's too: left in h1's (CRIU
# restores the paths its images name), h1's end would end it (th_crash
# kills a host's cgroups, as a host's own cleanup would).
pid=$(inst_field h2 mc pid)
mine=$(grep '^0::' "/proc/$pid/cgroup") || mine=
ternd=$(grep '^0::' "/proc/$(cl_pid h2)/cgroup") || ternd=
h1s=$(grep '^0::' "/proc/$(cl_pid h1)/cgroup") || h1s=
if [ -z "$ternd" ] || [ "$ternd" = "$h1s" ]; then
	echo "(no v2 cgroup of its own per test host here: the v2 check is moot)"
else
	[ "$mine" = "$ternd" ] ||
	    fail "mc on h2 (pid $pid) is in the v2 cgroup ${mine#0::}, not h2's ${ternd#0::}"
fi
cl_ctl h2 destroy mc >/dev/null

cl_stop_all || fail "a ternd did not stop cleanly"
echo "container-migrate: ok"
