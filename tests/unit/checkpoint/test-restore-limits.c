/* checkpoint/restore-limits: the descriptors CRIU 4.1.1 restores wrong,
 * told from crafted fdinfo texts and seen in this test's own process
 * (an EFD_SEMAPHORE eventfd; a periodic timerfd before and after its
 * expirations are read), and the ones it restores right. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/restore-limits.h"

#define EFD	"pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t17\n"

static void
test_fdinfo_text(void **state)
{
	(void)state;
	assert_non_null(restore_limits_fd("anon_inode:[eventfd]", EFD
	    "eventfd-count:                3\neventfd-id: 1\n"
	    "eventfd-semaphore: 1\n"));
	assert_null(restore_limits_fd("anon_inode:[eventfd]", EFD
	    "eventfd-count:                3\neventfd-id: 2\n"
	    "eventfd-semaphore: 0\n"));
	/* A kernel that does not say: nothing to refuse on. */
	assert_null(restore_limits_fd("anon_inode:[eventfd]", EFD
	    "eventfd-count:                3\n"));
	assert_non_null(restore_limits_fd("anon_inode:[timerfd]", EFD
	    "clockid: 1\nticks: 1\nsettime flags: 00\nit_value: (0, 0)\n"
	    "it_interval: (0, 10000000)\n"));
	/* Armed, periodic or one-shot: restored as it is. */
	assert_null(restore_limits_fd("anon_inode:[timerfd]", EFD
	    "clockid: 1\nticks: 0\nsettime flags: 00\n"
	    "it_value: (0, 4000000)\nit_interval: (0, 10000000)\n"));
	assert_null(restore_limits_fd("anon_inode:[timerfd]", EFD
	    "clockid: 1\nticks: 0\nsettime flags: 00\n"
	    "it_value: (4, 935826151)\nit_interval: (0, 0)\n"));
	/* Disarmed and not periodic. */
	assert_null(restore_limits_fd("anon_inode:[timerfd]", EFD
	    "clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 0)\n"
	    "it_interval: (0, 0)\n"));
	assert_null(restore_limits_fd("pipe:[1234]", "eventfd-semaphore: 1\n"));
	assert_null(restore_limits_fd("anon_inode:[timerfd]", ""));
}

static int
verdict(char **why)
{
	pid_t	self = getpid();

	*why = NULL;
	return restore_limits_pids(&self, 1, why);
}

static void
test_eventfd_live(void **state)
{
	char	*why;
	int	 fd;

	(void)state;
	assert_int_equal(verdict(&why), 0);
	assert_null(why);
	fd = eventfd(3, 0);
	assert_true(fd >= 0);
	assert_int_equal(verdict(&why), 0);
	close(fd);
	fd = eventfd(3, EFD_SEMAPHORE);
	assert_true(fd >= 0);
	assert_int_equal(verdict(&why), 1);
	assert_non_null(why);
	assert_non_null(strstr(why, "EFD_SEMAPHORE"));
	free(why);
	close(fd);
}

static void
test_timerfd_live(void **state)
{
	struct itimerspec	 its = { { 0, 5000000 }, { 0, 5000000 } };
	struct timespec		 nap = { 0, 30000000 };
	uint64_t		 ticks;
	char			*why;
	int			 fd;

	(void)state;
	fd = timerfd_create(CLOCK_MONOTONIC, 0);
	assert_true(fd >= 0);
	assert_int_equal(timerfd_settime(fd, 0, &its, NULL), 0);
	nanosleep(&nap, NULL);
	/* Expired, not read: the kernel shows it_value 0. */
	assert_int_equal(verdict(&why), 1);
	assert_non_null(strstr(why, "timerfd"));
	free(why);
	/* Read: re-armed, restored right. */
	assert_int_equal(read(fd, &ticks, sizeof ticks), (ssize_t)sizeof ticks);
	assert_int_equal(verdict(&why), 0);
	assert_null(why);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fdinfo_text),
		cmocka_unit_test(test_eventfd_live),
		cmocka_unit_test(test_timerfd_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
