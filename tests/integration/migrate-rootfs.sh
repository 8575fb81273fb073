#!/usr/bin/env bash
# A container whose rootfs is on each host's own storage (not shared):
# its rootfs follows it, whole while it runs, then what changed while it
# is frozen.  It moves h1 -> h2 by stop-and-copy and back by post-copy,
# held to --bandwidth (rootfs passes, images and pages on one limit);
# memcheck verifies its memory, and a file written before each move and
# one the container keeps rewriting arrive intact.  The source's copy is
# removed once the target runs it.  A target whose rootfs path is already
# in use refuses, and nothing there is touched.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

TH_BINDS+=("srv:/srv")		# each host's own /srv
th_setup 2
cl_pki
cl_conf h1
cl_conf h2
cl_start h1
cl_start h2
cl_wait_up h1 2 30
cl_wait_criu h1 || fail "h1 cannot run containers"
cl_wait_criu h2 || fail "h2 cannot run containers"

# /srv/mc on h1 is $TH_ROOT/h1/srv/mc here.
rootfs_make "$TH_ROOT/h1/srv/mc"
ROOTFS_SPEC_ROOT=/srv/mc rootfs_spec "$TH_ROOT/h1/srv/mc" mc /bin/memcheck 32 /var/log/memcheck.state
mv "$TH_ROOT/h1/srv/mc.json" "$TH_ROOT/mc.json"
state() { echo "$TH_ROOT/$1/srv/mc/var/log/memcheck.state"; }

cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null
cl_ctl h1 start mc >/dev/null
inst_wait_ready "$(state h1)" || fail "memcheck did not start"
inst_verify h1 mc "$(state h1)" "started on h1"

# move FROM TO MODE [ARG...]: a fresh file goes along; FROM's copy goes
# away.
move() {
	local from=$1 to=$2 mode=$3 sum
	shift 3
	mkdir -p "$TH_ROOT/$from/srv/mc/data"
	head -c 3000000 /dev/urandom >"$TH_ROOT/$from/srv/mc/data/blob-$to"
	sum=$(sha256sum <"$TH_ROOT/$from/srv/mc/data/blob-$to")
	cl_ctl "$from" migrate mc --to "$to" --mode "$mode" "$@"
	[ "$(inst_field "$to" mc state)" = running ] ||
	    fail "mc is not running on $to: $(inst_field "$to" mc state)"
	[ -z "$(inst_field "$from" mc state)" ] || fail "$from still lists mc"
	[ "$(sha256sum <"$TH_ROOT/$to/srv/mc/data/blob-$to")" = "$sum" ] ||
	    fail "the file written on $from arrived damaged on $to"
	[ ! -e "$TH_ROOT/$from/srv/mc" ] || fail "$from kept its rootfs copy"
	inst_verify "$to" mc "$(state "$to")" "moved to $to ($mode)"
	# The state file memcheck rewrote up to the freeze came along too.
	grep -q "^ready" "$(state "$to")" || fail "memcheck's state file lost"
}
move h1 h2 stopcopy
move h2 h1 postcopy --bandwidth 20M

# h2 already has something at /srv/mc: refused, both sides untouched.
mkdir -p "$TH_ROOT/h2/srv/mc"
echo keep >"$TH_ROOT/h2/srv/mc/other"
set +e
out=$(cl_ctl h1 migrate mc --to h2 2>&1); rc=$?
set -e
echo "refused: $out"
[ $rc = 1 ] || fail "migrate onto a used rootfs path exited $rc"
grep -q "already exists on h2 and is not empty" <<<"$out" ||
    fail "unclear refusal: $out"
[ "$(cat "$TH_ROOT/h2/srv/mc/other")" = keep ] || fail "h2's file was touched"
[ "$(inst_field h1 mc state)" = running ] || fail "mc is $(inst_field h1 mc state) on h1"
inst_verify h1 mc "$(state h1)" "after the refusal"

cl_ctl h1 destroy mc >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo "migrate-rootfs: ok"
