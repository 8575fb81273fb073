/* The hardware breakpoint probe (see hwbreak.h). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MODULE "ckpt.criu"
#include "checkpoint/hwbreak.h"
#include "daemon/log.h"
#include "daemon/xmalloc.h"

#if defined(__x86_64__)

/* Where the child's breakpoint sits: a real call, never inlined. */
__attribute__((noinline)) static void
hwbreak_target(void)
{
	__asm__ volatile("" ::: "memory");
}

/* The child: stopped for its parent to arm DR0, then calls the target.
 * Exit 0 means it ran past the breakpoint. */
static void
hwbreak_child(void)
{
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
		_exit(2);
	raise(SIGSTOP);
	hwbreak_target();
	_exit(0);
}

static int
hwbreak_wait(pid_t pid, int *st)
{
	pid_t	r;

	while ((r = waitpid(pid, st, __WALL)) == -1 && errno == EINTR)
		;
	return r == pid ? 0 : -1;
}

enum hwbreak
hwbreak_probe(char **cause)
{
	enum hwbreak	 res = HWBREAK_UNKNOWN;
	pid_t		 pid;
	int		 st = 0, gone;

	if ((pid = fork()) == -1) {
		set_cause(cause, "fork: %s", strerror(errno));
		return HWBREAK_UNKNOWN;
	}
	if (pid == 0)
		hwbreak_child();
	if (hwbreak_wait(pid, &st) != 0 || !WIFSTOPPED(st) ||
	    WSTOPSIG(st) != SIGSTOP) {
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return HWBREAK_UNKNOWN;	/* reaped: no pid to kill */
		set_cause(cause, "the probe child did not stop for its tracer "
		    "(status %#x)", st);
		goto out;
	}
	/* DR0: the address; DR7 bit 0: enabled locally, as an execution
	 * breakpoint of one byte (its type and length bits zero). */
	if (ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]),
	    (void *)(uintptr_t)hwbreak_target) != 0 ||
	    ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]),
	    (void *)1) != 0) {
		set_cause(cause, "cannot set a debug register: %s",
		    strerror(errno));
		goto out;
	}
	if (ptrace(PTRACE_CONT, pid, NULL, NULL) != 0 ||
	    hwbreak_wait(pid, &st) != 0) {
		set_cause(cause, "cannot run the probe child: %s",
		    strerror(errno));
		goto out;
	}
	gone = WIFEXITED(st) || WIFSIGNALED(st);
	if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP)
		res = HWBREAK_FIRES;
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		res = HWBREAK_SILENT;
	else
		set_cause(cause, "the probe child ended oddly (status %#x)",
		    st);
	if (gone)
		return res;	/* reaped: its pid may be another's now */
out:
	kill(pid, SIGKILL);
	(void)hwbreak_wait(pid, &st);
	return res;
}

#else

enum hwbreak
hwbreak_probe(char **cause)
{
	set_cause(cause, "the probe knows x86-64's debug registers only");
	return HWBREAK_UNKNOWN;
}

#endif

const char *
hwbreak_name(enum hwbreak hb)
{
	return hb == HWBREAK_FIRES ? "fires" : hb == HWBREAK_SILENT ?
	    "silent" : "unknown";
}

void
hwbreak_setup(void)
{
	const char	*set = getenv("CRIU_FAULT");
	char		*cause = NULL;

	switch (hwbreak_probe(&cause)) {
	case HWBREAK_FIRES:
		log_debug("hardware breakpoints fire here: CRIU may use them");
		break;
	case HWBREAK_SILENT:
		if (set != NULL) {
			log_warnx("hardware breakpoints never fire on this "
			    "machine (its hypervisor drops them), and CRIU_FAULT "
			    "is set (%s) by whoever started ternd: left as it "
			    "is; unless it is 130, CRIU's dumps and restores "
			    "wait for good", set);
			break;
		}
		setenv("CRIU_FAULT", "130", 1);
		log_info("hardware breakpoints never fire on this machine (its "
		    "hypervisor drops them): CRIU runs with CRIU_FAULT=130, "
		    "tracing syscalls instead");
		break;
	case HWBREAK_UNKNOWN:
		log_info("cannot tell whether hardware breakpoints fire here "
		    "(%s): CRIU decides for itself", cause);
		break;
	}
	free(cause);
}
