/* ternctl migrate NAME --to HOST [--mode auto|precopy|postcopy|stopcopy]:
 * move a container to another host; the source keeps it until the target
 * restored a verified copy (post-copy: until its memory arrived). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "ctl/ternctl.h"

/* One line per report: phase, time, bytes, how long it stands still.  On
 * a terminal the line is rewritten in place. */
static void
cmd_migrate_progress(const Envelope *msg, void *arg)
{
	const Tern__MigrateProgress	*p = msg->migrate_progress;
	int				 tty = *(int *)arg;
	char				 frozen[48] = "";

	if (p->has_frozen_ms)
		snprintf(frozen, sizeof frozen, ", frozen %llu ms",
		    (unsigned long long)p->frozen_ms);
	fprintf(stderr, "%s%s: %s %s, %.1f s, %.1f MiB sent%s%s",
	    tty ? "\r\033[K" : "", p->name, p->mode != NULL ? p->mode : "",
	    p->phase, (double)p->elapsed_ms / 1000,
	    (double)p->bytes / (1 << 20), frozen, tty ? "" : "\n");
	fflush(stderr);
}

static int
cmd_migrate_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "progress", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope		 req, *reply;
	Tern__MigrateRequest	 mr = TERN__MIGRATE_REQUEST__INIT;
	const Tern__MigrateReply *r;
	int			 ch, rc = CTL_EXIT_OK, show, tty;

	/* Progress on the operator's terminal, or where asked for. */
	tty = isatty(STDERR_FILENO) && !env->json;
	show = tty;
	while ((ch = getopt_long(argc, argv, "t:m:p", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			mr.to = optarg;
			break;
		case 'm':
			mr.mode = optarg;
			break;
		case 'p':
			show = 1;
			break;
		default:
			return ctl_usage(&cmd_migrate_entry);
		}
	}
	if (optind != argc - 1 || mr.to == NULL)
		return ctl_usage(&cmd_migrate_entry);
	mr.name = argv[optind];
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_MIGRATE_REQUEST;
	req.migrate_request = &mr;
	reply = ctl_request_progress(env, &req, 3600 * 1000,
	    show ? cmd_migrate_progress : NULL, &tty, &rc);
	if (tty && show)
		fprintf(stderr, "\r\033[K");
	if (reply == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_MIGRATE_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	r = reply->migrate_reply;
	if (env->json) {
		printf("{\"name\":");
		ctl_json_string(stdout, r->name);
		printf(",\"to\":");
		ctl_json_string(stdout, r->to);
		printf(",\"mode\":");
		ctl_json_string(stdout, r->mode);
		printf(",\"total_ms\":%llu,\"frozen_ms\":%llu,\"bytes\":%llu",
		    (unsigned long long)r->total_ms,
		    (unsigned long long)r->frozen_ms,
		    (unsigned long long)r->bytes);
		if (r->has_postcopy_ms)
			printf(",\"postcopy_ms\":%llu,\"page_bytes\":%llu",
			    (unsigned long long)r->postcopy_ms,
			    (unsigned long long)r->page_bytes);
		if (r->note != NULL) {
			printf(",\"note\":");
			ctl_json_string(stdout, r->note);
		}
		printf("}\n");
	} else {
		if (r->note != NULL)
			printf("%s\n", r->note);
		printf("%s: moved to %s (%s) in %llu ms, frozen %llu ms, "
		    "%.1f MiB copied\n", r->name, r->to, r->mode,
		    (unsigned long long)r->total_ms,
		    (unsigned long long)r->frozen_ms,
		    (double)r->bytes / (1 << 20));
		if (r->has_postcopy_ms)
			printf("%s: its memory (%.1f MiB) followed in %llu ms "
			    "after it resumed\n", r->name,
			    (double)r->page_bytes / (1 << 20),
			    (unsigned long long)r->postcopy_ms);
	}
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_migrate_entry = {
	"migrate", "migrate NAME --to HOST [--mode auto|precopy|postcopy|stopcopy] "
	    "[--progress]",
	"move a container to another host", cmd_migrate_exec
};
