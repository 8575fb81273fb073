#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "peer"
#include "agent/migration.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"
#include "agent/peers.h"
#include "daemon/frame.h"
#include "daemon/log.h"
#include "daemon/stream.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define PEER_BACKOFF_MIN_MS	100
#define PEER_STREAM_TEST_BUF	(256u << 10)

enum peer_state {
	PEER_CONNECTING,	/* dialling, handshaking, or waiting to be dialled */
	PEER_UP,		/* Hellos exchanged */
	PEER_DOWN,		/* lost or failed; last_error says why */
};

static const char *const peer_state_names[] = { "connecting", "up", "down" };

/* A request sent to a peer that waits for its answer. */
struct peer_wait {
	struct peer_wait	*next;
	uint64_t		 id;
	uint64_t		 sent_ns;
	peers_ping_cb		 cb;
	void			*arg;
};

/* What a peer connection's data points to: a known peer, or an accepted
 * connection not yet identified.  Both start with this tag. */
enum peer_obj {
	PEER_OBJ_PEER,
	PEER_OBJ_PENDING,
};

struct peer {
	enum peer_obj		 obj;
	struct peers		*peers;
	struct peer		*next;
	char			*name;
	char			*address;
	int			 port;
	int			 dialer;	/* we dial this one */
	int			 removed;	/* dropped by a reload or stop */
	int			 timer_closed;

	enum peer_state		 state;
	uint64_t		 since_ms;
	char			*last_error;
	struct conn		*conn;
	struct stream_mux	*mux;
	uint64_t		 last_rx_ms;
	uint64_t		 rtt_us;
	char			*software;
	char			**caps;
	size_t			 ncaps;
	uint64_t		 boot_id;

	uv_timer_t		 timer;		/* heartbeat or reconnect */
	unsigned		 backoff_ms;
	uv_getaddrinfo_t	 gai;
	int			 resolving;

	struct peer_wait	*waits;
	uint64_t		 next_id;
};

struct peers {
	struct agent		*agent;
	struct peer		*list;
	uv_tcp_t		 listener;
	int			 started;	/* listening and dialling */
	int			 stopping;
	int			 listener_closed;
	struct peer_pending	*pending;	/* accepted, not identified yet */
	int			 npending;
	int			 refusing;	/* refused sockets not yet closed */
	uint64_t		 refused;	/* since the last warning */
	uint64_t		 refused_warned_ms;
};

/* A connection accepted before we know which peer it is. */
struct peer_pending {
	enum peer_obj		 obj;
	struct peers		*peers;
	struct conn		*conn;
	struct peer_pending	*next;
};

struct stream_test {
	struct peers		*peers;
	uint64_t		 total;
	uint64_t		 sent;
	uint64_t		 start_ns;
	uint8_t			*buf;
	peers_stream_test_cb	 cb;
	void			*arg;
};

static void	peer_dial(struct peer *);
static void	peer_hello_timeout(uv_timer_t *);
static void	peer_schedule(struct peer *);
static void	peer_on_ready(struct conn *);
static void	peer_on_msg(struct conn *, Envelope *);
static void	peer_on_data(struct conn *, uint16_t, const uint8_t *, size_t);
static void	peer_on_drain(struct conn *);
static void	peer_on_close(struct conn *, const char *);
static void	peers_maybe_free(struct peers *);
static void	peer_release(struct peer *);
static void	peer_pending_done(struct peer_pending *);

static const struct conn_ops peer_conn_ops = {
	.on_ready = peer_on_ready,
	.on_msg = peer_on_msg,
	.on_data = peer_on_data,
	.on_drain = peer_on_drain,
	.on_close = peer_on_close,
};

static void
peer_set_state(struct peer *p, enum peer_state state, const char *error)
{
	if (error != NULL) {
		free(p->last_error);
		p->last_error = xstrdup(error);
	}
	if (p->state == state)
		return;
	if (state == PEER_UP)
		log_info("peer %s: %s -> up (%s)", p->name,
		    peer_state_names[p->state], p->software);
	else
		log_info("peer %s: %s -> %s%s%s", p->name,
		    peer_state_names[p->state], peer_state_names[state],
		    error != NULL ? ": " : "", error != NULL ? error : "");
	p->state = state;
	p->since_ms = now_ms();
}

static struct peer *
peers_find(struct peers *ps, const char *name)
{
	struct peer	*p;

	for (p = ps->list; p != NULL; p = p->next)
		if (!p->removed && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void
peer_fail_waits(struct peer *p, const char *error)
{
	struct peer_wait	*w;

	while ((w = p->waits) != NULL) {
		p->waits = w->next;
		w->cb(w->arg, 0, error);
		free(w);
	}
}

static void
peer_clear_hello(struct peer *p)
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
peer_send_hello(struct peer *p)
{
	struct agent	*a = p->peers->agent;
	Envelope	 env;
	Tern__Hello	 hello = TERN__HELLO__INIT;
	const char	**caps;
	size_t		 ncaps;

	caps = agent_capabilities(a, &ncaps);
	msg_init(&env, 0);
	hello.host = a->conf->host_name;
	hello.software = TERN_SOFTWARE;
	hello.n_capabilities = ncaps;
	hello.capabilities = (char **)caps;
	hello.max_frame = (uint32_t)a->conf->max_frame_size;
	hello.boot_id = a->boot_id;
	env.body_case = TERN__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	conn_send_msg(p->conn, &env);
}

static void
peer_heartbeat(uv_timer_t *t)
{
	struct peer	*p = t->data;
	struct agent	*a = p->peers->agent;
	Envelope	 env;
	Tern__Ping	 ping = TERN__PING__INIT;
	uint64_t	 idle = now_ms() - p->last_rx_ms;

	if (p->conn == NULL || p->state != PEER_UP)
		return;
	if (idle > (uint64_t)a->conf->peer_timeout_ms) {
		conn_close(p->conn, "no message from %s for %llu ms (timeout %d ms)",
		    p->name, (unsigned long long)idle, a->conf->peer_timeout_ms);
		return;
	}
	msg_init(&env, 0);
	ping.sent_ns = now_ns();
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	conn_send_msg(p->conn, &env);
}

/* --- streams ------------------------------------------------------------ */

static void
sink_on_data(struct stream *st, const uint8_t *data, size_t len)
{
	stream_consumed(st, len);	/* checked by TLS (or its frame CRC); dropped */
}

static void
sink_on_end(struct stream *st, uint64_t bytes, const char *error)
{
	char	buf[32];

	format_bytes(buf, sizeof buf, bytes);
	if (error != NULL)
		log_warnx("sink stream %u: %s after %s", stream_channel(st),
		    error, buf);
	else
		log_info("sink stream %u: received %s", stream_channel(st), buf);
}

static const struct stream_ops sink_ops = {
	.on_data = sink_on_data,
	.on_end = sink_on_end,
};

static int
peer_accept_stream(struct stream_mux *mux, struct stream *st, const char *kind,
    const char *name, uint64_t size, char **cause)
{
	struct peer	*p = stream_mux_data(mux);

	if (strcmp(kind, FILES_STREAM_KIND) == 0)
		return migration_accept_file(p->peers->agent, p->name, st, name,
		    size, cause);
	if (strcmp(kind, TREE_STREAM_KIND) == 0)
		return migration_accept_tree(p->peers->agent, p->name, st, name,
		    cause);
	if (strcmp(kind, RELAY_STREAM_KIND) == 0)
		return migration_accept_relay(p->peers->agent, p->name, st, name,
		    cause);
	if (strcmp(kind, "sink") == 0) {
		/* A test's bytes into nothing: only where a test asked. */
		if (!p->peers->agent->conf->accept_test_streams) {
			log_warnx("peer %s: refused a sink stream (test streams "
			    "are off: accept_test_streams)", p->name);
			set_cause(cause, "%s takes no test streams (set "
			    "accept_test_streams = true in its ternd.conf)",
			    p->peers->agent->conf->host_name);
			return -1;
		}
		log_info("peer %s: sink stream %u opened", p->name,
		    stream_channel(st));
		stream_set_ops(st, &sink_ops, p);
		return 0;
	}
	set_cause(cause, "unknown stream kind \"%s\"", kind);
	return -1;
}

static void
stream_test_on_writable(struct stream *st)
{
	struct stream_test	*t = stream_data(st);
	uint64_t		 left;
	size_t			 n;

	while (t->sent < t->total) {
		left = t->total - t->sent;
		n = stream_send(st, t->buf, left < PEER_STREAM_TEST_BUF ?
		    (size_t)left : PEER_STREAM_TEST_BUF);
		if (n == 0)
			return;
		t->sent += n;
	}
	stream_finish(st);
}

static void
stream_test_on_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct stream_test	*t = stream_data(st);

	t->cb(t->arg, bytes, now_ns() - t->start_ns, error);
	free(t->buf);
	free(t);
}

static const struct stream_ops stream_test_ops = {
	.on_writable = stream_test_on_writable,
	.on_end = stream_test_on_end,
};

/* --- connection callbacks ----------------------------------------------- */

static void
peer_attach(struct peer *p, struct conn *c)
{
	struct agent	*a = p->peers->agent;

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
		migration_peer_lost(a, p->name, "the connection was replaced "
		    "by a new one from that host (it reconnected or restarted)");
	}
	p->conn = c;
	conn_set_data(c, p);
	conn_set_label(c, p->name);
	p->mux = stream_mux_new(c, (uint32_t)a->conf->stream_window,
	    peer_accept_stream, p);
	p->last_rx_ms = now_ms();
	uv_timer_start(&p->timer, peer_hello_timeout,
	    (uint64_t)a->conf->peer_timeout_ms, 0);
}

/* TLS is up but no Hello came: a stalled or confused peer. */
static void
peer_hello_timeout(uv_timer_t *t)
{
	struct peer	*p = t->data;

	if (p->conn != NULL && p->state != PEER_UP)
		conn_close(p->conn, "no hello from %s within %d ms", p->name,
		    p->peers->agent->conf->peer_timeout_ms);
}

static void
peer_on_ready(struct conn *c)
{
	struct peer		*p = conn_data(c);
	struct peer_pending	*pp;
	const char		*name = conn_peer_name(c);

	if (p->obj == PEER_OBJ_PEER) {
		log_debug("peer %s: TLS handshake done, certificate names %s",
		    p->name, name);
		peer_send_hello(p);
		uv_timer_start(&p->timer, peer_hello_timeout,
		    (uint64_t)p->peers->agent->conf->peer_timeout_ms, 0);
		return;
	}
	/* Accepted: the verified certificate says who this is. */
	pp = (struct peer_pending *)p;
	p = peers_find(pp->peers, name);
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
peer_check_hello(struct peer *p, const Tern__Hello *h, char **cause)
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
		/* What it knew of our migrations died with it. */
		migration_peer_lost(p->peers->agent, p->name, "its ternd "
		    "restarted");
	}
	p->boot_id = h->boot_id;
	return 0;
}

static void
peer_on_hello(struct peer *p, const Tern__Hello *h)
{
	struct agent	*a = p->peers->agent;
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
	    (uint64_t)a->conf->heartbeat_interval_ms);
}

static void
peer_on_pong(struct peer *p, const Envelope *env)
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
	struct peer	*p = conn_data(c);
	Envelope	 reply;
	Tern__Pong	 pong = TERN__PONG__INIT;

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
	default:
		if (stream_mux_msg(p->mux, env) != 0)
			break;
		if (migration_on_msg(p->peers->agent, p->name, env))
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
	struct peer	*p = conn_data(c);

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
	struct peer	*p = conn_data(c);

	if (p != NULL && p->obj == PEER_OBJ_PEER && p->mux != NULL)
		stream_mux_drain(p->mux);
}

static void
peer_on_close(struct conn *c, const char *cause)
{
	struct peer	*p = conn_data(c);
	struct peers	*ps;

	if (p == NULL)
		return;	/* refused or replaced */
	if (p->obj == PEER_OBJ_PENDING) {
		if (cause != NULL)
			log_warnx("refused an incoming connection before "
			    "authentication: %s", cause);
		peer_pending_done((struct peer_pending *)p);
		return;
	}
	ps = p->peers;
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
	migration_peer_lost(ps->agent, p->name, cause != NULL ? cause :
	    "connection closed");
	if (p->removed) {
		peer_release(p);
		return;
	}
	if (!ps->stopping)
		peer_schedule(p);
}

/* --- dialling ----------------------------------------------------------- */

static void
peer_connect_to(struct peer *p, const struct sockaddr *sa)
{
	struct agent	*a = p->peers->agent;
	char		*cause = NULL;

	p->conn = conn_new(a->loop, &peer_conn_ops, &a->peer_limits, p->name, p);
	if (conn_connect_tcp(p->conn, sa, a->tls, p->name, &cause) != 0) {
		/* on_close follows and schedules the retry */
		free(cause);
		return;
	}
	p->mux = stream_mux_new(p->conn, (uint32_t)a->conf->stream_window,
	    peer_accept_stream, p);
}

static void
peer_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct peer	*p = req->data;
	char		 why[256];

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
peer_dial(struct peer *p)
{
	struct agent		*a = p->peers->agent;
	struct sockaddr_storage	 ss;
	struct addrinfo		 hints;
	char			 port[8];

	if (p->conn != NULL || p->resolving || p->peers->stopping ||
	    !p->peers->started)
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
	if (uv_getaddrinfo(a->loop, &p->gai, peer_resolved, p->address, port,
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
peer_schedule(struct peer *p)
{
	struct agent	*a = p->peers->agent;

	if (!p->dialer)
		return;
	p->backoff_ms = p->backoff_ms == 0 ? PEER_BACKOFF_MIN_MS :
	    p->backoff_ms * 2;
	if (p->backoff_ms > (unsigned)a->conf->reconnect_max_ms)
		p->backoff_ms = (unsigned)a->conf->reconnect_max_ms;
	uv_timer_start(&p->timer, peer_retry, p->backoff_ms, 0);
}

/* --- accepting ---------------------------------------------------------- */

static void
peers_refused_closed(uv_handle_t *h)
{
	struct peers	*ps = h->data;

	free(h);
	ps->refusing--;
	peers_maybe_free(ps);
}

/* Too many handshakes pending: take the connection off the backlog and
 * close it at once, before TLS allocates anything for it.  Said at most
 * every 10 s, with how many were refused meanwhile. */
static void
peers_refuse(struct peers *ps, uv_stream_t *server)
{
	uv_tcp_t	*t = xcalloc(1, sizeof *t);
	uint64_t	 now = now_ms();

	uv_tcp_init(ps->agent->loop, t);
	t->data = ps;
	ps->refusing++;
	if (uv_accept(server, (uv_stream_t *)t) == 0)
		ps->refused++;
	uv_close((uv_handle_t *)t, peers_refused_closed);
	if (ps->refused == 0 || (ps->refused_warned_ms != 0 &&
	    now - ps->refused_warned_ms < 10000))
		return;
	log_warnx("refused %" PRIu64 " peer connection%s: %d TLS handshakes "
	    "already pending (max_pending_handshakes); a client may be "
	    "flooding port %d", ps->refused, ps->refused == 1 ? "" : "s",
	    ps->npending, ps->agent->conf->listen_port);
	ps->refused = 0;
	ps->refused_warned_ms = now;
}

static void
peers_on_connection(uv_stream_t *server, int status)
{
	struct peers		*ps = server->data;
	struct agent		*a = ps->agent;
	struct peer_pending	*pp;
	struct conn_limits	 limits;
	struct conn		*c;
	char			*cause = NULL;

	if (status != 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	if (ps->npending >= a->conf->max_pending_handshakes) {
		peers_refuse(ps, server);
		return;
	}
	pp = xcalloc(1, sizeof *pp);
	pp->obj = PEER_OBJ_PENDING;
	pp->peers = ps;
	pp->next = ps->pending;
	ps->pending = pp;
	ps->npending++;
	/* Not authenticated yet: a shorter deadline than a link's. */
	limits = a->peer_limits;
	limits.handshake_ms = (unsigned)a->conf->handshake_timeout_ms;
	c = conn_new(a->loop, &peer_conn_ops, &limits, "incoming", pp);
	pp->conn = c;
	if (conn_accept(c, server, a->tls, &cause) != 0) {
		log_warnx("accept: %s", cause);
		free(cause);
	}
}

/* --- lifecycle ---------------------------------------------------------- */

static struct peer *
peer_new(struct peers *ps, const struct conf_peer *cp)
{
	struct agent	*a = ps->agent;
	struct peer	*p, **pp;

	p = xcalloc(1, sizeof *p);
	p->peers = ps;
	p->name = xstrdup(cp->name);
	p->address = xstrdup(cp->address);
	p->port = cp->port;
	p->dialer = strcmp(a->conf->host_name, cp->name) < 0;
	p->state = PEER_CONNECTING;
	p->since_ms = now_ms();
	p->next_id = 1;
	uv_timer_init(a->loop, &p->timer);
	p->timer.data = p;
	for (pp = &ps->list; *pp != NULL; pp = &(*pp)->next)
		;	/* keep the configuration's order */
	*pp = p;
	return p;
}

/* An accepted connection was identified or closed. */
static void
peer_pending_done(struct peer_pending *pp)
{
	struct peers		*ps = pp->peers;
	struct peer_pending	**ppp;

	for (ppp = &ps->pending; *ppp != NULL; ppp = &(*ppp)->next) {
		if (*ppp == pp) {
			*ppp = pp->next;
			ps->npending--;
			break;
		}
	}
	free(pp);
	peers_maybe_free(ps);
}

/* Free a removed peer once its link, timer and lookup are all gone. */
static void
peer_release(struct peer *p)
{
	struct peers	*ps = p->peers;
	struct peer	**pp;

	if (!p->removed || !p->timer_closed || p->conn != NULL || p->resolving)
		return;
	for (pp = &ps->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	peer_clear_hello(p);
	free(p->name);
	free(p->address);
	free(p->last_error);
	free(p);
	peers_maybe_free(ps);
}

static void
peer_timer_closed(uv_handle_t *h)
{
	struct peer	*p = h->data;

	p->timer_closed = 1;
	peer_release(p);
}

/* Take a peer out: close its link and timer; freed when both are closed. */
static void
peer_remove(struct peer *p)
{
	p->removed = 1;
	uv_close((uv_handle_t *)&p->timer, peer_timer_closed);
	if (p->conn != NULL)
		conn_close(p->conn, NULL);
}

static void
peers_listener_closed(uv_handle_t *h)
{
	struct peers	*ps = h->data;

	ps->listener_closed = 1;
	peers_maybe_free(ps);
}

struct peers *
peers_new(struct agent *a)
{
	struct peers	*ps;
	size_t		 i;

	ps = xcalloc(1, sizeof *ps);
	ps->agent = a;
	uv_tcp_init(a->loop, &ps->listener);
	ps->listener.data = ps;
	for (i = 0; i < a->conf->npeers; i++)
		peer_new(ps, &a->conf->peers[i]);
	return ps;
}

int
peers_start(struct peers *ps, char **cause)
{
	struct agent		*a = ps->agent;
	struct sockaddr_storage	 ss;
	struct peer		*p;
	int			 rc;

	if (sockaddr_parse(a->conf->listen_address, a->conf->listen_port, &ss,
	    cause) != 0)
		return -1;
	if ((rc = uv_tcp_bind(&ps->listener, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&ps->listener, 64,
	    peers_on_connection)) != 0) {
		set_cause(cause, "cannot listen on %s:%d: %s",
		    a->conf->listen_address, a->conf->listen_port, uv_strerror(rc));
		return -1;
	}
	ps->started = 1;
	log_info("listening for peers on %s:%d (mutual TLS 1.3)",
	    a->conf->listen_address, a->conf->listen_port);
	for (p = ps->list; p != NULL; p = p->next) {
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
peers_drop_revoked(struct peers *ps)
{
	struct peer	*p;
	const char	*serial;

	for (p = ps->list; p != NULL; p = p->next) {
		if (p->removed || p->conn == NULL)
			continue;
		serial = conn_peer_serial(p->conn);
		if (!tls_ctx_revoked(ps->agent->tls, serial))
			continue;
		log_warnx("peer %s: its certificate (serial %s) is revoked: "
		    "dropping the link", p->name, serial);
		conn_close(p->conn, "certificate of %s (serial %s) revoked",
		    p->name, serial);
	}
}

void
peers_reconfigure(struct peers *ps)
{
	struct conf	*conf = ps->agent->conf;
	struct peer	*p;
	size_t		 i;
	int		 keep;

	peers_drop_revoked(ps);
	for (p = ps->list; p != NULL; p = p->next) {
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
		if (peers_find(ps, conf->peers[i].name) != NULL)
			continue;
		log_info("peer %s: added by reload", conf->peers[i].name);
		p = peer_new(ps, &conf->peers[i]);
		if (p->dialer)
			peer_dial(p);
	}
}

static void
peers_maybe_free(struct peers *ps)
{
	if (ps->stopping && ps->listener_closed && ps->list == NULL &&
	    ps->pending == NULL && ps->refusing == 0)
		free(ps);
}

void
peers_stop(struct peers *ps)
{
	struct peer		*p, *next;
	struct peer_pending	*pp;

	if (ps == NULL)
		return;
	ps->stopping = 1;
	for (p = ps->list; p != NULL; p = next) {
		next = p->next;
		if (!p->removed)
			peer_remove(p);
	}
	for (pp = ps->pending; pp != NULL; pp = pp->next)
		conn_close(pp->conn, NULL);
	if (!uv_is_closing((uv_handle_t *)&ps->listener))
		uv_close((uv_handle_t *)&ps->listener, peers_listener_closed);
}

/* --- queries ------------------------------------------------------------ */

void
peers_count(struct peers *ps, unsigned *total, unsigned *up)
{
	struct peer	*p;

	*total = *up = 0;
	for (p = ps->list; p != NULL; p = p->next) {
		if (p->removed)
			continue;
		(*total)++;
		if (p->state == PEER_UP)
			(*up)++;
	}
}

static Tern__HostInfo *
host_info_new(const char *name, const char *address, const char *state)
{
	Tern__HostInfo	*hi;

	hi = xmalloc(sizeof *hi);
	tern__host_info__init(hi);
	hi->name = xstrdup(name);
	hi->address = xstrdup(address);
	hi->state = xstrdup(state);
	return hi;
}

void
peers_hosts(struct peers *ps, Tern__HostsReply *reply)
{
	struct agent	*a = ps->agent;
	struct peer	*p;
	Tern__HostInfo	*hi;
	char		*addr;
	size_t		 n = 1, i;

	for (p = ps->list; p != NULL; p = p->next)
		n += !p->removed;
	reply->hosts = xcalloc(n, sizeof *reply->hosts);
	xasprintf(&addr, "%s:%d", a->conf->listen_address, a->conf->listen_port);
	hi = host_info_new(a->conf->host_name, addr, "self");
	free(addr);
	hi->software = xstrdup(TERN_SOFTWARE);
	hi->has_since_ms = 1;
	hi->since_ms = now_ms() - a->start_ms;
	reply->hosts[reply->n_hosts++] = hi;
	for (p = ps->list; p != NULL; p = p->next) {
		if (p->removed)
			continue;
		xasprintf(&addr, "%s:%d", p->address, p->port);
		hi = host_info_new(p->name, addr, peer_state_names[p->state]);
		free(addr);
		if (p->last_error != NULL && p->state != PEER_UP)
			hi->last_error = xstrdup(p->last_error);
		if (p->state == PEER_UP) {
			hi->has_rtt_us = 1;
			hi->rtt_us = p->rtt_us;
			hi->software = xstrdup(p->software);
			hi->n_capabilities = p->ncaps;
			hi->capabilities = xcalloc(p->ncaps + 1, sizeof(char *));
			for (i = 0; i < p->ncaps; i++)
				hi->capabilities[i] = xstrdup(p->caps[i]);
		}
		hi->has_since_ms = 1;
		hi->since_ms = now_ms() - p->since_ms;
		reply->hosts[reply->n_hosts++] = hi;
	}
}

void
peers_hosts_free(Tern__HostsReply *reply)
{
	size_t	i, k;

	for (i = 0; i < reply->n_hosts; i++) {
		Tern__HostInfo *hi = reply->hosts[i];

		free(hi->name);
		free(hi->address);
		free(hi->state);
		free(hi->last_error);
		free(hi->software);
		for (k = 0; k < hi->n_capabilities; k++)
			free(hi->capabilities[k]);
		free(hi->capabilities);
		free(hi);
	}
	free(reply->hosts);
	reply->hosts = NULL;
	reply->n_hosts = 0;
}

static struct peer *
peers_find_up(struct peers *ps, const char *host, char **cause)
{
	struct peer	*p;

	if ((p = peers_find(ps, host)) == NULL) {
		set_cause(cause, "unknown host \"%s\" (not in this ternd's peers; "
		    "see ternctl hosts)", host);
		return NULL;
	}
	if (p->state != PEER_UP || p->conn == NULL) {
		set_cause(cause, "host %s is %s%s%s", host,
		    peer_state_names[p->state], p->last_error != NULL ? ": " : "",
		    p->last_error != NULL ? p->last_error : "");
		return NULL;
	}
	return p;
}

int
peers_ping(struct peers *ps, const char *host, peers_ping_cb cb, void *arg,
    char **cause)
{
	struct peer		*p;
	struct peer_wait	*w;
	Envelope		 env;
	Tern__Ping		 ping = TERN__PING__INIT;

	if ((p = peers_find_up(ps, host, cause)) == NULL)
		return -1;
	w = xcalloc(1, sizeof *w);
	w->id = p->next_id++;
	w->sent_ns = now_ns();
	w->cb = cb;
	w->arg = arg;
	w->next = p->waits;
	p->waits = w;
	msg_init(&env, w->id);
	ping.sent_ns = w->sent_ns;
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &ping;
	conn_send_msg(p->conn, &env);
	return 0;
}

int
peers_stream_test(struct peers *ps, const char *host, uint64_t bytes,
    peers_stream_test_cb cb, void *arg, char **cause)
{
	struct peer		*p;
	struct stream_test	*t;
	size_t			 i;

	if ((p = peers_find_up(ps, host, cause)) == NULL)
		return -1;
	t = xcalloc(1, sizeof *t);
	t->peers = ps;
	t->total = bytes;
	t->cb = cb;
	t->arg = arg;
	t->start_ns = now_ns();
	/* Not zeros: a pattern, so nothing along the way can shortcut it. */
	t->buf = xmalloc(PEER_STREAM_TEST_BUF);
	for (i = 0; i < PEER_STREAM_TEST_BUF; i++)
		t->buf[i] = (uint8_t)(i * 131 + (i >> 8));
	if (stream_open(p->mux, "sink", "stream-test", bytes, &stream_test_ops,
	    t) == NULL) {
		free(t->buf);
		free(t);
		set_cause(cause, "no free stream channel to %s", host);
		return -1;
	}
	return 0;
}

int
peers_send(struct peers *ps, const char *host, const Envelope *env,
    char **cause)
{
	struct peer	*p;

	if (ps == NULL) {
		set_cause(cause, "ternd is shutting down");
		return -1;
	}
	if ((p = peers_find_up(ps, host, cause)) == NULL)
		return -1;
	if (conn_send_msg(p->conn, env) != 0) {
		set_cause(cause, "cannot send to %s", host);
		return -1;
	}
	return 0;
}

struct stream_mux *
peers_mux(struct peers *ps, const char *host)
{
	struct peer	*p;

	if (ps == NULL || (p = peers_find_up(ps, host, NULL)) == NULL)
		return NULL;
	return p->mux;
}

int
peers_has_capability(struct peers *ps, const char *host, const char *cap)
{
	struct peer	*p;
	size_t		 i;

	if (ps == NULL || (p = peers_find_up(ps, host, NULL)) == NULL)
		return 0;
	for (i = 0; i < p->ncaps; i++)
		if (strcmp(p->caps[i], cap) == 0)
			return 1;
	return 0;
}
