#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "ctl"
#include "daemon/ctlsock.h"
#include "daemon/log.h"
#include "daemon/xmalloc.h"

struct ctl_client {
	struct ctlsock		*sock;
	struct conn		*conn;	/* NULL once the connection is gone */
	struct ctl_client	*next;
	int			 refs;
};

struct ctlsock {
	uv_pipe_t		 pipe;
	char			*path;
	gid_t			 gid;
	int			 have_gid;
	struct conn_limits	 limits;
	ctlsock_request_fn	 request;
	void			*arg;
	struct ctl_client	*clients;
};

static void
ctlsock_free(uv_handle_t *h)
{
	free(h->data);
}

void
ctl_client_ref(struct ctl_client *cl)
{
	cl->refs++;
}

void
ctl_client_unref(struct ctl_client *cl)
{
	if (--cl->refs == 0)
		free(cl);
}

void
ctl_client_reply(struct ctl_client *cl, const Envelope *env)
{
	if (cl->conn != NULL)
		conn_send_msg(cl->conn, env);
}

void
ctl_client_error(struct ctl_client *cl, uint64_t request_id, int code,
    const char *fmt, ...)
{
	Envelope	 env;
	Tern__Error	 err = TERN__ERROR__INIT;
	va_list		 ap;

	msg_init(&env, request_id);
	err.code = code;
	va_start(ap, fmt);
	xvasprintf(&err.text, fmt, ap);
	va_end(ap);
	env.body_case = TERN__ENVELOPE__BODY_ERROR;
	env.error = &err;
	ctl_client_reply(cl, &env);
	free(err.text);
}

static void
ctlsock_on_msg(struct conn *c, Envelope *env)
{
	struct ctl_client	*cl = conn_data(c);

	if (cl->sock != NULL)
		cl->sock->request(cl, env, cl->sock->arg);
}

static void
ctlsock_on_close(struct conn *c, const char *cause)
{
	struct ctl_client	*cl = conn_data(c), **pp;

	for (pp = cl->sock != NULL ? &cl->sock->clients : NULL;
	    pp != NULL && *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	cl->conn = NULL;
	ctl_client_unref(cl);
}

static const struct conn_ops ctlsock_conn_ops = {
	.on_msg = ctlsock_on_msg,
	.on_close = ctlsock_on_close,
};

/* Without SO_PEERGROUPS (kernels before 4.13): the Groups line of the
 * caller's /proc status, if that process still has the uid it connected
 * with.  A plain procfs read, no user database. */
static int
ctlsock_proc_groups(pid_t pid, uid_t uid, gid_t want)
{
	char		 path[64], line[4096], *p, *end;
	unsigned long	 r, e, v;
	FILE		*fp;
	int		 uid_ok = 0, found = 0;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (sscanf(line, "Uid: %lu %lu", &r, &e) == 2)
			uid_ok = e == (unsigned long)uid;
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7; ; p = end) {
			v = strtoul(p, &end, 10);
			if (end == p)
				break;
			if (v == (unsigned long)want)
				found = 1;
		}
	}
	fclose(fp);
	return uid_ok && found;
}

/* Root, or the control group among the caller's credentials as the kernel
 * recorded them at connect (primary or supplementary).  Never the user
 * database: what /etc/group says a user may have is not what this process
 * has, and a lookup could block the loop. */
static int
ctlsock_allowed(struct ctlsock *cs, struct conn *c, uid_t uid, gid_t gid,
    pid_t pid)
{
	gid_t	 groups[1024];
	int	 n, i;

	if (uid == 0)
		return 1;
	if (!cs->have_gid)
		return 0;
	if (gid == cs->gid)
		return 1;
	if ((n = conn_peer_groups(c, groups, 1024)) < 0)
		return errno == ENOPROTOOPT ? ctlsock_proc_groups(pid, uid,
		    cs->gid) : 0;
	for (i = 0; i < n; i++)
		if (groups[i] == cs->gid)
			return 1;
	return 0;
}

static void
ctlsock_on_connection(uv_stream_t *server, int status)
{
	struct ctlsock		*cs = server->data;
	struct ctl_client	*cl;
	uid_t			 uid;
	gid_t			 gid;
	pid_t			 pid;
	char			*cause = NULL;

	if (status != 0) {
		log_warnx("control socket: %s", uv_strerror(status));
		return;
	}
	cl = xcalloc(1, sizeof *cl);
	cl->sock = cs;
	cl->refs = 1;
	cl->conn = conn_new(server->loop, &ctlsock_conn_ops, &cs->limits,
	    "ctl", cl);
	if (conn_accept(cl->conn, server, NULL, &cause) != 0) {
		log_warnx("control socket: %s", cause);
		free(cause);
		return;
	}
	cl->next = cs->clients;
	cs->clients = cl;
	if (conn_peer_cred(cl->conn, &uid, &gid, &pid) != 0) {
		conn_send_error_close(cl->conn, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "cannot identify the caller");
		return;
	}
	if (!ctlsock_allowed(cs, cl->conn, uid, gid, pid)) {
		log_warnx("control socket: refused pid %ld uid %ld: not root "
		    "and not in the control group", (long)pid, (long)uid);
		conn_send_error_close(cl->conn, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "permission denied: only root and the control group may "
		    "use ternd");
		return;
	}
	log_debug("control connection from pid %ld uid %ld", (long)pid,
	    (long)uid);
}

struct ctlsock *
ctlsock_listen(uv_loop_t *loop, const char *path, const char *group,
    const struct conn_limits *limits, ctlsock_request_fn request, void *arg,
    char **cause)
{
	struct ctlsock	*cs;
	struct group	*gr;
	char		*end;
	unsigned long	 num;
	int		 rc;
	mode_t		 old;

	cs = xcalloc(1, sizeof *cs);
	cs->path = xstrdup(path);
	cs->limits = *limits;
	cs->request = request;
	cs->arg = arg;
	/* The name is resolved here, once, at start: never per connection.
	 * A number is a gid as it is. */
	num = group != NULL ? strtoul(group, &end, 10) : 0;
	if (group != NULL && *group != '\0' && *end == '\0' &&
	    num < (gid_t)-1) {
		cs->gid = (gid_t)num;
		cs->have_gid = 1;
	} else if (group != NULL && (gr = getgrnam(group)) != NULL) {
		cs->gid = gr->gr_gid;
		cs->have_gid = 1;
	} else if (group != NULL)
		log_warnx("control group \"%s\" does not exist: only root can "
		    "use %s (create the group, or set control_group)", group,
		    path);
	uv_pipe_init(loop, &cs->pipe, 0);
	cs->pipe.data = cs;
	/* A socket file left by a crashed ternd; the pidfile lock already
	 * proved no other ternd owns this run_dir. */
	unlink(path);
	old = umask(0117);
	rc = uv_pipe_bind(&cs->pipe, path);
	umask(old);
	if (rc == 0 && cs->have_gid && chown(path, 0, cs->gid) != 0)
		log_warn("%s: cannot give the socket to group %s", path, group);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&cs->pipe, 16,
		    ctlsock_on_connection);
	if (rc != 0) {
		set_cause(cause, "%s: cannot listen: %s", path, uv_strerror(rc));
		free(cs->path);
		uv_close((uv_handle_t *)&cs->pipe, ctlsock_free);
		return NULL;
	}
	return cs;
}

void
ctlsock_close(struct ctlsock *cs)
{
	struct ctl_client	*cl;

	if (cs == NULL)
		return;
	while ((cl = cs->clients) != NULL) {
		cs->clients = cl->next;
		cl->sock = NULL;
		conn_close(cl->conn, NULL);
	}
	unlink(cs->path);
	free(cs->path);
	uv_close((uv_handle_t *)&cs->pipe, ctlsock_free);
}
