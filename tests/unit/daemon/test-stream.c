/* daemon/stream over a real (unix socket) connection, in-process: a bulk
 * stream behind more than 64 idle ones (open, with credit, nothing to
 * send: relays waiting on their process) is still woken when the
 * connection drains.  The drain used to wake only the first 64.
 *
 * And a writer with 8 MiB to send, credit and connection room for all
 * of it, sends at most CONN_TURN_BYTES in one callback, is called again
 * for the rest, and every byte arrives in order.  It used to fill the
 * connection's whole queue in one go (send_buffer_max, 8 MiB by default:
 * tens of milliseconds of TLS work in one callback).
 *
 * The reading side too: with megabytes waiting in the socket, a
 * connection reads and dispatches about a turn's worth, then lets the
 * loop turn.  libuv used to call its read callback up to 32 times in a
 * row.
 *
 * And over TCP, a connection in the middle of a large frame is not woken
 * before the rest of it is there (SO_RCVLOWAT), and between frames any
 * byte wakes it. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/frame.h"

#include "daemon/xmalloc.h"
#include "tests/unit/lib/netpair.h"

#define NIDLE		100
#define BULK_BYTES	(8u << 20)

struct t {
	struct netpair	 np;
	struct stream	*bulk;
	uint64_t	 left, received;
	int		 bulk_done;
};

static uint8_t	payload[64u << 10];

/* A small output room: the connection is full most of the time. */
static const struct conn_limits limits = {
	.max_frame = 16u << 10,
	.send_max = 32u << 10,
	.handshake_ms = 5000,
};

static void
bulk_writable(struct stream *st)
{
	struct t	*t = stream_data(st);
	size_t		 n;

	while (t->left > 0) {
		n = stream_send(st, payload, t->left < sizeof payload ?
		    (size_t)t->left : sizeof payload);
		if (n == 0)
			return;
		t->left -= n;
	}
	stream_finish(st);
}

static void
bulk_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct t	*t = stream_data(st);

	(void)bytes;
	assert_null(error);
	t->bulk_done = 1;
	t->bulk = NULL;
}

static const struct stream_ops bulk_ops = {
	.on_writable = bulk_writable,
	.on_end = bulk_end,
};

static void
idle_writable(struct stream *st)
{
	(void)st;		/* nothing to say yet */
}

static void
idle_end(struct stream *st, uint64_t bytes, const char *error)
{
	(void)st; (void)bytes; (void)error;
}

static const struct stream_ops idle_ops = {
	.on_writable = idle_writable,
	.on_end = idle_end,
};

static void
sink_data(struct stream *st, const uint8_t *p, size_t len)
{
	struct t	*t = stream_data(st);

	(void)p;
	t->received += len;
	stream_consumed(st, len);
}

static void
sink_end(struct stream *st, uint64_t bytes, const char *error)
{
	(void)st; (void)bytes; (void)error;
}

static const struct stream_ops sink_ops = {
	.on_data = sink_data,
	.on_end = sink_end,
};

static int
accept_sink(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	(void)kind; (void)name; (void)size; (void)cause;
	stream_set_ops(st, &sink_ops, stream_mux_data(mux));
	return 0;
}

static void
test_drain_wakes_every_stream(void **state)
{
	struct t		 t;
	struct stream		*idle[NIDLE];
	int			 i;

	(void)state;
	memset(&t, 0, sizeof t);
	t.np.a_accept = accept_sink;
	t.np.b_accept = accept_sink;
	t.np.data = &t;
	/* A window larger than all it sends: no credit message ever wakes
	 * the bulk stream, only the connection's drain does. */
	t.np.window = 4 * BULK_BYTES;
	netpair_start(&t.np, &limits);
	t.left = BULK_BYTES;
	/* Opened first: the idle ones, opened after, come before it. */
	t.bulk = stream_open(t.np.bmux, TERN__STREAM_KIND__STREAM_SINK, "bulk",
	    0, &bulk_ops, &t);
	for (i = 0; i < NIDLE; i++)
		idle[i] = stream_open(t.np.bmux, TERN__STREAM_KIND__STREAM_SINK,
		    "idle", 0, &idle_ops, &t);
	for (i = 0; i < 100 && !t.bulk_done; i++)
		netpair_run(&t.np, 50);
	if (!t.bulk_done)
		fail_msg("the bulk stream stalled: %llu of %u bytes arrived, "
		    "%llu left to send", (unsigned long long)t.received,
		    BULK_BYTES, (unsigned long long)t.left);
	assert_int_equal(t.received, BULK_BYTES);
	for (i = 0; i < NIDLE; i++)
		stream_abort(idle[i], 1, "test over");
	netpair_end(&t.np);
}

/* --- a turn's worth per callback ---------------------------------------- */

#define CAPPED_BYTES	(8u << 20)

struct capped {
	struct netpair	 np;
	uint8_t		*out;
	uint64_t	 off, received;
	size_t		 most;		/* most bytes taken in one callback */
	unsigned	 calls;
	int		 done, disorder;
	char		*error;
};

/* Byte i of the stream: no period that divides a frame or a turn. */
static uint8_t
capped_byte(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) * 7 + (i >> 17));
}

static void
capped_writable(struct stream *st)
{
	struct capped	*c = stream_data(st);
	size_t		 n, now = 0;

	c->calls++;
	/* All of the rest offered at once, again and again, as a writer
	 * with it queued does. */
	while (c->off < CAPPED_BYTES) {
		n = stream_send(st, c->out + c->off,
		    (size_t)(CAPPED_BYTES - c->off));
		if (n == 0)
			break;
		c->off += n;
		now += n;
	}
	if (now > c->most)
		c->most = now;
	if (c->off == CAPPED_BYTES)
		stream_finish(st);
}

static void
capped_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct capped	*c = stream_data(st);

	(void)bytes;
	if (error != NULL)
		c->error = xstrdup(error);
	c->done = 1;
}

static const struct stream_ops capped_ops = {
	.on_writable = capped_writable,
	.on_end = capped_end,
};

static void
capped_data(struct stream *st, const uint8_t *p, size_t len)
{
	struct capped	*c = stream_data(st);
	size_t		 i;

	for (i = 0; i < len; i++)
		if (p[i] != capped_byte(c->received + i))
			c->disorder = 1;
	c->received += len;
	stream_consumed(st, len);
}

static const struct stream_ops capped_sink_ops = {
	.on_data = capped_data,
	.on_end = sink_end,
};

static int
accept_capped(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	(void)kind; (void)name; (void)size; (void)cause;
	stream_set_ops(st, &capped_sink_ops, stream_mux_data(mux));
	return 0;
}

static void
test_turn_caps_each_callback(void **state)
{
	/* Room for all of it: only the turn's cap can hold the writer. */
	static const struct conn_limits big = {
		.max_frame = 256u << 10,
		.send_max = CAPPED_BYTES,
		.handshake_ms = 5000,
	};
	struct capped	 c;
	uint64_t	 i;
	int		 k;

	(void)state;
	memset(&c, 0, sizeof c);
	c.out = xmalloc(CAPPED_BYTES);
	for (i = 0; i < CAPPED_BYTES; i++)
		c.out[i] = capped_byte(i);
	c.np.a_accept = accept_capped;
	c.np.b_accept = accept_capped;
	c.np.data = &c;
	c.np.window = 4 * CAPPED_BYTES;
	netpair_start(&c.np, &big);
	assert_non_null(stream_open(c.np.bmux, TERN__STREAM_KIND__STREAM_SINK,
	    "capped", 0, &capped_ops, &c));
	for (k = 0; k < 200 && !c.done; k++)
		netpair_run(&c.np, 50);
	if (!c.done)
		fail_msg("the stream stalled: %llu of %u bytes sent, %llu "
		    "arrived", (unsigned long long)c.off, CAPPED_BYTES,
		    (unsigned long long)c.received);
	if (c.error != NULL)
		fail_msg("the stream failed: %s", c.error);
	if (c.most > CONN_TURN_BYTES)
		fail_msg("one callback sent %zu bytes (cap %u)", c.most,
		    CONN_TURN_BYTES);
	assert_true(c.calls >= CAPPED_BYTES / CONN_TURN_BYTES);
	assert_int_equal(c.received, CAPPED_BYTES);
	assert_false(c.disorder);
	free(c.out);
	netpair_end(&c.np);
}

/* --- reading a turn's worth ---------------------------------------------- */

#define RAW_FRAME	(64u << 10)
#define RAW_BYTES	(8u << 20)

struct raw {
	uv_loop_t	 loop;
	union {
		uv_pipe_t	 server;
		uv_tcp_t	 tcp_server;
	};
	uv_check_t	 check;
	const struct conn_limits *limits;	/* NULL: raw_limits */
	struct conn	*conn;
	int		 ready;
	uint64_t	 received;
	size_t		 turn, most;	/* dispatched this turn; most in one */
	int		 closed;
};

static void
raw_ready(struct conn *c)
{
	((struct raw *)conn_data(c))->ready = 1;
}

static void
raw_msg(struct conn *c, Envelope *env)
{
	(void)c; (void)env;
	fail_msg("a message where only data was sent");
}

static void
raw_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t len)
{
	struct raw	*r = conn_data(c);

	(void)ch; (void)p;
	r->received += len;
	r->turn += len;
}

static void
raw_close(struct conn *c, const char *cause)
{
	(void)cause;
	((struct raw *)conn_data(c))->closed = 1;
}

static const struct conn_ops raw_ops = {
	.on_ready = raw_ready,
	.on_msg = raw_msg,
	.on_data = raw_data,
	.on_close = raw_close,
};

static const struct conn_limits raw_limits = {
	.max_frame = RAW_FRAME,
	.send_max = 1u << 20,
	.handshake_ms = 5000,
};

static void
raw_connection(uv_stream_t *server, int status)
{
	struct raw	*r = server->data;

	assert_int_equal(status, 0);
	r->conn = conn_new(&r->loop, &raw_ops, r->limits != NULL ? r->limits :
	    &raw_limits, "raw", r);
	assert_int_equal(conn_accept(r->conn, server, NULL, NULL), 0);
}

/* After the poll's callbacks: what one turn dispatched. */
static void
raw_check(uv_check_t *h)
{
	struct raw	*r = h->data;

	if (r->turn > r->most)
		r->most = r->turn;
	r->turn = 0;
}

static void
write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t	n;

	for (; len > 0; p += n, len -= (size_t)n)
		assert_true((n = write(fd, p, len)) > 0);
}

/* Turn the loop until the connection the peer made is up. */
static void
raw_wait_ready(struct raw *r)
{
	int	i;

	for (i = 0; i < 50 && !r->ready; i++)
		uv_run(&r->loop, UV_RUN_NOWAIT), usleep(1000);
	assert_true(r->ready);
}

/* Close the peer's socket fd, the connection, the listener (pipe or TCP:
 * the union's members share their address) and the check handle. */
static void
raw_end(struct raw *r, int fd)
{
	close(fd);
	conn_close(r->conn, "done");
	uv_close((uv_handle_t *)&r->server, NULL);
	uv_close((uv_handle_t *)&r->check, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	assert_true(r->closed);
	assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void
test_read_turn_caps(void **state)
{
	static uint8_t		 frame[FRAME_HEADER_SIZE + RAW_FRAME];
	struct raw		 r;
	struct sockaddr_un	 sun;
	char			 path[64];
	int			 fd, big = 4 * RAW_BYTES, i;

	(void)state;
	memset(&r, 0, sizeof r);
	snprintf(path, sizeof path, "/tmp/tern-rawread.%ld", (long)getpid());
	unlink(path);
	assert_int_equal(uv_loop_init(&r.loop), 0);
	assert_int_equal(uv_pipe_init(&r.loop, &r.server, 0), 0);
	r.server.data = &r;
	assert_int_equal(uv_pipe_bind(&r.server, path), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&r.server, 1, raw_connection),
	    0);
	uv_check_init(&r.loop, &r.check);
	r.check.data = &r;
	uv_check_start(&r.check, raw_check);

	/* The peer: a plain socket that has it all written before the
	 * connection reads a byte (a send buffer that holds all of it). */
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0)
		skip();		/* needs CAP_NET_ADMIN */
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	raw_wait_ready(&r);
	memset(frame + FRAME_HEADER_SIZE, 0xa5, RAW_FRAME);
	frame_header_encode(frame, FRAME_DATA, 1, frame + FRAME_HEADER_SIZE,
	    RAW_FRAME);
	for (i = 0; i < (int)(RAW_BYTES / RAW_FRAME); i++)
		write_all(fd, frame, sizeof frame);
	for (i = 0; i < 5000 && r.received < RAW_BYTES; i++)
		uv_run(&r.loop, UV_RUN_ONCE);
	assert_int_equal(r.received, RAW_BYTES);
	/* A turn's worth, and the rest of the read that crossed it. */
	if (r.most > CONN_TURN_BYTES + 4 * RAW_FRAME)
		fail_msg("one turn dispatched %zu bytes (cap %u)", r.most,
		    CONN_TURN_BYTES);
	raw_end(&r, fd);
	unlink(path);
}

/* --- waking for the rest of a frame ------------------------------------- */

#define WAKE_FRAME	(512u << 10)
#define WAKE_FIRST	(100u << 10)
#define WAKE_SECOND	(100u << 10)

static const struct conn_limits wake_limits = {
	.max_frame = WAKE_FRAME,
	.send_max = 1u << 20,
	.handshake_ms = 5000,
};

/* The connection's own end of the TCP connection whose other end is
 * peer: the socket named as peer's peer. */
static int
accepted_fd(int peer)
{
	struct sockaddr_in	me, them, a;
	socklen_t		len;
	int			fd;

	len = sizeof me;
	assert_int_equal(getsockname(peer, (struct sockaddr *)&me, &len), 0);
	len = sizeof them;
	assert_int_equal(getpeername(peer, (struct sockaddr *)&them, &len), 0);
	for (fd = 3; fd < 1024; fd++) {
		len = sizeof a;
		if (fd == peer || getsockname(fd, (struct sockaddr *)&a,
		    &len) != 0 || a.sin_family != AF_INET ||
		    a.sin_port != them.sin_port)
			continue;
		len = sizeof a;
		if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 &&
		    a.sin_port == me.sin_port)
			return fd;
	}
	fail_msg("no socket here is the other end of %d", peer);
	return -1;
}

static int
wake_mark(int fd)
{
	socklen_t	len = sizeof(int);
	int		v;

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len), 0);
	return v;
}

static int
unread(int fd)
{
	int	n;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* Turn the loop until the connection has dispatched `bytes` in all. */
static void
raw_run_until(struct raw *r, uint64_t bytes)
{
	int	i;

	for (i = 0; i < 2000 && r->received < bytes; i++) {
		uv_run(&r->loop, UV_RUN_NOWAIT);
		if (r->received < bytes)
			usleep(1000);
	}
	if (r->received != bytes)
		fail_msg("dispatched %llu bytes, not %llu",
		    (unsigned long long)r->received, (unsigned long long)bytes);
}

static void
test_wake_for_frame_rest(void **state)
{
	static uint8_t		 frame[FRAME_HEADER_SIZE + WAKE_FRAME];
	static uint8_t		 warm[FRAME_HEADER_SIZE + RAW_FRAME];
	uint8_t			 small[FRAME_HEADER_SIZE + 10];
	struct raw		 r;
	struct sockaddr_in	 sin;
	struct sockaddr_storage	 ss;
	int			 fd, mine, i, len = sizeof ss;
	uint64_t		 sent = 0;
	size_t			 off;

	(void)state;
	memset(&r, 0, sizeof r);
	r.limits = &wake_limits;
	assert_int_equal(uv_loop_init(&r.loop), 0);
	assert_int_equal(uv_tcp_init(&r.loop, &r.tcp_server), 0);
	r.tcp_server.data = &r;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
	assert_int_equal(uv_tcp_bind(&r.tcp_server, (struct sockaddr *)&sin, 0),
	    0);
	assert_int_equal(uv_listen((uv_stream_t *)&r.tcp_server, 1,
	    raw_connection), 0);
	uv_check_init(&r.loop, &r.check);	/* for raw_end; never started */
	assert_int_equal(uv_tcp_getsockname(&r.tcp_server,
	    (struct sockaddr *)&ss, &len), 0);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof sin), 0);
	raw_wait_ready(&r);
	mine = accepted_fd(fd);
	assert_int_equal(wake_mark(mine), 1);

	/* Whole frames first, so the receive window has grown past what
	 * the test sends at once (else a closing window wakes the reader,
	 * as it must). */
	memset(warm + FRAME_HEADER_SIZE, 0x3c, RAW_FRAME);
	frame_header_encode(warm, FRAME_DATA, 1, warm + FRAME_HEADER_SIZE,
	    RAW_FRAME);
	for (i = 0; i < 64; i++) {
		write_all(fd, warm, sizeof warm);
		raw_run_until(&r, sent += RAW_FRAME);
	}
	assert_int_equal(wake_mark(mine), 1);

	/* The header and a first part of a large frame: the connection
	 * asks to be woken when the rest is there. */
	memset(frame + FRAME_HEADER_SIZE, 0x5a, WAKE_FRAME);
	frame_header_encode(frame, FRAME_DATA, 1, frame + FRAME_HEADER_SIZE,
	    WAKE_FRAME);
	write_all(fd, frame, FRAME_HEADER_SIZE + WAKE_FIRST);
	for (i = 0; i < 2000 && unread(mine) > 0; i++)
		uv_run(&r.loop, UV_RUN_NOWAIT), usleep(1000);
	assert_int_equal(unread(mine), 0);
	assert_int_equal(wake_mark(mine), WAKE_FRAME - WAKE_FIRST);

	/* More of it, not all: it sleeps on, and the bytes wait in the
	 * socket. */
	off = FRAME_HEADER_SIZE + WAKE_FIRST;
	write_all(fd, frame + off, WAKE_SECOND);
	off += WAKE_SECOND;
	for (i = 0; i < 50; i++)
		uv_run(&r.loop, UV_RUN_NOWAIT), usleep(1000);
	if (unread(mine) == 0)
		fail_msg("woken for %u bytes of the %u the frame lacked",
		    WAKE_SECOND, WAKE_FRAME - WAKE_FIRST);
	assert_int_equal(wake_mark(mine), WAKE_FRAME - WAKE_FIRST);
	assert_int_equal(r.received, sent);

	/* The rest and a small frame after it: both arrive, and then any
	 * byte wakes the connection again. */
	memset(small + FRAME_HEADER_SIZE, 0x11, 10);
	frame_header_encode(small, FRAME_DATA, 2, small + FRAME_HEADER_SIZE,
	    10);
	write_all(fd, frame + off, sizeof frame - off);
	write_all(fd, small, sizeof small);
	raw_run_until(&r, sent += WAKE_FRAME + 10);
	assert_int_equal(wake_mark(mine), 1);
	write_all(fd, small, sizeof small);
	raw_run_until(&r, sent += 10);

	raw_end(&r, fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drain_wakes_every_stream),
		cmocka_unit_test(test_turn_caps_each_callback),
		cmocka_unit_test(test_read_turn_caps),
		cmocka_unit_test(test_wake_for_frame_rest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
