/* The coordinator role (see coordinator.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "coord"
#include "coord/coordinator.h"
#include "coord/fence.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* The timer never sleeps longer: a lease granted meanwhile moves the
 * next decision, and a check is cheap. */
#define COORD_CHECK_MAX_MS	1000
/* A store that could not be loaded is asked again after this long. */
#define COORD_RELOAD_MS		1000
/* A grant names at most this many instances (a host runs fewer). */
#define COORD_OWNED_MAX		1024

/* An instance being moved (its transaction not answered yet): never
 * planned twice. */
struct moving {
	struct moving	*next;
	char		*name;
	char		*from, *to;
	uint64_t	 epoch;
	int		 release;	/* its host let it go: owner none */
	struct coordinator *c;
};

/* A held instance being added (its transaction not answered yet). */
struct adding {
	struct adding	*next;
	char		*name;
	struct coordinator *c;
};

/* fence_command running for a suspect host. */
struct fencing {
	struct fencing	*next;
	char		*host;
	struct fence	*f;
	struct coordinator *c;
};

/* A registration waiting for its host record to be stored. */
struct joining {
	struct coordinator *c;
	char		*host;
	uint64_t	 seq;
};

struct coordinator {
	uv_loop_t		*loop;
	struct coord_conf	 conf;
	char			*name;
	struct store		*store;
	struct model		*model;
	struct coord_transport	 tp;
	uv_timer_t		*timer;
	int			 loaded;
	int			 leading;
	uint64_t		 quiet_until;
	struct moving		*moving;
	struct adding		*adding;
	struct fencing		*fencing;
	char			*fence_command;
	unsigned		 pending;	/* callbacks still to come */
	int			 freed;
	coord_event_cb		 ev;
	void			*ev_arg;
	void			(*ready)(void *, const char *);
	void			*ready_arg;
};

static void	coord_arm(struct coordinator *);
static struct moving *coord_moving(struct coordinator *, const char *);
static void	coord_moved(void *, const char *);
static void	coord_move(struct coordinator *, const struct model_instance *,
		    const char *, const char *, int);

static uint64_t
coord_now(const struct coordinator *c)
{
	return c->conf.clock != NULL ? c->conf.clock(c->conf.clock_arg) :
	    now_ms();
}

static void
coord_event(struct coordinator *c, enum coord_event e, const char *host,
    const char *inst, const char *text)
{
	if (c->ev != NULL)
		c->ev(c->ev_arg, e, host, inst, text);
}

static void
coord_maybe_free(struct coordinator *c)
{
	if (!c->freed || c->pending > 0 || c->timer != NULL)
		return;
	model_free(c->model);
	free(c->name);
	free(c->fence_command);
	free(c);
}

/* --- grants ---------------------------------------------------------------- */

/* The newest replica of in on host made before its current epoch: what a
 * host that received in by failover restores. */
static uint64_t
coord_restore_generation(struct coordinator *c,
    const struct model_instance *in, const char *host)
{
	struct model_replica	**reps;
	size_t			  n, i;
	uint64_t		  gen = 0;

	if (in->ha != MODEL_HA_CHECKPOINT)
		return 0;
	reps = model_replicas(c->model, in->name, &n);
	for (i = 0; i < n; i++)
		if (strcmp(reps[i]->host, host) == 0 &&
		    reps[i]->epoch < in->epoch) {
			gen = reps[i]->generation;
			break;
		}
	free(reps);
	return gen;
}

static int
coord_held(const Tern__LeaseRenew *r, const char *name)
{
	size_t	i;

	for (i = 0; r != NULL && i < r->n_held; i++)
		if (strcmp(r->held[i]->name, name) == 0)
			return 1;
	return 0;
}

/* The grant (or refusal) for renewal r (NULL: none at hand, as after a
 * join's store write: the host then gets every spec). */
static void
coord_reply(struct coordinator *c, const char *host, uint64_t seq,
    const Tern__LeaseRenew *r, Tern__InstanceRefusal **refusals,
    size_t nrefusals, const char *refused)
{
	Envelope		  env;
	Tern__LeaseGrant	  g = TERN__LEASE_GRANT__INIT;
	Tern__OwnedInstance	 *owned = NULL, **ptrs = NULL;
	struct model_instance	**insts;
	size_t			  n, i, k = 0;
	char			 *cause = NULL;

	g.seq = seq;
	if (refused != NULL)
		g.refused = (char *)refused;
	else {
		g.has_ttl_ms = 1;
		g.ttl_ms = c->conf.lease.ttl_ms;
		n = model_instances(c->model, &insts);
		owned = xcalloc(n + 1, sizeof *owned);
		ptrs = xcalloc(n + 1, sizeof *ptrs);
		for (i = 0; i < n && k < COORD_OWNED_MAX; i++) {
			struct model_instance *in = insts[i];
			struct moving *mv = coord_moving(c, in->name);

			/* One being moved away is not the host's any more,
			 * whatever the store says until the move commits.  One
			 * it released is, until the release commits: the host
			 * takes a grant without it as the release recorded. */
			if (in->owner == NULL || strcmp(in->owner, host) != 0 ||
			    (mv != NULL && !mv->release))
				continue;
			tern__owned_instance__init(&owned[k]);
			owned[k].name = in->name;
			owned[k].epoch = in->epoch;
			owned[k].has_kind = 1;
			owned[k].kind = in->kind;
			owned[k].restore_generation =
			    coord_restore_generation(c, in, host);
			owned[k].has_restore_generation =
			    owned[k].restore_generation != 0;
			if (!coord_held(r, in->name)) {
				owned[k].spec = in->spec;
				owned[k].spec_dir = in->spec_dir;
				owned[k].has_ha = 1;
				owned[k].ha = (Tern__HaPolicy)in->ha;
			}
			ptrs[k] = &owned[k];
			k++;
		}
		g.n_owned = k;
		g.owned = ptrs;
		g.n_refusals = nrefusals;
		g.refusals = refusals;
	}
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_GRANT;
	env.lease_grant = &g;
	if (c->tp.send(c->tp.ctx, host, &env, &cause) == -1) {
		log_warnx("cannot answer %s's lease renewal: %s", host, cause);
		free(cause);
	}
	free(owned);
	free(ptrs);
}

static void
coord_joined(void *arg, const char *error)
{
	struct joining		*j = arg;
	struct coordinator	*c = j->c;
	struct model_host	*h;

	c->pending--;
	if (c->freed) {
		/* nothing to answer any more */
	} else if (error != NULL || (h = model_host(c->model, j->host)) ==
	    NULL) {
		log_warnx("host %s cannot join: %s", j->host, error != NULL ?
		    error : "its record vanished");
		/* No answer: the agent asks again at its next renewal. */
	} else {
		host_lease_rejoin(&h->lease, coord_now(c));
		log_info("host %s joined", j->host);
		coord_event(c, COORD_EV_HOST_STATE, j->host, NULL, "up");
		coord_reply(c, j->host, j->seq, NULL, NULL, 0, NULL);
		coord_arm(c);
	}
	free(j->host);
	free(j);
	coord_maybe_free(c);
}

static void
coord_added(void *arg, const char *error)
{
	struct adding		*ad = arg, **pp;
	struct coordinator	*c = ad->c;

	c->pending--;
	for (pp = &c->adding; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ad) {
			*pp = ad->next;
			break;
		}
	if (!c->freed) {
		if (error != NULL)
			log_warnx("instance %s not added: %s", ad->name, error);
		else {
			fault_die_at("coord.add.committed");	/* no grant yet */
			log_info("instance %s is protected now", ad->name);
		}
	}
	free(ad->name);
	free(ad);
	coord_maybe_free(c);
}

static int
coord_adding(struct coordinator *c, const char *name)
{
	struct adding	*ad;

	for (ad = c->adding; ad != NULL; ad = ad->next)
		if (strcmp(ad->name, name) == 0)
			return 1;
	return 0;
}

/* A new protected instance of host's: added at epoch 1, owned by host. */
static const char *
coord_add_held(struct coordinator *c, const char *host,
    const Tern__HeldInstance *hi, char **cause)
{
	struct model_instance	 in;
	struct adding		*ad;

	if (!hi->has_kind || hi->spec == NULL || !hi->has_ha)
		return "a new protected instance needs its kind, spec and "
		    "policy";
	memset(&in, 0, sizeof in);
	in.name = hi->name;
	in.kind = hi->kind;
	in.spec = hi->spec;
	in.spec_dir = hi->spec_dir;
	in.owner = (char *)host;
	in.ha = (enum model_ha)hi->ha;
	in.priority = hi->has_priority ? hi->priority : 0;
	ad = xcalloc(1, sizeof *ad);
	ad->c = c;
	ad->name = xstrdup(hi->name);
	if (model_instance_add(c->model, &in, coord_added, ad, cause) == -1) {
		free(ad->name);
		free(ad);
		return *cause;
	}
	ad->next = c->adding;
	c->adding = ad;
	c->pending++;
	return NULL;
}

/* The operator destroyed host's copy: it runs nowhere now (the next
 * epoch, no owner), so no grant starts it again anywhere. */
static void
coord_release(struct coordinator *c, const char *host,
    const Tern__HeldInstance *hi)
{
	struct model_instance	*in = model_instance(c->model, hi->name);

	if (in == NULL || in->owner == NULL || strcmp(in->owner, host) != 0 ||
	    in->epoch != hi->epoch || coord_moving(c, hi->name) != NULL)
		return;		/* not host's to release (any more) */
	coord_move(c, in, host, NULL, 1);
}

/* What host holds: new instances are added, a name taken elsewhere is
 * refused; then the grant, which lists what host owns. */
static void
coord_take_held(struct coordinator *c, const char *host,
    const Tern__LeaseRenew *r)
{
	Tern__InstanceRefusal	 *refs, **ptrs;
	size_t			  i, n = 0;
	char			**whys, *cause;
	const char		 *why;

	refs = xcalloc(r->n_held + 1, sizeof *refs);
	ptrs = xcalloc(r->n_held + 1, sizeof *ptrs);
	whys = xcalloc(r->n_held + 1, sizeof *whys);
	for (i = 0; i < r->n_held; i++) {
		const Tern__HeldInstance	*hi = r->held[i];
		struct model_instance		*in;

		cause = NULL;
		why = NULL;
		in = model_instance(c->model, hi->name);
		if (i >= COORD_OWNED_MAX)
			why = "too many instances in one renewal";
		else if (!host_name_valid(hi->name))
			why = "not a valid instance name";
		else if (hi->has_released && hi->released) {
			coord_release(c, host, hi);
			continue;
		} else if (coord_moving(c, hi->name) != NULL)
			why = "it is being failed over to another host";
		else if (in != NULL && in->owner != NULL &&
		    strcmp(in->owner, host) != 0) {
			xasprintf(&whys[n], "instance %s belongs to host %s "
			    "(epoch %" PRIu64 ")", hi->name, in->owner,
			    in->epoch);
			why = whys[n];
		} else if (in == NULL && hi->epoch == 0 &&
		    !coord_adding(c, hi->name))
			why = coord_add_held(c, host, hi, &cause);
		else if (in != NULL && in->owner == NULL && hi->epoch == 0) {
			xasprintf(&whys[n], "instance %s is in the coordinator's "
			    "records, running nowhere (released at epoch %"
			    PRIu64 "): give the new one another name",
			    hi->name, in->epoch);
			why = whys[n];
		} else if (in == NULL && hi->epoch != 0)
			why = "the coordinator does not know it at that epoch";
		if (why == NULL)
			continue;
		if (whys[n] == NULL)
			whys[n] = xstrdup(why);
		free(cause);
		tern__instance_refusal__init(&refs[n]);
		refs[n].name = hi->name;
		refs[n].why = whys[n];
		ptrs[n] = &refs[n];
		n++;
	}
	coord_reply(c, host, r->seq, r, ptrs, n, NULL);
	coord_arm(c);
	for (i = 0; i < n; i++)
		free(whys[i]);
	free(whys);
	free(refs);
	free(ptrs);
}

static void
coord_on_renew(struct coordinator *c, const char *host,
    const Tern__LeaseRenew *r)
{
	struct model_host	*h = model_host(c->model, host);
	struct joining		*j;
	char			*cause = NULL, *why;
	uint64_t		 now = coord_now(c);

	if (h == NULL && !(r->has_join && r->join)) {
		coord_reply(c, host, r->seq, NULL, NULL, 0, "this host is not "
		    "registered with the coordinator: register first");
		return;
	}
	if (h == NULL) {
		j = xcalloc(1, sizeof *j);
		j->c = c;
		j->host = xstrdup(host);
		j->seq = r->seq;
		if (model_host_put(c->model, host, 0, 0, 0, coord_joined, j,
		    &cause) == -1) {
			log_warnx("host %s cannot join: %s", host, cause);
			free(cause);
			free(j->host);
			free(j);
			return;
		}
		c->pending++;
		return;
	}
	if (r->has_join && r->join) {
		if (h->lease.state != HOST_UP)
			log_info("host %s registers again (it was %s)", host,
			    host_state_names[h->lease.state]);
		host_lease_rejoin(&h->lease, now);
		coord_event(c, COORD_EV_HOST_STATE, host, NULL, "up");
	} else if (host_lease_renew(&h->lease, now) == -1) {
		xasprintf(&why, "host %s was declared %s: its instances may "
		    "run elsewhere; stop the protected ones and register again",
		    host, host_state_names[h->lease.state]);
		coord_reply(c, host, r->seq, NULL, NULL, 0, why);
		free(why);
		return;
	}
	coord_take_held(c, host, r);
}

static void
coord_drain_put(void *arg, const char *error)
{
	struct coordinator	*c = arg;

	c->pending--;
	if (error != NULL && !c->freed)
		log_warnx("a host's drain mark not recorded: %s (the next "
		    "renewal tries again)", error);
	coord_maybe_free(c);
}

void
coord_host_drained(struct coordinator *c, const char *host, int drained)
{
	struct model_host	*h;
	char			*cause = NULL;

	if (!c->leading || !c->loaded ||
	    (h = model_host(c->model, host)) == NULL ||
	    (h->drained != 0) == (drained != 0))
		return;
	log_info("host %s %s: %s", host, drained ? "drained" :
	    "undrained", drained ? "no failover goes there" :
	    "failovers may go there again");
	if (model_host_put(c->model, host, drained, h->memory_mib,
	    h->max_instances, coord_drain_put, c, &cause) == -1) {
		log_warnx("host %s: drain mark not recorded: %s", host, cause);
		free(cause);
		return;
	}
	c->pending++;
}

int
coord_on_msg(struct coordinator *c, const char *host, const Envelope *env)
{
	if (env->body_case != TERN__ENVELOPE__BODY_LEASE_RENEW)
		return 0;
	/* A follower (or one that has not loaded yet) grants nothing: the
	 * agent's lease runs out unless the leader renews it. */
	if (!c->leading || !c->loaded || !host_name_valid(host))
		return 1;
	coord_on_renew(c, host, env->lease_renew);
	return 1;
}

/* --- failover -------------------------------------------------------------- */

static struct moving *
coord_moving(struct coordinator *c, const char *name)
{
	struct moving	*mv;

	for (mv = c->moving; mv != NULL; mv = mv->next)
		if (strcmp(mv->name, name) == 0)
			return mv;
	return NULL;
}

static void
coord_moving_free(struct moving *mv)
{
	free(mv->name);
	free(mv->from);
	free(mv->to);
	free(mv);
}

/* host owns more now: it renews at once and its grant says what. */
static void
coord_nudge(struct coordinator *c, const char *host)
{
	Envelope		env;
	Tern__LeaseNudge	n = TERN__LEASE_NUDGE__INIT;
	char			*cause = NULL;

	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_NUDGE;
	env.lease_nudge = &n;
	if (c->tp.send(c->tp.ctx, host, &env, &cause) == -1) {
		log_debug("no nudge to %s (its next renewal learns it): %s",
		    host, cause);
		free(cause);
	}
}

static void
coord_moved(void *arg, const char *error)
{
	struct moving		*mv = arg, **pp;
	struct coordinator	*c = mv->c;
	char			*text;

	c->pending--;
	if (error == NULL && !c->freed)
		fault_die_at("coord.move.committed");	/* no nudge, no grant */
	for (pp = &c->moving; *pp != NULL; pp = &(*pp)->next)
		if (*pp == mv) {
			*pp = mv->next;
			break;
		}
	if (!c->freed && mv->release) {
		if (error != NULL)
			log_warnx("instance %s: release by %s not recorded: %s "
			    "(its next renewal asks again)", mv->name, mv->from,
			    error);
		else {
			log_info("instance %s released by %s: it runs nowhere "
			    "now (epoch %" PRIu64 ")", mv->name, mv->from,
			    mv->epoch + 1);
			coord_nudge(c, mv->from);	/* its destroy waits */
		}
	} else if (!c->freed) {
		if (error != NULL)
			xasprintf(&text, "not moved from %s to %s: %s", mv->from,
			    mv->to, error);
		else
			xasprintf(&text, "moved from %s to %s at epoch %" PRIu64,
			    mv->from, mv->to, mv->epoch + 1);
		if (error != NULL)
			log_warnx("failover of %s: %s", mv->name, text);
		else
			log_info("failover of %s: %s", mv->name, text);
		coord_event(c, COORD_EV_FAILOVER, mv->from, mv->name, text);
		free(text);
		if (error == NULL)
			coord_nudge(c, mv->to);
		coord_arm(c);
	}
	coord_moving_free(mv);
	coord_maybe_free(c);
}

/* The one way an instance changes owner here: one transaction compared on
 * the epoch read, listed in c->moving until it is answered (meanwhile no
 * grant lists the instance to anyone).  to NULL: it runs nowhere. */
static void
coord_move(struct coordinator *c, const struct model_instance *in,
    const char *from, const char *to, int release)
{
	struct moving	*mv = xcalloc(1, sizeof *mv);
	char		*cause = NULL;

	mv->c = c;
	mv->name = xstrdup(in->name);
	mv->from = xstrdup(from);
	mv->to = xstrdup(to != NULL ? to : "nowhere");
	mv->epoch = in->epoch;
	mv->release = release;
	if (model_instance_move(c->model, in->name, in->epoch, to, coord_moved,
	    mv, &cause) == -1) {
		log_warnx("%s of %s: %s", release ? "release" : "failover",
		    in->name, cause);
		free(cause);
		coord_moving_free(mv);
		return;
	}
	mv->next = c->moving;
	c->moving = mv;
	c->pending++;
}

/* Move what failed owns and may run elsewhere, one transaction each
 * (compared against the epoch the plan read).  What has nowhere to go
 * stays owned by failed: the next check tries again. */
static void
coord_failover(struct coordinator *c, const char *failed)
{
	struct model_plan	*plan;
	size_t			 n, i;

	n = model_failover_plan(c->model, failed, &plan);
	for (i = 0; i < n; i++) {
		struct model_instance *in = plan[i].instance;

		if (plan[i].target == NULL)
			log_debug("failover of %s: %s", in->name, plan[i].why);
		else if (coord_moving(c, in->name) == NULL) {
			coord_move(c, in, failed, plan[i].target, 0);
			fault_die_at("coord.failover.moving");	/* the rest not */
		}
	}
	model_plan_free(plan, n);
}

static void
coord_fenced(void *arg, int fenced, const char *why)
{
	struct fencing		*fg = arg, **pp;
	struct coordinator	*c = fg->c;
	struct model_host	*h;

	for (pp = &c->fencing; *pp != NULL; pp = &(*pp)->next)
		if (*pp == fg) {
			*pp = fg->next;
			break;
		}
	if (!fenced)
		log_warnx("fencing host %s failed: %s; waiting for its lease "
		    "to end instead", fg->host, why);
	else if ((h = model_host(c->model, fg->host)) != NULL) {
		log_info("host %s fenced: %s", fg->host, why);
		host_lease_fenced(&h->lease, coord_now(c));
		coord_event(c, COORD_EV_HOST_STATE, fg->host, NULL,
		    host_state_names[HOST_FENCED]);
		coord_check(c);
	}
	free(fg->host);
	free(fg);
}

/* A host became suspect: power it off if the operator said how. */
static void
coord_fence(struct coordinator *c, const char *host)
{
	struct fencing	*fg;
	char		*cause = NULL;

	if (c->fence_command == NULL)
		return;
	for (fg = c->fencing; fg != NULL; fg = fg->next)
		if (strcmp(fg->host, host) == 0)
			return;
	fg = xcalloc(1, sizeof *fg);
	fg->c = c;
	fg->host = xstrdup(host);
	log_info("host %s is suspect: running %s %s", host, c->fence_command,
	    host);
	fg->f = fence_start(c->loop, c->fence_command, host,
	    c->conf.fence_timeout_ms, coord_fenced, fg, &cause);
	if (fg->f == NULL) {
		log_warnx("cannot fence host %s: %s", host, cause);
		free(cause);
		free(fg->host);
		free(fg);
		return;
	}
	fg->next = c->fencing;
	c->fencing = fg;
}

void
coord_check(struct coordinator *c)
{
	struct model_host	**hosts;
	size_t			  n, i;
	uint64_t		  now = coord_now(c);
	char			**failed = NULL;
	size_t			  nfailed = 0;

	if (!c->leading || !c->loaded)
		return;
	n = model_hosts(c->model, &hosts);
	for (i = 0; i < n; i++) {
		struct model_host *h = hosts[i];

		if (host_lease_check(&h->lease, &c->conf.lease, c->quiet_until,
		    now)) {
			log_info("host %s is %s", h->name,
			    host_state_names[h->lease.state]);
			coord_event(c, COORD_EV_HOST_STATE, h->name, NULL,
			    host_state_names[h->lease.state]);
			if (h->lease.state == HOST_SUSPECT)
				coord_fence(c, h->name);
		}
		if (h->lease.state == HOST_FAILED ||
		    h->lease.state == HOST_FENCED) {
			failed = xreallocarray(failed, nfailed + 1,
			    sizeof *failed);
			failed[nfailed++] = xstrdup(h->name);
		}
	}
	/* The plan changes the picture: names, not pointers, cross it. */
	for (i = 0; i < nfailed; i++) {
		coord_failover(c, failed[i]);
		free(failed[i]);
	}
	free(failed);
}

static void
coord_tick(uv_timer_t *t)
{
	struct coordinator	*c = t->data;

	coord_check(c);
	coord_arm(c);
}

/* Wake at the next moment a host's state can change by itself. */
static void
coord_arm(struct coordinator *c)
{
	struct model_host	**hosts;
	size_t			  n, i;
	uint64_t		  now = coord_now(c), next = COORD_CHECK_MAX_MS, d;

	if (c->timer == NULL || !c->leading)
		return;
	n = model_hosts(c->model, &hosts);
	for (i = 0; i < n; i++) {
		d = host_lease_next(&hosts[i]->lease, &c->conf.lease,
		    c->quiet_until, now);
		if (d < next)
			next = d;
	}
	/* Renewals re-arm it, more often than COORD_CHECK_MAX_MS: never
	 * past a check already due, or a failover that had nowhere to go
	 * (every host drained or full) would never be tried again. */
	if (uv_is_active((uv_handle_t *)c->timer) &&
	    uv_timer_get_due_in(c->timer) <= next)
		return;
	uv_timer_start(c->timer, coord_tick, next, 0);
}

/* --- leadership and start ------------------------------------------------- */

static void
coord_leader(void *arg, int leader, const char *why)
{
	struct coordinator	*c = arg;
	struct model_host	**hosts;
	size_t			  n, i;
	uint64_t		  now = coord_now(c);

	if (c->freed)
		return;
	c->leading = leader;
	if (!leader) {
		log_warnx("coordinator %s no longer leads: %s", c->name,
		    why != NULL ? why : "deposed");
		if (c->timer != NULL)
			uv_timer_stop(c->timer);
		coord_event(c, COORD_EV_DEPOSED, NULL, NULL, why);
		return;
	}
	/* Whatever the last leader granted, we cannot know when: every host
	 * counts as granted now, and nothing is decided for ttl + margin. */
	c->quiet_until = membership_quiet_until(&c->conf.lease, now);
	n = model_hosts(c->model, &hosts);
	for (i = 0; i < n; i++)
		host_lease_init(&hosts[i]->lease, now);
	log_info("coordinator %s leads (%zu host%s known; no failover "
	    "decision for %" PRIu64 " ms)", c->name, n, n == 1 ? "" : "s",
	    c->quiet_until - now);
	coord_event(c, COORD_EV_LEADING, NULL, NULL, NULL);
	coord_arm(c);
}

static void	coord_loaded(void *, const char *);

static void
coord_reload(uv_timer_t *t)
{
	struct coordinator	*c = t->data;
	char			*cause = NULL;

	c->pending++;
	if (model_load(c->model, coord_loaded, c, &cause) == -1) {
		coord_loaded(c, cause);		/* as if it had answered */
		free(cause);
	}
}

static void
coord_loaded(void *arg, const char *error)
{
	struct coordinator	*c = arg;
	char			*cause = NULL;
	void			(*ready)(void *, const char *) = c->ready;

	c->pending--;
	if (c->freed) {
		coord_maybe_free(c);
		return;
	}
	if (error == NULL && fault_hit("coord.load") == FAULT_FAIL)
		error = "fault point coord.load";	/* as etcd's 503 */
	if (error != NULL) {
		/* A store that cannot answer now (etcd electing its leader)
		 * may in a moment: a coordinator must not stay down for it. */
		log_warnx("coordinator %s: cannot load the store: %s; trying "
		    "again in %d ms", c->name, error, COORD_RELOAD_MS);
		uv_timer_start(c->timer, coord_reload, COORD_RELOAD_MS, 0);
		return;
	}
	c->ready = NULL;
	c->loaded = 1;
	if (store_campaign(c->store, c->name, c->conf.lease.ttl_ms,
	    coord_leader, c, &cause) == -1)
		error = cause;
	ready(c->ready_arg, error);
	free(cause);
}

int
coord_start(struct coordinator *c, void (*ready)(void *, const char *),
    void *arg, char **cause)
{
	if (membership_conf_check(&c->conf.lease, cause) != 0)
		return -1;
	c->ready = ready;
	c->ready_arg = arg;
	if (model_load(c->model, coord_loaded, c, cause) == -1)
		return -1;
	c->pending++;
	return 0;
}

struct coordinator *
coord_new(uv_loop_t *loop, const struct coord_conf *conf, struct store *st,
    const struct coord_transport *tp)
{
	struct coordinator	*c = xcalloc(1, sizeof *c);

	c->loop = loop;
	c->conf = *conf;
	c->name = xstrdup(conf->name);
	c->conf.name = c->name;
	if (conf->fence_command != NULL && *conf->fence_command != '\0')
		c->fence_command = xstrdup(conf->fence_command);
	c->conf.fence_command = c->fence_command;
	if (c->conf.fence_timeout_ms == 0)
		c->conf.fence_timeout_ms = 30000;
	c->store = st;
	c->model = model_new(st);
	c->tp = *tp;
	c->timer = xcalloc(1, sizeof *c->timer);
	uv_timer_init(loop, c->timer);
	c->timer->data = c;
	uv_unref((uv_handle_t *)c->timer);
	return c;
}

void
coord_set_events(struct coordinator *c, coord_event_cb cb, void *arg)
{
	c->ev = cb;
	c->ev_arg = arg;
}

struct model *
coord_model(struct coordinator *c)
{
	return c->model;
}

int
coord_leading(const struct coordinator *c)
{
	return c->leading && c->loaded;
}

static void
coord_timer_closed(uv_handle_t *h)
{
	struct coordinator	*c = h->data;

	free(h);
	c->timer = NULL;
	coord_maybe_free(c);
}

void
coord_free(struct coordinator *c)
{
	if (c == NULL)
		return;
	c->freed = 1;
	c->leading = 0;
	while (c->fencing != NULL) {
		struct fencing *fg = c->fencing;

		c->fencing = fg->next;
		fence_cancel(fg->f);
		free(fg->host);
		free(fg);
	}
	uv_close((uv_handle_t *)c->timer, coord_timer_closed);
}
