#!/usr/bin/env bash
# ternd learns at start what CRIU allows on this host (usable at all,
# lazy pages for post-copy, memory tracking for pre-copy), says it in its
# log and status, and tells its peers in Hello.  A missing or broken criu
# disables container work with the reason, and nothing else.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT

criu=$(sed -n 's/^#define CRIU_DEFAULT_PATH "\(.*\)"/\1/p' "$TERN_BUILDDIR/config.h")
[ -x "$criu" ] || fail "no criu at $criu (./quickstart deps installs it)"

th_setup 3
cl_pki
cl_conf h1
cl_conf h2 'criu_path = "/nonexistent/criu"'
broken="$TH_ROOT/broken-criu"
printf '#!/bin/sh\necho "broken on purpose" >&2\nexit 1\n' > "$broken"
chmod +x "$broken"
cl_conf h3 "criu_path = \"$broken\""
for h in h1 h2 h3; do cl_start $h; done
cl_wait_up h1 3 30

status() { cl_ctl "$1" --json status; }
caps_of() {	# VIEWER HOST: capabilities the viewer learnt from HOST's Hello
	cl_ctl "$1" hosts --json | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hosts"]:
    if h["name"] == sys.argv[1]:
        print(" ".join(h.get("capabilities", [])))' "$2"
}

# h1: a working CRIU.  Memory tracking is whatever the kernel offers.
s1=$(status h1)
echo "h1: $s1"
grep -q '"criu"' <<<"$s1" || fail "h1 does not report criu"
grep -q '"criu.lazy-pages"' <<<"$s1" || fail "h1 does not report lazy pages"
if "$criu" check --feature mem_dirty_track >/dev/null 2>&1; then
	grep -q '"criu.mem-track"' <<<"$s1" || fail "h1 misses memory tracking"
else
	grep -q '"criu.mem-track"' <<<"$s1" && fail "h1 claims memory tracking"
	grep -q 'memory tracking (pre-copy) no' <<<"$s1" ||
		fail "h1's status does not say pre-copy is unavailable"
	grep -Eq "will use (post-copy|stop-and-copy), not pre-copy" "$(cl_log h1)" ||
		fail "h1's log does not say how containers will migrate"
fi
caps_of h2 h1 | grep -qw criu || fail "h2 did not learn h1's capabilities"

# h2: no criu at that path.
s2=$(status h2)
echo "h2: $s2"
grep -q '"criu"' <<<"$s2" && fail "h2 claims criu"
grep -q 'no container support: /nonexistent/criu: No such file' <<<"$s2" ||
	fail "h2 does not say why"
grep -q "warn.*no container support" "$(cl_log h2)" || fail "h2 did not warn"
caps_of h1 h2 | grep -qw criu && fail "h1 believes h2 has criu"

# h3: a criu that fails.
s3=$(status h3)
echo "h3: $s3"
grep -q '"criu"' <<<"$s3" && fail "h3 claims criu"
grep -q 'no container support: .*broken-criu swrk: criu exited with status 1' <<<"$s3" ||
	fail "h3 does not say why"

cl_stop_all || fail "a ternd did not stop cleanly"
echo "criu-probe: ok"
