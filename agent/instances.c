#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MODULE "instance"
#include "agent/instance-internal.h"
#include "agent/instances.h"
#include "agent/vm-instances.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container-work.h"
#include "checkpoint/container.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

const char *const inst_state_names[] = {
	"stopped", "running", "stopping", "checkpointing", "checkpointed",
	"restoring", "migrating", "incoming",
};

#define INST_STOP_GRACE_MS	10000
#define INST_ADOPTED_POLL_MS	1000

static void	instances_finish_close(struct instances *);
static void	instance_unwatch(struct instance *);

/* A checkpoint, restore or migration finished: a pending close may go on. */
void
instances_op_done(struct instances *set)
{
	if (--set->busy == 0 && set->closing)
		instances_finish_close(set);
}


void
instance_set_state(struct instance *in, enum inst_state st, const char *why)
{
	if (in->state != st)
		log_info("instance %s: %s -> %s%s%s", in->name,
		    inst_state_names[in->state], inst_state_names[st],
		    why != NULL ? ": " : "", why != NULL ? why : "");
	in->state = st;
	in->since_ms = now_ms();
	instance_persist(in);
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
	    "moved_to=%s\n", inst_state_names[in->state], (long)in->pid,
	    (unsigned long long)in->generation, (long)in->criu_pid,
	    in->moved_to != NULL ? in->moved_to : "");
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
		/* Its timer closed while the write was out: free it here.
		 * Nobody waits on a freed instance: its owners are gone. */
		for (w = in->persist_next; w != NULL; w = next) {
			next = w->next;
			free(w);
		}
		in->persist_next = NULL;
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
	work_write_file(in->set->agent->loop, path, text, instance_persisted,
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
	if (!in->persisting)
		instance_persist_start(in);
}

struct instance *
instance_new(struct instances *set, const char *name, const char *spec_text,
    const char *spec_dir, struct container_spec *spec)
{
	struct instance	*in;

	in = xcalloc(1, sizeof *in);
	in->set = set;
	in->name = xstrdup(name);
	xasprintf(&in->dir, "%s/%s", set->dir, name);
	xasprintf(&in->ckpt_dir, "%s/ckpt", in->dir);
	in->spec_text = xstrdup(spec_text);
	in->spec_dir = xstrdup(spec_dir);
	in->spec = spec;
	in->since_ms = now_ms();
	uv_timer_init(set->agent->loop, &in->timer);
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
	free(in->name);
	free(in->dir);
	free(in->ckpt_dir);
	free(in->spec_text);
	free(in->spec_dir);
	container_spec_free(in->spec);
	free(in->last_error);
	free(in->moved_to);
	free(in->stop_why);
	free(in);
}

void
instance_unlink(struct instance *in)
{
	struct instance	**pp;

	for (pp = &in->set->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	instance_unwatch(in);
	in->unlinked = 1;
	uv_close((uv_handle_t *)&in->timer, instance_free_cb);
}

/* A criu killed in the middle of a restore leaves its cgroup yard (a
 * tmpfs holding the host's cgroup hierarchies) mounted in the images
 * directory, in our mount namespace.  Detach whatever is mounted below
 * dir, last mounted first: else the directory cannot be removed, and
 * removing it would walk into those hierarchies. */
static void
instance_unmount_below(const char *dir)
{
	FILE	*fp;
	char	 line[8192], *mp, *s, *d, **mps = NULL;
	size_t	 n = 0, len = strlen(dir);
	int	 i;

	if ((fp = fopen("/proc/self/mountinfo", "r")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... */
		for (mp = line, i = 0; i < 4 && mp != NULL; i++)
			if ((mp = strchr(mp, ' ')) != NULL)
				mp++;
		if (mp == NULL)
			continue;
		mp[strcspn(mp, " \n")] = '\0';
		/* Octal escapes: \040 is a space. */
		for (s = d = mp; *s != '\0'; s++, d++) {
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
			    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
			    s[3] <= '7') {
				*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				    (s[3] - '0'));
				s += 3;
			} else
				*d = *s;
		}
		*d = '\0';
		if (strncmp(mp, dir, len) != 0 || mp[len] != '/')
			continue;
		mps = xreallocarray(mps, n + 1, sizeof *mps);
		mps[n++] = xstrdup(mp);
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
	work_discard(in->set->agent->loop, in->dir, who, "its state and "
	    "checkpoints", NULL, NULL);
	free(who);
	log_info("instance %s: destroyed", in->name);
	instance_unlink(in);
}

/* --- processes ------------------------------------------------------------ */

static void	instance_exited(struct instance *, int status);

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
instance_unwatch(struct instance *in)
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
	instance_unwatch(in);
	/* Not the process the instance has now (a migration or a stop
	 * forgot it): nothing to tell. */
	if (in->pid != w->pid || !in->adopted)
		return;
	log_info("instance %s: its adopted init %ld exited", in->name,
	    (long)w->pid);
	instance_exited(in, -1);
}

/* Without pidfds (Linux < 5.3): the old way, by the bare pid. */
static void
adopted_poll(uv_timer_t *t)
{
	struct instance	*in = t->data;

	if (in->pid > 0 && kill(in->pid, 0) != 0 && errno == ESRCH)
		instance_exited(in, -1);
}

void
instance_watch(struct instance *in, pid_t pid, int adopted)
{
	instance_unwatch(in);
	in->pid = pid;
	in->adopted = adopted;
	if (adopted)
		uv_timer_start(&in->timer, adopted_poll, INST_ADOPTED_POLL_MS,
		    INST_ADOPTED_POLL_MS);
}

/* Adopt the process a previous ternd left running as the container's
 * init: hold it by a pidfd opened before we check that it is in the
 * container's cgroup, so the process checked is the process held. */
static int
instance_adopt(struct instance *in, pid_t pid, char **cause)
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
	if ((rc = uv_poll_init(in->set->agent->loop, &w->poll, fd)) != 0) {
		log_warnx("instance %s: cannot poll its init's pidfd (%s): it "
		    "is watched by its bare pid", in->name, uv_strerror(rc));
		close(fd);
		free(w);
		instance_watch(in, pid, 1);
		return 0;
	}
	w->poll.data = w;
	uv_poll_start(&w->poll, UV_READABLE, pid_watch_cb);
	instance_unwatch(in);
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
	}
	instances_op_done(set);
}

/* Kill what is left of it and remove its cgroups, on the pool: a
 * process stuck in the kernel holds the freezer and the cgroup for
 * seconds, and the loop carries every peer's heartbeats. */
static void
instance_finish_stop(struct instance *in, const char *why)
{
	uv_timer_stop(&in->timer);
	in->pid = 0;
	if (in->working)
		return;		/* the kill already out settles it */
	free(in->stop_why);
	in->stop_why = xstrdup(why);
	if (in->state == INST_RUNNING)
		instance_set_state(in, INST_STOPPING, why);
	in->working = "stopping";
	in->set->busy++;
	container_stop_async(in->set->agent->loop, in->name, instance_stopped,
	    in);
}

static void
instance_exited(struct instance *in, int status)
{
	char	why[128];

	if (status == -1)
		snprintf(why, sizeof why, "its init is gone (adopted from an "
		    "earlier ternd: exit status unknown)");
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "init killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(why, sizeof why, "init exited with status %d",
		    WEXITSTATUS(status));
	if (in->state == INST_RUNNING)
		instance_set_error(in, why);
	if (in->state == INST_CHECKPOINTING || in->state == INST_RESTORING ||
	    in->state == INST_MIGRATING || in->state == INST_INCOMING) {
		/* The checkpoint's own callback decides what this means. */
		in->pid = 0;
		return;
	}
	instance_finish_stop(in, why);
}

static void
on_sigchld(uv_signal_t *h, int signum)
{
	struct instances	*set = h->data;
	struct instance		*in, *next;
	int			 status;

	for (in = set->list; in != NULL; in = next) {
		next = in->next;
		if (in->pid <= 0 || in->adopted)
			continue;
		if (waitpid(in->pid, &status, WNOHANG) == in->pid)
			instance_exited(in, status);
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
		instance_exited(in, -1);
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

static int
instance_usable(const struct instances *set, instances_done_cb cb, void *arg)
{
	if (!set->agent->criu.usable) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "containers are not available on %s: %s",
		    set->agent->conf->host_name, set->agent->criu.problem !=
		    NULL ? set->agent->criu.problem : "CRIU not checked yet");
		return 0;
	}
	return 1;
}

static int	instance_save_work(void *, char **);
static void	instance_created(void *, const char *);

void
instances_create(struct instances *set, const Tern__InstanceCreateRequest *r,
    instances_done_cb cb, void *arg)
{
	struct container_spec	*spec;
	struct instance		*in;
	char			*cause = NULL;

	if (strcmp(r->kind, "container") != 0 && strcmp(r->kind, "vm") != 0) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "kind \"%s\" is not supported (use container or vm)",
		    r->kind);
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
	if (strcmp(r->kind, "vm") == 0) {
		vm_instances_create(set, r, cb, arg);
		return;
	}
	if (r->spec_dir[0] != '/') {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "spec_dir must be absolute");
		return;
	}
	if ((spec = container_spec_parse(r->spec, strlen(r->spec), r->spec_dir,
	    &cause)) == NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s: %s", r->name, cause);
		free(cause);
		return;
	}
	if (container_root_allowed(set->agent->conf, spec->root, &cause) != 0) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "instance %s: %s (see rootfs_allowed_prefixes)", r->name,
		    cause);
		free(cause);
		container_spec_free(spec);
		return;
	}
	in = instance_new(set, r->name, r->spec, r->spec_dir, spec);
	in->stop_cb = cb;
	in->stop_arg = arg;
	in->working = "being created";
	set->busy++;
	work_run(set->agent->loop, instance_save_work, in, instance_created,
	    in);
}

int
instance_save(struct instance *in, char **cause)
{
	char	*path = NULL, *text = NULL;
	int	 rc = -1;

	if (mkdir_p(in->ckpt_dir, 0700, cause) != 0)
		return -1;
	if (in->vm) {
		xasprintf(&path, "%s/domain.xml", in->dir);
		if (write_file_atomic(path, in->spec_text, cause) != 0)
			goto out;
	} else {
		xasprintf(&path, "%s/spec.json", in->dir);
		if (write_file_atomic(path, in->spec_text, cause) != 0)
			goto out;
		free(path);
		xasprintf(&path, "%s/spec_dir", in->dir);
		if (write_file_atomic(path, in->spec_dir, cause) != 0)
			goto out;
	}
	free(path);
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

/* On the pool: mkdir and fsync (nothing else touches it meanwhile:
 * it is working). */
static int
instance_save_work(void *arg, char **cause)
{
	return instance_save(arg, cause);
}

static void
instance_created(void *arg, const char *error)
{
	struct instance		*in = arg;
	struct instances	*set = in->set;
	instances_done_cb	 cb = in->stop_cb;
	void			*cbarg = in->stop_arg;

	in->working = NULL;
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
instance_started(void *arg, pid_t pid, const char *error)
{
	struct instance		*in = arg;
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
		instance_set_state(in, INST_RUNNING, NULL);
		reply_done(cb, cbarg, "instance %s started (pid %ld)",
		    in->name, (long)pid);
		/* It may have exited before we watched it. */
		on_sigchld(&set->sigchld, SIGCHLD);
	}
	instances_op_done(set);
}

/* On the pool: the first process may take seconds to exec (a rootfs on
 * a slow file system). */
static void
instance_start(struct instance *in, instances_done_cb cb, void *arg)
{
	if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s", in->name, inst_state_names[in->state]);
		return;
	}
	in->stop_cb = cb;
	in->stop_arg = arg;
	in->working = "starting";
	in->set->busy++;
	log_info("instance %s: starting", in->name);
	container_start_async(in->set->agent->loop, in->name, in->spec,
	    instance_started, in);
}

static void
instance_stop(struct instance *in, instances_done_cb cb, void *arg)
{
	if (in->state != INST_RUNNING || in->pid <= 0) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s", in->name, inst_state_names[in->state]);
		return;
	}
	in->stop_cb = cb;
	in->stop_arg = arg;
	instance_set_state(in, INST_STOPPING, NULL);
	in->stop_killed = 0;
	instance_signal(in, SIGTERM);
	uv_timer_start(&in->timer, stop_tick, 200, 200);
}

void
instances_action(struct instances *set, const Tern__InstanceActionRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance	*in;

	if ((in = instance_find(set, r->name)) == NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance %s on this host (ternctl list)", r->name);
		return;
	}
	if (in->vm) {
		vm_instance_action(in, r->action, cb, arg);
		return;
	}
	if (in->working) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: try again when it is done", in->name,
		    in->working);
		return;
	}
	switch (r->action) {
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__START:
		if (instance_usable(set, cb, arg))
			instance_start(in, cb, arg);
		break;
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__STOP:
		instance_stop(in, cb, arg);
		break;
	case TERN__INSTANCE_ACTION_REQUEST__ACTION__DESTROY:
		if (in->state == INST_RUNNING) {
			in->destroy_after_stop = 1;
			instance_stop(in, cb, arg);
			break;
		}
		if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED) {
			reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
			    "instance %s is %s", in->name,
			    inst_state_names[in->state]);
			break;
		}
		instance_destroy(in);
		reply_done(cb, arg, "instance %s destroyed", r->name);
		break;
	default:
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "unknown action");
		break;
	}
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
		infos[i].kind = in->vm ? "vm" : "container";
		infos[i].state = (char *)inst_state_names[in->state];
		if (in->pid > 0) {
			infos[i].has_pid = 1;
			infos[i].pid = (uint32_t)in->pid;
		}
		infos[i].has_since_ms = 1;
		infos[i].since_ms = now_ms() - in->since_ms;
		infos[i].has_generation = 1;
		infos[i].generation = in->generation;
		infos[i].last_error = in->last_error;
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

/* --- checkpoint and restore ----------------------------------------------- */

struct inst_op {
	struct instance		*in;
	instances_done_cb	 cb;
	void			*arg;
	int			 leave_running;
	enum inst_state		 before;
	char			*error;		/* CRIU's, while we clean up */
	struct ckpt_result	 res;		/* without its gen_dir: */
	char			*gen_dir;	/* our copy */
};

static void
inst_op_free(struct inst_op *op)
{
	free(op->error);
	free(op->gen_dir);
	free(op);
}

/* After a failed checkpoint: thawed (if it was ours to thaw). */
static void
checkpoint_failed(void *varg, pid_t pid, const char *thaw_error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;

	(void)pid;
	if (thaw_error != NULL)
		log_warnx("instance %s: %s", in->name, thaw_error);
	instance_set_error(in, op->error);
	log_warnx("instance %s: checkpoint failed: %s", in->name, op->error);
	instance_set_state(in, in->pid > 0 ? INST_RUNNING : INST_STOPPED,
	    "checkpoint failed");
	reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
	    "checkpoint of %s failed: %s", in->name, op->error);
	inst_op_free(op);
	instances_op_done(in->set);
}

/* The checkpoint is verified; what is left of the container is gone
 * (if it was to go). */
static void
checkpoint_settled(void *varg, pid_t pid, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	const struct ckpt_result *res = &op->res;

	(void)pid;
	if (error != NULL)
		log_warnx("instance %s: %s", in->name, error);
	if (op->leave_running && in->pid > 0)
		instance_set_state(in, INST_RUNNING, "checkpointed, left running");
	else if (op->leave_running)
		instance_set_state(in, INST_CHECKPOINTED, "exited after the "
		    "checkpoint");
	else
		instance_set_state(in, INST_CHECKPOINTED, NULL);
	log_info("instance %s: checkpoint %llu: %llu bytes in %llu ms "
	    "(frozen %llu ms)", in->name, (unsigned long long)res->generation,
	    (unsigned long long)res->bytes,
	    (unsigned long long)res->duration_ms,
	    (unsigned long long)res->frozen_ms);
	reply_checkpoint(op->cb, op->arg, in->name, res->generation,
	    res->bytes, res->duration_ms, res->frozen_ms, op->gen_dir);
	inst_op_free(op);
	instances_op_done(in->set);
}

static void
checkpoint_done(void *varg, const struct ckpt_result *res, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	uv_loop_t		*loop = in->set->agent->loop;

	if (error != NULL) {
		/* CRIU failed: it resumed the container, or it died with the
		 * container frozen (then we thaw it), or the container is gone. */
		op->error = xstrdup(error);
		if (in->pid > 0)
			container_thaw_async(loop, in->name, checkpoint_failed,
			    op);
		else
			checkpoint_failed(op, 0, NULL);
		return;
	}
	in->generation = res->generation;
	op->res = *res;
	op->gen_dir = res->gen_dir != NULL ? xstrdup(res->gen_dir) : NULL;
	op->res.gen_dir = NULL;
	if (op->leave_running && in->pid > 0) {
		checkpoint_settled(op, 0, NULL);
		return;
	}
	/* Its init exited while CRIU answered, or CRIU killed the tree
	 * after the dump: reap what is left. */
	if (!op->leave_running && in->pid > 0 && !in->adopted)
		waitpid(in->pid, NULL, WNOHANG);
	in->pid = 0;
	container_stop_async(loop, in->name, checkpoint_settled, op);
}

void
instances_checkpoint(struct instances *set, const Tern__CheckpointRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance		*in;
	struct inst_op		*op;
	struct ckpt_target	 t;

	if ((in = instance_find(set, r->name)) == NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance %s on this host (ternctl list)", r->name);
		return;
	}
	if (in->vm) {
		vm_instance_checkpoint(in, r->has_leave_running &&
		    r->leave_running, cb, arg);
		return;
	}
	if (!instance_usable(set, cb, arg))
		return;
	if (in->state != INST_RUNNING) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: only a running instance can be "
		    "checkpointed", in->name, inst_state_names[in->state]);
		return;
	}
	op = xcalloc(1, sizeof *op);
	op->in = in;
	op->cb = cb;
	op->arg = arg;
	op->leave_running = r->has_leave_running && r->leave_running;
	instance_set_state(in, INST_CHECKPOINTING, NULL);
	set->busy++;
	memset(&t, 0, sizeof t);
	t.name = in->name;
	t.criu_path = set->agent->conf->criu_path;
	t.dir = in->ckpt_dir;
	t.pid = in->pid;
	t.rootfs = in->spec->root;
	ckpt_dump(set->agent->loop, &t, ckpt_newest(in->ckpt_dir) + 1,
	    op->leave_running, checkpoint_done, op);
}

/* What a failed restore left is gone. */
static void
restore_failed(void *varg, pid_t pid, const char *kill_error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;

	(void)pid;
	if (kill_error != NULL)
		log_warnx("instance %s: %s", in->name, kill_error);
	instance_set_state(in, op->before, "restore failed");
	reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
	    "restore of %s failed: %s", in->name, op->error);
	inst_op_free(op);
	instances_op_done(in->set);
}

static void
restore_done(void *varg, const struct ckpt_result *res, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	Envelope		 env;
	Tern__RestoreReply	 r = TERN__RESTORE_REPLY__INIT;

	if (error != NULL) {
		instance_set_error(in, error);
		log_warnx("instance %s: restore failed: %s", in->name, error);
		instance_unmount_below(in->dir);
		op->error = xstrdup(error);
		container_stop_async(in->set->agent->loop, in->name,
		    restore_failed, op);
		return;
	}
	instance_set_error(in, NULL);
	instance_watch(in, res->pid, 0);
	instance_set_state(in, INST_RUNNING, "restored");
	r.name = in->name;
	r.generation = res->generation;
	r.pid = (uint32_t)res->pid;
	r.duration_ms = res->duration_ms;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_RESTORE_REPLY;
	env.restore_reply = &r;
	op->cb(op->arg, &env, 0, NULL);
	free(op);
	/* It may have exited before we watched it. */
	on_sigchld(&in->set->sigchld, SIGCHLD);
	instances_op_done(in->set);
}

void
instances_restore(struct instances *set, const Tern__RestoreRequest *r,
    instances_done_cb cb, void *arg)
{
	struct instance		*in;
	struct inst_op		*op;
	struct ckpt_target	 t;
	uint64_t		 gen;
	char			*cause = NULL;

	if ((in = instance_find(set, r->name)) == NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no instance %s on this host (ternctl list)", r->name);
		return;
	}
	if (in->vm) {
		vm_instance_restore(in, r->has_generation ? r->generation : 0,
		    cb, arg);
		return;
	}
	if (!instance_usable(set, cb, arg))
		return;
	if ((in->state != INST_CHECKPOINTED && in->state != INST_STOPPED) ||
	    in->working) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: stop it before restoring (one copy "
		    "runs at a time)", in->name, in->working != NULL ? in->working :
		    inst_state_names[in->state]);
		return;
	}
	if (in->moved_to != NULL && !(r->has_force && r->force)) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s was committed to %s by a migration and may run "
		    "there: check ternctl list on %s; only if it does not run "
		    "there, ternctl restore %s --force here", in->name,
		    in->moved_to, in->moved_to, in->name);
		return;
	}
	if (in->moved_to != NULL) {
		log_warnx("instance %s: restored by force although it was "
		    "committed to %s (the operator says it does not run there)",
		    in->name, in->moved_to);
		free(in->moved_to);
		in->moved_to = NULL;
	}
	gen = r->has_generation && r->generation != 0 ? r->generation :
	    ckpt_newest(in->ckpt_dir);
	if (gen == 0) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "instance %s has no complete checkpoint", in->name);
		return;
	}
	/* CRIU puts the restored tree back into the container's cgroups;
	 * they carry the spec's limits whichever host restores it. */
	if (container_cgroup_create(in->name, in->spec, &cause) != 0) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "instance %s: %s", in->name, cause);
		free(cause);
		return;
	}
	op = xcalloc(1, sizeof *op);
	op->in = in;
	op->cb = cb;
	op->arg = arg;
	op->before = in->state;
	instance_set_state(in, INST_RESTORING, NULL);
	set->busy++;
	memset(&t, 0, sizeof t);
	t.name = in->name;
	t.criu_path = set->agent->conf->criu_path;
	t.dir = in->ckpt_dir;
	t.rootfs = in->spec->root;
	ckpt_restore(set->agent->loop, &t, gen, restore_done, op);
}

/* --- loading -------------------------------------------------------------- */

/* A lazy dump's CRIU that outlived its ternd: it holds the tree frozen
 * and seized, serving a page channel nobody reads.  Kill it first, so
 * what follows (thaw to resume, or kill) acts on a tree nobody traces. */
static void
instance_kill_lazy_criu(const char *name, pid_t pid)
{
	char	path[64], exe[PATH_MAX], st[256];
	ssize_t	n;
	int	i;
	FILE	*fp;

	if (pid <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%ld/exe", (long)pid);
	if ((n = readlink(path, exe, sizeof exe - 1)) <= 0)
		return;
	exe[n] = '\0';
	if (strstr(exe, "criu") == NULL)
		return;		/* the pid is someone else's now */
	log_warnx("instance %s: killing criu %ld, left holding it by a ternd "
	    "that stopped in a post-copy", name, (long)pid);
	kill(pid, SIGKILL);
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	for (i = 0; i < 300; i++) {
		if ((fp = fopen(path, "r")) == NULL)
			break;
		n = (ssize_t)fread(st, 1, sizeof st - 1, fp);
		fclose(fp);
		st[n > 0 ? n : 0] = '\0';
		if (strstr(st, ") Z ") != NULL || strstr(st, ") X ") != NULL)
			break;
		usleep(10000);
	}
}

/* The state a previous ternd recorded for it. */
static enum inst_state
instance_saved_state(struct instances *set, const char *name)
{
	enum inst_state	 st = INST_STOPPED;
	char		*path, *text, want[32];
	size_t		 i;

	xasprintf(&path, "%s/%s/state", set->dir, name);
	text = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL, NULL);
	free(path);
	for (i = 0; text != NULL && i < sizeof inst_state_names /
	    sizeof inst_state_names[0]; i++) {
		snprintf(want, sizeof want, "state=%s\n", inst_state_names[i]);
		if (strncmp(text, want, strlen(want)) == 0)
			st = (enum inst_state)i;
	}
	free(text);
	return st;
}

static void
instance_load(struct instances *set, const char *name)
{
	struct container_spec	*spec;
	struct instance		*in;
	char			*path, *text = NULL, *spec_dir = NULL;
	char			*state = NULL, *cause = NULL, *p;
	char			*moved_to = NULL;
	long			 pid = 0;
	enum inst_state		 st = INST_STOPPED;
	size_t			 i, npids = 0;
	pid_t			*pids = NULL;

	xasprintf(&path, "%s/%s/domain.xml", set->dir, name);
	text = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL, NULL);
	free(path);
	if (text != NULL) {
		vm_instance_load(set, name, text, instance_saved_state(set,
		    name));
		free(text);
		return;
	}
	xasprintf(&path, "%s/%s/spec.json", set->dir, name);
	text = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL, &cause);
	free(path);
	xasprintf(&path, "%s/%s/spec_dir", set->dir, name);
	if (text != NULL)
		spec_dir = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL, &cause);
	free(path);
	if (text == NULL || spec_dir == NULL)
		goto bad;
	if ((spec = container_spec_parse(text, strlen(text), spec_dir,
	    &cause)) == NULL)
		goto bad;
	in = instance_new(set, name, text, spec_dir, spec);
	in->generation = ckpt_newest(in->ckpt_dir);
	xasprintf(&path, "%s/state", in->dir);
	state = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL, NULL);
	free(path);
	if (state != NULL && (p = strstr(state, "\npid=")) != NULL)
		pid = strtol(p + 5, NULL, 10);
	if (state != NULL && (p = strstr(state, "\ncriu=")) != NULL)
		instance_kill_lazy_criu(name, (pid_t)strtol(p + 6, NULL, 10));
	if (state != NULL && (p = strstr(state, "\nmoved_to=")) != NULL &&
	    p[10] != '\n' && p[10] != '\0') {
		p[10 + strcspn(p + 10, "\n")] = '\0';
		moved_to = xstrdup(p + 10);
	}
	for (i = 0; state != NULL && i < sizeof inst_state_names /
	    sizeof inst_state_names[0]; i++) {
		char want[32];

		snprintf(want, sizeof want, "state=%s\n", inst_state_names[i]);
		if (strncmp(state, want, strlen(want)) == 0)
			st = (enum inst_state)i;
	}
	/* What runs is what is in the container's cgroup, whatever the
	 * state file says (a crash mid-stop or mid-checkpoint), and a pid
	 * alone proves nothing (it may be anyone's after a reboot). */
	if (container_pids(name, &pids, &npids, &cause) != 0) {
		log_warnx("instance %s: %s", name, cause);
		free(cause);
		cause = NULL;
		npids = 0;
	}
	if (npids > 0 && moved_to != NULL) {
		/* Post-copy had committed: the other host ran it.  Ours is
		 * the frozen original and must never run again. */
		log_warnx("instance %s: committed to %s by a migration when "
		    "ternd stopped; killing the copy left here", name, moved_to);
		container_kill(name, NULL);
		npids = 0;
	}
	if (npids > 0 && st == INST_INCOMING) {
		/* A migration that had not committed here (or whose commit we
		 * cannot tell): never run a second copy; the source keeps its
		 * container or its verified checkpoint. */
		log_warnx("instance %s: found a half-migrated copy after a "
		    "restart; killing it", name);
		container_kill(name, NULL);
		npids = 0;
	}
	if (npids > 0) {
		pid_t	init = pids[0];
		int	known = 0;

		/* The init we recorded, else the oldest-looking process. */
		for (i = 0; i < npids; i++) {
			if (pids[i] == (pid_t)pid)
				known = 1;
			if (pids[i] < init)
				init = pids[i];
		}
		if (known)
			init = (pid_t)pid;
		if (instance_adopt(in, init, &cause) != 0) {
			/* It died as we looked: what is left is no container
			 * any more. */
			log_warnx("instance %s: not adopted: %s; killing what is "
			    "left of it", name, cause);
			instance_set_error(in, cause);
			free(cause);
			cause = NULL;
			container_kill(name, NULL);
			npids = 0;
		}
	}
	if (npids > 0) {
		/* An orphaned CRIU may have left it frozen. */
		container_thaw(name, NULL);
		in->state = INST_RUNNING;
		log_info("instance %s: still running (pid %ld), adopted", name,
		    (long)in->pid);
		if (st != INST_RUNNING)
			instance_set_error(in, "found running after ternd "
			    "restarted while it was being changed");
	} else if (st == INST_INCOMING) {
		/* A migration that never committed here: the source kept it,
		 * and its rootfs, which the migration made here unless it is
		 * on shared storage (a target takes a copy only into a path
		 * that was absent or empty). */
		log_info("instance %s: incomplete incoming migration discarded",
		    name);
		if (!spec->shared_storage) {
			char *who;

			xasprintf(&who, "instance %s", name);
			work_discard(set->agent->loop, spec->root, who,
			    "the incoming rootfs", NULL, NULL);
			free(who);
		}
		container_cgroup_remove(name, NULL);
		instance_destroy(in);
		in = NULL;
	} else if (moved_to != NULL) {
		char	*why;

		xasprintf(&why, "moved to %s by a migration that had committed "
		    "when ternd stopped here: it runs there unless that "
		    "migration broke too (ternctl list on %s; if it does not "
		    "run there, ternctl restore %s --force)", moved_to, moved_to,
		    name);
		instance_set_error(in, why);
		free(why);
		in->moved_to = moved_to;	/* restore asks for --force */
		moved_to = NULL;
		in->state = in->generation > 0 ? INST_CHECKPOINTED :
		    INST_STOPPED;
		container_cgroup_remove(name, NULL);
	} else if (in->generation > 0) {
		in->state = INST_CHECKPOINTED;
		if (st != INST_CHECKPOINTED)
			instance_set_error(in, "was not running when ternd "
			    "started");
		container_cgroup_remove(name, NULL);
	} else {
		in->state = INST_STOPPED;
		container_cgroup_remove(name, NULL);
	}
	free(pids);
	free(state);
	free(text);
	free(spec_dir);
	free(moved_to);
	if (in != NULL)
		instance_persist(in);
	return;
bad:
	log_warnx("instance %s: cannot load it, ignored: %s", name, cause);
	free(cause);
	free(text);
	free(spec_dir);
}

struct instances *
instances_open(struct agent *a, char **cause)
{
	struct instances	*set;
	struct dirent		*de;
	DIR			*d;

	set = xcalloc(1, sizeof *set);
	set->agent = a;
	xasprintf(&set->dir, "%s/instances", a->conf->state_dir);
	if (mkdir_p(set->dir, 0700, cause) != 0) {
		free(set->dir);
		free(set);
		return NULL;
	}
	uv_signal_init(a->loop, &set->sigchld);
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

/* Running containers keep running; a checkpoint or restore in progress
 * finishes first (CRIU must not be left holding a frozen container). */
void
instances_close(struct instances *set)
{
	struct instance	*in;
	char		**names = NULL;
	size_t		  n = 0, i;

	if (set == NULL || set->closing)
		return;
	set->closing = 1;
	if (set->busy == 0) {
		instances_finish_close(set);
		return;
	}
	/* A checkpoint or restore whose CRIU is stuck would hold the
	 * shutdown until criu_timeout_ms: give up on it now.  Its callback
	 * settles the instance and may finish the close (and free set). */
	for (in = set->list; in != NULL; in = in->next)
		if (!in->vm && (in->state == INST_CHECKPOINTING ||
		    in->state == INST_RESTORING)) {
			names = xreallocarray(names, n + 1, sizeof *names);
			names[n++] = xstrdup(in->name);
		}
	for (i = 0; i < n; i++) {
		ckpt_cancel(names[i], "ternd is shutting down");
		free(names[i]);
	}
	free(names);
}
