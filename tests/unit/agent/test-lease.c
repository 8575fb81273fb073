/* agent/lease: the host's side of invariant 1 with a fake clock, and the
 * property that ties both sides together: however late the grant comes
 * back, the agent's stop falls before the coordinator can call the host
 * failed (this fakes the coordinator to test the rule alone); and the
 * rule for a copy held paused across lapses (held_copy_verdict). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "agent/lease.h"
#include "coord/membership.h"

static void
test_counted_from_sending(void **state)
{
	struct lease	l;

	(void)state;
	lease_init(&l, 500);
	assert_false(lease_valid(&l, 0));
	assert_int_equal(lease_stop_at(&l), 0);
	/* Sent at 1000, granted at 1900 (a slow answer): counted from 1000. */
	lease_granted(&l, 1000, 2000);
	assert_int_equal(lease_stop_at(&l), 2500);
	assert_true(lease_valid(&l, 2499));
	assert_false(lease_valid(&l, 2500));
}

static void
test_out_of_order(void **state)
{
	struct lease	l;

	(void)state;
	lease_init(&l, 500);
	lease_granted(&l, 3000, 2000);
	/* The grant of an older renewal arrives late: ignored. */
	lease_granted(&l, 2000, 2000);
	assert_int_equal(lease_stop_at(&l), 4500);
	lease_granted(&l, 3500, 2000);
	assert_int_equal(lease_stop_at(&l), 5000);
	lease_revoke(&l);
	assert_false(lease_valid(&l, 3600));
	/* After a revoke any grant counts again. */
	lease_granted(&l, 3700, 2000);
	assert_true(lease_valid(&l, 3800));
}

/* For any send time, answer delay and silence after it: when the
 * coordinator first calls the host failed, the agent had stopped. */
static void
test_agent_stops_first(void **state)
{
	const struct membership_conf	c = { 2000, 1000 };
	struct lease			l;
	struct host_lease		h;
	uint64_t			sent, delay, t, quiet = 0;

	(void)state;
	for (sent = 1000; sent < 1100; sent += 7)
		for (delay = 0; delay <= 1900; delay += 100) {
			lease_init(&l, 300);
			host_lease_init(&h, 0);
			/* The coordinator grants when the renewal arrives, at
			 * most delay after it was sent. */
			assert_int_equal(host_lease_renew(&h, sent + delay), 0);
			lease_granted(&l, sent, c.ttl_ms);
			for (t = sent; t < sent + 10000; t++) {
				host_lease_check(&h, &c, quiet, t);
				if (h.state == HOST_FAILED)
					break;
			}
			assert_int_equal(h.state, HOST_FAILED);
			assert_false(lease_valid(&l, t));
			assert_true(lease_stop_at(&l) + c.margin_ms <= t);
		}
}

/* A held copy: set aside at epoch 7, lapses 2, waiting until t=1000. */
static struct held_copy
held(uint64_t lapses0)
{
	struct held_copy	h = { .epoch = 7, .lapses0 = lapses0,
				    .listed_lapses = UINT64_MAX,
				    .until = 1000 };

	return h;
}

static void
test_held_no_lapse(void **state)
{
	struct held_copy	h = held(2);

	(void)state;
	/* No lapse since: a valid lease is enough. */
	assert_int_equal(held_copy_verdict(&h, 7, 1, 2, 10), HELD_RESUME);
	/* Not valid now: it waits, then is fenced for the lease. */
	assert_int_equal(held_copy_verdict(&h, 7, 0, 2, 999), HELD_WAIT);
	assert_int_equal(held_copy_verdict(&h, 7, 0, 2, 1000),
	    HELD_FENCE_NO_LEASE);
	/* Epoch 0 is no owner's: never resumed. */
	h.epoch = 0;
	assert_int_equal(held_copy_verdict(&h, 0, 1, 2, 10), HELD_WAIT);
}

static void
test_held_after_lapse(void **state)
{
	struct held_copy	h = held(2);

	(void)state;
	/* The lease lapsed (3) and is valid again: not enough... */
	assert_int_equal(held_copy_verdict(&h, 7, 1, 3, 10), HELD_WAIT);
	assert_int_equal(held_copy_verdict(&h, 7, 1, 3, 1000),
	    HELD_FENCE_NO_GRANT);
	/* ... until a grant since lists it at its epoch. */
	h.listed_lapses = 3;
	assert_int_equal(held_copy_verdict(&h, 7, 1, 3, 10), HELD_RESUME);
	/* A listing before a later lapse does not count. */
	assert_int_equal(held_copy_verdict(&h, 7, 1, 4, 10), HELD_WAIT);
	/* No valid lease at the start: only a listing counts. */
	h = held(UINT64_MAX);
	assert_int_equal(held_copy_verdict(&h, 7, 1, 2, 10), HELD_WAIT);
	h.listed_lapses = 2;
	assert_int_equal(held_copy_verdict(&h, 7, 1, 2, 10), HELD_RESUME);
	assert_int_equal(held_copy_verdict(&h, 7, 0, 2, 10), HELD_WAIT);
}

static void
test_held_failed_over(void **state)
{
	struct held_copy	h = held(2);

	(void)state;
	/* A grant at another epoch: fenced at once, lease or not, listed
	 * or not, time left or not. */
	h.listed_lapses = 2;
	assert_int_equal(held_copy_verdict(&h, 8, 1, 2, 10),
	    HELD_FENCE_EPOCH);
	assert_int_equal(held_copy_verdict(&h, 8, 0, 5, 10),
	    HELD_FENCE_EPOCH);
	assert_int_equal(held_copy_verdict(&h, 6, 1, 2, 10),
	    HELD_FENCE_EPOCH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counted_from_sending),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_agent_stops_first),
		cmocka_unit_test(test_held_no_lapse),
		cmocka_unit_test(test_held_after_lapse),
		cmocka_unit_test(test_held_failed_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
