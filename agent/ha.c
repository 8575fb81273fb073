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
/* Asking again one that does not lead yet (a standby that won and
 * loads, or none leads while etcd elects): at most this long apart. */
#define HA_RETRY_MS	250

/* Coordinators an agent may list (conf's CONF_MAX_COORDINATORS). */
#define HA_COORDS_MAX	8

struct ha_sent {
	uint64_t	seq;
	uint64_t	at_ms;
	size_t		to;		/* coords[to] */
	int		answered;
};

struct ha_agent {
	struct ha_agent_conf	 conf;
	char			*coordinator;	/* the list as given */
	char			*coords[HA_COORDS_MAX];
	size_t			 ncoords;
	size_t			 cur;		/* renewals go there */
	size_t			 from;		/* the lease's grantor */
	/* Until when each counts as silent (no answer, no link): passed
	 * over, not forgotten (a lost renewal must not exile a leader). */
	uint64_t		 silent_until[HA_COORDS_MAX];
	unsigned		 hops;		/* turns at once, this period */
	uint64_t		 term;		/* the highest granted */
	uint64_t		 granted_seq;	/* the newest renewal granted */
	struct ha_agent_ops	 ops;
	void			*ctx;
	struct lease		 lease;
	uint64_t		 seq;
	struct ha_sent		 sent[HA_SENT_MAX];
	int			 join;		/* the next renewal registers */
	int			 fenced;	/* since the last grant */
	uint64_t		 lapses;	/* ha_agent_lapses */
	char			*refused;	/* the last refusal */
	char			*refuser;	/* who said "not leading" last */
	uv_timer_t		*renew_timer;
	uv_timer_t		*fence_timer;
};

/* coords[] index of host, or -1 if it is none of them. */
static int
ha_coord_index(const struct ha_agent *h, const char *host)
{
	size_t	i;

	for (i = 0; i < h->ncoords; i++)
		if (strcmp(h->coords[i], host) == 0)
			return (int)i;
	return -1;
}

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
	h->lapses++;
	log_warnx("lease from %s lost: %s; stopping the protected instances",
	    h->coords[h->from], why);
	h->ops.fence(h->ctx, why);
}

static void
ha_fence_due(uv_timer_t *t)
{
	ha_agent_check(t->data);
}

/* The renewal period's timer: turns at once may start again. */
static void
ha_renew_due(uv_timer_t *t)
{
	struct ha_agent	*h = t->data;

	h->hops = 0;
	ha_agent_renew(h);
}

/* A turn to another coordinator (or a retry of one that does not lead
 * yet). */
static void
ha_turn_due(uv_timer_t *t)
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

static int
ha_silent(const struct ha_agent *h, size_t i)
{
	return ha_now(h) < h->silent_until[i];
}

/* No answer from coords[i], or no link: pass it over for ttl/3. */
static void
ha_set_silent(struct ha_agent *h, size_t i)
{
	h->silent_until[i] = ha_now(h) + h->conf.ttl_ms / 3;
}

/* The next coordinator after i that answered lately; if none did, i
 * itself (stay) or, with rotate, the one after i (any may be back). */
static size_t
ha_coord_next(const struct ha_agent *h, size_t i, int rotate)
{
	size_t	k, j;

	for (k = 1; k < h->ncoords; k++) {
		j = (i + k) % h->ncoords;
		if (!ha_silent(h, j))
			return j;
	}
	return rotate ? (i + 1) % h->ncoords : i;
}

/* Turn from the coordinator renewals go to now to coords[to]. */
static void
ha_turn(struct ha_agent *h, size_t to, const char *why)
{
	if (to == h->cur)
		return;
	log_info("lease renewals turn from coordinator %s to %s: %s",
	    h->coords[h->cur], h->coords[to], why);
	h->cur = to;
}

/* The last renewal went unanswered for a third of the TTL: that
 * coordinator is unreachable or silent (down, or not one): the next. */
static void
ha_check_answered(struct ha_agent *h, uint64_t now)
{
	const struct ha_sent	*s = &h->sent[h->seq % HA_SENT_MAX];

	if (h->seq == 0 || s->seq != h->seq || s->answered ||
	    now - s->at_ms < h->conf.ttl_ms / 3)
		return;
	ha_set_silent(h, s->to);
	if (s->to == h->cur && h->ncoords > 1)
		ha_turn(h, ha_coord_next(h, h->cur, 1), "no answer within "
		    "a third of the lease's TTL");
}

/* One renewal to coords[cur]; 0 if the mesh took it. */
static int
ha_send_renewal(struct ha_agent *h, uint64_t now)
{
	Envelope		 env;
	Tern__LeaseRenew	 r = TERN__LEASE_RENEW__INIT;
	struct ha_sent		*s;
	char			*cause = NULL;
	int			 rc;

	h->seq++;
	s = &h->sent[h->seq % HA_SENT_MAX];
	s->seq = h->seq;
	s->at_ms = now;
	s->to = h->cur;
	s->answered = 0;
	r.seq = h->seq;
	r.has_join = r.join = h->join;
	r.has_boot_id = 1;
	r.boot_id = h->conf.boot_id;
	if (h->ops.held != NULL)
		h->ops.held(h->ctx, &r);
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_RENEW;
	env.lease_renew = &r;
	if ((rc = h->ops.send(h->ctx, h->coords[h->cur], &env, &cause)) ==
	    -1) {
		log_debug("lease renewal %" PRIu64 " to %s not sent: %s",
		    h->seq, h->coords[h->cur], cause);
		free(cause);
	}
	if (h->ops.held_free != NULL)
		h->ops.held_free(h->ctx, &r);
	return rc;
}

void
ha_agent_renew(struct ha_agent *h)
{
	uint64_t	now = ha_now(h), retry = h->conf.ttl_ms / 3;
	size_t		first, k, i;

	ha_check_answered(h, now);
	/* The mesh has no link to it: nothing was sent, so the next one
	 * now rather than a third of the TTL later. */
	first = h->cur;
	for (k = 0; k < h->ncoords; k++) {
		i = (first + k) % h->ncoords;
		h->cur = i;
		if (ha_send_renewal(h, now) == 0)
			break;
	}
	if (k == h->ncoords) {
		/* No link to any (ternd just started, or this host is cut
		 * off): nothing learnt, try again soon. */
		h->cur = first;
		if (retry > HA_RETRY_MS)
			retry = HA_RETRY_MS;
	} else if (k > 0) {
		for (i = 0; i < k; i++)
			ha_set_silent(h, (first + i) % h->ncoords);
		h->cur = first;
		ha_turn(h, (first + k) % h->ncoords, "no link to it");
	}
	uv_timer_start(h->renew_timer, ha_renew_due, retry, 0);
}

/* Coordinator coords[i] does not lead (leader: who does, as it knows).
 * Not a failure of this host: no fence, the lease runs its course.  To
 * the leader it names if this agent lists it and it answered lately,
 * else the next; at once, a bounded number of times per period (both
 * may say "not leading" while etcd elects), else after a short wait. */
static void
ha_not_leading(struct ha_agent *h, size_t i, const char *leader)
{
	int	l = leader != NULL ? ha_coord_index(h, leader) : -1;
	size_t	to;

	if (h->refuser == NULL || strcmp(h->refuser, h->coords[i]) != 0) {
		log_info("coordinator %s does not lead%s%s%s", h->coords[i],
		    leader != NULL ? " (" : "", leader != NULL ? leader : "",
		    leader != NULL ? " does, it says)" : "");
		free(h->refuser);
		h->refuser = xstrdup(h->coords[i]);
	}
	if (i != h->cur)
		return;		/* renewals went elsewhere meanwhile */
	if (l >= 0 && (size_t)l != i && !ha_silent(h, (size_t)l))
		to = (size_t)l;
	else if (l >= 0)
		to = i;		/* it leads but loads, or the leader is silent */
	else
		to = ha_coord_next(h, i, 0);
	ha_turn(h, to, "it does not lead");
	if (to != i && h->hops < h->ncoords) {
		h->hops++;
		uv_timer_start(h->renew_timer, ha_turn_due, 0, 0);
	} else
		uv_timer_start(h->renew_timer, ha_turn_due, h->conf.ttl_ms / 8 <
		    HA_RETRY_MS ? h->conf.ttl_ms / 8 : HA_RETRY_MS, 0);
}

/* An answer from coords[i].  Taken only for a renewal sent to that very
 * coordinator, and only from a term at least the highest granted so far:
 * a deposed leader's late grant (or refusal) changes nothing.  The lease
 * counts from the renewal's send, whoever granted it. */
static void
ha_on_grant(struct ha_agent *h, size_t i, const Tern__LeaseGrant *g)
{
	struct ha_sent	*s = &h->sent[g->seq % HA_SENT_MAX];
	uint64_t	 term = g->has_term ? g->term : 0;
	uint64_t	 now;
	int		 was_valid;

	if (s->seq != g->seq || g->seq == 0 || s->to != i)
		return;		/* too old, never sent, or not sent there */
	s->answered = 1;
	h->silent_until[i] = 0;
	/* No term (a follower has none) and no lease in it: it only says
	 * where to turn. */
	if (g->has_not_leading && g->not_leading) {
		ha_not_leading(h, i, g->leader);
		return;
	}
	if (term < h->term) {
		log_warnx("a lease %s from %s of term %" PRIu64 ", older than "
		    "term %" PRIu64 " that granted this host's lease: ignored "
		    "(a deposed leader's)", g->refused != NULL ? "refusal" :
		    "grant", h->coords[i], term, h->term);
		return;
	}
	if (g->refused != NULL || !g->has_ttl_ms || g->ttl_ms == 0) {
		free(h->refused);
		xasprintf(&h->refused, "coordinator %s refused: %s",
		    h->coords[i], g->refused != NULL ? g->refused :
		    "no lease");
		lease_revoke(&h->lease);
		h->join = 1;
		h->from = h->cur = i;
		ha_fence(h, h->refused);
		return;
	}
	h->term = term;
	/* A grant for an older renewal than one already counted moves
	 * nothing (lease_granted keeps the later one), nor what the newer
	 * grant said this host owns.  One that makes a lease valid again
	 * counts a lapse even where no fence did (its timer not run yet,
	 * or the host already fenced since an earlier lapse). */
	now = ha_now(h);
	was_valid = lease_valid(&h->lease, now);
	lease_granted(&h->lease, s->at_ms, g->ttl_ms);
	if (!lease_valid(&h->lease, now)) {
		ha_agent_check(h);	/* it came too late to count */
		return;
	}
	if (!was_valid)
		h->lapses++;
	if (g->seq < h->granted_seq)
		return;
	h->granted_seq = g->seq;
	if (i != h->cur)
		ha_turn(h, i, "it granted the lease");
	if (i != h->from || h->join)
		log_info("%s coordinator %s", h->join ? "registered with" :
		    "lease now from", h->coords[i]);
	h->from = i;
	free(h->refuser);
	h->refuser = NULL;
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
	int	i;

	if (env->body_case != TERN__ENVELOPE__BODY_LEASE_GRANT &&
	    env->body_case != TERN__ENVELOPE__BODY_LEASE_NUDGE)
		return 0;
	if ((i = ha_coord_index(h, peer)) < 0) {
		log_warnx("a %s from %s, which is not a coordinator of this "
		    "host (%s): ignored", msg_name(env), peer, h->coordinator);
		return 1;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_LEASE_NUDGE) {
		/* Only a leader moves instances: ask it. */
		h->silent_until[i] = 0;
		ha_turn(h, (size_t)i, "it nudged this host");
		ha_nudged(h);
	} else
		ha_on_grant(h, (size_t)i, env->lease_grant);
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

uint64_t
ha_agent_lapses(const struct ha_agent *h)
{
	return h->lapses;
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
		    h->coords[h->from], at - now);
	else
		xasprintf(&s, "no lease from %s%s%s", h->coords[h->cur],
		    h->refused != NULL ? ": " : "",
		    h->refused != NULL ? h->refused : "");
	return s;
}

const char *
ha_agent_coordinator(const struct ha_agent *h)
{
	return h->coords[h->cur];
}

int
ha_agent_is_coordinator(const struct ha_agent *h, const char *host)
{
	return ha_coord_index(h, host) != -1;
}

struct ha_agent *
ha_agent_new(uv_loop_t *loop, const struct ha_agent_conf *conf,
    const struct ha_agent_ops *ops, void *ctx)
{
	struct ha_agent	*h = xcalloc(1, sizeof *h);
	const char	*p, *comma;

	h->conf = *conf;
	h->coordinator = xstrdup(conf->coordinator);
	h->conf.coordinator = h->coordinator;
	/* conf.c checked the list (known, none twice, at most 8). */
	for (p = conf->coordinator; h->ncoords < HA_COORDS_MAX; p = comma + 1) {
		comma = strchr(p, ',');
		h->coords[h->ncoords++] = comma != NULL ? xstrndup(p,
		    (size_t)(comma - p)) : xstrdup(p);
		if (comma == NULL)
			break;
	}
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
	size_t	i;

	if (h == NULL)
		return;
	uv_close((uv_handle_t *)h->renew_timer, ha_timer_closed);
	uv_close((uv_handle_t *)h->fence_timer, ha_timer_closed);
	for (i = 0; i < h->ncoords; i++)
		free(h->coords[i]);
	free(h->coordinator);
	free(h->refused);
	free(h->refuser);
	free(h);
}
