/* wl: files: unlinked but open, locked, shared offsets and fd flags. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wl.h"

#define FSIZE	(20 * 1024)

/* --- unlinked: an open file whose name is gone --------------------------- */

static int	ul_fd[2];

static int
unlinked_open(int i, const char *path, uint32_t seed)
{
	char	buf[FSIZE];

	if ((ul_fd[i] = open(path, O_CREAT | O_RDWR | O_TRUNC, 0640)) == -1)
		return wl_fail_errno(path);
	wl_fill(buf, sizeof buf, seed);
	if (wl_write_all(ul_fd[i], buf, sizeof buf, path) != 0)
		return -1;
	if (lseek(ul_fd[i], 1000, SEEK_SET) != 1000)
		return wl_fail_errno("lseek");
	if (unlink(path) != 0)
		return wl_fail_errno("unlink");
	return 0;
}

static int
unlinked_check(int i, const char *path, uint32_t seed)
{
	char		buf[FSIZE];
	struct stat	st;

	if (fstat(ul_fd[i], &st) != 0)
		return wl_fail_errno("fstat");
	if (st.st_nlink != 0)
		return wl_fail("%s has %lu links again", path,
		    (unsigned long)st.st_nlink);
	if (st.st_size != FSIZE || (st.st_mode & 07777) != 0640)
		return wl_fail("%s: size %lld mode %o", path,
		    (long long)st.st_size, (unsigned)(st.st_mode & 07777));
	if (access(path, F_OK) == 0)
		return wl_fail("%s exists again", path);
	if (lseek(ul_fd[i], 0, SEEK_CUR) != 1000)
		return wl_fail("%s: offset moved", path);
	if (pread(ul_fd[i], buf, sizeof buf, 0) != (ssize_t)sizeof buf)
		return wl_fail("short read of %s", path);
	return wl_same(buf, sizeof buf, seed, path);
}

static int
unlinked_setup(void)
{
	return unlinked_open(0, "/wl-unlinked", 81);
}

static int
unlinked_verify(void)
{
	return unlinked_check(0, "/wl-unlinked", 81);
}

static int
unlinked_tmpfs_setup(void)
{
	return unlinked_open(1, "/tmp/wl-unlinked", 82);
}

static int
unlinked_tmpfs_verify(void)
{
	return unlinked_check(1, "/tmp/wl-unlinked", 82);
}

/* Run probe(arg) in a child (its own open file descriptions); its exit
 * status: 0 the probe found what it expected, 1 not. */
static int
in_child(int (*probe)(void), const char *what)
{
	pid_t	pid;
	int	st;

	if ((pid = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (pid == 0)
		_exit(probe() == 0 ? 0 : 1);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return wl_fail_errno("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return wl_fail("%s", what);
	return 0;
}

/* --- flock ---------------------------------------------------------------- */

/* The lock workloads use a file on the container's /tmp (a tmpfs of its
 * own), the _shared ones a file on the rootfs: on shared storage the
 * frozen source still holds its locks while the target restores. */
static int		 fl_fd;
static const char	*fl_path;

static int
flock_probe(void)
{
	int	fd = open(fl_path, O_RDWR);

	/* Held by the parent: a new open file description cannot. */
	return fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == -1 &&
	    errno == EWOULDBLOCK && flock(fd, LOCK_SH | LOCK_NB) == -1 ? 0 : 1;
}

static int
flock_setup(void)
{
	if ((fl_fd = open(fl_path, O_CREAT | O_RDWR, 0644)) == -1)
		return wl_fail_errno(fl_path);
	if (flock(fl_fd, LOCK_EX) != 0)
		return wl_fail_errno("flock");
	return 0;
}

static int
flock_verify(void)
{
	return in_child(flock_probe, "the flock is gone");
}

static int
flock_tmp_setup(void)
{
	fl_path = "/tmp/wl-flock";
	return flock_setup();
}

static int
flock_shared_setup(void)
{
	fl_path = "/wl-flock";
	return flock_setup();
}

/* --- fcntl_lock: POSIX record locks ------------------------------------- */

static int		 pl_fd;
static const char	*pl_path;

static int
fcntl_lock_probe(void)
{
	struct flock	fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 0, .l_len = 0 };
	int		fd = open(pl_path, O_RDWR);

	if (fd == -1 || fcntl(fd, F_GETLK, &fl) != 0)
		return 1;
	/* The write lock on [100, 200) and the read lock on [300, 400). */
	if (fl.l_type != F_WRLCK || fl.l_start != 100 || fl.l_len != 100 ||
	    fl.l_pid != getppid())
		return 1;
	fl.l_type = F_RDLCK;
	fl.l_start = 300;
	fl.l_len = 100;
	if (fcntl(fd, F_SETLK, &fl) != 0)	/* shared: fine */
		return 1;
	fl.l_type = F_WRLCK;
	return fcntl(fd, F_SETLK, &fl) == -1 ? 0 : 1;
}

static int
fcntl_lock_setup(void)
{
	struct flock	w = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 100, .l_len = 100 };
	struct flock	r = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
	    .l_start = 300, .l_len = 100 };

	if ((pl_fd = open(pl_path, O_CREAT | O_RDWR, 0644)) == -1)
		return wl_fail_errno(pl_path);
	if (fcntl(pl_fd, F_SETLK, &w) != 0 || fcntl(pl_fd, F_SETLK, &r) != 0)
		return wl_fail_errno("F_SETLK");
	return 0;
}

static int
fcntl_lock_verify(void)
{
	return in_child(fcntl_lock_probe, "the record locks changed");
}

static int
fcntl_lock_tmp_setup(void)
{
	pl_path = "/tmp/wl-posix-lock";
	return fcntl_lock_setup();
}

static int
fcntl_lock_shared_setup(void)
{
	pl_path = "/wl-posix-lock";
	return fcntl_lock_setup();
}

/* --- ofd_lock: open file description locks ------------------------------ */

static int		 ofd_fd;
static const char	*ofd_path;

static int
ofd_lock_probe(void)
{
	struct flock	fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 0, .l_len = 0 };
	int		fd = open(ofd_path, O_RDWR);

	if (fd == -1 || fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return 1;
	return fl.l_type == F_WRLCK && fl.l_start == 10 && fl.l_len == 20 &&
	    fl.l_pid == -1 ? 0 : 1;
}

static int
ofd_lock_setup(void)
{
	struct flock	fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	    .l_start = 10, .l_len = 20 };

	if ((ofd_fd = open(ofd_path, O_CREAT | O_RDWR, 0644)) == -1)
		return wl_fail_errno(ofd_path);
	if (fcntl(ofd_fd, F_OFD_SETLK, &fl) != 0)
		return wl_fail_errno("F_OFD_SETLK");
	return 0;
}

static int
ofd_lock_verify(void)
{
	return in_child(ofd_lock_probe, "the OFD lock changed");
}

static int
ofd_lock_tmp_setup(void)
{
	ofd_path = "/tmp/wl-ofd-lock";
	return ofd_lock_setup();
}

static int
ofd_lock_shared_setup(void)
{
	ofd_path = "/wl-ofd-lock";
	return ofd_lock_setup();
}

/* --- fd_flags: shared offsets, close-on-exec, append, numbers ------------ */

#define FD_HIGH	200
static int	ff_a, ff_dup, ff_b;

static int
fd_flags_setup(void)
{
	char	buf[FSIZE];

	if ((ff_a = open("/wl-fdflags", O_CREAT | O_RDWR | O_TRUNC, 0644)) ==
	    -1)
		return wl_fail_errno("/wl-fdflags");
	wl_fill(buf, sizeof buf, 83);
	if (wl_write_all(ff_a, buf, sizeof buf, "write") != 0)
		return -1;
	if (lseek(ff_a, 1234, SEEK_SET) != 1234)
		return wl_fail_errno("lseek");
	if ((ff_dup = fcntl(ff_a, F_DUPFD_CLOEXEC, FD_HIGH)) != FD_HIGH)
		return wl_fail_errno("F_DUPFD_CLOEXEC");
	if ((ff_b = open("/wl-fdflags", O_WRONLY | O_APPEND | O_NONBLOCK)) ==
	    -1)
		return wl_fail_errno("/wl-fdflags again");
	return 0;
}

static int
fd_flags_verify(void)
{
	char	c;
	off_t	at;
	int	fl;

	if (fcntl(ff_a, F_GETFD) != 0 || fcntl(ff_dup, F_GETFD) != FD_CLOEXEC)
		return wl_fail("close-on-exec flags changed");
	if ((fl = fcntl(ff_b, F_GETFL)) == -1 || !(fl & O_APPEND) ||
	    !(fl & O_NONBLOCK) || (fl & O_ACCMODE) != O_WRONLY)
		return wl_fail("file status flags changed (%#x)", fl);
	if ((fl = fcntl(ff_a, F_GETFL)) == -1 || (fl & O_ACCMODE) != O_RDWR ||
	    (fl & O_APPEND))
		return wl_fail("file status flags changed (%#x)", fl);
	if ((at = lseek(ff_dup, 0, SEEK_CUR)) != 1234)
		return wl_fail("the dup's offset is %lld, not 1234",
		    (long long)at);
	/* One open file description: a read on one moves the other. */
	if (read(ff_a, &c, 1) != 1)
		return wl_fail_errno("read");
	at = lseek(ff_dup, 0, SEEK_CUR);
	lseek(ff_a, 1234, SEEK_SET);
	if (at != 1235)
		return wl_fail("the dup no longer shares the offset");
	if (lseek(ff_b, 0, SEEK_CUR) != 0 && lseek(ff_b, 0, SEEK_CUR) !=
	    FSIZE)
		return wl_fail("the second open's offset changed");
	return 0;
}

const struct workload wl_file[] = {
	{ "unlinked", "an open file whose name was removed",
	    unlinked_setup, unlinked_verify, 0 },
	{ "unlinked_tmpfs", "an open, removed file on the container's /tmp "
	    "(tmpfs)", unlinked_tmpfs_setup, unlinked_tmpfs_verify, 0 },
	{ "flock", "an flock(LOCK_EX) held on /tmp", flock_tmp_setup,
	    flock_verify, 0 },
	{ "fcntl_lock", "POSIX record locks, read and write, on /tmp",
	    fcntl_lock_tmp_setup, fcntl_lock_verify, 0 },
	{ "ofd_lock", "an open file description lock on /tmp",
	    ofd_lock_tmp_setup, ofd_lock_verify, 0 },
	{ "flock_shared", "an flock(LOCK_EX) held on the (shared) rootfs",
	    flock_shared_setup, flock_verify, 0 },
	{ "fcntl_lock_shared", "POSIX record locks on the (shared) rootfs",
	    fcntl_lock_shared_setup, fcntl_lock_verify, 0 },
	{ "ofd_lock_shared", "an open file description lock on the (shared) "
	    "rootfs", ofd_lock_shared_setup, ofd_lock_verify, 0 },
	{ "fd_flags", "dup'd offsets, close-on-exec, append, fd numbers",
	    fd_flags_setup, fd_flags_verify, 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};
