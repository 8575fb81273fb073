#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define LOG_MODULE "migrate"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/peers.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "checkpoint/cpuinfo.h"
#include "checkpoint/file-locks.h"
#include "checkpoint/kept-logs.h"
#include "checkpoint/lazy-check.h"
#include "checkpoint/page-server.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"
#include "migrate/engine.h"
#include "migrate/files.h"
#include "migrate/phases.h"
#include "migrate/relay.h"
#include "agent/vm-migration.h"
#include "migrate/tree.h"


enum mig_state {
	MIG_OFFERED,		/* source: waiting for READY */
	MIG_DUMPING,		/* source: CRIU dumping */
	MIG_SENDING,		/* source: frozen, images going out */
	MIG_RESTORING,		/* source: waiting for RESTORED */
	MIG_COMMITTED,		/* source: acked post-dump; target owns it */
	MIG_RECEIVING,		/* target: instance incoming, files arriving */
	MIG_HELD,		/* target: restored, held at pre-resume */
	MIG_RESUMING,		/* target: COMMIT came, resuming */
	MIG_ABORTING,		/* either: rolling back */
	MIG_PAGING,		/* target: runs, post-copy pages arriving */
	MIG_SYNCING,		/* source: the rootfs's full pass, running */
};

static const char *const mig_state_names[] = {
	"offered", "dumping", "sending", "restoring", "committed",
	"receiving", "held", "resuming", "aborting", "paging", "syncing",
};

struct migration {
	struct agent		*agent;
	struct migration	*next;
	uint64_t		 id;		/* the source's id */
	int			 source;
	char			*peer;
	char			*name;
	struct instance		*in;
	enum mig_state		 state;
	uint64_t		 generation;
	struct ckpt_hold	*hold;
	uint64_t		 start_ms;
	uint64_t		 frozen_ms;
	uint64_t		 bytes;
	char			*error;		/* why it is rolling back */
	int			 dumped;	/* source: CRIU done, after commit */
	int			 link_lost;	/* source: at the commit point */
	int			 commit_sent;	/* source: COMMIT went out */
	int			 target_refused;	/* ... and came back ABORT */
	struct files_send	*fs;		/* source: images going out */
	uv_work_t		 work;		/* target: fsync after resume */
	char			*sync_dir;	/* (the instance may go meanwhile) */
	struct instances	*set;		/* ... the table stays until then */
	char			*sync_error;
	uv_timer_t		 timer;		/* no progress for too long */
	uv_timer_t		 tick;		/* source: progress to the operator */
	int			 handles;
	instances_done_cb	 progress;	/* source: the operator's terminal */

	int			 postcopy;	/* memory follows after resume */
	struct relay		*relay;		/* post-copy: the page channel */
	struct ckpt_hold	*dump;		/* source, post-copy: until CRIU
						 * is done serving pages */
	struct ckpt_lazy	*lazy;		/* target: lazy-pages daemon */
	int			 resumed;	/* source: RESUMED arrived */
	uint64_t		 dump_start_ms;
	uint64_t		 resumed_ms;
	char			*broken;	/* post-copy broke past commit */
	int			 ps_fd;		/* CRIU's end of the relay */
	uint64_t		 page_bytes;	/* post-copy: pages relayed */
	char			*note;		/* source: why this mode */
	uint32_t		 max_downtime_ms;
	int			 pages_done;	/* target: lazy-pages exited 0 */
	int			 complete;	/* source: COMPLETE arrived */
	int			 relay_ended;	/* the page channel closed cleanly */

	struct ratelimit	*limit;		/* source: --bandwidth, all streams */
	struct stream_tally	*tally;		/* target: bytes of our streams */
	unsigned		 files_in;	/* target: image files accepted */
	uint64_t		 timer_bytes;	/* bytes moved when timer started */

	void			(*record_then)(struct migration *);
	struct instance		*recording_in;	/* source: moved_to being
						 * written, COMMIT waits */
	int			 rootfs_copy;	/* the rootfs follows, not shared */
	struct tree_send	*tree_tx;	/* source: a pass going out */
	struct tree_index	*tree_idx;	/* source: what the last pass sent */
	struct tree_index	*tree_prev;	/* ... the delta's base, in use */
	int			 tree_synced;	/* source: ROOTFS_SYNCED came */
	uint64_t		 tree_bytes;	/* rootfs bytes sent */
	char			*rootfs;	/* target: where it goes */
	int			 trees_in;	/* target: passes being applied */
	int			 trees_done;	/* target: passes applied */
	int			 restore_wanted;	/* target: RESTORE came early */
	unsigned		 files_writing;	/* target: files not yet written */
	int			 rootfs_keep;	/* target: ours now */
	int			 zombie;	/* freed, waiting for trees_in */

	instances_done_cb	 cb;		/* source: the operator's request */
	void			*arg;
};

static void	mig_timeout(uv_timer_t *);
static uint64_t	mig_bytes_moved(struct migration *);
static void	ctr_progress(struct migration *);
static void	mig_tick(uv_timer_t *);
static void	mig_target_sync(uv_work_t *);
static void	mig_target_synced(uv_work_t *, int);

/* Where the migration stands among the phases every migration shares
 * (migrate/phases.h): what its order and failure table speak of. */
static enum mig_phase
mig_phase(const struct migration *m)
{
	switch (m->state) {
	case MIG_OFFERED:
		return MIG_PH_OFFERED;
	case MIG_SYNCING:
		return MIG_PH_PREPARING;
	case MIG_DUMPING:
		return MIG_PH_FREEZING;
	case MIG_SENDING:
		return MIG_PH_TRANSFER;
	case MIG_RESTORING:
		return MIG_PH_RESTORING;
	case MIG_COMMITTED:
		/* Post-copy: it runs there, its memory still here.  Stop-
		 * and-copy: CRIU stops ours, then COMMIT goes out. */
		if (m->postcopy)
			return MIG_PH_PAGING;
		return m->dumped ? MIG_PH_COMMITTED : MIG_PH_COMMITTING;
	case MIG_RECEIVING:
		return MIG_PH_READY;
	case MIG_HELD:
		return MIG_PH_HELD;
	case MIG_RESUMING:
		return MIG_PH_COMMITTED;
	case MIG_PAGING:
		return MIG_PH_PAGING;
	case MIG_ABORTING:
		return MIG_PH_ROLLING_BACK;
	}
	return MIG_PH_FAILED;
}

static enum mig_role
mig_role(const struct migration *m)
{
	return m->source ? MIG_ROLE_SOURCE : MIG_ROLE_TARGET;
}

/* Every step restarts the no-progress clock.  A step to an earlier
 * phase, or out of one that may not end that way, is refused and
 * logged: it would be a bug, and acting on it could run a copy twice. */
static void
mig_set_state(struct migration *m, enum mig_state st)
{
	enum mig_phase	from = mig_phase(m), to;
	enum mig_state	was = m->state;

	m->state = st;
	to = mig_phase(m);
	if (from != to && !mig_phase_next_ok(mig_role(m), from, to)) {
		m->state = was;
		log_warnx("mig %" PRIx64 " %s: refused a step from %s (%s) to "
		    "%s (%s)", m->id, m->name, mig_state_names[was],
		    mig_phase_names[from], mig_state_names[st],
		    mig_phase_names[to]);
		return;
	}
	log_info("mig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    mig_state_names[was], mig_state_names[st]);
	m->timer_bytes = mig_bytes_moved(m);
	uv_timer_start(&m->timer, mig_timeout,
	    (uint64_t)m->agent->conf->migration_timeout_ms, 0);
	ctr_progress(m);
}

static struct migration *
ctr_find(struct agent *a, const char *peer, uint64_t id, int source)
{
	struct migration	*m;

	for (m = a->migrations; m != NULL; m = m->next)
		if (m->id == id && m->source == source &&
		    strcmp(m->peer, peer) == 0)
			return m;
	return NULL;
}

static struct migration *
mig_new(struct agent *a, const char *peer, uint64_t id, int source,
    const char *name)
{
	struct migration	*m;

	m = xcalloc(1, sizeof *m);
	m->agent = a;
	m->id = id;
	m->source = source;
	m->peer = xstrdup(peer);
	m->name = xstrdup(name);
	m->start_ms = now_ms();
	m->ps_fd = -1;
	uv_timer_init(a->loop, &m->timer);
	m->timer.data = m;
	uv_timer_init(a->loop, &m->tick);
	m->tick.data = m;
	m->handles = 2;
	if (!source)
		m->tally = stream_tally_new();
	m->timer_bytes = mig_bytes_moved(m);
	/* No step for this long (either side, local work included, like
	 * CRIU's own deadline): the other side is stuck or silent. */
	uv_timer_start(&m->timer, mig_timeout,
	    (uint64_t)a->conf->migration_timeout_ms, 0);
	m->next = a->migrations;
	a->migrations = m;
	return m;
}

static void	mig_close(struct migration *);

static void
mig_freed(uv_handle_t *h)
{
	struct migration	*m = h->data;

	if (--m->handles > 0)
		return;
	free(m->peer);
	free(m->name);
	free(m->error);
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
static void
mig_drop_rootfs(struct migration *m)
{
	char	*who;

	if (m->source || m->rootfs == NULL || m->rootfs_keep)
		return;
	/* Moved aside at once (a retry finds the path free), removed on
	 * the pool (a rootfs takes seconds). */
	xasprintf(&who, "mig %" PRIx64 " %s", m->id, m->name);
	work_discard(m->agent->loop, m->rootfs, who, "the incoming rootfs",
	    NULL, NULL);
	free(who);
}

/* Unlink now, free once the timer is closed. */
static void
mig_free(struct migration *m)
{
	struct migration	**pp;

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
	if (m->ps_fd != -1)
		close(m->ps_fd);
	m->ps_fd = -1;
	for (pp = &m->agent->migrations; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	if (m->trees_in > 0) {
		/* A rootfs pass is still being applied: its callback holds
		 * m and finishes the free. */
		m->zombie = 1;
		uv_timer_stop(&m->timer);
		uv_timer_stop(&m->tick);
		return;
	}
	mig_drop_rootfs(m);
	mig_close(m);
}

static void
mig_close(struct migration *m)
{
	uv_close((uv_handle_t *)&m->timer, mig_freed);
	uv_close((uv_handle_t *)&m->tick, mig_freed);
}

/* The operator's answer, once; no progress after it. */
static void
ctr_answer(struct migration *m, const Envelope *reply, int code,
    const char *error)
{
	m->progress = NULL;
	uv_timer_stop(&m->tick);
	m->cb(m->arg, reply, code, error);
}

/* Source: bytes sent so far (rootfs, images, pages).  Target: bytes that
 * arrived on this migration's own streams (other traffic from that host,
 * another migration's say, is no progress of ours). */
static uint64_t
mig_bytes_moved(struct migration *m)
{
	if (!m->source)
		return stream_tally_bytes(m->tally);
	return m->tree_bytes + (m->tree_tx != NULL ?
	    tree_send_bytes(m->tree_tx) : 0) + (m->fs != NULL ?
	    files_send_bytes(m->fs) : m->bytes) + (m->relay != NULL ?
	    relay_bytes_out(m->relay) : m->page_bytes);
}

/* "20.0 MB/s": rates in powers of 1000, as ternctl reads them. */
static void
mig_format_rate(char *buf, size_t len, uint64_t rate)
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

	if (!m->source || m->progress == NULL)
		return;
	p.name = m->name;
	/* Post-copy past the switch: it runs there, memory on the way. */
	p.phase = (char *)(m->postcopy && m->resumed ? "paging" :
	    mig_state_names[m->state]);
	p.elapsed_ms = now - m->start_ms;
	p.has_bytes = 1;
	p.bytes = mig_bytes_moved(m);
	if (m->limit != NULL) {
		p.has_bandwidth = 1;
		p.bandwidth = ratelimit_rate(m->limit);
	}
	if (m->dump_start_ms != 0 && !m->resumed) {
		p.has_frozen_ms = 1;
		p.frozen_ms = now - m->dump_start_ms;
	}
	p.mode = m->postcopy ? "postcopy" : "stopcopy";
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_PROGRESS;
	env.migrate_progress = &p;
	m->progress(m->arg, &env, 0, NULL);
}

static void
mig_tick(uv_timer_t *t)
{
	ctr_progress(t->data);
}

static int
ctr_send_step(struct migration *m, Tern__MigrateStep__Step step,
    const char *error)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	ms.migration = m->id;
	ms.step = step;
	ms.error = (char *)error;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if (peers_send(m->agent->peers, m->peer, &env, NULL) != 0) {
		log_debug("mig %" PRIx64 ": %s unreachable for step %d", m->id,
		    m->peer, step);
		return -1;
	}
	return 0;
}

static void	mig_relay_done(void *, const char *);

/* Post-copy's page channel: a socketpair, CRIU gets one end (m->ps_fd),
 * the other is relayed to the peer's over a stream pair. */
static int
mig_relay_new(struct migration *m, char **cause)
{
	int	 sv[2];
	char	*what, *name;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		return -1;
	}
	xasprintf(&what, "mig %" PRIx64 " %s pages", m->id, m->name);
	m->relay = relay_new(m->agent->loop, sv[0], what, mig_relay_done, m);
	free(what);
	xasprintf(&name, "%" PRIx64 "/pages", m->id);
	if (relay_open(m->relay, peers_mux(m->agent->peers, m->peer), name,
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


/* --- the engine's glue ------------------------------------------------------ */

static int
migration_send(void *ctx, const char *peer, const Envelope *env, char **cause)
{
	struct agent	*a = ctx;

	/* a->peers is NULL once ternd stops: peers_send says so. */
	return peers_send(a->peers, peer, env, cause);
}

static void
migration_engine_conf(const struct agent *a, struct mig_engine_conf *c)
{
	memset(c, 0, sizeof *c);
	c->host_name = a->conf->host_name;
	c->timeout_ms = (uint32_t)a->conf->migration_timeout_ms;
	c->boot_id = a->boot_id;
	/* Shared with the containers' own table while it lasts. */
	c->id_counter = &((struct agent *)a)->next_migration;
}

void
migration_init(struct agent *a)
{
	struct mig_engine_conf	c;
	struct mig_transport	tr = { .send = migration_send, .ctx = a };

	migration_engine_conf(a, &c);
	a->mig = mig_engine_new(a->loop, &c, &tr);
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
migration_accept_engine(struct agent *a, const char *peer, const char *kind,
    struct stream *st, const char *name, uint64_t size, char **cause)
{
	if (a->mig == NULL) {
		set_cause(cause, "ternd on %s is shutting down",
		    a->conf->host_name);
		return -1;
	}
	return mig_engine_accept_stream(a->mig, peer, kind, st, name, size,
	    cause);
}

/* --- source ---------------------------------------------------------------- */

static void	mig_source_postcopy_done(struct migration *, const char *);
static void	mig_source_postcopy_finish(struct migration *);
static void	mig_source_postcopy_broke(struct migration *, const char *);

static void	mig_source_orphaned(struct migration *, const char *);

static void
mig_source_fail(struct migration *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Before the commit point: roll back.  The source container resumes (CRIU
 * does that when post-dump is refused), the target discards its copy. */
static void
mig_source_fail(struct migration *m, const char *fmt, ...)
{
	va_list	ap;

	if (m->state == MIG_ABORTING || m->state == MIG_COMMITTED)
		return;
	va_start(ap, fmt);
	free(m->error);
	xvasprintf(&m->error, fmt, ap);
	va_end(ap);
	log_warnx("mig %" PRIx64 " %s: %s; rolling back, %s stays on %s",
	    m->id, m->name, m->error, m->name, m->agent->conf->host_name);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, m->error);
	if (m->state == MIG_OFFERED) {
		instance_set_state(m->in, INST_RUNNING, "migration aborted");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, m->error);
		instances_op_done(m->in->set);
		mig_free(m);
		return;
	}
	if (m->state == MIG_SYNCING) {
		/* Not frozen yet: nothing for CRIU to undo. */
		instance_set_state(m->in, INST_RUNNING, "migration aborted");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, m->error);
		instances_op_done(m->in->set);
		mig_free(m);
		return;
	}
	mig_set_state(m, MIG_ABORTING);
	if (m->fs != NULL) {
		files_send_cancel(m->fs);
		m->fs = NULL;
	}
	if (m->tree_tx != NULL) {
		tree_send_cancel(m->tree_tx);
		m->tree_tx = NULL;
	}
	if (m->hold != NULL) {
		struct ckpt_hold *h = m->hold;

		m->hold = NULL;
		ckpt_hold_release(h, 0);	/* CRIU resumes it */
	}
	/* A post-copy dump must see its page transfer fail, now or once it
	 * starts serving: an end would count as a finished transfer (CRIU
	 * kills the tree), and none comes anyway (CRIU holds a spare end of
	 * the channel).  It resumes the tree then. */
	if (m->postcopy && m->relay != NULL)
		ckpt_lazy_refuse(relay_local_fd(m->relay));
	relay_free(m->relay);
	m->relay = NULL;
	/* else the dump's own callback finishes the rollback; a dump still
	 * at work (CRIU stuck seizing a task, say) is stopped now. */
	ckpt_cancel(m->in->name, m->error);
}

static void
mig_source_dumped(void *arg, const struct ckpt_result *res, const char *error)
{
	struct migration	*m = arg;
	struct instance		*in = m->in;
	char			*why, *cause = NULL;

	m->dump = NULL;
	if (in->criu_pid != 0) {
		in->criu_pid = 0;
		instance_persist(in);
	}
	if (m->postcopy && m->generation != 0) {
		/* Images without their pages: never a checkpoint. */
		char *dir;

		xasprintf(&dir, "%s/%" PRIu64, in->ckpt_dir, m->generation);
		ckpt_discard(dir);
		free(dir);
	}
	if (m->state == MIG_COMMITTED && m->postcopy) {
		mig_source_postcopy_done(m, error);
		return;
	}
	if (m->state != MIG_COMMITTED) {
		/* Rolled back: CRIU resumed the container, or never froze it,
		 * or died with its cgroup frozen (then we thaw it, as after a
		 * failed checkpoint). */
		if (in->pid > 0 && container_thaw(in->name, &cause) != 0) {
			log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name,
			    cause);
			free(cause);
		}
		why = m->error != NULL ? xstrdup(m->error) : xstrdup(error != NULL ?
		    error : "aborted");
		if (m->state != MIG_ABORTING)
			ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
		instance_set_error(in, why);
		instance_set_state(in, in->pid > 0 ? INST_RUNNING : INST_STOPPED,
		    "migration rolled back");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, why);
		free(why);
		instances_op_done(in->set);
		mig_free(m);
		return;
	}
	/* Committed: CRIU stopped our copy; the target may resume.  Ours
	 * stays a verified checkpoint until the target says it runs. */
	if (error != NULL)
		log_warnx("mig %" PRIx64 " %s: after the commit point: %s",
		    m->id, m->name, error);
	m->frozen_ms = res->frozen_ms;
	m->dumped = 1;
	in->pid = 0;
	container_kill(in->name, NULL);
	container_cgroup_remove(in->name, NULL);
	in->generation = m->generation;
	if (m->link_lost)
		mig_source_orphaned(m, "the link dropped at the commit point");
	else if (ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL) != 0)
		mig_source_orphaned(m, "the commit could not be sent");
	else {
		m->commit_sent = 1;
		if (fault_hit("mig.source.commit-sent") == FAULT_KILL)
			fault_die("mig.source.commit-sent");
	}
}

/* The target runs it: answer the operator, forget our copy. */
static void
mig_source_resumed(struct migration *m)
{
	struct instance		*in = m->in;
	struct instances	*set;
	Envelope		 env;
	Tern__MigrateReply	 r = TERN__MIGRATE_REPLY__INIT;
	char			 rate[32] = "";

	if (m->limit != NULL)
		mig_format_rate(rate, sizeof rate, ratelimit_rate(m->limit));
	log_info("mig %" PRIx64 " %s: moved to %s in %" PRIu64 " ms (%s, frozen "
	    "%" PRIu64 " ms, %" PRIu64 " bytes%s%s)", m->id, m->name, m->peer,
	    now_ms() - m->start_ms, m->postcopy ? "post-copy" : "stop-and-copy",
	    m->frozen_ms, m->bytes, m->limit != NULL ? ", limited to " : "",
	    rate);
	r.name = m->name;
	r.to = m->peer;
	r.mode = m->postcopy ? "postcopy" : "stopcopy";
	r.total_ms = now_ms() - m->start_ms;
	r.frozen_ms = m->frozen_ms;
	r.bytes = m->bytes;
	r.note = m->note;
	r.bytes += m->tree_bytes;
	if (m->limit != NULL) {
		r.has_bandwidth = 1;
		r.bandwidth = ratelimit_rate(m->limit);
	}
	if (m->max_downtime_ms != 0 && m->frozen_ms > m->max_downtime_ms) {
		char	*was = m->note;

		xasprintf(&m->note, "%s%sfrozen %" PRIu64 " ms, more than "
		    "--max-downtime %u ms", was != NULL ? was : "",
		    was != NULL ? "; " : "", m->frozen_ms, m->max_downtime_ms);
		free(was);
		r.note = m->note;
		log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, m->note);
	}
	if (m->postcopy) {
		r.has_postcopy_ms = 1;
		r.postcopy_ms = now_ms() - m->resumed_ms;
		r.has_page_bytes = 1;
		r.page_bytes = m->relay != NULL ? relay_bytes_out(m->relay) :
		    m->page_bytes;
		r.bytes += r.page_bytes;
	}
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_REPLY;
	env.migrate_reply = &r;
	ctr_answer(m, &env, 0, NULL);
	if (m->rootfs_copy) {
		/* The target's copy is the live one now; ours would only go
		 * stale (and block a move back). */
		char *who;

		xasprintf(&who, "mig %" PRIx64 " %s", m->id, m->name);
		work_discard(m->agent->loop, in->spec->root, who,
		    "the rootfs copy", NULL, NULL);
		free(who);
	}
	/* Destroy first: releasing the table may close it, and everything
	 * in it, at once (a shutdown waiting for us). */
	set = in->set;
	instance_destroy(in);
	instances_op_done(set);
	mig_free(m);
}

/* Past the commit point the link dropped: we cannot know whether the
 * target resumed it.  Keep our verified checkpoint (not running) and
 * tell the operator exactly that. */
static void
mig_source_orphaned(struct migration *m, const char *why)
{
	struct instance	*in = m->in;
	char		*text;

	if (!m->commit_sent || m->target_refused) {
		/* COMMIT never left, or the target said it failed to resume:
		 * it cannot run there. */
		free(in->moved_to);
		in->moved_to = NULL;
	}
	if (m->target_refused)
		xasprintf(&text, "%s stopped here at the commit point, but %s "
		    "could not resume it (%s): it does not run there; ternctl "
		    "restore %s here (checkpoint %" PRIu64 ")", m->name, m->peer,
		    why, m->name, m->generation);
	else
		xasprintf(&text, "%s stopped here at the commit point and was "
		    "restored on %s, but %s before %s confirmed it runs: check "
		    "ternctl list on %s; if it does not run there, ternctl "
		    "restore %s%s here (checkpoint %" PRIu64 ")", m->name,
		    m->peer, why, m->peer, m->peer, m->name, in->moved_to !=
		    NULL ? " --force" : "", m->generation);
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, text);
	instance_set_error(in, text);
	instance_set_state(in, INST_CHECKPOINTED, "migration unconfirmed");
	ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	instances_op_done(in->set);
	mig_free(m);
}

/* The commit point is recorded (moved_to, on disk) before it is acted
 * on: a ternd restarted past it must not run its copy again, nor restore
 * a second one from the checkpoint it keeps.  then(m) runs once the
 * record is durable, if nothing rolled the migration back meanwhile;
 * else the mark is taken back.  The write runs on the pool. */
static void	mig_source_commit_recorded(void *, const char *);

static void
mig_source_record_commit(struct migration *m,
    void (*then)(struct migration *))
{
	m->in->moved_to = xstrdup(m->peer);
	m->recording_in = m->in;
	m->record_then = then;
	m->handles++;
	instance_persist_then(m->in, mig_source_commit_recorded, m);
}

static void
mig_source_commit_recorded(void *arg, const char *error)
{
	struct migration	*m = arg;
	struct instance		*in = m->recording_in;
	int			 live;

	(void)error;	/* logged; the commit goes on as it did before */
	m->recording_in = NULL;
	live = --m->handles > 0;
	if (!live || m->state != MIG_RESTORING ||
	    (m->postcopy ? m->dump == NULL : m->hold == NULL)) {
		/* Rolled back while the record was written: not committed. */
		free(in->moved_to);
		in->moved_to = NULL;
		instance_persist(in);
		if (!live) {
			m->handles = 1;		/* only its memory is left */
			mig_freed((uv_handle_t *)&m->timer);
		}
		return;
	}
	m->record_then(m);
}

/* The commit could not be made after all: take the record back. */
static void
mig_source_uncommit(struct migration *m)
{
	free(m->in->moved_to);
	m->in->moved_to = NULL;
	instance_persist(m->in);
}

/* RESTORED in post-copy: the target holds the restored tree, its memory
 * still here.  COMMIT makes it run there; from then on ours never runs
 * again. */
static void	mig_source_postcopy_recorded(struct migration *);

static void
mig_source_postcopy_commit(struct migration *m)
{
	if (m->state != MIG_RESTORING || m->recording_in != NULL)
		return;
	if (m->dump == NULL) {
		mig_source_fail(m, "criu stopped before serving the pages");
		return;
	}
	mig_source_record_commit(m, mig_source_postcopy_recorded);
}

static void
mig_source_postcopy_recorded(struct migration *m)
{
	if (ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL) != 0) {
		mig_source_uncommit(m);
		mig_source_fail(m, "the commit could not be sent to %s",
		    m->peer);
		return;
	}
	log_info("mig %" PRIx64 " %s: commit point: %s restored it; it runs "
	    "there now, its memory served from here", m->id, m->name, m->peer);
	mig_set_state(m, MIG_COMMITTED);
	/* Paging lasts as long as the memory takes to cross; the link's
	 * heartbeats and the relay watch it instead. */
	uv_timer_stop(&m->timer);
	if (m->relay != NULL) {
		if (relay_gate_held(m->relay) > 0)
			log_info("mig %" PRIx64 " %s: %s fetched every page "
			    "before the commit point; its end of the transfer "
			    "goes to criu now", m->id, m->name, m->peer);
		relay_gate_open(m->relay);	/* may end the relay now */
	}
}

/* RESTORED in stop-and-copy, the record on disk: CRIU stops our copy,
 * then COMMIT goes (mig_source_dumped). */
static void
mig_source_stopcopy_recorded(struct migration *m)
{
	struct ckpt_hold	*h;
	const char		*lost;

	if ((lost = ckpt_hold_lost(m->hold)) != NULL) {
		/* CRIU died holding it: there is nothing to commit. */
		mig_source_uncommit(m);
		mig_source_fail(m, "criu died while the container was "
		    "frozen: %s", lost);
		return;
	}
	log_info("mig %" PRIx64 " %s: commit point: %s restored it; "
	    "stopping the source copy", m->id, m->name, m->peer);
	mig_set_state(m, MIG_COMMITTED);
	h = m->hold;
	m->hold = NULL;
	ckpt_hold_release(h, 1);	/* CRIU kills the source tree */
}

/* Past the commit point the page transfer broke: the memory is split
 * between the hosts.  Kill our CRIU with the tree still frozen, so it is
 * never resumed here while the target may run it. */
static void
mig_source_postcopy_broke(struct migration *m, const char *why)
{
	if (m->broken != NULL)
		return;
	m->broken = xstrdup(why);
	log_warnx("mig %" PRIx64 " %s: post-copy broke after the switch: %s; "
	    "stopping the source copy for good", m->id, m->name, why);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	if (m->dump != NULL)
		ckpt_hold_kill(m->dump);	/* mig_source_dumped follows */
	else if (m->dumped)
		mig_source_postcopy_done(m, why);
}

/* The lazy dump ended after the commit point. */
/* Success needs all four: it runs there (RESUMED), every page arrived
 * there (COMPLETE), CRIU here is done (dumped), and the page channel
 * drained (its last bytes are CRIU's goodbye). */
static void
mig_source_postcopy_finish(struct migration *m)
{
	if (m->resumed && m->complete && m->dumped && m->relay_ended &&
	    m->broken == NULL)
		mig_source_resumed(m);
}

static void
mig_source_postcopy_done(struct migration *m, const char *error)
{
	struct instance	*in = m->in;
	const char	*why = m->broken != NULL ? m->broken : error;
	uint64_t	 gen;
	char		*text;

	m->dumped = 1;
	/* On success CRIU killed the tree; after a failure it is frozen (or,
	 * had CRIU resumed it, must not run on): kill it either way. */
	container_kill(in->name, NULL);
	container_cgroup_remove(in->name, NULL);
	in->pid = 0;
	if (why == NULL) {
		log_info("mig %" PRIx64 " %s: criu served its last page to %s",
		    m->id, m->name, m->peer);
		mig_source_postcopy_finish(m);
		return;
	}
	if (m->broken == NULL) {
		m->broken = xstrdup(why);
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	}
	gen = ckpt_newest(in->ckpt_dir);
	if (gen != 0)
		xasprintf(&text, "post-copy of %s to %s broke after it ran "
		    "there (%s): its memory was split between the hosts, so it "
		    "was stopped on both; restore its last checkpoint here: "
		    "ternctl restore %s (checkpoint %" PRIu64 ")", m->name,
		    m->peer, why, m->name, gen);
	else
		xasprintf(&text, "post-copy of %s to %s broke after it ran "
		    "there (%s): its memory was split between the hosts, so it "
		    "was stopped on both, and it has no checkpoint to restore: "
		    "start it again (ternctl start %s)", m->name, m->peer, why,
		    m->name);
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, text);
	instance_set_error(in, text);
	free(in->moved_to);
	in->moved_to = NULL;
	instance_set_state(in, gen != 0 ? INST_CHECKPOINTED : INST_STOPPED,
	    "post-copy lost");
	in->generation = gen;
	ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	instances_op_done(in->set);
	mig_free(m);
}

static void	mig_source_sent_all(struct migration *);
static void	mig_source_dump(struct migration *);

/* A rootfs pass is out: the full one (then wait for ROOTFS_SYNCED) or
 * the delta while frozen. */
static void
mig_source_tree_sent(void *arg, const struct tree_stats *st,
    const char *error)
{
	struct migration	*m = arg;

	m->tree_tx = NULL;
	tree_index_free(m->tree_prev);
	m->tree_prev = NULL;
	if (error != NULL) {
		mig_source_fail(m, "copying the rootfs to %s: %s", m->peer,
		    error);
		return;
	}
	m->tree_bytes += st->bytes;
	log_info("mig %" PRIx64 " %s: rootfs %s sent: %" PRIu64 " entries, %"
	    PRIu64 " files, %" PRIu64 " bytes, %" PRIu64 " deleted", m->id,
	    m->name, m->state == MIG_SYNCING ? "full pass" : "delta",
	    st->entries, st->files, st->bytes, st->deleted);
	if (m->state == MIG_SYNCING && m->tree_synced)
		mig_source_dump(m);
	else if (m->state == MIG_SENDING)
		mig_source_sent_all(m);
}

static int
mig_source_tree_start(struct migration *m, char **cause)
{
	struct stream_mux	*mux;
	struct tree_index	*since = m->tree_idx;
	char			*name;

	if ((mux = peers_mux(m->agent->peers, m->peer)) == NULL) {
		set_cause(cause, "%s is not reachable", m->peer);
		return -1;
	}
	xasprintf(&name, "%s/%" PRIu64, m->name, m->generation);
	/* The delta's base stays valid until the pass is over. */
	m->tree_idx = NULL;
	m->tree_prev = since;
	m->tree_tx = tree_send(m->agent->loop, mux, m->in->spec->root, name,
	    m->limit, since, &m->tree_idx, mig_source_tree_sent, m, cause);
	free(name);
	return m->tree_tx != NULL ? 0 : -1;
}

static void
mig_source_sent(void *arg, uint64_t bytes, const char *error)
{
	struct migration	*m = arg;

	m->fs = NULL;
	m->bytes = bytes;
	if (m->state != MIG_SENDING)
		return;
	if (error != NULL) {
		mig_source_fail(m, "copying the images to %s: %s", m->peer,
		    error);
		return;
	}
	mig_source_sent_all(m);
}

/* Images and the rootfs delta are out (the target restores once it has
 * applied both). */
static void
mig_source_sent_all(struct migration *m)
{
	if (m->fs != NULL || m->tree_tx != NULL)
		return;
	if (m->postcopy && m->hold != NULL) {
		/* The target's lazy restore needs pages before it reaches
		 * pre-resume: CRIU serves from now.  The tree stays frozen;
		 * a rollback from here must make CRIU fail the transfer
		 * (mig_source_fail), or it would take the end for success. */
		m->dump = m->hold;
		m->hold = NULL;
		ckpt_hold_release(m->dump, 1);
	}
	mig_set_state(m, MIG_RESTORING);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORE, NULL);
}

/* post-dump: frozen, images published.  Copy them to the target. */
static void
mig_source_frozen(void *arg, struct ckpt_hold *hold, const char *gen_dir,
    uint64_t bytes)
{
	struct migration	*m = arg;
	struct stream_mux	*mux;
	char			*prefix, *cause = NULL;

	if (m->state != MIG_DUMPING) {
		/* Rolled back while CRIU dumped: let it resume the tree. */
		ckpt_hold_release(hold, 0);
		return;
	}
	m->hold = hold;
	mig_set_state(m, MIG_SENDING);
	switch (fault_hit("mig.source.frozen")) {
	case FAULT_KILL:
		fault_die("mig.source.frozen");
		break;
	case FAULT_STALL:
		return;		/* frozen and held, nothing sent */
	default:
		break;
	}
	if ((mux = peers_mux(m->agent->peers, m->peer)) == NULL) {
		mig_source_fail(m, "%s is not reachable", m->peer);
		return;
	}
	xasprintf(&prefix, "%s/%" PRIu64, m->name, m->generation);
	log_info("mig %" PRIx64 " %s: frozen; copying %" PRIu64 " bytes of "
	    "images to %s", m->id, m->name, bytes, m->peer);
	if ((m->fs = files_send_dir(m->agent->loop, mux, gen_dir, prefix, m->limit,
	    mig_source_sent, m, &cause)) == NULL ||
	    (m->rootfs_copy && mig_source_tree_start(m, &cause) != 0)) {
		mig_source_fail(m, "%s", cause);
		free(cause);
	}
	free(prefix);
}

/* Freeze and dump; post-dump (mig_source_frozen) holds it. */
static void
mig_source_dump(struct migration *m)
{
	struct ckpt_target	 t;

	mig_set_state(m, MIG_DUMPING);
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.pid = m->in->pid;
	t.rootfs = m->in->spec->root;
	t.action_script = m->agent->criu_action;
	m->dump_start_ms = now_ms();
	if (m->postcopy) {
		int	 keep = dup(relay_local_fd(m->relay));
		pid_t	 pid;

		/* Recorded: a ternd that dies here leaves CRIU holding the
		 * tree frozen, and the next one must find and kill it. */
		pid = ckpt_dump_lazy_held(m->agent->loop, &t, m->generation,
		    m->ps_fd, keep, mig_source_frozen, mig_source_dumped, m);
		close(m->ps_fd);	/* CRIU has them now */
		m->ps_fd = -1;
		if (keep != -1)
			close(keep);
		if (pid > 0 && m->state == MIG_DUMPING) {
			m->in->criu_pid = pid;
			instance_persist(m->in);
		}
	} else
		ckpt_dump_held(m->agent->loop, &t, m->generation,
		    mig_source_frozen, mig_source_dumped, m);
}

static void
mig_source_step(struct migration *m, const Tern__MigrateStep *s)
{
	const char		*lost;

	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__READY:
		if (m->state != MIG_OFFERED)
			break;
		if (m->rootfs_copy) {
			char *cause = NULL;

			/* The bulk of the rootfs crosses while it runs. */
			mig_set_state(m, MIG_SYNCING);
			if (mig_source_tree_start(m, &cause) != 0) {
				mig_source_fail(m, "%s", cause);
				free(cause);
			}
			break;
		}
		mig_source_dump(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ROOTFS_SYNCED:
		if (m->state != MIG_SYNCING || m->tree_synced)
			break;
		m->tree_synced = 1;
		if (m->tree_tx == NULL)
			mig_source_dump(m);
		break;
	case TERN__MIGRATE_STEP__STEP__RESTORED:
		if (fault_hit("mig.source.restored") == FAULT_STALL)
			break;		/* as a source that hangs here */
		if (m->postcopy) {
			mig_source_postcopy_commit(m);
			break;
		}
		if (m->state != MIG_RESTORING || m->hold == NULL ||
		    m->recording_in != NULL)
			break;
		if ((lost = ckpt_hold_lost(m->hold)) != NULL) {
			/* CRIU died holding it: there is nothing to commit. */
			mig_source_fail(m, "criu died while the container was "
			    "frozen: %s", lost);
			break;
		}
		/* The commit point: the target holds a verified, restored
		 * copy.  From here on it owns the instance. */
		mig_source_record_commit(m, mig_source_stopcopy_recorded);
		break;
	case TERN__MIGRATE_STEP__STEP__RESUMED:
		if (m->postcopy && m->state == MIG_COMMITTED && !m->resumed) {
			m->resumed = 1;
			m->resumed_ms = now_ms();
			m->frozen_ms = m->resumed_ms - m->dump_start_ms;
			log_info("mig %" PRIx64 " %s: runs on %s after %" PRIu64
			    " ms frozen; its memory follows", m->id, m->name,
			    m->peer, m->frozen_ms);
			mig_source_postcopy_finish(m);
			break;
		}
		if (m->state == MIG_COMMITTED && m->dumped)
			mig_source_resumed(m);
		break;
	case TERN__MIGRATE_STEP__STEP__COMPLETE:
		/* CRIU's success alone proves nothing: it takes a channel
		 * that closed early for a finished transfer. */
		if (!m->postcopy || m->state != MIG_COMMITTED || m->complete)
			break;
		m->complete = 1;
		log_info("mig %" PRIx64 " %s: %s has every page", m->id, m->name,
		    m->peer);
		mig_source_postcopy_finish(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		if (m->postcopy && m->state == MIG_COMMITTED) {
			mig_source_postcopy_broke(m, s->error != NULL ?
			    s->error : "the target aborted");
			break;
		}
		if (m->state == MIG_COMMITTED && m->dumped) {
			/* Its own word: it does not run there. */
			m->target_refused = 1;
			mig_source_orphaned(m, s->error != NULL ? s->error :
			    "the target aborted");
			break;
		}
		if (m->state == MIG_COMMITTED) {
			m->link_lost = 1;	/* orphaned once CRIU is done */
			break;
		}
		mig_source_fail(m, "%s refused: %s", m->peer, s->error != NULL ?
		    s->error : "no reason given");
		break;
	default:
		break;
	}
}

static int
postcopy_possible(struct agent *a, const char *to)
{
	return a->criu.lazy_pages && a->criu_action != NULL &&
	    peers_has_capability(a->peers, to, "criu.lazy-pages");
}

/* Stop-and-copy freezes a container for its dump, copy and restore: about
 * its memory over MIG_STOPCOPY_RATE (what 1 GiB took here, end to end),
 * or over --bandwidth if that is lower.  1 and *cause if that exceeds
 * --max-downtime. */
#define MIG_STOPCOPY_RATE	(100ULL << 20)

/* The lowest --bandwidth: 1 MB/s.  Slower, a stop-and-copy of even a
 * small container stands frozen for minutes (over 17 per GiB), and a
 * post-copy one waits as long on the pages it touches. */
#define MIG_BANDWIDTH_MIN	1000000ULL

static int
mig_stopcopy_too_long(struct agent *a, struct instance *in,
    const Tern__MigrateRequest *r, int postcopy_ok, char **cause)
{
	uint64_t	mem = container_memory_usage(in->name), rate, est;
	int		limited = 0;

	rate = MIG_STOPCOPY_RATE;
	if (r->has_bandwidth && r->bandwidth < rate) {
		rate = r->bandwidth;
		limited = 1;
	}
	est = mem * 1000 / rate;
	if (est <= r->max_downtime_ms)
		return 0;
	xasprintf(cause, "stop-and-copy would freeze %s for about %llu ms "
	    "(%.0f MiB at ~%.1f MB/s%s), more than --max-downtime %u ms; %s",
	    in->name, (unsigned long long)est, (double)mem / (1 << 20),
	    (double)rate / 1e6, limited ? ", the --bandwidth" : "",
	    r->max_downtime_ms, postcopy_ok ?
	    "--mode postcopy (or auto) freezes it only while its other state "
	    "moves" : "post-copy is not available between these hosts");
	return 1;
}

void
migration_start(struct agent *a, const Tern__MigrateRequest *r,
    instances_done_cb progress, instances_done_cb cb, void *arg)
{
	struct instance		*in;
	struct migration	*m;
	Envelope		 env;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	char			*cause = NULL;
	const char		*mode = r->mode != NULL ? r->mode : "auto";
	char			*note = NULL, rate[32], *why = NULL;
	pid_t			*pids = NULL;
	size_t			 npids = 0;
	int			 postcopy;

	if (a->mig == NULL) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "ternd is shutting down");
		return;
	}
	if (r->has_cancel && r->cancel) {
		mig_engine_start(a->mig, NULL, r, progress, cb, arg);
		return;
	}
	if (a->instances != NULL &&
	    (in = instance_find(a->instances, r->name)) != NULL && in->vm) {
		mig_engine_start(a->mig, "vm", r, progress, cb, arg);
		return;
	}
	if (strcmp(mode, "precopy") == 0) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, a->criu.mem_track ?
		    "pre-copy of containers is not implemented; use --mode "
		    "postcopy or stopcopy" : "pre-copy needs memory tracking "
		    "(soft-dirty), which this host's kernel lacks (criu check "
		    "--feature mem_dirty_track); use --mode auto, postcopy or "
		    "stopcopy");
		return;
	}
	if (r->has_bandwidth && r->bandwidth < MIG_BANDWIDTH_MIN) {
		mig_format_rate(rate, sizeof rate, r->bandwidth);
		xasprintf(&cause, "--bandwidth %s is too low: at least 1M (1 "
		    "MB/s, 8mbit), or a container stands frozen (stop-and-copy) "
		    "or stalled on its memory (post-copy) for minutes", rate);
		goto refuse;
	}
	if (strcmp(mode, "stopcopy") != 0 && strcmp(mode, "auto") != 0 &&
	    strcmp(mode, "postcopy") != 0) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "mode must be auto, precopy, postcopy or stopcopy");
		return;
	}
	if (a->instances == NULL ||
	    (in = instance_find(a->instances, r->name)) == NULL) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance named so on this host (ternctl list)");
		return;
	}
	if (in->state != INST_RUNNING || in->pid <= 0) {
		xasprintf(&cause, "instance %s is %s: only a running instance "
		    "migrates", in->name, inst_state_names[in->state]);
		goto refuse;
	}
	if (strcmp(r->to, a->conf->host_name) == 0) {
		xasprintf(&cause, "instance %s already runs on %s", in->name,
		    r->to);
		goto refuse;
	}
	if (peers_mux(a->peers, r->to) == NULL) {
		xasprintf(&cause, "host %s is not up (ternctl hosts)", r->to);
		goto refuse;
	}
	if (!peers_has_capability(a->peers, r->to, "criu")) {
		xasprintf(&cause, "host %s cannot run containers (no usable "
		    "CRIU there: see ternctl status on it)", r->to);
		goto refuse;
	}
	if (a->cpuinfo == NULL) {
		xasprintf(&cause, "%s cannot describe its CPU for %s to check: "
		    "%s", a->conf->host_name, r->to, a->cpuinfo_error != NULL ?
		    a->cpuinfo_error : "no CRIU cpuinfo dump");
		goto refuse;
	}
	/* auto: pre-copy where memory is tracked (not built for containers),
	 * else post-copy where both CRIUs do lazy pages, else stop-and-copy. */
	postcopy = postcopy_possible(a, r->to);
	if (strcmp(mode, "postcopy") == 0 && !postcopy) {
		if (a->criu.lazy_pages)
			xasprintf(&cause, "post-copy needs lazy pages in CRIU on "
			    "both hosts; %s has none (ternctl status there)",
			    r->to);
		else
			xasprintf(&cause, "post-copy is not possible from %s: %s",
			    a->conf->host_name, a->criu.lazy_problem != NULL ?
			    a->criu.lazy_problem : "its CRIU or kernel has no "
			    "lazy pages (userfaultfd)");
		goto refuse;
	}
	if (strcmp(mode, "stopcopy") == 0)
		postcopy = 0;
	if (container_pids(in->name, &pids, &npids, &cause) != 0)
		goto refuse;
	/* A lock on shared storage would make the target's restore wait for
	 * the frozen source: refused, whatever the mode. */
	if (in->spec->shared_storage && file_locks_on_shared(in->spec->root,
	    pids, npids, &why) > 0) {
		xasprintf(&cause, "%s cannot move now: %s", in->name, why);
		free(why);
		goto refuse;
	}
	free(why);
	why = NULL;
	/* What lazy pages cannot carry moves by stop-and-copy, or not at all
	 * when post-copy was asked for. */
	if (postcopy && lazy_check_pids(pids, npids, &why) != 0) {
		if (strcmp(mode, "postcopy") == 0) {
			xasprintf(&cause, "post-copy cannot move %s: %s; use "
			    "--mode stopcopy (or auto)", in->name, why);
			free(why);
			goto refuse;
		}
		postcopy = 0;
	}
	if (!postcopy && r->has_max_downtime_ms && r->max_downtime_ms > 0 &&
	    mig_stopcopy_too_long(a, in, r, postcopy_possible(a, r->to),
	    &cause))
		goto refuse;
	if (strcmp(mode, "auto") == 0 && why != NULL)
		xasprintf(&note, "auto: %sstop-and-copy, not post-copy: %s",
		    a->criu.mem_track ? "" : "no pre-copy (this kernel has no "
		    "soft-dirty memory tracking); ", why);
	else if (strcmp(mode, "auto") == 0)
		xasprintf(&note, "auto: %s%s", a->criu.mem_track ? "" :
		    "no pre-copy (this kernel has no soft-dirty memory "
		    "tracking); ", postcopy ? "post-copy (lazy pages over "
		    "userfaultfd)" : "stop-and-copy (no lazy pages on both "
		    "hosts)");
	free(why);
	why = NULL;
	if (r->has_bandwidth) {
		char	*was = note;

		mig_format_rate(rate, sizeof rate, r->bandwidth);
		xasprintf(&note, "%s%slimited to %s (--bandwidth)",
		    was != NULL ? was : "", was != NULL ? "; " : "", rate);
		free(was);
	}
	m = mig_new(a, r->to, ++a->next_migration | (a->boot_id << 16),
	    1, in->name);
	m->in = in;
	m->cb = cb;
	m->progress = progress;
	m->arg = arg;
	m->postcopy = postcopy;
	if (r->has_bandwidth)
		m->limit = ratelimit_new(a->loop, r->bandwidth);
	uv_timer_start(&m->tick, mig_tick, 500, 500);
	m->max_downtime_ms = r->has_max_downtime_ms ? r->max_downtime_ms : 0;
	m->note = note;
	m->rootfs_copy = !in->spec->shared_storage;
	m->generation = ckpt_newest(in->ckpt_dir) + 1;
	instance_set_state(in, INST_MIGRATING, NULL);
	in->set->busy++;
	log_info("mig %" PRIx64 " %s: %s -> %s, %s%s%s", m->id, in->name,
	    a->conf->host_name, r->to, postcopy ? "post-copy" : "stop-and-copy",
	    note != NULL ? "; " : "", note != NULL ? note : "");
	msg_init(&env, 0);
	o.migration = m->id;
	o.name = in->name;
	o.kind = "container";
	o.spec = in->spec_text;
	o.spec_dir = in->spec_dir;
	o.generation = m->generation;
	o.mode = postcopy ? "postcopy" : NULL;
	o.has_rootfs_copy = m->rootfs_copy;
	o.rootfs_copy = m->rootfs_copy;
	o.has_cpuinfo = 1;	/* the target checks it before READY */
	o.cpuinfo.data = a->cpuinfo;
	o.cpuinfo.len = a->cpuinfo_len;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	if (peers_send(a->peers, r->to, &env, &cause) != 0 ||
	    (postcopy && mig_relay_new(m, &cause) != 0)) {
		mig_source_fail(m, "%s", cause);
		free(cause);
	}
	free(pids);
	return;
refuse:
	cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, cause);
	free(cause);
	free(pids);
}

/* --- target ---------------------------------------------------------------- */

/* Discard what arrived; the source keeps (or resumes) its container. */
static void	mig_target_postcopy_lost(struct migration *, const char *);
static void	mig_target_held(void *, struct ckpt_hold *, const char *,
		    uint64_t);
static void	mig_target_pages_arrived(struct migration *);
static void	mig_target_postcopy_finish(struct migration *);

/* The restored tree held at pre-resume must never run: CRIU takes a
 * refused pre-resume as an error it only logs, and resumes the tree
 * anyway.  So kill it first; then CRIU finds nothing left to resume. */
static void
mig_target_drop_held(struct migration *m)
{
	struct ckpt_hold	*h = m->hold;
	char			*cause = NULL;

	m->hold = NULL;
	if (container_kill(m->in->name, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, cause);
		free(cause);
	}
	ckpt_hold_release(h, 0);	/* mig_target_restored follows */
}

static void
mig_target_discard(struct migration *m, const char *why)
{
	if (m->state == MIG_PAGING) {
		mig_target_postcopy_lost(m, why);
		return;
	}
	if (m->state == MIG_RESUMING)
		return;	/* past the commit point: it is ours now */
	log_warnx("mig %" PRIx64 " %s: %s; discarding the incoming copy",
	    m->id, m->name, why);
	if (m->hold != NULL) {
		mig_set_state(m, MIG_ABORTING);
		mig_target_drop_held(m);
		return;			/* mig_target_restored ends it */
	}
	if (m->state == MIG_RESTORING || m->state == MIG_ABORTING) {
		mig_set_state(m, MIG_ABORTING);
		ckpt_cancel(m->name, why);	/* a restore still at work */
		return;	/* the restore's callback ends it */
	}
	if (m->in != NULL) {
		struct instances *set = m->in->set;

		instance_destroy(m->in);
		instances_op_done(set);
	}
	mig_free(m);
}

/* Discard, and tell the source first.  Not in post-copy past the switch
 * (mig_target_postcopy_lost tells it its own way), nor once resuming
 * (it is ours then). */
static void
mig_target_abort(struct migration *m, const char *why)
{
	if (m->state != MIG_PAGING && m->state != MIG_RESUMING)
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	mig_target_discard(m, why);
}

/* A failed incoming copy is about to be deleted: keep its CRIU logs
 * where the error text will say they are (the caller frees the text). */
static char *
mig_target_keep_logs(struct migration *m, const char *error)
{
	char	*gen_dir, *root, *label, *text;

	if (m->in == NULL)
		return xstrdup(error);
	xasprintf(&gen_dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	xasprintf(&root, "%s/failed-migrations", m->agent->conf->state_dir);
	xasprintf(&label, "%s-%" PRIx64, m->name, m->id);
	text = kept_logs_save(gen_dir, root, label, error);
	log_info("mig %" PRIx64 " %s: CRIU's logs of the failed attempt kept "
	    "under %s", m->id, m->name, root);
	free(gen_dir);
	free(root);
	free(label);
	return text;
}

static void
mig_target_restored(void *arg, const struct ckpt_result *res,
    const char *error)
{
	struct migration	*m = arg;
	struct instance		*in = m->in;
	struct instances	*set;

	if (error != NULL || m->state != MIG_RESUMING) {
		/* Unless we killed it ourselves, say where CRIU's logs are. */
		char *text = error != NULL && m->state != MIG_ABORTING ?
		    mig_target_keep_logs(m, error) : NULL;

		/* Even past COMMIT: it does not run here, so the source's
		 * checkpoint and rootfs are the instance, not our copy.  All
		 * of it goes before the source hears: an operator who tries
		 * again at once finds this host clean. */
		m->rootfs_keep = 0;
		container_kill(in->name, NULL);
		container_cgroup_remove(in->name, NULL);
		mig_drop_rootfs(m);
		free(m->rootfs);
		m->rootfs = NULL;
		log_warnx("mig %" PRIx64 " %s: incoming copy discarded%s%s",
		    m->id, m->name, error != NULL ? ": " : "",
		    error != NULL ? error : "");
		set = in->set;
		instance_destroy(in);
		m->in = NULL;
		if (m->state != MIG_ABORTING)
			ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT,
			    text != NULL ? text : "restore discarded");
		free(text);
		instances_op_done(set);
		mig_free(m);
		return;
	}
	instance_watch(in, res->pid, 0);
	if (m->postcopy) {
		/* It runs; its memory arrives on demand and in the
		 * background.  No checkpoint here yet: the images lack it. */
		instance_set_state(in, INST_RUNNING, "migrated in (post-copy)");
		log_info("mig %" PRIx64 " %s: running here (pid %ld), moved "
		    "from %s; its memory follows", m->id, m->name,
		    (long)res->pid, m->peer);
		mig_set_state(m, MIG_PAGING);
		uv_timer_stop(&m->timer);
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESUMED, NULL);
		if (m->pages_done)
			mig_target_pages_arrived(m);
		return;
	}
	in->generation = m->generation;
	instance_set_state(in, INST_RUNNING, "migrated in");
	log_info("mig %" PRIx64 " %s: running here (pid %ld), moved from %s",
	    m->id, m->name, (long)res->pid, m->peer);
	/* Make our copy of the images durable now that it runs, then let the
	 * source drop its own (until then it is the durable one). */
	xasprintf(&m->sync_dir, "%s/%" PRIu64, in->ckpt_dir, m->generation);
	m->set = in->set;
	m->in = NULL;	/* it is an ordinary running instance from here */
	m->work.data = m;
	uv_queue_work(m->agent->loop, &m->work, mig_target_sync,
	    mig_target_synced);
}

static void
mig_target_sync(uv_work_t *w)
{
	struct migration	*m = w->data;

	files_sync_dir(m->sync_dir, &m->sync_error);
	if (m->rootfs_copy && m->sync_error == NULL)
		tree_sync(m->rootfs, &m->sync_error);
}

static void
mig_target_synced(uv_work_t *w, int status)
{
	struct migration	*m = w->data;

	if (m->sync_error != NULL)
		/* The source then keeps its checkpoint (it times out waiting
		 * and says so): ours is not durable. */
		log_warnx("mig %" PRIx64 " %s: %s; not confirming, the source "
		    "keeps its checkpoint", m->id, m->name, m->sync_error);
	else
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESUMED, NULL);
	instances_op_done(m->set);
	mig_free(m);
}

/* Post-copy, running here, the memory transfer broke: pages it has not
 * touched yet are gone.  Kill it before the lazy-pages daemon goes (a
 * fault with no daemon would read zeros). */
static void
mig_target_postcopy_lost(struct migration *m, const char *why)
{
	struct instance		*in = m->in;
	struct instances	*set = in->set;
	char			*text;

	container_kill(in->name, NULL);
	container_cgroup_remove(in->name, NULL);
	ckpt_lazy_free(m->lazy);
	m->lazy = NULL;
	m->rootfs_keep = 0;	/* the source keeps its own copy */
	xasprintf(&text, "post-copy from %s broke after it ran here (%s): "
	    "its memory was split between the hosts, so it was stopped; its "
	    "last checkpoint is on %s", m->peer, why, m->peer);
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, text);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, text);
	free(text);
	/* The source keeps the instance's record and checkpoints. */
	instance_destroy(in);
	instances_op_done(set);
	mig_free(m);
}

static void
mig_target_lazy_done(void *arg, const char *error)
{
	struct migration	*m = arg;

	m->lazy = NULL;		/* it exited */
	if (error != NULL) {
		if (m->state == MIG_PAGING)
			mig_target_postcopy_lost(m, error);
		else
			mig_target_discard(m, error);
		return;
	}
	m->pages_done = 1;
	if (m->state != MIG_PAGING)
		return;	/* fetched before it resumed: mig_target_restored */
	mig_target_pages_arrived(m);
}

/* Every page is here and the page channel drained: done. */
static void
mig_target_postcopy_finish(struct migration *m)
{
	char	*dir;

	if (m->state != MIG_PAGING || !m->pages_done || !m->relay_ended)
		return;
	xasprintf(&dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	ckpt_discard(dir);
	free(dir);
	instances_op_done(m->in->set);
	mig_free(m);
}

static void
mig_target_pages_arrived(struct migration *m)
{
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, NULL);
	log_info("mig %" PRIx64 " %s: every page arrived from %s", m->id,
	    m->name, m->peer);
	mig_target_postcopy_finish(m);
}

static void
mig_target_lazy_ready(void *arg, const char *error)
{
	struct migration	*m = arg;
	struct ckpt_target	 t;

	if (error != NULL) {
		m->lazy = NULL;
		mig_target_abort(m, error);
		return;
	}
	if (m->state != MIG_RESTORING)
		return;
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.rootfs = m->in->spec->root;
	t.lazy = 1;
	ckpt_restore_held(m->agent->loop, &t, m->generation, mig_target_held,
	    mig_target_restored, m);
}

static void
mig_target_send_restored(struct migration *m)
{
	const char	*why = "fault point mig.target.restored";

	if (m->state != MIG_HELD)
		return;
	if (fault_check("mig.target.restored", NULL) == FAULT_FAIL) {
		mig_target_abort(m, why);
		return;
	}
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORED, NULL);
}

static void
mig_target_restored_later(uv_timer_t *t)
{
	mig_target_send_restored(t->data);
}

/* pre-resume: restored and verified, not running.  Tell the source. */
static void
mig_target_held(void *arg, struct ckpt_hold *hold, const char *gen_dir,
    uint64_t bytes)
{
	struct migration	*m = arg;
	unsigned		 ms = 0;

	if (m->state != MIG_RESTORING) {
		/* Discarded while CRIU restored: let it drop the tree. */
		ckpt_hold_release(hold, 0);
		return;
	}
	m->hold = hold;
	mig_set_state(m, MIG_HELD);
	switch (fault_check("mig.target.held", &ms)) {
	case FAULT_DELAY:
		/* m->tick is the source's; a target's is free. */
		uv_timer_start(&m->tick, mig_target_restored_later, ms, 0);
		return;
	case FAULT_STALL:
		return;		/* until the source gives up */
	case FAULT_KILL:
		fault_die("mig.target.held");
	default:
		break;
	}
	mig_target_send_restored(m);
}

/* The CPU check runs while the migration may be discarded (an ABORT, a
 * lost link, the timeout): its answer finds it again, or nothing. */
struct mig_cpu_check {
	struct agent		*agent;
	char			*peer;
	uint64_t		 id;
	struct migration	*m;	/* compared, not trusted */
};

static void
mig_target_cpu_checked(const char *problem, void *arg)
{
	struct mig_cpu_check	*cc = arg;
	struct migration	*m;
	char			*why;

	m = ctr_find(cc->agent, cc->peer, cc->id, 0);
	if (m == NULL || m != cc->m || m->state != MIG_RECEIVING)
		goto out;
	if (problem == NULL) {
		log_info("CPU check passed for %s from %s", m->name, m->peer);
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__READY, NULL);
		goto out;
	}
	xasprintf(&why, "%s cannot run %s's processes: %s",
	    m->agent->conf->host_name, m->peer, problem);
	mig_target_abort(m, why);
	free(why);
out:
	free(cc->peer);
	free(cc);
}

/* Before READY, so the source freezes nothing that cannot run here.  The
 * images directory is new and empty: CRIU's scratch space until then. */
static void
mig_target_check_cpu(struct migration *m, const Tern__MigrateOffer *o)
{
	struct mig_cpu_check	*cc;
	char			*dir, *why;

	if (!o->has_cpuinfo || o->cpuinfo.len == 0) {
		xasprintf(&why, "the offer does not describe %s's CPU, so %s "
		    "cannot check that it can run its processes (a tern "
		    "without the CPU check?)", m->peer,
		    m->agent->conf->host_name);
		mig_target_abort(m, why);
		free(why);
		return;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->agent = m->agent;
	cc->peer = xstrdup(m->peer);
	cc->id = m->id;
	cc->m = m;
	xasprintf(&dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	cpuinfo_check(m->agent->loop, m->agent->conf->criu_path, dir,
	    o->cpuinfo.data, o->cpuinfo.len, mig_target_cpu_checked, cc);
	free(dir);
}

/* A rootfs that follows goes where the spec says; nothing may be there
 * yet (something there is another copy, or shared storage undeclared). */
static int
mig_target_rootfs_free(struct agent *a, const char *root, char **cause)
{
	struct dirent	*de;
	DIR		*d;
	int		 used = 0;

	if ((d = opendir(root)) == NULL) {
		if (errno == ENOENT)
			return mkdir_p(root, 0755, cause);
		set_cause(cause, "%s: %s", root, strerror(errno));
		return -1;
	}
	while (!used && (de = readdir(d)) != NULL)
		used = strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0;
	closedir(d);
	if (used) {
		set_cause(cause, "the rootfs %s already exists on %s and is not "
		    "empty (if both hosts share it, declare \"tern\": "
		    "{\"shared_storage\": true} in the spec)", root,
		    a->conf->host_name);
		return -1;
	}
	return 0;
}

/* Incoming container migrations at a time, from all peers together. */
#define MIG_MAX_INCOMING	8

static void
mig_target_offer(struct agent *a, const char *peer, const Tern__MigrateOffer *o)
{
	struct migration	*m;
	int			 incoming = 0;
	struct container_spec	*spec = NULL;
	struct instance		*in;
	char			*cause = NULL, *dir;

	for (m = a->migrations; m != NULL; m = m->next)
		incoming += !m->source;
	m = mig_new(a, peer, o->migration, 0, o->name);
	if (incoming >= MIG_MAX_INCOMING) {
		/* Each forks CRIU and takes disk: a peer gets no more. */
		xasprintf(&cause, "%s takes %d incoming migrations at a time; "
		    "try again when one is done", a->conf->host_name,
		    MIG_MAX_INCOMING);
		goto refuse;
	}
	if (a->instances == NULL || !a->criu.usable) {
		xasprintf(&cause, "%s cannot run containers", a->conf->host_name);
		goto refuse;
	}
	if (strcmp(o->kind, "container") != 0 || !host_name_valid(o->name)) {
		xasprintf(&cause, "bad offer (kind %s, name %s)", o->kind, o->name);
		goto refuse;
	}
	if (o->generation == 0 || o->generation >= (UINT64_C(1) << 62)) {
		xasprintf(&cause, "bad generation %" PRIu64, o->generation);
		goto refuse;
	}
	if (o->mode != NULL && strcmp(o->mode, "postcopy") != 0) {
		xasprintf(&cause, "unknown migration mode \"%.32s\"", o->mode);
		goto refuse;
	}
	m->postcopy = o->mode != NULL;
	if (m->postcopy && (!a->criu.lazy_pages || a->criu_action == NULL)) {
		xasprintf(&cause, "%s cannot take post-copy (no lazy pages in "
		    "its CRIU)", a->conf->host_name);
		goto refuse;
	}
	xasprintf(&dir, "%s/instances/%s", a->conf->state_dir, o->name);
	if (instance_find(a->instances, o->name) != NULL ||
	    access(dir, F_OK) == 0) {
		free(dir);
		xasprintf(&cause, "an instance %s already exists on %s", o->name,
		    a->conf->host_name);
		goto refuse;
	}
	free(dir);
	if ((spec = container_spec_parse(o->spec, strlen(o->spec), o->spec_dir,
	    &cause)) == NULL)
		goto refuse;
	if (container_root_allowed(a->conf, spec->root, &cause) != 0) {
		container_spec_free(spec);
		goto refuse;
	}
	m->rootfs_copy = o->has_rootfs_copy && o->rootfs_copy;
	if (m->rootfs_copy && mig_target_rootfs_free(a, spec->root,
	    &cause) != 0) {
		container_spec_free(spec);
		goto refuse;
	}
	if (!m->rootfs_copy && access(spec->root, R_OK) != 0) {
		xasprintf(&cause, "%s cannot see the rootfs %s: %s (is it on "
		    "shared storage, as its spec says?)", a->conf->host_name,
		    spec->root, strerror(errno));
		container_spec_free(spec);
		goto refuse;
	}
	if (m->rootfs_copy)
		m->rootfs = xstrdup(spec->root);
	in = instance_new(a->instances, o->name, o->spec, o->spec_dir, spec);
	m->in = in;
	m->generation = o->generation;
	in->set->busy++;
	in->state = INST_INCOMING;
	xasprintf(&dir, "%s/%" PRIu64, in->ckpt_dir, o->generation);
	if (instance_save(in, &cause) != 0 || mkdir_p(dir, 0700, &cause) != 0) {
		free(dir);
		mig_target_abort(m, cause);
		free(cause);
		return;
	}
	free(dir);
	/* Open our half of the page channel before READY: the source's half
	 * follows its offer, ours must exist when its dump starts. */
	if (m->postcopy && mig_relay_new(m, &cause) != 0) {
		mig_target_abort(m, cause);
		free(cause);
		return;
	}
	instance_set_state(in, INST_INCOMING, NULL);
	mig_set_state(m, MIG_RECEIVING);
	mig_target_check_cpu(m, o);	/* READY once it passes */
	return;
refuse:
	log_warnx("mig %" PRIx64 " %s from %s refused: %s", o->migration,
	    o->name, peer, cause);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause);
	free(cause);
	mig_free(m);
}

/* Images and rootfs are here: restore (held at pre-resume). */
static void
mig_target_restore(struct migration *m)
{
	struct ckpt_target	 t;
	char			*cause = NULL;

	if (container_cgroup_create(m->in->name, m->in->spec, &cause) != 0) {
		mig_target_abort(m, cause);
		free(cause);
		return;
	}
	mig_set_state(m, MIG_RESTORING);
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.rootfs = m->in->spec->root;
	t.action_script = m->agent->criu_action;
	if (m->postcopy) {
		/* The daemon first, the lazy restore once it listens
		 * (mig_target_lazy_ready). */
		m->lazy = ckpt_lazy_start(m->agent->loop, &t, m->generation,
		    m->ps_fd, mig_target_lazy_ready, mig_target_lazy_done, m,
		    &cause);
		close(m->ps_fd);
		m->ps_fd = -1;
		if (m->lazy == NULL) {
			mig_target_abort(m, cause);
			free(cause);
		}
		return;
	}
	ckpt_restore_held(m->agent->loop, &t, m->generation, mig_target_held,
	    mig_target_restored, m);
}

/* A rootfs pass was applied (or failed): the full one is answered with
 * ROOTFS_SYNCED, the delta lets a waiting RESTORE go on. */
static void
mig_target_tree_done(void *arg, const struct tree_stats *st,
    const char *error)
{
	struct migration	*m = arg;
	char			*why;

	m->trees_in--;
	if (m->zombie) {
		if (m->trees_in == 0) {
			mig_drop_rootfs(m);
			mig_close(m);
		}
		return;
	}
	if (error != NULL) {
		xasprintf(&why, "applying the rootfs into %s: %s", m->rootfs,
		    error);
		mig_target_abort(m, why);
		free(why);
		return;
	}
	m->trees_done++;
	log_info("mig %" PRIx64 " %s: rootfs %s applied: %" PRIu64 " entries, %"
	    PRIu64 " bytes, %" PRIu64 " deleted", m->id, m->name,
	    m->trees_done == 1 ? "full pass" : "delta", st->entries, st->bytes,
	    st->deleted);
	if (m->trees_done == 1)
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ROOTFS_SYNCED, NULL);
	else if (m->restore_wanted && m->state == MIG_RECEIVING &&
	    m->trees_in == 0 && m->files_writing == 0) {
		m->restore_wanted = 0;
		mig_target_restore(m);
	}
}

static void
mig_target_step(struct migration *m, const Tern__MigrateStep *s)
{
	struct ckpt_hold	*h;

	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__RESTORE:
		if (m->state != MIG_RECEIVING)
			break;
		if ((m->rootfs_copy && (m->trees_done < 2 ||
		    m->trees_in > 0)) || m->files_writing > 0) {
			/* mig_target_tree_done, mig_target_file_written */
			if (m->files_writing > 0)
				log_info("mig %" PRIx64 " %s: restore waits for "
				    "%u image files still being written", m->id,
				    m->name, m->files_writing);
			m->restore_wanted = 1;
			break;
		}
		mig_target_restore(m);
		break;
	case TERN__MIGRATE_STEP__STEP__COMMIT:
		if (m->state != MIG_HELD || m->hold == NULL)
			break;
		mig_set_state(m, MIG_RESUMING);
		m->rootfs_keep = 1;
		if (fault_check("mig.target.resume", NULL) == FAULT_FAIL) {
			/* As if the resume failed: the tree dies. */
			mig_target_drop_held(m);
			break;
		}
		h = m->hold;
		m->hold = NULL;
		ckpt_hold_release(h, 1);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		mig_target_discard(m, s->error != NULL ? s->error :
		    "the source aborted");
		break;
	default:
		break;
	}
}

/* The one place a failure's meaning is carried out: migrate/phases.c
 * decides (roll back, discard, keep, await, uncertain, split). */
static void
mig_failed(struct migration *m, enum mig_fail f, const char *why)
{
	enum mig_phase		ph = mig_phase(m);
	enum mig_verdict	v = mig_phase_verdict(mig_role(m), ph, f);

	log_debug("mig %" PRIx64 " %s: %s in phase %s: %s", m->id, m->name,
	    mig_fail_names[f], mig_phase_names[ph], mig_verdict_names[v]);
	switch (v) {
	case MIG_V_ROLLBACK:
		mig_source_fail(m, "%s", why);
		break;
	case MIG_V_DISCARD:
		/* Tell the source, unless it is gone or said so itself. */
		if (f == MIG_FAIL_LINK || f == MIG_FAIL_PEER_ABORT)
			mig_target_discard(m, why);
		else
			mig_target_abort(m, why);
		break;
	case MIG_V_AWAIT:
		/* CRIU is still stopping our copy; the target, having lost
		 * us, discards its own: never send COMMIT now. */
		if (f == MIG_FAIL_LINK || f == MIG_FAIL_TIMEOUT) {
			log_warnx("mig %" PRIx64 " %s: %s at the commit point",
			    m->id, m->name, why);
			m->link_lost = 1;
		}
		break;
	case MIG_V_UNCERTAIN:
		mig_source_orphaned(m, why);
		break;
	case MIG_V_SPLIT:
		if (m->source)
			mig_source_postcopy_broke(m, why);
		else
			mig_target_discard(m, why);	/* it kills ours */
		break;
	case MIG_V_KEEP:
	case MIG_V_IGNORE:
		break;
	}
}

static void
mig_timeout(uv_timer_t *t)
{
	struct migration	*m = t->data;
	char			*why;
	uint64_t		 moved = mig_bytes_moved(m);

	/* Bytes still crossing are progress: held to --bandwidth (or on a
	 * slow link) one state may well outlast the timeout. */
	if (moved != m->timer_bytes) {
		m->timer_bytes = moved;
		uv_timer_start(&m->timer, mig_timeout,
		    (uint64_t)m->agent->conf->migration_timeout_ms, 0);
		return;
	}
	xasprintf(&why, "no progress for %d ms in state %s (%s silent or "
	    "stuck?)", m->agent->conf->migration_timeout_ms,
	    mig_state_names[m->state], m->peer);
	mig_failed(m, MIG_FAIL_TIMEOUT, why);
	free(why);
}

/* --- routing --------------------------------------------------------------- */

int
migration_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	struct migration	*m;

	if (env->body_case != TERN__ENVELOPE__BODY_MIGRATE_OFFER &&
	    env->body_case != TERN__ENVELOPE__BODY_MIGRATE_STEP)
		return 0;
	if (a->mig == NULL)
		return 1;	/* stopping: no new work */
	if (env->body_case == TERN__ENVELOPE__BODY_MIGRATE_OFFER &&
	    !mig_engine_has_kind(a->mig, env->migrate_offer->kind)) {
		if (ctr_find(a, peer, env->migrate_offer->migration, 0) != NULL)
			return 1;	/* duplicate */
		mig_target_offer(a, peer, env->migrate_offer);
		return 1;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_MIGRATE_STEP) {
		/* Ids are the source's: RESTORE/COMMIT/ABORT to a target,
		 * READY/RESTORED/ABORT to a source. */
		if ((m = ctr_find(a, peer, env->migrate_step->migration,
		    1)) != NULL) {
			mig_source_step(m, env->migrate_step);
			return 1;
		}
		if ((m = ctr_find(a, peer, env->migrate_step->migration,
		    0)) != NULL) {
			mig_target_step(m, env->migrate_step);
			return 1;
		}
	}
	/* The engine's kinds, and a step for nobody (the engine answers
	 * one that would leave its source waiting). */
	return mig_engine_on_msg(a->mig, peer, env);
}

/* "NAME/GEN/FILE", strictly: a valid instance name, a decimal generation
 * without sign or spaces, one safe file name, nothing else. */
static int
mig_parse_file_name(const char *s, char *inst, size_t ilen, uint64_t *gen,
    char *file, size_t flen)
{
	const char	*a, *b;
	char		*end;

	if ((a = strchr(s, '/')) == NULL || (b = strchr(a + 1, '/')) == NULL)
		return -1;
	if ((size_t)(a - s) >= ilen || !(a[1] >= '0' && a[1] <= '9'))
		return -1;
	memcpy(inst, s, (size_t)(a - s));
	inst[a - s] = '\0';
	errno = 0;
	*gen = strtoull(a + 1, &end, 10);
	if (errno != 0 || end != b || strlen(b + 1) >= flen)
		return -1;
	strcpy(file, b + 1);
	return host_name_valid(inst) && files_name_valid(file) ? 0 : -1;
}

/* What one incoming migration may ask of the target's disk and fds: a
 * legitimate source sends one image at a time, a few thousand in all. */
#define MIG_MAX_FILES		65536
#define MIG_MAX_STREAMS		16

/* Which migration an image file is for: looked up when it is written
 * (the migration may be gone by then). */
struct mig_file_ref {
	struct agent	*agent;
	char		*peer;
	uint64_t	 id;
};

/* An image file is written (its stream may have ended before). */
static void
mig_target_file_written(void *arg, const char *path, const char *error,
    int told)
{
	struct mig_file_ref	*ref = arg;
	struct migration	*m;
	char			*why;

	m = ctr_find(ref->agent, ref->peer, ref->id, 0);
	free(ref->peer);
	free(ref);
	if (m == NULL)
		return;
	m->files_writing--;
	if (error != NULL && !told && m->state == MIG_RECEIVING) {
		/* The source heard every byte arrive: tell it otherwise. */
		xasprintf(&why, "%s: %s", path, error);
		mig_target_abort(m, why);
		free(why);
		return;
	}
	if (m->restore_wanted && m->state == MIG_RECEIVING &&
	    m->files_writing == 0 && m->trees_in == 0 &&
	    (!m->rootfs_copy || m->trees_done >= 2)) {
		m->restore_wanted = 0;
		mig_target_restore(m);
	}
}

int
migration_accept_file(struct agent *a, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	struct migration	*m;
	struct mig_file_ref	*ref;
	struct statvfs		 vfs;
	char			 inst[64], file[256], *path;
	uint64_t		 gen, avail;
	int			 rc;

	if (mig_parse_file_name(name, inst, sizeof inst, &gen, file,
	    sizeof file) != 0) {
		set_cause(cause, "bad image file name \"%s\"", name);
		return -1;
	}
	for (m = a->migrations; m != NULL; m = m->next)
		if (!m->source && m->state == MIG_RECEIVING &&
		    strcmp(m->peer, peer) == 0 && strcmp(m->name, inst) == 0 &&
		    m->generation == gen)
			break;
	if (m == NULL) {
		set_cause(cause, "no migration of %s generation %" PRIu64
		    " from %s is receiving", inst, gen, peer);
		return -1;
	}
	if (m->files_in >= MIG_MAX_FILES ||
	    stream_tally_streams(m->tally) >= MIG_MAX_STREAMS) {
		set_cause(cause, "migration of %s from %s: more than %u image "
		    "files, or %u streams at once", inst, peer, MIG_MAX_FILES,
		    MIG_MAX_STREAMS);
		return -1;
	}
	xasprintf(&path, "%s/%" PRIu64 "/%s", m->in->ckpt_dir, gen, file);
	/* Refused before a byte is written, rather than a disk filled for
	 * every other instance of this host. */
	if (statvfs(m->in->ckpt_dir, &vfs) == 0 &&
	    size > (avail = (uint64_t)vfs.f_bavail * vfs.f_frsize)) {
		set_cause(cause, "%s: %" PRIu64 " bytes do not fit in the %"
		    PRIu64 " bytes free on %s (the receiving host's disk is "
		    "full)", path, size, avail, a->conf->host_name);
		free(path);
		return -1;
	}
	if (fault_hit("mig.target.file") == FAULT_KILL)
		fault_die("mig.target.file");	/* an image on its way */
	ref = xcalloc(1, sizeof *ref);
	ref->agent = a;
	ref->peer = xstrdup(peer);
	ref->id = m->id;
	if ((rc = files_recv(a->loop, st, path, size, mig_target_file_written,
	    ref, cause)) == 0) {
		stream_set_tally(st, m->tally);
		m->files_in++;
		m->files_writing++;
	} else {
		free(ref->peer);
		free(ref);
	}
	free(path);
	return rc;
}

/* "NAME/GEN": a rootfs pass for the migration receiving it. */
int
migration_accept_tree(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct migration	*m;
	char			*end, inst[64];
	const char		*slash;
	uint64_t		 gen;

	if ((slash = strchr(name, '/')) == NULL ||
	    (size_t)(slash - name) >= sizeof inst ||
	    !(slash[1] >= '0' && slash[1] <= '9')) {
		set_cause(cause, "bad rootfs stream name \"%.64s\"", name);
		return -1;
	}
	memcpy(inst, name, (size_t)(slash - name));
	inst[slash - name] = '\0';
	errno = 0;
	gen = strtoull(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || !host_name_valid(inst)) {
		set_cause(cause, "bad rootfs stream name \"%.64s\"", name);
		return -1;
	}
	for (m = a->migrations; m != NULL; m = m->next)
		if (!m->source && m->rootfs_copy && m->state == MIG_RECEIVING &&
		    strcmp(m->peer, peer) == 0 && strcmp(m->name, inst) == 0 &&
		    m->generation == gen)
			break;
	if (m == NULL || m->trees_done + m->trees_in >= 2) {
		set_cause(cause, "no migration of %s generation %" PRIu64
		    " from %s takes a rootfs now", inst, gen, peer);
		return -1;
	}
	if (tree_recv(a->loop, st, m->rootfs, mig_target_tree_done, m,
	    cause) != 0)
		return -1;
	stream_set_tally(st, m->tally);
	m->trees_in++;
	return 0;
}

/* The page channel broke (error) or ended; CRIU's exits say the rest. */
static void
mig_relay_done(void *arg, const char *error)
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
			mig_source_postcopy_finish(m);
		else
			mig_target_postcopy_finish(m);
		return;
	}
	xasprintf(&why, "the page channel to %s broke: %s", m->peer, error);
	mig_failed(m, MIG_FAIL_CHANNEL, why);
	free(why);
}

/* "<migration id in hex>/pages" from the peer of that migration. */
int
migration_accept_relay(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct migration	*m;
	uint64_t		 id;
	char			*end;

	if (strstr(name, "/vm-") != NULL) {
		return migration_accept_engine(a, peer, RELAY_STREAM_KIND, st,
		    name, 0, cause);
	}
	errno = 0;
	id = strtoull(name, &end, 16);
	if (errno != 0 || end == name || strcmp(end, "/pages") != 0 ||
	    !((name[0] >= '0' && name[0] <= '9') ||
	    (name[0] >= 'a' && name[0] <= 'f'))) {
		set_cause(cause, "bad relay name \"%.64s\"", name);
		return -1;
	}
	for (m = a->migrations; m != NULL; m = m->next)
		if (m->id == id && m->postcopy && m->relay != NULL &&
		    strcmp(m->peer, peer) == 0)
			break;
	if (m == NULL) {
		set_cause(cause, "no post-copy migration %" PRIx64 " with %s",
		    id, peer);
		return -1;
	}
	if (relay_attach(m->relay, st, cause) != 0)
		return -1;
	stream_set_tally(st, m->tally);
	return 0;
}

void
migration_peer_lost(struct agent *a, const char *peer, const char *why)
{
	struct migration	*m, *next;
	char			*text;

	if (a->mig != NULL)
		mig_engine_peer_lost(a->mig, peer, why);
	for (m = a->migrations; m != NULL; m = next) {
		next = m->next;
		if (strcmp(m->peer, peer) != 0)
			continue;
		xasprintf(&text, "lost the connection to %s: %s", peer, why);
		mig_failed(m, MIG_FAIL_LINK, text);
		free(text);
	}
}

void
migration_shutdown(struct agent *a)
{
	struct migration	*m, *next;
	char			*why;

	if (a->mig != NULL)
		mig_engine_shutdown(a->mig);
	for (m = a->migrations; m != NULL; m = next) {
		next = m->next;
		xasprintf(&why, "ternd on %s is shutting down",
		    a->conf->host_name);
		/* Post-copy past the switch: leaving would close the page
		 * channel and CRIU would resume our copy while the target
		 * runs it, so both stop (the table's "split"). */
		mig_failed(m, MIG_FAIL_SHUTDOWN, why);
		free(why);
	}
	/* Gone once its last migration is (no new ones from here). */
	mig_engine_free(a->mig);
	a->mig = NULL;
}
