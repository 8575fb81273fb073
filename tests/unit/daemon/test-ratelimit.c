/* Unit tests for daemon/ratelimit.c: the bucket's arithmetic, its waiters
 * on a loop, and streams that share one limit over a real connection. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/conn.h"
#include "daemon/ratelimit.h"
#include "daemon/stream.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define MS	1000000ull
#define SEC	1000000000ull
#define T0	(1000 * SEC)	/* an arbitrary start on the fake clock */

/* --- the bucket ---------------------------------------------------------------- */

static void
test_burst(void **state)
{
	struct ratelimit_bucket	b;

	/* A tenth of a second's worth... */
	ratelimit_bucket_init(&b, 50000000, T0);
	assert_int_equal(b.burst, 5000000);
	/* ...but never less than the floor. */
	ratelimit_bucket_init(&b, 1000000, T0);
	assert_int_equal(b.burst, RATELIMIT_MIN_BURST);

	/* Starts full; a long idle time never fills it beyond the burst. */
	ratelimit_bucket_init(&b, 20000000, T0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0), 2000000);
	assert_int_equal(ratelimit_bucket_take(&b, 1, T0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0 + 3600 * SEC),
	    2000000);
	/* Taking less leaves the rest. */
	ratelimit_bucket_init(&b, 20000000, T0);
	assert_int_equal(ratelimit_bucket_take(&b, 1500000, T0), 1500000);
	assert_int_equal(ratelimit_bucket_take(&b, 1500000, T0), 500000);
}

static void
test_rate(void **state)
{
	struct ratelimit_bucket	b;
	uint64_t		t, got;
	int			i;

	/* Empty, then exactly rate * time comes back. */
	ratelimit_bucket_init(&b, 20000000, T0);
	ratelimit_bucket_take(&b, UINT64_MAX, T0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0 + 10 * MS),
	    200000);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0 + 10 * MS), 0);

	/* Many small steps lose no fraction of a byte: 7 ns each,
	 * 2.999999996 bytes a step. */
	ratelimit_bucket_init(&b, 3000000000ull / 7, T0);	/* 428571428 B/s */
	t = T0;
	ratelimit_bucket_take(&b, UINT64_MAX, t);
	got = 0;
	for (i = 0; i < 100000; i++) {
		t += 7;
		got += ratelimit_bucket_take(&b, UINT64_MAX, t);
	}
	/* 700 us at 428571428 B/s: 299999.9996 bytes. */
	assert_int_equal(got, 299999);

	/* Over a second of steps a sender never gets more than the rate
	 * (plus the burst it started with). */
	ratelimit_bucket_init(&b, 1000000, T0);
	got = 0;
	for (t = T0; t <= T0 + SEC; t += 333333)
		got += ratelimit_bucket_take(&b, 4096, t);
	assert_true(got <= 1000000 + RATELIMIT_MIN_BURST);
	assert_true(got >= 1000000 + RATELIMIT_MIN_BURST - 4096);

	/* A clock that goes back adds nothing and breaks nothing. */
	ratelimit_bucket_init(&b, 1000000, T0);
	ratelimit_bucket_take(&b, UINT64_MAX, T0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, T0 - SEC), 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0 + MS), 1000);
}

static void
test_wait(void **state)
{
	struct ratelimit_bucket	b;

	ratelimit_bucket_init(&b, 1000000, T0);		/* 1 byte per us */
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1000, T0), 0);
	ratelimit_bucket_take(&b, UINT64_MAX, T0);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1000, T0), 1 * MS);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1000, T0 + MS / 2),
	    MS / 2);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1000, T0 + MS), 0);
	/* More than the burst never fits: wait for a full bucket. */
	ratelimit_bucket_init(&b, 1000000, T0);
	ratelimit_bucket_take(&b, UINT64_MAX, T0);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, UINT64_MAX, T0),
	    RATELIMIT_MIN_BURST * 1000ull);
	/* Part of a byte's time already passed counts. */
	ratelimit_bucket_init(&b, 3, T0);	/* a byte per 333333333.3 ns */
	ratelimit_bucket_take(&b, UINT64_MAX, T0);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1, T0 + 100), 333333234);
	assert_int_equal(ratelimit_bucket_take(&b, 1, T0 + 333333333), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, T0 + 333333334), 1);
	/* Never 0 while tokens are missing. */
	assert_true(ratelimit_bucket_wait_ns(&b, 1, T0 + 333333334) > 0);
}

static void
test_extremes(void **state)
{
	struct ratelimit_bucket	b;

	/* Rate 0: no limit at all. */
	ratelimit_bucket_init(&b, 0, T0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0), UINT64_MAX);
	assert_int_equal(ratelimit_bucket_take(&b, 12345, T0), 12345);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, UINT64_MAX, T0), 0);

	/* The largest rate: nothing overflows, a nanosecond refills a lot. */
	ratelimit_bucket_init(&b, UINT64_MAX, T0);
	assert_int_equal(b.burst, UINT64_MAX / 10);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0), UINT64_MAX / 10);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 1, T0), 1);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, T0 + 1),
	    UINT64_MAX / 1000000000);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, UINT64_MAX),
	    UINT64_MAX / 10);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, UINT64_MAX, UINT64_MAX),
	    100000000);

	/* The smallest: a byte a second, the clock far on. */
	ratelimit_bucket_init(&b, 1, 0);
	ratelimit_bucket_take(&b, UINT64_MAX, 0);
	assert_int_equal(ratelimit_bucket_wait_ns(&b, 2, 0), 2 * SEC);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, UINT64_MAX),
	    RATELIMIT_MIN_BURST);
}

/* --- waiters on a loop -------------------------------------------------------- */

struct woken {
	int		 calls;
	uint64_t	 at;
};

static void
woken_cb(void *arg)
{
	struct woken	*w = arg;

	w->calls++;
	w->at = now_ns();
}

static void
test_waiters(void **state)
{
	uv_loop_t		 loop;
	struct ratelimit	*rl;
	struct ratelimit_waiter	 w1 = { 0 }, w2 = { 0 }, w3 = { 0 };
	struct woken		 k1 = { 0 }, k2 = { 0 }, k3 = { 0 };
	uint64_t		 t0;

	assert_int_equal(uv_loop_init(&loop), 0);
	rl = ratelimit_new(&loop, 1000000);	/* a byte per us */
	assert_int_equal(ratelimit_rate(rl), 1000000);
	assert_int_equal(ratelimit_take(rl, 1000000), RATELIMIT_MIN_BURST);
	/* Less than a quantum: nothing, rather than a trickle. */
	assert_int_equal(ratelimit_take(rl, RATELIMIT_QUANTUM), 0);

	t0 = now_ns();
	ratelimit_wait(rl, &w1, RATELIMIT_QUANTUM, woken_cb, &k1);
	ratelimit_wait(rl, &w1, RATELIMIT_QUANTUM, woken_cb, &k1); /* no-op */
	ratelimit_wait(rl, &w2, RATELIMIT_QUANTUM, woken_cb, &k2);
	ratelimit_wait(rl, &w3, RATELIMIT_QUANTUM, woken_cb, &k3);
	ratelimit_cancel(rl, &w2);
	ratelimit_cancel(rl, &w2);				/* no-op */
	assert_int_equal(k1.calls + k2.calls + k3.calls, 0);	/* not at once */
	uv_run(&loop, UV_RUN_DEFAULT);
	/* Once each, not the cancelled one, and not before the tokens. */
	assert_int_equal(k1.calls, 1);
	assert_int_equal(k2.calls, 0);
	assert_int_equal(k3.calls, 1);
	assert_true(k1.at - t0 >= RATELIMIT_QUANTUM * 1000ull - MS);
	assert_true(ratelimit_take(rl, RATELIMIT_QUANTUM) > 0);

	/* The last reference goes while someone waits on the timer: the
	 * waiter was cancelled first, nothing is called, nothing leaks. */
	ratelimit_take(rl, 1000000);
	ratelimit_wait(rl, &w1, RATELIMIT_QUANTUM, woken_cb, &k1);
	ratelimit_cancel(rl, &w1);
	ratelimit_unref(rl);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(k1.calls, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- streams sharing a limit -------------------------------------------------- */

#define NSEND		3
#define SEND_BYTES	(1200u << 10)
#define NET_RATE	8000000u	/* burst 800 kB */

struct net;

struct sender {
	struct net	*net;
	struct stream	*st;
	uint64_t	 left;
	int		 ended, abort_after;
	char		*error;
};

struct net {
	uv_loop_t		 loop;
	uv_pipe_t		 server;
	uv_timer_t		 watchdog;
	struct conn		*client, *served;
	struct stream_mux	*cmux, *smux;
	struct ratelimit	*rl;
	struct sender		 s[NSEND];
	uint64_t		 received;
	int			 recv_ended, stalled;
	uint64_t		 start, end;
};

static uint8_t	payload[256u << 10];

static void
sender_writable(struct stream *st)
{
	struct sender	*s = stream_data(st);
	size_t		 n;

	while (s->left > 0) {
		n = stream_send(st, payload, s->left < sizeof payload ?
		    (size_t)s->left : sizeof payload);
		if (n == 0)
			return;		/* on_writable again */
		s->left -= n;
		if (s->abort_after && s->left < SEND_BYTES / 2) {
			/* Possibly queued on the limit: must not be
			 * woken once gone. */
			stream_abort(st, 1, "enough");
			return;
		}
	}
	stream_finish(st);
}

/* Every stream ended on both sides: done. */
static void
net_check(struct net *n)
{
	int	i;

	for (i = 0; i < NSEND; i++)
		if (!n->s[i].ended)
			return;
	if (n->recv_ended < NSEND || n->end != 0)
		return;
	n->end = now_ns();
	uv_timer_stop(&n->watchdog);
	uv_close((uv_handle_t *)&n->watchdog, NULL);
	conn_close(n->client, "done");
	conn_close(n->served, "done");
	uv_close((uv_handle_t *)&n->server, NULL);
}

static void
sender_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct sender	*s = stream_data(st);

	s->ended = 1;
	s->st = NULL;
	s->error = error != NULL ? xstrdup(error) : NULL;
	net_check(s->net);
}

static const struct stream_ops sender_ops = {
	.on_writable = sender_writable,
	.on_end = sender_end,
};

static void
recv_data(struct stream *st, const uint8_t *p, size_t len)
{
	struct net	*n = stream_data(st);

	n->received += len;
	stream_consumed(st, len);
}

static void
recv_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct net	*n = stream_data(st);

	n->recv_ended++;
	net_check(n);
}

static const struct stream_ops recv_ops = {
	.on_data = recv_data,
	.on_end = recv_end,
};

static int
net_accept(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	stream_set_ops(st, &recv_ops, stream_mux_data(mux));
	return 0;
}

static void
net_ready(struct conn *c)
{
	struct net	*n = conn_data(c);
	int		 i;

	if (c == n->served) {
		n->smux = stream_mux_new(c, 512u << 10, net_accept, n);
		return;
	}
	n->cmux = stream_mux_new(c, 512u << 10, net_accept, n);
	n->start = now_ns();
	for (i = 0; i < NSEND; i++) {
		n->s[i].st = stream_open(n->cmux,
		    TERN__STREAM_KIND__STREAM_SINK, "x", 0, &sender_ops,
		    &n->s[i]);
		assert_non_null(n->s[i].st);
		stream_set_limit(n->s[i].st, n->rl);
	}
	/* The streams hold it now: the owner may let go early. */
	ratelimit_unref(n->rl);
	n->rl = NULL;
}

static void
net_msg(struct conn *c, Envelope *env)
{
	struct net	*n = conn_data(c);

	stream_mux_msg(c == n->served ? n->smux : n->cmux, env);
}

static void
net_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t len)
{
	struct net	*n = conn_data(c);

	stream_mux_data_frame(c == n->served ? n->smux : n->cmux, ch, p, len);
}

static void
net_drain(struct conn *c)
{
	struct net	*n = conn_data(c);

	stream_mux_drain(c == n->served ? n->smux : n->cmux);
}

static void
net_close(struct conn *c, const char *cause)
{
	struct net	*n = conn_data(c);

	if (c == n->served) {
		stream_mux_free(n->smux, cause);
		n->smux = NULL;
	} else {
		stream_mux_free(n->cmux, cause);
		n->cmux = NULL;
	}
}

static const struct conn_ops net_ops = {
	.on_ready = net_ready,
	.on_msg = net_msg,
	.on_data = net_data,
	.on_drain = net_drain,
	.on_close = net_close,
};

/* Small output limits, so connection room and credit hold the senders
 * back too, not only the rate. */
static const struct conn_limits net_limits = {
	.max_frame = 64u << 10,
	.send_max = 192u << 10,
	.handshake_ms = 5000,
};

static void
net_connection(uv_stream_t *server, int status)
{
	struct net	*n = server->data;

	assert_int_equal(status, 0);
	n->served = conn_new(&n->loop, &net_ops, &net_limits, "served", n);
	assert_int_equal(conn_accept(n->served, server, NULL, NULL), 0);
}

static void
net_stalled(uv_timer_t *t)
{
	struct net	*n = t->data;

	n->stalled = 1;
	uv_stop(&n->loop);
}

static void
test_streams(void **state)
{
	struct net	 n;
	char		 sock[64];
	uint64_t	 sent = 0, elapsed, floor_ns;
	int		 i;

	memset(&n, 0, sizeof n);
	assert_int_equal(uv_loop_init(&n.loop), 0);
	n.rl = ratelimit_new(&n.loop, NET_RATE);
	for (i = 0; i < NSEND; i++) {
		n.s[i].net = &n;
		n.s[i].left = SEND_BYTES;
	}
	n.s[NSEND - 1].abort_after = 1;
	snprintf(sock, sizeof sock, "/tmp/test-ratelimit.%ld", (long)getpid());
	unlink(sock);
	assert_int_equal(uv_pipe_init(&n.loop, &n.server, 0), 0);
	n.server.data = &n;
	assert_int_equal(uv_pipe_bind(&n.server, sock), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&n.server, 4,
	    net_connection), 0);
	n.client = conn_new(&n.loop, &net_ops, &net_limits, "client", &n);
	assert_int_equal(conn_connect_unix(n.client, sock, NULL), 0);
	/* A stall (a stream nobody wakes) ends here, not in the harness. */
	uv_timer_init(&n.loop, &n.watchdog);
	n.watchdog.data = &n;
	uv_timer_start(&n.watchdog, net_stalled, 20000, 0);
	uv_run(&n.loop, UV_RUN_DEFAULT);
	unlink(sock);
	if (n.stalled)
		fail_msg("stalled: %llu bytes arrived",
		    (unsigned long long)n.received);
	assert_int_equal(uv_loop_close(&n.loop), 0);

	for (i = 0; i < NSEND - 1; i++) {
		if (n.s[i].error != NULL)
			fail_msg("stream %d: %s", i, n.s[i].error);
		assert_int_equal(n.s[i].left, 0);
	}
	assert_non_null(n.s[NSEND - 1].error);	/* the one aborted */
	free(n.s[NSEND - 1].error);
	for (i = 0; i < NSEND; i++)
		sent += SEND_BYTES - n.s[i].left;
	assert_int_equal(n.received, sent);
	assert_int_equal(n.recv_ended, NSEND);
	/* Together, never faster than the rate after the first burst. */
	elapsed = n.end - n.start;
	floor_ns = (sent - NET_RATE / 10) * SEC / NET_RATE;
	print_message("    %llu bytes in %.3f s (%.2f MB/s; limit %.2f MB/s)\n",
	    (unsigned long long)sent, (double)elapsed / SEC,
	    (double)sent * SEC / elapsed / 1e6, NET_RATE / 1e6);
	assert_true(elapsed >= floor_ns);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_waiters),
		cmocka_unit_test(test_streams),
	};

	memset(payload, 0xa5, sizeof payload);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
