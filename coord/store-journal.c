/* The journal backend of the store: one coordinator, local disk.
 *
 * All keys live in memory; every change is appended to DIR/journal and
 * fdatasync'd before its transaction is answered.  Transactions that
 * arrive while a write is on the disk form the next batch (group
 * commit): one record per batch, so a crash can only leave the last
 * batch half-written, and a batch is never written before the previous
 * one is durable.  At open the journal is replayed over DIR/snapshot;
 * when the journal outgrows the live data, the batch's worker writes a
 * new snapshot (fsync'd, renamed into place) and empties the journal.
 *
 * On disk, little-endian:
 *   journal:  record*          record = "TJB1" u32 body_len u32 crc32c
 *             body = u32 ntxn, then per txn: u64 rev, u32 nops, then per
 *             op: u8 kind (1 put, 2 delete), u32 klen, key[, u32 vlen,
 *             value]
 *   snapshot: "TSN1" u64 rev u64 nkeys, per key: u32 klen, key, u64
 *             mod_rev, u32 vlen, value; then u32 crc32c of all before.
 * Replay believes a record only whole and with its checksum.  A damaged
 * record followed by nothing valid is a crash's torn tail (never
 * acknowledged): it is cut off, and said.  Damage followed by a valid
 * record is damage to acknowledged data: the store refuses to open. */
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

#include "coord/store.h"
#include "daemon/crc32c.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define JOURNAL_MAGIC		0x31424a54u	/* "TJB1" */
#define SNAPSHOT_MAGIC		0x314e5354u	/* "TSN1" */
#define OP_PUT			1
#define OP_DELETE		2
/* Bytes not yet on disk: beyond this a transaction is refused (busy). */
#define PENDING_MAX		(64u << 20)
#define RECORD_MAX		(PENDING_MAX + (1u << 20))
#define FILE_MAX		((size_t)1 << 30)
/* Compact once the journal is past this and twice the live data. */
#define COMPACT_MIN		(4u << 20)

struct jentry {
	struct jentry	*next;		/* hash chain */
	char		*key;
	uint8_t		*value;
	size_t		 len;
	uint64_t	 mod_rev;
};

struct jwaiter {
	struct jwaiter	*next;
	store_txn_cb	 cb;
	void		*arg;
	int		 committed;
	uint64_t	 rev;
};

struct jbatch {
	uint8_t		*buf;		/* the record: header, then body */
	size_t		 len, cap;
	uint32_t	 ntxn;
	struct jwaiter	*head, **tail;
	uint8_t		*snap;		/* compaction: the snapshot to write */
	size_t		 snap_len;
	int		 fail_sync;	/* fault point store.sync:fail */
	unsigned	 delay_ms;	/* store.sync:delay=MS, a slow disk */
	int		 die_torn;	/* fault point store.write:kill */
	char		*error;
};

struct journal {
	struct store	 s;
	char		*dir, *jpath, *spath;
	int		 fd;
	uint64_t	 rev;		/* memory's: includes the pending batch */
	uint64_t	 jbytes;	/* the journal's length on disk */
	struct jentry	**tab;
	size_t		 tabsz, nkeys, live;
	struct jbatch	 pending, inflight;
	uv_work_t	 work;
	int		 busy;
	char		*failed;	/* why the store stopped, once it did */
	int		 closing;
	uv_timer_t	 load_timer;
	uv_timer_t	 lead_timer;
	store_leader_cb	 lead_cb;
	void		*lead_arg;
	int		 handles;
	store_load_cb	 load_each;
	store_loaded_cb	 load_done;
	void		*load_arg;
	int		 loading;
};

static void	journal_flush(struct journal *);

/* --- little-endian encoding --------------------------------------------- */

static void
buf_reserve(struct jbatch *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	while (b->len + more > b->cap)
		b->cap = b->cap != 0 ? b->cap * 2 : 4096;
	b->buf = xreallocarray(b->buf, 1, b->cap);
}

static void
put_bytes(struct jbatch *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n != 0)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void
put_u32(struct jbatch *b, uint32_t v)
{
	uint8_t	x[4] = { v, v >> 8, v >> 16, v >> 24 };

	put_bytes(b, x, 4);
}

static void
put_u64(struct jbatch *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}

static void
set_u32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/* A bounds-checked reader over bytes read back from disk. */
struct rd {
	const uint8_t	*p;
	size_t		 left;
	int		 bad;
};

static const uint8_t *
get_bytes(struct rd *r, size_t n)
{
	const uint8_t	*p = r->p;

	if (r->bad || n > r->left) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint32_t
get_u32(struct rd *r)
{
	const uint8_t	*p = get_bytes(r, 4);

	if (p == NULL)
		return 0;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(struct rd *r)
{
	uint64_t	lo = get_u32(r);

	return lo | (uint64_t)get_u32(r) << 32;
}

/* --- the keys in memory --------------------------------------------------- */

static size_t
key_hash(const char *k, size_t tabsz)
{
	uint64_t	h = 1469598103934665603ull;	/* FNV-1a */

	for (; *k != '\0'; k++)
		h = (h ^ (uint8_t)*k) * 1099511628211ull;
	return h & (tabsz - 1);
}

static struct jentry **
key_slot(struct journal *j, const char *key)
{
	struct jentry	**pp;

	for (pp = &j->tab[key_hash(key, j->tabsz)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

static uint64_t
key_rev(struct journal *j, const char *key)
{
	struct jentry	*e = *key_slot(j, key);

	return e != NULL ? e->mod_rev : 0;
}

static void
key_grow(struct journal *j)
{
	struct jentry	**old = j->tab, *e, *next;
	size_t		  oldsz = j->tabsz, i, h;

	j->tabsz = oldsz != 0 ? oldsz * 2 : 64;
	j->tab = xcalloc(j->tabsz, sizeof *j->tab);
	for (i = 0; i < oldsz; i++)
		for (e = old[i]; e != NULL; e = next) {
			next = e->next;
			h = key_hash(e->key, j->tabsz);
			e->next = j->tab[h];
			j->tab[h] = e;
		}
	free(old);
}

static void
key_put(struct journal *j, const char *key, const void *value, size_t len,
    uint64_t rev)
{
	struct jentry	**pp = key_slot(j, key), *e = *pp;

	if (e == NULL) {
		if (j->nkeys + 1 > j->tabsz / 2) {
			key_grow(j);
			pp = key_slot(j, key);
		}
		e = xcalloc(1, sizeof *e);
		e->key = xstrdup(key);
		*pp = e;
		j->nkeys++;
		j->live += strlen(key) + 16;
	} else {
		j->live -= e->len;
		free(e->value);
	}
	e->value = xmalloc(len != 0 ? len : 1);
	memcpy(e->value, value, len);
	e->len = len;
	e->mod_rev = rev;
	j->live += len;
}

static void
key_delete(struct journal *j, const char *key)
{
	struct jentry	**pp = key_slot(j, key), *e = *pp;

	if (e == NULL)
		return;
	*pp = e->next;
	j->live -= e->len + strlen(e->key) + 16;
	j->nkeys--;
	free(e->key);
	free(e->value);
	free(e);
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp((*(struct jentry *const *)a)->key,
	    (*(struct jentry *const *)b)->key);
}

/* Every entry, sorted by key; free the array only. */
static struct jentry **
key_sorted(struct journal *j)
{
	struct jentry	**v, *e;
	size_t		  i, n = 0;

	v = xreallocarray(NULL, j->nkeys + 1, sizeof *v);
	for (i = 0; i < j->tabsz; i++)
		for (e = j->tab[i]; e != NULL; e = e->next)
			v[n++] = e;
	qsort(v, n, sizeof *v, entry_cmp);
	return v;
}

/* --- replay ------------------------------------------------------------------ */

static int
journal_load_snapshot(struct journal *j, char **cause)
{
	uint8_t		*data;
	size_t		 len, klen, vlen;
	uint64_t	 n, i, rev;
	struct rd	 r;
	char		*key;
	const uint8_t	*kp, *vp;

	if ((data = (uint8_t *)read_file_bounded(j->spath, FILE_MAX, &len,
	    cause)) == NULL) {
		if (errno == ENOENT) {
			free(*cause);
			*cause = NULL;
			return 0;
		}
		return -1;
	}
	r.p = data;
	r.left = len >= 4 ? len - 4 : 0;
	r.bad = len < 4;
	if (r.bad || crc32c(0, data, len - 4) !=
	    ((uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
	    (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24) ||
	    get_u32(&r) != SNAPSHOT_MAGIC)
		goto damaged;
	j->rev = get_u64(&r);
	n = get_u64(&r);
	for (i = 0; i < n && !r.bad; i++) {
		klen = get_u32(&r);
		if (klen == 0 || klen > STORE_KEY_MAX ||
		    (kp = get_bytes(&r, klen)) == NULL)
			goto damaged;
		rev = get_u64(&r);
		vlen = get_u32(&r);
		if (vlen > STORE_VALUE_MAX || (vp = get_bytes(&r, vlen)) == NULL ||
		    rev == 0 || rev > j->rev || memchr(kp, '\0', klen) != NULL)
			goto damaged;
		key = xmalloc(klen + 1);
		memcpy(key, kp, klen);
		key[klen] = '\0';
		key_put(j, key, vp, vlen, rev);
		free(key);
	}
	if (r.bad || r.left != 0)
		goto damaged;
	free(data);
	return 0;
damaged:
	free(data);
	set_cause(cause, "%s is damaged (a snapshot is written whole and "
	    "fsync'd before it replaces the last, so the disk changed it): "
	    "restore the directory %s from a backup; removing it starts the "
	    "coordinator empty, forgetting every host and instance",
	    j->spath, j->dir);
	return -1;
}

/* Apply one record's body (ntxn transactions).  -1 if it does not decode,
 * or *cause (set) if it decodes but contradicts the revisions. */
static int
journal_apply_body(struct journal *j, const uint8_t *body, size_t len,
    uint64_t snap_rev, char **cause)
{
	struct rd	 r = { body, len, 0 };
	uint32_t	 ntxn, nops, t, o, klen, vlen;
	uint64_t	 rev;
	uint8_t		 kind;
	const uint8_t	*kp, *vp;
	char		 key[STORE_KEY_MAX + 1];

	ntxn = get_u32(&r);
	for (t = 0; t < ntxn && !r.bad; t++) {
		rev = get_u64(&r);
		nops = get_u32(&r);
		if (r.bad || nops == 0 || nops > STORE_TXN_OPS_MAX)
			return -1;
		if (rev > snap_rev && rev != j->rev + 1) {
			set_cause(cause, "%s: a record holds revision %" PRIu64
			    " where %" PRIu64 " comes next", j->jpath, rev,
			    j->rev + 1);
			return -1;
		}
		for (o = 0; o < nops; o++) {
			kp = get_bytes(&r, 1);
			if (kp == NULL)
				return -1;
			kind = *kp;
			klen = get_u32(&r);
			if (klen == 0 || klen > STORE_KEY_MAX ||
			    (kp = get_bytes(&r, klen)) == NULL ||
			    memchr(kp, '\0', klen) != NULL)
				return -1;
			memcpy(key, kp, klen);
			key[klen] = '\0';
			if (kind == OP_PUT) {
				vlen = get_u32(&r);
				if (vlen > STORE_VALUE_MAX ||
				    (vp = get_bytes(&r, vlen)) == NULL)
					return -1;
				if (rev > snap_rev)
					key_put(j, key, vp, vlen, rev);
			} else if (kind == OP_DELETE) {
				if (rev > snap_rev)
					key_delete(j, key);
			} else
				return -1;
		}
		if (rev > snap_rev)
			j->rev = rev;
	}
	return r.bad || r.left != 0 ? -1 : 0;
}

/* A whole record with its checksum at off: its length, else 0. */
static size_t
journal_record_at(const uint8_t *data, size_t len, size_t off)
{
	struct rd	r = { data + off, len - off, 0 };
	uint32_t	magic, blen, crc;

	magic = get_u32(&r);
	blen = get_u32(&r);
	crc = get_u32(&r);
	if (r.bad || magic != JOURNAL_MAGIC || blen > RECORD_MAX ||
	    blen > r.left || crc32c(0, r.p, blen) != crc)
		return 0;
	return 12 + (size_t)blen;
}

static int
journal_replay(struct journal *j, char **cause)
{
	uint8_t		*data;
	size_t		 len, off = 0, n, later;
	uint64_t	 snap_rev = j->rev;

	if ((data = (uint8_t *)read_file_bounded(j->jpath, FILE_MAX, &len,
	    cause)) == NULL) {
		if (errno == ENOENT) {
			free(*cause);
			*cause = NULL;
			len = 0;
			goto done;
		}
		return -1;
	}
	while (off < len) {
		if ((n = journal_record_at(data, len, off)) == 0)
			break;
		if (journal_apply_body(j, data + off + 12, n - 12, snap_rev,
		    cause) != 0) {
			if (*cause == NULL)
				set_cause(cause, "%s: the record at offset %zu "
				    "has a valid checksum but does not decode",
				    j->jpath, off);
			free(data);
			return -1;
		}
		off += n;
	}
	if (off < len) {
		/* Torn tail, or damage under acknowledged records? */
		for (later = off + 1; later + 12 <= len; later++)
			if (journal_record_at(data, len, later) != 0) {
				set_cause(cause, "%s is damaged at offset %zu, "
				    "with whole records after it (acknowledged "
				    "changes would be lost): restore %s from a "
				    "backup", j->jpath, off, j->dir);
				free(data);
				return -1;
			}
		log_warnx("store: %s: cut %zu bytes of a half-written last "
		    "record at offset %zu (a crash before it was "
		    "acknowledged)", j->jpath, len - off, off);
		if (truncate(j->jpath, (off_t)off) != 0) {
			set_cause(cause, "%s: truncate: %s", j->jpath,
			    strerror(errno));
			free(data);
			return -1;
		}
	}
	free(data);
done:
	j->jbytes = off;
	return 0;
}

/* --- writing ------------------------------------------------------------------ */

static void
batch_reset(struct jbatch *b)
{
	b->len = 0;
	b->ntxn = 0;
	b->head = NULL;
	b->tail = &b->head;
	free(b->snap);
	b->snap = NULL;
	b->snap_len = 0;
	b->fail_sync = 0;
	b->delay_ms = 0;
	b->die_torn = 0;
	free(b->error);
	b->error = NULL;
}

static void
batch_wait(struct jbatch *b, store_txn_cb cb, void *arg, int committed,
    uint64_t rev)
{
	struct jwaiter	*w = xcalloc(1, sizeof *w);

	w->cb = cb;
	w->arg = arg;
	w->committed = committed;
	w->rev = rev;
	*b->tail = w;
	b->tail = &w->next;
}

/* Answer every waiter of b, in order, with error if set. */
static void
batch_answer(struct jbatch *b, const char *error)
{
	struct jwaiter	*w, *next;

	for (w = b->head; w != NULL; w = next) {
		next = w->next;
		if (error != NULL)
			w->cb(w->arg, 0, 0, error);
		else
			w->cb(w->arg, w->committed, w->rev, NULL);
		free(w);
	}
	b->head = NULL;
	b->tail = &b->head;
}

static uint8_t *
journal_snapshot_encode(struct journal *j, size_t *len)
{
	struct jbatch	  b;
	struct jentry	**v;
	size_t		  i;
	uint8_t		 *out;

	memset(&b, 0, sizeof b);
	put_u32(&b, SNAPSHOT_MAGIC);
	put_u64(&b, j->rev);
	put_u64(&b, j->nkeys);
	v = key_sorted(j);
	for (i = 0; i < j->nkeys; i++) {
		put_u32(&b, (uint32_t)strlen(v[i]->key));
		put_bytes(&b, v[i]->key, strlen(v[i]->key));
		put_u64(&b, v[i]->mod_rev);
		put_u32(&b, (uint32_t)v[i]->len);
		put_bytes(&b, v[i]->value, v[i]->len);
	}
	free(v);
	put_u32(&b, crc32c(0, b.buf, b.len));
	out = b.buf;
	*len = b.len;
	return out;
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Worker: the batch's record to the journal, durable; then a snapshot
 * if one is due, and the journal emptied under it. */
static void
journal_work(uv_work_t *w)
{
	struct journal	*j = w->data;
	struct jbatch	*b = &j->inflight;
	char		 tmp[4096];
	int		 fd;

	if (b->len != 0) {
		if (b->delay_ms != 0)
			nanosleep(&(struct timespec){ b->delay_ms / 1000,
			    (long)(b->delay_ms % 1000) * 1000000 }, NULL);
		if (b->die_torn) {
			/* A crash in the middle of a write. */
			(void)write_all(j->fd, b->buf, b->len / 2);
			fault_die("store.write");
		}
		if (write_all(j->fd, b->buf, b->len) != 0) {
			xasprintf(&b->error, "%s: write: %s", j->jpath,
			    strerror(errno));
			return;
		}
		if (b->fail_sync) {
			xasprintf(&b->error, "%s: fdatasync: %s (fault point "
			    "store.sync)", j->jpath, strerror(EIO));
			return;
		}
		if (fdatasync(j->fd) != 0) {
			xasprintf(&b->error, "%s: fdatasync: %s", j->jpath,
			    strerror(errno));
			return;
		}
	}
	if (b->snap == NULL)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", j->spath);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || write_all(fd, b->snap, b->snap_len) != 0 ||
	    fsync(fd) != 0) {
		xasprintf(&b->error, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	close(fd);
	if (rename(tmp, j->spath) != 0) {
		xasprintf(&b->error, "%s: rename: %s", tmp, strerror(errno));
		return;
	}
	if (fsync_parent(j->spath, &b->error) != 0)
		return;
	/* The snapshot holds every record now: the journal may go. */
	if (ftruncate(j->fd, 0) != 0 || fsync(j->fd) != 0)
		xasprintf(&b->error, "%s: emptying it after a snapshot: %s",
		    j->jpath, strerror(errno));
}

static void	journal_free(struct journal *);

static void
journal_done(uv_work_t *w, int status)
{
	struct journal	*j = w->data;
	struct jbatch	*b = &j->inflight;

	(void)status;
	j->busy = 0;
	if (b->error != NULL && j->failed == NULL) {
		/* What memory holds is no longer what the disk holds; the
		 * disk's error may have dropped pages (no retry can tell). */
		log_warnx("store: %s; the store stops: restart the "
		    "coordinator (it replays what is on disk)", b->error);
		j->failed = xstrdup(b->error);
	}
	if (j->failed == NULL) {
		j->jbytes = b->snap != NULL ? 0 : j->jbytes + b->len;
		if (b->snap != NULL)
			log_info("store: %s: snapshot at revision %" PRIu64
			    " (%zu bytes); journal emptied", j->spath,
			    j->rev, b->snap_len);
	}
	if (j->failed == NULL && b->len != 0)
		fault_die_at("store.synced");	/* durable, not answered */
	batch_answer(b, j->failed);
	batch_reset(b);
	if (j->failed != NULL) {
		batch_answer(&j->pending, j->failed);
		batch_reset(&j->pending);
	}
	journal_flush(j);
}

/* Start writing the pending batch if nothing is on its way. */
static void
journal_flush(struct journal *j)
{
	struct jbatch	 swap;
	enum fault_action action;
	unsigned	 ms = 0;

	if (j->busy)
		return;
	if (j->pending.head == NULL) {
		if (j->closing)
			journal_free(j);
		return;
	}
	swap = j->inflight;
	j->inflight = j->pending;
	j->pending = swap;
	batch_reset(&j->pending);
	if (j->inflight.len != 0) {
		/* The record header, now that the body is whole. */
		set_u32(j->inflight.buf + 12, j->inflight.ntxn);
		set_u32(j->inflight.buf + 4, (uint32_t)(j->inflight.len - 12));
		set_u32(j->inflight.buf + 8, crc32c(0, j->inflight.buf + 12,
		    j->inflight.len - 12));
		action = fault_check("store.sync", &ms);
		j->inflight.fail_sync = action == FAULT_FAIL;
		j->inflight.delay_ms = action == FAULT_DELAY ? ms : 0;
		if (fault_hit("store.write") == FAULT_KILL)
			j->inflight.die_torn = 1;
		if (j->jbytes + j->inflight.len > COMPACT_MIN &&
		    j->jbytes + j->inflight.len > 2 * j->live)
			j->inflight.snap = journal_snapshot_encode(j,
			    &j->inflight.snap_len);
	}
	j->busy = 1;
	j->work.data = j;
	uv_queue_work(j->s.loop, &j->work, journal_work, journal_done);
}

static int
journal_txn(struct store *s, const struct store_txn *t, store_txn_cb cb,
    void *arg, char **cause)
{
	struct journal	*j = s->impl;
	struct jbatch	*b = &j->pending;
	size_t		 i, need = 16;

	if (j->failed != NULL) {
		set_cause(cause, "the store stopped after %s", j->failed);
		return -1;
	}
	if (j->closing) {
		set_cause(cause, "the store is closing");
		return -1;
	}
	for (i = 0; i < t->nops; i++)
		need += 16 + strlen(t->ops[i].key) +
		    (t->ops[i].value != NULL ? t->ops[i].len : 0);
	if (b->len + need > PENDING_MAX) {
		set_cause(cause, "the store is busy: %zu bytes wait for the "
		    "disk already", b->len);
		return -1;
	}
	for (i = 0; i < t->ncmp; i++)
		if (key_rev(j, t->cmp[i].key) != t->cmp[i].mod_rev) {
			batch_wait(b, cb, arg, 0, j->rev);
			journal_flush(j);
			return 0;
		}
	if (b->len == 0) {
		put_u32(b, JOURNAL_MAGIC);
		put_u32(b, 0);		/* body length, crc: at the flush */
		put_u32(b, 0);
		put_u32(b, 0);		/* ntxn */
	}
	j->rev++;
	b->ntxn++;
	put_u64(b, j->rev);
	put_u32(b, (uint32_t)t->nops);
	for (i = 0; i < t->nops; i++) {
		const struct store_op	*op = &t->ops[i];
		size_t			 klen = strlen(op->key);

		put_bytes(b, (uint8_t []){ op->value != NULL ? OP_PUT :
		    OP_DELETE }, 1);
		put_u32(b, (uint32_t)klen);
		put_bytes(b, op->key, klen);
		if (op->value != NULL) {
			put_u32(b, (uint32_t)op->len);
			put_bytes(b, op->value, op->len);
			key_put(j, op->key, op->value, op->len, j->rev);
		} else
			key_delete(j, op->key);
	}
	batch_wait(b, cb, arg, 1, j->rev);
	journal_flush(j);
	return 0;
}

static void
journal_load_run(uv_timer_t *t)
{
	struct journal	 *j = t->data;
	struct jentry	**v;
	size_t		  i, n = j->nkeys;

	j->loading = 0;
	v = key_sorted(j);
	for (i = 0; i < n; i++)
		j->load_each(j->load_arg, v[i]->key, v[i]->value, v[i]->len,
		    v[i]->mod_rev);
	free(v);
	j->load_done(j->load_arg, j->rev, NULL);
}

static int
journal_load(struct store *s, store_load_cb each, store_loaded_cb done,
    void *arg, char **cause)
{
	struct journal	*j = s->impl;

	if (j->loading || j->closing) {
		set_cause(cause, "the store is %s", j->closing ? "closing" :
		    "loading already");
		return -1;
	}
	j->loading = 1;
	j->load_each = each;
	j->load_done = done;
	j->load_arg = arg;
	uv_timer_start(&j->load_timer, journal_load_run, 0, 0);
	return 0;
}

/* One coordinator: it leads from the start, for good. */
static void
journal_lead_run(uv_timer_t *t)
{
	struct journal	*j = t->data;

	j->lead_cb(j->lead_arg, 1, NULL);
}

static int
journal_campaign(struct store *s, const char *name, unsigned ttl_ms,
    store_leader_cb cb, void *arg, char **cause)
{
	struct journal	*j = s->impl;

	(void)name;
	(void)ttl_ms;
	if (j->lead_cb != NULL || j->closing) {
		set_cause(cause, "the store is %s", j->closing ? "closing" :
		    "campaigning already");
		return -1;
	}
	j->lead_cb = cb;
	j->lead_arg = arg;
	uv_timer_start(&j->lead_timer, journal_lead_run, 0, 0);
	return 0;
}

static void
journal_timer_closed(uv_handle_t *h)
{
	struct journal	*j = h->data;
	size_t		 i;
	struct jentry	*e, *next;

	if (--j->handles > 0)
		return;

	for (i = 0; i < j->tabsz; i++)
		for (e = j->tab[i]; e != NULL; e = next) {
			next = e->next;
			free(e->key);
			free(e->value);
			free(e);
		}
	free(j->tab);
	batch_reset(&j->pending);
	batch_reset(&j->inflight);
	free(j->pending.buf);
	free(j->inflight.buf);
	free(j->failed);
	free(j->dir);
	free(j->jpath);
	free(j->spath);
	free(j);
}

static void
journal_free(struct journal *j)
{
	if (j->fd != -1)
		close(j->fd);
	j->fd = -1;
	uv_close((uv_handle_t *)&j->load_timer, journal_timer_closed);
	uv_close((uv_handle_t *)&j->lead_timer, journal_timer_closed);
}

static void
journal_close(struct store *s)
{
	struct journal	*j = s->impl;

	j->closing = 1;
	uv_timer_stop(&j->load_timer);
	uv_timer_stop(&j->lead_timer);
	journal_flush(j);	/* frees it once nothing is on its way */
}

static const struct store_ops journal_ops = {
	.name = "journal",
	.load = journal_load,
	.txn = journal_txn,
	.campaign = journal_campaign,
	.close = journal_close,
};

struct store *
store_journal_open(uv_loop_t *loop, const char *dir, char **cause)
{
	struct journal	*j = xcalloc(1, sizeof *j);

	j->s.ops = &journal_ops;
	j->s.loop = loop;
	j->s.impl = j;
	j->fd = -1;
	j->dir = xstrdup(dir);
	xasprintf(&j->jpath, "%s/journal", dir);
	xasprintf(&j->spath, "%s/snapshot", dir);
	j->pending.tail = &j->pending.head;
	j->inflight.tail = &j->inflight.head;
	key_grow(j);
	uv_timer_init(loop, &j->load_timer);
	j->load_timer.data = j;
	uv_timer_init(loop, &j->lead_timer);
	j->lead_timer.data = j;
	j->handles = 2;
	if (mkdir_p(dir, 0700, cause) != 0 ||
	    journal_load_snapshot(j, cause) != 0 ||
	    journal_replay(j, cause) != 0)
		goto fail;
	if ((j->fd = open(j->jpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1) {
		set_cause(cause, "%s: %s", j->jpath, strerror(errno));
		goto fail;
	}
	if (j->jbytes == 0 && fsync_parent(j->jpath, cause) != 0)
		goto fail;
	log_info("store: journal %s at revision %" PRIu64 ", %zu keys", dir,
	    j->rev, j->nkeys);
	return &j->s;
fail:
	journal_free(j);
	return NULL;
}
