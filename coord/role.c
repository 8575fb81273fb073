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
