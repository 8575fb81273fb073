#include "config.h"

#include <sys/pidfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "daemon/spawn.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

extern char	**environ;

/* Above any descriptor a child is given: the dup2 of one never lands on
 * the source of a later one. */
#define SPAWN_FD_FLOOR	64

static void
spawn_on_exit(uv_poll_t *h, int status, int events)
{
	struct spawn	*s = (struct spawn *)h;
	siginfo_t	 si;

	(void)status;
	(void)events;
	memset(&si, 0, sizeof si);
	if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG) != 0) {
		if (errno == EINTR)
			return;
		/* Reaped by someone else: it ended, how is lost (never
		 * taken for a success). */
		uv_poll_stop(&s->poll);
		s->exited = 1;
		s->exit_cb(s, -1, 0);
		return;
	}
	if (si.si_pid == 0)
		return;		/* not yet */
	uv_poll_stop(&s->poll);
	s->exited = 1;
	if (si.si_code == CLD_EXITED)
		s->exit_cb(s, si.si_status, 0);
	else
		s->exit_cb(s, 0, si.si_status);
}

int
spawn_start(uv_loop_t *loop, struct spawn *s, const struct spawn_opts *o,
    spawn_exit_cb cb, char **cause)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 none, all;
	int				 high[16], i, rc, err;
	short				 flags = POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF;

	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->pidfd = -1;
	if (o->nfds < 0 || o->nfds > (int)(sizeof high / sizeof high[0])) {
		set_cause(cause, "%s: %d descriptors to pass, at most %zu",
		    o->file, o->nfds, sizeof high / sizeof high[0]);
		return -1;
	}
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
		    SPAWN_FD_FLOOR)) == -1) {
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
	if ((s->pidfd = pidfd_open(s->pid, 0)) == -1) {
		/* No way to watch it (a kernel before 5.3): do not leave
		 * it running unwatched. */
		err = errno;
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, NULL, 0) == -1 && errno == EINTR)
			;
		set_cause(cause, "cannot watch %s (pid %ld): pidfd_open: %s",
		    o->file, (long)s->pid, strerror(err));
		goto out;
	}
	s->exit_cb = cb;
	uv_poll_init(loop, &s->poll, s->pidfd);
	uv_poll_start(&s->poll, UV_READABLE, spawn_on_exit);
	rc = 0;
out:
	for (i = 0; i < o->nfds; i++)
		if (high[i] != -1)
			close(high[i]);
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
	return pidfd_send_signal(s->pidfd, sig, NULL, 0);
}

/* The pidfd goes only now: libuv may touch the descriptor until then. */
static void
spawn_closed(uv_handle_t *h)
{
	struct spawn	*s = (struct spawn *)h;

	close(s->pidfd);
	s->pidfd = -1;
	s->close_cb(h);
}

void
spawn_close(struct spawn *s, uv_close_cb cb)
{
	s->close_cb = cb;
	uv_close((uv_handle_t *)&s->poll, spawn_closed);
}
