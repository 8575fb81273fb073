#include "config.h"

#include <stdint.h>
#include <string.h>

#include "daemon/crc32c.h"

#define CRC32C_POLY	0x82f63b78u	/* reflected Castagnoli polynomial */

/* Lane length of the interleaved hardware loop: three lanes of this many
 * bytes are checksummed in parallel, then combined with two GF(2)
 * multiplications, which is what hides the instruction's 3-cycle latency. */
#define CRC32C_LANE	4096

static uint32_t	crc32c_table[256];
static uint32_t	crc32c_shift_lane;	/* x^(8*LANE) mod P */
static uint32_t	crc32c_shift_2lane;	/* x^(16*LANE) mod P */
static int	crc32c_hw = -1;		/* -1: not probed yet */

/* Multiply two polynomials modulo P, in the reflected representation
 * (bit 31 is x^0). */
static uint32_t
crc32c_multmod(uint32_t a, uint32_t b)
{
	uint32_t	m = 1u << 31, product = 0;

	while (m != 0) {
		if (a & m)
			product ^= b;
		m >>= 1;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return product;
}

/* x^(8*bytes) mod P, by square-and-multiply. */
static uint32_t
crc32c_xpow8(size_t bytes)
{
	uint32_t	result = 1u << 31, square = 1u << 23;	/* x^0, x^8 */

	while (bytes != 0) {
		if (bytes & 1)
			result = crc32c_multmod(result, square);
		square = crc32c_multmod(square, square);
		bytes >>= 1;
	}
	return result;
}

static void
crc32c_init(void)
{
	uint32_t	c;
	int		i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[i] = c;
	}
	crc32c_shift_lane = crc32c_xpow8(CRC32C_LANE);
	crc32c_shift_2lane = crc32c_xpow8(2 * CRC32C_LANE);
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
	crc32c_hw = 0;
#endif
}

static uint32_t
crc32c_sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len-- > 0)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t
crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	if (crc32c_hw == -1)
		crc32c_init();
	return ~crc32c_sw_raw(~crc, buf, len);
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t
crc32c_hw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t	c0, c1, c2, w0, w1, w2;
	size_t		i;

	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = __builtin_ia32_crc32qi(crc, *p++);
		len--;
	}
	while (len >= 3 * CRC32C_LANE) {
		c0 = crc;
		c1 = 0;
		c2 = 0;
		for (i = 0; i < CRC32C_LANE; i += 8) {
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC32C_LANE + i, 8);
			memcpy(&w2, p + 2 * CRC32C_LANE + i, 8);
			c0 = __builtin_ia32_crc32di(c0, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		crc = crc32c_multmod(crc32c_shift_2lane, (uint32_t)c0) ^
		    crc32c_multmod(crc32c_shift_lane, (uint32_t)c1) ^
		    (uint32_t)c2;
		p += 3 * CRC32C_LANE;
		len -= 3 * CRC32C_LANE;
	}
	c0 = crc;
	while (len >= 8) {
		memcpy(&w0, p, 8);
		c0 = __builtin_ia32_crc32di(c0, w0);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c0;
	while (len-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (crc32c_hw == -1)
		crc32c_init();
#if defined(__x86_64__)
	if (crc32c_hw)
		return ~crc32c_hw_raw(~crc, buf, len);
#endif
	return ~crc32c_sw_raw(~crc, buf, len);
}

int
crc32c_hw_available(void)
{
	if (crc32c_hw == -1)
		crc32c_init();
	return crc32c_hw;
}
