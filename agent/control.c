#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "ctl"
#include "agent/control.h"
#include "agent/drain.h"
#include "agent/ha-instances.h"
#include "agent/ha-ops.h"
#include "agent/instances.h"
#include "agent/migration.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* An answer that comes later: who asked, and under which id. */
struct control_wait {
	struct ctl_client	*client;
	uint64_t		 request_id;
	char			*host;
};

static struct control_wait *
control_wait_new(struct ctl_client *cl, const Envelope *req, const char *host)
{
	struct control_wait	*w;

	w = xcalloc(1, sizeof *w);
	w->client = cl;
	w->request_id = req->request_id;
	w->host = xstrdup(host);
	ctl_client_ref(cl);
	return w;
}

static void
control_wait_free(struct control_wait *w)
{
	ctl_client_unref(w->client);
	free(w->host);
	free(w);
}

static void
control_status(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	Envelope		 env;
	Tern__StatusReply	 st = TERN__STATUS_REPLY__INIT;
	char			*listen, *containers, *probe, *lease, *coord;
	unsigned		 total, up;
	size_t			 ncaps;

	xasprintf(&listen, "%s:%d", a->ternd->conf->listen_address,
	    a->ternd->conf->listen_port);
	mesh_count(a->ternd->mesh, &total, &up);
	st.host = a->ternd->conf->host_name;
	st.software = TERN_SOFTWARE;
	st.pid = (uint32_t)getpid();
	st.uptime_ms = now_ms() - a->ternd->start_ms;
	st.listen = listen;
	st.peers_total = total;
	st.peers_up = up;
	st.capabilities = (char **)agent_capabilities(a, &ncaps);
	st.n_capabilities = ncaps;
	containers = a->criu_probed ? criu_features_describe(&a->criu) :
	    xstrdup("checking CRIU");
	st.containers = containers;
	st.has_loop_worst_ms = st.has_loop_probe_ms = 1;
	st.loop_worst_ms = loop_probe_worst_ms(&a->ternd->probe);
	st.has_loop_worst_busy_ms = 1;
	st.loop_worst_busy_ms = loop_probe_worst_cpu_ms(&a->ternd->probe);
	st.has_loop_longest_callback_ms = 1;
	st.loop_longest_callback_ms =
	    loop_probe_longest_callback_ms(&a->ternd->probe);
	st.loop_probe_ms = now_ms() - a->ternd->probe.since_ms;
	st.loop_probe = probe = loop_probe_describe(&a->ternd->probe);
	st.lease = lease = ha_instances_lease(a);
	st.coordinator = coord = ha_instances_coordinator(a);
	msg_init(&env, req->request_id);
	env.body_case = TERN__ENVELOPE__BODY_STATUS_REPLY;
	env.status_reply = &st;
	ctl_client_reply(cl, &env);
	if (req->status_request->has_reset_loop_probe &&
	    req->status_request->reset_loop_probe) {
		log_info("event loop latency until now: %s", probe);
		loop_probe_reset(&a->ternd->probe);
	}
	free(listen);
	free(containers);
	free(probe);
	free(lease);
	free(coord);
}

static void
control_hosts(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	Envelope		env;
	Tern__HostsReply	hosts = TERN__HOSTS_REPLY__INIT;

	mesh_hosts(a->ternd->mesh, &hosts);
	msg_init(&env, req->request_id);
	env.body_case = TERN__ENVELOPE__BODY_HOSTS_REPLY;
	env.hosts_reply = &hosts;
	ctl_client_reply(cl, &env);
	mesh_hosts_free(&hosts);
}

static void
control_ping_done(void *arg, uint64_t rtt_us, const char *error)
{
	struct control_wait	*w = arg;
	Envelope		 env;
	Tern__PingHostReply	 r = TERN__PING_HOST_REPLY__INIT;

	if (error != NULL)
		ctl_client_error(w->client, w->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "ping %s: %s", w->host,
		    error);
	else {
		r.host = w->host;
		r.rtt_us = rtt_us;
		msg_init(&env, w->request_id);
		env.body_case = TERN__ENVELOPE__BODY_PING_HOST_REPLY;
		env.ping_host_reply = &r;
		ctl_client_reply(w->client, &env);
	}
	control_wait_free(w);
}

static void
control_ping(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	struct control_wait	*w;
	const char		*host = req->ping_host_request->host;
	char			*cause = NULL;

	w = control_wait_new(cl, req, host);
	if (mesh_ping(a->ternd->mesh, host, control_ping_done, w, &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s", cause);
		control_wait_free(w);
		free(cause);
	}
}

static void
control_stream_test_done(void *arg, uint64_t bytes, uint64_t elapsed_ns,
    const char *error)
{
	struct control_wait	*w = arg;
	Envelope		 env;
	Tern__StreamTestReply	 r = TERN__STREAM_TEST_REPLY__INIT;

	if (error != NULL) {
		log_warnx("stream test to %s failed: %s", w->host, error);
		ctl_client_error(w->client, w->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "stream to %s: %s",
		    w->host, error);
	} else {
		log_info("stream test to %s: %llu bytes in %.3f s", w->host,
		    (unsigned long long)bytes, (double)elapsed_ns / 1e9);
		r.bytes = bytes;
		r.elapsed_ns = elapsed_ns;
		msg_init(&env, w->request_id);
		env.body_case = TERN__ENVELOPE__BODY_STREAM_TEST_REPLY;
		env.stream_test_reply = &r;
		ctl_client_reply(w->client, &env);
	}
	control_wait_free(w);
}

static void
control_stream_test(struct agent *a, struct ctl_client *cl,
    const Envelope *req)
{
	const Tern__StreamTestRequest	*r = req->stream_test_request;
	struct control_wait		*w;
	char				*cause = NULL;

	if (r->bytes == 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "bytes must be > 0");
		return;
	}
	w = control_wait_new(cl, req, r->host);
	if (mesh_stream_test(a->ternd->mesh, r->host, r->bytes,
	    control_stream_test_done, w, &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s", cause);
		control_wait_free(w);
		free(cause);
	}
}

/* An instance request's answer: reply (with the request's id) or error. */
static void
control_instance_done(void *arg, const Envelope *reply, int code,
    const char *error)
{
	struct control_wait	*w = arg;
	Envelope		 env;

	if (error != NULL)
		ctl_client_error(w->client, w->request_id, code, "%s", error);
	else {
		env = *reply;
		env.has_request_id = 1;
		env.request_id = w->request_id;
		ctl_client_reply(w->client, &env);
	}
	control_wait_free(w);
}

/* A progress report: to the waiting client, which stays waiting. */
static void
control_progress(void *arg, const Envelope *msg, int code, const char *error)
{
	struct control_wait	*w = arg;
	Envelope		 env;

	(void)code;
	(void)error;
	env = *msg;
	env.has_request_id = 1;
	env.request_id = w->request_id;
	ctl_client_reply(w->client, &env);
}

static int
control_instances(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	struct control_wait	*w;
	char			*cause = NULL;
	int			 act;

	switch (req->body_case) {
	case TERN__ENVELOPE__BODY_INSTANCE_CREATE_REQUEST:
	case TERN__ENVELOPE__BODY_INSTANCE_ACTION_REQUEST:
	case TERN__ENVELOPE__BODY_INSTANCE_LIST_REQUEST:
	case TERN__ENVELOPE__BODY_CHECKPOINT_REQUEST:
	case TERN__ENVELOPE__BODY_RESTORE_REQUEST:
	case TERN__ENVELOPE__BODY_MIGRATE_REQUEST:
		break;
	default:
		return 0;
	}
	if (a->instances == NULL) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "ternd is still starting (checking CRIU); try again");
		return 1;
	}
	if (req->body_case == TERN__ENVELOPE__BODY_INSTANCE_CREATE_REQUEST &&
	    drain_refuses(a, &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s: not created: %s",
		    req->instance_create_request->name, cause);
		free(cause);
		return 1;
	}
	/* A stop or destroy of an instance on the move: the drivers would
	 * only say it moves, not what the operator can do. */
	act = req->body_case == TERN__ENVELOPE__BODY_INSTANCE_ACTION_REQUEST ?
	    (int)req->instance_action_request->action : 0;
	if ((act == TERN__INSTANCE_ACTION_REQUEST__ACTION__STOP ||
	    act == TERN__INSTANCE_ACTION_REQUEST__ACTION__DESTROY) &&
	    migration_refuses_action(a, req->instance_action_request->name,
	    act == TERN__INSTANCE_ACTION_REQUEST__ACTION__DESTROY,
	    &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "%s", cause);
		free(cause);
		return 1;
	}
	w = control_wait_new(cl, req, "");
	switch (req->body_case) {
	case TERN__ENVELOPE__BODY_INSTANCE_CREATE_REQUEST:
		instances_create(a->instances, req->instance_create_request,
		    control_instance_done, w);
		break;
	case TERN__ENVELOPE__BODY_INSTANCE_ACTION_REQUEST:
		instances_action(a->instances, req->instance_action_request,
		    control_instance_done, w);
		break;
	case TERN__ENVELOPE__BODY_INSTANCE_LIST_REQUEST:
		instances_list(a->instances, control_instance_done, w);
		break;
	case TERN__ENVELOPE__BODY_CHECKPOINT_REQUEST:
		instances_checkpoint(a->instances, req->checkpoint_request,
		    control_instance_done, w);
		break;
	case TERN__ENVELOPE__BODY_MIGRATE_REQUEST:
		migration_start(a, req->migrate_request, control_progress,
		    control_instance_done, w);
		break;
	default:
		instances_restore(a->instances, req->restore_request,
		    control_instance_done, w);
		break;
	}
	return 1;
}

void
control_request(struct ctl_client *cl, const Envelope *req, void *arg)
{
	struct agent	*a = arg;

	log_debug("control request %s (id %llu)", msg_name(req),
	    (unsigned long long)req->request_id);
	if (a->ternd->stopping) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "ternd is shutting down");
		return;
	}
	switch (req->body_case) {
	case TERN__ENVELOPE__BODY_STATUS_REQUEST:
		control_status(a, cl, req);
		break;
	case TERN__ENVELOPE__BODY_HOSTS_REQUEST:
		control_hosts(a, cl, req);
		break;
	case TERN__ENVELOPE__BODY_PING_HOST_REQUEST:
		control_ping(a, cl, req);
		break;
	case TERN__ENVELOPE__BODY_STREAM_TEST_REQUEST:
		control_stream_test(a, cl, req);
		break;
	case TERN__ENVELOPE__BODY_HOST_DRAIN_REQUEST:
		drain_control(a, cl, req);
		break;
	default:
		if (control_instances(a, cl, req) || ha_ops_control(a, cl, req))
			break;
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "%s is not a control request", msg_name(req));
		break;
	}
}
