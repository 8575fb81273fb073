#!/usr/bin/env bash
# container-checkpoint: a container with 1 GiB of memory (memcheck keeps
# rewriting about half of it per second) checkpointed to disk and restored
# on one host, by tern (ternctl checkpoint + restore: MANIFEST with SHA-256
# of every image, fsync, verification before restore) and, in the same run,
# by the CRIU command line an operator would type (same CRIU, same
# options, no checksums).  Downtime = dump until the restored process runs.
# Seen = the longest stall of its own progress memcheck reports (it ticks
# every 10 ms; "stall max_ms=" in its state file), from just before the
# dump until after the restore.  Then both again leaving it running (what
# HA does every interval): tern's frozen_ms (its pages staged in memory,
# docs/containers.md) against criu dump --leave-running, which stands the
# tree still for its whole dump; the last line is that ratio (issue 11's
# goal: <= 0.5).
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/testhost.sh"
. "$TERN_SRCDIR/tests/lib/cluster.sh"
. "$TERN_SRCDIR/tests/lib/rootfs.sh"
. "$TERN_SRCDIR/tests/lib/instances.sh"
trap th_teardown EXIT

MIB=${BENCH_CONTAINER_MIB:-1024}
criu=$(sed -n 's/^#define CRIU_DEFAULT_PATH "\(.*\)"/\1/p' "$TERN_BUILDDIR/config.h")
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

th_setup 1 >/dev/null
cl_pki >/dev/null
cl_conf h1 'log_filters = "info"' >/dev/null
cl_start h1
cl_wait_criu h1
rootfs_make "$TH_ROOT/rootfs"
rootfs_spec "$TH_ROOT/rootfs" mc /bin/memcheck "$MIB" /var/log/memcheck.state
state="$TH_ROOT/rootfs/var/log/memcheck.state"
cl_ctl h1 create mc --spec "$TH_ROOT/mc.json" >/dev/null

start_mc() {
	: > "$state"
	cl_ctl h1 start mc >/dev/null
	inst_wait_ready "$state" || exit 1
	sleep 2
	# A check first: the stall memcheck reports next counts from here.
	inst_verify h1 mc "$state" "before" >/dev/null
}

# seen_stall: the stall memcheck reported with its last check (the line
# before the counter line).
seen_stall() {
	tail -n 2 "$state" | sed -n 's/^stall max_ms=\([0-9]*\) .*/\1/p'
}

echo "container-checkpoint: $MIB MiB memcheck container, dump to disk and restore on one host"

# tern
start_mc
t0=$(now)
out=$(cl_ctl h1 --json checkpoint mc)
t1=$(now)
cl_ctl h1 restore mc >/dev/null
t2=$(now)
inst_verify h1 mc "$state" "tern" >&2
tern_seen=$(seen_stall)
tern_dump=$(ms "$t0" "$t1"); tern_restore=$(ms "$t1" "$t2")
tern_frozen=$(echo "$out" | sed -n 's/.*"frozen_ms":\([0-9]*\).*/\1/p')
tern_down=$((tern_dump + tern_restore))
cl_ctl h1 stop mc >/dev/null

# tern, leaving it running (what HA does every interval): frozen_ms is
# how long the tree stood still.
start_mc
out=$(cl_ctl h1 --json checkpoint mc --leave-running)
inst_verify h1 mc "$state" "tern leave-running" >&2
lr_tern_frozen=$(echo "$out" | sed -n 's/.*"frozen_ms":\([0-9]*\).*/\1/p')
lr_tern_seen=$(seen_stall)
# Staged (checkpoint_staging_mb), or written by CRIU as it stood still?
if grep -q "mc: checkpoint .*pages staged in" "$(cl_log h1)"; then
	lr_how="pages staged"
else
	lr_how="NOT staged"
fi
cl_ctl h1 stop mc >/dev/null

# the CRIU command line, on the same container
start_mc
pid=$(inst_field h1 mc pid)
base=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup")
inst_criu_externals h1 "$pid"
ext_dump=("${CRIU_EXT_DUMP[@]}") ext_rst=("${CRIU_EXT_RESTORE[@]}")
img="$TH_ROOT/manual"
mkdir -p "$img"
# criu dump --leave-running: the tree stands still for the whole dump.
t0=$(now)
th_exec h1 "$criu" dump -t "$pid" -D "$img" -o dump.log --leave-running \
	--freeze-cgroup "/sys/fs/cgroup/freezer$base" "${ext_dump[@]}" 2>/dev/null
t1=$(now)
lr_cli_frozen=$(ms "$t0" "$t1")
inst_verify h1 mc "$state" "criu-cli leave-running" >&2
lr_cli_seen=$(seen_stall)
rm -rf "$img" && mkdir -p "$img"
t0=$(now)
th_exec h1 "$criu" dump -t "$pid" -D "$img" -o dump.log \
	--freeze-cgroup "/sys/fs/cgroup/freezer$base" "${ext_dump[@]}" 2>/dev/null
t1=$(now)
# (The restored tree stays in the cgroups of the criu that restored it:
# ternd empties mc's own once the dump has killed the container.)
th_exec h1 "$criu" restore -D "$img" -o restore.log -d --root "$TH_ROOT/rootfs" \
	--pidfile "$img/restore.pid" --manage-cgroups=ignore \
	"${ext_rst[@]}" 2>/dev/null
t2=$(now)
cli_dump=$(ms "$t0" "$t1"); cli_restore=$(ms "$t1" "$t2")
cli_down=$((cli_dump + cli_restore))
# Its check, by hand: ternd does not know this copy.
rpid=$(cat "$img/restore.pid")
inst_verify_pid "$rpid" mc "$state" criu-cli >&2
cli_seen=$(seen_stall)
kill -KILL "$rpid"

printf '%-44s %6s %8s %8s %9s %8s\n' "" "dump" "frozen" "restore" "downtime" "seen"
printf '%-44s %5sms %6sms %6sms %7sms %6sms\n' "tern (MANIFEST + SHA-256 + fsync, verified)" \
	"$tern_dump" "$tern_frozen" "$tern_restore" "$tern_down" "$tern_seen"
printf '%-44s %5sms %8s %6sms %7sms %6sms\n' "criu dump / criu restore (no checksums)" \
	"$cli_dump" "-" "$cli_restore" "$cli_down" "$cli_seen"
printf '%-44s %7s %6sms %8s %9s %6sms\n' "tern --leave-running ($lr_how)" \
	"-" "$lr_tern_frozen" "-" "-" "$lr_tern_seen"
printf '%-44s %7s %6sms %8s %9s %6sms\n' "criu dump --leave-running" \
	"-" "$lr_cli_frozen" "-" "-" "$lr_cli_seen"
echo "(seen: memcheck's longest stall; criu's frozen: its whole dump)"
awk -v a="$tern_seen" -v b="$cli_seen" \
	'BEGIN {printf "container-checkpoint: seen tern/criu-cli = %.2f\n", a / (b > 0 ? b : 1)}'
awk -v a="$tern_down" -v b="$cli_down" \
	'BEGIN {printf "container-checkpoint: downtime tern/criu-cli = %.2f\n", a / b}'
# The goal's line (issue 11 item 5): a leave-running checkpoint's freeze.
awk -v a="$lr_tern_seen" -v b="$lr_cli_seen" \
	'BEGIN {printf "container-checkpoint: leave-running seen tern/criu-cli = %.2f\n", a / (b > 0 ? b : 1)}'
awk -v a="$lr_tern_frozen" -v b="$lr_cli_frozen" \
	'BEGIN {printf "container-checkpoint: frozen tern/criu-cli = %.2f\n", a / (b > 0 ? b : 1)}'
