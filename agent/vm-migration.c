/* A VM migration as the migration engine's driver of kind "vm"
 * (migrate/engine.h): its state next to the engine's struct mig, the
 * phases and deadlines it keeps, the verdicts it carries out. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/instance-internal.h"
#include "agent/vm-mig-internal.h"
#include "agent/vm-migration.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"

/* The agent whose engine runs e's migrations. */
struct agent *
vmm_agent(struct mig_engine *e)
{
	return mig_engine_data(e);
}

/* m's VM migration, or NULL if m is of another kind. */
struct vm_migration *
vmm_of(struct mig *m)
{
	return m != NULL && m->drv == &vmm_driver ? m->priv : NULL;
}

struct vm_migration *
vmm_new(struct mig *mg)
{
	struct agent		*a = vmm_agent(mg->engine);
	struct vm_migration	*m;

	m = xcalloc(1, sizeof *m);
	m->agent = a;
	m->mig = mg;
	mg->priv = m;
	m->id = mg->id;
	m->source = mg->role == MIG_ROLE_SOURCE;
	m->peer = mg->peer;
	m->name = mg->name;
	xasprintf(&m->dir, "%s/vm-migrate", a->ternd->conf->run_dir);
	xasprintf(&m->qemu_path, "%s/%" PRIx64 ".qemu", m->dir, m->id);
	m->lis[0].fd = m->lis[1].fd = -1;
	m->qemu_downtime_ms = -1;
	uv_timer_init(a->ternd->loop, &m->tick);
	uv_timer_init(a->ternd->loop, &m->timer);
	m->tick.data = m->timer.data = m;
	/* The engine's one no-progress timeout does not fit a VM: libvirt's
	 * pre-copy is watched by the policy (its stall and its deadline,
	 * scaled by the guest's memory, migrate/vm-policy.h), and the
	 * steps that must come have deadlines of their own (vmm_arm). */
	mig_set_timeout(mg, 0);
	/* The peer's ABORT is turned into the failure by the steps (S says
	 * "refused" or "aborted" after its phase). */
	mg->wants_abort_steps = 1;
	vmm_arm(m);
	return m;
}

/* The deadlines a VM migration keeps itself, by phase: a step that does
 * not come (S: READY, then T's COMPLETE; T: COMMIT).  None while
 * libvirt's call runs on S (TRANSFER, PAGING): libvirt's keepalive and
 * the policy's deadline (migrate/vm-policy.h) own those; none while T's
 * libvirt is asked (OFFERED, COMMITTED), which answers in bounded
 * time (VMM_ARRIVE_WAIT_MS). */
void
vmm_arm(struct vm_migration *m)
{
	uint64_t	ms = 0;

	if (m->closing)
		return;
	if (m->source && m->mig->phase == MIG_PH_OFFERED)
		ms = (uint64_t)m->agent->ternd->conf->migration_timeout_ms;
	else if (m->source && (m->mig->phase == MIG_PH_COMMITTED ||
	    m->mig->phase == MIG_PH_DONE))
		ms = VMM_COMPLETE_WAIT_MS;
	else if (!m->source && m->mig->phase == MIG_PH_READY && !m->settling)
		ms = (uint64_t)m->agent->ternd->conf->migration_timeout_ms;
	if (ms > 0)
		uv_timer_start(&m->timer, vmm_timeout, ms, 0);
	else
		uv_timer_stop(&m->timer);
}

/* Through the engine's one transition function (mig_set_phase: forward
 * along the role's order, or to ROLLING_BACK/FAILED before the commit). */
int
vmm_set_phase(struct vm_migration *m, enum mig_phase ph)
{
	enum mig_phase	from = m->mig->phase;

	if (mig_set_phase(m->mig, ph) != 0)
		return -1;
	log_info("vmig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    mig_phase_names[from], mig_phase_names[ph]);
	vmm_arm(m);
	return 0;
}

/* What the operator's progress line calls it. */
const char *
vmm_phase_name(const struct vm_migration *m)
{
	switch (m->mig->phase) {
	case MIG_PH_TRANSFER:
		return m->postcopy_asked ? "postcopy" : "precopy";
	case MIG_PH_PAGING:
		return "postcopy";
	case MIG_PH_COMMITTED:
	case MIG_PH_DONE:
		return m->source ? "finishing" : "arriving";
	default:
		return mig_phase_names[m->mig->phase];
	}
}

static void
vmm_freed(uv_handle_t *h)
{
	struct vm_migration	*m = h->data;

	mig_drop(m->mig);	/* the last one frees m (vmm_drv_release) */
}

void
vmm_close_listener(struct vm_listener *l)
{
	if (!l->open)
		return;
	l->open = 0;
	uv_poll_stop(&l->poll);
	close(l->fd);
	l->fd = -1;
	unlink(l->path);
	mig_hold(l->m->mig);
	l->poll.data = l->m;	/* vmm_freed drops the migration's hold */
	uv_close((uv_handle_t *)&l->poll, vmm_freed);
}

void
vmm_drop_chans(struct vm_migration *m)
{
	struct vm_chan	*c;

	while ((c = m->chans) != NULL) {
		m->chans = c->next;
		m->nchans--;
		relay_free(c->relay);
		free(c->name);
		free(c);
	}
}

/* Over: out of the engine's table; the memory goes once no handle and no
 * call on the thread pool holds it (mig_hold). */
void
vmm_free(struct vm_migration *m)
{
	int	i;

	if (m->closing)
		return;
	m->closing = 1;
	vmm_drop_chans(m);
	for (i = 0; i < 2; i++) {
		vmm_close_listener(&m->lis[i]);
		free(m->lis[i].path);
		m->lis[i].path = NULL;
	}
	if (!m->source || m->returning)
		unlink(m->qemu_path);
	if (m->in != NULL)
		instances_op_done(m->in->set);
	m->in = NULL;
	mig_hold(m->mig);
	mig_hold(m->mig);
	uv_close((uv_handle_t *)&m->tick, vmm_freed);
	uv_close((uv_handle_t *)&m->timer, vmm_freed);
	mig_finish(m->mig, NULL);
}

int
vmm_send_step(struct vm_migration *m, Tern__MigrateStep__Step step,
    const char *error, uint64_t downtime_ms, uint64_t bytes)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	ms.migration = m->id;
	ms.step = step;
	ms.error = (char *)error;
	if (step == TERN__MIGRATE_STEP__STEP__COMPLETE) {
		ms.has_downtime_ms = ms.has_bytes = 1;
		ms.downtime_ms = downtime_ms;
		ms.bytes = bytes;
	}
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if (mig_send(m->mig, &env, NULL) != 0) {
		log_debug("vmig %" PRIx64 ": %s unreachable for step %d", m->id,
		    m->peer, step);
		return -1;
	}
	return 0;
}

/* A protected VM's COMMIT: the store's new epoch and the policy. */
int
vmm_send_commit(struct vm_migration *m, uint64_t epoch, int ha)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;

	msg_init(&env, 0);
	ms.migration = m->id;
	ms.step = TERN__MIGRATE_STEP__STEP__COMMIT;
	ms.has_epoch = ms.has_ha = 1;
	ms.epoch = epoch;
	ms.ha = (Tern__HaPolicy)ha;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if (mig_send(m->mig, &env, NULL) != 0) {
		log_debug("vmig %" PRIx64 ": %s unreachable for the commit",
		    m->id, m->peer);
		return -1;
	}
	return 0;
}

struct vmm_census {
	const struct mig	*self;
	enum mig_role		 role;
	unsigned		 n;
	int			 named;
};

static void
vmm_census_one(struct mig *x, void *arg)
{
	struct vmm_census	*c = arg;

	if (x == c->self)
		return;
	if (strcmp(x->name, c->self->name) == 0)
		c->named = 1;
	if (x->drv == &vmm_driver && x->role == c->role)
		c->n++;
}

/* Beside self, in the engine's table: how many VM migrations there are
 * in role, and whether one of either kind and role has self's name. */
void
vmm_census(struct mig *self, enum mig_role role, unsigned *n, int *named)
{
	struct vmm_census	c = { .self = self, .role = role };

	mig_engine_each(self->engine, vmm_census_one, &c);
	*n = c.n;
	*named = c.named;
}

/* --- faults ---------------------------------------------------------------------- */

/* A failure, decided by the one table (migrate/phases.c) through the
 * engine (mig_fail) and carried out by the ops below: the only way a
 * failure is acted on.  A broken relay is none of them by itself:
 * libvirt's and QEMU's connections end as they please, and one that
 * breaks fails libvirt's call, which comes back as MIG_FAIL_LOCAL
 * (vmm_migrated). */
void
vmm_fail(struct vm_migration *m, enum mig_fail f, const char *why)
{
	enum mig_verdict	v = mig_phase_verdict(m->mig->role,
	    m->mig->phase, f);

	log_info("vmig %" PRIx64 " %s: %s while %s: %s (%s)", m->id, m->name,
	    mig_fail_names[f], mig_phase_names[m->mig->phase],
	    mig_verdict_names[v], why);
	mig_fail(m->mig, f, why);
}

void
vmm_timeout(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;
	char			*why;

	if (m->source && m->mig->phase == MIG_PH_DONE) {
		/* Post-copy finished: the VM is T's; only T's numbers were
		 * awaited. */
		vmm_source_done(m, 0);
		return;
	}
	if (m->source && m->mig->phase == MIG_PH_OFFERED)
		xasprintf(&why, "%s did not answer for %d ms", m->peer,
		    m->agent->ternd->conf->migration_timeout_ms);
	else if (m->source)
		xasprintf(&why, "%s did not say it took it in within %d ms",
		    m->peer, VMM_COMPLETE_WAIT_MS);
	else
		xasprintf(&why, "no word from %s for %d ms", m->peer,
		    m->agent->ternd->conf->migration_timeout_ms);
	vmm_fail(m, MIG_FAIL_TIMEOUT, why);
	free(why);
}

/* --- the driver -------------------------------------------------------------------- */

static void
vmm_drv_step(struct mig *mg, const Tern__MigrateStep *s)
{
	struct vm_migration	*m = mg->priv;

	if (m->source)
		vmm_source_step(m, s);
	else
		vmm_target_step(m, s);
}

/* The verdicts (migrate/phases.h) a VM's migration can get: ROLLBACK
 * and UNCERTAIN on the source, DISCARD on the target, SPLIT on a
 * source past QEMU's switch, AWAIT on a protected VM's source while
 * the coordinator's store is asked (RECORDING). */
static void
vmm_drv_rollback(struct mig *mg, enum mig_fail f, const char *why)
{
	vmm_source_rollback(mg->priv, f, why);
}

static void
vmm_drv_discard(struct mig *mg, enum mig_fail f, const char *why)
{
	vmm_target_discard(mg->priv, f, why);
}

static void
vmm_drv_await(struct mig *mg, enum mig_fail f, const char *why)
{
	/* RECORDING: the store's answer (or what it says when asked,
	 * migration_owner_move) decides; T's copy is paused meanwhile. */
	log_warnx("vmig %" PRIx64 " %s: %s while the coordinator's store is "
	    "asked: its answer decides (%s)", mg->id, mg->name,
	    mig_fail_names[f], why);
}

void
vm_migration_granted(struct mig *mg)
{
	struct vm_migration	*m = vmm_of(mg);

	if (m != NULL && !m->source)
		vmm_target_granted(m);
}

void
vm_migration_listed(struct mig *mg, uint64_t epoch)
{
	struct vm_migration	*m = vmm_of(mg);

	if (m != NULL && m->source)
		vmm_source_listed(m, epoch);
}

static void
vmm_drv_uncertain(struct mig *mg, enum mig_fail f, const char *why)
{
	vmm_source_uncertain(mg->priv, f, why);
}

static void
vmm_drv_split(struct mig *mg, enum mig_fail f, const char *why)
{
	struct vm_migration	*m = mg->priv;

	/* A VM's target never pages: libvirt's post-copy ends with its
	 * finish, COMMITTED here. */
	if (m->source)
		vmm_source_split(m, f, why);
}

static const char *
vmm_drv_state_name(struct mig *mg)
{
	return mg->priv != NULL ? vmm_phase_name(mg->priv) :
	    mig_phase_names[mg->phase];
}

static void
vmm_drv_release(struct mig *mg)
{
	struct vm_migration	*m = mg->priv;

	if (m == NULL)
		return;
	free(m->dir);
	free(m->qemu_path);
	free(m->policy_note);
	free(m->abort_reason);
	free(m->discard_why);
	free(m->return_why);
	free(m->back_why);
	free(m);
}

const struct mig_driver vmm_driver = {
	.kind = TERN__INSTANCE_KIND__KIND_VM,
	.name = "vm",
	.source_begin = vmm_source_begin,
	.target_begin = vmm_target_begin,
	.step = vmm_drv_step,
	.accept_stream = vmm_accept_stream,
	.rollback = vmm_drv_rollback,
	.discard = vmm_drv_discard,
	.await = vmm_drv_await,
	.uncertain = vmm_drv_uncertain,
	.split = vmm_drv_split,
	.state_name = vmm_drv_state_name,
	.release = vmm_drv_release,
};

void
vm_migration_register(struct agent *a)
{
	mig_engine_register(a->mig, &vmm_driver);
}

void
vm_migration_clean(struct agent *a)
{
	char	*dir, *cause = NULL;

	/* Sockets of migrations a previous ternd did not finish (QEMU does
	 * not remove the one it listened on). */
	xasprintf(&dir, "%s/vm-migrate", a->ternd->conf->run_dir);
	if (rm_rf(dir, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
	}
	free(dir);
}
