#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define LOG_MODULE "instance"
#include "agent/driver.h"
#include "agent/ha-instances.h"
#include "agent/instance-internal.h"
#include "agent/instances.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

const char *const inst_state_names[] = {
	"stopped", "running", "stopping", "checkpointing", "checkpointed",
	"restoring", "migrating", "incoming",
};

/* The kinds of instance this agent knows: a create request's kind
 * names one; at start each is asked in turn whether a saved
 * instance's directory is of its kind. */
static const struct inst_driver *const inst_drivers[] = {
	&ctr_inst_driver,
	&vm_inst_driver,
};
#define INST_NDRIVERS	(sizeof inst_drivers / sizeof inst_drivers[0])

/* A state file is a few lines. */
#define INST_STATE_MAX	(1024 * 1024)

static void	instances_finish_close(struct instances *);
static void	instances_destroy_waiting(struct instances *);

/* A checkpoint, restore, migration or driver call finished: a pending
 * close may go on, and so may a stop or destroy that waited for it. */
void
instances_op_done(struct instances *set)
{
	if (--set->busy == 0 && set->closing) {
		instances_finish_close(set);
		return;
	}
	if (!set->closing)
		instances_destroy_waiting(set);
}

int
instance_destroying(const struct instance *in)
{
	/* A stopped instance stays protected: a generation its checkpoint
	 * did complete is still worth sending. */
	return in->destroy_cb != NULL && !in->later_stop;
}

/* "is being restored from its replica": nothing else may act on it
 * until the failover's restore has run it or given up. */
static int
instance_refuse_restoring(const struct instance *in, int *code,
    char **cause)
{
	if (!in->replica_restoring)
		return 0;
	return inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "instance %s is being restored from its replica: try again when "
	    "it is done (ternctl list)", in->name);
}


int
instance_set_state(struct instance *in, enum inst_state st, const char *why)
{
	if (in->state != st)
		log_info("instance %s: %s -> %s%s%s", in->name,
		    inst_state_names[in->state], inst_state_names[st],
		    why != NULL ? ": " : "", why != NULL ? why : "");
	in->state = st;
	in->since_ms = now_ms();
	instance_persist(in);
	/* The one place every start, restore and resume goes through:
	 * the lease is checked when it runs, not only when it began. */
	if (st != INST_RUNNING)
		return 0;
	if (ha_instances_running(in) != 0)
		return -1;
	/* Whoever restored it (the grants, ternctl restore --force), the
	 * commit point's checkpoint or the failover's replica runs under a
	 * lease: nothing left to decide or resume.  A fenced restore keeps
	 * the flags: the next grant restores the checkpoint again, not a
	 * fresh start from the spec. */
	if (in->ha_unconfirmed || in->replica_restore_gen != 0) {
		in->ha_unconfirmed = in->ha_unconfirmed_tries = 0;
		in->replica_restore_gen = 0;
		in->replica_restore_wait_ms = 0;
		instance_persist(in);
	}
	return 0;
}

void
instance_set_error(struct instance *in, const char *error)
{
	free(in->last_error);
	in->last_error = error != NULL ? xstrdup(error) : NULL;
}

struct instance *
instance_find(struct instances *set, const char *name)
{
	struct instance	*in;

	for (in = set->list; in != NULL; in = in->next)
		if (strcmp(in->name, name) == 0)
			return in;
	return NULL;
}

/* --- persistence ---------------------------------------------------------- */

static char *
instance_state_text(const struct instance *in)
{
	char	*text;

	/* criu and moved_to let a restarted ternd finish a post-copy it
	 * was killed in: never resume a copy another host runs. */
	xasprintf(&text, "state=%s\npid=%ld\ngeneration=%llu\ncriu=%ld\n"
	    "moved_to=%s\npaging_from=%s\nha=%d\npriority=%ld\nepoch=%llu\n"
	    "want=%d\nunconfirmed=%d\nreplica_restore=%llu\n",
	    inst_state_names[in->state], (long)in->pid,
	    (unsigned long long)in->generation, (long)in->criu_pid,
	    in->moved_to != NULL ? in->moved_to : "",
	    in->paging_from != NULL ? in->paging_from : "", in->ha,
	    (long)in->priority, (unsigned long long)in->epoch,
	    in->want_running, in->ha_unconfirmed,
	    (unsigned long long)in->replica_restore_gen);
	return text;
}

struct persist_wait {
	struct persist_wait	*next;
	void			(*cb)(void *, const char *);
	void			*arg;
};

static void	instance_persist_start(struct instance *);
static void	instance_free(struct instance *);

static void
instance_persisted(void *arg, const char *error)
{
	struct instance		*in = arg;
	struct instances	*set = in->set;
	struct persist_wait	*w, *next;

	in->persisting = 0;
	if (error != NULL && !in->unlinked)
		log_warnx("instance %s: cannot save its state: %s", in->name,
		    error);
	for (w = in->persist_out, in->persist_out = NULL; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, error);
		free(w);
	}
	if (in->closed) {
		/* Its timer closed while the write was out: free it here. */
		instance_free(in);
	} else if (!in->persisting && !in->unlinked &&
	    (in->persist_again || in->persist_next != NULL))
		instance_persist_start(in);
	instances_op_done(set);
}

static void
instance_persist_start(struct instance *in)
{
	char	*text, *path;

	in->persisting = 1;
	in->persist_again = 0;
	in->persist_out = in->persist_next;
	in->persist_next = NULL;
	in->set->busy++;
	text = instance_state_text(in);
	xasprintf(&path, "%s/state", in->dir);
	work_write_file(in->set->agent->ternd->loop, path, text, instance_persisted,
	    in);
	free(path);
	free(text);
}

void
instance_persist(struct instance *in)
{
	if (in->unlinked)
		return;		/* gone from the table: nothing to record */
	if (in->persisting)
		in->persist_again = 1;
	else
		instance_persist_start(in);
}

void
instance_persist_then(struct instance *in, void (*cb)(void *, const char *),
    void *arg)
{
	struct persist_wait	*w, **pp;

	w = xcalloc(1, sizeof *w);
	w->cb = cb;
	w->arg = arg;
	for (pp = &in->persist_next; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = w;
	if (!in->persisting && !in->unlinked)
		instance_persist_start(in);	/* unlinked: told at its free */
}

struct instance *
instance_add(struct instances *set, const struct inst_driver *drv,
    const char *name, const char *spec_text, const char *spec_dir)
{
	static uint64_t	 serials;
	struct instance	*in;

	in = xcalloc(1, sizeof *in);
	in->set = set;
	in->drv = drv;
	in->name = xstrdup(name);
	in->serial = ++serials;
	xasprintf(&in->dir, "%s/%s", set->dir, name);
	xasprintf(&in->ckpt_dir, "%s/ckpt", in->dir);
	in->spec_text = xstrdup(spec_text);
	in->spec_dir = xstrdup(spec_dir);
	in->since_ms = now_ms();
	if (set->creating != NULL && strcmp(set->creating->name, name) == 0) {
		in->ha = set->creating->has_ha ? (int)set->creating->ha : 0;
		in->priority = set->creating->has_priority ?
		    set->creating->priority : 0;
		in->ha_interval_ms = set->creating->interval_ms;
		in->ha_replicas = set->creating->replicas;
	}
	uv_timer_init(set->agent->ternd->loop, &in->timer);
	in->timer.data = in;
	in->next = set->list;
	set->list = in;
	return in;
}

static void
instance_free_cb(uv_handle_t *h)
{
	struct instance	*in = h->data;

	in->closed = 1;
	if (in->persisting)
		return;		/* its state write is out: that frees it */
	instance_free(in);
}

static void
instance_free(struct instance *in)
{
	struct persist_wait	*w, *next;

	/* A write asked for after it left the table never happens; its
	 * waiters hear so (they own what they passed, e.g. a restore's). */
	for (w = in->persist_next, in->persist_next = NULL; w != NULL;
	    w = next) {
		next = w->next;
		w->cb(w->arg, "it is gone from this host");
		free(w);
	}
	if (in->drv->release != NULL)
		in->drv->release(in);
	free(in->name);
	free(in->dir);
	free(in->ckpt_dir);
	free(in->spec_text);
	free(in->spec_dir);
	free(in->last_error);
	free(in->moved_to);
	free(in->paging_from);
	free(in->stop_why);
	free(in);
}

void
instance_unlink(struct instance *in)
{
	struct instance		**pp;
	instances_done_cb	  cb;

	for (pp = &in->set->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	if (in->drv->unlink != NULL)
		in->drv->unlink(in);
	/* A stop waiting for its grace period holds no work on the pool:
	 * ternd stopping closes the table under it.  Its request is
	 * answered all the same (the contract: exactly once). */
	if (in->stop_cb != NULL) {
		cb = in->stop_cb;
		in->stop_cb = NULL;
		log_warnx("instance %s: ternd stops before its stop finished",
		    in->name);
		reply_error(cb, in->stop_arg,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s: ternd "
		    "is shutting down before it stopped; ternctl list once "
		    "ternd is back says whether it runs", in->name);
	}
	if (in->destroy_cb != NULL && in->set->closing) {
		cb = in->destroy_cb;
		in->destroy_cb = NULL;
		reply_error(cb, in->destroy_arg,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s: ternd "
		    "is shutting down before what it waited for ended; %s it "
		    "again once ternd is back", in->name, in->later_stop ?
		    "stop" : "destroy");
	} else if (in->destroy_cb != NULL) {
		/* What it waited for took the instance away: a destroy that
		 * came first, or the coordinator giving it to another host. */
		cb = in->destroy_cb;
		in->destroy_cb = NULL;
		reply_error(cb, in->destroy_arg,
		    TERN__ERROR_CODE__ERROR_NOT_FOUND, "instance %s left this "
		    "host while this %s waited (destroyed meanwhile, or owned "
		    "by another host now: ternctl list there)", in->name,
		    in->later_stop ? "stop" : "destroy");
	}
	in->unlinked = 1;
	uv_close((uv_handle_t *)&in->timer, instance_free_cb);
}

/* A criu killed in the middle of a restore leaves its cgroup yard (a
 * tmpfs holding the host's cgroup hierarchies) mounted in the images
 * directory, in our mount namespace.  Detach whatever is mounted below
 * dir, last mounted first: else the directory cannot be removed, and
 * removing it would walk into those hierarchies. */
void
instance_unmount_below(const char *dir)
{
	struct mountinfo_line	 mi;
	FILE			*fp;
	char			 line[8192], *mp, **mps = NULL;
	size_t			 n = 0, len = strlen(dir);

	if ((fp = fopen("/proc/self/mountinfo", "r")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (mountinfo_parse(line, &mi) != 0)
			continue;
		if (strncmp(mi.mountpoint, dir, len) != 0 ||
		    mi.mountpoint[len] != '/')
			continue;
		mps = xreallocarray(mps, n + 1, sizeof *mps);
		mps[n++] = xstrdup(mi.mountpoint);
	}
	fclose(fp);
	while (n > 0) {
		mp = mps[--n];
		if (umount2(mp, MNT_DETACH) == 0)
			log_warnx("detached %s (left mounted by a criu that "
			    "died)", mp);
		free(mp);
	}
	free(mps);
}

/* Forget an instance for good: its state and checkpoints (not its rootfs). */
void
instance_destroy(struct instance *in)
{
	char	*who;

	instance_unmount_below(in->dir);
	/* Checkpoints may be gigabytes: removed on the pool, the name
	 * free for a new instance at once. */
	xasprintf(&who, "instance %s", in->name);
	work_discard(in->set->agent->ternd->loop, in->dir, who, "its state and "
	    "checkpoints", NULL, NULL);
	free(who);
	log_info("instance %s: destroyed", in->name);
	instance_unlink(in);
}


/* --- requests ------------------------------------------------------------- */

void
reply_error(instances_done_cb cb, void *arg, int code, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	cb(arg, NULL, code, text);
	free(text);
}

void
reply_checkpoint(instances_done_cb cb, void *arg, const char *name,
    uint64_t generation, uint64_t bytes, uint64_t duration_ms,
    uint64_t frozen_ms, const char *dir)
{
	Envelope		 env;
	Tern__CheckpointReply	 r = TERN__CHECKPOINT_REPLY__INIT;

	r.name = (char *)name;
	r.generation = generation;
	r.bytes = bytes;
	r.duration_ms = duration_ms;
	r.frozen_ms = frozen_ms;
	r.dir = (char *)dir;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_CHECKPOINT_REPLY;
	env.checkpoint_reply = &r;
	cb(arg, &env, 0, NULL);
}

void
reply_done(instances_done_cb cb, void *arg, const char *fmt, ...)
{
	Envelope	 env;
	Tern__Done	 done = TERN__DONE__INIT;
	va_list		 ap;
	char		*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	msg_init(&env, 0);
	done.text = text;
	env.body_case = TERN__ENVELOPE__BODY_DONE;
	env.done = &done;
	cb(arg, &env, 0, NULL);
	free(text);
}

int
inst_refuse(int *code, char **cause, int c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	xvasprintf(cause, fmt, ap);
	va_end(ap);
	*code = c;
	return -1;
}

/* An op refused synchronously: its error is the answer. */
static void
reply_refused(instances_done_cb cb, void *arg, int code, char *cause)
{
	reply_error(cb, arg, code, "%s", cause);
	free(cause);
}

static const struct inst_driver *
inst_driver_find(Tern__InstanceKind kind)
{
	size_t	i;

	for (i = 0; i < INST_NDRIVERS; i++)
		if (inst_drivers[i]->kind == kind)
			return inst_drivers[i];
	return NULL;
}

/* "container or vm", for an unknown kind's error. */
static char *
inst_driver_kinds(void)
{
	char	*text = xstrdup(""), *next;
	size_t	 i;

	for (i = 0; i < INST_NDRIVERS; i++) {
		xasprintf(&next, "%s%s%s", text, i == 0 ? "" : i + 1 ==
		    INST_NDRIVERS ? " or " : ", ", inst_drivers[i]->name);
		free(text);
		text = next;
	}
	return text;
}

void
instances_create(struct instances *set, const Tern__InstanceCreateRequest *r,
    instances_done_cb cb, void *arg)
{
	const struct inst_driver	*drv;
	char				*kinds, *cause = NULL;
	int				 code = 0, rc;

	if ((drv = inst_driver_find(r->kind)) == NULL) {
		kinds = inst_driver_kinds();
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "kind \"%s\" is not supported (use %s)",
		    msg_kind_name(r->kind), kinds);
		free(kinds);
		return;
	}
	if (!host_name_valid(r->name)) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "\"%s\" is not a valid instance name (1..63 of a-z, 0-9, "
		    "'-')", r->name);
		return;
	}
	if (instance_find(set, r->name) != NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_EXISTS,
		    "instance %s already exists", r->name);
		return;
	}
	if (r->has_ha && r->ha != TERN__HA_POLICY__HA_NONE &&
	    ha_instances_refuse_create(set->agent, drv, r, &code, &cause) != 0) {
		reply_refused(cb, arg, code, cause);
		return;
	}
	/* A new protected instance is answered once the coordinator knows
	 * it (or refused the name): ha_instances_creating wraps cb. */
	if (r->has_ha && r->ha != TERN__HA_POLICY__HA_NONE && !set->taking_over)
		ha_instances_creating(set->agent, r->name, &cb, &arg);
	set->creating = r;
	rc = drv->create(set, r, cb, arg, &code, &cause);
	set->creating = NULL;
	if (rc != 0)
		reply_refused(cb, arg, code, cause);
}

int
instance_save(struct instance *in, char **cause)
{
	char	*path = NULL, *text = NULL;
	int	 rc = -1;

	if (mkdir_p(in->ckpt_dir, 0700, cause) != 0)
		return -1;
	if (in->drv->save(in, cause) != 0)
		goto out;
	xasprintf(&path, "%s/state", in->dir);
	text = instance_state_text(in);
	if (write_file_atomic(path, text, cause) != 0)
		goto out;
	rc = 0;
out:
	free(text);
	free(path);
	return rc;
}

static struct instance *
instance_find_for(struct instances *set, const char *name,
    instances_done_cb cb, void *arg)
{
	struct instance	*in;

	if ((in = instance_find(set, name)) == NULL)
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance %s on this host (ternctl list)", name);
	return in;
}

/* The driver's stop; ternd no longer wants it running. */
static void
instance_stop_now(struct instance *in, instances_done_cb cb, void *arg)
{
	char	*cause = NULL;
	int	 want = in->want_running, code = 0;

	in->want_running = 0;
	if (in->drv->stop(in, cb, arg, &code, &cause) != 0) {
		in->want_running = want;
		reply_refused(cb, arg, code, cause);
	}
}

/* The driver's destroy; a protected instance's release is recorded by
 * the coordinator before the answer goes (ha-instances.h). */
static void
instance_destroy_now(struct instance *in, instances_done_cb cb, void *arg)
{
	char	*cause = NULL;
	int	 want = in->want_running, code = 0;

	in->want_running = 0;
	if (in->ha != 0)
		ha_instances_released(in->set->agent, in, &cb, &arg);
	if (in->drv->destroy(in, cb, arg, &code, &cause) != 0) {
		in->want_running = want;
		reply_refused(cb, arg, code, cause);
	}
}

/* What a stop or destroy of in must wait for, or NULL: a checkpoint, or
 * a driver call under way on a settled instance (a start, an HA
 * restart after a fence, a libvirt call).  An operator meets
 * these often (a replica every 2 s, restarts after a coordinator's
 * outage): refusing ("try again") failed scripts.  A stop under way, a
 * migration or a restore is answered by the driver, as before. */
static const char *
instance_busy_with(const struct instance *in)
{
	/* Not a create: a protected one registers with the coordinator as
	 * it is answered, and a destroy right after it would release
	 * nothing the coordinator knows (epoch 0): refused, as before. */
	if (in->creating)
		return NULL;
	/* Also while its init's exit stops it: the move lets go of it
	 * first (ctr-mig-target.c). */
	if (in->paging)
		return "receiving its memory (post-copy)";
	switch (in->state) {
	case INST_CHECKPOINTING:
		return "checkpointing";
	case INST_STOPPED:
	case INST_RUNNING:
	case INST_CHECKPOINTED:
		if (in->working != NULL)
			return in->working;
		return in->vm_busy ? "busy with libvirt" : NULL;
	default:
		return NULL;
	}
}

/* The stop or destroy goes on once what it waits for has settled the
 * instance (instances_op_done).  A checkpoint is cancelled: the
 * instance is going (destroy) or stopping, so is what the checkpoint
 * would give (CRIU is cancelled; a VM's libvirt call is waited for). */
static int
instance_act_later(struct instance *in, int stop, instances_done_cb cb,
    void *arg, int *code, char **cause)
{
	instances_done_cb	 was;
	char			*name;

	if (in->destroy_cb != NULL && (stop || !in->later_stop))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "instance %s is "
		    "already being %s (once it is no longer %s)", in->name,
		    in->later_stop ? "stopped" : "destroyed",
		    instance_busy_with(in));
	if (in->destroy_cb != NULL) {
		/* A destroy takes over the stop that waits: it stops too. */
		was = in->destroy_cb;
		in->destroy_cb = NULL;
		reply_error(was, in->destroy_arg,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s: a "
		    "destroy came while this stop waited; the destroy stops "
		    "it", in->name);
	}
	in->destroy_cb = cb;
	in->destroy_arg = arg;
	in->later_stop = stop;
	if (in->state != INST_CHECKPOINTING) {
		log_info("instance %s: %s waits until it is no longer %s",
		    in->name, stop ? "stop" : "destroy", instance_busy_with(in));
		return 0;
	}
	log_info("instance %s: %s waits for its checkpoint to end "
	    "(cancelled: %s)", in->name, stop ? "stop" : "destroy", stop ?
	    "a generation that completes all the same is kept" :
	    "the generation is discarded");
	if (in->drv->cancellable != NULL && in->drv->cancellable(in)) {
		/* Its callback may settle (and destroy) it before this
		 * returns: by name. */
		name = xstrdup(in->name);
		in->drv->cancel(name, stop ? "the instance is being stopped" :
		    "the instance is being destroyed");
		free(name);
	}
	return 0;
}

/* Stops and destroys that waited, once what they waited for has ended. */
static void
instances_destroy_waiting(struct instances *set)
{
	struct instance		*in;
	instances_done_cb	 cb;
	void			*arg;

	for (;;) {
		for (in = set->list; in != NULL; in = in->next)
			if (in->destroy_cb != NULL &&
			    instance_busy_with(in) == NULL)
				break;
		if (in == NULL)
			return;
		cb = in->destroy_cb;
		arg = in->destroy_arg;
		in->destroy_cb = NULL;
		in->destroy_arg = NULL;
		log_info("instance %s: what it waited for ended (%s): %s it",
		    in->name, inst_state_names[in->state], in->later_stop ?
		    "stopping" : "destroying");
		if (in->later_stop && (in->state == INST_STOPPED ||
		    in->state == INST_CHECKPOINTED)) {
			/* The checkpoint left it not running (a full one, or
			 * the cancel took the container with it), or its
			 * start failed: stopped is what was asked, and no
			 * grant may start it. */
			in->want_running = 0;
			instance_persist(in);
			reply_done(cb, arg, "instance %s stopped (it was "
			    "left %s)", in->name, inst_state_names[in->state]);
		} else if (in->later_stop)
			instance_stop_now(in, cb, arg);
		else
			instance_destroy_now(in, cb, arg);
	}
}

void
instances_action(struct instances *set, const Tern__InstanceActionRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance	*in;
	char		*cause = NULL;
	int		 code = 0, rc, want;

	if ((in = instance_find_for(set, r->name, cb, arg)) == NULL)
		return;
	switch (r->action) {
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__START:
		if ((rc = instance_refuse_restoring(in, &code, &cause)) != 0 ||
		    (rc = ha_instances_may_run(in, &code, &cause)) != 0)
			break;
		/* Recorded with the state the start writes (no write of
		 * its own: the running state must be the next one). */
		want = in->want_running;
		in->want_running = 1;
		if ((rc = in->drv->start(in, cb, arg, &code, &cause)) != 0)
			in->want_running = want;
		break;
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__STOP:
		if (instance_busy_with(in) != NULL)
			rc = instance_act_later(in, 1, cb, arg, &code, &cause);
		else {
			instance_stop_now(in, cb, arg);
			rc = 0;
		}
		break;
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__DESTROY:
		if ((rc = instance_refuse_restoring(in, &code, &cause)) != 0)
			break;
		if (instance_busy_with(in) != NULL)
			rc = instance_act_later(in, 0, cb, arg, &code, &cause);
		else {
			instance_destroy_now(in, cb, arg);
			rc = 0;
		}
		break;
	default:
		rc = inst_refuse(&code, &cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "unknown action");
		break;
	}
	if (rc != 0)
		reply_refused(cb, arg, code, cause);
}

void
instances_list(struct instances *set, instances_done_cb cb, void *arg)
{
	Envelope		 env;
	Tern__InstanceListReply	 r = TERN__INSTANCE_LIST_REPLY__INIT;
	Tern__InstanceInfo	*infos, **ptrs;
	struct instance		*in;
	size_t			 n = 0, i = 0;

	for (in = set->list; in != NULL; in = in->next)
		n++;
	infos = xcalloc(n + 1, sizeof *infos);
	ptrs = xcalloc(n + 1, sizeof *ptrs);
	for (in = set->list; in != NULL; in = in->next, i++) {
		tern__instance_info__init(&infos[i]);
		infos[i].name = in->name;
		infos[i].kind = in->drv->kind;
		infos[i].state = (char *)inst_state_names[in->state];
		infos[i].has_since_ms = 1;
		infos[i].since_ms = now_ms() - in->since_ms;
		infos[i].has_generation = 1;
		infos[i].generation = in->generation;
		infos[i].last_error = in->last_error;
		if (in->ha != 0) {
			infos[i].has_ha = infos[i].has_epoch = 1;
			infos[i].ha = (Tern__HaPolicy)in->ha;
			infos[i].epoch = in->epoch;
		}
		if (in->drv->info != NULL)
			in->drv->info(in, &infos[i]);
		ptrs[i] = &infos[i];
	}
	r.n_instances = n;
	r.instances = ptrs;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_INSTANCE_LIST_REPLY;
	env.instance_list_reply = &r;
	cb(arg, &env, 0, NULL);
	free(ptrs);
	free(infos);
}

void
instances_checkpoint(struct instances *set, const Tern__CheckpointRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance	*in;
	char		*cause = NULL;
	int		 code = 0;

	if ((in = instance_find_for(set, r->name, cb, arg)) == NULL)
		return;
	if (in->drv->checkpoint(in, r->has_leave_running && r->leave_running,
	    cb, arg, &code, &cause) != 0)
		reply_refused(cb, arg, code, cause);
}

void
instances_restore(struct instances *set, const Tern__RestoreRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance	*in;
	char		*cause = NULL;
	int		 code = 0;

	if ((in = instance_find_for(set, r->name, cb, arg)) == NULL)
		return;
	if (instance_refuse_restoring(in, &code, &cause) != 0 ||
	    ha_instances_may_run(in, &code, &cause) != 0 ||
	    in->drv->restore(in, r, cb, arg, &code, &cause) != 0)
		reply_refused(cb, arg, code, cause);
}

/* waitpid's answer for a child we wait for: 0 while it runs on. */
static pid_t
reap_orphan(pid_t pid)
{
	pid_t	r;
	int	status;

	while ((r = waitpid(pid, &status, WNOHANG)) == -1 && errno == EINTR)
		;
	return r;
}

void
instances_reap_later(struct instances *set, pid_t pid)
{
	if (pid <= 0 || reap_orphan(pid) != 0)
		return;	/* reaped now, or not our child */
	set->orphans = xreallocarray(set->orphans, set->n_orphans + 1,
	    sizeof *set->orphans);
	set->orphans[set->n_orphans++] = pid;
}

int
instances_reap_claim(struct instances *set, pid_t pid)
{
	size_t	i;

	for (i = 0; i < set->n_orphans; i++) {
		if (set->orphans[i] == pid) {
			set->orphans[i] = set->orphans[--set->n_orphans];
			return 1;
		}
	}
	return 0;
}

void
instances_reap(struct instances *set)
{
	struct instance	*in, *next;
	size_t		 i = 0;

	for (in = set->list; in != NULL; in = next) {
		next = in->next;
		if (in->drv->reap != NULL)
			in->drv->reap(in);
	}
	while (i < set->n_orphans) {
		if (reap_orphan(set->orphans[i]) != 0)
			set->orphans[i] = set->orphans[--set->n_orphans];
		else
			i++;
	}
}

static void
on_sigchld(uv_signal_t *h, int signum)
{
	(void)signum;
	instances_reap(h->data);
}

/* --- loading -------------------------------------------------------------- */

/* The state a previous ternd recorded for it (none: stopped). */
static void
instance_saved_read(struct instances *set, const char *name,
    struct inst_saved *saved)
{
	char	*path, *text, *p, want[32];
	size_t	 i;

	memset(saved, 0, sizeof *saved);
	saved->state = INST_STOPPED;
	xasprintf(&path, "%s/%s/state", set->dir, name);
	text = read_file_bounded(path, INST_STATE_MAX, NULL, NULL);
	free(path);
	if (text == NULL)
		return;
	if ((p = strstr(text, "\npid=")) != NULL)
		saved->pid = strtol(p + 5, NULL, 10);
	if ((p = strstr(text, "\ncriu=")) != NULL)
		saved->criu_pid = strtol(p + 6, NULL, 10);
	if ((p = strstr(text, "\nha=")) != NULL)
		saved->ha = (int)strtol(p + 4, NULL, 10);
	if ((p = strstr(text, "\npriority=")) != NULL)
		saved->priority = (int32_t)strtol(p + 10, NULL, 10);
	if ((p = strstr(text, "\nepoch=")) != NULL)
		saved->epoch = strtoull(p + 7, NULL, 10);
	if ((p = strstr(text, "\nwant=")) != NULL)
		saved->want_running = p[6] == '1';
	if ((p = strstr(text, "\nunconfirmed=")) != NULL)
		saved->ha_unconfirmed = p[13] == '1';
	if ((p = strstr(text, "\nreplica_restore=")) != NULL)
		saved->replica_restore_gen = strtoull(p + 17, NULL, 10);
	if ((p = strstr(text, "\npaging_from=")) != NULL && p[13] != '\n' &&
	    p[13] != '\0')
		saved->paging_from = xstrndup(p + 13, strcspn(p + 13, "\n"));
	if ((p = strstr(text, "\nmoved_to=")) != NULL && p[10] != '\n' &&
	    p[10] != '\0') {
		p[10 + strcspn(p + 10, "\n")] = '\0';
		saved->moved_to = xstrdup(p + 10);
	}
	for (i = 0; i < sizeof inst_state_names / sizeof inst_state_names[0];
	    i++) {
		snprintf(want, sizeof want, "state=%s\n", inst_state_names[i]);
		if (strncmp(text, want, strlen(want)) == 0)
			saved->state = (enum inst_state)i;
	}
	free(text);
}

/* What the previous ternd recorded for its HA: the driver's load calls it
 * once the state is settled and before it persists, so that the file it
 * writes keeps them (a second restart reads what the first one wrote). */
void
instance_saved_apply(struct instance *in, const struct inst_saved *saved)
{
	in->ha = saved->ha;
	in->priority = saved->priority;
	in->epoch = saved->epoch;
	in->want_running = saved->want_running;
	/* Only its commit-point checkpoint can be restored: the grants
	 * decide (ha-instances.c). */
	in->ha_unconfirmed = saved->ha_unconfirmed && in->ha != 0 &&
	    in->state == INST_CHECKPOINTED;
	if (in->ha_unconfirmed)
		log_info("instance %s: its migration's commit went "
		    "unconfirmed: the coordinator's grant decides whether its "
		    "checkpoint %" PRIu64 " is restored here", in->name,
		    in->generation);
	/* A failover's restore the previous ternd did not finish: the
	 * next grant that lists it here resumes it. */
	in->replica_restore_gen = in->ha != 0 && (in->state == INST_STOPPED ||
	    in->state == INST_CHECKPOINTED) ? saved->replica_restore_gen : 0;
	if (in->replica_restore_gen != 0)
		log_info("instance %s: ternd stopped while it was restored from "
		    "replica generation %" PRIu64 ": the restore resumes when "
		    "a grant lists it here, it is not started afresh",
		    in->name, in->replica_restore_gen);
}

/* The first driver whose definition the directory holds loads it. */
static void
instance_load(struct instances *set, const char *name)
{
	struct inst_saved	 saved;
	char			*cause = NULL;
	size_t			 i;
	int			 rc = 1;

	instance_saved_read(set, name, &saved);
	for (i = 0; i < INST_NDRIVERS && rc == 1; i++)
		rc = inst_drivers[i]->load(set, name, &saved, &cause);
	if (rc == 1)
		xasprintf(&cause, "%s/%s holds no instance definition", set->dir,
		    name);
	if (rc != 0) {
		log_warnx("instance %s: cannot load it, ignored: %s", name,
		    cause);
		free(cause);
	}
	free(saved.moved_to);
	free(saved.paging_from);
}

struct instances *
instances_open(struct agent *a, char **cause)
{
	struct instances	*set;
	struct dirent		*de;
	DIR			*d;

	set = xcalloc(1, sizeof *set);
	set->agent = a;
	xasprintf(&set->dir, "%s/instances", a->ternd->conf->state_dir);
	if (mkdir_p(set->dir, 0700, cause) != 0) {
		free(set->dir);
		free(set);
		return NULL;
	}
	uv_signal_init(a->ternd->loop, &set->sigchld);
	set->sigchld.data = set;
	uv_signal_start(&set->sigchld, on_sigchld, SIGCHLD);
	if ((d = opendir(set->dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' && host_name_valid(de->d_name))
				instance_load(set, de->d_name);
		closedir(d);
	}
	return set;
}

static void
instances_free_cb(uv_handle_t *h)
{
	struct instances	*set = h->data;

	free(set->orphans);
	free(set->dir);
	free(set);
}

static void
instances_finish_close(struct instances *set)
{
	while (set->list != NULL)
		instance_unlink(set->list);
	uv_close((uv_handle_t *)&set->sigchld, instances_free_cb);
}

/* Running instances keep running; a checkpoint or restore in progress
 * finishes first (CRIU must not be left holding a frozen container). */
void
instances_close(struct instances *set)
{
	struct instance			 *in;
	const struct inst_driver	**drvs = NULL;
	char				**names = NULL;
	size_t				  n = 0, i;

	if (set == NULL || set->closing)
		return;
	set->closing = 1;
	if (set->busy == 0) {
		instances_finish_close(set);
		return;
	}
	/* Work whose CRIU is stuck would hold the shutdown until
	 * criu_timeout_ms: cancel it now (a stuck CRIU is killed within
	 * seconds).  Its callback settles the instance and may finish the
	 * close (and free set): by name. */
	for (in = set->list; in != NULL; in = in->next)
		if (in->drv->cancellable != NULL && in->drv->cancellable(in)) {
			names = xreallocarray(names, n + 1, sizeof *names);
			drvs = xreallocarray(drvs, n + 1, sizeof *drvs);
			names[n] = xstrdup(in->name);
			drvs[n++] = in->drv;
		}
	for (i = 0; i < n; i++) {
		drvs[i]->cancel(names[i], "ternd is shutting down");
		free(names[i]);
	}
	free(names);
	free(drvs);
}
