/* escape: run inside a container, try the known ways out of it and say
 * for each whether the container's confinement held.  One line each:
 *
 *	ok NAME: what stopped it
 *	ESCAPE NAME: what got through
 *	skip NAME: why it could not be tried here (ENOSYS: a kernel
 *	    without it; the confinement still answers EPERM first)
 *	works NAME / BROKEN NAME: an ordinary thing a container must still
 *	    be able to do (files, fork, signals, threads, sockets)
 *
 * Every attempt is harmless when it gets through: files of the host's
 * kernel are opened for writing but never written, the host's disk is
 * mounted read-only (which the kernel refuses while the host has it
 * read-write), module and clock calls get arguments the kernel rejects
 * after its permission check.  So the attempt shows where it was
 * stopped: EPERM/EROFS/EACCES means the confinement (or a missing
 * capability), any other answer means the kernel looked at it.
 *
 * Exit status: 0 if nothing escaped and everything ordinary worked,
 * 1 otherwise.  Static, like the workloads. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <linux/reboot.h>

#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROC_MAGIC_	0x9fa0

static int	escaped, broken;

static void
ok(const char *name, const char *fmt, int err)
{
	printf("ok %s: ", name);
	printf(fmt, strerror(err));
	printf("\n");
}

static void
escape(const char *name, const char *what)
{
	printf("ESCAPE %s: %s\n", name, what);
	escaped = 1;
}

static void
skip(const char *name, const char *why)
{
	printf("skip %s: %s\n", name, why);
}

static int
refused(int err)
{
	return err == EPERM || err == EACCES || err == EROFS;
}

/* A system call that confinement must refuse with EPERM; any other
 * answer means it reached the kernel's own checks. */
static void
expect_eperm(const char *name, long rc, int err)
{
	char	buf[128];

	if (rc == -1 && err == EPERM) {
		ok(name, "refused (%s)", err);
		return;
	}
	if (rc == -1 && err == ENOSYS) {
		skip(name, "not in this kernel (ENOSYS)");
		return;
	}
	snprintf(buf, sizeof buf, "reached the kernel (%s)", rc == -1 ?
	    strerror(err) : "succeeded");
	escape(name, buf);
}

/* Open a file of the host's kernel for writing, never write. */
static void
try_write_open(const char *name, const char *path)
{
	char	buf[128];
	int	fd;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT) {
			skip(name, "no such file");
			return;
		}
		if (refused(errno)) {
			ok(name, "cannot open it for writing (%s)", errno);
			return;
		}
		snprintf(buf, sizeof buf, "open for writing: %s",
		    strerror(errno));
		escape(name, buf);
		return;
	}
	close(fd);
	snprintf(buf, sizeof buf, "%s is open for writing", path);
	escape(name, buf);
}

/* A masked path: /dev/null over a file, an empty tmpfs over a dir. */
static void
try_masked(const char *name, const char *path)
{
	struct stat	 st;
	struct statfs	 sf;
	struct dirent	*de;
	DIR		*d;
	char		 buf[PATH_MAX + 64];
	int		 entries = 0;

	if (stat(path, &st) != 0) {
		skip(name, "not on this kernel");
		return;
	}
	if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
	    minor(st.st_rdev) == 3) {
		ok(name, "masked by /dev/null%.0s", 0);
		return;
	}
	/* A directory: something empty that is not the kernel's, and
	 * nothing can be put there. */
	if (S_ISDIR(st.st_mode) && statfs(path, &sf) == 0 &&
	    (unsigned long)sf.f_type != PROC_MAGIC_ &&
	    (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				entries++;
		closedir(d);
		snprintf(buf, sizeof buf, "%s/escape", path);
		if (mkdir(buf, 0700) == 0) {
			rmdir(buf);
			snprintf(buf, sizeof buf, "%s's mask is writable", path);
			escape(name, buf);
		} else if (!refused(errno)) {
			snprintf(buf, sizeof buf, "mkdir in %s's mask: %s",
			    path, strerror(errno));
			skip(name, buf);
		} else if (entries != 0) {
			snprintf(buf, sizeof buf, "%s's mask holds %d entries",
			    path, entries);
			escape(name, buf);
		} else
			ok(name, "masked by an empty read-only directory "
			    "(%s)", errno);
		return;
	}
	snprintf(buf, sizeof buf, "%s is the kernel's", path);
	escape(name, buf);
}

/* A device node the devices cgroup must not let open: mknod (allowed,
 * as by runc), then open. */
static void
try_node(const char *name, mode_t type, unsigned maj, unsigned min)
{
	char	path[64], buf[160];
	int	fd;

	snprintf(path, sizeof path, "/dev/escape-%s", name);
	unlink(path);
	if (mknod(path, type | 0600, makedev(maj, min)) != 0) {
		snprintf(buf, sizeof buf, "mknod %u:%u: %s", maj, min,
		    strerror(errno));
		if (refused(errno))
			ok(name, "mknod refused (%s)", errno);
		else
			skip(name, buf);
		return;
	}
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (refused(errno))
			ok(name, "refused (%s)", errno);
		else {
			snprintf(buf, sizeof buf, "open %u:%u: %s", maj, min,
			    strerror(errno));
			escape(name, buf);
		}
	} else {
		close(fd);
		snprintf(buf, sizeof buf, "%s (%u:%u) is open", path, maj,
		    min);
		escape(name, buf);
	}
	unlink(path);
}

/* The host's first disk from /proc/partitions: mknod, open, mount. */
static void
try_disk(void)
{
	unsigned	maj, min;
	char		line[256], dev[64], buf[160];
	FILE		*fp;
	int		found = 0, fd;

	if ((fp = fopen("/proc/partitions", "r")) == NULL) {
		skip("disk", "no /proc/partitions");
		return;
	}
	while (fgets(line, sizeof line, fp) != NULL) {
		if (sscanf(line, " %u %u %*u %63s", &maj, &min, dev) == 3 &&
		    strncmp(dev, "loop", 4) != 0 &&
		    strncmp(dev, "ram", 3) != 0) {
			found = 1;
			break;
		}
	}
	fclose(fp);
	if (!found) {
		skip("disk", "no disk in /proc/partitions");
		return;
	}
	unlink("/dev/escape-disk");
	if (mknod("/dev/escape-disk", S_IFBLK | 0600, makedev(maj, min)) != 0) {
		if (refused(errno))
			ok("disk-mknod", "refused (%s)", errno);
		else {
			snprintf(buf, sizeof buf, "mknod: %s", strerror(errno));
			skip("disk-mknod", buf);
		}
		return;
	}
	printf("info disk-mknod: made a node of %s (%u:%u); the devices "
	    "cgroup decides\n", dev, maj, min);
	if ((fd = open("/dev/escape-disk", O_RDONLY | O_CLOEXEC)) == -1) {
		if (refused(errno))
			ok("disk-open", "refused (%s)", errno);
		else {
			snprintf(buf, sizeof buf, "open: %s", strerror(errno));
			escape("disk-open", buf);
		}
	} else {
		close(fd);
		snprintf(buf, sizeof buf, "the host's %s is open for reading",
		    dev);
		escape("disk-open", buf);
	}
	mkdir("/tmp/escape-mnt", 0700);
	if (mount("/dev/escape-disk", "/tmp/escape-mnt", "ext4",
	    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
		umount2("/tmp/escape-mnt", MNT_DETACH);
		escape("disk-mount", "the host's disk is mounted");
	} else
		expect_eperm("disk-mount", -1, errno);
	rmdir("/tmp/escape-mnt");
	unlink("/dev/escape-disk");
}

static void
try_caps(void)
{
	struct __user_cap_header_struct	hdr = {
		_LINUX_CAPABILITY_VERSION_3, 0
	};
	struct __user_cap_data_struct	data[2];
	char				buf[128];

	if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 1)
		escape("cap-bounding", "CAP_SYS_ADMIN is in the bounding set");
	else
		ok("cap-bounding", "CAP_SYS_ADMIN is not in the bounding "
		    "set%.0s", 0);
	if (syscall(SYS_capget, &hdr, data) != 0) {
		skip("cap-raise", "capget failed");
		return;
	}
	if (data[0].effective & (1U << CAP_SYS_ADMIN)) {
		escape("cap-raise", "CAP_SYS_ADMIN is effective");
		return;
	}
	data[0].effective |= 1U << CAP_SYS_ADMIN;
	data[0].permitted |= 1U << CAP_SYS_ADMIN;
	if (syscall(SYS_capset, &hdr, data) == 0)
		escape("cap-raise", "capset raised CAP_SYS_ADMIN");
	else if (refused(errno))
		ok("cap-raise", "capset refused CAP_SYS_ADMIN (%s)", errno);
	else {
		snprintf(buf, sizeof buf, "capset: %s", strerror(errno));
		escape("cap-raise", buf);
	}
}

/* A new user namespace gives every capability back inside it. */
static void
try_userns(void)
{
	pid_t	pid;
	int	status;

	if ((pid = fork()) == -1) {
		skip("userns", "fork failed");
		return;
	}
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno == EPERM ? 1 : 2);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		skip("userns", "child lost");
		return;
	}
	if (WEXITSTATUS(status) == 1)
		ok("userns", "unshare(CLONE_NEWUSER) refused (%s)", EPERM);
	else
		escape("userns", WEXITSTATUS(status) == 0 ? "unshare("
		    "CLONE_NEWUSER) succeeded" : "unshare(CLONE_NEWUSER) "
		    "reached the kernel");
}

static void
try_status(void)
{
	char	line[256];
	FILE	*fp;
	int	seccomp = -1;

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
		ok("no-new-privs", "set%.0s", 0);
	else
		escape("no-new-privs", "not set: a setuid program gains "
		    "privileges");
	if ((fp = fopen("/proc/self/status", "r")) != NULL) {
		while (fgets(line, sizeof line, fp) != NULL)
			sscanf(line, "Seccomp: %d", &seccomp);
		fclose(fp);
	}
	if (seccomp == 2)
		ok("seccomp", "a filter is installed%.0s", 0);
	else
		escape("seccomp", "no seccomp filter");
}

static void
try_calls(void)
{
	struct timespec	ts = { 0, 0 };
	long		rc;

	rc = syscall(SYS_init_module, NULL, 0UL, "");
	expect_eperm("init_module", rc, errno);
	rc = syscall(SYS_finit_module, -1, "", 0);
	expect_eperm("finit_module", rc, errno);
	rc = syscall(SYS_delete_module, "tern_no_such_module", O_NONBLOCK);
	expect_eperm("delete_module", rc, errno);
	rc = syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xdeadUL);
	expect_eperm("kexec_load", rc, errno);
	/* A bad magic: the kernel checks the capability first. */
	rc = syscall(SYS_reboot, 0x1234, 0x5678, LINUX_REBOOT_CMD_CAD_OFF,
	    NULL);
	expect_eperm("reboot", rc, errno);
	/* CLOCK_MONOTONIC cannot be set: EINVAL once past the checks. */
	rc = syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts);
	expect_eperm("clock_settime", rc, errno);
	rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */,
	    -3 /* KEY_SPEC_SESSION_KEYRING */, 0);
	expect_eperm("keyctl", rc, errno);
	rc = syscall(SYS_add_key, "user", "tern-escape", "x", 1UL,
	    -2 /* KEY_SPEC_PROCESS_KEYRING */);
	expect_eperm("add_key", rc, errno);
	rc = syscall(SYS_open_by_handle_at, -1, NULL, 0);
	expect_eperm("open_by_handle_at", rc, errno);
	rc = syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0U);
	expect_eperm("bpf", rc, errno);
	rc = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0UL);
	expect_eperm("perf_event_open", rc, errno);
	rc = mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	if (rc == 0)
		umount2("/tmp", MNT_DETACH);
	expect_eperm("mount", rc, errno);
	rc = syscall(SYS_swapoff, "/tern-no-such-swap");
	expect_eperm("swapoff", rc, errno);
}

/* --- what a container must still do ------------------------------------ */

static volatile sig_atomic_t	got_signal;

static void
on_usr2(int sig)
{
	(void)sig;
	got_signal = 1;
}

static void *
thread_main(void *arg)
{
	return arg;
}

static void
works(const char *name, int good, const char *why)
{
	if (good)
		printf("works %s\n", name);
	else {
		printf("BROKEN %s: %s: %s\n", name, why, strerror(errno));
		broken = 1;
	}
}

static void
try_ordinary(void)
{
	struct sockaddr_in	sin;
	struct sigaction	sa;
	socklen_t		len = sizeof sin;
	pthread_t		t;
	void			*ret = NULL;
	pid_t			pid;
	char			c = 0;
	int			fd, s, a, sv[2], status, good;

	fd = open("/tmp/escape-file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	good = fd != -1 && write(fd, "x", 1) == 1 && pread(fd, &c, 1, 0) == 1
	    && c == 'x';
	works("files", good, "write and read back /tmp/escape-file");
	if (fd != -1)
		close(fd);
	unlink("/tmp/escape-file");

	pid = fork();
	if (pid == 0)
		_exit(7);
	good = pid > 0 && waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 7;
	works("fork", good, "fork and wait");

	good = pthread_create(&t, NULL, thread_main, &c) == 0 &&
	    pthread_join(t, &ret) == 0 && ret == &c;
	works("threads", good, "pthread_create");

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	good = kill(getpid(), SIGUSR2) == 0 && got_signal;
	works("signals", good, "kill self with SIGUSR2");

	/* TCP over loopback: listen, connect, accept, one byte. */
	good = 0;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s != -1 && bind(s, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    listen(s, 1) == 0 && getsockname(s, (struct sockaddr *)&sin,
	    &len) == 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 && connect(fd, (struct sockaddr *)&sin,
		    sizeof sin) == 0 && (a = accept(s, NULL, NULL)) != -1) {
			good = write(fd, "y", 1) == 1 && read(a, &c, 1) == 1 &&
			    c == 'y';
			close(a);
		}
		if (fd != -1)
			close(fd);
	}
	if (s != -1)
		close(s);
	works("tcp", good, "TCP over 127.0.0.1");

	good = socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 &&
	    write(sv[0], "z", 1) == 1 && read(sv[1], &c, 1) == 1 && c == 'z';
	works("unix", good, "socketpair");
	if (good) {
		close(sv[0]);
		close(sv[1]);
	}

	good = chown("/tmp", 0, 0) == 0;
	works("chown", good, "chown /tmp (CAP_CHOWN)");
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	try_write_open("core_pattern", "/proc/sys/kernel/core_pattern");
	try_write_open("sysrq-trigger", "/proc/sysrq-trigger");
	try_masked("kcore", "/proc/kcore");
	try_masked("keys", "/proc/keys");
	try_masked("timer_list", "/proc/timer_list");
	try_masked("acpi", "/proc/acpi");
	try_disk();
	/* A loop device: no capability guards its open, only the devices
	 * cgroup (and where the disk is out of reach anyway, this shows). */
	try_node("loop-open", S_IFBLK, 7, 0);
	try_caps();
	try_userns();
	try_status();
	try_calls();
	try_ordinary();
	printf("%s\n", escaped ? "RESULT escaped" : broken ? "RESULT broken" :
	    "RESULT confined");
	return escaped || broken ? 1 : 0;
}
