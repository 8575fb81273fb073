/* base64 for etcd's JSON gateway (see base64.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "coord/base64.h"
#include "daemon/xmalloc.h"

static const char	b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
base64_encode(const void *data, size_t len)
{
	const uint8_t	*p = data;
	char		*out, *o;
	size_t		 i;
	uint32_t	 v;

	o = out = xmalloc((len + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(b64, c)) == NULL)
		return -1;
	return (int)(p - b64);
}

uint8_t *
base64_decode(const char *s, size_t *len)
{
	size_t		 n = strlen(s), i, pad = 0;
	uint8_t		*out, *o;
	int		 a, b, c, d;

	if (n % 4 != 0)
		return NULL;
	if (n > 0 && s[n - 1] == '=')
		pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
	o = out = xmalloc(n / 4 * 3 + 1);
	for (i = 0; i < n; i += 4) {
		int last = i + 4 == n;

		a = b64_value(s[i]);
		b = b64_value(s[i + 1]);
		c = last && pad == 2 ? 0 : b64_value(s[i + 2]);
		d = last && pad >= 1 ? 0 : b64_value(s[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0)
			goto bad;
		*o++ = (uint8_t)(a << 2 | b >> 4);
		if (!(last && pad == 2))
			*o++ = (uint8_t)((b & 15) << 4 | c >> 2);
		else if ((b & 15) != 0)
			goto bad;	/* not canonical */
		if (!(last && pad >= 1))
			*o++ = (uint8_t)((c & 3) << 6 | d);
		else if (pad == 1 && (c & 3) != 0)
			goto bad;
	}
	*o = '\0';
	*len = (size_t)(o - out);
	return out;
bad:
	free(out);
	return NULL;
}
