#!/usr/bin/env bash
# The coordinator's store on a real three-member etcd (one member per test
# host): the same semantics as the journal (storectl conform runs on
# both); one leader at a time; a leader paused past its lease is deposed,
# steps down by itself when it wakes, and etcd refuses its writes; with
# a leader started again after a crash need not wait out its old lease;
# a keepalive late past the leader's margin suspends it, and its answer
# (the lease still alive) has it lead again in the same term; one late
# past a lease's length of suspension has it give the term up and
# campaign, and its answer, late, leaves the next lease alone;
# one member gone the leader goes on, with two gone it stops leading;
# a member whose packets are dropped (a crashed host: no refusal, no
# answer) is passed over for the next.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
th_check || exit 77
etcd_check || exit 77
trap th_teardown EXIT

ctl=$TERN_BUILDDIR/tests/tools/storectl
th_setup 4		# h4 runs no member: its address drops etcd's port
etcd_up h1 h2 h3
ep=$(etcd_endpoints)

echo "--- the store's semantics, on etcd and on the journal"
th_exec h1 "$ctl" conform "etcd:$ep" || fail "etcd does not conform"
"$ctl" conform "journal:$TH_ROOT/journal" || fail "the journal does not conform"

# writes FILE: the revisions a contender wrote, in order.
writes() { sed -n 's/^wrote //p' "$1"; }
count() { grep -c "$1" "$2" || true; }

echo "--- a leader killed and started again under its name leads at once"
# Its leader key lingers under the dead one's lease (60 s here): the new
# one sees its own name there and revokes that lease rather than wait.
c0=$(th_spawn h1 "$TH_ROOT/c0.out" "$ctl" lead "etcd:$ep" c0 60000)
wait_for 15 "c0 leading" grep -q '^leads' "$TH_ROOT/c0.out"
kill -KILL "$c0"
c0=$(th_spawn h1 "$TH_ROOT/c0b.out" "$ctl" lead "etcd:$ep" c0 60000)
wait_for 20 "c0 leading again before the dead one's lease ended" \
    grep -q '^leads' "$TH_ROOT/c0b.out"
grep -q "the leader key is its own" "$TH_ROOT/c0b.out" ||
    fail "c0 led again without revoking its old lease: $(cat "$TH_ROOT/c0b.out")"
# SIGTERM: it closes the store, giving its lease up for the next leader.
kill -TERM "$c0"
wait_for 10 "c0 exiting" eval '! kill -0 '"$c0"' 2>/dev/null'

# leads FILE: the terms a contender led in, in order.
terms() { sed -n 's/^leads //p' "$1"; }
# held NAME DELAY_MS TTL_MS: contender NAME (pid in $HELD) leads under a
# TTL_MS lease, its first keepalive DELAY_MS late (fault point
# store.etcd.keepalive), until it stops leading.
held() {
	HELD=$(TERN_FAULT=store.etcd.keepalive:delay=$2@1 th_spawn h1 \
	    "$TH_ROOT/$1.out" "$ctl" lead "etcd:$ep" "$1" "$3")
	wait_for 15 "$1 leading" grep -q '^leads' "$TH_ROOT/$1.out"
	wait_for 10 "$1 stopping, its keepalive held" grep -q '^stops' "$TH_ROOT/$1.out"
	grep -q "fault point store.etcd.keepalive fired: delay=$2" "$TH_ROOT/$1.out" ||
	    fail "the fault point store.etcd.keepalive never fired"
}
# writes_on NAME: NAME writes again, then exits on SIGTERM.
writes_on() {
	local n
	n=$(count '^wrote' "$TH_ROOT/$1.out")
	wait_for 5 "$1 writing on" eval '[ "$(count "^wrote" "$TH_ROOT/'"$1"'.out")" -gt '"$n"' ]'
	kill -TERM "$HELD"
	wait_for 10 "$1 exiting" eval '! kill -0 '"$HELD"' 2>/dev/null'
}

echo "--- a keepalive late past the margin, within the lease: led again, same term"
# Fault point store.etcd.keepalive (delay): c5's first keepalive (due
# 0.67 s after its 6 s lease was granted: keepalives go every 667 ms,
# whatever the lease) goes 4 s late, past the margin (the lease's last
# quarter, from 4.5 s) but well before etcd's lease ends (6 s).  c5
# stops leading at 4.5 s; etcd renews the lease at 4.7 s, so nobody can
# have led meanwhile, and its answer, counted from the keepalive's
# first send at 0.67 s, leaves time to lead: c5 leads again in the same
# term.  Before, it stepped down, gave the lease up and campaigned
# again: a new term, after a wait.
held c5 4000 6000
led2() { [ "$(terms "$TH_ROOT/c5.out" | wc -l)" -ge 2 ]; }
wait_for 10 "c5 leading again" led2
grep -v '^wrote' "$TH_ROOT/c5.out"
[ "$(terms "$TH_ROOT/c5.out" | sort -u | wc -l)" = 1 ] ||
    fail "c5 led again in another term: $(terms "$TH_ROOT/c5.out" | tr '\n' ' ')"
grep -q "c5 leads again (term" "$TH_ROOT/c5.out" ||
    fail "c5 did not say it leads again under its lease"
writes_on c5

echo "--- a keepalive late past the lease: the term given up, a new one"
# c4's first keepalive goes 4 s late, past its 2 s lease: c4 stops
# leading at the margin (1.5 s) and keeps its lease and key for a
# lease's length (to 3.5 s), then gives that term up and campaigns
# again: one stop, a second term.  Then etcd answers the old lease's
# keepalive.  That answer must leave the new lease alone: taken for its
# own, it made c4 stop again, or stalled a claim under way for good.
held c4 4000 2000
again() { [ "$(count '^leads' "$TH_ROOT/c4.out")" -ge 2 ]; }
wait_for 10 "c4 leading again under a new lease" again
sleep 2
grep -v '^wrote' "$TH_ROOT/c4.out"
[ "$(count '^stops' "$TH_ROOT/c4.out")" = 1 ] ||
    fail "c4 stopped leading more than once"
grep -q "c4 gives its term up: no keepalive gave the lease time" "$TH_ROOT/c4.out" ||
    fail "c4 did not give its term up after a lease's length suspended"
answered() { grep -q "keepalive of lease .*, given up since, was answered" \
    "$TH_ROOT/c4.out"; }
wait_for 10 "the held keepalive answered" answered
grep -q "keepalive of lease .*, given up since, was answered: ignored" \
    "$TH_ROOT/c4.out" || fail "c4 did not say it ignored the old answer"
[ "$(count '^stops' "$TH_ROOT/c4.out")" = 1 ] ||
    fail "c4 stopped again when its old lease's keepalive was answered"
[ "$(terms "$TH_ROOT/c4.out" | sort -u | wc -l)" = 2 ] ||
    fail "c4 led again in its old term: $(terms "$TH_ROOT/c4.out" | tr '\n' ' ')"
writes_on c4

echo "--- one leader at a time"
c1=$(th_spawn h1 "$TH_ROOT/c1.out" "$ctl" lead "etcd:$ep" c1 3000)
wait_for 15 "c1 leading" grep -q '^leads' "$TH_ROOT/c1.out"
c2=$(th_spawn h2 "$TH_ROOT/c2.out" "$ctl" lead "etcd:$ep" c2 3000)
wait_for 15 "c2 seeing c1 lead" grep -q 'c2 waits: c1 leads' "$TH_ROOT/c2.out"
grep -q '^leads' "$TH_ROOT/c2.out" && fail "c2 leads beside c1"
wait_for 5 "c1 writing" grep -q '^wrote' "$TH_ROOT/c1.out"

echo "--- c1 paused past its lease: c2 takes over, c1 steps down on waking"
kill -STOP "$c1"
wait_for 20 "c2 leading once c1's lease ended" grep -q '^leads' "$TH_ROOT/c2.out"
wait_for 5 "c2 writing" grep -q '^wrote' "$TH_ROOT/c2.out"
kill -CONT "$c1"
wait_for 10 "c1 stepping down" grep -q '^stops' "$TH_ROOT/c1.out"
cat "$TH_ROOT/c1.out"
first2=$(writes "$TH_ROOT/c2.out" | head -n 1)
last1=$(writes "$TH_ROOT/c1.out" | tail -n 1)
[ "$last1" -lt "$first2" ] ||
    fail "c1 wrote at revision $last1, after c2 led and wrote at $first2"
n1=$(count '^wrote' "$TH_ROOT/c1.out")

echo "--- the first endpoint drops every packet: a contender asks the next"
# As a crashed host's address does: the connection attempt is not refused,
# it goes unanswered.  Before: the store kept asking that endpoint.
th_exec h4 iptables -A INPUT -p tcp --dport 2379 -j DROP ||
    fail "cannot drop etcd's port on h4"
c3=$(th_spawn h3 "$TH_ROOT/c3.out" "$ctl" lead \
    "etcd:http://$(th_addr h4):2379,$ep" c3 3000)
wait_for 20 "c3 reaching etcd past h4" grep -q 'c3 waits: c2 leads' \
    "$TH_ROOT/c3.out"
grep -q '^leads' "$TH_ROOT/c3.out" && fail "c3 leads beside c2"
kill "$c3" 2>/dev/null || :

echo "--- one etcd member down (not etcd's leader: no election): c2 goes on"
f=$(etcd_follower) || fail "no etcd member says it follows"
etcd_stop "$f"
n=$(count '^wrote' "$TH_ROOT/c2.out")
wait_for 15 "c2 writing with two members" \
    eval '[ "$(count "^wrote" "$TH_ROOT/c2.out")" -gt $((n + 10)) ]'
grep -q '^stops' "$TH_ROOT/c2.out" && fail "c2 stopped leading with a quorum"

echo "--- two down: no quorum, c2 stops leading by itself"
for h in h1 h2 h3; do
	[ "$h" = "$f" ] || { etcd_stop "$h"; break; }
done
wait_for 20 "c2 stepping down without a quorum" grep -q '^stops' "$TH_ROOT/c2.out"
grep '^stops' "$TH_ROOT/c2.out"
[ "$(count '^wrote' "$TH_ROOT/c1.out")" = "$n1" ] ||
    fail "c1 wrote again after it was deposed"
kill "$c1" "$c2" 2>/dev/null || :
echo "store-etcd: ok"
