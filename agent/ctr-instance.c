#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MODULE "instance"
#include "agent/ctr-instance.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container-work.h"
#include "checkpoint/container.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

static void	ctr_loader_drop(struct instance *);

#define INST_STOP_GRACE_MS	10000
#define INST_ADOPTED_POLL_MS	1000

/* --- processes ------------------------------------------------------------ */

/* An adopted init is not our child: no SIGCHLD tells of its exit, and
 * once its new parent reaps it its pid can be anyone's.  A pidfd stays
 * that process's: readable when it exits, and a signal sent through it
 * never reaches another. */
struct pid_watch {
	uv_poll_t	 poll;
	int		 fd;
	pid_t		 pid;
	struct instance	*in;		/* NULL once let go */
};

static void
pid_watch_closed(uv_handle_t *h)
{
	struct pid_watch	*w = h->data;

	close(w->fd);
	free(w);
}

static void
ctr_unwatch(struct instance *in)
{
	struct pid_watch	*w = in->watch;

	if (w == NULL)
		return;
	in->watch = NULL;
	w->in = NULL;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, pid_watch_closed);
}

static void
pid_watch_cb(uv_poll_t *h, int status, int events)
{
	struct pid_watch	*w = h->data;
	struct instance		*in = w->in;

	(void)status;
	(void)events;
	if (in == NULL)
		return;
	ctr_unwatch(in);
	/* Not the process the instance has now (a migration or a stop
	 * forgot it): nothing to tell. */
	if (in->pid != w->pid || !in->adopted)
		return;
	log_info("instance %s: its adopted init %ld exited", in->name,
	    (long)w->pid);
	ctr_exited(in, -1);
}

/* Without pidfds (Linux < 5.3): the old way, by the bare pid. */
static void
adopted_poll(uv_timer_t *t)
{
	struct instance	*in = t->data;

	if (in->pid > 0 && kill(in->pid, 0) != 0 && errno == ESRCH)
		ctr_exited(in, -1);
}

int
ctr_kill_unwatched(struct instance *in, char **cause)
{
	pid_t	*pids = NULL, parent;
	size_t	 n = 0, i;
	char	 state;

	if (container_pids(in->name, &pids, &n, NULL) == 0) {
		for (i = 0; i < n; i++)
			if (pids[i] != in->pid && proc_stat(pids[i], &state,
			    &parent, NULL) == 0 && parent == getpid())
				instances_reap_later(in->set, pids[i]);
		free(pids);
	}
	return container_kill(in->name, cause);
}

void
ctr_forget_init(struct instance *in)
{
	if (in->pid > 0 && !in->adopted)
		instances_reap_later(in->set, in->pid);
	in->pid = 0;
}

/* Out of the table (destroyed): a copy killed as its migration broke
 * goes before its init's exit is seen.  (ternd closing: it runs on.) */
static void
ctr_unlink(struct instance *in)
{
	ctr_unwatch(in);
	if (!in->set->closing)
		ctr_forget_init(in);
}

void
instance_watch(struct instance *in, pid_t pid, int adopted)
{
	ctr_unwatch(in);
	if (pid != in->pid)
		ctr_forget_init(in);
	/* Killed before it was watched (its migration's daemon died as
	 * it resumed), it may sit on the orphan list: ours to reap now. */
	if (!adopted && instances_reap_claim(in->set, pid))
		log_info("instance %s: its init %ld, killed before it was "
		    "watched, is watched again", in->name, (long)pid);
	in->pid = pid;
	in->adopted = adopted;
	if (adopted)
		uv_timer_start(&in->timer, adopted_poll, INST_ADOPTED_POLL_MS,
		    INST_ADOPTED_POLL_MS);
}

/* Adopt the process a previous ternd left running as the container's
 * init: hold it by a pidfd opened before we check that it is in the
 * container's cgroup, so the process checked is the process held. */
int
ctr_adopt(struct instance *in, pid_t pid, char **cause)
{
	struct pid_watch	*w;
	pid_t			*pids = NULL;
	size_t			 npids = 0, i;
	int			 fd, rc, found = 0;

	if ((fd = pidfd_open(pid, 0)) == -1) {
		if (errno == ESRCH) {
			set_cause(cause, "its init %ld exited as it was adopted",
			    (long)pid);
			return -1;
		}
		/* ENOSYS: Linux < 5.3. */
		log_warnx("instance %s: no pidfd for its init (%s): it is "
		    "watched by its bare pid", in->name, strerror(errno));
		instance_watch(in, pid, 1);
		return 0;
	}
	if (container_pids(in->name, &pids, &npids, cause) != 0) {
		close(fd);
		return -1;
	}
	for (i = 0; i < npids; i++)
		if (pids[i] == pid)
			found = 1;
	free(pids);
	if (!found) {
		set_cause(cause, "its init %ld left the container's cgroup as "
		    "it was adopted", (long)pid);
		close(fd);
		return -1;
	}
	w = xcalloc(1, sizeof *w);
	w->fd = fd;
	w->pid = pid;
	w->in = in;
	if ((rc = uv_poll_init(in->set->agent->ternd->loop, &w->poll, fd)) != 0) {
		log_warnx("instance %s: cannot poll its init's pidfd (%s): it "
		    "is watched by its bare pid", in->name, uv_strerror(rc));
		close(fd);
		free(w);
		instance_watch(in, pid, 1);
		return 0;
	}
	w->poll.data = w;
	uv_poll_start(&w->poll, UV_READABLE, pid_watch_cb);
	ctr_unwatch(in);
	in->pid = pid;
	in->adopted = 1;
	in->watch = w;
	return 0;
}

/* Signal the instance's init: through its pidfd when adopted. */
static int
instance_signal(struct instance *in, int sig)
{
	if (in->watch != NULL && in->watch->pid == in->pid)
		return pidfd_send_signal(in->watch->fd, sig, NULL, 0);
	return kill(in->pid, sig);	/* our child, or no pidfds */
}

/* Its processes are gone (or could not all be killed): settle. */
static void
instance_stopped(void *arg, pid_t pid, const char *error)
{
	struct instance		*in = arg;
	struct instances	*set = in->set;
	instances_done_cb	 cb = in->stop_cb;
	void			*cbarg = in->stop_arg;
	Envelope		 env;
	Tern__Done		 done = TERN__DONE__INIT;
	char			*text;

	(void)pid;
	in->working = NULL;
	if (error != NULL)
		log_warnx("instance %s: %s", in->name, error);
	in->stop_cb = NULL;
	instance_set_state(in, in->generation > 0 && in->state ==
	    INST_CHECKPOINTED ? INST_CHECKPOINTED : INST_STOPPED, in->stop_why);
	if (cb != NULL) {
		xasprintf(&text, "instance %s %s", in->name,
		    in->destroy_after_stop ? "stopped and destroyed" :
		    "stopped");
		msg_init(&env, 0);
		done.text = text;
		env.body_case = TERN__ENVELOPE__BODY_DONE;
		env.done = &done;
		if (in->destroy_after_stop)
			instance_destroy(in);
		cb(cbarg, &env, 0, NULL);
		free(text);
	} else if (in->destroy_after_stop)
		instance_destroy(in);	/* a broken post-copy's copy */
	instances_op_done(set);
}

/* Kill what is left of it and remove its cgroups, on the pool: a
 * process stuck in the kernel holds the freezer and the cgroup for
 * seconds, and the loop carries every peer's heartbeats. */
static void
instance_finish_stop(struct instance *in, const char *why)
{
	uv_timer_stop(&in->timer);
	ctr_forget_init(in);	/* killed after its grace: not reaped yet */
	if (in->working)
		return;		/* the kill already out settles it */
	free(in->stop_why);
	in->stop_why = xstrdup(why);
	if (in->state == INST_RUNNING)
		instance_set_state(in, INST_STOPPING, why);
	in->working = "stopping";
	in->set->busy++;
	container_stop_async(in->set->agent->ternd->loop, in->name, instance_stopped,
	    in);
}

void
ctr_exited(struct instance *in, int status)
{
	char	why[128];

	ctr_loader_drop(in);	/* its memory is not wanted any more */
	if (status == -1)
		snprintf(why, sizeof why, "its init is gone (%s: exit status "
		    "unknown)", in->adopted ? "adopted from an earlier ternd" :
		    "reaped before it was watched");
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "init killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(why, sizeof why, "init exited with status %d",
		    WEXITSTATUS(status));
	if (in->state == INST_RUNNING)
		instance_set_error(in, in->loader_failed != NULL ?
		    in->loader_failed : why);
	if (in->state == INST_CHECKPOINTING || in->state == INST_RESTORING ||
	    in->state == INST_MIGRATING || in->state == INST_INCOMING) {
		/* The checkpoint's own callback decides what this means. */
		in->pid = 0;
	} else {
		instance_finish_stop(in, in->loader_failed != NULL ?
		    in->loader_failed : why);
		free(in->loader_failed);	/* said: a later exit is its own */
		in->loader_failed = NULL;
	}
}

/* --- a stop-and-copy's memory, copied in after the resume ------------------ */

/* A loader is busy work of the table: a ternd that stops waits for it
 * (killed, it would leave the container running on zeros). */
static int
ctr_loader_nothing(void *arg, char **cause)
{
	(void)arg;
	(void)cause;
	return 0;
}

static void
ctr_loader_dropped(void *arg, const char *error)
{
	(void)error;
	instances_op_done(arg);
}

/* The container is gone or going: kill its loader.  The table hears on
 * a later turn of the loop, as its callers may be walking its list
 * (instances_reap, a fence of all), which a finished wait could change. */
static void
ctr_loader_drop(struct instance *in)
{
	if (in->loader == NULL)
		return;
	ckpt_lazy_free(in->loader);
	in->loader = NULL;
	in->loader_unwanted = 0;
	work_run(in->set->agent->ternd->loop, ctr_loader_nothing, NULL,
	    ctr_loader_dropped, in->set);
}

static void
ctr_loader_done(void *arg, const char *error)
{
	struct instance	*in = arg;

	in->loader = NULL;	/* it exited */
	if (error == NULL)
		log_info("instance %s: its memory is all in (from checkpoint %"
		    PRIu64 ")", in->name, in->generation);
	else if (in->loader_unwanted) {
		/* Fenced: only its init has SIGKILL yet.  Its userfaultfds go
		 * when we return, so the rest goes now too. */
		log_info("instance %s: its loader ended after the fence: %s",
		    in->name, error);
		(void)container_kill(in->name, NULL);
	} else
		ctr_loader_failed(in, error);
	in->loader_unwanted = 0;
	instances_op_done(in->set);	/* last: a closing table may go */
}

void
ctr_loader_adopt(struct instance *in, struct ckpt_lazy *lz)
{
	in->loader = lz;
	in->loader_unwanted = 0;
	in->set->busy++;
	ckpt_lazy_rebind(lz, ctr_loader_done, in);
	switch (fault_check("ctr.loader", NULL)) {
	case FAULT_FAIL:
		ckpt_lazy_kill(lz);	/* its done follows, failed */
		break;
	case FAULT_STALL:
		kill(ckpt_lazy_pid(lz), SIGSTOP);	/* until a SIGCONT */
		break;
	default:
		break;
	}
}

void
ctr_loader_failed(struct instance *in, const char *why)
{
	char	*cause = NULL;

	if (in->pid <= 0)
		return;		/* exited meanwhile: nothing runs on it */
	/* The pages not yet in would read as zeros: kill the whole tree now,
	 * whatever it was doing (a stop's grace too), on the loop; its
	 * init's exit settles the instance as stopped. */
	if (container_kill(in->name, &cause) != 0) {
		log_warnx("instance %s: %s", in->name, cause);
		free(cause);
		(void)instance_signal(in, SIGKILL);	/* its pid namespace */
	}
	free(in->loader_failed);
	xasprintf(&in->loader_failed, "its memory was still being copied in "
	    "from the checkpoint of its move here when that failed (%s): "
	    "stopped, so that it never runs with memory missing; ternctl "
	    "restore %s --generation %" PRIu64 " brings it back from the "
	    "moment of the move", why, in->name, in->generation);
	log_warnx("instance %s: %s", in->name, in->loader_failed);
	instance_set_error(in, in->loader_failed);
	/* Protected: no grant may cold-start it (its state would be lost
	 * without a word); it waits for the operator's restore. */
	in->want_running = 0;
	instance_persist(in);
}

/* SIGCHLD: our child's exit (an adopted init is no child of ours). */
static void
ctr_reap(struct instance *in)
{
	pid_t	r;
	int	status;

	if (in->pid <= 0 || in->adopted)
		return;
	while ((r = waitpid(in->pid, &status, WNOHANG)) == -1 &&
	    errno == EINTR)
		;
	if (r == in->pid) {
		in->pid = 0;	/* reaped: the pid may be anyone's now */
		ctr_exited(in, status);
	} else if (r == -1 && errno == ECHILD) {
		/* No child of ours any more: it was reaped as an orphan
		 * before it was watched (instances_reap_claim came too
		 * late).  Gone all the same; its status went with it. */
		log_info("instance %s: its init %ld was reaped before it was "
		    "watched", in->name, (long)in->pid);
		in->pid = 0;
		ctr_exited(in, -1);
	}
}

/* While stopping: notice an adopted init's exit (no SIGCHLD for it), and
 * after the grace period kill the whole container. */
static void
stop_tick(uv_timer_t *t)
{
	struct instance	*in = t->data;
	uint64_t	 waited = now_ms() - in->since_ms;

	if (in->pid <= 0)
		return;
	if (in->adopted && kill(in->pid, 0) != 0 && errno == ESRCH) {
		ctr_exited(in, -1);
		return;
	}
	if (waited < INST_STOP_GRACE_MS || in->stop_killed)
		return;
	log_warnx("instance %s: still running %d s after SIGTERM; killing it",
	    in->name, INST_STOP_GRACE_MS / 1000);
	in->stop_killed = 1;
	if (in->adopted)
		instance_finish_stop(in, "killed after the grace period");
	else
		kill(in->pid, SIGKILL);	/* its exit finishes the stop */
}

/* --- requests ------------------------------------------------------------- */

int
ctr_usable(const struct instances *set, int *code, char **cause)
{
	if (!set->agent->criu.usable)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "containers are not available on %s: %s",
		    set->agent->ternd->conf->host_name, set->agent->criu.problem !=
		    NULL ? set->agent->criu.problem : "CRIU not checked yet");
	return 0;
}

/* One container call at a time. */
static int
ctr_idle(const struct instance *in, int *code, char **cause)
{
	if (in->working)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: try again when it is done", in->name,
		    in->working);
	/* A post-copy's hold only: a stop-and-copy's loader is stopped
	 * with the container. */
	if (in->paging)
		return ctr_memory_in(in, "try again", code, cause);
	return 0;
}

int
ctr_memory_in(const struct instance *in, const char *act, int *code,
    char **cause)
{
	if (in->paging)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s moved "
		    "here by post-copy a moment ago and its memory is still "
		    "arriving from its source: %s when that is done",
		    in->name, act);
	if (in->loader != NULL)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s moved "
		    "here a moment ago and its memory is still being copied "
		    "in (about a second per GiB): %s when that is done",
		    in->name, act);
	return 0;
}

struct instance *
instance_new(struct instances *set, const char *name, const char *spec_text,
    const char *spec_dir, struct container_spec *spec)
{
	struct instance	*in;

	in = instance_add(set, &ctr_inst_driver, name, spec_text, spec_dir);
	in->spec = spec;
	return in;
}

static int	ctr_save_work(void *, char **);
static void	ctr_created(void *, const char *);

static int
ctr_create(struct instances *set, const Tern__InstanceCreateRequest *r,
    instances_done_cb cb, void *arg, int *code, char **cause)
{
	struct container_spec	*spec;
	struct instance		*in;
	char			*why = NULL;
	int			 rc;

	if (r->spec_dir[0] != '/')
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "spec_dir must be absolute");
	if ((spec = container_spec_parse(r->spec, strlen(r->spec), r->spec_dir,
	    &why)) == NULL) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s: %s", r->name, why);
		free(why);
		return rc;
	}
	if (container_root_allowed(set->agent->ternd->conf, spec->root, &why) != 0) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "instance %s: %s (see rootfs_allowed_prefixes)", r->name,
		    why);
		free(why);
		container_spec_free(spec);
		return rc;
	}
	in = instance_new(set, r->name, r->spec, r->spec_dir, spec);
	in->stop_cb = cb;
	in->stop_arg = arg;
	in->working = "being created";
	in->creating = 1;
	set->busy++;
	work_run(set->agent->ternd->loop, ctr_save_work, in, ctr_created, in);
	return 0;
}

static int
ctr_save(struct instance *in, char **cause)
{
	char	*path;
	int	 rc;

	xasprintf(&path, "%s/spec.json", in->dir);
	rc = write_file_atomic(path, in->spec_text, cause);
	free(path);
	if (rc != 0)
		return -1;
	xasprintf(&path, "%s/spec_dir", in->dir);
	rc = write_file_atomic(path, in->spec_dir, cause);
	free(path);
	return rc;
}

/* On the pool: mkdir and fsync (nothing else touches it meanwhile:
 * it is working). */
static int
ctr_save_work(void *arg, char **cause)
{
	return instance_save(arg, cause);
}

static void
ctr_created(void *arg, const char *error)
{
	struct instance		*in = arg;
	struct instances	*set = in->set;
	instances_done_cb	 cb = in->stop_cb;
	void			*cbarg = in->stop_arg;

	in->working = NULL;
	in->creating = 0;
	in->stop_cb = NULL;
	if (error != NULL) {
		reply_error(cb, cbarg, TERN__ERROR_CODE__ERROR_RESOURCE,
		    "instance %s: %s", in->name, error);
		instance_unlink(in);
	} else {
		log_info("instance %s: created (container, root %s)",
		    in->name, in->spec->root);
		reply_done(cb, cbarg, "instance %s created", in->name);
	}
	instances_op_done(set);
}

static void
ctr_started_now(struct instance *in, pid_t pid, const char *error)
{
	struct instances	*set = in->set;
	instances_done_cb	 cb = in->stop_cb;
	void			*cbarg = in->stop_arg;

	in->working = NULL;
	in->stop_cb = NULL;
	if (error != NULL) {
		instance_set_error(in, error);
		log_warnx("instance %s: %s", in->name, error);
		reply_error(cb, cbarg, TERN__ERROR_CODE__ERROR_INTERNAL, "%s",
		    error);
	} else {
		instance_set_error(in, NULL);
		instance_watch(in, pid, 0);
		if (instance_set_state(in, INST_RUNNING, NULL) != 0)
			reply_error(cb, cbarg,
			    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s: "
			    "%s", in->name, in->last_error);
		else
			reply_done(cb, cbarg, "instance %s started (pid %ld)",
			    in->name, (long)pid);
		/* It may have exited before we watched it. */
		instances_reap(set);
	}
	instances_op_done(set);
}

/* The fault point ctr.start.before-running (delay=MS): the container's
 * processes run, its state is not running yet; as a start on a slow
 * host whose lease ends meanwhile. */
struct ctr_start_delay {
	uv_timer_t	 timer;
	struct instance	*in;
	pid_t		 pid;
};

static void
ctr_start_delay_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
ctr_start_delayed(uv_timer_t *t)
{
	struct ctr_start_delay	*d = t->data;

	ctr_started_now(d->in, d->pid, NULL);
	uv_close((uv_handle_t *)&d->timer, ctr_start_delay_closed);
}

static void
ctr_started(void *arg, pid_t pid, const char *error)
{
	struct instance		*in = arg;
	struct ctr_start_delay	*d;
	unsigned		 ms = 0;

	if (error == NULL && fault_check("ctr.start.before-running", &ms) ==
	    FAULT_DELAY) {
		/* The table stays busy (set->busy) until it goes on. */
		d = xcalloc(1, sizeof *d);
		d->in = in;
		d->pid = pid;
		uv_timer_init(in->set->agent->ternd->loop, &d->timer);
		d->timer.data = d;
		uv_timer_start(&d->timer, ctr_start_delayed, ms, 0);
		return;
	}
	ctr_started_now(in, pid, error);
}

/* On the pool: the first process may take seconds to exec (a rootfs on
 * a slow file system). */
static int
ctr_start(struct instance *in, instances_done_cb cb, void *arg, int *code,
    char **cause)
{
	if (ctr_idle(in, code, cause) != 0 ||
	    ctr_usable(in->set, code, cause) != 0)
		return -1;
	if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "instance %s is %s",
		    in->name, inst_state_names[in->state]);
	in->stop_cb = cb;
	in->stop_arg = arg;
	in->working = "starting";
	in->set->busy++;
	log_info("instance %s: starting", in->name);
	container_start_async(in->set->agent->ternd->loop, in->name, in->spec,
	    ctr_started, in);
	return 0;
}

/* SIGTERM, then SIGKILL after the grace period (stop_tick). */
static int
ctr_stop_running(struct instance *in, instances_done_cb cb, void *arg,
    int *code, char **cause)
{
	if (in->state != INST_RUNNING || in->pid <= 0)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "instance %s is %s",
		    in->name, inst_state_names[in->state]);
	in->stop_cb = cb;
	in->stop_arg = arg;
	instance_set_state(in, INST_STOPPING, NULL);
	in->stop_killed = 0;
	instance_signal(in, SIGTERM);
	uv_timer_start(&in->timer, stop_tick, 200, 200);
	return 0;
}

static int
ctr_stop(struct instance *in, instances_done_cb cb, void *arg, int *code,
    char **cause)
{
	if (ctr_idle(in, code, cause) != 0)
		return -1;
	return ctr_stop_running(in, cb, arg, code, cause);
}

static int
ctr_destroy(struct instance *in, instances_done_cb cb, void *arg, int *code,
    char **cause)
{
	char	*name;

	if (ctr_idle(in, code, cause) != 0)
		return -1;
	if (in->state == INST_RUNNING) {
		in->destroy_after_stop = 1;
		return ctr_stop_running(in, cb, arg, code, cause);
	}
	if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "instance %s is %s",
		    in->name, inst_state_names[in->state]);
	name = xstrdup(in->name);
	instance_destroy(in);
	reply_done(cb, arg, "instance %s destroyed", name);
	free(name);
	return 0;
}

static void
ctr_info(const struct instance *in, Tern__InstanceInfo *info)
{
	if (in->pid > 0) {
		info->has_pid = 1;
		info->pid = (uint32_t)in->pid;
	}
}

static void
ctr_release(struct instance *in)
{
	if (in->loader != NULL) {
		/* Not reached: its exit ended it (and a closing table waits
		 * for it).  Never left behind all the same. */
		ckpt_lazy_free(in->loader);
		in->set->busy--;
	}
	free(in->loader_failed);
	container_spec_free(in->spec);
}

/* The lease is ending: its init gets SIGKILL now, and the kernel kills
 * the rest of its pid namespace with it; the exit is reaped as any
 * other.  Nothing waits on the pool: the deadline is the lease's. */
static void
ctr_fence(struct instance *in, const char *why)
{
	if (in->pid <= 0)
		return;
	log_warnx("instance %s: killed at once: %s", in->name, why);
	instance_signal(in, SIGKILL);
	/* Its memory is not wanted any more, and the loader's end must not
	 * read as a failure that needs the operator (the next grant starts
	 * it again, as any fenced instance).  The loader itself goes with
	 * the init's exit (ctr_exited): until the kernel has killed the
	 * rest of the pid namespace, its held userfaultfds keep those
	 * processes off the pages not in. */
	if (in->loader != NULL)
		in->loader_unwanted = 1;
}

const struct inst_driver ctr_inst_driver = {
	.kind = TERN__INSTANCE_KIND__KIND_CONTAINER,
	.name = "container",
	.create = ctr_create,
	.load = ctr_load,
	.save = ctr_save,
	.start = ctr_start,
	.stop = ctr_stop,
	.destroy = ctr_destroy,
	.checkpoint = ctr_checkpoint,
	.restore = ctr_restore,
	.info = ctr_info,
	.reap = ctr_reap,
	.cancellable = ctr_cancellable,
	.cancel = ctr_cancel,
	.unlink = ctr_unlink,
	.fence = ctr_fence,
	.release = ctr_release,
};
