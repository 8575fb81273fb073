/* coord/base64: RFC 4648 vectors both ways, and what etcd could send
 * that is not canonical base64 refused. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "coord/base64.h"

static void
test_vectors(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v",
	    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	size_t		 i, len;
	char		*e;
	uint8_t		*d;

	(void)state;
	for (i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		e = base64_encode(plain[i], strlen(plain[i]));
		assert_string_equal(e, coded[i]);
		free(e);
		d = base64_decode(coded[i], &len);
		assert_non_null(d);
		assert_int_equal(len, strlen(plain[i]));
		assert_memory_equal(d, plain[i], len);
		free(d);
	}
}

static void
test_binary(void **state)
{
	uint8_t		 in[256], *d;
	size_t		 i, len;
	char		*e;

	(void)state;
	for (i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(255 - i);
	for (i = 0; i <= sizeof in; i++) {
		e = base64_encode(in, i);
		d = base64_decode(e, &len);
		assert_non_null(d);
		assert_int_equal(len, i);
		assert_memory_equal(d, in, i);
		free(d);
		free(e);
	}
}

static void
test_refused(void **state)
{
	static const char *const bad[] = { "Z", "Zg", "Zg=", "Zh==", "Zm9=",
	    "Zg==Zg==", "=Zg=", "Z===", "Zm9v\n", "Zm 9", "Zm9-", "Zm9_",
	    "\xff\xfe\xfd\xfc" };
	size_t		 i, len;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_null(base64_decode(bad[i], &len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
