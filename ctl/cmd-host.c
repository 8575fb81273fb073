/* ternctl host drain HOST [--parallel N] / ternctl host undrain HOST: move
 * every running instance off HOST and mark it unschedulable, or clear the
 * mark.  The local ternd forwards a request for another host to that
 * host's ternd.  Interrupting ternctl does not stop a drain: HOST's ternd
 * carries on (ternctl list there shows what is left). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ternctl.h"

/* One line per instance as it starts and ends; --json: one object. */
static void
cmd_host_progress(const Envelope *msg, void *arg)
{
	const Tern__HostDrainProgress	*p = msg->host_drain_progress;
	const struct ctl_env		*env = arg;
	static const char *const	 events[] = {
		[TERN__HOST_DRAIN_PROGRESS__EVENT__STARTED] = "started",
		[TERN__HOST_DRAIN_PROGRESS__EVENT__MOVED] = "moved",
		[TERN__HOST_DRAIN_PROGRESS__EVENT__NOT_MOVED] = "not_moved",
		[TERN__HOST_DRAIN_PROGRESS__EVENT__STAYS] = "stays",
	};

	if (msg->body_case != TERN__ENVELOPE__BODY_HOST_DRAIN_PROGRESS)
		return;
	if (env->json) {
		printf("{\"name\":");
		ctl_json_string(stdout, p->name);
		printf(",\"kind\":");
		ctl_json_string(stdout, msg_kind_name(p->kind));
		printf(",\"event\":\"%s\"", events[p->event]);
		if (p->to != NULL) {
			printf(",\"to\":");
			ctl_json_string(stdout, p->to);
		}
		if (p->has_mode) {
			printf(",\"mode\":");
			ctl_json_string(stdout, msg_mode_name(p->mode));
		}
		if (p->has_total_ms)
			printf(",\"total_ms\":%llu",
			    (unsigned long long)p->total_ms);
		if (p->cause != NULL) {
			printf(",\"cause\":");
			ctl_json_string(stdout, p->cause);
		}
		printf("}\n");
		fflush(stdout);
		return;
	}
	switch (p->event) {
	case TERN__HOST_DRAIN_PROGRESS__EVENT__STARTED:
		printf("%s: moving to %s\n", p->name, p->to);
		break;
	case TERN__HOST_DRAIN_PROGRESS__EVENT__MOVED:
		printf("%s: moved to %s (%s) in %llu ms\n", p->name, p->to,
		    msg_mode_name(p->mode), (unsigned long long)p->total_ms);
		break;
	case TERN__HOST_DRAIN_PROGRESS__EVENT__NOT_MOVED:
		printf("%s: not moved: %s\n", p->name,
		    p->cause != NULL ? p->cause : "?");
		break;
	default:
		printf("%s: %s: stays\n", p->name,
		    p->cause != NULL ? p->cause : "stopped");
		break;
	}
	fflush(stdout);
}

static int
cmd_host_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "parallel", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope			 req, *reply;
	Tern__HostDrainRequest		 dr = TERN__HOST_DRAIN_REQUEST__INIT;
	const Tern__HostDrainReply	*r;
	int				 ch, rc = CTL_EXIT_OK;
	unsigned long			 n;
	char				*end;

	if (argc < 2)
		return ctl_usage(&cmd_host_entry);
	if (strcmp(argv[1], "undrain") == 0)
		dr.has_undrain = dr.undrain = 1;
	else if (strcmp(argv[1], "drain") != 0)
		return ctl_usage(&cmd_host_entry);
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "p:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			n = strtoul(optarg, &end, 10);
			if (dr.undrain || *end != '\0' || n < 1 || n > 16) {
				ctl_error("--parallel %s: migrations at once, "
				    "1..16 (drain only)", optarg);
				return CTL_EXIT_USAGE;
			}
			dr.has_parallel = 1;
			dr.parallel = (uint32_t)n;
			break;
		default:
			return ctl_usage(&cmd_host_entry);
		}
	}
	if (optind != argc - 1)
		return ctl_usage(&cmd_host_entry);
	dr.host = argv[optind];
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_HOST_DRAIN_REQUEST;
	req.host_drain_request = &dr;
	/* A move's silence is bounded by the engine's own timeout. */
	reply = ctl_request_progress(env, &req, 24 * 3600 * 1000,
	    cmd_host_progress, (void *)env, &rc);
	if (reply == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	r = reply->host_drain_reply;
	if (env->json) {
		printf("{\"host\":");
		ctl_json_string(stdout, r->host);
		printf(",\"drained\":%s", r->drained ? "true" : "false");
		if (r->has_moved)
			printf(",\"moved\":%u,\"not_moved\":%u,\"stayed\":%u",
			    r->moved, r->not_moved, r->stayed);
		if (r->text != NULL) {
			printf(",\"text\":");
			ctl_json_string(stdout, r->text);
		}
		printf("}\n");
	} else if (r->text != NULL)
		printf("%s\n", r->text);
	/* Success only if nothing that runs is left on the host. */
	if (r->not_moved > 0)
		rc = CTL_EXIT_FAILED;
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_host_entry = {
	"host", "host drain HOST [--parallel N] | host undrain HOST",
	"move every instance off a host and keep new ones away, or undo it",
	cmd_host_exec
};
