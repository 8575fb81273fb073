/* A container's rootfs for checkpoint replicas (see rootfs-snap.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_MODULE "rootfs"
#include "checkpoint/chunks.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/rootfs-snap.h"

/* The whole manifest, at most: a million entries with their names. */
#define ROOTFS_SNAP_MAX		(1024u << 20)

void
rootfs_snap_free(struct rootfs_snap *s)
{
	size_t	i;

	for (i = 0; i < s->n; i++) {
		free(s->ents[i].e.path);
		free(s->ents[i].e.target);
		free(s->ents[i].digests);
	}
	free(s->ents);
	memset(s, 0, sizeof *s);
}

/* --- encoding ---------------------------------------------------------- */

static uint8_t (*
digests_dup(uint8_t (*from)[DIGEST_LEN], size_t n))[DIGEST_LEN]
{
	uint8_t	(*d)[DIGEST_LEN] = xcalloc(n + 1, DIGEST_LEN);

	if (n > 0)
		memcpy(d, from, n * DIGEST_LEN);
	return d;
}

struct obuf {
	uint8_t	*p;
	size_t	 len, cap;
};

static void
o_mem(struct obuf *o, const void *p, size_t len)
{
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2 + 4096;
		o->p = xrealloc(o->p, o->cap);
	}
	if (len != 0)
		memcpy(o->p + o->len, p, len);
	o->len += len;
}

static void
o_u64(struct obuf *o, uint64_t v, size_t bytes)
{
	uint8_t	b[8];
	size_t	i;

	for (i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	o_mem(o, b, bytes);
}

void
rootfs_snap_encode(const struct rootfs_snap *s, uint8_t **buf, size_t *len)
{
	struct obuf	o = { NULL, 0, 0 };
	size_t		i, l;

	o_mem(&o, ROOTFS_SNAP_MAGIC, strlen(ROOTFS_SNAP_MAGIC));
	o_u64(&o, ROOTFS_SNAP_VERSION, 4);
	o_u64(&o, s->chunk_size, 4);
	o_u64(&o, (uint64_t)s->taken_sec, 8);
	o_u64(&o, s->n, 8);
	for (i = 0; i < s->n; i++) {
		const struct rootfs_ent *r = &s->ents[i];

		l = strlen(r->e.path);
		o_u64(&o, l, 2);
		o_mem(&o, r->e.path, l);
		o_u64(&o, r->e.mode, 4);
		o_u64(&o, r->e.uid, 4);
		o_u64(&o, r->e.gid, 4);
		o_u64(&o, r->e.size, 8);
		o_u64(&o, (uint64_t)r->e.mtime_sec, 8);
		o_u64(&o, r->e.mtime_nsec, 4);
		o_u64(&o, (uint64_t)r->e.ctime_sec, 8);
		o_u64(&o, r->e.ctime_nsec, 4);
		o_u64(&o, r->e.ino, 8);
		o_u64(&o, r->e.rdev, 8);
		l = r->e.target != NULL ? strlen(r->e.target) : 0;
		o_u64(&o, l, 2);
		o_mem(&o, r->e.target, l);
		o_u64(&o, r->n, 4);
		o_mem(&o, r->digests, r->n * DIGEST_LEN);
	}
	*buf = o.p;
	*len = o.len;
}

struct ibuf {
	const uint8_t	*p;
	size_t		 len;
	int		 bad;
};

static const uint8_t *
i_mem(struct ibuf *in, size_t len)
{
	const uint8_t	*p;

	if (in->bad || in->len < len) {
		in->bad = 1;
		return NULL;
	}
	p = in->p;
	in->p += len;
	in->len -= len;
	return p;
}

static uint64_t
i_u64(struct ibuf *in, size_t bytes)
{
	const uint8_t	*p = i_mem(in, bytes);
	uint64_t	 v = 0;
	size_t		 i;

	for (i = 0; p != NULL && i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static char *
i_str(struct ibuf *in, size_t len)
{
	const uint8_t	*p = i_mem(in, len);
	char		*s;

	if (p == NULL)
		return NULL;
	s = xmalloc(len + 1);
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static int
rootfs_path_cmp(const void *a, const void *b)
{
	return tree_path_cmp(((const struct rootfs_ent *)a)->e.path,
	    ((const struct rootfs_ent *)b)->e.path);
}

static const struct rootfs_ent *
rootfs_find(const struct rootfs_snap *s, size_t n, const char *path)
{
	struct rootfs_ent	key;

	memset(&key, 0, sizeof key);
	key.e.path = (char *)path;
	return bsearch(&key, s->ents, n, sizeof *s->ents, rootfs_path_cmp);
}

/* The directory path lies in must be an entry before it. */
static int
rootfs_parent_ok(const struct rootfs_snap *s, size_t i)
{
	const char		*path = s->ents[i].e.path, *slash;
	const struct rootfs_ent	*p;
	char			*parent;

	if ((slash = strrchr(path, '/')) == NULL)
		parent = xstrdup("");
	else
		parent = xstrndup(path, (size_t)(slash - path));
	p = rootfs_find(s, i, parent);
	free(parent);
	return p != NULL && S_ISDIR(p->e.mode);
}

static int
rootfs_ent_check(const struct rootfs_snap *s, size_t i, char **cause)
{
	const struct rootfs_ent	*r = &s->ents[i];
	uint32_t		 type = r->e.mode & S_IFMT;
	uint64_t		 want;

	if (i == 0 ? r->e.path[0] != '\0' || type != S_IFDIR :
	    !tree_path_valid(r->e.path, strlen(r->e.path), 0)) {
		set_cause(cause, "entry %zu: path \"%.64s\" refused", i,
		    r->e.path);
		return -1;
	}
	if (i > 0 && (tree_path_cmp(s->ents[i - 1].e.path, r->e.path) >= 0 ||
	    !rootfs_parent_ok(s, i))) {
		set_cause(cause, "entry %.64s: out of order, twice, or not in "
		    "a directory listed before it", r->e.path);
		return -1;
	}
	if (type != S_IFDIR && type != S_IFREG && type != S_IFLNK &&
	    type != S_IFIFO && type != S_IFCHR && type != S_IFBLK) {
		set_cause(cause, "entry %.64s: type %o refused", r->e.path,
		    type);
		return -1;
	}
	if ((type == S_IFLNK) != (r->e.target != NULL) ||
	    (r->e.target != NULL && (r->e.target[0] == '\0' ||
	    strlen(r->e.target) > TREE_TARGET_MAX))) {
		set_cause(cause, "entry %.64s: bad link target", r->e.path);
		return -1;
	}
	want = type == S_IFREG ? (r->e.size + s->chunk_size - 1) /
	    s->chunk_size : 0;
	if ((type == S_IFREG && r->e.size > (uint64_t)CHUNKS_MAX *
	    s->chunk_size) || r->n != want) {
		set_cause(cause, "entry %.64s: %zu chunks for %" PRIu64
		    " bytes", r->e.path, r->n, r->e.size);
		return -1;
	}
	return 0;
}

int
rootfs_snap_decode(const uint8_t *buf, size_t len, struct rootfs_snap *s,
    char **cause)
{
	struct ibuf	 in = { buf, len, 0 };
	const uint8_t	*magic;
	uint64_t	 n, l, nd;
	size_t		 i;

	memset(s, 0, sizeof *s);
	magic = i_mem(&in, strlen(ROOTFS_SNAP_MAGIC));
	if (magic == NULL || memcmp(magic, ROOTFS_SNAP_MAGIC,
	    strlen(ROOTFS_SNAP_MAGIC)) != 0 ||
	    i_u64(&in, 4) != ROOTFS_SNAP_VERSION) {
		set_cause(cause, "not a rootfs manifest of version %d",
		    ROOTFS_SNAP_VERSION);
		return -1;
	}
	s->chunk_size = (uint32_t)i_u64(&in, 4);
	s->taken_sec = (int64_t)i_u64(&in, 8);
	n = i_u64(&in, 8);
	if (in.bad || s->chunk_size < CHUNK_SIZE_MIN ||
	    s->chunk_size > CHUNK_SIZE || n == 0 || n > TREE_MAX_ENTRIES) {
		set_cause(cause, "rootfs manifest: bad header (chunk size %"
		    PRIu32 ", %" PRIu64 " entries)", s->chunk_size, n);
		goto fail;
	}
	s->ents = xcalloc((size_t)n, sizeof *s->ents);
	for (i = 0; i < n; i++) {
		struct rootfs_ent *r = &s->ents[i];

		s->n = i + 1;
		l = i_u64(&in, 2);
		if ((r->e.path = i_str(&in, (size_t)l)) == NULL ||
		    strlen(r->e.path) != l)
			goto trunc;
		r->e.mode = (uint32_t)i_u64(&in, 4);
		r->e.uid = (uint32_t)i_u64(&in, 4);
		r->e.gid = (uint32_t)i_u64(&in, 4);
		r->e.size = i_u64(&in, 8);
		r->e.mtime_sec = (int64_t)i_u64(&in, 8);
		r->e.mtime_nsec = (uint32_t)i_u64(&in, 4);
		r->e.ctime_sec = (int64_t)i_u64(&in, 8);
		r->e.ctime_nsec = (uint32_t)i_u64(&in, 4);
		r->e.ino = i_u64(&in, 8);
		r->e.rdev = i_u64(&in, 8);
		l = i_u64(&in, 2);
		if (l > 0 && ((r->e.target = i_str(&in, (size_t)l)) == NULL ||
		    strlen(r->e.target) != l))
			goto trunc;
		nd = i_u64(&in, 4);
		if (in.bad || nd > CHUNKS_MAX || nd * DIGEST_LEN > in.len)
			goto trunc;
		r->n = (size_t)nd;
		r->digests = digests_dup((uint8_t (*)[DIGEST_LEN])(uintptr_t)
		    i_mem(&in, r->n * DIGEST_LEN), r->n);
		if (r->e.mtime_nsec >= 1000000000u ||
		    rootfs_ent_check(s, i, cause) != 0)
			goto fail;
	}
	if (in.len != 0) {
		set_cause(cause, "rootfs manifest: %zu bytes after its end",
		    in.len);
		goto fail;
	}
	return 0;
trunc:
	set_cause(cause, "rootfs manifest: entry %zu cut short or malformed",
	    s->n - 1);
fail:
	rootfs_snap_free(s);
	return -1;
}

int
rootfs_snap_load(const char *gen_dir, struct rootfs_snap *s, char **cause)
{
	char	*path, *text;
	size_t	 len;
	int	 rc;

	memset(s, 0, sizeof *s);
	xasprintf(&path, "%s/%s", gen_dir, ROOTFS_SNAP_FILE);
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		free(path);
		return 1;
	}
	if ((text = read_file_bounded(path, ROOTFS_SNAP_MAX, &len,
	    cause)) == NULL) {
		free(path);
		return -1;
	}
	rc = rootfs_snap_decode((const uint8_t *)text, len, s, cause);
	free(text);
	free(path);
	return rc;
}

int
rootfs_snap_save(const char *gen_dir, const struct rootfs_snap *s,
    char **cause)
{
	char	*path;
	uint8_t	*buf;
	size_t	 len;
	int	 rc;

	rootfs_snap_encode(s, &buf, &len);
	xasprintf(&path, "%s/%s", gen_dir, ROOTFS_SNAP_FILE);
	rc = write_file_atomic_buf(path, buf, len, cause);
	free(buf);
	free(path);
	return rc;
}

/* --- capture -------------------------------------------------------------- */

/* A file whose content this pass read. */
struct cap_file {
	char	 *path;
	size_t	  n;
	uint8_t	(*digests)[DIGEST_LEN];
	uint64_t  size;
};

struct cap {
	const struct rootfs_snap *since;
	const char	*store;
	uint32_t	 chunk_size;
	uint8_t		*buf;
	size_t		 have;
	struct cap_file	 cur;		/* between FILE and FEND */
	int		 in_file;
	struct cap_file	*files;
	size_t		 nfiles, alloc;
	struct rootfs_stats *st;
	char		*error;
};

static void
cap_digest(struct cap *c, const uint8_t *p, size_t len)
{
	uint8_t	md[DIGEST_LEN];

	digest_buf(p, len, md);
	if (c->error == NULL && !chunks_have(c->store, md) &&
	    chunks_put(c->store, md, p, len, &c->error) != 0)
		return;
	c->cur.digests = xreallocarray(c->cur.digests, c->cur.n + 1,
	    DIGEST_LEN);
	memcpy(c->cur.digests[c->cur.n++], md, DIGEST_LEN);
}

static const struct cap_file *
cap_read_find(const struct cap *c, const char *path)
{
	size_t	i;

	for (i = c->nfiles; i > 0; i--)
		if (strcmp(c->files[i - 1].path, path) == 0)
			return &c->files[i - 1];
	return NULL;
}

static void
cap_add(struct cap *c, struct cap_file *f)
{
	if (c->nfiles == c->alloc) {
		c->alloc = c->alloc == 0 ? 64 : c->alloc * 2;
		c->files = xreallocarray(c->files, c->alloc, sizeof *c->files);
	}
	c->files[c->nfiles++] = *f;
	memset(f, 0, sizeof *f);
}

/* One record of tree-scan's stream (whole, one per call). */
static int
cap_write(void *arg, const void *data, size_t len)
{
	struct cap	*c = arg;
	struct ibuf	 in = { data, len, 0 };
	unsigned	 type = (unsigned)i_u64(&in, 1);
	size_t		 l, take;
	const uint8_t	*p;
	struct cap_file	 f;
	const struct cap_file *from;
	const struct rootfs_ent *old;

	(void)i_u64(&in, 4);
	if (c->error != NULL)
		return -1;
	switch (type) {
	case TREE_REC_FILE:
		l = (size_t)i_u64(&in, 2);
		memset(&c->cur, 0, sizeof c->cur);
		c->cur.path = i_str(&in, l);
		c->have = 0;
		c->in_file = 1;
		break;
	case TREE_REC_DATA:
		p = in.p;
		l = in.len;
		while (l > 0) {
			take = c->chunk_size - c->have;
			if (take > l)
				take = l;
			memcpy(c->buf + c->have, p, take);
			c->have += take;
			p += take;
			l -= take;
			c->cur.size += take;
			if (c->have == c->chunk_size) {
				cap_digest(c, c->buf, c->have);
				c->have = 0;
			}
		}
		break;
	case TREE_REC_FEND:
		if (c->have > 0)
			cap_digest(c, c->buf, c->have);
		c->have = 0;
		c->in_file = 0;
		c->st->files_read++;
		c->st->bytes_read += c->cur.size;
		cap_add(c, &c->cur);
		break;
	case TREE_REC_LINK:
		/* A second name of a file: the content of the first. */
		l = (size_t)i_u64(&in, 2);
		memset(&f, 0, sizeof f);
		f.path = i_str(&in, l);
		p = in.p;
		{
			char *first = xstrndup((const char *)p, in.len);

			if ((from = cap_read_find(c, first)) != NULL) {
				f.size = from->size;
				f.n = from->n;
				f.digests = digests_dup(from->digests, f.n);
				cap_add(c, &f);
			} else if (c->since != NULL && (old = rootfs_find(
			    c->since, c->since->n, first)) != NULL) {
				f.size = old->e.size;
				f.n = old->n;
				f.digests = digests_dup(old->digests, f.n);
				cap_add(c, &f);
			} else
				free(f.path);
			free(first);
		}
		break;
	default:
		break;
	}
	return c->error != NULL ? -1 : 0;
}

/* since as tree-scan's index: a regular file whose chunks the store
 * lacks, or one changed too close to since's capture, looks changed (it
 * is read again). */
static struct tree_index *
cap_since_index(const struct rootfs_snap *since, const char *store)
{
	struct tree_index	*idx = xcalloc(1, sizeof *idx);
	size_t			 i, j;

	idx->ents = xcalloc(since->n + 1, sizeof *idx->ents);
	idx->n = idx->alloc = since->n;
	for (i = 0; i < since->n; i++) {
		const struct rootfs_ent *r = &since->ents[i];
		struct tree_ent *e = &idx->ents[i];
		int again = 0;

		*e = r->e;
		e->path = xstrdup(r->e.path);
		e->target = r->e.target != NULL ? xstrdup(r->e.target) : NULL;
		if (!S_ISREG(r->e.mode))
			continue;
		if (r->e.mtime_sec >= since->taken_sec - ROOTFS_SNAP_RACY_S ||
		    r->e.ctime_sec >= since->taken_sec - ROOTFS_SNAP_RACY_S)
			again = 1;
		for (j = 0; j < r->n && !again; j++)
			again = !chunks_have(store, r->digests[j]);
		if (again) {
			e->ctime_sec = -1;
			e->ctime_nsec = 0;
		}
	}
	return idx;
}

int
rootfs_snap_capture(const char *rootfs, const struct rootfs_snap *since,
    const char *store_dir, uint32_t chunk_size, struct rootfs_snap *out,
    struct rootfs_stats *st, char **cause)
{
	struct cap		 c;
	struct tree_index	*sidx = NULL, *idx = NULL;
	struct tree_scan	*scan = NULL;
	struct timespec		 now;
	size_t			 i;
	int			 rc = -1;

	memset(out, 0, sizeof *out);
	memset(st, 0, sizeof *st);
	memset(&c, 0, sizeof c);
	if (since != NULL && since->chunk_size != chunk_size)
		since = NULL;
	c.since = since;
	c.store = store_dir;
	c.chunk_size = chunk_size;
	c.buf = xmalloc(chunk_size);
	c.st = st;
	clock_gettime(CLOCK_REALTIME, &now);
	if (since != NULL)
		sidx = cap_since_index(since, store_dir);
	if ((scan = tree_scan_new(rootfs, sidx, cause)) == NULL)
		goto out;
	if (tree_scan_run(scan, cap_write, &c, cause) != 0) {
		if (c.error != NULL) {
			free(*cause);
			*cause = c.error;
			c.error = NULL;
		}
		goto out;
	}
	idx = tree_scan_take_index(scan);
	out->chunk_size = chunk_size;
	out->taken_sec = now.tv_sec;
	out->ents = xcalloc(idx->n + 1, sizeof *out->ents);
	for (i = 0; i < idx->n; i++) {
		struct rootfs_ent *r = &out->ents[out->n];
		const struct cap_file *f;
		const struct rootfs_ent *old;

		r->e = idx->ents[i];
		r->e.path = xstrdup(idx->ents[i].path);
		r->e.target = idx->ents[i].target != NULL ?
		    xstrdup(idx->ents[i].target) : NULL;
		out->n++;
		if (!S_ISREG(r->e.mode))
			continue;
		if ((f = cap_read_find(&c, r->e.path)) != NULL) {
			r->e.size = f->size;
			r->n = f->n;
			r->digests = digests_dup(f->digests, f->n);
		} else if (since != NULL && (old = rootfs_find(since, since->n,
		    r->e.path)) != NULL && old->e.size == r->e.size) {
			r->n = old->n;
			r->digests = digests_dup(old->digests, old->n);
		} else {
			set_cause(cause, "%s/%s: neither read nor unchanged",
			    rootfs, r->e.path);
			goto out;
		}
	}
	st->entries = out->n;
	rc = 0;
out:
	if (rc != 0)
		rootfs_snap_free(out);
	for (i = 0; i < c.nfiles; i++) {
		free(c.files[i].path);
		free(c.files[i].digests);
	}
	free(c.files);
	free(c.cur.path);
	free(c.cur.digests);
	free(c.error);
	free(c.buf);
	tree_scan_free(scan);
	tree_index_free(sidx);
	tree_index_free(idx);
	return rc;
}

/* --- chunks, materialise ------------------------------------------------ */

static int
rootfs_md_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_LEN);
}

size_t
rootfs_snap_chunks(const struct rootfs_snap *s,
    uint8_t (**digests)[DIGEST_LEN], uint32_t **sizes)
{
	struct pair {
		uint8_t		md[DIGEST_LEN];
		uint32_t	size;
	}		*all;
	size_t		 i, j, n = 0, k = 0;
	uint64_t	 left;

	for (i = 0; i < s->n; i++)
		n += s->ents[i].n;
	all = xcalloc(n + 1, sizeof *all);
	for (i = 0; i < s->n; i++)
		for (j = 0; j < s->ents[i].n; j++) {
			memcpy(all[k].md, s->ents[i].digests[j], DIGEST_LEN);
			left = s->ents[i].e.size - (uint64_t)j * s->chunk_size;
			all[k++].size = left > s->chunk_size ? s->chunk_size :
			    (uint32_t)left;
		}
	/* The digest first in a pair: sorted by it, equal ones adjacent. */
	qsort(all, n, sizeof *all, rootfs_md_cmp);
	*digests = xcalloc(n + 1, DIGEST_LEN);
	*sizes = xcalloc(n + 1, sizeof **sizes);
	for (i = 0, k = 0; i < n; i++) {
		if (k > 0 && memcmp((*digests)[k - 1], all[i].md,
		    DIGEST_LEN) == 0)
			continue;
		memcpy((*digests)[k], all[i].md, DIGEST_LEN);
		(*sizes)[k++] = all[i].size;
	}
	free(all);
	return k;
}

struct mat {
	struct tree_apply	*a;
	uint8_t			*rec;
	char			**cause;
};

static int
mat_out(struct mat *m, struct tree_wbuf *w)
{
	size_t	len = tree_wbuf_end(w);

	return tree_apply_feed(m->a, w->p, len, m->cause);
}

static int
mat_entry(struct mat *m, enum tree_rec type, const struct tree_ent *e)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, m->rec, type);
	tree_put_entry(&w, e);
	if (type == TREE_REC_FILE)
		tree_put64(&w, e->size);
	else if (type == TREE_REC_SYMLINK)
		tree_putmem(&w, e->target, strlen(e->target));
	else if (type == TREE_REC_NODE)
		tree_put64(&w, e->rdev);
	return mat_out(m, &w);
}

static int
mat_file(struct mat *m, const struct rootfs_snap *s, const struct rootfs_ent *r,
    const char *store, uint8_t *buf)
{
	struct tree_wbuf	w;
	uint64_t		off = 0, left;
	size_t			j, len, at, take;

	if (mat_entry(m, TREE_REC_FILE, &r->e) != 0)
		return -1;
	for (j = 0; j < r->n; j++) {
		left = r->e.size - (uint64_t)j * s->chunk_size;
		len = left > s->chunk_size ? s->chunk_size : (size_t)left;
		if (chunks_read(store, r->digests[j], buf, len, m->cause) != 0)
			return -1;
		for (at = 0; at < len; at += take) {
			take = len - at > TREE_DATA_MAX ? TREE_DATA_MAX :
			    len - at;
			tree_wbuf_start(&w, m->rec, TREE_REC_DATA);
			tree_putmem(&w, buf + at, take);
			if (mat_out(m, &w) != 0)
				return -1;
		}
		off += len;
	}
	tree_wbuf_start(&w, m->rec, TREE_REC_FEND);
	tree_put64(&w, off);
	return mat_out(m, &w);
}

int
rootfs_snap_materialise(const struct rootfs_snap *s, const char *store,
    const char *dir, char **cause)
{
	struct mat		 m;
	struct tree_wbuf	 w;
	struct tree_stats	 ts;
	struct stat		 sb;
	size_t			*open = NULL, nopen = 0, i;
	uint8_t			*buf = NULL;
	int			 rc = -1;

	memset(&m, 0, sizeof m);
	if (s->n == 0 || !S_ISDIR(s->ents[0].e.mode)) {
		set_cause(cause, "rootfs manifest without its root");
		return -1;
	}
	if (lstat(dir, &sb) == 0 || errno != ENOENT) {
		set_cause(cause, "%s: exists already", dir);
		return -1;
	}
	if ((m.a = tree_apply_new(dir, cause)) == NULL)
		return -1;
	m.rec = xmalloc(TREE_HDR_SIZE + TREE_VALUE_MAX);
	m.cause = cause;
	buf = xmalloc(s->chunk_size);
	open = xcalloc(s->n + 1, sizeof *open);
	tree_wbuf_start(&w, m.rec, TREE_REC_HEAD);
	tree_putmem(&w, TREE_MAGIC, strlen(TREE_MAGIC));
	tree_put32(&w, TREE_VERSION);
	tree_put32(&w, 0);
	if (mat_out(&m, &w) != 0)
		goto out;
	for (i = 1; i < s->n; i++) {
		const struct rootfs_ent *r = &s->ents[i];
		int rc2;

		/* Directories this entry is not below are complete. */
		while (nopen > 0 && !tree_path_below(r->e.path,
		    s->ents[open[nopen - 1]].e.path))
			if (mat_entry(&m, TREE_REC_DIREND,
			    &s->ents[open[--nopen]].e) != 0)
				goto out;
		switch (r->e.mode & S_IFMT) {
		case S_IFDIR:
			rc2 = mat_entry(&m, TREE_REC_DIR, &r->e);
			open[nopen++] = i;
			break;
		case S_IFREG:
			rc2 = mat_file(&m, s, r, store, buf);
			break;
		case S_IFLNK:
			rc2 = mat_entry(&m, TREE_REC_SYMLINK, &r->e);
			break;
		default:
			rc2 = mat_entry(&m, TREE_REC_NODE, &r->e);
			break;
		}
		if (rc2 != 0)
			goto out;
	}
	while (nopen > 0)
		if (mat_entry(&m, TREE_REC_DIREND, &s->ents[open[--nopen]].e) !=
		    0)
			goto out;
	if (mat_entry(&m, TREE_REC_DIREND, &s->ents[0].e) != 0)
		goto out;
	tree_apply_stats(m.a, &ts);
	tree_wbuf_start(&w, m.rec, TREE_REC_END);
	tree_put64(&w, ts.entries);
	tree_put64(&w, ts.files);
	tree_put64(&w, ts.bytes);
	tree_put64(&w, ts.deleted);
	if (mat_out(&m, &w) != 0 || tree_apply_end(m.a, cause) != 0)
		goto out;
	rc = tree_sync(dir, cause);
out:
	tree_apply_free(m.a);
	if (rc != 0) {
		char *ignore = NULL;

		rm_rf(dir, &ignore);
		free(ignore);
	}
	free(open);
	free(buf);
	free(m.rec);
	return rc;
}
