#!/bin/bash
# "ternd -n -f FILE" checks a configuration file and exits: 1 with
# "FILE:LINE: reason" on stderr for a bad file, 0 with "configuration OK"
# on stdout for a good one.
#
# Needs TERN_BUILDDIR, the build directory holding the ternd binary (set by
# "make check"; defaults to the current directory).
set -eu

builddir=${TERN_BUILDDIR:-.}
ternd="$builddir/ternd"
if [ ! -x "$ternd" ]; then
	echo "config-errors: $ternd not found or not executable" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-config-errors.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0

fail()
{
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# run FILE: run ternd -n on FILE, leaving the status in $rc and the output
# in $tmp/out and $tmp/err.
run()
{
	rc=0
	"$ternd" -n -f "$1" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
}

# expect_error NAME LINE REASON: the configuration on stdin must make ternd
# exit 1 and print "FILE:LINE: REASON..." (just "FILE: REASON" if LINE is
# 0) on stderr.
expect_error()
{
	local name=$1 line=$2 reason=$3 file want

	file="$tmp/$name.conf"
	cat >"$file"
	if [ "$line" = 0 ]; then
		want="$file: $reason"
	else
		want="$file:$line: $reason"
	fi
	run "$file"
	if [ "$rc" -ne 1 ]; then
		fail "$name: exit status $rc, expected 1 (stderr: $(cat "$tmp/err"))"
		return 0
	fi
	if ! grep -qF -- "$want" "$tmp/err"; then
		fail "$name: stderr does not contain \"$want\": $(cat "$tmp/err")"
		return 0
	fi
	echo "ok: $name"
}

expect_error unknown-option 3 'unknown option "listen_prot"' <<'EOF'
host_name = "alpha"
# a comment
listen_prot = 7480
EOF

expect_error out-of-range 2 'listen_port: 70000 is out of range (1..65535)' <<'EOF'
host_name = "alpha"
listen_port = 70000
EOF

expect_error size-range 4 'max_frame_size: 32K is out of range (64K..16M)' <<'EOF'
host_name = "alpha"

# too small
max_frame_size = 32K
EOF

expect_error wrong-type 2 'listen_port: expected an integer' <<'EOF'
host_name = "alpha"
listen_port = "7480"
EOF

expect_error duplicate 4 'listen_port: duplicate option (first set on line 2)' <<'EOF'
host_name = "alpha"
listen_port = 7480

listen_port = 7481
EOF

expect_error missing-required 0 'host_name is required' <<'EOF'
listen_port = 7480
EOF

expect_error malformed 2 'malformed line' <<'EOF'
host_name = "alpha"
listen_port 7480
EOF

expect_error bad-host-name 1 'host_name: "Alpha" is not a valid host name' <<'EOF'
host_name = "Alpha"
EOF

expect_error unterminated-string 2 'host_name: unterminated string' <<'EOF'
# the string is never closed
host_name = "alpha
EOF

expect_error unterminated-list 2 'peers: unterminated list' <<'EOF'
host_name = "alpha"
peers = [
	"beta@192.0.2.2:7480",
	# and then nothing
EOF

expect_error bad-peer 4 'peers: "gamma@192.0.2.3:0": port "0" is not in 1..65535' <<'EOF'
host_name = "alpha"
peers = [
	"beta@192.0.2.2:7480",
	"gamma@192.0.2.3:0",
]
EOF

expect_error peer-is-self 2 'peers: peer "alpha" has the same name as host_name' <<'EOF'
host_name = "alpha"
peers = [ "alpha@192.0.2.1:7480" ]
EOF

expect_error timeouts 3 'peer_timeout_ms (500) must be greater than heartbeat_interval_ms (1000)' <<'EOF'
host_name = "alpha"
heartbeat_interval_ms = 1000
peer_timeout_ms = 500
EOF

printf 'host_name = "alpha"\nlisten_port = 1\0\n' >"$tmp/nul.bin"
expect_error nul-byte 2 'NUL byte' <"$tmp/nul.bin"

# A file that is not there.
run "$tmp/missing.conf"
if [ "$rc" -ne 1 ]; then
	fail "missing-file: exit status $rc, expected 1"
elif ! grep -qF -- "$tmp/missing.conf: No such file or directory" "$tmp/err"; then
	fail "missing-file: stderr: $(cat "$tmp/err")"
else
	echo "ok: missing-file"
fi

# log_filters is stored by the parser and checked by ternd.
cat >"$tmp/log-filters.conf" <<'EOF'
host_name = "alpha"
log_filters = "tls:loud"
EOF
run "$tmp/log-filters.conf"
if [ "$rc" -ne 1 ]; then
	fail "log-filters: exit status $rc, expected 1"
elif ! grep -qF -- "log_filters" "$tmp/err"; then
	fail "log-filters: stderr does not mention log_filters: $(cat "$tmp/err")"
else
	echo "ok: log-filters"
fi

# A good file.
cat >"$tmp/good.conf" <<EOF
# ternd.conf for host alpha
host_name = "alpha"
listen_address = "127.0.0.1"
listen_port = 17480
peers = [
	"beta@127.0.0.2:17480",		# rack 2
	"gamma@localhost:17481",
]
ca_file = "$tmp/pki/ca.pem"
cert_file = "$tmp/pki/host.pem"
key_file = "$tmp/pki/host.key"
state_dir = "$tmp/state"
run_dir = "$tmp/run"
log_filters = "tls:debug *:info"
max_frame_size = 2M
stream_window = 16M
send_buffer_max = 8M
heartbeat_interval_ms = 200
peer_timeout_ms = 1000
reconnect_max_ms = 5000
EOF
run "$tmp/good.conf"
if [ "$rc" -ne 0 ]; then
	fail "good: exit status $rc, expected 0 (stderr: $(cat "$tmp/err"))"
elif ! grep -qF -- "configuration OK" "$tmp/out"; then
	fail "good: stdout does not contain \"configuration OK\": $(cat "$tmp/out")"
else
	echo "ok: good"
fi

if [ "$failures" -ne 0 ]; then
	echo "config-errors: $failures check(s) failed" >&2
	exit 1
fi
echo "config-errors: all checks passed"
exit 0
