/* Unit tests for daemon/fault.c: TERN_FAULT's points and actions. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/fault.h"
#include "daemon/log.h"

static void
test_points(void **state)
{
	char		*cause = NULL;
	unsigned	 ms = 0;

	(void)state;
	assert_int_equal(fault_init("criu.dump:stall,ckpt.after-post-dump:kill,"
	    "y:fail,mig.target.held:delay=3000", &cause), 0);
	assert_int_equal(fault_hit("criu.dump"), FAULT_STALL);
	assert_int_equal(fault_hit("ckpt.after-post-dump"), FAULT_KILL);
	assert_int_equal(fault_hit("y"), FAULT_FAIL);
	assert_int_equal(fault_check("mig.target.held", &ms), FAULT_DELAY);
	assert_int_equal(ms, 3000);
	/* Every hit fires, not just the first. */
	assert_int_equal(fault_hit("criu.dump"), FAULT_STALL);
	assert_int_equal(fault_hit("criu.restore"), FAULT_NONE);
	assert_int_equal(fault_hit("criu"), FAULT_NONE);
	fault_fini();
	assert_int_equal(fault_hit("criu.dump"), FAULT_NONE);
}

static void
test_count(void **state)
{
	char	*cause = NULL;

	(void)state;
	assert_int_equal(fault_init("a:fail@2", &cause), 0);
	assert_int_equal(fault_hit("a"), FAULT_FAIL);
	assert_int_equal(fault_hit("a"), FAULT_FAIL);
	assert_int_equal(fault_hit("a"), FAULT_NONE);	/* spent */
	fault_fini();
	/* @N+K: K hits pass, then N fire. */
	assert_int_equal(fault_init("b:fail@1+2", &cause), 0);
	assert_int_equal(fault_hit("b"), FAULT_NONE);
	assert_int_equal(fault_hit("b"), FAULT_NONE);
	assert_int_equal(fault_hit("b"), FAULT_FAIL);
	assert_int_equal(fault_hit("b"), FAULT_NONE);	/* spent */
	fault_fini();
}

/* A test that names a fault wrongly must not pass without its fault:
 * ternd refuses to start instead. */
static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"criu.dump", ":fail", "x:explode", "x:delay=", "x:delay=1s",
		"x:fail@0", "x:fail@", "x:fail@two", "x:fail@1+",
		"x:fail@1+-1", "x:fail@1+two", "x:fail@+2", "x:fail@1+2+3",
	};
	char	*cause;
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		assert_int_equal(fault_init(bad[i], &cause), -1);
		assert_non_null(cause);
		assert_non_null(strstr(cause, "TERN_FAULT"));
		free(cause);
		assert_int_equal(fault_hit("x"), FAULT_NONE);
	}
	assert_int_equal(fault_init(NULL, &cause), 0);
	assert_int_equal(fault_init("", &cause), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_points),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_malformed),
	};

	log_init("test-fault", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
