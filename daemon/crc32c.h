/* CRC32C (Castagnoli), the checksum of every frame payload.  Uses the
 * SSE4.2 crc32 instruction on three interleaved lanes where the CPU has
 * it, a table otherwise; both give the same result (tests check it). */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, buf, len) is the CRC of buf; pass a previous result to extend it. */
uint32_t	crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable implementation, for tests. */
uint32_t	crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* 1 if the hardware path is in use. */
int		crc32c_hw_available(void);

#endif
