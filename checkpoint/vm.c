#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define LOG_MODULE "vm"
#include "checkpoint/vm.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define VM_KEEPALIVE_S		5	/* ... times VM_KEEPALIVE_COUNT */
#define VM_KEEPALIVE_COUNT	3
#define VM_RETRY_MIN_MS		500
#define VM_RETRY_MAX_MS		10000
#define VM_NAME_MAX		256
#define VM_DISKS_MAX		16
#define VM_OVERLAY_SUFFIX	".tern-overlay"
#define VM_OVERLAY_SUFFIX_LEN	(sizeof VM_OVERLAY_SUFFIX - 1)
#define VM_COMMIT_WAIT_MS	60000

/* An event on its way from libvirt's thread to the loop. */
struct vm_event {
	struct vm_event	*next;
	char		*name;		/* NULL: the connection */
	enum vm_ev	 ev;
	int		 detail;
	char		*why;
};

struct vm_host {
	uv_loop_t	*loop;
	char		*uri;
	vm_event_cb	 cb;
	void		*arg;

	pthread_mutex_t	 lock;		/* conn and the queue */
	virConnectPtr	 conn;		/* NULL while down */
	int		 lifecycle_id;
	int		 iteration_id;
	int		 completed_id;
	struct vm_event	*head, **tail;

	pthread_t	 thread;	/* runs libvirt's event loop */
	volatile int	 stop;
	uv_async_t	 async;
	uv_timer_t	 retry;
	uint64_t	 retry_ms;
	uv_work_t	 work;		/* a reconnect in flight */
	int		 reconnecting;
	virConnectPtr	 fresh;		/* what the reconnect opened */
	char		*fresh_error;
	int		 closing;
	int		 handles;
};

static pthread_once_t	vm_once = PTHREAD_ONCE_INIT;
static int		vm_impl_rc;

static void
vm_silent(void *arg, virErrorPtr e)
{
	/* libvirt prints every error on stderr by default; ours carry them
	 * to the operator instead. */
}

static void
vm_init_once(void)
{
	virSetErrorFunc(NULL, vm_silent);
	vm_impl_rc = virEventRegisterDefaultImpl();
}

static void	vm_fail(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* *cause = what we asked, then libvirt's reason (its last error in this
 * thread). */
static void
vm_fail(char **cause, const char *fmt, ...)
{
	const char	*why = virGetLastErrorMessage();
	char		*what;
	va_list		 ap;

	va_start(ap, fmt);
	xvasprintf(&what, fmt, ap);
	va_end(ap);
	set_cause(cause, "%s: %s", what, why != NULL ? why : "unknown error");
	free(what);
}

static void
vm_queue(struct vm_host *h, const char *name, enum vm_ev ev, int detail,
    const char *why)
{
	struct vm_event	*e;

	e = xcalloc(1, sizeof *e);
	e->name = name != NULL ? xstrdup(name) : NULL;
	e->ev = ev;
	e->detail = detail;
	e->why = why != NULL ? xstrdup(why) : NULL;
	pthread_mutex_lock(&h->lock);
	*h->tail = e;
	h->tail = &e->next;
	pthread_mutex_unlock(&h->lock);
	uv_async_send(&h->async);
}

/* libvirt's thread: a lifecycle event in our words. */
static int
vm_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail,
    void *opaque)
{
	enum vm_ev	 ev = VM_EV_OTHER;
	const char	*why = NULL;
	int		 mig = 0;

	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		ev = VM_EV_DEFINED;
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		ev = VM_EV_UNDEFINED;
		break;
	case VIR_DOMAIN_EVENT_STARTED:
		ev = VM_EV_STARTED;
		mig = detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED;
		why = detail == VIR_DOMAIN_EVENT_STARTED_RESTORED ?
		    "restored from a saved state" : NULL;
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		ev = VM_EV_SUSPENDED;
		mig = detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED ||
		    detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY ||
		    detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED;
		why = detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED ?
		    "post-copy failed" : detail ==
		    VIR_DOMAIN_EVENT_SUSPENDED_IOERROR ? "I/O error" : NULL;
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		ev = VM_EV_RESUMED;
		mig = detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED ||
		    detail == VIR_DOMAIN_EVENT_RESUMED_POSTCOPY;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		ev = VM_EV_STOPPED;
		switch (detail) {
		case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
			why = "the guest shut down";
			break;
		case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
			why = "destroyed";
			break;
		case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
			why = "the guest crashed";
			break;
		case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
			why = "migrated away";
			mig = 1;
			break;
		case VIR_DOMAIN_EVENT_STOPPED_SAVED:
			why = "saved";
			break;
		case VIR_DOMAIN_EVENT_STOPPED_FAILED:
			why = "QEMU failed (killed or crashed)";
			break;
		default:
			why = "stopped";
			break;
		}
		break;
	default:
		break;
	}
	vm_queue(opaque, virDomainGetName(d), ev, mig, why);
	/* A switch asked for is not one made: QEMU may finish by pre-copy
	 * first.  This pause is QEMU making it. */
	if (event == VIR_DOMAIN_EVENT_SUSPENDED &&
	    detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)
		vm_queue(opaque, virDomainGetName(d), VM_EV_POSTCOPY_SWITCH, 1,
		    NULL);
	return 0;
}

/* libvirt's thread: an outgoing migration starts memory pass n. */
static void
vm_iteration(virConnectPtr c, virDomainPtr d, int n, void *opaque)
{
	vm_queue(opaque, virDomainGetName(d), VM_EV_ITERATION, n, NULL);
}

/* libvirt's thread: a job finished.  For an outgoing migration these are
 * the source's final numbers, QEMU's downtime among them: the only place
 * that has it for a post-copy (the target keeps no completed job then),
 * and the domain is gone from here once the migration call returns. */
static void
vm_job_completed(virConnectPtr c, virDomainPtr d, virTypedParameterPtr p,
    int n, void *opaque)
{
	unsigned long long	downtime;
	int			op = 0, ms = -1;

	if (virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op) != 1 ||
	    op != VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
		return;
	if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DOWNTIME,
	    &downtime) == 1)
		ms = downtime > INT_MAX ? INT_MAX : (int)downtime;
	vm_queue(opaque, virDomainGetName(d), VM_EV_MIGRATED_OUT, ms, NULL);
}

/* libvirt's thread: keepalive timed out, libvirtd closed, ... */
static void
vm_closed(virConnectPtr c, int reason, void *opaque)
{
	static const char *const reasons[] = {
		"an error", "end of file (libvirtd stopped?)",
		"keepalive timeout", "a client request",
	};

	vm_queue(opaque, NULL, VM_EV_CONN_LOST, 0, reason >= 0 && reason < 4 ?
	    reasons[reason] : "an unknown reason");
}

static void *
vm_thread(void *arg)
{
	struct vm_host	*h = arg;

	while (!h->stop)
		if (virEventRunDefaultImpl() < 0)
			break;
	return NULL;
}

static void
vm_wake(int timer, void *arg)
{
	virEventRemoveTimeout(timer);
}

/* Open and set up a connection (any thread); NULL and *cause. */
static virConnectPtr
vm_connect(struct vm_host *h, char **cause)
{
	virConnectPtr	 c;

	if ((c = virConnectOpen(h->uri)) == NULL) {
		vm_fail(cause, "cannot connect to libvirtd at %s", h->uri);
		return NULL;
	}
	if (virConnectSetKeepAlive(c, VM_KEEPALIVE_S, VM_KEEPALIVE_COUNT) < 0)
		log_debug("libvirt %s: no keepalive: %s", h->uri,
		    virGetLastErrorMessage());
	return c;
}

/* Loop thread: make c the connection and watch it. */
static void
vm_adopt(struct vm_host *h, virConnectPtr c)
{
	int	id, it, done;

	virConnectRegisterCloseCallback(c, vm_closed, h, NULL);
	id = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(vm_lifecycle), h, NULL);
	if (id < 0)
		log_warnx("libvirt %s: no domain events: %s", h->uri,
		    virGetLastErrorMessage());
	it = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
	    VIR_DOMAIN_EVENT_CALLBACK(vm_iteration), h, NULL);
	done = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
	    VIR_DOMAIN_EVENT_CALLBACK(vm_job_completed), h, NULL);
	pthread_mutex_lock(&h->lock);
	h->conn = c;
	h->lifecycle_id = id;
	h->iteration_id = it;
	h->completed_id = done;
	pthread_mutex_unlock(&h->lock);
	h->retry_ms = VM_RETRY_MIN_MS;
}

static void
vm_drop(struct vm_host *h)
{
	virConnectPtr	c;

	pthread_mutex_lock(&h->lock);
	c = h->conn;
	h->conn = NULL;
	pthread_mutex_unlock(&h->lock);
	if (c == NULL)
		return;
	if (h->lifecycle_id >= 0)
		virConnectDomainEventDeregisterAny(c, h->lifecycle_id);
	if (h->iteration_id >= 0)
		virConnectDomainEventDeregisterAny(c, h->iteration_id);
	if (h->completed_id >= 0)
		virConnectDomainEventDeregisterAny(c, h->completed_id);
	virConnectUnregisterCloseCallback(c, vm_closed);
	virConnectClose(c);
}

static void	vm_retry(uv_timer_t *);

static void
vm_reconnect_work(uv_work_t *w)
{
	struct vm_host	*h = w->data;

	h->fresh = vm_connect(h, &h->fresh_error);
}

static void
vm_reconnect_done(uv_work_t *w, int status)
{
	struct vm_host	*h = w->data;

	h->reconnecting = 0;
	if (h->closing) {
		if (h->fresh != NULL)
			virConnectClose(h->fresh);
		h->fresh = NULL;
		free(h->fresh_error);
		h->fresh_error = NULL;
		return;
	}
	if (h->fresh == NULL) {
		log_debug("%s", h->fresh_error);
		free(h->fresh_error);
		h->fresh_error = NULL;
		h->retry_ms = h->retry_ms * 2 > VM_RETRY_MAX_MS ?
		    VM_RETRY_MAX_MS : h->retry_ms * 2;
		uv_timer_start(&h->retry, vm_retry, h->retry_ms, 0);
		return;
	}
	vm_adopt(h, h->fresh);
	h->fresh = NULL;
	log_info("libvirt %s: connected again", h->uri);
	h->cb(h->arg, NULL, VM_EV_CONN_UP, NULL, 0);
}

static void
vm_retry(uv_timer_t *t)
{
	struct vm_host	*h = t->data;

	if (h->closing || h->reconnecting || vm_host_up(h))
		return;
	h->reconnecting = 1;
	h->work.data = h;
	uv_queue_work(h->loop, &h->work, vm_reconnect_work, vm_reconnect_done);
}

/* Loop thread: hand over what libvirt's thread queued. */
static void
vm_dispatch(uv_async_t *a)
{
	struct vm_host	*h = a->data;
	struct vm_event	*e, *next;

	pthread_mutex_lock(&h->lock);
	e = h->head;
	h->head = NULL;
	h->tail = &h->head;
	pthread_mutex_unlock(&h->lock);
	for (; e != NULL; e = next) {
		next = e->next;
		if (!h->closing && e->name == NULL) {
			log_warnx("libvirt %s: connection lost: %s; "
			    "reconnecting", h->uri, e->why);
			vm_drop(h);
			uv_timer_start(&h->retry, vm_retry, h->retry_ms, 0);
			h->cb(h->arg, NULL, VM_EV_CONN_LOST, e->why, 0);
		} else if (!h->closing)
			h->cb(h->arg, e->name, e->ev, e->why, e->detail);
		free(e->name);
		free(e->why);
		free(e);
	}
}

struct vm_host *
vm_host_open(uv_loop_t *loop, const char *uri, vm_event_cb cb, void *arg,
    char **cause)
{
	struct vm_host	*h;
	virConnectPtr	 c;

	pthread_once(&vm_once, vm_init_once);
	if (vm_impl_rc != 0) {
		vm_fail(cause, "cannot set up libvirt's event loop");
		return NULL;
	}
	h = xcalloc(1, sizeof *h);
	h->loop = loop;
	h->uri = xstrdup(uri);
	h->cb = cb;
	h->arg = arg;
	h->lifecycle_id = h->iteration_id = h->completed_id = -1;
	h->tail = &h->head;
	h->retry_ms = VM_RETRY_MIN_MS;
	pthread_mutex_init(&h->lock, NULL);
	uv_async_init(loop, &h->async, vm_dispatch);
	h->async.data = h;
	uv_timer_init(loop, &h->retry);
	h->retry.data = h;
	/* They must not keep ternd's loop running: vm_host_close comes
	 * after it ended. */
	uv_unref((uv_handle_t *)&h->async);
	uv_unref((uv_handle_t *)&h->retry);
	if (pthread_create(&h->thread, NULL, vm_thread, h) != 0) {
		set_cause(cause, "cannot start libvirt's event thread: %s",
		    strerror(errno));
		h->stop = 1;
		vm_host_close(h);
		return NULL;
	}
	if ((c = vm_connect(h, cause)) != NULL)
		vm_adopt(h, c);
	else
		uv_timer_start(&h->retry, vm_retry, h->retry_ms, 0);
	return h;
}

static void
vm_host_freed(uv_handle_t *handle)
{
	struct vm_host	*h = handle->data;

	if (--h->handles > 0)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->uri);
	free(h);
}

void
vm_host_close(struct vm_host *h)
{
	struct vm_event	*e, *next;

	if (h == NULL)
		return;
	h->closing = 1;
	vm_drop(h);
	if (!h->stop) {
		h->stop = 1;
		/* An event that wakes libvirt's loop so the thread sees stop. */
		virEventAddTimeout(0, vm_wake, NULL, NULL);
		pthread_join(h->thread, NULL);
	}
	for (e = h->head; e != NULL; e = next) {
		next = e->next;
		free(e->name);
		free(e->why);
		free(e);
	}
	h->head = NULL;
	h->handles = 2;
	uv_close((uv_handle_t *)&h->async, vm_host_freed);
	uv_close((uv_handle_t *)&h->retry, vm_host_freed);
}

int
vm_host_up(struct vm_host *h)
{
	int	up;

	pthread_mutex_lock(&h->lock);
	up = h->conn != NULL;
	pthread_mutex_unlock(&h->lock);
	return up;
}

const char *
vm_host_uri(const struct vm_host *h)
{
	return h->uri;
}

/* --- domains (any thread) -------------------------------------------------- */

static virConnectPtr
vm_conn(struct vm_host *h, char **cause)
{
	virConnectPtr	c;

	pthread_mutex_lock(&h->lock);
	if ((c = h->conn) != NULL)
		virConnectRef(c);
	pthread_mutex_unlock(&h->lock);
	if (c == NULL)
		set_cause(cause, "libvirtd at %s is not connected (ternd "
		    "reconnects by itself; is libvirtd running?)", h->uri);
	return c;
}

/* The domain, or NULL: *absent says whether it just does not exist. */
static virDomainPtr
vm_domain(struct vm_host *h, const char *name, virConnectPtr *cp,
    int *absent, char **cause)
{
	virConnectPtr	 c;
	virDomainPtr	 d;
	virErrorPtr	 e;

	if (absent != NULL)
		*absent = 0;
	if ((c = vm_conn(h, cause)) == NULL)
		return NULL;
	if ((d = virDomainLookupByName(c, name)) == NULL) {
		e = virGetLastError();
		if (e != NULL && e->code == VIR_ERR_NO_DOMAIN) {
			if (absent != NULL)
				*absent = 1;
			set_cause(cause, "no domain %s in libvirt at %s", name,
			    h->uri);
		} else
			vm_fail(cause, "cannot look up domain %s", name);
		virConnectClose(c);
		return NULL;
	}
	*cp = c;
	return d;
}

static void
vm_put(virConnectPtr c, virDomainPtr d)
{
	if (d != NULL)
		virDomainFree(d);
	virConnectClose(c);
}

char *
vm_xml_name(const char *xml, char **cause)
{
	const char	*s, *e;
	size_t		 len;
	char		*name;

	/* The domain's own <name> comes before any device's. */
	if ((s = strstr(xml, "<name>")) == NULL ||
	    (e = strstr(s, "</name>")) == NULL) {
		set_cause(cause, "no <name> in the domain XML");
		return NULL;
	}
	s += strlen("<name>");
	while (s < e && (*s == ' ' || *s == '\n' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t'))
		e--;
	if ((len = (size_t)(e - s)) == 0 || len >= VM_NAME_MAX) {
		set_cause(cause, "bad <name> in the domain XML");
		return NULL;
	}
	name = xmalloc(len + 1);
	memcpy(name, s, len);
	name[len] = '\0';
	return name;
}

int
vm_state(struct vm_host *h, const char *name, enum vm_run *run, int *reason,
    char **cause)
{
	virConnectPtr	 c;
	virDomainPtr	 d;
	int		 absent, st, why = 0;

	*run = VM_ABSENT;
	if (reason != NULL)
		*reason = 0;
	if ((d = vm_domain(h, name, &c, &absent, cause)) == NULL) {
		if (!absent)
			return -1;
		free(*cause);
		*cause = NULL;
		return 0;
	}
	if (virDomainGetState(d, &st, &why, 0) < 0) {
		vm_fail(cause, "cannot get the state of %s", name);
		vm_put(c, d);
		return -1;
	}
	vm_put(c, d);
	switch (st) {
	case VIR_DOMAIN_SHUTOFF:
		*run = VM_SHUTOFF;
		break;
	case VIR_DOMAIN_RUNNING:
		*run = why == VIR_DOMAIN_RUNNING_POSTCOPY ? VM_POSTCOPY :
		    VM_RUNNING;
		break;
	case VIR_DOMAIN_PAUSED:
		*run = why == VIR_DOMAIN_PAUSED_POSTCOPY ||
		    why == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED ? VM_POSTCOPY :
		    why == VIR_DOMAIN_PAUSED_MIGRATION ? VM_INCOMING :
		    VM_PAUSED;
		break;
	default:
		*run = VM_OTHER;
		break;
	}
	if (reason != NULL)
		*reason = why;
	return 0;
}

int
vm_define(struct vm_host *h, const char *xml, char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;

	if ((c = vm_conn(h, cause)) == NULL)
		return -1;
	d = virDomainDefineXMLFlags(c, xml, VIR_DOMAIN_DEFINE_VALIDATE);
	if (d == NULL) {
		vm_fail(cause, "libvirt at %s refused the domain XML", h->uri);
		virConnectClose(c);
		return -1;
	}
	vm_put(c, d);
	return 0;
}

/* One call on one domain: fn returns < 0 on failure. */
static int
vm_call(struct vm_host *h, const char *name, int (*fn)(virDomainPtr),
    const char *verb, char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;
	int		rc = 0;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (fn(d) < 0) {
		vm_fail(cause, "cannot %s %s", verb, name);
		rc = -1;
	}
	vm_put(c, d);
	return rc;
}

static int
vm_undefine_fn(virDomainPtr d)
{
	return virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
	    VIR_DOMAIN_UNDEFINE_NVRAM);
}

int
vm_undefine(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, vm_undefine_fn, "undefine", cause);
}

int
vm_start(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, virDomainCreate, "start", cause);
}

int
vm_resume(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, virDomainResume, "resume", cause);
}

int
vm_shutdown(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, virDomainShutdown, "shut down",
	    cause);
}

int
vm_destroy(struct vm_host *h, const char *name, char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;
	int		st = 0, rc = 0;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (virDomainGetState(d, &st, NULL, 0) == 0 &&
	    st == VIR_DOMAIN_SHUTOFF)
		goto out;
	if (virDomainDestroy(d) < 0) {
		vm_fail(cause, "cannot destroy %s", name);
		rc = -1;
	}
out:
	vm_put(c, d);
	return rc;
}

char *
vm_xml(struct vm_host *h, const char *name, char **cause)
{
	virConnectPtr	 c;
	virDomainPtr	 d;
	char		*xml, *copy;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return NULL;
	if ((xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE)) == NULL) {
		vm_fail(cause, "cannot get the definition of %s", name);
		vm_put(c, d);
		return NULL;
	}
	vm_put(c, d);
	copy = xstrdup(xml);
	free(xml);
	return copy;
}

int
vm_memory(struct vm_host *h, const char *name, uint64_t *bytes, char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;
	virDomainInfo	info;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (virDomainGetInfo(d, &info) < 0) {
		vm_fail(cause, "cannot get the memory size of %s", name);
		vm_put(c, d);
		return -1;
	}
	vm_put(c, d);
	*bytes = (uint64_t)info.memory * 1024;
	return 0;
}

int
vm_save(struct vm_host *h, const char *name, const char *path, char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;
	int		rc = 0;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (virDomainSaveFlags(d, path, NULL, 0) < 0) {
		vm_fail(cause, "cannot save %s", name);
		rc = -1;
	}
	vm_put(c, d);
	return rc;
}

int
vm_restore(struct vm_host *h, const char *path, const char *xml,
    char **cause)
{
	virConnectPtr	c;

	if ((c = vm_conn(h, cause)) == NULL)
		return -1;
	if (virDomainRestoreFlags(c, path, xml, VIR_DOMAIN_SAVE_RUNNING) < 0) {
		vm_fail(cause, "cannot restore from %s", path);
		virConnectClose(c);
		return -1;
	}
	virConnectClose(c);
	return 0;
}

int
vm_snapshot_live(struct vm_host *h, const char *name, const char *path,
    uint64_t *downtime_ms, char **cause)
{
	virConnectPtr		 c;
	virDomainPtr		 d;
	virDomainSnapshotPtr	 snap;
	char			*desc, *xml;
	struct vm_job		 j;
	int			 rc = -1;

	*downtime_ms = 0;
	if (strpbrk(path, "<>&'\"") != NULL) {
		set_cause(cause, "%s: not a path for a snapshot", path);
		return -1;
	}
	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if ((desc = virDomainGetXMLDesc(d, 0)) == NULL) {
		vm_fail(cause, "cannot get the definition of %s", name);
		goto out;
	}
	if (strstr(desc, "<disk ") != NULL) {
		free(desc);
		rc = 1;
		goto out;
	}
	free(desc);
	xasprintf(&xml, "<domainsnapshot><memory snapshot='external' "
	    "file='%s'/></domainsnapshot>", path);
	snap = virDomainSnapshotCreateXML(d, xml,
	    VIR_DOMAIN_SNAPSHOT_CREATE_LIVE |
	    VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA);
	free(xml);
	if (snap == NULL) {
		vm_fail(cause, "cannot snapshot %s live", name);
		goto out;
	}
	virDomainSnapshotFree(snap);
	rc = 0;
out:
	vm_put(c, d);
	if (rc == 0 && vm_job_stats(h, name, 1, &j, NULL) == 0)
		*downtime_ms = j.downtime_ms;
	return rc;
}

/* --- memory and disks at one instant (any thread) ------------------------- */

struct vm_disk {
	char	*target;		/* vda */
	char	*path;			/* its image file */
	int	 on_overlay;		/* still on our overlay of it */
};

static void
vm_disks_free(struct vm_disk *dk, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(dk[i].target);
		free(dk[i].path);
	}
	free(dk);
}

/* The value of attribute attr (attr='...') between s and e, or NULL. */
static char *
vm_attr(const char *s, const char *e, const char *attr)
{
	const char	*p, *q;
	char		*key, *v;
	size_t		 n;

	xasprintf(&key, " %s='", attr);
	p = e != NULL ? strstr(s, key) : NULL;
	n = strlen(key);
	free(key);
	if (p == NULL || p >= e || (q = strchr(p + n, '\'')) == NULL || q >= e)
		return NULL;
	v = xmalloc((size_t)(q - p - n) + 1);
	memcpy(v, p + n, (size_t)(q - p - n));
	v[q - p - n] = '\0';
	return v;
}

static int
vm_within(const char *s, const char *e, const char *pat)
{
	const char	*p = strstr(s, pat);

	return p != NULL && p < e;
}

/* The domain's disks from its live XML (libvirt formats it, one way):
 * each must be a writable file disk, the only kind whose content the
 * generation can carry; with any, every disk (path NULL if no file). */
static int
vm_disks_any(const char *name, const char *xml, int any, struct vm_disk **out,
    size_t *np, char **cause)
{
	struct vm_disk	*dk = NULL;
	const char	*s, *e, *src;
	char		*type = NULL, *dev = NULL;
	size_t		 n = 0;
	int		 rc = -1;

	for (s = strstr(xml, "<disk "); s != NULL; s = strstr(e, "<disk ")) {
		if ((e = strstr(s, "</disk>")) == NULL) {
			set_cause(cause, "%s: a <disk> without its end", name);
			goto out;
		}
		if (n == VM_DISKS_MAX) {
			set_cause(cause, "%s has more than %d disks", name,
			    VM_DISKS_MAX);
			goto out;
		}
		dk = xreallocarray(dk, n + 1, sizeof *dk);
		memset(&dk[n], 0, sizeof *dk);
		n++;
		type = vm_attr(s, strchr(s, '>'), "type");
		dev = vm_attr(s, strchr(s, '>'), "device");
		dk[n - 1].target = (src = strstr(s, "<target ")) != NULL &&
		    src < e ? vm_attr(src, e, "dev") : NULL;
		src = strstr(s, "<source ");
		dk[n - 1].path = src != NULL && src < e ? vm_attr(src, e,
		    "file") : NULL;
		if (dk[n - 1].target == NULL) {
			set_cause(cause, "%s: a disk without a target", name);
			goto out;
		}
		if (!any && (type == NULL || strcmp(type, "file") != 0 ||
		    dev == NULL || strcmp(dev, "disk") != 0 ||
		    dk[n - 1].path == NULL || vm_within(s, e, "<readonly/>") ||
		    vm_within(s, e, "<shareable/>"))) {
			set_cause(cause, "disk %s of %s (type %s, device %s%s%s)"
			    " cannot be snapshotted with its memory: only "
			    "writable file disks can (detach it, or protect %s "
			    "with --ha restart)", dk[n - 1].target, name,
			    type != NULL ? type : "?", dev != NULL ? dev : "?",
			    dk[n - 1].path == NULL ? ", no file" : "",
			    vm_within(s, e, "<readonly/>") ? ", read-only" :
			    vm_within(s, e, "<shareable/>") ? ", shareable" : "",
			    name);
			goto out;
		}
		if (dk[n - 1].path != NULL && strlen(dk[n - 1].path) >=
		    VM_OVERLAY_SUFFIX_LEN && strcmp(dk[n - 1].path +
		    strlen(dk[n - 1].path) - VM_OVERLAY_SUFFIX_LEN,
		    VM_OVERLAY_SUFFIX) == 0) {
			/* An earlier checkpoint's commit did not end. */
			dk[n - 1].path[strlen(dk[n - 1].path) -
			    VM_OVERLAY_SUFFIX_LEN] = '\0';
			dk[n - 1].on_overlay = 1;
		}
		if ((dk[n - 1].path != NULL &&
		    strpbrk(dk[n - 1].path, "<>&'\" \n") != NULL) ||
		    strpbrk(dk[n - 1].target, "<>&'\"/ \n.") != NULL) {
			set_cause(cause, "disk %s of %s: a path or name this "
			    "checkpoint does not quote", dk[n - 1].target,
			    name);
			goto out;
		}
		free(type);
		free(dev);
		type = dev = NULL;
	}
	rc = 0;
out:
	free(type);
	free(dev);
	if (rc != 0) {
		vm_disks_free(dk, n);
		dk = NULL;
		n = 0;
	}
	*out = dk;
	*np = n;
	return rc;
}

static int
vm_disks(const char *name, const char *xml, struct vm_disk **out, size_t *np,
    char **cause)
{
	return vm_disks_any(name, xml, 0, out, np, cause);
}

/* Copy [off, end) of in to the same offsets of out. */
static int
vm_copy_range(int in, int out, off_t off, off_t end, const char *src,
    const char *dst, char **cause)
{
	char	 buf[65536];
	ssize_t	 r, w, done;

	while (off < end) {
		r = pread(in, buf, (size_t)(end - off < (off_t)sizeof buf ?
		    end - off : (off_t)sizeof buf), off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			set_cause(cause, "cannot read %s: %s", src,
			    strerror(errno));
			return -1;
		}
		if (r == 0)
			break;		/* shrunk under us: what was there */
		for (done = 0; done < r; done += w) {
			w = pwrite(out, buf + done, (size_t)(r - done),
			    off + done);
			if (w == -1 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w == -1) {
				set_cause(cause, "cannot write %s: %s", dst,
				    strerror(errno));
				return -1;
			}
		}
		off += r;
	}
	return 0;
}

/* Copy src to dst (created), fsync'd.  Its holes stay holes: a sparse
 * image stays sparse. */
static int
vm_copy(const char *src, const char *dst, char **cause)
{
	struct stat	 st;
	off_t		 pos, data, hole;
	int		 in, out = -1, rc = -1;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "cannot open %s: %s", src, strerror(errno));
		return -1;
	}
	if (fstat(in, &st) != 0) {
		set_cause(cause, "cannot stat %s: %s", src, strerror(errno));
		goto out;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
		set_cause(cause, "cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	for (pos = 0; pos < st.st_size; pos = hole) {
		if ((data = lseek(in, pos, SEEK_DATA)) == -1 && errno == ENXIO)
			break;		/* a hole to the end */
		if (data == -1) {
			/* No SEEK_DATA here: all of it. */
			data = pos;
			hole = st.st_size;
		} else if ((hole = lseek(in, data, SEEK_HOLE)) == -1) {
			set_cause(cause, "cannot seek %s: %s", src,
			    strerror(errno));
			goto out;
		}
		if (vm_copy_range(in, out, data, hole, src, dst, cause) != 0)
			goto out;
	}
	if (ftruncate(out, st.st_size) != 0) {
		set_cause(cause, "cannot size %s: %s", dst, strerror(errno));
		goto out;
	}
	if (fsync(out) != 0) {
		set_cause(cause, "cannot fsync %s: %s", dst, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(in);
	if (out != -1)
		close(out);
	return rc;
}

/* Merge disk's overlay back into its image (an active commit, pivoted
 * once it is in step) and remove the overlay: the chain never grows. */
static int
vm_commit(virDomainPtr d, const char *name, const struct vm_disk *dk,
    char **cause)
{
	virDomainBlockJobInfo	 info;
	virErrorPtr		 e;
	char			*ovl;
	uint64_t		 t0 = now_ms();
	int			 r;

	/* One left running by an earlier checkpoint is taken over. */
	if (virDomainGetBlockJobInfo(d, dk->target, &info, 0) != 1 &&
	    virDomainBlockCommit(d, dk->target, NULL, NULL, 0,
	    VIR_DOMAIN_BLOCK_COMMIT_ACTIVE) < 0) {
		vm_fail(cause, "cannot commit disk %s of %s back", dk->target,
		    name);
		return -1;
	}
	for (;;) {
		r = virDomainGetBlockJobInfo(d, dk->target, &info, 0);
		if (r < 0) {
			vm_fail(cause, "cannot follow the commit of disk %s "
			    "of %s", dk->target, name);
			return -1;
		}
		if (r == 0) {
			set_cause(cause, "the commit of disk %s of %s ended "
			    "before its pivot", dk->target, name);
			return -1;
		}
		if (info.end > 0 && info.cur == info.end)
			break;
		if (now_ms() - t0 > VM_COMMIT_WAIT_MS) {
			virDomainBlockJobAbort(d, dk->target, 0);
			set_cause(cause, "the commit of disk %s of %s did not "
			    "catch up in %d s", dk->target, name,
			    VM_COMMIT_WAIT_MS / 1000);
			return -1;
		}
		usleep(10000);
	}
	/* QEMU may say it is in step before libvirt took its word for it
	 * ("not ready for pivot yet"): asked again. */
	while (virDomainBlockJobAbort(d, dk->target,
	    VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) < 0) {
		e = virGetLastError();
		if (e == NULL || e->code != VIR_ERR_BLOCK_COPY_ACTIVE ||
		    now_ms() - t0 > VM_COMMIT_WAIT_MS) {
			vm_fail(cause, "cannot pivot disk %s of %s back to %s",
			    dk->target, name, dk->path);
			return -1;
		}
		usleep(10000);
	}
	xasprintf(&ovl, "%s%s", dk->path, VM_OVERLAY_SUFFIX);
	if (unlink(ovl) != 0 && errno != ENOENT)
		log_warnx("%s: cannot remove %s: %s", name, ovl,
		    strerror(errno));
	free(ovl);
	return 0;
}

int
vm_snapshot_disks(struct vm_host *h, const char *name, const char *path,
    const char *dir, uint64_t *downtime_ms, char **cause)
{
	virConnectPtr		 c;
	virDomainPtr		 d;
	virDomainSnapshotPtr	 snap;
	struct vm_disk		*dk = NULL;
	struct vm_job		 j;
	char			*desc = NULL, *xml = NULL, *ovl, *dst, *list;
	char			*next, *why = NULL;
	size_t			 n = 0, i;
	int			 rc = -1, snapped = 0;

	*downtime_ms = 0;
	if (strpbrk(path, "<>&'\"") != NULL) {
		set_cause(cause, "%s: not a path for a snapshot", path);
		return -1;
	}
	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if ((desc = virDomainGetXMLDesc(d, 0)) == NULL) {
		vm_fail(cause, "cannot get the definition of %s", name);
		goto out;
	}
	if (vm_disks(name, desc, &dk, &n, cause) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (!dk[i].on_overlay)
			continue;
		log_info("%s: disk %s still on the overlay of an earlier "
		    "checkpoint: committing it first", name, dk[i].target);
		if (vm_commit(d, name, &dk[i], cause) != 0)
			goto out;
	}
	xasprintf(&xml, "<domainsnapshot><memory snapshot='external' "
	    "file='%s'/><disks>", path);
	list = xstrdup("");
	for (i = 0; i < n; i++) {
		/* One left by a ternd that died before its commit ended and
		 * not in use (vm_disks checked): in the way of this one. */
		xasprintf(&ovl, "%s%s", dk[i].path, VM_OVERLAY_SUFFIX);
		(void)unlink(ovl);
		xasprintf(&next, "%s<disk name='%s' snapshot='external' "
		    "type='file'><driver type='qcow2'/><source file='%s'/>"
		    "</disk>", xml, dk[i].target, ovl);
		free(xml);
		xml = next;
		xasprintf(&next, "%s%s %s\n", list, dk[i].target, dk[i].path);
		free(list);
		list = next;
		free(ovl);
	}
	xasprintf(&next, "%s</disks></domainsnapshot>", xml);
	free(xml);
	xml = next;
	/* Paused only for QEMU's switch-over: the memory and the new
	 * overlays start at the same instant, the images stay as they
	 * were then. */
	snap = virDomainSnapshotCreateXML(d, xml,
	    VIR_DOMAIN_SNAPSHOT_CREATE_LIVE |
	    VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA);
	if (snap == NULL) {
		vm_fail(cause, "cannot snapshot %s live with its disks", name);
		free(list);
		goto out;
	}
	virDomainSnapshotFree(snap);
	snapped = 1;
	if (vm_job_stats(h, name, 1, &j, NULL) == 0)
		*downtime_ms = j.downtime_ms;
	/* The images are frozen at the snapshot's instant until their
	 * commit: copied now, the guest writing to its overlays. */
	for (i = 0; i < n; i++) {
		xasprintf(&dst, "%s/%s%s", dir, VM_DISK_PREFIX, dk[i].target);
		rc = vm_copy(dk[i].path, dst, cause);
		free(dst);
		if (rc != 0)
			break;
	}
	if (rc == 0) {
		xasprintf(&dst, "%s/%s", dir, VM_DISKS_LIST);
		rc = write_file_atomic(dst, list, cause);
		free(dst);
	}
	free(list);
out:
	/* Committed back whatever happened to the copies. */
	for (i = 0; snapped && i < n; i++) {
		if (vm_commit(d, name, &dk[i], &why) == 0)
			continue;
		if (rc == 0) {
			rc = -1;
			set_cause(cause, "%s", why);
		} else
			log_warnx("%s", why);
		free(why);
		why = NULL;
	}
	vm_disks_free(dk, n);
	vm_put(c, d);
	free(desc);
	free(xml);
	return rc;
}

/* dir's DISKS (its lines split in place into dk's target and path), each
 * a (target, image) pair among the writable file disks of xml, the
 * domain's definition on this host: 0, or -1 with nothing done.  Only
 * ENOENT means no disks: another error must not let the memory run on
 * over a stale disk. */
static int
vm_disks_list(const char *dir, const char *xml, char **listp,
    struct vm_disk **out, size_t *np, char **cause)
{
	struct vm_disk	*dk = NULL, *mine = NULL;
	char		*list = NULL, *line, *next, *sp, *path, *why = NULL;
	struct stat	 st;
	size_t		 n = 0, nmine = 0, i;
	int		 rc = -1;

	*listp = NULL;
	*out = NULL;
	*np = 0;
	xasprintf(&path, "%s/%s", dir, VM_DISKS_LIST);
	if (lstat(path, &st) == -1 && errno == ENOENT) {
		free(path);
		return 0;		/* no disks */
	}
	list = read_file_bounded(path, 64 * 1024, NULL, &why);
	free(path);
	if (list == NULL) {
		set_cause(cause, "cannot read the generation's disk list (%s): "
		    "not restored over the disks here", why);
		free(why);
		return -1;
	}
	if (vm_disks("the domain here", xml, &mine, &nmine, cause) != 0)
		goto out;
	for (line = list; *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) == NULL) {
			set_cause(cause, "%s/%s: a line without its end", dir,
			    VM_DISKS_LIST);
			goto out;
		}
		*next++ = '\0';
		if ((sp = strchr(line, ' ')) == NULL || sp[1] != '/' ||
		    strchr(line, '/') < sp) {
			set_cause(cause, "%s/%s: bad line '%s'", dir,
			    VM_DISKS_LIST, line);
			goto out;
		}
		*sp++ = '\0';
		/* Only the image of that very disk in the definition here:
		 * a generation from a peer writes nothing else. */
		for (i = 0; i < nmine; i++)
			if (strcmp(mine[i].target, line) == 0 &&
			    strcmp(mine[i].path, sp) == 0)
				break;
		if (i == nmine) {
			set_cause(cause, "%s/%s: disk %s at %s, which the "
			    "domain's definition here does not name as a "
			    "writable file disk; nothing restored", dir,
			    VM_DISKS_LIST, line, sp);
			goto out;
		}
		for (i = 0; i < n; i++)
			if (strcmp(dk[i].target, line) == 0 ||
			    strcmp(dk[i].path, sp) == 0)
				break;
		if (i < n) {
			set_cause(cause, "%s/%s: disk %s at %s listed twice; "
			    "nothing restored", dir, VM_DISKS_LIST, line, sp);
			goto out;
		}
		dk = xreallocarray(dk, n + 1, sizeof *dk);
		dk[n].target = line;
		dk[n].path = sp;
		dk[n].on_overlay = 0;
		n++;
	}
	rc = 0;
out:
	vm_disks_free(mine, nmine);
	if (rc != 0) {
		free(dk);
		free(list);
		return -1;
	}
	*listp = list;
	*out = dk;
	*np = n;
	return 0;
}

int
vm_disks_allowed(const char *dir, const char *xml, char **cause)
{
	struct vm_disk	*dk;
	char		*list;
	size_t		 n;

	if (vm_disks_list(dir, xml, &list, &dk, &n, cause) != 0)
		return -1;
	free(dk);
	free(list);
	return 0;
}

/* Where vm_disks_put keeps the image it replaced. */
static char *
vm_disk_old(const char *path)
{
	char	*old;

	xasprintf(&old, "%s%s", path, VM_DISK_OLD_SUFFIX);
	return old;
}

/* Put the image dk replaced back (or remove it, when there was none):
 * 0, or -1 and a warning naming the image left in place. */
static int
vm_disk_back(const char *name, const struct vm_disk *dk, int had_old)
{
	char	*old = vm_disk_old(dk->path);
	int	 rc = 0;

	if (had_old ? rename(old, dk->path) : unlink(dk->path)) {
		if (had_old || errno != ENOENT) {
			log_warnx("instance %s: cannot put disk %s's image back "
			    "at %s (%s): it holds the checkpoint's now%s%s",
			    name, dk->target, dk->path, strerror(errno),
			    had_old ? "; the one it replaced is " : "",
			    had_old ? old : "");
			rc = -1;
		}
	} else if (fsync_parent(dk->path, NULL) != 0)
		rc = -1;
	free(old);
	return rc;
}

/* Beside it first (a crash leaves the old image whole), the image it
 * replaces kept as a second name (IMAGE.tern-old), then renamed over
 * it: *had_old says whether there was one.  On failure the image is as
 * it was. */
static int
vm_disk_put_one(const char *name, const char *dir, const struct vm_disk *dk,
    int *had_old, char **cause)
{
	char		*src, *tmp, *old;
	struct stat	 st;
	int		 rc;

	*had_old = 0;
	xasprintf(&src, "%s/%s%s", dir, VM_DISK_PREFIX, dk->target);
	xasprintf(&tmp, "%s.tern-new", dk->path);
	old = vm_disk_old(dk->path);
	*strrchr(tmp, '/') = '\0';
	rc = tmp[0] != '\0' ? mkdir_p(tmp, 0755, cause) : 0;
	tmp[strlen(tmp)] = '/';
	/* One left by a restore that did not finish (ternd died between
	 * put and settle) may be the only copy of the image the domain
	 * had: never removed here, the operator decides. */
	if (rc == 0 && lstat(old, &st) == 0) {
		set_cause(cause, "%s exists: a restore that did not finish "
		    "left it, and it holds the image disk %s had before that "
		    "restore (%s holds the checkpoint's); rename it over %s "
		    "to keep it, or remove it, then restore again", old,
		    dk->target, dk->path, dk->path);
		rc = -1;
	}
	if (rc == 0) {
		if (link(dk->path, old) == 0)
			*had_old = 1;
		else if (errno != ENOENT) {
			set_cause(cause, "cannot keep %s as %s: %s", dk->path,
			    old, strerror(errno));
			rc = -1;
		}
	}
	if (rc == 0)
		rc = vm_copy(src, tmp, cause);
	if (rc == 0 && rename(tmp, dk->path) != 0) {
		set_cause(cause, "cannot rename %s to %s: %s", tmp, dk->path,
		    strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		(void)unlink(tmp);
		if (*had_old)
			(void)unlink(old);	/* dk->path is still it */
	} else if ((rc = fsync_parent(dk->path, cause)) != 0)
		(void)vm_disk_back(name, dk, *had_old);
	free(src);
	free(tmp);
	free(old);
	return rc;
}

int
vm_disks_put(const char *name, const char *dir, const char *xml,
    char **cause)
{
	struct vm_disk	*dk;
	char		*list;
	int		*had_old;
	size_t		 n, i;
	int		 rc = 0;

	/* Every line checked before the first is written. */
	if (vm_disks_list(dir, xml, &list, &dk, &n, cause) != 0)
		return -1;
	had_old = xcalloc(n + 1, sizeof *had_old);
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = vm_disk_put_one(name, dir, &dk[i], &had_old[i],
		    cause)) != 0) {
			/* All or none: the ones already put go back. */
			while (i-- > 0)
				(void)vm_disk_back(name, &dk[i], had_old[i]);
			break;
		}
	free(had_old);
	free(dk);
	free(list);
	return rc;
}

/* After vm_disks_put, each disk's previous image: put back (back), or
 * dropped once the memory runs on the new one.  -1 if one could not be
 * put back (warned of). */
static int
vm_disks_end(const char *name, const char *dir, const char *xml, int back)
{
	struct vm_disk	*dk;
	char		*list, *old, *cause = NULL;
	struct stat	 st;
	size_t		 n, i;
	int		 rc = 0;

	if (vm_disks_list(dir, xml, &list, &dk, &n, &cause) != 0) {
		log_warnx("instance %s: its disks not %s: %s", name,
		    back ? "put back" : "settled", cause);
		free(cause);
		return -1;
	}
	for (i = 0; i < n; i++) {
		old = vm_disk_old(dk[i].path);
		if (back) {
			if (vm_disk_back(name, &dk[i], lstat(old, &st) == 0) != 0)
				rc = -1;
		} else if (unlink(old) != 0 && errno != ENOENT)
			log_warnx("instance %s: cannot remove %s, the image "
			    "its restore replaced: %s", name, old,
			    strerror(errno));
		free(old);
	}
	free(dk);
	free(list);
	return rc;
}

int
vm_disks_rollback(const char *name, const char *dir, const char *xml)
{
	return vm_disks_end(name, dir, xml, 1);
}

void
vm_disks_settle(const char *name, const char *dir, const char *xml)
{
	(void)vm_disks_end(name, dir, xml, 0);
}

/* A uuid as libvirt formats it: 8-4-4-4-12 hex digits. */
static int
vm_uuid_ok(const char *s, size_t len)
{
	size_t	i;

	if (len != 36)
		return 0;
	for (i = 0; i < len; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

char *
vm_restore_xml(const char *mine, const char *theirs, char **cause)
{
	const char	*s, *e, *at, *to;
	char		*xml;
	size_t		 len;

	if ((s = strstr(theirs, "<uuid>")) == NULL ||
	    (e = strstr(s, "</uuid>")) == NULL ||
	    !vm_uuid_ok(s + strlen("<uuid>"), (size_t)(e - s) -
	    strlen("<uuid>"))) {
		set_cause(cause, "the generation's definition has no valid "
		    "<uuid>; nothing restored");
		return NULL;
	}
	s += strlen("<uuid>");
	len = (size_t)(e - s);
	/* In place of the uuid here, else just after the domain's <name>
	 * (a spec may have none): the rest is this host's, all of it. */
	if ((at = strstr(mine, "<uuid>")) != NULL &&
	    (to = strstr(at, "</uuid>")) != NULL) {
		at += strlen("<uuid>");
		xasprintf(&xml, "%.*s%.*s%s", (int)(at - mine), mine,
		    (int)len, s, to);
	} else if ((at = strstr(mine, "</name>")) != NULL) {
		at += strlen("</name>");
		xasprintf(&xml, "%.*s<uuid>%.*s</uuid>%s", (int)(at - mine),
		    mine, (int)len, s, at);
	} else {
		set_cause(cause, "no <name> in the definition here; nothing "
		    "restored");
		return NULL;
	}
	return xml;
}

int
vm_disks_protectable(const char *name, const char *xml, char **cause)
{
	struct vm_disk	*dk;
	size_t		 n;

	if (vm_disks(name, xml, &dk, &n, cause) != 0)
		return -1;
	vm_disks_free(dk, n);
	return 0;
}

/* --- migration (any thread) ------------------------------------------------ */

static void
vm_param_ull(virTypedParameterPtr p, int n, const char *key, uint64_t *v)
{
	unsigned long long	x;

	if (virTypedParamsGetULLong(p, n, key, &x) == 1)
		*v = x;
}

int
vm_job_stats(struct vm_host *h, const char *name, int completed,
    struct vm_job *j, char **cause)
{
	virConnectPtr		 c;
	virDomainPtr		 d;
	virTypedParameterPtr	 p = NULL;
	int			 n = 0, type = 0, throttle = 0;

	memset(j, 0, sizeof *j);
	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (virDomainGetJobStats(d, &type, &p, &n, completed ?
	    VIR_DOMAIN_JOB_STATS_COMPLETED : 0) < 0) {
		vm_fail(cause, "cannot get the job of %s", name);
		vm_put(c, d);
		return -1;
	}
	vm_put(c, d);
	j->active = type != VIR_DOMAIN_JOB_NONE;
	vm_param_ull(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED, &j->elapsed_ms);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_DATA_TOTAL, &j->data_total);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &j->data_processed);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_DATA_REMAINING, &j->data_remaining);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_MEMORY_BPS, &j->mem_bps);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, &j->dirty_rate);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, &j->page_size);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_MEMORY_ITERATION, &j->iteration);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS,
	    &j->postcopy_requests);
	vm_param_ull(p, n, VIR_DOMAIN_JOB_DOWNTIME, &j->downtime_ms);
	if (virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE,
	    &throttle) == 1)
		j->throttle = throttle;
	virTypedParamsFree(p, n);
	return 0;
}

static int
vm_abort_fn(virDomainPtr d)
{
	return virDomainAbortJob(d);
}

int
vm_job_abort(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, vm_abort_fn, "abort the job of",
	    cause);
}

static int
vm_postcopy_fn(virDomainPtr d)
{
	return virDomainMigrateStartPostCopy(d, 0);
}

int
vm_postcopy_start(struct vm_host *h, const char *name, char **cause)
{
	return vm_call(h, name, vm_postcopy_fn, "switch to post-copy",
	    cause);
}

int
vm_set_max_downtime(struct vm_host *h, const char *name, uint32_t ms,
    char **cause)
{
	virConnectPtr	c;
	virDomainPtr	d;
	int		rc = 0;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	if (virDomainMigrateSetMaxDowntime(d, ms, 0) < 0) {
		vm_fail(cause, "cannot set the maximum downtime of %s", name);
		rc = -1;
	}
	vm_put(c, d);
	return rc;
}

int
vm_migrate(struct vm_host *h, const char *name,
    const struct vm_migrate_args *args, char **cause)
{
	virConnectPtr		 c;
	virDomainPtr		 d;
	virTypedParameterPtr	 p = NULL;
	int			 n = 0, max = 0, rc = -1;
	unsigned int		 flags;
	unsigned long long	 mib;

	if ((d = vm_domain(h, name, &c, NULL, cause)) == NULL)
		return -1;
	/* The definition moves with it, atomically with the switch: a
	 * ternd that dies after it never finds a second copy to start. */
	flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
	    VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
	if (args->postcopy)
		flags |= VIR_MIGRATE_POSTCOPY;
	if (args->auto_converge)
		flags |= VIR_MIGRATE_AUTO_CONVERGE;
	if (args->paused)
		flags |= VIR_MIGRATE_PAUSED;
	if (virTypedParamsAddString(&p, &n, &max, VIR_MIGRATE_PARAM_URI,
	    args->uri) < 0)
		goto fail;
	if (args->auto_converge && args->ac_initial > 0 &&
	    (virTypedParamsAddInt(&p, &n, &max,
	    VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, args->ac_initial) < 0 ||
	    virTypedParamsAddInt(&p, &n, &max,
	    VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT, args->ac_increment) < 0))
		goto fail;
	if (args->bandwidth > 0) {
		/* libvirt counts whole MiB/s: round down, but not to 0
		 * (which would mean no limit). */
		mib = args->bandwidth >> 20;
		if (mib == 0)
			mib = 1;
		if (virTypedParamsAddULLong(&p, &n, &max,
		    VIR_MIGRATE_PARAM_BANDWIDTH, mib) < 0 ||
		    (args->postcopy && virTypedParamsAddULLong(&p, &n, &max,
		    VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY, mib) < 0))
			goto fail;
	}
	if (virDomainMigrateToURI3(d, args->dconnuri, p, (unsigned int)n,
	    flags) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	vm_fail(cause, "migration of %s failed", name);
out:
	virTypedParamsFree(p, n);
	vm_put(c, d);
	return rc;
}
