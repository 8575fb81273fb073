/* agent/ha: the agent's lease keeper against a FAKE coordinator (the
 * renewals are captured and answered by the test) on a FAKE clock: the
 * lease counts from the send, a late or lost grant fences before the
 * coordinator could declare the host failed, a refusal fences at once
 * and registers again, grants from another host are ignored, and a
 * restarted ternd keeps only what is left of its predecessor's lease;
 * the coordinator's nudge brings a renewal at once.  With a list of
 * coordinators (a standby): a silent or unlinked one makes the agent
 * turn to the next, "not leading" turns it to the leader without a
 * fence, a deposed leader's grant (a lower term) is ignored, and the
 * lease still counts from the send of the renewal that was granted. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ha.h"
#include "daemon/xmalloc.h"

#define TTL	2000
#define MARGIN	500

static uint64_t		 clock_now;
static uint64_t		 last_seq;
static int		 last_join, nsent, nfenced, nowned;
static uint64_t		 saved_stop;
static char		*fence_why;
static const char	*coords = "coord";	/* the agent's list */
static char		 last_host[32];
static const char	*link_down;	/* sends to it fail */

static int
fake_send(void *ctx, const char *host, const Envelope *env, char **cause)
{
	(void)ctx;
	assert_non_null(strstr(coords, host));
	assert_int_equal(env->body_case, TERN__ENVELOPE__BODY_LEASE_RENEW);
	if (link_down != NULL && strcmp(host, link_down) == 0) {
		*cause = xstrdup("not connected");
		return -1;
	}
	snprintf(last_host, sizeof last_host, "%s", host);
	last_seq = env->lease_renew->seq;
	last_join = env->lease_renew->has_join && env->lease_renew->join;
	nsent++;
	return 0;
}

static void
fake_fence(void *ctx, const char *why)
{
	(void)ctx;
	nfenced++;
	free(fence_why);
	fence_why = xstrdup(why);
}

static void
fake_owned(void *ctx, const Tern__LeaseGrant *g)
{
	(void)ctx;
	(void)g;
	nowned++;
}

static uint64_t
fake_clock(void *ctx)
{
	(void)ctx;
	return clock_now;
}

static void
fake_save(void *ctx, uint64_t stop_at)
{
	(void)ctx;
	saved_stop = stop_at;
}

static const struct ha_agent_ops ops = {
	.send = fake_send, .fence = fake_fence, .owned = fake_owned,
	.clock = fake_clock, .save = fake_save,
};

static struct ha_agent *
agent(uint64_t resume)
{
	struct ha_agent_conf	conf = { coords, TTL, MARGIN, 7, resume };

	last_seq = 0;
	nsent = nfenced = nowned = 0;
	saved_stop = 0;
	return ha_agent_new(uv_default_loop(), &conf, &ops, NULL);
}

static void
done(struct ha_agent *h)
{
	ha_agent_free(h);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	free(fence_why);
	fence_why = NULL;
}

static void
grant(struct ha_agent *h, const char *from, uint64_t seq, const char *refused)
{
	Envelope		env;
	Tern__LeaseGrant	g = TERN__LEASE_GRANT__INIT;

	msg_init(&env, 0);
	g.seq = seq;
	if (refused != NULL)
		g.refused = (char *)refused;
	else {
		g.has_ttl_ms = 1;
		g.ttl_ms = TTL;
	}
	env.body_case = TERN__ENVELOPE__BODY_LEASE_GRANT;
	env.lease_grant = &g;
	assert_int_equal(ha_agent_on_msg(h, from, &env), 1);
}

/* An agent started at time at, its registration granted at once. */
static struct ha_agent *
joined(uint64_t at)
{
	struct ha_agent	*h;

	clock_now = at;
	h = agent(0);
	ha_agent_start(h);
	grant(h, "coord", last_seq, NULL);
	return h;
}

/* Counted from the send, not the answer: a grant that took 300 ms still
 * ends ttl after the renewal left. */
static void
test_counts_from_send(void **state)
{
	struct ha_agent	*h;
	uint64_t	 sent;

	(void)state;
	clock_now = 10000;
	h = agent(0);
	ha_agent_start(h);
	/* No lease yet: fenced at once (nothing protected may run). */
	assert_int_equal(nfenced, 1);
	assert_int_equal(nsent, 1);
	assert_true(last_join);
	sent = clock_now;
	clock_now += 300;
	grant(h, "coord", last_seq, NULL);
	assert_true(ha_agent_valid(h));
	assert_int_equal(nowned, 1);
	assert_int_equal(saved_stop, sent + TTL - MARGIN);
	clock_now = sent + TTL - MARGIN - 1;
	assert_true(ha_agent_valid(h));
	ha_agent_check(h);
	assert_int_equal(nfenced, 1);
	clock_now = sent + TTL - MARGIN;
	assert_false(ha_agent_valid(h));
	ha_agent_check(h);
	assert_int_equal(nfenced, 2);
	assert_non_null(strstr(fence_why, "no renewal was granted in time"));
	/* Fenced once per loss, not at every check. */
	ha_agent_check(h);
	assert_int_equal(nfenced, 2);
	done(h);
}

/* Renewals go on: a later grant extends the lease, an answer to an older
 * renewal does not shorten it, a grant nobody asked for is ignored, and
 * one from another host too. */
static void
test_renewals(void **state)
{
	struct ha_agent	*h;
	uint64_t	 first, t1;

	(void)state;
	clock_now = 50000;
	h = agent(0);
	ha_agent_start(h);
	first = last_seq;
	clock_now += 600;
	ha_agent_renew(h);
	assert_true(last_join);		/* no grant yet: still joining */
	t1 = clock_now;
	grant(h, "coord", last_seq, NULL);
	grant(h, "coord", first, NULL);	/* late answer to the older one */
	clock_now = t1 + TTL - MARGIN - 1;
	assert_true(ha_agent_valid(h));
	grant(h, "coord", 999, NULL);
	grant(h, "mallory", last_seq + 1, NULL);
	clock_now = t1 + TTL - MARGIN;
	assert_false(ha_agent_valid(h));
	done(h);
}

static void
nudge(struct ha_agent *h, const char *from)
{
	Envelope		env;
	Tern__LeaseNudge	n = TERN__LEASE_NUDGE__INIT;

	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_NUDGE;
	env.lease_nudge = &n;
	assert_int_equal(ha_agent_on_msg(h, from, &env), 1);
}

static void
noop(uv_timer_t *t)
{
	(void)t;
}

/* One turn of the loop (the lease keeper's timers do not keep it alive). */
static void
turn(void)
{
	uv_timer_t	t;

	uv_timer_init(uv_default_loop(), &t);
	uv_timer_start(&t, noop, 0, 0);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

/* A failover gave this host an instance: the coordinator's nudge brings a
 * renewal at once (not ttl/3 later), two nudges together bring one, and
 * another host's nudge none. */
static void
test_nudge(void **state)
{
	struct ha_agent	*h;
	int		 before;

	(void)state;
	h = joined(70000);
	before = nsent;
	clock_now += 100;
	nudge(h, "mallory");
	turn();
	assert_int_equal(nsent, before);
	nudge(h, "coord");
	nudge(h, "coord");
	turn();
	assert_int_equal(nsent, before + 1);
	assert_true(ha_agent_valid(h));
	done(h);
}

/* The coordinator says the host failed: fence now, register again. */
static void
test_refused(void **state)
{
	struct ha_agent	*h;

	(void)state;
	h = joined(90000);
	assert_int_equal(nfenced, 1);	/* the one at start */
	ha_agent_renew(h);
	assert_false(last_join);
	grant(h, "coord", last_seq, "host h1 was declared failed");
	assert_false(ha_agent_valid(h));
	assert_int_equal(nfenced, 2);
	assert_non_null(strstr(fence_why, "declared failed"));
	ha_agent_renew(h);
	assert_true(last_join);
	grant(h, "coord", last_seq, NULL);
	assert_true(ha_agent_valid(h));
	ha_agent_renew(h);
	assert_false(last_join);
	done(h);
}

/* The lapse count (what a VM migration's copy that came back asks):
 * still while renewals keep the lease valid; moved by every lapse,
 * including one no fence saw (the grant of a renewal sent in time came
 * after the old lease's stop, before the fence timer ran), and by a
 * refusal. */
static void
test_lapses(void **state)
{
	struct ha_agent	*h;
	uint64_t	 n, s0;

	(void)state;
	h = joined(50000);
	n = ha_agent_lapses(h);
	clock_now += TTL / 3;
	ha_agent_renew(h);
	s0 = clock_now;
	grant(h, "coord", last_seq, NULL);
	assert_int_equal(ha_agent_lapses(h), n);
	/* Sent in time, granted after the lease's stop; no check between. */
	clock_now = s0 + TTL - MARGIN - 100;
	ha_agent_renew(h);
	clock_now = s0 + TTL - MARGIN + 50;
	grant(h, "coord", last_seq, NULL);
	assert_true(ha_agent_valid(h));
	assert_int_equal(nfenced, 1);	/* the one at start */
	assert_true(ha_agent_lapses(h) > n);
	n = ha_agent_lapses(h);
	ha_agent_renew(h);
	grant(h, "coord", last_seq, "not in the cluster");
	assert_true(ha_agent_lapses(h) > n);
	n = ha_agent_lapses(h);
	ha_agent_renew(h);
	grant(h, "coord", last_seq, NULL);
	assert_true(ha_agent_valid(h));
	assert_true(ha_agent_lapses(h) > n);
	done(h);
}

/* A ternd restarted on the same boot keeps what is left of its
 * predecessor's lease, and not a millisecond more. */
static void
test_restart(void **state)
{
	struct ha_agent	*h;

	(void)state;
	clock_now = 200000;
	h = agent(clock_now + 400);
	ha_agent_start(h);
	assert_int_equal(nfenced, 0);
	assert_true(ha_agent_valid(h));
	clock_now += 400;
	ha_agent_check(h);
	assert_int_equal(nfenced, 1);
	done(h);
	/* One that ended already: fenced at start. */
	h = agent(clock_now - 1);
	ha_agent_start(h);
	assert_int_equal(nfenced, 1);
	done(h);
}

/* The gate at the moment a protected instance turns running (a start or
 * restore that began under a valid lease may end after it): an epoch
 * the coordinator gave, and a lease valid until its deadline minus the
 * margin, counted from the renewal's send. */
static void
test_may_run(void **state)
{
	struct ha_agent	*h;
	uint64_t	 sent;

	(void)state;
	clock_now = 300000;
	h = agent(0);
	ha_agent_start(h);
	assert_false(ha_agent_may_run(h, 1));	/* no lease yet */
	assert_int_equal(ha_agent_stop_at(h), 0);
	sent = clock_now;
	clock_now += 200;
	grant(h, "coord", last_seq, NULL);
	assert_true(ha_agent_may_run(h, 1));
	/* What a stopping ternd holds what turns running to. */
	assert_int_equal(ha_agent_stop_at(h), sent + TTL - MARGIN);
	assert_true(ha_agent_may_run(h, 7));
	assert_false(ha_agent_may_run(h, 0));	/* unknown to the coordinator */
	clock_now = sent + TTL - MARGIN - 1;
	assert_true(ha_agent_may_run(h, 1));
	clock_now = sent + TTL - MARGIN;
	assert_false(ha_agent_may_run(h, 1));	/* the start ended too late */
	assert_int_equal(ha_agent_stop_at(h), 0);
	/* A grant that comes back too late to count gives nothing. */
	ha_agent_renew(h);
	clock_now += TTL;
	grant(h, "coord", last_seq, NULL);
	assert_false(ha_agent_may_run(h, 1));
	done(h);
}

/* A grant (term: 0 none) or a "not leading" refusal (leader: who leads,
 * or NULL) from a coordinator of the list. */
static void
answer(struct ha_agent *h, const char *from, uint64_t seq, uint64_t term,
    int not_leading, const char *leader)
{
	Envelope		env;
	Tern__LeaseGrant	g = TERN__LEASE_GRANT__INIT;

	msg_init(&env, 0);
	g.seq = seq;
	g.has_term = term != 0;
	g.term = term;
	if (not_leading) {
		g.has_not_leading = g.not_leading = 1;
		g.leader = (char *)leader;
		g.refused = "coordinator does not lead";
	} else {
		g.has_ttl_ms = 1;
		g.ttl_ms = TTL;
	}
	env.body_case = TERN__ENVELOPE__BODY_LEASE_GRANT;
	env.lease_grant = &g;
	assert_int_equal(ha_agent_on_msg(h, from, &env), 1);
}

static struct ha_agent *
agent_of(const char *list)
{
	coords = list;
	link_down = NULL;
	last_host[0] = '\0';
	return agent(0);
}

static void
done_list(struct ha_agent *h)
{
	done(h);
	coords = "coord";
	link_down = NULL;
}

/* A coordinator that does not answer within ttl/3 (its host crashed):
 * the next renewal goes to the next one, and its grant holds the lease
 * (ternctl status says from whom); one the mesh has no link to is passed
 * over at once. */
static void
test_turns_to_next(void **state)
{
	struct ha_agent	*h;
	char		*d;

	(void)state;
	clock_now = 400000;
	h = agent_of("c1,c2");
	ha_agent_start(h);
	assert_string_equal(last_host, "c1");
	answer(h, "c1", last_seq, 5, 0, NULL);
	assert_true(ha_agent_valid(h));
	clock_now += TTL / 3;
	ha_agent_renew(h);
	assert_string_equal(last_host, "c1");	/* it answered: stay */
	clock_now += TTL / 3 - 1;
	ha_agent_renew(h);			/* not yet a third: stay */
	assert_string_equal(last_host, "c1");
	clock_now += TTL / 3;
	ha_agent_renew(h);			/* unanswered for ttl/3 */
	assert_string_equal(last_host, "c2");
	assert_string_equal(ha_agent_coordinator(h), "c2");
	answer(h, "c2", last_seq, 9, 0, NULL);
	d = ha_agent_describe(h);
	assert_non_null(strstr(d, "lease from c2"));
	free(d);
	assert_int_equal(nfenced, 1);		/* the one at start */
	/* c2's link goes down: nothing was sent there, so c1 at once. */
	link_down = "c2";
	clock_now += 10;
	ha_agent_renew(h);
	assert_string_equal(last_host, "c1");
	done_list(h);
}

/* "Not leading" is no failure of this host: no fence, the agent turns to
 * the leader it names at once (or to the next one); the lease runs its
 * course meanwhile and ends, fenced, only at its deadline - margin. */
static void
test_not_leading(void **state)
{
	struct ha_agent	*h;
	uint64_t	 sent;
	int		 owned;

	(void)state;
	clock_now = 500000;
	h = agent_of("c1,c2,c3");
	ha_agent_start(h);
	sent = clock_now;
	answer(h, "c1", last_seq, 5, 0, NULL);
	assert_int_equal(nfenced, 1);		/* the one at start */
	owned = nowned;
	clock_now += TTL / 3;
	ha_agent_renew(h);
	answer(h, "c1", last_seq, 5, 1, "c3");
	assert_int_equal(nfenced, 1);
	assert_true(ha_agent_valid(h));
	assert_int_equal(nowned, owned);	/* a refusal owns nothing */
	turn();
	assert_string_equal(last_host, "c3");	/* at once, to the leader */
	/* c3 names no leader: the next, c1 (c2 is not silent either). */
	answer(h, "c3", last_seq, 0, 1, NULL);
	turn();
	assert_string_equal(last_host, "c1");
	assert_int_equal(nfenced, 1);
	/* Nobody grants: the lease ends as ever, counted from the send of
	 * the last renewal granted. */
	clock_now = sent + TTL - MARGIN - 1;
	ha_agent_check(h);
	assert_int_equal(nfenced, 1);
	clock_now = sent + TTL - MARGIN;
	ha_agent_check(h);
	assert_int_equal(nfenced, 2);
	done_list(h);
}

/* The leader a standby names went silent (its host crashed; etcd still
 * holds its key): the agent stays with the standby that answers and asks
 * it again soon (it leads once the key lapses), rather than bounce to
 * the silent one; a while later the named one is tried again (a lost
 * renewal must not exile a live leader). */
static void
test_leader_silent(void **state)
{
	struct ha_agent	*h;
	int		 before;

	(void)state;
	clock_now = 550000;
	h = agent_of("c1,c2");
	ha_agent_start(h);
	answer(h, "c1", last_seq, 5, 0, NULL);
	clock_now += TTL / 3;
	ha_agent_renew(h);			/* c1 crashed: no answer */
	clock_now += TTL / 3;
	ha_agent_renew(h);
	assert_string_equal(last_host, "c2");
	before = nsent;
	answer(h, "c2", last_seq, 0, 1, "c1");
	turn();
	assert_int_equal(nsent, before);	/* not at once, */
	assert_string_equal(ha_agent_coordinator(h), "c2");	/* nor c1 */
	ha_agent_renew(h);			/* its retry */
	assert_string_equal(last_host, "c2");
	clock_now += TTL / 3;
	answer(h, "c2", last_seq, 0, 1, "c1");
	turn();
	assert_string_equal(last_host, "c1");
	assert_int_equal(nfenced, 1);		/* the one at start */
	done_list(h);
}

/* A deposed leader's late grant: the agent granted by term 9 ignores a
 * grant (and a refusal) of term 5, even one for a renewal sent to that
 * coordinator: it extends nothing and owns nothing. */
static void
test_stale_term(void **state)
{
	struct ha_agent	*h;
	uint64_t	 to_c1, sent;
	int		 owned;

	(void)state;
	clock_now = 600000;
	h = agent_of("c1,c2");
	ha_agent_start(h);
	answer(h, "c1", last_seq, 5, 0, NULL);
	clock_now += TTL / 3;
	ha_agent_renew(h);
	to_c1 = last_seq;			/* c1 goes quiet */
	clock_now += TTL / 3;
	ha_agent_renew(h);
	assert_string_equal(last_host, "c2");
	sent = clock_now;
	answer(h, "c2", last_seq, 9, 0, NULL);	/* c2 leads, term 9 */
	owned = nowned;
	clock_now += 100;
	answer(h, "c1", to_c1, 5, 0, NULL);	/* c1's late grant */
	assert_int_equal(nowned, owned);
	assert_string_equal(ha_agent_coordinator(h), "c2");
	answer(h, "c1", to_c1, 5, 0, NULL);
	grant(h, "c1", to_c1, "host h1 was declared failed");
	assert_int_equal(nfenced, 1);		/* the one at start */
	assert_true(ha_agent_valid(h));
	/* A grant from c2 for c1's renewal (never sent there): ignored. */
	answer(h, "c2", to_c1, 9, 0, NULL);
	assert_int_equal(nowned, owned);
	clock_now = sent + TTL - MARGIN;
	assert_false(ha_agent_valid(h));
	done_list(h);
}

/* Whoever grants, the deadline counts from the SENT renewal that was
 * granted: one sent to c2 at t and granted 300 ms later ends at t + ttl;
 * a later grant from c1 for an older renewal shortens nothing. */
static void
test_deadline_from_send(void **state)
{
	struct ha_agent	*h;
	uint64_t	 older, sent;
	int		 owned;

	(void)state;
	clock_now = 700000;
	h = agent_of("c1,c2");
	ha_agent_start(h);
	older = last_seq;			/* to c1, unanswered */
	clock_now += TTL / 3;
	ha_agent_renew(h);
	assert_string_equal(last_host, "c2");
	sent = clock_now;
	clock_now += 300;
	answer(h, "c2", last_seq, 7, 0, NULL);
	assert_int_equal(ha_agent_stop_at(h), sent + TTL - MARGIN);
	owned = nowned;
	answer(h, "c1", older, 7, 0, NULL);	/* same term, older send */
	assert_int_equal(ha_agent_stop_at(h), sent + TTL - MARGIN);
	assert_int_equal(nowned, owned);	/* nor what it owns */
	assert_string_equal(ha_agent_coordinator(h), "c2");
	clock_now = sent + TTL - MARGIN - 1;
	assert_true(ha_agent_valid(h));
	clock_now = sent + TTL - MARGIN;
	assert_false(ha_agent_valid(h));
	done_list(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_from_send),
		cmocka_unit_test(test_renewals),
		cmocka_unit_test(test_nudge),
		cmocka_unit_test(test_may_run),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_lapses),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_turns_to_next),
		cmocka_unit_test(test_not_leading),
		cmocka_unit_test(test_leader_silent),
		cmocka_unit_test(test_stale_term),
		cmocka_unit_test(test_deadline_from_send),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
