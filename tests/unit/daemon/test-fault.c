/* Unit tests for daemon/fault.c: TERN_FAULT, read once at the first hit. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "daemon/fault.h"
#include "daemon/log.h"

static void
test_points(void **state)
{
	(void)state;
	/* Malformed items are skipped (and logged); the rest count. */
	setenv("TERN_FAULT", "criu.dump:stall,bad,x:explode,"
	    "ckpt.after-post-dump:kill,y:fail", 1);
	assert_int_equal(fault_hit("criu.dump"), FAULT_STALL);
	assert_int_equal(fault_hit("ckpt.after-post-dump"), FAULT_KILL);
	assert_int_equal(fault_hit("y"), FAULT_FAIL);
	/* Every hit fires, not just the first. */
	assert_int_equal(fault_hit("criu.dump"), FAULT_STALL);
	assert_int_equal(fault_hit("x"), FAULT_NONE);
	assert_int_equal(fault_hit("bad"), FAULT_NONE);
	assert_int_equal(fault_hit("criu.restore"), FAULT_NONE);
	assert_int_equal(fault_hit("criu"), FAULT_NONE);
	/* Read once: a later change is not seen. */
	setenv("TERN_FAULT", "criu.restore:kill", 1);
	assert_int_equal(fault_hit("criu.restore"), FAULT_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_points),
	};

	log_init("test-fault", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
