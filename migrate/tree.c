/* A directory tree over one stream (migrate/tree.h).  The record format is
 * described in tree-wire.c.
 *
 * The filesystem work is blocking, so each side runs it on a thread of its
 * own (tree-scan.c, tree-apply.c) and the loop only moves chunks between
 * that thread and the stream:
 *
 *   sender:   walker thread -> queue (at most TREE_QUEUE_MAX) -> stream_send
 *   receiver: on_data -> queue -> applier thread -> stream_consumed
 *
 * The sender's queue is bounded by blocking the walker; the receiver's by
 * the stream's credit, which it grants only for bytes the applier took.
 * A uv_async_t wakes the loop; the thread is joined on the loop once it
 * said it is done (or was told to stop, which it notices at its next
 * chunk). */
#include "config.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "migrate.tree"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/tree-internal.h"

#define TREE_QUEUE_MAX	(4u << 20)
/* Small records share a chunk, so they share a frame on the wire too. */
#define TREE_CHUNK_SIZE	(256u << 10)

/* The thread appends at len (under lock), the loop sends from off. */
struct tree_chunk {
	struct tree_chunk	*next;
	size_t			 len, off, cap;
	uint8_t			 data[];
};

/* Shared between the loop and the thread, under lock. */
struct tree_queue {
	uv_mutex_t		 lock;
	uv_cond_t		 cond;
	struct tree_chunk	*head, *tail;
	size_t			 bytes;
	int			 eof;		/* receiver: stream ended whole */
	int			 stop;		/* thread: give up */
	int			 done;		/* thread: finished */
	char			*error;		/* thread: why it failed */
	size_t			 consumed;	/* receiver: to grant */
};

struct tree_send {
	struct stream		*st;
	struct tree_scan	*scan;
	struct tree_queue	 q;
	uv_async_t		 async;
	uv_thread_t		 thread;
	int			 joined, finishing, cancelled;
	uint64_t		 sent;		/* into the stream */
	struct tree_index	**out_index;
	char			*error;
	tree_done_cb		 cb;
	void			*arg;
	uint64_t		 start;
};

struct tree_recv {
	struct stream		*st;
	struct tree_apply	*ap;
	struct tree_queue	 q;
	uv_async_t		 async;
	uv_thread_t		 thread;
	int			 joined;
	char			*error;		/* the stream's */
	tree_done_cb		 cb;
	void			*arg;
};

static void
tree_queue_init(struct tree_queue *q)
{
	memset(q, 0, sizeof *q);
	if (uv_mutex_init(&q->lock) != 0 || uv_cond_init(&q->cond) != 0)
		fatalx("cannot create a mutex");
}

static void
tree_queue_free(struct tree_queue *q)
{
	struct tree_chunk	*c;

	while ((c = q->head) != NULL) {
		q->head = c->next;
		free(c);
	}
	free(q->error);
	uv_cond_destroy(&q->cond);
	uv_mutex_destroy(&q->lock);
}

/* Under lock. */
static void
tree_queue_push(struct tree_queue *q, const void *p, size_t len)
{
	struct tree_chunk	*c = q->tail;
	size_t			 cap;

	if (c == NULL || c->cap - c->len < len) {
		cap = len > TREE_CHUNK_SIZE ? len : TREE_CHUNK_SIZE;
		c = xmalloc(sizeof *c + cap);
		c->next = NULL;
		c->len = c->off = 0;
		c->cap = cap;
		if (q->tail != NULL)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	memcpy(c->data + c->len, p, len);
	c->len += len;
	q->bytes += len;
}

/* Under lock.  Once off the list, nothing appends to it. */
static struct tree_chunk *
tree_queue_pop(struct tree_queue *q)
{
	struct tree_chunk	*c;

	if ((c = q->head) != NULL) {
		if ((q->head = c->next) == NULL)
			q->tail = NULL;
		q->bytes -= c->len - c->off;
	}
	return c;
}

/* --- sending --------------------------------------------------------------- */

/* Walker thread: block while the queue is full. */
static int
tree_send_write(void *arg, const void *p, size_t len)
{
	struct tree_send	*ts = arg;
	struct tree_queue	*q = &ts->q;

	uv_mutex_lock(&q->lock);
	while (q->bytes >= TREE_QUEUE_MAX && !q->stop)
		uv_cond_wait(&q->cond, &q->lock);
	if (q->stop) {
		uv_mutex_unlock(&q->lock);
		return -1;
	}
	tree_queue_push(q, p, len);
	uv_mutex_unlock(&q->lock);
	uv_async_send(&ts->async);
	return 0;
}

static void
tree_send_thread(void *arg)
{
	struct tree_send	*ts = arg;
	char			*cause = NULL;

	tree_scan_run(ts->scan, tree_send_write, ts, &cause);
	uv_mutex_lock(&ts->q.lock);
	ts->q.done = 1;
	ts->q.error = cause;
	uv_mutex_unlock(&ts->q.lock);
	uv_async_send(&ts->async);
}

static void
tree_send_join(struct tree_send *ts)
{
	if (ts->joined)
		return;
	uv_mutex_lock(&ts->q.lock);
	ts->q.stop = 1;
	uv_cond_broadcast(&ts->q.cond);
	uv_mutex_unlock(&ts->q.lock);
	uv_thread_join(&ts->thread);
	ts->joined = 1;
}

static void
tree_send_closed(uv_handle_t *h)
{
	struct tree_send	*ts = h->data;
	struct tree_stats	 stats;

	tree_scan_stats(ts->scan, &stats);
	stats.duration_ns = now_ns() - ts->start;
	if (!ts->cancelled) {
		if (ts->out_index != NULL)
			*ts->out_index = ts->error == NULL ?
			    tree_scan_take_index(ts->scan) : NULL;
		ts->cb(ts->arg, &stats, ts->error);
	}
	tree_scan_free(ts->scan);
	tree_queue_free(&ts->q);
	free(ts->error);
	free(ts);
}

/* The stream is over: stop the walker, then call back once the handle is
 * closed. */
static void
tree_send_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct tree_send	*ts = stream_data(st);

	(void)bytes;
	ts->st = NULL;
	tree_send_join(ts);
	if (error != NULL && ts->error == NULL)
		ts->error = xstrdup(error);
	uv_close((uv_handle_t *)&ts->async, tree_send_closed);
}

/* Move queued chunks into the stream while it takes them. */
static void
tree_send_pump(struct tree_send *ts)
{
	struct tree_queue	*q = &ts->q;
	struct tree_chunk	*c;
	size_t			 n, len = 0, offered;
	int			 done, empty;

	while (ts->st != NULL && !ts->finishing) {
		uv_mutex_lock(&q->lock);
		if ((c = q->head) != NULL)
			len = c->len;
		done = q->done;
		uv_mutex_unlock(&q->lock);
		if (c == NULL) {
			if (!done)
				return;		/* the walker wakes us */
			if (q->error != NULL) {
				ts->error = xstrdup(q->error);
				stream_abort(ts->st,
				    TERN__ERROR_CODE__ERROR_INTERNAL, "%s",
				    q->error);	/* calls tree_send_end */
				return;
			}
			ts->finishing = 1;
			stream_finish(ts->st);
			return;
		}
		/* Only the loop takes chunks off, and the walker only writes
		 * beyond len: c->data[off..len) is stable unlocked. */
		offered = len - c->off;
		n = offered != 0 ? stream_send(ts->st, c->data + c->off,
		    offered) : 0;
		ts->sent += n;
		uv_mutex_lock(&q->lock);
		c->off += n;
		q->bytes -= n;
		if ((empty = c->off == c->len))
			tree_queue_pop(q);
		uv_cond_signal(&q->cond);
		uv_mutex_unlock(&q->lock);
		if (empty)
			free(c);
		else if (n < offered || offered == 0)
			return;		/* on_writable when there is room */
	}
}

static void
tree_send_writable(struct stream *st)
{
	tree_send_pump(stream_data(st));
}

static void
tree_send_wake(uv_async_t *h)
{
	tree_send_pump(h->data);
}

static const struct stream_ops tree_send_ops = {
	.on_writable = tree_send_writable,
	.on_end = tree_send_end,
};

static void
tree_send_freed(uv_handle_t *h)
{
	free(h->data);
}

struct tree_send *
tree_send(uv_loop_t *loop, struct stream_mux *mux, const char *dir,
    const char *name, struct ratelimit *limit, const struct tree_index *since,
    struct tree_index **out_index, tree_done_cb cb, void *arg, char **cause)
{
	struct tree_send	*ts;
	struct tree_scan	*scan;

	if (out_index != NULL)
		*out_index = NULL;
	if ((scan = tree_scan_new(dir, since, cause)) == NULL)
		return NULL;
	ts = xcalloc(1, sizeof *ts);
	ts->scan = scan;
	ts->out_index = out_index;
	ts->cb = cb;
	ts->arg = arg;
	ts->start = now_ns();
	tree_queue_init(&ts->q);
	if (uv_async_init(loop, &ts->async, tree_send_wake) != 0)
		fatalx("cannot create an async handle");
	ts->async.data = ts;
	ts->st = stream_open(mux, TREE_STREAM_KIND, name, 0, &tree_send_ops,
	    ts);
	if (ts->st == NULL) {
		set_cause(cause, "%s: no free stream channel", dir);
		goto fail;
	}
	stream_set_limit(ts->st, limit);
	if (uv_thread_create(&ts->thread, tree_send_thread, ts) != 0) {
		set_cause(cause, "%s: cannot start a thread", dir);
		ts->joined = 1;
		stream_set_ops(ts->st, NULL, NULL);
		stream_abort(ts->st, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "cannot start a thread");
		goto fail;
	}
	log_debug("%s: sending as %s (%s)", dir, name, since != NULL ?
	    "delta" : "full");
	return ts;

fail:
	tree_scan_free(scan);
	tree_queue_free(&ts->q);
	ts->async.data = ts;
	uv_close((uv_handle_t *)&ts->async, tree_send_freed);
	return NULL;
}

uint64_t
tree_send_bytes(const struct tree_send *ts)
{
	return ts->sent;
}

void
tree_send_cancel(struct tree_send *ts)
{
	ts->cancelled = 1;
	if (ts->st != NULL)
		stream_abort(ts->st, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "transfer cancelled");	/* calls tree_send_end */
}

/* --- receiving ------------------------------------------------------------- */

static void
tree_recv_thread(void *arg)
{
	struct tree_recv	*tr = arg;
	struct tree_queue	*q = &tr->q;
	struct tree_chunk	*c;
	char			*cause = NULL;
	int			 rc = 0;

	for (;;) {
		uv_mutex_lock(&q->lock);
		while (q->head == NULL && !q->eof && !q->stop)
			uv_cond_wait(&q->cond, &q->lock);
		if (q->stop) {
			uv_mutex_unlock(&q->lock);
			break;
		}
		c = tree_queue_pop(q);
		uv_mutex_unlock(&q->lock);
		if (c == NULL) {
			rc = tree_apply_end(tr->ap, &cause);
			break;
		}
		rc = tree_apply_feed(tr->ap, c->data, c->len, &cause);
		uv_mutex_lock(&q->lock);
		q->consumed += c->len;
		uv_mutex_unlock(&q->lock);
		free(c);
		if (rc != 0)
			break;
		uv_async_send(&tr->async);
	}
	uv_mutex_lock(&q->lock);
	q->done = 1;
	q->error = cause;
	uv_mutex_unlock(&q->lock);
	uv_async_send(&tr->async);
}

static void
tree_recv_closed(uv_handle_t *h)
{
	struct tree_recv	*tr = h->data;
	struct tree_stats	 stats;
	const char		*error;

	tree_apply_stats(tr->ap, &stats);
	/* The caller reports it: once, with its migration's name. */
	error = tr->q.error != NULL ? tr->q.error : tr->error;
	tr->cb(tr->arg, &stats, error);
	tree_apply_free(tr->ap);
	tree_queue_free(&tr->q);
	free(tr->error);
	free(tr);
}

static void
tree_recv_wake(uv_async_t *h)
{
	struct tree_recv	*tr = h->data;
	struct tree_queue	*q = &tr->q;
	size_t			 consumed;
	int			 done;

	uv_mutex_lock(&q->lock);
	consumed = q->consumed;
	q->consumed = 0;
	done = q->done;
	uv_mutex_unlock(&q->lock);
	if (tr->st != NULL && consumed != 0)
		stream_consumed(tr->st, consumed);
	if (!done || tr->joined)
		return;
	uv_thread_join(&tr->thread);
	tr->joined = 1;
	if (tr->st != NULL) {
		/* The applier failed before the stream ended. */
		stream_abort(tr->st, TERN__ERROR_CODE__ERROR_RESOURCE, "%s",
		    q->error != NULL ? q->error : "tree receiver stopped");
	}
	uv_close((uv_handle_t *)&tr->async, tree_recv_closed);
}

static void
tree_recv_data(struct stream *st, const uint8_t *p, size_t len)
{
	struct tree_recv	*tr = stream_data(st);

	/* Bounded by the credit: granted only for what was applied. */
	uv_mutex_lock(&tr->q.lock);
	tree_queue_push(&tr->q, p, len);
	uv_cond_signal(&tr->q.cond);
	uv_mutex_unlock(&tr->q.lock);
}

static void
tree_recv_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct tree_recv	*tr = stream_data(st);

	(void)bytes;
	tr->st = NULL;
	uv_mutex_lock(&tr->q.lock);
	if (error != NULL) {
		if (tr->error == NULL)
			tr->error = xstrdup(error);
		tr->q.stop = 1;
	} else
		tr->q.eof = 1;
	uv_cond_signal(&tr->q.cond);
	uv_mutex_unlock(&tr->q.lock);
}

static const struct stream_ops tree_recv_ops = {
	.on_data = tree_recv_data,
	.on_end = tree_recv_end,
};

int
tree_recv(uv_loop_t *loop, struct stream *st, const char *dir,
    tree_done_cb cb, void *arg, char **cause)
{
	struct tree_recv	*tr;
	struct tree_apply	*ap;

	if ((ap = tree_apply_new(dir, cause)) == NULL)
		return -1;
	tr = xcalloc(1, sizeof *tr);
	tr->ap = ap;
	tr->st = st;
	tr->cb = cb;
	tr->arg = arg;
	tree_queue_init(&tr->q);
	if (uv_async_init(loop, &tr->async, tree_recv_wake) != 0)
		fatalx("cannot create an async handle");
	tr->async.data = tr;
	if (uv_thread_create(&tr->thread, tree_recv_thread, tr) != 0) {
		set_cause(cause, "%s: cannot start a thread", dir);
		tree_apply_free(ap);
		tree_queue_free(&tr->q);
		uv_close((uv_handle_t *)&tr->async, tree_send_freed);
		return -1;
	}
	stream_set_ops(st, &tree_recv_ops, tr);
	return 0;
}

/* --- durability ------------------------------------------------------------ */

static int
tree_sync_at(int dfd, const char *path, char **cause)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*sub;
	int		 fd, rc = 0;

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		xasprintf(&sub, "%s/%s", path, de->d_name);
		fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (fd == -1) {
			set_cause(cause, "%s: %s", sub, strerror(errno));
			rc = -1;
		} else {
			if (S_ISDIR(st.st_mode))
				rc = tree_sync_at(fd, sub, cause);
			else if (fsync(fd) != 0) {
				set_cause(cause, "%s: fsync: %s", sub,
				    strerror(errno));
				rc = -1;
			}
			close(fd);
		}
		free(sub);
	}
	closedir(d);
	if (rc == 0 && fsync(dfd) != 0) {
		set_cause(cause, "%s: fsync: %s", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

int
tree_sync(const char *dir, char **cause)
{
	int	fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return -1;
	}
	rc = tree_sync_at(fd, dir, cause);
	close(fd);
	return rc;
}
