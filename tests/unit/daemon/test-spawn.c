/* Unit tests for daemon/spawn.c: a child's exit status and killing
 * signal arrive on the loop, it gets exactly the descriptors given (in
 * place, /dev/null for -1, nothing else of ours), its own session when
 * asked, default signal dispositions, and a start that cannot run fails
 * with a cause and nothing to close.  Run natively they watch through
 * pidfds; under valgrind (3.19 has no pidfd_open) through SIGCHLD. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "daemon/spawn.h"
#include "daemon/xmalloc.h"

struct ended {
	int	 calls;
	int64_t	 status;
	int	 signal;
	int	 closed;
};

static void
on_exit_cb(struct spawn *s, int64_t status, int term_signal)
{
	struct ended	*e = s->data;

	e->calls++;
	e->status = status;
	e->signal = term_signal;
}

static void
on_closed(uv_handle_t *h)
{
	struct ended	*e = h->data;

	e->closed++;
}

/* Run sh -c script with fds, wait for its end; what it wrote to fd 1 (a
 * pipe of ours, if fds[1] is -2) into out. */
static void
run(const char *script, int *fds, int nfds, int setsid, struct ended *e,
    char *out, size_t outsz)
{
	uv_loop_t		 loop;
	struct spawn		 s;
	struct spawn_opts	 o;
	char			*args[] = { "sh", "-c", (char *)script, NULL };
	char			*cause = NULL;
	int			 p[2] = { -1, -1 };
	ssize_t			 n;

	memset(e, 0, sizeof *e);
	if (nfds > 1 && fds[1] == -2) {
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		fds[1] = p[1];
	}
	uv_loop_init(&loop);
	memset(&o, 0, sizeof o);
	o.file = "sh";
	o.args = args;
	o.fds = fds;
	o.nfds = nfds;
	o.setsid = setsid;
	if (spawn_start(&loop, &s, &o, on_exit_cb, &cause) != 0)
		fail_msg("spawn_start: %s", cause);
	assert_null(cause);
	assert_true(s.pid > 0);
	s.data = e;
	if (p[1] != -1)
		close(p[1]);
	while (e->calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(e->calls, 1);
	if (p[0] != -1 && out != NULL) {
		n = read(p[0], out, outsz - 1);
		out[n > 0 ? n : 0] = '\0';
	}
	if (p[0] != -1)
		close(p[0]);
	/* Killing an ended child reaches nobody. */
	assert_int_equal(spawn_kill(&s, SIGKILL), -1);
	spawn_close(&s, on_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(e->closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_status(void **state)
{
	struct ended	e;
	int		fds[3] = { -1, -1, -1 };

	(void)state;
	run("exit 3", fds, 3, 0, &e, NULL, 0);
	assert_int_equal(e.status, 3);
	assert_int_equal(e.signal, 0);
	run("kill -TERM $$", fds, 3, 0, &e, NULL, 0);
	assert_int_equal(e.signal, SIGTERM);
}

static void
test_descriptors(void **state)
{
	struct ended	e;
	char		out[256];
	int		fds[4], leak, extra[2];

	(void)state;
	/* A descriptor of ours without O_CLOEXEC, and one given as fd 3
	 * that sits at a number a dup2 could have clobbered. */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 0);
	assert_int_equal(pipe(extra), 0);
	fds[0] = -1;
	fds[1] = -2;
	fds[2] = -1;
	fds[3] = extra[1];
	run("echo x >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '; "
	    "readlink /proc/self/fd/0", fds, 4, 0, &e, out, sizeof out);
	assert_int_equal(e.status, 0);
	/* 0-3 and the one ls opens to list them: nothing of ours leaked. */
	assert_non_null(strstr(out, "0 1 2 3 4 /dev/null"));
	assert_int_equal(read(extra[0], out, 2), 2);
	assert_memory_equal(out, "x\n", 2);
	close(extra[0]);
	close(extra[1]);
	close(leak);
}

/* A hundred descriptors (a guard holds one per process of a tree), more
 * than the floor spawn raises its own copies above: each lands where it
 * was asked.  Each pipe's end goes to the child at a number of its own;
 * the child writes that number into it. */
static void
test_many_descriptors(void **state)
{
	enum { N = 100, FIRST = 3 };
	struct ended	e;
	char		script[128], got[16];
	int		fds[FIRST + N], rd[N], p[2], i;
	ssize_t		n;

	(void)state;
	fds[0] = fds[1] = fds[2] = -1;
	for (i = 0; i < N; i++) {
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		rd[i] = p[0];
		fds[FIRST + i] = p[1];
	}
	snprintf(script, sizeof script,
	    "i=%d; while [ $i -lt %d ]; do echo $i >/proc/self/fd/$i; i=$((i+1)); done",
	    FIRST, FIRST + N);
	run(script, fds, FIRST + N, 0, &e, NULL, 0);
	assert_int_equal(e.status, 0);
	for (i = 0; i < N; i++) {
		close(fds[FIRST + i]);
		n = read(rd[i], got, sizeof got - 1);
		assert_true(n > 0);
		got[n] = '\0';
		assert_int_equal(atoi(got), FIRST + i);
		close(rd[i]);
	}
}

static void
test_session_and_signals(void **state)
{
	struct ended	e;
	char		out[256];
	int		fds[3] = { -1, -2, -1 };
	struct sigaction sa;
	sigset_t	 set, old;

	(void)state;
	/* Ignored and blocked here; the child must have neither. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	run("ps -o sid= -o pid= -p $$; "
	    "grep -E '^Sig(Ign|Blk)' /proc/self/status", fds, 3, 1, &e, out,
	    sizeof out);
	sigprocmask(SIG_SETMASK, &old, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGUSR1, &sa, NULL);
	assert_int_equal(e.status, 0);
	assert_non_null(strstr(out, "SigBlk:\t0000000000000000"));
	{
		unsigned long long	 ign;
		long			 sid, pid;
		const char		*p = strstr(out, "SigIgn:\t");

		assert_non_null(p);
		ign = strtoull(p + 8, NULL, 16);
		/* None of 1-31 (glibc leaves its own 32 and 33, which a
		 * glibc program sets again at start, ignored). */
		assert_int_equal(ign & 0x7fffffffULL, 0);
		assert_int_equal(sscanf(out, "%ld %ld", &sid, &pid), 2);
		assert_int_equal(sid, pid);	/* its own session */
	}
}

static void
test_cannot_run(void **state)
{
	uv_loop_t		 loop;
	struct spawn		 s;
	struct spawn_opts	 o;
	struct ended		 e;
	char			*args[] = { "/nonexistent/tern-test", NULL };
	char			*cause = NULL;

	(void)state;
	uv_loop_init(&loop);
	memset(&o, 0, sizeof o);
	o.file = args[0];
	o.args = args;
	if (spawn_start(&loop, &s, &o, on_exit_cb, &cause) == 0) {
		/* Only where the vfork is a fork (valgrind): the child's
		 * exit says it. */
		memset(&e, 0, sizeof e);
		s.data = &e;
		while (e.calls == 0)
			uv_run(&loop, UV_RUN_ONCE);
		assert_int_equal(e.status, 127);
		spawn_close(&s, on_closed);
		uv_run(&loop, UV_RUN_DEFAULT);
	} else {
		assert_non_null(cause);
		assert_non_null(strstr(cause, "/nonexistent/tern-test"));
		free(cause);
	}
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_many_descriptors),
		cmocka_unit_test(test_session_and_signals),
		cmocka_unit_test(test_cannot_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
