/* The coordinator role (see coordinator.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
/* Hosts a failed restore's next candidate avoids, at most. */
#define COORD_RETRY_MAX		16
/* A store that could not be loaded is asked again after this long. */
#define COORD_RELOAD_MS		1000
/* A grant names at most this many instances (a host runs fewer). */
#define COORD_OWNED_MAX		1024
/* --ha checkpoint without an interval or a replica count. */

/* An instance being moved (its transaction not answered yet): never
 * planned twice. */
struct moving {
	struct moving	*next;
	char		*name;
	char		*from, *to;
	uint64_t	 epoch;
	int		 release;	/* its host let it go: owner none */
	uint64_t	 migration;	/* a migration's commit: its id */
	struct coordinator *c;
};

/* A held instance being added (its transaction not answered yet). */
struct adding {
	struct adding	*next;
	char		*name;
	struct coordinator *c;
};

/* A history note being written (an unplaced failover, an outcome):
 * never twice at once for one instance. */
struct noting {
	struct noting	*next;
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
	int			 syncing;	/* won: loading what the last
						 * leader wrote */
	uint64_t		 quiet_until;
	struct moving		*moving;
	struct adding		*adding;
	struct fencing		*fencing;
	struct noting		*noting;
	char			*fence_command;
	unsigned		 pending;	/* callbacks still to come */
	int			 freed;
	coord_event_cb		 ev;
	void			*ev_arg;
	void			(*ready)(void *, const char *);
	void			*ready_arg;
	/* Fault point coord.owner-move.no-grant (delay=MS): a committed
	 * move's target gets no grant listing it until then. */
	char			*withheld, *withheld_to;
	uint64_t		 withheld_until;
};

static void	coord_arm(struct coordinator *);
static struct moving *coord_moving(struct coordinator *, const char *);
static void	coord_moved(void *, const char *);
static void	coord_move(struct coordinator *, const struct model_instance *,
		    const char *, const char *, int, const char *);
static void	coord_outcome(struct coordinator *, const char *,
		    const struct model_instance *);
static void	coord_on_owner(struct coordinator *, const char *,
		    const Envelope *);
static void	coord_nudge(struct coordinator *, const char *);
static void	coord_moving_free(struct moving *);
static void	coord_moving_add(struct coordinator *, struct moving *);
static void	coord_moving_unlink(struct coordinator *, struct moving *);

/* Wall time for the failover history (the leases use coord_now). */
static uint64_t
coord_unix_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
	free(c->withheld);
	free(c->withheld_to);
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

/* Where in's replicas go: up to in->replicas hosts that are up, not
 * drained and not its owner, those that hold a replica already first
 * (their chunks are there), then by name. */
static size_t
coord_replica_hosts(struct coordinator *c, const struct model_instance *in,
    char **out, size_t max)
{
	struct model_replica	**reps;
	struct model_host	**hosts;
	size_t			  nr, nh, i, j, n = 0;
	size_t			  want = in->replicas != 0 ? in->replicas : 1;

	if (want > max)
		want = max;
	reps = model_replicas(c->model, in->name, &nr);
	nh = model_hosts(c->model, &hosts);
	for (j = 0; j <= nr && n < want; j++) {
		for (i = 0; i < nh && n < want; i++) {
			struct model_host *h = hosts[i];
			size_t k;

			if (h->lease.state != HOST_UP || h->drained ||
			    strcmp(h->name, in->owner) == 0)
				continue;
			/* pass j < nr: the host of replica j; pass nr: any */
			if (j < nr && strcmp(reps[j]->host, h->name) != 0)
				continue;
			for (k = 0; k < n && strcmp(out[k], h->name) != 0; k++)
				;
			if (k == n)
				out[n++] = h->name;
		}
	}
	free(reps);
	return n;
}

/* The replicas host should keep (LeaseGrant.keep_replicas): instances
 * still checkpoint-protected, not released, not its own, that name it among their
 * replica hosts or hold a recorded replica there.  The others it removes
 * after a grace period (agent/replica.c). */
static size_t
coord_keep_replicas(struct coordinator *c, const char *host, char ***out)
{
	struct model_instance	**insts;
	struct model_replica	**reps;
	struct model_host	 *h, **hosts;
	char			 *rh[HA_REPLICAS_MAX];
	size_t			  n, i, j, nr, nh, k = 0, ready, want;
	int			  keep, early = 0;

	/* coord_replica_hosts' last pass takes any usable host in the
	 * hosts' order, skipping the owner and the replica hosts it took:
	 * it looks at most HA_REPLICAS_MAX + 1 usable hosts.  A host past
	 * them is a replica host only where it holds a replica. */
	nh = model_hosts(c->model, &hosts);
	for (i = j = 0; i < nh && j <= HA_REPLICAS_MAX && !early; i++) {
		if (hosts[i]->lease.state != HOST_UP || hosts[i]->drained)
			continue;
		early = strcmp(hosts[i]->name, host) == 0;
		j++;
	}
	/* Released ones (the operator destroyed them) have no owner: they
	 * run nowhere, their replicas restore nothing any more. */
	n = model_ckpt_instances(c->model, &insts);
	*out = xcalloc(n + 1, sizeof **out);
	for (i = 0; i < n; i++) {
		struct model_instance *in = insts[i];

		if (strcmp(in->owner, host) == 0)
			continue;
		keep = 0;
		ready = 0;
		reps = model_replicas(c->model, in->name, &nr);
		for (j = 0; j < nr && !keep; j++) {
			keep = strcmp(reps[j]->host, host) == 0;
			h = model_host(c->model, reps[j]->host);
			ready += h != NULL && h->lease.state == HOST_UP &&
			    !h->drained && strcmp(h->name, in->owner) != 0;
		}
		free(reps);
		/* As many usable replica hosts as it wants, host not among
		 * them: coord_replica_hosts picks those.  Short of them, it
		 * may pick host (a walk over every host: only then). */
		want = in->replicas != 0 ? in->replicas : 1;
		if (want > HA_REPLICAS_MAX)
			want = HA_REPLICAS_MAX;
		if (!keep && ready < want && early) {
			nh = coord_replica_hosts(c, in, rh, HA_REPLICAS_MAX);
			for (j = 0; j < nh && !keep; j++)
				keep = strcmp(rh[j], host) == 0;
		}
		if (keep)
			(*out)[k++] = in->name;
	}
	return k;
}

static int
coord_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names r holds, sorted for coord_held (NULL: none). */
static char **
coord_held_names(const Tern__LeaseRenew *r)
{
	char	**names;
	size_t	  i;

	if (r == NULL || r->n_held == 0)
		return NULL;
	names = xcalloc(r->n_held, sizeof *names);
	for (i = 0; i < r->n_held; i++)
		names[i] = r->held[i]->name;
	qsort(names, r->n_held, sizeof *names, coord_name_cmp);
	return names;
}

/* A bsearch, not a walk per owned instance: a host holding a thousand
 * instances made every grant of its a million comparisons. */
static int
coord_held(const Tern__LeaseRenew *r, char **names, const char *name)
{
	return names != NULL && bsearch(&name, names, r->n_held,
	    sizeof *names, coord_name_cmp) != NULL;
}

/* The grant (or refusal) for renewal r (NULL: none at hand, as after a
 * join's store write: the host then gets every spec). */
/* What a grant says of one instance host owns: its epoch, kind, policy,
 * the generation to restore, its replica hosts (into rh, room for
 * HA_REPLICAS_MAX) and, unless the host holds it already, its spec. */
static void
coord_owned_fill(struct coordinator *c, const char *host,
    struct model_instance *in, int held, char **rh, Tern__OwnedInstance *o)
{
	tern__owned_instance__init(o);
	o->name = in->name;
	o->epoch = in->epoch;
	o->has_kind = 1;
	o->kind = in->kind;
	o->restore_generation = coord_restore_generation(c, in, host);
	o->has_restore_generation = o->restore_generation != 0;
	/* The policy always: ha set --policy none tells the agent to stop
	 * gating it on the lease. */
	o->has_ha = 1;
	o->ha = (Tern__HaPolicy)in->ha;
	if (in->ha == MODEL_HA_CHECKPOINT) {
		o->replica_hosts = rh;
		o->n_replica_hosts = coord_replica_hosts(c, in, rh,
		    HA_REPLICAS_MAX);
		o->has_interval_ms = 1;
		o->interval_ms = in->interval_ms != 0 ? in->interval_ms :
		    HA_INTERVAL_DEF_MS;
	}
	if (!held) {
		o->spec = in->spec;
		o->spec_dir = in->spec_dir;
	}
}

/* The fault point coord.owner-move.no-grant holds name back from host. */
static int
coord_withheld(struct coordinator *c, const char *host, const char *name)
{
	if (c->withheld == NULL)
		return 0;
	if (coord_now(c) >= c->withheld_until) {
		free(c->withheld);
		free(c->withheld_to);
		c->withheld = c->withheld_to = NULL;
		return 0;
	}
	return strcmp(c->withheld, name) == 0 &&
	    strcmp(c->withheld_to, host) == 0;
}

static void
coord_reply(struct coordinator *c, const char *host, uint64_t seq,
    const Tern__LeaseRenew *r, Tern__InstanceRefusal **refusals,
    size_t nrefusals, const char *refused)
{
	Envelope		  env;
	Tern__LeaseGrant	  g = TERN__LEASE_GRANT__INIT;
	Tern__OwnedInstance	 *owned = NULL, **ptrs = NULL;
	struct model_instance	**insts;
	char			**rhosts = NULL, **keep = NULL;
	size_t			  n, i, k = 0;
	char			 *cause = NULL, **held = NULL, *why = NULL;
	const char		 *leader = NULL;
	uint64_t		  term = 0;

	g.seq = seq;
	/* Every answer passes here: one that was asked while this
	 * coordinator led may be answered after it stopped. */
	if (!store_leadership(c->store, &term, &leader) ||
	    !coord_leading(c)) {
		g.has_not_leading = g.not_leading = 1;
		g.leader = leader != NULL && strcmp(leader, c->name) != 0 ?
		    (char *)leader : NULL;
		xasprintf(&why, "coordinator %s does not lead%s%s%s", c->name,
		    g.leader != NULL ? " (" : "", g.leader != NULL ? g.leader :
		    "", g.leader != NULL ? " does)" : "");
		g.refused = why;
	} else if (refused != NULL) {
		g.has_term = term != 0;
		g.term = term;
		g.refused = (char *)refused;
	} else {
		g.has_term = term != 0;
		g.term = term;
		g.has_ttl_ms = 1;
		g.ttl_ms = c->conf.lease.ttl_ms;
		n = model_owned(c->model, host, &insts);
		held = coord_held_names(r);
		owned = xcalloc(n + 1, sizeof *owned);
		ptrs = xcalloc(n + 1, sizeof *ptrs);
		rhosts = xcalloc((n + 1) * HA_REPLICAS_MAX, sizeof *rhosts);
		for (i = 0; i < n && k < COORD_OWNED_MAX; i++) {
			struct model_instance *in = insts[i];
			struct moving *mv = coord_moving(c, in->name);

			/* One being moved away is not the host's any more,
			 * whatever the store says until the move commits.  One
			 * it released is, until the release commits: the host
			 * takes a grant without it as the release recorded. */
			if (in->owner == NULL || strcmp(in->owner, host) != 0 ||
			    (mv != NULL && !mv->release) ||
			    coord_withheld(c, host, in->name))
				continue;
			coord_owned_fill(c, host, in, coord_held(r, held,
			    in->name), &rhosts[k * HA_REPLICAS_MAX], &owned[k]);
			ptrs[k] = &owned[k];
			k++;
		}
		g.n_owned = k;
		g.owned = ptrs;
		g.n_refusals = nrefusals;
		g.refusals = refusals;
		g.n_keep_replicas = coord_keep_replicas(c, host, &keep);
		g.keep_replicas = keep;
		g.has_lists_replicas = 1;
		g.lists_replicas = 1;
		free(insts);
		free(held);
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
	free(rhosts);
	free(keep);
	free(why);
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
	if (in.ha == MODEL_HA_CHECKPOINT) {
		in.interval_ms = hi->has_interval_ms ? hi->interval_ms : 0;
		in.replicas = hi->has_replicas ? hi->replicas : 1;
		if (in.replicas == 0 || in.replicas > HA_REPLICAS_MAX)
			return "a replica count between 1 and 8";
	}
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
	coord_move(c, in, host, NULL, 1, NULL);
}

static struct noting *
coord_noting(struct coordinator *c, const char *name)
{
	struct noting	*nt;

	for (nt = c->noting; nt != NULL; nt = nt->next)
		if (strcmp(nt->name, name) == 0)
			return nt;
	return NULL;
}

static void
coord_noted(void *arg, const char *error)
{
	struct noting		*nt = arg, **pp;
	struct coordinator	*c = nt->c;

	c->pending--;
	for (pp = &c->noting; *pp != NULL; pp = &(*pp)->next)
		if (*pp == nt) {
			*pp = nt->next;
			break;
		}
	if (error != NULL && !c->freed)
		log_warnx("failover history of %s not recorded: %s (tried "
		    "again at the next chance)", nt->name, error);
	free(nt->name);
	free(nt);
	coord_maybe_free(c);
}

static struct noting *
coord_note_new(struct coordinator *c, const char *name)
{
	struct noting	*nt = xcalloc(1, sizeof *nt);

	nt->c = c;
	nt->name = xstrdup(name);
	return nt;
}

static void
coord_note_started(struct coordinator *c, struct noting *nt, int rc,
    char *cause)
{
	if (rc == -1) {
		log_warnx("failover history of %s: %s", nt->name, cause);
		free(cause);
		free(nt->name);
		free(nt);
		return;
	}
	nt->next = c->noting;
	c->noting = nt;
	c->pending++;
}

/* host runs in at its epoch: the failover that brought it there ended
 * well. */
static void
coord_outcome(struct coordinator *c, const char *host,
    const struct model_instance *in)
{
	struct model_failover	*fo;
	struct noting		*nt;
	char			*cause = NULL;
	int			 rc;

	fo = model_failover_last(c->model, in->name);
	if (fo == NULL || fo->to == NULL || strcmp(fo->to, host) != 0 ||
	    fo->epoch != in->epoch || fo->outcome == MODEL_OUTCOME_RUNNING ||
	    coord_noting(c, in->name) != NULL)
		return;		/* (a failed one that runs after all: it runs) */
	log_info("failover of %s: it runs on %s (epoch %" PRIu64 ")",
	    in->name, host, in->epoch);
	nt = coord_note_new(c, in->name);
	rc = model_failover_outcome(c->model, fo->seq, MODEL_OUTCOME_RUNNING,
	    NULL, coord_unix_ms(), coord_noted, nt, &cause);
	coord_note_started(c, nt, rc, cause);
}

/* The hosts where restores of name failed since it last ran (the history,
 * newest first, up to a record that ran), host included. */
static size_t
coord_failed_hosts(struct coordinator *c, const char *name,
    const char **hosts, size_t max)
{
	struct model_failover	**fos;
	size_t			  n, i, k = 0;

	n = model_failovers(c->model, &fos);
	for (i = n; i > 0 && k < max; i--) {
		struct model_failover *f = fos[i - 1];

		if (strcmp(f->instance, name) != 0 || f->to == NULL)
			continue;
		if (f->outcome == MODEL_OUTCOME_RUNNING)
			break;
		if (f->outcome == MODEL_OUTCOME_FAILED)
			hosts[k++] = f->to;
	}
	return k;
}

/* A host a checkpoint-protected in may go to after its replica failed to
 * restore on host: another host holding a replica made by the owner that
 * failed (the epoch just before this one), so at most one more try per
 * failover, never back and forth.  NULL: none. */
static const char *
coord_next_replica(struct coordinator *c, const char *host,
    const struct model_instance *in)
{
	struct model_replica	**reps;
	struct model_host	 *h;
	size_t			  n, i;
	const char		 *next = NULL;

	reps = model_replicas(c->model, in->name, &n);
	for (i = 0; i < n && next == NULL; i++)
		if (strcmp(reps[i]->host, host) != 0 &&
		    reps[i]->epoch + 1 == in->epoch &&
		    (h = model_host(c->model, reps[i]->host)) != NULL &&
		    h->lease.state == HOST_UP && !h->drained)
			next = reps[i]->host;
	free(reps);
	return next;
}

/* Any other host the plan of host's instances places in on, never one
 * where it failed since it last ran.  NULL: none. */
static const char *
coord_next_host(struct coordinator *c, const char *host,
    const struct model_instance *in)
{
	struct model_plan	*plan;
	const char		*exclude[COORD_RETRY_MAX], *next = NULL;
	size_t			 n, i, nx;

	nx = coord_failed_hosts(c, in->name, exclude, COORD_RETRY_MAX);
	n = model_failover_plan_without(c->model, host, exclude, nx, &plan);
	for (i = 0; i < n && next == NULL; i++)
		if (plan[i].instance == in && plan[i].target != NULL)
			next = model_host(c->model, plan[i].target)->name;
	model_plan_free(plan, n);
	return next;
}

/* host was given in by failover and could not take it over (why: its
 * create or start failed, or the restore of its replica): the failover's
 * outcome in the history, then the next host that may take it.  The one
 * place a failed take-over is decided, whatever failed.  Without a next
 * host it stays with host: a restart-protected instance is started
 * again there at its grants; a checkpoint-protected one is not (a cold
 * start would lose its state silently): the operator restores it. */
static void
coord_takeover_failed(struct coordinator *c, const char *host,
    struct model_instance *in, uint64_t epoch, const char *why)
{
	struct model_failover	*fo;
	struct noting		*nt;
	const char		*next;
	char			*cause = NULL;
	int			 rc;

	if (in == NULL || in->owner == NULL || strcmp(in->owner, host) != 0 ||
	    in->epoch != epoch || coord_moving(c, in->name) != NULL ||
	    coord_noting(c, in->name) != NULL)
		return;
	fo = model_failover_last(c->model, in->name);
	if (fo == NULL || fo->to == NULL || strcmp(fo->to, host) != 0 ||
	    fo->epoch != in->epoch || fo->outcome != MODEL_OUTCOME_PENDING)
		return;		/* not a failover's target, or said already */
	log_warnx("failover of %s: %s", in->name, why);
	coord_event(c, COORD_EV_FAILOVER, host, in->name, why);
	nt = coord_note_new(c, in->name);
	rc = model_failover_outcome(c->model, fo->seq, MODEL_OUTCOME_FAILED,
	    why, coord_unix_ms(), coord_noted, nt, &cause);
	coord_note_started(c, nt, rc, cause);
	next = in->ha == MODEL_HA_CHECKPOINT ? coord_next_replica(c, host, in) :
	    coord_next_host(c, host, in);
	if (next != NULL) {
		log_info("failover of %s: trying %s%s", in->name,
		    in->ha == MODEL_HA_CHECKPOINT ? "its replica on " : "", next);
		coord_move(c, in, host, next, 0, why);
	} else if (in->ha == MODEL_HA_CHECKPOINT)
		log_warnx("failover of %s: no other replica to restore: it "
		    "stays on %s, not running (ternctl restore %s there once "
		    "the cause is fixed)", in->name, host, in->name);
	else
		log_warnx("failover of %s: no other host may take it; it stays "
		    "with %s, which tries again", in->name, host);
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
		} else if (hi->restore_failed != NULL) {
			xasprintf(&whys[n], "restoring its replica on %s "
			    "failed: %.200s", host, hi->restore_failed);
			coord_takeover_failed(c, host, in, hi->epoch, whys[n]);
			free(whys[n]);
			whys[n] = NULL;
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
		else if (in != NULL && in->owner == NULL && hi->epoch != 0) {
			xasprintf(&whys[n], "instance %s runs nowhere since "
			    "epoch %" PRIu64 " (released); this copy at epoch %"
			    PRIu64 " is stale: discard it", hi->name, in->epoch,
			    hi->epoch);
			why = whys[n];
		} else if (in != NULL && hi->epoch > in->epoch) {
			xasprintf(&whys[n], "instance %s is at epoch %" PRIu64
			    " in the coordinator's records, not %" PRIu64,
			    hi->name, in->epoch, hi->epoch);
			why = whys[n];
		} else if (in != NULL && hi->has_running && hi->running &&
		    hi->epoch == in->epoch)
			coord_outcome(c, host, in);
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
	for (i = 0; i < r->n_failed && i < COORD_OWNED_MAX; i++) {
		const Tern__FailedInstance	*fi = r->failed[i];

		xasprintf(&cause, "could not start on %s: %s", host, fi->why);
		coord_takeover_failed(c, host, model_instance(c->model,
		    fi->name), fi->epoch, cause);
		free(cause);
	}
	coord_reply(c, host, r->seq, r, ptrs, n, NULL);
	/* A renewal only moves its own host's next change later: the timer
	 * (at most COORD_CHECK_MAX_MS away, re-armed at each tick) stays
	 * right, and arming walks every host.  A join may come sooner. */
	if ((r->has_join && r->join) || c->timer == NULL ||
	    !uv_is_active((uv_handle_t *)c->timer))
		coord_arm(c);
	for (i = 0; i < n; i++)
		free(whys[i]);
	free(whys);
	free(refs);
	free(ptrs);
}

/* A replica put, answered. */
struct replica_put {
	struct coordinator	*c;
	char			*what;
};

static void
coord_replica_put(void *arg, const char *error)
{
	struct replica_put	*rp = arg;
	struct coordinator	*c = rp->c;

	c->pending--;
	if (c->freed) {
		/* nothing to say any more */
	} else if (error != NULL)
		log_warnx("%s not recorded: %s", rp->what, error);
	else
		log_info("%s recorded", rp->what);
	free(rp->what);
	free(rp);
	coord_maybe_free(c);
}

/* Replicas host's replica hosts acknowledged: counted only for what host
 * owns, at its current epoch, on another known host. */
static void
coord_take_replicas(struct coordinator *c, const char *host,
    const Tern__LeaseRenew *r)
{
	size_t	i, n, j;

	for (i = 0; i < r->n_replicas && i < COORD_OWNED_MAX; i++) {
		const Tern__ReplicaReport	 *rr = r->replicas[i];
		struct model_instance		 *in;
		struct model_replica		  mr, **reps;
		struct replica_put		 *rp;
		char				 *cause = NULL;
		int				  known = 0;

		in = model_instance(c->model, rr->instance);
		if (in == NULL || in->owner == NULL ||
		    strcmp(in->owner, host) != 0 ||
		    in->ha != MODEL_HA_CHECKPOINT ||
		    coord_moving(c, in->name) != NULL ||
		    strcmp(rr->host, host) == 0) {
			log_warnx("replica of %.64s on %.64s from %s refused: "
			    "not %s's checkpoint-protected instance, or on "
			    "itself", rr->instance, rr->host, host, host);
			continue;
		}
		reps = model_replicas(c->model, in->name, &n);
		for (j = 0; j < n; j++)
			if (strcmp(reps[j]->host, rr->host) == 0 &&
			    reps[j]->epoch == rr->epoch &&
			    reps[j]->generation >= rr->generation)
				known = 1;
		free(reps);
		if (known)
			continue;	/* that one or a newer is recorded */
		memset(&mr, 0, sizeof mr);
		mr.instance = rr->instance;
		mr.host = rr->host;
		mr.epoch = rr->epoch;
		mr.generation = rr->generation;
		mr.taken_unix_ms = rr->taken_unix_ms;
		if (rr->has_digest && rr->digest.len <= sizeof mr.digest) {
			memcpy(mr.digest, rr->digest.data, rr->digest.len);
			mr.digest_len = rr->digest.len;
		}
		mr.bytes = rr->has_bytes ? rr->bytes : 0;
		rp = xcalloc(1, sizeof *rp);
		rp->c = c;
		xasprintf(&rp->what, "replica of %s: generation %" PRIu64
		    " on %s (epoch %" PRIu64 ")", rr->instance, rr->generation,
		    rr->host, rr->epoch);
		if (model_replica_put(c->model, &mr, coord_replica_put, rp,
		    &cause) == -1) {
			log_warnx("%s refused: %s", rp->what, cause);
			free(cause);
			free(rp->what);
			free(rp);
			continue;
		}
		c->pending++;
	}
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
	coord_take_replicas(c, host, r);
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

	if (!coord_leading(c) ||
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
	uint64_t	 term;
	const char	*leader;

	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST ||
	    env->body_case == TERN__ENVELOPE__BODY_OWNER_QUERY) {
		if (host_name_valid(host))
			coord_on_owner(c, host, env);
		return 1;
	}
	if (env->body_case != TERN__ENVELOPE__BODY_LEASE_RENEW)
		return 0;
	if (!host_name_valid(host))
		return 1;
	/* A follower (or one that has not loaded yet) grants nothing: it
	 * says so, and who leads, so that the agent turns there at once
	 * rather than fence (coord_reply answers for it). */
	if (!coord_leading(c) || !store_leadership(c->store, &term, &leader)) {
		coord_reply(c, host, env->lease_renew->seq, NULL, NULL, 0,
		    NULL);
		return 1;
	}
	coord_on_renew(c, host, env->lease_renew);
	return 1;
}

/* --- a migration's commit point ------------------------------------------- */

static void
coord_owner_reply(struct coordinator *c, const char *host, const char *name,
    uint64_t migration, uint64_t epoch, const char *error)
{
	Envelope		 env;
	Tern__OwnerMoveReply	 r = TERN__OWNER_MOVE_REPLY__INIT;
	char			*cause = NULL;

	r.name = (char *)name;
	r.migration = migration;
	r.has_epoch = error == NULL;
	r.epoch = epoch;
	r.error = (char *)error;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY;
	env.owner_move_reply = &r;
	if (c->tp.send(c->tp.ctx, host, &env, &cause) == -1) {
		/* It asks who owns it (OwnerQuery) when no answer comes. */
		log_warnx("instance %s: the answer to %s's move is lost: %s",
		    name, host, cause);
		free(cause);
	}
}

static void
coord_owner_moved(void *arg, const char *error)
{
	struct moving		*mv = arg;
	struct coordinator	*c = mv->c;
	unsigned		 ms = 0;

	c->pending--;
	coord_moving_unlink(c, mv);
	if (!c->freed) {
		if (error == NULL) {
			/* Committed, not answered: the source must learn it
			 * by asking (the lost-answer case). */
			fault_die_at("coord.owner-move.committed");
			log_info("instance %s: migrated from %s to %s, epoch %"
			    PRIu64, mv->name, mv->from, mv->to, mv->epoch + 1);
			coord_owner_reply(c, mv->from, mv->name, mv->migration,
			    mv->epoch + 1, NULL);
			/* Its grant lists it now: the target resumes on it.
			 * Fault point coord.owner-move.nudge (fail): not
			 * nudged, it learns at its next renewal.  Fault point
			 * coord.owner-move.no-grant (delay=MS): no grant
			 * lists it to the target for MS, as if the target
			 * were cut off right after the commit; the target
			 * fences its copy after two TTLs. */
			if (fault_check("coord.owner-move.no-grant", &ms) ==
			    FAULT_DELAY) {
				free(c->withheld);
				free(c->withheld_to);
				c->withheld = xstrdup(mv->name);
				c->withheld_to = xstrdup(mv->to);
				c->withheld_until = coord_now(c) + ms;
			} else if (fault_hit("coord.owner-move.nudge") !=
			    FAULT_FAIL)
				coord_nudge(c, mv->to);
		} else {
			log_warnx("instance %s: migration from %s to %s not "
			    "recorded: %s", mv->name, mv->from, mv->to, error);
			coord_owner_reply(c, mv->from, mv->name, mv->migration,
			    0, error);
		}
	}
	coord_moving_free(mv);
	coord_maybe_free(c);
}

/* Why host may not move name to to now, or NULL. */
/* An ownership answer is the store's word only while this coordinator
 * leads by its own clock too (as a grant is, coord_reply): a deposed
 * leader's picture may miss the move its successor committed. */
static int
coord_leads_now(struct coordinator *c)
{
	uint64_t	 term;
	const char	*leader;

	return coord_leading(c) && store_leadership(c->store, &term, &leader);
}

static const char *
coord_owner_refused(struct coordinator *c, const char *host,
    const Tern__OwnerMoveRequest *r, char **text)
{
	struct model_instance	*in = model_instance(c->model, r->name);
	struct model_host	*h;

	if (!coord_leads_now(c))
		return "the coordinator does not lead (or has not loaded its "
		    "store yet)";
	if (in == NULL)
		return "the coordinator does not know it";
	if (coord_moving(c, r->name) != NULL)
		return "it is being moved already (a failover or another "
		    "migration)";
	if (in->owner == NULL || strcmp(in->owner, host) != 0) {
		xasprintf(text, "it belongs to %s now (epoch %" PRIu64 "), "
		    "not to %s", in->owner != NULL ? in->owner : "no host",
		    in->epoch, host);
		return *text;
	}
	if (in->epoch != r->epoch) {
		xasprintf(text, "it is at epoch %" PRIu64 ", not %" PRIu64,
		    in->epoch, r->epoch);
		return *text;
	}
	if (!host_name_valid(r->to) || strcmp(r->to, host) == 0 ||
	    (h = model_host(c->model, r->to)) == NULL)
		return "the target is not a host of the cluster";
	if (h->lease.state != HOST_UP) {
		xasprintf(text, "the target %s is %s", r->to,
		    host_state_names[h->lease.state]);
		return *text;
	}
	return NULL;
}

/* The commit point of host's migration of r->name: owner host at
 * r->epoch becomes r->to at r->epoch + 1 in one store transaction (the
 * same compare-and-move as a failover's, without its history: a
 * migration is not a failover).  Answered once the store did. */
static void
coord_owner_move(struct coordinator *c, const char *host,
    const Tern__OwnerMoveRequest *r)
{
	struct model_instance	*in;
	struct moving		*mv;
	const char		*why;
	char			*text = NULL, *cause = NULL;

	if ((why = coord_owner_refused(c, host, r, &text)) == NULL &&
	    fault_hit("coord.owner-move") == FAULT_FAIL)
		why = "fault point coord.owner-move";
	/* Received, nothing recorded, no answer: the source cannot learn
	 * the outcome until its lease ends. */
	if (why == NULL)
		fault_die_at("coord.owner-move.received");
	if (why != NULL) {
		log_warnx("instance %s: %s may not move it to %s: %s", r->name,
		    host, r->to, why);
		coord_owner_reply(c, host, r->name, r->migration, 0, why);
		free(text);
		return;
	}
	in = model_instance(c->model, r->name);
	mv = xcalloc(1, sizeof *mv);
	mv->c = c;
	mv->name = xstrdup(in->name);
	mv->from = xstrdup(host);
	mv->to = xstrdup(r->to);
	mv->epoch = in->epoch;
	mv->migration = r->migration;
	if (model_instance_move(c->model, in->name, in->epoch, r->to,
	    coord_owner_moved, mv, &cause) == -1) {
		coord_owner_reply(c, host, r->name, r->migration, 0, cause);
		free(cause);
		coord_moving_free(mv);
		return;
	}
	/* Meanwhile no grant lists it to either host. */
	coord_moving_add(c, mv);
}

/* Who owns r->name now.  The mesh keeps a host's messages in order, so a
 * move that host asked for before this query was either taken already
 * (stored, or listed as moving: "ask again") or never arrives. */
static void
coord_owner_query(struct coordinator *c, const char *host,
    const Tern__OwnerQuery *q)
{
	Envelope		 env;
	Tern__OwnerQueryReply	 r = TERN__OWNER_QUERY_REPLY__INIT;
	struct model_instance	*in;
	char			*cause = NULL;

	r.name = q->name;
	r.migration = q->migration;
	if (!coord_leads_now(c))
		r.error = "the coordinator does not lead (or has not loaded "
		    "its store yet)";
	else if (coord_moving(c, q->name) != NULL)
		r.has_moving = r.moving = 1;
	else if ((in = model_instance(c->model, q->name)) == NULL)
		r.error = "the coordinator does not know it";
	else {
		r.owner = in->owner;
		r.has_epoch = 1;
		r.epoch = in->epoch;
	}
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_OWNER_QUERY_REPLY;
	env.owner_query_reply = &r;
	if (c->tp.send(c->tp.ctx, host, &env, &cause) == -1) {
		log_debug("no answer to %s's owner query: %s", host, cause);
		free(cause);
	}
}

static void
coord_on_owner(struct coordinator *c, const char *host, const Envelope *env)
{
	if (env->body_case == TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST)
		coord_owner_move(c, host, env->owner_move_request);
	else
		coord_owner_query(c, host, env->owner_query);
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

/* A move's store transaction is in flight: its answer unlinks it. */
static void
coord_moving_add(struct coordinator *c, struct moving *mv)
{
	mv->next = c->moving;
	c->moving = mv;
	c->pending++;
}

/* A move's store transaction answered: it is no longer in flight. */
static void
coord_moving_unlink(struct coordinator *c, struct moving *mv)
{
	struct moving	**pp;

	for (pp = &c->moving; *pp != NULL; pp = &(*pp)->next)
		if (*pp == mv) {
			*pp = mv->next;
			return;
		}
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
	struct moving		*mv = arg;
	struct coordinator	*c = mv->c;
	char			*text;

	c->pending--;
	if (error == NULL && !c->freed)
		fault_die_at("coord.move.committed");	/* no nudge, no grant */
	coord_moving_unlink(c, mv);
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

/* The history record of in's failover from host from (why: it went
 * nowhere); model.c sets its seq, target and epoch. */
static void
coord_fo_init(struct coordinator *c, struct model_failover *fo,
    const struct model_instance *in, const char *from, const char *why)
{
	struct model_host	*h = model_host(c->model, from);

	memset(fo, 0, sizeof *fo);
	fo->time_unix_ms = coord_unix_ms();
	fo->instance = in->name;
	fo->from = (char *)from;
	fo->why = (char *)why;
	fo->failed_unix_ms = h != NULL ? h->failed_unix_ms : 0;
}

/* A protected instance of a failed host has nowhere to go: said once per
 * reason and epoch in the history (the next checks try again). */
static void
coord_unplaced(struct coordinator *c, const struct model_instance *in,
    const char *from, const char *why)
{
	struct model_failover	*last, fo;
	struct noting		*nt;
	char			*cause = NULL;
	int			 rc;

	last = model_failover_last(c->model, in->name);
	if (in->ha == MODEL_HA_NONE || coord_noting(c, in->name) != NULL ||
	    (last != NULL && last->to == NULL && last->epoch == in->epoch &&
	    last->why != NULL && strcmp(last->why, why) == 0))
		return;
	log_warnx("failover of %s (was on %s): %s", in->name, from, why);
	coord_event(c, COORD_EV_FAILOVER, from, in->name, why);
	coord_fo_init(c, &fo, in, from, why);
	nt = coord_note_new(c, in->name);
	rc = model_failover_unplaced(c->model, in->name, in->epoch, &fo,
	    coord_noted, nt, &cause);
	coord_note_started(c, nt, rc, cause);
}

/* The one way an instance changes owner here: one transaction compared on
 * the epoch read, listed in c->moving until it is answered (meanwhile no
 * grant lists the instance to anyone).  to NULL: it runs nowhere. */
static void
coord_move(struct coordinator *c, const struct model_instance *in,
    const char *from, const char *to, int release, const char *why)
{
	struct moving		*mv = xcalloc(1, sizeof *mv);
	struct model_failover	 fo;
	char			*cause = NULL;
	int			 rc;

	mv->c = c;
	mv->name = xstrdup(in->name);
	mv->from = xstrdup(from);
	mv->to = xstrdup(to != NULL ? to : "nowhere");
	mv->epoch = in->epoch;
	mv->release = release;
	if (release)
		rc = model_instance_move(c->model, in->name, in->epoch, to,
		    coord_moved, mv, &cause);
	else {
		coord_fo_init(c, &fo, in, from, why);
		rc = model_instance_failover(c->model, in->name, in->epoch, to,
		    &fo, coord_moved, mv, &cause);
	}
	if (rc == -1) {
		log_warnx("%s of %s: %s", release ? "release" : "failover",
		    in->name, cause);
		free(cause);
		coord_moving_free(mv);
		return;
	}
	coord_moving_add(c, mv);
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

		if (plan[i].target == NULL) {
			log_debug("failover of %s: %s", in->name, plan[i].why);
			if (coord_moving(c, in->name) == NULL)
				coord_unplaced(c, in, failed, plan[i].why);
		} else if (coord_moving(c, in->name) == NULL) {
			coord_move(c, in, failed, plan[i].target, 0, NULL);
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
		h->failed_unix_ms = coord_unix_ms();
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

	if (!coord_leading(c))
		return;
	n = model_hosts(c->model, &hosts);
	for (i = 0; i < n; i++) {
		struct model_host *h = hosts[i];

		if (host_lease_check(&h->lease, &c->conf.lease, c->quiet_until,
		    now)) {
			log_info("host %s is %s", h->name,
			    host_state_names[h->lease.state]);
			if (h->lease.state == HOST_FAILED ||
			    h->lease.state == HOST_FENCED)
				h->failed_unix_ms = coord_unix_ms();
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

	if (c->timer == NULL || !coord_leading(c))
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

/* --- ternctl ha set ------------------------------------------------------- */

struct ha_setting {
	struct coordinator	*c;
	char			*name;
	model_cb		 cb;
	void			*arg;
};

static void
coord_ha_was_set(void *arg, const char *error)
{
	struct ha_setting	*hs = arg;
	struct coordinator	*c = hs->c;
	struct model_instance	*in;

	c->pending--;
	if (!c->freed && error == NULL &&
	    (in = model_instance(c->model, hs->name)) != NULL) {
		log_info("instance %s: protection set to %s, priority %" PRId32
		    ", interval %" PRIu32 " ms, %" PRIu32 " replica%s",
		    in->name, in->ha == MODEL_HA_NONE ? "none" :
		    in->ha == MODEL_HA_RESTART ? "restart" : "checkpoint",
		    in->priority, in->interval_ms, in->replicas,
		    in->replicas == 1 ? "" : "s");
		/* Its owner learns the policy at once (its grant says). */
		if (in->owner != NULL)
			coord_nudge(c, in->owner);
	}
	hs->cb(hs->arg, error);
	free(hs->name);
	free(hs);
	coord_maybe_free(c);
}

int
coord_ha_set(struct coordinator *c, const char *name,
    const struct model_ha_set *set, model_cb cb, void *arg, char **cause)
{
	struct ha_setting	*hs;

	if (!coord_leading(c)) {
		set_cause(cause, "coordinator %s does not lead (yet): try "
		    "again in a moment; nothing changed", c->name);
		return -1;
	}
	if (name != NULL && coord_moving(c, name) != NULL) {
		set_cause(cause, "instance %s is changing owner right now: "
		    "try again in a moment; nothing changed", name);
		return -1;
	}
	hs = xcalloc(1, sizeof *hs);
	hs->c = c;
	hs->name = xstrdup(name != NULL ? name : "");
	hs->cb = cb;
	hs->arg = arg;
	if (model_instance_set_ha(c->model, name, set, coord_ha_was_set, hs,
	    cause) == -1) {
		free(hs->name);
		free(hs);
		return -1;
	}
	c->pending++;
	return 0;
}

/* --- leadership and start ------------------------------------------------- */

static void	coord_synced(void *, const char *);

static void
coord_sync(struct coordinator *c)
{
	char	*cause = NULL;

	c->pending++;
	if (model_load(c->model, coord_synced, c, &cause) == -1) {
		coord_synced(c, cause);		/* as if it had answered */
		free(cause);
	}
}

static void
coord_sync_due(uv_timer_t *t)
{
	struct coordinator	*c = t->data;

	if (c->leading && c->syncing)
		coord_sync(c);
}

static void
coord_leader(void *arg, int leader, const char *why)
{
	struct coordinator	*c = arg;

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
	/* What we loaded may be old: another coordinator may have led
	 * since (a standby loads at its start, and wins much later).  Grant
	 * and decide only from what the store holds now. */
	c->syncing = 1;
	coord_sync(c);
}

static void
coord_synced(void *arg, const char *error)
{
	struct coordinator	*c = arg;
	struct model_host	**hosts;
	size_t			  n, i;
	uint64_t		  now = coord_now(c);

	c->pending--;
	if (c->freed) {
		coord_maybe_free(c);
		return;
	}
	if (!c->leading)
		return;		/* deposed meanwhile: the next win loads */
	if (error != NULL) {
		log_warnx("coordinator %s leads but cannot load the store: %s; "
		    "trying again in %d ms", c->name, error, COORD_RELOAD_MS);
		uv_timer_start(c->timer, coord_sync_due, COORD_RELOAD_MS, 0);
		return;
	}
	c->syncing = 0;
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
	if (store_campaign(c->store, c->name, c->conf.leader_ttl_ms,
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
	return c->leading && c->loaded && !c->syncing;
}

const char *
coord_leader_seen(struct coordinator *c)
{
	uint64_t	 term;
	const char	*leader;

	if (store_leadership(c->store, &term, &leader) && coord_leading(c))
		return NULL;
	return leader != NULL && strcmp(leader, c->name) != 0 ? leader : NULL;
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
