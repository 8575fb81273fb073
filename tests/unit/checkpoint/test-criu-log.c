/* checkpoint/criu: what ternd reads in a CRIU log (the restorer's time
 * reading the pages into memory). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/criu.h"

static char *
write_log(const char *text)
{
	char	*path = strdup("/tmp/test-criu-log.XXXXXX");
	int	 fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Two tasks' reads, interleaved, are summed; other lines are ignored. */
static void
test_pages_read_summed(void **state)
{
	char	*path;

	(void)state;
	path = write_log(
	    "(00.001000) Version: 4.1.1 (gitid 0)\n"
	    "(00.043375) pie: 1: Preadv 0x401000:4096... (8 iovs)\n"
	    "(00.050000) pie: 7: Preadv 0x7f0000000000:8192... (2 iovs)\n"
	    "(00.060000) pie: 7: `- returned 8192\n"
	    "(04.569557) pie: 1: `- returned 1074073600\n"
	    "(04.582248) \tRPC\n");
	/* 4526.182 ms + 10 ms */
	assert_int_equal(criu_log_pages_read_ms(path), 4536);
	unlink(path);
	free(path);
}

/* No read (a lazy restore, a dump's log, no log): -1. */
static void
test_pages_read_none(void **state)
{
	char	*path;

	(void)state;
	path = write_log("(00.001000) Version: 4.1.1 (gitid 0)\n"
	    "(00.043375) pie: 1: Preadv 0x401000:4096... (8 iovs)\n");
	assert_int_equal(criu_log_pages_read_ms(path), -1);
	unlink(path);
	assert_int_equal(criu_log_pages_read_ms(path), -1);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_read_summed),
		cmocka_unit_test(test_pages_read_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
