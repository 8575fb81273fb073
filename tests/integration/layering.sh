#!/usr/bin/env bash
# The layers of DESIGN.md, checked by machine: a lower layer never includes
# an upper layer's headers, and ternctl links only the client side of
# daemon/.  Fails listing every offending include.
set -euo pipefail
cd "$TERN_SRCDIR"
bad=0

# forbid DIR PATTERN: no file in DIR may include a header matching PATTERN.
forbid() {
	local dir=$1 pattern=$2 hits
	[ -d "$dir" ] || return 0
	hits=$(grep -rnE "^#[[:space:]]*include[[:space:]]+\"($pattern)" "$dir" \
		--include='*.c' --include='*.h' || true)
	if [ -n "$hits" ]; then
		echo "layering: $dir must not include $pattern:"
		echo "$hits"
		bad=1
	fi
}

forbid daemon     'agent/|checkpoint/|migrate/|coord/|ctl/'
forbid checkpoint 'agent/|migrate/|coord/|ctl/'
forbid migrate    'agent/|coord/|ctl/'
forbid agent      'coord/store|ctl/'
forbid coord      'agent/|migrate/|checkpoint/|ctl/'
# ternctl: no daemon internals, only the client side.
forbid ctl        'agent/|checkpoint/|migrate/|coord/|daemon/(conn|stream|tls|ctlsock|conf|pidfile)\.h'

# Only daemon/tls.c (transport), daemon/pki.c (certificates) and
# daemon/digest.c (file checksums) know OpenSSL.
hits=$(grep -rln '#include <openssl/' daemon agent ctl checkpoint migrate coord 2>/dev/null |
	grep -vE '^daemon/(tls|pki|digest)\.c$' || true)
if [ -n "$hits" ]; then
	echo "layering: only daemon/tls.c, pki.c and digest.c may use OpenSSL:"
	echo "$hits"
	bad=1
fi

[ $bad = 0 ] && echo "layering: ok"
exit $bad
