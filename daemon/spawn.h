/* Child processes started with posix_spawn, their exit watched through a
 * pidfd on the event loop.
 *
 * uv_spawn forks ternd: the kernel copies its page tables, each page
 * ternd writes afterwards takes a fault, and the loop waits until the
 * child has exec'd; 5-15 ms per start on a busy 2-core host, and a
 * migration starts CRIU inside its freeze.  posix_spawn (glibc: clone
 * with CLONE_VM | CLONE_VFORK) lends the child ternd's memory until its
 * exec and returns in well under a millisecond.
 *
 * The pidfd also makes a signal reach this child or nobody, never a
 * process that later took its pid.  Where there is none (a kernel before
 * 5.3, valgrind 3.19), SIGCHLD and waitpid on its pid watch it; on 5.3,
 * which has pidfds but not waitid(P_PIDFD), waitpid reaps it. */
#ifndef TERN_SPAWN_H
#define TERN_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

struct spawn;
/* The child ended: status is its exit status, or term_signal the signal
 * that killed it.  It has been reaped. */
typedef void (*spawn_exit_cb)(struct spawn *, int64_t status,
    int term_signal);

struct spawn {
	uv_poll_t	 poll;		/* on the pidfd ... */
	uv_signal_t	 sigchld;	/* ... or, without pidfds, SIGCHLD */
	void		*data;		/* the caller's: set after spawn_start */
	pid_t		 pid;
	int		 pidfd;		/* -1: watched through SIGCHLD */
	int		 exited;
	spawn_exit_cb	 exit_cb;
	uv_close_cb	 close_cb;
};

struct spawn_opts {
	const char	*file;		/* searched in PATH if it has no '/' */
	char *const	*args;
	char *const	*env;		/* NULL: ternd's own */
	/* fds[i] becomes the child's descriptor i (-1: /dev/null); the
	 * child has no other descriptor. */
	const int	*fds;
	int		 nfds;
	int		 setsid;	/* a session (and group) of its own */
};

/* Start it; its exit comes through exit_cb, on the loop.  Signal
 * dispositions are the defaults and none is blocked in the child.  On
 * success the handle is open until spawn_close; on failure -1, *cause
 * set, nothing to close. */
int	spawn_start(uv_loop_t *, struct spawn *, const struct spawn_opts *,
	    spawn_exit_cb, char **cause);
/* Send sig to the child if it has not ended: 0, or -1 with errno. */
int	spawn_kill(struct spawn *, int sig);
/* The loop does not wait for it (a child that may never end). */
void	spawn_unref(struct spawn *);
/* After exit_cb: close the handle; cb follows as uv_close's, with a
 * handle whose data is s->data.  (Before it, nobody would reap the
 * child.) */
void	spawn_close(struct spawn *, uv_close_cb);

#endif
