/* migrate/vm-policy: the convergence policy of a VM's live migration,
 * fed with made-up job readings (QEMU's numbers as ternd samples them
 * every 500 ms): this fakes the migration to test the decisions alone. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "migrate/vm-policy.h"

#define MIB	(1ULL << 20)

static struct vm_policy_conf
conf(int allow, int force, int ac)
{
	struct vm_policy_conf	c;

	memset(&c, 0, sizeof c);
	c.allow_postcopy = allow;
	c.force_postcopy = force;
	c.auto_converge = ac;
	c.stall_ms = 10000;
	c.deadline_ms = 60000;
	return c;
}

/* Feed readings every 500 ms from t0 on, remaining(t) and throttle(t);
 * return the first action that is not WAIT and when it came. */
static enum vm_policy_action
run(struct vm_policy *p, uint64_t t0, uint64_t until,
    uint64_t (*remaining)(uint64_t), int (*throttle)(uint64_t),
    uint64_t *when, char *why, size_t len)
{
	struct vm_policy_sample	s;
	enum vm_policy_action	a;
	uint64_t		t;

	for (t = t0; t <= until; t += 500) {
		s.now_ms = t;
		s.remaining = remaining(t);
		s.iteration = 1 + t / 2000;
		s.throttle = throttle != NULL ? throttle(t) : 0;
		if ((a = vm_policy_step(p, &s, why, len)) != VM_POLICY_WAIT) {
			*when = t;
			return a;
		}
	}
	*when = t;
	return VM_POLICY_WAIT;
}

static uint64_t
shrinking(uint64_t t)
{
	return t >= 8000 ? 0 : (8000 - t) * 16 * 1024;
}

/* A guest that dirties faster than the link: the remaining bytes swing
 * between 20 and 40 MiB with every pass and never get lower. */
static uint64_t
oscillating(uint64_t t)
{
	return (t / 500) % 2 ? 20 * MIB : 40 * MIB;
}

static int
throttle_rising(uint64_t t)
{
	/* QEMU raises it by 10 every 2 s from 20, up to 99. */
	int	v = 20 + (int)(t / 2000) * 10;

	return v > 99 ? 99 : v;
}

static void
converging_waits(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(1, 0, 1);
	uint64_t		when;
	char			why[256];

	vm_policy_init(&p, &c);
	assert_int_equal(run(&p, 0, 9000, shrinking, NULL, &when, why,
	    sizeof why), VM_POLICY_WAIT);
}

static void
stall_aborts_without_postcopy(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(0, 0, 0);
	uint64_t		when;
	char			why[256];

	vm_policy_init(&p, &c);
	assert_int_equal(run(&p, 0, 30000, oscillating, NULL, &when, why,
	    sizeof why), VM_POLICY_ABORT);
	/* The swing is not progress: the clock runs from the first best. */
	assert_true(when >= 10000 && when <= 11000);
	assert_non_null(strstr(why, "not converging"));
	assert_non_null(strstr(why, "aborting"));
}

static void
stall_switches_when_allowed(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(1, 0, 0);
	uint64_t		when;
	char			why[256];

	vm_policy_init(&p, &c);
	assert_int_equal(run(&p, 0, 30000, oscillating, NULL, &when, why,
	    sizeof why), VM_POLICY_POSTCOPY);
	assert_non_null(strstr(why, "post-copy"));
	/* Once switched, nothing more is decided. */
	vm_policy_postcopy(&p);
	assert_int_equal(run(&p, when, 90000, oscillating, NULL, &when, NULL,
	    0), VM_POLICY_WAIT);
}

static void
auto_converge_gets_its_chance(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(0, 0, 1);
	uint64_t		when;
	char			why[256];

	vm_policy_init(&p, &c);
	/* While QEMU keeps raising the throttle (it reaches 99% at 16 s),
	 * no verdict ... */
	assert_int_equal(run(&p, 0, 25500, oscillating, throttle_rising, &when,
	    why, sizeof why), VM_POLICY_WAIT);
	/* ... at its limit and still no progress for 10 s: abort. */
	assert_int_equal(run(&p, 26000, 60000 - 500, oscillating,
	    throttle_rising, &when, why, sizeof why), VM_POLICY_ABORT);
	assert_int_equal(when, 26000);
	assert_non_null(strstr(why, "throttle at its limit, 99%"));
}

/* A slow link: every pass takes 6 s, and QEMU raises the throttle only
 * every second pass (30, 50, 70, 90, 99%), 12 s apart: longer than the
 * 10 s without progress, which is not a throttle that is stuck. */
static uint64_t
slow_pass(uint64_t t)
{
	return 1 + t / 6000;
}

static int
throttle_every_second_pass(uint64_t t)
{
	uint64_t	it = slow_pass(t);
	int		v;

	if (it < 2)
		return 0;
	v = 30 + (int)((it - 2) / 2) * 20;
	return v > 99 ? 99 : v;
}

static int
throttle_stops_at_50(uint64_t t)
{
	int	v = throttle_every_second_pass(t);

	return v > 50 ? 50 : v;
}

/* run() with slow passes. */
static enum vm_policy_action
run_slow(struct vm_policy *p, uint64_t until, int (*throttle)(uint64_t),
    uint64_t *when, char *why, size_t len, struct vm_policy_sample *last)
{
	enum vm_policy_action	a;
	uint64_t		t;

	for (t = 0; t <= until; t += 500) {
		last->now_ms = t;
		last->remaining = oscillating(t);
		last->iteration = slow_pass(t);
		last->throttle = throttle(t);
		if ((a = vm_policy_step(p, last, why, len)) != VM_POLICY_WAIT) {
			*when = t;
			return a;
		}
	}
	*when = t;
	return VM_POLICY_WAIT;
}

static void
slow_passes_are_not_a_stuck_throttle(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(0, 0, 1);
	struct vm_policy_sample	last;
	uint64_t		when;
	char			why[320], want[64];

	c.deadline_ms = 0;
	vm_policy_init(&p, &c);
	/* 99% comes in pass 10 (54 s): until then QEMU is still acting. */
	assert_int_equal(run_slow(&p, 200000, throttle_every_second_pass,
	    &when, why, sizeof why, &last), VM_POLICY_ABORT);
	assert_true(when >= 54000 + 10000);
	/* QEMU's figures of the reading that decided, not older ones. */
	assert_int_equal(last.throttle, 99);
	assert_non_null(strstr(why, "throttle at its limit, 99%"));
	snprintf(want, sizeof want, "in pass %llu ",
	    (unsigned long long)last.iteration);
	assert_non_null(strstr(why, want));
}

static void
a_throttle_that_stops_rising_is_stuck(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(1, 0, 1);
	struct vm_policy_sample	last;
	uint64_t		when;
	char			why[320], want[64];

	c.deadline_ms = 0;
	vm_policy_init(&p, &c);
	/* 50% from pass 4 (18 s) on, never more: stuck once 3 passes went
	 * by without a raise (pass 7, 36 s). */
	assert_int_equal(run_slow(&p, 200000, throttle_stops_at_50, &when,
	    why, sizeof why, &last), VM_POLICY_POSTCOPY);
	assert_int_equal(when, 36000);
	assert_int_equal(last.iteration, 7);
	snprintf(want, sizeof want, "throttle at %d%%, not raised in 3 passes",
	    last.throttle);
	assert_non_null(strstr(why, want));
	assert_non_null(strstr(why, "in pass 7 "));
	assert_non_null(strstr(why, "switching to post-copy"));
}

static void
deadline_acts(void **state)
{
	struct vm_policy	p;
	struct vm_policy_conf	c = conf(1, 0, 0);
	uint64_t		when;
	char			why[256];

	c.stall_ms = 0;		/* only the deadline */
	c.deadline_ms = 20000;
	vm_policy_init(&p, &c);
	assert_int_equal(run(&p, 0, 30000, oscillating, NULL, &when, why,
	    sizeof why), VM_POLICY_POSTCOPY);
	assert_int_equal(when, 20000);
	assert_non_null(strstr(why, "deadline"));
}

static void
forced_postcopy_after_first_pass(void **state)
{
	struct vm_policy	 p;
	struct vm_policy_conf	 c = conf(1, 1, 1);
	struct vm_policy_sample	 s = { .now_ms = 500, .remaining = 90 * MIB,
				    .iteration = 1 };

	vm_policy_init(&p, &c);
	assert_int_equal(vm_policy_step(&p, &s, NULL, 0), VM_POLICY_WAIT);
	s.now_ms = 3000;
	s.iteration = 2;
	s.remaining = 30 * MIB;
	assert_int_equal(vm_policy_step(&p, &s, NULL, 0), VM_POLICY_POSTCOPY);
}

static void
nothing_before_the_first_pass(void **state)
{
	struct vm_policy	 p;
	struct vm_policy_conf	 c = conf(0, 0, 0);
	struct vm_policy_sample	 s = { 0 };

	c.deadline_ms = 1000;
	vm_policy_init(&p, &c);
	/* QEMU has not reported anything yet: even the deadline waits. */
	s.now_ms = 5000;
	assert_int_equal(vm_policy_step(&p, &s, NULL, 0), VM_POLICY_WAIT);
}

static void
deadline_scales_with_memory(void **state)
{
	assert_true(vm_policy_deadline(0) >= 60000);
	assert_true(vm_policy_deadline(4096 * MIB) >
	    vm_policy_deadline(128 * MIB));
	/* 128 MiB: about a minute and a half, not hours. */
	assert_true(vm_policy_deadline(128 * MIB) < 120000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(converging_waits),
		cmocka_unit_test(stall_aborts_without_postcopy),
		cmocka_unit_test(stall_switches_when_allowed),
		cmocka_unit_test(auto_converge_gets_its_chance),
		cmocka_unit_test(slow_passes_are_not_a_stuck_throttle),
		cmocka_unit_test(a_throttle_that_stops_rising_is_stuck),
		cmocka_unit_test(deadline_acts),
		cmocka_unit_test(forced_postcopy_after_first_pass),
		cmocka_unit_test(nothing_before_the_first_pass),
		cmocka_unit_test(deadline_scales_with_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
