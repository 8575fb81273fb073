/* Confinement of a container's processes, in the spirit of runc's and
 * Docker's defaults: what a workload running as root inside cannot do to
 * the host.  Each part can be turned off in the spec (tern.unconfined);
 * all are on by default:
 *
 *	capabilities	the bounding, permitted, effective and inheritable
 *			sets cut to runc's default 14 (CONFINE_KEEP_CAPS),
 *			the ambient set cleared
 *	no_new_privs	PR_SET_NO_NEW_PRIVS: exec never grants more
 *			(setuid files, file capabilities)
 *	masked_paths	/dev/null bound over files and an empty directory
 *			of the host's (CONFINE_MASK_DIR) bound read-only
 *			over directories that leak or expose the host's
 *			kernel (/proc/kcore, /proc/keys, /proc/acpi, ...)
 *	readonly_paths	/proc/sys, /proc/sysrq-trigger, /proc/bus,
 *			/proc/fs, /proc/irq bound read-only onto themselves
 *	seccomp		a filter answering EPERM to system calls that
 *			act on the whole host (modules, kexec, mount, new
 *			namespaces, keyrings, clocks, bpf, perf, ...)
 *	devices		the devices cgroup allows only null, zero, full,
 *			random, urandom, tty, console, ptmx and the pts
 *			(and mknod, which is harmless without open)
 *
 * The processes keep all of it through a CRIU checkpoint and restore:
 * CRIU dumps and restores capabilities, no_new_privs, seccomp filters and
 * mounts; the devices cgroup is set by container_cgroup_create before
 * CRIU restores into it (and CRIU's soft cgroup mode leaves it alone).
 *
 * confine_prepare runs in the launcher before clone (it allocates);
 * confine_mounts and confine_apply run in the container's first process
 * between clone and exec and make system calls only. */
#ifndef TERN_CONFINE_H
#define TERN_CONFINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct container_spec;

/* The parts, as bits of container_spec.unconfined. */
#define CONFINE_CAPS		0x01
#define CONFINE_NO_NEW_PRIVS	0x02
#define CONFINE_MASKED_PATHS	0x04
#define CONFINE_READONLY_PATHS	0x08
#define CONFINE_SECCOMP		0x10
#define CONFINE_DEVICES		0x20
#define CONFINE_ALL		0x3f

/* One part's name in a spec ("seccomp"), for bit, or NULL. */
const char	*confine_name(unsigned bit);
/* The bit named name, "all" for CONFINE_ALL, or 0. */
unsigned	 confine_bit(const char *name);

/* What the first process applies, prepared by confine_prepare. */
struct confine {
	unsigned		 on;		/* CONFINE_* applied */
	int			 mask_tree;	/* confine_mask_tree's, or -1 */
	uint64_t		 keep_caps;
	int			 last_cap;
	void			*filter;	/* struct sock_filter[] */
	unsigned short		 filter_len;
};

/* Steps of confine_mounts and confine_apply, for messages. */
enum confine_step {
	CONFINE_STEP_MASK_TREE,		/* CONFINE_MASK_DIR, before pivot */
	CONFINE_STEP_MASK,		/* idx: confine_masked_path */
	CONFINE_STEP_READONLY,		/* idx: confine_readonly_path */
	CONFINE_STEP_NO_NEW_PRIVS,
	CONFINE_STEP_SECCOMP,
	CONFINE_STEP_CAPS,
};

int		 confine_prepare(struct confine *, const char *name,
		     const struct container_spec *, char **cause);
void		 confine_free(struct confine *);

/* In the container's first process, before pivot_root (the host's paths
 * still resolve): a detached copy of CONFINE_MASK_DIR's mount, for
 * confine_mounts to attach (a mount of the namespace it left cannot be
 * bound once the old root is gone).  Nothing if masked_paths is off.  0,
 * or -1 with errno. */
int		 confine_mask_tree(struct confine *);
/* In the container's first process, after pivot_root (paths are the
 * container's): mask and make read-only.  0, or -1 with errno and
 * *step, *idx set. */
int		 confine_mounts(const struct confine *, int *step, int *idx);
/* Last before exec: no_new_privs, seccomp, capabilities. */
int		 confine_apply(const struct confine *, int *step, int *idx);
/* "container NAME: cannot ..." for a failed step. */
void		 confine_cause(const char *name, int step, int idx, int err,
		     char **cause);

/* The empty directory bound read-only over masked directories: a bind
 * rather than a tmpfs of the container's own, so that a checkpoint names
 * it (an external mount of CRIU's) instead of archiving an empty tmpfs
 * with tar and gzip inside every dump's freeze and every restore.  Root's,
 * mode 0555, nothing in it.  One for the host: a container left
 * CAP_SYS_ADMIN ("unconfined": ["capabilities"]) could remount its bind
 * read-write and write there, as it could undo every mask anyway; the
 * next start or restore then refuses (confine_mask_dir_ready). */
#define CONFINE_MASK_DIR	CONFINE_RUNSTATEDIR "/tern-masked"
#ifdef RUNSTATEDIR
#define CONFINE_RUNSTATEDIR	RUNSTATEDIR
#else
#define CONFINE_RUNSTATEDIR	"/run"
#endif
/* Create CONFINE_MASK_DIR if missing and check that it is still what
 * masks must show: a directory of root's that nobody else may write, with
 * nothing in it.  0, or -1 with *cause saying what to fix. */
int		 confine_mask_dir_ready(char **cause);
/* CRIU's external mounts for the masked directories of the container
 * whose init is pid (its mount table): for a dump, "mnt[PATH]:KEY" for
 * each masked directory mounted there; for a restore (pid ignored),
 * "mnt[KEY]:CONFINE_MASK_DIR" for every key a dump may have named.
 * Appended to *ext (NULL-terminated, *n entries, grown with xreallocarray);
 * free each entry and the array. */
void		 confine_mask_externals(pid_t pid, int dump, char ***ext,
		     size_t *n);

/* Write the devices cgroup's list in dir (a cgroup v1 devices directory
 * with no process in it): if on has CONFINE_DEVICES, the allow-list plus
 * /dev/NAME for each NAME of host (NULL-terminated: the host nodes bound
 * into the container's /dev), else everything allowed. */
int		 confine_devices_cgroup(const char *name, const char *dir,
		     unsigned on, const char *const *host, char **cause);

#endif
