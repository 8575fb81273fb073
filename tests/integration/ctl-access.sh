#!/usr/bin/env bash
# Issue 9 #9: the control socket lets in root and processes that HAVE the
# control group, judged on the credentials the kernel recorded at connect,
# not on the user database.  The callers here run as a uid with no passwd
# entry: with the group as a supplementary group (setpriv --groups) it is
# let in; the same uid without it is refused.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
th_check || exit 77
trap th_teardown EXIT
command -v setpriv > /dev/null || { echo "no setpriv: skipped"; exit 77; }

CTL="$TERN_BUILDDIR/ternctl"
# A uid nobody has in /etc/passwd; "users" (gid 100) as the control group.
NOUSER=54321
GROUP=users
gid=$(getent group "$GROUP" | cut -d: -f3) || { echo "no group $GROUP: skipped"; exit 77; }
getent passwd "$NOUSER" > /dev/null && { echo "uid $NOUSER exists: skipped"; exit 77; }

th_setup 1
cl_pki
cl_conf h1 "control_group = \"$GROUP\""
cl_start h1

as() {	# SETPRIV-ARGS... -- ternctl status, inside h1's namespaces
	th_exec h1 setpriv --reuid="$NOUSER" "$@" "$CTL" -s /run/tern/ternd.sock status
}
as --regid="$NOUSER" --groups="$gid" > "$TH_ROOT/supp.out" 2>&1 ||
	fail "uid $NOUSER with supplementary group $gid refused: $(cat "$TH_ROOT/supp.out")"
echo "ok: the control group as a supplementary group, no passwd entry: let in"
as --regid="$gid" --clear-groups > "$TH_ROOT/primary.out" 2>&1 ||
	fail "uid $NOUSER with primary group $gid refused: $(cat "$TH_ROOT/primary.out")"
echo "ok: the control group as the primary group: let in"
set +e
as --regid="$NOUSER" --clear-groups > "$TH_ROOT/none.out" 2>&1
rc=$?
set -e
[ $rc != 0 ] || fail "uid $NOUSER without the control group was let in"
# The socket file (0660, root:GROUP) already keeps it out; ternd's own
# check would refuse it too.
grep -qi "permission denied" "$TH_ROOT/none.out" || fail "no reason given: $(cat "$TH_ROOT/none.out")"
echo "ok: without the control group: refused"
# A numeric control_group is a gid as it is (no lookup at all).
cl_stop h1
cl_conf h1 "control_group = \"$gid\""
cl_start h1
as --regid="$NOUSER" --groups="$gid" > "$TH_ROOT/num.out" 2>&1 ||
	fail "numeric control_group: $(cat "$TH_ROOT/num.out")"
echo "ok: a numeric control_group"
cl_stop_all || fail "ternd did not stop cleanly (see its log)"
echo "ctl-access: ok"
