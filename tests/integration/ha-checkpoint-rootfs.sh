#!/usr/bin/env bash
# A checkpoint replica carries its container's rootfs, from the same
# instant as its memory (docs/ha.md "Replicated checkpoints").  Three
# test hosts: h3 coordinates, h1 and h2 hold leases, each host has its
# own /srv (not shared).  mc runs on h1 from /srv/mc, --ha checkpoint
# every 2 s to h2.  Its /bin/counter keeps a RUN id and a count in
# memory and writes both to /var/lib/counter at each tick; before each
# tick it checks that the file says what its memory says (else a line
# in /var/lib/mismatch).
#  - the rootfs crosses with the first generation, not again with the
#    next ones (only what changed);
#  - a file deleted on h1 before the last generation stays deleted;
#  - h1 crashes: h2 writes mc's rootfs from its replica, and its ternd
#    dies right then (fault point replica.take.rootfs, kill), before the
#    generation is taken in; restarted, it resumes the restore (keeping
#    the rootfs it wrote) and never cold-starts mc: the same RUN
#    (restored, not cold-started), the count goes on from the file's,
#    and no mismatch: files and memory from the same dump;
#  - rm1, another checkpoint-protected container replicated to h2, is
#    destroyed: h2 removes its replica within a bound, and keeps mc's;
#  - h1 comes back (its old /srv/mc still there) and holds mc's replica;
#    h2 crashes: h1 refuses to write mc's rootfs over the one it has, h3
#    says so, and h1's /srv/mc is left as it was.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TH_BINDS+=("srv:/srv")		# each host's own /srv
th_setup 3
ha_setup
cl_start h1
TERN_FAULT=replica.take.rootfs:kill@1 cl_start h2
cl_start h3
ha_wait || fail "no HA cluster"

# mkctr NAME: /srv/NAME on h1 running /bin/counter; its spec in $TH_ROOT.
mkctr() {
	local dir=$TH_ROOT/h1/srv/$1
	rootfs_make "$dir"
	cat >"$dir/bin/counter" <<'EOF'
#!/bin/sh
trap "exit 0" TERM
read -r run </proc/sys/kernel/random/uuid
run=${run%%-*}
n=0
mkdir -p /var/lib
while :; do
	if [ "$n" -gt 0 ]; then
		r=none c=none
		read -r r c </var/lib/counter
		[ "$r $c" = "$run $n" ] ||
		    echo "memory $run $n file $r $c" >>/var/lib/mismatch
	fi
	n=$((n + 1))
	echo "$run $n" >/var/lib/counter
	usleep 20000
done
EOF
	chmod 755 "$dir/bin/counter"
	echo "this one goes" >"$dir/gone"
	ROOTFS_SPEC_ROOT=/srv/$1 rootfs_spec "$dir" "$1" /bin/counter
	mv "$TH_ROOT/h1/srv/$1.json" "$TH_ROOT/$1.json"
}
mkctr mc
mkctr rm1
# counter HOST: mc's "RUN COUNT" there.  /bin/counter rewrites the file
# (truncate, then write) every 20 ms: a read between the two is empty,
# so read again.
counter() {
	local line i
	for ((i = 0; i < 50; i++)); do
		line=$(cat "$TH_ROOT/$1/srv/mc/var/lib/counter" 2>/dev/null) || line=
		[ -n "$line" ] && { echo "$line"; return 0; }
		sleep 0.01
	done
}
state_on() { inst_field "$1" "${2:-mc}" state; }
# Running, or in one of its leave-running checkpoints (every 2 s; on a
# loaded machine one can take most of the interval).
runs_on() { case $(state_on "$1" "${2:-mc}") in running | checkpointing) ;; *) return 1 ;; esac; }
recorded() {
	grep -o "replica of ${2:-mc}: generation [0-9]* on h2 (epoch $1) recorded" \
	    "$(cl_log h3)" | awk '{print $5}'
}

echo "--- mc and rm1 on h1, each checkpointed to h2 every 2 s"
for n in mc rm1; do
	cl_ctl h1 create $n --spec "$TH_ROOT/$n.json" --ha checkpoint \
	    --interval 2000 --replicas 1 >/dev/null
	cl_ctl h1 start $n >/dev/null
	wait_for 20 "$n running on h1" runs_on h1 $n
done
one() { [ "$(recorded 1 | wc -l)" -ge 1 ]; }
wait_for 60 "a generation of mc recorded by h3" one
grep -q "instance mc: generation [0-9]* carries its rootfs" "$(cl_log h1)" ||
    fail "h1 did not capture mc's rootfs with its generation"
[ -d "$TH_ROOT/h2/state/replicas/mc" ] || fail "no replica of mc on h2"

echo "--- a file deleted before the last generation stays deleted"
rm "$TH_ROOT/h1/srv/mc/gone"
after=$(recorded 1 | tail -n 1)
newer() { [ "$(recorded 1 | tail -n 1)" -gt "$((after + 1))" ]; }
wait_for 60 "two more generations of mc recorded" newer
sed -n 's/.*\(instance mc: generation [0-9]* carries its rootfs.*\)/\1/p' \
    "$(cl_log h1)" | tail -n 2
# The rootfs (busybox: megabytes) crosses with the first generation, and
# never again: a later one sends its changed file and the images only.
crossed() {
	sed -n "s/.*mc: generation $1 acknowledged by h2 (\([0-9]*\) bytes crossed.*/\1/p" \
	    "$(cl_log h1)"
}
gens=($(recorded 1))
first=$(crossed "${gens[0]}")
later=$(crossed "${gens[-1]}")
echo "generation ${gens[0]}: $first bytes crossed; generation ${gens[-1]}: $later"
[ "${first:-0}" -ge 1000000 ] ||
    fail "the first generation sent only ${first:-no} bytes: no rootfs?"
[ $((later * 4)) -lt "$first" ] ||
    fail "a later generation sent $later bytes, the first $first"

echo "--- rm1 destroyed: its replica leaves h2, mc's stays"
rm1_rec() { [ "$(recorded 1 rm1 | wc -l)" -ge 1 ]; }
wait_for 60 "a generation of rm1 recorded by h3" rm1_rec
[ -d "$TH_ROOT/h2/state/replicas/rm1" ] || fail "no replica of rm1 on h2"
cl_ctl h1 stop rm1 >/dev/null
cl_ctl h1 destroy rm1 >/dev/null
rm1_gone() { [ ! -e "$TH_ROOT/h2/state/replicas/rm1" ]; }
# the grace period (10 s) and a renewal or two
wait_for 30 "rm1's replica removed from h2" rm1_gone
grep -q "replica of rm1: removed" "$(cl_log h2)" ||
    fail "h2 did not say why rm1's replica went"
[ -d "$TH_ROOT/h2/state/replicas/mc" ] || fail "h2 removed mc's replica too"
! grep -q "replica of mc: removed" "$(cl_log h2)" ||
    fail "h2 removed a replica of mc"

echo "--- h1 crashes: mc's rootfs and memory come back together on h2"
[ ! -e "$TH_ROOT/h2/srv/mc" ] || fail "h2 has a /srv/mc already"
newest=$(recorded 1 | tail -n 1)
read -r run _ <<<"$(counter h1)"
th_crash h1
h2_dead() { ! cl_pid h2 >/dev/null; }
wait_for 30 "h2's ternd dying in mc's replica take" h2_dead
fault_fired h2 replica.take.rootfs kill
cl_start h2
wait_for 30 "mc running on h2" runs_on h2
restored() { grep -q "instance mc: restored from its replica" "$(cl_log h2)"; }
wait_for 10 "h2 restoring mc from its replica" restored
grep -q "instance mc: resuming its restore from replica generation" \
    "$(cl_log h2)" || fail "h2's restarted ternd did not resume mc's restore"
grep -q "instance mc: rootfs /srv/mc was written from replica generation [0-9]* before ternd restarted: kept" \
    "$(cl_log h2)" || fail "h2 did not keep the rootfs it wrote for mc"
! grep -q "instance mc: starting: " "$(cl_log h2)" ||
    fail "h2 cold-started mc: $(grep "instance mc: starting: " "$(cl_log h2)")"
got=$(sed -n 's/.*instance mc: restoring replica generation \([0-9]*\).*/\1/p' \
    "$(cl_log h2)" | tail -n 1)
[ "${got:-0}" -ge "$newest" ] ||
    fail "h2 restored generation ${got:-none}, not the newest ($newest)"
read -r r1 c1 <<<"$(counter h2)"
sleep 1
read -r r2 c2 <<<"$(counter h2)"
echo "h1's RUN $run; on h2 after the restore: $r1 $c1, a second later $r2 $c2"
[ "$r2" = "$run" ] || fail "mc was cold-started on h2 (RUN $r2, not $run)"
[ "$c2" -gt "$c1" ] || fail "mc does not count on h2 ($c1, then $c2)"
[ ! -e "$TH_ROOT/h2/srv/mc/var/lib/mismatch" ] ||
    fail "files and memory disagree: $(cat "$TH_ROOT/h2/srv/mc/var/lib/mismatch")"
[ ! -e "$TH_ROOT/h2/srv/mc/gone" ] || fail "a file deleted on h1 came back"
[ "$(state_on h2 rm1)" = "" ] || fail "rm1 came back on h2"

echo "--- h1 back, h2 crashes: h1's old /srv/mc is not overwritten"
# As in ha-checkpoint.sh: the restored tree went back into h1's cgroup v2
# path, which th_revive h1 empties; move it to h2's first.
for p in $(find "$(th__cg2 h1)" -name cgroup.procs -exec cat {} + 2>/dev/null); do
	echo "$p" 2>/dev/null >"$(th__cg2 h2)/cgroup.procs" || true
done
old=$(counter h1)
th_revive h1
cl_start h1
wait_for 20 "a lease for h1" ha_has_lease h1
on_h1() { grep -q "replica of mc: generation [0-9]* on h1 (epoch 2) recorded" \
    "$(cl_log h3)"; }
wait_for 30 "a replica of mc on h1 recorded" on_h1
th_crash h2
refused() { grep -q "failover of mc: restoring its replica on h1 failed: .*its rootfs /srv/mc exists on this host and is not an empty directory" \
    "$(cl_log h3)"; }
wait_for 30 "h3 saying h1 refused to overwrite /srv/mc" refused
[ "$(counter h1)" = "$old" ] || fail "h1's /srv/mc was changed"
[ "$(state_on h1)" != running ] || fail "mc runs on h1 over its old rootfs"

cl_stop h1 || fail "h1 did not stop cleanly"
cl_stop h3 || fail "h3 did not stop cleanly"
for h in h1 h3; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
