/* coord/membership: when the coordinator may call a silent host failed,
 * fed with a fake monotonic clock (this fakes the hosts' renewals to test
 * the rules alone). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "coord/membership.h"

static const struct membership_conf	conf = { 2000, 1000 };

/* Renewed every 500 ms: up for good. */
static void
test_renewing_stays_up(void **state)
{
	struct host_lease	l;
	uint64_t		t, quiet = membership_quiet_until(&conf, 0);

	(void)state;
	host_lease_init(&l, 0);
	for (t = 0; t < 60000; t += 500) {
		assert_int_equal(host_lease_renew(&l, t), 0);
		host_lease_check(&l, &conf, quiet, t + 499);
		assert_int_equal(l.state, HOST_UP);
	}
}

/* Silent after a grant at g: up until g + ttl, suspect until g + ttl +
 * margin, failed from then on; the next change is announced exactly. */
static void
test_silence(void **state)
{
	struct host_lease	l;
	uint64_t		g = 10000, quiet = membership_quiet_until(&conf, 0);

	(void)state;
	host_lease_init(&l, 0);
	assert_int_equal(host_lease_renew(&l, g), 0);
	assert_int_equal(host_lease_check(&l, &conf, quiet, g + 1999), 0);
	assert_int_equal(l.state, HOST_UP);
	assert_int_equal(host_lease_next(&l, &conf, quiet, g + 1999), 1);
	assert_int_equal(host_lease_check(&l, &conf, quiet, g + 2000), 1);
	assert_int_equal(l.state, HOST_SUSPECT);
	assert_int_equal(host_lease_next(&l, &conf, quiet, g + 2000), 1000);
	host_lease_check(&l, &conf, quiet, g + 2999);
	assert_int_equal(l.state, HOST_SUSPECT);
	assert_int_equal(host_lease_check(&l, &conf, quiet, g + 3000), 1);
	assert_int_equal(l.state, HOST_FAILED);
	assert_int_equal(host_lease_next(&l, &conf, quiet, g + 3000),
	    UINT64_MAX);
}

/* A suspect host that renews in time is up again; a failed one is not
 * taken back by a renewal: it must register again. */
static void
test_renew_after(void **state)
{
	struct host_lease	l;
	uint64_t		quiet = membership_quiet_until(&conf, 0);

	(void)state;
	host_lease_init(&l, 0);
	host_lease_renew(&l, 5000);
	host_lease_check(&l, &conf, quiet, 7500);
	assert_int_equal(l.state, HOST_SUSPECT);
	assert_int_equal(host_lease_renew(&l, 7600), 0);
	assert_int_equal(l.state, HOST_UP);
	host_lease_check(&l, &conf, quiet, 20000);
	assert_int_equal(l.state, HOST_FAILED);
	assert_int_equal(host_lease_renew(&l, 20001), -1);
	assert_int_equal(l.state, HOST_FAILED);
	host_lease_check(&l, &conf, quiet, 90000);
	assert_int_equal(l.state, HOST_FAILED);
	host_lease_rejoin(&l, 90001);
	assert_int_equal(l.state, HOST_UP);
	assert_int_equal(l.granted_ms, 90001);
}

/* A coordinator that starts at s decides nothing before s + ttl +
 * margin, even for a host it has never heard from. */
static void
test_quiet_period(void **state)
{
	struct host_lease	l;
	uint64_t		s = 100000;
	uint64_t		quiet = membership_quiet_until(&conf, s);

	(void)state;
	host_lease_init(&l, s);
	host_lease_check(&l, &conf, quiet, s + 2500);
	assert_int_equal(l.state, HOST_SUSPECT);
	host_lease_check(&l, &conf, quiet, quiet - 1);
	assert_int_equal(l.state, HOST_SUSPECT);
	host_lease_check(&l, &conf, quiet, quiet);
	assert_int_equal(l.state, HOST_FAILED);
	/* A long quiet period holds a host whose grant is long past. */
	host_lease_init(&l, 0);
	host_lease_check(&l, &conf, 50000, 10000);
	assert_int_equal(l.state, HOST_SUSPECT);
	assert_int_equal(host_lease_next(&l, &conf, 50000, 10000), 40000);
}

/* A fence's success decides at once and holds until a rejoin. */
static void
test_fenced(void **state)
{
	struct host_lease	l;
	uint64_t		quiet = membership_quiet_until(&conf, 0);

	(void)state;
	host_lease_init(&l, 0);
	host_lease_renew(&l, 4000);
	host_lease_fenced(&l, 4100);
	assert_int_equal(l.state, HOST_FENCED);
	assert_int_equal(host_lease_check(&l, &conf, quiet, 4200), 0);
	assert_int_equal(host_lease_renew(&l, 4300), -1);
	assert_int_equal(l.state, HOST_FENCED);
}

static void
test_conf_bounds(void **state)
{
	struct membership_conf	c;
	char			*cause = NULL;

	(void)state;
	c = (struct membership_conf){ 2000, 1000 };
	assert_int_equal(membership_conf_check(&c, &cause), 0);
	c = (struct membership_conf){ 100, 1000 };
	assert_int_equal(membership_conf_check(&c, &cause), -1);
	free(cause);
	cause = NULL;
	c = (struct membership_conf){ 2000, 100 };
	assert_int_equal(membership_conf_check(&c, &cause), -1);
	assert_non_null(strstr(cause, "tenth"));
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_renewing_stays_up),
		cmocka_unit_test(test_silence),
		cmocka_unit_test(test_renew_after),
		cmocka_unit_test(test_quiet_period),
		cmocka_unit_test(test_fenced),
		cmocka_unit_test(test_conf_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
