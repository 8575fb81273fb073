/* The records of a "tree" stream (migrate/tree.h).
 *
 * The stream's framing already checks every chunk with CRC32C, so records
 * carry no checksum of their own.  Integers are big-endian.
 *
 *   record  := type:u8 length:u32 value[length]     length <= 65536
 *   entry   := plen:u16 path[plen] mode:u32 uid:u32 gid:u32
 *              mtime_sec:i64 mtime_nsec:u32
 *
 *   HEAD     1  "TERNTREE" version:u32 (1) flags:u32 (1: delta)
 *   DIR      2  entry                  create the directory (0700 for now)
 *   FILE     3  entry size:u64         open a temporary file; size is a hint
 *   DATA     4  bytes                  content of the open file, in order
 *   FEND     5  size:u64               bytes that were sent: set owner, mode,
 *                                      mtime and rename over path
 *   SYMLINK  6  entry target           target: the rest of the value
 *   NODE     7  entry rdev:u64         character/block device or fifo
 *   LINK     8  plen:u16 path[plen] target-path   a hard link to target-path,
 *                                      an entry sent earlier (or kept)
 *   DELETE   9  path                   remove (a directory with its contents)
 *   DIREND  10  entry                  after a directory's contents: owner,
 *                                      mode, mtime ("" is the root)
 *   END     11  entries:u64 files:u64 bytes:u64 deleted:u64
 *
 * A stream is HEAD, records, END; nothing may follow END, and between FILE
 * and FEND only DATA.  Paths are relative to the tree ("a/b"), and every
 * component is 1..255 bytes, not "." or "..", without NUL; paths are at
 * most 4095 bytes.  mode has the type bits, which must agree with the
 * record.  Entries come in walk order (tree_path_cmp). */
#include "config.h"

#include <string.h>

#include "daemon/xmalloc.h"
#include "migrate/tree-internal.h"

void
tree_wbuf_start(struct tree_wbuf *w, uint8_t *buf, enum tree_rec type)
{
	w->p = buf;
	w->p[0] = (uint8_t)type;
	w->len = TREE_HDR_SIZE;
}

void
tree_put8(struct tree_wbuf *w, uint8_t v)
{
	w->p[w->len++] = v;
}

void
tree_put16(struct tree_wbuf *w, uint16_t v)
{
	tree_put8(w, (uint8_t)(v >> 8));
	tree_put8(w, (uint8_t)v);
}

void
tree_put32(struct tree_wbuf *w, uint32_t v)
{
	tree_put16(w, (uint16_t)(v >> 16));
	tree_put16(w, (uint16_t)v);
}

void
tree_put64(struct tree_wbuf *w, uint64_t v)
{
	tree_put32(w, (uint32_t)(v >> 32));
	tree_put32(w, (uint32_t)v);
}

void
tree_putmem(struct tree_wbuf *w, const void *p, size_t len)
{
	if (len != 0)
		memcpy(w->p + w->len, p, len);
	w->len += len;
}

void
tree_put_entry(struct tree_wbuf *w, const struct tree_ent *e)
{
	size_t	len = strlen(e->path);

	tree_put16(w, (uint16_t)len);
	tree_putmem(w, e->path, len);
	tree_put32(w, e->mode);
	tree_put32(w, e->uid);
	tree_put32(w, e->gid);
	tree_put64(w, (uint64_t)e->mtime_sec);
	tree_put32(w, e->mtime_nsec);
}

size_t
tree_wbuf_end(struct tree_wbuf *w)
{
	uint32_t	len = (uint32_t)(w->len - TREE_HDR_SIZE);

	w->p[1] = (uint8_t)(len >> 24);
	w->p[2] = (uint8_t)(len >> 16);
	w->p[3] = (uint8_t)(len >> 8);
	w->p[4] = (uint8_t)len;
	return w->len;
}

const uint8_t *
tree_getmem(struct tree_rbuf *r, size_t len)
{
	const uint8_t	*p;

	if (r->bad || r->len < len) {
		r->bad = 1;
		return NULL;
	}
	p = r->p;
	r->p += len;
	r->len -= len;
	return p;
}

uint8_t
tree_get8(struct tree_rbuf *r)
{
	const uint8_t	*p = tree_getmem(r, 1);

	return p == NULL ? 0 : p[0];
}

uint16_t
tree_get16(struct tree_rbuf *r)
{
	uint16_t	v = tree_get8(r);

	return (uint16_t)(v << 8 | tree_get8(r));
}

uint32_t
tree_get32(struct tree_rbuf *r)
{
	uint32_t	v = tree_get16(r);

	return v << 16 | tree_get16(r);
}

uint64_t
tree_get64(struct tree_rbuf *r)
{
	uint64_t	v = tree_get32(r);

	return v << 32 | tree_get32(r);
}

int
tree_path_valid(const char *p, size_t len, int empty_ok)
{
	size_t	i, start;

	if (len == 0)
		return empty_ok;
	if (len > TREE_PATH_MAX || memchr(p, '\0', len) != NULL)
		return 0;
	for (start = 0; start <= len; start = i + 1) {
		for (i = start; i < len && p[i] != '/'; i++)
			;
		if (i == start || i - start > TREE_NAME_MAX)
			return 0;	/* empty (or leading/trailing '/') */
		if (p[start] == '.' && (i - start == 1 ||
		    (i - start == 2 && p[start + 1] == '.')))
			return 0;
	}
	return 1;
}

/* '/' sorts before any other byte, so a directory's contents follow it
 * directly, in the order of their names. */
static unsigned
tree_path_rank(char c)
{
	return c == '/' ? 1 : (unsigned)(unsigned char)c + 1;
}

int
tree_path_cmp(const char *a, const char *b)
{
	unsigned	ra, rb;

	for (;; a++, b++) {
		ra = *a == '\0' ? 0 : tree_path_rank(*a);
		rb = *b == '\0' ? 0 : tree_path_rank(*b);
		if (ra != rb)
			return ra < rb ? -1 : 1;
		if (ra == 0)
			return 0;
	}
}

int
tree_path_below(const char *a, const char *b)
{
	size_t	len = strlen(b);

	if (len == 0)
		return *a != '\0';
	return strncmp(a, b, len) == 0 && a[len] == '/';
}
