/* agent/lease: the host's side of invariant 1 with a fake clock, and the
 * property that ties both sides together: however late the grant comes
 * back, the agent's stop falls before the coordinator can call the host
 * failed (this fakes the coordinator to test the rule alone). */
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counted_from_sending),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_agent_stops_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
