#include "config.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/vm-mig-internal.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/longjob.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* T: what taking the domain in needs: its definition, QEMU's numbers. */
static void
vmm_work_take_in(struct vmm_work *k)
{
	char	*cause = NULL;

	if ((k->xml = vm_xml(k->host, k->name, &k->cause)) == NULL) {
		k->rc = -1;
		return;
	}
	if (vm_job_stats(k->host, k->name, 1, &k->job, &cause) != 0) {
		log_debug("%s", cause);
		free(cause);
	}
}

static void
vmm_work_run(uv_work_t *w)
{
	struct vmm_work	*k = w->data;
	char		*cause = NULL;
	unsigned	 ms = 0;
	int		 i;

	switch (k->kind) {
	case VMMW_MEMORY:
		k->rc = vm_memory(k->host, k->name, &k->memory, &k->cause);
		break;
	case VMMW_MIGRATE:
		/* A test holds the job before libvirt's call until it is
		 * aborted, as a long migration holds it in libvirt's. */
		while (k->stall && !atomic_load(&k->m->job_aborted))
			usleep(20000);
		if (k->stall) {
			k->rc = -1;
			k->run = VM_RUNNING;
			k->cause = xstrdup("the job was aborted before libvirt's "
			    "call (fault point vmig.source.migrate)");
			break;
		}
		if (k->max_downtime_ms > 0 && vm_set_max_downtime(k->host,
		    k->name, k->max_downtime_ms, &cause) != 0) {
			log_warnx("%s", cause);
			free(cause);
		}
		k->rc = vm_migrate(k->host, k->name, &k->args, &k->cause);
		if (k->rc != 0 && vm_state(k->host, k->name, &k->run, NULL,
		    &cause) != 0) {
			k->run = VM_OTHER;
			free(cause);
		}
		break;
	case VMMW_RETURN:
		k->rc = vm_migrate(k->host, k->name, &k->args, &k->cause);
		break;
	case VMMW_STATS:
		k->rc = vm_job_stats(k->host, k->name, 0, &k->job, &k->cause);
		break;
	case VMMW_POSTCOPY:
		k->rc = vm_postcopy_start(k->host, k->name, &k->cause);
		break;
	case VMMW_ABORT:
		atomic_store(&k->m->job_aborted, 1);
		k->rc = vm_job_abort(k->host, k->name, &k->cause);
		break;
	case VMMW_CHECK:
		/* A test makes the check slow, as a busy libvirtd would. */
		if (fault_check("vmig.target.check", &ms) == FAULT_DELAY)
			usleep(ms * 1000u);
		if ((k->rc = vm_state(k->host, k->name, &k->run, NULL,
		    &k->cause)) != 0)
			break;
		if (k->run != VM_ABSENT) {
			set_cause(&k->cause, "libvirt there already has a "
			    "domain %s", k->name);
			k->rc = -1;
			break;
		}
		k->rc = mkdir_p(k->dir, 0700, &k->cause);
		break;
	case VMMW_ARRIVE:
		/* libvirt told S it is done; its finish here may still be
		 * resuming the domain. */
		for (i = 0; i < VMM_ARRIVE_WAIT_MS / 100; i++) {
			if ((k->rc = vm_state(k->host, k->name, &k->run, NULL,
			    &k->cause)) != 0 || k->run != VM_INCOMING)
				break;
			usleep(100000);
		}
		if (k->rc == 0 && k->run != VM_ABSENT)
			vmm_work_take_in(k);
		break;
	case VMMW_SETTLE:
		/* Still incoming: libvirt did not finish, and will not now. */
		if ((k->rc = vm_state(k->host, k->name, &k->run, NULL,
		    &k->cause)) == 0 && (k->run == VM_RUNNING ||
		    k->run == VM_POSTCOPY))
			vmm_work_take_in(k);
		break;
	case VMMW_CLEAN:
		/* Paused, not incoming: a protected VM that libvirt moved
		 * but the store did not; its only copy (vmm_source_refused). */
		if ((k->rc = vm_state(k->host, k->name, &k->run, NULL,
		    &k->cause)) != 0 || k->run == VM_ABSENT ||
		    k->run == VM_PAUSED)
			break;
		if ((k->rc = vm_destroy(k->host, k->name, &k->cause)) == 0)
			k->rc = vm_undefine(k->host, k->name, &k->cause);
		break;
	case VMMW_RESUME:
		k->rc = vm_resume(k->host, k->name, &k->cause);
		break;
	case VMMW_FENCE:
		k->rc = vm_destroy(k->host, k->name, &k->cause);
		break;
	case VMMW_BACK:
		k->rc = vm_state(k->host, k->name, &k->run, NULL, &k->cause);
		break;
	}
}

static void
vmm_work_free(struct vmm_work *k)
{
	free(k->name);
	free(k->dconnuri);
	free(k->uri);
	free(k->dir);
	free(k->cause);
	free(k->xml);
	free(k);
}

static void
vmm_work_done(uv_work_t *w, int status)
{
	struct vmm_work		*k = w->data;
	struct vm_migration	*m = k->m;
	struct mig		*mg = m->mig;

	if (m->closing)
		goto out;	/* gone meanwhile: only its hold is left */
	switch (k->kind) {
	case VMMW_MEMORY:
		if (m->mig->phase == MIG_PH_OFFERED)
			vmm_source_offer(m, k);
		break;
	case VMMW_MIGRATE:
		vmm_migrated(m, k);
		break;
	case VMMW_STATS:
		vmm_stats(m, k);
		break;
	case VMMW_POSTCOPY:
		/* Asked; QEMU's pause for the switch (an event) says it
		 * took it: a pre-copy that ends first stays pre-copy. */
		if (k->rc != 0) {
			vmm_note(m, k->cause);
			if (!m->switched)
				m->postcopy_asked = 0;
		}
		break;
	case VMMW_ABORT:
		if (k->rc != 0)
			log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name,
			    k->cause);
		break;
	case VMMW_CHECK:
		vmm_target_checked(m, k);
		break;
	case VMMW_ARRIVE:
	case VMMW_SETTLE:
		vmm_target_arrived(m, k);
		break;
	case VMMW_CLEAN:
		if (k->rc != 0)
			log_warnx("vmig %" PRIx64 " %s: cannot clean up: %s",
			    m->id, m->name, k->cause);
		else if (k->run == VM_PAUSED)
			log_warnx("vmig %" PRIx64 " %s: kept, paused: libvirt "
			    "moved it here, the move was not recorded (%s); it "
			    "is not resumed here", m->id, m->name,
			    m->discard_why != NULL ? m->discard_why :
			    "no reason given");
		else if (k->run != VM_ABSENT)
			log_info("vmig %" PRIx64 " %s: removed the half-arrived "
			    "domain", m->id, m->name);
		vmm_set_phase(m, MIG_PH_FAILED);
		vmm_free(m);
		break;
	case VMMW_RESUME:
		if (m->source)
			vmm_source_back(m, k);
		else
			vmm_target_resumed(m, k);
		break;
	case VMMW_RETURN:
		vmm_target_returned(m, k);
		break;
	case VMMW_FENCE:
		if (m->source)
			vmm_source_back_fenced(m, k);
		else
			vmm_target_fenced(m, k);
		break;
	case VMMW_BACK:
		vmm_source_back_checked(m, k);
		break;
	}
out:
	vmm_work_free(k);
	mig_drop(mg);	/* the last one frees m (vmm_drv_release) */
}

/* VMMW_MIGRATE, on a thread of its own (daemon/longjob.h). */
static void
vmm_longjob_run(struct longjob *j)
{
	struct vmm_work	*k = j->data;

	vmm_work_run(&k->w);
}

static void
vmm_longjob_done(struct longjob *j)
{
	struct vmm_work	*k = j->data;

	vmm_work_done(&k->w, 0);
}

void
vmm_work_queue(struct vm_migration *m, enum vmm_workkind kind)
{
	struct vmm_work	*k;
	char		*cause = NULL;

	k = xcalloc(1, sizeof *k);
	k->w.data = k;
	k->kind = kind;
	k->m = m;
	k->host = m->agent->vms;
	k->name = xstrdup(m->name);
	k->dir = xstrdup(m->dir);
	if (kind == VMMW_MIGRATE) {
		xasprintf(&k->dconnuri, "qemu+unix:///system?socket=%s",
		    m->lis[0].path);
		xasprintf(&k->uri, "unix://%s", m->lis[1].path);
		k->args.dconnuri = k->dconnuri;
		k->args.uri = k->uri;
		k->args.bandwidth = m->bandwidth;
		k->args.postcopy = m->policy.conf.allow_postcopy;
		k->args.auto_converge = m->auto_converge;
		k->args.ac_initial = VMM_AC_INITIAL;
		k->args.ac_increment = VMM_AC_INCREMENT;
		k->args.paused = m->store;
		k->max_downtime_ms = m->max_downtime_ms;
	}
	if (kind == VMMW_RETURN) {
		/* Back through T's own listeners (vmm_target_return): paused
		 * at S as it is here; pre-copy of a paused guest. */
		xasprintf(&k->dconnuri, "qemu+unix:///system?socket=%s",
		    m->lis[0].path);
		xasprintf(&k->uri, "unix://%s", m->lis[1].path);
		k->args.dconnuri = k->dconnuri;
		k->args.uri = k->uri;
		k->args.paused = 1;
	}
	if (kind == VMMW_STATS)
		m->stats_busy = 1;
	if (kind == VMMW_MIGRATE || kind == VMMW_RETURN) {
		/* It lasts as long as the migration: never on the pool that
		 * the job's stats, the switch and the abort queue for. */
		k->stall = kind == VMMW_MIGRATE &&
		    fault_hit("vmig.source.migrate") == FAULT_STALL;
		k->lj.work = vmm_longjob_run;
		k->lj.done = vmm_longjob_done;
		k->lj.data = k;
		if (longjobs_start(m->agent->longjobs, &k->lj, &cause) != 0) {
			if (kind == VMMW_RETURN) {
				k->rc = -1;
				k->cause = cause;
				vmm_target_returned(m, k);
				vmm_work_free(k);
				return;
			}
			vmm_work_free(k);
			vmm_fail(m, MIG_FAIL_LOCAL, cause);
			free(cause);
			return;
		}
		mig_hold(m->mig);
		m->job_running = kind == VMMW_MIGRATE;
		return;
	}
	mig_hold(m->mig);
	uv_queue_work(m->agent->ternd->loop, &k->w, vmm_work_run, vmm_work_done);
}
