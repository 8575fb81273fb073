#!/usr/bin/env bash
# docs/ha.md's "Knobs" tables against the code: every option of
# daemon/conf.c's high availability part has a row; every row of the
# ternd.conf table names an option whose default and bounds are the ones
# `ternd --help-config` prints; the per-instance rows' bounds are
# daemon/msg.h's and coord/model.h's.  Then the same check on copies with
# a planted drift each (a changed default, a missing row, a new option in
# conf.c, changed bounds in msg.h): each must fail it.
# Needs no root and no test hosts.
set -euo pipefail
. "$TERN_SRCDIR/tests/lib/assert.sh"
command -v python3 >/dev/null || exit 77
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$TERN_BUILDDIR/ternd" --help-config >"$dir/help" ||
    fail "ternd --help-config failed"

# knobs CONF_C HA_MD MSG_H MODEL_H: 0 when they agree, 1 saying where not.
knobs() {
	python3 - "$1" "$2" "$3" "$4" "$dir/help" <<'EOF'
import re, sys

conf_c, ha_md, msg_h, model_h, help_path = sys.argv[1:]
bad = []

# Options conf.c lists from its high availability comment to the end of
# the table, but which docs/ha.md need not describe (their own page).
ELSEWHERE = {"revoked_file": "docs/security.md"}

src = open(conf_c).read()
start = src.find("/* High availability")
end = src.find("\n};", start)
if start < 0 or end < 0:
    sys.exit("docs-knobs: no high availability part in %s" % conf_c)
ha_opts = re.findall(r'\.name = "([a-z_]+)"', src[start:end])

# ternd --help-config: name -> (default, allowed)
help_ = {}
for m in re.finditer(r'^([a-z_]+) \([a-z]+\)\n    default: (.*)\n'
                     r'(?:    allowed: (.*)\n)?', open(help_path).read(), re.M):
    help_[m.group(1)] = (m.group(2), m.group(3) or "")

# The Knobs section's tables: rows "| `name` | default | bounds | why |".
md = open(ha_md).read()
k = md.find("\n## Knobs\n")
if k < 0:
    sys.exit("docs-knobs: no \"## Knobs\" section in %s" % ha_md)
section = md[k + 1:]
n = section.find("\n## ")
if n >= 0:
    section = section[:n]
tables, cur = [], None
for line in section.splitlines():
    if line.startswith("|"):
        if cur is None:
            cur = []
            tables.append(cur)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([^`]+)`(?: / `[^`]+`)?", cells[0])
        if m and len(cells) == 4:
            cur.append((m.group(1), cells[1], cells[2]))
    else:
        cur = None
if len(tables) != 2:
    sys.exit("docs-knobs: %d tables in the Knobs section, not 2" % len(tables))
conf_rows = {r[0]: r for r in tables[0]}
inst_rows = {r[0]: r for r in tables[1]}

for o in ha_opts:
    if o not in conf_rows and o not in ELSEWHERE:
        bad.append("%s (conf.c, high availability) has no row" % o)

def plain(cell):
    return cell.replace("`", "")

for name, default, bounds in tables[0]:
    if name not in help_:
        bad.append("%s: a row, but ternd has no such option" % name)
        continue
    hdef, hallowed = help_[name]
    if plain(default) != hdef:
        bad.append("%s: default %s here, %s in ternd" % (name, default, hdef))
    m = re.match(r"(-?\d+)\.\.(-?\d+)", hallowed)
    if m:
        if not re.match(re.escape(m.group(0)) + r"(?!\d)", plain(bounds)):
            bad.append("%s: bounds %s here, %s in ternd" % (name, bounds,
                       hallowed))
    elif re.fullmatch(r"[a-z+]+(, [a-z+]+)* or [a-z+]+", hallowed):
        for v in re.split(r", | or ", hallowed):
            if "`%s`" % v not in bounds:
                bad.append("%s: %s allowed by ternd, not listed here"
                           % (name, v))

def define(path, name):
    m = re.search(r"#define\s+%s\s+\(?(-?\d+)u?\)?" % name, open(path).read())
    if not m:
        sys.exit("docs-knobs: no %s in %s" % (name, path))
    return m.group(1)

want = {
    "--interval": (define(msg_h, "HA_INTERVAL_DEF_MS"), "%s..%s" % (
        define(msg_h, "HA_INTERVAL_MIN_MS"), define(msg_h, "HA_INTERVAL_MAX_MS"))),
    "--replicas": ("1", "1..%s" % define(msg_h, "HA_REPLICAS_MAX")),
    "--priority": ("0", "%s..%s" % (define(model_h, "MODEL_PRIORITY_MIN"),
                                    define(model_h, "MODEL_PRIORITY_MAX"))),
}
for name, (default, bounds) in want.items():
    if name not in inst_rows:
        bad.append("%s has no row" % name)
        continue
    _, d, b = inst_rows[name]
    if plain(d) != default:
        bad.append("%s: default %s here, %s in the code" % (name, d, default))
    if not plain(b).startswith(bounds + " ") and plain(b) != bounds:
        bad.append("%s: bounds %s here, %s in the code" % (name, b, bounds))

for b in bad:
    print("docs-knobs: " + b)
print("docs-knobs: %d options in conf.c's HA part, %d + %d rows, %s"
      % (len(ha_opts), len(tables[0]), len(tables[1]),
         "%d disagreements" % len(bad) if bad else "all agree"))
sys.exit(1 if bad else 0)
EOF
}

S=$TERN_SRCDIR
echo "--- docs/ha.md against the code"
knobs "$S/daemon/conf.c" "$S/docs/ha.md" "$S/daemon/msg.h" "$S/coord/model.h" ||
    fail "docs/ha.md's Knobs section does not match the code"

# drift NAME FILE SED: a copy of FILE changed by SED must fail the check.
drift() {
	local what=$1 file=$2 expr=$3 c=$S/daemon/conf.c m=$S/docs/ha.md \
	    h=$S/daemon/msg.h p=$S/coord/model.h out
	sed "$expr" "$S/$file" >"$dir/copy"
	! cmp -s "$dir/copy" "$S/$file" || fail "the drift '$what' changes nothing in $file"
	case $file in
	daemon/conf.c) c=$dir/copy ;;
	docs/ha.md) m=$dir/copy ;;
	daemon/msg.h) h=$dir/copy ;;
	coord/model.h) p=$dir/copy ;;
	esac
	if out=$(knobs "$c" "$m" "$h" "$p"); then
		fail "the check passes with $what: $out"
	fi
	echo "caught: $what: $(head -n 1 <<<"$out")"
}
echo "--- planted drifts"
drift "a changed default" docs/ha.md 's/^| `lease_ttl_ms` | 2000 |/| `lease_ttl_ms` | 3000 |/'
drift "changed bounds" docs/ha.md 's/^| `lease_margin_ms` | 500 | 50\.\.30000/| `lease_margin_ms` | 500 | 50..300000/'
drift "a missing row" docs/ha.md '/^| `store_dir` |/d'
drift "a value of role not listed" docs/ha.md 's/`agent+coordinator` | A/agent+coordinator | A/'
drift "a row for no option" docs/ha.md 's/^| `drain_parallel` |/| `drain_paralel` |/'
drift "a new option in conf.c's HA part" daemon/conf.c \
    's/{ .name = "etcd_endpoints", .type = CONF_STRING,/{ .name = "etcd_timeout_ms", .type = CONF_INT },\n&/'
drift "changed bounds in msg.h" daemon/msg.h 's/^#define HA_REPLICAS_MAX\t\t8u/#define HA_REPLICAS_MAX\t\t16u/'
drift "a changed default in msg.h" daemon/msg.h 's/^#define HA_INTERVAL_DEF_MS\t10000u/#define HA_INTERVAL_DEF_MS\t5000u/'
drift "changed bounds in model.h" coord/model.h 's/^#define MODEL_PRIORITY_MAX\t1000/#define MODEL_PRIORITY_MAX\t100/'
echo "PASS"
