#!/usr/bin/env bash
# A container is confined (checkpoint/confine.h): tests/tools/escape, run
# inside it, tries the known ways out (write /proc/sys/kernel/core_pattern
# and /proc/sysrq-trigger, mknod + open + mount the host's disk, load a
# module, kexec, keyrings, raise a dropped capability, a user namespace,
# ...) and every one must be refused, while files, fork, threads, signals
# and sockets still work.  It must hold on a fresh container, after a
# checkpoint and restore, and after migrations h1 -> h2 (stop-and-copy)
# and h2 -> h1 (auto).  The probe is run by a shell that was itself
# checkpointed and moved, so it inherits what CRIU restored.
#
# The test can fail: with tern.unconfined ["all"] the same probe gets
# out, and each single opt-out lets through what it names and nothing
# else.  A spec naming something else is refused.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
th_check || exit 77
rootfs_check || exit 77
ESCAPE=$TERN_BUILDDIR/tests/tools/escape
[ -x "$ESCAPE" ] || { echo "container-confine: $ESCAPE not built" >&2; exit 77; }
trap th_teardown EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

inst_two_hosts
rootfs_make "$TH_ROOT/rootfs"
cp "$ESCAPE" "$TH_ROOT/rootfs/bin/escape"
LOGDIR=$TH_ROOT/rootfs/var/log

# The container's shell runs the probe each time a go file appears.
RUNNER='n=0; while :; do n=$((n + 1)); while [ ! -e /var/log/$0.go.$n ]; do sleep 0.1; done; /bin/escape >/var/log/$0.out.$n 2>&1; echo "exit $?" >>/var/log/$0.out.$n; done'

start() {	# HOST NAME [UNCONFINED]: a probe container, started
	local host=$1 name=$2
	ROOTFS_SPEC_SHARED=1 ROOTFS_SPEC_UNCONFINED=${3:-} \
	    rootfs_spec "$TH_ROOT/rootfs" "$name" /bin/sh -c "$RUNNER" "$name"
	cl_ctl "$host" create "$name" --spec "$TH_ROOT/$name.json" >/dev/null
	cl_ctl "$host" start "$name" >/dev/null
}

declare -A ROUND
probe() {	# NAME: run escape in it once more; its output on stdout
	local name=$1 n out i
	n=$((${ROUND[$name]:-0} + 1))
	ROUND[$name]=$n
	out=$LOGDIR/$name.out.$n
	touch "$LOGDIR/$name.go.$n"
	for ((i = 0; i < 300; i++)); do
		grep -q "^exit " "$out" 2>/dev/null && break
		sleep 0.1
	done
	grep -q "^exit " "$out" 2>/dev/null ||
	    fail "$name: the probe did not finish within 30 s: $(cat "$out" 2>/dev/null)"
	cat "$out"
}

# Every attempt that this machine can make must be stopped.
MUST_HOLD="core_pattern disk-open loop-open disk-mount cap-bounding cap-raise userns no-new-privs seccomp init_module
finit_module delete_module kexec_load reboot clock_settime keyctl add_key
open_by_handle_at bpf perf_event_open mount swapoff"
ORDINARY="files fork threads signals tcp unix chown"
# ... unless this kernel has no such file.
declare -A ABSENT
for f in kcore:/proc/kcore sysrq-trigger:/proc/sysrq-trigger keys:/proc/keys \
    timer_list:/proc/timer_list acpi:/proc/acpi; do
	if [ -e "${f#*:}" ]; then
		MUST_HOLD+=" ${f%%:*}"
	else
		ABSENT[${f%%:*}]=1
		echo "not on this kernel: ${f#*:}"
	fi
done
present() {	# WHAT...: those this kernel has
	local w
	for w in "$@"; do
		[ -n "${ABSENT[$w]:-}" ] || echo "$w"
	done
}

confined() {	# NAME WHEN: the probe finds no way out and all works
	local name=$1 when=$2 out w
	out=$(probe "$name")
	if grep -q "^ESCAPE\|^BROKEN" <<<"$out" ||
	    ! grep -q "^RESULT confined" <<<"$out" ||
	    ! grep -q "^exit 0" <<<"$out"; then
		echo "$out" >&2
		fail "$name $when: not confined, or broken"
	fi
	for w in $MUST_HOLD; do
		grep -q "^ok $w:" <<<"$out" || { echo "$out" >&2; fail "$name $when: no 'ok $w'"; }
	done
	for w in $ORDINARY; do
		grep -q "^works $w$" <<<"$out" || { echo "$out" >&2; fail "$name $when: no 'works $w'"; }
	done
	echo "$name $when: confined ($(grep -c '^ok ' <<<"$out") attempts refused," \
	    "$(grep -c '^works ' <<<"$out") ordinary things work)"
}

escapes() {	# NAME WHEN WHAT...: at least WHAT get out; prints all that did
	local name=$1 when=$2 out w got
	shift 2
	set -- $(present "$@")
	out=$(probe "$name")
	grep -q "^BROKEN" <<<"$out" && { echo "$out" >&2; fail "$name $when: broken"; }
	for w in "$@"; do
		grep -q "^ESCAPE $w:" <<<"$out" || { echo "$out" >&2; fail "$name $when: $w did not get out"; }
	done
	got=$(sed -n 's/^ESCAPE \([^:]*\):.*/\1/p' <<<"$out" | sort | tr '\n' ' ')
	echo "$name $when: gets out by: $got"
	echo "$got"
}

# --- fresh, confined --------------------------------------------------------
start h1 jail
confined jail "fresh on h1"
# The host's directory that jail's masked directories show (none if this
# kernel has no masked directory).
maskdir=$(inst_mask_dir h1 "$(inst_field h1 jail pid)")

# --- opt-outs: the probe can see an escape ------------------------------------
start h1 open '"all"'
got=$(escapes open "with unconfined [all]" core_pattern sysrq-trigger \
    keys timer_list acpi loop-open disk-mount cap-bounding cap-raise userns \
    no-new-privs seccomp keyctl add_key mount | tail -n 1)
echo "unconfined [all] escapes: $got"
cl_ctl h1 destroy open >/dev/null

# unconfined [ITEM] lets out what ITEM alone guards, and every other
# attempt still holds, except those listed after "--": calls whose
# harmless arguments the kernel rejects before it checks the capability
# (so only the filter answers them with EPERM).
only() {	# ITEM ESCAPES... [-- MAYBE...]
	local item=$1 name got w maybe=" " out
	local -a want=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do want+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	maybe+="$* "
	name=only-${item//_/-}
	start h1 "$name" "\"$item\""
	out=$(escapes "$name" "with unconfined [$item]" "${want[@]}")
	head -n 1 <<<"$out"
	got=" $(tail -n 1 <<<"$out")"
	for w in $MUST_HOLD; do
		case " ${want[*]} $maybe" in *" $w "*) continue ;; esac
		case $got in *" $w "*) fail "unconfined [$item]: $w got out too" ;; esac
	done
	cl_ctl h1 destroy "$name" >/dev/null
}
only capabilities cap-bounding cap-raise
only no_new_privs no-new-privs
only masked_paths $(present keys timer_list acpi kcore)
only readonly_paths $(present core_pattern sysrq-trigger)
only seccomp seccomp keyctl add_key userns -- clock_settime \
    open_by_handle_at perf_event_open bpf
only devices loop-open

# --- checkpoint and restore ---------------------------------------------------
cl_ctl h1 checkpoint jail >/dev/null
[ "$(inst_field h1 jail state)" = checkpointed ] || fail "jail is $(inst_field h1 jail state) after checkpoint"

# With something in that directory (it would show in every container's
# masked directories), a restore and a start there refuse and name it,
# and nothing is lost.  h1 gets a copy of its own (a tmpfs over it in h1's
# mount namespace): no other host, and no test run beside this one, sees
# the planted file.
refused() {	# WHAT COMMAND...: it fails and names the planted file
	local what=$1 out rc
	shift
	set +e
	out=$("$@" 2>&1); rc=$?
	set -e
	[ $rc != 0 ] || fail "$what went ahead with $maskdir not empty"
	grep -q "$maskdir.* holds planted: remove what is in it" <<<"$out" ||
	    fail "$what: $out"
	echo "refused: $out"
}
if [ -n "$maskdir" ]; then
	th_exec h1 mount -t tmpfs -o mode=0555,size=64k tmpfs "$maskdir"
	th_exec h1 touch "$maskdir/planted"
	refused "jail's restore" cl_ctl h1 restore jail
	[ "$(inst_field h1 jail state)" = checkpointed ] ||
	    fail "jail is $(inst_field h1 jail state) after a refused restore"
	ROOTFS_SPEC_SHARED=1 rootfs_spec "$TH_ROOT/rootfs" planted /bin/true
	cl_ctl h1 create planted --spec "$TH_ROOT/planted.json" >/dev/null
	refused "planted's start" cl_ctl h1 start planted
	cl_ctl h1 destroy planted >/dev/null
	th_exec h1 umount "$maskdir"
else
	echo "no masked directory on this kernel: the mask directory's checks are not run"
fi
cl_ctl h1 restore jail >/dev/null
[ "$(inst_field h1 jail state)" = running ] || fail "jail is $(inst_field h1 jail state) after restore"
confined jail "after checkpoint and restore on h1"

# --- migrations -----------------------------------------------------------------
cl_ctl h1 migrate jail --to h2 --mode stopcopy
[ "$(inst_where jail)" = "h2:running" ] || fail "after h1->h2 jail is at: $(inst_where jail)"
confined jail "after a stop-and-copy migration to h2"
cl_ctl h2 migrate jail --to h1
[ "$(inst_where jail)" = "h1:running" ] || fail "after h2->h1 jail is at: $(inst_where jail)"
confined jail "after an auto migration back to h1"

# --- the spec names what it opts out of, and nothing else ---------------------
bad() {	# JSON-ITEMS PATTERN: create refuses tern.unconfined [JSON-ITEMS]
	local out rc
	ROOTFS_SPEC_UNCONFINED=$1 rootfs_spec "$TH_ROOT/rootfs" bad /bin/true
	set +e
	out=$(cl_ctl h1 create bad --spec "$TH_ROOT/bad.json" 2>&1); rc=$?
	set -e
	[ $rc != 0 ] || fail "tern.unconfined [$1] was accepted"
	grep -q -- "$2" <<<"$out" || fail "tern.unconfined [$1]: $out"
	echo "refused: $out"
}
bad '"selinux"' 'tern.unconfined\[0\]: "selinux" is not a confinement'
bad '"seccomp", "seccomp"' 'tern.unconfined\[1\]: "seccomp" is listed twice'
bad '"all", "devices"' 'tern.unconfined\[1\]: "devices" with other items: give "all" alone'
bad 'true' 'tern.unconfined\[0\]: must be a string'

cl_ctl h1 destroy jail >/dev/null
cl_stop_all || fail "a ternd did not stop cleanly"
for h in h1 h2; do cl_check_log $h || fail "sanitizer report on $h"; done
echo "PASS"
