/* The peer mesh: links to the other ternd hosts (dialling, accepting,
 * Hello, heartbeats), their stream multiplexers, and the dispatch of what
 * arrives to the handlers the roles registered (daemon/mesh.h). */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "peer"
#include "daemon/frame.h"
#include "daemon/log.h"
#include "daemon/mesh-internal.h"
#include "daemon/stream.h"
#include "daemon/ternd.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define PEER_BACKOFF_MIN_MS	100

const char *const mesh_peer_state_names[] = { "connecting", "up", "down" };

/* A connection accepted before we know which peer it is. */
struct peer_pending {
	enum peer_obj		 obj;
	struct mesh		*mesh;
	struct conn		*conn;
	struct peer_pending	*next;
};

static void	peer_dial(struct mesh_peer *);
static void	peer_hello_timeout(uv_timer_t *);
static void	peer_schedule(struct mesh_peer *);
static void	peer_on_ready(struct conn *);
static void	peer_on_msg(struct conn *, Envelope *);
static void	peer_on_data(struct conn *, uint16_t, const uint8_t *, size_t);
static void	peer_on_drain(struct conn *);
static void	peer_on_close(struct conn *, const char *);
static void	mesh_maybe_free(struct mesh *);
static void	peer_release(struct mesh_peer *);
static void	peer_pending_done(struct peer_pending *);

static const struct conn_ops peer_conn_ops = {
	.on_ready = peer_on_ready,
	.on_msg = peer_on_msg,
	.on_data = peer_on_data,
	.on_drain = peer_on_drain,
	.on_close = peer_on_close,
};

static void
peer_set_state(struct mesh_peer *p, enum peer_state state, const char *error)
{
	if (error != NULL) {
		free(p->last_error);
		p->last_error = xstrdup(error);
	}
	if (p->state == state)
		return;
	if (state == PEER_UP)
		log_info("peer %s: %s -> up (%s)", p->name,
		    mesh_peer_state_names[p->state], p->software);
	else
		log_info("peer %s: %s -> %s%s%s", p->name,
		    mesh_peer_state_names[p->state], mesh_peer_state_names[state],
		    error != NULL ? ": " : "", error != NULL ? error : "");
	p->state = state;
	p->since_ms = now_ms();
}

/* FNV-1a */
static size_t
mesh_name_hash(const char *name)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *name != '\0'; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ULL;
	return (size_t)h;
}

static void
mesh_ix_build(struct mesh *ms)
{
	struct mesh_peer	*p;
	size_t			 n = 0, b;

	for (p = ms->list; p != NULL; p = p->next)
		n++;
	free(ms->ix);
	for (ms->ixcap = 16; ms->ixcap < n * 4; ms->ixcap *= 2)
		;
	ms->ix = xcalloc(ms->ixcap, sizeof *ms->ix);
	for (p = ms->list; p != NULL; p = p->next) {
		for (b = mesh_name_hash(p->name) & (ms->ixcap - 1);
		    ms->ix[b] != NULL; b = (b + 1) & (ms->ixcap - 1))
			;
		ms->ix[b] = p;
	}
	ms->ix_stale = 0;
}

struct mesh_peer *
mesh_find(struct mesh *ms, const char *name)
{
	struct mesh_peer	*p;
	size_t			 b;

	if (ms->ix == NULL || ms->ix_stale)
		mesh_ix_build(ms);
	/* Every peer of the list is in the index (a removed one too, until
	 * it is released): a miss is one. */
	for (b = mesh_name_hash(name) & (ms->ixcap - 1);
	    (p = ms->ix[b]) != NULL; b = (b + 1) & (ms->ixcap - 1))
		if (!p->removed && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void
peer_fail_waits(struct mesh_peer *p, const char *error)
{
	struct peer_wait	*w;

	while ((w = p->waits) != NULL) {
		p->waits = w->next;
		w->cb(w->arg, 0, error);
		free(w);
	}
}

static void
peer_clear_hello(struct mesh_peer *p)
{
	size_t	i;

	for (i = 0; i < p->ncaps; i++)
		free(p->caps[i]);
	free(p->caps);
	p->caps = NULL;
	p->ncaps = 0;
	free(p->software);
	p->software = NULL;
}

static void
peer_send_hello(struct mesh_peer *p)
{
	struct ternd	*td = p->mesh->td;
	Envelope	 env;
	Tern__Hello	 hello = TERN__HELLO__INIT;
	const char	**caps = NULL;
	size_t		 ncaps = 0;

	if (p->mesh->caps_fn != NULL)
		caps = p->mesh->caps_fn(p->mesh->caps_ctx, &ncaps);
	msg_init(&env, 0);
	hello.host = td->conf->host_name;
	hello.software = TERN_SOFTWARE;
	hello.n_capabilities = ncaps;
	hello.capabilities = (char **)caps;
	hello.max_frame = (uint32_t)td->conf->max_frame_size;
	hello.boot_id = td->boot_id;
	mesh_self_state(p->mesh, &p->hsent);
	hello.has_drained = 1;
	hello.drained = p->hsent.drained != 0;
	hello.has_instances = 1;
	hello.instances = p->hsent.instances;
	env.body_case = TERN__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	conn_send_msg(p->conn, &env);
}

static void
peer_heartbeat(uv_timer_t *t)
{
	struct mesh_peer	*p = t->data;
	struct ternd		*td = p->mesh->td;
	Envelope		 env;
	Tern__Ping		 ping = TERN__PING__INIT;
	uint64_t		 idle = now_ms() - p->last_rx_ms;

	if (p->conn == NULL || p->state != PEER_UP)
		return;
	if (idle > (uint64_t)td->conf->peer_timeout_ms) {
		conn_close(p->conn, "no message from %s for %llu ms (timeout %d ms)",
		    p->name, (unsigned long long)idle, td->conf->peer_timeout_ms);
		return;
	}
	msg_init(&env, 0);
	ping.sent_ns = now_ns();
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	conn_send_msg(p->conn, &env);
	mesh_send_state(p);
}

/* --- the roles' handlers ------------------------------------------------- */

/* The peer's link, or what it knew, is gone: every role hears it. */
static void
peer_lost(struct mesh_peer *p, const char *why)
{
	struct mesh_lost_handler	*h;

	for (h = p->mesh->on_lost; h != NULL; h = h->next)
		h->fn(h->ctx, p->name, why);
}

static int
peer_accept_stream(struct stream_mux *mux, struct stream *st,
    Tern__StreamKind kind, const char *name, uint64_t size, char **cause)
{
	struct mesh_peer		*p = stream_mux_data(mux);
	struct mesh_stream_handler	*h;

	for (h = p->mesh->on_stream; h != NULL; h = h->next)
		if (h->kind == kind)
			return h->fn(h->ctx, p->name, st, name, size, cause);
	set_cause(cause, "unknown stream kind \"%s\"",
	    msg_stream_kind_name(kind));
	return -1;
}

/* 1 if a role took the message. */
static int
peer_dispatch(struct mesh_peer *p, const Envelope *env)
{
	struct mesh_msg_handler	*h;

	for (h = p->mesh->on_msg; h != NULL; h = h->next)
		if (h->body_case == (int)env->body_case &&
		    h->fn(h->ctx, p->name, env))
			return 1;
	return 0;
}

/* --- connection callbacks ----------------------------------------------- */

static void
peer_attach(struct mesh_peer *p, struct conn *c)
{
	struct ternd	*td = p->mesh->td;

	if (p->conn != NULL && p->conn != c) {
		/* A reconnect from the other side supersedes a stale link. */
		conn_set_data(p->conn, NULL);
		conn_close(p->conn, "replaced by a new connection from %s",
		    p->name);
		stream_mux_free(p->mux, "connection replaced");
		p->mux = NULL;
		peer_fail_waits(p, "connection replaced");
		uv_timer_stop(&p->timer);
		/* Up again only once the new connection's Hellos match. */
		peer_set_state(p, PEER_CONNECTING, "replaced by a new connection");
		/* Their streams went with the old link: they must not wait
		 * for steps that can no longer come. */
		peer_lost(p, "the connection was replaced by a new one from "
		    "that host (it reconnected or restarted)");
	}
	p->conn = c;
	conn_set_data(c, p);
	conn_set_label(c, p->name);
	p->mux = stream_mux_new(c, (uint32_t)td->conf->stream_window,
	    peer_accept_stream, p);
	p->last_rx_ms = now_ms();
	uv_timer_start(&p->timer, peer_hello_timeout,
	    (uint64_t)td->conf->peer_timeout_ms, 0);
}

/* TLS is up but no Hello came: a stalled or confused peer. */
static void
peer_hello_timeout(uv_timer_t *t)
{
	struct mesh_peer	*p = t->data;

	if (p->conn != NULL && p->state != PEER_UP)
		conn_close(p->conn, "no hello from %s within %d ms", p->name,
		    p->mesh->td->conf->peer_timeout_ms);
}

static void
peer_on_ready(struct conn *c)
{
	struct mesh_peer	*p = conn_data(c);
	struct peer_pending	*pp;
	const char		*name = conn_peer_name(c);

	if (p->obj == PEER_OBJ_PEER) {
		log_debug("peer %s: TLS handshake done, certificate names %s",
		    p->name, name);
		peer_send_hello(p);
		uv_timer_start(&p->timer, peer_hello_timeout,
		    (uint64_t)p->mesh->td->conf->peer_timeout_ms, 0);
		return;
	}
	/* Accepted: the verified certificate says who this is. */
	pp = (struct peer_pending *)p;
	p = mesh_find(pp->mesh, name);
	peer_pending_done(pp);
	if (p == NULL) {
		conn_set_data(c, NULL);
		log_warnx("refused a connection from host %s: not in this "
		    "ternd's peers list", name);
		conn_send_error_close(c, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "host %s is not a peer of this ternd", name);
		return;
	}
	peer_attach(p, c);
}

static int
peer_check_hello(struct mesh_peer *p, const Tern__Hello *h, char **cause)
{
	const char	*certname = conn_peer_name(p->conn);
	size_t		 i;

	if (strcmp(h->host, p->name) != 0 || certname == NULL ||
	    strcmp(certname, h->host) != 0) {
		set_cause(cause, "hello names host \"%s\" but the certificate "
		    "names \"%s\" (expected \"%s\")", h->host,
		    certname != NULL ? certname : "?", p->name);
		return -1;
	}
	if (h->max_frame < FRAME_MAX_MIN) {
		set_cause(cause, "peer's max frame %u is below %u", h->max_frame,
		    FRAME_MAX_MIN);
		return -1;
	}
	conn_set_peer_max_frame(p->conn, h->max_frame);
	peer_clear_hello(p);
	p->software = xstrdup(h->software);
	p->caps = xcalloc(h->n_capabilities + 1, sizeof *p->caps);
	for (i = 0; i < h->n_capabilities; i++)
		p->caps[i] = xstrdup(h->capabilities[i]);
	p->ncaps = h->n_capabilities;
	for (i = 0; i < p->ncaps; i++)
		if (strcmp(p->caps[i], "frame.unchecked-tls") == 0)
			conn_set_peer_unchecked(p->conn);
	if (p->boot_id != 0 && p->boot_id != h->boot_id) {
		log_info("peer %s: restarted since we last saw it", p->name);
		/* What it knew of our work died with it. */
		peer_lost(p, "its ternd restarted");
	}
	p->boot_id = h->boot_id;
	p->hstate.drained = h->has_drained && h->drained;
	p->hstate.instances = h->has_instances ? h->instances : 0;
	return 0;
}

static void
peer_on_hello(struct mesh_peer *p, const Tern__Hello *h)
{
	struct ternd	*td = p->mesh->td;
	char		*cause = NULL;

	if (p->state == PEER_UP) {
		conn_send_error_close(p->conn, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "second hello");
		return;
	}
	if (peer_check_hello(p, h, &cause) != 0) {
		log_warnx("peer %s: %s; closing", p->name, cause);
		conn_send_error_close(p->conn, TERN__ERROR_CODE__ERROR_PERMISSION,
		    "%s", cause);
		free(cause);
		return;
	}
	if (!conn_is_client(p->conn))
		peer_send_hello(p);
	log_info("peer %s: authenticated by mutual TLS 1.3 (certificate %s "
	    "signed by the cluster CA, %s)", p->name, conn_peer_name(p->conn),
	    conn_cipher(p->conn));
	p->backoff_ms = 0;
	peer_set_state(p, PEER_UP, NULL);
	free(p->last_error);
	p->last_error = NULL;
	uv_timer_start(&p->timer, peer_heartbeat, 0,
	    (uint64_t)td->conf->heartbeat_interval_ms);
}

static void
peer_on_pong(struct mesh_peer *p, const Envelope *env)
{
	struct peer_wait	*w, **pw;
	uint64_t		 rtt;

	rtt = (now_ns() - env->pong->sent_ns) / 1000;
	if (env->pong->sent_ns <= now_ns())
		p->rtt_us = rtt;
	for (pw = &p->waits; (w = *pw) != NULL; pw = &w->next) {
		if (env->has_request_id && w->id == env->request_id) {
			*pw = w->next;
			w->cb(w->arg, (now_ns() - w->sent_ns) / 1000, NULL);
			free(w);
			break;
		}
	}
}

static void
peer_on_msg(struct conn *c, Envelope *env)
{
	struct mesh_peer	*p = conn_data(c);
	Envelope		 reply;
	Tern__Pong		 pong = TERN__PONG__INIT;

	if (p == NULL || p->obj != PEER_OBJ_PEER)
		return;
	p->last_rx_ms = now_ms();
	if (env->body_case == TERN__ENVELOPE__BODY_HELLO) {
		peer_on_hello(p, env->hello);
		return;
	}
	if (env->body_case == TERN__ENVELOPE__BODY_ERROR) {
		log_warnx("peer %s says: %s (%s)", p->name, env->error->text,
		    msg_error_code_name(env->error->code));
		free(p->last_error);
		xasprintf(&p->last_error, "peer said: %s", env->error->text);
		return;
	}
	if (p->state != PEER_UP) {
		conn_send_error_close(c, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "expected hello, got %s", msg_name(env));
		return;
	}
	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_PING:
		msg_init(&reply, env->request_id);
		pong.sent_ns = env->ping->sent_ns;
		reply.body_case = TERN__ENVELOPE__BODY_PONG;
		reply.pong = &pong;
		conn_send_msg(c, &reply);
		break;
	case TERN__ENVELOPE__BODY_PONG:
		peer_on_pong(p, env);
		break;
	case TERN__ENVELOPE__BODY_HOST_STATE:
		if (env->host_state->drained != (p->hstate.drained != 0))
			log_info("peer %s: %s", p->name,
			    env->host_state->drained ? "drained" : "undrained");
		p->hstate.drained = env->host_state->drained;
		p->hstate.instances = env->host_state->instances;
		break;
	default:
		if (stream_mux_msg(p->mux, env) != 0)
			break;
		if (peer_dispatch(p, env))
			break;
		log_warnx("peer %s: unexpected %s; closing", p->name,
		    msg_name(env));
		conn_send_error_close(c, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "unexpected message %s", msg_name(env));
		break;
	}
}

static void
peer_on_data(struct conn *c, uint16_t channel, const uint8_t *data, size_t len)
{
	struct mesh_peer	*p = conn_data(c);

	if (p == NULL || p->obj != PEER_OBJ_PEER)
		return;
	p->last_rx_ms = now_ms();
	if (p->state != PEER_UP) {
		conn_send_error_close(c, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "data before hello");
		return;
	}
	stream_mux_data_frame(p->mux, channel, data, len);
}

static void
peer_on_drain(struct conn *c)
{
	struct mesh_peer	*p = conn_data(c);

	if (p != NULL && p->obj == PEER_OBJ_PEER && p->mux != NULL)
		stream_mux_drain(p->mux);
}

static void
peer_on_close(struct conn *c, const char *cause)
{
	struct mesh_peer	*p = conn_data(c);
	struct mesh		*ms;

	if (p == NULL)
		return;	/* refused or replaced */
	if (p->obj == PEER_OBJ_PENDING) {
		if (cause != NULL)
			log_warnx("refused an incoming connection before "
			    "authentication: %s", cause);
		peer_pending_done((struct peer_pending *)p);
		return;
	}
	ms = p->mesh;
	p->conn = NULL;
	uv_timer_stop(&p->timer);
	stream_mux_free(p->mux, cause);
	p->mux = NULL;
	peer_fail_waits(p, cause != NULL ? cause : "connection closed");
	/* Retries that fail the same way are logged once. */
	if (cause != NULL && p->state != PEER_UP && (p->last_error == NULL ||
	    strcmp(p->last_error, cause) != 0))
		log_warnx("peer %s: %s", p->name, cause);
	peer_set_state(p, PEER_DOWN, cause != NULL ? cause :
	    "connection closed");
	peer_lost(p, cause != NULL ? cause : "connection closed");
	if (p->removed) {
		peer_release(p);
		return;
	}
	if (!ms->stopping)
		peer_schedule(p);
}

/* --- dialling ----------------------------------------------------------- */

static void
peer_connect_to(struct mesh_peer *p, const struct sockaddr *sa)
{
	struct ternd	*td = p->mesh->td;
	char		*cause = NULL;

	p->conn = conn_new(td->loop, &peer_conn_ops, &td->peer_limits, p->name,
	    p);
	if (conn_connect_tcp(p->conn, sa, td->tls, p->name, &cause) != 0) {
		/* on_close follows and schedules the retry */
		free(cause);
		return;
	}
	p->mux = stream_mux_new(p->conn, (uint32_t)td->conf->stream_window,
	    peer_accept_stream, p);
}

static void
peer_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct mesh_peer	*p = req->data;
	char			 why[256];

	p->resolving = 0;
	if (p->removed) {
		uv_freeaddrinfo(res);
		peer_release(p);
		return;
	}
	if (status != 0 || res == NULL) {
		snprintf(why, sizeof why, "cannot resolve %s: %s", p->address,
		    uv_strerror(status));
		peer_set_state(p, PEER_DOWN, why);
		uv_freeaddrinfo(res);
		peer_schedule(p);
		return;
	}
	peer_connect_to(p, res->ai_addr);
	uv_freeaddrinfo(res);
}

static void
peer_dial(struct mesh_peer *p)
{
	struct ternd		*td = p->mesh->td;
	struct sockaddr_storage	 ss;
	struct addrinfo		 hints;
	char			 port[8];

	if (p->conn != NULL || p->resolving || p->mesh->stopping ||
	    !p->mesh->started)
		return;
	if (p->state == PEER_DOWN)
		log_debug("peer %s: dialling %s:%d", p->name, p->address, p->port);
	if (sockaddr_parse(p->address, p->port, &ss, NULL) == 0) {
		peer_connect_to(p, (struct sockaddr *)&ss);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%d", p->port);
	p->gai.data = p;
	if (uv_getaddrinfo(td->loop, &p->gai, peer_resolved, p->address, port,
	    &hints) == 0)
		p->resolving = 1;
	else
		peer_schedule(p);
}

static void
peer_retry(uv_timer_t *t)
{
	peer_dial(t->data);
}

/* Dial again after a back-off: 100 ms doubling up to reconnect_max_ms. */
static void
peer_schedule(struct mesh_peer *p)
{
	struct ternd	*td = p->mesh->td;

	if (!p->dialer)
		return;
	p->backoff_ms = p->backoff_ms == 0 ? PEER_BACKOFF_MIN_MS :
	    p->backoff_ms * 2;
	if (p->backoff_ms > (unsigned)td->conf->reconnect_max_ms)
		p->backoff_ms = (unsigned)td->conf->reconnect_max_ms;
	uv_timer_start(&p->timer, peer_retry, p->backoff_ms, 0);
}

/* --- accepting ---------------------------------------------------------- */

static void
mesh_refused_closed(uv_handle_t *h)
{
	struct mesh	*ms = h->data;

	free(h);
	ms->refusing--;
	mesh_maybe_free(ms);
}

/* Too many handshakes pending: take the connection off the backlog and
 * close it at once, before TLS allocates anything for it.  Said at most
 * every 10 s, with how many were refused meanwhile. */
static void
mesh_refuse(struct mesh *ms, uv_stream_t *server)
{
	uv_tcp_t	*t = xcalloc(1, sizeof *t);
	uint64_t	 now = now_ms();

	uv_tcp_init(ms->td->loop, t);
	t->data = ms;
	ms->refusing++;
	if (uv_accept(server, (uv_stream_t *)t) == 0)
		ms->refused++;
	uv_close((uv_handle_t *)t, mesh_refused_closed);
	if (ms->refused == 0 || (ms->refused_warned_ms != 0 &&
	    now - ms->refused_warned_ms < 10000))
		return;
	log_warnx("refused %" PRIu64 " peer connection%s: %d TLS handshakes "
	    "already pending (max_pending_handshakes); a client may be "
	    "flooding port %d", ms->refused, ms->refused == 1 ? "" : "s",
	    ms->npending, ms->td->conf->listen_port);
	ms->refused = 0;
	ms->refused_warned_ms = now;
}

static void
mesh_on_connection(uv_stream_t *server, int status)
{
	struct mesh		*ms = server->data;
	struct ternd		*td = ms->td;
	struct peer_pending	*pp;
	struct conn_limits	 limits;
	struct conn		*c;
	char			*cause = NULL;

	if (status != 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	if (ms->npending >= td->conf->max_pending_handshakes) {
		mesh_refuse(ms, server);
		return;
	}
	pp = xcalloc(1, sizeof *pp);
	pp->obj = PEER_OBJ_PENDING;
	pp->mesh = ms;
	pp->next = ms->pending;
	ms->pending = pp;
	ms->npending++;
	/* Not authenticated yet: a shorter deadline than a link's. */
	limits = td->peer_limits;
	limits.handshake_ms = (unsigned)td->conf->handshake_timeout_ms;
	c = conn_new(td->loop, &peer_conn_ops, &limits, "incoming", pp);
	pp->conn = c;
	if (conn_accept(c, server, td->tls, &cause) != 0) {
		log_warnx("accept: %s", cause);
		free(cause);
	}
}

/* --- lifecycle ---------------------------------------------------------- */

static struct mesh_peer *
peer_new(struct mesh *ms, const struct conf_peer *cp)
{
	struct ternd		*td = ms->td;
	struct mesh_peer	*p, **pp;

	p = xcalloc(1, sizeof *p);
	p->mesh = ms;
	p->name = xstrdup(cp->name);
	p->address = xstrdup(cp->address);
	p->port = cp->port;
	p->dialer = strcmp(td->conf->host_name, cp->name) < 0;
	p->state = PEER_CONNECTING;
	p->since_ms = now_ms();
	p->next_id = 1;
	uv_timer_init(td->loop, &p->timer);
	p->timer.data = p;
	for (pp = &ms->list; *pp != NULL; pp = &(*pp)->next)
		;	/* keep the configuration's order */
	*pp = p;
	ms->ix_stale = 1;
	return p;
}

/* An accepted connection was identified or closed. */
static void
peer_pending_done(struct peer_pending *pp)
{
	struct mesh		*ms = pp->mesh;
	struct peer_pending	**ppp;

	for (ppp = &ms->pending; *ppp != NULL; ppp = &(*ppp)->next) {
		if (*ppp == pp) {
			*ppp = pp->next;
			ms->npending--;
			break;
		}
	}
	free(pp);
	mesh_maybe_free(ms);
}

/* Free a removed peer once its link, timer and lookup are all gone. */
static void
peer_release(struct mesh_peer *p)
{
	struct mesh		*ms = p->mesh;
	struct mesh_peer	**pp;

	if (!p->removed || !p->timer_closed || p->conn != NULL || p->resolving)
		return;
	for (pp = &ms->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	ms->ix_stale = 1;
	peer_clear_hello(p);
	free(p->name);
	free(p->address);
	free(p->last_error);
	free(p);
	mesh_maybe_free(ms);
}

static void
peer_timer_closed(uv_handle_t *h)
{
	struct mesh_peer	*p = h->data;

	p->timer_closed = 1;
	peer_release(p);
}

/* Take a peer out: close its link and timer; freed when both are closed. */
static void
peer_remove(struct mesh_peer *p)
{
	p->removed = 1;
	uv_close((uv_handle_t *)&p->timer, peer_timer_closed);
	if (p->conn != NULL)
		conn_close(p->conn, NULL);
}

static void
mesh_listener_closed(uv_handle_t *h)
{
	struct mesh	*ms = h->data;

	ms->listener_closed = 1;
	mesh_maybe_free(ms);
}

struct mesh *
mesh_new(struct ternd *td)
{
	struct mesh	*ms;
	size_t		 i;

	ms = xcalloc(1, sizeof *ms);
	ms->td = td;
	uv_tcp_init(td->loop, &ms->listener);
	ms->listener.data = ms;
	for (i = 0; i < td->conf->npeers; i++)
		peer_new(ms, &td->conf->peers[i]);
	/* The mesh's own kind, for the stream test (mesh_stream_test). */
	mesh_on_stream(ms, TERN__STREAM_KIND__STREAM_SINK, mesh_accept_sink,
	    ms);
	return ms;
}

int
mesh_start(struct mesh *ms, char **cause)
{
	struct ternd		*td = ms->td;
	struct sockaddr_storage	 ss;
	struct mesh_peer	*p;
	int			 rc;

	if (sockaddr_parse(td->conf->listen_address, td->conf->listen_port, &ss,
	    cause) != 0)
		return -1;
	if ((rc = uv_tcp_bind(&ms->listener, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&ms->listener, 64,
	    mesh_on_connection)) != 0) {
		set_cause(cause, "cannot listen on %s:%d: %s",
		    td->conf->listen_address, td->conf->listen_port, uv_strerror(rc));
		return -1;
	}
	ms->started = 1;
	log_info("listening for peers on %s:%d (mutual TLS 1.3)",
	    td->conf->listen_address, td->conf->listen_port);
	for (p = ms->list; p != NULL; p = p->next) {
		if (p->dialer)
			peer_dial(p);
		else
			log_debug("peer %s: waiting for it to connect", p->name);
	}
	return 0;
}

/* A reload may have revoked the certificate a live link was made with:
 * such a link is dropped, and the handshake of its next attempt refuses
 * it.  Connections still in their handshake use the old list. */
static void
mesh_drop_revoked(struct mesh *ms)
{
	struct mesh_peer	*p;
	const char		*serial;

	for (p = ms->list; p != NULL; p = p->next) {
		if (p->removed || p->conn == NULL)
			continue;
		serial = conn_peer_serial(p->conn);
		if (!tls_ctx_revoked(ms->td->tls, serial))
			continue;
		log_warnx("peer %s: its certificate (serial %s) is revoked: "
		    "dropping the link", p->name, serial);
		conn_close(p->conn, "certificate of %s (serial %s) revoked",
		    p->name, serial);
	}
}

void
mesh_reconfigure(struct mesh *ms)
{
	struct conf		*conf = ms->td->conf;
	struct mesh_peer	*p;
	size_t			 i;
	int			 keep;

	mesh_drop_revoked(ms);
	for (p = ms->list; p != NULL; p = p->next) {
		if (p->removed)
			continue;
		keep = 0;
		for (i = 0; i < conf->npeers; i++) {
			if (strcmp(conf->peers[i].name, p->name) == 0 &&
			    strcmp(conf->peers[i].address, p->address) == 0 &&
			    conf->peers[i].port == p->port)
				keep = 1;
		}
		if (!keep) {
			log_info("peer %s: removed by reload", p->name);
			peer_remove(p);
		}
	}
	for (i = 0; i < conf->npeers; i++) {
		if (mesh_find(ms, conf->peers[i].name) != NULL)
			continue;
		log_info("peer %s: added by reload", conf->peers[i].name);
		p = peer_new(ms, &conf->peers[i]);
		if (p->dialer)
			peer_dial(p);
	}
}

static void
mesh_maybe_free(struct mesh *ms)
{
	if (ms->stopping && ms->listener_closed && ms->list == NULL &&
	    ms->pending == NULL && ms->refusing == 0) {
		mesh_handlers_free(ms);
		free(ms->ix);
		free(ms);
	}
}

void
mesh_stop(struct mesh *ms)
{
	struct mesh_peer	*p, *next;
	struct peer_pending	*pp;

	if (ms == NULL)
		return;
	ms->stopping = 1;
	mesh_local_stop(ms);
	for (p = ms->list; p != NULL; p = next) {
		next = p->next;
		if (!p->removed)
			peer_remove(p);
	}
	for (pp = ms->pending; pp != NULL; pp = pp->next)
		conn_close(pp->conn, NULL);
	if (!uv_is_closing((uv_handle_t *)&ms->listener))
		uv_close((uv_handle_t *)&ms->listener, mesh_listener_closed);
}

struct mesh_peer *
mesh_find_up(struct mesh *ms, const char *host, char **cause)
{
	struct mesh_peer	*p;

	if ((p = mesh_find(ms, host)) == NULL) {
		set_cause(cause, "unknown host \"%s\" (not in this ternd's peers; "
		    "see ternctl hosts)", host);
		return NULL;
	}
	if (p->state != PEER_UP || p->conn == NULL) {
		set_cause(cause, "host %s is %s%s%s", host,
		    mesh_peer_state_names[p->state], p->last_error != NULL ? ": " : "",
		    p->last_error != NULL ? p->last_error : "");
		return NULL;
	}
	return p;
}

