/* daemon/sanitize: what peers, containers and CRIU say reaches logs and
 * terminals as one line without control characters (issue 9 #13). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "daemon/sanitize.h"

static void
check(const char *in, const char *want)
{
	char	*got = sanitize_dup(in, SANITIZE_TEXT_MAX);

	assert_string_equal(got, want);
	assert_true(sanitize_clean(got));
	free(got);
}

static void
test_controls(void **state)
{
	(void)state;
	check("plain text", "plain text");
	check("a\nb", "a\\nb");
	check("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07");
	check("cr\rtab\tdel\x7f", "cr\\rtab\\tdel\\x7f");
	check("back\\slash", "back\\slash");
	/* UTF-8 stays, C1 controls (U+009B is CSI) and broken bytes do not. */
	check("caf\xc3\xa9 \xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93");
	check("\xc2\x9b" "31m", "\\xc2\\x9b" "31m");
	check("\xff\xfe", "\\xff\\xfe");
	check("\xc0\xaf", "\\xc0\\xaf");		/* overlong '/' */
	check("\xed\xa0\x80", "\\xed\\xa0\\x80");	/* surrogate */
	check("\xe2\x9c", "\\xe2\\x9c");		/* cut sequence */
	assert_false(sanitize_clean("a\nb"));
	assert_true(sanitize_clean(""));
}

static void
test_idempotent(void **state)
{
	char	*once, *twice;

	(void)state;
	once = sanitize_dup("x\x1b[1m\ny\\n", SANITIZE_TEXT_MAX);
	twice = sanitize_dup(once, SANITIZE_TEXT_MAX);
	assert_string_equal(once, twice);
	free(once);
	free(twice);
}

static void
test_bounds(void **state)
{
	char	 buf[16], *got;
	size_t	 n;

	(void)state;
	/* Output that does not fit is cut on an escape and marked. */
	n = sanitize_buf(buf, sizeof buf, "\x1b\x1b\x1b\x1b\x1b\x1b", 6);
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "\\x1b\\x1b\\x1b...");
	n = sanitize_buf(buf, sizeof buf, "0123456789abcde", 15);
	assert_string_equal(buf, "0123456789abcde");
	n = sanitize_buf(buf, sizeof buf, "0123456789abcdef", 16);
	assert_string_equal(buf, "0123456789ab...");
	n = sanitize_buf(buf, 1, "abc", 3);
	assert_int_equal(n, 0);
	assert_string_equal(buf, "");
	/* Input over max is cut and marked. */
	got = sanitize_dup("abcdef", 3);
	assert_string_equal(got, "abc...");
	free(got);
	/* Embedded NUL ends a C string: the rest never reaches anyone. */
	n = sanitize_buf(buf, sizeof buf, "a\0b", 3);
	assert_string_equal(buf, "a\\x00b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
