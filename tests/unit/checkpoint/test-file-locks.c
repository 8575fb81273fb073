/* checkpoint/file-locks: which /proc/locks lines stop a move. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "checkpoint/file-locks.h"

static const char locks[] =
    "1: POSIX  ADVISORY  WRITE 4242 00:2e:5678 0 EOF\n"
    "1: -> POSIX  ADVISORY  WRITE 777 08:01:99 0 EOF\n"
    "2: FLOCK  ADVISORY  WRITE 4343 08:01:1234 0 EOF\n"
    "3: OFDLCK ADVISORY  READ  -1 08:01:4321 0 EOF\n"
    "4: POSIX  ADVISORY  READ  5000 08:01:1 0 EOF\n"
    "garbage line\n";

static void
test_find(void **state)
{
	pid_t	 ours[] = { 4343, 10 }, waiter[] = { 777 }, other[] = { 4242 };
	char	*why = NULL;

	(void)state;
	/* A flock of ours on the shared filesystem (08:01). */
	assert_int_equal(file_locks_find(locks, ours, 2, makedev(8, 1), &why),
	    1);
	assert_non_null(strstr(why, "process 4343 holds a flock lock on "
	    "inode 1234"));
	free(why);
	why = NULL;
	/* Only waiting for one is no lock held. */
	assert_int_equal(file_locks_find(locks, waiter, 1, makedev(8, 1),
	    &why), 0);
	/* A lock on another filesystem (the container's own /tmp). */
	assert_int_equal(file_locks_find(locks, other, 1, makedev(8, 1), &why),
	    0);
	assert_int_equal(file_locks_find(locks, other, 1, makedev(0, 0x2e),
	    &why), 1);
	assert_non_null(strstr(why, "POSIX"));
	free(why);
	assert_int_equal(file_locks_find("", ours, 2, makedev(8, 1), &why), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
