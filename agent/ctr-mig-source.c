/* Container migration, the source's side once the offer went out: the
 * rootfs, the frozen dump, the commit point, post-copy's end. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-instance.h"
#include "agent/ctr-mig-internal.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ratelimit.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"

/* --- source ---------------------------------------------------------------- */

static void	ctr_source_postcopy_done(struct migration *, const char *);

/* Before the commit point: roll back.  The source container resumes (CRIU
 * does that when post-dump is refused), the target discards its copy. */
void
ctr_source_fail(struct migration *m, const char *fmt, ...)
{
	va_list	ap;

	if (m->state == CTR_ABORTING || m->state == CTR_COMMITTED)
		return;
	va_start(ap, fmt);
	free(m->error);
	xvasprintf(&m->error, fmt, ap);
	va_end(ap);
	log_warnx("mig %" PRIx64 " %s: %s; rolling back, %s stays on %s",
	    m->id, m->name, m->error, m->name, m->agent->ternd->conf->host_name);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, m->error);
	if (m->state == CTR_OFFERED) {
		instance_set_state(m->in, INST_RUNNING, "migration aborted");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, m->error);
		instances_op_done(m->in->set);
		ctr_free(m);
		return;
	}
	if (m->state == CTR_SYNCING) {
		/* Not frozen yet: nothing for CRIU to undo. */
		instance_set_state(m->in, INST_RUNNING, "migration aborted");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, m->error);
		instances_op_done(m->in->set);
		ctr_free(m);
		return;
	}
	ctr_set_state(m, CTR_ABORTING);
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
	 * at work is asked to stop now (killed if stuck: seizing a task,
	 * say). */
	ckpt_cancel(m->in->name, m->error);
}

static void
ctr_source_dumped(void *arg, const struct ckpt_result *res, const char *error)
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
	if (m->state == CTR_COMMITTED && m->postcopy) {
		ctr_source_postcopy_done(m, error);
		return;
	}
	if (m->state != CTR_COMMITTED) {
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
		if (m->state != CTR_ABORTING)
			ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
		instance_set_error(in, why);
		instance_set_state(in, in->pid > 0 ? INST_RUNNING : INST_STOPPED,
		    "migration rolled back");
		ctr_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, why);
		free(why);
		instances_op_done(in->set);
		ctr_free(m);
		return;
	}
	/* Committed: CRIU stopped our copy; the target may resume.  Ours
	 * stays a verified checkpoint until the target says it runs. */
	if (error != NULL)
		log_warnx("mig %" PRIx64 " %s: after the commit point: %s",
		    m->id, m->name, error);
	m->frozen_ms = res->frozen_ms;
	m->dumped = 1;
	mig_set_phase(m->mig, ctr_phase(m));	/* committing -> committed */
	container_kill(in->name, NULL);
	ctr_forget_init(in);
	container_cgroup_remove(in->name, NULL);
	in->generation = m->generation;
	if (m->link_lost)
		ctr_source_orphaned(m, "the link dropped at the commit point");
	else if (ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL) != 0)
		ctr_source_orphaned(m, "the commit could not be sent");
	else {
		m->commit_sent = 1;
		if (fault_hit("mig.source.commit-sent") == FAULT_KILL)
			fault_die("mig.source.commit-sent");
	}
}

/* The target runs it: answer the operator, forget our copy. */
static void
ctr_source_resumed(struct migration *m)
{
	struct instance		*in = m->in;
	struct instances	*set;
	Envelope		 env;
	Tern__MigrateReply	 r = TERN__MIGRATE_REPLY__INIT;
	char			 rate[32] = "";

	if (m->limit != NULL)
		ctr_format_rate(rate, sizeof rate, ratelimit_rate(m->limit));
	log_info("mig %" PRIx64 " %s: moved to %s in %" PRIu64 " ms (%s, frozen "
	    "%" PRIu64 " ms, %" PRIu64 " bytes%s%s)", m->id, m->name, m->peer,
	    now_ms() - m->start_ms, m->postcopy ? "post-copy" : "stop-and-copy",
	    m->frozen_ms, m->bytes, m->limit != NULL ? ", limited to " : "",
	    rate);
	r.name = m->name;
	r.to = m->peer;
	r.mode = m->postcopy ? TERN__MIGRATION_MODE__MODE_POSTCOPY :
	    TERN__MIGRATION_MODE__MODE_STOPCOPY;
	r.total_ms = now_ms() - m->start_ms;
	r.frozen_ms = m->frozen_ms;
	r.bytes = m->bytes;
	r.note = m->note;
	r.bytes += m->tree_bytes;
	if (m->pipeline)
		r.bytes += m->page_len;
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
		work_discard(m->agent->ternd->loop, in->spec->root, who,
		    "the rootfs copy", NULL, NULL);
		free(who);
	}
	/* Destroy first: releasing the table may close it, and everything
	 * in it, at once (a shutdown waiting for us). */
	set = in->set;
	instance_destroy(in);
	instances_op_done(set);
	ctr_free(m);
}

/* Past the commit point the link dropped: we cannot know whether the
 * target resumed it.  Keep our verified checkpoint (not running) and
 * tell the operator exactly that. */
void
ctr_source_orphaned(struct migration *m, const char *why)
{
	struct instance	*in = m->in;
	char		*text;

	if (!m->commit_sent || m->target_refused) {
		/* COMMIT never left, or the target said it failed to resume:
		 * it cannot run there. */
		free(in->moved_to);
		in->moved_to = NULL;
	}
	if (in->ha != 0) {
		/* The store's word decides, through the grants: the move
		 * recorded, the target takes it over; not, this host
		 * restores this checkpoint (ha-instances.c). */
		in->ha_unconfirmed = 1;
		xasprintf(&text, "%s stopped here at the commit point, but %s "
		    "%s (%s): the coordinator's store decides where it runs: "
		    "if it recorded the move, %s takes it over at its next "
		    "grant; if not, this host restores checkpoint %" PRIu64
		    " at its next grant (ternctl ha status %s)", m->name,
		    m->peer, m->target_refused ? "could not resume it" :
		    "did not confirm it runs", why, m->peer, m->generation,
		    m->name);
	} else if (m->target_refused)
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
	ctr_free(m);
}

/* The commit point is recorded (moved_to, on disk) before it is acted
 * on: a ternd restarted past it must not run its copy again, nor restore
 * a second one from the checkpoint it keeps.  then(m) runs once the
 * record is durable, if nothing rolled the migration back meanwhile;
 * else the mark is taken back.  The write runs on the pool. */
static void	ctr_source_commit_recorded(void *, const char *);

static void
ctr_source_record_commit(struct migration *m,
    void (*then)(struct migration *))
{
	m->in->moved_to = xstrdup(m->peer);
	m->recording_in = m->in;
	m->record_then = then;
	mig_hold(m->mig);
	instance_persist_then(m->in, ctr_source_commit_recorded, m);
}

static void
ctr_source_commit_recorded(void *arg, const char *error)
{
	struct migration	*m = arg;
	struct mig		*mig = m->mig;
	struct instance		*in = m->recording_in;

	/* Logged; the commit goes on as it did before.  Never "gone from
	 * this host" (instance_free): a migrating instance is neither
	 * destroyed nor discarded, and holds the table open. */
	(void)error;
	m->recording_in = NULL;
	if (mig->finished || (m->state != CTR_RESTORING &&
	    m->state != CTR_OWNING) ||
	    (m->postcopy ? m->dump == NULL : m->hold == NULL)) {
		/* Rolled back while the record was written: not committed. */
		free(in->moved_to);
		in->moved_to = NULL;
		instance_persist(in);
	} else
		m->record_then(m);
	mig_drop(mig);
}

/* A protected instance: the commit point is the coordinator's store
 * transaction (owner this host at epoch E -> the target at E + 1).  Only
 * once the store recorded it does ours record moved_to, and COMMIT carry
 * the new epoch; the target resumes only once its grant lists that epoch.
 * A refusal rolls back (nothing changed).  A lost answer is asked for
 * (migration_owner_move); if it cannot be learned before our lease ends,
 * our copy never runs again (fenced, frozen, then stopped as at any
 * commit) and COMMIT goes all the same: the target's grant, which lists
 * it only if the store did commit, decides whether its copy runs. */
static void
ctr_source_owned(void *arg, enum owner_result res, uint64_t epoch,
    const char *why)
{
	struct migration	*m = arg;
	struct mig		*mig = m->mig;

	if (mig->finished || m->state != CTR_OWNING) {
		mig_drop(mig);
		return;
	}
	mig_set_timeout(mig, (uint32_t)m->agent->ternd->conf->migration_timeout_ms);
	switch (res) {
	case OWNER_MOVED:
		log_info("mig %" PRIx64 " %s: the coordinator recorded %s as "
		    "its owner (epoch %" PRIu64 ")", m->id, m->name, m->peer,
		    epoch);
		m->owner_epoch = epoch;
		ctr_source_record_commit(m, m->own_then);
		break;
	case OWNER_REFUSED:
		ctr_source_fail(m, "%s", why);
		break;
	case OWNER_UNKNOWN:
		log_warnx("mig %" PRIx64 " %s: %s; it never runs here again; "
		    "%s runs its copy only if the coordinator's grant lists it "
		    "(the move was recorded)", m->id, m->name, why, m->peer);
		m->owner_epoch = m->in->epoch + 1;
		ctr_source_record_commit(m, m->own_then);
		break;
	}
	mig_drop(mig);
}

static void
ctr_source_commit_point(struct migration *m,
    void (*then)(struct migration *))
{
	char	*cause = NULL;

	if (m->in->ha == 0) {
		ctr_source_record_commit(m, then);
		return;
	}
	m->own_then = then;
	ctr_set_state(m, CTR_OWNING);
	/* The store's answer, or what it says when asked, bounds it. */
	mig_set_timeout(m->mig, 0);
	mig_hold(m->mig);
	if (migration_owner_move(m->agent, m->in, m->peer, m->id, 0,
	    ctr_source_owned, m, &cause) != 0) {
		mig_drop(m->mig);
		ctr_source_fail(m, "%s", cause);
		free(cause);
	}
}

/* The commit could not be made after all: take the record back. */
static void
ctr_source_uncommit(struct migration *m)
{
	free(m->in->moved_to);
	m->in->moved_to = NULL;
	instance_persist(m->in);
}

/* RESTORED in post-copy: the target holds the restored tree, its memory
 * still here.  COMMIT makes it run there; from then on ours never runs
 * again. */
static void	ctr_source_postcopy_recorded(struct migration *);

static void
ctr_source_postcopy_commit(struct migration *m)
{
	if (m->state != CTR_RESTORING || m->recording_in != NULL)
		return;
	if (m->dump == NULL) {
		ctr_source_fail(m, "criu stopped before serving the pages");
		return;
	}
	ctr_source_commit_point(m, ctr_source_postcopy_recorded);
}

static void
ctr_source_postcopy_recorded(struct migration *m)
{
	if (ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL) != 0) {
		if (m->owner_epoch != 0) {
			/* The store made it the target's: ours must not
			 * resume. */
			ctr_set_state(m, CTR_COMMITTED);
			ctr_source_postcopy_broke(m, "the commit could not be "
			    "sent after the coordinator recorded the move");
			return;
		}
		ctr_source_uncommit(m);
		ctr_source_fail(m, "the commit could not be sent to %s",
		    m->peer);
		return;
	}
	log_info("mig %" PRIx64 " %s: commit point: %s restored it; it runs "
	    "there now, its memory served from here", m->id, m->name, m->peer);
	ctr_set_state(m, CTR_COMMITTED);
	/* Until it runs there (RESUMED) the link's heartbeats and the
	 * relay watch it; then pages that stop crossing do too. */
	mig_set_timeout(m->mig, 0);
	if (m->relay != NULL) {
		if (relay_gate_held(m->relay) > 0)
			log_info("mig %" PRIx64 " %s: %s fetched every page "
			    "before the commit point; its end of the transfer "
			    "goes to criu now", m->id, m->name, m->peer);
		relay_gate_open(m->relay);	/* may end the relay now */
	}
}

/* RESTORED in stop-and-copy, the record on disk: CRIU stops our copy,
 * then COMMIT goes (ctr_source_dumped). */
static void
ctr_source_stopcopy_recorded(struct migration *m)
{
	struct ckpt_hold	*h;
	const char		*lost;

	if ((lost = ckpt_hold_lost(m->hold)) != NULL && m->owner_epoch == 0) {
		/* CRIU died holding it: there is nothing to commit. */
		ctr_source_uncommit(m);
		ctr_source_fail(m, "criu died while the container was "
		    "frozen: %s", lost);
		return;
	}
	if (lost != NULL) {
		/* The store made it the target's, which holds the images
		 * restored: ours is killed (ctr_source_dumped), never
		 * resumed. */
		log_warnx("mig %" PRIx64 " %s: criu died while the container "
		    "was frozen (%s), after the coordinator recorded %s as "
		    "its owner: committing", m->id, m->name, lost, m->peer);
		container_kill(m->in->name, NULL);
	}
	log_info("mig %" PRIx64 " %s: commit point: %s restored it; "
	    "stopping the source copy", m->id, m->name, m->peer);
	ctr_set_state(m, CTR_COMMITTED);
	h = m->hold;
	m->hold = NULL;
	ckpt_hold_release(h, 1);	/* CRIU kills the source tree */
}

/* Past the commit point the page transfer broke: the memory is split
 * between the hosts.  Kill our CRIU with the tree still frozen, so it is
 * never resumed here while the target may run it. */
void
ctr_source_postcopy_broke(struct migration *m, const char *why)
{
	if (m->broken != NULL)
		return;
	m->broken = xstrdup(why);
	log_warnx("mig %" PRIx64 " %s: post-copy broke after the switch: %s; "
	    "stopping the source copy for good", m->id, m->name, why);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	if (m->dump != NULL)
		ckpt_hold_kill(m->dump);	/* ctr_source_dumped follows */
	else if (m->dumped)
		ctr_source_postcopy_done(m, why);
}

/* The lazy dump ended after the commit point. */
/* Success needs all four: it runs there (RESUMED), every page arrived
 * there (COMPLETE), CRIU here is done (dumped), and the page channel
 * drained (its last bytes are CRIU's goodbye). */
void
ctr_source_postcopy_finish(struct migration *m)
{
	if (m->resumed && m->complete && m->dumped && m->relay_ended &&
	    m->broken == NULL)
		ctr_source_resumed(m);
}

static void
ctr_source_postcopy_done(struct migration *m, const char *error)
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
	ctr_forget_init(in);
	if (why == NULL) {
		log_info("mig %" PRIx64 " %s: criu served its last page to %s",
		    m->id, m->name, m->peer);
		ctr_source_postcopy_finish(m);
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
	ctr_free(m);
}

static void	ctr_source_sent_all(struct migration *);
static void	ctr_source_dump(struct migration *);

/* A rootfs pass is out: the full one (then wait for ROOTFS_SYNCED) or
 * the delta while frozen. */
static void
ctr_source_tree_sent(void *arg, const struct tree_stats *st,
    const char *error)
{
	struct migration	*m = arg;

	m->tree_tx = NULL;
	tree_index_free(m->tree_prev);
	m->tree_prev = NULL;
	if (error != NULL) {
		ctr_source_fail(m, "copying the rootfs to %s: %s", m->peer,
		    error);
		return;
	}
	m->tree_bytes += st->bytes;
	log_info("mig %" PRIx64 " %s: rootfs %s sent: %" PRIu64 " entries, %"
	    PRIu64 " files, %" PRIu64 " bytes, %" PRIu64 " deleted", m->id,
	    m->name, m->state == CTR_SYNCING ? "full pass" : "delta",
	    st->entries, st->files, st->bytes, st->deleted);
	if (m->state == CTR_SYNCING && m->tree_synced)
		ctr_source_dump(m);
	else if (m->state == CTR_SENDING)
		ctr_source_sent_all(m);
}

static int
ctr_source_tree_start(struct migration *m, char **cause)
{
	struct stream_mux	*mux;
	struct tree_index	*since = m->tree_idx;
	char			*name;

	if ((mux = mesh_mux(m->agent->ternd->mesh, m->peer)) == NULL) {
		set_cause(cause, "%s is not reachable", m->peer);
		return -1;
	}
	xasprintf(&name, "%s/%" PRIu64, m->name, m->generation);
	/* The delta's base stays valid until the pass is over. */
	m->tree_idx = NULL;
	m->tree_prev = since;
	m->tree_tx = tree_send(m->agent->ternd->loop, mux, m->in->spec->root, name,
	    m->limit, since, &m->tree_idx, ctr_source_tree_sent, m, cause);
	free(name);
	return m->tree_tx != NULL ? 0 : -1;
}

static void
ctr_source_sent(void *arg, uint64_t bytes, const char *error)
{
	struct migration	*m = arg;

	m->fs = NULL;
	m->bytes = bytes;
	if (m->state != CTR_SENDING)
		return;
	if (error != NULL) {
		ctr_source_fail(m, "copying the images to %s: %s", m->peer,
		    error);
		return;
	}
	ctr_source_sent_all(m);
}

/* Images and the rootfs delta are out (the target restores once it has
 * applied both). */
static void
ctr_source_sent_all(struct migration *m)
{
	if (m->fs != NULL || m->tree_tx != NULL)
		return;
	if (m->postcopy && m->hold != NULL) {
		/* The target's lazy restore needs pages before it reaches
		 * pre-resume: CRIU serves from now.  The tree stays frozen;
		 * a rollback from here must make CRIU fail the transfer
		 * (ctr_source_fail), or it would take the end for success. */
		m->dump = m->hold;
		m->hold = NULL;
		ckpt_hold_release(m->dump, 1);
	}
	if (m->pipeline) {
		log_info("mig %" PRIx64 " %s: timing: other images sent in %"
		    PRIu64 " ms (%" PRIu64 " bytes)", m->id, m->name,
		    now_ms() - m->phase_ms, m->bytes);
		m->phase_ms = now_ms();
	}
	ctr_set_state(m, CTR_RESTORING);
	ctr_pages_send_restore(m);
}

/* post-dump: frozen, images published.  Copy them to the target. */
static void
ctr_source_frozen(void *arg, struct ckpt_hold *hold, const char *gen_dir,
    uint64_t bytes)
{
	struct migration	*m = arg;
	struct stream_mux	*mux;
	char			*prefix, *cause = NULL;

	if (m->state != CTR_DUMPING) {
		/* Rolled back while CRIU dumped: let it resume the tree. */
		ckpt_hold_release(hold, 0);
		return;
	}
	m->hold = hold;
	if (m->pipeline) {
		/* Where a stop-and-copy's frozen time goes, phase by phase. */
		m->phase_ms = now_ms();
		log_info("mig %" PRIx64 " %s: timing: dump %" PRIu64 " ms, its "
		    "%" PRIu64 " bytes of pages relayed to %s's page server "
		    "meanwhile (%.0f MB/s)", m->id, m->name, m->phase_ms -
		    m->dump_start_ms, m->page_len, m->peer, (double)m->page_len /
		    1e3 / (double)(m->phase_ms - m->dump_start_ms + 1));
		ctr_pages_tee_seal(m);	/* while the target restores */
		if (m->state != CTR_DUMPING)
			return;		/* rolled back */
	}
	ctr_set_state(m, CTR_SENDING);
	switch (fault_hit("mig.source.frozen")) {
	case FAULT_KILL:
		fault_die("mig.source.frozen");
		break;
	case FAULT_STALL:
		return;		/* frozen and held, nothing sent */
	default:
		break;
	}
	if ((mux = mesh_mux(m->agent->ternd->mesh, m->peer)) == NULL) {
		ctr_source_fail(m, "%s is not reachable", m->peer);
		return;
	}
	xasprintf(&prefix, "%s/%" PRIu64, m->name, m->generation);
	log_info("mig %" PRIx64 " %s: frozen; copying %" PRIu64 " bytes of "
	    "images to %s", m->id, m->name, bytes, m->peer);
	if ((m->fs = files_send_dir(m->agent->ternd->loop, mux, gen_dir, prefix, m->limit,
	    ctr_source_sent, m, &cause)) == NULL ||
	    (m->rootfs_copy && ctr_source_tree_start(m, &cause) != 0)) {
		ctr_source_fail(m, "%s", cause);
		free(cause);
	}
	free(prefix);
}

/* Freeze and dump; post-dump (ctr_source_frozen) holds it. */
static void
ctr_source_dump(struct migration *m)
{
	struct ckpt_target	 t;

	ctr_set_state(m, CTR_DUMPING);
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->ternd->conf->criu_path;
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
		pid = ckpt_dump_lazy_held(m->agent->ternd->loop, &t, m->generation,
		    m->ps_fd, keep, ctr_source_frozen, ctr_source_dumped, m);
		close(m->ps_fd);	/* CRIU has them now */
		m->ps_fd = -1;
		if (keep != -1)
			close(keep);
		if (pid > 0 && m->state == CTR_DUMPING) {
			m->in->criu_pid = pid;
			instance_persist(m->in);
		}
	} else if (m->pipeline) {
		/* The pages go to the target's page server as CRIU dumps
		 * them; a ternd that dies here closes the channel, and CRIU
		 * fails the dump and resumes the tree. */
		ckpt_dump_ps_held(m->agent->ternd->loop, &t,
		    m->generation, m->ps_fd, ctr_source_frozen,
		    ctr_source_dumped, m);
		close(m->ps_fd);	/* CRIU has it now */
		m->ps_fd = -1;
		if (m->state == CTR_DUMPING)
			ctr_pages_tee_open(m);
	} else
		ckpt_dump_held(m->agent->ternd->loop, &t, m->generation,
		    ctr_source_frozen, ctr_source_dumped, m);
}

/* RESTORED: the target holds a restored copy; the commit point, once
 * what it waits for is there. */
static void
ctr_source_restored(struct migration *m)
{
	const char	*lost;

	if (fault_hit("mig.source.restored") == FAULT_STALL)
		return;		/* as a source that hangs here */
	if (m->pipeline && m->state == CTR_RESTORING &&
	    !m->restored_early)
		log_info("mig %" PRIx64 " %s: timing: %s checked the "
		    "pages and restored in %" PRIu64 " ms", m->id,
		    m->name, m->peer, now_ms() - m->phase_ms);
	if (m->pipeline && m->state == CTR_RESTORING &&
	    m->tee_state != 1) {
		/* Our copy of the pages is not durable yet: the
		 * commit waits for it (ctr_pages_sealed). */
		m->restored_early = 1;
		return;
	}
	if (m->postcopy) {
		ctr_source_postcopy_commit(m);
		return;
	}
	if (m->state != CTR_RESTORING || m->hold == NULL ||
	    m->recording_in != NULL)
		return;
	if ((lost = ckpt_hold_lost(m->hold)) != NULL) {
		/* CRIU died holding it: there is nothing to commit. */
		ctr_source_fail(m, "criu died while the container was "
		    "frozen: %s", lost);
		return;
	}
	/* The commit point: the target holds a verified, restored
	 * copy.  From here on it owns the instance. */
	ctr_source_commit_point(m, ctr_source_stopcopy_recorded);
}

/* ABORT from the target: why is its reason, or NULL. */
static void
ctr_source_aborted(struct migration *m, const char *error)
{
	if (m->postcopy && m->state == CTR_COMMITTED) {
		ctr_source_postcopy_broke(m, error != NULL ? error :
		    "the target aborted");
		return;
	}
	if (m->state == CTR_COMMITTED && m->dumped) {
		/* Its own word: it does not run there. */
		m->target_refused = 1;
		ctr_source_orphaned(m, error != NULL ? error :
		    "the target aborted");
		return;
	}
	if (m->state == CTR_COMMITTED) {
		m->link_lost = 1;	/* orphaned once CRIU is done */
		return;
	}
	if (m->state == CTR_OWNING) {
		/* No COMMIT now; the store's answer decides ours. */
		log_warnx("mig %" PRIx64 " %s: %s aborted while the "
		    "coordinator was asked: %s", m->id, m->name, m->peer,
		    error != NULL ? error : "no reason given");
		m->link_lost = 1;
		return;
	}
	ctr_source_fail(m, "%s refused: %s", m->peer, error != NULL ?
	    error : "no reason given");
}

void
ctr_source_step(struct migration *m, const Tern__MigrateStep *s)
{
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__READY:
		if (m->state != CTR_OFFERED)
			break;
		if (m->rootfs_copy) {
			char *cause = NULL;

			/* The bulk of the rootfs crosses while it runs. */
			ctr_set_state(m, CTR_SYNCING);
			if (ctr_source_tree_start(m, &cause) != 0) {
				ctr_source_fail(m, "%s", cause);
				free(cause);
			}
			break;
		}
		ctr_source_dump(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ROOTFS_SYNCED:
		if (m->state != CTR_SYNCING || m->tree_synced)
			break;
		m->tree_synced = 1;
		if (m->tree_tx == NULL)
			ctr_source_dump(m);
		break;
	case TERN__MIGRATE_STEP__STEP__RESTORED:
		ctr_source_restored(m);
		break;
	case TERN__MIGRATE_STEP__STEP__RESUMED:
		if (m->postcopy && m->state == CTR_COMMITTED && !m->resumed) {
			m->resumed = 1;
			m->resumed_ms = now_ms();
			m->frozen_ms = m->resumed_ms - m->dump_start_ms;
			log_info("mig %" PRIx64 " %s: runs on %s after %" PRIu64
			    " ms frozen; its memory follows", m->id, m->name,
			    m->peer, m->frozen_ms);
			/* As the target's: pages that stop crossing while the
			 * link lives mean a stuck transfer. */
			mig_set_timeout(m->mig, (uint32_t)
			    m->agent->ternd->conf->migration_timeout_ms);
			ctr_source_postcopy_finish(m);
			break;
		}
		if (m->state == CTR_COMMITTED && m->dumped)
			ctr_source_resumed(m);
		break;
	case TERN__MIGRATE_STEP__STEP__COMPLETE:
		/* CRIU's success alone proves nothing: it takes a channel
		 * that closed early for a finished transfer. */
		if (!m->postcopy || m->state != CTR_COMMITTED || m->complete)
			break;
		m->complete = 1;
		log_info("mig %" PRIx64 " %s: %s has every page", m->id, m->name,
		    m->peer);
		mig_touch(m->mig);	/* the tail gets a whole bound */
		ctr_source_postcopy_finish(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		ctr_source_aborted(m, s->error);
		break;
	default:
		break;
	}
}
