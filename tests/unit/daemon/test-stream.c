/* daemon/stream over a real (unix socket) connection, in-process: a bulk
 * stream behind more than 64 idle ones (open, with credit, nothing to
 * send: relays waiting on their process) is still woken when the
 * connection drains.  The drain used to wake only the first 64. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drain_wakes_every_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
