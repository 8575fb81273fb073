/* migrate/relay over a real (unix socket) connection, in-process: bytes
 * cross both ways, a gate holds the peer's end of a protocol back until
 * it is opened, and a peer that opens its direction twice is refused
 * (the second stream used to replace the first, whose data then reached
 * a freed relay). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/conn.h"
#include "daemon/stream.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"

/* "A" runs a relay for its local socket; "B" plays the peer by hand. */
struct net {
	uv_loop_t		 loop;
	uv_pipe_t		 server;
	uv_timer_t		 timer;
	struct conn		*a, *b;
	struct stream_mux	*amux, *bmux;
	struct relay		*relay;
	int			 local;		/* the relayed process's end */
	int			 accepted, refused;
	struct stream		*b_out[2];	/* B's streams towards A */
	int			 b_ended[2];
	char			*b_error[2];
	int			 relay_done;
	int			 gate;		/* hold from a '!' on */
	int			 step;
};

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
	struct net	*n = arg;

	(void)error;
	n->relay_done++;
}

static int
a_accept(struct stream_mux *mux, struct stream *st, const char *kind,
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
	(void)p;
	stream_consumed(st, len);
}

static void
b_in_end(struct stream *st, uint64_t bytes, const char *error)
{
	(void)st; (void)bytes; (void)error;
}

static const struct stream_ops b_in_ops = {
	.on_data = b_in_data,
	.on_end = b_in_end,
};

static int
b_accept(struct stream_mux *mux, struct stream *st, const char *kind,
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

	(void)bytes;
	n->b_ended[i] = 1;
	n->b_out[i] = NULL;
	n->b_error[i] = error != NULL ? xstrdup(error) : NULL;
}

static void
b_out_writable(struct stream *st)
{
	(void)st;
}

static const struct stream_ops b_out_ops = {
	.on_writable = b_out_writable,
	.on_end = b_out_end,
};

static void
net_ready(struct conn *c)
{
	struct net	*n = conn_data(c);
	char		*cause = NULL;
	int		 sv[2];

	if (c == n->a) {
		n->amux = stream_mux_new(c, 256u << 10, a_accept, n);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		n->local = sv[1];
		n->relay = relay_new(&n->loop, sv[0], "test relay", relay_cb,
		    n);
		if (n->gate)
			relay_set_gate(n->relay, gate_bang, NULL);
		assert_int_equal(relay_open(n->relay, n->amux, "1/pages", NULL,
		    &cause), 0);
		return;
	}
	n->bmux = stream_mux_new(c, 256u << 10, b_accept, n);
}

static void
net_msg(struct conn *c, Envelope *env)
{
	struct net	*n = conn_data(c);

	stream_mux_msg(c == n->a ? n->amux : n->bmux, env);
}

static void
net_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t len)
{
	struct net	*n = conn_data(c);

	stream_mux_data_frame(c == n->a ? n->amux : n->bmux, ch, p, len);
}

static void
net_drain(struct conn *c)
{
	struct net	*n = conn_data(c);

	stream_mux_drain(c == n->a ? n->amux : n->bmux);
}

static void
net_close(struct conn *c, const char *cause)
{
	struct net	*n = conn_data(c);

	if (c == n->a) {
		stream_mux_free(n->amux, cause);
		n->amux = NULL;
	} else {
		stream_mux_free(n->bmux, cause);
		n->bmux = NULL;
	}
}

static const struct conn_ops net_ops = {
	.on_ready = net_ready,
	.on_msg = net_msg,
	.on_data = net_data,
	.on_drain = net_drain,
	.on_close = net_close,
};

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
	n->a = conn_new(&n->loop, &net_ops, &net_limits, "a", n);
	assert_int_equal(conn_accept(n->a, server, NULL, NULL), 0);
}

/* Read what reached the relayed process, without blocking. */
static size_t
local_read(struct net *n, char *buf, size_t len)
{
	ssize_t	r = recv(n->local, buf, len, MSG_DONTWAIT);

	return r > 0 ? (size_t)r : 0;
}

static void
net_start(struct net *n, int gate, const char *sock)
{
	memset(n, 0, sizeof *n);
	n->gate = gate;
	n->local = -1;
	assert_int_equal(uv_loop_init(&n->loop), 0);
	unlink(sock);
	assert_int_equal(uv_pipe_init(&n->loop, &n->server, 0), 0);
	n->server.data = n;
	assert_int_equal(uv_pipe_bind(&n->server, sock), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&n->server, 4,
	    net_connection), 0);
	n->b = conn_new(&n->loop, &net_ops, &net_limits, "b", n);
	assert_int_equal(conn_connect_unix(n->b, sock, NULL), 0);
	uv_timer_init(&n->loop, &n->timer);
	n->timer.data = n;
}

static void
stop_cb(uv_timer_t *t)
{
	struct net	*n = t->data;

	uv_stop(&n->loop);
}

static void
run_for(struct net *n, uint64_t ms)
{
	uv_timer_start(&n->timer, stop_cb, ms, 0);
	uv_run(&n->loop, UV_RUN_DEFAULT);
}

static void
net_end(struct net *n, const char *sock)
{
	int	i;

	if (n->relay != NULL)
		relay_free(n->relay);
	for (i = 0; i < 2; i++)
		if (n->b_out[i] != NULL)
			stream_abort(n->b_out[i], 1, "test over");
	close(n->local);
	conn_close(n->a, "done");
	conn_close(n->b, "done");
	uv_close((uv_handle_t *)&n->server, NULL);
	uv_close((uv_handle_t *)&n->timer, NULL);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&n->loop), 0);
	for (i = 0; i < 2; i++)
		free(n->b_error[i]);
	unlink(sock);
}

static void
test_second_direction_refused(void **state)
{
	struct net	 n;
	char		 sock[64], buf[64];
	size_t		 got;

	(void)state;
	snprintf(sock, sizeof sock, "/tmp/test-relay.%ld", (long)getpid());
	net_start(&n, 0, sock);
	run_for(&n, 100);
	assert_non_null(n.bmux);
	n.b_out[0] = stream_open(n.bmux, RELAY_STREAM_KIND, "1/pages", 0,
	    &b_out_ops, &n);
	n.b_out[1] = stream_open(n.bmux, RELAY_STREAM_KIND, "1/pages", 0,
	    &b_out_ops, &n);
	run_for(&n, 100);
	assert_int_equal(n.accepted, 1);
	assert_int_equal(n.refused, 1);
	assert_true(n.b_ended[1]);		/* the second one, refused */
	assert_false(n.b_ended[0]);
	assert_int_equal(stream_send(n.b_out[0], (const uint8_t *)"hello", 5),
	    5);
	run_for(&n, 100);
	got = local_read(&n, buf, sizeof buf);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "hello", 5);
	/* The relay goes; the first stream must go with it (it used to
	 * stay attached to the freed relay). */
	relay_free(n.relay);
	n.relay = NULL;
	run_for(&n, 100);
	assert_true(n.b_ended[0]);
	net_end(&n, sock);
}

static void
test_gate(void **state)
{
	struct net	 n;
	char		 sock[64], buf[64];
	size_t		 got;

	(void)state;
	snprintf(sock, sizeof sock, "/tmp/test-relay-g.%ld", (long)getpid());
	net_start(&n, 1, sock);
	run_for(&n, 100);
	n.b_out[0] = stream_open(n.bmux, RELAY_STREAM_KIND, "1/pages", 0,
	    &b_out_ops, &n);
	run_for(&n, 100);
	assert_int_equal(stream_send(n.b_out[0], (const uint8_t *)"abc!def",
	    7), 7);
	stream_finish(n.b_out[0]);
	run_for(&n, 100);
	/* Up to the gate's mark, and no end: the process still waits. */
	got = local_read(&n, buf, sizeof buf);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(relay_gate_held(n.relay), 4);
	assert_int_equal(local_read(&n, buf, sizeof buf), 0);
	assert_int_equal(recv(n.local, buf, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	relay_gate_open(n.relay);
	run_for(&n, 100);
	got = local_read(&n, buf, sizeof buf);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "!def", 4);
	assert_int_equal(recv(n.local, buf, 1, MSG_DONTWAIT), 0);	/* EOF */
	net_end(&n, sock);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_direction_refused),
		cmocka_unit_test(test_gate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
