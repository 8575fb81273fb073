#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/crc32c.h"
#include "daemon/xmalloc.h"

/* Lane length of the interleaved hardware loop in daemon/crc32c.c. */
#define LANE		4096
#define BIG		100000

/* A deterministic generator, so a failure names a reproducible length. */
static uint32_t
rnd_next(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

static uint8_t *
random_buffer(size_t len, uint32_t seed)
{
	uint8_t		*buf;
	size_t		 i;

	buf = xmalloc(len + 16);
	for (i = 0; i < len + 16; i++)
		buf[i] = (uint8_t)rnd_next(&seed);
	return buf;
}

static void
check_vector(const void *buf, size_t len, uint32_t want)
{
	uint32_t	hw, sw;

	hw = crc32c(0, buf, len);
	sw = crc32c_sw(0, buf, len);
	if (hw != want || sw != want)
		fail_msg("length %zu: crc32c %08x, crc32c_sw %08x, want %08x",
		    len, hw, sw, want);
}

static void
test_vectors(void **state)
{
	uint8_t	buf[32];
	int	i;

	check_vector("", 0, 0);
	check_vector(NULL, 0, 0);
	check_vector("123456789", 9, 0xe3069283);
	check_vector("a", 1, 0xc1d04330);

	/* RFC 3720, appendix B.4. */
	memset(buf, 0, sizeof buf);
	check_vector(buf, sizeof buf, 0x8a9136aa);
	memset(buf, 0xff, sizeof buf);
	check_vector(buf, sizeof buf, 0x62a8ab43);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	check_vector(buf, sizeof buf, 0x46dd794e);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	check_vector(buf, sizeof buf, 0x113fdb5c);
}

/* The same vector at every alignment, so the hardware path's byte-wise
 * head before the 8-byte loop is exercised. */
static void
test_vectors_unaligned(void **state)
{
	uint8_t	buf[64];
	size_t	off;

	for (off = 0; off < 16; off++) {
		memset(buf, 0xa5, sizeof buf);
		memcpy(buf + off, "123456789", 9);
		check_vector(buf + off, 9, 0xe3069283);
		memset(buf + off, 0, 32);
		check_vector(buf + off, 32, 0x8a9136aa);
		memset(buf + off, 0xff, 32);
		check_vector(buf + off, 32, 0x62a8ab43);
	}
}

static void
check_same(const uint8_t *buf, size_t off, size_t len, uint32_t seed)
{
	uint32_t	hw, sw;

	hw = crc32c(seed, buf + off, len);
	sw = crc32c_sw(seed, buf + off, len);
	if (hw != sw)
		fail_msg("offset %zu length %zu seed %08x: crc32c %08x, "
		    "crc32c_sw %08x", off, len, seed, hw, sw);
}

/* Every length up to a few lanes, then a sweep up to BIG. */
static void
test_hw_equals_sw_lengths(void **state)
{
	uint8_t	*buf;
	size_t	 len;

	if (!crc32c_hw_available())
		print_message("no SSE4.2: comparing the table path with itself\n");
	buf = random_buffer(BIG, 0x12345678);
	for (len = 0; len <= 1024; len++)
		check_same(buf, 0, len, 0);
	for (len = 1025; len <= BIG; len += 997)
		check_same(buf, 0, len, 0);
	check_same(buf, 0, BIG, 0);
	check_same(buf, 0, BIG - 1, 0);
	free(buf);
}

/* Lengths around multiples of the 3-lane block, where the interleaved
 * loop hands over to the tail loop, at every alignment. */
static void
test_hw_equals_sw_lanes(void **state)
{
	uint8_t	*buf;
	size_t	 k, len, off;
	int	 d;

	buf = random_buffer(8 * 3 * LANE + 64, 0x9e3779b9);
	for (k = 1; k <= 8; k++) {
		for (d = -17; d <= 17; d++) {
			len = (size_t)((long)(k * 3 * LANE) + d);
			for (off = 0; off < 8; off++)
				check_same(buf, off, len, 0);
		}
	}
	/* One lane and two lanes: too short for the interleaved loop. */
	for (d = -9; d <= 9; d++) {
		check_same(buf, 3, (size_t)(LANE + d), 0);
		check_same(buf, 5, (size_t)(2 * LANE + d), 0);
	}
	free(buf);
}

static void
test_hw_equals_sw_alignment(void **state)
{
	uint8_t		*buf;
	size_t		 off, len;
	const size_t	 lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255,
	    4095, 4096, 4097, 12287, 12288, 12289, 12295, 12296, 24576, 24583,
	    65536, 65537 };
	size_t		 i;

	buf = random_buffer(65537 + 64, 0xdeadbeef);
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		for (off = 0; off < 16; off++)
			check_same(buf, off, lens[i], 0);
	}
	/* A nonzero starting CRC as well. */
	for (len = 0; len < 40; len++) {
		for (off = 0; off < 8; off++)
			check_same(buf, off, len, 0x0badf00d);
	}
	check_same(buf, 1, 3 * LANE + 5, 0xffffffff);
	check_same(buf, 2, 6 * LANE, 0x01020304);
	free(buf);
}

/* Different data must (almost always) give a different CRC, and every
 * single-bit change must: that is what a CRC guarantees. */
static void
test_single_bit_changes(void **state)
{
	uint8_t		*buf;
	uint32_t	 base, c;
	size_t		 len = 3 * LANE + 100, bit;

	buf = random_buffer(len, 7);
	base = crc32c(0, buf, len);
	for (bit = 0; bit < len * 8; bit += 61) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		c = crc32c(0, buf, len);
		assert_int_equal(c, crc32c_sw(0, buf, len));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (c == base)
			fail_msg("flipping bit %zu did not change the CRC", bit);
	}
	free(buf);
}

static void
check_split(const uint8_t *buf, size_t len, size_t split, uint32_t whole)
{
	uint32_t	hw, sw;

	hw = crc32c(crc32c(0, buf, split), buf + split, len - split);
	sw = crc32c_sw(crc32c_sw(0, buf, split), buf + split, len - split);
	if (hw != whole || sw != whole)
		fail_msg("length %zu split at %zu: crc32c %08x, crc32c_sw %08x, "
		    "whole %08x", len, split, hw, sw, whole);
}

static void
test_incremental(void **state)
{
	uint8_t		*buf;
	uint32_t	 whole, rs = 99, c;
	size_t		 len = 5 * LANE + 333, split, pos, n;
	int		 i;

	buf = random_buffer(len, 42);
	whole = crc32c(0, buf, len);
	assert_int_equal(whole, crc32c_sw(0, buf, len));

	for (split = 0; split <= 64; split++)
		check_split(buf, len, split, whole);
	for (split = 65; split < len; split += 127)
		check_split(buf, len, split, whole);
	for (i = -3; i <= 3; i++) {
		check_split(buf, len, (size_t)(3 * LANE + i), whole);
		check_split(buf, len, (size_t)(len - 3 * LANE + i), whole);
	}
	check_split(buf, len, len, whole);

	/* Many random pieces in a row. */
	for (i = 0; i < 50; i++) {
		c = 0;
		for (pos = 0; pos < len; pos += n) {
			n = rnd_next(&rs) % 3000;
			if (n > len - pos)
				n = len - pos;
			c = crc32c(c, buf + pos, n);
		}
		assert_int_equal(c, whole);
	}

	/* The classic check string, one byte at a time. */
	c = 0;
	for (pos = 0; pos < 9; pos++)
		c = crc32c(c, &"123456789"[pos], 1);
	assert_int_equal(c, 0xe3069283);
	free(buf);
}

static void
test_hw_flag(void **state)
{
	int	hw;

	hw = crc32c_hw_available();
	assert_true(hw == 0 || hw == 1);
	assert_int_equal(hw, crc32c_hw_available());
	print_message("crc32c hardware path: %s\n", hw ? "yes" : "no");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_vectors_unaligned),
		cmocka_unit_test(test_hw_equals_sw_lengths),
		cmocka_unit_test(test_hw_equals_sw_lanes),
		cmocka_unit_test(test_hw_equals_sw_alignment),
		cmocka_unit_test(test_single_bit_changes),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_hw_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
