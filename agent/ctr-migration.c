/* Container migration, the engine's driver for kind "container": its
 * state, the verdicts carried out, the driver table (ctr-mig-internal.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-mig-internal.h"
#include "agent/instance-internal.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/criu.h"
#include "checkpoint/page-server.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ratelimit.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"

const char *const ctr_state_names[] = {
	"offered", "dumping", "sending", "restoring", "committed",
	"receiving", "held", "resuming", "aborting", "paging", "syncing",
	"owning",
};

static uint64_t	ctr_moved(struct migration *);
static void	ctr_progress(struct migration *);

/* Where the migration stands among the phases every migration shares
 * (migrate/phases.h): what its order and failure table speak of. */
enum mig_phase
ctr_phase(const struct migration *m)
{
	switch (m->state) {
	case CTR_OFFERED:
		return MIG_PH_OFFERED;
	case CTR_SYNCING:
		return MIG_PH_PREPARING;
	case CTR_DUMPING:
		return MIG_PH_FREEZING;
	case CTR_SENDING:
		return MIG_PH_TRANSFER;
	case CTR_RESTORING:
		return MIG_PH_RESTORING;
	case CTR_OWNING:
		return MIG_PH_RECORDING;
	case CTR_COMMITTED:
		/* Post-copy: it runs there, its memory still here.  Stop-
		 * and-copy: CRIU stops ours, then COMMIT goes out. */
		if (m->postcopy)
			return MIG_PH_PAGING;
		return m->dumped ? MIG_PH_COMMITTED : MIG_PH_COMMITTING;
	case CTR_RECEIVING:
		return MIG_PH_READY;
	case CTR_HELD:
		return MIG_PH_HELD;
	case CTR_RESUMING:
		return MIG_PH_COMMITTED;
	case CTR_PAGING:
		return MIG_PH_PAGING;
	case CTR_ABORTING:
		return MIG_PH_ROLLING_BACK;
	}
	return MIG_PH_FAILED;
}

/* The engine keeps the phase (its order, the failure table); a step to
 * an earlier phase, or out of one that may not end that way, is refused
 * and logged: it would be a bug, and acting on it could run a copy twice.
 * Every step restarts the no-progress clock. */
void
ctr_set_state(struct migration *m, enum ctr_state st)
{
	enum ctr_state	was = m->state;

	m->state = st;
	if (mig_set_phase(m->mig, ctr_phase(m)) != 0) {
		m->state = was;
		log_warnx("mig %" PRIx64 " %s: refused a step from %s to %s",
		    m->id, m->name, ctr_state_names[was], ctr_state_names[st]);
		return;
	}
	log_info("mig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    ctr_state_names[was], ctr_state_names[st]);
	ctr_progress(m);
}

/* The driver's state for the engine's m. */
struct migration *
ctr_new(struct agent *a, struct mig *mig)
{
	struct migration	*m;

	m = xcalloc(1, sizeof *m);
	m->mig = mig;
	m->agent = a;
	m->id = mig->id;
	m->source = mig->role == MIG_ROLE_SOURCE;
	m->peer = mig->peer;
	m->name = mig->name;
	m->start_ms = mig->start_ms;
	m->ps_fd = -1;
	uv_timer_init(a->ternd->loop, &m->tick);
	m->tick.data = m;
	if (!m->source)
		m->tally = stream_tally_new();
	mig->priv = m;
	/* Its ABORTs mean different things by phase (see the steps). */
	mig->wants_abort_steps = 1;
	return m;
}

static void
ctr_freed(uv_handle_t *h)
{
	struct migration	*m = h->data;

	free(m->error);
	free(m->drop_why);
	free(m->late_error);
	free(m->loader_error);
	free(m->sync_error);
	free(m->sync_dir);
	free(m->broken);
	free(m->note);
	free(m->rootfs);
	tree_index_free(m->tree_idx);
	tree_index_free(m->tree_prev);
	stream_tally_unref(m->tally);
	free(m);
}

/* The rootfs a target made for an incoming copy goes with it. */
void
ctr_drop_rootfs(struct migration *m)
{
	char	*who;

	if (m->source || m->rootfs == NULL || m->rootfs_keep)
		return;
	/* Moved aside at once (a retry finds the path free), removed on
	 * the pool (a rootfs takes seconds). */
	xasprintf(&who, "mig %" PRIx64 " %s", m->id, m->name);
	work_discard(m->agent->ternd->loop, m->rootfs, who, "the incoming rootfs",
	    NULL, NULL);
	free(who);
}

/* Over: its work stops now, the engine finishes it (the rest goes in
 * ctr_release, once nothing holds it). */
void
ctr_free(struct migration *m)
{
	ctr_pages_free(m);
	if (m->fs != NULL) {
		files_send_cancel(m->fs);
		m->fs = NULL;
	}
	if (m->tree_tx != NULL) {
		tree_send_cancel(m->tree_tx);
		m->tree_tx = NULL;
	}
	relay_free(m->relay);
	m->relay = NULL;
	ratelimit_unref(m->limit);	/* its streams are gone */
	m->limit = NULL;
	ckpt_lazy_free(m->lazy);
	m->lazy = NULL;
	ckpt_lazy_free(m->loader);	/* not handed to the instance */
	m->loader = NULL;
	criu_close(m->swrk);		/* no restore took it */
	m->swrk = NULL;
	if (m->ps_fd != -1)
		close(m->ps_fd);
	m->ps_fd = -1;
	uv_timer_stop(&m->tick);
	mig_finish(m->mig, NULL);
}

/* Nothing holds it any more (a rootfs pass still being applied does):
 * the rootfs of a discarded incoming copy goes, the rest once the tick
 * is closed. */
void
ctr_release(struct mig *mig)
{
	struct migration	*m = ctr_of(mig);

	if (m == NULL)
		return;		/* refused before it began */
	ctr_drop_rootfs(m);
	m->mig = NULL;
	m->peer = m->name = NULL;	/* the engine's, gone with it */
	uv_close((uv_handle_t *)&m->tick, ctr_freed);
}

/* The operator's answer, once; no progress after it. */
void
ctr_answer(struct migration *m, const Envelope *reply, int code,
    const char *error)
{
	uv_timer_stop(&m->tick);
	mig_answer(m->mig, reply, code, error);
}

/* Source: bytes sent so far (rootfs, images, pages).  Target: bytes that
 * arrived on this migration's own streams (other traffic from that host,
 * another migration's say, is no progress of ours). */
static uint64_t
ctr_moved(struct migration *m)
{
	if (!m->source)
		return stream_tally_bytes(m->tally);
	return m->tree_bytes + (m->tree_tx != NULL ?
	    tree_send_bytes(m->tree_tx) : 0) + (m->fs != NULL ?
	    files_send_bytes(m->fs) : m->bytes) + (m->relay != NULL ?
	    relay_bytes_out(m->relay) : m->page_bytes);
}

/* "20.0 MB/s": rates in powers of 1000, as ternctl reads them. */
void
ctr_format_rate(char *buf, size_t len, uint64_t rate)
{
	if (rate >= 1000000)
		snprintf(buf, len, "%.1f MB/s", (double)rate / 1e6);
	else
		snprintf(buf, len, "%.1f kB/s", (double)rate / 1e3);
}

/* Where the migration is, for the operator waiting on it. */
static void
ctr_progress(struct migration *m)
{
	Envelope		 env;
	Tern__MigrateProgress	 p = TERN__MIGRATE_PROGRESS__INIT;
	uint64_t		 now = now_ms();

	if (!m->source || m->mig->answered)
		return;
	p.name = m->name;
	/* Post-copy past the switch: it runs there, memory on the way. */
	p.phase = (char *)(m->postcopy && m->resumed ? "paging" :
	    ctr_state_names[m->state]);
	p.elapsed_ms = now - m->start_ms;
	p.has_bytes = 1;
	p.bytes = ctr_moved(m);
	if (m->limit != NULL) {
		p.has_bandwidth = 1;
		p.bandwidth = ratelimit_rate(m->limit);
	}
	if (m->dump_start_ms != 0 && !m->resumed) {
		p.has_frozen_ms = 1;
		p.frozen_ms = now - m->dump_start_ms;
	}
	p.has_mode = 1;
	p.mode = m->postcopy ? TERN__MIGRATION_MODE__MODE_POSTCOPY :
	    TERN__MIGRATION_MODE__MODE_STOPCOPY;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_PROGRESS;
	env.migrate_progress = &p;
	mig_progress(m->mig, &env);
}

void
ctr_tick(uv_timer_t *t)
{
	ctr_progress(t->data);
}

int
ctr_send_step(struct migration *m, Tern__MigrateStep__Step step,
    const char *error)
{
	Envelope		 env;
	Tern__MigrateStep	 s = TERN__MIGRATE_STEP__INIT;
	char			*cause = NULL;

	if (step != TERN__MIGRATE_STEP__STEP__COMMIT || m->owner_epoch == 0)
		return mig_send_step(m->mig, step, error);
	/* A protected instance's COMMIT: the epoch the store gave. */
	s.migration = m->id;
	s.step = step;
	s.has_epoch = 1;
	s.epoch = m->owner_epoch;
	s.has_ha = 1;
	s.ha = (Tern__HaPolicy)m->in->ha;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &s;
	if (mig_send(m->mig, &env, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s: COMMIT not sent to %s: %s",
		    m->id, m->name, m->peer, cause);
		free(cause);
		return -1;
	}
	return 0;
}

/* Post-copy's page channel: a socketpair, CRIU gets one end (m->ps_fd),
 * the other is relayed to the peer's over a stream pair. */
int
ctr_relay_new(struct migration *m, char **cause)
{
	int	 sv[2];
	char	*what, *name;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		return -1;
	}
	xasprintf(&what, "mig %" PRIx64 " %s pages", m->id, m->name);
	m->relay = relay_new(m->agent->ternd->loop, sv[0], what, ctr_relay_done, m);
	free(what);
	xasprintf(&name, "%" PRIx64 "/pages", m->id);
	if (relay_open(m->relay, mesh_mux(m->agent->ternd->mesh, m->peer), name,
	    m->limit, cause) != 0) {
		free(name);
		relay_free(m->relay);
		m->relay = NULL;
		close(sv[1]);
		return -1;
	}
	free(name);
	/* The target's lazy-pages daemon may fetch every page before the
	 * commit point (a small container does); its last word would end
	 * the dump, and CRIU would kill our tree while it is still the
	 * only one allowed to run.  That word waits for the commit. */
	if (m->source)
		relay_set_gate(m->relay, page_server_before_end, NULL);
	m->ps_fd = sv[1];
	return 0;
}

/* The verdicts of migrate/phases.c's table, carried out (the engine
 * decides which: roll back, discard, await, uncertain, split). */
static void
ctr_rollback(struct mig *mig, enum mig_fail f, const char *why)
{
	(void)f;
	ctr_source_fail(ctr_of(mig), "%s", why);
}

static void
ctr_discard(struct mig *mig, enum mig_fail f, const char *why)
{
	/* Tell the source, unless it is gone or said so itself. */
	if (f == MIG_FAIL_LINK || f == MIG_FAIL_PEER_ABORT)
		ctr_target_discard(ctr_of(mig), why);
	else
		ctr_target_abort(ctr_of(mig), why);
}

static void
ctr_await(struct mig *mig, enum mig_fail f, const char *why)
{
	struct migration	*m = ctr_of(mig);

	/* CRIU is still stopping our copy; the target, having lost us,
	 * discards its own: never send COMMIT now.  While the store is
	 * asked the same holds, and its answer still decides ours. */
	if (f == MIG_FAIL_LINK || f == MIG_FAIL_TIMEOUT ||
	    (m->state == CTR_OWNING && f == MIG_FAIL_PEER_ABORT)) {
		log_warnx("mig %" PRIx64 " %s: %s at the commit point", m->id,
		    m->name, why);
		m->link_lost = 1;
	}
}

static void
ctr_uncertain(struct mig *mig, enum mig_fail f, const char *why)
{
	(void)f;
	ctr_source_orphaned(ctr_of(mig), why);
}

static void
ctr_split(struct mig *mig, enum mig_fail f, const char *why)
{
	struct migration	*m = ctr_of(mig);

	(void)f;
	if (m->source)
		ctr_source_postcopy_broke(m, why);
	else
		ctr_target_discard(m, why);	/* it kills ours */
}

static void
ctr_step(struct mig *mig, const Tern__MigrateStep *s)
{
	if (mig->role == MIG_ROLE_SOURCE)
		ctr_source_step(ctr_of(mig), s);
	else
		ctr_target_step(ctr_of(mig), s);
}

static uint64_t
ctr_bytes_moved(struct mig *mig)
{
	return mig->priv != NULL ? ctr_moved(ctr_of(mig)) : 0;
}

static const char *
ctr_state_name(struct mig *mig)
{
	return mig->priv != NULL ? ctr_state_names[ctr_of(mig)->state] :
	    mig_phase_names[mig->phase];
}

/* The container migration of peer with that id, in the engine's table. */
struct migration *
ctr_find(struct agent *a, const char *peer, uint64_t id, int source)
{
	struct mig	*mig;

	if (a->mig == NULL || (mig = mig_find(a->mig, peer, id, source ?
	    MIG_ROLE_SOURCE : MIG_ROLE_TARGET)) == NULL ||
	    mig->drv != &ctr_driver)
		return NULL;
	return ctr_of(mig);
}

/* The incoming container migration a stream of peer is for. */
struct ctr_match {
	const char		*peer;
	const char		*name;
	uint64_t		 generation;
	int			 tree;		/* it takes a rootfs */
	struct migration	*found;
};

static void
ctr_match_one(struct mig *mig, void *arg)
{
	struct ctr_match	*c = arg;
	struct migration	*m = ctr_of(mig);

	if (c->found == NULL && mig->drv == &ctr_driver && m != NULL &&
	    !m->source && (!c->tree || m->rootfs_copy) &&
	    m->state == CTR_RECEIVING && strcmp(m->peer, c->peer) == 0 &&
	    strcmp(m->name, c->name) == 0 && m->generation == c->generation)
		c->found = m;
}

struct migration *
ctr_match_receiving(struct agent *a, const char *peer, const char *name,
    uint64_t generation, int tree)
{
	struct ctr_match	c = {
		.peer = peer, .name = name, .generation = generation,
		.tree = tree,
	};

	if (a->mig != NULL)
		mig_engine_each(a->mig, ctr_match_one, &c);
	return c.found;
}

/* The page channel broke (error) or ended; CRIU's exits say the rest. */
void
ctr_relay_done(void *arg, const char *error)
{
	struct migration	*m = arg;
	char			*why;

	if (error == NULL || (m->source ? m->complete && m->dumped :
	    m->pages_done)) {
		/* Drained; or broken once nothing more had to cross. */
		if (error != NULL)
			log_info("mig %" PRIx64 " %s: page channel: %s (after the "
			    "last page)", m->id, m->name, error);
		m->relay_ended = 1;
		if (m->source)
			ctr_source_postcopy_finish(m);
		else
			ctr_target_postcopy_finish(m);
		return;
	}
	xasprintf(&why, "the page channel to %s broke: %s", m->peer, error);
	mig_fail(m->mig, MIG_FAIL_CHANNEL, why);
	free(why);
}

/* The driver's accept_stream_sized: image files, rootfs passes and
 * post-copy's pages; 1 for what is not a container's. */
int
ctr_accept_stream(struct mig_engine *e, const char *peer,
    Tern__StreamKind kind, struct stream *st, const char *name, uint64_t size,
    char **cause)
{
	struct agent	*a = mig_engine_data(e);

	if (kind == FILES_STREAM_KIND)
		return ctr_accept_file(a, peer, st, name, size, cause);
	if (kind == TREE_STREAM_KIND)
		return ctr_accept_tree(a, peer, st, name, cause);
	if (kind == RELAY_STREAM_KIND && strstr(name, "/vm-") == NULL)
		return ctr_accept_relay(a, peer, st, name, cause);
	return 1;
}

const struct mig_driver	ctr_driver = {
	.kind = TERN__INSTANCE_KIND__KIND_CONTAINER,
	.name = "container",
	.source_begin = ctr_source_begin,
	.target_begin = ctr_target_begin,
	.step = ctr_step,
	.accept_stream_sized = ctr_accept_stream,
	.rollback = ctr_rollback,
	.discard = ctr_discard,
	.await = ctr_await,
	.uncertain = ctr_uncertain,
	.split = ctr_split,
	.bytes_moved = ctr_bytes_moved,
	.state_name = ctr_state_name,
	.release = ctr_release,
};
