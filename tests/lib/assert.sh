# assert.sh: how a shell test says that something is wrong, shared by every
# test (tests/lib/testhost.sh sources it).  A test that counts failures
# and goes on (container-launch.sh) defines its own fail() after this.

# fail MESSAGE: the test fails here, saying MESSAGE.
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds; if it
# has not within SECONDS, the test fails saying that WHAT never came.
wait_for() {
	local timeout=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] ||
		    fail "$what: not within $timeout s"
		sleep 0.1
	done
}

# fault_fired HOST POINT [ACTION]: the fault point fired on HOST's ternd
# (daemon/fault.c logs each firing).  A fault test calls it, so that it
# fails when its fault never happened instead of passing for nothing.
fault_fired() {
	local host=$1 point=$2 action=${3:-}
	grep -q "fault point $point fired: $action" "$(cl_log "$host")" ||
	    fail "the fault point $point${action:+ ($action)} never fired on $host"
}
