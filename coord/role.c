/* The coordinator role on a ternd (see role.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "coord"
#include "coord/coordinator.h"
#include "coord/role.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ternd.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* A message between the coordinator and the agent of this same host,
 * packed as if it crossed the wire: each side decodes its own copy. */
struct local_msg {
	struct local_msg	*next;
	int			 to_agent;
	uint8_t			*buf;
	size_t			 len;
};

struct coord_role {
	struct ternd		*td;
	struct store		*store;
	struct coordinator	*coord;
	coord_deliver_fn	 deliver;
	void			*deliver_ctx;
	struct local_msg	*queue, **tail;
	uv_timer_t		*timer;
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

static void
role_flush(uv_timer_t *t)
{
	struct coord_role	*r = t->data;
	struct local_msg	*lm;
	Envelope		*env;
	char			*cause = NULL;
	int			 code;
	const char		*self = r->td->conf->host_name;

	while ((lm = r->queue) != NULL) {
		r->queue = lm->next;
		if (r->queue == NULL)
			r->tail = &r->queue;
		env = msg_unpack(lm->buf, lm->len, &code, &cause);
		if (env == NULL) {
			log_warnx("local lease message dropped: %s", cause);
			free(cause);
			cause = NULL;
		} else if (lm->to_agent) {
			if (r->deliver != NULL)
				r->deliver(r->deliver_ctx, self, env);
		} else {
			role_drained(r, self, env);
			coord_on_msg(r->coord, self, env);
		}
		msg_free(env);
		free(lm->buf);
		free(lm);
	}
}

static void
role_queue(struct coord_role *r, int to_agent, const Envelope *env)
{
	struct local_msg	*lm = xcalloc(1, sizeof *lm);

	lm->to_agent = to_agent;
	lm->buf = msg_pack(env, &lm->len);
	*r->tail = lm;
	r->tail = &lm->next;
	uv_timer_start(r->timer, role_flush, 0, 0);
}

static int
role_send(void *ctx, const char *host, const Envelope *env, char **cause)
{
	struct coord_role	*r = ctx;

	if (strcmp(host, r->td->conf->host_name) == 0) {
		role_queue(r, 1, env);
		return 0;
	}
	return mesh_send(r->td->mesh, host, env, cause);
}

int
coord_role_local(struct coord_role *r, const Envelope *env)
{
	role_queue(r, 0, env);
	return 0;
}

static int
role_on_msg(void *ctx, const char *peer, const Envelope *env)
{
	struct coord_role	*r = ctx;

	role_drained(r, peer, env);
	return coord_on_msg(r->coord, peer, env);
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
	r->tail = &r->queue;
	r->timer = xcalloc(1, sizeof *r->timer);
	uv_timer_init(td->loop, r->timer);
	r->timer->data = r;
	memset(&cc, 0, sizeof cc);
	cc.name = td->conf->host_name;
	cc.lease.ttl_ms = (uint32_t)td->conf->lease_ttl_ms;
	cc.lease.margin_ms = (uint32_t)td->conf->lease_margin_ms;
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
	return r;
}

void
coord_role_set_local(struct coord_role *r, coord_deliver_fn fn, void *ctx)
{
	r->deliver = fn;
	r->deliver_ctx = ctx;
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

static void
role_timer_closed(uv_handle_t *h)
{
	free(h);
}

void
coord_role_stop(struct coord_role *r)
{
	struct local_msg	*lm;

	if (r == NULL)
		return;
	while ((lm = r->queue) != NULL) {
		r->queue = lm->next;
		free(lm->buf);
		free(lm);
	}
	uv_close((uv_handle_t *)r->timer, role_timer_closed);
	coord_free(r->coord);
	store_close(r->store);
	free(r);
}
