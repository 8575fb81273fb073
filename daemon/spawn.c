#include "config.h"

#include <sys/pidfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/spawn.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

extern char	**environ;

/* Above any descriptor a child is given (and at least this high): the
 * dup2 of one never lands on the source of a later one. */
#define SPAWN_FD_FLOOR	64
/* A child's descriptors at most (a guard holds a userfaultfd for each
 * process of a tree). */
#define SPAWN_FD_MAX	1024

static void
spawn_ended(struct spawn *s, int64_t status, int term_signal)
{
	if (s->pidfd != -1)
		uv_poll_stop(&s->poll);
	else
		uv_signal_stop(&s->sigchld);
	s->exited = 1;
	s->exit_cb(s, status, term_signal);
}

/* A look at the child by its pid (ours until it is reaped). */
static void
spawn_waitpid(struct spawn *s)
{
	pid_t	r;
	int	st;

	while ((r = waitpid(s->pid, &st, WNOHANG)) == -1 && errno == EINTR)
		;
	if (r == 0)
		return;		/* not yet */
	if (r == -1)
		spawn_ended(s, -1, 0);	/* reaped elsewhere: how is lost,
					 * never taken for a success */
	else if (WIFEXITED(st))
		spawn_ended(s, WEXITSTATUS(st), 0);
	else if (WIFSIGNALED(st))
		spawn_ended(s, 0, WTERMSIG(st));
}

static void
spawn_on_exit(uv_poll_t *h, int status, int events)
{
	struct spawn	*s = (struct spawn *)h;
	siginfo_t	 si;

	(void)status;
	(void)events;
	memset(&si, 0, sizeof si);
	if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG) != 0) {
		if (errno != EINTR)
			spawn_waitpid(s);	/* 5.3: no P_PIDFD yet */
		return;
	}
	if (si.si_pid == 0)
		return;		/* not yet */
	if (si.si_code == CLD_EXITED)
		spawn_ended(s, si.si_status, 0);
	else
		spawn_ended(s, 0, si.si_status);
}

/* Without a pidfd: every SIGCHLD, a look at this one child. */
static void
spawn_on_sigchld(uv_signal_t *h, int signum)
{
	(void)signum;
	spawn_waitpid((struct spawn *)((char *)h -
	    offsetof(struct spawn, sigchld)));
}

int
spawn_start(uv_loop_t *loop, struct spawn *s, const struct spawn_opts *o,
    spawn_exit_cb cb, char **cause)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 none, all;
	int				*high, fd_floor, i, rc, err;
	short				 flags = POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF;
	siginfo_t			 si;

	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->pidfd = -1;
	if (o->nfds < 0 || o->nfds > SPAWN_FD_MAX) {
		set_cause(cause, "%s: %d descriptors to pass, at most %d",
		    o->file, o->nfds, SPAWN_FD_MAX);
		return -1;
	}
	fd_floor = o->nfds > SPAWN_FD_FLOOR ? o->nfds : SPAWN_FD_FLOOR;
	high = xreallocarray(NULL, o->nfds > 0 ? (size_t)o->nfds : 1,
	    sizeof *high);
	for (i = 0; i < o->nfds; i++)
		high[i] = -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	rc = -1;
	for (i = 0; i < o->nfds; i++) {
		if (o->fds[i] == -1) {
			err = posix_spawn_file_actions_addopen(&fa, i,
			    "/dev/null", O_RDWR, 0);
		} else if ((high[i] = fcntl(o->fds[i], F_DUPFD_CLOEXEC,
		    fd_floor)) == -1) {
			err = errno;
		} else
			err = posix_spawn_file_actions_adddup2(&fa, high[i], i);
		if (err != 0) {
			set_cause(cause, "cannot start %s: descriptor %d: %s",
			    o->file, i, strerror(err));
			goto out;
		}
	}
	posix_spawn_file_actions_addclosefrom_np(&fa, o->nfds);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	if (o->setsid)
		flags |= POSIX_SPAWN_SETSID;
	posix_spawnattr_setflags(&attr, flags);
	err = posix_spawnp(&s->pid, o->file, &fa, &attr, o->args,
	    o->env != NULL ? o->env : environ);
	if (err != 0) {
		set_cause(cause, "cannot run %s: %s", o->file, strerror(err));
		goto out;
	}
	s->exit_cb = cb;
	rc = 0;
	if ((s->pidfd = pidfd_open(s->pid, 0)) != -1) {
		uv_poll_init(loop, &s->poll, s->pidfd);
		uv_poll_start(&s->poll, UV_READABLE, spawn_on_exit);
		goto out;
	}
	/* No pidfds here: SIGCHLD.  One that came before the watch began
	 * is raised again (a look that does not reap it), so the watch
	 * sees it on the loop, never inside this call. */
	uv_signal_init(loop, &s->sigchld);
	uv_signal_start(&s->sigchld, spawn_on_sigchld, SIGCHLD);
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid != 0)
		kill(getpid(), SIGCHLD);
out:
	for (i = 0; i < o->nfds; i++)
		if (high[i] != -1)
			close(high[i]);
	free(high);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

int
spawn_kill(struct spawn *s, int sig)
{
	if (s->exited) {
		errno = ESRCH;
		return -1;
	}
	/* Not reaped yet, so its pid is still its own. */
	if (s->pidfd == -1)
		return kill(s->pid, sig);
	return pidfd_send_signal(s->pidfd, sig, NULL, 0);
}

/* The pidfd goes only now: libuv may touch the descriptor until then. */
static void
spawn_closed(uv_handle_t *h)
{
	struct spawn	*s = h->data;

	if (s->pidfd != -1)
		close(s->pidfd);
	s->pidfd = -1;
	h->data = s->data;
	s->close_cb(h);
}

void
spawn_unref(struct spawn *s)
{
	uv_unref(s->pidfd != -1 ? (uv_handle_t *)&s->poll :
	    (uv_handle_t *)&s->sigchld);
}

void
spawn_close(struct spawn *s, uv_close_cb cb)
{
	uv_handle_t	*h = s->pidfd != -1 ? (uv_handle_t *)&s->poll :
			    (uv_handle_t *)&s->sigchld;

	s->close_cb = cb;
	h->data = s;
	uv_close(h, spawn_closed);
}
