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

const char *const vmm_state_names[] = {
	"offered", "precopy", "postcopy", "finishing", "checking", "ready",
	"arriving", "cleaning",
};

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
	uv_timer_start(&m->timer, vmm_timeout,
	    (uint64_t)a->conf->migration_timeout_ms, 0);
	m->next = a->vm_migrations;
	a->vm_migrations = m;
	return m;
}

void
vmm_set_state(struct vm_migration *m, enum vmm_state st)
{
	log_debug("vmig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    vmm_state_names[m->state], vmm_state_names[st]);
	m->state = st;
	uv_timer_start(&m->timer, vmm_timeout,
	    (uint64_t)m->agent->conf->migration_timeout_ms, 0);
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
	free(m->abandoned);
	free(m->error);
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

void
vmm_timeout(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;

	switch (m->state) {
	case VMM_OFFERED:
		vmm_source_fail(m, "%s did not answer for %d ms", m->peer,
		    m->agent->conf->migration_timeout_ms);
		break;
	case VMM_FINISHING:
		vmm_source_done(m, 0);
		break;
	case VMM_READY:
		/* libvirt's own timeouts end a stuck migration; look. */
		vmm_set_state(m, VMM_ARRIVING);
		vmm_work_queue(m, VMMW_SETTLE);
		break;
	default:
		/* libvirt and the policy's deadline own the other states. */
		break;
	}
}

/* Its link is gone: what libvirt does next decides, we help it along. */
static void
vmm_lost(struct vm_migration *m, const char *why)
{
	if (m->source) {
		switch (m->state) {
		case VMM_OFFERED:
			vmm_source_fail(m, "%s", why);
			break;
		case VMM_MIGRATING:
			free(m->abort_reason);
			m->abort_reason = xstrdup(why);
			vmm_drop_chans(m);	/* QEMU and libvirt see EOF */
			vmm_work_queue(m, VMMW_ABORT);
			break;
		case VMM_POSTCOPY:
			vmm_note(m, why);
			vmm_drop_chans(m);
			break;
		case VMM_FINISHING:
			vmm_source_done(m, 0);
			break;
		default:
			break;
		}
		return;
	}
	if (m->state == VMM_READY) {
		vmm_drop_chans(m);
		vmm_set_state(m, VMM_ARRIVING);
		vmm_work_queue(m, VMMW_SETTLE);
	} else if (m->state == VMM_CHECKING)
		vmm_target_abandon(m, why);
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
		vmm_lost(m, text);
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
		vmm_lost(m, text);
	}
	free(text);
}
