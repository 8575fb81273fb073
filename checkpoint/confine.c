#include "config.h"

#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#define LOG_MODULE "ckpt.confine"
#include "checkpoint/confine.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

static const char *const confine_names[] = {
	"capabilities", "no_new_privs", "masked_paths", "readonly_paths",
	"seccomp", "devices", NULL
};

/* runc's default capabilities: what a root workload needs for files,
 * users and its own processes, nothing that reaches the host. */
#define CAPBIT(c)	(1ULL << (c))
#define CONFINE_KEEP_CAPS (CAPBIT(CAP_CHOWN) | CAPBIT(CAP_DAC_OVERRIDE) | \
	CAPBIT(CAP_FSETID) | CAPBIT(CAP_FOWNER) | CAPBIT(CAP_MKNOD) | \
	CAPBIT(CAP_NET_RAW) | CAPBIT(CAP_SETGID) | CAPBIT(CAP_SETUID) | \
	CAPBIT(CAP_SETFCAP) | CAPBIT(CAP_SETPCAP) | \
	CAPBIT(CAP_NET_BIND_SERVICE) | CAPBIT(CAP_SYS_CHROOT) | \
	CAPBIT(CAP_KILL) | CAPBIT(CAP_AUDIT_WRITE))

/* runc's masked paths: files get /dev/null, directories CONFINE_MASK_DIR
 * (read-only).  Missing ones are skipped. */
static const char *const confine_masked[] = {
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
	"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
	"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap", NULL
};

/* Bound read-only onto themselves. */
static const char *const confine_readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
	"/proc/sysrq-trigger", NULL
};

/* System calls that act on the whole machine rather than on the
 * container, or are a common step of kernel exploits: EPERM.  Most need a
 * capability the container no longer has; the filter also holds when
 * capabilities are turned off, and shuts the user-namespace door (where a
 * process gets every capability back). */
static const char *const confine_denied[] = {
	/* modules, kexec, reboot */
	"init_module", "finit_module", "delete_module", "create_module",
	"query_module", "get_kernel_syms", "kexec_load", "kexec_file_load",
	"reboot",
	/* mounts and namespaces */
	"mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare",
	"setns",
	/* kernel keyrings (not namespaced) */
	"keyctl", "add_key", "request_key",
	/* clocks */
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
	/* swap, accounting, quotas, the kernel log */
	"swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
	/* open any inode of a file system by handle (the "shocker" escape) */
	"open_by_handle_at", "name_to_handle_at",
	/* in-kernel programs, tracing, fault handling */
	"bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
	"fanotify_init",
	/* raw I/O ports, old and odd interfaces */
	"iopl", "ioperm", "vm86", "vm86old", "uselib", "_sysctl", "sysfs",
	"nfsservctl", "ustat",
	NULL
};

/* clone flags that make a namespace: refused like unshare. */
static const unsigned long confine_clone_ns[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
	CLONE_NEWNET, CLONE_NEWCGROUP, 0x00000080UL /* CLONE_NEWTIME */, 0
};

/* personality() flags that weaken the address space (no ASLR,
 * executable data, a mapping at 0). */
static const unsigned long confine_personality[] = {
	0x0040000UL /* ADDR_NO_RANDOMIZE */, 0x0100000UL /* MMAP_PAGE_ZERO */,
	0x0400000UL /* READ_IMPLIES_EXEC */, 0
};

/* The devices cgroup: what every container may open besides the host
 * nodes bound into its /dev, which are added by their device numbers.
 * mknod is allowed (runc's default): a node is harmless if it cannot be
 * opened. */
static const char *const confine_devices_allowed[] = {
	"c *:* m", "b *:* m",
	"c 5:0 rwm",		/* /dev/tty */
	"c 5:1 rwm",		/* /dev/console */
	"c 5:2 rwm",		/* /dev/ptmx */
	"c 136:* rwm",		/* /dev/pts/N */
	NULL
};

const char *
confine_name(unsigned bit)
{
	size_t	i;

	for (i = 0; confine_names[i] != NULL; i++) {
		if (bit == 1U << i)
			return confine_names[i];
	}
	return NULL;
}

unsigned
confine_bit(const char *name)
{
	size_t	i;

	if (strcmp(name, "all") == 0)
		return CONFINE_ALL;
	for (i = 0; confine_names[i] != NULL; i++) {
		if (strcmp(name, confine_names[i]) == 0)
			return 1U << i;
	}
	return 0;
}

static int
confine_last_cap(void)
{
	char	*text;
	long	 v = CAP_LAST_CAP;

	if ((text = read_file_bounded("/proc/sys/kernel/cap_last_cap", 64,
	    NULL, NULL)) != NULL) {
		v = strtol(text, NULL, 10);
		free(text);
	}
	if (v < 0 || v > 63)
		v = CAP_LAST_CAP;
	return (int)v;
}

/* Build the filter with libseccomp and take its BPF program, so the
 * first process only has to hand it to the kernel. */
static int
confine_seccomp_build(struct confine *c, const char *name, char **cause)
{
	scmp_filter_ctx	 ctx;
	struct stat	 st;
	const char	*what = "seccomp_init";
	size_t		 i;
	ssize_t		 n;
	int		 fd = -1, rc = -1, nr, r = 0;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* 32-bit and x32 system calls of an x86-64 host too: a filter for
	 * the native ABI alone would kill a 32-bit program. */
	if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
		what = "seccomp_arch_add";
		if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) != 0 &&
		    r != -EEXIST)
			goto out;
		if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) != 0 &&
		    r != -EEXIST)
			goto out;
	}
	what = "seccomp_rule_add";
	for (i = 0; confine_denied[i] != NULL; i++) {
		nr = seccomp_syscall_resolve_name(confine_denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr,
		    0)) != 0 && r != -EDOM)
			goto out;
	}
	for (i = 0; confine_clone_ns[i] != 0; i++) {
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ,
		    confine_clone_ns[i], confine_clone_ns[i]))) != 0)
			goto out;
	}
	for (i = 0; confine_personality[i] != 0; i++) {
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_MASKED_EQ,
		    confine_personality[i], confine_personality[i]))) != 0)
			goto out;
	}
	/* clone3 passes its flags in memory a filter cannot read: ENOSYS
	 * makes the C library fall back to clone, which is checked. */
	nr = seccomp_syscall_resolve_name("clone3");
	if (nr != __NR_SCMP_ERROR && (r = seccomp_rule_add(ctx,
	    SCMP_ACT_ERRNO(ENOSYS), nr, 0)) != 0 && r != -EDOM)
		goto out;
	r = 0;

	what = "memfd_create";
	if ((fd = memfd_create("tern-seccomp", MFD_CLOEXEC)) == -1) {
		r = -errno;
		goto out;
	}
	what = "seccomp_export_bpf";
	if ((r = seccomp_export_bpf(ctx, fd)) != 0)
		goto out;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size %
	    (off_t)sizeof(struct sock_filter) != 0 ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		r = -EINVAL;
		goto out;
	}
	c->filter = xmalloc((size_t)st.st_size);
	n = pread(fd, c->filter, (size_t)st.st_size, 0);
	if (n != (ssize_t)st.st_size) {
		r = n == -1 ? -errno : -EIO;
		goto out;
	}
	c->filter_len = (unsigned short)(st.st_size /
	    (off_t)sizeof(struct sock_filter));
	rc = 0;
out:
	if (rc != 0) {
		set_cause(cause, "container %s: cannot build its seccomp "
		    "filter: %s: %s", name, what, strerror(r < 0 ? -r : EIO));
	}
	if (fd != -1)
		close(fd);
	if (ctx != NULL)
		seccomp_release(ctx);
	return rc;
}

int
confine_prepare(struct confine *c, const char *name,
    const struct container_spec *spec, char **cause)
{
	memset(c, 0, sizeof *c);
	c->mask_tree = -1;
	c->on = CONFINE_ALL & ~spec->unconfined;
	if ((c->on & CONFINE_MASKED_PATHS) && confine_mask_dir_ready(cause) != 0)
		return -1;
	c->keep_caps = CONFINE_KEEP_CAPS;
	c->last_cap = confine_last_cap();
	if ((c->on & CONFINE_SECCOMP) &&
	    confine_seccomp_build(c, name, cause) != 0) {
		confine_free(c);
		return -1;
	}
	return 0;
}

void
confine_free(struct confine *c)
{
	free(c->filter);
	c->filter = NULL;
	c->filter_len = 0;
	if (c->mask_tree != -1)
		close(c->mask_tree);
	c->mask_tree = -1;
}

int
confine_mask_dir_ready(char **cause)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		*parent, *slash;
	int		 rc;

	parent = xstrdup(CONFINE_MASK_DIR);
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent)
		*slash = '\0';
	rc = mkdir_p(parent, 0755, cause);
	free(parent);
	if (rc != 0)
		return -1;
	if (mkdir(CONFINE_MASK_DIR, 0555) != 0 && errno != EEXIST) {
		set_cause(cause, "cannot create %s, the empty directory masked "
		    "paths show: %s", CONFINE_MASK_DIR, strerror(errno));
		return -1;
	}
	if (lstat(CONFINE_MASK_DIR, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != 0 || (st.st_mode & 022) != 0) {
		set_cause(cause, "%s, the empty directory containers see over "
		    "masked paths such as /proc/acpi, is not a directory of "
		    "root's that only root may write: remove it (ternd "
		    "creates it again)", CONFINE_MASK_DIR);
		return -1;
	}
	if ((d = opendir(CONFINE_MASK_DIR)) == NULL) {
		set_cause(cause, "%s: %s", CONFINE_MASK_DIR, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		set_cause(cause, "%s, the empty directory containers see over "
		    "masked paths such as /proc/acpi, holds %s: remove what "
		    "is in it", CONFINE_MASK_DIR, de->d_name);
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

int
confine_mask_tree(struct confine *c)
{
	if (!(c->on & CONFINE_MASKED_PATHS))
		return 0;
	c->mask_tree = open_tree(AT_FDCWD, CONFINE_MASK_DIR, OPEN_TREE_CLONE |
	    OPEN_TREE_CLOEXEC);
	return c->mask_tree == -1 ? -1 : 0;
}

/* A masked directory's key among CRIU's external mounts: "mask" and its
 * path with '/' as '-' ("mask-proc-acpi"). */
static void
confine_mask_key(const char *path, char *key, size_t size)
{
	size_t	i;

	snprintf(key, size, "mask%s", path);
	for (i = 0; key[i] != '\0'; i++)
		if (key[i] == '/')
			key[i] = '-';
}

/* The masked directories mounted over in the mount table of pid's
 * namespace with what a mask is: CONFINE_MASK_DIR's filesystem (dev), or
 * a tmpfs (the masks of a container an older ternd started).  A bit per
 * confine_masked entry.  Anything else there (a workload allowed to mount
 * its own) is left to CRIU as it is. */
static unsigned
confine_masks_mounted(pid_t pid, dev_t dev)
{
	struct mountinfo_line	 mi;
	char			 file[64], *line = NULL;
	size_t			 cap = 0, i;
	unsigned		 found = 0;
	FILE			*fp;

	snprintf(file, sizeof file, "/proc/%ld/mountinfo", (long)pid);
	if ((fp = fopen(file, "re")) == NULL)
		return 0;
	while (getline(&line, &cap, fp) != -1) {
		if (mountinfo_parse(line, &mi) != 0 ||
		    (makedev(mi.major, mi.minor) != dev &&
		    strcmp(mi.fstype, "tmpfs") != 0))
			continue;
		for (i = 0; confine_masked[i] != NULL; i++)
			if (strcmp(mi.mountpoint, confine_masked[i]) == 0)
				found |= 1u << i;
	}
	free(line);
	fclose(fp);
	return found;
}

void
confine_mask_externals(pid_t pid, int dump, char ***ext, size_t *n)
{
	struct stat	 st;
	char		 key[64];
	const char	*p;
	unsigned	 mounted = 0;
	size_t		 i;

	/* Only directories are masked with the directory or a tmpfs (files
	 * get the host's /dev/null, of devtmpfs). */
	if (dump)
		mounted = confine_masks_mounted(pid,
		    stat(CONFINE_MASK_DIR, &st) == 0 ? st.st_dev : (dev_t)-1);
	for (i = 0; (p = confine_masked[i]) != NULL; i++) {
		if (dump && !(mounted & (1u << i)))
			continue;
		confine_mask_key(p, key, sizeof key);
		*ext = xreallocarray(*ext, *n + 2, sizeof **ext);
		if (dump)
			xasprintf(&(*ext)[*n], "mnt[%s]:%s", p, key);
		else
			xasprintf(&(*ext)[*n], "mnt[%s]:%s", key,
			    CONFINE_MASK_DIR);
		(*ext)[++*n] = NULL;
	}
}

/* The flags of the mount at path, for a remount that may not clear them. */
static unsigned long
confine_mount_flags(const char *path)
{
	struct statfs	sf;
	unsigned long	flags = 0;

	if (statfs(path, &sf) != 0)
		return MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (sf.f_flags & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sf.f_flags & ST_NODEV)
		flags |= MS_NODEV;
	if (sf.f_flags & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sf.f_flags & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sf.f_flags & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sf.f_flags & ST_RELATIME)
		flags |= MS_RELATIME;
	return flags;
}

int
confine_mounts(const struct confine *c, int *step, int *idx)
{
	struct stat	st;
	const char	*p, *first = NULL;
	size_t		i;

	if (c->on & CONFINE_MASKED_PATHS) {
		*step = CONFINE_STEP_MASK;
		for (i = 0; (p = confine_masked[i]) != NULL; i++) {
			*idx = (int)i;
			if (stat(p, &st) != 0) {
				if (errno == ENOENT || errno == ENOTDIR)
					continue;
				return -1;
			}
			if (!S_ISDIR(st.st_mode)) {
				if (mount("/dev/null", p, NULL, MS_BIND,
				    NULL) != 0)
					return -1;
				continue;
			}
			/* The first directory takes the copy of
			 * CONFINE_MASK_DIR, the others bind that one. */
			if (first == NULL) {
				if (move_mount(c->mask_tree, "", AT_FDCWD, p,
				    MOVE_MOUNT_F_EMPTY_PATH) != 0)
					return -1;
				first = p;
			} else if (mount(first, p, NULL, MS_BIND, NULL) != 0)
				return -1;
			if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND |
			    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    NULL) != 0)
				return -1;
		}
	}
	if (c->on & CONFINE_READONLY_PATHS) {
		*step = CONFINE_STEP_READONLY;
		for (i = 0; (p = confine_readonly[i]) != NULL; i++) {
			*idx = (int)i;
			if (stat(p, &st) != 0) {
				if (errno == ENOENT || errno == ENOTDIR)
					continue;
				return -1;
			}
			if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) != 0)
				return -1;
			if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND |
			    MS_RDONLY | confine_mount_flags(p), NULL) != 0)
				return -1;
		}
	}
	return 0;
}

int
confine_apply(const struct confine *c, int *step, int *idx)
{
	struct __user_cap_header_struct	hdr;
	struct __user_cap_data_struct	data[2];
	struct sock_fprog		prog;
	int				cap;

	*idx = 0;
	if (c->on & CONFINE_NO_NEW_PRIVS) {
		*step = CONFINE_STEP_NO_NEW_PRIVS;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
			return -1;
	}
	/* Before the capabilities go: without no_new_privs, installing a
	 * filter needs CAP_SYS_ADMIN. */
	if ((c->on & CONFINE_SECCOMP) && c->filter_len != 0) {
		*step = CONFINE_STEP_SECCOMP;
		prog.len = c->filter_len;
		prog.filter = c->filter;
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &prog) != 0)
			return -1;
	}
	if (c->on & CONFINE_CAPS) {
		*step = CONFINE_STEP_CAPS;
		for (cap = 0; cap <= c->last_cap; cap++) {
			*idx = cap;
			if (c->keep_caps & CAPBIT(cap))
				continue;
			if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
			    errno != EINVAL)
				return -1;
		}
		*idx = -1;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0,
		    0) != 0 && errno != EINVAL)
			return -1;
		memset(&hdr, 0, sizeof hdr);
		memset(data, 0, sizeof data);
		hdr.version = _LINUX_CAPABILITY_VERSION_3;
		hdr.pid = 0;
		data[0].effective = data[0].permitted = data[0].inheritable =
		    (uint32_t)c->keep_caps;
		data[1].effective = data[1].permitted = data[1].inheritable =
		    (uint32_t)(c->keep_caps >> 32);
		if (syscall(SYS_capset, &hdr, data) != 0)
			return -1;
	}
	return 0;
}

void
confine_cause(const char *name, int step, int idx, int err, char **cause)
{
	const char	*why = strerror(err);

	switch (step) {
	case CONFINE_STEP_MASK_TREE:
		set_cause(cause, "container %s: cannot take %s, the empty "
		    "directory masked paths show: %s (or list \"masked_paths\" "
		    "in tern.unconfined)", name, CONFINE_MASK_DIR, why);
		break;
	case CONFINE_STEP_MASK:
		if (idx < 0 || (size_t)idx >= sizeof confine_masked /
		    sizeof confine_masked[0] - 1)
			idx = 0;
		set_cause(cause, "container %s: cannot mask %s: %s (or list "
		    "\"masked_paths\" in tern.unconfined)", name,
		    confine_masked[idx], why);
		break;
	case CONFINE_STEP_READONLY:
		if (idx < 0 || (size_t)idx >= sizeof confine_readonly /
		    sizeof confine_readonly[0] - 1)
			idx = 0;
		set_cause(cause, "container %s: cannot make %s read-only: %s "
		    "(or list \"readonly_paths\" in tern.unconfined)", name,
		    confine_readonly[idx], why);
		break;
	case CONFINE_STEP_NO_NEW_PRIVS:
		set_cause(cause, "container %s: cannot set no_new_privs: %s",
		    name, why);
		break;
	case CONFINE_STEP_SECCOMP:
		set_cause(cause, "container %s: cannot install its seccomp "
		    "filter: %s (a kernel without CONFIG_SECCOMP_FILTER? or "
		    "list \"seccomp\" in tern.unconfined)", name, why);
		break;
	case CONFINE_STEP_CAPS:
		if (idx >= 0)
			set_cause(cause, "container %s: cannot drop capability "
			    "%d from its bounding set: %s", name, idx, why);
		else
			set_cause(cause, "container %s: cannot set its "
			    "capabilities: %s", name, why);
		break;
	default:
		set_cause(cause, "container %s: confinement step %d failed: "
		    "%s", name, step, why);
		break;
	}
}

/* Write one rule.  An allow rule the parent cgroup does not allow
 * (optional) is left out: the container cannot have more than ternd. */
static int
confine_write(const char *name, const char *path, const char *rule,
    int optional, char **cause)
{
	char	*why = NULL;

	if (container_write_file(name, path, rule, &why) == 0)
		return 0;
	if (errno == EPERM && optional) {
		log_debug("container %s: %s: \"%s\" not allowed to ternd's "
		    "own cgroup, left out", name, path, rule);
		free(why);
		return 0;
	}
	if (errno == EPERM)
		set_cause(cause, "%s (the devices cgroup ternd is in does not "
		    "allow every device: an unconfined container cannot have "
		    "more)", why);
	else
		set_cause(cause, "%s", why);
	free(why);
	return -1;
}

int
confine_devices_cgroup(const char *name, const char *dir, unsigned on,
    const char *const *host, char **cause)
{
	struct stat		 st;
	char			 allow[PATH_MAX], deny[PATH_MAX], rule[64];
	char			 node[PATH_MAX];
	size_t			 i;

	snprintf(allow, sizeof allow, "%s/devices.allow", dir);
	snprintf(deny, sizeof deny, "%s/devices.deny", dir);
	/* A reused cgroup keeps its list: start from one state. */
	if (!(on & CONFINE_DEVICES))
		return confine_write(name, allow, "a", 0, cause);
	if (confine_write(name, deny, "a", 0, cause) != 0)
		return -1;
	for (i = 0; confine_devices_allowed[i] != NULL; i++) {
		if (confine_write(name, allow, confine_devices_allowed[i], 1,
		    cause) != 0)
			return -1;
	}
	for (i = 0; host[i] != NULL; i++) {
		snprintf(node, sizeof node, "/dev/%s", host[i]);
		if (stat(node, &st) != 0 || !S_ISCHR(st.st_mode)) {
			set_cause(cause, "container %s: %s is not a character "
			    "device on this host", name, node);
			return -1;
		}
		snprintf(rule, sizeof rule, "c %u:%u rwm", major(st.st_rdev),
		    minor(st.st_rdev));
		if (confine_write(name, allow, rule, 1, cause) != 0)
			return -1;
	}
	return 0;
}
