/* The container launcher: start one container from a struct
 * container_spec in its own namespaces and cgroups, and freeze, thaw,
 * list and kill it through those cgroups.
 *
 * A container NAME (a valid host name: 1..63 of a-z, 0-9, '-') lives in
 * the cgroup v1 directories /sys/fs/cgroup/{memory,cpu,pids,freezer,
 * devices}/tern/NAME.  Its first process is pid 1 of a new pid namespace, in new
 * mount, UTS and IPC namespaces (and a new network namespace with only lo
 * if the spec asks), the leader of its own session, with the spec's
 * rootfs as "/" and:
 *	/proc		a proc for its pid namespace
 *	/dev		a tmpfs with null, zero, full, random and urandom
 *			bind-mounted from the host, a devpts of its own on
 *			pts, and the ptmx, fd, stdin, stdout and stderr
 *			links
 *	/tmp		a tmpfs, if the rootfs has a /tmp directory
 *	/.tern-console.log  stdout and stderr (appended; on a read-only
 *			rootfs the file is bind-mounted read-write)
 * stdin is /dev/null; no other descriptor is open; the environment is the
 * spec's env and nothing else.  It is confined (checkpoint/confine.h:
 * capabilities, no_new_privs, masked and read-only /proc paths, seccomp,
 * the devices cgroup) but for what the spec's tern.unconfined names.
 * Every mount is inside the container's
 * mount namespace, so CRIU sees each open file on a mount it can dump.
 *
 * None of these functions installs a signal handler or waits for any
 * process but the ones it names.  Each returns 0, or -1 with *cause set
 * to one message naming the container and what the operator can do.
 */
#ifndef TERN_CONTAINER_H
#define TERN_CONTAINER_H

#include <stdint.h>
#include <sys/types.h>

#include <stddef.h>

#include "checkpoint/container-spec.h"

/* Where the cgroup v1 hierarchies are mounted. */
#define CONTAINER_CGROUP_ROOT		"/sys/fs/cgroup"
/* The directory holding tern's containers, in each hierarchy below the
 * cgroup ternd itself is in (see container_cgroup_base). */
#define CONTAINER_CGROUP_PARENT		"tern"
/* The console log, relative to the container's root. */
#define CONTAINER_CONSOLE_LOG		".tern-console.log"

/* Start container name from spec.  Creates (or reuses, if empty) its
 * cgroups and sets their limits, then clones the first process, moves it
 * into the cgroups before it runs anything of the container and waits
 * (at most a few seconds) until it has exec'd process.args.  *pid is that
 * process, as seen from the caller: the caller's child, which the caller
 * must reap with waitpid(*pid, ...) (never waitpid(-1): other children
 * may be someone else's).  On error nothing is left running, the new
 * cgroups are removed and the message says which step failed, e.g.
 * "container web: cannot mount proc on /srv/web/rootfs/proc: ...".
 * Call with no other thread forking; safe in a multi-threaded process. */
int	container_start(const char *name, const struct container_spec *,
	    pid_t *pid, char **cause);

/* Create the container's cgroups (or reuse them, if no process is in
 * them) with the spec's limits, as container_start does: for a restore by
 * CRIU, which then puts the restored processes into them.  On error none
 * it created is left. */
int	container_cgroup_create(const char *name,
	    const struct container_spec *, char **cause);

/* Freeze (thaw) every process of the container through the freezer
 * cgroup, waiting until the kernel reports FROZEN (THAWED); gives up
 * after 5 seconds. */
int	container_freeze(const char *name, char **cause);
int	container_thaw(const char *name, char **cause);

/* SIGKILL every process of the container (frozen first, so none can fork
 * away), thaw so they die, and wait until the cgroup is empty (at most 5
 * seconds).  The first process stays a zombie until its parent reaps it.
 * A container with no cgroup or no process is not an error. */
int	container_kill(const char *name, char **cause);

/* Remove the container's cgroups (after container_kill).  Missing ones
 * are not an error. */
int	container_cgroup_remove(const char *name, char **cause);
/* Write value into one of container name's cgroup files (path): -1 and
 * *cause on failure, with errno from the call that failed (EPERM: the
 * kernel refused the value). */
int	container_write_file(const char *name, const char *path,
	    const char *value, char **cause);

/* The container's processes (thread group ids, as seen by the caller)
 * into *pids (caller frees), *n of them. */
/* What CRIU must be told about a container: the host device nodes bind
 * mounted into its /dev (external mounts, NULL-terminated), and its
 * freezer cgroup (for a dump that no fork can escape; caller frees). */
const char *const	*container_host_devices(void);
char			*container_freezer_path(const char *name);
/* The memory its cgroup charges now (what a dump writes, roughly), or 0
 * if it cannot be read. */
uint64_t		 container_memory_usage(const char *name);
/* The container's cgroup in controller ctrl relative to the hierarchy's
 * root ("/x/tern/NAME"): where CRIU must restore it on this host. */
char			*container_cgroup_relpath(const char *name,
			    const char *ctrl);
/* The v1 controllers a container is in, NULL-terminated. */
const char *const	*container_cgroup_controllers(void);
/* Where ternd sits in the v2 (unified) hierarchy, its containers with it
 * (tern makes no v2 cgroup of its own): "/x" or "/", NULL where this
 * process is in none. */
char			*container_unified_path(void);

int	container_pids(const char *name, pid_t **pids, size_t *n,
	    char **cause);

/* How many of its threads are stopped by a signal (SIGSTOP, SIGTSTP...:
 * state T), or -1 if that cannot be read.  CRIU cannot seize such a task
 * in a cgroup frozen by the v1 freezer: it waits in the kernel for the
 * task to trap, which the freezer never lets it do. */
int	container_stopped_tasks(const char *name);

#endif
