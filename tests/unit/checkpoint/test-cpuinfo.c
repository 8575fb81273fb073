#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "checkpoint/cpuinfo.h"

/* `criu cpuinfo dump` (CRIU 4.1.1) on an Intel Xeon VM: 19 capability
 * words, word 9 (CPUID 7.0 EBX, 0xf1bf2ffb) at offset 60. */
static const uint8_t xeon[] = {
  0x19, 0x43, 0x56, 0x54, 0x13, 0x40, 0x40, 0x61, 0x74, 0x00, 0x00, 0x00,
  0x0a, 0x72, 0x08, 0x01, 0x10, 0x06, 0x18, 0xa7, 0x01, 0x20, 0x01, 0x28,
  0x02, 0x30, 0xff, 0xf7, 0xaf, 0xfc, 0x01, 0x30, 0x80, 0x90, 0xc0, 0xe0,
  0x02, 0x30, 0x00, 0x30, 0x80, 0x80, 0xc4, 0x10, 0x30, 0x83, 0xe4, 0xe8,
  0xff, 0x0f, 0x30, 0x00, 0x30, 0xa1, 0x02, 0x30, 0x00, 0x30, 0x00, 0x30,
  0xfb, 0xdf, 0xfc, 0x8d, 0x0f, 0x30, 0x1f, 0x30, 0xc6, 0xbe, 0x85, 0xd2,
  0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x04, 0x30, 0x00, 0x30, 0x00, 0x30,
  0x00, 0x30, 0x90, 0x80, 0x85, 0x9e, 0x02, 0x3a, 0x1a, 0x49, 0x6e, 0x74,
  0x65, 0x6c, 0x28, 0x52, 0x29, 0x20, 0x58, 0x65, 0x6f, 0x6e, 0x28, 0x52,
  0x29, 0x20, 0x50, 0x72, 0x6f, 0x63, 0x65, 0x73, 0x73, 0x6f, 0x72, 0x40,
  0xe5, 0x01, 0x48, 0x80, 0x56, 0x50, 0x80, 0x56
};
#define WORD9	60

/* The same CPU with more (or fewer) bits in word 9. */
static uint8_t *
variant(size_t off, uint8_t byte)
{
	uint8_t	*img = malloc(sizeof xeon);

	memcpy(img, xeon, sizeof xeon);
	img[off] = byte;
	return img;
}

static void
test_same_cpu(void **state)
{
	(void)state;
	assert_null(cpuinfo_missing(xeon, sizeof xeon, xeon, sizeof xeon));
}

static void
test_more_features(void **state)
{
	/* 0x8d -> 0xed: bits 26 and 27, avx512pf and avx512er */
	uint8_t	*img = variant(WORD9 + 3, 0xed);
	char	*s;

	(void)state;
	s = cpuinfo_missing(img, sizeof xeon, xeon, sizeof xeon);
	assert_non_null(s);
	assert_string_equal(s, "avx512pf avx512er");
	free(s);
	/* a richer destination is fine */
	assert_null(cpuinfo_missing(xeon, sizeof xeon, img, sizeof xeon));
	free(img);
}

static void
test_fewer_features(void **state)
{
	/* 0xfb -> 0xdb: bit 5, avx2 */
	uint8_t	*img = variant(WORD9, 0xdb);
	char	*s;

	(void)state;
	s = cpuinfo_missing(xeon, sizeof xeon, img, sizeof xeon);
	assert_non_null(s);
	assert_string_equal(s, "avx2");
	free(s);
	free(img);
}

static void
test_not_an_image(void **state)
{
	uint8_t	 junk[200];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	assert_null(cpuinfo_missing(junk, sizeof junk, xeon, sizeof xeon));
	assert_null(cpuinfo_missing(xeon, sizeof xeon, junk, sizeof junk));
	assert_null(cpuinfo_missing(xeon, 11, xeon, sizeof xeon));
	/* every truncation: the size field then points past the end */
	for (i = 0; i < sizeof xeon; i++)
		assert_null(cpuinfo_missing(xeon, i, xeon, sizeof xeon));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_cpu),
		cmocka_unit_test(test_more_features),
		cmocka_unit_test(test_fewer_features),
		cmocka_unit_test(test_not_an_image),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
