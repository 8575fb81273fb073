#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "migrate"
#include "agent/ha.h"
#include "agent/ha-instances.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/vm-instances.h"
#include "agent/vm-mig-internal.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

static void	vmm_target_clean(struct vm_migration *, const char *);

/* Held paused (m->tin set): each keeps the instance table busy, so that
 * ternd's shutdown asks it to let go (vm_migration_unhold) instead of
 * freeing m->tin under its grant timer. */
static struct vm_migration	*vmm_held;

static struct vm_migration *
vmm_held_find(const char *name)
{
	struct vm_migration	*m;

	for (m = vmm_held; m != NULL; m = m->held_next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

/* Out of the list; set's hold goes last (it may finish the table's close
 * and free it). */
static void
vmm_held_end(struct vm_migration *m, struct instances *set)
{
	struct vm_migration	**pp;

	for (pp = &vmm_held; *pp != NULL; pp = &(*pp)->held_next)
		if (*pp == m) {
			*pp = m->held_next;
			break;
		}
	m->held_next = NULL;
	instances_op_done(set);
}

void
vmm_target_checked(struct vm_migration *m, struct vmm_work *k)
{
	if (m->discard_why != NULL || m->mig->phase != MIG_PH_OFFERED) {
		/* Given up while libvirt was asked: nothing of ours exists
		 * (whatever has that name there is someone else's), and it
		 * must not become READY again. */
		log_info("vmig %" PRIx64 " %s: discarded before it was ready: "
		    "%s", m->id, m->name, m->discard_why != NULL ?
		    m->discard_why : mig_phase_names[m->mig->phase]);
		if (m->mig->phase == MIG_PH_OFFERED)
			vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		return;
	}
	if (k->rc != 0) {
		log_warnx("vmig %" PRIx64 " %s: refused: %s", m->id, m->name,
		    k->cause);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, k->cause, 0,
		    0);
		vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		return;
	}
	vmm_set_phase(m, MIG_PH_READY);
	if (vmm_send_step(m, TERN__MIGRATE_STEP__STEP__READY, NULL, 0, 0) != 0)
		vmm_fail(m, MIG_FAIL_LINK, "the source went away");
}

/* --- a protected VM: paused here until the grant lists it ---------------- */

/* 1 once this host's grant lists it at the store's epoch and its lease is
 * valid (ha_owned sets the epoch from the grant, never from COMMIT: the
 * store's word reaches us only through the grant). */
static int
vmm_target_may_resume(struct vm_migration *m)
{
	struct agent	*a = m->agent;

	return a->ha != NULL && m->tin != NULL &&
	    m->tin->epoch >= m->owner_epoch &&
	    ha_agent_may_run(a->ha, m->tin->epoch);
}

static void
vmm_target_resume(struct vm_migration *m)
{
	uv_timer_stop(&m->tick);
	m->resuming = 1;
	vmm_work_queue(m, VMMW_RESUME);
}

/* No grant listed it in two lease lives: as a container's held copy, it
 * is fenced (its paused QEMU destroyed, never resumed); the definition
 * stays, and a later grant that lists it starts it as any fenced one. */
static void
vmm_target_grant_due(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;

	if (m->resuming || m->tin == NULL)
		return;
	free(m->discard_why);
	xasprintf(&m->discard_why, "no lease grant from coordinator %s "
	    "listed it at epoch %" PRIu64 " within %" PRIu64 " ms: its "
	    "paused copy here is fenced, not resumed",
	    ha_instances_coord_now(m->agent), m->owner_epoch,
	    migration_grant_wait_ms(m->agent));
	log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, m->discard_why);
	m->resuming = 1;
	vmm_work_queue(m, VMMW_FENCE);
}

void
vmm_target_granted(struct vm_migration *m)
{
	if (m->resuming || m->tin == NULL || !vmm_target_may_resume(m))
		return;
	log_info("vmig %" PRIx64 " %s: the coordinator's grant lists it at "
	    "epoch %" PRIu64 "; resuming", m->id, m->name, m->tin->epoch);
	vmm_target_resume(m);
}

/* Arrived paused at COMMIT (the store moved it here at m->owner_epoch):
 * registered, incoming, until the grant says it may run. */
static void
vmm_target_hold(struct vm_migration *m, struct instance *in,
    struct vmm_work *k)
{
	m->tin = in;
	in->set->busy++;
	m->held_next = vmm_held;
	vmm_held = m;
	m->downtime_ms = k->job.downtime_ms;
	m->bytes = k->job.data_processed;
	/* Incoming: ha_owned hands us the grant's epoch, libvirt's events
	 * are ours to decide. */
	in->state = INST_INCOMING;
	in->ha = m->ha;
	in->want_running = 1;
	instance_persist(in);
	log_info("vmig %" PRIx64 " %s: arrived paused from %s, committed at "
	    "epoch %" PRIu64 "; waiting for the coordinator's grant to list "
	    "it", m->id, m->name, m->peer, m->owner_epoch);
	if (vmm_target_may_resume(m)) {
		vmm_target_resume(m);
		return;
	}
	uv_timer_stop(&m->tick);
	uv_timer_start(&m->tick, vmm_target_grant_due,
	    migration_grant_wait_ms(m->agent), 0);
}

void
vmm_target_resumed(struct vm_migration *m, struct vmm_work *k)
{
	struct instance	*in = m->tin;
	char		*why = NULL;

	m->tin = NULL;
	if (k->rc != 0) {
		xasprintf(&why, "it arrived paused on %s and the coordinator "
		    "moved it here, but it could not be resumed: %s (ternctl "
		    "start %s)", m->agent->ternd->conf->host_name, k->cause,
		    m->name);
		log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, why);
		instance_set_error(in, why);
		instance_set_state(in, INST_STOPPED, "not resumed");
	} else {
		log_info("vmig %" PRIx64 " %s: arrived from %s and resumed at "
		    "epoch %" PRIu64 ", QEMU's downtime %" PRIu64 " ms", m->id,
		    m->name, m->peer, in->epoch, m->downtime_ms);
		instance_set_state(in, INST_RUNNING, "migrated in");
	}
	instance_persist(in);
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, why,
	    m->downtime_ms, m->bytes);
	free(why);
	vmm_set_phase(m, MIG_PH_DONE);
	vmm_free(m);
	vmm_held_end(m, in->set);
}

void
vmm_target_fenced(struct vm_migration *m, struct vmm_work *k)
{
	struct instance	*in = m->tin;

	m->tin = NULL;
	if (k->rc != 0)
		log_warnx("vmig %" PRIx64 " %s: cannot destroy its paused "
		    "copy: %s", m->id, m->name, k->cause);
	instance_set_error(in, m->discard_why);
	instance_set_state(in, INST_STOPPED, "fenced");
	instance_persist(in);
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, m->discard_why,
	    m->downtime_ms, m->bytes);
	vmm_set_phase(m, MIG_PH_DONE);
	vmm_free(m);
	vmm_held_end(m, in->set);
}

int
vm_migration_held(const char *name)
{
	struct vm_migration	*m = vmm_held_find(name);

	/* A resume or fence on the pool settles it soon: waited for. */
	return m != NULL && !m->resuming;
}

/* ternd stops (or the instance is destroyed) while the grant is awaited:
 * the migration ends without touching the instance; libvirt keeps the
 * paused domain, the record stays incoming on disk (docs/ha.md). */
void
vm_migration_unhold(const char *name, const char *why)
{
	struct vm_migration	*m = vmm_held_find(name);
	struct instance		*in;

	if (m == NULL || m->resuming)
		return;
	in = m->tin;
	m->tin = NULL;
	uv_timer_stop(&m->tick);
	log_info("vmig %" PRIx64 " %s: %s while it waits for the grant; its "
	    "paused copy stays in libvirt", m->id, m->name, why);
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, why,
	    m->downtime_ms, m->bytes);
	vmm_set_phase(m, MIG_PH_DONE);
	vmm_free(m);
	vmm_held_end(m, in->set);
}

/* The domain runs here (COMMIT), or S vanished and libvirt may have
 * finished anyway (SETTLE). */
void
vmm_target_arrived(struct vm_migration *m, struct vmm_work *k)
{
	struct instances	*set = m->agent->instances;
	struct instance		*in;
	char			*cause = NULL;
	int			 commit = k->kind == VMMW_ARRIVE;

	if (commit && (k->rc != 0 || k->run == VM_ABSENT)) {
		/* libvirt says it moved: never touch what libvirt has here. */
		xasprintf(&cause, "libvirt moved it, but here %s",
		    k->rc != 0 ? k->cause : "there is no such domain");
		log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, cause);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause, 0, 0);
		free(cause);
		vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		return;
	}
	if (!commit) {
		m->settling = 0;
		if (k->rc != 0 || (k->run != VM_RUNNING &&
		    k->run != VM_POSTCOPY)) {
			vmm_target_clean(m, m->discard_why);
			return;
		}
		/* libvirt's finish ran here: the commit came first. */
		log_info("vmig %" PRIx64 " %s: kept: it runs here (%s)", m->id,
		    m->name, m->discard_why);
		vmm_set_phase(m, MIG_PH_COMMITTED);
	}
	if (set == NULL || instance_find(set, m->name) != NULL) {
		log_warnx("vmig %" PRIx64 " %s: arrived but cannot be "
		    "registered here (instance table %s)", m->id, m->name,
		    set == NULL ? "closed" : "has that name");
		vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		return;
	}
	if ((in = vm_instance_arrived(set, m->name, k->xml, &cause)) == NULL) {
		log_warnx("vmig %" PRIx64 " %s: runs here, but %s", m->id,
		    m->name, cause);
		free(cause);
		cause = NULL;
	} else if (!commit)
		instance_set_error(in, k->run == VM_POSTCOPY ? "arrived by "
		    "post-copy, then the source was lost: its memory may be "
		    "split" : "arrived; the source was lost at the end");
	else if (k->run == VM_SHUTOFF) {
		/* Defined here, not running: the guest stopped (or died) as
		 * it arrived.  Keep it, say so; the operator decides. */
		xasprintf(&cause, "it arrived on %s but is shut off there (the "
		    "guest stopped or crashed right after the migration: see "
		    "its log; ternctl start %s)", m->agent->ternd->conf->host_name,
		    m->name);
		instance_set_error(in, cause);
		instance_set_state(in, INST_STOPPED, "arrived shut off");
	} else if (k->run != VM_RUNNING)
		instance_set_error(in, k->run == VM_POSTCOPY ? "post-copy "
		    "did not finish cleanly (libvirt: post-copy)" : "arrived "
		    "paused");
	if (commit && in != NULL && m->owner_epoch != 0 &&
	    k->run == VM_PAUSED) {
		vmm_target_hold(m, in, k);
		return;
	}
	log_info("vmig %" PRIx64 " %s: arrived from %s, QEMU's downtime %"
	    PRIu64 " ms%s%s", m->id, m->name, m->peer, k->job.downtime_ms,
	    cause != NULL ? "; " : "", cause != NULL ? cause : "");
	if (commit)
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, cause,
		    k->job.downtime_ms, k->job.data_processed);
	free(cause);
	vmm_set_phase(m, in != NULL ? MIG_PH_DONE : MIG_PH_FAILED);
	vmm_free(m);
}

/* DISCARD, the table's verdict for a target before the commit: drop what
 * arrived.  While its name is checked (OFFERED) the check's answer ends
 * it (vmm_target_checked); nothing to clean, the domain of that name, if
 * there is one, is not ours.
 *
 * READY straddles libvirt's commit: the source's libvirt may have
 * finished (its Finish ran here, the domain runs) before anything told
 * us.  So a discard first asks libvirt (VMMW_SETTLE) and keeps a domain
 * that runs here (vmm_target_arrived); only one still incoming, or none,
 * is cleaned away.  Except after the source's ABORT: it says the source
 * resumed its copy, so one running here would be a second: clean. */
void
vmm_target_discard(struct vm_migration *m, enum mig_fail f, const char *why)
{
	if (m->discard_why == NULL)
		m->discard_why = xstrdup(why);
	if (m->mig->phase != MIG_PH_READY || m->settling)
		return;
	vmm_drop_chans(m);
	if (f == MIG_FAIL_PEER_ABORT) {
		vmm_target_clean(m, why);
		return;
	}
	m->settling = 1;
	vmm_arm(m);
	vmm_work_queue(m, VMMW_SETTLE);
}

static void
vmm_target_clean(struct vm_migration *m, const char *why)
{
	if (m->mig->phase == MIG_PH_ROLLING_BACK)
		return;
	log_info("vmig %" PRIx64 " %s: discarded: %s", m->id, m->name, why);
	vmm_drop_chans(m);
	vmm_set_phase(m, MIG_PH_ROLLING_BACK);
	vmm_work_queue(m, VMMW_CLEAN);
}

/* The store refused a protected VM's move after libvirt left it here,
 * paused: send it back, paused, through relays of our own (the source
 * accepts "rlibvirt" and "rqemu" streams while it waits for it). */
static void
vmm_target_return(struct vm_migration *m, const char *why)
{
	char	*cause = NULL;

	log_info("vmig %" PRIx64 " %s: the source asks for it back (%s)",
	    m->id, m->name, why != NULL ? why : "no reason given");
	vmm_drop_chans(m);
	m->returning = 1;
	vmm_set_phase(m, MIG_PH_ROLLING_BACK);
	if (vmm_listen(m, &m->lis[0], "rlibvirt", &cause) != 0 ||
	    vmm_listen(m, &m->lis[1], "rqemu", &cause) != 0) {
		log_warnx("vmig %" PRIx64 " %s: cannot send it back: %s", m->id,
		    m->name, cause);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, cause, 0, 0);
		free(cause);
		vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		return;
	}
	vmm_work_queue(m, VMMW_RETURN);
}

void
vmm_target_returned(struct vm_migration *m, struct vmm_work *k)
{
	vmm_drop_chans(m);
	vmm_close_listener(&m->lis[0]);
	vmm_close_listener(&m->lis[1]);
	if (k->rc != 0) {
		/* libvirt rolled it back: paused here still, never resumed. */
		log_warnx("vmig %" PRIx64 " %s: could not send it back: %s; it "
		    "stays paused here", m->id, m->name, k->cause);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, k->cause, 0,
		    0);
	} else if (fault_hit("vmig.target.returned") == FAULT_FAIL) {
		/* Fault point vmig.target.returned (fail): S never hears
		 * that it is back, as when the link loses the word. */
		log_info("vmig %" PRIx64 " %s: sent back to %s, paused; its "
		    "COMPLETE is not sent", m->id, m->name, m->peer);
	} else {
		log_info("vmig %" PRIx64 " %s: sent back to %s, paused", m->id,
		    m->name, m->peer);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, NULL, 0,
		    0);
	}
	vmm_set_phase(m, MIG_PH_FAILED);
	vmm_free(m);
}

/* The engine's target_begin: an offer of kind "vm".  -1 with *cause:
 * the engine answers ABORT; nothing was made. */
int
vmm_target_begin(struct mig *mg, const Tern__MigrateOffer *o, char **cause)
{
	struct agent		*a = vmm_agent(mg->engine);
	struct vm_migration	*m;
	char			*dir;
	unsigned		 incoming;
	int			 named;

	vmm_census(mg, MIG_ROLE_TARGET, &incoming, &named);
	xasprintf(&dir, "%s/vm-migrate", a->ternd->conf->run_dir);
	if (incoming >= (unsigned)a->ternd->conf->max_incoming_vm_migrations)
		/* Each holds libvirtd connections and a QEMU. */
		xasprintf(cause, "%s takes %d incoming VM migrations at a time "
		    "(max_incoming_vm_migrations); try again when one is done",
		    a->ternd->conf->host_name, a->ternd->conf->max_incoming_vm_migrations);
	else if (a->vms == NULL || !vm_host_up(a->vms))
		xasprintf(cause, "no libvirt on %s (%s)", a->ternd->conf->host_name,
		    a->vms == NULL ? "libvirt_uri is empty" : "libvirtd does "
		    "not answer");
	else if (a->instances == NULL)
		xasprintf(cause, "%s is not open for instances yet",
		    a->ternd->conf->host_name);
	else if (o->name == NULL || !host_name_valid(o->name))
		xasprintf(cause, "bad instance name");
	else if (instance_find(a->instances, o->name) != NULL)
		xasprintf(cause, "%s already has an instance %s",
		    a->ternd->conf->host_name, o->name);
	else if (o->spec_dir == NULL || strcmp(o->spec_dir, dir) != 0)
		/* QEMU takes one socket path for both ends. */
		xasprintf(cause, "the migration sockets are in %s here, %s "
		    "there: give both hosts the same run_dir", dir,
		    o->spec_dir != NULL ? o->spec_dir : "not given");
	else if (named)
		xasprintf(cause, "%s is already migrating", o->name);
	free(dir);
	if (*cause != NULL)
		return -1;
	m = vmm_new(mg);
	log_info("vmig %" PRIx64 " %s: offered by %s", m->id, m->name,
	    m->peer);
	vmm_work_queue(m, VMMW_CHECK);
	return 0;
}

void
vmm_target_step(struct vm_migration *m, const Tern__MigrateStep *s)
{
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__COMMIT:
		if (m->mig->phase != MIG_PH_READY || m->settling)
			break;
		vmm_drop_chans(m);
		if (s->has_epoch) {
			/* Protected: the store made us its owner. */
			m->owner_epoch = s->epoch;
			m->ha = s->has_ha && s->ha != TERN__HA_POLICY__HA_NONE ?
			    (int)s->ha : TERN__HA_POLICY__HA_RESTART;
		}
		vmm_set_phase(m, MIG_PH_COMMITTED);
		vmm_work_queue(m, VMMW_ARRIVE);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		vmm_fail(m, MIG_FAIL_PEER_ABORT, s->error != NULL ? s->error :
		    "aborted by the source");
		break;
	case TERN__MIGRATE_STEP__STEP__RETURN:
		if (m->mig->phase == MIG_PH_READY && !m->settling)
			vmm_target_return(m, s->error);
		break;
	default:
		break;
	}
}
