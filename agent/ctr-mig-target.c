/* Container migration, the target's side: the offer checked, the
 * restore held at pre-resume, the commit, post-copy's pages. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-instance.h"
#include "agent/ctr-mig-internal.h"
#include "agent/ha-instances.h"
#include "agent/ha.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/criu.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "checkpoint/cpuinfo.h"
#include "checkpoint/kept-logs.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"
#include "migrate/tree.h"

static void	ctr_target_sync(uv_work_t *);
static void	ctr_target_synced(uv_work_t *, int);

/* --- target ---------------------------------------------------------------- */

/* Discard what arrived; the source keeps (or resumes) its container. */
static void	ctr_target_postcopy_lost(struct migration *, const char *);
static void	ctr_target_held(void *, struct ckpt_hold *, const char *,
		    uint64_t);
static void	ctr_target_pages_arrived(struct migration *);

/* The restored tree held at pre-resume must never run: CRIU takes a
 * refused pre-resume as an error it only logs, and resumes the tree
 * anyway.  So kill it first; then CRIU finds nothing left to resume. */
static void
ctr_target_drop_held(struct migration *m, const char *why)
{
	struct ckpt_hold	*h = m->hold;
	char			*cause = NULL;

	m->hold = NULL;
	free(m->drop_why);
	m->drop_why = xstrdup(why);
	if (ctr_kill_unwatched(m->in, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, cause);
		free(cause);
	}
	/* CRIU still traces the tree at pre-resume: the killed init waits
	 * for a traced child that CRIU never reaps while it waits for the
	 * init (seen with CRIU 4.1.1, both modes, when the refusal comes
	 * after the hold was answered).  CRIU goes too; its answer
	 * follows. */
	ckpt_hold_kill(h);
	ckpt_hold_release(h, 0);	/* ctr_target_restored follows */
}

void
ctr_target_discard(struct migration *m, const char *why)
{
	if (m->state == CTR_PAGING) {
		ctr_target_postcopy_lost(m, why);
		return;
	}
	if (m->state == CTR_RESUMING)
		return;	/* past the commit point: it is ours now */
	log_warnx("mig %" PRIx64 " %s: %s; discarding the incoming copy",
	    m->id, m->name, why);
	if (m->hold != NULL) {
		ctr_set_state(m, CTR_ABORTING);
		ctr_target_drop_held(m, why);
		return;			/* ctr_target_restored ends it */
	}
	if (m->state == CTR_RESTORING || m->state == CTR_ABORTING) {
		ctr_set_state(m, CTR_ABORTING);
		ckpt_cancel(m->name, why);	/* a restore still at work */
		return;	/* the restore's callback ends it */
	}
	if (m->in != NULL) {
		struct instances *set = m->in->set;

		instance_destroy(m->in);
		instances_op_done(set);
	}
	ctr_free(m);
}

/* Its lazy-pages daemon on this side, if any: post-copy's (pages from
 * the source) or stop-and-copy's loader (pages from the images here). */
static struct ckpt_lazy *
ctr_target_daemon(const struct migration *m)
{
	return m->postcopy ? m->lazy : m->loader;
}

/* What that daemon did, for the messages. */
static const char *
ctr_target_daemon_role(const struct migration *m)
{
	return m->postcopy ? "its lazy-pages daemon there" :
	    "copying its memory in from the checkpoint here";
}

/* Its lazy-pages daemon died past the commit point, before the resume
 * was answered: the tree must not run on the memory it lacks. */
static void
ctr_target_daemon_lost(struct migration *m, const char *error)
{
	char	*why, *cause = NULL;

	if (m->hold != NULL) {
		/* Still held (the coordinator's grant awaited): it never
		 * runs here; ctr_target_restored tells the source. */
		xasprintf(&why, "%s failed: %s", ctr_target_daemon_role(m),
		    error);
		ctr_target_drop_held(m, why);
		free(why);
		return;
	}
	/* Its resume is under way: kill it before it runs on missing
	 * memory (the daemon's userfaultfds, held, stop it till then);
	 * ctr_target_restored says why. */
	if (ctr_kill_unwatched(m->in, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, cause);
		free(cause);
	}
	free(m->loader_error);
	m->loader_error = xstrdup(error);
}

/* Discard, and tell the source first.  Not in post-copy past the switch
 * (ctr_target_postcopy_lost tells it its own way), nor once resuming
 * (it is ours then). */
void
ctr_target_abort(struct migration *m, const char *why)
{
	if (m->state != CTR_PAGING && m->state != CTR_RESUMING)
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	ctr_target_discard(m, why);
}

/* A failed incoming copy is about to be deleted: keep its CRIU logs
 * where the error text will say they are (the caller frees the text). */
static char *
ctr_target_keep_logs(struct migration *m, const char *error)
{
	char	*gen_dir, *root, *label, *text;

	if (m->in == NULL)
		return xstrdup(error);
	xasprintf(&gen_dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	xasprintf(&root, "%s/failed-migrations", m->agent->ternd->conf->state_dir);
	xasprintf(&label, "%s-%" PRIx64, m->name, m->id);
	text = kept_logs_save(gen_dir, root, label, error);
	log_info("mig %" PRIx64 " %s: CRIU's logs of the failed attempt kept "
	    "under %s", m->id, m->name, root);
	free(gen_dir);
	free(root);
	free(label);
	return text;
}

static void	ctr_target_answered(struct migration *, pid_t, const char *);
static void	ctr_target_answer_late(uv_timer_t *);

/* The restore's answer, from CRIU (pid: its tree's init, 0 for none). */
static void
ctr_target_restored(void *arg, const struct ckpt_result *res,
    const char *error)
{
	struct migration	*m = arg;
	unsigned		 ms = 0;

	/* Fault point: the answer is handled MS later, after what arrives
	 * meanwhile (a daemon's death, its tree killed and reaped). */
	if (fault_check("ctr.target.answer", &ms) == FAULT_DELAY) {
		m->late_pid = res != NULL ? res->pid : 0;
		m->late_error = error != NULL ? xstrdup(error) : NULL;
		uv_timer_stop(&m->tick);	/* a target's after the grant */
		m->tick.data = m;
		uv_timer_start(&m->tick, ctr_target_answer_late, ms, 0);
		return;
	}
	ctr_target_answered(m, res != NULL ? res->pid : 0, error);
}

static void
ctr_target_answer_late(uv_timer_t *t)
{
	struct migration	*m = t->data;
	char			*error = m->late_error;

	m->late_error = NULL;
	ctr_target_answered(m, m->late_pid, error);	/* may free m */
	free(error);
}

static void
ctr_target_answered(struct migration *m, pid_t pid, const char *error)
{
	struct instance		*in = m->in;
	struct instances	*set;
	char			*both = NULL;

	/* Its init is our child (CRIU restores it as our sibling): ours to
	 * reap, whatever becomes of this copy. */
	if (pid > 0)
		instance_watch(in, pid, 0);
	/* We killed the held tree: our reason first, CRIU's word after. */
	if (error != NULL && m->drop_why != NULL) {
		xasprintf(&both, "%s; criu then: %s", m->drop_why, error);
		error = both;
	} else if (error != NULL && m->loader_error != NULL) {
		xasprintf(&both, "%s failed: %s; criu then: %s",
		    ctr_target_daemon_role(m), m->loader_error, error);
		error = both;
	}
	if (error != NULL || m->state != CTR_RESUMING) {
		/* Unless we killed it ourselves, say where CRIU's logs are. */
		char *text = error != NULL && m->state != CTR_ABORTING ?
		    ctr_target_keep_logs(m, error) : NULL;

		/* Even past COMMIT: it does not run here, so the source's
		 * checkpoint and rootfs are the instance, not our copy.  All
		 * of it goes before the source hears: an operator who tries
		 * again at once finds this host clean. */
		m->rootfs_keep = 0;
		ctr_kill_unwatched(in, NULL);
		container_cgroup_remove(in->name, NULL);
		ctr_drop_rootfs(m);
		free(m->rootfs);
		m->rootfs = NULL;
		log_warnx("mig %" PRIx64 " %s: incoming copy discarded%s%s",
		    m->id, m->name, error != NULL ? ": " : "",
		    error != NULL ? error : "");
		set = in->set;
		instance_destroy(in);
		m->in = NULL;
		if (m->state != CTR_ABORTING)
			ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT,
			    text != NULL ? text : "restore discarded");
		free(text);
		free(both);
		instances_op_done(set);
		ctr_free(m);
		return;
	}
	if (m->postcopy && m->loader_error != NULL) {
		/* Resumed as its daemon died, and killed since: as a
		 * post-copy that broke after the switch. */
		char	*text = ctr_target_keep_logs(m, m->loader_error);

		xasprintf(&both, "its lazy-pages daemon there failed as it "
		    "resumed: %s", text);
		ctr_target_postcopy_lost(m, both);
		free(both);
		free(text);
		return;
	}
	set = in->set;
	if (m->postcopy) {
		/* It runs; its memory arrives on demand and in the
		 * background.  No checkpoint here yet: the images lack it.
		 * Recorded with the state: a ternd that restarts before
		 * every page is in drops it (ctr-instance-load.c). */
		free(in->paging_from);
		in->paging_from = xstrdup(m->peer);
		/* Held until the move is done (every page in, the channel
		 * drained) or broke. */
		in->paging = 1;
		instance_set_state(in, INST_RUNNING, "migrated in (post-copy)");
		log_info("mig %" PRIx64 " %s: running here (pid %ld), moved "
		    "from %s; its memory follows", m->id, m->name,
		    (long)pid, m->peer);
		/* Paging keeps the no-progress bound (migration_timeout_ms):
		 * the lazy-pages daemon fetches every page in the background
		 * until all are in, so a transfer that stops moving with the
		 * link up is stuck (its daemon, the source's CRIU), and the
		 * container with it.  The relay watches the link. */
		ctr_set_state(m, CTR_PAGING);
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESUMED, NULL);
		if (m->pages_done)
			ctr_target_pages_arrived(m);	/* may free m */
		instances_reap(set);	/* as below */
		return;
	}
	in->generation = m->generation;
	instance_set_state(in, INST_RUNNING, "migrated in");
	log_info("mig %" PRIx64 " %s: running here (pid %ld), moved from %s%s",
	    m->id, m->name, (long)pid, m->peer, m->loader != NULL ?
	    "; its memory is being copied in from its checkpoint here" : "");
	/* Killed already if its loader died: its exit settles it as
	 * stopped, with the loader's reason. */
	if (m->loader_error != NULL)
		ctr_loader_failed(in, m->loader_error);
	else if (m->loader != NULL)
		ctr_loader_adopt(in, m->loader);
	m->loader = NULL;
	/* Make our copy of the images durable now that it runs, then let the
	 * source drop its own (until then it is the durable one). */
	xasprintf(&m->sync_dir, "%s/%" PRIu64, in->ckpt_dir, m->generation);
	m->set = set;
	m->in = NULL;	/* it is an ordinary running instance from here */
	m->work.data = m;
	mig_hold(m->mig);
	uv_queue_work(m->agent->ternd->loop, &m->work, ctr_target_sync,
	    ctr_target_synced);
	/* Its init ran from CRIU's resume on but is watched only now: had
	 * it exited (or been killed) meanwhile, that SIGCHLD found nothing
	 * to reap, and no other may come.  Its exit stops it here. */
	instances_reap(set);
}

static void
ctr_target_sync(uv_work_t *w)
{
	struct migration	*m = w->data;
	uint64_t		 bytes;

	/* The page server's images have no MANIFEST line yet: checksum
	 * everything and publish a whole one (it fsyncs as it goes). */
	if (m->pipeline)
		ckpt_publish(m->sync_dir, &bytes, &m->sync_error);
	else
		files_sync_dir(m->sync_dir, &m->sync_error);
	if (m->rootfs_copy && m->sync_error == NULL)
		tree_sync(m->rootfs, &m->sync_error);
}

static void
ctr_target_synced(uv_work_t *w, int status)
{
	struct migration	*m = w->data;
	struct mig		*mig = m->mig;

	if (m->sync_error != NULL)
		/* The source then keeps its checkpoint (it times out waiting
		 * and says so): ours is not durable. */
		log_warnx("mig %" PRIx64 " %s: %s; not confirming, the source "
		    "keeps its checkpoint", m->id, m->name, m->sync_error);
	else
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESUMED, NULL);
	instances_op_done(m->set);
	ctr_free(m);
	mig_drop(mig);
}

/* Post-copy, running here, the memory transfer broke: pages it has not
 * touched yet are gone.  Kill it before the lazy-pages daemon goes (a
 * fault with no daemon would read zeros). */
static void
ctr_target_postcopy_lost(struct migration *m, const char *why)
{
	struct instance		*in = m->in;
	struct instances	*set = in->set;
	char			*text, *cause = NULL, *first = NULL;

	/* Its init ended first: its lazy-pages daemon then ends the
	 * transfer, which reads as a break.  Say what came first. */
	if ((in->state == INST_STOPPING || in->state == INST_STOPPED) &&
	    in->stop_why != NULL) {
		xasprintf(&first, "its init ended first (%s), then %s",
		    in->stop_why, why);
		why = first;
	}
	if (container_kill(in->name, &cause) != 0) {
		log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, cause);
		free(cause);
	}
	container_cgroup_remove(in->name, NULL);
	ckpt_lazy_free(m->lazy);
	m->lazy = NULL;
	m->rootfs_keep = 0;	/* the source keeps its own copy */
	xasprintf(&text, "post-copy from %s broke after it ran here (%s): "
	    "its memory was split between the hosts, so it was stopped; its "
	    "last checkpoint is on %s", m->peer, why, m->peer);
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, text);
	/* The cause alone: the source says the rest to its operator. */
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why);
	free(text);
	free(first);
	/* The source keeps the instance's record and checkpoints.  A stop
	 * on the pool (its init exited meanwhile) still uses it: its end
	 * destroys it. */
	in->paging = 0;
	if (in->working != NULL)
		in->destroy_after_stop = 1;
	else
		instance_destroy(in);
	instances_op_done(set);
	ctr_free(m);
}

static void
ctr_target_lazy_done(void *arg, const char *error)
{
	struct migration	*m = arg;

	m->lazy = NULL;		/* it exited */
	if (error != NULL) {
		if (m->state == CTR_PAGING) {
			char	*why;

			xasprintf(&why, "its lazy-pages daemon there failed: "
			    "%s", error);
			ctr_target_postcopy_lost(m, why);
			free(why);
		} else if (m->state == CTR_RESUMING)
			ctr_target_daemon_lost(m, error);
		else
			ctr_target_discard(m, error);
		return;
	}
	m->pages_done = 1;
	if (m->state != CTR_PAGING)
		return;	/* fetched before it resumed: ctr_target_restored */
	ctr_target_pages_arrived(m);
}

/* Every page is here and the page channel drained: done.  Not before
 * the drain, which is the source's CRIU ending the transfer: until then
 * a break may still make the source give up its side, and this copy
 * must then stop too (the no-progress bound ends a drain that never
 * comes). */
void
ctr_target_postcopy_finish(struct migration *m)
{
	char	*dir;

	if (m->state != CTR_PAGING || !m->pages_done || !m->relay_ended)
		return;
	xasprintf(&dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	ckpt_discard(dir);
	free(dir);
	m->in->paging = 0;	/* a stop or destroy that waited goes on */
	instances_op_done(m->in->set);
	ctr_free(m);
}

static void
ctr_target_pages_arrived(struct migration *m)
{
	free(m->in->paging_from);
	m->in->paging_from = NULL;
	instance_persist(m->in);
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, NULL);
	log_info("mig %" PRIx64 " %s: every page arrived from %s", m->id,
	    m->name, m->peer);
	mig_touch(m->mig);	/* the drain gets a whole bound */
	ctr_target_postcopy_finish(m);
}

/* A lazy-pages daemon listens (post-copy's, fed by the source; or a
 * stop-and-copy's loader, fed by our own images): restore the tree with
 * its memory left to it.  Its start failed: error.  No restore is out
 * yet, so nothing else ends a discarded migration: this does. */
static void
ctr_target_restore_lazy(struct migration *m, struct ckpt_lazy **daemon,
    const char *error)
{
	struct ckpt_target	 t;

	if (error != NULL)
		*daemon = NULL;		/* it exited */
	if (error != NULL || m->state != CTR_RESTORING) {
		/* ABORT goes to the source unless it was discarded. */
		ctr_target_restored(m, NULL, error != NULL ? error :
		    "discarded before its restore began");
		return;
	}
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->ternd->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.rootfs = m->in->spec->root;
	t.pages_checked = m->pipeline;
	t.lazy = 1;
	t.swrk = m->swrk;
	m->swrk = NULL;
	ckpt_restore_held(m->agent->ternd->loop, &t, m->generation, ctr_target_held,
	    ctr_target_restored, m);
}

static void
ctr_target_lazy_ready(void *arg, const char *error)
{
	struct migration	*m = arg;

	ctr_target_restore_lazy(m, &m->lazy, error);
}

static void
ctr_target_loader_ready(void *arg, const char *error)
{
	struct migration	*m = arg;

	ctr_target_restore_lazy(m, &m->loader, error);
}

/* The loader exited before the resume was answered: every page was in
 * (error NULL), or the tree cannot have its memory. */
static void
ctr_target_loader_done(void *arg, const char *error)
{
	struct migration	*m = arg;
	char			*why;

	m->loader = NULL;	/* it exited */
	if (error == NULL) {
		log_info("mig %" PRIx64 " %s: its memory is all in before its "
		    "resume", m->id, m->name);
		return;
	}
	if (m->state == CTR_ABORTING)
		return;		/* the restore's answer ends it */
	if (m->state == CTR_RESUMING) {
		ctr_target_daemon_lost(m, error);
		return;
	}
	xasprintf(&why, "%s failed: %s", ctr_target_daemon_role(m), error);
	ctr_target_abort(m, why);
	free(why);
}

static void
ctr_target_send_restored(struct migration *m)
{
	const char	*why = "fault point mig.target.restored";

	if (m->state != CTR_HELD)
		return;
	if (fault_check("mig.target.restored", NULL) == FAULT_FAIL) {
		ctr_target_abort(m, why);
		return;
	}
	ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORED, NULL);
}

static void
ctr_target_restored_later(uv_timer_t *t)
{
	ctr_target_send_restored(t->data);
}

/* pre-resume: restored and verified, not running.  Tell the source. */
static void
ctr_target_held(void *arg, struct ckpt_hold *hold, const char *gen_dir,
    uint64_t bytes)
{
	struct migration	*m = arg;
	unsigned		 ms = 0;

	if (m->state != CTR_RESTORING) {
		/* Discarded while CRIU restored: let it drop the tree. */
		ckpt_hold_release(hold, 0);
		return;
	}
	m->hold = hold;
	ctr_set_state(m, CTR_HELD);
	switch (fault_check("mig.target.held", &ms)) {
	case FAULT_DELAY:
		/* m->tick is the source's; a target's is free. */
		uv_timer_start(&m->tick, ctr_target_restored_later, ms, 0);
		return;
	case FAULT_STALL:
		return;		/* until the source gives up */
	case FAULT_KILL:
		fault_die("mig.target.held");
	default:
		break;
	}
	ctr_target_send_restored(m);
}

/* The restore's CRIU, started while the source dumps: a process start
 * of CRIU's (about 15 ms on a busy host) is then not part of the freeze.
 * Without it the restore starts its own. */
static void
ctr_target_swrk_ahead(struct migration *m)
{
	char	*cause = NULL;

	m->swrk = criu_spawn(m->agent->ternd->loop,
	    m->agent->ternd->conf->criu_path, NULL, 0, &cause);
	if (m->swrk == NULL) {
		log_info("mig %" PRIx64 " %s: cannot start its restore's criu "
		    "ahead (%s); the restore starts one", m->id, m->name,
		    cause);
		free(cause);
	}
}

/* The CPU check runs while the migration may be discarded (an ABORT, a
 * lost link, the timeout): its answer finds it again, or nothing. */
struct ctr_cpu_check {
	struct agent		*agent;
	char			*peer;
	uint64_t		 id;
	struct migration	*m;	/* compared, not trusted */
};

static void
ctr_target_cpu_checked(const char *problem, void *arg)
{
	struct ctr_cpu_check	*cc = arg;
	struct migration	*m;
	char			*why;

	m = ctr_find(cc->agent, cc->peer, cc->id, 0);
	if (m == NULL || m != cc->m || m->state != CTR_RECEIVING)
		goto out;
	if (problem == NULL) {
		log_info("CPU check passed for %s from %s", m->name, m->peer);
		ctr_send_step(m, TERN__MIGRATE_STEP__STEP__READY, NULL);
		ctr_target_swrk_ahead(m);
		goto out;
	}
	xasprintf(&why, "%s cannot run %s's processes: %s",
	    m->agent->ternd->conf->host_name, m->peer, problem);
	ctr_target_abort(m, why);
	free(why);
out:
	free(cc->peer);
	free(cc);
}

/* Before READY, so the source freezes nothing that cannot run here.  The
 * images directory is new and empty: CRIU's scratch space until then. */
static void
ctr_target_check_cpu(struct migration *m, const Tern__MigrateOffer *o)
{
	struct ctr_cpu_check	*cc;
	char			*dir, *why;

	if (!o->has_cpuinfo || o->cpuinfo.len == 0) {
		xasprintf(&why, "the offer does not describe %s's CPU, so %s "
		    "cannot check that it can run its processes (a tern "
		    "without the CPU check?)", m->peer,
		    m->agent->ternd->conf->host_name);
		ctr_target_abort(m, why);
		free(why);
		return;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->agent = m->agent;
	cc->peer = xstrdup(m->peer);
	cc->id = m->id;
	cc->m = m;
	xasprintf(&dir, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	cpuinfo_check(m->agent->ternd->loop, m->agent->ternd->conf->criu_path, dir,
	    o->cpuinfo.data, o->cpuinfo.len, ctr_target_cpu_checked, cc);
	free(dir);
}

/* A rootfs that follows goes where the spec says; nothing may be there
 * yet (something there is another copy, or shared storage undeclared). */
static int
ctr_target_rootfs_free(struct agent *a, const char *root, char **cause)
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
		    a->ternd->conf->host_name);
		return -1;
	}
	return 0;
}

/* Incoming container migrations at a time, from all peers together. */
#define MIG_MAX_INCOMING	8

struct ctr_count {
	struct mig	*self;
	int		 n;
};

static void
ctr_count_incoming(struct mig *mig, void *arg)
{
	struct ctr_count	*c = arg;

	if (mig->drv == &ctr_driver && mig->role == MIG_ROLE_TARGET &&
	    mig != c->self)
		c->n++;
}

/* What an offer must pass before anything is made for it: 0 and the
 * parsed spec, or -1 and *cause. */
static int
ctr_target_check_offer(struct migration *m, const Tern__MigrateOffer *o,
    struct container_spec **specp, char **cause)
{
	struct agent		*a = m->agent;
	struct ctr_count	 c = { .self = m->mig };
	struct container_spec	*spec;
	char			*dir;
	int			 used;

	mig_engine_each(m->mig->engine, ctr_count_incoming, &c);
	if (c.n >= MIG_MAX_INCOMING) {
		/* Each forks CRIU and takes disk: a peer gets no more. */
		xasprintf(cause, "%s takes %d incoming migrations at a time; "
		    "try again when one is done", a->ternd->conf->host_name,
		    MIG_MAX_INCOMING);
		return -1;
	}
	if (a->instances == NULL || !a->criu.usable) {
		xasprintf(cause, "%s cannot run containers", a->ternd->conf->host_name);
		return -1;
	}
	if (o->kind != TERN__INSTANCE_KIND__KIND_CONTAINER ||
	    !host_name_valid(o->name)) {
		xasprintf(cause, "bad offer (kind %s, name %s)",
		    msg_kind_name(o->kind), o->name);
		return -1;
	}
	if (o->generation == 0 || o->generation >= (UINT64_C(1) << 62)) {
		xasprintf(cause, "bad generation %" PRIu64, o->generation);
		return -1;
	}
	/* Absent: stop-and-copy; the source sends no other. */
	if (o->has_mode && o->mode != TERN__MIGRATION_MODE__MODE_POSTCOPY) {
		xasprintf(cause, "unknown migration mode \"%s\"",
		    msg_mode_name(o->mode));
		return -1;
	}
	m->postcopy = o->has_mode;
	m->pipeline = o->has_page_server && o->page_server;
	/* Resume before the memory is in where the source says lazy pages
	 * carry the tree and our CRIU has them; else restore it all. */
	m->lazy_restore = !m->postcopy && o->has_lazy_restore &&
	    o->lazy_restore && a->criu.lazy_pages && a->criu_action != NULL &&
	    a->ternd->conf->stopcopy_resume_early;
	if (m->pipeline && (m->postcopy || a->criu_action == NULL)) {
		xasprintf(cause, "%s cannot take a %s over a page server",
		    a->ternd->conf->host_name, m->postcopy ? "post-copy" :
		    "stop-and-copy (no CRIU action script)");
		return -1;
	}
	if (m->postcopy && (!a->criu.lazy_pages || a->criu_action == NULL)) {
		xasprintf(cause, "%s cannot take post-copy (no lazy pages in "
		    "its CRIU)", a->ternd->conf->host_name);
		return -1;
	}
	xasprintf(&dir, "%s/instances/%s", a->ternd->conf->state_dir, o->name);
	used = instance_find(a->instances, o->name) != NULL ||
	    access(dir, F_OK) == 0;
	free(dir);
	if (used) {
		xasprintf(cause, "an instance %s already exists on %s", o->name,
		    a->ternd->conf->host_name);
		return -1;
	}
	if ((spec = container_spec_parse(o->spec, strlen(o->spec), o->spec_dir,
	    cause)) == NULL)
		return -1;
	if (container_root_allowed(a->ternd->conf, spec->root, cause) != 0)
		goto bad;
	m->rootfs_copy = o->has_rootfs_copy && o->rootfs_copy;
	if (m->rootfs_copy && ctr_target_rootfs_free(a, spec->root,
	    cause) != 0)
		goto bad;
	if (!m->rootfs_copy && access(spec->root, R_OK) != 0) {
		xasprintf(cause, "%s cannot see the rootfs %s: %s (is it on "
		    "shared storage, as its spec says?)", a->ternd->conf->host_name,
		    spec->root, strerror(errno));
		goto bad;
	}
	*specp = spec;
	return 0;
bad:
	container_spec_free(spec);
	return -1;
}

/* The driver's target_begin: an offer of a container. */
int
ctr_target_begin(struct mig *mig, const Tern__MigrateOffer *o, char **cause)
{
	struct agent		*a = mig_engine_data(mig->engine);
	struct migration	*m = ctr_new(a, mig);
	struct container_spec	*spec = NULL;
	struct instance		*in;
	char			*dir;

	if (ctr_target_check_offer(m, o, &spec, cause) != 0)
		return -1;
	if (m->rootfs_copy)
		m->rootfs = xstrdup(spec->root);
	in = instance_new(a->instances, o->name, o->spec, o->spec_dir, spec);
	m->in = in;
	m->generation = o->generation;
	in->set->busy++;
	in->state = INST_INCOMING;
	xasprintf(&dir, "%s/%" PRIu64, in->ckpt_dir, o->generation);
	if (instance_save(in, cause) != 0 || mkdir_p(dir, 0700, cause) != 0) {
		free(dir);
		ctr_target_abort(m, *cause);
		free(*cause);
		*cause = NULL;
		return 0;
	}
	free(dir);
	/* Open our half of the page channel before READY: the source's half
	 * follows its offer, ours must exist when its dump starts. */
	if ((m->postcopy && ctr_relay_new(m, cause) != 0) ||
	    (m->pipeline && (ctr_pages_new(m, cause) != 0 ||
	    ctr_pages_server_start(m, cause) != 0))) {
		ctr_target_abort(m, *cause);
		free(*cause);
		*cause = NULL;
		return 0;
	}
	instance_set_state(in, INST_INCOMING, NULL);
	ctr_set_state(m, CTR_RECEIVING);
	ctr_target_check_cpu(m, o);	/* READY once it passes */
	return 0;
}

/* Images and rootfs are here: restore (held at pre-resume). */
void
ctr_target_restore(struct migration *m)
{
	struct ckpt_target	 t;
	char			*cause = NULL;

	if (container_cgroup_create(m->in->name, m->in->spec, &cause) != 0) {
		ctr_target_abort(m, cause);
		free(cause);
		return;
	}
	ctr_set_state(m, CTR_RESTORING);
	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->ternd->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.rootfs = m->in->spec->root;
	t.action_script = m->agent->criu_action;
	t.pages_checked = m->pipeline;
	if (m->postcopy) {
		/* The daemon first, the lazy restore once it listens
		 * (ctr_target_lazy_ready). */
		m->lazy = ckpt_lazy_start(m->agent->ternd->loop, &t, m->generation,
		    m->ps_fd, ctr_target_lazy_ready, ctr_target_lazy_done, m,
		    &cause);
		close(m->ps_fd);
		m->ps_fd = -1;
		if (m->lazy == NULL) {
			/* No restore will answer: this ends it. */
			ctr_target_restore_lazy(m, &m->lazy, cause);
			free(cause);
		}
		return;
	}
	if (m->lazy_restore) {
		/* Our own images feed the daemon; the restore starts once
		 * it listens (ctr_target_loader_ready). */
		m->loader = ckpt_lazy_start(m->agent->ternd->loop, &t,
		    m->generation, -1, ctr_target_loader_ready,
		    ctr_target_loader_done, m, &cause);
		if (m->loader == NULL) {
			ctr_target_restore_lazy(m, &m->loader, cause);
			free(cause);
		}
		return;
	}
	t.swrk = m->swrk;
	m->swrk = NULL;
	ckpt_restore_held(m->agent->ternd->loop, &t, m->generation, ctr_target_held,
	    ctr_target_restored, m);
}

/* A rootfs pass was applied (or failed): the full one is answered with
 * ROOTFS_SYNCED, the delta lets a waiting RESTORE go on. */
static void
ctr_target_tree_applied(struct migration *m, const struct tree_stats *st,
    const char *error)
{
	char	*why;

	if (error != NULL) {
		xasprintf(&why, "applying the rootfs into %s: %s", m->rootfs,
		    error);
		ctr_target_abort(m, why);
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
	else
		ctr_target_maybe_restore(m);
}

/* RESTORE came: restore once the image files are written, the rootfs
 * delta applied and (pipeline) every page arrived and checked. */
void
ctr_target_maybe_restore(struct migration *m)
{
	char	*why;

	if (!m->restore_wanted || m->state != CTR_RECEIVING ||
	    m->files_writing > 0 || m->trees_in > 0 ||
	    (m->rootfs_copy && m->trees_done < 2) || !ctr_pages_ready(m))
		return;
	m->restore_wanted = 0;
	if (m->pipeline && ctr_pages_check(m, &why) != 0) {
		ctr_target_abort(m, why);
		free(why);
		return;
	}
	ctr_target_restore(m);
}

/* The pass held the migration: a finished one only goes now. */
void
ctr_target_tree_done(void *arg, const struct tree_stats *st,
    const char *error)
{
	struct migration	*m = arg;
	struct mig		*mig = m->mig;

	m->trees_in--;
	if (!mig->finished)
		ctr_target_tree_applied(m, st, error);
	mig_drop(mig);
}

/* From the resume on, a fault on a page its lazy-pages daemon has not
 * copied in yet must wait for it, or for the kill that follows its death,
 * never read zeros (ckpt_lazy_hold_uffds). */
static void
ctr_target_hold_uffds(struct migration *m)
{
	struct ckpt_lazy	*lz = ctr_target_daemon(m);
	char			*cause = NULL;
	pid_t			 guard;

	/* Post-copy's daemon gets its pages through us: should we die, a
	 * guard kills the tree.  A stop-and-copy's loader needs nobody. */
	guard = m->postcopy && m->hold != NULL ? ckpt_hold_tree(m->hold) : 0;
	if (lz == NULL || ckpt_lazy_hold_uffds(lz, guard, &cause) == 0)
		return;
	log_warnx("mig %" PRIx64 " %s: %s: should its lazy-pages daemon "
	    "die, it may read missing pages as zeros before it is killed",
	    m->id, m->name, cause);
	free(cause);
}

/* COMMIT: resume the tree held at pre-resume. */
static void
ctr_target_resume(struct migration *m)
{
	struct ckpt_hold	*h;

	if (fault_check("mig.target.resume", NULL) == FAULT_FAIL) {
		/* As if the resume failed: the tree dies. */
		ctr_target_drop_held(m, "its resume failed (fault point "
		    "mig.target.resume)");
		return;
	}
	ctr_target_hold_uffds(m);
	/* Its lazy-pages daemon dies as the resume goes: its exit and
	 * CRIU's answer then race, and every order must end with one copy,
	 * or none running and a checkpoint that restores it. */
	if (ctr_target_daemon(m) != NULL &&
	    fault_check("ctr.lazy.resume", NULL) == FAULT_FAIL)
		ckpt_lazy_kill(ctr_target_daemon(m));
	h = m->hold;
	m->hold = NULL;
	ckpt_hold_release(h, 1);
}

/* 1 once this host's grant lists the instance at the store's epoch and
 * its lease is valid (ha_owned set in->epoch from the grant, never from
 * COMMIT: the store's word reaches us only through the grant). */
static int
ctr_target_may_resume(struct migration *m)
{
	struct agent	*a = m->agent;

	return a->ha != NULL && m->in->epoch >= m->owner_epoch &&
	    ha_agent_may_run(a->ha, m->in->epoch);
}

static void
ctr_target_grant_due(uv_timer_t *t)
{
	struct migration	*m = t->data;
	char			*why;

	if (m->state != CTR_RESUMING || m->hold == NULL)
		return;
	xasprintf(&why, "no lease grant from coordinator %s listed it at "
	    "epoch %" PRIu64 " within %" PRIu64 " ms: its copy here is "
	    "fenced, not resumed", ha_instances_coord_now(m->agent),
	    m->owner_epoch, migration_grant_wait_ms(m->agent));
	log_warnx("mig %" PRIx64 " %s: %s", m->id, m->name, why);
	instance_set_error(m->in, why);
	ctr_target_drop_held(m, why);	/* ctr_target_restored tells S */
	free(why);
}

/* A protected instance's COMMIT: the coordinator's store made this host
 * its owner at s->epoch.  It runs only once our grant lists it at that
 * epoch (the coordinator nudged us after its transaction); a grant that
 * does not come within two lease lives fences the copy. */
static void
ctr_target_commit_owned(struct migration *m, const Tern__MigrateStep *s)
{
	struct instance	*in = m->in;

	m->owner_epoch = s->epoch;
	if (in->ha == 0)
		in->ha = s->has_ha && s->ha != TERN__HA_POLICY__HA_NONE ?
		    (int)s->ha : TERN__HA_POLICY__HA_RESTART;
	/* Wanted running as it was on the source: a fence here later (a
	 * lost lease) is undone by the next grant, as for any other. */
	in->want_running = 1;
	instance_persist(in);
	if (ctr_target_may_resume(m)) {
		ctr_target_resume(m);
		return;
	}
	log_info("mig %" PRIx64 " %s: committed at epoch %" PRIu64 "; waiting "
	    "for the coordinator's grant to list it", m->id, m->name,
	    m->owner_epoch);
	uv_timer_stop(&m->tick);
	m->tick.data = m;
	uv_timer_start(&m->tick, ctr_target_grant_due,
	    migration_grant_wait_ms(m->agent), 0);
}

void
ctr_target_granted(struct migration *m, uint64_t epoch)
{
	if (m->source || m->state != CTR_RESUMING || m->hold == NULL ||
	    m->owner_epoch == 0 || epoch < m->owner_epoch ||
	    !ctr_target_may_resume(m))
		return;
	uv_timer_stop(&m->tick);
	log_info("mig %" PRIx64 " %s: the coordinator's grant lists it at "
	    "epoch %" PRIu64 "; resuming", m->id, m->name, epoch);
	ctr_target_resume(m);
}

void
ctr_target_step(struct migration *m, const Tern__MigrateStep *s)
{
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__RESTORE:
		if (m->state != CTR_RECEIVING)
			break;
		if (m->pipeline) {
			if (!s->has_page_crc || !s->has_page_bytes) {
				ctr_target_abort(m, "RESTORE without the sum of "
				    "the memory pages");
				break;
			}
			m->peer_crc = s->page_crc;
			m->peer_len = s->page_bytes;
			m->page_sum_in = 1;
			if (m->pages_failed != NULL) {
				ctr_pages_failed_abort(m);
				break;
			}
		}
		/* ctr_target_tree_done, ctr_target_file_written and the
		 * page server's end call it again */
		if (m->files_writing > 0)
			log_info("mig %" PRIx64 " %s: restore waits for %u "
			    "image files still being written", m->id, m->name,
			    m->files_writing);
		m->restore_wanted = 1;
		ctr_target_maybe_restore(m);
		break;
	case TERN__MIGRATE_STEP__STEP__COMMIT:
		if (m->state != CTR_HELD || m->hold == NULL)
			break;
		ctr_set_state(m, CTR_RESUMING);
		m->rootfs_keep = 1;
		if (s->has_epoch && s->epoch != 0) {
			ctr_target_commit_owned(m, s);
			break;
		}
		ctr_target_resume(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		ctr_target_discard(m, s->error != NULL ? s->error :
		    "the source aborted");
		break;
	default:
		break;
	}
}
