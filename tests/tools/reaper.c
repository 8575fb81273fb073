/* reaper CMD [ARG...]: run CMD with this process as the child subreaper
 * of everything it starts, reaping every orphan the moment it exits, and
 * exit as CMD does.
 *
 * Why: a daemon's double fork (libvirtd's QEMUs) hands its process to the
 * nearest subreaper, else to PID 1.  A host's init reaps at once; this
 * machine's PID 1 (a sandbox's process_api) takes a second or more, and
 * until then the exited QEMU is a zombie that kill(pid, 0) still finds.
 * libvirt polls just that after its SIGTERM, so every migration's confirm
 * and every destroy waited about 2 s longer here than on a real host, in
 * the tests and in the benches' baselines alike.
 *
 * SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to this process alone are
 * passed on to CMD; sent to the whole process group (a terminal's ^C,
 * timeout(1) in tests/lib/run-test) CMD has its own, and a second would
 * cut short the test's EXIT trap.  Orphans still running when CMD exits
 * go on to PID 1 as before. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t	child;

static void
pass_on(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (child <= 0 || si->si_code != SI_USER)
		return;		/* the kernel's: a terminal's, to the group */
	if (si->si_pid > 0 && getpgid(si->si_pid) == getpgrp())
		return;		/* one of ours signalled the group */
	kill(child, sig);
}

int
main(int argc, char *argv[])
{
	static const int	 passed[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	struct sigaction	 sa;
	pid_t			 pid, w;
	size_t			 i;
	int			 status;

	if (argc < 2) {
		fprintf(stderr, "usage: reaper CMD [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "reaper: PR_SET_CHILD_SUBREAPER: %s\n",
		    strerror(errno));
		return 125;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = pass_on;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof passed / sizeof passed[0]; i++)
		sigaction(passed[i], &sa, NULL);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "reaper: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		for (i = 0; i < sizeof passed / sizeof passed[0]; i++)
			sigaction(passed[i], &sa, NULL);
		execvp(argv[1], argv + 1);
		fprintf(stderr, "reaper: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	child = pid;
	for (;;) {
		w = waitpid(-1, &status, 0);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "reaper: waitpid: %s\n",
			    strerror(errno));
			return 125;
		}
		if (w != pid)
			continue;	/* an orphan, reaped */
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return WEXITSTATUS(status);
	}
}
