/* Standard base64 (RFC 4648, with padding), as etcd's JSON gateway
 * carries keys and values. */
#ifndef TERN_COORD_BASE64_H
#define TERN_COORD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* A NUL-terminated encoding of len bytes; free it. */
char	*base64_encode(const void *, size_t len);
/* The decoded bytes (NUL-terminated for convenience, *len without it);
 * NULL if s is not canonical base64.  Free it. */
uint8_t	*base64_decode(const char *s, size_t *len);

#endif
