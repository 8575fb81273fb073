/* ternctl hosts: this host and its peers, as the local ternd sees them. */
#include "config.h"

#include <stdio.h>

#include "ctl/ternctl.h"

static void
hosts_json(const Tern__HostsReply *r)
{
	const Tern__HostInfo	*h;
	size_t			 i, k;

	printf("{\"hosts\":[");
	for (i = 0; i < r->n_hosts; i++) {
		h = r->hosts[i];
		printf("%s{\"name\":", i > 0 ? "," : "");
		ctl_json_string(stdout, h->name);
		printf(",\"address\":");
		ctl_json_string(stdout, h->address);
		printf(",\"state\":");
		ctl_json_string(stdout, h->state);
		if (h->has_drained)
			printf(",\"drained\":%s", h->drained ? "true" : "false");
		if (h->has_since_ms)
			printf(",\"since_ms\":%llu",
			    (unsigned long long)h->since_ms);
		if (h->has_rtt_us)
			printf(",\"rtt_us\":%llu", (unsigned long long)h->rtt_us);
		if (h->software != NULL) {
			printf(",\"software\":");
			ctl_json_string(stdout, h->software);
		}
		if (h->n_capabilities > 0) {
			printf(",\"capabilities\":[");
			for (k = 0; k < h->n_capabilities; k++) {
				if (k > 0)
					putchar(',');
				ctl_json_string(stdout, h->capabilities[k]);
			}
			putchar(']');
		}
		if (h->last_error != NULL) {
			printf(",\"last_error\":");
			ctl_json_string(stdout, h->last_error);
		}
		putchar('}');
	}
	printf("]}\n");
}

static void
hosts_table(const Tern__HostsReply *r)
{
	const Tern__HostInfo	*h;
	char			 rtt[32], since[32], state[48];
	size_t			 i;

	printf("%-16s %-13s %-22s %9s %8s  %s\n", "HOST", "STATE", "ADDRESS",
	    "RTT", "SINCE", "LAST ERROR");
	for (i = 0; i < r->n_hosts; i++) {
		h = r->hosts[i];
		if (h->has_rtt_us)
			snprintf(rtt, sizeof rtt, "%.2fms",
			    (double)h->rtt_us / 1000);
		else
			snprintf(rtt, sizeof rtt, "-");
		ctl_format_age(since, sizeof since, h->since_ms);
		/* Drained (ternctl host drain): takes no instance. */
		snprintf(state, sizeof state, "%s%s", h->state,
		    h->has_drained && h->drained ? ",drained" : "");
		printf("%-16s %-13s %-22s %9s %8s  %s\n", h->name, state,
		    h->address, rtt, since,
		    h->last_error != NULL ? h->last_error : "");
	}
}

static int
cmd_hosts_exec(const struct ctl_env *env, int argc, char **argv)
{
	Envelope		 req, *reply;
	Tern__HostsRequest	 hr = TERN__HOSTS_REQUEST__INIT;
	int			 rc = CTL_EXIT_OK;

	if (argc != 1)
		return ctl_usage(&cmd_hosts_entry);
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_HOSTS_REQUEST;
	req.hosts_request = &hr;
	if ((reply = ctl_request(env, &req, 5000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_HOSTS_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	if (env->json)
		hosts_json(reply->hosts_reply);
	else
		hosts_table(reply->hosts_reply);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_hosts_entry = {
	"hosts", "hosts", "list this host and its peers", cmd_hosts_exec
};
