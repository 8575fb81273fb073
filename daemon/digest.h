/* SHA-256 of files: checkpoint manifests record one per image file and
 * restore verifies them before trusting a byte. */
#ifndef TERN_DIGEST_H
#define TERN_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_HEX_LEN	64

/* hex gets DIGEST_HEX_LEN + 1 bytes; *size the file's size.  -1 and
 * *cause (naming the file) on error. */
int	digest_file(const char *path, char *hex, uint64_t *size, char **cause);

/* SHA-256 of len bytes at buf into md (DIGEST_LEN bytes). */
#define DIGEST_LEN	32
void	digest_buf(const void *buf, size_t len, uint8_t *md);
/* md as DIGEST_HEX_LEN hex digits and a NUL into hex. */
void	digest_hex(const uint8_t *md, char *hex);

#endif
