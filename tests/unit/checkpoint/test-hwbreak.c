#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "checkpoint/hwbreak.h"

/* A real child under ptrace, a real debug register: on x86-64 the probe
 * answers, and answers the same each time. */
static void
test_probe_answers(void **state)
{
	enum hwbreak	 first, again;
	char		*cause = NULL;
	int		 i;

	(void)state;
	first = hwbreak_probe(&cause);
	if (first == HWBREAK_UNKNOWN) {
		/* Not x86-64, or ptrace refused (Yama, seccomp, a tracer
		 * already): nothing to check here. */
		print_message("no answer: %s\n", cause);
		free(cause);
		skip();
	}
	for (i = 0; i < 3; i++) {
		again = hwbreak_probe(&cause);
		assert_int_equal(again, first);
	}
	free(cause);	/* set only by an answer that failed the test */
}

/* CRIU_FAULT=130 exactly when breakpoints stay silent. */
static void
test_setup_follows_probe(void **state)
{
	enum hwbreak	 hb;
	const char	*v;

	(void)state;
	unsetenv("CRIU_FAULT");
	hb = hwbreak_probe(NULL);
	hwbreak_setup();
	v = getenv("CRIU_FAULT");
	if (hb == HWBREAK_SILENT) {
		assert_non_null(v);
		assert_string_equal(v, "130");
	} else
		assert_null(v);
	unsetenv("CRIU_FAULT");
}

/* The operator's own CRIU_FAULT is never replaced. */
static void
test_setup_keeps_operators(void **state)
{
	(void)state;
	setenv("CRIU_FAULT", "4", 1);
	hwbreak_setup();
	assert_string_equal(getenv("CRIU_FAULT"), "4");
	unsetenv("CRIU_FAULT");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_answers),
		cmocka_unit_test(test_setup_follows_probe),
		cmocka_unit_test(test_setup_keeps_operators),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
