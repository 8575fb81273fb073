/* The one migration engine (see engine.h): the table, the routing, the
 * phase order, the failure verdicts, the no-progress timeout and the
 * lifetime of every migration of either kind. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "migrate"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/engine.h"

#define MIG_MAX_DRIVERS	4

struct mig_engine {
	uv_loop_t		*loop;
	char			*host_name;
	uint32_t		 timeout_ms;
	uint64_t		 boot_id;
	uint64_t		*id_counter;
	uint64_t		 own_counter;
	struct mig_transport	 tr;
	const struct mig_driver	*drv[MIG_MAX_DRIVERS];
	size_t			 ndrv;
	void			*data;		/* the host's, for drivers */
	struct mig		*migs;		/* the table: not finished */
	unsigned		 alive;		/* allocated, finished included */
	int			 freeing;
};

static void	mig_timed_out(uv_timer_t *);

struct mig_engine *
mig_engine_new(uv_loop_t *loop, const struct mig_engine_conf *conf,
    const struct mig_transport *tr)
{
	struct mig_engine	*e;

	e = xcalloc(1, sizeof *e);
	e->loop = loop;
	e->tr = *tr;
	mig_engine_set_conf(e, conf);
	return e;
}

void
mig_engine_set_conf(struct mig_engine *e, const struct mig_engine_conf *conf)
{
	free(e->host_name);
	e->host_name = xstrdup(conf->host_name != NULL ? conf->host_name : "");
	/* Running timers take the new value when they are next armed. */
	e->timeout_ms = conf->timeout_ms;
	e->boot_id = conf->boot_id;
	e->id_counter = conf->id_counter != NULL ? conf->id_counter :
	    &e->own_counter;
}

void
mig_engine_register(struct mig_engine *e, const struct mig_driver *drv)
{
	size_t	i;

	for (i = 0; i < e->ndrv; i++)
		if (e->drv[i]->kind == drv->kind) {
			e->drv[i] = drv;
			return;
		}
	if (e->ndrv == MIG_MAX_DRIVERS)
		fatalx("migration engine: too many drivers (%s)", drv->name);
	e->drv[e->ndrv++] = drv;
}

static void
engine_free_now(struct mig_engine *e)
{
	free(e->host_name);
	free(e);
}

void
mig_engine_free(struct mig_engine *e)
{
	if (e == NULL)
		return;
	e->freeing = 1;
	if (e->alive == 0)
		engine_free_now(e);
}

static const struct mig_driver *
engine_driver(const struct mig_engine *e, Tern__InstanceKind kind)
{
	size_t	i;

	for (i = 0; i < e->ndrv; i++)
		if (e->drv[i]->kind == kind)
			return e->drv[i];
	return NULL;
}

int
mig_engine_has_kind(const struct mig_engine *e, Tern__InstanceKind kind)
{
	return engine_driver(e, kind) != NULL;
}

void
mig_engine_set_data(struct mig_engine *e, void *data)
{
	e->data = data;
}

void *
mig_engine_data(const struct mig_engine *e)
{
	return e->data;
}

uv_loop_t *
mig_engine_loop(const struct mig_engine *e)
{
	return e->loop;
}

const char *
mig_host_name(const struct mig *m)
{
	return m->engine->host_name;
}

/* --- the no-progress timeout ----------------------------------------------- */

static uint64_t
mig_bytes(struct mig *m)
{
	return m->drv->bytes_moved != NULL ? m->drv->bytes_moved(m) : 0;
}

static uint32_t
mig_timeout_of(const struct mig *m)
{
	return m->timeout_own ? m->timeout_ms : m->engine->timeout_ms;
}

/* Start the clock over (no progress for the timeout from now on). */
static void
mig_arm(struct mig *m)
{
	uint32_t	ms = mig_timeout_of(m);

	if (m->finished || ms == 0) {
		uv_timer_stop(&m->timer);
		return;
	}
	m->timer_bytes = mig_bytes(m);
	uv_timer_start(&m->timer, mig_timed_out, ms, 0);
}

static void
mig_timed_out(uv_timer_t *t)
{
	struct mig	*m = t->data;
	uint64_t	 moved;
	char		*why;

	if (m->finished)
		return;
	/* Bytes still crossing are progress: held to --bandwidth (or on a
	 * slow link) one phase may well outlast the timeout. */
	if ((moved = mig_bytes(m)) != m->timer_bytes) {
		mig_arm(m);
		return;
	}
	xasprintf(&why, "no progress for %" PRIu32 " ms in state %s (%s "
	    "silent or stuck?)", mig_timeout_of(m), mig_state_name(m),
	    m->peer);
	mig_fail(m, MIG_FAIL_TIMEOUT, why);
	free(why);
}

void
mig_touch(struct mig *m)
{
	if (!m->finished)
		mig_arm(m);
}

void
mig_set_timeout(struct mig *m, uint32_t ms)
{
	m->timeout_own = 1;
	m->timeout_ms = ms;
	mig_arm(m);
}

/* --- the table and lifetime ------------------------------------------------- */

static struct mig *
mig_new(struct mig_engine *e, const struct mig_driver *drv,
    enum mig_role role, const char *peer, uint64_t id, const char *name)
{
	struct mig	*m;

	m = xcalloc(1, sizeof *m);
	m->engine = e;
	m->drv = drv;
	m->id = id;
	m->role = role;
	m->phase = MIG_PH_OFFERED;
	m->peer = xstrdup(peer != NULL ? peer : "");
	m->name = xstrdup(name != NULL ? name : "");
	m->start_ms = now_ms();
	m->holds = 1;		/* the table's, dropped by mig_finish */
	uv_timer_init(e->loop, &m->timer);
	m->timer.data = m;
	m->next = e->migs;
	e->migs = m;
	e->alive++;
	/* No step for this long (either side, local work included): the
	 * other side is stuck or silent. */
	mig_arm(m);
	return m;
}

static void
mig_closed(uv_handle_t *h)
{
	struct mig		*m = h->data;
	struct mig_engine	*e = m->engine;

	free(m->peer);
	free(m->name);
	free(m);
	if (--e->alive == 0 && e->freeing)
		engine_free_now(e);
}

static void
mig_unlink(struct mig *m)
{
	struct mig	**pp;

	for (pp = &m->engine->migs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	m->next = NULL;
}

void
mig_hold(struct mig *m)
{
	m->holds++;
}

void
mig_drop(struct mig *m)
{
	if (m->holds == 0) {
		log_warnx("mig %" PRIx64 " %s: dropped once too often", m->id,
		    m->name);
		return;
	}
	if (--m->holds > 0)
		return;
	if (!m->finished) {
		/* Only mig_finish drops the table's hold: a bug. */
		log_warnx("mig %" PRIx64 " %s: last hold dropped before it "
		    "finished", m->id, m->name);
		m->finished = 1;
		mig_unlink(m);
	}
	uv_timer_stop(&m->timer);
	m->drv->release(m);
	m->priv = NULL;
	uv_close((uv_handle_t *)&m->timer, mig_closed);
}

void
mig_finish(struct mig *m, const char *error)
{
	if (m->finished)
		return;
	m->finished = 1;
	mig_unlink(m);
	uv_timer_stop(&m->timer);
	if (!m->answered)
		mig_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    error != NULL ? error : "the migration ended unanswered");
	mig_drop(m);
}

struct mig *
mig_find(struct mig_engine *e, const char *peer, uint64_t id,
    enum mig_role role)
{
	struct mig	*m;

	for (m = e->migs; m != NULL; m = m->next)
		if (m->id == id && m->role == role &&
		    strcmp(m->peer, peer) == 0)
			return m;
	return NULL;
}

struct mig *
mig_find_name(struct mig_engine *e, const char *name, int role)
{
	struct mig	*m;

	for (m = e->migs; m != NULL; m = m->next)
		if ((role == -1 || (int)m->role == role) &&
		    strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

const char *
mig_state_name(struct mig *m)
{
	return m->drv->state_name != NULL ? m->drv->state_name(m) :
	    mig_phase_names[m->phase];
}

void
mig_engine_each(struct mig_engine *e, void (*fn)(struct mig *, void *),
    void *arg)
{
	struct mig	*m, *next;

	for (m = e->migs; m != NULL; m = next) {
		next = m->next;
		fn(m, arg);
	}
}

/* Fail every migration (of peer, if not NULL): each is held while the
 * others' drivers run, whatever they finish. */
static void
engine_fail_all(struct mig_engine *e, const char *peer, enum mig_fail f,
    const char *why)
{
	struct mig	*m, **all;
	size_t		 n = 0, i;

	for (m = e->migs; m != NULL; m = m->next)
		n++;
	if (n == 0)
		return;
	all = xcalloc(n, sizeof *all);
	n = 0;
	for (m = e->migs; m != NULL; m = m->next)
		if (peer == NULL || strcmp(m->peer, peer) == 0) {
			mig_hold(m);
			all[n++] = m;
		}
	for (i = 0; i < n; i++) {
		if (!all[i]->finished)
			mig_fail(all[i], f, why);
		mig_drop(all[i]);
	}
	free(all);
}

/* --- phases and failures ---------------------------------------------------- */

int
mig_set_phase(struct mig *m, enum mig_phase to)
{
	enum mig_phase	from = m->phase;

	if (to == from) {
		mig_touch(m);
		return 0;
	}
	if (!mig_phase_next_ok(m->role, from, to)) {
		/* A bug; acting on it could run a copy twice. */
		log_warnx("mig %" PRIx64 " %s: refused a step from %s to %s",
		    m->id, m->name, mig_phase_names[from], mig_phase_names[to]);
		return -1;
	}
	log_debug("mig %" PRIx64 " %s: phase %s -> %s", m->id, m->name,
	    mig_phase_names[from], mig_phase_names[to]);
	m->phase = to;
	mig_touch(m);
	return 0;
}

void
mig_fail(struct mig *m, enum mig_fail f, const char *why)
{
	enum mig_verdict	v;

	if (m->finished)
		return;
	v = mig_phase_verdict(m->role, m->phase, f);
	log_debug("mig %" PRIx64 " %s: %s in phase %s: %s", m->id, m->name,
	    mig_fail_names[f], mig_phase_names[m->phase], mig_verdict_names[v]);
	mig_hold(m);
	switch (v) {
	case MIG_V_ROLLBACK:
		m->drv->rollback(m, f, why);
		break;
	case MIG_V_DISCARD:
		m->drv->discard(m, f, why);
		break;
	case MIG_V_AWAIT:
		m->drv->await(m, f, why);
		break;
	case MIG_V_UNCERTAIN:
		m->drv->uncertain(m, f, why);
		break;
	case MIG_V_SPLIT:
		m->drv->split(m, f, why);
		break;
	case MIG_V_KEEP:
	case MIG_V_IGNORE:
		break;
	}
	mig_drop(m);
}

/* --- talking -------------------------------------------------------------- */

int
mig_send(struct mig *m, const Envelope *env, char **cause)
{
	return m->engine->tr.send(m->engine->tr.ctx, m->peer, env, cause);
}

static int
engine_send_step(struct mig_engine *e, const char *peer, uint64_t id,
    Tern__MigrateStep__Step step, const char *error)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	ms.migration = id;
	ms.step = step;
	ms.error = (char *)error;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if (e->tr.send(e->tr.ctx, peer, &env, NULL) != 0) {
		log_debug("mig %" PRIx64 ": %s unreachable for step %d", id,
		    peer, step);
		return -1;
	}
	return 0;
}

int
mig_send_step(struct mig *m, Tern__MigrateStep__Step step, const char *error)
{
	return engine_send_step(m->engine, m->peer, m->id, step, error);
}

void
mig_progress(struct mig *m, const Envelope *env)
{
	if (!m->answered && m->progress != NULL)
		m->progress(m->arg, env, 0, NULL);
}

void
mig_answer(struct mig *m, const Envelope *reply, int code, const char *error)
{
	mig_reply_cb	done = m->done;

	if (m->answered) {
		log_debug("mig %" PRIx64 " %s: answered already", m->id,
		    m->name);
		return;
	}
	m->answered = 1;
	m->progress = NULL;
	m->done = NULL;
	if (done != NULL)
		done(m->arg, reply, code, error);
}

/* --- routing ---------------------------------------------------------------- */

static void
reply_text(mig_reply_cb done, void *arg, int code, const char *text)
{
	Envelope	 env;
	Tern__Done	 d = TERN__DONE__INIT;

	if (code != 0) {
		done(arg, NULL, code, text);
		return;
	}
	msg_init(&env, 0);
	d.text = (char *)text;
	env.body_case = TERN__ENVELOPE__BODY_DONE;
	env.done = &d;
	done(arg, &env, 0, NULL);
}

/* ternctl migrate --cancel NAME: the table says whether it still can. */
static void
engine_cancel(struct mig_engine *e, const char *name, mig_reply_cb done,
    void *arg)
{
	struct mig	*m = mig_find_name(e, name, MIG_ROLE_SOURCE);
	char		*text;

	if (m == NULL) {
		xasprintf(&text, "no migration of %s is running from this host",
		    name);
		reply_text(done, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND, text);
		free(text);
		return;
	}
	if (mig_phase_verdict(m->role, m->phase, MIG_FAIL_CANCEL) ==
	    MIG_V_IGNORE) {
		xasprintf(&text, "the migration of %s is past the point of no "
		    "return (%s): it can only finish on %s", name,
		    mig_state_name(m), m->peer);
		reply_text(done, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST, text);
		free(text);
		return;
	}
	xasprintf(&text, "cancelling the migration of %s to %s", name, m->peer);
	log_info("mig %" PRIx64 " %s: cancelled by the operator", m->id,
	    m->name);
	mig_fail(m, MIG_FAIL_CANCEL, "cancelled by the operator");
	reply_text(done, arg, 0, text);
	free(text);
}

void
mig_engine_start(struct mig_engine *e, Tern__InstanceKind kind,
    const Tern__MigrateRequest *r, mig_reply_cb progress, mig_reply_cb done,
    void *arg)
{
	const struct mig_driver	*drv;
	struct mig		*m;
	uint64_t		 id;
	char			*cause = NULL;
	int			 code = 0;

	if (r->has_cancel && r->cancel) {
		engine_cancel(e, r->name != NULL ? r->name : "", done, arg);
		return;
	}
	if ((drv = engine_driver(e, kind)) == NULL) {
		xasprintf(&cause, "%s migrates no instances of kind %s",
		    e->host_name, msg_kind_name(kind));
		done(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, cause);
		free(cause);
		return;
	}
	id = ++*e->id_counter | (e->boot_id << 16);
	m = mig_new(e, drv, MIG_ROLE_SOURCE, r->to, id, r->name);
	m->progress = progress;
	m->done = done;
	m->arg = arg;
	mig_hold(m);
	if (drv->source_begin(m, r, &code, &cause) != 0) {
		mig_answer(m, NULL, code != 0 ? code :
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, cause != NULL ? cause :
		    "refused");
		free(cause);
		mig_finish(m, NULL);
	}
	mig_drop(m);
}

static void
engine_offer(struct mig_engine *e, const char *peer,
    const Tern__MigrateOffer *o)
{
	const struct mig_driver	*drv;
	struct mig		*m;
	char			*cause = NULL;

	if ((drv = engine_driver(e, o->kind)) == NULL) {
		xasprintf(&cause, "bad offer (kind %s, name %.64s)",
		    msg_kind_name(o->kind), o->name != NULL ? o->name : "");
		log_warnx("mig %" PRIx64 " from %s refused: %s", o->migration,
		    peer, cause);
		engine_send_step(e, peer, o->migration,
		    TERN__MIGRATE_STEP__STEP__ABORT, cause);
		free(cause);
		return;
	}
	if (mig_find(e, peer, o->migration, MIG_ROLE_TARGET) != NULL)
		return;		/* a duplicate */
	m = mig_new(e, drv, MIG_ROLE_TARGET, peer, o->migration, o->name);
	mig_hold(m);
	if (drv->target_begin(m, o, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s from %s refused: %s", m->id,
		    m->name, peer, cause != NULL ? cause : "refused");
		mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause != NULL ?
		    cause : "refused");
		mig_finish(m, cause);
		free(cause);
	}
	mig_drop(m);
}

int
mig_engine_on_msg(struct mig_engine *e, const char *peer, const Envelope *env)
{
	const Tern__MigrateStep	*s;
	struct mig		*m;

	if (env->body_case == TERN__ENVELOPE__BODY_MIGRATE_OFFER) {
		engine_offer(e, peer, env->migrate_offer);
		return 1;
	}
	if (env->body_case != TERN__ENVELOPE__BODY_MIGRATE_STEP)
		return 0;
	s = env->migrate_step;
	/* Ids are the source's: RESTORE/COMMIT/ABORT to a target,
	 * READY/RESTORED/ABORT to a source. */
	if ((m = mig_find(e, peer, s->migration, MIG_ROLE_SOURCE)) == NULL)
		m = mig_find(e, peer, s->migration, MIG_ROLE_TARGET);
	if (m == NULL) {
		/* We dropped it, or restarted: say so, so that the source
		 * does not wait for us. */
		if (s->step == TERN__MIGRATE_STEP__STEP__RESTORE ||
		    s->step == TERN__MIGRATE_STEP__STEP__COMMIT)
			engine_send_step(e, peer, s->migration,
			    TERN__MIGRATE_STEP__STEP__ABORT,
			    "unknown migration (discarded here)");
		return 1;
	}
	mig_hold(m);
	if (s->step == TERN__MIGRATE_STEP__STEP__ABORT && !m->wants_abort_steps)
		mig_fail(m, MIG_FAIL_PEER_ABORT, s->error != NULL &&
		    s->error[0] != '\0' ? s->error : "the peer aborted");
	else
		m->drv->step(m, s);
	mig_drop(m);
	return 1;
}

int
mig_engine_accept_stream(struct mig_engine *e, const char *peer,
    Tern__StreamKind stream_kind, struct stream *st, const char *name,
    uint64_t size, char **cause)
{
	const struct mig_driver	*drv;
	size_t			 i;
	int			 rc;

	for (i = 0; i < e->ndrv; i++) {
		drv = e->drv[i];
		if (drv->accept_stream_sized != NULL)
			rc = drv->accept_stream_sized(e, peer, stream_kind, st,
			    name, size, cause);
		else if (drv->accept_stream != NULL)
			rc = drv->accept_stream(e, peer, stream_kind, st, name,
			    cause);
		else
			continue;
		if (rc != 1)
			return rc;
	}
	set_cause(cause, "no migration takes a %s stream named \"%.64s\"",
	    msg_stream_kind_name(stream_kind), name);
	return -1;
}

void
mig_engine_peer_lost(struct mig_engine *e, const char *peer, const char *why)
{
	char	*text;

	xasprintf(&text, "lost the connection to %s: %s", peer, why);
	engine_fail_all(e, peer, MIG_FAIL_LINK, text);
	free(text);
}

void
mig_engine_shutdown(struct mig_engine *e)
{
	char	*why;

	/* Post-copy past the switch: leaving would close the page channel
	 * and the source's copy could resume while the target runs it, so
	 * both stop (the table's "split"). */
	xasprintf(&why, "ternd on %s is shutting down", e->host_name);
	engine_fail_all(e, NULL, MIG_FAIL_SHUTDOWN, why);
	free(why);
}
