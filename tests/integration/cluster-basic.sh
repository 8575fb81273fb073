#!/usr/bin/env bash
# Three hosts come up, authenticate each other with mutual TLS and see each
# other; a cut link and a crashed host are seen as down, and come back.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

# state of HOST as seen from VIEWER
state_of() {
	cl_ctl "$1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        print(h["state"])' "$2"
}

wait_log() {	# HOST PATTERN: until HOST's log has it (5 s)
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q -- "$2" "$(cl_log "$1")" && return 0
		sleep 0.1
	done
	return 1
}

wait_state() {	# VIEWER HOST STATE TIMEOUT_S
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		[ "$(state_of "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	fail "$1 sees $2 as $(state_of "$1" "$2"), expected $3"
}

cl_up 3

for h in h1 h2 h3; do
	cl_ctl $h hosts
	for o in h1 h2 h3; do
		want=up; [ $h = $o ] && want=self
		[ "$(state_of $h $o)" = $want ] || fail "$h sees $o as $(state_of $h $o)"
	done
	grep -q "authenticated by mutual TLS" "$(cl_log $h)" ||
		fail "$h logged no mutual TLS authentication"
done

cl_ctl h1 ping h2 | grep -q "h2: rtt" || fail "ping h2 from h1"
cl_ctl h1 status | grep -q "2 of 2 up" || fail "status of h1"
cl_ctl h1 --json status | grep -q '"peers_up":2' || fail "status --json"

# Unknown host: a clear error and exit status 1.
set +e
out=$(cl_ctl h1 ping nosuchhost 2>&1); rc=$?
set -e
[ $rc = 1 ] || fail "ping to an unknown host exited $rc"
grep -q 'unknown host "nosuchhost"' <<<"$out" || fail "error was: $out"

# The control socket: root only by default; the file mode keeps others out,
# and SO_PEERCRED refuses them even when the mode would let them in.
as_nobody() { th_exec h1 setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
set +e
out=$(as_nobody "$TERN_BUILDDIR/ternctl" -s /run/tern/ternd.sock status 2>&1); rc=$?
set -e
[ $rc = 3 ] || fail "nobody reached the control socket (rc $rc): $out"
chmod 666 "$(th_root_path h1 /run/tern/ternd.sock)"
set +e
out=$(as_nobody "$TERN_BUILDDIR/ternctl" -s /run/tern/ternd.sock status 2>&1); rc=$?
set -e
[ $rc = 1 ] || fail "nobody was served on a 0666 socket (rc $rc): $out"
grep -q "permission denied" <<<"$out" || fail "no permission error: $out"
grep -q "refused pid .* uid 65534" "$(cl_log h1)" || fail "refusal not logged"
# Members of control_group are let in (nogroup stands in for "tern").
cl_conf h2 'control_group = "nogroup"'
cl_stop h2
cl_start h2
th_exec h2 setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$TERN_BUILDDIR/ternctl" -s /run/tern/ternd.sock status >/dev/null ||
	fail "a control_group member was refused"
cl_wait_up h2 3 15

# A stream of generated data arrives whole.
cl_ctl h1 stream-test h3 --bytes 64M | grep -q "67108864 bytes" ||
	fail "stream-test h1 -> h3"

# Cut h3's link: both others see it down, then up again once healed.
th_cut h3
wait_state h1 h3 down 10
wait_state h2 h3 down 10
th_heal h3
wait_state h1 h3 up 15
wait_state h2 h3 up 15

# Crash h2 (every process at once): seen down, with the reason.
th_crash h2
wait_state h1 h2 down 10
cl_ctl h1 hosts --json | grep -q '"last_error"' || fail "no last_error for h2"
# ... and a ternd restarted on it is seen up again.
th_revive h2
cl_start h2
wait_state h1 h2 up 15
wait_state h3 h2 up 15

# SIGHUP with a broken configuration keeps the old one and keeps serving.
conf="$(th_dir h1)/etc/ternd.conf"
cp "$conf" "$conf.good"
echo 'listen_port = "not a number"' >> "$conf"
kill -HUP "$(cat "$(th_root_path h1 /run/tern/ternd.pid)")"
wait_log h1 "reload failed, keeping the old configuration" ||
	fail "broken reload not reported"
cl_ctl h1 status | grep -q "2 of 2 up" || fail "h1 stopped serving after a bad reload"
cp "$conf.good" "$conf"
kill -HUP "$(cat "$(th_root_path h1 /run/tern/ternd.pid)")"
wait_log h1 "configuration reloaded" || fail "good reload not applied"

# A second ternd on the same host refuses to start (pidfile lock).
set +e
th_exec h1 "$TERN_BUILDDIR/ternd" -F -f "$conf" > "$TH_ROOT/second.log" 2>&1
rc=$?
set -e
[ $rc != 0 ] || fail "a second ternd started"
grep -q "another ternd" "$TH_ROOT/second.log" || fail "second ternd: $(cat "$TH_ROOT/second.log")"

# Clean shutdown on SIGTERM: exits, removes its socket and pidfile.
cl_stop h3
[ ! -e "$(th_root_path h3 /run/tern/ternd.sock)" ] || fail "socket left behind"
grep -q "stopped" "$(cl_log h3)" || fail "h3 did not log a clean stop"
# Every ternd stops cleanly on SIGTERM, with no sanitizer report.
cl_stop_all || fail "a ternd did not stop cleanly (see its log)"
echo "cluster-basic: ok"
