/* daemon/loop-probe: a callback that runs 30 ms of the loop thread's
 * CPU, in the timer phase or among the poll's I/O callbacks, shows as
 * a longest callback of at least 30 ms; a reset forgets it; stopping
 * calls its close callback once, after the last of its handles.  Only
 * lower bounds: the CPU was used, whatever the machine's load. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/loop-probe.h"

#define BURN_MS	30

struct t {
	struct loop_probe	 probe;
	uv_timer_t		 timer;
	uv_async_t		 async;
};

static int	closed;		/* the probe's close callback, how often */

static uint64_t
thread_cpu_ns(void)
{
	struct timespec	ts;

	assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Run BURN_MS of this thread's CPU. */
static void
burn(void)
{
	uint64_t	t0 = thread_cpu_ns();

	while (thread_cpu_ns() - t0 < (uint64_t)BURN_MS * 1000000)
		;
}

static void
burn_timer(uv_timer_t *h)
{
	burn();
	uv_close((uv_handle_t *)h, NULL);
}

static void
burn_async(uv_async_t *h)
{
	burn();
	uv_close((uv_handle_t *)h, NULL);
}

static void
probe_closed(uv_handle_t *h)
{
	(void)h;
	closed++;
}

static void
check_burn(int io)
{
	struct t	 t;
	uv_loop_t	 loop;
	char		*s;

	memset(&t, 0, sizeof t);
	assert_int_equal(uv_loop_init(&loop), 0);
	loop_probe_start(&t.probe, &loop);
	assert_int_equal(loop_probe_longest_callback_ms(&t.probe), 0);
	if (io) {
		/* An async's callback runs among the poll's. */
		uv_async_init(&loop, &t.async, burn_async);
		uv_async_send(&t.async);
	} else {
		uv_timer_init(&loop, &t.timer);
		uv_timer_start(&t.timer, burn_timer, 5, 0);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	if (loop_probe_longest_callback_ms(&t.probe) < BURN_MS)
		fail_msg("a %d ms %s callback recorded as %llu ms", BURN_MS,
		    io ? "I/O" : "timer", (unsigned long long)
		    loop_probe_longest_callback_ms(&t.probe));
	assert_true(loop_probe_longest_wall_ms(&t.probe) >= BURN_MS);
	s = loop_probe_describe(&t.probe);
	assert_non_null(strstr(s, "longest callback"));
	free(s);

	loop_probe_reset(&t.probe);
	assert_int_equal(loop_probe_longest_callback_ms(&t.probe), 0);

	closed = 0;
	loop_probe_stop(&t.probe, probe_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(closed, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_timer_callback(void **state)
{
	(void)state;
	check_burn(0);
}

static void
test_io_callback(void **state)
{
	(void)state;
	check_burn(1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_callback),
		cmocka_unit_test(test_io_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
