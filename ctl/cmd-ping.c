/* ternctl ping HOST: a round trip to a peer over its mutual-TLS link. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl/ternctl.h"

static int
cmd_ping_exec(const struct ctl_env *env, int argc, char **argv)
{
	Envelope		 req, *reply;
	Tern__PingHostRequest	 pr = TERN__PING_HOST_REQUEST__INIT;
	int			 rc = CTL_EXIT_OK;

	if (argc != 2)
		return ctl_usage(&cmd_ping_entry);
	msg_init(&req, 0);
	pr.host = argv[1];
	req.body_case = TERN__ENVELOPE__BODY_PING_HOST_REQUEST;
	req.ping_host_request = &pr;
	if ((reply = ctl_request(env, &req, 10000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_PING_HOST_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	if (env->json) {
		printf("{\"host\":");
		ctl_json_string(stdout, reply->ping_host_reply->host);
		printf(",\"rtt_us\":%llu}\n",
		    (unsigned long long)reply->ping_host_reply->rtt_us);
	} else
		printf("%s: rtt %.3f ms\n", reply->ping_host_reply->host,
		    (double)reply->ping_host_reply->rtt_us / 1000);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_ping_entry = {
	"ping", "ping HOST", "round trip to a peer over mutual TLS",
	cmd_ping_exec
};
