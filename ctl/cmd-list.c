/* ternctl list: the instances of the local host. */
#include "config.h"

#include <stdio.h>

#include "ctl/ternctl.h"

static int
cmd_list_exec(const struct ctl_env *env, int argc, char **argv)
{
	Envelope			 req, *reply;
	Tern__InstanceListRequest	 lr = TERN__INSTANCE_LIST_REQUEST__INIT;
	const Tern__InstanceListReply	*r;
	const Tern__InstanceInfo	*in;
	char				 since[32], pid[16];
	size_t				 i;
	int				 rc = CTL_EXIT_OK;

	if (argc != 1)
		return ctl_usage(&cmd_list_entry);
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_INSTANCE_LIST_REQUEST;
	req.instance_list_request = &lr;
	if ((reply = ctl_request(env, &req, 10000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_INSTANCE_LIST_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	r = reply->instance_list_reply;
	if (env->json)
		printf("{\"instances\":[");
	else
		printf("%-20s %-10s %-13s %8s %8s %5s  %s\n", "NAME", "KIND",
		    "STATE", "PID", "SINCE", "GEN", "LAST ERROR");
	for (i = 0; i < r->n_instances; i++) {
		in = r->instances[i];
		if (env->json) {
			printf("%s{\"name\":", i > 0 ? "," : "");
			ctl_json_string(stdout, in->name);
			printf(",\"kind\":");
			ctl_json_string(stdout, msg_kind_name(in->kind));
			printf(",\"state\":");
			ctl_json_string(stdout, in->state);
			if (in->has_pid)
				printf(",\"pid\":%u", in->pid);
			printf(",\"since_ms\":%llu,\"generation\":%llu",
			    (unsigned long long)in->since_ms,
			    (unsigned long long)in->generation);
			if (in->last_error != NULL) {
				printf(",\"last_error\":");
				ctl_json_string(stdout, in->last_error);
			}
			if (in->has_ha && in->ha != TERN__HA_POLICY__HA_NONE)
				printf(",\"ha\":\"%s\",\"epoch\":%llu",
				    in->ha == TERN__HA_POLICY__HA_RESTART ?
				    "restart" : "checkpoint",
				    (unsigned long long)in->epoch);
			putchar('}');
			continue;
		}
		ctl_format_age(since, sizeof since, in->since_ms);
		snprintf(pid, sizeof pid, "%u", in->pid);
		printf("%-20s %-10s %-13s %8s %8s %5llu  %s\n", in->name,
		    msg_kind_name(in->kind), in->state, in->has_pid ? pid : "-",
		    since, (unsigned long long)in->generation,
		    in->last_error != NULL ? in->last_error : "");
	}
	if (env->json)
		printf("]}\n");
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_list_entry = {
	"list", "list", "list this host's instances", cmd_list_exec
};
