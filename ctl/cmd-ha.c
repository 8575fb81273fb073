/* ternctl ha set NAME [...] / ha status [NAME] / failovers [--limit N]:
 * an instance's protection, the coordinator's picture and its failover
 * history (docs/ha.md).  The local ternd asks its coordinator over the
 * mesh, so they work from any host; the values are checked there. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/ternctl.h"

/* Every call waits for a store transaction at most. */
#define CMD_HA_TIMEOUT_MS	15000

static const char *
cmd_ha_policy(int ha)
{
	return ha == TERN__HA_POLICY__HA_RESTART ? "restart" :
	    ha == TERN__HA_POLICY__HA_CHECKPOINT ? "checkpoint" : "none";
}

/* A number for option opt: 0, or -1 said. */
static int
cmd_ha_number(const char *opt, const char *arg, int is_signed, long long *v)
{
	char	*end;

	*v = strtoll(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || (!is_signed && *arg == '-') ||
	    *v > INT32_MAX || *v < INT32_MIN) {
		ctl_error("--%s %s: not a%s number", opt, arg,
		    is_signed ? "" : " non-negative");
		return -1;
	}
	return 0;
}

/* The reply expected, or NULL (said; *rc set). */
static Envelope *
cmd_ha_ask(const struct ctl_env *env, Envelope *req, int want, int *rc)
{
	Envelope	*reply;

	if ((reply = ctl_request(env, req, CMD_HA_TIMEOUT_MS, rc)) == NULL)
		return NULL;
	if ((int)reply->body_case != want) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		*rc = CTL_EXIT_FAILED;
		return NULL;
	}
	return reply;
}

static int
cmd_ha_set(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "priority", required_argument, NULL, 'P' },
		{ "interval", required_argument, NULL, 'i' },
		{ "replicas", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope		 req, *reply;
	Tern__HaSetRequest	 sr = TERN__HA_SET_REQUEST__INIT;
	const Tern__HaSetReply	*r;
	long long		 v;
	int			 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			sr.has_ha = 1;
			if (strcmp(optarg, "none") == 0)
				sr.ha = TERN__HA_POLICY__HA_NONE;
			else if (strcmp(optarg, "restart") == 0)
				sr.ha = TERN__HA_POLICY__HA_RESTART;
			else if (strcmp(optarg, "checkpoint") == 0)
				sr.ha = TERN__HA_POLICY__HA_CHECKPOINT;
			else {
				ctl_error("--policy %s: none, restart or "
				    "checkpoint", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'P':
			if (cmd_ha_number("priority", optarg, 1, &v) != 0)
				return CTL_EXIT_USAGE;
			sr.has_priority = 1;
			sr.priority = (int32_t)v;
			break;
		case 'i':
			if (cmd_ha_number("interval", optarg, 0, &v) != 0)
				return CTL_EXIT_USAGE;
			sr.has_interval_ms = 1;
			sr.interval_ms = (uint32_t)v;
			break;
		case 'r':
			if (cmd_ha_number("replicas", optarg, 0, &v) != 0)
				return CTL_EXIT_USAGE;
			sr.has_replicas = 1;
			sr.replicas = (uint32_t)v;
			break;
		default:
			return ctl_usage(&cmd_ha_entry);
		}
	}
	if (optind != argc - 1)
		return ctl_usage(&cmd_ha_entry);
	sr.name = argv[optind];
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_HA_SET_REQUEST;
	req.ha_set_request = &sr;
	if ((reply = cmd_ha_ask(env, &req, TERN__ENVELOPE__BODY_HA_SET_REPLY,
	    &rc)) == NULL)
		return rc;
	r = reply->ha_set_reply;
	if (env->json) {
		printf("{\"name\":");
		ctl_json_string(stdout, r->name);
		printf(",\"epoch\":%" PRIu64 ",\"policy\":\"%s\",\"priority\":%"
		    PRId32 ",\"interval_ms\":%" PRIu32 ",\"replicas\":%" PRIu32
		    "}\n", r->epoch, cmd_ha_policy(r->ha), r->priority,
		    r->interval_ms, r->replicas);
	} else
		printf("%s: policy %s, priority %" PRId32 ", interval %" PRIu32
		    " ms, %" PRIu32 " replica%s (epoch %" PRIu64 ")\n", r->name,
		    cmd_ha_policy(r->ha), r->priority, r->interval_ms,
		    r->replicas, r->replicas == 1 ? "" : "s", r->epoch);
	msg_free(reply);
	return CTL_EXIT_OK;
}

static void
cmd_ha_status_json(const Tern__HaStatusReply *r)
{
	const Tern__HaInstanceInfo	*in;
	const Tern__HaReplicaInfo	*rp;
	size_t				 i, k;

	printf("{\"coordinator\":");
	ctl_json_string(stdout, r->coordinator);
	printf(",\"leading\":%s,\"hosts\":[", r->leading ? "true" : "false");
	for (i = 0; i < r->n_hosts; i++) {
		printf("%s{\"name\":", i > 0 ? "," : "");
		ctl_json_string(stdout, r->hosts[i]->name);
		printf(",\"state\":");
		ctl_json_string(stdout, r->hosts[i]->state);
		printf(",\"drained\":%s}", r->hosts[i]->drained ? "true" :
		    "false");
	}
	printf("],\"instances\":[");
	for (i = 0; i < r->n_instances; i++) {
		in = r->instances[i];
		printf("%s{\"name\":", i > 0 ? "," : "");
		ctl_json_string(stdout, in->name);
		printf(",\"kind\":");
		ctl_json_string(stdout, msg_kind_name(in->kind));
		printf(",\"owner\":");
		if (in->owner != NULL)
			ctl_json_string(stdout, in->owner);
		else
			printf("null");
		printf(",\"epoch\":%" PRIu64 ",\"policy\":\"%s\",\"priority\":%"
		    PRId32 ",\"interval_ms\":%" PRIu32 ",\"replicas_wanted\":%"
		    PRIu32 ",\"replicas\":[", in->epoch, cmd_ha_policy(in->ha),
		    in->priority, in->interval_ms, in->replicas_wanted);
		for (k = 0; k < in->n_replicas; k++) {
			rp = in->replicas[k];
			printf("%s{\"host\":", k > 0 ? "," : "");
			ctl_json_string(stdout, rp->host);
			printf(",\"generation\":%" PRIu64 ",\"epoch\":%" PRIu64
			    ",\"age_ms\":%" PRIu64 "}", rp->generation,
			    rp->epoch, rp->age_ms);
		}
		printf("]}");
	}
	printf("]}\n");
}

static void
cmd_ha_status_text(const Tern__HaStatusReply *r)
{
	const Tern__HaInstanceInfo	*in;
	const Tern__HaReplicaInfo	*rp;
	char				 age[32];
	size_t				 i, k;

	printf("coordinator %s (%s)\nhosts:", r->coordinator, r->leading ?
	    "leading" : "not leading");
	for (i = 0; i < r->n_hosts; i++)
		printf(" %s %s%s%s", r->hosts[i]->name, r->hosts[i]->state,
		    r->hosts[i]->drained ? " (drained)" : "",
		    i + 1 < r->n_hosts ? "," : "");
	printf("%s\n", r->n_hosts == 0 ? " none" : "");
	printf("%-20s %-9s %-12s %5s %-10s %8s %9s %8s  %s\n", "NAME", "KIND",
	    "OWNER", "EPOCH", "POLICY", "PRIORITY", "INTERVAL", "REPLICAS",
	    "HELD (host gen age)");
	for (i = 0; i < r->n_instances; i++) {
		in = r->instances[i];
		printf("%-20s %-9s %-12s %5" PRIu64 " %-10s %8" PRId32 " %9"
		    PRIu32 " %8" PRIu32 " ", in->name, msg_kind_name(in->kind),
		    in->owner != NULL ? in->owner : "-", in->epoch,
		    cmd_ha_policy(in->ha), in->priority, in->interval_ms,
		    in->replicas_wanted);
		for (k = 0; k < in->n_replicas; k++) {
			rp = in->replicas[k];
			ctl_format_age(age, sizeof age, rp->age_ms);
			printf(" %s %" PRIu64 " %s", rp->host, rp->generation,
			    age);
		}
		printf("%s\n", in->n_replicas == 0 ? " -" : "");
	}
}

static int
cmd_ha_status(const struct ctl_env *env, int argc, char **argv)
{
	Envelope		 req, *reply;
	Tern__HaStatusRequest	 sr = TERN__HA_STATUS_REQUEST__INIT;
	int			 rc = CTL_EXIT_OK;

	if (argc > 2)
		return ctl_usage(&cmd_ha_entry);
	if (argc == 2)
		sr.name = argv[1];
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_HA_STATUS_REQUEST;
	req.ha_status_request = &sr;
	if ((reply = cmd_ha_ask(env, &req,
	    TERN__ENVELOPE__BODY_HA_STATUS_REPLY, &rc)) == NULL)
		return rc;
	if (env->json)
		cmd_ha_status_json(reply->ha_status_reply);
	else
		cmd_ha_status_text(reply->ha_status_reply);
	msg_free(reply);
	return CTL_EXIT_OK;
}

static int
cmd_ha_exec(const struct ctl_env *env, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage(&cmd_ha_entry);
	if (strcmp(argv[1], "set") == 0)
		return cmd_ha_set(env, argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_ha_status(env, argc - 1, argv + 1);
	return ctl_usage(&cmd_ha_entry);
}

const struct ctl_cmd cmd_ha_entry = {
	"ha", "ha set NAME [--policy none|restart|checkpoint] [--priority N] "
	"[--interval MS] [--replicas N] | ha status [NAME]",
	"change an instance's protection, or show the coordinator's picture",
	cmd_ha_exec
};

static const char *
cmd_failover_outcome(int o)
{
	return o == TERN__FAILOVER_RECORD__OUTCOME__RUNNING ? "running" :
	    o == TERN__FAILOVER_RECORD__OUTCOME__FAILED ? "failed" : "pending";
}

static void
cmd_failover_time(char *buf, size_t len, uint64_t unix_ms)
{
	time_t		t = (time_t)(unix_ms / 1000);
	struct tm	tm;

	char		sec[32];

	gmtime_r(&t, &tm);
	strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03uZ", sec, (unsigned)(unix_ms % 1000));
}

static void
cmd_failover_print(const struct ctl_env *env, const Tern__FailoverRecord *f,
    int first)
{
	char	when[64], after[32];

	if (env->json) {
		printf("%s{\"seq\":%" PRIu64 ",\"time_unix_ms\":%" PRIu64
		    ",\"instance\":", first ? "" : ",", f->seq,
		    f->time_unix_ms);
		ctl_json_string(stdout, f->instance);
		printf(",\"from\":");
		ctl_json_string(stdout, f->from);
		printf(",\"to\":");
		if (f->to != NULL)
			ctl_json_string(stdout, f->to);
		else
			printf("null");
		if (f->why != NULL) {
			printf(",\"why\":");
			ctl_json_string(stdout, f->why);
		}
		printf(",\"epoch\":%" PRIu64, f->epoch);
		if (f->has_failed_unix_ms)
			printf(",\"failed_unix_ms\":%" PRIu64 ",\"decision_ms\":%"
			    PRIu64, f->failed_unix_ms, f->time_unix_ms >
			    f->failed_unix_ms ? f->time_unix_ms -
			    f->failed_unix_ms : 0);
		printf(",\"outcome\":\"%s\"", cmd_failover_outcome(f->outcome));
		if (f->has_outcome_unix_ms)
			printf(",\"outcome_unix_ms\":%" PRIu64,
			    f->outcome_unix_ms);
		putchar('}');
		return;
	}
	cmd_failover_time(when, sizeof when, f->time_unix_ms);
	printf("%s  %s: %s -> %s at epoch %" PRIu64, when, f->instance,
	    f->from, f->to != NULL ? f->to : "nowhere", f->epoch);
	if (f->has_failed_unix_ms && f->time_unix_ms >= f->failed_unix_ms) {
		ctl_format_age(after, sizeof after,
		    f->time_unix_ms - f->failed_unix_ms);
		printf(", decided %s after %s failed", after, f->from);
	}
	if (f->to != NULL)
		printf(", %s", cmd_failover_outcome(f->outcome));
	if (f->why != NULL)
		printf(" (%s)", f->why);
	putchar('\n');
}

static int
cmd_failovers_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope			 req, *reply;
	Tern__FailoversRequest		 fr = TERN__FAILOVERS_REQUEST__INIT;
	const Tern__FailoversReply	*r;
	long long			 v;
	size_t				 i;
	int				 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (cmd_ha_number("limit", optarg, 0, &v) != 0 ||
			    v < 1) {
				ctl_error("--limit %s: the newest N, N >= 1",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			fr.has_limit = 1;
			fr.limit = (uint32_t)v;
			break;
		default:
			return ctl_usage(&cmd_failovers_entry);
		}
	}
	if (optind != argc)
		return ctl_usage(&cmd_failovers_entry);
	msg_init(&req, 0);
	req.body_case = TERN__ENVELOPE__BODY_FAILOVERS_REQUEST;
	req.failovers_request = &fr;
	if ((reply = cmd_ha_ask(env, &req, TERN__ENVELOPE__BODY_FAILOVERS_REPLY,
	    &rc)) == NULL)
		return rc;
	r = reply->failovers_reply;
	if (env->json)
		printf("{\"failovers\":[");
	else if (r->n_failovers == 0)
		printf("no failover recorded\n");
	for (i = 0; i < r->n_failovers; i++)
		cmd_failover_print(env, r->failovers[i], i == 0);
	if (env->json)
		printf("]}\n");
	msg_free(reply);
	return CTL_EXIT_OK;
}

const struct ctl_cmd cmd_failovers_entry = {
	"failovers", "failovers [--limit N]",
	"the coordinator's failover history, oldest first",
	cmd_failovers_exec
};
