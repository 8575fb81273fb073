/* coord/coordinator: leases and failover over a real journal store in a
 * scratch directory, with a FAKE clock and a FAKE transport (the grants
 * are captured, no mesh): registration, grants that list what a host
 * owns, the quiet period, suspect then failed, failover by epoch to the
 * survivor with the replica to restore, a failed host's renewal refused
 * until it registers again (and then it owns nothing that moved), and a
 * restarted coordinator that keeps the moves and decides nothing during
 * its own quiet period; the failover history each move writes (and its
 * outcome once the target runs it), renewals with stale epochs,
 * ternctl ha set's policy reaching the owner's grant, a coordinator
 * that does not lead (by the store's word at that moment) answering
 * "not leading" and who does, and a migration's commit point
 * (OwnerMoveRequest, OwnerQuery). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coord/coordinator.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define TTL	2000
#define MARGIN	500

static char		 dir[64];
static struct store	*st;
static struct coordinator *co;
static uint64_t		 clock_now;

/* The last grant each test host got. */
struct grant {
	int		 count;
	uint64_t	 seq;
	uint32_t	 ttl_ms;
	char		*refused;
	char		*owned;		/* "name@epoch[<gen][+spec]" joined */
	char		*refusals;	/* "name: why" joined by '; ' */
	unsigned	 nudges;	/* LeaseNudges received */
	char		*unprotected;	/* owned with policy none, joined */
	char		*keep;		/* keep_replicas, joined by ' ' */
	uint64_t	 term;
	int		 not_leading;
	char		 leader[16];	/* "not leading": who does */
};
static struct grant	 g_h1, g_h2, g_h3;
static unsigned		 failovers;
static char		*owner_reply;	/* the last owner move/query answer */

static uint64_t
fake_clock(void *arg)
{
	(void)arg;
	return clock_now;
}

static int
fake_send(void *ctx, const char *host, const Envelope *env, char **cause)
{
	struct grant		*g;
	const Tern__LeaseGrant	*lg;
	size_t			 i;
	char			*s, *t;

	(void)ctx;
	(void)cause;
	g = strcmp(host, "h1") == 0 ? &g_h1 : strcmp(host, "h3") == 0 ?
	    &g_h3 : &g_h2;
	if (env->body_case == TERN__ENVELOPE__BODY_LEASE_NUDGE) {
		g->nudges++;
		return 0;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY) {
		const Tern__OwnerMoveReply *r = env->owner_move_reply;

		free(owner_reply);
		if (r->error != NULL)
			xasprintf(&owner_reply, "%s to %s #%llu: %s", r->name,
			    host, (unsigned long long)r->migration, r->error);
		else
			xasprintf(&owner_reply, "%s to %s #%llu: epoch %llu",
			    r->name, host, (unsigned long long)r->migration,
			    (unsigned long long)r->epoch);
		return 0;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_QUERY_REPLY) {
		const Tern__OwnerQueryReply *q = env->owner_query_reply;

		free(owner_reply);
		if (q->error != NULL)
			xasprintf(&owner_reply, "%s: %s", q->name, q->error);
		else if (q->has_moving && q->moving)
			xasprintf(&owner_reply, "%s: moving", q->name);
		else
			xasprintf(&owner_reply, "%s: %s@%llu", q->name,
			    q->owner != NULL ? q->owner : "nowhere",
			    (unsigned long long)q->epoch);
		return 0;
	}
	assert_int_equal(env->body_case, TERN__ENVELOPE__BODY_LEASE_GRANT);
	lg = env->lease_grant;
	g->count++;
	g->seq = lg->seq;
	g->ttl_ms = lg->has_ttl_ms ? lg->ttl_ms : 0;
	g->term = lg->has_term ? lg->term : 0;
	g->not_leading = lg->has_not_leading && lg->not_leading;
	snprintf(g->leader, sizeof g->leader, "%s", lg->leader != NULL ?
	    lg->leader : "");
	free(g->refused);
	g->refused = lg->refused != NULL ? xstrdup(lg->refused) : NULL;
	s = xstrdup("");
	for (i = 0; i < lg->n_owned; i++) {
		const char *spec = lg->owned[i]->spec != NULL ? "+spec" : "";

		if (lg->owned[i]->has_restore_generation)
			xasprintf(&t, "%s%s%s@%llu<%llu%s", s, *s ? " " : "",
			    lg->owned[i]->name,
			    (unsigned long long)lg->owned[i]->epoch,
			    (unsigned long long)lg->owned[i]->restore_generation,
			    spec);
		else
			xasprintf(&t, "%s%s%s@%llu%s", s, *s ? " " : "",
			    lg->owned[i]->name,
			    (unsigned long long)lg->owned[i]->epoch, spec);
		free(s);
		s = t;
	}
	free(g->owned);
	g->owned = s;
	s = xstrdup("");
	for (i = 0; i < lg->n_owned; i++) {
		if (!lg->owned[i]->has_ha ||
		    lg->owned[i]->ha != TERN__HA_POLICY__HA_NONE)
			continue;
		xasprintf(&t, "%s%s%s", s, *s ? " " : "", lg->owned[i]->name);
		free(s);
		s = t;
	}
	free(g->unprotected);
	g->unprotected = s;
	s = xstrdup("");
	for (i = 0; i < lg->n_keep_replicas; i++) {
		xasprintf(&t, "%s%s%s", s, *s ? " " : "",
		    lg->keep_replicas[i]);
		free(s);
		s = t;
	}
	free(g->keep);
	g->keep = s;
	s = xstrdup("");
	for (i = 0; i < lg->n_refusals; i++) {
		xasprintf(&t, "%s%s%s: %s", s, *s ? "; " : "",
		    lg->refusals[i]->name, lg->refusals[i]->why);
		free(s);
		s = t;
	}
	free(g->refusals);
	g->refusals = s;
	return 0;
}

static void
on_event(void *arg, enum coord_event e, const char *host, const char *inst,
    const char *text)
{
	(void)arg;
	(void)host;
	(void)inst;
	if (e == COORD_EV_FAILOVER && strstr(text, "moved") == text)
		failovers++;
}

static void
on_ready(void *arg, const char *error)
{
	if (error != NULL)
		fail_msg("start: %s", error);
	(*(int *)arg)++;
}

static const char	*fence_command;

static void
open_coord(void)
{
	struct coord_conf	 conf = { 0 };
	struct coord_transport	 tp = { fake_send, NULL };
	char			*cause = NULL;
	int			 ready = 0;

	st = store_journal_open(uv_default_loop(), dir, &cause);
	if (st == NULL)
		fail_msg("open: %s", cause);
	conf.name = "c1";
	conf.lease.ttl_ms = TTL;
	conf.lease.margin_ms = MARGIN;
	conf.clock = fake_clock;
	conf.fence_command = fence_command;
	conf.fence_timeout_ms = 5000;
	co = coord_new(uv_default_loop(), &conf, st, &tp);
	coord_set_events(co, on_event, NULL);
	if (coord_start(co, on_ready, &ready, &cause) != 0)
		fail_msg("start: %s", cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(ready, 1);
	assert_true(coord_leading(co));
}

static void
close_coord(void)
{
	coord_free(co);
	store_close(st);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	co = NULL;
	st = NULL;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tern-coord.XXXXXX");
	assert_non_null(mkdtemp(dir));
	clock_now = 100000;
	failovers = 0;
	memset(&g_h1, 0, sizeof g_h1);
	memset(&g_h2, 0, sizeof g_h2);
	memset(&g_h3, 0, sizeof g_h3);
	open_coord();
	return 0;
}

static int
teardown(void **state)
{
	char	*cause = NULL;

	(void)state;
	if (co != NULL)
		close_coord();
	free(g_h1.refused);
	free(g_h1.owned);
	free(g_h1.refusals);
	free(g_h1.unprotected);
	free(g_h2.unprotected);
	free(g_h1.keep);
	free(g_h2.keep);
	free(g_h3.keep);
	free(g_h3.refused);
	free(g_h3.owned);
	free(g_h3.refusals);
	free(g_h3.unprotected);
	free(g_h2.refused);
	free(g_h2.owned);
	free(g_h2.refusals);
	free(owner_reply);
	owner_reply = NULL;
	assert_int_equal(rm_rf(dir, &cause), 0);
	return 0;
}

/* A renewal holding the instances in held ("name@epoch" joined by ' ';
 * epoch 0: new, with a spec and the restart policy; "name@epoch!":
 * released, destroyed there; "name@epoch*": it runs there). */
static void
renew_holding(const char *host, uint64_t seq, int join, const char *held)
{
	Envelope		 env;
	Tern__LeaseRenew	 r = TERN__LEASE_RENEW__INIT;
	Tern__HeldInstance	 hi[8], *hp[8];
	char			*copy = xstrdup(held), *tok, *save = NULL, *at;
	size_t			 n = 0;

	for (tok = strtok_r(copy, " ", &save); tok != NULL && n < 8;
	    tok = strtok_r(NULL, " ", &save)) {
		tern__held_instance__init(&hi[n]);
		at = strchr(tok, '@');
		*at = '\0';
		hi[n].name = tok;
		hi[n].epoch = strtoull(at + 1, NULL, 10);
		if (strchr(at + 1, '!') != NULL)
			hi[n].has_released = hi[n].released = 1;
		if (strchr(at + 1, '*') != NULL)
			hi[n].has_running = hi[n].running = 1;
		if (hi[n].epoch == 0) {
			hi[n].has_kind = 1;
			hi[n].kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
			hi[n].spec = "{}";
			hi[n].has_ha = 1;
			hi[n].ha = TERN__HA_POLICY__HA_RESTART;
		}
		hp[n] = &hi[n];
		n++;
	}
	msg_init(&env, 0);
	r.seq = seq;
	r.has_join = join;
	r.join = join;
	r.n_held = n;
	r.held = hp;
	env.body_case = TERN__ENVELOPE__BODY_LEASE_RENEW;
	env.lease_renew = &r;
	assert_int_equal(coord_on_msg(co, host, &env), 1);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	free(copy);
}

static void
renew(const char *host, uint64_t seq, int join)
{
	renew_holding(host, seq, join, "");
}

static void
model_done(void *arg, const char *error)
{
	if (error != NULL)
		fail_msg("model: %s", error);
	(*(int *)arg)++;
}

static void
inst(const char *name, const char *owner, enum model_ha ha)
{
	struct model_instance	 in;
	char			*cause = NULL;
	int			 done = 0;

	memset(&in, 0, sizeof in);
	in.name = (char *)name;
	in.kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
	in.spec = "{}";
	in.owner = (char *)owner;
	in.ha = ha;
	in.interval_ms = ha == MODEL_HA_CHECKPOINT ? 5000 : 0;
	in.replicas = ha == MODEL_HA_CHECKPOINT ? 1 : 0;
	if (model_instance_add(coord_model(co), &in, model_done, &done,
	    &cause) != 0)
		fail_msg("add %s: %s", name, cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(done, 1);
}

static void
replica(const char *name, const char *on, uint64_t gen)
{
	struct model_replica	 r;
	char			*cause = NULL;
	int			 done = 0;

	memset(&r, 0, sizeof r);
	r.instance = (char *)name;
	r.host = (char *)on;
	r.epoch = model_instance(coord_model(co), name)->epoch;
	r.generation = gen;
	r.taken_unix_ms = 1000 * gen;
	if (model_replica_put(coord_model(co), &r, model_done, &done,
	    &cause) != 0)
		fail_msg("replica: %s", cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(done, 1);
}

static enum host_state
state_of(const char *host)
{
	return model_host(coord_model(co), host)->lease.state;
}

/* Check at now, and let the moves' transactions commit. */
static void
check_at(uint64_t now)
{
	clock_now = now;
	coord_check(co);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* An unknown host is refused until it registers; then its grants name
 * what it owns. */
static void
test_register(void **state)
{
	(void)state;
	renew("h1", 1, 0);
	assert_int_equal(g_h1.count, 1);
	assert_non_null(g_h1.refused);
	assert_non_null(strstr(g_h1.refused, "register first"));
	assert_int_equal(g_h1.ttl_ms, 0);
	renew("h1", 2, 1);
	assert_int_equal(g_h1.count, 2);
	assert_null(g_h1.refused);
	assert_int_equal(g_h1.seq, 2);
	assert_int_equal(g_h1.ttl_ms, TTL);
	assert_string_equal(g_h1.owned, "");
	inst("web", "h1", MODEL_HA_RESTART);
	renew("h1", 3, 0);
	/* Not in the renewal's held list: the spec comes along. */
	assert_string_equal(g_h1.owned, "web@1+spec");
	assert_int_equal(state_of("h1"), HOST_UP);
}

/* A silent host: up, then suspect after ttl, failed after ttl + margin
 * (never during the quiet period), and its protected instances move to
 * the survivor at the next epoch; the failed host's renewal is refused
 * until it registers again, and then it owns nothing that moved. */
static void
test_failover(void **state)
{
	uint64_t	 t0 = clock_now;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_CHECKPOINT);
	inst("db", "h1", MODEL_HA_RESTART);
	inst("tmp", "h1", MODEL_HA_NONE);
	replica("web", "h2", 7);
	/* h2 keeps renewing; h1 goes silent at t0. */
	check_at(t0 + TTL - 1);
	assert_int_equal(state_of("h1"), HOST_UP);
	clock_now = t0 + TTL;
	renew("h2", 2, 0);
	check_at(t0 + TTL + 1);
	assert_int_equal(state_of("h1"), HOST_SUSPECT);
	assert_int_equal(failovers, 0);
	clock_now = t0 + TTL + MARGIN - 1;
	renew("h2", 3, 0);
	check_at(t0 + TTL + MARGIN - 1);
	assert_int_equal(state_of("h1"), HOST_SUSPECT);
	assert_int_equal(failovers, 0);
	check_at(t0 + TTL + MARGIN + 1);
	assert_int_equal(state_of("h1"), HOST_FAILED);
	assert_int_equal(state_of("h2"), HOST_UP);
	assert_int_equal(failovers, 2);
	/* Each move nudges the survivor to renew at once. */
	assert_int_equal(g_h2.nudges, 2);
	assert_int_equal(g_h1.nudges, 0);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h2");
	assert_int_equal(model_instance(coord_model(co), "web")->epoch, 2);
	assert_string_equal(model_instance(coord_model(co), "tmp")->owner,
	    "h1");
	/* The survivor learns it at its next grant, with the replica. */
	renew("h2", 4, 0);
	assert_null(g_h2.refused);
	assert_non_null(strstr(g_h2.owned, "web@2<7+spec"));
	assert_non_null(strstr(g_h2.owned, "db@2+spec"));
	/* Once it holds them, the specs are not sent again. */
	renew_holding("h2", 5, 0, "web@2 db@2");
	assert_string_equal(g_h2.owned, "web@2<7 db@2");
	/* A second check moves nothing twice. */
	check_at(t0 + TTL + MARGIN + 2);
	assert_int_equal(failovers, 2);
	/* h1 comes back: refused until it registers; then only "tmp". */
	renew("h1", 9, 0);
	assert_non_null(g_h1.refused);
	assert_non_null(strstr(g_h1.refused, "failed"));
	renew_holding("h1", 10, 1, "web@1 db@1 tmp@1");
	assert_null(g_h1.refused);
	assert_string_equal(g_h1.owned, "tmp@1");
	/* Its stale copies are refused, with where they run now. */
	assert_string_equal(g_h1.refusals, "web: instance web belongs to "
	    "host h2 (epoch 2); db: instance db belongs to host h2 (epoch 2)");
	assert_int_equal(state_of("h1"), HOST_UP);
}

/* A drained host (its mark given with its renewal: coord_host_drained)
 * takes no failover: the instance stays where it was, reported; once
 * undrained, the next check moves it there.  The mark is in the store:
 * a restarted coordinator keeps it. */
static void
test_drained(void **state)
{
	uint64_t	 t0;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("db", "h1", MODEL_HA_RESTART);
	coord_host_drained(co, "h2", 1);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_true(model_host(coord_model(co), "h2")->drained);
	close_coord();
	clock_now += 10 * TTL;
	t0 = clock_now;
	open_coord();
	assert_true(model_host(coord_model(co), "h2")->drained);
	/* h2 renews; h1 stays silent past the quiet period. */
	clock_now = t0 + TTL + MARGIN - 1;
	renew("h2", 2, 0);
	assert_null(g_h2.refused);
	check_at(t0 + TTL + MARGIN + 1);
	assert_int_equal(state_of("h1"), HOST_FAILED);
	assert_int_equal(failovers, 0);
	assert_string_equal(model_instance(coord_model(co), "db")->owner,
	    "h1");
	coord_host_drained(co, "h2", 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_false(model_host(coord_model(co), "h2")->drained);
	check_at(t0 + TTL + MARGIN + 2);
	assert_int_equal(failovers, 1);
	assert_string_equal(model_instance(coord_model(co), "db")->owner,
	    "h2");
}

/* A restarted coordinator keeps what was moved, counts every host as
 * granted at its start, and decides nothing for ttl + margin. */
static void
test_restart(void **state)
{
	uint64_t	 t0;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	close_coord();
	/* Long after h1's last grant, a new coordinator starts. */
	clock_now += 10 * TTL;
	t0 = clock_now;
	open_coord();
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h1");
	check_at(t0 + TTL + MARGIN - 1);
	assert_int_equal(failovers, 0);
	assert_true(state_of("h1") != HOST_FAILED);
	clock_now = t0 + TTL + MARGIN - 1;
	renew("h2", 2, 0);
	assert_null(g_h2.refused);
	check_at(t0 + TTL + MARGIN + 1);
	assert_int_equal(state_of("h1"), HOST_FAILED);
	assert_int_equal(failovers, 1);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h2");
}

/* A new protected instance is added owned by the host that holds it;
 * the same name held by another host is refused there, with the owner. */
static void
test_held(void **state)
{
	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	renew_holding("h1", 2, 0, "web@0");
	assert_string_equal(g_h1.refusals, "");
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h1");
	renew_holding("h1", 3, 0, "web@0");
	assert_string_equal(g_h1.owned, "web@1");
	renew_holding("h2", 2, 0, "web@0 ../x@0 ghost@4");
	assert_string_equal(g_h2.owned, "");
	assert_non_null(strstr(g_h2.refusals,
	    "web: instance web belongs to host h1 (epoch 1)"));
	assert_non_null(strstr(g_h2.refusals, "../x: not a valid"));
	assert_non_null(strstr(g_h2.refusals, "ghost: the coordinator does "
	    "not know it"));
	assert_int_equal(model_instance(coord_model(co), "web")->epoch, 1);
}

/* A failed host that registers again while its instances' moves are
 * still being written is not told it owns them (it would run them while
 * the survivor starts them too). */
static void
test_rejoin_during_move(void **state)
{
	uint64_t	 t0 = clock_now;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	clock_now = t0 + TTL;
	renew("h2", 2, 0);
	clock_now = t0 + TTL + MARGIN + 1;
	coord_check(co);		/* the move is out, not committed */
	assert_int_equal(state_of("h1"), HOST_FAILED);
	renew_holding("h1", 9, 1, "web@1");	/* answered at once */
	assert_null(g_h1.refused);
	assert_string_equal(g_h1.owned, "");
	assert_non_null(strstr(g_h1.refusals, "web: it is being failed over"));
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h2");
}

/* The operator destroyed a protected instance: it runs nowhere (next
 * epoch, no owner), is listed to nobody, does not fail over, and its name
 * is not silently taken by a new instance. */
static void
test_release(void **state)
{
	uint64_t	 t0 = clock_now;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	renew_holding("h2", 2, 0, "web@1!");	/* not h2's to release */
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h1");
	renew_holding("h1", 2, 0, "web@1!");
	assert_null(model_instance(coord_model(co), "web")->owner);
	assert_int_equal(model_instance(coord_model(co), "web")->epoch, 2);
	renew("h1", 3, 0);
	assert_string_equal(g_h1.owned, "");
	clock_now = t0 + TTL;
	renew("h2", 3, 0);
	check_at(t0 + TTL + MARGIN + 1);
	assert_int_equal(state_of("h1"), HOST_FAILED);
	assert_int_equal(failovers, 0);
	renew_holding("h2", 4, 0, "web@0");
	assert_non_null(strstr(g_h2.refusals, "released at epoch 2"));
}

/* The replicas a grant tells its host to keep: those of the
 * checkpoint-protected instances it is a replica host of (holding a
 * replica, or picked for the next), never its own, never a restart
 * one's; a host past the first usable ones only where it holds one. */
static void
test_keep_replicas(void **state)
{
	char	name[8];
	int	i;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	renew("h3", 1, 1);
	inst("web", "h1", MODEL_HA_CHECKPOINT);
	inst("db", "h2", MODEL_HA_CHECKPOINT);
	inst("cold", "h1", MODEL_HA_RESTART);
	/* No replica yet: the first usable host that is not the owner. */
	renew("h1", 2, 0);
	assert_string_equal(g_h1.keep, "db");
	renew("h2", 2, 0);
	assert_string_equal(g_h2.keep, "web");
	renew("h3", 2, 0);
	assert_string_equal(g_h3.keep, "");
	/* web's replica is on h3 now: h3 keeps it, h2 no longer. */
	replica("web", "h3", 7);
	renew("h2", 3, 0);
	assert_string_equal(g_h2.keep, "");
	renew("h3", 3, 0);
	assert_string_equal(g_h3.keep, "web");
	/* Ten more hosts (their grants land in g_h2): the last is past the
	 * first HA_REPLICAS_MAX + 1 usable ones. */
	for (i = 1; i <= 10; i++) {
		snprintf(name, sizeof name, "x%02d", i);
		renew(name, 1, 1);
	}
	inst("big", "h1", MODEL_HA_CHECKPOINT);
	renew("x10", 2, 0);
	assert_string_equal(g_h2.keep, "");
	renew("h2", 4, 0);
	assert_string_equal(g_h2.keep, "big");
	/* h2 drained: the next usable host is h3. */
	coord_host_drained(co, "h2", 1);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	renew("h3", 4, 0);
	assert_string_equal(g_h3.keep, "web big");
	replica("big", "x10", 3);
	renew("x10", 3, 0);
	assert_string_equal(g_h2.keep, "big");
	renew("h3", 5, 0);
	assert_string_equal(g_h3.keep, "web");
}

/* A script in the scratch directory: body after "#!/bin/sh". */
static char *
script(const char *name, const char *body)
{
	char	*path, *text;
	FILE	*fp;

	xasprintf(&path, "%s/%s", dir, name);
	xasprintf(&text, "#!/bin/sh\n%s\n", body);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0755), 0);
	free(text);
	return path;
}

/* fence_command: exit 0 decides at once (before ttl + margin), with the
 * host's name as its argument; a failing one changes nothing and the
 * lease is waited out. */
static void
test_fence(void **state)
{
	char		*ok, *no, *seen, buf[64] = "";
	uint64_t	 t0;
	FILE		*fp;

	(void)state;
	close_coord();
	ok = script("fence-ok", "echo \"$1\" > \"$(dirname \"$0\")/fenced\"");
	no = script("fence-no", "exit 3");
	xasprintf(&seen, "%s/fenced", dir);
	fence_command = no;
	open_coord();
	t0 = clock_now;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	clock_now = t0 + TTL;
	renew("h2", 2, 0);
	check_at(t0 + TTL + 1);
	assert_int_equal(state_of("h1"), HOST_SUSPECT);
	assert_int_equal(failovers, 0);
	close_coord();

	fence_command = ok;
	open_coord();
	t0 = clock_now;
	renew("h1", 3, 1);
	renew("h2", 3, 1);
	clock_now = t0 + TTL;
	renew("h2", 4, 0);
	check_at(t0 + TTL + 1);		/* suspect: the fence runs */
	assert_int_equal(state_of("h1"), HOST_FENCED);
	assert_int_equal(failovers, 1);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h2");
	assert_non_null(fp = fopen(seen, "r"));
	assert_non_null(fgets(buf, sizeof buf, fp));
	fclose(fp);
	assert_string_equal(buf, "h1\n");
	fence_command = NULL;
	free(ok);
	free(no);
	free(seen);
}

/* What a host sends is taken from the mesh's authenticated name only; a
 * name that is not a host name gets nothing. */
static void
test_bad_host(void **state)
{
	(void)state;
	renew("../h1", 1, 1);
	assert_int_equal(g_h2.count, 0);
	assert_int_equal(g_h1.count, 0);
	assert_null(model_host(coord_model(co), "../h1"));
}

/* Every failover leaves its record in the store, in the move's own
 * transaction: from, to, epoch, when the host was seen failed; its
 * outcome once the target runs it; a restarted coordinator still has it.
 * An instance with nowhere to go is recorded once, not at every check. */
static void
test_history(void **state)
{
	struct model_failover	**fos;
	uint64_t		  t0 = clock_now, rev;
	size_t			  n;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	inst("db", "h1", MODEL_HA_RESTART);
	inst("tmp", "h1", MODEL_HA_NONE);
	coord_host_drained(co, "h2", 1);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	clock_now = t0 + TTL;
	renew("h2", 2, 0);
	check_at(t0 + TTL + MARGIN + 1);
	assert_int_equal(state_of("h1"), HOST_FAILED);
	/* h2 is drained: nowhere to go, said once per instance. */
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(n, 2);
	assert_null(fos[0]->to);
	assert_non_null(strstr(fos[0]->why, "no host is up, not drained"));
	assert_string_equal(fos[0]->from, "h1");
	assert_int_equal(fos[0]->epoch, 1);
	check_at(t0 + TTL + MARGIN + 2);
	check_at(t0 + TTL + MARGIN + 3);
	assert_int_equal(model_failovers(coord_model(co), &fos), 2);
	coord_host_drained(co, "h2", 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	check_at(t0 + TTL + MARGIN + 4);
	assert_int_equal(failovers, 2);
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(n, 4);
	assert_string_equal(fos[2]->from, "h1");
	assert_string_equal(fos[2]->to, "h2");
	assert_int_equal(fos[2]->epoch, 2);
	assert_true(fos[2]->failed_unix_ms != 0);
	assert_true(fos[2]->time_unix_ms >= fos[2]->failed_unix_ms);
	assert_int_equal(fos[2]->outcome, MODEL_OUTCOME_PENDING);
	/* The move and its record are one: the record's epoch is the
	 * instance's. */
	assert_int_equal(model_instance(coord_model(co),
	    fos[2]->instance)->epoch, 2);
	/* h2 holds them; one runs: that one's outcome is known. */
	renew_holding("h2", 3, 0, "web@2* db@2");
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(model_failover_last(coord_model(co), "web")->outcome,
	    MODEL_OUTCOME_RUNNING);
	assert_true(model_failover_last(coord_model(co),
	    "web")->outcome_unix_ms != 0);
	assert_int_equal(model_failover_last(coord_model(co), "db")->outcome,
	    MODEL_OUTCOME_PENDING);
	rev = model_failover_last(coord_model(co), "web")->mod_rev;
	renew_holding("h2", 4, 0, "web@2* db@2");	/* written once */
	assert_int_equal(model_failover_last(coord_model(co), "web")->mod_rev,
	    rev);
	/* A restarted coordinator reads the same history. */
	close_coord();
	open_coord();
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(n, 4);
	assert_string_equal(model_failover_last(coord_model(co), "web")->to,
	    "h2");
	assert_int_equal(model_failover_last(coord_model(co), "web")->outcome,
	    MODEL_OUTCOME_RUNNING);
	assert_null(model_failover_last(coord_model(co), "tmp"));
}

/* A renewal that holds an instance at an old epoch (another host owns it
 * now, or it was released): refused with why, and nothing changes. */
static void
test_stale_epoch(void **state)
{
	struct model_instance	*in;
	struct model_failover	**fos;
	uint64_t		  rev;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	inst("old", "h1", MODEL_HA_RESTART);
	renew_holding("h1", 2, 0, "old@1!");
	in = model_instance(coord_model(co), "old");
	assert_null(in->owner);
	assert_int_equal(in->epoch, 2);
	rev = in->mod_rev;
	/* h2 claims web at epoch 1 (h1 owns it) and the released old. */
	renew_holding("h2", 2, 0, "web@1* old@1*");
	assert_non_null(strstr(g_h2.refusals, "web: instance web belongs to "
	    "host h1 (epoch 1)"));
	assert_non_null(strstr(g_h2.refusals, "old: instance old runs "
	    "nowhere since epoch 2 (released); this copy at epoch 1 is "
	    "stale: discard it"));
	assert_string_equal(g_h2.owned, "");
	/* A future epoch is refused too. */
	renew_holding("h1", 3, 0, "web@5");
	assert_non_null(strstr(g_h1.refusals, "web: instance web is at epoch "
	    "1 in the coordinator's records, not 5"));
	assert_int_equal(model_instance(coord_model(co), "old")->mod_rev, rev);
	assert_null(model_instance(coord_model(co), "old")->owner);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h1");
	assert_int_equal(model_instance(coord_model(co), "web")->epoch, 1);
	assert_int_equal(model_failovers(coord_model(co), &fos), 0);
}

/* The store's word on leadership at the moment of each answer. */
static int		 lead_now = 1;
static uint64_t		 lead_term;
static const char	*lead_seen;

static int
fake_leadership(struct store *s, uint64_t *term, const char **leader)
{
	(void)s;
	*term = lead_now ? lead_term : 0;
	*leader = lead_now ? NULL : lead_seen;
	return lead_now;
}

/* A standby, or a leader whose leadership ended by its clock though its
 * step-down timer has not run yet (a host resumed from a pause runs I/O
 * first): a renewal is answered "not leading" with who leads, never
 * granted, and the host is not held failed for it.  While it leads, each
 * grant carries the term. */
static void
test_not_leading(void **state)
{
	static struct store_ops	 ops;
	const struct store_ops	*was = st->ops;

	(void)state;
	ops = *st->ops;
	ops.leadership = fake_leadership;
	st->ops = &ops;
	lead_now = 1;
	lead_term = 42;
	renew("h1", 1, 1);
	assert_null(g_h1.refused);
	assert_int_equal(g_h1.term, 42);
	assert_false(g_h1.not_leading);
	inst("web", "h1", MODEL_HA_RESTART);
	lead_now = 0;
	lead_seen = "c2";
	renew("h1", 2, 0);
	assert_int_equal(g_h1.seq, 2);
	assert_true(g_h1.not_leading);
	assert_string_equal(g_h1.leader, "c2");
	assert_int_equal(g_h1.ttl_ms, 0);
	assert_string_equal(g_h1.owned, "");
	assert_non_null(strstr(g_h1.refused, "does not lead (c2 does)"));
	/* Not knowing who leads: it says so without a name. */
	lead_seen = NULL;
	renew("h1", 3, 0);
	assert_true(g_h1.not_leading);
	assert_string_equal(g_h1.leader, "");
	/* Leading again: granted, the instance still its. */
	lead_now = 1;
	renew("h1", 4, 0);
	assert_null(g_h1.refused);
	assert_string_equal(g_h1.owned, "web@1+spec");
	assert_int_equal(state_of("h1"), HOST_UP);
	st->ops = was;
}

/* ternctl ha set through the coordinator: stored, the owner nudged, and
 * its grant says the new policy (none: the agent stops gating it). */
static void
test_ha_set(void **state)
{
	struct model_ha_set	 set;
	char			*cause = NULL;
	int			 done = 0;
	unsigned		 nudges;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	renew_holding("h1", 2, 0, "web@1");
	assert_string_equal(g_h1.unprotected, "");
	nudges = g_h1.nudges;
	memset(&set, 0, sizeof set);
	set.has_ha = 1;
	set.ha = MODEL_HA_NONE;
	assert_int_equal(coord_ha_set(co, "web", &set, model_done, &done,
	    &cause), 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(done, 1);
	assert_int_equal(g_h1.nudges, nudges + 1);
	renew("h1", 3, 0);
	assert_string_equal(g_h1.unprotected, "web");
	/* Refused at once: nothing stored, no nudge. */
	set.ha = MODEL_HA_CHECKPOINT;
	assert_int_equal(coord_ha_set(co, "web", &set, model_done, &done,
	    &cause), -1);
	assert_non_null(strstr(cause, "needs --interval and --replicas"));
	free(cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(done, 1);
	assert_int_equal(g_h1.nudges, nudges + 1);
	assert_int_equal(model_instance(coord_model(co), "web")->ha,
	    MODEL_HA_NONE);
}

/* host renews, holding nothing, and says it could not start name at
 * epoch (LeaseRenew.failed). */
static void
renew_failed(const char *host, uint64_t seq, const char *name,
    uint64_t epoch, const char *why)
{
	Envelope		 env;
	Tern__LeaseRenew	 r = TERN__LEASE_RENEW__INIT;
	Tern__FailedInstance	 fi = TERN__FAILED_INSTANCE__INIT, *fp = &fi;

	fi.name = (char *)name;
	fi.epoch = epoch;
	fi.why = (char *)why;
	r.seq = seq;
	r.n_failed = 1;
	r.failed = &fp;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_RENEW;
	env.lease_renew = &r;
	assert_int_equal(coord_on_msg(co, host, &env), 1);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* A failover's target that cannot start the instance says so: the
 * record's outcome is failed (with why) and the next host gets it, never
 * one where it failed already; with none left it stays. */
static void
test_restore_failed(void **state)
{
	struct model_failover	**fos;
	struct model_instance	 *in;
	uint64_t		  t0 = clock_now;
	size_t			  n;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	renew("h3", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	clock_now = t0 + TTL;
	renew("h2", 2, 0);
	renew("h3", 2, 0);
	check_at(t0 + TTL + MARGIN + 1);
	in = model_instance(coord_model(co), "web");
	assert_string_equal(in->owner, "h2");	/* least loaded, by name */
	assert_int_equal(in->epoch, 2);
	/* Not the failover's target at that epoch: ignored. */
	renew_failed("h3", 3, "web", 2, "no rootfs");
	renew_failed("h2", 3, "web", 1, "no rootfs");
	assert_int_equal(model_failovers(coord_model(co), &fos), 1);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h2");
	renew_failed("h2", 4, "web", 2, "no rootfs");
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(n, 2);
	assert_int_equal(fos[0]->outcome, MODEL_OUTCOME_FAILED);
	assert_string_equal(fos[0]->why, "could not start on h2: no rootfs");
	assert_string_equal(fos[1]->from, "h2");
	assert_string_equal(fos[1]->to, "h3");
	assert_int_equal(fos[1]->epoch, 3);
	assert_string_equal(fos[1]->why, "could not start on h2: no rootfs");
	in = model_instance(coord_model(co), "web");
	assert_string_equal(in->owner, "h3");
	assert_int_equal(in->epoch, 3);
	assert_int_equal(g_h3.nudges, 1);
	/* Said again: nothing more. */
	renew_failed("h2", 5, "web", 2, "no rootfs");
	assert_int_equal(model_failovers(coord_model(co), &fos), 2);
	/* h3 fails too: h2 failed already, h1 is down: it stays on h3. */
	renew_failed("h3", 4, "web", 3, "out of memory");
	n = model_failovers(coord_model(co), &fos);
	assert_int_equal(n, 2);
	assert_int_equal(fos[1]->outcome, MODEL_OUTCOME_FAILED);
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h3");
	/* It runs there after all (h3 tried again): it runs. */
	renew_holding("h3", 5, 0, "web@3*");
	assert_int_equal(model_failover_last(coord_model(co), "web")->outcome,
	    MODEL_OUTCOME_RUNNING);
}

/* A migration's commit point: host asks to move name to to (epoch). */
static void
owner_move(const char *host, const char *name, const char *to,
    uint64_t epoch, int run)
{
	Envelope		 env;
	Tern__OwnerMoveRequest	 r = TERN__OWNER_MOVE_REQUEST__INIT;

	r.name = (char *)name;
	r.to = (char *)to;
	r.epoch = epoch;
	r.migration = 7;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST;
	env.owner_move_request = &r;
	assert_int_equal(coord_on_msg(co, host, &env), 1);
	if (run)
		uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

static void
owner_query(const char *host, const char *name)
{
	Envelope		 env;
	Tern__OwnerQuery	 q = TERN__OWNER_QUERY__INIT;

	q.name = (char *)name;
	q.migration = 7;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_QUERY;
	env.owner_query = &q;
	assert_int_equal(coord_on_msg(co, host, &env), 1);
}

/* A protected instance migrates: one compare-and-move in the store
 * (owner h1 at epoch 1 -> h2 at 2), answered once stored, the target
 * nudged, no failover history; stale or foreign moves are refused with
 * nothing changed; while it is written a query says "moving" (the source
 * asks again), after it the owner; a restarted coordinator reads it back. */
static void
test_owner_move(void **state)
{
	struct model_failover	**fos;
	struct model_instance	 *in;

	(void)state;
	renew("h1", 1, 1);
	renew("h2", 1, 1);
	inst("web", "h1", MODEL_HA_RESTART);
	/* The move is being written: not listed to either host. */
	owner_move("h1", "web", "h2", 1, 0);
	owner_query("h1", "web");
	assert_string_equal(owner_reply, "web: moving");
	renew_holding("h1", 2, 0, "");
	assert_string_equal(g_h1.owned, "");
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_string_equal(owner_reply, "web to h1 #7: epoch 2");
	in = model_instance(coord_model(co), "web");
	assert_string_equal(in->owner, "h2");
	assert_int_equal(in->epoch, 2);
	assert_int_equal(g_h2.nudges, 1);
	/* Not a failover. */
	assert_int_equal(failovers, 0);
	assert_int_equal(model_failovers(coord_model(co), &fos), 0);
	renew("h2", 2, 0);
	assert_string_equal(g_h2.owned, "web@2+spec");
	owner_query("h1", "web");
	assert_string_equal(owner_reply, "web: h2@2");
	/* The old owner again, a stale epoch, a host not in the cluster. */
	owner_move("h1", "web", "h2", 1, 1);
	assert_string_equal(owner_reply, "web to h1 #7: it belongs to h2 now "
	    "(epoch 2), not to h1");
	owner_move("h2", "web", "h1", 1, 1);
	assert_string_equal(owner_reply, "web to h2 #7: it is at epoch 2, "
	    "not 1");
	owner_move("h2", "web", "h9", 2, 1);
	assert_string_equal(owner_reply, "web to h2 #7: the target is not a "
	    "host of the cluster");
	owner_move("h2", "nope", "h1", 1, 1);
	assert_string_equal(owner_reply, "nope to h2 #7: the coordinator does "
	    "not know it");
	in = model_instance(coord_model(co), "web");
	assert_string_equal(in->owner, "h2");
	assert_int_equal(in->epoch, 2);
	/* The store keeps it. */
	close_coord();
	open_coord();
	in = model_instance(coord_model(co), "web");
	assert_string_equal(in->owner, "h2");
	assert_int_equal(in->epoch, 2);
	/* And it moves back the same way. */
	renew("h1", 3, 1);
	renew("h2", 3, 1);
	owner_move("h2", "web", "h1", 2, 1);
	assert_string_equal(owner_reply, "web to h2 #7: epoch 3");
	assert_string_equal(model_instance(coord_model(co), "web")->owner,
	    "h1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejoin_during_move, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_replicas, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_epoch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ha_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_leading, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_restore_failed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_move, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
