/* The coordinator role on a ternd (see role.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "coord"
#include "coord/coordinator.h"
#include "coord/role.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ternd.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

struct coord_role {
	struct ternd		*td;
	struct store		*store;
	struct coordinator	*coord;
	int			 ready;
};

/* A renewal: the coordinator takes the host's drain mark as the mesh
 * heard it (ternctl host drain). */
static void
role_drained(struct coord_role *r, const char *host, const Envelope *env)
{
	struct mesh_host_state	st;

	if (env->body_case == TERN__ENVELOPE__BODY_LEASE_RENEW &&
	    mesh_host_state(r->td->mesh, host, &st) == 0)
		coord_host_drained(r->coord, host, st.drained);
}

static int
role_send(void *ctx, const char *host, const Envelope *env, char **cause)
{
	struct coord_role	*r = ctx;

	/* This host's own agent too: main has the mesh deliver grants to
	 * this host locally (mesh_deliver_local). */
	return mesh_send(r->td->mesh, host, env, cause);
}

static int
role_on_msg(void *ctx, const char *peer, const Envelope *env)
{
	struct coord_role	*r = ctx;

	role_drained(r, peer, env);
	return coord_on_msg(r->coord, peer, env);
}

/* --- ternctl ha set, ha status, failovers (forwarded by agent/ha-ops.c) -- */

/* An ha set waiting for the store: the answer goes to peer under id. */
struct role_ha_set {
	struct ternd		*td;		/* main's: outlives the role */
	struct coordinator	*coord;
	char			*peer;
	char			*name;
	uint64_t		 id;
};

static void
role_answer(struct ternd *td, const char *peer, uint64_t id, Envelope *env)
{
	char	*cause = NULL;

	env->has_request_id = 1;
	env->request_id = id;
	if (mesh_send(td->mesh, peer, env, &cause) != 0) {
		log_debug("answer to %s's %s not sent: %s", peer,
		    msg_name(env), cause);
		free(cause);
	}
}

static void
role_ha_set_error(struct ternd *td, const char *peer, uint64_t id,
    const char *name, int code, const char *error, const char *leader)
{
	Envelope		env;
	Tern__HaSetReply	r = TERN__HA_SET_REPLY__INIT;

	r.leader = (char *)leader;
	r.name = (char *)name;
	r.has_code = 1;
	r.code = (Tern__ErrorCode)code;
	r.error = (char *)error;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_HA_SET_REPLY;
	env.ha_set_reply = &r;
	role_answer(td, peer, id, &env);
}

static void
role_ha_was_set(void *arg, const char *error)
{
	struct role_ha_set	*q = arg;
	struct model_instance	*in;
	Envelope		 env;
	Tern__HaSetReply	 r = TERN__HA_SET_REPLY__INIT;

	if (error == NULL &&
	    (in = model_instance(coord_model(q->coord), q->name)) != NULL) {
		r.name = in->name;
		r.has_epoch = r.has_ha = r.has_priority = 1;
		r.has_interval_ms = r.has_replicas = 1;
		r.epoch = in->epoch;
		r.ha = (Tern__HaPolicy)in->ha;
		r.priority = in->priority;
		r.interval_ms = in->interval_ms;
		r.replicas = in->replicas;
		msg_init(&env, 0);
		env.body_case = TERN__ENVELOPE__BODY_HA_SET_REPLY;
		env.ha_set_reply = &r;
		role_answer(q->td, q->peer, q->id, &env);
	} else
		role_ha_set_error(q->td, q->peer, q->id, q->name,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, error != NULL ? error :
		    "the coordinator stopped", NULL);
	free(q->peer);
	free(q->name);
	free(q);
}

static void
role_ha_set(struct coord_role *r, const char *peer, const Envelope *env)
{
	const Tern__HaSetRequest	*req = env->ha_set_request;
	struct model_ha_set		 set;
	struct role_ha_set		*q;
	char				*cause = NULL;
	int				 code;

	memset(&set, 0, sizeof set);
	set.has_ha = req->has_ha;
	set.ha = (enum model_ha)req->ha;
	set.has_priority = req->has_priority;
	set.priority = req->priority;
	set.has_interval = req->has_interval_ms;
	set.interval_ms = req->interval_ms;
	set.has_replicas = req->has_replicas;
	set.replicas = req->replicas;
	q = xcalloc(1, sizeof *q);
	q->td = r->td;
	q->coord = r->coord;
	q->peer = xstrdup(peer);
	q->name = xstrdup(req->name);
	q->id = env->request_id;
	if (!r->ready)
		cause = xstrdup("the coordinator is starting (its store is not "
		    "loaded yet): try again in a moment; nothing changed");
	else if (coord_ha_set(r->coord, req->name, &set, role_ha_was_set, q,
	    &cause) == 0) {
		log_info("ha set %s asked by %s", req->name, peer);
		return;
	}
	code = !r->ready || !coord_leading(r->coord) ?
	    TERN__ERROR_CODE__ERROR_UNAVAILABLE :
	    model_instance(coord_model(r->coord), req->name) == NULL ?
	    TERN__ERROR_CODE__ERROR_NOT_FOUND :
	    TERN__ERROR_CODE__ERROR_BAD_REQUEST;
	/* Not leading: who does, for the asking ternd to ask it. */
	role_ha_set_error(r->td, peer, env->request_id, req->name, code,
	    cause, r->ready ? coord_leader_seen(r->coord) : NULL);
	free(cause);
	free(q->peer);
	free(q->name);
	free(q);
}

static uint64_t
role_unix_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One instance of ha status, its replicas with their age (the RPO now);
 * the caller frees out->replicas[*] and out->replicas. */
static void
role_ha_instance(struct model *m, const struct model_instance *in,
    uint64_t now, Tern__HaInstanceInfo *out)
{
	struct model_replica	**reps;
	Tern__HaReplicaInfo	**rp;
	size_t			  nr, k;

	tern__ha_instance_info__init(out);
	out->name = in->name;
	out->kind = in->kind;
	out->owner = in->owner;
	out->epoch = in->epoch;
	out->ha = (Tern__HaPolicy)in->ha;
	out->priority = in->priority;
	out->interval_ms = in->interval_ms;
	out->replicas_wanted = in->replicas;
	reps = model_replicas(m, in->name, &nr);
	rp = xcalloc(nr + 1, sizeof *rp);
	for (k = 0; k < nr; k++) {
		rp[k] = xcalloc(1, sizeof **rp);
		tern__ha_replica_info__init(rp[k]);
		rp[k]->host = reps[k]->host;
		rp[k]->generation = reps[k]->generation;
		rp[k]->epoch = reps[k]->epoch;
		rp[k]->age_ms = now > reps[k]->taken_unix_ms ?
		    now - reps[k]->taken_unix_ms : 0;
	}
	free(reps);
	out->n_replicas = nr;
	out->replicas = rp;
}

static void
role_ha_status(struct coord_role *r, const char *peer, const Envelope *env)
{
	const char		 *name = env->ha_status_request->name;
	struct model		 *m = coord_model(r->coord);
	struct model_host	**hosts;
	struct model_instance	**insts;
	Tern__HaStatusReply	  st = TERN__HA_STATUS_REPLY__INIT;
	Tern__HaHostInfo	 *hi = NULL, **hp = NULL;
	Tern__HaInstanceInfo	 *ii = NULL, **ip = NULL;
	Envelope		  out;
	size_t			  nh, ni, i, k, n = 0;
	uint64_t		  now = role_unix_ms();
	char			 *error = NULL;

	st.coordinator = r->td->conf->host_name;
	st.leading = r->ready && coord_leading(r->coord);
	st.leader = r->ready ? (char *)coord_leader_seen(r->coord) : NULL;
	if (!r->ready)
		xasprintf(&error, "coordinator %s is starting (its store is not "
		    "loaded yet): try again in a moment", st.coordinator);
	else if (name != NULL && model_instance(m, name) == NULL)
		xasprintf(&error, "no instance %s in the coordinator's records "
		    "(ternctl ha status lists them)", name);
	if (error != NULL) {
		st.has_code = 1;
		st.code = r->ready ? TERN__ERROR_CODE__ERROR_NOT_FOUND :
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE;
		st.error = error;
		goto send;
	}
	nh = model_hosts(m, &hosts);
	hi = xcalloc(nh + 1, sizeof *hi);
	hp = xcalloc(nh + 1, sizeof *hp);
	for (i = 0; i < nh; i++) {
		tern__ha_host_info__init(&hi[i]);
		hi[i].name = hosts[i]->name;
		hi[i].state = (char *)host_state_names[hosts[i]->lease.state];
		hi[i].drained = hosts[i]->drained != 0;
		hp[i] = &hi[i];
	}
	st.n_hosts = nh;
	st.hosts = hp;
	ni = model_instances(m, &insts);
	ii = xcalloc(ni + 1, sizeof *ii);
	ip = xcalloc(ni + 1, sizeof *ip);
	for (i = 0; i < ni; i++) {
		struct model_instance *in = insts[i];

		if (name != NULL && strcmp(in->name, name) != 0)
			continue;
		role_ha_instance(m, in, now, &ii[n]);
		ip[n] = &ii[n];
		n++;
	}
	st.n_instances = n;
	st.instances = ip;
send:
	msg_init(&out, 0);
	out.body_case = TERN__ENVELOPE__BODY_HA_STATUS_REPLY;
	out.ha_status_reply = &st;
	role_answer(r->td, peer, env->request_id, &out);
	for (i = 0; i < n; i++) {
		for (k = 0; k < ii[i].n_replicas; k++)
			free(ii[i].replicas[k]);
		free(ii[i].replicas);
	}
	free(ii);
	free(ip);
	free(hi);
	free(hp);
	free(error);
}

static void
role_failovers(struct coord_role *r, const char *peer, const Envelope *env)
{
	const Tern__FailoversRequest	 *req = env->failovers_request;
	struct model_failover		**fos;
	Tern__FailoversReply		  fr = TERN__FAILOVERS_REPLY__INIT;
	Tern__FailoverRecord		 *recs = NULL, **rp = NULL;
	Envelope			  out;
	size_t				  n = 0, first = 0, i;

	if (!r->ready) {
		fr.has_code = 1;
		fr.code = TERN__ERROR_CODE__ERROR_UNAVAILABLE;
		fr.error = "the coordinator is starting (its store is not "
		    "loaded yet): try again in a moment";
	} else {
		/* A follower's picture is as old as its last load: what it
		 * has, and who leads (the asking ternd asks it). */
		fr.leader = (char *)coord_leader_seen(r->coord);
		n = model_failovers(coord_model(r->coord), &fos);
		if (req->has_limit && req->limit < n)
			first = n - req->limit;
		recs = xcalloc(n - first + 1, sizeof *recs);
		rp = xcalloc(n - first + 1, sizeof *rp);
		for (i = first; i < n; i++) {
			Tern__FailoverRecord	*x = &recs[i - first];
			struct model_failover	*f = fos[i];

			model_failover_record(f, x);
			x->has_outcome = 1;	/* pending, too */
			rp[i - first] = x;
		}
		fr.n_failovers = n - first;
		fr.failovers = rp;
	}
	msg_init(&out, 0);
	out.body_case = TERN__ENVELOPE__BODY_FAILOVERS_REPLY;
	out.failovers_reply = &fr;
	role_answer(r->td, peer, env->request_id, &out);
	free(recs);
	free(rp);
}

static int
role_on_ops(void *ctx, const char *peer, const Envelope *env)
{
	struct coord_role	*r = ctx;

	if (!env->has_request_id)
		return 1;
	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_HA_SET_REQUEST:
		role_ha_set(r, peer, env);
		break;
	case TERN__ENVELOPE__BODY_HA_STATUS_REQUEST:
		role_ha_status(r, peer, env);
		break;
	case TERN__ENVELOPE__BODY_FAILOVERS_REQUEST:
		role_failovers(r, peer, env);
		break;
	default:
		return 0;
	}
	return 1;
}

static void
role_ready(void *arg, const char *error)
{
	struct coord_role	*r = arg;

	if (error != NULL) {
		log_warnx("coordinator: cannot start: %s; this host grants no "
		    "lease (fix the store and restart ternd)", error);
		return;
	}
	r->ready = 1;
	log_info("coordinator: store %s loaded", r->td->conf->store);
}

static void
role_event(void *arg, enum coord_event e, const char *host,
    const char *inst, const char *text)
{
	(void)arg;
	switch (e) {
	case COORD_EV_FAILOVER:
		log_info("failover: %s (was on %s): %s", inst, host, text);
		break;
	case COORD_EV_HOST_STATE:
	case COORD_EV_LEADING:
	case COORD_EV_DEPOSED:
		break;		/* coordinator.c logs them */
	}
}

static struct store *
role_open_store(struct ternd *td, char **cause)
{
	struct conf		*conf = td->conf;
	struct store_etcd_conf	 ec;
	struct store		*st;
	char			*dir;

	if (strcmp(conf->store, "etcd") == 0) {
		memset(&ec, 0, sizeof ec);
		ec.endpoints = conf->etcd_endpoints;
		ec.prefix = "/tern/";
		ec.timeout_ms = 1500;
		return store_etcd_open(td->loop, &ec, cause);
	}
	if (*conf->store_dir != '\0')
		dir = xstrdup(conf->store_dir);
	else
		xasprintf(&dir, "%s/coord", conf->state_dir);
	if (mkdir_p(dir, 0700, cause) == -1) {
		free(dir);
		return NULL;
	}
	st = store_journal_open(td->loop, dir, cause);
	free(dir);
	return st;
}

struct coord_role *
coord_role_start(struct ternd *td, char **cause)
{
	struct coord_role	*r;
	struct coord_conf	 cc;
	struct coord_transport	 tp;
	struct store		*st;

	if ((st = role_open_store(td, cause)) == NULL)
		return NULL;
	r = xcalloc(1, sizeof *r);
	r->td = td;
	r->store = st;
	memset(&cc, 0, sizeof cc);
	cc.name = td->conf->host_name;
	cc.lease.ttl_ms = (uint32_t)td->conf->lease_ttl_ms;
	cc.lease.margin_ms = (uint32_t)td->conf->lease_margin_ms;
	cc.leader_ttl_ms = (uint32_t)td->conf->leader_ttl_ms;
	cc.fence_command = td->conf->fence_command;
	cc.fence_timeout_ms = (uint32_t)td->conf->fence_timeout_ms;
	tp.send = role_send;
	tp.ctx = r;
	r->coord = coord_new(td->loop, &cc, st, &tp);
	coord_set_events(r->coord, role_event, r);
	if (coord_start(r->coord, role_ready, r, cause) == -1) {
		coord_role_stop(r);
		return NULL;
	}
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_LEASE_RENEW,
	    role_on_msg, r);
	/* A migration's commit point (agent/migration.c). */
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST,
	    role_on_msg, r);
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_OWNER_QUERY,
	    role_on_msg, r);
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_HA_SET_REQUEST,
	    role_on_ops, r);
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_HA_STATUS_REQUEST,
	    role_on_ops, r);
	mesh_on_message(td->mesh, TERN__ENVELOPE__BODY_FAILOVERS_REQUEST,
	    role_on_ops, r);
	return r;
}

struct coordinator *
coord_role_coordinator(struct coord_role *r)
{
	return r->coord;
}

char *
coord_role_describe(struct coord_role *r)
{
	struct model_host	**hosts;
	size_t			  n, i;
	char			 *s, *t;

	if (!r->ready)
		return xstrdup("starting (the store is not loaded yet)");
	n = model_hosts(coord_model(r->coord), &hosts);
	xasprintf(&s, "%s, %zu host%s", coord_leading(r->coord) ? "leading" :
	    "following", n, n == 1 ? "" : "s");
	for (i = 0; i < n; i++) {
		xasprintf(&t, "%s%s %s %s", s, i == 0 ? ":" : ",",
		    hosts[i]->name, host_state_names[hosts[i]->lease.state]);
		free(s);
		s = t;
	}
	return s;
}

void
coord_role_stop(struct coord_role *r)
{
	if (r == NULL)
		return;
	coord_free(r->coord);
	store_close(r->store);
	free(r);
}
