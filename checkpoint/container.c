#include "config.h"

#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <net/if.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_MODULE "ckpt.container"
#include "checkpoint/confine.h"
#include "checkpoint/container.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* How long the first process may take from clone to exec. */
#define CONTAINER_START_TIMEOUT_MS	10000
/* How long freezing, thawing and emptying a cgroup may take. */
#define CONTAINER_WAIT_MS		5000
#define CONTAINER_POLL_MS		10

#define CONTAINER_NAME_RULE \
	"1..63 characters of a-z, 0-9 and '-', not starting or ending with '-'"

/* The cgroup v1 controllers every container is in. */
static const char *const container_controllers[] = {
	"memory", "cpu", "pids", "freezer", "devices", NULL
};
#define CONTAINER_NCONTROLLERS \
	(sizeof container_controllers / sizeof container_controllers[0] - 1)

/* The device nodes bind-mounted from the host into /dev. */
static const char *const container_devices[] = {
	"null", "zero", "full", "random", "urandom", NULL
};
#define CONTAINER_NDEVICES \
	(sizeof container_devices / sizeof container_devices[0] - 1)

/* The links made in /dev: name, target. */
static const char *const container_dev_links[][2] = {
	{ "fd", "/proc/self/fd" },
	{ "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" },
	{ "ptmx", "pts/ptmx" },
};
#define CONTAINER_NDEV_LINKS \
	(sizeof container_dev_links / sizeof container_dev_links[0])

/* Steps of the first process before exec; one is reported on failure. */
enum launch_step {
	STEP_SETSID,
	STEP_PRIVATE,
	STEP_LOOPBACK,
	STEP_BIND_ROOT,
	STEP_PROC,
	STEP_DEV,
	STEP_DEV_NODE,		/* idx: container_devices */
	STEP_DEV_BIND,		/* idx: container_devices */
	STEP_DEV_LINK,		/* idx: container_dev_links */
	STEP_DEVPTS,
	STEP_TMP,
	STEP_CONSOLE_BIND,
	STEP_PIVOT,
	STEP_READONLY,
	STEP_HOSTNAME,
	STEP_CONFINE,		/* sub, idx: confine_step and its idx */
	STEP_STDIN,
	STEP_CONSOLE,
	STEP_CWD,
	STEP_CLOSE,
	STEP_EXEC,
};

/* What the first process writes to the error pipe before exiting 127. */
struct launch_error {
	int	step;
	int	sub;
	int	idx;
	int	err;
};

/* Everything the first process needs, prepared before clone: between
 * clone and exec it makes system calls only (no malloc, no stdio), since
 * another thread of the caller may have held a lock at clone time. */
struct launch {
	const char		*name;
	const struct container_spec *spec;
	char			*root;		/* realpath of root.path */
	char			*proc;
	char			*dev;
	char			*dev_nodes[CONTAINER_NDEVICES];
	char			*host_nodes[CONTAINER_NDEVICES];
	char			*dev_links[CONTAINER_NDEV_LINKS];
	char			*devpts;
	char			*tmp;		/* NULL: no /tmp in the rootfs */
	char			*console;	/* in the rootfs, host view */
	const char		*hostname;
	char			**candidates;	/* where to find args[0] */
	int			 go_fd;		/* read: released by the parent */
	int			 err_fd;	/* write: struct launch_error */
	int			 parent_fds[2];	/* the parent's ends, closed */
	struct confine		 confine;
};

static void __attribute__((noreturn))
container_child_fail_sub(struct launch *l, enum launch_step step, int sub,
    int idx, int err)
{
	struct launch_error	e;
	ssize_t			n;

	e.step = step;
	e.sub = sub;
	e.idx = idx;
	e.err = err;
	do
		n = write(l->err_fd, &e, sizeof e);
	while (n == -1 && errno == EINTR);
	_exit(127);
}

static void __attribute__((noreturn))
container_child_fail(struct launch *l, enum launch_step step, int idx,
    int err)
{
	container_child_fail_sub(l, step, 0, idx, err);
}

/* Bring lo up in the new network namespace. */
static int
container_child_loopback(void)
{
	struct ifreq	ifr;
	int		fd, rc = -1;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return rc;
}

/* Make the read-only bind mount of "/" keep the flags it has. */
static unsigned long
container_child_mount_flags(const char *path)
{
	struct statfs	sf;
	unsigned long	flags = 0;

	/* statfs, not statvfs: a plain system call. */
	if (statfs(path, &sf) != 0)
		return 0;
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

/* The first process: pid 1 of the container.  Never returns. */
static void __attribute__((noreturn))
container_child(struct launch *l)
{
	const struct container_spec	*spec = l->spec;
	struct sigaction		 sa;
	sigset_t			 none;
	char				 c;
	ssize_t				 n;
	size_t				 i;
	int				 fd, sig, err, first_err = 0;
	int				 sub, idx;

	/* The caller's handlers must not run here; blocked since clone. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < _NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);

	/* Only the parent's end may keep the pipe open: EOF if it dies. */
	close(l->parent_fds[0]);
	close(l->parent_fds[1]);

	/* Keep the pipes clear of 0, 1 and 2, which are replaced below. */
	if (l->err_fd < 3) {
		if ((fd = fcntl(l->err_fd, F_DUPFD_CLOEXEC, 3)) == -1)
			_exit(127);
		l->err_fd = fd;
	}
	if (l->go_fd < 3) {
		if ((fd = fcntl(l->go_fd, F_DUPFD_CLOEXEC, 3)) == -1)
			_exit(127);
		l->go_fd = fd;
	}
	umask(022);

	if (setsid() == -1)
		container_child_fail(l, STEP_SETSID, 0, errno);

	/* Wait until the parent has put us into the cgroups. */
	do
		n = read(l->go_fd, &c, 1);
	while (n == -1 && errno == EINTR);
	if (n != 1)
		_exit(127);
	close(l->go_fd);

	if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) != 0)
		container_child_fail(l, STEP_PRIVATE, 0, errno);
	if (spec->net_ns && container_child_loopback() != 0)
		container_child_fail(l, STEP_LOOPBACK, 0, errno);

	if (mount(l->root, l->root, NULL, MS_BIND | MS_REC, NULL) != 0)
		container_child_fail(l, STEP_BIND_ROOT, 0, errno);
	if (mount("proc", l->proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	    NULL) != 0)
		container_child_fail(l, STEP_PROC, 0, errno);
	if (mount("tmpfs", l->dev, "tmpfs", MS_NOSUID | MS_STRICTATIME,
	    "mode=755,size=1024k") != 0)
		container_child_fail(l, STEP_DEV, 0, errno);
	for (i = 0; i < CONTAINER_NDEVICES; i++) {
		fd = open(l->dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0666);
		if (fd == -1)
			container_child_fail(l, STEP_DEV_NODE, (int)i, errno);
		close(fd);
		if (mount(l->host_nodes[i], l->dev_nodes[i], NULL, MS_BIND,
		    NULL) != 0)
			container_child_fail(l, STEP_DEV_BIND, (int)i, errno);
	}
	for (i = 0; i < CONTAINER_NDEV_LINKS; i++) {
		if (symlink(container_dev_links[i][1], l->dev_links[i]) != 0)
			container_child_fail(l, STEP_DEV_LINK, (int)i, errno);
	}
	/* A devpts of its own (as runc gives), so a workload needs no mount
	 * of its own for a pseudo-terminal. */
	if (mkdir(l->devpts, 0755) != 0 || mount("devpts", l->devpts,
	    "devpts", MS_NOSUID | MS_NOEXEC,
	    "newinstance,ptmxmode=0666,mode=0620") != 0)
		container_child_fail(l, STEP_DEVPTS, 0, errno);
	if (l->tmp != NULL && mount("tmpfs", l->tmp, "tmpfs",
	    MS_NOSUID | MS_NODEV, "mode=1777") != 0)
		container_child_fail(l, STEP_TMP, 0, errno);

	/* A read-only rootfs keeps its console log writable. */
	if (spec->root_readonly) {
		fd = open(l->console, O_WRONLY | O_CREAT | O_APPEND |
		    O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd == -1)
			container_child_fail(l, STEP_CONSOLE, 0, errno);
		close(fd);
		if (mount(l->console, l->console, NULL, MS_BIND, NULL) != 0)
			container_child_fail(l, STEP_CONSOLE_BIND, 0, errno);
	}

	/* Masks show a directory of the host's: take it while its path
	 * still resolves. */
	if (confine_mask_tree(&l->confine) != 0)
		container_child_fail_sub(l, STEP_CONFINE,
		    CONFINE_STEP_MASK_TREE, 0, errno);

	/* The old root is stacked on the new one; detach it. */
	if (chdir(l->root) != 0)
		container_child_fail(l, STEP_PIVOT, 0, errno);
	if (syscall(SYS_pivot_root, ".", ".") != 0)
		container_child_fail(l, STEP_PIVOT, 0, errno);
	if (umount2(".", MNT_DETACH) != 0)
		container_child_fail(l, STEP_PIVOT, 1, errno);
	if (chdir("/") != 0)
		container_child_fail(l, STEP_PIVOT, 0, errno);

	if (spec->root_readonly && mount(NULL, "/", NULL, MS_REMOUNT |
	    MS_BIND | MS_RDONLY | container_child_mount_flags("/"),
	    NULL) != 0)
		container_child_fail(l, STEP_READONLY, 0, errno);

	if (sethostname(l->hostname, strlen(l->hostname)) != 0)
		container_child_fail(l, STEP_HOSTNAME, 0, errno);
	if (confine_mounts(&l->confine, &sub, &idx) != 0)
		container_child_fail_sub(l, STEP_CONFINE, sub, idx, errno);

	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		container_child_fail(l, STEP_STDIN, 0, errno);
	if (dup2(fd, 0) == -1)
		container_child_fail(l, STEP_STDIN, 0, errno);
	if (fd != 0)
		close(fd);
	fd = open("/" CONTAINER_CONSOLE_LOG, O_WRONLY | O_CREAT | O_APPEND |
	    O_NOFOLLOW, 0640);
	if (fd == -1)
		container_child_fail(l, STEP_CONSOLE, 0, errno);
	if (dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
		container_child_fail(l, STEP_CONSOLE, 0, errno);
	if (fd > 2)
		close(fd);

	if (chdir(spec->cwd) != 0)
		container_child_fail(l, STEP_CWD, 0, errno);

	/* Nothing of the caller's stays open; err_fd closes on exec. */
	if (l->err_fd > 3 && close_range(3, (unsigned)l->err_fd - 1, 0) != 0)
		container_child_fail(l, STEP_CLOSE, 0, errno);
	if (close_range((unsigned)l->err_fd + 1, ~0U, 0) != 0)
		container_child_fail(l, STEP_CLOSE, 0, errno);

	/* Last: the filter and the capabilities would refuse the steps
	 * above. */
	if (confine_apply(&l->confine, &sub, &idx) != 0)
		container_child_fail_sub(l, STEP_CONFINE, sub, idx, errno);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; l->candidates[i] != NULL; i++) {
		execve(l->candidates[i], spec->args, spec->env);
		err = errno;
		if (err == EACCES)
			first_err = EACCES;
		else if (err != ENOENT && err != ENOTDIR) {
			first_err = err;
			break;
		}
		if (first_err == 0)
			first_err = err;
	}
	container_child_fail(l, STEP_EXEC, 0, first_err == 0 ? ENOENT :
	    first_err);
}

/* The message for a failed step of the first process. */
static void
container_child_cause(struct launch *l, const struct launch_error *e,
    char **cause)
{
	const struct container_spec	*spec = l->spec;
	const char			*name = l->name, *why;
	int				 idx = e->idx;

	why = strerror(e->err);
	if (idx < 0)
		idx = 0;
	switch (e->step) {
	case STEP_SETSID:
		set_cause(cause, "container %s: cannot start a new session: "
		    "%s", name, why);
		break;
	case STEP_PRIVATE:
		set_cause(cause, "container %s: cannot make its mounts "
		    "private: %s", name, why);
		break;
	case STEP_LOOPBACK:
		set_cause(cause, "container %s: cannot bring lo up in its "
		    "network namespace: %s", name, why);
		break;
	case STEP_BIND_ROOT:
		set_cause(cause, "container %s: cannot bind-mount %s onto "
		    "itself: %s", name, l->root, why);
		break;
	case STEP_PROC:
		set_cause(cause, "container %s: cannot mount proc on %s: %s",
		    name, l->proc, why);
		break;
	case STEP_DEV:
		set_cause(cause, "container %s: cannot mount a tmpfs on %s: "
		    "%s", name, l->dev, why);
		break;
	case STEP_DEV_NODE:
		if ((size_t)idx >= CONTAINER_NDEVICES)
			idx = 0;
		set_cause(cause, "container %s: cannot create %s: %s", name,
		    l->dev_nodes[idx], why);
		break;
	case STEP_DEV_BIND:
		if ((size_t)idx >= CONTAINER_NDEVICES)
			idx = 0;
		set_cause(cause, "container %s: cannot bind-mount %s onto %s: "
		    "%s", name, l->host_nodes[idx], l->dev_nodes[idx], why);
		break;
	case STEP_DEV_LINK:
		if ((size_t)idx >= CONTAINER_NDEV_LINKS)
			idx = 0;
		set_cause(cause, "container %s: cannot create the link %s: %s",
		    name, l->dev_links[idx], why);
		break;
	case STEP_DEVPTS:
		set_cause(cause, "container %s: cannot mount a devpts on %s: "
		    "%s", name, l->devpts, why);
		break;
	case STEP_CONFINE:
		confine_cause(name, e->sub, e->idx, e->err, cause);
		break;
	case STEP_TMP:
		set_cause(cause, "container %s: cannot mount a tmpfs on %s: "
		    "%s", name, l->tmp, why);
		break;
	case STEP_CONSOLE_BIND:
		set_cause(cause, "container %s: cannot bind-mount %s onto "
		    "itself (to keep it writable on a read-only rootfs): %s",
		    name, l->console, why);
		break;
	case STEP_PIVOT:
		set_cause(cause, "container %s: cannot %s %s: %s", name,
		    idx == 1 ? "detach the host's root after pivot_root into" :
		    "pivot_root into", l->root, why);
		break;
	case STEP_READONLY:
		set_cause(cause, "container %s: cannot make %s read-only: %s",
		    name, l->root, why);
		break;
	case STEP_HOSTNAME:
		set_cause(cause, "container %s: cannot set the host name to "
		    "%s: %s", name, l->hostname, why);
		break;
	case STEP_STDIN:
		set_cause(cause, "container %s: cannot open /dev/null inside "
		    "the container as stdin: %s", name, why);
		break;
	case STEP_CONSOLE:
		set_cause(cause, "container %s: cannot open %s for stdout and "
		    "stderr: %s (it must be a regular file, not a link)", name,
		    l->console, why);
		break;
	case STEP_CWD:
		set_cause(cause, "container %s: process.cwd %s: %s inside the "
		    "container (create %s%s or fix process.cwd)", name,
		    spec->cwd, why, l->root, spec->cwd);
		break;
	case STEP_CLOSE:
		set_cause(cause, "container %s: cannot close the launcher's "
		    "descriptors: %s", name, why);
		break;
	case STEP_EXEC:
		if (strchr(spec->args[0], '/') != NULL) {
			set_cause(cause, "container %s: cannot execute %s "
			    "inside %s: %s (check process.args[0]%s)", name,
			    spec->args[0], l->root, why, e->err == ENOENT ?
			    "; a dynamically linked program also needs its "
			    "loader in the rootfs" : "");
		} else {
			set_cause(cause, "container %s: cannot execute %s "
			    "(looked in PATH %s inside %s): %s (check "
			    "process.args[0] and PATH in process.env%s)", name,
			    spec->args[0], container_spec_path(spec), l->root,
			    why, e->err == ENOENT ? "; a dynamically linked "
			    "program also needs its loader in the rootfs" : "");
		}
		break;
	default:
		set_cause(cause, "container %s: its first process failed "
		    "(step %d): %s", name, e->step, why);
		break;
	}
}

static void
container_launch_free(struct launch *l)
{
	size_t	i;

	free(l->root);
	free(l->proc);
	free(l->dev);
	for (i = 0; i < CONTAINER_NDEVICES; i++) {
		free(l->dev_nodes[i]);
		free(l->host_nodes[i]);
	}
	for (i = 0; i < CONTAINER_NDEV_LINKS; i++)
		free(l->dev_links[i]);
	free(l->devpts);
	free(l->tmp);
	free(l->console);
	confine_free(&l->confine);
	if (l->candidates != NULL) {
		for (i = 0; l->candidates[i] != NULL; i++)
			free(l->candidates[i]);
		free(l->candidates);
	}
}

/* dir must be a real directory (not a link) inside the rootfs. */
static int
container_need_dir(const char *name, const char *root, const char *dir,
    char **cause)
{
	struct stat	st;
	char		*path;
	int		 rc = -1;

	xasprintf(&path, "%s/%s", root, dir);
	if (lstat(path, &st) != 0) {
		set_cause(cause, "container %s: %s: %s: the rootfs needs "
		    "empty proc and dev directories (mkdir %s)", name, path,
		    strerror(errno), path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_cause(cause, "container %s: %s is not a directory: the "
		    "rootfs needs empty proc and dev directories", name, path);
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

/* Fill everything the first process needs. */
static int
container_prepare(struct launch *l, char **cause)
{
	const struct container_spec	*spec = l->spec;
	struct stat			 st;
	const char			*path, *p, *e;
	size_t				 i, n;

	if ((l->root = realpath(spec->root, NULL)) == NULL) {
		set_cause(cause, "container %s: root.path %s: %s: create the "
		    "rootfs there or fix root.path in the spec", l->name,
		    spec->root, strerror(errno));
		return -1;
	}
	if (stat(l->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		set_cause(cause, "container %s: root.path %s is not a "
		    "directory: fix root.path in the spec", l->name,
		    spec->root);
		return -1;
	}
	if (strcmp(l->root, "/") == 0) {
		set_cause(cause, "container %s: root.path %s is the host's "
		    "root directory: a container needs its own rootfs",
		    l->name, spec->root);
		return -1;
	}
	if (container_need_dir(l->name, l->root, "proc", cause) != 0 ||
	    container_need_dir(l->name, l->root, "dev", cause) != 0)
		return -1;

	xasprintf(&l->proc, "%s/proc", l->root);
	xasprintf(&l->dev, "%s/dev", l->root);
	for (i = 0; i < CONTAINER_NDEVICES; i++) {
		xasprintf(&l->dev_nodes[i], "%s/dev/%s", l->root,
		    container_devices[i]);
		xasprintf(&l->host_nodes[i], "/dev/%s", container_devices[i]);
	}
	for (i = 0; i < CONTAINER_NDEV_LINKS; i++) {
		xasprintf(&l->dev_links[i], "%s/dev/%s", l->root,
		    container_dev_links[i][0]);
	}
	xasprintf(&l->devpts, "%s/dev/pts", l->root);
	if (confine_prepare(&l->confine, l->name, spec, cause) != 0)
		return -1;
	xasprintf(&l->tmp, "%s/tmp", l->root);
	if (lstat(l->tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(l->tmp);
		l->tmp = NULL;
	}
	xasprintf(&l->console, "%s/%s", l->root, CONTAINER_CONSOLE_LOG);
	l->hostname = spec->hostname != NULL ? spec->hostname : l->name;

	/* Every place args[0] may be, in PATH order. */
	if (strchr(spec->args[0], '/') != NULL) {
		l->candidates = xcalloc(2, sizeof *l->candidates);
		l->candidates[0] = xstrdup(spec->args[0]);
		return 0;
	}
	path = container_spec_path(spec);
	n = 1;
	for (p = path; *p != '\0'; p++) {
		if (*p == ':')
			n++;
	}
	l->candidates = xcalloc(n + 1, sizeof *l->candidates);
	n = 0;
	for (p = path; ; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		if (e != p) {
			xasprintf(&l->candidates[n++], "%.*s/%s", (int)(e - p),
			    p, spec->args[0]);
		}
		if (*e == '\0')
			break;
	}
	if (n == 0) {
		set_cause(cause, "container %s: PATH in process.env is empty, "
		    "so %s cannot be found: give a full path in "
		    "process.args[0]", l->name, spec->args[0]);
		return -1;
	}
	return 0;
}

/* Where this process sits in a v1 hierarchy ("/" or "/system/x"), from
 * /proc/self/cgroup.  Containers nest below it, so whatever confines
 * ternd (a service manager, a test host's freezer cgroup) confines its
 * containers too, and two ternd on one machine never share a cgroup. */
static void
container_cgroup_base(const char *ctrl, char *base, size_t size)
{
	FILE	*fp;
	char	 line[PATH_MAX + 64], *list, *path, *c, *save;

	snprintf(base, size, "/");
	if ((fp = fopen("/proc/self/cgroup", "r")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((list = strchr(line, ':')) == NULL ||
		    (path = strchr(list + 1, ':')) == NULL)
			continue;
		*path++ = '\0';
		for (c = strtok_r(list + 1, ",", &save); c != NULL;
		    c = strtok_r(NULL, ",", &save)) {
			if (strcmp(c, ctrl) == 0) {
				snprintf(base, size, "%s", path);
				fclose(fp);
				return;
			}
		}
	}
	fclose(fp);
}

static int
container_cgroup_path(char *buf, size_t size, const char *name,
    const char *ctrl, const char *file, char **cause)
{
	char	base[PATH_MAX];
	int	n;

	container_cgroup_base(ctrl, base, sizeof base);
	if (strcmp(base, "/") == 0)
		base[0] = '\0';
	n = snprintf(buf, size, "%s/%s%s/%s/%s%s%s", CONTAINER_CGROUP_ROOT,
	    ctrl, base, CONTAINER_CGROUP_PARENT, name, file != NULL ? "/" : "",
	    file != NULL ? file : "");
	if (n < 0 || (size_t)n >= size) {
		set_cause(cause, "container %s: cgroup path too long", name);
		return -1;
	}
	return 0;
}

static int
container_check_name(const char *name, char **cause)
{
	if (!host_name_valid(name)) {
		set_cause(cause, "container \"%.64s\": invalid name (%s)", name,
		    CONTAINER_NAME_RULE);
		return -1;
	}
	return 0;
}

int
container_write_file(const char *name, const char *path, const char *value,
    char **cause)
{
	size_t	len = strlen(value);
	ssize_t	n;
	int	fd, err;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		err = errno;
		set_cause(cause, "container %s: cannot open %s: %s", name,
		    path, strerror(err));
		errno = err;
		return -1;
	}
	do
		n = write(fd, value, len);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)len) {
		err = n == -1 ? errno : EIO;
		set_cause(cause, "container %s: cannot write \"%s\" to %s: %s",
		    name, value, path, n == -1 ? strerror(err) :
		    "short write");
		close(fd);
		errno = err;
		return -1;
	}
	close(fd);
	return 0;
}

/* Read a small file (a cgroup's state or procs) into a string. */
static char *
container_read_file(const char *name, const char *path, char **cause)
{
	char	*buf;
	size_t	 len = 0, size = 4096;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT) {
			set_cause(cause, "container %s: no such container (%s "
			    "does not exist)", name, path);
		} else {
			set_cause(cause, "container %s: cannot open %s: %s",
			    name, path, strerror(errno));
		}
		return NULL;
	}
	buf = xmalloc(size);
	for (;;) {
		if (len + 1 >= size) {
			size *= 2;
			buf = xrealloc(buf, size);
		}
		n = read(fd, buf + len, size - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			set_cause(cause, "container %s: cannot read %s: %s",
			    name, path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* The pids in a cgroup.procs file. */
static int
container_read_pids(const char *name, const char *path, pid_t **pids,
    size_t *n, char **cause)
{
	char	*text, *p, *end;
	long	 v;
	size_t	 count = 0, alloc = 0;
	pid_t	*list = NULL;

	if ((text = container_read_file(name, path, cause)) == NULL)
		return -1;
	for (p = text; *p != '\0'; p = end) {
		while (*p == '\n' || *p == ' ')
			p++;
		if (*p == '\0')
			break;
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno != 0 || v <= 0 || v > INT_MAX) {
			set_cause(cause, "container %s: %s: unexpected "
			    "content", name, path);
			free(text);
			free(list);
			return -1;
		}
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			list = xreallocarray(list, alloc, sizeof *list);
		}
		list[count++] = (pid_t)v;
	}
	free(text);
	*pids = list;
	*n = count;
	return 0;
}

static void
container_sleep_ms(unsigned ms)
{
	struct timespec	ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The controllers tern needs are mounted, and no container of that name
 * has processes: 0, or -1 and *cause. */
static int
container_cgroup_check(const char *name, char **cause)
{
	char	 path[PATH_MAX];
	size_t	 i;
	pid_t	*pids = NULL;
	size_t	 npids = 0;

	for (i = 0; i < CONTAINER_NCONTROLLERS; i++) {
		snprintf(path, sizeof path, "%s/%s/cgroup.procs",
		    CONTAINER_CGROUP_ROOT, container_controllers[i]);
		if (access(path, F_OK) != 0) {
			set_cause(cause, "container %s: the cgroup v1 %s "
			    "controller is not mounted at %s/%s: tern needs "
			    "the memory, cpu, pids, freezer and devices "
			    "controllers",
			    name, container_controllers[i],
			    CONTAINER_CGROUP_ROOT, container_controllers[i]);
			return -1;
		}
	}
	if (container_cgroup_path(path, sizeof path, name, "freezer",
	    "cgroup.procs", cause) != 0)
		return -1;
	if (access(path, F_OK) != 0)
		return 0;
	if (container_read_pids(name, path, &pids, &npids, cause) != 0)
		return -1;
	free(pids);
	if (npids != 0) {
		set_cause(cause, "container %s: already running (%zu "
		    "processes in %s): kill it first", name, npids, path);
		return -1;
	}
	return 0;
}

/* The cpu controller's limits: shares, then the CFS period and quota. */
static int
container_cgroup_cpu(const char *name, const struct container_spec *spec,
    char **cause)
{
	char	 path[PATH_MAX], value[32];

	container_cgroup_path(path, sizeof path, name, "cpu", "cpu.shares",
	    NULL);
	snprintf(value, sizeof value, "%llu", spec->cpu_shares != 0 ?
	    (unsigned long long)spec->cpu_shares : 1024ULL);
	if (container_write_file(name, path, value, cause) != 0)
		return -1;

	/* No quota while the period changes, then the quota. */
	container_cgroup_path(path, sizeof path, name, "cpu",
	    "cpu.cfs_quota_us", NULL);
	if (access(path, F_OK) != 0) {
		if (spec->cpu_quota == -1 && spec->cpu_period == 0)
			return 0;
		set_cause(cause, "container %s: %s is missing (a kernel "
		    "without CFS bandwidth control): remove "
		    "linux.resources.cpu.quota and .period from the spec",
		    name, path);
		return -1;
	}
	if (container_write_file(name, path, "-1", cause) != 0)
		return -1;
	container_cgroup_path(path, sizeof path, name, "cpu",
	    "cpu.cfs_period_us", NULL);
	snprintf(value, sizeof value, "%llu", spec->cpu_period != 0 ?
	    (unsigned long long)spec->cpu_period : 100000ULL);
	if (container_write_file(name, path, value, cause) != 0)
		return -1;
	if (spec->cpu_quota == -1)
		return 0;
	container_cgroup_path(path, sizeof path, name, "cpu",
	    "cpu.cfs_quota_us", NULL);
	snprintf(value, sizeof value, "%lld", (long long)spec->cpu_quota);
	return container_write_file(name, path, value, cause);
}

/* Create the cgroups (mkdir -p) and write the spec's limits. */
static int
container_cgroup_setup(const char *name, const struct container_spec *spec,
    int *created, char **cause)
{
	char	 path[PATH_MAX], value[32], *error = NULL;
	size_t	 i;

	if (container_cgroup_check(name, cause) != 0)
		return -1;
	*created = 1;
	for (i = 0; i < CONTAINER_NCONTROLLERS; i++) {
		if (container_cgroup_path(path, sizeof path, name,
		    container_controllers[i], NULL, cause) != 0)
			return -1;
		if (mkdir_p(path, 0755, &error) != 0) {
			set_cause(cause, "container %s: %s", name, error);
			free(error);
			return -1;
		}
	}

	/* Every limit is written, so a reused cgroup loses old ones. */
	container_cgroup_path(path, sizeof path, name, "memory",
	    "memory.limit_in_bytes", NULL);
	snprintf(value, sizeof value, "%lld", (long long)spec->memory_limit);
	if (container_write_file(name, path, value, cause) != 0 ||
	    container_cgroup_cpu(name, spec, cause) != 0)
		return -1;

	container_cgroup_path(path, sizeof path, name, "pids", "pids.max",
	    NULL);
	if (spec->pids_limit == -1)
		snprintf(value, sizeof value, "max");
	else
		snprintf(value, sizeof value, "%lld",
		    (long long)spec->pids_limit);
	if (container_write_file(name, path, value, cause) != 0)
		return -1;

	/* Before any process is in it: CRIU restores into it too. */
	container_cgroup_path(path, sizeof path, name, "devices", NULL, NULL);
	if (confine_devices_cgroup(name, path, CONFINE_ALL & ~spec->unconfined,
	    container_devices, cause) != 0)
		return -1;

	container_cgroup_path(path, sizeof path, name, "freezer",
	    "freezer.state", NULL);
	return container_write_file(name, path, "THAWED", cause);
}

/* Remove the cgroups; -1 and *cause (the first failure) if one stays. */
static int
container_cgroup_rmdir(const char *name, char **cause)
{
	char	path[PATH_MAX];
	size_t	i;
	int	rc = 0;

	for (i = 0; i < CONTAINER_NCONTROLLERS; i++) {
		if (container_cgroup_path(path, sizeof path, name,
		    container_controllers[i], NULL, cause) != 0)
			return -1;
		if (rmdir(path) == 0 || errno == ENOENT)
			continue;
		if (rc == 0) {
			set_cause(cause, "container %s: cannot remove %s: %s%s",
			    name, path, strerror(errno), errno == EBUSY ?
			    " (processes are still in it: kill the container "
			    "first)" : "");
		}
		rc = -1;
	}
	return rc;
}

/* The first process, in its namespaces: its PID here (it never returns
 * in the child), or -1 and errno. */
static long
container_clone(struct launch *l, unsigned long flags)
{
	sigset_t	all, old;
	long		ret;

	/* No handler of the caller may run in the child before it resets
	 * them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (ret == 0)
		container_child(l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/* Let the first process go on (it waits in its cgroups for this). */
static int
container_release(const char *name, int fd, char **cause)
{
	ssize_t	n;

	do
		n = write(fd, "g", 1);
	while (n == -1 && errno == EINTR);
	if (n == 1)
		return 0;
	set_cause(cause, "container %s: cannot release its first process: %s",
	    name, strerror(errno));
	return -1;
}

/* Until the first process execs (EOF on its error pipe: *got 0) or
 * reports the step that failed (a whole record in *e): 0; -1 and *cause
 * if it does neither in time or the pipe fails. */
static int
container_await_exec(const char *name, int fd, struct launch_error *e,
    size_t *got, char **cause)
{
	struct pollfd	pfd;
	uint64_t	deadline, now;
	ssize_t		n;

	deadline = now_ms() + CONTAINER_START_TIMEOUT_MS;
	for (;;) {
		now = now_ms();
		if (now >= deadline) {
			set_cause(cause, "container %s: its first process did "
			    "not start within %d s (is the rootfs on a hung "
			    "file system?)", name,
			    CONTAINER_START_TIMEOUT_MS / 1000);
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(deadline - now)) == -1) {
			if (errno == EINTR)
				continue;
			set_cause(cause, "container %s: poll: %s", name,
			    strerror(errno));
			return -1;
		}
		if (pfd.revents == 0)
			continue;
		n = read(fd, (char *)e + *got, sizeof *e - *got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			set_cause(cause, "container %s: reading from its first "
			    "process: %s", name, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		*got += (size_t)n;
		if (*got == sizeof *e)
			return 0;
	}
}

/* Move pid into every cgroup of the container. */
static int
container_cgroup_enter(const char *name, pid_t pid, char **cause)
{
	char	path[PATH_MAX], value[32];
	size_t	i;

	snprintf(value, sizeof value, "%ld", (long)pid);
	for (i = 0; i < CONTAINER_NCONTROLLERS; i++) {
		if (container_cgroup_path(path, sizeof path, name,
		    container_controllers[i], "cgroup.procs", cause) != 0)
			return -1;
		if (container_write_file(name, path, value, cause) != 0)
			return -1;
	}
	return 0;
}

int
container_start(const char *name, const struct container_spec *spec,
    pid_t *pidp, char **cause)
{
	struct launch		 l;
	struct launch_error	 e;
	unsigned long		 flags;
	size_t			 got = 0;
	long			 ret;
	pid_t			 pid = -1;
	int			 go[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int			 rc = -1, cgroups = 0, status;

	memset(&l, 0, sizeof l);
	l.name = name;
	l.spec = spec;
	l.go_fd = l.err_fd = -1;

	if (container_check_name(name, cause) != 0)
		goto out;
	if (container_prepare(&l, cause) != 0)
		goto out;
	if (container_cgroup_setup(name, spec, &cgroups, cause) != 0)
		goto out;

	if (pipe2(go, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		set_cause(cause, "container %s: pipe: %s", name,
		    strerror(errno));
		goto out;
	}
	l.go_fd = go[0];
	l.err_fd = errp[1];
	l.parent_fds[0] = go[1];
	l.parent_fds[1] = errp[0];

	flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
	    SIGCHLD;
	if (spec->net_ns)
		flags |= CLONE_NEWNET;

	if ((ret = container_clone(&l, flags)) == -1) {
		set_cause(cause, "container %s: clone: %s", name,
		    strerror(errno));
		goto out;
	}
	pid = (pid_t)ret;
	close(go[0]);
	go[0] = -1;
	close(errp[1]);
	errp[1] = -1;
	log_debug("container %s: first process %ld", name, (long)pid);

	if (container_cgroup_enter(name, pid, cause) != 0)
		goto out;
	if (container_release(name, go[1], cause) != 0)
		goto out;
	close(go[1]);
	go[1] = -1;

	if (container_await_exec(name, errp[0], &e, &got, cause) != 0)
		goto out;
	if (got == sizeof e) {
		container_child_cause(&l, &e, cause);
		goto out;
	}
	if (got != 0) {
		set_cause(cause, "container %s: its first process failed "
		    "before exec", name);
		goto out;
	}

	log_info("container %s: started, pid %ld, root %s", name, (long)pid,
	    l.root);
	*pidp = pid;
	pid = -1;
	rc = 0;

out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	if (rc != 0 && cgroups)
		container_cgroup_rmdir(name, NULL);
	if (go[0] != -1)
		close(go[0]);
	if (go[1] != -1)
		close(go[1]);
	if (errp[0] != -1)
		close(errp[0]);
	if (errp[1] != -1)
		close(errp[1]);
	container_launch_free(&l);
	return rc;
}

/* Write state (FROZEN or THAWED) to freezer.state until it reads back. */
static int
container_freezer_set(const char *name, const char *state, char **cause)
{
	char		 path[PATH_MAX], *now = NULL;
	uint64_t	 deadline;
	size_t		 len;

	if (container_check_name(name, cause) != 0)
		return -1;
	if (container_cgroup_path(path, sizeof path, name, "freezer",
	    "freezer.state", cause) != 0)
		return -1;
	if (access(path, F_OK) != 0) {
		set_cause(cause, "container %s: no such container (%s does "
		    "not exist)", name, path);
		return -1;
	}
	deadline = now_ms() + CONTAINER_WAIT_MS;
	for (;;) {
		/* Writing FROZEN again retries tasks that did not freeze. */
		if (container_write_file(name, path, state, cause) != 0)
			return -1;
		if ((now = container_read_file(name, path, cause)) == NULL)
			return -1;
		len = strcspn(now, "\n");
		now[len] = '\0';
		if (strcmp(now, state) == 0)
			break;
		if (now_ms() >= deadline) {
			set_cause(cause, "container %s: still %s after %d s, "
			    "not %s (a process may be stuck in the kernel): "
			    "try again, or kill the container", name, now,
			    CONTAINER_WAIT_MS / 1000, state);
			free(now);
			return -1;
		}
		free(now);
		container_sleep_ms(CONTAINER_POLL_MS);
	}
	free(now);
	log_debug("container %s: %s", name, state);
	return 0;
}

int
container_freeze(const char *name, char **cause)
{
	return container_freezer_set(name, "FROZEN", cause);
}

int
container_thaw(const char *name, char **cause)
{
	return container_freezer_set(name, "THAWED", cause);
}

int
container_kill(const char *name, char **cause)
{
	char		 path[PATH_MAX], *error = NULL;
	pid_t		*pids = NULL;
	size_t		 n, i, killed = 0;
	uint64_t	 deadline;
	int		 rc = -1;

	if (container_check_name(name, cause) != 0)
		return -1;
	if (container_cgroup_path(path, sizeof path, name, "freezer",
	    "cgroup.procs", cause) != 0)
		return -1;
	if (access(path, F_OK) != 0)
		return 0;

	/* Frozen, none can fork a process we would miss.  A freeze that
	 * does not complete still stops most; kill what is there. */
	if (container_freeze(name, &error) != 0) {
		log_warnx("%s; killing anyway", error);
		free(error);
		error = NULL;
	}
	if (container_read_pids(name, path, &pids, &n, cause) != 0)
		goto out;
	killed = n;
	for (i = 0; i < n; i++) {
		if (kill(pids[i], SIGKILL) != 0 && errno != ESRCH) {
			set_cause(cause, "container %s: cannot kill process "
			    "%ld: %s", name, (long)pids[i], strerror(errno));
			goto out;
		}
	}
	if (container_thaw(name, cause) != 0)
		goto out;

	deadline = now_ms() + CONTAINER_WAIT_MS;
	for (;;) {
		free(pids);
		pids = NULL;
		if (container_read_pids(name, path, &pids, &n, cause) != 0)
			goto out;
		if (n == 0)
			break;
		if (now_ms() >= deadline) {
			set_cause(cause, "container %s: %zu processes still in "
			    "%s %d s after SIGKILL (stuck in the kernel?): "
			    "try again", name, n, path,
			    CONTAINER_WAIT_MS / 1000);
			goto out;
		}
		/* Whatever forked before the freeze finished. */
		for (i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		container_sleep_ms(CONTAINER_POLL_MS);
	}
	if (killed != 0)
		log_info("container %s: killed %zu processes", name, killed);
	rc = 0;
out:
	free(pids);
	return rc;
}

int
container_cgroup_create(const char *name, const struct container_spec *spec,
    char **cause)
{
	int	created = 0;

	if (container_check_name(name, cause) != 0)
		return -1;
	if (container_cgroup_setup(name, spec, &created, cause) != 0) {
		if (created)
			container_cgroup_rmdir(name, NULL);
		return -1;
	}
	return 0;
}

int
container_cgroup_remove(const char *name, char **cause)
{
	if (container_check_name(name, cause) != 0)
		return -1;
	return container_cgroup_rmdir(name, cause);
}

int
container_pids(const char *name, pid_t **pids, size_t *n, char **cause)
{
	char	path[PATH_MAX];

	*pids = NULL;
	*n = 0;
	if (container_check_name(name, cause) != 0)
		return -1;
	if (container_cgroup_path(path, sizeof path, name, "freezer",
	    "cgroup.procs", cause) != 0)
		return -1;
	return container_read_pids(name, path, pids, n, cause);
}

const char *const *
container_host_devices(void)
{
	return container_devices;
}

uint64_t
container_memory_usage(const char *name)
{
	char		 path[PATH_MAX], *text;
	uint64_t	 bytes = 0;

	if (container_cgroup_path(path, sizeof path, name, "memory",
	    "memory.usage_in_bytes", NULL) != 0)
		return 0;
	if ((text = read_file_bounded(path, 64, NULL, NULL)) != NULL) {
		bytes = strtoull(text, NULL, 10);
		free(text);
	}
	return bytes;
}

char *
container_freezer_path(const char *name)
{
	char	path[PATH_MAX];

	if (container_cgroup_path(path, sizeof path, name, "freezer",
	    NULL, NULL) != 0)
		return NULL;
	return xstrdup(path);
}

const char *const *
container_cgroup_controllers(void)
{
	return container_controllers;
}

char *
container_unified_path(void)
{
	FILE	*fp;
	char	 line[PATH_MAX + 64], *path = NULL;

	if ((fp = fopen("/proc/self/cgroup", "r")) == NULL)
		return NULL;
	while (fgets(line, sizeof line, fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3) == 0 && line[3] == '/') {
			path = xstrdup(line + 3);
			break;
		}
	}
	fclose(fp);
	return path;
}

char *
container_cgroup_relpath(const char *name, const char *ctrl)
{
	char	base[PATH_MAX], *s;

	container_cgroup_base(ctrl, base, sizeof base);
	xasprintf(&s, "%s/%s/%s", strcmp(base, "/") == 0 ? "" : base,
	    CONTAINER_CGROUP_PARENT, name);
	return s;
}

int
container_stopped_tasks(const char *name)
{
	char	 path[PATH_MAX], state;
	pid_t	*tids = NULL;
	size_t	 n = 0, i;
	int	 stopped = 0;

	if (container_check_name(name, NULL) != 0 ||
	    container_cgroup_path(path, sizeof path, name, "freezer", "tasks",
	    NULL) != 0 || container_read_pids(name, path, &tids, &n, NULL) != 0)
		return -1;
	for (i = 0; i < n; i++)	/* (one that exited meanwhile: gone) */
		if (proc_stat(tids[i], &state, NULL, NULL) == 0 && state == 'T')
			stopped++;
	free(tids);
	return stopped;
}
