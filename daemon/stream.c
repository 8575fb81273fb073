#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "net.stream"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "daemon/stream.h"
#include "daemon/xmalloc.h"

/* Largest data frame a stream sends: big enough to amortise framing and
 * TLS record work, small enough to keep latency for other channels. */
#define STREAM_CHUNK	(256u << 10)

enum stream_state {
	STREAM_OPENING,		/* sender: waiting for the first credit */
	STREAM_OPEN,
	STREAM_FINISHING,	/* sender: sent StreamEnd, waiting for the answer */
};

struct stream {
	struct stream_mux		*mux;
	struct stream			*next;
	uint16_t			 channel;
	int				 outgoing;
	enum stream_state		 state;
	const struct stream_ops		*ops;
	void				*data;
	uint64_t			 bytes;		/* sent or received */
	uint64_t			 credit;	/* sender: may still send */
	uint64_t			 granted;	/* receiver: total granted */
	uint64_t			 unacked;	/* receiver: consumed, not yet granted */
	struct ratelimit		*limit;		/* sender: shared with others */
	struct ratelimit_waiter		 lw;		/* ... waiting for its tokens */
	struct stream_tally		*tally;		/* receiver: its owner's count */
};

struct stream_tally {
	int		refs;
	unsigned	streams;	/* open now */
	uint64_t	bytes;
};

struct stream_mux {
	struct conn		*conn;
	uint32_t		 window;
	stream_accept_fn	 accept;
	void			*data;
	struct stream		*streams;
	uint16_t		 next_channel;
	uint16_t		 peer_high;	/* highest channel the peer opened */
	uint64_t		 bytes_in;	/* data received, every stream */
	unsigned		 drain_next;	/* which stream a drain wakes first */
};

struct stream_mux *
stream_mux_new(struct conn *conn, uint32_t window, stream_accept_fn accept,
    void *data)
{
	struct stream_mux	*mux;

	mux = xcalloc(1, sizeof *mux);
	mux->conn = conn;
	mux->window = window;
	mux->accept = accept;
	mux->data = data;
	mux->next_channel = conn_is_client(conn) ? 1 : 2;
	return mux;
}

void *
stream_mux_data(const struct stream_mux *mux)
{
	return mux->data;
}

static struct stream *
stream_find(struct stream_mux *mux, uint16_t channel)
{
	struct stream	*st;

	for (st = mux->streams; st != NULL; st = st->next)
		if (st->channel == channel)
			return st;
	return NULL;
}

/* Channels we open have our parity; the peer's have the other. */
static int
stream_is_ours(const struct stream_mux *mux, uint16_t channel)
{
	return (channel & 1) == (conn_is_client(mux->conn) ? 1 : 0);
}

static struct stream *
stream_new(struct stream_mux *mux, uint16_t channel, int outgoing)
{
	struct stream	*st;

	st = xcalloc(1, sizeof *st);
	st->mux = mux;
	st->channel = channel;
	st->outgoing = outgoing;
	st->state = outgoing ? STREAM_OPENING : STREAM_OPEN;
	st->next = mux->streams;
	mux->streams = st;
	return st;
}

/* Unlink, tell the owner, free. */
static void
stream_end(struct stream *st, const char *error)
{
	struct stream_mux	*mux = st->mux;
	struct stream		**pp;

	for (pp = &mux->streams; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	if (st->limit != NULL) {
		ratelimit_cancel(st->limit, &st->lw);
		ratelimit_unref(st->limit);
		st->limit = NULL;
	}
	if (error != NULL)
		log_debug("%s: stream %u ended: %s", conn_label(mux->conn),
		    st->channel, error);
	if (st->ops != NULL && st->ops->on_end != NULL)
		st->ops->on_end(st, st->bytes, error);
	if (st->tally != NULL)
		st->tally->streams--;
	stream_tally_unref(st->tally);
	free(st);
}

struct stream_tally *
stream_tally_new(void)
{
	struct stream_tally	*t;

	t = xcalloc(1, sizeof *t);
	t->refs = 1;
	return t;
}

void
stream_tally_unref(struct stream_tally *t)
{
	if (t != NULL && --t->refs == 0)
		free(t);
}

uint64_t
stream_tally_bytes(const struct stream_tally *t)
{
	return t != NULL ? t->bytes : 0;
}

unsigned
stream_tally_streams(const struct stream_tally *t)
{
	return t != NULL ? t->streams : 0;
}

void
stream_set_tally(struct stream *st, struct stream_tally *t)
{
	if (st->tally != NULL)
		st->tally->streams--;
	stream_tally_unref(st->tally);
	if ((st->tally = t) != NULL) {
		t->refs++;
		t->streams++;
	}
}

void
stream_mux_free(struct stream_mux *mux, const char *cause)
{
	if (mux == NULL)
		return;
	while (mux->streams != NULL)
		stream_end(mux->streams, cause != NULL ? cause :
		    "connection closed");
	free(mux);
}

static void
stream_send_end(struct stream *st, int code, const char *error)
{
	Envelope	env;
	Tern__StreamEnd	end = TERN__STREAM_END__INIT;
	Tern__Error	err = TERN__ERROR__INIT;

	msg_init(&env, 0);
	end.channel = st->channel;
	end.bytes = st->bytes;
	if (error != NULL) {
		err.code = code;
		err.text = (char *)error;
		end.error = &err;
	}
	env.body_case = TERN__ENVELOPE__BODY_STREAM_END;
	env.stream_end = &end;
	conn_send_msg(st->mux->conn, &env);
}

static void
stream_send_window(struct stream *st, uint32_t credit)
{
	Envelope		env;
	Tern__StreamWindow	win = TERN__STREAM_WINDOW__INIT;

	msg_init(&env, 0);
	win.channel = st->channel;
	win.credit = credit;
	env.body_case = TERN__ENVELOPE__BODY_STREAM_WINDOW;
	env.stream_window = &win;
	st->granted += credit;
	conn_send_msg(st->mux->conn, &env);
}

struct stream *
stream_open(struct stream_mux *mux, Tern__StreamKind kind, const char *name,
    uint64_t size, const struct stream_ops *ops, void *data)
{
	struct stream		*st;
	Envelope		 env;
	Tern__StreamOpen	 open = TERN__STREAM_OPEN__INIT;
	uint16_t		 ch;
	int			 tries;

	for (tries = 0; tries < 32768; tries++) {
		ch = mux->next_channel;
		mux->next_channel += 2;
		if (mux->next_channel < 3)	/* wrapped: skip channel 0 */
			mux->next_channel = conn_is_client(mux->conn) ? 1 : 2;
		if (stream_find(mux, ch) == NULL)
			break;
	}
	if (tries == 32768)
		return NULL;
	st = stream_new(mux, ch, 1);
	st->ops = ops;
	st->data = data;

	msg_init(&env, 0);
	open.channel = ch;
	open.kind = kind;
	open.name = (char *)name;
	if (size != 0) {
		open.has_size = 1;
		open.size = size;
	}
	env.body_case = TERN__ENVELOPE__BODY_STREAM_OPEN;
	env.stream_open = &open;
	conn_send_msg(mux->conn, &env);
	return st;
}

void
stream_set_ops(struct stream *st, const struct stream_ops *ops, void *data)
{
	st->ops = ops;
	st->data = data;
}

void *
stream_data(const struct stream *st)
{
	return st->data;
}

uint16_t
stream_channel(const struct stream *st)
{
	return st->channel;
}

uint64_t
stream_mux_bytes_in(const struct stream_mux *mux)
{
	return mux->bytes_in;
}

void
stream_set_limit(struct stream *st, struct ratelimit *rl)
{
	if (st->limit == rl || !st->outgoing)
		return;
	if (st->limit != NULL) {
		ratelimit_cancel(st->limit, &st->lw);
		ratelimit_unref(st->limit);
	}
	if ((st->limit = rl) != NULL)
		ratelimit_ref(rl);
}

/* Its tokens are due.  Blocked on credit or connection room as well, it
 * is not called here: the window or the drain calls it. */
static void
stream_limit_ready(void *arg)
{
	struct stream	*st = arg;

	if (st->state == STREAM_OPEN && st->credit > 0 && st->ops != NULL &&
	    st->ops->on_writable != NULL && conn_writable(st->mux->conn))
		st->ops->on_writable(st);
}

size_t
stream_send(struct stream *st, const void *buf, size_t len)
{
	struct conn	*conn = st->mux->conn;
	size_t		 n = len, want;

	if (st->state != STREAM_OPEN || !st->outgoing || !conn_writable(conn))
		return 0;
	if (n > st->credit)
		n = (size_t)st->credit;
	if (n > STREAM_CHUNK)
		n = STREAM_CHUNK;
	if (n > conn_max_frame(conn))
		n = conn_max_frame(conn);
	if (n > conn_turn_room(conn))
		n = conn_turn_room(conn);	/* on_writable in the next turn */
	if (n == 0)
		return 0;
	if (st->limit != NULL) {
		want = n;
		/* Short because of the limit: on_writable once tokens are
		 * due, as the caller expects after a short count. */
		if ((n = ratelimit_take(st->limit, want)) < want)
			ratelimit_wait(st->limit, &st->lw, want - n,
			    stream_limit_ready, st);
		if (n == 0)
			return 0;
	}
	if (conn_send_data(conn, st->channel, buf, n) != 0)
		return 0;
	st->credit -= n;
	st->bytes += n;
	return n;
}

void
stream_finish(struct stream *st)
{
	if (!st->outgoing || st->state == STREAM_FINISHING)
		return;
	st->state = STREAM_FINISHING;
	stream_send_end(st, 0, NULL);
}

void
stream_abort(struct stream *st, int code, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	stream_send_end(st, code, text);
	stream_end(st, text);
	free(text);
}

void
stream_consumed(struct stream *st, size_t n)
{
	st->unacked += n;
	/* Grant in quarters of the window: few messages, no stalls. */
	if (st->unacked >= st->mux->window / 4) {
		stream_send_window(st, (uint32_t)st->unacked);
		st->unacked = 0;
	}
}

static void
stream_violation(struct stream_mux *mux, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
stream_violation(struct stream_mux *mux, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	log_warnx("%s: %s; closing the connection", conn_label(mux->conn), text);
	conn_send_error_close(mux->conn, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "%s", text);
	free(text);
}

static void
stream_on_open(struct stream_mux *mux, const Tern__StreamOpen *m)
{
	struct stream	*st;
	char		*cause = NULL;

	if (m->channel == 0 || m->channel > UINT16_MAX ||
	    stream_is_ours(mux, (uint16_t)m->channel) ||
	    stream_find(mux, (uint16_t)m->channel) != NULL) {
		stream_violation(mux, "stream open on bad or busy channel %u",
		    m->channel);
		return;
	}
	st = stream_new(mux, (uint16_t)m->channel, 0);
	if (st->channel > mux->peer_high)
		mux->peer_high = st->channel;
	if (mux->accept(mux, st, m->kind, m->name != NULL ? m->name : "",
	    m->has_size ? m->size : 0, &cause) != 0) {
		log_info("%s: refused %s stream %u: %s", conn_label(mux->conn),
		    msg_stream_kind_name(m->kind), st->channel, cause);
		stream_send_end(st, TERN__ERROR_CODE__ERROR_BAD_REQUEST, cause);
		st->ops = NULL;
		stream_end(st, cause);
		free(cause);
		return;
	}
	stream_send_window(st, mux->window);
}

static void
stream_on_window(struct stream_mux *mux, const Tern__StreamWindow *m)
{
	struct stream	*st;

	if (m->channel > UINT16_MAX || !stream_is_ours(mux, (uint16_t)m->channel))
		goto bad;
	if ((st = stream_find(mux, (uint16_t)m->channel)) == NULL)
		return;	/* ended here already */
	st->credit += m->credit;
	if (st->credit > (uint64_t)UINT32_MAX * 4)
		goto bad;
	if (st->state == STREAM_OPENING)
		st->state = STREAM_OPEN;
	if (st->state == STREAM_OPEN && st->ops->on_writable != NULL &&
	    conn_writable(mux->conn))
		st->ops->on_writable(st);
	return;
bad:
	stream_violation(mux, "bad stream window for channel %u", m->channel);
}

static void
stream_on_end(struct stream_mux *mux, const Tern__StreamEnd *m)
{
	struct stream	*st;
	char		*why = NULL;

	if (m->channel == 0 || m->channel > UINT16_MAX) {
		stream_violation(mux, "stream end on bad channel %u", m->channel);
		return;
	}
	if ((st = stream_find(mux, (uint16_t)m->channel)) == NULL)
		return;	/* aborted here while the peer ended it */
	if (m->error != NULL) {
		xasprintf(&why, "peer ended the stream: %s", m->error->text);
		stream_end(st, why);
		free(why);
		return;
	}
	if (st->outgoing) {
		/* The receiver's answer to our StreamEnd. */
		if (st->state != STREAM_FINISHING)
			xasprintf(&why, "peer ended stream %u early", st->channel);
		else if (m->bytes != st->bytes)
			xasprintf(&why, "peer received %llu of %llu bytes",
			    (unsigned long long)m->bytes,
			    (unsigned long long)st->bytes);
		stream_end(st, why);
		free(why);
		return;
	}
	if (m->bytes != st->bytes) {
		xasprintf(&why, "sender sent %llu bytes, %llu arrived",
		    (unsigned long long)m->bytes, (unsigned long long)st->bytes);
		stream_send_end(st, TERN__ERROR_CODE__ERROR_BAD_REQUEST, why);
	} else
		stream_send_end(st, 0, NULL);
	stream_end(st, why);
	free(why);
}

int
stream_mux_msg(struct stream_mux *mux, const Envelope *env)
{
	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_STREAM_OPEN:
		stream_on_open(mux, env->stream_open);
		break;
	case TERN__ENVELOPE__BODY_STREAM_WINDOW:
		stream_on_window(mux, env->stream_window);
		break;
	case TERN__ENVELOPE__BODY_STREAM_END:
		stream_on_end(mux, env->stream_end);
		break;
	default:
		return 0;
	}
	return conn_closing(mux->conn) ? -1 : 1;
}

void
stream_mux_data_frame(struct stream_mux *mux, uint16_t channel,
    const uint8_t *data, size_t len)
{
	struct stream	*st;

	if (stream_is_ours(mux, channel)) {
		stream_violation(mux, "data on our own channel %u", channel);
		return;
	}
	if ((st = stream_find(mux, channel)) == NULL) {
		if (channel > mux->peer_high) {
			stream_violation(mux, "data on unopened channel %u",
			    channel);
			return;
		}
		/* In flight when we aborted the stream: drop it. */
		log_debug("%s: %zu bytes for ended stream %u dropped",
		    conn_label(mux->conn), len, channel);
		return;
	}
	if (st->bytes + len > st->granted) {
		stream_violation(mux, "stream %u sent beyond its credit "
		    "(%llu granted)", channel, (unsigned long long)st->granted);
		return;
	}
	st->bytes += len;
	mux->bytes_in += len;
	if (st->tally != NULL)
		st->tally->bytes += len;
	if (st->ops != NULL && st->ops->on_data != NULL)
		st->ops->on_data(st, data, len);
	else
		stream_consumed(st, len);
}

void
stream_mux_drain(struct stream_mux *mux)
{
	struct stream	*st;
	uint16_t	 some[64], *channels = some;
	size_t		 n = 0, max = 64, i, start;

	/* Callbacks may end streams: collect channels, look each up again.
	 * Every one of them: streams that have nothing to send must not
	 * hide one that does. */
	for (st = mux->streams; st != NULL; st = st->next) {
		if (!st->outgoing || st->state != STREAM_OPEN || st->credit == 0)
			continue;
		if (n == max) {
			max *= 2;
			if (channels == some) {
				channels = xreallocarray(NULL, max,
				    sizeof *channels);
				memcpy(channels, some, sizeof some);
			} else
				channels = xreallocarray(channels, max,
				    sizeof *channels);
		}
		channels[n++] = st->channel;
	}
	/* The connection takes a turn's worth (daemon/conn.c) and stops:
	 * each drain starts one stream further, so no stream waits behind
	 * a bulk one for the whole of its transfer. */
	start = n > 0 ? mux->drain_next++ % n : 0;
	for (i = 0; i < n && conn_writable(mux->conn); i++) {
		st = stream_find(mux, channels[(start + i) % n]);
		if (st != NULL && st->ops->on_writable != NULL)
			st->ops->on_writable(st);
	}
	if (channels != some)
		free(channels);
}
