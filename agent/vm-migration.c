#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/instance-internal.h"
#include "agent/peers.h"
#include "agent/vm-instances.h"
#include "agent/vm-mig-internal.h"
#include "agent/vm-migration.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/longjob.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"
#include "migrate/vm-policy.h"

struct vm_migration *
vmm_find(struct agent *a, const char *peer, uint64_t id, int source)
{
	struct vm_migration	*m;

	for (m = a->vm_migrations; m != NULL; m = m->next)
		if (m->id == id && m->source == source && !m->closing &&
		    strcmp(m->peer, peer) == 0)
			return m;
	return NULL;
}

struct vm_migration *
vmm_new(struct agent *a, const char *peer, uint64_t id, int source,
    const char *name)
{
	struct vm_migration	*m;

	m = xcalloc(1, sizeof *m);
	m->agent = a;
	m->id = id;
	m->source = source;
	m->peer = xstrdup(peer);
	m->name = xstrdup(name);
	m->start_ms = now_ms();
	xasprintf(&m->dir, "%s/vm-migrate", a->conf->run_dir);
	xasprintf(&m->qemu_path, "%s/%" PRIx64 ".qemu", m->dir, id);
	m->lis[0].fd = m->lis[1].fd = -1;
	m->qemu_downtime_ms = -1;
	uv_timer_init(a->loop, &m->tick);
	uv_timer_init(a->loop, &m->timer);
	m->tick.data = m->timer.data = m;
	vmm_arm(m);
	m->next = a->vm_migrations;
	a->vm_migrations = m;
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

	if (m->source && m->phase == MIG_PH_OFFERED)
		ms = (uint64_t)m->agent->conf->migration_timeout_ms;
	else if (m->source && (m->phase == MIG_PH_COMMITTED ||
	    m->phase == MIG_PH_DONE))
		ms = VMM_COMPLETE_WAIT_MS;
	else if (!m->source && m->phase == MIG_PH_READY && !m->settling)
		ms = (uint64_t)m->agent->conf->migration_timeout_ms;
	if (ms > 0)
		uv_timer_start(&m->timer, vmm_timeout, ms, 0);
	else
		uv_timer_stop(&m->timer);
}

/* The one transition function: forward along the role's order, or to
 * ROLLING_BACK/FAILED before the commit (mig_phase_next_ok). */
int
vmm_set_phase(struct vm_migration *m, enum mig_phase ph)
{
	enum mig_role	role = m->source ? MIG_ROLE_SOURCE : MIG_ROLE_TARGET;

	if (!mig_phase_next_ok(role, m->phase, ph)) {
		log_warnx("vmig %" PRIx64 " %s: refused to go from %s to %s",
		    m->id, m->name, mig_phase_names[m->phase],
		    mig_phase_names[ph]);
		return -1;
	}
	log_info("vmig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    mig_phase_names[m->phase], mig_phase_names[ph]);
	m->phase = ph;
	vmm_arm(m);
	return 0;
}

/* What the operator's progress line calls it. */
const char *
vmm_phase_name(const struct vm_migration *m)
{
	switch (m->phase) {
	case MIG_PH_TRANSFER:
		return m->postcopy_asked ? "postcopy" : "precopy";
	case MIG_PH_PAGING:
		return "postcopy";
	case MIG_PH_COMMITTED:
	case MIG_PH_DONE:
		return m->source ? "finishing" : "arriving";
	default:
		return mig_phase_names[m->phase];
	}
}

/* Its memory, once no handle and no call on the thread pool is left. */
void
vmm_release(struct vm_migration *m)
{
	if (!m->closing || m->handles > 0 || m->works > 0)
		return;
	free(m->peer);
	free(m->name);
	free(m->dir);
	free(m->qemu_path);
	free(m->policy_note);
	free(m->abort_reason);
	free(m->discard_why);
	free(m);
}

static void
vmm_freed(uv_handle_t *h)
{
	struct vm_migration	*m = h->data;

	m->handles--;
	vmm_release(m);
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
	l->m->handles++;
	l->poll.data = l->m;	/* vmm_freed counts the migration's handles */
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

/* Forget it; memory goes once no call on the thread pool refers to it. */
void
vmm_free(struct vm_migration *m)
{
	struct vm_migration	**pp;
	int			  i;

	if (m->closing)
		return;
	m->closing = 1;
	for (pp = &m->agent->vm_migrations; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	vmm_drop_chans(m);
	for (i = 0; i < 2; i++) {
		vmm_close_listener(&m->lis[i]);
		free(m->lis[i].path);
		m->lis[i].path = NULL;
	}
	if (!m->source)
		unlink(m->qemu_path);
	if (m->in != NULL)
		instances_op_done(m->in->set);
	m->in = NULL;
	m->handles += 2;
	uv_close((uv_handle_t *)&m->tick, vmm_freed);
	uv_close((uv_handle_t *)&m->timer, vmm_freed);
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
	if (peers_send(m->agent->peers, m->peer, &env, NULL) != 0) {
		log_debug("vmig %" PRIx64 ": %s unreachable for step %d", m->id,
		    m->peer, step);
		return -1;
	}
	return 0;
}

int
vm_migration_step(struct agent *a, const char *peer,
    const Tern__MigrateStep *s)
{
	struct vm_migration	*m;

	if ((m = vmm_find(a, peer, s->migration, 1)) != NULL)
		vmm_source_step(m, s);
	else if ((m = vmm_find(a, peer, s->migration, 0)) != NULL)
		vmm_target_step(m, s);
	else
		return 0;
	return 1;
}
/* --- faults ---------------------------------------------------------------------- */

/* A failure, decided by the one table (migrate/phases.c) and carried out
 * by the VM's half: the only way a failure is acted on.  A broken relay
 * is none of them by itself: libvirt's and QEMU's connections end as
 * they please, and one that breaks fails libvirt's call, which comes
 * back as MIG_FAIL_LOCAL (vmm_migrated). */
void
vmm_fail(struct vm_migration *m, enum mig_fail f, const char *why)
{
	enum mig_role		role = m->source ? MIG_ROLE_SOURCE :
	    MIG_ROLE_TARGET;
	enum mig_verdict	v = mig_phase_verdict(role, m->phase, f);

	log_info("vmig %" PRIx64 " %s: %s while %s: %s (%s)", m->id, m->name,
	    mig_fail_names[f], mig_phase_names[m->phase], mig_verdict_names[v],
	    why);
	switch (v) {
	case MIG_V_ROLLBACK:
		vmm_source_rollback(m, f, why);
		break;
	case MIG_V_DISCARD:
		vmm_target_discard(m, f, why);
		break;
	case MIG_V_UNCERTAIN:
		vmm_source_uncertain(m, f, why);
		break;
	case MIG_V_SPLIT:
		/* A VM's target never pages (libvirt's post-copy ends with
		 * its finish, COMMITTED here). */
		if (m->source)
			vmm_source_split(m, f, why);
		break;
	case MIG_V_AWAIT:	/* no COMMITTING: libvirt's call is the commit */
	case MIG_V_KEEP:	/* T past COMMIT: taking it in goes on */
	case MIG_V_IGNORE:
		break;
	}
}

void
vmm_timeout(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;
	char			*why;

	if (m->source && m->phase == MIG_PH_DONE) {
		/* Post-copy finished: the VM is T's; only T's numbers were
		 * awaited. */
		vmm_source_done(m, 0);
		return;
	}
	if (m->source && m->phase == MIG_PH_OFFERED)
		xasprintf(&why, "%s did not answer for %d ms", m->peer,
		    m->agent->conf->migration_timeout_ms);
	else if (m->source)
		xasprintf(&why, "%s did not say it took it in within %d ms",
		    m->peer, VMM_COMPLETE_WAIT_MS);
	else
		xasprintf(&why, "no word from %s for %d ms", m->peer,
		    m->agent->conf->migration_timeout_ms);
	vmm_fail(m, MIG_FAIL_TIMEOUT, why);
	free(why);
}

void
vm_migration_peer_lost(struct agent *a, const char *peer, const char *why)
{
	struct vm_migration	*m, *next;
	char			*text;

	for (m = a->vm_migrations; m != NULL; m = next) {
		next = m->next;
		if (strcmp(m->peer, peer) != 0)
			continue;
		xasprintf(&text, "lost the connection to %s: %s", peer, why);
		vmm_fail(m, MIG_FAIL_LINK, text);
		free(text);
	}
}

void
vm_migration_clean(struct agent *a)
{
	char	*dir, *cause = NULL;

	/* Sockets of migrations a previous ternd did not finish (QEMU does
	 * not remove the one it listened on). */
	xasprintf(&dir, "%s/vm-migrate", a->conf->run_dir);
	if (rm_rf(dir, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
	}
	free(dir);
}

void
vm_migration_shutdown(struct agent *a)
{
	struct vm_migration	*m, *next;
	char			*text;

	xasprintf(&text, "ternd on %s is shutting down",
	    a->conf->host_name);
	for (m = a->vm_migrations; m != NULL; m = next) {
		next = m->next;
		vmm_fail(m, MIG_FAIL_SHUTDOWN, text);
	}
	free(text);
}
