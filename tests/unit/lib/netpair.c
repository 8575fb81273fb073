#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/lib/netpair.h"

static const struct conn_limits netpair_limits = {
	.max_frame = 64u << 10,
	.send_max = 192u << 10,
	.handshake_ms = 5000,
};

static struct stream_mux **
netpair_mux(struct netpair *np, struct conn *c)
{
	return c == np->a ? &np->amux : &np->bmux;
}

static void
netpair_ready(struct conn *c)
{
	struct netpair	*np = conn_data(c);

	*netpair_mux(np, c) = stream_mux_new(c, np->window != 0 ? np->window :
	    256u << 10, c == np->a ?
	    np->a_accept : np->b_accept, np->data);
	if (np->amux != NULL && np->bmux != NULL && np->on_ready != NULL)
		np->on_ready(np);
}

static void
netpair_msg(struct conn *c, Envelope *env)
{
	stream_mux_msg(*netpair_mux(conn_data(c), c), env);
}

static void
netpair_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t len)
{
	stream_mux_data_frame(*netpair_mux(conn_data(c), c), ch, p, len);
}

static void
netpair_drain(struct conn *c)
{
	stream_mux_drain(*netpair_mux(conn_data(c), c));
}

static void
netpair_close(struct conn *c, const char *cause)
{
	struct stream_mux	**mux = netpair_mux(conn_data(c), c);

	stream_mux_free(*mux, cause);
	*mux = NULL;
}

static const struct conn_ops netpair_ops = {
	.on_ready = netpair_ready,
	.on_msg = netpair_msg,
	.on_data = netpair_data,
	.on_drain = netpair_drain,
	.on_close = netpair_close,
};

static const struct conn_limits *netpair_lim = &netpair_limits;

static void
netpair_connection(uv_stream_t *server, int status)
{
	struct netpair	*np = server->data;

	assert_int_equal(status, 0);
	np->a = conn_new(&np->loop, &netpair_ops, netpair_lim, "a", np);
	assert_int_equal(conn_accept(np->a, server, NULL, NULL), 0);
}

static void
netpair_stop(uv_timer_t *t)
{
	struct netpair	*np = t->data;

	uv_stop(&np->loop);
}

void
netpair_run(struct netpair *np, uint64_t ms)
{
	uv_timer_start(&np->timer, netpair_stop, ms, 0);
	uv_run(&np->loop, UV_RUN_DEFAULT);
}

void
netpair_start(struct netpair *np, const struct conn_limits *limits)
{
	int	i;

	netpair_lim = limits != NULL ? limits : &netpair_limits;
	snprintf(np->sock, sizeof np->sock, "/tmp/tern-netpair.%ld.%p",
	    (long)getpid(), (void *)np);
	assert_int_equal(uv_loop_init(&np->loop), 0);
	unlink(np->sock);
	assert_int_equal(uv_pipe_init(&np->loop, &np->server, 0), 0);
	np->server.data = np;
	assert_int_equal(uv_pipe_bind(&np->server, np->sock), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&np->server, 4,
	    netpair_connection), 0);
	np->b = conn_new(&np->loop, &netpair_ops, netpair_lim, "b", np);
	assert_int_equal(conn_connect_unix(np->b, np->sock, NULL), 0);
	uv_timer_init(&np->loop, &np->timer);
	np->timer.data = np;
	for (i = 0; i < 50 && (np->amux == NULL || np->bmux == NULL); i++)
		netpair_run(np, 20);
	assert_non_null(np->amux);
	assert_non_null(np->bmux);
}

void
netpair_end(struct netpair *np)
{
	conn_close(np->a, "done");
	conn_close(np->b, "done");
	uv_close((uv_handle_t *)&np->server, NULL);
	uv_close((uv_handle_t *)&np->timer, NULL);
	uv_run(&np->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&np->loop), 0);
	unlink(np->sock);
}
