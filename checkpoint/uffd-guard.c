#include "config.h"

#include <sys/pidfd.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "ckpt"
#include "checkpoint/uffd-guard.h"
#include "daemon/log.h"
#include "daemon/spawn.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* The guard's descriptors. */
#define GUARD_FD_TERND	3	/* the pipe's read end */
#define GUARD_FD_INIT	4	/* pidfd of the tree's init */
#define GUARD_FD_UFFD	5	/* the first userfaultfd */

struct uffd_guard {
	struct spawn	 proc;
	char		*name;
	int		 fd;		/* the pipe's write end, -1 released */
	int		 closed;	/* its spawn handle is closed */
};

static void
uffd_guard_free(struct uffd_guard *g)
{
	free(g->name);
	free(g);
}

static void
uffd_guard_closed(uv_handle_t *h)
{
	struct uffd_guard	*g = h->data;

	g->closed = 1;
	if (g->fd == -1)
		uffd_guard_free(g);	/* released already */
}

static void
uffd_guard_exited(struct spawn *s, int64_t status, int term_signal)
{
	struct uffd_guard	*g = s->data;

	if (g->fd != -1)
		log_warnx("%s: the guard of its missing pages (pid %ld) "
		    "ended before it was let go (status %lld, signal %d): "
		    "should ternd die now, nothing keeps the container off "
		    "the pages it lacks", g->name, (long)s->pid,
		    (long long)status, term_signal);
	spawn_close(s, uffd_guard_closed);
}

struct uffd_guard *
uffd_guard_start(uv_loop_t *loop, const char *name, pid_t init,
    const int *uffds, size_t nuffds, char **cause)
{
	struct spawn_opts	 o;
	struct uffd_guard	*g;
	char			*args[] = { "ternd", UFFD_GUARD_ARG, NULL };
	int			*fds, p[2], initfd;
	size_t			 i;

	if ((initfd = pidfd_open(init, 0)) == -1) {
		set_cause(cause, "pidfd_open of its init (pid %ld): %s",
		    (long)init, strerror(errno));
		return NULL;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		set_cause(cause, "pipe: %s", strerror(errno));
		close(initfd);
		return NULL;
	}
	fds = xreallocarray(NULL, GUARD_FD_UFFD + nuffds, sizeof *fds);
	fds[0] = fds[1] = fds[2] = -1;
	fds[GUARD_FD_TERND] = p[0];
	fds[GUARD_FD_INIT] = initfd;
	for (i = 0; i < nuffds; i++)
		fds[GUARD_FD_UFFD + i] = uffds[i];
	memset(&o, 0, sizeof o);
	/* This very binary, whatever became of its path since. */
	o.file = "/proc/self/exe";
	o.args = args;
	o.fds = fds;
	o.nfds = (int)(GUARD_FD_UFFD + nuffds);
	/* A signal to ternd's session or group does not reach it. */
	o.setsid = 1;
	g = xcalloc(1, sizeof *g);
	g->name = xstrdup(name);
	g->fd = p[1];
	if (spawn_start(loop, &g->proc, &o, uffd_guard_exited, cause) != 0) {
		close(p[1]);
		uffd_guard_free(g);
		g = NULL;
	} else {
		g->proc.data = g;
		spawn_unref(&g->proc);	/* ternd's stop does not wait */
		log_debug("%s: guard %ld holds %zu userfaultfd%s", name,
		    (long)g->proc.pid, nuffds, nuffds == 1 ? "" : "s");
	}
	free(fds);
	close(p[0]);
	close(initfd);
	return g;
}

void
uffd_guard_release(struct uffd_guard *g)
{
	if (g == NULL || g->fd == -1)
		return;
	/* One byte: let go.  Should the write fail, the pipe's end alone
	 * would read as ternd's death: the guard would kill the tree. */
	if (write(g->fd, "r", 1) != 1)
		log_warnx("%s: cannot let the guard of its missing pages go "
		    "(%s): it may kill the container", g->name,
		    strerror(errno));
	close(g->fd);
	g->fd = -1;
	if (g->closed)
		uffd_guard_free(g);
}

/* --- the guard ------------------------------------------------------------ */

/* Async-signal-safe calls only are needed here, and nothing of ternd's
 * runs: no log (its descriptors are /dev/null), no loop. */
int
uffd_guard_main(void)
{
	struct pollfd	p[2];
	sigset_t	all;
	char		c;
	ssize_t		n;

	/* What reaches it comes through the pipe, never a signal (SIGKILL
	 * aside). */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	p[0].fd = GUARD_FD_TERND;
	p[1].fd = GUARD_FD_INIT;
	for (;;) {
		p[0].events = p[1].events = POLLIN;
		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;		/* cannot wait: kill, as for a death */
		}
		if (p[1].revents != 0)
			return 0;	/* the tree is gone */
		if (p[0].revents == 0)
			continue;
		n = read(GUARD_FD_TERND, &c, 1);
		if (n == 1)
			return 0;	/* let go */
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		break;			/* the pipe ended: ternd is gone */
	}
	/* The init's death takes its pid namespace with it; once the init
	 * is gone (its pidfd reads ready only after the kernel killed the
	 * rest) no fault waits any more, and the copies may go. */
	if (pidfd_send_signal(GUARD_FD_INIT, SIGKILL, NULL, 0) == -1 &&
	    errno != ESRCH)
		return 1;
	p[1].events = POLLIN;
	while (poll(&p[1], 1, -1) == -1 && errno == EINTR)
		;
	return 0;
}
