#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define LOG_MODULE "net.conn"
#include "daemon/conn.h"
#include "daemon/frame.h"
#include "daemon/log.h"
#include "daemon/tls.h"
#include "daemon/xmalloc.h"

/* Ciphertext read buffer: the socket read size for TLS connections. */
#define CONN_CIPHER_BUF		(256u << 10)
/* Until the peer is authenticated: one TLS record and its overhead. */
#define CONN_HANDSHAKE_BUF	(17u << 10)
/* Output beyond send_max * this means the peer is not reading at all. */
#define CONN_HARD_FACTOR	4
#define CONN_CLOSE_GRACE_MS	1000
/* Wake for a frame's rest only when that saves wakeups (conn_wake_at). */
#define CONN_WAKE_MIN		(64u << 10)
#define CONN_WAKE_MAX		CONN_TURN_BYTES

enum conn_state {
	CONN_CONNECTING,
	CONN_HANDSHAKE,
	CONN_READY,
	CONN_CLOSING,
};

struct conn_wreq {
	uv_write_t	 req;
	struct conn	*conn;
	size_t		 len;
	uint8_t		*data;		/* inline, or a TLS output buffer */
	int		 tls_buf;
	uint8_t		 inline_data[];
};

struct conn {
	uv_loop_t		*loop;
	const struct conn_ops	*ops;
	struct conn_limits	 limits;
	uint32_t		 send_max_frame;	/* min(ours, the peer's) */
	void			*data;
	char			*label;

	union {
		uv_tcp_t	 tcp;
		uv_pipe_t	 pipe;
	}			 sock;
	uv_stream_t		*stream;
	int			 is_tcp;
	int			 stream_open;	/* handle initialised */
	uv_connect_t		 connect_req;
	uv_shutdown_t		 shutdown_req;
	uv_timer_t		 timer;		/* handshake / close deadline */
	uv_idle_t		 turn;		/* the loop turned: go on */
	int			 handles_open;

	enum conn_state		 state;
	int			 client;
	int			 reading;
	int			 in_dispatch;
	int			 refs;		/* callbacks in progress */
	char			*close_cause;

	struct tls		*tls;
	struct frame_decoder	 dec;

	int			 send_unchecked; /* data frames without CRC */
	size_t			 queued;	/* bytes in outstanding writes */
	int			 above_high;
	size_t			 turn_bytes;	/* moved since the last turn */
	int			 turn_full;	/* ... CONN_TURN_BYTES: wait */
	int			 read_paused;	/* ... and reading stopped */
	size_t			 wake_at;	/* SO_RCVLOWAT now; 1 by default */
};

static void	conn_start_reading(struct conn *);
static void	conn_process(struct conn *);
static void	conn_finish_close(struct conn *);

struct conn *
conn_new(uv_loop_t *loop, const struct conn_ops *ops,
    const struct conn_limits *limits, const char *label, void *data)
{
	struct conn	*c;

	c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->ops = ops;
	c->limits = *limits;
	c->send_max_frame = limits->max_frame;
	c->data = data;
	c->label = xstrdup(label);
	c->state = CONN_CONNECTING;
	c->wake_at = 1;
	frame_decoder_init(&c->dec, limits->max_frame);
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_idle_init(loop, &c->turn);
	c->turn.data = c;
	c->handles_open = 2;
	return c;
}

void *
conn_data(const struct conn *c)
{
	return c->data;
}

void
conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

const char *
conn_label(const struct conn *c)
{
	return c->label;
}

void
conn_set_label(struct conn *c, const char *label)
{
	free(c->label);
	c->label = xstrdup(label);
}

const char *
conn_peer_name(const struct conn *c)
{
	return c->tls != NULL && c->state >= CONN_READY ? tls_peer_name(c->tls) :
	    NULL;
}

const char *
conn_peer_serial(const struct conn *c)
{
	return c->tls != NULL && c->state >= CONN_READY ?
	    tls_peer_serial(c->tls) : NULL;
}

const char *
conn_cipher(const struct conn *c)
{
	return c->tls != NULL ? tls_cipher(c->tls) : "none";
}

uint32_t
conn_max_frame(const struct conn *c)
{
	return c->send_max_frame;
}

void
conn_set_peer_max_frame(struct conn *c, uint32_t max)
{
	if (max < c->send_max_frame)
		c->send_max_frame = max;
}

void
conn_set_peer_unchecked(struct conn *c)
{
	if (c->tls != NULL)
		c->send_unchecked = 1;
}

int
conn_is_client(const struct conn *c)
{
	return c->client;
}

int
conn_closing(const struct conn *c)
{
	return c->state == CONN_CLOSING;
}

size_t
conn_turn_room(const struct conn *c)
{
	return c->turn_bytes < CONN_TURN_BYTES ? CONN_TURN_BYTES - c->turn_bytes :
	    0;
}

int
conn_writable(const struct conn *c)
{
	return c->state == CONN_READY && c->queued < c->limits.send_max &&
	    !c->turn_full;
}

int
conn_peer_cred(const struct conn *c, uid_t *uid, gid_t *gid, pid_t *pid)
{
	struct ucred	cred;
	socklen_t	len = sizeof cred;
	uv_os_fd_t	fd;

	if (c->is_tcp || !c->stream_open || uv_fileno((uv_handle_t *)c->stream,
	    &fd) != 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -1;
	*uid = cred.uid;
	*gid = cred.gid;
	*pid = cred.pid;
	return 0;
}

int
conn_peer_groups(const struct conn *c, gid_t *groups, int max)
{
	socklen_t	len = (socklen_t)((size_t)max * sizeof *groups);
	uv_os_fd_t	fd;

	if (c->is_tcp || !c->stream_open || uv_fileno((uv_handle_t *)c->stream,
	    &fd) != 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
		return -1;
	return (int)(len / sizeof *groups);
}

static void
conn_handle_closed(uv_handle_t *h)
{
	struct conn	*c = h->data;

	if (--c->handles_open == 0)
		conn_finish_close(c);
}

static void
conn_finish_close(struct conn *c)
{
	if (c->refs > 0)
		return;	/* a callback up the stack finishes it */
	if (c->ops->on_close != NULL)
		c->ops->on_close(c, c->close_cause);
	tls_free(c->tls);
	frame_decoder_free(&c->dec);
	free(c->close_cause);
	free(c->label);
	free(c);
}

static void
conn_close_handles(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&c->turn))
		uv_close((uv_handle_t *)&c->turn, conn_handle_closed);
	if (c->stream_open && !uv_is_closing((uv_handle_t *)c->stream))
		uv_close((uv_handle_t *)c->stream, conn_handle_closed);
}

static void
conn_close_timeout(uv_timer_t *t)
{
	conn_close_handles(t->data);
}

static void
conn_shutdown_done(uv_shutdown_t *req, int status)
{
	conn_close_handles(req->data);
}

static void
conn_vclose(struct conn *c, int graceful, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
conn_vclose(struct conn *c, int graceful, const char *fmt, va_list ap)
{
	if (c->state == CONN_CLOSING)
		return;
	if (fmt != NULL)
		xvasprintf(&c->close_cause, fmt, ap);
	c->state = CONN_CLOSING;
	if (c->stream_open && c->reading)
		uv_read_stop(c->stream);
	c->reading = 0;
	c->read_paused = 0;
	uv_timer_stop(&c->timer);
	uv_idle_stop(&c->turn);
	/* Let queued output (an Error, a last reply) go out, but not for long. */
	if (graceful && c->stream_open && c->queued > 0) {
		c->shutdown_req.data = c;
		if (uv_shutdown(&c->shutdown_req, c->stream,
		    conn_shutdown_done) == 0) {
			uv_timer_start(&c->timer, conn_close_timeout,
			    CONN_CLOSE_GRACE_MS, 0);
			return;
		}
	}
	conn_close_handles(c);
}

void
conn_close(struct conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	conn_vclose(c, 1, fmt, ap);
	va_end(ap);
}

static void
conn_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	conn_vclose(c, 0, fmt, ap);
	va_end(ap);
}

/* The loop turned since this connection's budget ran out: read again,
 * and let its producers go on (on_drain, as after a full queue). */
static void
conn_turn(uv_idle_t *h)
{
	struct conn	*c = h->data;

	uv_idle_stop(&c->turn);
	c->turn_bytes = 0;
	c->turn_full = 0;
	if (c->state != CONN_READY)
		return;
	if (c->read_paused) {
		c->read_paused = 0;
		conn_start_reading(c);
	}
	if (conn_writable(c) && c->ops->on_drain != NULL) {
		c->refs++;
		c->ops->on_drain(c);
		c->refs--;
		if (c->state == CONN_CLOSING && c->handles_open == 0)
			conn_finish_close(c);
	}
}

/* Count n bytes moved in this turn; at CONN_TURN_BYTES, not writable
 * until the loop turned. */
static void
conn_turn_count(struct conn *c, size_t n)
{
	c->turn_bytes += n;
	if (c->turn_full || c->turn_bytes < CONN_TURN_BYTES)
		return;
	c->turn_full = 1;
	uv_idle_start(&c->turn, conn_turn);
}

static void
conn_write_done(uv_write_t *req, int status)
{
	struct conn_wreq	*w = (struct conn_wreq *)req;
	struct conn		*c = w->conn;

	c->queued -= w->len;
	if (w->tls_buf)
		tls_give_buf(w->data);
	free(w);
	if (status != 0) {
		if (status != UV_ECANCELED)
			conn_fail(c, "write failed: %s", uv_strerror(status));
		return;
	}
	if (c->above_high && c->queued <= c->limits.send_max / 2 &&
	    c->state == CONN_READY) {
		c->above_high = 0;
		if (c->ops->on_drain != NULL)
			c->ops->on_drain(c);
	}
}

static int
conn_write_raw(struct conn *c, struct conn_wreq *w)
{
	uv_buf_t	buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	int		rc;

	w->conn = c;
	c->queued += w->len;
	if ((rc = uv_write(&w->req, c->stream, &buf, 1, conn_write_done)) != 0) {
		c->queued -= w->len;
		if (w->tls_buf)
			tls_give_buf(w->data);
		free(w);
		conn_fail(c, "write failed: %s", uv_strerror(rc));
		return -1;
	}
	if (c->queued >= c->limits.send_max)
		c->above_high = 1;
	return 0;
}

/* Move whatever TLS produced onto the socket, its buffers as they are. */
static int
conn_flush_tls(struct conn *c)
{
	struct conn_wreq	*w;
	uint8_t			*buf;
	size_t			 n;

	if (!c->stream_open)
		return 0;
	while ((buf = tls_take_buf(c->tls, &n)) != NULL) {
		w = xmalloc(sizeof *w);
		w->data = buf;
		w->len = n;
		w->tls_buf = 1;
		if (conn_write_raw(c, w) != 0)
			return -1;
	}
	return 0;
}

static int
conn_send_frame(struct conn *c, enum frame_type type, uint16_t channel,
    const void *payload, size_t len)
{
	struct conn_wreq	*w;
	uint8_t			 hdr[FRAME_HEADER_SIZE];
	char			*cause = NULL;

	if (c->state != CONN_READY)
		return -1;
	if (len > c->send_max_frame) {
		log_warnx("%s: refusing to send a %zu-byte frame (max %u)",
		    c->label, len, c->send_max_frame);
		return -1;
	}
	if (c->queued > c->limits.send_max * CONN_HARD_FACTOR) {
		conn_fail(c, "peer is not reading: %zu bytes queued", c->queued);
		return -1;
	}
	conn_turn_count(c, len);
	if (c->tls == NULL) {
		w = xmalloc(sizeof *w + FRAME_HEADER_SIZE + len);
		w->data = w->inline_data;
		w->tls_buf = 0;
		w->len = FRAME_HEADER_SIZE + len;
		frame_header_encode(w->data, type, channel, payload, (uint32_t)len);
		memcpy(w->data + FRAME_HEADER_SIZE, payload, len);
		return conn_write_raw(c, w);
	}
	/* TLS 1.3 only has AEAD suites: the record tags check every byte. */
	if (type == FRAME_DATA && c->send_unchecked)
		frame_header_encode_unchecked(hdr, channel, (uint32_t)len);
	else
		frame_header_encode(hdr, type, channel, payload, (uint32_t)len);
	if (tls_write(c->tls, hdr, sizeof hdr, &cause) != 0 ||
	    tls_write(c->tls, payload, len, &cause) != 0) {
		conn_fail(c, "%s", cause);
		free(cause);
		return -1;
	}
	return conn_flush_tls(c);
}

int
conn_send_msg(struct conn *c, const Envelope *env)
{
	uint8_t	*buf;
	size_t	 len;
	int	 rc;

	buf = msg_pack(env, &len);
	rc = conn_send_frame(c, FRAME_MSG, 0, buf, len);
	free(buf);
	return rc;
}

int
conn_send_data(struct conn *c, uint16_t channel, const void *data, size_t len)
{
	return conn_send_frame(c, FRAME_DATA, channel, data, len);
}

void
conn_send_error_close(struct conn *c, int code, const char *fmt, ...)
{
	Envelope	env;
	Tern__Error	err = TERN__ERROR__INIT;
	va_list		ap;
	char		*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	if (c->state == CONN_READY) {
		msg_init(&env, 0);
		err.code = code;
		err.text = text;
		env.body_case = TERN__ENVELOPE__BODY_ERROR;
		env.error = &err;
		conn_send_msg(c, &env);
	}
	conn_close(c, "%s", text);
	free(text);
}

static void
conn_ready(struct conn *c)
{
	uv_timer_stop(&c->timer);
	c->state = CONN_READY;
	if (c->ops->on_ready != NULL)
		c->ops->on_ready(c);
}

static void
conn_handshake_timeout(uv_timer_t *t)
{
	struct conn	*c = t->data;

	conn_fail(c, "%s timed out after %u ms", c->state == CONN_CONNECTING ?
	    "connect" : "TLS handshake", c->limits.handshake_ms);
}

/* Dispatch every whole frame in the decoder, unless closing. */
static void
conn_process(struct conn *c)
{
	struct frame_hdr	 hdr;
	const uint8_t		*payload;
	enum frame_status	 st;
	Envelope		*env;
	char			*cause = NULL;
	int			 code;

	if (c->in_dispatch)
		return;
	c->in_dispatch = 1;
	c->refs++;
	while (c->state == CONN_READY) {
		st = frame_decoder_next(&c->dec, &hdr, &payload);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			log_warnx("%s: %s; closing the connection", c->label,
			    frame_status_string(st));
			conn_send_error_close(c, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
			    "%s", frame_status_string(st));
			break;
		}
		if (hdr.type == FRAME_DATA) {
			if (c->ops->on_data != NULL)
				c->ops->on_data(c, hdr.channel, payload, hdr.length);
			continue;
		}
		if ((env = msg_unpack(payload, hdr.length, &code, &cause)) == NULL) {
			log_warnx("%s: bad message: %s; closing the connection",
			    c->label, cause);
			conn_send_error_close(c, code, "%s", cause);
			free(cause);
			break;
		}
		c->ops->on_msg(c, env);
		msg_free(env);
	}
	c->refs--;
	c->in_dispatch = 0;
	if (c->state == CONN_CLOSING && c->handles_open == 0)
		conn_finish_close(c);
}

/* Decrypt what TLS has into the decoder, dispatching as frames complete
 * (so the decoder holds at most one partial frame). */
static void
conn_read_tls(struct conn *c)
{
	enum tls_status	 st;
	uint8_t		*space;
	size_t		 room, n;
	char		*cause = NULL;

	while (c->state == CONN_READY) {
		space = frame_decoder_space(&c->dec, &room);
		n = tls_read(c->tls, space, room, &st, &cause);
		if (n == 0) {
			if (st == TLS_CLOSED)
				conn_fail(c, "peer closed the connection");
			else if (st == TLS_ERROR) {
				conn_fail(c, "%s", cause);
				free(cause);
			}
			break;
		}
		frame_decoder_commit(&c->dec, n);
		conn_process(c);
	}
}

static void
conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn	*c = h->data;
	uint8_t		*space;
	size_t		 room;

	if (c->tls != NULL) {
		/* Nobody gets the big buffer before they are authenticated. */
		space = tls_in_space(c->tls, c->state == CONN_READY ?
		    CONN_CIPHER_BUF : CONN_HANDSHAKE_BUF, &room);
		*buf = uv_buf_init((char *)space, room > UINT32_MAX ?
		    UINT32_MAX : (unsigned)room);
		return;
	}
	space = frame_decoder_space(&c->dec, &room);
	*buf = uv_buf_init((char *)space, room > UINT32_MAX ? UINT32_MAX :
	    (unsigned)room);
}

/* What was read is dealt with: past the turn's budget, read no more
 * (libuv would call again, up to 32 reads in one go) until it turned. */
static void
conn_read_budget(struct conn *c, size_t n)
{
	if (c->state != CONN_READY)
		return;
	conn_turn_count(c, n);
	if (c->turn_full && c->reading) {
		uv_read_stop(c->stream);
		c->reading = 0;
		c->read_paused = 1;
	}
}

/*
 * In the middle of a large frame nothing can happen before the rest of it
 * is here, so the kernel need not wake us before then (SO_RCVLOWAT).  The
 * bound is safe: what is still missing, less all the plaintext the bytes
 * we already hold could give, must still cross the socket.  Between
 * frames, any byte wakes us, so a message is never held back.
 *
 * Woken for every few segments, a stream's receiver read about 80 KB at a
 * time and answered each read with a window update, which the sender paid
 * for in its own softirq: 4 GiB ran at about 1.5 GB/s here, and at about
 * 2.3 GB/s with this (two ternds on one 2-core machine).
 */
static void
conn_wake_at(struct conn *c)
{
	size_t		missing, held, want = 1;
	uv_os_fd_t	fd;
	int		v;

	if (!c->is_tcp || c->state != CONN_READY)
		return;
	missing = frame_decoder_missing(&c->dec);
	held = c->tls != NULL ? tls_held_bound(c->tls) : 0;
	if (missing > held && missing - held >= CONN_WAKE_MIN)
		want = missing - held < CONN_WAKE_MAX ? missing - held :
		    CONN_WAKE_MAX;
	if (want == c->wake_at ||
	    uv_fileno((uv_handle_t *)c->stream, &fd) != 0)
		return;
	v = (int)want;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) != 0) {
		/* Not raised is only slower; not lowered could wait for
		 * bytes that never come. */
		if (want < c->wake_at)
			conn_fail(c, "cannot lower the socket's wake-up mark "
			    "to %d bytes: %s", v, strerror(errno));
		return;
	}
	c->wake_at = want;
}

static void
conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn	*c = s->data;
	enum tls_status	 st;
	char		*cause = NULL;

	if (n == 0)
		return;
	if (n < 0) {
		if (n == UV_EOF)
			conn_fail(c, "peer closed the connection");
		else
			conn_fail(c, "read failed: %s", uv_strerror((int)n));
		return;
	}
	if (c->tls == NULL) {
		frame_decoder_commit(&c->dec, (size_t)n);
		conn_process(c);
		conn_read_budget(c, (size_t)n);
		conn_wake_at(c);
		return;
	}
	tls_in_commit(c->tls, (size_t)n);
	if (c->state == CONN_HANDSHAKE) {
		st = tls_handshake(c->tls, &cause);
		if (conn_flush_tls(c) != 0)
			return;
		if (st == TLS_ERROR) {
			conn_fail(c, "%s", cause);
			free(cause);
			return;
		}
		if (st == TLS_AGAIN)
			return;
		c->refs++;
		conn_ready(c);
		c->refs--;
		if (c->state == CONN_CLOSING) {
			if (c->handles_open == 0)
				conn_finish_close(c);
			return;
		}
	}
	conn_read_tls(c);
	conn_read_budget(c, (size_t)n);
	conn_wake_at(c);
}

static void
conn_start_reading(struct conn *c)
{
	int	rc;

	if (c->reading || c->state == CONN_CLOSING)
		return;
	if ((rc = uv_read_start(c->stream, conn_alloc, conn_on_read)) != 0) {
		conn_fail(c, "cannot read: %s", uv_strerror(rc));
		return;
	}
	c->reading = 1;
}

/* The socket is connected (either way): start TLS, or be ready. */
static void
conn_established(struct conn *c)
{
	char	*cause = NULL;

	if (c->tls == NULL) {
		conn_ready(c);
		conn_start_reading(c);
		return;
	}
	c->state = CONN_HANDSHAKE;
	if (c->client) {
		/* Produces the ClientHello. */
		if (tls_handshake(c->tls, &cause) == TLS_ERROR) {
			conn_fail(c, "%s", cause);
			free(cause);
			return;
		}
		if (conn_flush_tls(c) != 0)
			return;
	}
	conn_start_reading(c);
}

static void
conn_init_stream(struct conn *c, int tcp)
{
	c->is_tcp = tcp;
	if (tcp) {
		uv_tcp_init(c->loop, &c->sock.tcp);
		c->stream = (uv_stream_t *)&c->sock.tcp;
	} else {
		uv_pipe_init(c->loop, &c->sock.pipe, 0);
		c->stream = (uv_stream_t *)&c->sock.pipe;
	}
	c->stream->data = c;
	c->stream_open = 1;
	c->handles_open++;
	uv_timer_start(&c->timer, conn_handshake_timeout, c->limits.handshake_ms,
	    0);
}

int
conn_accept(struct conn *c, uv_stream_t *server, struct tls_ctx *tls_ctx,
    char **cause)
{
	int	rc;

	conn_init_stream(c, server->type == UV_TCP);
	if ((rc = uv_accept(server, c->stream)) != 0) {
		set_cause(cause, "accept failed: %s", uv_strerror(rc));
		conn_fail(c, "accept failed: %s", uv_strerror(rc));
		return -1;
	}
	if (c->is_tcp)
		uv_tcp_nodelay(&c->sock.tcp, 1);
	if (tls_ctx != NULL) {
		c->tls = tls_new(tls_ctx, 1, NULL);
		frame_decoder_allow_unchecked(&c->dec);
	}
	conn_established(c);
	return 0;
}

static void
conn_on_connect(uv_connect_t *req, int status)
{
	struct conn	*c = req->data;

	if (status != 0) {
		if (status != UV_ECANCELED)
			conn_fail(c, "cannot connect: %s", uv_strerror(status));
		return;
	}
	if (c->state == CONN_CLOSING)
		return;
	if (c->is_tcp)
		uv_tcp_nodelay(&c->sock.tcp, 1);
	conn_established(c);
}

int
conn_connect_tcp(struct conn *c, const struct sockaddr *sa,
    struct tls_ctx *tls_ctx, const char *expect_host, char **cause)
{
	int	rc;

	c->client = 1;
	conn_init_stream(c, 1);
	/* The TLS session (which holds its own reference to the context)
	 * exists from now on, so a reload may replace the context meanwhile. */
	if (tls_ctx != NULL) {
		c->tls = tls_new(tls_ctx, 0, expect_host);
		frame_decoder_allow_unchecked(&c->dec);
	}
	c->connect_req.data = c;
	if ((rc = uv_tcp_connect(&c->connect_req, &c->sock.tcp, sa,
	    conn_on_connect)) != 0) {
		set_cause(cause, "cannot connect: %s", uv_strerror(rc));
		conn_fail(c, "cannot connect: %s", uv_strerror(rc));
		return -1;
	}
	return 0;
}

int
conn_connect_unix(struct conn *c, const char *path, char **cause)
{
	c->client = 1;
	conn_init_stream(c, 0);
	c->connect_req.data = c;
	uv_pipe_connect(&c->connect_req, &c->sock.pipe, path, conn_on_connect);
	return 0;
}
