/* reaper CMD [ARG...]: run CMD with this process as the child subreaper
 * of everything it starts, reaping every orphan the moment it exits, and
 * exit as CMD does.
 *
 * Why: a daemon's double fork (libvirtd's QEMUs) hands its process to the
 * nearest subreaper, else to PID 1.  A host's init reaps at once; this
 * machine's PID 1 takes up to a second or two, and until then the exited
 * QEMU is a zombie that kill(pid, 0) still finds.  libvirt polls just
 * that after its SIGTERM, so migrations and destroys waited here for
 * this machine's init, in the tests and in the benches' baselines alike.
 *
 * Signals sent to this process by another (kill, timeout, a parent) are
 * passed on to CMD; those the kernel sends (a terminal's ^C and ^\, to
 * the whole foreground process group) are not: CMD has its own.  A
 * signal ignored when it starts stays ignored, for CMD too (nohup).
 * Orphans still running when CMD exits go on to PID 1. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int	passed[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
#define NPASSED		(sizeof passed / sizeof passed[0])

static volatile sig_atomic_t	child;

static void
pass_on(int sig, siginfo_t *si, void *uc)
{
	int	saved = errno;

	(void)uc;
	if (child > 0 && si->si_code <= 0)	/* SI_USER, SI_QUEUE, ... */
		kill(child, sig);
	errno = saved;
}

/* CMD exited with status: exit the same way, a signal's death included
 * (a script that runs us then stops at ^C as it would have). */
static int
exit_as(int status)
{
	struct sigaction	sa;
	sigset_t		set;
	int			sig;

	if (!WIFSIGNALED(status))
		return WEXITSTATUS(status);
	sig = WTERMSIG(status);
	if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP &&
	    sig != SIGKILL && sig != SIGPIPE)
		return 128 + sig;	/* no core of ours for CMD's crash */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	return 128 + sig;
}

int
main(int argc, char *argv[])
{
	struct sigaction	 sa, old[NPASSED], dfl;
	sigset_t		 block, saved;
	pid_t			 pid, w;
	size_t			 i;
	int			 status, rc;

	if (argc < 2) {
		fprintf(stderr, "usage: reaper CMD [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "reaper: PR_SET_CHILD_SUBREAPER: %s\n",
		    strerror(errno));
		return 125;
	}
	/* waitpid must see every child, whatever we inherited. */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, NULL);

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = pass_on;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < NPASSED; i++) {
		sigaction(passed[i], NULL, &old[i]);
		sigaddset(&block, passed[i]);
		if (old[i].sa_handler != SIG_IGN)
			sigaction(passed[i], &sa, NULL);
	}
	/* None is lost between the fork and knowing the child. */
	sigprocmask(SIG_BLOCK, &block, &saved);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "reaper: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		for (i = 0; i < NPASSED; i++)
			if (old[i].sa_handler != SIG_IGN)
				sigaction(passed[i], &dfl, NULL);
		sigprocmask(SIG_SETMASK, &saved, NULL);
		execvp(argv[1], argv + 1);
		rc = errno == ENOENT ? 127 : 126;
		fprintf(stderr, "reaper: %s: %s\n", argv[1], strerror(errno));
		_exit(rc);
	}
	child = pid;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	for (;;) {
		w = waitpid(-1, &status, 0);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "reaper: waitpid: %s\n",
			    strerror(errno));
			return 125;
		}
		if (w == pid)
			break;
		/* else an orphan, reaped */
	}
	/* CMD is gone: its pid may be reused, signal it no more. */
	sigprocmask(SIG_BLOCK, &block, NULL);
	child = 0;
	/* Orphans already dead are ours to reap, not PID 1's. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return exit_as(status);
}
