/* What roles and ternctl do with the mesh: register their handlers, send,
 * open streams, ask capabilities, ping, push a test stream into a peer's
 * sink, list the hosts. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "peer"
#include "daemon/log.h"
#include "daemon/mesh-internal.h"
#include "daemon/stream.h"
#include "daemon/ternd.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define PEER_STREAM_TEST_BUF	(256u << 10)

struct stream_test {
	struct mesh		*mesh;
	uint64_t		 total;
	uint64_t		 sent;
	uint64_t		 start_ns;
	uint8_t			*buf;
	mesh_stream_test_cb	 cb;
	void			*arg;
};

/* --- what roles register -------------------------------------------------- */

void
mesh_set_capabilities(struct mesh *ms, mesh_caps_fn fn, void *ctx)
{
	ms->caps_fn = fn;
	ms->caps_ctx = ctx;
}

void
mesh_on_message(struct mesh *ms, int body_case, mesh_msg_fn fn, void *ctx)
{
	struct mesh_msg_handler	*h, **hp;

	h = xcalloc(1, sizeof *h);
	h->body_case = body_case;
	h->fn = fn;
	h->ctx = ctx;
	for (hp = &ms->on_msg; *hp != NULL; hp = &(*hp)->next)
		;	/* asked in the order registered */
	*hp = h;
}

void
mesh_on_stream(struct mesh *ms, Tern__StreamKind kind, mesh_stream_fn fn,
    void *ctx)
{
	struct mesh_stream_handler	*h;

	for (h = ms->on_stream; h != NULL; h = h->next)
		if (h->kind == kind)
			fatalx("stream kind \"%s\" registered twice",
			    msg_stream_kind_name(kind));
	h = xcalloc(1, sizeof *h);
	h->kind = kind;
	h->fn = fn;
	h->ctx = ctx;
	h->next = ms->on_stream;
	ms->on_stream = h;
}

void
mesh_on_peer_lost(struct mesh *ms, mesh_lost_fn fn, void *ctx)
{
	struct mesh_lost_handler	*h, **hp;

	h = xcalloc(1, sizeof *h);
	h->fn = fn;
	h->ctx = ctx;
	for (hp = &ms->on_lost; *hp != NULL; hp = &(*hp)->next)
		;	/* called in the order registered */
	*hp = h;
}

void
mesh_handlers_free(struct mesh *ms)
{
	struct mesh_msg_handler		*m;
	struct mesh_stream_handler	*s;
	struct mesh_lost_handler	*l;

	while ((m = ms->on_msg) != NULL) {
		ms->on_msg = m->next;
		free(m);
	}
	while ((s = ms->on_stream) != NULL) {
		ms->on_stream = s->next;
		free(s);
	}
	while ((l = ms->on_lost) != NULL) {
		ms->on_lost = l->next;
		free(l);
	}
}

/* --- this host's own roles ------------------------------------------------ */

/* A message to this host itself, packed as if it crossed the wire: the
 * handler decodes its own copy, after the sender's call returned. */
struct mesh_local_msg {
	struct mesh_local_msg	*next;
	uint8_t			*buf;
	size_t			 len;
};

void
mesh_deliver_local(struct mesh *ms, int body_case)
{
	if (ms->nlocal == MESH_LOCAL_MAX)
		fatalx("too many body cases delivered locally");
	ms->local_cases[ms->nlocal++] = body_case;
}

static int
mesh_local_case(const struct mesh *ms, int body_case)
{
	size_t	i;

	for (i = 0; i < ms->nlocal; i++)
		if (ms->local_cases[i] == body_case)
			return 1;
	return 0;
}

static void
mesh_local_flush(uv_timer_t *t)
{
	struct mesh		*ms = t->data;
	struct mesh_local_msg	*lm;
	struct mesh_msg_handler	*h;
	const char		*self = ms->td->conf->host_name;
	Envelope		*env;
	char			*cause = NULL;
	int			 code, taken;

	while ((lm = ms->local) != NULL) {
		if ((ms->local = lm->next) == NULL)
			ms->local_tail = &ms->local;
		if ((env = msg_unpack(lm->buf, lm->len, &code, &cause)) == NULL) {
			log_warnx("a message to this host itself dropped: %s",
			    cause);
			free(cause);
			cause = NULL;
		} else {
			for (h = ms->on_msg, taken = 0; h != NULL && !taken;
			    h = h->next)
				if (h->body_case == (int)env->body_case)
					taken = h->fn(h->ctx, self, env);
			if (!taken)
				log_warnx("a message to this host itself (body "
				    "case %d) has no handler here: dropped",
				    (int)env->body_case);
			msg_free(env);
		}
		free(lm->buf);
		free(lm);
	}
}

static void
mesh_local_send(struct mesh *ms, const Envelope *env)
{
	struct mesh_local_msg	*lm = xcalloc(1, sizeof *lm);

	lm->buf = msg_pack(env, &lm->len);
	if (ms->local_timer == NULL) {
		ms->local_tail = &ms->local;
		ms->local_timer = xcalloc(1, sizeof *ms->local_timer);
		uv_timer_init(ms->td->loop, ms->local_timer);
		ms->local_timer->data = ms;
	}
	*ms->local_tail = lm;
	ms->local_tail = &lm->next;
	uv_timer_start(ms->local_timer, mesh_local_flush, 0, 0);
}

static void
mesh_local_timer_closed(uv_handle_t *h)
{
	free(h);
}

void
mesh_local_stop(struct mesh *ms)
{
	struct mesh_local_msg	*lm;

	while ((lm = ms->local) != NULL) {
		ms->local = lm->next;
		free(lm->buf);
		free(lm);
	}
	ms->local_tail = &ms->local;
	if (ms->local_timer != NULL)
		uv_close((uv_handle_t *)ms->local_timer,
		    mesh_local_timer_closed);
	ms->local_timer = NULL;
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

int
mesh_accept_sink(void *ctx, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	struct mesh	*ms = ctx;

	/* A test's bytes into nothing: only where a test asked. */
	if (!ms->td->conf->accept_test_streams) {
		log_warnx("peer %s: refused a sink stream (test streams are "
		    "off: accept_test_streams)", peer);
		set_cause(cause, "%s takes no test streams (set "
		    "accept_test_streams = true in its ternd.conf)",
		    ms->td->conf->host_name);
		return -1;
	}
	log_info("peer %s: sink stream %u opened", peer, stream_channel(st));
	stream_set_ops(st, &sink_ops, ms);
	return 0;
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

/* --- queries ------------------------------------------------------------ */

void
mesh_count(struct mesh *ms, unsigned *total, unsigned *up)
{
	struct mesh_peer	*p;

	*total = *up = 0;
	for (p = ms->list; p != NULL; p = p->next) {
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
mesh_hosts(struct mesh *ms, Tern__HostsReply *reply)
{
	struct ternd		*td = ms->td;
	struct mesh_peer	*p;
	Tern__HostInfo		*hi;
	struct mesh_host_state	 st;
	char			*addr;
	size_t			 n = 1, i;

	for (p = ms->list; p != NULL; p = p->next)
		n += !p->removed;
	reply->hosts = xcalloc(n, sizeof *reply->hosts);
	xasprintf(&addr, "%s:%d", td->conf->listen_address, td->conf->listen_port);
	hi = host_info_new(td->conf->host_name, addr, "self");
	free(addr);
	hi->software = xstrdup(TERN_SOFTWARE);
	hi->has_since_ms = 1;
	hi->since_ms = now_ms() - td->start_ms;
	mesh_self_state(ms, &st);
	hi->has_drained = 1;
	hi->drained = st.drained != 0;
	reply->hosts[reply->n_hosts++] = hi;
	for (p = ms->list; p != NULL; p = p->next) {
		if (p->removed)
			continue;
		xasprintf(&addr, "%s:%d", p->address, p->port);
		hi = host_info_new(p->name, addr, mesh_peer_state_names[p->state]);
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
		hi->has_drained = 1;
		hi->drained = p->hstate.drained != 0;
		reply->hosts[reply->n_hosts++] = hi;
	}
}

void
mesh_hosts_free(Tern__HostsReply *reply)
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

int
mesh_ping(struct mesh *ms, const char *host, mesh_ping_cb cb, void *arg,
    char **cause)
{
	struct mesh_peer	*p;
	struct peer_wait	*w;
	Envelope		 env;
	Tern__Ping		 ping = TERN__PING__INIT;

	if ((p = mesh_find_up(ms, host, cause)) == NULL)
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
mesh_stream_test(struct mesh *ms, const char *host, uint64_t bytes,
    mesh_stream_test_cb cb, void *arg, char **cause)
{
	struct mesh_peer	*p;
	struct stream_test	*t;
	size_t			 i;

	if ((p = mesh_find_up(ms, host, cause)) == NULL)
		return -1;
	t = xcalloc(1, sizeof *t);
	t->mesh = ms;
	t->total = bytes;
	t->cb = cb;
	t->arg = arg;
	t->start_ns = now_ns();
	/* Not zeros: a pattern, so nothing along the way can shortcut it. */
	t->buf = xmalloc(PEER_STREAM_TEST_BUF);
	for (i = 0; i < PEER_STREAM_TEST_BUF; i++)
		t->buf[i] = (uint8_t)(i * 131 + (i >> 8));
	if (stream_open(p->mux, TERN__STREAM_KIND__STREAM_SINK, "stream-test",
	    bytes, &stream_test_ops, t) == NULL) {
		free(t->buf);
		free(t);
		set_cause(cause, "no free stream channel to %s", host);
		return -1;
	}
	return 0;
}

int
mesh_send(struct mesh *ms, const char *host, const Envelope *env,
    char **cause)
{
	struct mesh_peer	*p;

	if (ms == NULL) {
		set_cause(cause, "ternd is shutting down");
		return -1;
	}
	if (mesh_local_case(ms, (int)env->body_case) &&
	    strcmp(host, ms->td->conf->host_name) == 0) {
		if (ms->stopping) {
			set_cause(cause, "ternd is shutting down");
			return -1;
		}
		mesh_local_send(ms, env);
		return 0;
	}
	if ((p = mesh_find_up(ms, host, cause)) == NULL)
		return -1;
	if (conn_send_msg(p->conn, env) != 0) {
		set_cause(cause, "cannot send to %s", host);
		return -1;
	}
	return 0;
}

struct stream_mux *
mesh_mux(struct mesh *ms, const char *host)
{
	struct mesh_peer	*p;

	if (ms == NULL || (p = mesh_find_up(ms, host, NULL)) == NULL)
		return NULL;
	return p->mux;
}

int
mesh_has_capability(struct mesh *ms, const char *host, const char *cap)
{
	struct mesh_peer	*p;
	size_t			 i;

	if (ms == NULL || (p = mesh_find_up(ms, host, NULL)) == NULL)
		return 0;
	for (i = 0; i < p->ncaps; i++)
		if (strcmp(p->caps[i], cap) == 0)
			return 1;
	return 0;
}

/* --- this host's state, as the peers hear it ------------------------------ */

void
mesh_set_state_fn(struct mesh *ms, mesh_state_fn fn, void *ctx)
{
	ms->state_fn = fn;
	ms->state_ctx = ctx;
}

void
mesh_self_state(struct mesh *ms, struct mesh_host_state *st)
{
	memset(st, 0, sizeof *st);
	if (ms->state_fn != NULL)
		ms->state_fn(ms->state_ctx, st);
}

void
mesh_send_state(struct mesh_peer *p)
{
	struct mesh_host_state	 now;
	Envelope		 env;
	Tern__HostState		 hs = TERN__HOST_STATE__INIT;

	if (p->conn == NULL || p->state != PEER_UP)
		return;
	mesh_self_state(p->mesh, &now);
	if (now.drained == p->hsent.drained &&
	    now.instances == p->hsent.instances)
		return;
	p->hsent = now;
	hs.drained = now.drained != 0;
	hs.instances = now.instances;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_HOST_STATE;
	env.host_state = &hs;
	conn_send_msg(p->conn, &env);
}

void
mesh_state_changed(struct mesh *ms)
{
	struct mesh_peer	*p;

	if (ms == NULL)
		return;
	for (p = ms->list; p != NULL; p = p->next)
		if (!p->removed)
			mesh_send_state(p);
}

int
mesh_host_state(struct mesh *ms, const char *host, struct mesh_host_state *st)
{
	struct mesh_peer	*p;

	if (ms == NULL)
		return -1;
	if (strcmp(host, ms->td->conf->host_name) == 0) {
		mesh_self_state(ms, st);
		return 0;
	}
	if ((p = mesh_find(ms, host)) == NULL)
		return -1;
	*st = p->hstate;
	return 0;
}
