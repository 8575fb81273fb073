/* migrate/phases: the phase order and the failure table, checked against
 * the rules written out here a second time (phases.h): what a failure
 * means before the commit point, at it, past it, and in post-copy. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "migrate/phases.h"

#define S	MIG_ROLE_SOURCE
#define T	MIG_ROLE_TARGET

static const enum mig_phase	source_path_stopcopy[] = {
	MIG_PH_OFFERED, MIG_PH_PREPARING, MIG_PH_FREEZING, MIG_PH_TRANSFER,
	MIG_PH_RESTORING, MIG_PH_COMMITTING, MIG_PH_COMMITTED, MIG_PH_DONE,
};
static const enum mig_phase	source_path_postcopy[] = {
	MIG_PH_OFFERED, MIG_PH_FREEZING, MIG_PH_TRANSFER, MIG_PH_RESTORING,
	MIG_PH_COMMITTED, MIG_PH_PAGING, MIG_PH_DONE,
};
static const enum mig_phase	source_path_vm_postcopy[] = {
	MIG_PH_OFFERED, MIG_PH_TRANSFER, MIG_PH_PAGING, MIG_PH_DONE,
};
static const enum mig_phase	target_path[] = {
	MIG_PH_OFFERED, MIG_PH_READY, MIG_PH_RESTORING, MIG_PH_HELD,
	MIG_PH_COMMITTED, MIG_PH_PAGING, MIG_PH_DONE,
};
static const enum mig_phase	target_path_vm[] = {
	MIG_PH_OFFERED, MIG_PH_READY, MIG_PH_COMMITTED, MIG_PH_DONE,
};

static void
walk(enum mig_role role, const enum mig_phase *p, size_t n)
{
	size_t	i, j;

	for (i = 0; i + 1 < n; i++) {
		assert_true(mig_phase_next_ok(role, p[i], p[i + 1]));
		/* Never back to an earlier phase of the same path. */
		for (j = 0; j <= i; j++)
			assert_false(mig_phase_next_ok(role, p[i + 1], p[j]));
	}
}

static void
test_paths(void **state)
{
	(void)state;
	walk(S, source_path_stopcopy, 8);
	walk(S, source_path_postcopy, 7);
	walk(S, source_path_vm_postcopy, 4);
	walk(T, target_path, 7);
	walk(T, target_path_vm, 4);
	/* The other role's phases are not ours. */
	assert_false(mig_phase_next_ok(S, MIG_PH_OFFERED, MIG_PH_HELD));
	assert_false(mig_phase_next_ok(T, MIG_PH_READY, MIG_PH_FREEZING));
	assert_false(mig_phase_next_ok(T, MIG_PH_HELD, MIG_PH_COMMITTING));
}

/* A rollback starts only before the commit point; nothing leaves DONE or
 * FAILED; the phase that awaits the driver never ends by itself. */
static void
test_endings(void **state)
{
	enum mig_phase	ph;
	int		role;

	(void)state;
	for (role = S; role <= T; role++)
		for (ph = 0; ph < MIG_PH_COUNT; ph++) {
			int open = ph != MIG_PH_COMMITTING &&
			    ph != MIG_PH_COMMITTED && ph != MIG_PH_PAGING &&
			    ph != MIG_PH_DONE && ph != MIG_PH_ROLLING_BACK &&
			    ph != MIG_PH_FAILED;

			assert_int_equal(mig_phase_next_ok(role, ph,
			    MIG_PH_ROLLING_BACK), open);
			assert_int_equal(mig_phase_committed(ph),
			    ph == MIG_PH_COMMITTED || ph == MIG_PH_PAGING ||
			    ph == MIG_PH_DONE);
		}
	assert_true(mig_phase_next_ok(S, MIG_PH_ROLLING_BACK, MIG_PH_FAILED));
	assert_false(mig_phase_next_ok(S, MIG_PH_ROLLING_BACK, MIG_PH_DONE));
	assert_false(mig_phase_next_ok(S, MIG_PH_COMMITTING, MIG_PH_FAILED));
	/* The store refused the move: back to the source. */
	assert_true(mig_phase_next_ok(S, MIG_PH_RESTORING, MIG_PH_RECORDING));
	assert_true(mig_phase_next_ok(S, MIG_PH_RECORDING, MIG_PH_COMMITTING));
	assert_true(mig_phase_next_ok(S, MIG_PH_RECORDING, MIG_PH_PAGING));
	assert_false(mig_phase_next_ok(T, MIG_PH_HELD, MIG_PH_RECORDING));
	assert_true(mig_phase_next_ok(S, MIG_PH_COMMITTED, MIG_PH_FAILED));
	assert_true(mig_phase_next_ok(T, MIG_PH_PAGING, MIG_PH_FAILED));
	for (ph = 0; ph < MIG_PH_COUNT; ph++) {
		assert_false(mig_phase_next_ok(S, MIG_PH_DONE, ph));
		assert_false(mig_phase_next_ok(T, MIG_PH_FAILED, ph));
	}
	assert_false(mig_phase_next_ok(S, MIG_PH_COUNT, MIG_PH_DONE));
}

/* The failure table, row by row. */
static void
test_verdicts(void **state)
{
	enum mig_fail	f;
	enum mig_phase	ph;

	(void)state;
	for (f = 0; f < MIG_FAIL_COUNT; f++) {
		/* Source before the commit point: always back to it. */
		for (ph = MIG_PH_OFFERED; ph <= MIG_PH_RESTORING; ph++)
			if (ph != MIG_PH_READY && ph != MIG_PH_HELD)
				assert_int_equal(mig_phase_verdict(S, ph, f),
				    MIG_V_ROLLBACK);
		/* Target before it: the incoming copy goes; except that the
		 * operator's cancel is the source's to act on. */
		for (ph = MIG_PH_OFFERED; ph <= MIG_PH_HELD; ph++)
			if (ph == MIG_PH_OFFERED || ph == MIG_PH_READY ||
			    ph == MIG_PH_RESTORING || ph == MIG_PH_HELD)
				assert_int_equal(mig_phase_verdict(T, ph, f),
				    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE :
				    MIG_V_DISCARD);
		/* Past it the target keeps it, whatever happens. */
		assert_int_equal(mig_phase_verdict(T, MIG_PH_COMMITTED, f),
		    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE : MIG_V_KEEP);
		/* Post-copy past the switch: the memory is split. */
		assert_int_equal(mig_phase_verdict(S, MIG_PH_PAGING, f),
		    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE : MIG_V_SPLIT);
		assert_int_equal(mig_phase_verdict(T, MIG_PH_PAGING, f),
		    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE : MIG_V_SPLIT);
		/* At the commit point the source waits for its own copy's
		 * fate before it can say anything. */
		assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTING, f),
		    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE : MIG_V_AWAIT);
		/* So while the coordinator's store is asked: it decides. */
		assert_int_equal(mig_phase_verdict(S, MIG_PH_RECORDING, f),
		    f == MIG_FAIL_CANCEL ? MIG_V_IGNORE : MIG_V_AWAIT);
		/* Ended: nothing more to decide. */
		assert_int_equal(mig_phase_verdict(S, MIG_PH_DONE, f),
		    MIG_V_IGNORE);
		assert_int_equal(mig_phase_verdict(T, MIG_PH_FAILED, f),
		    MIG_V_IGNORE);
		assert_int_equal(mig_phase_verdict(S, MIG_PH_ROLLING_BACK, f),
		    MIG_V_IGNORE);
	}
	/* Committed, unconfirmed: never resumed here, never guessed. */
	assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTED,
	    MIG_FAIL_LINK), MIG_V_UNCERTAIN);
	assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTED,
	    MIG_FAIL_TIMEOUT), MIG_V_UNCERTAIN);
	assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTED,
	    MIG_FAIL_PEER_ABORT), MIG_V_UNCERTAIN);
	assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTED,
	    MIG_FAIL_SHUTDOWN), MIG_V_UNCERTAIN);
	assert_int_equal(mig_phase_verdict(S, MIG_PH_COMMITTED,
	    MIG_FAIL_CANCEL), MIG_V_IGNORE);
	assert_int_equal(mig_phase_verdict(S, MIG_PH_OFFERED, MIG_FAIL_COUNT),
	    MIG_V_IGNORE);
}

/* The promise itself: for no phase and no failure does the table leave
 * the instance with no owner (a source that neither rolls back nor
 * knows the target has it), nor with two (a target that discards past
 * the commit, or a source that rolls back past it). */
static void
test_never_lost_never_twice(void **state)
{
	enum mig_phase		ph;
	enum mig_fail		f;
	enum mig_verdict	v;

	(void)state;
	for (ph = 0; ph < MIG_PH_COUNT; ph++)
		for (f = 0; f < MIG_FAIL_COUNT; f++) {
			v = mig_phase_verdict(S, ph, f);
			if (mig_phase_committed(ph) ||
			    ph == MIG_PH_COMMITTING || ph == MIG_PH_RECORDING)
				assert_int_not_equal(v, MIG_V_ROLLBACK);
			v = mig_phase_verdict(T, ph, f);
			if (mig_phase_committed(ph))
				assert_int_not_equal(v, MIG_V_DISCARD);
			assert_true(v == MIG_V_IGNORE || v == MIG_V_DISCARD ||
			    v == MIG_V_KEEP || v == MIG_V_SPLIT);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_endings),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_never_lost_never_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
