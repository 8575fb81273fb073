/* stopped: a workload with a stopped child, in the manner of CRIU's zdtm
 * stopped tests.  Built static, so it runs in a rootfs with nothing else.
 *
 *	stopped STATEFILE
 *
 * Forks a child that writes one byte into a pipe every 10 ms, stops it
 * with SIGSTOP and drains the pipe; then ticks a counter every 10 ms.
 * STATEFILE (opened, appended to and closed each time) gets:
 *	ready pid=P child=C	once the child is stopped (as seen inside)
 *	counter=N ok		on SIGUSR1, if the child is still stopped
 *				(state T) and wrote nothing since
 *	counter=N FAIL: why	otherwise
 * A checkpoint, restore or move must keep the child stopped and this
 * process running.  SIGTERM or SIGINT: kill the child, exit 0. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t	check_requested;
static volatile sig_atomic_t	stop_requested;
static const char		*statefile;

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

static void	say(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list	 ap;
	FILE	*fp;

	if ((fp = fopen(statefile, "a")) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
	fclose(fp);
}

static void
nap(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);	/* a signal may cut it short: fine */
}

/* The child's state letter from /proc/PID/stat, or '?'. */
static char
state_of(pid_t pid)
{
	char	 path[64], buf[512], *paren;
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return '?';
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	if ((paren = strrchr(buf, ')')) == NULL || paren[1] != ' ')
		return '?';
	return paren[2];
}

/* Bytes the child wrote since the last call. */
static long
drain(int fd)
{
	char	 buf[256];
	ssize_t	 n;
	long	 total = 0;

	while ((n = read(fd, buf, sizeof buf)) > 0)
		total += n;
	return total;
}

int
main(int argc, char **argv)
{
	struct sigaction	 sa;
	unsigned long		 counter = 0;
	pid_t			 child;
	int			 p[2], st;
	long			 ran;
	char			 state;

	if (argc != 2) {
		fprintf(stderr, "usage: stopped STATEFILE\n");
		return 1;
	}
	statefile = argv[1];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
		perror("pipe2");
		return 1;
	}
	if ((child = fork()) == -1) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		close(p[0]);
		for (;;) {
			if (write(p[1], "x", 1) == -1 && errno != EAGAIN)
				_exit(1);
			nap(10);
		}
	}
	close(p[1]);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	nap(50);	/* it has written something: it ran */
	if (kill(child, SIGSTOP) != 0 ||
	    waitpid(child, &st, WUNTRACED) != child || !WIFSTOPPED(st)) {
		say("FAIL: cannot stop the child");
		return 1;
	}
	drain(p[0]);
	say("ready pid=%ld child=%ld", (long)getpid(), (long)child);
	while (!stop_requested) {
		nap(10);
		counter++;
		if (!check_requested)
			continue;
		check_requested = 0;
		state = state_of(child);
		ran = drain(p[0]);
		if (state != 'T')
			say("counter=%lu FAIL: the child is in state %c, not T "
			    "(stopped)", counter, state);
		else if (ran != 0)
			say("counter=%lu FAIL: the stopped child ran (%ld "
			    "bytes)", counter, ran);
		else
			say("counter=%lu ok", counter);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 0;
}
