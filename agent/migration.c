/* Migrations on this host: the engine (migrate/engine.h), its drivers,
 * and the routing from the mesh and the control socket to them. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-mig-internal.h"
#include "agent/drain.h"
#include "agent/driver.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/vm-migration.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/xmalloc.h"
#include "migrate/engine.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"

/* --- the engine's glue ------------------------------------------------------ */

static int
migration_send(void *ctx, const char *peer, const Envelope *env, char **cause)
{
	struct agent	*a = ctx;

	/* a->ternd->mesh is NULL once ternd stops: mesh_send says so. */
	return mesh_send(a->ternd->mesh, peer, env, cause);
}

static void
migration_engine_conf(const struct agent *a, struct mig_engine_conf *c)
{
	memset(c, 0, sizeof *c);
	c->host_name = a->ternd->conf->host_name;
	c->timeout_ms = (uint32_t)a->ternd->conf->migration_timeout_ms;
	c->boot_id = a->ternd->boot_id;
	/* The agent's counter, as ids were numbered before the engine. */
	c->id_counter = &((struct agent *)a)->next_migration;
}

void
migration_init(struct agent *a)
{
	struct mig_engine_conf	c;
	struct mig_transport	tr = { .send = migration_send, .ctx = a };

	migration_engine_conf(a, &c);
	a->mig = mig_engine_new(a->ternd->loop, &c, &tr);
	mig_engine_set_data(a->mig, a);
	mig_engine_register(a->mig, &ctr_driver);
	vm_migration_register(a);
}

void
migration_reconfigure(struct agent *a)
{
	struct mig_engine_conf	c;

	if (a->mig == NULL)
		return;
	migration_engine_conf(a, &c);
	mig_engine_set_conf(a->mig, &c);
}

static int
migration_accept_engine(struct agent *a, const char *peer,
    Tern__StreamKind kind, struct stream *st, const char *name, uint64_t size,
    char **cause)
{
	if (a->mig == NULL) {
		set_cause(cause, "ternd on %s is shutting down",
		    a->ternd->conf->host_name);
		return -1;
	}
	return mig_engine_accept_stream(a->mig, peer, kind, st, name, size,
	    cause);
}

/* --- the engine's glue: routing --------------------------------------------- */

void
migration_start(struct agent *a, const Tern__MigrateRequest *r,
    instances_done_cb progress, instances_done_cb cb, void *arg)
{
	struct instance	*in;
	char		*cause;

	if (a->mig == NULL) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "ternd is shutting down");
		return;
	}
	if (r->has_cancel && r->cancel) {
		mig_engine_start(a->mig, 0, r, progress, cb, arg);
		return;
	}
	if (a->instances == NULL ||
	    (in = instance_find(a->instances, r->name)) == NULL) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance named so on this host (ternctl list)");
		return;
	}
	/* Its owner is the coordinator's record: a move must change it in
	 * the same step as the commit, or the target's copy would be
	 * discarded as stale and the source's stopped. */
	if (in->ha != 0) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance is protected by the coordinator (--ha): moving it "
		    "needs the commit point in the coordinator's store, which "
		    "this version does not have yet (docs/ha.md)");
		return;
	}
	/* What any kind's move needs of its target. */
	if (strcmp(r->to, a->ternd->conf->host_name) == 0) {
		xasprintf(&cause, "instance %s already runs on %s", in->name,
		    r->to);
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, cause);
		free(cause);
		return;
	}
	if (mesh_mux(a->ternd->mesh, r->to) == NULL) {
		xasprintf(&cause, "host %s is not up (ternctl hosts)", r->to);
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, cause);
		free(cause);
		return;
	}
	mig_engine_start(a->mig, in->drv->kind, r, progress, cb, arg);
}

/* An offer: refused while this host is drained (ternctl host drain). */
static int
migration_offer(struct agent *a, const char *peer, const Envelope *env)
{
	const Tern__MigrateOffer	*o = env->migrate_offer;
	Tern__MigrateStep		 s = TERN__MIGRATE_STEP__INIT;
	Envelope			 out;
	char				*cause = NULL, *why = NULL;

	if (drain_refuses(a, &cause) == 0)
		return mig_engine_on_msg(a->mig, peer, env);
	log_warnx("mig %" PRIx64 " %s from %s refused: %s", o->migration,
	    o->name, peer, cause);
	s.migration = o->migration;
	s.step = TERN__MIGRATE_STEP__STEP__ABORT;
	s.error = cause;
	msg_init(&out, 0);
	out.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	out.migrate_step = &s;
	if (mesh_send(a->ternd->mesh, peer, &out, &why) != 0) {
		log_debug("refusal to %s not sent: %s", peer, why);
		free(why);
	}
	free(cause);
	return 1;
}

int
migration_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	if (env->body_case != TERN__ENVELOPE__BODY_MIGRATE_OFFER &&
	    env->body_case != TERN__ENVELOPE__BODY_MIGRATE_STEP)
		return 0;
	if (a->mig == NULL)
		return 1;	/* stopping: no new work */
	if (env->body_case == TERN__ENVELOPE__BODY_MIGRATE_OFFER)
		return migration_offer(a, peer, env);
	return mig_engine_on_msg(a->mig, peer, env);
}

int
migration_accept_file(struct agent *a, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	return migration_accept_engine(a, peer, FILES_STREAM_KIND, st, name,
	    size, cause);
}

int
migration_accept_tree(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	return migration_accept_engine(a, peer, TREE_STREAM_KIND, st, name, 0,
	    cause);
}

int
migration_accept_relay(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	return migration_accept_engine(a, peer, RELAY_STREAM_KIND, st, name, 0,
	    cause);
}

void
migration_peer_lost(struct agent *a, const char *peer, const char *why)
{
	if (a->mig != NULL)
		mig_engine_peer_lost(a->mig, peer, why);
}

void
migration_shutdown(struct agent *a)
{
	if (a->mig == NULL)
		return;
	mig_engine_shutdown(a->mig);
	/* Gone once its last migration is (no new ones from here). */
	mig_engine_free(a->mig);
	a->mig = NULL;
}
