#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/vm-mig-internal.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"

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
	c->relay = relay_new(m->agent->ternd->loop, fd, what, vmm_chan_done, c);
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
		if (relay_open(c->relay, mesh_mux(m->agent->ternd->mesh, m->peer),
		    name, NULL, &cause) != 0) {
			log_warnx("vmig %" PRIx64 " %s: %s", m->id, m->name,
			    cause);
			free(cause);
			cause = NULL;
			vmm_chan_done(c, NULL);
		}
	}
}

int
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
	uv_poll_init(m->agent->ternd->loop, &l->poll, l->fd);
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

/* The engine's accept_stream: a relay named "<id>/vm-...", 1 if the
 * stream is not one. */
int
vmm_accept_stream(struct mig_engine *e, const char *peer,
    Tern__StreamKind stream_kind, struct stream *st, const char *name,
    char **cause)
{
	struct agent		*a = vmm_agent(e);
	struct vm_migration	*m;
	struct vm_chan		*c;
	const char		*kind, *path;
	char			*end;
	uint64_t		 id;
	unsigned long		 n;
	int			 fd, back;

	if (stream_kind != RELAY_STREAM_KIND || strstr(name, "/vm-") == NULL)
		return 1;
	/* "<id hex>/vm-libvirt/<n>" or "<id hex>/vm-qemu/<n>", strictly. */
	errno = 0;
	id = strtoull(name, &end, 16);
	if (errno != 0 || end == name || name[0] == '-' || name[0] == '+' ||
	    name[0] == ' ')
		goto bad;
	/* "rlibvirt", "rqemu": a refused protected VM going back, T's
	 * libvirtd and QEMU connecting to S's (vmm_target_return). */
	if (strncmp(end, "/vm-libvirt/", 12) == 0)
		kind = "libvirt";
	else if (strncmp(end, "/vm-qemu/", 9) == 0)
		kind = "qemu";
	else if (strncmp(end, "/vm-rlibvirt/", 13) == 0)
		kind = "rlibvirt";
	else if (strncmp(end, "/vm-rqemu/", 10) == 0)
		kind = "rqemu";
	else
		goto bad;
	back = kind[0] == 'r';
	end = strchr(end + 1, '/') + 1;
	if (*end < '0' || *end > '9')
		goto bad;
	n = strtoul(end, &end, 10);
	if (*end != '\0' || n > 1000)
		goto bad;
	m = vmm_of(mig_find(e, peer, id, back ? MIG_ROLE_TARGET :
	    MIG_ROLE_SOURCE));
	if (m != NULL) {
		/* The peer's half of a connection we relayed. */
		for (c = m->chans; c != NULL; c = c->next)
			if (strcmp(c->name, name) == 0)
				break;
		if (c == NULL) {
			set_cause(cause, "no VM relay %s here", name);
			return -1;
		}
		return relay_attach(c->relay, st, cause);
	}
	m = vmm_of(mig_find(e, peer, id, back ? MIG_ROLE_SOURCE :
	    MIG_ROLE_TARGET));
	if (m == NULL || (back ? !m->returning :
	    m->mig->phase != MIG_PH_READY || m->settling)) {
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
		    a->ternd->conf->host_name, VMM_MAX_RELAYS, VMM_MAX_RELAYS_TOTAL);
		return -1;
	}
	path = strcmp(kind + back, "libvirt") == 0 ?
	    a->ternd->conf->libvirt_socket : m->qemu_path;
	if ((fd = vmm_connect_local(path, cause)) == -1)
		return -1;
	m->relays_total++;
	c = vmm_chan_new(m, fd, name);
	if (relay_open(c->relay, mesh_mux(a->ternd->mesh, peer), name, NULL,
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
