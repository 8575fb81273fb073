#!/usr/bin/env bash
# The one-runner checker (tests/tools/witness-check.py) on crafted record
# files: two copies at once fail it, however they interleave; a clean
# handover passes and reports its gap and the state it rolled back (count
# and time).  Then the same checks against copies of the checker with a
# bug planted in each (one sed each): every one must make them fail, or
# the checks would not notice that bug in the real checker.
# Needs no root and no test hosts.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/assert.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
command -v python3 >/dev/null || exit 77
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# ticks RUN HOST FIRST_COUNT FROM_TIME N: N records, 20 ms apart.
ticks() {
	awk -v r="$1" -v h="$2" -v n="$3" -v t="$4" -v k="$5" 'BEGIN {
		for (i = 0; i < k; i++)
			printf "%s %s %d %.6f\n", r, h, n + i, t + i * 0.02 }'
}
passes() { out=$(witness_check "$@") || fail "checker failed on $1: $out"; }
fails() {
	local rc=0
	out=$(witness_check "$@") || rc=$?
	[ "$rc" = 1 ] || fail "checker did not fail (rc $rc) on $1: $out"
	grep -q "OVERLAP" <<<"$out" || fail "no OVERLAP line for $1: $out"
}

checks() {
	echo "--- a clean failover: new run on h2 2.5 s later, carrying on from the disk"
	{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 51 103.48 50; } >"$dir/clean"
	passes "$dir/clean"
	echo "$out"
	grep -q "^witness: 100 records, 2 copies, none overlapping$" <<<"$out" ||
	    fail "summary: $out"
	grep -q "^handover 1: aaaa@h1 -> bbbb@h2: gap 2.50 s (100.98 -> 103.48), rolled back 0 (#50 -> #51, 0.00 s)$" \
	    <<<"$out" || fail "handover line: $out"

	echo "--- the new copy's records first in the file: only TIME orders copies"
	{ ticks bbbb h2 51 103.48 50; ticks aaaa h1 1 100.00 50; } >"$dir/reversed"
	passes "$dir/reversed"
	grep -q "^handover 1: aaaa@h1 -> bbbb@h2: gap 2.50 s (100.98 -> 103.48), rolled back 0 (#50 -> #51, 0.00 s)$" \
	    <<<"$out" || fail "handover line, lines reversed: $out"

	echo "--- on the wall clock (what the witness writes): microseconds count"
	{ ticks aaaa h1 1 1796335605.848885 50; ticks bbbb h2 51 1796335608.329000 5; } \
	    >"$dir/wall"
	passes "$dir/wall"
	grep -q "^handover 1: aaaa@h1 -> bbbb@h2: gap 1.50 s (1796335606.83 -> 1796335608.33), rolled back 0" \
	    <<<"$out" || fail "wall clock: $out"
	{ ticks aaaa h1 1 1796335605.848885 50; ticks bbbb h2 51 1796335606.828880 5; } \
	    >"$dir/wall-touch"
	fails "$dir/wall-touch"

	echo "--- a cold start from 0 rolls back everything; a restore from an image some"
	echo "    ticks old rolls back those (same run id, another host), and their time"
	{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 1 103.00 20;
	  ticks bbbb h1 11 104.00 5; } >"$dir/rollback"
	passes "$dir/rollback"
	echo "$out"
	grep -q "handover 1: .* rolled back 50 (#50 -> #1, - s)$" <<<"$out" || fail "$out"
	grep -q "handover 2: bbbb@h2 -> bbbb@h1: gap 0.62 s .* rolled back 10 (#20 -> #11, 0.20 s)$" \
	    <<<"$out" || fail "$out"

	echo "--- a live migration: the same run, the next count, another host"
	{ ticks aaaa h1 1 100.00 50; ticks aaaa h2 51 101.10 10; } >"$dir/moved"
	passes "$dir/moved"
	grep -q "^witness: 60 records, 2 copies, none overlapping$" <<<"$out" ||
	    fail "a move to another host is not a copy of its own: $out"
	grep -q "^handover 1: aaaa@h1 -> aaaa@h2: gap 0.12 s (100.98 -> 101.10), rolled back 0 (#50 -> #51, 0.00 s)$" \
	    <<<"$out" || fail "$out"

	echo "--- --since: the first copy that started after a moment"
	passes "$dir/clean" --since 101.5
	grep -q "^since 101.50: bbbb h2 103.48 51$" <<<"$out" || fail "$out"
	rc=0
	witness_check "$dir/clean" --since 200 >/dev/null || rc=$?
	[ "$rc" = 3 ] || fail "--since after every copy: rc $rc, not 3"
	rc=0
	witness_check "$dir/clean" --since 103.48 >/dev/null || rc=$?
	[ "$rc" = 3 ] || fail "--since a copy's first record: rc $rc, not 3"

	echo "--- two runs overlapping by one tick"
	{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 51 100.98 5; } >"$dir/touch"
	fails "$dir/touch"
	echo "$out"

	echo "--- two runs interleaving line by line (the file in write order)"
	paste -d '\n' <(ticks aaaa h1 1 100.00 30) <(ticks bbbb h2 1 100.01 30) >"$dir/mixed"
	fails "$dir/mixed"

	echo "--- a restored copy on h2 while the old one still runs on h1"
	{ ticks aaaa h1 1 100.00 40;
	  paste -d '\n' <(ticks aaaa h1 41 100.80 10) <(ticks aaaa h2 31 100.81 10); } \
	    >"$dir/restored-beside"
	fails "$dir/restored-beside"

	echo "--- one image restored on two hosts at once (same run id and counts)"
	{ ticks aaaa h1 1 100.00 20; } >"$dir/twice"
	paste -d '\n' <(ticks aaaa h2 15 101.00 10) <(ticks aaaa h3 15 101.01 10) >>"$dir/twice"
	fails "$dir/twice"

	echo "--- ... and twice on one host (two chains of one key)"
	{ ticks aaaa h1 1 100.00 20; } >"$dir/twice1"
	paste -d '\n' <(ticks aaaa h2 15 101.00 10) <(ticks aaaa h2 15 101.01 10) >>"$dir/twice1"
	fails "$dir/twice1"

	echo "--- one image restored twice on one host, one after the other"
	{ ticks aaaa h1 1 100.00 20; ticks aaaa h2 15 101.00 10;
	  ticks aaaa h2 15 102.00 12; } >"$dir/again"
	passes "$dir/again"
	grep -q "^witness: 42 records, 3 copies, none overlapping$" <<<"$out" ||
	    fail "$out"
	grep -q "^handover 2: aaaa@h2 -> aaaa@h2: gap 0.82 s (101.18 -> 102.00), rolled back 10 (#24 -> #15, - s)$" \
	    <<<"$out" || fail "$out"

	echo "--- ... then a newer image of the first copy there: a count that jumps"
	echo "    ahead is another copy too (it rolls back a negative amount)"
	{ ticks aaaa h1 1 100.00 40; ticks aaaa h2 15 101.00 10;
	  ticks aaaa h2 31 102.00 10; } >"$dir/newer"
	passes "$dir/newer"
	grep -q "^witness: 60 records, 3 copies, none overlapping$" <<<"$out" ||
	    fail "$out"
	grep -q "^handover 2: aaaa@h2 -> aaaa@h2: gap 0.82 s (101.18 -> 102.00), rolled back -6 (#24 -> #31, - s)$" \
	    <<<"$out" || fail "$out"

	echo "--- a short copy inside a long one"
	{ ticks aaaa h1 1 100.00 100; ticks cccc h2 1 101.00 1; } >"$dir/inside"
	fails "$dir/inside"

	echo "--- a long copy beside two later ones: each overlap is named"
	{ ticks aaaa h1 1 100.00 100; ticks bbbb h2 1 100.50 5;
	  ticks cccc h3 1 101.00 5; } >"$dir/long"
	fails "$dir/long"
	grep -q "aaaa@h1 .* and bbbb@h2 .* ran at the same time" <<<"$out" ||
	    fail "first overlap not named: $out"
	grep -q "aaaa@h1 .* and cccc@h3 .* ran at the same time" <<<"$out" ||
	    fail "the overlap with the long copy not named: $out"

	echo "--- no records, and lines that are not records"
	: >"$dir/empty"
	rc=0
	witness_check "$dir/empty" >/dev/null || rc=$?
	[ "$rc" = 1 ] || fail "an empty file passes (rc $rc)"
	{ ticks aaaa h1 1 100.00 3; echo "garbage"; echo "aaaa h1 x 1.0";
	  echo "aaaa h1 4 100.06 extra"; } >"$dir/bad"
	passes "$dir/bad"
	grep -q "3 unreadable lines" <<<"$out" || fail "$out"
	grep -q "^witness: 3 records, 1 copies" <<<"$out" || fail "$out"
}

( checks ) || fail "the checker"

# Planted bugs: each sed must change the checker, and the checks must
# then fail.  A mutant the checks pass lets that bug through.
mutants=(
	's/if c.t0 <= widest.t1:/if c.t0 < widest.t1:/'
	's/        if c.t1 > widest.t1:/        if True:/'
	's/chains.sort(key=lambda c: (c.t0, c.t1))/pass/'
	's/own = tips.setdefault((run, host), \[\])/own = tips.setdefault(run, [])/'
	's/if c.last_n + 1 == n:/if c.last_n < n:/'
	's/for c in reversed(own):/for c in own:/'
	's/if len(p) != 4:/if len(p) < 4:/'
	's/later = \[c for c in chains if c.t0 > since\]/later = [c for c in chains if c.t0 >= since]/'
	's/t = a.times.get(b.first_n - 1)/t = a.times.get(b.first_n)/'
	's/c.last_n, c.t1 = n, max(c.t1, t)/c.last_n = n/'
)
echo "--- ${#mutants[@]} planted bugs"
for m in "${mutants[@]}"; do
	sed "$m" "$TERN_SRCDIR/tests/tools/witness-check.py" >"$dir/mutant.py"
	! cmp -s "$dir/mutant.py" "$TERN_SRCDIR/tests/tools/witness-check.py" ||
	    fail "the planted bug '$m' changes nothing (the checker changed?)"
	if (WITNESS_CHECK=$dir/mutant.py checks) >"$dir/mutant.out" 2>&1; then
		fail "the checks pass with the planted bug '$m'"
	fi
	echo "caught: $m ($(grep -m 1 '^FAIL' "$dir/mutant.out"))"
done
echo "PASS"
