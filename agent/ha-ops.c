/* ternctl ha set / ha status / failovers, forwarded to the coordinator
 * (agent/ha-ops.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "ha"
#include "agent/ha.h"
#include "agent/ha-ops.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* A request sent to the coordinator: whose it is. */
struct ha_fwd {
	struct ha_fwd		*next;
	char			*peer;
	uint64_t		 id;		/* ours, on the mesh */
	struct ctl_client	*cl;
	uint64_t		 client_id;	/* the ternctl's */
	uint8_t			*req;		/* packed, to ask the leader */
	size_t			 req_len;	/* (NULL once it was) */
};

struct ha_ops_state {
	struct ha_fwd	*fwds;
	uint64_t	 next_id;
};

/* The coordinator this host asks: the one its lease renewals go to
 * now, else the first it lists, else itself when it is one; NULL if
 * none. */
static const char *
ha_ops_coordinator(const struct agent *a)
{
	const struct conf	*conf = a->ternd->conf;

	if (a->ha != NULL)
		return ha_agent_coordinator(a->ha);
	if (conf->ncoordinators > 0)
		return conf->coordinators[0];
	if (strstr(conf->role, "coordinator") != NULL)
		return conf->host_name;
	return NULL;
}

static void
ha_fwd_free(struct ha_fwd *f)
{
	ctl_client_unref(f->cl);
	free(f->peer);
	free(f->req);
	free(f);
}

int
ha_ops_control(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	struct ha_fwd	*f;
	const char	*coord;
	Envelope	 env;
	char		*cause = NULL;

	switch (req->body_case) {
	case TERN__ENVELOPE__BODY_HA_SET_REQUEST:
	case TERN__ENVELOPE__BODY_HA_STATUS_REQUEST:
	case TERN__ENVELOPE__BODY_FAILOVERS_REQUEST:
		break;
	default:
		return 0;
	}
	if ((coord = ha_ops_coordinator(a)) == NULL) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "host %s has no "
		    "coordinator (set coordinator in ternd.conf, or ask a host "
		    "that has one)", a->ternd->conf->host_name);
		return 1;
	}
	f = xcalloc(1, sizeof *f);
	f->peer = xstrdup(coord);
	f->id = a->ha_ops->next_id++;
	f->cl = cl;
	f->client_id = req->request_id;
	ctl_client_ref(cl);
	env = *req;
	env.has_request_id = 1;
	env.request_id = f->id;
	f->req = msg_pack(&env, &f->req_len);
	if (mesh_send(a->ternd->mesh, coord, &env, &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "cannot reach the "
		    "coordinator %s: %s (ternctl hosts); nothing changed",
		    coord, cause);
		free(cause);
		ha_fwd_free(f);
		return 1;
	}
	f->next = a->ha_ops->fwds;
	a->ha_ops->fwds = f;
	return 1;
}

/* The error a reply carries, if any, and who leads if the coordinator
 * asked does not. */
static const char *
ha_ops_reply_error(const Envelope *env, int *code, const char **leader)
{
	int		 has = 0, c = 0;
	const char	*error = NULL;

	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_HA_SET_REPLY:
		has = env->ha_set_reply->has_code;
		c = env->ha_set_reply->code;
		error = env->ha_set_reply->error;
		*leader = env->ha_set_reply->leader;
		break;
	case TERN__ENVELOPE__BODY_HA_STATUS_REPLY:
		has = env->ha_status_reply->has_code;
		c = env->ha_status_reply->code;
		error = env->ha_status_reply->error;
		*leader = env->ha_status_reply->leader;
		break;
	default:
		has = env->failovers_reply->has_code;
		c = env->failovers_reply->code;
		error = env->failovers_reply->error;
		*leader = env->failovers_reply->leader;
		break;
	}
	*code = has ? c : TERN__ERROR_CODE__ERROR_INTERNAL;
	return error;
}

/* The coordinator asked does not lead and named the one that does: ask
 * that one, once (0), rather than relay a follower's refusal or its old
 * picture. */
static int
ha_ops_follow(struct agent *a, struct ha_fwd *f, const char *leader)
{
	Envelope	*env;
	char		*cause = NULL;
	int		 code, rc;

	if (f->req == NULL || leader == NULL || strcmp(leader, f->peer) == 0)
		return -1;
	if ((env = msg_unpack(f->req, f->req_len, &code, &cause)) == NULL) {
		free(cause);
		return -1;
	}
	free(f->req);
	f->req = NULL;
	f->id = a->ha_ops->next_id++;
	env->request_id = f->id;
	if ((rc = mesh_send(a->ternd->mesh, leader, env, &cause)) != 0) {
		log_debug("%s not asked of the leader %s: %s", msg_name(env),
		    leader, cause);
		free(cause);
	} else {
		log_info("%s: coordinator %s does not lead; asking %s",
		    msg_name(env), f->peer, leader);
		free(f->peer);
		f->peer = xstrdup(leader);
	}
	msg_free(env);
	return rc == 0 ? 0 : -1;
}

/* From the coordinator: to the ternctl that asked, under its id. */
static int
ha_ops_mesh_msg(void *ctx, const char *peer, const Envelope *env)
{
	struct agent	*a = ctx;
	struct ha_fwd	*f, **fp;
	const char	*error, *leader = NULL;
	Envelope	 out;
	int		 code;

	if (a->ha_ops == NULL || !env->has_request_id)
		return 1;
	for (fp = &a->ha_ops->fwds; (f = *fp) != NULL; fp = &f->next)
		if (f->id == env->request_id && strcmp(f->peer, peer) == 0)
			break;
	if (f == NULL)
		return 1;	/* its ternctl went: dropped */
	error = ha_ops_reply_error(env, &code, &leader);
	if (ha_ops_follow(a, f, leader) == 0)
		return 1;
	*fp = f->next;
	if (error != NULL)
		ctl_client_error(f->cl, f->client_id, code, "%s", error);
	else {
		out = *env;
		out.request_id = f->client_id;
		ctl_client_reply(f->cl, &out);
	}
	ha_fwd_free(f);
	return 1;
}

static void
ha_ops_mesh_lost(void *ctx, const char *peer, const char *why)
{
	struct agent	*a = ctx;
	struct ha_fwd	*f, **fp;

	if (a->ha_ops == NULL)
		return;
	fp = &a->ha_ops->fwds;
	while ((f = *fp) != NULL) {
		if (strcmp(f->peer, peer) != 0) {
			fp = &f->next;
			continue;
		}
		*fp = f->next;
		/* A change may have been stored before the link went. */
		ctl_client_error(f->cl, f->client_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "lost the link to the "
		    "coordinator %s (%s) before it answered: ternctl ha status "
		    "shows what it holds", peer, why);
		ha_fwd_free(f);
	}
}

void
ha_ops_init(struct agent *a, struct mesh *ms)
{
	a->ha_ops = xcalloc(1, sizeof *a->ha_ops);
	a->ha_ops->next_id = 1;
	mesh_on_message(ms, TERN__ENVELOPE__BODY_HA_SET_REPLY, ha_ops_mesh_msg,
	    a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_HA_STATUS_REPLY,
	    ha_ops_mesh_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_FAILOVERS_REPLY,
	    ha_ops_mesh_msg, a);
	mesh_on_peer_lost(ms, ha_ops_mesh_lost, a);
}

void
ha_ops_free(struct agent *a)
{
	struct ha_fwd	*f;

	if (a->ha_ops == NULL)
		return;
	while ((f = a->ha_ops->fwds) != NULL) {
		a->ha_ops->fwds = f->next;
		ha_fwd_free(f);
	}
	free(a->ha_ops);
	a->ha_ops = NULL;
}
