# shellcheck shell=bash
# ha.sh: a cluster of three test hosts for high availability, as the HA
# tests and bench/failover.sh use it: h3 the coordinator, h1 and h2
# agents holding leases from it.  Source it after testhost.sh, cluster.sh
# and assert.sh.
#
#	ha_setup [CONF...]	after th_setup 3: the PKI and each ternd.conf:
#				lease_ttl_ms HA_TTL_MS (2000), lease_margin_ms
#				HA_MARGIN_MS (500); CONF lines go to every host
#				(log filters, ...), HA_COORD_CONF's to h3 only
#				(its store)
#	ha_wait			once the ternds run (cl_start: each test starts
#				them its own way): all up, h1 and h2 able to run
#				containers and holding a lease; fails saying why
#	ha_has_lease HOST	HOST holds a valid lease from h3 (its status)

HA_TTL_MS=${HA_TTL_MS:-2000}
HA_MARGIN_MS=${HA_MARGIN_MS:-500}

ha_setup() {
	local lease=("lease_ttl_ms = $HA_TTL_MS"
	    "lease_margin_ms = $HA_MARGIN_MS")
	cl_pki >/dev/null || return 1
	cl_conf h1 "coordinator = \"h3\"" "${lease[@]}" "$@" >/dev/null &&
	    cl_conf h2 "coordinator = \"h3\"" "${lease[@]}" "$@" >/dev/null &&
	    cl_conf h3 "role = \"coordinator\"" "${lease[@]}" "$@" \
	    ${HA_COORD_CONF[@]+"${HA_COORD_CONF[@]}"} >/dev/null
}

ha_has_lease() { cl_ctl "$1" status | grep -q "lease from h3, valid"; }

ha_wait() {
	local h
	cl_wait_up h1 3 30 || return 1
	for h in h1 h2; do
		cl_wait_criu $h || {
			echo "ha: $h cannot run containers" >&2
			return 1
		}
	done
	for h in h1 h2; do
		th_wait 30 ha_has_lease $h || {
			echo "ha: $h holds no lease from h3:" \
			    "$(cl_ctl $h status | grep -i lease)" >&2
			return 1
		}
	done
	cl_ctl h3 status | grep -q "coordinator:.*leading" || {
		echo "ha: h3 does not lead: $(cl_ctl h3 status)" >&2
		return 1
	}
}
