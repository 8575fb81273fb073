/* migrate/engine: routing, the phase order, the failure verdicts, the
 * no-progress timeout and the lifetime of migrations, with a FAKE driver
 * (it records which op the engine called, and may finish the migration
 * as a real one would) and a FAKE transport (it records the steps the
 * engine sends instead of reaching a peer).  No CRIU, no libvirt, no
 * mesh: the engine alone.  The timeout is driven through the uv loop with
 * short timeouts; the assertions are on events (which op, how often),
 * never on how long anything took. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/xmalloc.h"
#include "migrate/engine.h"

enum op {
	OP_NONE, OP_ROLLBACK, OP_DISCARD, OP_AWAIT, OP_UNCERTAIN, OP_SPLIT,
	OP_COUNT,
};

/* What the fake driver saw. */
static struct {
	int		 ops[OP_COUNT];
	enum op		 last_op;
	enum mig_fail	 last_fail;
	char		 last_why[256];
	struct mig	*last_m;
	int		 finish_on_op;	/* ops finish m, as a driver would */
	int		 refuse;	/* begin ops refuse */
	int		 source_begins, target_begins, steps, releases;
	int		 growing;	/* bytes_moved grows at every look */
	uint64_t	 bytes;
	int		 byte_looks;
	struct mig	*began;
} drv_seen;

/* What the fake transport was asked to send. */
static struct {
	int		 steps;
	uint64_t	 id;
	int		 step;
	char		 error[256];
	char		 peer[64];
} sent;

/* What the operator's terminal got. */
static struct {
	int		 done, progress, code;
	char		 error[256];
	int		 body;
} op_seen;

static int
fake_send(void *ctx, const char *peer, const Envelope *env, char **cause)
{
	(void)ctx;
	(void)cause;
	if (env->body_case != TERN__ENVELOPE__BODY_MIGRATE_STEP)
		return 0;
	sent.steps++;
	sent.id = env->migrate_step->migration;
	sent.step = env->migrate_step->step;
	snprintf(sent.error, sizeof sent.error, "%s",
	    env->migrate_step->error != NULL ? env->migrate_step->error : "");
	snprintf(sent.peer, sizeof sent.peer, "%s", peer);
	return 0;
}

static void
fake_done(void *arg, const Envelope *reply, int code, const char *error)
{
	(void)arg;
	op_seen.done++;
	op_seen.code = code;
	op_seen.body = reply != NULL ? (int)reply->body_case : 0;
	snprintf(op_seen.error, sizeof op_seen.error, "%s",
	    error != NULL ? error : "");
}

static void
fake_progress(void *arg, const Envelope *reply, int code, const char *error)
{
	(void)arg;
	(void)reply;
	(void)code;
	(void)error;
	op_seen.progress++;
}

static int
fake_source_begin(struct mig *m, const Tern__MigrateRequest *r, int *code,
    char **cause)
{
	(void)r;
	drv_seen.source_begins++;
	if (drv_seen.refuse) {
		*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
		*cause = xstrdup("refused by the fake driver");
		return -1;
	}
	m->priv = xstrdup("source state");
	drv_seen.began = m;
	return 0;
}

static int
fake_target_begin(struct mig *m, const Tern__MigrateOffer *o, char **cause)
{
	(void)o;
	drv_seen.target_begins++;
	if (drv_seen.refuse) {
		*cause = xstrdup("no room for it");
		return -1;
	}
	m->priv = xstrdup("target state");
	drv_seen.began = m;
	return 0;
}

static void
fake_step(struct mig *m, const Tern__MigrateStep *s)
{
	(void)m;
	(void)s;
	drv_seen.steps++;
}

static void
fake_op(enum op op, struct mig *m, enum mig_fail f, const char *why)
{
	drv_seen.ops[op]++;
	drv_seen.last_op = op;
	drv_seen.last_fail = f;
	drv_seen.last_m = m;
	snprintf(drv_seen.last_why, sizeof drv_seen.last_why, "%s", why);
	if (drv_seen.finish_on_op)
		mig_finish(m, why);
}

static void
fake_rollback(struct mig *m, enum mig_fail f, const char *why)
{
	fake_op(OP_ROLLBACK, m, f, why);
}

static void
fake_discard(struct mig *m, enum mig_fail f, const char *why)
{
	fake_op(OP_DISCARD, m, f, why);
}

static void
fake_await(struct mig *m, enum mig_fail f, const char *why)
{
	fake_op(OP_AWAIT, m, f, why);
}

static void
fake_uncertain(struct mig *m, enum mig_fail f, const char *why)
{
	fake_op(OP_UNCERTAIN, m, f, why);
}

static void
fake_split(struct mig *m, enum mig_fail f, const char *why)
{
	fake_op(OP_SPLIT, m, f, why);
}

static uint64_t
fake_bytes(struct mig *m)
{
	(void)m;
	drv_seen.byte_looks++;
	if (drv_seen.growing)
		drv_seen.bytes += 4096;
	return drv_seen.bytes;
}

static const char *
fake_state_name(struct mig *m)
{
	(void)m;
	return "faking";
}

static void
fake_release(struct mig *m)
{
	drv_seen.releases++;
	free(m->priv);
}

/* The fake driver takes one kind; no driver has the other. */
#define FAKE_KIND	TERN__INSTANCE_KIND__KIND_CONTAINER
#define NO_KIND		TERN__INSTANCE_KIND__KIND_VM

static const struct mig_driver	fake_driver = {
	.kind = FAKE_KIND,
	.name = "fake",
	.source_begin = fake_source_begin,
	.target_begin = fake_target_begin,
	.step = fake_step,
	.rollback = fake_rollback,
	.discard = fake_discard,
	.await = fake_await,
	.uncertain = fake_uncertain,
	.split = fake_split,
	.bytes_moved = fake_bytes,
	.state_name = fake_state_name,
	.release = fake_release,
};

static uv_loop_t		 loop;
static struct mig_engine	*engine;

static struct mig_engine *
engine_make(uint32_t timeout_ms)
{
	struct mig_engine_conf	conf = {
		.host_name = "h1",
		.timeout_ms = timeout_ms,
		.boot_id = 1,
	};
	struct mig_transport	tr = { .send = fake_send };

	return mig_engine_new(&loop, &conf, &tr);
}

static int
setup(void **state)
{
	(void)state;
	memset(&drv_seen, 0, sizeof drv_seen);
	memset(&sent, 0, sizeof sent);
	memset(&op_seen, 0, sizeof op_seen);
	uv_loop_init(&loop);
	/* Long enough never to fire in the tests that do not wait for it. */
	engine = engine_make(600000);
	mig_engine_register(engine, &fake_driver);
	return 0;
}

static void
finish_one(struct mig *m, void *arg)
{
	(void)arg;
	mig_finish(m, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	drv_seen.finish_on_op = 1;
	mig_engine_shutdown(engine);
	mig_engine_each(engine, finish_one, NULL);	/* past the commit */
	mig_engine_free(engine);
	uv_run(&loop, UV_RUN_DEFAULT);	/* the timers close */
	assert_int_equal(uv_loop_close(&loop), 0);
	return 0;
}

/* A source migration of the fake kind, taken on. */
static struct mig *
start_source(const char *name, const char *to)
{
	Tern__MigrateRequest	r = TERN__MIGRATE_REQUEST__INIT;

	r.name = (char *)name;
	r.to = (char *)to;
	drv_seen.began = NULL;
	mig_engine_start(engine, FAKE_KIND, &r, fake_progress, fake_done, NULL);
	return drv_seen.began;
}

static void
offer(const char *peer, uint64_t id, Tern__InstanceKind kind,
    const char *name)
{
	Envelope		env;
	Tern__MigrateOffer	o = TERN__MIGRATE_OFFER__INIT;

	msg_init(&env, 0);
	o.migration = id;
	o.kind = kind;
	o.name = (char *)name;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	assert_int_equal(mig_engine_on_msg(engine, peer, &env), 1);
}

static struct mig *
start_target(const char *peer, uint64_t id, const char *name)
{
	drv_seen.began = NULL;
	offer(peer, id, FAKE_KIND, name);
	return drv_seen.began;
}

static void
step(const char *peer, uint64_t id, Tern__MigrateStep__Step st,
    const char *error)
{
	Envelope		env;
	Tern__MigrateStep	s = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	s.migration = id;
	s.step = st;
	s.error = (char *)error;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &s;
	assert_int_equal(mig_engine_on_msg(engine, peer, &env), 1);
}

/* A step to an earlier phase, or to the other role's, is refused and
 * changes nothing; forward along the order is taken. */
static void
test_backward_refused(void **state)
{
	struct mig	*m;

	(void)state;
	assert_non_null(m = start_source("c1", "h2"));
	assert_int_equal(mig_set_phase(m, MIG_PH_FREEZING), 0);
	assert_int_equal(mig_set_phase(m, MIG_PH_TRANSFER), 0);
	assert_int_equal(mig_set_phase(m, MIG_PH_FREEZING), -1);
	assert_int_equal(m->phase, MIG_PH_TRANSFER);
	assert_int_equal(mig_set_phase(m, MIG_PH_OFFERED), -1);
	assert_int_equal(mig_set_phase(m, MIG_PH_HELD), -1);	/* target's */
	assert_int_equal(m->phase, MIG_PH_TRANSFER);
	assert_int_equal(mig_set_phase(m, MIG_PH_TRANSFER), 0);	/* the same */
	assert_int_equal(mig_set_phase(m, MIG_PH_RESTORING), 0);
	assert_int_equal(mig_set_phase(m, MIG_PH_COMMITTING), 0);
	/* Past the commit point a rollback is refused. */
	assert_int_equal(mig_set_phase(m, MIG_PH_ROLLING_BACK), -1);
	assert_int_equal(m->phase, MIG_PH_COMMITTING);
	mig_finish(m, NULL);
}

static enum op
op_of(enum mig_verdict v)
{
	switch (v) {
	case MIG_V_ROLLBACK:
		return OP_ROLLBACK;
	case MIG_V_DISCARD:
		return OP_DISCARD;
	case MIG_V_AWAIT:
		return OP_AWAIT;
	case MIG_V_UNCERTAIN:
		return OP_UNCERTAIN;
	case MIG_V_SPLIT:
		return OP_SPLIT;
	default:
		return OP_NONE;
	}
}

/* One failure in one phase: which op the engine called, if any. */
static enum op
fail_in(enum mig_role role, enum mig_phase ph, enum mig_fail f)
{
	struct mig	*m;
	int		 before[OP_COUNT], i, called = 0;
	enum op		 got = OP_NONE;

	m = role == MIG_ROLE_SOURCE ? start_source("c1", "h2") :
	    start_target("h2", 77, "c1");
	assert_non_null(m);
	m->phase = ph;		/* as if it had walked there */
	memcpy(before, drv_seen.ops, sizeof before);
	mig_fail(m, f, "the test says so");
	for (i = 0; i < OP_COUNT; i++)
		if (drv_seen.ops[i] != before[i]) {
			called++;
			got = (enum op)i;
		}
	assert_true(called <= 1);
	if (called == 1) {
		assert_ptr_equal(drv_seen.last_m, m);
		assert_int_equal(drv_seen.last_fail, f);
		assert_string_equal(drv_seen.last_why, "the test says so");
	}
	mig_finish(m, NULL);
	return got;
}

/* Each verdict reaches its op, written out for a sample, and for every
 * (role, phase, failure) the op is the table's verdict's. */
static void
test_verdicts(void **state)
{
	int	role, ph, f;

	(void)state;
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_TRANSFER,
	    MIG_FAIL_LINK), OP_ROLLBACK);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_OFFERED,
	    MIG_FAIL_CANCEL), OP_ROLLBACK);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_COMMITTING,
	    MIG_FAIL_LINK), OP_AWAIT);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_COMMITTED,
	    MIG_FAIL_TIMEOUT), OP_UNCERTAIN);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_COMMITTED,
	    MIG_FAIL_CANCEL), OP_NONE);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_PAGING,
	    MIG_FAIL_CHANNEL), OP_SPLIT);
	assert_int_equal(fail_in(MIG_ROLE_SOURCE, MIG_PH_ROLLING_BACK,
	    MIG_FAIL_LINK), OP_NONE);
	assert_int_equal(fail_in(MIG_ROLE_TARGET, MIG_PH_READY,
	    MIG_FAIL_PEER_ABORT), OP_DISCARD);
	assert_int_equal(fail_in(MIG_ROLE_TARGET, MIG_PH_HELD,
	    MIG_FAIL_CANCEL), OP_NONE);
	assert_int_equal(fail_in(MIG_ROLE_TARGET, MIG_PH_COMMITTED,
	    MIG_FAIL_LINK), OP_NONE);	/* keep: ours now */
	assert_int_equal(fail_in(MIG_ROLE_TARGET, MIG_PH_PAGING,
	    MIG_FAIL_SHUTDOWN), OP_SPLIT);
	for (role = MIG_ROLE_SOURCE; role <= MIG_ROLE_TARGET; role++)
		for (ph = 0; ph < MIG_PH_COUNT; ph++)
			for (f = 0; f < MIG_FAIL_COUNT; f++)
				assert_int_equal(fail_in(role, ph, f),
				    op_of(mig_phase_verdict(role, ph, f)));
}

/* A guard: the loop stops after this long whatever happened (the tests
 * then see that the awaited event did not come). */
static void
guard_fired(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Run the loop until cond() holds or the guard fires: 1 if it held. */
static int
run_until(int (*cond)(void), uint64_t guard_ms)
{
	uv_timer_t	guard;
	int		fired = 0, ok;

	uv_timer_init(&loop, &guard);
	guard.data = &fired;
	uv_timer_start(&guard, guard_fired, guard_ms, 0);
	while (!(ok = cond()) && !fired)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return ok;
}

static int
rolled_back(void)
{
	return drv_seen.ops[OP_ROLLBACK] > 0;
}

static int
looked_often(void)
{
	return drv_seen.byte_looks >= 6 || drv_seen.ops[OP_ROLLBACK] > 0;
}

/* No progress: the timeout fails the migration (the table's verdict for
 * a source before the commit: roll back), naming its state. */
static void
test_timeout_fires(void **state)
{
	struct mig_engine_conf	conf = {
		.host_name = "h1", .timeout_ms = 20, .boot_id = 1,
	};
	struct mig		*m;

	(void)state;
	mig_engine_set_conf(engine, &conf);
	drv_seen.finish_on_op = 1;
	assert_non_null(m = start_source("c1", "h2"));
	assert_int_equal(mig_set_phase(m, MIG_PH_TRANSFER), 0);
	assert_true(run_until(rolled_back, 10000));
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 1);
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_TIMEOUT);
	assert_non_null(strstr(drv_seen.last_why,
	    "no progress for 20 ms in state faking"));
	assert_int_equal(op_seen.done, 1);	/* answered by mig_finish */
}

/* Bytes growing at every look are progress: the timer comes round again
 * and again without a failure; once they stop, it fails. */
static void
test_timeout_not_while_bytes_grow(void **state)
{
	struct mig_engine_conf	conf = {
		.host_name = "h1", .timeout_ms = 10, .boot_id = 1,
	};
	struct mig		*m;

	(void)state;
	mig_engine_set_conf(engine, &conf);
	drv_seen.finish_on_op = 1;
	drv_seen.growing = 1;
	assert_non_null(m = start_source("c1", "h2"));
	drv_seen.byte_looks = 0;
	assert_true(run_until(looked_often, 10000));
	/* The timer came round three times at least (two looks each),
	 * and saw more bytes every time: no failure. */
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 0);
	assert_true(drv_seen.byte_looks >= 6);
	drv_seen.growing = 0;
	assert_true(run_until(rolled_back, 10000));
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_TIMEOUT);
}

/* A migration with a timeout of its own of 0 never times out; the
 * others still do. */
static void
test_timeout_off(void **state)
{
	struct mig_engine_conf	conf = {
		.host_name = "h1", .timeout_ms = 10, .boot_id = 1,
	};
	struct mig		*quiet, *m;

	(void)state;
	mig_engine_set_conf(engine, &conf);
	drv_seen.finish_on_op = 1;
	assert_non_null(quiet = start_source("c1", "h2"));
	mig_set_timeout(quiet, 0);
	assert_non_null(m = start_source("c2", "h2"));
	assert_true(run_until(rolled_back, 10000));
	assert_ptr_equal(drv_seen.last_m, m);
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 1);
	assert_ptr_equal(mig_find_name(engine, "c1", MIG_ROLE_SOURCE), quiet);
	mig_finish(quiet, NULL);
}

/* A lost peer fails only the migrations with that peer. */
static void
test_peer_lost(void **state)
{
	struct mig	*s2, *t2, *s3;

	(void)state;
	drv_seen.finish_on_op = 1;
	assert_non_null(s2 = start_source("a", "h2"));
	assert_non_null(t2 = start_target("h2", 5, "b"));
	assert_non_null(s3 = start_source("c", "h3"));
	mig_engine_peer_lost(engine, "h2", "its link dropped");
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 1);
	assert_int_equal(drv_seen.ops[OP_DISCARD], 1);
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_LINK);
	assert_non_null(strstr(drv_seen.last_why, "lost the connection to h2: "
	    "its link dropped"));
	assert_null(mig_find_name(engine, "a", -1));
	assert_null(mig_find_name(engine, "b", -1));
	assert_ptr_equal(mig_find_name(engine, "c", -1), s3);
	assert_int_equal(s3->phase, MIG_PH_OFFERED);
	mig_finish(s3, NULL);
}

/* Shutdown: every migration gets MIG_FAIL_SHUTDOWN, each its verdict. */
static void
test_shutdown(void **state)
{
	struct mig	*s, *t;

	(void)state;
	drv_seen.finish_on_op = 1;
	assert_non_null(s = start_source("a", "h2"));
	assert_non_null(t = start_target("h3", 9, "b"));
	mig_engine_shutdown(engine);
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 1);
	assert_int_equal(drv_seen.ops[OP_DISCARD], 1);
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_SHUTDOWN);
	assert_non_null(strstr(drv_seen.last_why, "ternd on h1 is shutting "
	    "down"));
	assert_null(mig_find_name(engine, "a", -1));
	assert_null(mig_find_name(engine, "b", -1));
	assert_int_equal(drv_seen.releases, 2);
}

/* RESTORE or COMMIT for a migration nobody knows: ABORT, so that the
 * source does not wait; anything else for one: nothing. */
static void
test_unknown_step(void **state)
{
	(void)state;
	step("h2", 0x99, TERN__MIGRATE_STEP__STEP__RESTORE, NULL);
	assert_int_equal(sent.steps, 1);
	assert_int_equal(sent.id, 0x99);
	assert_int_equal(sent.step, TERN__MIGRATE_STEP__STEP__ABORT);
	assert_string_equal(sent.error, "unknown migration (discarded here)");
	assert_string_equal(sent.peer, "h2");
	step("h2", 0x9a, TERN__MIGRATE_STEP__STEP__COMMIT, NULL);
	assert_int_equal(sent.steps, 2);
	assert_int_equal(sent.id, 0x9a);
	step("h2", 0x9b, TERN__MIGRATE_STEP__STEP__READY, NULL);
	step("h2", 0x9b, TERN__MIGRATE_STEP__STEP__ABORT, "x");
	assert_int_equal(sent.steps, 2);
	assert_int_equal(drv_seen.steps, 0);
}

/* Steps reach the migration of that peer and id; an ABORT is a failure
 * (the peer's) unless the driver asked for it as a step. */
static void
test_steps(void **state)
{
	struct mig	*m;

	(void)state;
	assert_non_null(m = start_target("h2", 21, "c1"));
	step("h3", 21, TERN__MIGRATE_STEP__STEP__RESTORE, NULL); /* not h3's */
	assert_int_equal(drv_seen.steps, 0);
	assert_int_equal(sent.steps, 1);	/* unknown there: ABORT */
	step("h2", 21, TERN__MIGRATE_STEP__STEP__RESTORE, NULL);
	assert_int_equal(drv_seen.steps, 1);
	step("h2", 21, TERN__MIGRATE_STEP__STEP__ABORT, "it gave up");
	assert_int_equal(drv_seen.ops[OP_DISCARD], 1);
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_PEER_ABORT);
	assert_string_equal(drv_seen.last_why, "it gave up");
	m->wants_abort_steps = 1;
	step("h2", 21, TERN__MIGRATE_STEP__STEP__ABORT, "again");
	assert_int_equal(drv_seen.ops[OP_DISCARD], 1);
	assert_int_equal(drv_seen.steps, 2);
	mig_finish(m, NULL);
}

/* The same offer twice (a resent message): taken once. */
static void
test_duplicate_offer(void **state)
{
	struct mig	*m;

	(void)state;
	assert_non_null(m = start_target("h2", 7, "c1"));
	offer("h2", 7, FAKE_KIND, "c1");
	assert_int_equal(drv_seen.target_begins, 1);
	/* Another peer's with the same id is another migration. */
	offer("h3", 7, FAKE_KIND, "c1");
	assert_int_equal(drv_seen.target_begins, 2);
	assert_int_equal(sent.steps, 0);
	assert_ptr_equal(mig_find(engine, "h2", 7, MIG_ROLE_TARGET), m);
	mig_finish(m, NULL);
}

/* An offer of a kind without a driver, or one the driver refuses: ABORT
 * with the reason, nothing left in the table. */
static void
test_offer_refused(void **state)
{
	(void)state;
	offer("h2", 8, NO_KIND, "c1");
	assert_int_equal(drv_seen.target_begins, 0);
	assert_int_equal(sent.steps, 1);
	assert_int_equal(sent.step, TERN__MIGRATE_STEP__STEP__ABORT);
	assert_non_null(strstr(sent.error, "bad offer (kind vm, name c1)"));
	drv_seen.refuse = 1;
	offer("h2", 9, FAKE_KIND, "c1");
	assert_int_equal(drv_seen.target_begins, 1);
	assert_int_equal(sent.steps, 2);
	assert_int_equal(sent.id, 9);
	assert_string_equal(sent.error, "no room for it");
	assert_null(mig_find(engine, "h2", 9, MIG_ROLE_TARGET));
	assert_int_equal(drv_seen.releases, 1);
}

/* A source the driver refuses: the operator hears the driver's code and
 * reason once, the migration is gone. */
static void
test_source_refused(void **state)
{
	(void)state;
	drv_seen.refuse = 1;
	assert_null(start_source("c1", "h2"));
	assert_int_equal(drv_seen.source_begins, 1);
	assert_int_equal(op_seen.done, 1);
	assert_int_equal(op_seen.code, TERN__ERROR_CODE__ERROR_BAD_REQUEST);
	assert_string_equal(op_seen.error, "refused by the fake driver");
	assert_null(mig_find_name(engine, "c1", -1));
	assert_int_equal(drv_seen.releases, 1);
}

/* Finished, a held migration is out of the table at once and released
 * only at the last drop; the operator is answered exactly once. */
static void
test_release_deferred(void **state)
{
	struct mig	*m;

	(void)state;
	assert_non_null(m = start_source("c1", "h2"));
	mig_hold(m);
	mig_hold(m);
	mig_answer(m, NULL, 0, NULL);
	mig_answer(m, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE, "twice");
	mig_finish(m, "over");
	mig_finish(m, "over again");
	assert_int_equal(op_seen.done, 1);
	assert_int_equal(op_seen.code, 0);
	assert_null(mig_find_name(engine, "c1", -1));
	mig_fail(m, MIG_FAIL_LINK, "after the end");	/* ignored */
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 0);
	mig_drop(m);
	assert_int_equal(drv_seen.releases, 0);
	mig_drop(m);
	assert_int_equal(drv_seen.releases, 1);
}

/* Not answered by the driver: mig_finish answers with its error, once;
 * progress stops with the answer. */
static void
test_finish_answers(void **state)
{
	struct mig	*m;
	Envelope	 env;

	(void)state;
	assert_non_null(m = start_source("c1", "h2"));
	msg_init(&env, 0);
	mig_progress(m, &env);
	assert_int_equal(op_seen.progress, 1);
	mig_finish(m, "it fell over");
	mig_progress(m, &env);
	assert_int_equal(op_seen.progress, 1);
	assert_int_equal(op_seen.done, 1);
	assert_int_equal(op_seen.code, TERN__ERROR_CODE__ERROR_UNAVAILABLE);
	assert_string_equal(op_seen.error, "it fell over");
}

/* --cancel: the source migration of that name rolls back while it can;
 * past the commit point it is refused; no such migration: not found. */
static void
test_cancel(void **state)
{
	Tern__MigrateRequest	r = TERN__MIGRATE_REQUEST__INIT;
	struct mig		*m, *t;

	(void)state;
	assert_non_null(t = start_target("h2", 3, "c1"));	/* not ours */
	r.name = "c1";
	r.has_cancel = 1;
	r.cancel = 1;
	mig_engine_start(engine, FAKE_KIND, &r, NULL, fake_done, NULL);
	assert_int_equal(op_seen.done, 1);
	assert_int_equal(op_seen.code, TERN__ERROR_CODE__ERROR_NOT_FOUND);
	assert_non_null(m = start_source("c1", "h2"));
	assert_int_equal(mig_set_phase(m, MIG_PH_COMMITTING), 0);
	mig_engine_start(engine, FAKE_KIND, &r, NULL, fake_done, NULL);
	assert_int_equal(op_seen.done, 2);
	assert_int_equal(op_seen.code, TERN__ERROR_CODE__ERROR_BAD_REQUEST);
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 0);
	assert_int_equal(drv_seen.ops[OP_AWAIT], 0);
	m->phase = MIG_PH_TRANSFER;
	mig_engine_start(engine, FAKE_KIND, &r, NULL, fake_done, NULL);
	assert_int_equal(op_seen.done, 3);
	assert_int_equal(op_seen.code, 0);
	assert_int_equal(op_seen.body, TERN__ENVELOPE__BODY_DONE);
	assert_int_equal(drv_seen.ops[OP_ROLLBACK], 1);
	assert_int_equal(drv_seen.last_fail, MIG_FAIL_CANCEL);
	assert_ptr_equal(drv_seen.last_m, m);
	mig_finish(m, NULL);
	mig_finish(t, NULL);
}

/* Source ids: the shared counter, tagged with the boot id. */
static void
test_ids(void **state)
{
	struct mig_engine_conf	conf = {
		.host_name = "h1", .timeout_ms = 600000, .boot_id = 0x55,
	};
	uint64_t		counter = 41;
	struct mig		*m;

	(void)state;
	conf.id_counter = &counter;
	mig_engine_set_conf(engine, &conf);
	assert_non_null(m = start_source("c1", "h2"));
	assert_int_equal(counter, 42);
	assert_int_equal(m->id, 42 | (0x55ULL << 16));
	mig_finish(m, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backward_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_fires, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_not_while_bytes_grow,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_off, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_peer_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_step, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_offer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_offer_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_source_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_release_deferred, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_finish_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
