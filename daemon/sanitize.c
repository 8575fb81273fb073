#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sanitize.h"
#include "daemon/xmalloc.h"

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), 0 when
 * it is not one.  Overlong forms, surrogates and C1 controls (U+0080 to
 * U+009F) count as not well-formed, so they get escaped. */
static size_t
sanitize_utf8(const unsigned char *p, size_t n)
{
	unsigned	cp;
	size_t		len, i;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = p[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 ||
	    cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

/* The escape for one input position into out (at most 5 bytes), and how
 * many input bytes it takes. */
static size_t
sanitize_one(const unsigned char *p, size_t n, char *out, size_t *olen)
{
	size_t	u;

	switch (p[0]) {
	case '\n':
		memcpy(out, "\\n", 2);
		*olen = 2;
		return 1;
	case '\r':
		memcpy(out, "\\r", 2);
		*olen = 2;
		return 1;
	case '\t':
		memcpy(out, "\\t", 2);
		*olen = 2;
		return 1;
	}
	if (p[0] >= 0x20 && p[0] < 0x7f) {
		out[0] = (char)p[0];
		*olen = 1;
		return 1;
	}
	if (p[0] >= 0x80 && (u = sanitize_utf8(p, n)) != 0) {
		memcpy(out, p, u);
		*olen = u;
		return u;
	}
	snprintf(out, 5, "\\x%02x", p[0]);
	*olen = 4;
	return 1;
}

size_t
sanitize_buf(char *dst, size_t dstlen, const char *src, size_t len)
{
	const unsigned char	*p = (const unsigned char *)src;
	char			 esc[5];
	size_t			 o = 0, i = 0, olen, total = 0, room;

	while (i < len) {
		i += sanitize_one(p + i, len - i, esc, &olen);
		total += olen;
	}
	/* Cut: keep room for "..." and the NUL. */
	room = total < dstlen ? dstlen - 1 : dstlen >= 4 ? dstlen - 4 : 0;
	for (i = 0; i < len; ) {
		size_t take = sanitize_one(p + i, len - i, esc, &olen);

		if (o + olen > room)
			break;
		memcpy(dst + o, esc, olen);
		o += olen;
		i += take;
	}
	if (total >= dstlen && dstlen >= 4) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return o;
}

char *
sanitize_dup(const char *s, size_t max)
{
	size_t	 len = strlen(s), size;
	char	*out;

	if (len > max)
		len = max;
	/* Every byte escapes to at most 4; room for "..." when cut. */
	size = len * 4 + 4;
	out = xmalloc(size);
	sanitize_buf(out, size, s, len);
	if (strlen(s) > max && size - strlen(out) > 3)
		strcat(out, "...");
	return out;
}

int
sanitize_clean(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n = strlen(s), i = 0, u;

	while (i < n) {
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			i++;
			continue;
		}
		if (p[i] < 0x80 || (u = sanitize_utf8(p + i, n - i)) == 0)
			return 0;
		i += u;
	}
	return 1;
}
