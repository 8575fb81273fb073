#!/usr/bin/env bash
# The one-runner checker (tests/tools/witness-check.py) on crafted record
# files: two copies at once fail it, however they interleave; a clean
# handover passes and reports its gap and the state it rolled back.
# Needs no root and no test hosts.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/assert.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
command -v python3 >/dev/null || exit 77
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# ticks RUN HOST FIRST_COUNT FROM_UPTIME N: N records, 20 ms apart.
ticks() {
	awk -v r="$1" -v h="$2" -v n="$3" -v t="$4" -v k="$5" 'BEGIN {
		for (i = 0; i < k; i++)
			printf "%s %s %d %.2f\n", r, h, n + i, t + i * 0.02 }'
}
passes() { out=$(witness_check "$@") || fail "checker failed on $1: $out"; }
fails() {
	local rc=0
	out=$(witness_check "$@") || rc=$?
	[ "$rc" = 1 ] || fail "checker did not fail (rc $rc) on $1: $out"
	grep -q "OVERLAP" <<<"$out" || fail "no OVERLAP line for $1: $out"
}

echo "--- a clean failover: new run on h2 2.5 s later, carrying on from the disk"
{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 51 103.48 50; } >"$dir/clean"
passes "$dir/clean"
echo "$out"
grep -q "^witness: 100 records, 2 copies, none overlapping$" <<<"$out" ||
    fail "summary: $out"
grep -q "^handover 1: aaaa@h1 -> bbbb@h2: gap 2.50 s (100.98 -> 103.48), rolled back 0 (#50 -> #51)$" \
    <<<"$out" || fail "handover line: $out"

echo "--- a cold start from 0 rolls back everything; a restore from an image some"
echo "    ticks old rolls back those (same run id, another host)"
{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 1 103.00 20;
  ticks bbbb h1 11 104.00 5; } >"$dir/rollback"
passes "$dir/rollback"
echo "$out"
grep -q "handover 1: .* rolled back 50 (#50 -> #1)$" <<<"$out" || fail "$out"
grep -q "handover 2: bbbb@h2 -> bbbb@h1: gap 0.62 s .* rolled back 10 (#20 -> #11)$" \
    <<<"$out" || fail "$out"

echo "--- --since: the first copy that started after a moment"
passes "$dir/clean" --since 101.5
grep -q "^since 101.50: bbbb h2 103.48 51$" <<<"$out" || fail "$out"
rc=0
witness_check "$dir/clean" --since 200 >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "--since after every copy: rc $rc, not 3"

echo "--- two runs overlapping by one tick"
{ ticks aaaa h1 1 100.00 50; ticks bbbb h2 51 100.98 5; } >"$dir/touch"
fails "$dir/touch"
echo "$out"

echo "--- two runs interleaving line by line (the file in write order)"
paste -d '\n' <(ticks aaaa h1 1 100.00 30) <(ticks bbbb h2 1 100.01 30) >"$dir/mixed"
fails "$dir/mixed"

echo "--- one image restored on two hosts at once (same run id and counts)"
{ ticks aaaa h1 1 100.00 20; } >"$dir/twice"
paste -d '\n' <(ticks aaaa h2 15 101.00 10) <(ticks aaaa h3 15 101.01 10) >>"$dir/twice"
fails "$dir/twice"

echo "--- ... and twice on one host (two chains of one key)"
{ ticks aaaa h1 1 100.00 20; } >"$dir/twice1"
paste -d '\n' <(ticks aaaa h2 15 101.00 10) <(ticks aaaa h2 15 101.01 10) >>"$dir/twice1"
fails "$dir/twice1"

echo "--- a short copy inside a long one"
{ ticks aaaa h1 1 100.00 100; ticks cccc h2 1 101.00 1; } >"$dir/inside"
fails "$dir/inside"

echo "--- no records, and lines that are not records"
: >"$dir/empty"
rc=0
witness_check "$dir/empty" >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "an empty file passes (rc $rc)"
{ ticks aaaa h1 1 100.00 3; echo "garbage"; echo "aaaa h1 x 1.0"; } >"$dir/bad"
passes "$dir/bad"
grep -q "2 unreadable lines" <<<"$out" || fail "$out"
echo "PASS"
