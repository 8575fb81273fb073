/* ternctl migrate NAME --to HOST [--mode auto|precopy|postcopy|stopcopy]
 * [--max-downtime MS] [--bandwidth RATE]: move a container or a VM to
 * another host; the source keeps it until the target runs it (a
 * container: restored from verified images; post-copy: until its memory
 * arrived).  RATE bounds everything it sends (ternd refuses less than
 * 1M).  ternctl migrate --cancel NAME rolls back a migration (of either
 * kind) that has not reached its commit point. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ctl/ternctl.h"

/* RATE: bytes per second, with an optional k, m or g (powers of 1000, as
 * link speeds are), or bits per second with kbit, mbit, gbit.  0 on
 * error. */
static uint64_t
cmd_migrate_rate(const char *s)
{
	static const struct { const char *unit; uint64_t mul, div; } units[] = {
		{ "", 1, 1 }, { "k", 1000, 1 }, { "m", 1000000, 1 },
		{ "g", 1000000000, 1 }, { "kbit", 1000, 8 },
		{ "mbit", 1000000, 8 }, { "gbit", 1000000000, 8 },
	};
	char		*end;
	uint64_t	 v;
	size_t		 i;

	if (!isdigit((unsigned char)s[0]))
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return 0;
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcasecmp(end, units[i].unit) == 0 &&
		    v <= UINT64_MAX / units[i].mul)
			return v * units[i].mul / units[i].div;
	return 0;
}

/* One line per report: phase, time, bytes, how long it stands still.  On
 * a terminal the line is rewritten in place. */
static void
cmd_migrate_progress(const Envelope *msg, void *arg)
{
	const Tern__MigrateProgress	*p = msg->migrate_progress;
	int				 tty = *(int *)arg;
	char				 frozen[48] = "", limit[48] = "";
	char				 vm[160] = "", throttle[32] = "";
	char				 sent[48] = "";

	/* None before the first reading of a VM's job, nor after it. */
	if (p->has_bytes)
		snprintf(sent, sizeof sent, ", %.1f MiB sent",
		    (double)p->bytes / (1 << 20));
	if (p->has_frozen_ms)
		snprintf(frozen, sizeof frozen, ", frozen %llu ms",
		    (unsigned long long)p->frozen_ms);
	if (p->has_bandwidth)
		snprintf(limit, sizeof limit, " (limit %.1f MB/s)",
		    (double)p->bandwidth / 1e6);
	/* A VM's job as QEMU counts it. */
	if (p->has_throttle)
		snprintf(throttle, sizeof throttle, ", CPU throttled %u%%",
		    p->throttle);
	if (p->has_round)
		snprintf(vm, sizeof vm, ", round %llu, %.1f MiB left, dirty "
		    "%.1f MiB/s, downtime ~%llu ms%s",
		    (unsigned long long)p->round,
		    (double)p->remaining / (1 << 20),
		    (double)p->dirty_rate / (1 << 20),
		    (unsigned long long)p->expected_downtime_ms, throttle);
	fprintf(stderr, "%s%s: %s %s, %.1f s%s%s%s%s%s",
	    tty ? "\r\033[K" : "", p->name, p->has_mode ?
	    msg_mode_name(p->mode) : "",
	    p->phase, (double)p->elapsed_ms / 1000, sent, limit, vm, frozen,
	    tty ? "" : "\n");
	fflush(stderr);
}

/* The request from the command line: CTL_EXIT_OK, or the exit status of
 * a usage error (said).  *show: print the progress. */
static int
cmd_migrate_parse(int argc, char **argv, Tern__MigrateRequest *mr, int *show)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "progress", no_argument, NULL, 'p' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "max-downtime", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "cancel", no_argument, NULL, 'c' },
		{ "no-auto-converge", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	int	 ch, mode;
	char	*end;

	while ((ch = getopt_long(argc, argv, "t:m:pb:d:T:cA", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 't':
			mr->to = optarg;
			break;
		case 'm':
			if ((mode = msg_mode_parse(optarg)) == -1) {
				ctl_error("--mode %s: mode must be auto, "
				    "precopy, postcopy or stopcopy", optarg);
				return CTL_EXIT_USAGE;
			}
			mr->has_mode = 1;
			mr->mode = (Tern__MigrationMode)mode;
			break;
		case 'p':
			*show = 1;
			break;
		case 'b':
			if ((mr->bandwidth = cmd_migrate_rate(optarg)) == 0) {
				ctl_error("--bandwidth %s: a rate like 100M "
				    "(bytes/s) or 800mbit", optarg);
				return CTL_EXIT_USAGE;
			}
			mr->has_bandwidth = 1;
			break;
		case 'd':
			mr->max_downtime_ms = (uint32_t)strtoul(optarg, &end, 10);
			if (*end != '\0' || mr->max_downtime_ms == 0) {
				ctl_error("--max-downtime %s: milliseconds, > 0",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			mr->has_max_downtime_ms = 1;
			break;
		case 'T':
			mr->timeout_ms = (uint32_t)strtoul(optarg, &end, 10);
			if (*end != '\0' || mr->timeout_ms == 0 ||
			    mr->timeout_ms > 86400) {
				ctl_error("--timeout %s: seconds, 1..86400",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			mr->timeout_ms *= 1000;
			mr->has_timeout_ms = 1;
			break;
		case 'c':
			mr->has_cancel = mr->cancel = 1;
			break;
		case 'A':
			mr->has_no_auto_converge = mr->no_auto_converge = 1;
			break;
		default:
			return ctl_usage(&cmd_migrate_entry);
		}
	}
	if (optind != argc - 1 || (mr->to == NULL) != mr->cancel)
		return ctl_usage(&cmd_migrate_entry);
	mr->name = argv[optind];
	return CTL_EXIT_OK;
}

static void
cmd_migrate_print(const struct ctl_env *env, const Tern__MigrateReply *r)
{
	if (!env->json) {
		if (r->note != NULL)
			printf("%s\n", r->note);
		if (r->policy != NULL)
			printf("%s: %s\n", r->name, r->policy);
		printf("%s: moved to %s (%s) in %llu ms, frozen %llu ms, "
		    "%.1f MiB copied\n", r->name, r->to, msg_mode_name(r->mode),
		    (unsigned long long)r->total_ms,
		    (unsigned long long)r->frozen_ms,
		    (double)r->bytes / (1 << 20));
		if (r->has_postcopy_ms)
			printf("%s: its memory (%.1f MiB) followed in %llu ms "
			    "after it resumed\n", r->name,
			    (double)r->page_bytes / (1 << 20),
			    (unsigned long long)r->postcopy_ms);
		return;
	}
	printf("{\"name\":");
	ctl_json_string(stdout, r->name);
	printf(",\"to\":");
	ctl_json_string(stdout, r->to);
	printf(",\"mode\":");
	ctl_json_string(stdout, msg_mode_name(r->mode));
	printf(",\"total_ms\":%llu,\"frozen_ms\":%llu,\"bytes\":%llu",
	    (unsigned long long)r->total_ms, (unsigned long long)r->frozen_ms,
	    (unsigned long long)r->bytes);
	if (r->has_postcopy_ms)
		printf(",\"postcopy_ms\":%llu,\"page_bytes\":%llu",
		    (unsigned long long)r->postcopy_ms,
		    (unsigned long long)r->page_bytes);
	if (r->has_bandwidth)
		printf(",\"bandwidth\":%llu", (unsigned long long)r->bandwidth);
	if (r->note != NULL) {
		printf(",\"note\":");
		ctl_json_string(stdout, r->note);
	}
	if (r->policy != NULL) {
		printf(",\"policy\":");
		ctl_json_string(stdout, r->policy);
	}
	printf("}\n");
}

static int
cmd_migrate_exec(const struct ctl_env *env, int argc, char **argv)
{
	Envelope		 req, *reply;
	Tern__MigrateRequest	 mr = TERN__MIGRATE_REQUEST__INIT;
	int			 rc, show, tty;

	/* Progress on the operator's terminal, or where asked for. */
	tty = isatty(STDERR_FILENO) && !env->json;
	show = tty;
	if ((rc = cmd_migrate_parse(argc, argv, &mr, &show)) != CTL_EXIT_OK)
		return rc;
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_MIGRATE_REQUEST;
	req.migrate_request = &mr;
	if (mr.cancel) {
		mr.to = "";
		if ((reply = ctl_request(env, &req, 60000, &rc)) == NULL)
			return rc;
		rc = ctl_print_done(env, reply);
		msg_free(reply);
		return rc;
	}
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
	cmd_migrate_print(env, reply->migrate_reply);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_migrate_entry = {
	"migrate", "migrate NAME --to HOST [--mode auto|precopy|postcopy|stopcopy] "
	    "[--max-downtime MS] [--bandwidth RATE] [--timeout S] "
	    "[--no-auto-converge] [--progress] | migrate --cancel NAME",
	"move a container or VM to another host", cmd_migrate_exec
};
