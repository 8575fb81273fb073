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
#include "agent/vm-migration.h"
#include "checkpoint/vm.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/longjob.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"
#include "migrate/vm-policy.h"

#define VMM_TICK_MS		500	/* job numbers, policy, progress */
#define VMM_STALL_MS		10000	/* no progress this long: act */
#define VMM_COMPLETE_WAIT_MS	20000	/* T's COMPLETE after libvirt's yes */
#define VMM_ARRIVE_WAIT_MS	10000	/* T: libvirt's finish resuming it */
#define VMM_BANDWIDTH_MIN	1000000	/* bytes/s, as for containers */
/* Auto-converge, steeper than QEMU's 20 + 10 per pass: a guest that
 * outruns the link is slowed down enough within a few passes, instead of
 * after a dozen (each pass takes its whole dirty set's time). */
#define VMM_AC_INITIAL		30
#define VMM_AC_INCREMENT	20
/* What one incoming VM migration may open on the target: each relay is
 * a connection to libvirtd or QEMU.  libvirt's peer-to-peer migration
 * opens a few of each; a peer gets no more. */
#define VMM_MAX_RELAYS		8	/* at once */
#define VMM_MAX_RELAYS_TOTAL	64	/* over the whole migration */

enum vmm_state {
	VMM_OFFERED,		/* S: waiting for READY */
	VMM_MIGRATING,		/* S: libvirt migrates, pre-copy */
	VMM_POSTCOPY,		/* S: switched: the VM runs on T */
	VMM_FINISHING,		/* S: libvirt done, waiting for COMPLETE */
	VMM_CHECKING,		/* T: is the name free in libvirt */
	VMM_READY,		/* T: relays whatever S's side connects */
	VMM_ARRIVING,		/* T: COMMIT came, taking the domain in */
	VMM_CLEANING,		/* T: making sure nothing is left */
};

static const char *const vmm_state_names[] = {
	"offered", "precopy", "postcopy", "finishing", "checking", "ready",
	"arriving", "cleaning",
};

struct vm_migration;

/* One connection libvirt or QEMU made through us. */
struct vm_chan {
	struct vm_chan		*next;
	struct vm_migration	*m;
	struct relay		*relay;
	char			*name;		/* the stream pair's */
};

/* S: where libvirtd and QEMU connect to reach T. */
struct vm_listener {
	uv_poll_t		 poll;
	int			 fd;
	char			*path;
	const char		*kind;		/* "libvirt", "qemu" */
	unsigned		 n;		/* connections so far */
	int			 open;
	struct vm_migration	*m;
};

struct vm_migration {
	struct agent		*agent;
	struct vm_migration	*next;
	uint64_t		 id;		/* the source's */
	int			 source;
	char			*peer;
	char			*name;
	struct instance		*in;		/* S */
	enum vmm_state		 state;
	char			*dir;		/* the sockets' */
	char			*qemu_path;
	struct vm_listener	 lis[2];
	struct vm_chan		*chans;
	unsigned		 nchans;
	unsigned		 relays_total;	/* T: every relay it opened */
	uint64_t		 start_ms;

	/* S: the request and the policy */
	const char		*mode;		/* auto, precopy, postcopy */
	uint64_t		 bandwidth;
	uint32_t		 max_downtime_ms;
	int			 auto_converge;
	uint64_t		 memory;
	struct vm_policy	 policy;
	char			*policy_note;	/* what the policy did */
	char			*abort_reason;	/* why we aborted libvirt's job */
	char			*abandoned;	/* T: given up while checking */
	struct vm_job		 job;		/* the last reading */
	int			 stats_busy;
	int			 switched;	/* QEMU switched to post-copy */
	int			 throttle_max;
	int64_t			 qemu_downtime_ms; /* S: QEMU's, -1: none */
	uint64_t		 passes;	/* S: QEMU's, from its events */
	uint64_t		 downtime_ms;
	uint64_t		 bytes;
	char			*error;

	uv_timer_t		 tick;
	uv_timer_t		 timer;		/* a step that does not come */
	int			 handles;
	int			 works;		/* on the thread pool */
	atomic_int		 job_aborted;	/* an abort was sent to libvirt */
	int			 closing;
	instances_done_cb	 progress;
	instances_done_cb	 cb;
	void			*arg;
};

/* One libvirt call for a migration, on the thread pool. */
enum vmm_workkind {
	VMMW_MEMORY,		/* S: the guest's size, for the deadline */
	VMMW_MIGRATE,
	VMMW_STATS,
	VMMW_POSTCOPY,
	VMMW_ABORT,
	VMMW_CHECK,		/* T: the name is free, the directory exists */
	VMMW_ARRIVE,		/* T: the domain runs here: take it */
	VMMW_SETTLE,		/* T: S is gone: did libvirt finish? */
	VMMW_CLEAN,		/* T: no domain left */
};

struct vmm_work {
	uv_work_t		 w;
	struct longjob		 lj;		/* VMMW_MIGRATE: a thread's */
	int			 stall;		/* a test holds it (fault) */
	enum vmm_workkind	 kind;
	struct vm_migration	*m;
	struct vm_host		*host;
	char			*name;
	struct vm_migrate_args	 args;
	char			*dconnuri;
	char			*uri;
	char			*dir;
	uint32_t		 max_downtime_ms;

	int			 rc;
	char			*cause;
	enum vm_run		 run;
	struct vm_job		 job;
	char			*xml;
	uint64_t		 memory;
};

static void	vmm_work_queue(struct vm_migration *, enum vmm_workkind);
static void	vmm_source_fail(struct vm_migration *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	vmm_target_clean(struct vm_migration *, const char *);
static void	vmm_target_abandon(struct vm_migration *, const char *);
static void	vmm_note(struct vm_migration *, const char *);

/* --- the table --------------------------------------------------------------- */

static struct vm_migration *
vmm_find(struct agent *a, const char *peer, uint64_t id, int source)
{
	struct vm_migration	*m;

	for (m = a->vm_migrations; m != NULL; m = m->next)
		if (m->id == id && m->source == source && !m->closing &&
		    strcmp(m->peer, peer) == 0)
			return m;
	return NULL;
}

static void	vmm_timeout(uv_timer_t *);
static void	vmm_tick(uv_timer_t *);

static struct vm_migration *
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

static void
vmm_set_state(struct vm_migration *m, enum vmm_state st)
{
	log_debug("vmig %" PRIx64 " %s: %s -> %s", m->id, m->name,
	    vmm_state_names[m->state], vmm_state_names[st]);
	m->state = st;
	uv_timer_start(&m->timer, vmm_timeout,
	    (uint64_t)m->agent->conf->migration_timeout_ms, 0);
}

/* Its memory, once no handle and no call on the thread pool is left. */
static void
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

static void
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

static void
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
static void
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

static int
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

/* --- relays -------------------------------------------------------------------- */

static void
vmm_chan_done(void *arg, const char *error)
{
	struct vm_chan		*c = arg, **pp;
	struct vm_migration	*m = c->m;

	if (error != NULL)
		log_debug("vmig %" PRIx64 " %s: %s: %s", m->id, m->name,
		    c->name, error);
	for (pp = &m->chans; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			m->nchans--;
			break;
		}
	}
	relay_free(c->relay);
	free(c->name);
	free(c);
}

static struct vm_chan *
vmm_chan_new(struct vm_migration *m, int fd, const char *name)
{
	struct vm_chan	*c;
	char		*what;

	c = xcalloc(1, sizeof *c);
	c->m = m;
	c->name = xstrdup(name);
	xasprintf(&what, "vmig %" PRIx64 " %s", m->id, name);
	c->relay = relay_new(m->agent->loop, fd, what, vmm_chan_done, c);
	free(what);
	c->next = m->chans;
	m->chans = c;
	m->nchans++;
	return c;
}

/* S: libvirtd or QEMU connected to one of our sockets. */
static void
vmm_on_connect(uv_poll_t *h, int status, int events)
{
	struct vm_listener	*l = h->data;
	struct vm_migration	*m = l->m;
	struct vm_chan		*c;
	char			 name[96], *cause = NULL;
	int			 fd;

	while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		snprintf(name, sizeof name, "%" PRIx64 "/vm-%s/%u", m->id,
		    l->kind, l->n++);
		c = vmm_chan_new(m, fd, name);
		/* --bandwidth is QEMU's to keep (libvirt's limit). */
		if (relay_open(c->relay, peers_mux(m->agent->peers, m->peer),
		    name, NULL, &cause) != 0) {
			log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name,
			    cause);
			free(cause);
			cause = NULL;
			vmm_chan_done(c, NULL);
		}
	}
}

static int
vmm_listen(struct vm_migration *m, struct vm_listener *l, const char *kind,
    char **cause)
{
	struct sockaddr_un	sun;

	l->m = m;
	l->kind = kind;
	xasprintf(&l->path, "%s/%" PRIx64 ".%s", m->dir, m->id, kind);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(l->path) >= sizeof sun.sun_path) {
		set_cause(cause, "%s: path too long for a socket", l->path);
		return -1;
	}
	strcpy(sun.sun_path, l->path);
	if ((l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		set_cause(cause, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(l->path);
	/* Only root's libvirtd and QEMU connect: 0600 via umask-free chmod. */
	if (bind(l->fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    chmod(l->path, 0600) != 0 || listen(l->fd, 8) != 0) {
		set_cause(cause, "%s: %s", l->path, strerror(errno));
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	uv_poll_init(m->agent->loop, &l->poll, l->fd);
	l->poll.data = l;
	l->open = 1;
	uv_poll_start(&l->poll, UV_READABLE, vmm_on_connect);
	return 0;
}

/* T: connect our half of a relay to the local socket it stands for. */
static int
vmm_connect_local(const char *path, char **cause)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		set_cause(cause, "%s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		set_cause(cause, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
vm_migration_accept_relay(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct vm_migration	*m;
	struct vm_chan		*c;
	const char		*kind, *path;
	char			*end;
	uint64_t		 id;
	unsigned long		 n;
	int			 fd;

	/* "<id hex>/vm-libvirt/<n>" or "<id hex>/vm-qemu/<n>", strictly. */
	errno = 0;
	id = strtoull(name, &end, 16);
	if (errno != 0 || end == name || name[0] == '-' || name[0] == '+' ||
	    name[0] == ' ')
		goto bad;
	if (strncmp(end, "/vm-libvirt/", 12) == 0)
		kind = "libvirt";
	else if (strncmp(end, "/vm-qemu/", 9) == 0)
		kind = "qemu";
	else
		goto bad;
	end = strchr(end + 1, '/') + 1;
	if (*end < '0' || *end > '9')
		goto bad;
	n = strtoul(end, &end, 10);
	if (*end != '\0' || n > 1000)
		goto bad;
	if ((m = vmm_find(a, peer, id, 1)) != NULL) {
		/* S: T's half of a connection we relayed. */
		for (c = m->chans; c != NULL; c = c->next)
			if (strcmp(c->name, name) == 0)
				break;
		if (c == NULL) {
			set_cause(cause, "no VM relay %s here", name);
			return -1;
		}
		return relay_attach(c->relay, st, cause);
	}
	if ((m = vmm_find(a, peer, id, 0)) == NULL || m->state != VMM_READY) {
		set_cause(cause, "no VM migration %" PRIx64 " ready for %s",
		    id, peer);
		return -1;
	}
	if (m->nchans >= VMM_MAX_RELAYS ||
	    m->relays_total >= VMM_MAX_RELAYS_TOTAL) {
		/* Each is a connection to our libvirtd or QEMU. */
		log_warnx("vmig %" PRIx64 " %s: refused relay %s from %s: %s "
		    "(at most %d at once, %d in all)", m->id, m->name, name,
		    peer, m->nchans >= VMM_MAX_RELAYS ? "too many at once" :
		    "too many in all", VMM_MAX_RELAYS, VMM_MAX_RELAYS_TOTAL);
		set_cause(cause, "VM migration %" PRIx64 " of %s: %s takes at "
		    "most %d relay streams at once, %d in all", id, m->name,
		    a->conf->host_name, VMM_MAX_RELAYS, VMM_MAX_RELAYS_TOTAL);
		return -1;
	}
	path = strcmp(kind, "libvirt") == 0 ? a->conf->libvirt_socket :
	    m->qemu_path;
	if ((fd = vmm_connect_local(path, cause)) == -1)
		return -1;
	m->relays_total++;
	c = vmm_chan_new(m, fd, name);
	if (relay_open(c->relay, peers_mux(a->peers, peer), name, NULL,
	    cause) != 0) {
		vmm_chan_done(c, NULL);
		return -1;
	}
	if (relay_attach(c->relay, st, cause) != 0) {
		vmm_chan_done(c, NULL);
		return -1;
	}
	return 0;
bad:
	set_cause(cause, "bad VM relay name \"%.64s\"", name);
	return -1;
}

/* --- the thread pool -------------------------------------------------------- */

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
		if ((k->rc = vm_state(k->host, k->name, &k->run, NULL,
		    &k->cause)) != 0 || k->run == VM_ABSENT)
			break;
		if ((k->rc = vm_destroy(k->host, k->name, &k->cause)) == 0)
			k->rc = vm_undefine(k->host, k->name, &k->cause);
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

static void	vmm_source_offer(struct vm_migration *, struct vmm_work *);
static void	vmm_migrated(struct vm_migration *, struct vmm_work *);
static void	vmm_stats(struct vm_migration *, struct vmm_work *);
static void	vmm_target_checked(struct vm_migration *, struct vmm_work *);
static void	vmm_target_arrived(struct vm_migration *, struct vmm_work *);

static void
vmm_work_done(uv_work_t *w, int status)
{
	struct vmm_work		*k = w->data;
	struct vm_migration	*m = k->m;

	m->works--;
	if (m->closing) {
		/* Gone meanwhile: only the memory is left to free. */
		vmm_release(m);
		goto out;
	}
	switch (k->kind) {
	case VMMW_MEMORY:
		if (m->state == VMM_OFFERED)
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
			if (m->state == VMM_POSTCOPY)
				vmm_set_state(m, VMM_MIGRATING);
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
		else if (k->run != VM_ABSENT)
			log_info("vmig %" PRIx64 " %s: removed the half-arrived "
			    "domain", m->id, m->name);
		vmm_free(m);
		break;
	}
out:
	vmm_work_free(k);
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

static void
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
		k->max_downtime_ms = m->max_downtime_ms;
	}
	if (kind == VMMW_STATS)
		m->stats_busy = 1;
	if (kind == VMMW_MIGRATE) {
		/* It lasts as long as the migration: never on the pool that
		 * the job's stats, the switch and the abort queue for. */
		k->stall = fault_hit("vmig.source.migrate") == FAULT_STALL;
		k->lj.work = vmm_longjob_run;
		k->lj.done = vmm_longjob_done;
		k->lj.data = k;
		if (longjobs_start(m->agent->longjobs, &k->lj, &cause) != 0) {
			vmm_work_free(k);
			vmm_source_fail(m, "%s", cause);
			free(cause);
			return;
		}
		m->works++;
		return;
	}
	m->works++;
	uv_queue_work(m->agent->loop, &k->w, vmm_work_run, vmm_work_done);
}

/* --- source -------------------------------------------------------------------- */

static void
vmm_progress(struct vm_migration *m)
{
	Envelope		 env;
	Tern__MigrateProgress	 p = TERN__MIGRATE_PROGRESS__INIT;
	const struct vm_job	*j = &m->job;

	if (m->progress == NULL)
		return;
	p.name = m->name;
	p.phase = (char *)vmm_state_names[m->state];
	p.elapsed_ms = now_ms() - m->start_ms;
	p.mode = (char *)(m->switched ? "postcopy" : "precopy");
	if (j->active) {
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
	m->progress(m->arg, &env, 0, NULL);
}

static void
vmm_tick(uv_timer_t *t)
{
	struct vm_migration	*m = t->data;

	if (m->state == VMM_MIGRATING || m->state == VMM_POSTCOPY) {
		if (!m->stats_busy)
			vmm_work_queue(m, VMMW_STATS);
	} else
		vmm_progress(m);
}

static void
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
static void
vmm_stats(struct vm_migration *m, struct vmm_work *k)
{
	struct vm_policy_sample	 s;
	char			 why[256], text[300];

	m->stats_busy = 0;
	/* An ending job (aborted, completing) reads all zeros. */
	if (k->rc != 0 || !k->job.active || k->job.data_total == 0 ||
	    (m->state != VMM_MIGRATING && m->state != VMM_POSTCOPY))
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
	s.now_ms = now_ms() - m->start_ms;
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
		vmm_set_state(m, VMM_POSTCOPY);
		vmm_work_queue(m, VMMW_POSTCOPY);
		break;
	case VM_POLICY_ABORT:
		vmm_note(m, why);
		free(m->abort_reason);
		m->abort_reason = xstrdup(why);
		vmm_work_queue(m, VMMW_ABORT);
		break;
	}
}

static void
vmm_answer_error(struct vm_migration *m, int code, const char *text)
{
	instances_done_cb	cb = m->cb;

	m->cb = NULL;
	m->progress = NULL;
	uv_timer_stop(&m->tick);
	if (cb != NULL)
		cb(m->arg, NULL, code, text);
}

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
	vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, why, 0, 0);
	if (m->in != NULL) {
		instance_set_error(m->in, why);
		instance_set_state(m->in, INST_RUNNING, "migration rolled back");
	}
	xasprintf(&text, "migration of %s to %s failed: %s; it keeps running "
	    "on %s", m->name, m->peer, why, m->agent->conf->host_name);
	vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
	free(text);
	free(why);
	vmm_free(m);
}

static void
vmm_source_done(struct vm_migration *m, int have_numbers)
{
	Envelope		 env;
	Tern__MigrateReply	 r = TERN__MIGRATE_REPLY__INIT;
	instances_done_cb	 cb = m->cb;
	uint64_t		 total = now_ms() - m->start_ms;
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
	if (m->in != NULL) {
		struct instance		*in = m->in;
		struct instances	*set = in->set;

		/* Its domain left with its definition: nothing to keep. */
		m->in = NULL;
		instance_destroy(in);
		instances_op_done(set);
	}
	m->cb = NULL;
	m->progress = NULL;
	uv_timer_stop(&m->tick);
	if (cb != NULL) {
		r.name = m->name;
		r.to = m->peer;
		r.mode = (char *)(m->switched ? "postcopy" : "precopy");
		r.total_ms = total;
		r.frozen_ms = m->downtime_ms;
		r.bytes = m->bytes != 0 ? m->bytes : m->job.data_processed;
		r.policy = m->policy_note;
		r.has_bandwidth = m->bandwidth > 0;
		r.bandwidth = m->bandwidth;
		msg_init(&env, 0);
		env.body_case = TERN__ENVELOPE__BODY_MIGRATE_REPLY;
		env.migrate_reply = &r;
		cb(m->arg, &env, 0, NULL);
	}
	vmm_free(m);
}

/* libvirt's migration call returned. */
static void
vmm_migrated(struct vm_migration *m, struct vmm_work *k)
{
	char	*text;

	vmm_drop_chans(m);
	vmm_close_listener(&m->lis[0]);
	vmm_close_listener(&m->lis[1]);
	if (k->rc == 0) {
		/* The domain runs on T and is gone here. */
		vmm_set_state(m, VMM_FINISHING);
		uv_timer_start(&m->timer, vmm_timeout, VMM_COMPLETE_WAIT_MS, 0);
		if (vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMMIT, NULL, 0,
		    0) != 0)
			vmm_source_done(m, 0);
		return;
	}
	if ((m->switched || k->run == VM_POSTCOPY) && k->run != VM_RUNNING) {
		/* Past the switch: only T can run it now. */
		xasprintf(&text, "post-copy of %s to %s broke after the switch: "
		    "%s; its memory is split between the hosts and libvirt "
		    "keeps it paused (post-copy failed) on %s: recover it "
		    "there with `virsh migrate --postcopy-resume` when the "
		    "link is back, or restore its last checkpoint", m->name,
		    m->peer, k->cause, m->peer);
		log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name, text);
		if (m->in != NULL) {
			instance_set_error(m->in, text);
			instance_set_state(m->in, INST_STOPPED, "post-copy broke");
		}
		vmm_answer_error(m, TERN__ERROR_CODE__ERROR_UNAVAILABLE, text);
		free(text);
		vmm_free(m);
		return;
	}
	if (k->run != VM_RUNNING)
		log_warnx("vmig %" PRIx64 " %s: after the failed migration "
		    "libvirt reports it %s", m->id, m->name, k->run ==
		    VM_PAUSED ? "paused" : k->run == VM_ABSENT ? "gone" :
		    "not running");
	if (m->abort_reason != NULL)
		vmm_source_fail(m, "%s (libvirt: %s)", m->abort_reason,
		    k->cause);
	else
		vmm_source_fail(m, "%s", k->cause);
}

static void
vmm_source_go(struct vm_migration *m)
{
	char	*cause = NULL;

	if (mkdir_p(m->dir, 0700, &cause) != 0 ||
	    vmm_listen(m, &m->lis[0], "libvirt", &cause) != 0 ||
	    vmm_listen(m, &m->lis[1], "qemu", &cause) != 0) {
		vmm_source_fail(m, "%s", cause);
		free(cause);
		return;
	}
	vmm_set_state(m, VMM_MIGRATING);
	vmm_work_queue(m, VMMW_MIGRATE);
}

static void
vmm_source_step(struct vm_migration *m, const Tern__MigrateStep *s)
{
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__READY:
		if (m->state == VMM_OFFERED)
			vmm_source_go(m);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		if (m->state == VMM_OFFERED)
			vmm_source_fail(m, "%s refused: %s", m->peer,
			    s->error != NULL ? s->error : "no reason given");
		else if (m->state == VMM_MIGRATING) {
			/* libvirt's call returns with the details. */
			free(m->abort_reason);
			xasprintf(&m->abort_reason, "%s aborted: %s", m->peer,
			    s->error != NULL ? s->error : "no reason given");
			vmm_work_queue(m, VMMW_ABORT);
		} else if (m->state == VMM_FINISHING)
			log_warnx("vmig %" PRIx64 " %s: %s could not take it in "
			    "after libvirt moved it: %s", m->id, m->name,
			    m->peer, s->error != NULL ? s->error : "?");
		break;
	case TERN__MIGRATE_STEP__STEP__COMPLETE:
		if (m->state != VMM_FINISHING)
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
static void
vmm_source_offer(struct vm_migration *m, struct vmm_work *k)
{
	struct vm_policy_conf	*pc = &m->policy.conf;
	Envelope		 env;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;
	char			*cause = NULL;

	if (k->rc != 0) {
		vmm_source_fail(m, "%s", k->cause);
		return;
	}
	m->memory = k->memory;
	if (pc->deadline_ms == 0)
		pc->deadline_ms = vm_policy_deadline(m->memory);
	log_info("vmig %" PRIx64 " %s: %s -> %s, live (%s%s%s), %" PRIu64
	    " MiB, deadline %" PRIu64 " s", m->id, m->name,
	    m->agent->conf->host_name, m->peer, pc->force_postcopy ?
	    "post-copy after the first pass" : "pre-copy",
	    pc->allow_postcopy && !pc->force_postcopy ? ", post-copy if it "
	    "does not converge" : "", pc->auto_converge ? ", auto-converge" :
	    "", m->memory >> 20, pc->deadline_ms / 1000);
	msg_init(&env, 0);
	o.migration = m->id;
	o.name = m->name;
	o.kind = "vm";
	o.spec = m->in->spec_text;
	o.spec_dir = m->dir;
	o.generation = 0;
	o.mode = (char *)m->mode;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	if (peers_send(m->agent->peers, m->peer, &env, &cause) != 0) {
		vmm_source_fail(m, "%s", cause);
		free(cause);
	}
}

void
vm_migration_start(struct agent *a, struct instance *in,
    const Tern__MigrateRequest *r, instances_done_cb progress,
    instances_done_cb cb, void *arg)
{
	struct vm_migration	*m;
	struct vm_policy_conf	 pc;
	const char		*mode = r->mode != NULL ? r->mode : "auto";
	char			*cause = NULL;
	struct vm_migration	*x;
	unsigned		 n;

	if (strcmp(mode, "auto") != 0 && strcmp(mode, "precopy") != 0 &&
	    strcmp(mode, "postcopy") != 0) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, "a VM "
		    "migrates live: mode must be auto, precopy or postcopy");
		return;
	}
	if (a->vms == NULL || !vm_host_up(a->vms)) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "libvirt is not connected on this host");
		return;
	}
	if (r->has_bandwidth && r->bandwidth < VMM_BANDWIDTH_MIN) {
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--bandwidth "
		    "for a VM: at least 1M (QEMU's limit counts whole MiB/s)");
		return;
	}
	if (in->state != INST_RUNNING || in->vm_busy) {
		xasprintf(&cause, "instance %s is %s: only a running instance "
		    "migrates", in->name, in->vm_busy ? "busy" :
		    inst_state_names[in->state]);
		goto refuse;
	}
	if (strcmp(r->to, a->conf->host_name) == 0) {
		xasprintf(&cause, "instance %s already runs on %s", in->name,
		    r->to);
		goto refuse;
	}
	if (peers_mux(a->peers, r->to) == NULL) {
		xasprintf(&cause, "host %s is not up (ternctl hosts)", r->to);
		goto refuse;
	}
	for (x = a->vm_migrations; x != NULL; x = x->next)
		if (strcmp(x->name, in->name) == 0) {
			xasprintf(&cause, "instance %s is already migrating",
			    in->name);
			goto refuse;
		}
	for (x = a->vm_migrations, n = 0; x != NULL; x = x->next)
		if (x->source && !x->closing)
			n++;
	if (n >= (unsigned)a->conf->max_vm_migrations) {
		/* Each holds a thread for as long as it runs. */
		xasprintf(&cause, "instance %s: %u VM migrations are running "
		    "from %s, the most max_vm_migrations allows: wait for one "
		    "to finish, or raise max_vm_migrations", in->name, n,
		    a->conf->host_name);
		cb(arg, NULL, TERN__ERROR_CODE__ERROR_RESOURCE, cause);
		free(cause);
		return;
	}
	memset(&pc, 0, sizeof pc);
	pc.allow_postcopy = strcmp(mode, "precopy") != 0;
	pc.force_postcopy = strcmp(mode, "postcopy") == 0;
	pc.auto_converge = !(r->has_no_auto_converge && r->no_auto_converge);
	pc.stall_ms = VMM_STALL_MS;
	/* 0: scaled by the guest's memory, once libvirt told it. */
	pc.deadline_ms = r->has_timeout_ms ? r->timeout_ms : 0;

	m = vmm_new(a, r->to, ++a->next_migration | (a->boot_id << 16), 1,
	    in->name);
	m->in = in;
	m->cb = cb;
	m->progress = progress;
	m->arg = arg;
	/* The request is gone once this returns: a string of our own. */
	m->mode = pc.force_postcopy ? "postcopy" : pc.allow_postcopy ?
	    "auto" : "precopy";
	m->bandwidth = r->has_bandwidth ? r->bandwidth : 0;
	m->max_downtime_ms = r->has_max_downtime_ms ? r->max_downtime_ms : 0;
	m->auto_converge = pc.auto_converge;
	vm_policy_init(&m->policy, &pc);
	in->set->busy++;
	instance_set_state(in, INST_MIGRATING, NULL);
	uv_timer_start(&m->tick, vmm_tick, VMM_TICK_MS, VMM_TICK_MS);
	vmm_progress(m);
	vmm_work_queue(m, VMMW_MEMORY);
	return;
refuse:
	cb(arg, NULL, TERN__ERROR_CODE__ERROR_BAD_REQUEST, cause);
	free(cause);
}

/* Forced post-copy switches the moment the second pass starts: waiting
 * for the next reading of the job could let a quick migration finish
 * by pre-copy alone. */
void
vm_migration_iteration(struct agent *a, const char *name, int n)
{
	struct vm_migration	*m;

	for (m = a->vm_migrations; m != NULL; m = m->next)
		if (m->source && strcmp(m->name, name) == 0)
			break;
	if (m == NULL || (m->state != VMM_MIGRATING &&
	    m->state != VMM_POSTCOPY))
		return;
	log_debug("vmig %" PRIx64 " %s: memory pass %d", m->id, m->name, n);
	if (n > 0 && (uint64_t)n > m->passes)
		m->passes = (uint64_t)n;
	if (m->state != VMM_MIGRATING || !m->policy.conf.force_postcopy ||
	    n < 2)
		return;
	vmm_note(m, "first pass done: switching to post-copy as asked");
	vm_policy_postcopy(&m->policy);
	vmm_set_state(m, VMM_POSTCOPY);
	vmm_work_queue(m, VMMW_POSTCOPY);
}

/* QEMU switched to post-copy; libvirt's job completed (before its
 * migration call returns). */
void
vm_migration_event(struct agent *a, const char *name, enum vm_ev ev,
    int detail)
{
	struct vm_migration	*m;

	for (m = a->vm_migrations; m != NULL; m = m->next)
		if (m->source && !m->closing && strcmp(m->name, name) == 0)
			break;
	if (m == NULL)
		return;
	if (ev == VM_EV_POSTCOPY_SWITCH) {
		if (!m->switched)
			log_info("vmig %" PRIx64 " %s: QEMU switched to "
			    "post-copy: the guest runs on %s", m->id, m->name,
			    m->peer);
		m->switched = 1;
		/* Switched from outside (virsh migrate-postcopy): nothing
		 * more to decide here either. */
		if (m->state == VMM_MIGRATING) {
			vm_policy_postcopy(&m->policy);
			vmm_set_state(m, VMM_POSTCOPY);
		}
		return;
	}
	log_debug("vmig %" PRIx64 " %s: libvirt's job completed, QEMU's "
	    "downtime %d ms", m->id, m->name, detail);
	m->qemu_downtime_ms = detail;
}

void
vm_migration_cancel(struct agent *a, const char *name, instances_done_cb cb,
    void *arg)
{
	struct vm_migration	*m;

	for (m = a->vm_migrations; m != NULL; m = m->next)
		if (m->source && strcmp(m->name, name) == 0)
			break;
	if (m == NULL) {
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "no migration of %s is running from this host", name);
		return;
	}
	switch (m->state) {
	case VMM_OFFERED:
		vmm_source_fail(m, "cancelled by the operator");
		break;
	case VMM_MIGRATING:
		free(m->abort_reason);
		m->abort_reason = xstrdup("cancelled by the operator");
		vmm_work_queue(m, VMMW_ABORT);
		break;
	default:
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "the migration of %s is past the point of no return (%s): "
		    "it can only finish on %s", name,
		    vmm_state_names[m->state], m->peer);
		return;
	}
	reply_done(cb, arg, "cancelling the migration of %s to %s", name,
	    m->peer);
}

/* --- target -------------------------------------------------------------------- */

static void
vmm_target_checked(struct vm_migration *m, struct vmm_work *k)
{
	if (m->abandoned != NULL || m->state != VMM_CHECKING) {
		/* Given up while libvirt was asked: nothing of ours exists
		 * (whatever has that name there is someone else's), and it
		 * must not become READY again. */
		log_info("vmig %" PRIx64 " %s: discarded before it was ready: "
		    "%s", m->id, m->name, m->abandoned != NULL ? m->abandoned :
		    vmm_state_names[m->state]);
		vmm_free(m);
		return;
	}
	if (k->rc != 0) {
		log_warnx("vmig %" PRIx64 " %s: refused: %s", m->id, m->name,
		    k->cause);
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__ABORT, k->cause, 0,
		    0);
		vmm_free(m);
		return;
	}
	vmm_set_state(m, VMM_READY);
	if (vmm_send_step(m, TERN__MIGRATE_STEP__STEP__READY, NULL, 0, 0) != 0)
		vmm_target_clean(m, "the source went away");
}

/* The domain runs here (COMMIT), or S vanished and libvirt may have
 * finished anyway (SETTLE). */
static void
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
		vmm_free(m);
		return;
	}
	if (!commit && (k->rc != 0 || (k->run != VM_RUNNING &&
	    k->run != VM_POSTCOPY))) {
		vmm_target_clean(m, "the source went away before the end");
		return;
	}
	if (set == NULL || instance_find(set, m->name) != NULL) {
		log_warnx("vmig %" PRIx64 " %s: arrived but cannot be "
		    "registered here (instance table %s)", m->id, m->name,
		    set == NULL ? "closed" : "has that name");
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
		    "its log; ternctl start %s)", m->agent->conf->host_name,
		    m->name);
		instance_set_error(in, cause);
		instance_set_state(in, INST_STOPPED, "arrived shut off");
	} else if (k->run != VM_RUNNING)
		instance_set_error(in, k->run == VM_POSTCOPY ? "post-copy "
		    "did not finish cleanly (libvirt: post-copy)" : "arrived "
		    "paused");
	log_info("vmig %" PRIx64 " %s: arrived from %s, QEMU's downtime %"
	    PRIu64 " ms%s%s", m->id, m->name, m->peer, k->job.downtime_ms,
	    cause != NULL ? "; " : "", cause != NULL ? cause : "");
	if (commit)
		vmm_send_step(m, TERN__MIGRATE_STEP__STEP__COMPLETE, cause,
		    k->job.downtime_ms, k->job.data_processed);
	free(cause);
	vmm_free(m);
}

/* Given up while its name is being checked: the check's answer ends it
 * (vmm_target_checked).  Nothing to clean: the domain of that name, if
 * there is one, is not ours. */
static void
vmm_target_abandon(struct vm_migration *m, const char *why)
{
	if (m->abandoned == NULL)
		m->abandoned = xstrdup(why);
}

static void
vmm_target_clean(struct vm_migration *m, const char *why)
{
	if (m->state == VMM_CLEANING)
		return;
	log_info("vmig %" PRIx64 " %s: discarded: %s", m->id, m->name, why);
	vmm_drop_chans(m);
	vmm_set_state(m, VMM_CLEANING);
	vmm_work_queue(m, VMMW_CLEAN);
}

void
vm_migration_offer(struct agent *a, const char *peer,
    const Tern__MigrateOffer *o)
{
	struct vm_migration	*m, *x;
	char			*dir, *cause = NULL;
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;
	int			 incoming = 0;

	if (vmm_find(a, peer, o->migration, 0) != NULL)
		return;		/* duplicate */
	for (x = a->vm_migrations; x != NULL; x = x->next)
		incoming += !x->source;
	xasprintf(&dir, "%s/vm-migrate", a->conf->run_dir);
	if (incoming >= a->conf->max_incoming_vm_migrations)
		/* Each holds libvirtd connections and a QEMU. */
		xasprintf(&cause, "%s takes %d incoming VM migrations at a time "
		    "(max_incoming_vm_migrations); try again when one is done",
		    a->conf->host_name, a->conf->max_incoming_vm_migrations);
	else if (a->vms == NULL || !vm_host_up(a->vms))
		xasprintf(&cause, "no libvirt on %s (%s)", a->conf->host_name,
		    a->vms == NULL ? "libvirt_uri is empty" : "libvirtd does "
		    "not answer");
	else if (a->instances == NULL)
		xasprintf(&cause, "%s is not open for instances yet",
		    a->conf->host_name);
	else if (!host_name_valid(o->name))
		xasprintf(&cause, "bad instance name");
	else if (instance_find(a->instances, o->name) != NULL)
		xasprintf(&cause, "%s already has an instance %s",
		    a->conf->host_name, o->name);
	else if (strcmp(o->spec_dir, dir) != 0)
		/* QEMU takes one socket path for both ends. */
		xasprintf(&cause, "the migration sockets are in %s here, %s "
		    "there: give both hosts the same run_dir", dir,
		    o->spec_dir);
	free(dir);
	for (x = a->vm_migrations; cause == NULL && x != NULL; x = x->next)
		if (strcmp(x->name, o->name) == 0)
			xasprintf(&cause, "%s is already migrating", o->name);
	if (cause != NULL) {
		log_warnx("vmig %" PRIx64 " %s from %s: refused: %s",
		    o->migration, o->name, peer, cause);
		msg_init(&env, 0);
		ms.migration = o->migration;
		ms.step = TERN__MIGRATE_STEP__STEP__ABORT;
		ms.error = cause;
		env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
		env.migrate_step = &ms;
		peers_send(a->peers, peer, &env, NULL);
		free(cause);
		return;
	}
	m = vmm_new(a, peer, o->migration, 0, o->name);
	log_info("vmig %" PRIx64 " %s: offered by %s", m->id, m->name, peer);
	vmm_set_state(m, VMM_CHECKING);
	vmm_work_queue(m, VMMW_CHECK);
}

static void
vmm_target_step(struct vm_migration *m, const Tern__MigrateStep *s)
{
	switch (s->step) {
	case TERN__MIGRATE_STEP__STEP__COMMIT:
		if (m->state != VMM_READY)
			break;
		vmm_drop_chans(m);
		vmm_set_state(m, VMM_ARRIVING);
		vmm_work_queue(m, VMMW_ARRIVE);
		break;
	case TERN__MIGRATE_STEP__STEP__ABORT:
		if (m->state == VMM_CHECKING)
			vmm_target_abandon(m, s->error != NULL ? s->error :
			    "aborted by the source");
		else if (m->state == VMM_READY)
			vmm_target_clean(m, s->error != NULL ? s->error :
			    "aborted by the source");
		break;
	default:
		break;
	}
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

static void
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
