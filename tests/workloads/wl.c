/* wl: small workloads for checkpoint/restore and migration tests, one
 * behaviour each, in the manner of CRIU's zdtm tests (our own code).
 * Built static, so it runs as the only program of a bare rootfs.
 *
 *	wl NAME STATEFILE	run workload NAME (normally as a container's
 *				first process)
 *	wl --list		one line per workload: NAME FLAGS WHAT
 *				(FLAGS: "net" or "-")
 *	wl --selftest NAME	set up, verify twice, exit 0 if both pass
 *
 * NAME sets up its state, then STATEFILE (opened, appended to and closed
 * each time, so no descriptor stays open across a checkpoint) gets:
 *	ready pid=P			the state is in place
 *	setup FAIL: REASON		it could not be (exit 1)
 * and on every SIGUSR1, after verifying the state:
 *	check N PASS
 *	check N FAIL: REASON
 * A verification leaves the state as it found it, so it can run again
 * after the next move.  SIGTERM or SIGINT: exit 0 (as pid 1 of a
 * container an unhandled SIGTERM would be ignored).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define TICK_MS	20

char	wl_why[512];

static volatile sig_atomic_t	check_requested;
static volatile sig_atomic_t	stop_requested;
static const char		*statefile;

static const struct workload *const groups[] = {
	wl_ipc, wl_net, wl_mem, wl_proc, wl_sig, wl_file, NULL
};

int
wl_fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(wl_why, sizeof wl_why, fmt, ap);
	va_end(ap);
	return -1;
}

int
wl_fail_errno(const char *what)
{
	return wl_fail("%s: %s", what, strerror(errno));
}

/* A pattern that differs per byte and per seed. */
void
wl_fill(void *buf, size_t len, uint32_t seed)
{
	unsigned char	*p = buf;
	uint32_t	 x = seed * 2654435761u + 1;
	size_t		 i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

int
wl_same(const void *buf, size_t len, uint32_t seed, const char *what)
{
	const unsigned char	*p = buf;
	uint32_t		 x = seed * 2654435761u + 1;
	size_t			 i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (p[i] != (unsigned char)x)
			return wl_fail("%s: byte %zu is 0x%02x, not 0x%02x",
			    what, i, p[i], (unsigned char)x);
	}
	return 0;
}

int
wl_write_all(int fd, const void *buf, size_t len, const char *what)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return wl_fail_errno(what);
		if (n == 0)
			return wl_fail("%s: wrote nothing", what);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Exactly len bytes, waiting at most WL_WAIT_MS for each piece. */
int
wl_read_all(int fd, void *buf, size_t len, const char *what)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		if (!wl_readable(fd, WL_WAIT_MS))
			return wl_fail("%s: %zu bytes missing", what, len);
		n = read(fd, p, len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1)
			return wl_fail_errno(what);
		if (n == 0)
			return wl_fail("%s: end of file, %zu bytes missing",
			    what, len);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* True if fd polls readable within ms milliseconds. */
int
wl_readable(int fd, int ms)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	int		n;

	do
		n = poll(&pfd, 1, ms);
	while (n == -1 && errno == EINTR);
	return n == 1 && (pfd.revents & (POLLIN | POLLHUP));
}

/* The state letter of /proc/PID/stat (R, S, T, Z, ...). */
int
wl_proc_state(pid_t pid, char *state)
{
	char	path[64], buf[512], *p;
	ssize_t	n;
	int	fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return wl_fail("process %ld: %s", (long)pid, strerror(errno));
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return wl_fail("cannot read %s", path);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return wl_fail("%s: no state", path);
	*state = p[2];
	return 0;
}

int
wl_proc_ppid(pid_t pid, pid_t *ppid)
{
	char	path[64], buf[512], *p, st;
	long	pp;
	ssize_t	n;
	int	fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return wl_fail("process %ld: %s", (long)pid, strerror(errno));
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return wl_fail("cannot read %s", path);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %ld", &st, &pp) != 2)
		return wl_fail("%s: no ppid", path);
	*ppid = (pid_t)pp;
	return 0;
}

void
wl_msleep(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* fork, the child without the parent's handlers for the test's signals. */
pid_t
wl_fork(void)
{
	pid_t	pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		signal(SIGUSR1, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
	}
	return pid;
}

static void
append_state(const char *line)
{
	int	fd;

	if (statefile == NULL) {
		fputs(line, stdout);
		return;
	}
	fd = open(statefile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		fprintf(stderr, "wl: %s: %s\n", statefile, strerror(errno));
		return;
	}
	if (wl_write_all(fd, line, strlen(line), statefile) != 0)
		fprintf(stderr, "wl: %s\n", wl_why);
	close(fd);
	fputs(line, stdout);
	fflush(stdout);
}

static void
on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static void
on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static const struct workload *
lookup(const char *name)
{
	const struct workload	*w;
	size_t			 g;

	for (g = 0; groups[g] != NULL; g++)
		for (w = groups[g]; w->name != NULL; w++)
			if (strcmp(w->name, name) == 0)
				return w;
	return NULL;
}

static void
list(void)
{
	const struct workload	*w;
	size_t			 g;

	for (g = 0; groups[g] != NULL; g++)
		for (w = groups[g]; w->name != NULL; w++)
			printf("%s %s %s\n", w->name,
			    (w->flags & WL_NET) ? "net" : "-", w->what);
}

static int
check(const struct workload *w, unsigned long n)
{
	char	line[640];
	int	rc;

	wl_why[0] = '\0';
	rc = w->verify();
	if (rc == 0)
		snprintf(line, sizeof line, "check %lu PASS\n", n);
	else
		snprintf(line, sizeof line, "check %lu FAIL: %s\n", n,
		    wl_why[0] != '\0' ? wl_why : "(no reason)");
	append_state(line);
	return rc;
}

int
main(int argc, char **argv)
{
	const struct workload	*w;
	struct sigaction	 sa;
	unsigned long		 n = 0;
	char			 line[640];
	int			 selftest = 0;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		list();
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--selftest") == 0)
		selftest = 1;
	else if (argc != 3) {
		fprintf(stderr, "usage: wl NAME STATEFILE | wl --list | "
		    "wl --selftest NAME\n");
		return 1;
	}
	if ((w = lookup(argv[selftest ? 2 : 1])) == NULL) {
		fprintf(stderr, "wl: no workload %s (wl --list)\n",
		    argv[selftest ? 2 : 1]);
		return 1;
	}
	statefile = selftest ? NULL : argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	wl_why[0] = '\0';
	if (w->setup() != 0) {
		snprintf(line, sizeof line, "setup FAIL: %s\n", wl_why);
		append_state(line);
		return 1;
	}
	if (selftest) {
		if (check(w, ++n) != 0 || check(w, ++n) != 0)
			return 1;
		return 0;
	}
	snprintf(line, sizeof line, "ready pid=%ld\n", (long)getpid());
	append_state(line);

	while (!stop_requested) {
		if (check_requested) {
			check_requested = 0;
			check(w, ++n);
		}
		wl_msleep(TICK_MS);
	}
	return 0;
}
