#!/usr/bin/env bash
# failover: how long a protected container ("--ha restart") is gone when
# its host crashes, on three test hosts as in tests/integration/
# ha-failover.sh (h3 the coordinator, h1 and h2 agents holding leases).
# The container is the witness (tests/lib/witness.sh): a program that
# appends "RUN HOST COUNTER TIME" (TIME: its wall clock) every 20 ms to a file on the shared
# rootfs.  Each trial crashes the host it runs on (th_crash: link cut,
# every process SIGKILLed) and measures, from the crash:
#   decided  the coordinator's log line "failover: mc ... moved"
#   ternd    the survivor's log line "container mc: started"
#   witness  the first record of the new copy, written on the survivor:
#            the instance's own word that it runs again
# then checks the witness (two copies whose records overlap in time: the
# bench says FAIL and exits 1), that the new copy writes from the survivor
# and that exactly one copy runs, and revives the crashed host (its ternd
# must discard its stale copy) before the next trial crashes the other
# host.  BENCH_FAILOVER_TRIALS (10) trials with the journal store, then as
# many with store = "etcd" (three members, one on each test host, so a
# crash takes one member with it).  The last line is the journal's p50 of
# the witness figure.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
. "$TERN_SRCDIR/tests/lib/witness.sh"
. "$TERN_SRCDIR/tests/lib/etcd.sh"
. "$TERN_SRCDIR/tests/lib/ha.sh"

TRIALS=${BENCH_FAILOVER_TRIALS:-10}
TTL=${BENCH_FAILOVER_TTL_MS:-2000}
MARGIN=${BENCH_FAILOVER_MARGIN_MS:-500}
HA_TTL_MS=$TTL
HA_MARGIN_MS=$MARGIN
# Trials stop once a section has run this long (the bench's own bound).
BUDGET=${BENCH_FAILOVER_BUDGET_S:-240}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# die: one runner broken (two copies, or the wrong host): FAIL, exit 1.
# broken: the setup or a trial did not work (nothing came back in time):
# the section ends with the reason, exit 2.
die() { echo "failover: FAIL: $*" >&2; exit 1; }
broken() {
	echo "$*" >"$OUT/why"
	echo "failover: store $STORE: $*" >&2
	exit 2
}

# logtime HOST PATTERN FROM: the time (epoch seconds) of the first line of
# HOST's ternd log after line FROM that matches PATTERN; nothing if none.
logtime() {
	local stamp
	stamp=$(awk -v from="$3" -v pat="$2" \
	    'NR > from && index($0, pat) { print $1; exit }' "$(cl_log "$1")")
	[ -n "$stamp" ] && date -d "$stamp" +%s.%N
}
loglines() { wc -l <"$(cl_log "$1")"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
# stats V...: "p50 X max Y" (p50: the lower middle of an even count).
stats() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
	    END { printf "p50 %.2f s, max %.2f s", v[int((NR + 1) / 2)], v[NR] }'
}
p50() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }

state_on() { inst_field "$1" mc state; }
gone_from() { [ -z "$(state_on "$1")" ]; }
one_copy() { [ "$(witness_copies mc h1 h2)" = 1 ]; }
etcd_member_up() {
	[ "$STORE" = etcd ] || return 0
	etcd_restart "$1"
}

# setup STORE: hosts, ternds (h3 coordinating with STORE), mc running on
# h1.  Sets WFILE.  Fails (return 1) saying why.
setup() {
	local h
	HA_COORD_CONF=()
	th_setup 3 >/dev/null || return 1
	if [ "$STORE" = etcd ]; then
		etcd_up h1 h2 h3 || { echo "etcd did not come up" >&2; return 1; }
		HA_COORD_CONF=("store = \"etcd\""
		    "etcd_endpoints = \"$(etcd_endpoints)\"")
	fi
	ha_setup 'log_filters = "info"' || return 1
	for h in h1 h2 h3; do cl_start $h || return 1; done
	ha_wait || return 1
	rootfs_make "$TH_ROOT/rootfs" 2>/dev/null && witness_spec "$TH_ROOT/rootfs" mc || return 1
	WFILE=$(witness_file "$TH_ROOT/rootfs" mc)
	cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" --ha restart >/dev/null &&
	    cl_ctl h1 start mc >/dev/null || return 1
	th_wait 20 eval '[ "$(witness_host "$WFILE")" = h1 ]' || {
		echo "mc never wrote from h1" >&2
		return 1
	}
}

# trial N FROM TO: crash FROM, wait for mc on TO, check, revive FROM.
# Appends to W (witness), T (ternd) and D (decided).
trial() {
	local n=$1 from=$2 to=$3 wall up l3 lto since w t d r gap rb
	l3=$(loglines h3) lto=$(loglines "$to")
	wall=$(date +%s.%N) up=$(witness_now)
	th_crash "$from" || broken "th_crash $from failed"
	# The instance's own word: a copy that started after the crash.
	since=
	for ((r = 0; r < 600; r++)); do
		if [ "$(witness_host "$WFILE")" = "$to" ]; then
			since=$(witness_check "$WFILE" --since "$up" | grep '^since ' || :)
			[ -n "$since" ] && break
		fi
		sleep 0.1
	done
	[ -n "$since" ] || broken "trial $n: mc never wrote from $to within 60 s" \
	    "after $from crashed; h3: $(grep failover "$(cl_log h3)" | tail -n 2)"
	witness_check "$WFILE" >"$TH_ROOT/check.out" || {
		cat "$TH_ROOT/check.out" >&2
		die "trial $n: two copies of mc ran at once (the witness says so)"
	}
	read -r _ _ _ r t <<<"$since"	# since T: RUN HOST FIRST COUNTER
	[ "$r" = "$to" ] || die "trial $n: the new copy writes from $r, not $to"
	w=$(sub "${t%% *}" "$up")
	th_wait 10 eval '[ "$(state_on "$to")" = running ]' ||
	    broken "trial $n: ternd on $to says mc is $(state_on "$to")"
	t=$(logtime "$to" "container mc: started" "$lto")
	d=$(logtime h3 "failover: mc (was on $from): moved from $from to $to" "$l3")
	[ -n "$t" ] && [ -n "$d" ] || broken "trial $n: no start on $to or no failover in h3's log"
	t=$(sub "$t" "$wall") d=$(sub "$d" "$wall")
	one_copy || die "trial $n: $(witness_copies mc h1 h2) copies of mc run"
	l=$(grep '^handover' "$TH_ROOT/check.out" | tail -n 1)
	gap=$(sed -n 's/.*: gap \([0-9.]*\) s.*/\1/p' <<<"$l")
	rb=$(sed -n 's/.*rolled back \(-\{0,1\}[0-9]*\).*/\1/p' <<<"$l")
	printf '  trial %2d: %s -> %s: decided %5.2f s, ternd %5.2f s, witness %5.2f s (gap %s s, rolled back %s)\n' \
	    "$n" "$from" "$to" "$d" "$t" "$w" "$gap" "$rb"
	W+=("$w") T+=("$t") D+=("$d")
	# Far slower than ttl + margin: what the coordinator's store said
	# meanwhile (its first and last lines, how many).
	if awk -v d="$d" -v l="$(( (TTL + MARGIN) * 3 ))" 'BEGIN { exit !(d * 1000 > l) }'; then
		awk -v from="$l3" 'NR <= from { next }
		    / failover: mc / { exit }
		    /store: / { n++; if (n <= 2) s[n] = $0; l = $0 }
		    END { if (!n) exit
			print "    slow: h3 logged " n " store lines before deciding; the first two and the last:"
			for (i = 1; i <= n && i <= 2; i++) print "      " s[i]
			if (n > 2) print "      " l }' "$(cl_log h3)"
	fi
	# The crashed host comes back: it must discard its stale copy.
	th_revive "$from" || broken "th_revive $from failed"
	etcd_member_up "$from" || broken "etcd on $from did not come back"
	cl_start "$from" >/dev/null || broken "ternd on $from did not start"
	th_wait 30 ha_has_lease "$from" || broken "$from got no lease back" \
	    "($(grep -i 'lease\|coordinator' "$(cl_log "$from")" | tail -n 2))"
	th_wait 20 gone_from "$from" || broken "$from kept mc: $(state_on "$from")"
	one_copy || die "trial $n: $(witness_copies mc h1 h2) copies after $from came back"
}

# run STORE: one section, in a subshell with its own test hosts; its
# witness p50 goes to $OUT/STORE.
run() {
	local i from=h1 to=h2 start
	STORE=$1 W=() T=() D=()
	trap th_teardown EXIT
	echo "failover: store $STORE, lease_ttl_ms $TTL, lease_margin_ms $MARGIN," \
	    "$TRIALS trials (times from the crash)"
	setup >"$OUT/setup.log" 2>&1 ||
	    broken "setup failed: $(tail -n 3 "$OUT/setup.log" | tr '\n' ' ')"
	start=$SECONDS
	for ((i = 1; i <= TRIALS; i++)); do
		if [ "$((SECONDS - start))" -ge "$BUDGET" ]; then
			echo "  stopped after $((i - 1)) of $TRIALS trials: the section's" \
			    "time budget ($BUDGET s, BENCH_FAILOVER_BUDGET_S) is spent"
			echo "$((i - 1)) of $TRIALS trials" >"$OUT/$STORE.short"
			break
		fi
		trial "$i" "$from" "$to"
		set -- "$to" "$from"
		from=$1 to=$2
	done
	echo "  $(head -n 1 "$TH_ROOT/check.out")"
	echo "  decided: $(stats "${D[@]}")"
	echo "  ternd:   $(stats "${T[@]}")"
	echo "  witness: $(stats "${W[@]}")"
	echo "$(p50 "${W[@]}"), max $(printf '%s\n' "${W[@]}" | sort -n | tail -n 1)" >"$OUT/$STORE"
	cl_stop_all >/dev/null 2>&1 || :
}

# BENCH_FAILOVER_STORES="etcd": one section only (no final line without
# the journal's).
STORES=${BENCH_FAILOVER_STORES:-journal etcd}
rc=0
case " $STORES " in
*" journal "*)
	(run journal) || rc=$?
	[ "$rc" = 0 ] ||
	    { echo "failover: FAIL: the journal section did not finish" >&2; exit 1; }
	[ ! -f "$OUT/journal.short" ] ||
	    { echo "failover: FAIL: the journal store took too long" >&2; exit 1; } ;;
esac
rc=0
if [[ " $STORES " != *" etcd "* ]]; then
	:
elif ! etcd_check; then
	echo "failover: store etcd: not run: no etcd binary (package etcd-server)"
else
	(run etcd) || rc=$?
	case $rc in
	0) echo "failover: store etcd: p50 seconds = $(cat "$OUT/etcd") (goal <= 8)$(
	    [ -f "$OUT/etcd.short" ] && echo ", over $(cat "$OUT/etcd.short") only")" ;;
	2) echo "failover: store etcd: not run: $(cat "$OUT/why")" ;;
	*) exit 1 ;;
	esac
fi
if [ -f "$OUT/journal" ]; then
	echo "failover: p50 seconds = $(cut -d, -f1 "$OUT/journal") (goal <= 3)"
fi
