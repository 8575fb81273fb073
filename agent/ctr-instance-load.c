#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "instance"
#include "agent/ctr-instance.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

/* A lazy dump's CRIU that outlived its ternd: it holds the tree frozen
 * and seized, serving a page channel nobody reads.  Kill it first, so
 * what follows (thaw to resume, or kill) acts on a tree nobody traces. */
static void
ctr_kill_lazy_criu(const char *name, pid_t pid)
{
	char	path[64], exe[PATH_MAX], state;
	ssize_t	n;
	int	i;

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
	for (i = 0; i < 300; i++) {
		if (proc_stat(pid, &state, NULL, NULL) != 0 || state == 'Z' ||
		    state == 'X')
			break;
		usleep(10000);
	}
}

/* What runs is what is in the container's cgroup, whatever the state
 * file says (a crash mid-stop or mid-checkpoint), and a pid alone proves
 * nothing (it may be anyone's after a reboot).  1 if it runs on,
 * adopted; 0 if nothing of it runs (any copy that must not run killed). */
static int
ctr_load_adopt(struct instance *in, const struct inst_saved *saved)
{
	const char	*name = in->name;
	char		*cause = NULL;
	pid_t		*pids = NULL, init;
	size_t		 npids = 0, i;
	int		 known = 0;

	if (container_pids(name, &pids, &npids, &cause) != 0) {
		log_warnx("instance %s: %s", name, cause);
		free(cause);
		cause = NULL;
		npids = 0;
	}
	if (npids > 0 && saved->moved_to != NULL) {
		/* Post-copy had committed: the other host ran it.  Ours is
		 * the frozen original and must never run again. */
		log_warnx("instance %s: committed to %s by a migration when "
		    "ternd stopped; killing the copy left here", name,
		    saved->moved_to);
		container_kill(name, NULL);
		npids = 0;
	}
	if (npids > 0 && saved->paging_from != NULL) {
		/* Its memory was still coming by post-copy, through the
		 * ternd that stopped: the rest cannot come any more.  Its
		 * guard killed it when that ternd died; this is what a guard
		 * that could not start left. */
		log_warnx("instance %s: found running without all of its "
		    "memory (post-copy from %s) after a restart; killing it",
		    name, saved->paging_from);
		container_kill(name, NULL);
		npids = 0;
	}
	if (npids > 0 && saved->state == INST_INCOMING) {
		/* A migration that had not committed here (or whose commit we
		 * cannot tell): never run a second copy; the source keeps its
		 * container or its verified checkpoint. */
		log_warnx("instance %s: found a half-migrated copy after a "
		    "restart; killing it", name);
		container_kill(name, NULL);
		npids = 0;
	}
	if (npids == 0) {
		free(pids);
		return 0;
	}
	/* The init we recorded, else the oldest-looking process. */
	for (i = 0, init = pids[0]; i < npids; i++) {
		if (pids[i] == (pid_t)saved->pid)
			known = 1;
		if (pids[i] < init)
			init = pids[i];
	}
	free(pids);
	if (known)
		init = (pid_t)saved->pid;
	if (ctr_adopt(in, init, &cause) != 0) {
		/* It died as we looked: what is left is no container any
		 * more. */
		log_warnx("instance %s: not adopted: %s; killing what is "
		    "left of it", name, cause);
		instance_set_error(in, cause);
		free(cause);
		container_kill(name, NULL);
		return 0;
	}
	return 1;
}

/* Nothing of it runs: what the state file and the checkpoints say it
 * is.  0, or 1 if it was an incoming migration's, discarded (in freed). */
static int
ctr_load_settle(struct instance *in, const struct inst_saved *saved)
{
	struct instances	*set = in->set;
	const char		*name = in->name;
	char			*text;

	if (saved->state == INST_INCOMING || saved->paging_from != NULL) {
		/* A migration that never committed here: the source kept it,
		 * and its rootfs, which the migration made here unless it is
		 * on shared storage (a target takes a copy only into a path
		 * that was absent or empty).  Or a post-copy that broke with
		 * the ternd that stopped here: the source stopped its copy
		 * too and keeps the checkpoint to restore. */
		if (saved->paging_from != NULL)
			log_warnx("instance %s: ternd stopped here before all of "
			    "its memory came from %s by post-copy: the copy here "
			    "was killed and is dropped; its last checkpoint is "
			    "on %s (ternctl restore %s there)", name,
			    saved->paging_from, saved->paging_from, name);
		else
			log_info("instance %s: incomplete incoming migration "
			    "discarded", name);
		if (!in->spec->shared_storage) {
			xasprintf(&text, "instance %s", name);
			work_discard(set->agent->ternd->loop, in->spec->root, text,
			    "the incoming rootfs", NULL, NULL);
			free(text);
		}
		container_cgroup_remove(name, NULL);
		instance_destroy(in);
		return 1;
	}
	if (saved->moved_to != NULL) {
		xasprintf(&text, "moved to %s by a migration that had committed "
		    "when ternd stopped here: it runs there unless that "
		    "migration broke too (ternctl list on %s; if it does not "
		    "run there, ternctl restore %s --force)", saved->moved_to,
		    saved->moved_to, name);
		instance_set_error(in, text);
		free(text);
		/* restore asks for --force */
		in->moved_to = xstrdup(saved->moved_to);
		in->state = in->generation > 0 ? INST_CHECKPOINTED :
		    INST_STOPPED;
	} else if (in->generation > 0) {
		in->state = INST_CHECKPOINTED;
		if (saved->state != INST_CHECKPOINTED)
			instance_set_error(in, "was not running when ternd "
			    "started");
	} else
		in->state = INST_STOPPED;
	container_cgroup_remove(name, NULL);
	return 0;
}

int
ctr_load(struct instances *set, const char *name,
    const struct inst_saved *saved, char **cause)
{
	struct container_spec	*spec;
	struct instance		*in;
	char			*path, *text, *spec_dir = NULL;
	int			 rc = -1;

	xasprintf(&path, "%s/%s/spec.json", set->dir, name);
	if (access(path, F_OK) != 0) {
		free(path);
		return 1;	/* not a container's */
	}
	text = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, NULL,
	    cause);
	free(path);
	xasprintf(&path, "%s/%s/spec_dir", set->dir, name);
	if (text != NULL)
		spec_dir = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE,
		    NULL, cause);
	free(path);
	if (text == NULL || spec_dir == NULL)
		goto out;
	if ((spec = container_spec_parse(text, strlen(text), spec_dir,
	    cause)) == NULL)
		goto out;
	in = instance_new(set, name, text, spec_dir, spec);
	in->generation = ckpt_newest(in->ckpt_dir);
	ctr_kill_lazy_criu(name, (pid_t)saved->criu_pid);
	rc = 0;
	if (ctr_load_adopt(in, saved)) {
		/* An orphaned CRIU may have left it frozen. */
		container_thaw(name, NULL);
		in->state = INST_RUNNING;
		log_info("instance %s: still running (pid %ld), adopted", name,
		    (long)in->pid);
		if (saved->state != INST_RUNNING)
			instance_set_error(in, "found running after ternd "
			    "restarted while it was being changed");
	} else if (ctr_load_settle(in, saved))
		goto out;	/* discarded */
	instance_saved_apply(in, saved);
	instance_persist(in);
out:
	free(text);
	free(spec_dir);
	return rc;
}
