/* High availability on the agent (see ha-instances.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "ha"
#include "agent/ha-instances.h"
#include "agent/ha.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/replica.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ternd.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/engine.h"

/* Where a restarted ternd finds its predecessor's lease (same boot). */
#define HA_LEASE_FILE	"lease"

static const char *
ha_policy_name(int ha)
{
	return ha == TERN__HA_POLICY__HA_RESTART ? "restart" :
	    ha == TERN__HA_POLICY__HA_CHECKPOINT ? "checkpoint" : "none";
}

/* --- the lease file: "BOOT-ID STOP-AT-MS" ------------------------------- */

/* This boot's id, read once: the lease file is written at every grant. */
static const char *
ha_boot_id(void)
{
	static char	*id;

	if (id == NULL &&
	    (id = read_file_bounded("/proc/sys/kernel/random/boot_id", 64,
	    NULL, NULL)) != NULL)
		id[strcspn(id, "\n")] = '\0';
	return id;
}

static char *
ha_lease_path(struct agent *a)
{
	char	*path;

	xasprintf(&path, "%s/%s", a->ternd->conf->run_dir, HA_LEASE_FILE);
	return path;
}

/* The previous ternd's stop time if it ran on this boot, else 0. */
static uint64_t
ha_lease_read(struct agent *a)
{
	char		*path = ha_lease_path(a), *text, *sp;
	const char	*boot = ha_boot_id();
	uint64_t	 at = 0;

	text = read_file_bounded(path, 256, NULL, NULL);
	if (text != NULL && boot != NULL && (sp = strchr(text, ' ')) != NULL &&
	    (size_t)(sp - text) == strlen(boot) &&
	    strncmp(text, boot, strlen(boot)) == 0)
		at = strtoull(sp + 1, NULL, 10);
	free(text);
	free(path);
	return at;
}

/* No fsync: a process restart keeps the page cache, and a host crash
 * starts a new boot whose clock this number does not belong to. */
static void
ha_save(void *ctx, uint64_t stop_at)
{
	struct agent	*a = ctx;
	const char	*boot = ha_boot_id();
	char		*path = ha_lease_path(a), *text;
	FILE		*fp;

	if (boot == NULL) {
		free(path);
		return;
	}
	xasprintf(&text, "%s %" PRIu64 "\n", boot, stop_at);
	if ((fp = fopen(path, "w")) != NULL) {
		fputs(text, fp);
		fclose(fp);
	}
	free(text);
	free(path);
}

/* --- the lease keeper's ops ------------------------------------------------ */

static int
ha_send(void *ctx, const char *host, const Envelope *env, char **cause)
{
	struct agent	*a = ctx;

	/* The coordinator of this same host too (mesh_deliver_local). */
	return mesh_send(a->ternd->mesh, host, env, cause);
}

static void
ha_fence(void *ctx, const char *why)
{
	struct agent	*a = ctx;
	struct instance	*in;

	if (a->instances == NULL)
		return;
	for (in = a->instances->list; in != NULL; in = in->next) {
		/* A VM runs without a pid of ours. */
		if (in->ha == 0 || in->drv->fence == NULL || (in->pid <= 0 &&
		    in->state != INST_RUNNING && in->state != INST_STOPPING))
			continue;
		log_warnx("instance %s: fenced: %s", in->name, why);
		in->drv->fence(in, why);
	}
}

/* A protected instance the operator destroyed here. */
struct ha_released {
	struct ha_released	*next;
	char			*name;
	uint64_t		 epoch;
};

static void	ha_pending_new(struct agent *, const char *, int,
		    instances_done_cb *, void **);
static void	ha_release_confirmed(struct agent *, const char *);

void
ha_instances_released(struct agent *a, const struct instance *in,
    instances_done_cb *cb, void **arg)
{
	struct ha_released	*r;

	if (in->epoch == 0)
		return;		/* the coordinator never recorded it */
	r = xcalloc(1, sizeof *r);
	r->name = xstrdup(in->name);
	r->epoch = in->epoch;
	r->next = a->ha_released;
	a->ha_released = r;
	log_info("instance %s: destroyed; the coordinator is told it runs "
	    "nowhere now", in->name);
	/* Until the coordinator has it, a crash of this host would have the
	 * instance failed over: the answer waits for its record. */
	ha_pending_new(a, in->name, 1, cb, arg);
}

/* The grant no longer lists it: the coordinator took the release in. */
static void
ha_released_settle(struct agent *a, const Tern__LeaseGrant *g)
{
	struct ha_released	**pp = &a->ha_released, *r;
	size_t			  i;

	while ((r = *pp) != NULL) {
		for (i = 0; i < g->n_owned; i++)
			if (strcmp(g->owned[i]->name, r->name) == 0)
				break;
		if (i < g->n_owned) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		ha_release_confirmed(a, r->name);
		free(r->name);
		free(r);
	}
}

/* The destroy failed and the instance is still here: nothing to release. */
static void
ha_released_drop(struct agent *a, const char *name)
{
	struct ha_released	**pp = &a->ha_released, *r;

	while ((r = *pp) != NULL) {
		if (strcmp(r->name, name) != 0) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		free(r->name);
		free(r);
	}
}

static int
ha_released_find(struct agent *a, const char *name)
{
	struct ha_released	*r;

	for (r = a->ha_released; r != NULL; r = r->next)
		if (strcmp(r->name, name) == 0)
			return 1;
	return 0;
}

static void
ha_released_free(struct agent *a)
{
	struct ha_released	*r;

	while ((r = a->ha_released) != NULL) {
		a->ha_released = r->next;
		free(r->name);
		free(r);
	}
}

/* A failover brought an instance here and it could not be created or
 * started: told to the coordinator with every renewal
 * (LeaseRenew.failed), which tries the next host, until a grant no longer
 * gives it here at that epoch or it runs. */
struct ha_failed {
	struct ha_failed	*next;
	char			*name;
	uint64_t		 epoch;
	char			*why;
};

static void
ha_failed_add(struct agent *a, const char *name, uint64_t epoch,
    const char *why)
{
	struct ha_failed	*f;

	for (f = a->ha_failed; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			break;
	if (f == NULL) {
		f = xcalloc(1, sizeof *f);
		f->name = xstrdup(name);
		f->next = a->ha_failed;
		a->ha_failed = f;
	}
	f->epoch = epoch;
	free(f->why);
	f->why = xstrdup(why);
}

static void
ha_failed_settle(struct agent *a, const Tern__LeaseGrant *g)
{
	struct ha_failed	*f, **fp = &a->ha_failed;
	struct instance		*in;
	size_t			 i;

	while ((f = *fp) != NULL) {
		for (i = 0; i < g->n_owned; i++)
			if (strcmp(g->owned[i]->name, f->name) == 0 &&
			    g->owned[i]->epoch == f->epoch)
				break;
		in = instance_find(a->instances, f->name);
		if (i < g->n_owned && (in == NULL ||
		    in->state != INST_RUNNING)) {
			fp = &f->next;
			continue;
		}
		*fp = f->next;
		free(f->name);
		free(f->why);
		free(f);
	}
}

static void
ha_failed_free(struct agent *a)
{
	struct ha_failed	*f;

	while ((f = a->ha_failed) != NULL) {
		a->ha_failed = f->next;
		free(f->name);
		free(f->why);
		free(f);
	}
}

static void
ha_held_failed(struct agent *a, Tern__LeaseRenew *r)
{
	struct ha_failed	*f;
	Tern__FailedInstance	*fi, **ptrs;
	size_t			 n = 0;

	for (f = a->ha_failed; f != NULL; f = f->next)
		n++;
	if (n == 0)
		return;
	/* failed[0] is fi itself: ha_held_free frees it through that. */
	fi = xcalloc(n, sizeof *fi);
	ptrs = xcalloc(n, sizeof *ptrs);
	for (f = a->ha_failed, n = 0; f != NULL; f = f->next, n++) {
		tern__failed_instance__init(&fi[n]);
		fi[n].name = f->name;
		fi[n].epoch = f->epoch;
		fi[n].why = f->why;
		ptrs[n] = &fi[n];
	}
	r->n_failed = n;
	r->failed = ptrs;
}

/* Listed in a renewal.  Not one migrating away: from its commit point
 * it is the target's in the store, and a refusal of our copy at the old
 * epoch must not discard it while its migration still needs it (post-copy
 * serves its memory from here); the migration ends it or rolls it back. */
static int
ha_instances_held(const struct instance *in)
{
	return in->ha != 0 && !in->ha_creating && in->state != INST_MIGRATING;
}

static void
ha_held(void *ctx, Tern__LeaseRenew *r)
{
	struct agent		*a = ctx;
	struct instance		*in;
	struct ha_released	*rel;
	Tern__HeldInstance	*hi, **ptrs;
	size_t			 n = 0, i = 0;

	replica_reports(a, r);
	if (a->instances == NULL)
		return;
	ha_held_failed(a, r);
	for (in = a->instances->list; in != NULL; in = in->next)
		if (ha_instances_held(in))
			n++;
	for (rel = a->ha_released; rel != NULL; rel = rel->next)
		n++;
	if (n == 0)
		return;
	/* held[0] is hi itself: ha_held_free frees it through that. */
	hi = xcalloc(n, sizeof *hi);
	ptrs = xcalloc(n, sizeof *ptrs);
	for (in = a->instances->list; in != NULL && i < n; in = in->next) {
		if (!ha_instances_held(in))
			continue;
		tern__held_instance__init(&hi[i]);
		hi[i].name = in->name;
		hi[i].epoch = in->epoch;
		/* The coordinator's failover history takes it as the
		 * outcome of the move that brought it here. */
		hi[i].has_running = in->state == INST_RUNNING;
		hi[i].running = hi[i].has_running;
		hi[i].restore_failed = (char *)replica_restore_failure(a,
		    in->name);
		if (in->epoch == 0) {
			hi[i].has_kind = 1;
			hi[i].kind = in->drv->kind;
			hi[i].spec = in->spec_text;
			hi[i].spec_dir = in->spec_dir;
			hi[i].has_ha = 1;
			hi[i].ha = (Tern__HaPolicy)in->ha;
			hi[i].has_priority = 1;
			hi[i].priority = in->priority;
			if (in->ha == TERN__HA_POLICY__HA_CHECKPOINT) {
				hi[i].has_interval_ms = 1;
				hi[i].interval_ms = in->ha_interval_ms;
				hi[i].has_replicas = 1;
				hi[i].replicas = in->ha_replicas;
			}
		}
		ptrs[i] = &hi[i];
		i++;
	}
	for (rel = a->ha_released; rel != NULL && i < n; rel = rel->next) {
		tern__held_instance__init(&hi[i]);
		hi[i].name = rel->name;
		hi[i].epoch = rel->epoch;
		hi[i].has_released = hi[i].released = 1;
		ptrs[i] = &hi[i];
		i++;
	}
	r->n_held = i;
	r->held = ptrs;
}

static void
ha_held_free(void *ctx, Tern__LeaseRenew *r)
{
	replica_reports_free(ctx, r);
	if (r->n_held > 0)
		free(r->held[0]);
	free(r->held);
	r->held = NULL;
	r->n_held = 0;
	if (r->n_failed > 0)
		free(r->failed[0]);
	free(r->failed);
	r->failed = NULL;
	r->n_failed = 0;
}

/* --- creates waiting for the coordinator ---------------------------------- */

struct ha_pending {
	struct ha_pending	*next;
	struct agent		*a;
	char			*name;
	instances_done_cb	 cb;
	void			*arg;
	int			 created;	/* the driver's part is done */
	int			 releasing;	/* a destroy, not a create */
	uv_timer_t		 timer;
};

static void
ha_pending_closed(uv_handle_t *h)
{
	struct ha_pending	*p = h->data;

	free(p->name);
	free(p);
}

/* Out of the list, answered, freed. */
static void
ha_pending_end(struct ha_pending *p, int code, const char *error)
{
	struct ha_pending	**pp;

	for (pp = &p->a->ha_pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (error != NULL)
		reply_error(p->cb, p->arg, code, "%s", error);
	else if (p->releasing)
		reply_done(p->cb, p->arg, "instance %s destroyed; coordinator "
		    "%s recorded that it runs nowhere", p->name,
		    ha_instances_coord_now(p->a));
	else
		reply_done(p->cb, p->arg, "instance %s created, protected by "
		    "coordinator %s", p->name, ha_instances_coord_now(p->a));
	uv_close((uv_handle_t *)&p->timer, ha_pending_closed);
}

static void
ha_pending_timeout(uv_timer_t *t)
{
	struct ha_pending	*p = t->data;
	char			*why;

	if (p->releasing)
		xasprintf(&why, "instance %s was destroyed here, but "
		    "coordinator %s has not confirmed its release yet: until "
		    "it does, a failure of this host may start it on another "
		    "(ternctl status; this host tells it at each lease "
		    "renewal)", p->name, ha_instances_coord_now(p->a));
	else
		xasprintf(&why, "instance %s was created here, but "
		    "coordinator %s has not confirmed it yet: it is not "
		    "protected until then, and does not start (ternctl "
		    "status; it registers at each lease renewal)", p->name,
		    ha_instances_coord_now(p->a));
	ha_pending_end(p, TERN__ERROR_CODE__ERROR_TIMEOUT, why);
	free(why);
}

static struct ha_pending *
ha_pending_find(struct agent *a, const char *name, int releasing)
{
	struct ha_pending	*p;

	for (p = a->ha_pending; p != NULL; p = p->next)
		if (strcmp(p->name, name) == 0 && p->releasing == releasing)
			return p;
	return NULL;
}

/* The driver's answer: an error ends it; success waits for a grant. */
static void
ha_pending_created(void *arg, const Envelope *reply, int code,
    const char *error)
{
	struct ha_pending	*p = arg;

	(void)reply;
	if (error != NULL) {
		ha_pending_end(p, code, error);
		return;
	}
	p->created = 1;
	uv_timer_start(&p->timer, ha_pending_timeout,
	    3 * (uint64_t)p->a->ternd->conf->lease_ttl_ms, 0);
	if (p->a->ha != NULL)
		ha_agent_renew(p->a->ha);	/* register it now */
}

/* The driver's answer to a destroy: an error ends it (an instance still
 * here is not released); success waits for the coordinator's record. */
static void
ha_pending_destroyed(void *arg, const Envelope *reply, int code,
    const char *error)
{
	struct ha_pending	*p = arg;
	struct agent		*a = p->a;

	(void)reply;
	if (error != NULL) {
		if (a->instances != NULL &&
		    instance_find(a->instances, p->name) != NULL)
			ha_released_drop(a, p->name);
		ha_pending_end(p, code, error);
		return;
	}
	if (!ha_released_find(a, p->name)) {
		ha_pending_end(p, 0, NULL);	/* recorded meanwhile */
		return;
	}
	p->created = 1;
	uv_timer_start(&p->timer, ha_pending_timeout,
	    3 * (uint64_t)a->ternd->conf->lease_ttl_ms, 0);
	if (a->ha != NULL)
		ha_agent_renew(a->ha);	/* tell it now */
}

/* No grant lists it any more: the coordinator recorded the release. */
static void
ha_release_confirmed(struct agent *a, const char *name)
{
	struct ha_pending	*p = ha_pending_find(a, name, 1);

	if (p != NULL && p->created)
		ha_pending_end(p, 0, NULL);
}

static void
ha_pending_new(struct agent *a, const char *name, int releasing,
    instances_done_cb *cb, void **arg)
{
	struct ha_pending	*p = xcalloc(1, sizeof *p);

	p->a = a;
	p->name = xstrdup(name);
	p->releasing = releasing;
	p->cb = *cb;
	p->arg = *arg;
	uv_timer_init(a->ternd->loop, &p->timer);
	p->timer.data = p;
	p->next = a->ha_pending;
	a->ha_pending = p;
	*cb = releasing ? ha_pending_destroyed : ha_pending_created;
	*arg = p;
}

void
ha_instances_creating(struct agent *a, const char *name,
    instances_done_cb *cb, void **arg)
{
	ha_pending_new(a, name, 0, cb, arg);
}

/* --- what a grant says ---------------------------------------------------- */

/* A start's answer; a take-over's failure goes to the coordinator. */
struct ha_answer {
	struct agent	*a;
	char		*name;
	uint64_t	 epoch;		/* 0: not a take-over */
};

static void
ha_start_failed(struct ha_answer *an, const char *error)
{
	if (an->epoch != 0)
		ha_failed_add(an->a, an->name, an->epoch, error);
	free(an->name);
	free(an);
}

static void
ha_started(void *arg, const Envelope *reply, int code, const char *error)
{
	struct ha_answer	*an = arg;

	(void)reply;
	if (error == NULL) {
		free(an->name);
		free(an);
		return;
	}
	log_warnx("instance %s: %s (code %d)", an->name, error, code);
	ha_start_failed(an, error);
}
static void	ha_restore(struct instance *, uint64_t);

static void
ha_answered(void *arg, const Envelope *reply, int code, const char *error)
{
	char	*name = arg;

	(void)reply;
	if (error != NULL)
		log_warnx("instance %s: %s (code %d)", name, error, code);
	free(name);
}

/* takeover: it came by failover (its epoch), not yet run here. */
static void
ha_start(struct instance *in, const char *why, int takeover)
{
	struct ha_answer	*an = xcalloc(1, sizeof *an);
	char			*cause = NULL;
	int			 code = 0;

	an->a = in->set->agent;
	an->name = xstrdup(in->name);
	an->epoch = takeover ? in->epoch : 0;
	log_info("instance %s: starting: %s", in->name, why);
	/* fail: as if the driver refused a taken-over instance's start. */
	if (takeover && fault_hit("ha.takeover.start") == FAULT_FAIL)
		cause = xstrdup("fault point ha.takeover.start");
	/* A refusal never calls back (driver.h): an is ours again. */
	else if (in->drv->start(in, ha_started, an, &code, &cause) == 0)
		return;
	log_warnx("instance %s: cannot start: %s", in->name, cause);
	ha_start_failed(an, cause);
	free(cause);
}

/* The coordinator gave it to another host: this copy must never run. */
static void
ha_discard(struct instance *in, const char *why)
{
	char	*cause = NULL, *name = xstrdup(in->name);
	int	 code = 0;

	log_warnx("%s: discarded: %s", in->name, why);
	if (in->pid > 0 && in->drv->fence != NULL)
		in->drv->fence(in, why);
	in->want_running = 0;
	if (in->drv->destroy(in, ha_answered, name, &code, &cause) != 0) {
		log_warnx("instance %s: cannot discard it yet (the next grant "
		    "tries again): %s", in->name, cause);
		free(cause);
		free(name);
	}
}

struct ha_restoring {
	struct agent	*a;
	char		*name;
	uint64_t	 serial;	/* of the instance it began for */
	uint64_t	 gen;
};

/* The instance of hr's name here (NULL: none), and whether it is the one
 * the restore began for: one discarded and handed back here meanwhile
 * is another, with a restore of its own. */
static struct instance *
ha_restore_instance(const struct ha_restoring *hr, int *other)
{
	struct instance	*in = hr->a->instances != NULL ?
			    instance_find(hr->a->instances, hr->name) : NULL;

	*other = in != NULL && in->serial != hr->serial;
	return in;
}

/* The restore cannot go on now (cause): 1 if it waits, its generation
 * kept, for the next grant that lists it here; 0 once it waited
 * restore_wait_ms (the caller fails it as any restore, and the
 * coordinator tries another replica host).  Such causes: libvirtd or
 * CRIU not ready after a restart, the driver busy, the lease lapsed for
 * a moment. */
static int
ha_restore_wait(const struct agent *a, struct instance *in, uint64_t gen,
    const char *cause)
{
	uint64_t	now = now_ms();
	int		wait_ms = a->ternd->conf->restore_wait_ms;

	if (in->replica_restore_wait_ms == 0) {
		in->replica_restore_wait_ms = now;
		log_warnx("instance %s: its restore from replica generation %"
		    PRIu64 " waits: %s (tried again at each grant, for up to "
		    "%d ms)", in->name, gen, cause, wait_ms);
	}
	return now - in->replica_restore_wait_ms < (uint64_t)wait_ms;
}

/* What fails is said, and the instance stays here not running: a cold
 * start would lose its state silently. */
static void
ha_restore_fail(struct agent *a, struct instance *in, const char *name,
    uint64_t gen, const char *cause)
{
	log_warnx("instance %s: not restored from replica generation %"
	    PRIu64 ", left not running here: %s (ternctl restore %s once the "
	    "cause is fixed)", name, gen, cause, name);
	if (in != NULL) {
		in->want_running = 0;
		in->replica_restore_gen = 0;
		in->replica_restore_wait_ms = 0;
		instance_set_error(in, cause);
		instance_persist(in);
	}
	replica_restore_failed(a, name, cause);
}

static void
ha_restored(void *arg, const Envelope *reply, int code, const char *error)
{
	struct ha_restoring	*hr = arg;
	struct instance		*in;
	int			 other;

	(void)reply;
	in = ha_restore_instance(hr, &other);
	if (other) {
		log_info("instance %s: left this host while it was restored "
		    "from replica generation %" PRIu64 "; the one here now is "
		    "another", hr->name, hr->gen);
		free(hr->name);
		free(hr);
		return;
	}
	/* Fenced as it turned running (its lease lapsed meanwhile), or its
	 * driver unable to act for now: the generation is taken in, the
	 * next grant that lists it here restores it again. */
	if (error != NULL && in != NULL &&
	    code == TERN__ERROR_CODE__ERROR_UNAVAILABLE &&
	    ha_restore_wait(hr->a, in, hr->gen, error)) {
		free(hr->name);
		free(hr);
		return;
	}
	if (error != NULL)
		ha_restore_fail(hr->a, in, hr->name, hr->gen, error);
	else
		log_info("instance %s: restored from its replica", hr->name);
	free(hr->name);
	free(hr);
}

/* The replica generation is the instance's checkpoint now (and its
 * rootfs written, if it carries one): restore it. */
static void
ha_restore_taken(void *arg, const char *error)
{
	struct ha_restoring	*hr = arg;
	Tern__RestoreRequest	 r = TERN__RESTORE_REQUEST__INIT;
	struct agent		*a = hr->a;
	struct instance		*in;
	char			*cause = NULL;
	int			 code = 0, other;

	in = ha_restore_instance(hr, &other);
	if (other) {
		log_info("instance %s: left this host while replica generation "
		    "%" PRIu64 " was taken in; the one here now is another",
		    hr->name, hr->gen);
		goto out;
	}
	if (in != NULL)
		in->replica_restoring = 0;
	if (error != NULL || in == NULL) {
		ha_restore_fail(a, in, hr->name, hr->gen, error != NULL ? error :
		    "it is gone from this host");
		goto out;
	}
	/* Writing its rootfs took a while: the lease again.  A lapse, or
	 * a driver busy or away (libvirtd reconnecting), passes: the
	 * generation stays taken in, the next grant asks again.  Fault
	 * point replica.restore.busy (fail): such a cause, here. */
	if (fault_hit("replica.restore.busy") == FAULT_FAIL) {
		cause = xstrdup("fault point replica.restore.busy");
		goto transient;
	}
	if (ha_instances_may_run(in, &code, &cause) != 0)
		goto transient;
	if (in->working != NULL || in->vm_busy) {
		xasprintf(&cause, "instance %s is busy (%s)", in->name,
		    in->working != NULL ? in->working : "with libvirt");
		goto transient;
	}
	r.name = in->name;
	r.has_generation = 1;
	r.generation = hr->gen;
	if (in->drv->restore == NULL)
		goto fail;
	if (in->drv->restore(in, &r, ha_restored, hr, &code, &cause) != 0) {
		if (code == TERN__ERROR_CODE__ERROR_UNAVAILABLE)
			goto transient;
		goto fail;
	}
	return;
transient:
	if (ha_restore_wait(a, in, hr->gen, cause)) {
		free(cause);
		goto out;
	}
fail:
	ha_restore_fail(a, in, hr->name, hr->gen, cause != NULL ? cause :
	    "its kind cannot restore");
	free(cause);
out:
	free(hr->name);
	free(hr);
}

/* The state file names the generation: take it in. */
static void
ha_restore_saved(void *arg, const char *error)
{
	struct ha_restoring	*hr = arg;
	struct agent		*a = hr->a;
	struct instance		*in;
	char			*why;
	int			 other;

	in = ha_restore_instance(hr, &other);
	/* Gone (discarded, destroyed) while its state was written; a new
	 * instance of that name since is not this restore's. */
	if (in == NULL || other || !in->replica_restoring ||
	    in->replica_restore_gen != hr->gen) {
		log_info("instance %s: left this host before its restore from "
		    "replica generation %" PRIu64 " began: not restored here",
		    hr->name, hr->gen);
		free(hr->name);
		free(hr);
		return;
	}
	if (error != NULL) {
		in->replica_restoring = 0;
		xasprintf(&why, "cannot save its state before the restore: %s",
		    error);
		ha_restore_fail(a, in, hr->name, hr->gen, why);
		free(why);
		free(hr->name);
		free(hr);
		return;
	}
	replica_take(a, in->name, hr->gen, in->ckpt_dir, in->spec != NULL &&
	    !in->spec->shared_storage ? in->spec->root : NULL,
	    ha_restore_taken, hr);
}

/* It came here by failover and this host holds its replica: restore
 * that generation (not a cold start: its memory comes back). */
static void
ha_restore(struct instance *in, uint64_t gen)
{
	struct agent		*a = in->set->agent;
	struct ha_restoring	*hr;
	char			*cause = NULL;
	int			 code = 0;

	if (in->replica_restore_wait_ms == 0)
		log_info("instance %s: restoring replica generation %" PRIu64,
		    in->name, gen);
	/* Fault point replica.restore (fail): the restore fails here. */
	if (fault_hit("replica.restore") == FAULT_FAIL) {
		ha_restore_fail(a, in, in->name, gen,
		    "fault point replica.restore");
		return;
	}
	/* As any start: only under a valid lease for its epoch. */
	if (ha_instances_may_run(in, &code, &cause) != 0) {
		ha_restore_fail(a, in, in->name, gen, cause);
		free(cause);
		return;
	}
	hr = xcalloc(1, sizeof *hr);
	hr->a = a;
	hr->name = xstrdup(in->name);
	hr->serial = in->serial;
	hr->gen = gen;
	in->replica_restoring = 1;
	/* Nothing is written until the state file says which generation:
	 * a ternd that dies during the take finds it there (a write that
	 * is not out any more had it already). */
	if (in->replica_restore_gen == gen && !in->persisting) {
		ha_restore_saved(hr, NULL);
		return;
	}
	in->replica_restore_gen = gen;
	instance_persist_then(in, ha_restore_saved, hr);
}

/* The create's callback may come before instances_create returns: both
 * hold the record, the last one frees it. */
struct ha_create {
	struct agent	*a;
	char		*name;
	uint64_t	 epoch;
	uint64_t	 restore;	/* the replica generation, or 0 */
	int		 refs;
	int		 answered;
};

static void
ha_create_drop(struct ha_create *hc)
{
	if (--hc->refs > 0)
		return;
	free(hc->name);
	free(hc);
}

static void
ha_created(void *arg, const Envelope *reply, int code, const char *error)
{
	struct ha_create	*hc = arg;
	struct instance		*in;

	(void)reply;
	hc->answered = 1;
	in = hc->a->instances != NULL ? instance_find(hc->a->instances,
	    hc->name) : NULL;
	if (error != NULL) {
		log_warnx("instance %s: cannot take it over: %s (code %d)",
		    hc->name, error, code);
		ha_failed_add(hc->a, hc->name, hc->epoch, error);
	} else if (in != NULL) {
		in->ha_creating = 0;
		in->epoch = hc->epoch;
		in->want_running = 1;
		/* In the same write as want: a ternd that dies before the
		 * restore began must not start it afresh. */
		in->replica_restore_gen = hc->restore;
		instance_persist(in);
		if (hc->restore != 0)
			ha_restore(in, hc->restore);
		else if (ha_agent_valid(hc->a->ha))
			ha_start(in, "it failed over to this host", 1);
	}
	ha_create_drop(hc);
}

/* It came here by failover: create it from the spec the grant carries. */
static void
ha_take_over(struct agent *a, const Tern__OwnedInstance *o)
{
	Tern__InstanceCreateRequest	 r = TERN__INSTANCE_CREATE_REQUEST__INIT;
	struct ha_create		*hc;
	struct instance			*in;

	if (o->spec == NULL || !o->has_kind) {
		log_warnx("instance %s is ours at epoch %" PRIu64 " but the "
		    "grant has no spec for it", o->name, o->epoch);
		return;
	}
	hc = xcalloc(1, sizeof *hc);
	hc->a = a;
	hc->name = xstrdup(o->name);
	hc->epoch = o->epoch;
	hc->restore = o->has_restore_generation ? o->restore_generation : 0;
	hc->refs = 2;
	r.name = o->name;
	r.kind = o->kind;
	r.spec = o->spec;
	r.spec_dir = o->spec_dir != NULL ? o->spec_dir : "";
	r.has_ha = 1;
	r.ha = o->has_ha ? o->ha : TERN__HA_POLICY__HA_RESTART;
	log_info("instance %s failed over to this host (epoch %" PRIu64 ")",
	    o->name, o->epoch);
	a->instances->taking_over = 1;
	instances_create(a->instances, &r, ha_created, hc);
	a->instances->taking_over = 0;
	if (!hc->answered &&
	    (in = instance_find(a->instances, o->name)) != NULL) {
		in->ha_creating = 1;
		in->epoch = o->epoch;
	}
	ha_create_drop(hc);
}

/* ternctl ha set changed in's policy: none stops gating it on the lease
 * (it is no longer fenced nor held); a policy again protects it.  1 if in
 * is not protected now. */
static int
ha_policy_changed(struct instance *in, const Tern__OwnedInstance *o)
{
	if (!o->has_ha || (int)o->ha == in->ha)
		return in->ha == 0;
	log_info("instance %s: protection %s, was %s (ternctl ha set)",
	    in->name, ha_policy_name(o->ha), ha_policy_name(in->ha));
	in->ha = (int)o->ha;
	instance_persist(in);
	return in->ha == 0;
}

/* The answer a migration's commit waited for was lost, and the grant
 * lists the instance here at the epoch it had: the store never recorded
 * the move, and the target's copy never runs (no grant lists it at the
 * next epoch).  The checkpoint taken at the commit point is the
 * instance: restore it, nothing of its state lost.  The flag stays until
 * the restore succeeded: a refused or failed one is tried again at the
 * next grants (warned of once, then noted at info). */
struct ha_unconfirmed {
	char		*name;
	int		 tries;
};

static void
ha_unconfirmed_restored(void *arg, const Envelope *reply, int code,
    const char *error)
{
	struct ha_unconfirmed	*hu = arg;

	(void)reply;
	if (error == NULL)	/* running: instance_set_state cleared it */
		log_info("instance %s: restored from the checkpoint taken at "
		    "its migration's commit point", hu->name);
	else if (hu->tries == 1)
		log_warnx("instance %s: not restored (code %d), tried again "
		    "at the next grants while they list it here: %s",
		    hu->name, code, error);
	else
		log_info("instance %s: not restored again (try %d): %s",
		    hu->name, hu->tries, error);
	free(hu->name);
	free(hu);
}

static void
ha_unconfirmed_restore(struct instance *in)
{
	Tern__RestoreRequest	 r = TERN__RESTORE_REQUEST__INIT;
	struct ha_unconfirmed	*hu;
	char			*cause = NULL;
	int			 code = 0;

	if (in->ha_unconfirmed_tries++ == 0)
		log_warnx("instance %s: coordinator %s lists it here at epoch "
		    "%" PRIu64 ": its migration's move was not recorded; "
		    "restoring the checkpoint taken at the commit point",
		    in->name, ha_instances_coord_now(in->set->agent),
		    in->epoch);
	else
		log_info("instance %s: restoring the checkpoint taken at the "
		    "commit point again (try %d)", in->name,
		    in->ha_unconfirmed_tries);
	/* The move was not recorded: it was never committed there. */
	if (in->moved_to != NULL) {
		free(in->moved_to);
		in->moved_to = NULL;
		instance_persist(in);
	}
	instance_set_error(in, NULL);
	hu = xcalloc(1, sizeof *hu);
	hu->name = xstrdup(in->name);
	hu->tries = in->ha_unconfirmed_tries;
	r.name = in->name;
	if (ha_instances_may_run(in, &code, &cause) != 0 ||
	    in->drv->restore == NULL || in->drv->restore(in, &r,
	    ha_unconfirmed_restored, hu, &code, &cause) != 0) {
		if (hu->tries == 1)
			log_warnx("instance %s: not restored, left checkpointed "
			    "here; tried again at the next grants while they "
			    "list it here (or ternctl restore %s): %s",
			    in->name, in->name, cause != NULL ? cause :
			    "its kind cannot restore");
		else
			log_info("instance %s: not restored (try %d): %s",
			    in->name, hu->tries, cause != NULL ? cause :
			    "its kind cannot restore");
		instance_set_error(in, cause);
		free(cause);
		free(hu->name);
		free(hu);
	}
}

/* The grant lists it here at another epoch than the one its commit
 * point had: the checkpoint is not the instance the store holds any
 * more; never restore it on the strength of that old commit. */
static void
ha_unconfirmed_drop(struct instance *in, uint64_t epoch)
{
	log_info("instance %s: coordinator %s lists it at epoch %" PRIu64
	    ", not %" PRIu64 ": its unconfirmed migration's checkpoint is "
	    "not restored", in->name, ha_instances_coord_now(in->set->agent),
	    epoch, in->epoch);
	in->ha_unconfirmed = 0;
	in->ha_unconfirmed_tries = 0;
	instance_persist(in);
}

static void
ha_owned(void *ctx, const Tern__LeaseGrant *g)
{
	struct agent		*a = ctx;
	struct instance		*in;
	struct ha_pending	*p;
	size_t			 i;

	if (a->instances == NULL)
		return;
	ha_released_settle(a, g);
	ha_failed_settle(a, g);
	for (i = 0; i < g->n_refusals; i++) {
		p = ha_pending_find(a, g->refusals[i]->name, 0);
		in = instance_find(a->instances, g->refusals[i]->name);
		if (in != NULL && in->ha != 0 && !in->ha_creating) {
			in->ha_unconfirmed = 0;	/* the move was recorded */
			ha_discard(in, g->refusals[i]->why);
		}
		if (p != NULL && p->created)
			ha_pending_end(p, TERN__ERROR_CODE__ERROR_EXISTS,
			    g->refusals[i]->why);
	}
	for (i = 0; i < g->n_owned; i++) {
		const Tern__OwnedInstance *o = g->owned[i];

		in = instance_find(a->instances, o->name);
		if (in == NULL && ha_released_find(a, o->name)) {
			continue;	/* destroyed: the release is on its way */
		}
		if (in == NULL && o->has_ha &&
		    o->ha == TERN__HA_POLICY__HA_NONE)
			continue;	/* not protected: nothing to take over */
		if (in == NULL && a->mig != NULL &&
		    mig_find_name(a->mig, o->name, MIG_ROLE_TARGET) != NULL) {
			/* Migrating in, its COMMIT not here yet: the
			 * migration registers it, and the next grant (they
			 * repeat every renewal) resumes it; a takeover would
			 * boot a second copy beside the paused arrival. */
			log_info("instance %s: listed here at epoch %" PRIu64
			    " while it is migrating in: left to the "
			    "migration", o->name, o->epoch);
			continue;
		}
		if (in == NULL) {
			ha_take_over(a, o);
			continue;
		}
		if (in->ha_creating || ha_policy_changed(in, o) != 0)
			continue;
		if (in->ha_unconfirmed && in->epoch != o->epoch)
			ha_unconfirmed_drop(in, o->epoch);
		if (in->ha_unconfirmed) {
			/* STOPPED: its restore was fenced as it turned running
			 * (instance_set_state); the checkpoint is still the
			 * commit point's. */
			if ((in->state == INST_CHECKPOINTED ||
			    (in->state == INST_STOPPED && in->generation > 0)) &&
			    in->working == NULL) {
				ha_unconfirmed_restore(in);
				continue;
			}
			/* One restore at a time, and a fenced one is killed
			 * first (RUNNING until reaped, then STOPPED): the next
			 * grant looks again. */
			if (in->state == INST_CHECKPOINTED ||
			    in->state == INST_RESTORING ||
			    in->state == INST_RUNNING ||
			    (in->state == INST_STOPPED && in->generation > 0))
				continue;
			/* not its commit-point checkpoint any more */
			in->ha_unconfirmed = in->ha_unconfirmed_tries = 0;
			instance_persist(in);
		}
		if (in->epoch != o->epoch) {
			log_info("instance %s: protected by %s at epoch %"
			    PRIu64, in->name, ha_instances_coord_now(a),
			    o->epoch);
			in->epoch = o->epoch;
			instance_persist(in);
		}
		if ((p = ha_pending_find(a, o->name, 0)) != NULL && p->created)
			ha_pending_end(p, 0, NULL);
		if (in->state == INST_INCOMING || in->state == INST_MIGRATING)
			/* migrated in: it resumes on this grant; migrating
			 * away: the copy that comes back may resume here */
			migration_owner_granted(a, in->name, in->epoch);
		/* Not while its replica is taken in: the restore runs it
		 * (or, refused, leaves it not running); a cold start here
		 * ran it over the rootfs the restore refused.  One a
		 * restarted ternd did not finish is resumed, unless the
		 * operator stopped it meanwhile. */
		if (in->replica_restore_gen != 0) {
			if (in->want_running && !in->replica_restoring &&
			    in->working == NULL &&
			    !in->vm_busy && (in->state == INST_STOPPED ||
			    in->state == INST_CHECKPOINTED)) {
				if (in->replica_restore_wait_ms == 0)
					log_info("instance %s: resuming its "
					    "restore from replica generation %"
					    PRIu64, in->name,
					    in->replica_restore_gen);
				ha_restore(in, in->replica_restore_gen);
			}
		} else if (in->want_running && in->state == INST_STOPPED &&
		    in->working == NULL && !in->replica_restoring)
			ha_start(in, "this host holds its lease again", 0);
	}
	replica_owned(a, g);
}

static int
ha_on_msg(void *ctx, const char *peer, const Envelope *env)
{
	struct agent	*a = ctx;

	return a->ha != NULL ? ha_agent_on_msg(a->ha, peer, env) : 0;
}

/* --- the table's checks --------------------------------------------------- */

int
ha_instances_refuse_create(struct agent *a, const struct inst_driver *drv,
    const Tern__InstanceCreateRequest *r, int *code, char **cause)
{
	char		*why = NULL;
	int		 rc;

	if (a->ha == NULL)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--ha: this host "
		    "has no coordinator (set coordinator in ternd.conf)");
	if (drv->fence == NULL)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--ha: instances of "
		    "kind %s cannot be protected yet (no way to stop one at "
		    "once when the lease ends)", drv->name);
	if (msg_ha_refused(r->ha, drv->kind, r->name, r->spec, &why) != 0) {
		rc = inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--ha %s: %s; nothing "
		    "created", ha_policy_name(r->ha), why);
		free(why);
		return rc;
	}
	if (r->has_interval_ms && (r->interval_ms < HA_INTERVAL_MIN_MS ||
	    r->interval_ms > HA_INTERVAL_MAX_MS))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--interval %" PRIu32
		    ": between %u and %u ms", r->interval_ms,
		    HA_INTERVAL_MIN_MS, HA_INTERVAL_MAX_MS);
	if (r->has_replicas && (r->replicas < 1 ||
	    r->replicas > HA_REPLICAS_MAX))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--replicas %" PRIu32
		    ": between 1 and %u", r->replicas, HA_REPLICAS_MAX);
	return 0;
}

int
ha_instances_may_run(struct instance *in, int *code, char **cause)
{
	struct agent	*a = in->set->agent;

	if (in->ha == 0)
		return 0;
	if (a->ha == NULL)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s is "
		    "protected (--ha %s) but this host has no coordinator",
		    in->name, ha_policy_name(in->ha));
	if (in->epoch == 0)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s is not "
		    "registered with the coordinator yet (it is at this host's "
		    "next lease renewal); try again in a moment", in->name);
	if (!ha_agent_may_run(a->ha, in->epoch))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s is "
		    "protected and this host holds no lease from its "
		    "coordinator (ternctl status)", in->name);
	return 0;
}

int
ha_instances_running(struct instance *in)
{
	struct agent	*a = in->set->agent;
	const char	*why;
	char		*text;

	if (in->ha == 0)
		return 0;
	/* ternd is stopping (the lease keeper is gone): while the lease it
	 * had runs, the next ternd decides (it fences at start unless the
	 * lease left behind still runs); after, it is fenced now. */
	if (a->ha == NULL && a->ternd->stopping && now_ms() < a->ha_stop_at)
		return 0;
	if (a->ha == NULL && a->ternd->stopping)
		why = "this host's lease ended while ternd was stopping";
	else if (a->ha == NULL)
		why = "this host has no coordinator";
	else if (in->epoch == 0)
		why = "the coordinator has not given it an epoch yet";
	else if (!ha_agent_may_run(a->ha, in->epoch))
		why = "this host's lease ended while it was being started, "
		    "restored or resumed";
	else
		return 0;
	xasprintf(&text, "fenced as it turned running: %s; it starts again "
	    "once this host holds a valid lease for it (ternctl status)", why);
	log_warnx("instance %s: %s", in->name, text);
	instance_set_error(in, text);
	free(text);
	if (in->drv->fence != NULL)
		in->drv->fence(in, why);
	return -1;
}

/* --- start and stop ------------------------------------------------------- */

const char *
ha_instances_coord_now(const struct agent *a)
{
	return a->ha != NULL ? ha_agent_coordinator(a->ha) :
	    a->ternd->conf->coordinator;
}

void
ha_instances_register(struct agent *a)
{
	mesh_on_message(a->ternd->mesh, TERN__ENVELOPE__BODY_LEASE_GRANT,
	    ha_on_msg, a);
	mesh_on_message(a->ternd->mesh, TERN__ENVELOPE__BODY_LEASE_NUDGE,
	    ha_on_msg, a);
	replica_register(a);
	msg_ha_vm_check(vm_disks_protectable);
}

void
ha_instances_start(struct agent *a)
{
	struct conf		*conf = a->ternd->conf;
	struct ha_agent_conf	 hc;
	struct ha_agent_ops	 ops;

	if (*conf->coordinator == '\0' || strstr(conf->role, "agent") == NULL ||
	    a->ha != NULL)
		return;
	memset(&hc, 0, sizeof hc);
	hc.coordinator = conf->coordinator;
	hc.ttl_ms = (uint32_t)conf->lease_ttl_ms;
	hc.margin_ms = (uint32_t)conf->lease_margin_ms;
	hc.boot_id = a->ternd->boot_id;
	hc.resume_stop_at = ha_lease_read(a);
	memset(&ops, 0, sizeof ops);
	ops.send = ha_send;
	ops.fence = ha_fence;
	ops.owned = ha_owned;
	ops.held = ha_held;
	ops.held_free = ha_held_free;
	ops.save = ha_save;
	a->ha = ha_agent_new(a->ternd->loop, &hc, &ops, a);
	log_info("holding leases from coordinator %s (ttl %d ms, margin %d "
	    "ms)", conf->coordinator, conf->lease_ttl_ms, conf->lease_margin_ms);
	ha_agent_start(a->ha);
}

void
ha_instances_stop(struct agent *a)
{
	while (a->ha_pending != NULL)
		ha_pending_end(a->ha_pending, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "ternd is shutting down");
	/* What may still turn running while ternd stops is held to the
	 * lease it has now (ha_instances_running). */
	a->ha_stop_at = a->ha != NULL ? ha_agent_stop_at(a->ha) : 0;
	replica_stop(a);
	ha_agent_free(a->ha);
	a->ha = NULL;
	ha_released_free(a);
	ha_failed_free(a);
}

char *
ha_instances_lease(struct agent *a)
{
	return a->ha != NULL ? ha_agent_describe(a->ha) : NULL;
}

char *
ha_instances_coordinator(struct agent *a)
{
	struct ternd	*td = a->ternd;

	return td->coord_describe != NULL ? td->coord_describe(td->coord_ctx) :
	    NULL;
}
