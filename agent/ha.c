/* The agent's lease keeper (see ha.h). */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "ha"
#include "agent/ha.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* Renewals remembered to count a grant from its send time: answers older
 * than this many renewals are ignored (their lease ran out anyway). */
#define HA_SENT_MAX	16
#define HA_NUDGE_GAP_MS	20	/* between renewals a nudge asks for */

struct ha_sent {
	uint64_t	seq;
	uint64_t	at_ms;
};

struct ha_agent {
	struct ha_agent_conf	 conf;
	char			*coordinator;
	struct ha_agent_ops	 ops;
	void			*ctx;
	struct lease		 lease;
	uint64_t		 seq;
	struct ha_sent		 sent[HA_SENT_MAX];
	int			 join;		/* the next renewal registers */
	int			 fenced;	/* since the last grant */
	char			*refused;	/* the last refusal */
	uv_timer_t		*renew_timer;
	uv_timer_t		*fence_timer;
};

static uint64_t
ha_now(const struct ha_agent *h)
{
	return h->ops.clock != NULL ? h->ops.clock(h->ctx) : now_ms();
}

static void
ha_fence(struct ha_agent *h, const char *why)
{
	if (h->fenced)
		return;
	h->fenced = 1;
	log_warnx("lease from %s lost: %s; stopping the protected instances",
	    h->coordinator, why);
	h->ops.fence(h->ctx, why);
}

static void
ha_fence_due(uv_timer_t *t)
{
	ha_agent_check(t->data);
}

static void
ha_renew_due(uv_timer_t *t)
{
	ha_agent_renew(t->data);
}

/* The fence timer: at the lease's stop time. */
static void
ha_arm_fence(struct ha_agent *h)
{
	uint64_t	now = ha_now(h), at = lease_stop_at(&h->lease);

	uv_timer_start(h->fence_timer, ha_fence_due, at > now ? at - now : 0,
	    0);
}

void
ha_agent_check(struct ha_agent *h)
{
	if (!lease_valid(&h->lease, ha_now(h)))
		ha_fence(h, h->refused != NULL ? h->refused : "no renewal "
		    "was granted in time (the coordinator is unreachable or "
		    "silent)");
	else
		ha_arm_fence(h);
}

void
ha_agent_renew(struct ha_agent *h)
{
	Envelope		 env;
	Tern__LeaseRenew	 r = TERN__LEASE_RENEW__INIT;
	char			*cause = NULL;
	uint64_t		 now = ha_now(h);

	h->seq++;
	h->sent[h->seq % HA_SENT_MAX].seq = h->seq;
	h->sent[h->seq % HA_SENT_MAX].at_ms = now;
	r.seq = h->seq;
	r.has_join = r.join = h->join;
	r.has_boot_id = 1;
	r.boot_id = h->conf.boot_id;
	if (h->ops.held != NULL)
		h->ops.held(h->ctx, &r);
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_RENEW;
	env.lease_renew = &r;
	if (h->ops.send(h->ctx, h->coordinator, &env, &cause) == -1) {
		log_debug("lease renewal %" PRIu64 " to %s not sent: %s",
		    h->seq, h->coordinator, cause);
		free(cause);
	}
	if (h->ops.held_free != NULL)
		h->ops.held_free(h->ctx, &r);
	uv_timer_start(h->renew_timer, ha_renew_due, h->conf.ttl_ms / 3, 0);
}

static void
ha_on_grant(struct ha_agent *h, const Tern__LeaseGrant *g)
{
	const struct ha_sent	*s = &h->sent[g->seq % HA_SENT_MAX];

	if (s->seq != g->seq || g->seq == 0)
		return;		/* too old, or never sent */
	if (g->refused != NULL || !g->has_ttl_ms || g->ttl_ms == 0) {
		free(h->refused);
		xasprintf(&h->refused, "the coordinator refused: %s",
		    g->refused != NULL ? g->refused : "no lease");
		lease_revoke(&h->lease);
		h->join = 1;
		ha_fence(h, h->refused);
		return;
	}
	/* A grant for an older renewal than one already counted moves
	 * nothing (lease_granted keeps the later one). */
	lease_granted(&h->lease, s->at_ms, g->ttl_ms);
	if (!lease_valid(&h->lease, ha_now(h))) {
		ha_agent_check(h);	/* it came too late to count */
		return;
	}
	if (h->join)
		log_info("registered with coordinator %s", h->coordinator);
	h->join = 0;
	h->fenced = 0;
	free(h->refused);
	h->refused = NULL;
	ha_arm_fence(h);
	if (h->ops.save != NULL)
		h->ops.save(h->ctx, lease_stop_at(&h->lease));
	h->ops.owned(h->ctx, g);
}

/* The coordinator gave this host more to run: renew now, and the grant
 * says what.  Nudges that come together (a failover of many instances,
 * one store transaction each) make one renewal. */
static void
ha_nudged(struct ha_agent *h)
{
	uint64_t	now = ha_now(h);
	uint64_t	next = h->sent[h->seq % HA_SENT_MAX].at_ms +
			    HA_NUDGE_GAP_MS;

	uv_timer_start(h->renew_timer, ha_renew_due, next > now ? next - now :
	    0, 0);
}

int
ha_agent_on_msg(struct ha_agent *h, const char *peer, const Envelope *env)
{
	if (env->body_case != TERN__ENVELOPE__BODY_LEASE_GRANT &&
	    env->body_case != TERN__ENVELOPE__BODY_LEASE_NUDGE)
		return 0;
	if (strcmp(peer, h->coordinator) != 0) {
		log_warnx("a %s from %s, which is not the coordinator (%s): "
		    "ignored", msg_name(env), peer, h->coordinator);
		return 1;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_LEASE_NUDGE)
		ha_nudged(h);
	else
		ha_on_grant(h, env->lease_grant);
	return 1;
}

int
ha_agent_valid(const struct ha_agent *h)
{
	return lease_valid(&h->lease, ha_now(h));
}

uint64_t
ha_agent_stop_at(const struct ha_agent *h)
{
	return lease_valid(&h->lease, ha_now(h)) ? lease_stop_at(&h->lease) :
	    0;
}

int
ha_agent_may_run(const struct ha_agent *h, uint64_t epoch)
{
	return epoch != 0 && ha_agent_valid(h);
}

char *
ha_agent_describe(const struct ha_agent *h)
{
	char		*s;
	uint64_t	 now = ha_now(h), at = lease_stop_at(&h->lease);

	if (lease_valid(&h->lease, now))
		xasprintf(&s, "lease from %s, valid for %" PRIu64 " ms",
		    h->coordinator, at - now);
	else
		xasprintf(&s, "no lease from %s%s%s", h->coordinator,
		    h->refused != NULL ? ": " : "",
		    h->refused != NULL ? h->refused : "");
	return s;
}

struct ha_agent *
ha_agent_new(uv_loop_t *loop, const struct ha_agent_conf *conf,
    const struct ha_agent_ops *ops, void *ctx)
{
	struct ha_agent	*h = xcalloc(1, sizeof *h);

	h->conf = *conf;
	h->coordinator = xstrdup(conf->coordinator);
	h->conf.coordinator = h->coordinator;
	h->ops = *ops;
	h->ctx = ctx;
	h->join = 1;
	lease_init(&h->lease, conf->margin_ms);
	h->renew_timer = xcalloc(1, sizeof *h->renew_timer);
	h->fence_timer = xcalloc(1, sizeof *h->fence_timer);
	uv_timer_init(loop, h->renew_timer);
	uv_timer_init(loop, h->fence_timer);
	h->renew_timer->data = h->fence_timer->data = h;
	uv_unref((uv_handle_t *)h->renew_timer);
	uv_unref((uv_handle_t *)h->fence_timer);
	return h;
}

void
ha_agent_start(struct ha_agent *h)
{
	uint64_t	now = ha_now(h);

	/* The previous lease's stop time stands for a send time the same
	 * distance before the end; what is left of it is all we have. */
	if (h->conf.resume_stop_at > now) {
		h->lease.deadline_ms = h->conf.resume_stop_at +
		    h->conf.margin_ms;
		h->lease.granted_sent_ms = 0;
	}
	ha_agent_check(h);
	ha_agent_renew(h);
}

static void
ha_timer_closed(uv_handle_t *t)
{
	free(t);
}

void
ha_agent_free(struct ha_agent *h)
{
	if (h == NULL)
		return;
	uv_close((uv_handle_t *)h->renew_timer, ha_timer_closed);
	uv_close((uv_handle_t *)h->fence_timer, ha_timer_closed);
	free(h->coordinator);
	free(h->refused);
	free(h);
}
