/* ternctl status [--reset-loop-probe]: what the local ternd is, how late
 * its event loop ran at worst and its longest callback (then forgotten,
 * with the option: a bench resets before what it measures and reads
 * after). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "ctl/ternctl.h"

static int
cmd_status_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reset-loop-probe", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope		 req, *reply;
	Tern__StatusRequest	 sr = TERN__STATUS_REQUEST__INIT;
	Tern__StatusReply	*st;
	char			 age[32];
	size_t			 i;
	int			 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch != 'r')
			return ctl_usage(&cmd_status_entry);
		sr.has_reset_loop_probe = 1;
		sr.reset_loop_probe = 1;
	}
	if (optind != argc)
		return ctl_usage(&cmd_status_entry);
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_STATUS_REQUEST;
	req.status_request = &sr;
	if ((reply = ctl_request(env, &req, 5000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_STATUS_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	st = reply->status_reply;
	if (env->json) {
		printf("{\"host\":");
		ctl_json_string(stdout, st->host);
		printf(",\"software\":");
		ctl_json_string(stdout, st->software);
		printf(",\"pid\":%u,\"uptime_ms\":%llu,\"listen\":", st->pid,
		    (unsigned long long)st->uptime_ms);
		ctl_json_string(stdout, st->listen);
		printf(",\"peers_total\":%u,\"peers_up\":%u,\"capabilities\":[",
		    st->peers_total, st->peers_up);
		for (i = 0; i < st->n_capabilities; i++) {
			if (i > 0)
				putchar(',');
			ctl_json_string(stdout, st->capabilities[i]);
		}
		putchar(']');
		if (st->containers != NULL) {
			printf(",\"containers\":");
			ctl_json_string(stdout, st->containers);
		}
		if (st->has_loop_worst_ms)
			printf(",\"loop_worst_ms\":%llu,\"loop_probe_ms\":%llu",
			    (unsigned long long)st->loop_worst_ms,
			    (unsigned long long)st->loop_probe_ms);
		if (st->has_loop_worst_busy_ms)
			printf(",\"loop_worst_busy_ms\":%llu",
			    (unsigned long long)st->loop_worst_busy_ms);
		if (st->has_loop_longest_callback_ms)
			printf(",\"loop_longest_callback_ms\":%llu",
			    (unsigned long long)st->loop_longest_callback_ms);
		printf("}\n");
	} else {
		ctl_format_age(age, sizeof age, st->uptime_ms);
		printf("host:         %s\nsoftware:     %s\npid:          %u\n"
		    "uptime:       %s\nlisten:       %s (mutual TLS)\n"
		    "peers:        %u of %u up\ncapabilities:", st->host,
		    st->software, st->pid, age, st->listen, st->peers_up,
		    st->peers_total);
		for (i = 0; i < st->n_capabilities; i++)
			printf(" %s", st->capabilities[i]);
		printf("\ncontainers:   %s\n", st->containers != NULL ?
		    st->containers : "?");
		if (st->loop_probe != NULL)
			printf("event loop:   %s\n", st->loop_probe);
		if (st->lease != NULL)
			printf("lease:        %s\n", st->lease);
		if (st->coordinator != NULL)
			printf("coordinator:  %s\n", st->coordinator);
	}
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_status_entry = {
	"status", "status [--reset-loop-probe]",
	"show the local ternd (and its event loop's worst lateness)",
	cmd_status_exec
};
