#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_MODULE "migrate.relay"
#include "daemon/log.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"

/* One read from the local socket; a stream takes it in frames. */
#define RELAY_CHUNK	(1u << 20)
/* At most this much is read, or written, in one turn of the loop (the
 * stream's credit, or the socket's buffer, may allow more): the loop's
 * other callbacks wait meanwhile. */
#define RELAY_TURN	(4u << 20)

/* Bytes from the peer the local socket did not take yet, packed into
 * buffers of RELAY_QUEUE_BUF that are used again once written out: a
 * reader slower than the stream (a page server landing pages on disk)
 * queues nearly every byte, and copying into freshly allocated memory
 * costs a page fault per 4 KiB on top of the copy. */
#define RELAY_QUEUE_BUF		(1u << 20)
/* Spare buffers kept for the next bytes; the stream's credit bounds the
 * rest of the queue. */
#define RELAY_QUEUE_SPARE	4

struct relay_chunk {
	struct relay_chunk	*next;
	size_t			 len, off;	/* of RELAY_QUEUE_BUF */
	uint8_t			 data[];
};

struct relay {
	uv_poll_t	 poll;
	int		 fd;
	int		 events;	/* what poll waits for now */
	char		*what;

	struct stream	*out;		/* ours: socket -> peer */
	int		 out_open;	/* accepted by the peer */
	int		 out_eof;	/* the socket said EOF; finished */
	int		 out_ended;	/* the peer confirmed (or broke) */
	int		 out_paused;	/* relay_pause_out */
	uint8_t		*obuf;		/* read, not yet taken by the stream */
	size_t		 olen, ooff;

	struct stream	*in;		/* theirs: peer -> socket */
	int		 in_ended;
	struct relay_chunk *ihead;	/* arrived, not yet written */
	struct relay_chunk **itail;
	struct relay_chunk *ispare;	/* written out, for reuse */
	unsigned	 nspare;
	relay_gate_fn	 gate;		/* set: the peer's bytes are gated */
	void		*gate_arg;
	uint8_t		*gbuf;		/* ... held back by it */
	size_t		 glen;
	relay_tap_out_fn tap_out;	/* set: watches what crosses */
	relay_tap_in_fn	 tap_in;
	void		*tap_arg;

	uint64_t	 bytes_out, bytes_in;
	int		 done;		/* cb was called */
	int		 failing;
	char		*fail_text;	/* why, for streams ended after */
	int		 freeing;
	relay_done_cb	 cb;
	void		*arg;
};

static void	relay_update(struct relay *);

static void
relay_finish(struct relay *r, const char *error)
{
	if (r->done)
		return;
	r->done = 1;
	if (error != NULL)
		log_warnx("%s: relay broken: %s", r->what, error);
	else
		log_debug("%s: relay done (%llu bytes out, %llu in)", r->what,
		    (unsigned long long)r->bytes_out,
		    (unsigned long long)r->bytes_in);
	r->cb(r->arg, error);
}

static void
relay_fail(struct relay *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Broken either way: stop both streams; the socket stays open. */
static void
relay_fail(struct relay *r, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	r->failing = 1;
	r->fail_text = xstrdup(text);
	r->events = 0;
	uv_poll_stop(&r->poll);
	/* The owner hears first: what it tells the peer (why its process
	 * died, say) goes out before the streams' end.  It may free the
	 * relay (r stays until the loop closes its handle). */
	relay_finish(r, text);
	if (!r->freeing && r->out != NULL && !r->out_ended)
		stream_abort(r->out, TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s",
		    text);
	if (!r->freeing && r->in != NULL && !r->in_ended)
		stream_abort(r->in, TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s",
		    text);
	free(text);
}

/* The peer's side ended and all of it reached the socket: pass the end. */
static int
relay_in_drained(struct relay *r)
{
	return r->in_ended && r->ihead == NULL && r->gate == NULL;
}

static void
relay_check_done(struct relay *r)
{
	if (r->out_ended && relay_in_drained(r))
		relay_finish(r, NULL);
}

/* Hand what was read to the stream; 0 when it took everything. */
static int
relay_push(struct relay *r)
{
	size_t	n;

	while (r->ooff < r->olen) {
		n = stream_send(r->out, r->obuf + r->ooff, r->olen - r->ooff);
		if (n == 0)
			return -1;	/* on_writable resumes */
		r->ooff += n;
		r->bytes_out += n;
	}
	r->ooff = r->olen = 0;
	return 0;
}

static void
relay_read(struct relay *r)
{
	ssize_t	n;
	size_t	turn = 0;

	for (;;) {
		if (relay_push(r) != 0 || r->out_paused)
			break;
		n = read(r->fd, r->obuf, RELAY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0 && errno != ECONNRESET) {
			relay_fail(r, "reading the local socket: %s",
			    strerror(errno));
			return;
		}
		if (n <= 0) {
			/* The local process is done talking. */
			r->out_eof = 1;
			stream_finish(r->out);
			break;
		}
		r->olen = (size_t)n;
		if (r->tap_out != NULL)
			r->tap_out(r->tap_arg, r->obuf, r->olen);
		if ((turn += (size_t)n) >= RELAY_TURN) {
			/* The rest next turn (poll is level-triggered). */
			(void)relay_push(r);
			break;
		}
	}
	relay_update(r);
}

/* The oldest queue buffer is written out: keep it for reuse. */
static void
relay_queue_pop(struct relay *r)
{
	struct relay_chunk	*ch = r->ihead;

	if ((r->ihead = ch->next) == NULL)
		r->itail = &r->ihead;
	if (r->nspare < RELAY_QUEUE_SPARE) {
		ch->next = r->ispare;
		r->ispare = ch;
		r->nspare++;
	} else
		free(ch);
}

/* The newest queue buffer, the one filling (NULL: the queue is empty). */
static struct relay_chunk *
relay_queue_last(struct relay *r)
{
	if (r->ihead == NULL)
		return NULL;
	return (struct relay_chunk *)((char *)r->itail -
	    offsetof(struct relay_chunk, next));
}

/* Queue bytes the socket did not take, behind what waits already. */
static void
relay_queue_add(struct relay *r, const uint8_t *data, size_t len)
{
	struct relay_chunk	*ch;
	size_t			 n;

	while (len > 0) {
		if ((ch = relay_queue_last(r)) == NULL ||
		    ch->len == RELAY_QUEUE_BUF) {
			if ((ch = r->ispare) != NULL) {
				r->ispare = ch->next;
				r->nspare--;
			} else
				ch = xmalloc(sizeof *ch + RELAY_QUEUE_BUF);
			ch->next = NULL;
			ch->len = ch->off = 0;
			*r->itail = ch;
			r->itail = &ch->next;
		}
		if ((n = RELAY_QUEUE_BUF - ch->len) > len)
			n = len;
		memcpy(ch->data + ch->len, data, n);
		ch->len += n;
		data += n;
		len -= n;
	}
}

/* Write what the peer sent; acknowledge only what the socket took. */
static void
relay_write(struct relay *r)
{
	struct relay_chunk	*ch;
	ssize_t			 n;
	size_t			 turn = 0;

	/* The rest next turn (poll is level-triggered). */
	while ((ch = r->ihead) != NULL && turn < RELAY_TURN) {
		n = send(r->fd, ch->data + ch->off, ch->len - ch->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			relay_fail(r, "writing the local socket: %s",
			    strerror(errno));
			return;
		}
		ch->off += (size_t)n;
		turn += (size_t)n;
		r->bytes_in += (size_t)n;
		if (r->in != NULL && !r->in_ended)
			stream_consumed(r->in, (size_t)n);
		if (ch->off == ch->len)
			relay_queue_pop(r);
	}
	if (relay_in_drained(r))
		shutdown(r->fd, SHUT_WR);
	relay_update(r);
	relay_check_done(r);
}

static void
relay_on_poll(uv_poll_t *h, int status, int events)
{
	struct relay	*r = h->data;

	if (status < 0) {
		/* libuv says EBADF for POLLERR: the other end is gone. */
		relay_fail(r, "polling the local socket: %s", status ==
		    UV_EBADF ? "its process closed it or died" :
		    uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
		relay_write(r);
	if (!r->done && (events & (UV_READABLE | UV_DISCONNECT)))
		relay_read(r);
}

/* Poll for reading only while the stream can take more, for writing only
 * while bytes wait. */
static void
relay_update(struct relay *r)
{
	int	ev = 0;

	if (r->done || r->freeing)
		return;
	if (r->out != NULL && r->out_open && !r->out_eof && r->olen == 0 &&
	    !r->out_paused)
		ev |= UV_READABLE;
	if (r->ihead != NULL)
		ev |= UV_WRITABLE;
	if (ev == r->events)
		return;
	r->events = ev;
	if (ev == 0)
		uv_poll_stop(&r->poll);
	else
		uv_poll_start(&r->poll, ev, relay_on_poll);
}

static void
relay_out_writable(struct stream *st)
{
	struct relay	*r = stream_data(st);

	r->out_open = 1;
	if (r->olen > 0 && relay_push(r) != 0)
		return;
	relay_update(r);
}

static void
relay_out_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct relay	*r = stream_data(st);

	r->out = NULL;
	r->out_ended = 1;
	if (r->freeing || r->failing)
		return;
	if (error != NULL) {
		relay_fail(r, "%s", error);
		return;
	}
	relay_check_done(r);
}

static const struct stream_ops relay_out_ops = {
	.on_writable = relay_out_writable,
	.on_end = relay_out_end,
};

/* Towards the local socket: straight through, or queued behind what
 * waits already. */
static void
relay_in_pass(struct relay *r, const uint8_t *data, size_t len)
{
	ssize_t			 n = 0;

	if (len == 0)
		return;
	/* Straight through when nothing waits before it. */
	if (r->ihead == NULL) {
		n = send(r->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			relay_fail(r, "writing the local socket: %s",
			    strerror(errno));
			return;
		}
		if (n < 0)
			n = 0;
		r->bytes_in += (size_t)n;
		if (r->in != NULL && !r->in_ended)
			stream_consumed(r->in, (size_t)n);
	}
	/* Bounded by the credit we granted, not by the peer. */
	if ((size_t)n < len)
		relay_queue_add(r, data + n, len - (size_t)n);
}

static void
relay_in_data(struct stream *st, const uint8_t *data, size_t len)
{
	struct relay	*r = stream_data(st);
	size_t		 k;

	if (r->done)
		return;
	if (r->tap_in != NULL)
		r->tap_in(r->tap_arg, data, len);
	if (r->gate == NULL) {
		relay_in_pass(r, data, len);
		relay_update(r);
		return;
	}
	/* Gated: what it keeps is not acknowledged, so the peer's credit
	 * bounds it. */
	if (r->glen == 0) {
		k = r->gate(r->gate_arg, data, len);
		relay_in_pass(r, data, k);
		data += k;
		len -= k;
	}
	if (len > 0) {
		r->gbuf = xrealloc(r->gbuf, r->glen + len);
		memcpy(r->gbuf + r->glen, data, len);
		r->glen += len;
		k = r->gate(r->gate_arg, r->gbuf, r->glen);
		relay_in_pass(r, r->gbuf, k);
		memmove(r->gbuf, r->gbuf + k, r->glen - k);
		r->glen -= k;
	}
	relay_update(r);
}

static void
relay_in_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct relay	*r = stream_data(st);

	r->in = NULL;
	r->in_ended = 1;
	if (r->freeing || r->failing)
		return;
	if (error != NULL) {
		relay_fail(r, "%s", error);
		return;
	}
	if (relay_in_drained(r))
		shutdown(r->fd, SHUT_WR);	/* the peer's side is done */
	relay_check_done(r);
}

static const struct stream_ops relay_in_ops = {
	.on_data = relay_in_data,
	.on_end = relay_in_end,
};

struct relay *
relay_new(uv_loop_t *loop, int fd, const char *what, relay_done_cb cb,
    void *arg)
{
	struct relay	*r;
	int		 fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	r = xcalloc(1, sizeof *r);
	r->fd = fd;
	r->what = xstrdup(what);
	r->obuf = xmalloc(RELAY_CHUNK);
	r->itail = &r->ihead;
	r->cb = cb;
	r->arg = arg;
	uv_poll_init(loop, &r->poll, fd);
	r->poll.data = r;
	return r;
}

int
relay_open(struct relay *r, struct stream_mux *mux, const char *name,
    struct ratelimit *limit, char **cause)
{
	if (mux == NULL) {
		set_cause(cause, "%s: the peer is not connected", r->what);
		return -1;
	}
	r->out = stream_open(mux, RELAY_STREAM_KIND, name, 0, &relay_out_ops, r);
	if (r->out == NULL) {
		set_cause(cause, "%s: no free stream channel", r->what);
		return -1;
	}
	stream_set_limit(r->out, limit);
	return 0;
}

int
relay_attach(struct relay *r, struct stream *st, char **cause)
{
	if (r->in != NULL || r->in_ended || r->done) {
		/* A second stream for one direction: a confused or hostile
		 * peer.  The first one stays the relay's. */
		set_cause(cause, "%s: the peer's direction is open already",
		    r->what);
		return -1;
	}
	r->in = st;
	stream_set_ops(st, &relay_in_ops, r);
	return 0;
}

void
relay_set_gate(struct relay *r, relay_gate_fn gate, void *arg)
{
	r->gate = gate;
	r->gate_arg = arg;
}

void
relay_set_tap(struct relay *r, relay_tap_out_fn out, relay_tap_in_fn in,
    void *arg)
{
	r->tap_out = out;
	r->tap_in = in;
	r->tap_arg = arg;
}

void
relay_gate_open(struct relay *r)
{
	if (r->gate == NULL || r->done)
		return;
	r->gate = NULL;
	if (r->glen > 0)
		log_debug("%s: gate open, %zu bytes held back go through",
		    r->what, r->glen);
	relay_in_pass(r, r->gbuf, r->glen);
	free(r->gbuf);
	r->gbuf = NULL;
	r->glen = 0;
	if (relay_in_drained(r))
		shutdown(r->fd, SHUT_WR);
	relay_update(r);
	relay_check_done(r);
}

void
relay_pause_out(struct relay *r, int paused)
{
	r->out_paused = paused;
	relay_update(r);
}

size_t
relay_gate_held(const struct relay *r)
{
	return r->glen;
}

uint64_t
relay_bytes_out(const struct relay *r)
{
	return r->bytes_out;
}

uint64_t
relay_bytes_in(const struct relay *r)
{
	return r->bytes_in;
}

int
relay_peer_ended(const struct relay *r)
{
	return r->in_ended && !r->failing;
}

int
relay_local_fd(const struct relay *r)
{
	return r->fd;
}

static void
relay_closed(uv_handle_t *h)
{
	struct relay		*r = h->data;
	struct relay_chunk	*ch;

	free(r->obuf);
	free(r->gbuf);
	free(r->fail_text);
	while ((ch = r->ihead) != NULL) {
		r->ihead = ch->next;
		free(ch);
	}
	while ((ch = r->ispare) != NULL) {
		r->ispare = ch->next;
		free(ch);
	}
	free(r->what);
	free(r);
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	r->freeing = 1;
	r->done = 1;
	if (r->fail_text != NULL) {
		/* Broken, and freed by its owner as it heard: say why. */
		if (r->out != NULL && !r->out_ended)
			stream_abort(r->out, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
			    "%s", r->fail_text);
		if (r->in != NULL && !r->in_ended)
			stream_abort(r->in, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
			    "%s", r->fail_text);
	} else {
		if (r->out != NULL)
			stream_abort(r->out, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
			    "%s: relay closed", r->what);
		if (r->in != NULL)
			stream_abort(r->in, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
			    "%s: relay closed", r->what);
	}
	uv_poll_stop(&r->poll);
	close(r->fd);
	uv_close((uv_handle_t *)&r->poll, relay_closed);
}
