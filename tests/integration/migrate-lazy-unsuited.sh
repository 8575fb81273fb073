#!/usr/bin/env bash
# Post-copy is not chosen where CRIU's lazy pages cannot keep a tree's
# memory as it was: here a shell and its subshell (a fork without exec)
# share pages copy-on-write, which a lazy restore would turn into private
# copies.  auto moves it by stop-and-copy and says why; --mode postcopy
# refuses with the reason and the container keeps running where it is.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
trap th_teardown EXIT

inst_two_hosts
cl_ctl h1 status | grep -q "lazy pages (post-copy) yes" ||
    fail "no post-copy here: $(cl_ctl h1 status | grep containers)"

rootfs_make "$TH_ROOT/rootfs"
ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" forked /bin/sh -c \
    '( while :; do sleep 1; done ) & while :; do sleep 1; done'
cl_ctl h1 create forked --spec "$TH_ROOT/forked.json" >/dev/null
cl_ctl h1 start forked >/dev/null
sleep 0.5	# the subshell forks

out=$(cl_ctl h1 migrate forked --to h2 2>&1) || fail "auto failed: $out"
echo "$out"
grep -q "(stopcopy)" <<<"$out" || fail "auto did not pick stop-and-copy: $out"
grep -q "stop-and-copy, not post-copy: process [0-9]* shares [0-9]* KiB of its private memory copy-on-write" <<<"$out" ||
    fail "auto did not say why: $out"
[ "$(inst_where forked)" = "h2:running" ] || fail "after h1->h2 it is at: $(inst_where forked)"

if out=$(cl_ctl h2 migrate forked --to h1 --mode postcopy 2>&1); then
	fail "--mode postcopy moved a tree with copy-on-write sharing: $out"
fi
echo "$out"
grep -q "post-copy cannot move forked: process .* copy-on-write" <<<"$out" ||
    fail "the refusal does not say why: $out"
[ "$(inst_where forked)" = "h2:running" ] || fail "after the refusal it is at: $(inst_where forked)"
cl_ctl h2 migrate forked --to h1 --mode stopcopy >/dev/null
[ "$(inst_where forked)" = "h1:running" ] || fail "after h2->h1 it is at: $(inst_where forked)"
cl_ctl h1 stop forked >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
echo PASS
