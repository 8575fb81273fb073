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
#include "agent/ha.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/vm-migration.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
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
	/* Its owner is the coordinator's record: the commit point is the
	 * store's transaction (migration_owner_move), which a container's
	 * migration takes before COMMIT and a VM's once libvirt left the
	 * target's copy paused. */
	if (in->ha != 0 && (a->ha == NULL || in->epoch == 0)) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "instance is protected but the coordinator has not given "
		    "it an epoch here yet (ternctl status, ternctl ha status)");
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

/* Refused, not queued: where the instance runs once the move ends is
 * what the move decides, and an action queued here could meet it gone. */
int
migration_refuses_action(struct agent *a, const char *name, int destroy,
    char **cause)
{
	const struct instance	*in;
	struct mig		*m;
	const char		*what = destroy ? "destroyed" : "stopped";
	const char		*phase;
	int			 role;

	/* A VM's arrival is not an instance here until its commit. */
	in = a->instances != NULL ? instance_find(a->instances, name) : NULL;
	if (in != NULL && in->state != INST_MIGRATING &&
	    in->state != INST_INCOMING)
		return 0;
	role = in != NULL && in->state == INST_MIGRATING ? MIG_ROLE_SOURCE :
	    MIG_ROLE_TARGET;
	m = a->mig != NULL ? mig_find_name(a->mig, name, role) : NULL;
	if (m == NULL) {
		if (in == NULL)
			return 0;
		xasprintf(cause, "instance %s is %s: not %s; try again once "
		    "the move ends (ternctl list)", name,
		    inst_state_names[in->state], what);
		return -1;
	}
	phase = mig_state_name(m);
	if (role == MIG_ROLE_TARGET && mig_phase_committed(m->phase))
		xasprintf(cause, "instance %s arrived from %s and is this "
		    "host's now (%s): not %s; act here once it runs", name,
		    m->peer, phase, what);
	else if (role == MIG_ROLE_TARGET)
		xasprintf(cause, "instance %s is arriving from %s (%s): not "
		    "%s; act once the move ends, where it runs then "
		    "(ternctl migrate --cancel %s on %s rolls the move back "
		    "while it can)", name, m->peer, phase, what, name, m->peer);
	else if (m->phase == MIG_PH_ROLLING_BACK || m->phase == MIG_PH_FAILED)
		xasprintf(cause, "instance %s is coming back from its move to "
		    "%s (%s): not %s; act here once it runs again", name,
		    m->peer, phase, what);
	else if (m->phase == MIG_PH_RECORDING)
		xasprintf(cause, "instance %s is migrating to %s and "
		    "coordinator %s's store decides where it runs (%s): not "
		    "%s; act once the move ends, where it runs then "
		    "(ternctl ha status %s)", name, m->peer, a->ha != NULL ?
		    ha_agent_coordinator(a->ha) : "?", phase, what, name);
	else if (mig_phase_verdict(m->role, m->phase, MIG_FAIL_CANCEL) ==
	    MIG_V_ROLLBACK)
		xasprintf(cause, "instance %s is migrating to %s (%s): not "
		    "%s; act once the move ends, or roll it back first "
		    "(ternctl migrate --cancel %s)", name, m->peer, phase, what,
		    name);
	else
		xasprintf(cause, "instance %s is migrating to %s, past the "
		    "point of no return (%s): not %s; act on %s once it "
		    "runs there", name, m->peer, phase, what, m->peer);
	return -1;
}

/* --- a protected instance's commit point (migration.h) -------------------- */

/* Between questions once the answer is lost. */
#define OWNER_ASK_MS	250

struct owner_move {
	struct owner_move	*next;
	struct agent		*a;
	char			*name, *to;
	uint64_t		 epoch, migration;
	int			 asking;	/* the answer is lost */
	uint64_t		 ask_until;	/* past our lease: 0, none */
	int			 past_lease;	/* said so */
	uv_timer_t		*timer;
	owner_cb		 cb;
	void			*arg;
};

static void
owner_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void
owner_end(struct owner_move *om, enum owner_result res, uint64_t epoch,
    const char *why)
{
	struct owner_move	**pp;

	for (pp = &om->a->owner_moves; *pp != NULL; pp = &(*pp)->next)
		if (*pp == om) {
			*pp = om->next;
			break;
		}
	uv_close((uv_handle_t *)om->timer, owner_timer_closed);
	om->cb(om->arg, res, epoch, why);
	free(om->name);
	free(om->to);
	free(om);
}

static void	owner_due(uv_timer_t *);

/* Our lease ended before the answer was learned.  A copy of ours must
 * stop now (the lease fencing does), and the target runs its copy only
 * if its grant lists it, i.e. only if the store did commit: UNKNOWN.  A
 * mover with no copy of its own (a VM libvirt moved, paused on the
 * target) asks on until om->ask_until: the store's word keeps the
 * target's paused copy (moved: it resumes there; not: it comes back
 * here), where a guess fences it once two TTLs pass without a grant.
 * 0: ask on. */
static int
owner_lease_ended(struct owner_move *om)
{
	struct agent	*a = om->a;
	uint64_t	 now = uv_now(a->ternd->loop);

	if (a->ha == NULL || now >= om->ask_until) {
		owner_end(om, OWNER_UNKNOWN, 0, om->past_lease ? "the "
		    "coordinator's answer was lost and could not be learned "
		    "before this host's lease ended, nor in the time the "
		    "target waits for the commit" : "the coordinator's answer "
		    "was lost and could not be learned before this host's "
		    "lease ended");
		return -1;
	}
	if (!om->past_lease) {
		om->past_lease = 1;
		log_warnx("instance %s: this host's lease ended before "
		    "coordinator %s said whether it moved to %s; no copy of it "
		    "is left here (%s holds it paused), so it asks on, up to "
		    "%" PRIu64 " ms", om->name, ha_agent_coordinator(a->ha),
		    om->to, om->to, om->ask_until - now);
	}
	return 0;
}

/* The answer is lost (no reply in time, the link to the coordinator cut,
 * the coordinator restarted): we do not guess.  The store says who owns
 * it: the target at epoch + 1 (committed), or still us at epoch (not: roll
 * back).  We ask until our own lease ends (owner_lease_ended). */
static void
owner_ask(struct owner_move *om)
{
	struct agent		*a = om->a;
	Envelope		 env;
	Tern__OwnerQuery	 q = TERN__OWNER_QUERY__INIT;
	char			*cause = NULL;

	if ((a->ha == NULL || !ha_agent_valid(a->ha)) &&
	    owner_lease_ended(om) != 0)
		return;
	q.name = om->name;
	q.migration = om->migration;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_QUERY;
	env.owner_query = &q;
	if (mesh_send(a->ternd->mesh, ha_agent_coordinator(a->ha), &env,
	    &cause) != 0) {
		log_debug("instance %s: owner query not sent: %s", om->name,
		    cause);
		free(cause);
	}
	uv_timer_start(om->timer, owner_due, OWNER_ASK_MS, 0);
}

static void
owner_due(uv_timer_t *t)
{
	struct owner_move	*om = t->data;

	if (!om->asking) {
		om->asking = 1;
		log_warnx("instance %s: no answer from coordinator %s to its "
		    "move to %s; asking who owns it", om->name,
		    ha_agent_coordinator(om->a->ha), om->to);
	}
	owner_ask(om);
}

int
migration_owner_move(struct agent *a, const struct instance *in,
    const char *to, uint64_t migration, uint64_t ask_until, owner_cb cb,
    void *arg, char **cause)
{
	struct owner_move	*om;
	Envelope		 env;
	Tern__OwnerMoveRequest	 r = TERN__OWNER_MOVE_REQUEST__INIT;
	char			*why = NULL;

	if (a->ha == NULL || in->epoch == 0) {
		xasprintf(cause, "instance %s is protected but this host holds "
		    "no lease for it", in->name);
		return -1;
	}
	om = xcalloc(1, sizeof *om);
	om->a = a;
	om->name = xstrdup(in->name);
	om->to = xstrdup(to);
	om->epoch = in->epoch;
	om->migration = migration;
	om->ask_until = ask_until;
	om->cb = cb;
	om->arg = arg;
	om->timer = xcalloc(1, sizeof *om->timer);
	uv_timer_init(a->ternd->loop, om->timer);
	om->timer->data = om;
	om->next = a->owner_moves;
	a->owner_moves = om;
	r.name = om->name;
	r.to = om->to;
	r.epoch = om->epoch;
	r.migration = migration;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST;
	env.owner_move_request = &r;
	log_info("instance %s: asking coordinator %s to make %s its owner "
	    "(epoch %" PRIu64 " -> %" PRIu64 ")", om->name,
	    ha_agent_coordinator(a->ha), to, om->epoch, om->epoch + 1);
	if (mesh_send(a->ternd->mesh, ha_agent_coordinator(a->ha), &env,
	    &why) != 0) {
		/* Not sent: ask anyway (a link that dropped after the
		 * send began cannot be told from one that never had it). */
		log_warnx("instance %s: move not sent to coordinator %s: %s",
		    om->name, ha_agent_coordinator(a->ha), why);
		free(why);
		om->asking = 1;
		owner_ask(om);
		return 0;
	}
	/* A store transaction takes one fsync (journal) or one round
	 * trip (etcd): a lease's life is ample. */
	uv_timer_start(om->timer, owner_due, (uint64_t)a->ternd->conf->lease_ttl_ms,
	    0);
	return 0;
}

static struct owner_move *
owner_find(struct agent *a, const char *name, uint64_t migration)
{
	struct owner_move	*om;

	for (om = a->owner_moves; om != NULL; om = om->next)
		if (om->migration == migration && strcmp(om->name, name) == 0)
			return om;
	return NULL;
}

static int
owner_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	const Tern__OwnerMoveReply	*r;
	const Tern__OwnerQueryReply	*q;
	struct owner_move		*om;
	char				*why;

	/* From any coordinator it lists: the one asked may have handed
	 * over meanwhile; one that does not lead answers an error. */
	if (a->ha == NULL || !ha_agent_is_coordinator(a->ha, peer)) {
		log_warnx("a %s from %s, which is not the coordinator: "
		    "ignored", msg_name(env), peer);
		return 1;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY) {
		r = env->owner_move_reply;
		if ((om = owner_find(a, r->name, r->migration)) == NULL)
			return 1;
		if (r->error != NULL || !r->has_epoch ||
		    r->epoch != om->epoch + 1) {
			xasprintf(&why, "the coordinator did not record the "
			    "move: %s", r->error != NULL ? r->error :
			    "an answer without the new epoch");
			owner_end(om, OWNER_REFUSED, 0, why);
			free(why);
		} else
			owner_end(om, OWNER_MOVED, r->epoch, NULL);
		return 1;
	}
	q = env->owner_query_reply;
	if ((om = owner_find(a, q->name, q->migration)) == NULL ||
	    !om->asking || q->error != NULL || (q->has_moving && q->moving) ||
	    !q->has_epoch)
		return 1;	/* asked again at the next tick */
	if (q->owner != NULL && strcmp(q->owner, om->to) == 0 &&
	    q->epoch == om->epoch + 1) {
		log_info("instance %s: the coordinator's store says %s owns it "
		    "at epoch %" PRIu64 ": the move was recorded", om->name,
		    om->to, q->epoch);
		owner_end(om, OWNER_MOVED, q->epoch, NULL);
	} else if (q->owner != NULL && strcmp(q->owner,
	    a->ternd->conf->host_name) == 0 && q->epoch == om->epoch)
		owner_end(om, OWNER_REFUSED, 0, "the coordinator did not "
		    "record the move (its store still names this host at the "
		    "same epoch)");
	else {
		xasprintf(&why, "the coordinator's store names %s at epoch %"
		    PRIu64 ", neither this host at %" PRIu64 " nor %s at %"
		    PRIu64, q->owner != NULL ? q->owner : "no host", q->epoch,
		    om->epoch, om->to, om->epoch + 1);
		owner_end(om, OWNER_UNKNOWN, 0, why);
		free(why);
	}
	return 1;
}

uint64_t
migration_grant_wait_ms(const struct agent *a)
{
	return 2 * (uint64_t)a->ternd->conf->lease_ttl_ms;
}

void
migration_owner_granted(struct agent *a, const char *name, uint64_t epoch)
{
	struct mig	*mig;

	if (a->mig == NULL)
		return;
	if ((mig = mig_find_name(a->mig, name, MIG_ROLE_SOURCE)) != NULL &&
	    mig->priv != NULL && mig->drv->kind == TERN__INSTANCE_KIND__KIND_VM)
		vm_migration_listed(mig, epoch);
	if ((mig = mig_find_name(a->mig, name, MIG_ROLE_TARGET)) == NULL ||
	    mig->priv == NULL)
		return;
	if (mig->drv->kind == TERN__INSTANCE_KIND__KIND_VM)
		vm_migration_granted(mig);
	else if (mig->drv->kind == TERN__INSTANCE_KIND__KIND_CONTAINER)
		ctr_target_granted(ctr_of(mig), epoch);
}

int
migration_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY ||
	    env->body_case == TERN__ENVELOPE__BODY_OWNER_QUERY_REPLY)
		return owner_on_msg(a, peer, env);
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
	/* Nothing more is learned: neither copy runs (their driver says). */
	while (a->owner_moves != NULL)
		owner_end(a->owner_moves, OWNER_UNKNOWN, 0, "ternd stopped "
		    "before the coordinator's answer came");
	mig_engine_shutdown(a->mig);
	/* Gone once its last migration is (no new ones from here). */
	mig_engine_free(a->mig);
	a->mig = NULL;
}
