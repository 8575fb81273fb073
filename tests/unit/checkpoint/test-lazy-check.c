/* checkpoint/lazy-check: what lazy pages cannot carry, seen in real
 * processes (this test and a child it forks): memory shared on purpose,
 * alone or in a tree; pages shared copy-on-write after a fork; and a
 * process alone with only private memory, which post-copy may move. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/lazy-check.h"

#define REGION	(4u << 20)

static char *
verdict(const pid_t *pids, size_t n, int *rc)
{
	char	*why = NULL;

	*rc = lazy_check_pids(pids, n, &why);
	return why;
}

/* A process alone, its memory its own: post-copy may move it. */
static void
test_alone_private(void **state)
{
	pid_t	 self = getpid();
	char	*p, *why;
	int	 rc;

	(void)state;
	p = malloc(REGION);
	assert_non_null(p);
	memset(p, 1, REGION);
	why = verdict(&self, 1, &rc);
	assert_int_equal(rc, 0);
	assert_null(why);
	free(p);
}

/* Anonymous MAP_SHARED memory: not served lazily, even in a process
 * alone (its maps say so). */
static void
test_alone_shared(void **state)
{
	pid_t	 self = getpid();
	char	*p, *why;
	int	 rc;

	(void)state;
	p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 1, REGION);
	why = verdict(&self, 1, &rc);
	assert_int_equal(rc, 1);
	assert_non_null(why);
	assert_non_null(strstr(why, "shared memory"));
	free(why);
	munmap(p, REGION);
}

/* A fork without exec: the pages both still share copy-on-write would
 * come back as private copies. */
static void
test_tree_cow(void **state)
{
	pid_t	 pids[2];
	int	 rc, pipefd[2];
	char	*p, *why, c;

	(void)state;
	p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 1, REGION);
	assert_int_equal(pipe(pipefd), 0);
	if ((pids[1] = fork()) == 0) {
		close(pipefd[0]);
		(void)!write(pipefd[1], "r", 1);
		pause();
		_exit(0);
	}
	assert_true(pids[1] > 0);
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);	/* it runs */
	close(pipefd[0]);
	pids[0] = getpid();
	why = verdict(pids, 2, &rc);
	kill(pids[1], SIGKILL);
	waitpid(pids[1], NULL, 0);
	assert_int_equal(rc, 1);
	assert_non_null(why);
	assert_non_null(strstr(why, "copy-on-write"));
	free(why);
	munmap(p, REGION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alone_private),
		cmocka_unit_test(test_alone_shared),
		cmocka_unit_test(test_tree_cow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
