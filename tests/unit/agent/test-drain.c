/* agent/drain-target: where a drain moves the next instance: the up,
 * not drained peer with the fewest instances; ties by free memory when
 * known, else by name; none when every peer is down or drained. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/drain-target.h"

#define N(a)	(sizeof (a) / sizeof (a)[0])

static void
test_fewest(void **state)
{
	struct drain_host	h[] = {
		{ "h2", 1, 0, 3, 0 },
		{ "h3", 1, 0, 1, 0 },
		{ "h4", 1, 0, 2, 0 },
	};

	(void)state;
	assert_int_equal(drain_pick_target(h, N(h)), 1);
}

static void
test_skips_down_and_drained(void **state)
{
	struct drain_host	h[] = {
		{ "h2", 0, 0, 0, 0 },	/* down */
		{ "h3", 1, 1, 0, 0 },	/* drained */
		{ "h4", 1, 0, 9, 0 },
	};

	(void)state;
	assert_int_equal(drain_pick_target(h, N(h)), 2);
	h[2].drained = 1;
	assert_int_equal(drain_pick_target(h, N(h)), -1);
	assert_int_equal(drain_pick_target(h, 0), -1);
}

static void
test_ties(void **state)
{
	struct drain_host	h[] = {
		{ "h3", 1, 0, 1, 0 },
		{ "h2", 1, 0, 1, 0 },
	};

	(void)state;
	/* By name when the memory is not known. */
	assert_int_equal(drain_pick_target(h, N(h)), 1);
	/* The most free memory when both know it. */
	h[0].free_mib = 4096;
	h[1].free_mib = 1024;
	assert_int_equal(drain_pick_target(h, N(h)), 0);
	/* Only one knows: by name. */
	h[1].free_mib = 0;
	assert_int_equal(drain_pick_target(h, N(h)), 1);
}

/* What the drain does: one pick, then that host counts one more. */
static void
test_spreads(void **state)
{
	struct drain_host	h[] = {
		{ "h2", 1, 0, 0, 0 },
		{ "h3", 1, 0, 0, 0 },
	};
	int			i, got[4];

	(void)state;
	for (i = 0; i < 4; i++) {
		got[i] = drain_pick_target(h, N(h));
		h[got[i]].instances++;
	}
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2], 0);
	assert_int_equal(got[3], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fewest),
		cmocka_unit_test(test_skips_down_and_drained),
		cmocka_unit_test(test_ties),
		cmocka_unit_test(test_spreads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
