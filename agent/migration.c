#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOG_MODULE "migrate"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/peers.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"


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
};

static const char *const mig_state_names[] = {
	"offered", "dumping", "sending", "restoring", "committed",
	"receiving", "held", "resuming", "aborting",
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
	struct files_send	*fs;		/* source: images going out */
	uv_work_t		 work;		/* target: fsync after resume */
	char			*sync_dir;	/* (the instance may go meanwhile) */
	struct instances	*set;		/* ... the table stays until then */
	char			*sync_error;
	uv_timer_t		 timer;		/* no progress for too long */

	instances_done_cb	 cb;		/* source: the operator's request */
	void			*arg;
};

static void	mig_timeout(uv_timer_t *);
static void	mig_target_sync(uv_work_t *);
static void	mig_target_synced(uv_work_t *, int);

/* Every step restarts the no-progress clock. */
static void
mig_set_state(struct migration *m, enum mig_state st)
{
	log_info("mig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    mig_state_names[m->state], mig_state_names[st]);
	m->state = st;
	uv_timer_start(&m->timer, mig_timeout,
	    (uint64_t)m->agent->conf->migration_timeout_ms, 0);
}

static struct migration *
mig_find(struct agent *a, const char *peer, uint64_t id, int source)
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
	uv_timer_init(a->loop, &m->timer);
	m->timer.data = m;
	/* No step for this long (either side, local work included, like
	 * CRIU's own deadline): the other side is stuck or silent. */
	uv_timer_start(&m->timer, mig_timeout,
	    (uint64_t)a->conf->migration_timeout_ms, 0);
	m->next = a->migrations;
	a->migrations = m;
	return m;
}

static void
mig_freed(uv_handle_t *h)
{
	struct migration	*m = h->data;

	free(m->peer);
	free(m->name);
	free(m->error);
	free(m->sync_error);
	free(m->sync_dir);
	free(m);
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
	for (pp = &m->agent->migrations; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&m->timer, mig_freed);
}

static int
mig_send_step(struct migration *m, Tern__MigrateStep__Step step,
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

/* --- source ---------------------------------------------------------------- */

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
	mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, m->error);
	if (m->state == MIG_OFFERED) {
		instance_set_state(m->in, INST_RUNNING, "migration aborted");
		m->cb(m->arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, m->error);
		instances_op_done(m->in->set);
		mig_free(m);
		return;
	}
	mig_set_state(m, MIG_ABORTING);
	if (m->fs != NULL) {
		files_send_cancel(m->fs);
		m->fs = NULL;
	}
	if (m->hold != NULL) {
		struct ckpt_hold *h = m->hold;

		m->hold = NULL;
		ckpt_hold_release(h, 0);	/* CRIU resumes it */
	}
	/* else the dump's own callback finishes the rollback */
}

static void
mig_source_dumped(void *arg, const struct ckpt_result *res, const char *error)
{
	struct migration	*m = arg;
	struct instance		*in = m->in;
	char			*why, *cause = NULL;

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
			mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
		instance_set_error(in, why);
		instance_set_state(in, in->pid > 0 ? INST_RUNNING : INST_STOPPED,
		    "migration rolled back");
		m->cb(m->arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, why);
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
	else if (mig_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL) != 0)
		mig_source_orphaned(m, "the commit could not be sent");
}

/* The target runs it: answer the operator, forget our copy. */
static void
mig_source_resumed(struct migration *m)
{
	struct instance		*in = m->in;
	struct instances	*set;
	Envelope		 env;
	Tern__MigrateReply	 r = TERN__MIGRATE_REPLY__INIT;

	log_info("mig %" PRIx64 " %s: moved to %s in %" PRIu64 " ms (frozen %"
	    PRIu64 " ms, %" PRIu64 " bytes)", m->id, m->name, m->peer,
	    now_ms() - m->start_ms, m->frozen_ms, m->bytes);
	r.name = m->name;
	r.to = m->peer;
	r.mode = "stopcopy";
	r.total_ms = now_ms() - m->start_ms;
	r.frozen_ms = m->frozen_ms;
	r.bytes = m->bytes;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_REPLY;
	env.migrate_reply = &r;
	m->cb(m->arg, &env, 0, NULL);
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

	xasprintf(&text, "%s stopped here at the commit point and was "
	    "restored on %s, but %s before %s confirmed it runs: check "
	    "ternctl list on %s; if it does not run there, ternctl restore "
	    "%s here (checkpoint %" PRIu64 ")", m->name, m->peer, why, m->peer,
	    m->peer, m->name, m->generation);
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, text);
	instance_set_error(in, text);
	instance_set_state(in, INST_CHECKPOINTED, "migration unconfirmed");
	m->cb(m->arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	instances_op_done(in->set);
	mig_free(m);
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
	mig_set_state(m, MIG_RESTORING);
	mig_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORE, NULL);
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
	if ((mux = peers_mux(m->agent->peers, m->peer)) == NULL) {
		mig_source_fail(m, "%s is not reachable", m->peer);
		return;
	}
	xasprintf(&prefix, "%s/%" PRIu64, m->name, m->generation);
	log_info("mig %" PRIx64 " %s: frozen; copying %" PRIu64 " bytes of "
	    "images to %s", m->id, m->name, bytes, m->peer);
	if ((m->fs = files_send_dir(mux, gen_dir, prefix, mig_source_sent, m,
	    &cause)) == NULL) {
		mig_source_fail(m, "%s", cause);
		free(cause);
	}
	free(prefix);
}

static void
mig_source_step(struct migration *m, const Tern__MigrateStep *s)
{
	struct ckpt_target	 t;
	struct ckpt_hold	*h;

	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__READY:
		if (m->state != MIG_OFFERED)
			break;
		mig_set_state(m, MIG_DUMPING);
		memset(&t, 0, sizeof t);
		t.name = m->in->name;
		t.criu_path = m->agent->conf->criu_path;
		t.dir = m->in->ckpt_dir;
		t.pid = m->in->pid;
		t.rootfs = m->in->spec->root;
		ckpt_dump_held(m->agent->loop, &t, m->generation,
		    mig_source_frozen, mig_source_dumped, m);
		break;
	case TERN__MIGRATE_STEP__STEP__RESTORED:
		if (m->state != MIG_RESTORING || m->hold == NULL)
			break;
		if (!ckpt_hold_alive(m->hold)) {
			/* CRIU died holding it: there is nothing to commit. */
			mig_source_fail(m, "criu died while the container was "
			    "frozen");
			break;
		}
		/* The commit point: the target holds a verified, restored
		 * copy.  From here on it owns the instance. */
		log_info("mig %" PRIx64 " %s: commit point: %s restored it; "
		    "stopping the source copy", m->id, m->name, m->peer);
		mig_set_state(m, MIG_COMMITTED);
		h = m->hold;
		m->hold = NULL;
		ckpt_hold_release(h, 1);	/* CRIU kills the source tree */
		break;
	case TERN__MIGRATE_STEP__STEP__RESUMED:
		if (m->state == MIG_COMMITTED && m->dumped)
			mig_source_resumed(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		if (m->state == MIG_COMMITTED && m->dumped) {
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

void
migration_start(struct agent *a, const Tern__MigrateRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance		*in;
	struct migration	*m;
	Envelope		 env;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	char			*cause = NULL;
	const char		*mode = r->mode != NULL ? r->mode : "stopcopy";

	if (strcmp(mode, "stopcopy") != 0 && strcmp(mode, "auto") != 0) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "mode must be stopcopy or auto (pre-copy needs soft-dirty "
		    "tracking, which this kernel lacks; post-copy is not "
		    "implemented yet)");
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
	if (!in->spec->shared_storage) {
		xasprintf(&cause, "instance %s: its rootfs would have to be "
		    "copied, which tern does not do yet; keep it on storage both "
		    "hosts see and declare \"tern\": {\"shared_storage\": true} "
		    "in its spec", in->name);
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
	m = mig_new(a, r->to, ++a->next_migration | (a->boot_id << 16),
	    1, in->name);
	m->in = in;
	m->cb = cb;
	m->arg = arg;
	m->generation = ckpt_newest(in->ckpt_dir) + 1;
	instance_set_state(in, INST_MIGRATING, NULL);
	in->set->busy++;
	log_info("mig %" PRIx64 " %s: %s -> %s, stop-and-copy%s", m->id,
	    in->name, a->conf->host_name, r->to, strcmp(mode, "auto") == 0 ?
	    " (auto: no soft-dirty tracking here, post-copy not implemented)" :
	    "");
	msg_init(&env, 0);
	o.migration = m->id;
	o.name = in->name;
	o.kind = "container";
	o.spec = in->spec_text;
	o.spec_dir = in->spec_dir;
	o.generation = m->generation;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	if (peers_send(a->peers, r->to, &env, &cause) != 0) {
		mig_source_fail(m, "%s", cause);
		free(cause);
	}
	return;
refuse:
	cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, cause);
	free(cause);
}

/* --- target ---------------------------------------------------------------- */

/* Discard what arrived; the source keeps (or resumes) its container. */
static void
mig_target_discard(struct migration *m, const char *why)
{
	if (m->state == MIG_RESUMING)
		return;	/* past the commit point: it is ours now */
	log_warnx("mig %" PRIx64 " %s: %s; discarding the incoming copy",
	    m->id, m->name, why);
	if (m->hold != NULL) {
		struct ckpt_hold *h = m->hold;

		m->hold = NULL;
		mig_set_state(m, MIG_ABORTING);
		ckpt_hold_release(h, 0);	/* restore fails, tree killed */
		return;				/* mig_target_restored ends it */
	}
	if (m->state == MIG_RESTORING || m->state == MIG_ABORTING) {
		mig_set_state(m, MIG_ABORTING);
		return;	/* the restore's callback ends it */
	}
	if (m->in != NULL) {
		struct instances *set = m->in->set;

		instance_destroy(m->in);
		instances_op_done(set);
	}
	mig_free(m);
}

static void
mig_target_restored(void *arg, const struct ckpt_result *res,
    const char *error)
{
	struct migration	*m = arg;
	struct instance		*in = m->in;
	struct instances	*set;

	if (error != NULL || m->state != MIG_RESUMING) {
		if (m->state != MIG_ABORTING)
			mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT,
			    error != NULL ? error : "restore discarded");
		container_kill(in->name, NULL);
		container_cgroup_remove(in->name, NULL);
		log_warnx("mig %" PRIx64 " %s: incoming copy discarded%s%s",
		    m->id, m->name, error != NULL ? ": " : "",
		    error != NULL ? error : "");
		set = in->set;
		instance_destroy(in);
		instances_op_done(set);
		mig_free(m);
		return;
	}
	instance_watch(in, res->pid, 0);
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
		mig_send_step(m, TERN__MIGRATE_STEP__STEP__RESUMED, NULL);
	instances_op_done(m->set);
	mig_free(m);
}

/* pre-resume: restored and verified, not running.  Tell the source. */
static void
mig_target_held(void *arg, struct ckpt_hold *hold, const char *gen_dir,
    uint64_t bytes)
{
	struct migration	*m = arg;

	if (m->state != MIG_RESTORING) {
		/* Discarded while CRIU restored: let it drop the tree. */
		ckpt_hold_release(hold, 0);
		return;
	}
	m->hold = hold;
	mig_set_state(m, MIG_HELD);
	mig_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORED, NULL);
}

static void
mig_target_offer(struct agent *a, const char *peer, const Tern__MigrateOffer *o)
{
	struct migration	*m;
	struct container_spec	*spec = NULL;
	struct instance		*in;
	char			*cause = NULL, *dir;

	m = mig_new(a, peer, o->migration, 0, o->name);
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
	if (access(spec->root, R_OK) != 0) {
		xasprintf(&cause, "%s cannot see the rootfs %s: %s",
		    a->conf->host_name, spec->root, strerror(errno));
		container_spec_free(spec);
		goto refuse;
	}
	in = instance_new(a->instances, o->name, o->spec, o->spec_dir, spec);
	m->in = in;
	m->generation = o->generation;
	in->set->busy++;
	in->state = INST_INCOMING;
	xasprintf(&dir, "%s/%" PRIu64, in->ckpt_dir, o->generation);
	if (instance_save(in, &cause) != 0 || mkdir_p(dir, 0700, &cause) != 0) {
		free(dir);
		mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause);
		mig_target_discard(m, cause);
		free(cause);
		return;
	}
	free(dir);
	instance_set_state(in, INST_INCOMING, NULL);
	mig_set_state(m, MIG_RECEIVING);
	mig_send_step(m, TERN__MIGRATE_STEP__STEP__READY, NULL);
	return;
refuse:
	log_warnx("mig %" PRIx64 " %s from %s refused: %s", o->migration,
	    o->name, peer, cause);
	mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause);
	free(cause);
	mig_free(m);
}

static void
mig_target_step(struct migration *m, const Tern__MigrateStep *s)
{
	struct ckpt_target	 t;
	struct ckpt_hold	*h;
	char			*cause = NULL;

	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__RESTORE:
		if (m->state != MIG_RECEIVING)
			break;
		if (container_cgroup_create(m->in->name, m->in->spec,
		    &cause) != 0) {
			mig_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause);
			mig_target_discard(m, cause);
			free(cause);
			break;
		}
		mig_set_state(m, MIG_RESTORING);
		memset(&t, 0, sizeof t);
		t.name = m->in->name;
		t.criu_path = m->agent->conf->criu_path;
		t.dir = m->in->ckpt_dir;
		t.rootfs = m->in->spec->root;
		ckpt_restore_held(m->agent->loop, &t, m->generation,
		    mig_target_held, mig_target_restored, m);
		break;
	case TERN__MIGRATE_STEP__STEP__COMMIT:
		if (m->state != MIG_HELD || m->hold == NULL)
			break;
		mig_set_state(m, MIG_RESUMING);
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

static void
mig_timeout(uv_timer_t *t)
{
	struct migration	*m = t->data;
	char			*why;

	xasprintf(&why, "no progress for %d ms in state %s (%s silent or "
	    "stuck?)", m->agent->conf->migration_timeout_ms,
	    mig_state_names[m->state], m->peer);
	if (m->source && m->state == MIG_COMMITTED) {
		if (m->dumped)
			mig_source_orphaned(m, why);
		else
			m->link_lost = 1;
	} else if (m->source)
		mig_source_fail(m, "%s", why);
	else
		mig_target_discard(m, why);
	free(why);
}

/* --- routing --------------------------------------------------------------- */

/* A step for a migration we do not know (we dropped it, or restarted):
 * say so, so the source does not wait for us. */
static void
mig_refuse_unknown(struct agent *a, const char *peer, uint64_t id)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	ms.migration = id;
	ms.step = TERN__MIGRATE_STEP__STEP__ABORT;
	ms.error = "unknown migration (discarded here)";
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	peers_send(a->peers, peer, &env, NULL);
}

int
migration_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	struct migration	*m;

	if (env->body_case == TERN__ENVELOPE__BODY_MIGRATE_OFFER) {
		if (mig_find(a, peer, env->migrate_offer->migration, 0) != NULL)
			return 1;	/* duplicate */
		mig_target_offer(a, peer, env->migrate_offer);
		return 1;
	}
	if (env->body_case != TERN__ENVELOPE__BODY_MIGRATE_STEP)
		return 0;
	/* Ids are the source's: RESTORE/COMMIT/ABORT to a target,
	 * READY/RESTORED/ABORT to a source. */
	if ((m = mig_find(a, peer, env->migrate_step->migration, 1)) != NULL)
		mig_source_step(m, env->migrate_step);
	else if ((m = mig_find(a, peer, env->migrate_step->migration,
	    0)) != NULL)
		mig_target_step(m, env->migrate_step);
	else if (env->migrate_step->step == TERN__MIGRATE_STEP__STEP__RESTORE ||
	    env->migrate_step->step == TERN__MIGRATE_STEP__STEP__COMMIT)
		mig_refuse_unknown(a, peer, env->migrate_step->migration);
	return 1;
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

int
migration_accept_file(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct migration	*m;
	char			 inst[64], file[256], *path;
	uint64_t		 gen;
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
	xasprintf(&path, "%s/%" PRIu64 "/%s", m->in->ckpt_dir, gen, file);
	rc = files_recv(st, path, cause);
	free(path);
	return rc;
}

void
migration_peer_lost(struct agent *a, const char *peer, const char *why)
{
	struct migration	*m, *next;
	char			*text;

	for (m = a->migrations; m != NULL; m = next) {
		next = m->next;
		if (strcmp(m->peer, peer) != 0)
			continue;
		xasprintf(&text, "lost the connection to %s: %s", peer, why);
		if (m->source && m->state == MIG_COMMITTED && m->dumped)
			mig_source_orphaned(m, text);
		else if (m->source && m->state == MIG_COMMITTED) {
			/* CRIU is still stopping our copy; the target, having
			 * lost us, discards its own: never send COMMIT now. */
			log_warnx("mig %" PRIx64 " %s: %s at the commit point",
			    m->id, m->name, text);
			m->link_lost = 1;
		}
		else if (m->source)
			mig_source_fail(m, "%s", text);
		else if (m->state != MIG_RESUMING)
			mig_target_discard(m, text);
		free(text);
	}
}

void
migration_shutdown(struct agent *a)
{
	struct migration	*m, *next;

	for (m = a->migrations; m != NULL; m = next) {
		next = m->next;
		if (m->source && m->state == MIG_COMMITTED)
			continue;	/* its CRIU callback finishes it */
		if (m->source)
			mig_source_fail(m, "ternd on %s is shutting down",
			    a->conf->host_name);
		else
			mig_target_discard(m, "ternd is shutting down");
	}
}
