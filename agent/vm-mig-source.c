#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "migrate"
#include "agent/ha.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "agent/vm-mig-internal.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/vm-policy.h"

static void
vmm_progress(struct vm_migration *m)
{
	Envelope		 env;
	Tern__MigrateProgress	 p = TERN__MIGRATE_PROGRESS__INIT;
	const struct vm_job	*j = &m->job;

	p.name = (char *)m->name;
	p.phase = (char *)vmm_phase_name(m);
	p.elapsed_ms = now_ms() - m->mig->start_ms;
	p.has_mode = 1;
	p.mode = m->switched ? TERN__MIGRATION_MODE__MODE_POSTCOPY :
	    TERN__MIGRATION_MODE__MODE_PRECOPY;
	/* Past the transfer the last reading is old (QEMU's numbers end
	 * with its job, before libvirt's call returns): none, rather than
	 * a count that stopped early; the reply has what arrived. */
	if (j->active && (m->mig->phase == MIG_PH_TRANSFER ||
	    m->mig->phase == MIG_PH_PAGING)) {
		p.has_bytes = p.has_remaining = p.has_round = 1;
		p.bytes = j->data_processed;
		p.remaining = j->data_remaining;
		/* The readings lag (libvirt answers slowly while QEMU is
		 * busy); its pass events do not. */
		p.round = j->iteration > m->passes ? j->iteration : m->passes;
		p.has_dirty_rate = 1;
		p.dirty_rate = j->dirty_rate * (j->page_size > 0 ?
		    j->page_size : 4096);
		p.has_expected_downtime_ms = j->downtime_ms > 0;
		p.expected_downtime_ms = j->downtime_ms;
		p.has_throttle = j->throttle > 0;
		p.throttle = (uint32_t)j->throttle;
	}
	p.has_bandwidth = m->bandwidth > 0;
	p.bandwidth = m->bandwidth;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_PROGRESS;
	env.migrate_progress = &p;
	mig_progress(m->mig, &env);
}

static void
vmm_tick(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;

	if (m->mig->phase == MIG_PH_TRANSFER || m->mig->phase == MIG_PH_PAGING) {
		if (!m->stats_busy)
			vmm_work_queue(m, VMMW_STATS);
	} else
		vmm_progress(m);
}

void
vmm_note(struct vm_migration *m, const char *text)
{
	char	*old = m->policy_note;

	if (old == NULL)
		m->policy_note = xstrdup(text);
	else {
		xasprintf(&m->policy_note, "%s; %s", old, text);
		free(old);
	}
	log_info("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
}

/* A reading of the job: tell the operator, let the policy decide. */
void
vmm_stats(struct vm_migration *m, struct vmm_work *k)
{
	struct vm_policy_sample	 s;
	char			 why[256], text[300];

	m->stats_busy = 0;
	/* An ending job (aborted, completing) reads all zeros. */
	if (k->rc != 0 || !k->job.active || k->job.data_total == 0 ||
	    (m->mig->phase != MIG_PH_TRANSFER && m->mig->phase != MIG_PH_PAGING))
		return;
	m->job = k->job;
	if (k->job.throttle > m->throttle_max) {
		if (m->throttle_max == 0) {
			snprintf(text, sizeof text, "auto-converge: QEMU "
			    "throttles the guest's CPUs (%d%%)", k->job.throttle);
			vmm_note(m, text);
		}
		m->throttle_max = k->job.throttle;
	}
	vmm_progress(m);
	s.now_ms = now_ms() - m->mig->start_ms;
	s.remaining = k->job.data_remaining;
	s.iteration = k->job.iteration > m->passes ? k->job.iteration :
	    m->passes;
	s.throttle = k->job.throttle;
	switch (vm_policy_step(&m->policy, &s, why, sizeof why)) {
	case VM_POLICY_WAIT:
		break;
	case VM_POLICY_POSTCOPY:
		vmm_note(m, why);
		vm_policy_postcopy(&m->policy);
		m->postcopy_asked = 1;
		vmm_work_queue(m, VMMW_POSTCOPY);
		break;
	case VM_POLICY_ABORT:
		/* Its deadline, or no progress: the table's timeout. */
		vmm_note(m, why);
		vmm_fail(m, MIG_FAIL_TIMEOUT, why);
		break;
	}
}

static void
vmm_answer_error(struct vm_migration *m, int code, const char *text)
{
	uv_timer_stop(&m->tick);
	mig_answer(m->mig, NULL, code, text);
}

static void	vmm_source_fail(struct vm_migration *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Failed before libvirt took over, or libvirt rolled back: the VM is
 * still ours. */
static void
vmm_source_fail(struct vm_migration *m, const char *fmt, ...)
{
	va_list	 ap;
	char	*why, *text;

	va_start(ap, fmt);
	xvasprintf(&why, fmt, ap);
	va_end(ap);
	log_warnx("vmig %" PRIx64 " %s: failed: %s", m->id, m->name, why);
	vmm_set_phase(m, MIG_PH_ROLLING_BACK);
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why, 0, 0);
	if (m->in != NULL) {
		instance_set_error(m->in, why);
		instance_set_state(m->in, INST_RUNNING, "migration rolled back");
	}
	vmm_set_phase(m, MIG_PH_FAILED);
	xasprintf(&text, "migration of %s to %s failed: %s; it keeps running "
	    "on %s", m->name, m->peer, why, m->agent->ternd->conf->host_name);
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	free(why);
	vmm_free(m);
}

void
vmm_source_done(struct vm_migration *m, int have_numbers)
{
	Envelope		 env;
	Tern__MigrateReply	 r = TERN__MIGRATE_REPLY__INIT;
	uint64_t		 total = now_ms() - m->mig->start_ms;
	const char		*unknown = "";

	/* Post-copy: the target keeps no completed job, so its figure is 0;
	 * QEMU's here (source stopped until the target was told to run) is
	 * the switch-over's pause.  Pre-copy: the target's, the same figure
	 * brought over by libvirt. */
	if (m->switched) {
		if (m->qemu_downtime_ms >= 0)
			m->downtime_ms = (uint64_t)m->qemu_downtime_ms;
		else
			unknown = " (unknown: libvirt gave no completed job)";
	} else if (!have_numbers)
		unknown = " (unknown: no word from the target)";
	log_info("vmig %" PRIx64 " %s: moved to %s (%s) in %" PRIu64 " ms, "
	    "downtime %" PRIu64 " ms%s", m->id, m->name, m->peer,
	    m->switched ? "post-copy" : "pre-copy", total, m->downtime_ms,
	    unknown);
	if (m->mig->phase != MIG_PH_DONE)
		vmm_set_phase(m, MIG_PH_DONE);
	if (m->in != NULL) {
		struct instance		*in = m->in;
		struct instances	*set = in->set;

		/* Its domain left with its definition: nothing to keep. */
		m->in = NULL;
		instance_destroy(in);
		instances_op_done(set);
	}
	uv_timer_stop(&m->tick);
	if (!m->mig->answered) {
		r.name = (char *)m->name;
		r.to = (char *)m->peer;
		r.mode = m->switched ? TERN__MIGRATION_MODE__MODE_POSTCOPY :
		    TERN__MIGRATION_MODE__MODE_PRECOPY;
		r.total_ms = total;
		r.frozen_ms = m->downtime_ms;
		r.bytes = m->bytes != 0 ? m->bytes : m->job.data_processed;
		r.policy = m->policy_note;
		r.has_bandwidth = m->bandwidth > 0;
		r.bandwidth = m->bandwidth;
		msg_init(&env, 0);
		env.body_case = TERN__ENVELOPE__BODY_MIGRATE_REPLY;
		env.migrate_reply = &r;
		mig_answer(m->mig, &env, 0, NULL);
	}
	vmm_free(m);
}

/* The table's verdicts, carried out for a VM's source. */

/* ROLLBACK: the VM is still ours.  libvirt's job straddles the commit
 * point, so while its call runs a rollback is only asked for: libvirt
 * aborts its job (a lost link's relays are dropped, so QEMU and libvirt
 * see EOF) and its call's failure completes the rollback (vmm_migrated);
 * if the call succeeds instead, libvirt committed first and the VM is
 * the target's (COMMITTED), whatever we asked. */
void
vmm_source_rollback(struct vm_migration *m, enum mig_fail f, const char *why)
{
	if (!m->job_running) {
		vmm_source_fail(m, "%s", why);
		return;
	}
	free(m->abort_reason);
	m->abort_reason = xstrdup(why);
	if (f == MIG_FAIL_LINK || f == MIG_FAIL_SHUTDOWN)
		vmm_drop_chans(m);
	vmm_work_queue(m, VMMW_ABORT);
}

/* UNCERTAIN: libvirt finished (the domain left with its definition),
 * T's word on it did not come.  Nothing of ours is left to run or keep:
 * report the move, with the numbers T did not send unknown. */
void
vmm_source_uncertain(struct vm_migration *m, enum mig_fail f, const char *why)
{
	if (f == MIG_FAIL_PEER_ABORT)
		log_warnx("vmig %" PRIx64 " %s: %s could not take it in after "
		    "libvirt moved it: %s", m->id, m->name, m->peer, why);
	vmm_source_done(m, 0);
}

/* SPLIT: past QEMU's switch only T can run it.  While libvirt's call
 * runs, drop the relays (QEMU and libvirt see the end) and let its
 * failure say it; once it failed, say it. */
void
vmm_source_split(struct vm_migration *m, enum mig_fail f, const char *why)
{
	char	*text;

	(void)f;
	if (m->job_running) {
		vmm_note(m, why);
		vmm_drop_chans(m);
		return;
	}
	xasprintf(&text, "post-copy of %s to %s broke after the switch: "
	    "%s; its memory is split between the hosts and libvirt "
	    "keeps it paused (post-copy failed) on %s: recover it "
	    "there with `virsh migrate --postcopy-resume` when the "
	    "link is back, or restore its last checkpoint", m->name,
	    m->peer, why, m->peer);
	log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
	vmm_set_phase(m, MIG_PH_FAILED);
	if (m->in != NULL) {
		instance_set_error(m->in, text);
		instance_set_state(m->in, INST_STOPPED, "post-copy broke");
	}
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	vmm_free(m);
}

/* A protected VM's commit point passed (the store recorded the move, or
 * its answer could not be learned before our lease ended: then T's grant,
 * which lists it only if the store did record it, decides).  Ours is
 * gone either way (libvirt's job ended): COMMIT carries the new epoch. */
static void
vmm_source_send_commit(struct vm_migration *m)
{
	vmm_arm(m);	/* T's COMPLETE from here */
	if (vmm_send_commit(m, m->commit_epoch, m->in->ha) != 0)
		vmm_fail(m, MIG_FAIL_LINK, "could not tell the target the "
		    "coordinator's store moved it");
}

static void
vmm_source_commit_due(uv_timer_t *t)
{
	vmm_source_send_commit(t->data);
}

static void
vmm_source_commit(struct vm_migration *m, uint64_t epoch)
{
	unsigned	ms = 0;

	vmm_set_phase(m, MIG_PH_COMMITTED);
	m->commit_epoch = epoch;
	/* Fault point vmig.source.commit (delay=MS): COMMIT goes late, so
	 * that T's grant listing it comes first (as when the store's answer
	 * reaches us late). */
	if (fault_check("vmig.source.commit", &ms) == FAULT_DELAY) {
		uv_timer_start(&m->timer, vmm_source_commit_due, ms, 0);
		return;
	}
	vmm_source_send_commit(m);
}

/* The store did not record the move and the copy could not come back:
 * libvirt ended its job, our QEMU is gone, and the only copy is T's,
 * paused, which never ran.  It must not run anywhere the store does not
 * name: T keeps it paused (no ABORT destroys a paused arrival) and the
 * operator decides. */
static void
vmm_source_stranded(struct vm_migration *m, const char *back)
{
	const char	*self = m->agent->ternd->conf->host_name;
	char		*text;

	uv_timer_stop(&m->timer);
	xasprintf(&text, "migration of %s to %s failed: %s; libvirt had "
	    "already moved it and it could not come back (%s), so its only "
	    "copy is paused on %s (it never ran there) and it runs nowhere; "
	    "the coordinator still names %s its owner at epoch %" PRIu64
	    ". Nothing resumes it by itself: forget it here (ternctl destroy "
	    "%s on %s), resume it on %s (virsh resume %s) and protect it "
	    "again", m->name, m->peer, m->return_why, back, m->peer, self,
	    m->in->epoch, m->name, self, m->peer, m->name);
	log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, text, 0, 0);
	/* Our record stays, stopped, so that no grant starts a second. */
	m->in->want_running = 0;
	instance_set_error(m->in, text);
	instance_set_state(m->in, INST_STOPPED, "its move was not recorded");
	instance_persist(m->in);
	vmm_set_phase(m, MIG_PH_FAILED);
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	vmm_free(m);
}

/* T's word on the way back did not come in time.  Its COMPLETE may be
 * what was lost, not the VM: libvirt here says whether the paused copy
 * arrived (vmm_source_back_checked) before the operator is told to
 * forget a copy that is in fact here. */
static void
vmm_source_return_due(uv_timer_t *t)
{
	vmm_work_queue(t->data, VMMW_BACK);
}

/* The store did not record the move: roll back.  The VM's only state
 * is T's paused copy: T migrates it back (paused again, through its own
 * relays, vmm_target_return) and we resume it at our epoch. */
static void
vmm_source_refused(struct vm_migration *m, const char *why)
{
	log_warnx("vmig %" PRIx64 " %s: %s; asking %s to send its paused "
	    "copy back", m->id, m->name, why, m->peer);
	m->return_why = xstrdup(why);
	vmm_set_phase(m, MIG_PH_ROLLING_BACK);
	/* Where T's QEMU reaches our incoming QEMU (its "rqemu" relay). */
	free(m->qemu_path);
	xasprintf(&m->qemu_path, "%s/%" PRIx64 ".rqemu", m->dir, m->id);
	m->returning = 1;
	if (vmm_send_step(m, TERN__MIGRATE_STEP__STEP__RETURN, why, 0,
	    0) != 0) {
		vmm_source_stranded(m, "the target is unreachable");
		return;
	}
	uv_timer_start(&m->timer, vmm_source_return_due,
	    m->policy.conf.deadline_ms + VMM_COMPLETE_WAIT_MS, 0);
}

/* Back here, paused: ours again at our epoch, if our lease still is. */
void
vmm_source_back(struct vm_migration *m, struct vmm_work *k)
{
	struct agent	*a = m->agent;
	char		*text, *back;

	if (k->rc != 0) {
		xasprintf(&back, "it came back paused but could not be "
		    "resumed: %s", k->cause);
		vmm_source_stranded(m, back);
		free(back);
		return;
	}
	xasprintf(&text, "migration of %s to %s failed: %s; rolled back: "
	    "%s sent its paused copy back and it runs on %s again", m->name,
	    m->peer, m->return_why, m->peer, a->ternd->conf->host_name);
	log_info("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
	instance_set_error(m->in, text);
	instance_set_state(m->in, INST_RUNNING, "migration rolled back");
	vmm_set_phase(m, MIG_PH_FAILED);
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	vmm_free(m);
}

/* Back here, but it may not resume (m->back_why): fenced (VMMW_FENCE). */
void
vmm_source_back_fenced(struct vm_migration *m, struct vmm_work *k)
{
	char	*text;

	xasprintf(&text, "migration of %s to %s failed: %s; %s sent its "
	    "paused copy back, but %s: fenced here (%s), never resumed; the "
	    "coordinator's next grant starts it again", m->name, m->peer,
	    m->return_why, m->peer, m->back_why, k->rc == 0 ? "its paused "
	    "QEMU destroyed" : k->cause);
	log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
	instance_set_error(m->in, text);
	instance_set_state(m->in, INST_STOPPED, "fenced");
	instance_persist(m->in);
	vmm_set_phase(m, MIG_PH_FAILED);
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	vmm_free(m);
}

static void	vmm_source_came_back(struct vm_migration *);

static void
vmm_source_back_due(uv_timer_t *t)
{
	vmm_source_came_back(t->data);
}

/* What its copy, back here, does now (held_copy_verdict): resumed at
 * our epoch, or paused until m->held.until for a grant that lists it, or
 * fenced (*why).  The instance's epoch is what this host's grants last
 * listed it at (ha_owned writes it into m->in). */
static enum held_verdict
vmm_source_back_verdict(const struct vm_migration *m, uint64_t now,
    char **why)
{
	struct ha_agent		*ha = m->agent->ha;
	enum held_verdict	 v;

	if (ha == NULL) {	/* stopping: no lease from here on */
		*why = xstrdup("ternd is stopping");
		return HELD_FENCE_NO_LEASE;
	}
	v = held_copy_verdict(&m->held, m->in->epoch, ha_agent_valid(ha),
	    ha_agent_lapses(ha), now);
	switch (v) {
	case HELD_RESUME:
	case HELD_WAIT:
		break;
	case HELD_FENCE_EPOCH:
		xasprintf(why, "a grant lists it here at epoch %" PRIu64 ", "
		    "not %" PRIu64 " as the move began (a failover since)",
		    m->in->epoch, m->held.epoch);
		break;
	case HELD_FENCE_NO_LEASE:
		xasprintf(why, "this host's lease was not valid within %"
		    PRIu64 " ms", migration_grant_wait_ms(m->agent));
		break;
	case HELD_FENCE_NO_GRANT:
		xasprintf(why, "no grant since this host's lease lapsed "
		    "listed it here at epoch %" PRIu64 " within %" PRIu64
		    " ms", m->held.epoch, migration_grant_wait_ms(m->agent));
		break;
	}
	return v;
}

/* A grant lists it here (at m->in->epoch, as ha_owned wrote it).  Fault
 * point vmig.source.listed (fail): the listing at its epoch does not
 * count, as if the grants since a lapse did not name it (a copy come
 * back then waits, and is fenced: ha-migrate-vm.sh). */
void
vmm_source_listed(struct vm_migration *m, uint64_t epoch)
{
	if (m->in == NULL || m->agent->ha == NULL)
		return;
	if (epoch == m->held.epoch &&
	    fault_hit("vmig.source.listed") != FAULT_FAIL)
		m->held.listed_lapses = ha_agent_lapses(m->agent->ha);
	if (m->back && !m->resuming)
		vmm_source_came_back(m);
}

/* The paused copy is here again: resumed at our epoch if it may
 * (vmm_source_back_verdict), fenced otherwise (its paused QEMU destroyed;
 * the next grant starts it), never both.  One that may not yet (the
 * lease lapsed while the store's answer was awaited) stays paused, never
 * running, for two TTLs: the grant that lists it comes with the next
 * renewals. */
static void
vmm_source_came_back(struct vm_migration *m)
{
	struct agent	*a = m->agent;
	uint64_t	 now = uv_now(a->ternd->loop);
	int		 first;

	if (m->resuming)
		return;
	uv_timer_stop(&m->timer);
	first = !m->back;
	if (first) {
		m->back = 1;
		m->held.until = now + migration_grant_wait_ms(a);
	}
	switch (vmm_source_back_verdict(m, now, &m->back_why)) {
	case HELD_RESUME:
		if (ha_agent_lapses(a->ha) != m->held.lapses0)
			log_info("vmig %" PRIx64 " %s: back here, paused; a "
			    "grant since this host's lease lapsed lists it here "
			    "at epoch %" PRIu64 ": resuming it", m->id, m->name,
			    m->in->epoch);
		m->resuming = 1;
		vmm_work_queue(m, VMMW_RESUME);
		return;
	case HELD_WAIT:
		if (first)
			log_info("vmig %" PRIx64 " %s: back here, paused; this "
			    "host's lease lapsed since the move began, so it "
			    "stays paused until a grant lists it here at epoch "
			    "%" PRIu64 ", up to %" PRIu64 " ms", m->id,
			    m->name, m->held.epoch, m->held.until - now);
		uv_timer_start(&m->timer, vmm_source_back_due,
		    VMM_LEASE_POLL_MS, 0);
		return;
	case HELD_FENCE_EPOCH:
	case HELD_FENCE_NO_LEASE:
	case HELD_FENCE_NO_GRANT:
		m->resuming = 1;
		vmm_work_queue(m, VMMW_FENCE);
		return;
	}
}

/* T's word on the way back: COMPLETE (it is here, paused) or ABORT. */
static void
vmm_source_return_step(struct vm_migration *m, const Tern__MigrateStep *s)
{
	char	*why;

	if (m->resuming || m->back)
		return;		/* back here already */
	if (s->step == TERN__MIGRATE_STEP__STEP__ABORT) {
		xasprintf(&why, "%s: %s", m->peer, s->error != NULL ?
		    s->error : "no reason given");
		vmm_source_stranded(m, why);
		free(why);
		return;
	}
	if (s->step != TERN__MIGRATE_STEP__STEP__COMPLETE)
		return;
	vmm_source_came_back(m);
}

/* What libvirt here says when T's word did not come: paused here is
 * back (its COMPLETE was lost); still arriving waits a little longer;
 * anything else leaves T's paused copy the only one. */
void
vmm_source_back_checked(struct vm_migration *m, struct vmm_work *k)
{
	uint64_t	 waited;
	char		*why;

	if (m->resuming || m->back)
		return;		/* T's COMPLETE came meanwhile */
	waited = m->policy.conf.deadline_ms + VMM_COMPLETE_WAIT_MS +
	    (uint64_t)m->back_checks * VMM_COMPLETE_WAIT_MS;
	if (k->rc == 0 && k->run == VM_PAUSED) {
		log_warnx("vmig %" PRIx64 " %s: no word from %s within %"
		    PRIu64 " ms that it sent it back, but libvirt here holds "
		    "it paused: it came back", m->id, m->name, m->peer,
		    waited);
		vmm_source_came_back(m);
		return;
	}
	if ((k->rc != 0 || k->run == VM_INCOMING) &&
	    m->back_checks < VMM_BACK_CHECKS) {
		/* Arriving, or libvirt cannot say now (reconnecting): a
		 * copy that may be here is never called stranded early. */
		m->back_checks++;
		log_info("vmig %" PRIx64 " %s: libvirt here %s%s; waiting %d "
		    "ms more", m->id, m->name, k->rc != 0 ? "cannot say "
		    "whether it came back: " : "still takes it in from ",
		    k->rc != 0 ? k->cause : m->peer, VMM_COMPLETE_WAIT_MS);
		uv_timer_start(&m->timer, vmm_source_return_due,
		    VMM_COMPLETE_WAIT_MS, 0);
		return;
	}
	if (k->rc != 0)
		xasprintf(&why, "%s did not send it back within %" PRIu64
		    " ms, and libvirt here cannot say whether it came: %s",
		    m->peer, waited, k->cause);
	else
		xasprintf(&why, "%s did not send it back within %" PRIu64
		    " ms, and libvirt here %s", m->peer, waited,
		    k->run == VM_ABSENT ? "has no copy" :
		    k->run == VM_INCOMING ? "still takes it in" :
		    "has a copy that is neither paused nor arriving");
	vmm_source_stranded(m, why);
	free(why);
}

static void
vmm_source_owned(void *arg, enum owner_result res, uint64_t epoch,
    const char *why)
{
	struct vm_migration	*m = arg;
	struct mig		*mg = m->mig;

	if (m->closing || mg->phase != MIG_PH_RECORDING) {
		mig_drop(mg);
		return;
	}
	switch (res) {
	case OWNER_MOVED:
		log_info("vmig %" PRIx64 " %s: the coordinator recorded %s as "
		    "its owner (epoch %" PRIu64 ")", m->id, m->name, m->peer,
		    epoch);
		vmm_source_commit(m, epoch);
		break;
	case OWNER_REFUSED:
		vmm_source_refused(m, why);
		break;
	case OWNER_UNKNOWN:
		log_warnx("vmig %" PRIx64 " %s: %s; %s resumes its paused copy "
		    "only if the coordinator's grant lists it (the move was "
		    "recorded)", m->id, m->name, why, m->peer);
		vmm_source_commit(m, m->in->epoch + 1);
		break;
	}
	mig_drop(mg);
}

/* libvirt finished a protected VM's migration: T's copy is paused.  Ask
 * the coordinator's store to make T the owner (RECORDING: every failure
 * awaits its answer). */
static void
vmm_source_record(struct vm_migration *m)
{
	const struct conf	*c = m->agent->ternd->conf;
	uint64_t		 until, t_waits;
	char			*cause = NULL;

	vmm_set_phase(m, MIG_PH_RECORDING);
	/* No copy of ours is left: the store is asked on past our lease
	 * (migration_owner_move), 30 TTLs at most, and never past T's wait
	 * for COMMIT (migration_timeout_ms from its READY; a tenth of it
	 * spared for the link and the clocks). */
	until = uv_now(m->agent->ternd->loop) + 30 * (uint64_t)c->lease_ttl_ms;
	t_waits = m->ready_at + (uint64_t)c->migration_timeout_ms -
	    (uint64_t)c->migration_timeout_ms / 10;
	if (until > t_waits)
		until = t_waits;
	mig_hold(m->mig);
	if (migration_owner_move(m->agent, m->in, m->peer, m->id, until,
	    vmm_source_owned, m, &cause) != 0) {
		mig_drop(m->mig);
		vmm_source_refused(m, cause);
		free(cause);
	}
}

/* libvirt's migration call returned. */
void
vmm_migrated(struct vm_migration *m, struct vmm_work *k)
{
	char	*text;

	m->job_running = 0;
	vmm_drop_chans(m);
	vmm_close_listener(&m->lis[0]);
	vmm_close_listener(&m->lis[1]);
	if (k->rc == 0) {
		/* A test kills ternd here: libvirt finished, T not told. */
		if (fault_hit("vmig.source.migrated") == FAULT_KILL)
			fault_die("vmig.source.migrated");
		if (m->store) {
			vmm_source_record(m);
			return;
		}
		/* The domain runs on T and is gone here.  A pre-copy
		 * passes the commit now and waits for T's COMPLETE in
		 * COMMITTED.  A post-copy passed it at QEMU's switch and
		 * its order goes from PAGING to DONE only (phases.c): it
		 * waits in DONE, where the table ignores every failure
		 * and VMM_COMPLETE_WAIT_MS alone ends the wait. */
		vmm_set_phase(m, m->mig->phase == MIG_PH_PAGING ? MIG_PH_DONE :
		    MIG_PH_COMMITTED);
		if (vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL, 0,
		    0) == 0)
			return;
		if (m->mig->phase == MIG_PH_DONE)
			vmm_source_done(m, 0);
		else
			vmm_fail(m, MIG_FAIL_LINK, "could not tell the target "
			    "libvirt finished");
		return;
	}
	if ((m->switched || k->run == VM_POSTCOPY) && k->run != VM_RUNNING &&
	    m->mig->phase == MIG_PH_TRANSFER)
		/* libvirt says QEMU switched; its event did not come. */
		vmm_set_phase(m, MIG_PH_PAGING);
	if (k->run != VM_RUNNING)
		log_warnx("vmig %" PRIx64 " %s: after the failed migration "
		    "libvirt reports it %s", m->id, m->name, k->run ==
		    VM_PAUSED ? "paused" : k->run == VM_ABSENT ? "gone" :
		    k->run == VM_POSTCOPY ? "in post-copy" : "not running");
	if (m->abort_reason != NULL && m->mig->phase != MIG_PH_PAGING)
		xasprintf(&text, "%s (libvirt: %s)", m->abort_reason, k->cause);
	else
		text = xstrdup(k->cause);
	vmm_fail(m, MIG_FAIL_LOCAL, text);
	free(text);
}

static void
vmm_source_go(struct vm_migration *m)
{
	char	*cause = NULL;

	if (mkdir_p(m->dir, 0700, &cause) != 0 ||
	    vmm_listen(m, &m->lis[0], "libvirt", &cause) != 0 ||
	    vmm_listen(m, &m->lis[1], "qemu", &cause) != 0) {
		vmm_fail(m, MIG_FAIL_LOCAL, cause);
		free(cause);
		return;
	}
	vmm_set_phase(m, MIG_PH_TRANSFER);
	vmm_work_queue(m, VMMW_MIGRATE);
}

void
vmm_source_step(struct vm_migration *m, const Tern__MigrateStep *s)
{
	char	*why;

	if (m->returning) {
		vmm_source_return_step(m, s);
		return;
	}
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__READY:
		if (m->mig->phase == MIG_PH_OFFERED) {
			m->ready_at = uv_now(m->agent->ternd->loop);
			vmm_source_go(m);
		}
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		xasprintf(&why, "%s %s: %s", m->peer, m->mig->phase ==
		    MIG_PH_OFFERED ? "refused" : "aborted", s->error != NULL ?
		    s->error : "no reason given");
		vmm_fail(m, MIG_FAIL_PEER_ABORT, why);
		free(why);
		break;
	case TERN__MIGRATE_STEP__STEP__COMPLETE:
		if (m->mig->phase != MIG_PH_COMMITTED && m->mig->phase != MIG_PH_DONE)
			break;
		m->downtime_ms = s->has_downtime_ms ? s->downtime_ms : 0;
		m->bytes = s->has_bytes ? s->bytes : 0;
		if (s->error != NULL)
			vmm_note(m, s->error);	/* T's word on what arrived */
		vmm_source_done(m, 1);
		break;
	default:
		break;
	}
}

/* The guest's size is known: the deadline scales with it; offer. */
void
vmm_source_offer(struct vm_migration *m, struct vmm_work *k)
{
	struct vm_policy_conf	*pc = &m->policy.conf;
	Envelope		 env;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	char			*cause = NULL;

	if (k->rc != 0) {
		vmm_fail(m, MIG_FAIL_LOCAL, k->cause);
		return;
	}
	m->memory = k->memory;
	if (pc->deadline_ms == 0)
		pc->deadline_ms = vm_policy_deadline(m->memory);
	log_info("vmig %" PRIx64 " %s: %s -> %s, live (%s%s%s), %" PRIu64
	    " MiB, deadline %" PRIu64 " s", m->id, m->name,
	    m->agent->ternd->conf->host_name, m->peer, pc->force_postcopy ?
	    "post-copy after the first pass" : "pre-copy",
	    pc->allow_postcopy && !pc->force_postcopy ? ", post-copy if it "
	    "does not converge" : "", pc->auto_converge ? ", auto-converge" :
	    "", m->memory >> 20, pc->deadline_ms / 1000);
	msg_init(&env, 0);
	o.migration = m->id;
	o.name = (char *)m->name;
	o.kind = TERN__INSTANCE_KIND__KIND_VM;
	o.spec = m->in->spec_text;
	o.spec_dir = m->dir;
	o.generation = 0;
	o.has_mode = 1;
	o.mode = m->mode;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	if (mig_send(m->mig, &env, &cause) != 0) {
		vmm_fail(m, MIG_FAIL_LINK, cause);
		free(cause);
	}
}

/* The engine's source_begin: ternctl migrate of a VM instance.  Every
 * check before anything is made: -1 leaves nothing behind. */
int
vmm_source_begin(struct mig *mg, const Tern__MigrateRequest *r, int *code,
    char **cause)
{
	struct agent		*a = vmm_agent(mg->engine);
	struct vm_migration	*m;
	struct instance		*in;
	struct vm_policy_conf	 pc;
	Tern__MigrationMode	 mode;
	unsigned		 n;
	int			 named;

	mode = r->has_mode ? r->mode : TERN__MIGRATION_MODE__MODE_AUTO;
	*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
	if (a->instances == NULL || (in = instance_find(a->instances,
	    r->name)) == NULL || !in->vm) {
		*code = TERN__ERROR_CODE__ERROR_NOT_FOUND;
		xasprintf(cause, "no VM instance %s here", r->name);
		return -1;
	}
	if (mode == TERN__MIGRATION_MODE__MODE_STOPCOPY) {
		*cause = xstrdup("a VM migrates live: mode must be auto, "
		    "precopy or postcopy");
		return -1;
	}
	if (a->vms == NULL || !vm_host_up(a->vms)) {
		*code = TERN__ERROR_CODE__ERROR_UNAVAILABLE;
		*cause = xstrdup("libvirt is not connected on this host");
		return -1;
	}
	if (r->has_bandwidth && r->bandwidth < VMM_BANDWIDTH_MIN) {
		*cause = xstrdup("--bandwidth for a VM: at least 1M (QEMU's "
		    "limit counts whole MiB/s)");
		return -1;
	}
	if (in->state != INST_RUNNING || in->vm_busy) {
		xasprintf(cause, "instance %s is %s: only a running instance "
		    "migrates", in->name, in->vm_busy ? "busy" :
		    inst_state_names[in->state]);
		return -1;
	}
	vmm_census(mg, MIG_ROLE_SOURCE, &n, &named);
	if (named) {
		xasprintf(cause, "instance %s is already migrating", in->name);
		return -1;
	}
	if (n >= (unsigned)a->ternd->conf->max_vm_migrations) {
		/* Each holds a thread for as long as it runs. */
		*code = TERN__ERROR_CODE__ERROR_RESOURCE;
		xasprintf(cause, "instance %s: %u VM migrations are running "
		    "from %s, the most max_vm_migrations allows: wait for one "
		    "to finish, or raise max_vm_migrations", in->name, n,
		    a->ternd->conf->host_name);
		return -1;
	}
	if (in->ha != 0 && mode == TERN__MIGRATION_MODE__MODE_POSTCOPY) {
		xasprintf(cause, "instance %s is protected by the coordinator "
		    "(--ha): it migrates by pre-copy only (post-copy would "
		    "run it on the target before the coordinator's store "
		    "recorded the move)", in->name);
		return -1;
	}
	memset(&pc, 0, sizeof pc);
	/* Protected: T's copy stays paused until the store moved it. */
	pc.allow_postcopy = mode != TERN__MIGRATION_MODE__MODE_PRECOPY &&
	    in->ha == 0;
	pc.force_postcopy = mode == TERN__MIGRATION_MODE__MODE_POSTCOPY;
	pc.auto_converge = !(r->has_no_auto_converge && r->no_auto_converge);
	pc.stall_ms = VMM_STALL_MS;
	/* 0: scaled by the guest's memory, once libvirt told it. */
	pc.deadline_ms = r->has_timeout_ms ? r->timeout_ms : 0;

	m = vmm_new(mg);
	m->in = in;
	m->mode = mode;
	m->bandwidth = r->has_bandwidth ? r->bandwidth : 0;
	m->max_downtime_ms = r->has_max_downtime_ms ? r->max_downtime_ms : 0;
	m->auto_converge = pc.auto_converge;
	m->store = in->ha != 0;
	/* A lapse from here on may have let the coordinator fail this host
	 * over (vmm_source_back_verdict); without a valid lease now, any
	 * copy that comes back waits for a grant that lists it. */
	if (a->ha != NULL)
		m->held.lapses0 = ha_agent_valid(a->ha) ?
		    ha_agent_lapses(a->ha) : UINT64_MAX;
	m->held.epoch = in->epoch;
	m->held.listed_lapses = UINT64_MAX;
	vm_policy_init(&m->policy, &pc);
	in->set->busy++;
	instance_set_state(in, INST_MIGRATING, NULL);
	uv_timer_start(&m->tick, vmm_tick, VMM_TICK_MS, VMM_TICK_MS);
	vmm_progress(m);
	vmm_work_queue(m, VMMW_MEMORY);
	return 0;
}

/* Forced post-copy switches the moment the second pass starts: waiting
 * for the next reading of the job could let a quick migration finish
 * by pre-copy alone. */
void
vm_migration_iteration(struct agent *a, const char *name, int n)
{
	struct vm_migration	*m;

	if (a->mig == NULL)
		return;
	m = vmm_of(mig_find_name(a->mig, name, MIG_ROLE_SOURCE));
	if (m == NULL || (m->mig->phase != MIG_PH_TRANSFER &&
	    m->mig->phase != MIG_PH_PAGING))
		return;
	log_debug("vmig %" PRIx64 " %s: memory pass %d", m->id, m->name, n);
	if (n > 0 && (uint64_t)n > m->passes)
		m->passes = (uint64_t)n;
	if (m->mig->phase != MIG_PH_TRANSFER || m->postcopy_asked ||
	    !m->policy.conf.force_postcopy || n < 2)
		return;
	vmm_note(m, "first pass done: switching to post-copy as asked");
	vm_policy_postcopy(&m->policy);
	m->postcopy_asked = 1;
	vmm_work_queue(m, VMMW_POSTCOPY);
}

/* QEMU switched to post-copy; libvirt's job completed (before its
 * migration call returns). */
void
vm_migration_event(struct agent *a, const char *name, enum vm_ev ev,
    int detail)
{
	struct vm_migration	*m;

	if (a->mig == NULL ||
	    (m = vmm_of(mig_find_name(a->mig, name, MIG_ROLE_SOURCE))) == NULL)
		return;
	if (ev == VM_EV_POSTCOPY_SWITCH) {
		if (!m->switched)
			log_info("vmig %" PRIx64 " %s: QEMU switched to "
			    "post-copy: the guest runs on %s", m->id, m->name,
			    m->peer);
		m->switched = 1;
		/* Switched from outside (virsh migrate-postcopy): nothing
		 * more to decide here either. */
		if (!m->postcopy_asked) {
			vm_policy_postcopy(&m->policy);
			m->postcopy_asked = 1;
		}
		/* It runs there now: the commit point (phases.h). */
		if (m->mig->phase == MIG_PH_TRANSFER)
			vmm_set_phase(m, MIG_PH_PAGING);
		return;
	}
	log_debug("vmig %" PRIx64 " %s: libvirt's job completed, QEMU's "
	    "downtime %d ms", m->id, m->name, detail);
	m->qemu_downtime_ms = detail;
}
