/* migrate/relay over a real (unix socket) connection, in-process: bytes
 * reach the relayed process, a gate holds the peer's end of a protocol
 * back until it is opened, a paused relay reads nothing of its process
 * until resumed, and a peer that opens its direction twice is
 * refused (the second stream used to replace the first, whose data then
 * reached a freed relay), and what a slow process leaves queued reaches
 * it whole and in order, through queue buffers used again, a turn of the
 * loop's worth at a time. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/relay.h"
#include "tests/unit/lib/netpair.h"

/* "a" runs a relay for its local socket; "b" plays the peer by hand. */
struct net {
	struct netpair	 np;
	struct relay	*relay;
	int		 local;		/* the relayed process's end */
	int		 accepted, refused;
	struct stream	*b_out[2];	/* b's streams towards a */
	int		 b_ended[2];
	size_t		 b_got;		/* bytes of a's direction b took */
	int		 b_in_ended;	/* 1: it ended whole, -1: broke */
	int		 paused_by_tap;	/* tap_pause_once's calls */
	size_t		 tx_len, tx_off;	/* b_out[0]'s pattern bytes */
};

/* The bytes test_slow_reader sends: no period a queue buffer's size
 * (or a frame's) divides. */
static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 4093);
}

static size_t
gate_bang(void *arg, const uint8_t *data, size_t len)
{
	const uint8_t	*p = memchr(data, '!', len);

	(void)arg;
	return p != NULL ? (size_t)(p - data) : len;
}

static void
relay_cb(void *arg, const char *error)
{
	(void)arg;
	(void)error;
}

static int
a_accept(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	struct net	*n = stream_mux_data(mux);

	(void)kind; (void)name; (void)size;
	if (relay_attach(n->relay, st, cause) != 0) {
		n->refused++;
		return -1;
	}
	n->accepted++;
	return 0;
}

static void
b_in_data(struct stream *st, const uint8_t *p, size_t len)
{
	struct net	*n = stream_data(st);

	(void)p;
	n->b_got += len;
	stream_consumed(st, len);
}

static void
b_in_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct net	*n = stream_data(st);

	(void)bytes;
	n->b_in_ended = error == NULL ? 1 : -1;
}

static const struct stream_ops b_in_ops = {
	.on_data = b_in_data,
	.on_end = b_in_end,
};

/* a's direction of the relay: taken and dropped. */
static int
b_accept(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	(void)kind; (void)name; (void)size; (void)cause;
	stream_set_ops(st, &b_in_ops, stream_mux_data(mux));
	return 0;
}

static void
b_out_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct net	*n = stream_data(st);
	int		 i = st == n->b_out[0] ? 0 : 1;

	(void)bytes; (void)error;
	n->b_ended[i] = 1;
	n->b_out[i] = NULL;
}

/* Sends the pattern, tx_len bytes of it, as the credit allows. */
static void
b_out_writable(struct stream *st)
{
	struct net	*n = stream_data(st);
	uint8_t		 buf[64 << 10];
	size_t		 i, len, sent;

	while (n->tx_off < n->tx_len) {
		len = n->tx_len - n->tx_off < sizeof buf ?
		    n->tx_len - n->tx_off : sizeof buf;
		for (i = 0; i < len; i++)
			buf[i] = pattern(n->tx_off + i);
		if ((sent = stream_send(st, buf, len)) == 0)
			return;
		n->tx_off += sent;
	}
}

static const struct stream_ops b_out_ops = {
	.on_writable = b_out_writable,
	.on_end = b_out_end,
};

static void
net_start_window(struct net *n, int gate, uint32_t window)
{
	char	*cause = NULL;
	int	 sv[2];

	memset(n, 0, sizeof *n);
	n->np.window = window;
	n->np.a_accept = a_accept;
	n->np.b_accept = b_accept;
	n->np.data = n;
	netpair_start(&n->np, NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	n->local = sv[1];
	n->relay = relay_new(&n->np.loop, sv[0], "test relay", relay_cb, n);
	if (gate)
		relay_set_gate(n->relay, gate_bang, NULL);
	assert_int_equal(relay_open(n->relay, n->np.amux, "1/pages", NULL,
	    &cause), 0);
}

static void
net_start(struct net *n, int gate)
{
	net_start_window(n, gate, 0);
}

static void
net_end(struct net *n)
{
	int	i;

	if (n->relay != NULL)
		relay_free(n->relay);
	for (i = 0; i < 2; i++)
		if (n->b_out[i] != NULL)
			stream_abort(n->b_out[i], 1, "test over");
	close(n->local);
	netpair_end(&n->np);
}

/* What reached the relayed process, without blocking. */
static size_t
local_read(struct net *n, char *buf, size_t len)
{
	ssize_t	r = recv(n->local, buf, len, MSG_DONTWAIT);

	return r > 0 ? (size_t)r : 0;
}

static struct stream *
b_open(struct net *n)
{
	return stream_open(n->np.bmux, RELAY_STREAM_KIND, "1/pages", 0,
	    &b_out_ops, n);
}

static void
test_second_direction_refused(void **state)
{
	struct net	 n;
	char		 buf[64];

	(void)state;
	net_start(&n, 0);
	n.b_out[0] = b_open(&n);
	n.b_out[1] = b_open(&n);
	netpair_run(&n.np, 100);
	assert_int_equal(n.accepted, 1);
	assert_int_equal(n.refused, 1);
	assert_true(n.b_ended[1]);		/* the second one, refused */
	assert_false(n.b_ended[0]);
	assert_int_equal(stream_send(n.b_out[0], "hello", 5), 5);
	netpair_run(&n.np, 100);
	assert_int_equal(local_read(&n, buf, sizeof buf), 5);
	assert_memory_equal(buf, "hello", 5);
	/* The relay goes; the first stream must go with it (it used to
	 * stay attached to the freed relay). */
	relay_free(n.relay);
	n.relay = NULL;
	netpair_run(&n.np, 100);
	assert_true(n.b_ended[0]);
	net_end(&n);
}

static void
test_gate(void **state)
{
	struct net	 n;
	char		 buf[64];

	(void)state;
	net_start(&n, 1);
	n.b_out[0] = b_open(&n);
	netpair_run(&n.np, 100);
	assert_int_equal(stream_send(n.b_out[0], "abc!def", 7), 7);
	stream_finish(n.b_out[0]);
	netpair_run(&n.np, 100);
	/* Up to the gate's mark, and no end: the process still waits. */
	assert_int_equal(local_read(&n, buf, sizeof buf), 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(relay_gate_held(n.relay), 4);
	assert_int_equal(recv(n.local, buf, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	relay_gate_open(n.relay);
	netpair_run(&n.np, 100);
	assert_int_equal(local_read(&n, buf, sizeof buf), 4);
	assert_memory_equal(buf, "!def", 4);
	assert_int_equal(recv(n.local, buf, 1, MSG_DONTWAIT), 0);	/* EOF */
	net_end(&n);
}

/* Paused, the relay leaves what its process wrote in the socket; resumed,
 * it all goes. */
static void
test_pause_out(void **state)
{
	struct net	 n;

	(void)state;
	net_start(&n, 0);
	netpair_run(&n.np, 100);		/* b takes a's direction */
	relay_pause_out(n.relay, 1);
	assert_int_equal(send(n.local, "hello", 5, 0), 5);
	netpair_run(&n.np, 100);
	assert_int_equal(relay_bytes_out(n.relay), 0);
	assert_int_equal(n.b_got, 0);
	relay_pause_out(n.relay, 0);
	netpair_run(&n.np, 100);
	assert_int_equal(relay_bytes_out(n.relay), 5);
	assert_int_equal(n.b_got, 5);
	net_end(&n);
}

/* A tap that pauses the relay from inside its read, at its first call. */
static void
tap_pause_once(void *arg, uint8_t *data, size_t len)
{
	struct net	*n = arg;

	(void)data; (void)len;
	if (n->paused_by_tap++ == 0)
		relay_pause_out(n->relay, 1);
}

/* Paused from its own tap, mid-read: what it read still goes, nothing
 * more is read, and the process's EOF, seen after the resume, ends the
 * stream whole. */
static void
test_pause_from_tap(void **state)
{
	struct net	 n;

	(void)state;
	net_start(&n, 0);
	relay_set_tap(n.relay, tap_pause_once, NULL, &n);
	netpair_run(&n.np, 100);
	assert_int_equal(send(n.local, "hello", 5, 0), 5);
	netpair_run(&n.np, 100);
	assert_int_equal(n.paused_by_tap, 1);
	assert_int_equal(n.b_got, 5);		/* read before the pause */
	assert_int_equal(send(n.local, "world", 5, 0), 5);
	shutdown(n.local, SHUT_WR);
	netpair_run(&n.np, 100);
	assert_int_equal(n.b_got, 5);		/* paused: not read */
	assert_int_equal(n.b_in_ended, 0);
	relay_pause_out(n.relay, 0);
	netpair_run(&n.np, 100);
	assert_int_equal(n.b_got, 10);
	assert_int_equal(n.b_in_ended, 1);	/* the EOF, after the resume */
	net_end(&n);
}

/* Read what reached the process, checking it against the pattern from
 * *at on; the loop runs between reads.  Returns the bytes read. */
static size_t
local_check(struct net *n, size_t *at, size_t max)
{
	static char	 buf[256 << 10];
	size_t		 got, i, total = 0;

	while (total < max) {
		netpair_run(&n->np, 5);
		if ((got = local_read(n, buf, sizeof buf)) == 0)
			break;
		for (i = 0; i < got; i++)
			if ((uint8_t)buf[i] != pattern(*at + i))
				fail_msg("byte %zu is %#x, not %#x", *at + i,
				    (uint8_t)buf[i], pattern(*at + i));
		*at += got;
		total += got;
	}
	return total;
}

/* Let the peer send all of tx_len (nobody reads: what the socket does
 * not take waits in the relay, within the credit it granted). */
static void
send_all(struct net *n)
{
	int	i;

	b_out_writable(n->b_out[0]);
	for (i = 0; i < 200 && n->tx_off < n->tx_len; i++)
		netpair_run(&n->np, 50);
	assert_int_equal(n->tx_off, n->tx_len);
}

/* Read and check everything up to tx_len, from *at on. */
static void
read_all(struct net *n, size_t *at)
{
	int	i;

	for (i = 0; i < 500 && *at < n->tx_len; i++)
		if (local_check(n, at, n->tx_len) == 0)
			netpair_run(&n->np, 20);
	assert_int_equal(*at, n->tx_len);
}

/* A process that reads slower than the peer sends: the relay queues
 * several MiB (the stream's window, beyond the socket's buffer) across
 * its queue buffers, then hands them out whole and in order as the
 * process reads; twice, so the second round runs on buffers written out
 * and used again. */
static void
test_slow_reader(void **state)
{
	struct net	 n;
	size_t		 at = 0, before;
	int		 round;

	(void)state;
	net_start_window(&n, 0, 6u << 20);
	n.b_out[0] = b_open(&n);
	for (round = 1; round <= 2; round++) {
		before = n.tx_off;
		n.tx_len = (size_t)round * (9u << 20) / 2;
		/* The socket fills, the rest (MiB of it) waits in the relay. */
		send_all(&n);
		assert_true(relay_bytes_in(n.relay) - before < (1u << 20));
		/* Slowly, then all of it. */
		assert_true(local_check(&n, &at, 1u << 20) > 0);
		read_all(&n, &at);
		assert_int_equal(relay_bytes_in(n.relay), n.tx_len);
	}
	net_end(&n);
}

/* What queued for a slow process goes out a turn's worth at a time
 * (migrate/relay.c's RELAY_TURN, 4 MiB, plus the rest of one queue
 * buffer), however much its socket would take: the loop's other
 * callbacks wait for no more (a page server's socket took 8 MiB in one
 * callback).  Then the rest, whole and in order. */
#define TURN_MAX	((4u << 20) + (1u << 20))

static void
test_write_turn(void **state)
{
	struct net	 n;
	size_t		 at = 0, before, moved;
	int		 size = 32 << 20;

	(void)state;
	net_start_window(&n, 0, 16u << 20);
	n.b_out[0] = b_open(&n);
	n.tx_len = 12u << 20;
	send_all(&n);
	before = relay_bytes_in(n.relay);
	assert_true(n.tx_len - before > 2 * TURN_MAX);
	/* Room for all of it now: one turn of the loop. */
	if (setsockopt(relay_local_fd(n.relay), SOL_SOCKET, SO_SNDBUFFORCE,
	    &size, sizeof size) != 0) {
		net_end(&n);
		skip();		/* not root */
	}
	uv_run(&n.np.loop, UV_RUN_NOWAIT);
	moved = relay_bytes_in(n.relay) - before;
	assert_true(moved > 0);
	if (moved > TURN_MAX)
		fail_msg("one turn wrote %zu bytes to the socket", moved);
	read_all(&n, &at);
	net_end(&n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_direction_refused),
		cmocka_unit_test(test_gate),
		cmocka_unit_test(test_pause_out),
		cmocka_unit_test(test_pause_from_tap),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_write_turn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
