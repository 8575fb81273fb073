#!/usr/bin/env bash
# The layers of DESIGN.md, checked by machine: a lower layer never includes
# an upper layer's headers, and ternctl links only the client side of
# daemon/.  Fails listing every offending include.
set -euo pipefail
cd "$TERN_SRCDIR"
bad=0

# forbid DIR PATTERN: no file in DIR may include a header matching PATTERN
# ("" or <>, a ../ in front changes nothing).
forbid() {
	local dir=$1 pattern=$2 hits
	[ -d "$dir" ] || return 0
	hits=$(grep -rnE "^#[[:space:]]*include[[:space:]]*[\"<](\.\./)*($pattern)" "$dir" \
		--include='*.c' --include='*.h' || true)
	if [ -n "$hits" ]; then
		echo "layering: $dir must not include $pattern:"
		echo "$hits"
		bad=1
	fi
}

forbid daemon     'agent/|checkpoint/|migrate/|coord/|ctl/|main/'
forbid checkpoint 'agent/|migrate/|coord/|ctl/|main/'
forbid migrate    'agent/|coord/|ctl/|main/'
# The two roles never include each other: main/ (ternd's main) composes
# them and wires what one needs of the other through daemon/.
forbid agent      'coord/|ctl/|main/'
forbid coord      'agent/|migrate/|checkpoint/|ctl/|main/'
forbid main       'ctl/'
# ternctl: no daemon internals, only the client side.
forbid ctl        'agent/|checkpoint/|migrate/|coord/|daemon/(conn|stream|tls|ctlsock|conf|pidfile)\.h'

# Only daemon/tls.c (transport), daemon/pki.c (certificates) and
# daemon/digest.c (file checksums) know OpenSSL.
hits=$(grep -rln '#include <openssl/' daemon agent ctl checkpoint migrate coord main 2>/dev/null |
	grep -vE '^daemon/(tls|pki|digest)\.c$' || true)
if [ -n "$hits" ]; then
	echo "layering: only daemon/tls.c, pki.c and digest.c may use OpenSSL:"
	echo "$hits"
	bad=1
fi

# The kinds' own libraries stay in their drivers (DESIGN.md: agent/ and
# coord/ call a driver's ops table, never the kind): libvirt's headers
# (<libvirt/...>) and CRIU's (its RPC schema's rpc.pb-c.h, generated in
# proto/criu/, libcriu's <criu/...>, and checkpoint/criu.h which wraps
# them) only in checkpoint/ and the agent's drivers: agent/ctr-*.c,
# agent/vm-*.c (vm-instances.c, vm-migration.c) and agent/migration*.c.
# agent/agent.h: the agent holds CRIU's probe result (struct
# criu_features) by value; to go once it is held behind a pointer.
kind_libs='libvirt/|criu/|rpc\.pb-c\.h|proto/criu/|checkpoint/criu\.h'
drivers='^(checkpoint/.*|agent/(ctr-|vm-|migration)[^/]*\.c|agent/agent\.h)$'
hits=$(grep -rlE "^#[[:space:]]*include[[:space:]]*[\"<](\.\./)*($kind_libs)" \
	daemon agent ctl checkpoint migrate coord main --include='*.c' --include='*.h' \
	2>/dev/null | grep -vE "$drivers" || true)
if [ -n "$hits" ]; then
	echo "layering: only the drivers (checkpoint/, agent/ctr-*.c, agent/vm-*.c," \
		"agent/migration*.c) may include libvirt's or CRIU's headers:"
	echo "$hits"
	bad=1
fi

# Outside the drivers, agent/ and coord/ never switch on the kind: no
# in->vm, no "vm" or "container" literal in code (the drivers' tables
# name their kinds; agent/instances.c's registry maps a request to one).
hits=$(grep -rnE --include='*.c' --include='*.h' -e '->vm\b|"(vm|container)"' \
	agent coord 2>/dev/null |
	grep -vE '^agent/(ctr-|vm-|migration)[^/:]*\.c:' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)' || true)
if [ -n "$hits" ]; then
	echo "layering: only the drivers may test an instance's kind:"
	echo "$hits"
	bad=1
fi

[ $bad = 0 ] && echo "layering: ok"
exit $bad
