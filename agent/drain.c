/* ternctl host drain / undrain: the drained mark and the drain job
 * (agent/drain.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "drain"
#include "agent/drain.h"
#include "agent/driver.h"
#include "agent/instance-internal.h"
#include "agent/migration.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

#define DRAIN_FILE		"drained"
#define DRAIN_PARALLEL_MAX	16

/* Who hears a request's progress and answer: a ternctl on our control
 * socket, or a peer's ternd that forwarded it (its request id). */
struct drain_out {
	struct ctl_client	*cl;
	char			*peer;
	uint64_t		 request_id;
};

/* A drain or undrain request waiting for the mark to be written. */
struct drain_req {
	struct agent		*a;
	struct drain_out	 out;
	int			 drain;		/* the mark it writes */
	uint32_t		 parallel;
};

struct drain_job;

/* One instance being moved. */
struct drain_move {
	struct drain_job	*job;
	char			*name;
	char			*to;
	Tern__InstanceKind	 kind;
};

struct drain_job {
	struct agent		*a;
	struct drain_out	 out;
	uint32_t		 parallel;
	char			**names;	/* running when the drain began */
	Tern__InstanceKind	*kinds;
	size_t			 n, next;
	uint32_t		 running;
	int			 pumping;
	struct drain_move	*starting;	/* in migration_start */
	int			 refused;	/* it answered at once */
	struct drain_host	*hosts;		/* the peers, at the start */
	size_t			 nhosts;
	uint32_t		 moved, not_moved, stayed;
};

/* A request forwarded to a peer: whose it is. */
struct drain_fwd {
	struct drain_fwd	*next;
	char			*peer;
	uint64_t		 id;		/* ours, on the mesh */
	struct ctl_client	*cl;
	uint64_t		 client_id;	/* the ternctl's */
};

/* The agent's: the mark and the requests it forwarded. */
struct drain_state {
	int			 mark;
	int			 writing;	/* a mark is being written */
	int			 was;		/* ... over this one */
	struct drain_job	*job;		/* the one running, or NULL */
	struct drain_fwd	*fwds;
	uint64_t		 next_fwd;
};

static void	drain_pump(struct drain_job *);
static void	drain_unpick(struct drain_job *, const char *to);

/* --- answers --------------------------------------------------------------- */

static void
drain_out_init(struct drain_out *o, struct ctl_client *cl, const char *peer,
    uint64_t id)
{
	memset(o, 0, sizeof *o);
	if (cl != NULL) {
		o->cl = cl;
		ctl_client_ref(cl);
	}
	o->peer = peer != NULL ? xstrdup(peer) : NULL;
	o->request_id = id;
}

static void
drain_out_free(struct drain_out *o)
{
	if (o->cl != NULL)
		ctl_client_unref(o->cl);
	free(o->peer);
	memset(o, 0, sizeof *o);
}

static void
drain_out_send(struct agent *a, const struct drain_out *o, Envelope *env)
{
	char	*cause = NULL;

	env->has_request_id = 1;
	env->request_id = o->request_id;
	if (o->cl != NULL) {
		ctl_client_reply(o->cl, env);
		return;
	}
	/* The asking peer went: the drain goes on without an audience. */
	if (mesh_send(a->ternd->mesh, o->peer, env, &cause) != 0) {
		log_debug("drain report to %s not sent: %s", o->peer, cause);
		free(cause);
	}
}

static void
drain_out_error(struct agent *a, const struct drain_out *o, int code,
    const char *text)
{
	Envelope		env;
	Tern__HostDrainReply	r = TERN__HOST_DRAIN_REPLY__INIT;

	if (o->cl != NULL) {
		ctl_client_error(o->cl, o->request_id, code, "%s", text);
		return;
	}
	r.host = a->ternd->conf->host_name;
	r.drained = drain_drained(a);
	r.has_code = 1;
	r.code = (Tern__ErrorCode)code;
	r.error = (char *)text;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY;
	env.host_drain_reply = &r;
	drain_out_send(a, o, &env);
}

static void
drain_out_reply(struct agent *a, const struct drain_out *o,
    Tern__HostDrainReply *r)
{
	Envelope	env;

	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY;
	env.host_drain_reply = r;
	drain_out_send(a, o, &env);
}

static void
drain_out_event(struct drain_job *j, Tern__HostDrainProgress *p)
{
	Envelope	env;

	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_HOST_DRAIN_PROGRESS;
	env.host_drain_progress = p;
	drain_out_send(j->a, &j->out, &env);
}

static void
drain_out_progress(struct drain_job *j, const char *name,
    Tern__InstanceKind kind, Tern__HostDrainProgress__Event ev, const char *to,
    const char *cause)
{
	Tern__HostDrainProgress	 p = TERN__HOST_DRAIN_PROGRESS__INIT;

	p.name = (char *)name;
	p.event = ev;
	p.kind = kind;
	p.to = (char *)to;
	p.cause = (char *)cause;
	drain_out_event(j, &p);
}

/* --- the mark ---------------------------------------------------------------- */

static char *
drain_path(const struct agent *a)
{
	char	*path;

	xasprintf(&path, "%s/" DRAIN_FILE, a->ternd->conf->state_dir);
	return path;
}

int
drain_drained(const struct agent *a)
{
	return a->drain != NULL && a->drain->mark;
}

int
drain_refuses(const struct agent *a, char **cause)
{
	const char	*host = a->ternd->conf->host_name;

	if (!drain_drained(a))
		return 0;
	set_cause(cause, "host %s is drained: it takes no instance (ternctl "
	    "host undrain %s)", host, host);
	return -1;
}

static void
drain_state(void *ctx, struct mesh_host_state *st)
{
	struct agent	*a = ctx;
	struct instance	*in;

	st->drained = a->drain->mark;
	st->instances = 0;
	if (a->instances != NULL)
		for (in = a->instances->list; in != NULL; in = in->next)
			st->instances++;
}

static int
drain_mesh_msg(void *ctx, const char *peer, const Envelope *env)
{
	return drain_on_msg(ctx, peer, env);
}

static void
drain_mesh_lost(void *ctx, const char *peer, const char *why)
{
	drain_peer_lost(ctx, peer, why);
}

void
drain_init(struct agent *a, struct mesh *ms)
{
	char	*path = drain_path(a), *text, *cause = NULL;
	size_t	 len;

	a->drain = xcalloc(1, sizeof *a->drain);
	a->drain->next_fwd = 1;
	/* A restarted ternd stays drained until the operator undrains it. */
	if (access(path, F_OK) == -1 && errno == ENOENT)
		a->drain->mark = 0;
	else if ((text = read_file_bounded(path, 64, &len, &cause)) != NULL) {
		a->drain->mark = strncmp(text, "drained", 7) == 0;
		if (a->drain->mark)
			log_info("this host is drained (ternctl host undrain "
			    "%s to take instances again)",
			    a->ternd->conf->host_name);
		free(text);
	} else {
		/* Unreadable: stay drained rather than take instances the
		 * operator moved away. */
		log_warnx("%s; this host counts as drained", cause);
		a->drain->mark = 1;
	}
	free(cause);
	free(path);
	mesh_set_state_fn(ms, drain_state, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_HOST_DRAIN_REQUEST,
	    drain_mesh_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_HOST_DRAIN_PROGRESS,
	    drain_mesh_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY,
	    drain_mesh_msg, a);
	mesh_on_peer_lost(ms, drain_mesh_lost, a);
}

/* --- the drain job ------------------------------------------------------------ */

static void
drain_job_free(struct drain_job *j)
{
	size_t	i;

	if (j->a->drain != NULL && j->a->drain->job == j)
		j->a->drain->job = NULL;
	for (i = 0; i < j->n; i++)
		free(j->names[i]);
	free(j->names);
	free(j->kinds);
	for (i = 0; i < j->nhosts; i++)
		free((char *)j->hosts[i].name);
	free(j->hosts);
	drain_out_free(&j->out);
	free(j);
}

static void
drain_finish(struct drain_job *j)
{
	Tern__HostDrainReply	 r = TERN__HOST_DRAIN_REPLY__INIT;
	char			*text;

	xasprintf(&text, "%s drained: %u moved, %u not moved (still running "
	    "here), %u not running (stay here)", j->a->ternd->conf->host_name,
	    j->moved, j->not_moved, j->stayed);
	log_info("%s", text);
	r.host = j->a->ternd->conf->host_name;
	r.drained = drain_drained(j->a);
	r.has_moved = r.has_not_moved = r.has_stayed = 1;
	r.moved = j->moved;
	r.not_moved = j->not_moved;
	r.stayed = j->stayed;
	r.text = text;
	drain_out_reply(j->a, &j->out, &r);
	free(text);
	drain_job_free(j);
}

static void
drain_move_free(struct drain_move *mv)
{
	free(mv->name);
	free(mv->to);
	free(mv);
}

/* Migration progress: the drain shows starts and ends only. */
static void
drain_move_progress(void *arg, const Envelope *msg, int code,
    const char *error)
{
	(void)arg;
	(void)msg;
	(void)code;
	(void)error;
}

static void
drain_move_done(void *arg, const Envelope *reply, int code, const char *error)
{
	struct drain_move	*mv = arg;
	struct drain_job	*j = mv->job;
	Tern__HostDrainProgress	 p = TERN__HOST_DRAIN_PROGRESS__INIT;

	(void)code;
	p.name = mv->name;
	p.kind = mv->kind;
	p.to = mv->to;
	if (error != NULL || reply == NULL || reply->body_case !=
	    TERN__ENVELOPE__BODY_MIGRATE_REPLY) {
		/* The engine's rollback left it running here. */
		log_warnx("%s: not moved to %s: %s", mv->name, mv->to,
		    error != NULL ? error : "no answer");
		p.event = TERN__HOST_DRAIN_PROGRESS__EVENT__NOT_MOVED;
		p.cause = (char *)(error != NULL ? error : "no answer");
		j->not_moved++;
		drain_unpick(j, mv->to);
	} else {
		log_info("%s: moved to %s (%s) in %" PRIu64 " ms", mv->name,
		    mv->to, msg_mode_name(reply->migrate_reply->mode),
		    reply->migrate_reply->total_ms);
		p.event = TERN__HOST_DRAIN_PROGRESS__EVENT__MOVED;
		p.has_mode = p.has_total_ms = 1;
		p.mode = reply->migrate_reply->mode;
		p.total_ms = reply->migrate_reply->total_ms;
		j->moved++;
	}
	drain_out_event(j, &p);
	if (mv == j->starting)
		j->refused = 1;
	drain_move_free(mv);
	j->running--;
	drain_pump(j);
}

/* A move that did not happen adds nothing to its target. */
static void
drain_unpick(struct drain_job *j, const char *to)
{
	size_t	i;

	for (i = 0; i < j->nhosts; i++)
		if (strcmp(j->hosts[i].name, to) == 0 &&
		    j->hosts[i].instances > 0)
			j->hosts[i].instances--;
}

/* The target for the next instance, or NULL. */
static const char *
drain_target(struct drain_job *j)
{
	struct mesh_host_state	st;
	size_t			i;
	int			best;

	for (i = 0; i < j->nhosts; i++) {
		j->hosts[i].up = mesh_mux(j->a->ternd->mesh,
		    j->hosts[i].name) != NULL;
		if (mesh_host_state(j->a->ternd->mesh, j->hosts[i].name,
		    &st) == 0)
			j->hosts[i].drained = st.drained;
	}
	if ((best = drain_pick_target(j->hosts, j->nhosts)) == -1)
		return NULL;
	j->hosts[best].instances++;
	return j->hosts[best].name;
}

static void
drain_start_one(struct drain_job *j)
{
	Tern__MigrateRequest	 r = TERN__MIGRATE_REQUEST__INIT;
	struct drain_move	*mv;
	struct instance		*in;
	const char		*name = j->names[j->next], *to = NULL;
	const char		*why = NULL;
	Tern__InstanceKind	 kind = j->kinds[j->next];
	char			*cause = NULL;

	j->next++;
	in = j->a->instances != NULL ? instance_find(j->a->instances, name) :
	    NULL;
	if (j->a->ternd->stopping)
		why = "ternd is shutting down";
	else if (!drain_drained(j->a))
		why = "the host was undrained meanwhile";
	else if (in == NULL)
		why = "gone from this host (destroyed, or moved meanwhile)";
	else if (in->state == INST_MIGRATING)
		why = "already migrating";
	else if (in->state != INST_RUNNING) {
		xasprintf(&cause, "busy (%s): drain again once it is done",
		    inst_state_names[in->state]);
		why = cause;
	} else if ((to = drain_target(j)) == NULL)
		why = "no peer is up and not drained (ternctl hosts)";
	if (why != NULL) {
		log_warnx("%s: not moved: %s", name, why);
		drain_out_progress(j, name, kind,
		    TERN__HOST_DRAIN_PROGRESS__EVENT__NOT_MOVED, NULL, why);
		j->not_moved++;
		free(cause);
		return;
	}
	mv = xcalloc(1, sizeof *mv);
	mv->job = j;
	mv->name = xstrdup(name);
	mv->to = xstrdup(to);
	mv->kind = kind;
	r.name = mv->name;
	r.to = mv->to;
	r.has_mode = 1;
	r.mode = TERN__MIGRATION_MODE__MODE_AUTO;
	j->running++;
	j->starting = mv;
	j->refused = 0;
	/* The one engine: what any move does, with its checks and its
	 * rollback (an HA instance is refused there, at once: then it was
	 * never started). */
	migration_start(j->a, &r, drain_move_progress, drain_move_done, mv);
	j->starting = NULL;
	if (!j->refused) {
		log_info("%s: moving to %s", name, to);
		drain_out_progress(j, name, kind,
		    TERN__HOST_DRAIN_PROGRESS__EVENT__STARTED, to, NULL);
	}
}

/* Start moves while there is room; answer once the last one ended.  A
 * move may end before migration_start returns: then this is called
 * again from within and leaves the starting to the outer call. */
static void
drain_pump(struct drain_job *j)
{
	if (j->pumping)
		return;
	j->pumping = 1;
	while (j->running < j->parallel && j->next < j->n)
		drain_start_one(j);
	j->pumping = 0;
	if (j->running == 0 && j->next >= j->n)
		drain_finish(j);
}

static void
drain_job_start(struct agent *a, struct drain_out *out, uint32_t parallel)
{
	struct drain_job	*j;
	struct instance		*in;
	Tern__HostsReply	 hosts = TERN__HOSTS_REPLY__INIT;
	struct mesh_host_state	 st;
	size_t			 n = 0, i;

	j = xcalloc(1, sizeof *j);
	j->a = a;
	j->out = *out;
	memset(out, 0, sizeof *out);
	j->parallel = parallel;
	for (in = a->instances->list; in != NULL; in = in->next)
		n++;
	j->names = xcalloc(n + 1, sizeof *j->names);
	j->kinds = xcalloc(n + 1, sizeof *j->kinds);
	for (in = a->instances->list; in != NULL; in = in->next) {
		if (in->state == INST_STOPPED || in->state ==
		    INST_CHECKPOINTED) {
			drain_out_progress(j, in->name, in->drv->kind,
			    TERN__HOST_DRAIN_PROGRESS__EVENT__STAYS, NULL,
			    inst_state_names[in->state]);
			j->stayed++;
			continue;
		}
		j->names[j->n] = xstrdup(in->name);
		j->kinds[j->n++] = in->drv->kind;
	}
	/* The peers and what they hold now; each move we start adds one. */
	mesh_hosts(a->ternd->mesh, &hosts);
	j->hosts = xcalloc(hosts.n_hosts + 1, sizeof *j->hosts);
	for (i = 1; i < hosts.n_hosts; i++) {	/* [0] is this host */
		struct drain_host *h = &j->hosts[j->nhosts++];

		h->name = xstrdup(hosts.hosts[i]->name);
		if (mesh_host_state(a->ternd->mesh, h->name, &st) == 0)
			h->instances = st.instances;
	}
	mesh_hosts_free(&hosts);
	log_info("draining: %zu instance%s to move, %u at once", j->n,
	    j->n == 1 ? "" : "s", j->parallel);
	a->drain->job = j;
	drain_pump(j);
}

/* --- requests ------------------------------------------------------------------- */

static void
drain_req_free(struct drain_req *q)
{
	drain_out_free(&q->out);
	free(q);
}

static void
drain_mark_written(void *arg, const char *error)
{
	struct drain_req	*q = arg;
	struct agent		*a = q->a;
	Tern__HostDrainReply	 r = TERN__HOST_DRAIN_REPLY__INIT;
	const char		*host = a->ternd->conf->host_name;
	char			*text;

	a->drain->writing = 0;
	if (error != NULL) {
		/* Not durable: a restart would forget it, so it is not done. */
		a->drain->mark = a->drain->was;
		mesh_state_changed(a->ternd->mesh);
		xasprintf(&text, "%s not %s: cannot record it (%s)", host,
		    q->drain ? "drained" : "undrained", error);
		log_warnx("%s", text);
		drain_out_error(a, &q->out, TERN__ERROR_CODE__ERROR_RESOURCE,
		    text);
		free(text);
		drain_req_free(q);
		return;
	}
	if (!q->drain) {
		log_info("undrained: this host takes instances again");
		xasprintf(&text, "%s undrained: it takes instances again", host);
		r.host = (char *)host;
		r.text = text;
		drain_out_reply(a, &q->out, &r);
		free(text);
		drain_req_free(q);
		return;
	}
	if (a->ternd->stopping || a->instances == NULL) {
		drain_out_error(a, &q->out, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    a->ternd->stopping ? "ternd is shutting down: drained, "
		    "but nothing moved" : "ternd is still starting (checking "
		    "CRIU): drained, but nothing moved; drain again");
		drain_req_free(q);
		return;
	}
	drain_job_start(a, &q->out, q->parallel);
	drain_req_free(q);
}

/* The request for this host, from out. */
static void
drain_local(struct agent *a, struct drain_out *out,
    const Tern__HostDrainRequest *req)
{
	struct drain_req	*q;
	Tern__HostDrainReply	 r = TERN__HOST_DRAIN_REPLY__INIT;
	const char		*host = a->ternd->conf->host_name;
	uint32_t		 parallel;
	char			*path, *text;

	parallel = req->has_parallel ? req->parallel :
	    (uint32_t)a->ternd->conf->drain_parallel;
	if (parallel < 1 || parallel > DRAIN_PARALLEL_MAX) {
		xasprintf(&text, "--parallel %u: 1..%d migrations at once",
		    parallel, DRAIN_PARALLEL_MAX);
		drain_out_error(a, out, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    text);
		free(text);
		return;
	}
	if (req->has_undrain && req->undrain && !a->drain->mark) {
		xasprintf(&text, "%s is not drained", host);
		r.host = (char *)host;
		r.text = text;
		drain_out_reply(a, out, &r);
		free(text);
		return;
	}
	if (!(req->has_undrain && req->undrain) && a->drain->job != NULL) {
		xasprintf(&text, "a drain of %s is running; its ternctl shows "
		    "its progress (ternctl list there shows what is left)",
		    host);
		drain_out_error(a, out, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    text);
		free(text);
		return;
	}
	if (a->drain->writing) {
		xasprintf(&text, "a drain or undrain of %s is being recorded; "
		    "try again", host);
		drain_out_error(a, out, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    text);
		free(text);
		return;
	}
	q = xcalloc(1, sizeof *q);
	q->a = a;
	q->out = *out;
	memset(out, 0, sizeof *out);
	q->drain = !(req->has_undrain && req->undrain);
	q->parallel = parallel;
	/* At once, so that no offer or create slips in while it is written;
	 * the peers hear it now too. */
	if (q->drain != a->drain->mark)
		log_info("%s: %s", host, q->drain ? "drained (ternctl host "
		    "drain)" : "undrained (ternctl host undrain)");
	a->drain->was = a->drain->mark;
	a->drain->mark = q->drain;
	a->drain->writing = 1;
	mesh_state_changed(a->ternd->mesh);
	path = drain_path(a);
	work_write_file(a->ternd->loop, path, q->drain ? "drained\n" :
	    "undrained\n", drain_mark_written, q);
	free(path);
}

/* The request for another host: send it there, relay what comes back. */
static void
drain_forward(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	const Tern__HostDrainRequest	*r = req->host_drain_request;
	struct drain_fwd		*f;
	Envelope			 env;
	char				*cause = NULL;

	f = xcalloc(1, sizeof *f);
	f->peer = xstrdup(r->host);
	f->id = a->drain->next_fwd++;
	f->cl = cl;
	f->client_id = req->request_id;
	ctl_client_ref(cl);
	msg_init(&env, f->id);
	env.body_case = TERN__ENVELOPE__BODY_HOST_DRAIN_REQUEST;
	env.host_drain_request = (Tern__HostDrainRequest *)r;
	if (mesh_send(a->ternd->mesh, r->host, &env, &cause) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "%s: %s; nothing "
		    "changed", r->host, cause);
		free(cause);
		ctl_client_unref(cl);
		free(f->peer);
		free(f);
		return;
	}
	log_info("%s request for %s forwarded there",
	    r->has_undrain && r->undrain ? "undrain" : "drain", r->host);
	f->next = a->drain->fwds;
	a->drain->fwds = f;
}

void
drain_control(struct agent *a, struct ctl_client *cl, const Envelope *req)
{
	const Tern__HostDrainRequest	*r = req->host_drain_request;
	struct mesh_host_state		 st;
	struct drain_out		 out;

	if (r->has_parallel && (r->parallel < 1 ||
	    r->parallel > DRAIN_PARALLEL_MAX)) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "--parallel %u: 1..%d "
		    "migrations at once; nothing changed", r->parallel,
		    DRAIN_PARALLEL_MAX);
		return;
	}
	if (mesh_host_state(a->ternd->mesh, r->host, &st) != 0) {
		ctl_client_error(cl, req->request_id,
		    TERN__ERROR_CODE__ERROR_NOT_FOUND, "no host %s in the mesh "
		    "(ternctl hosts); nothing changed", r->host);
		return;
	}
	if (strcmp(r->host, a->ternd->conf->host_name) != 0) {
		if (mesh_mux(a->ternd->mesh, r->host) == NULL) {
			ctl_client_error(cl, req->request_id,
			    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "host %s is "
			    "not up (ternctl hosts); nothing changed",
			    r->host);
			return;
		}
		drain_forward(a, cl, req);
		return;
	}
	drain_out_init(&out, cl, NULL, req->request_id);
	drain_local(a, &out, r);
	drain_out_free(&out);
}

static struct drain_fwd *
drain_fwd_take(struct agent *a, const char *peer, uint64_t id, int remove)
{
	struct drain_fwd	*f, **fp;

	for (fp = &a->drain->fwds; (f = *fp) != NULL; fp = &f->next) {
		if (f->id != id || strcmp(f->peer, peer) != 0)
			continue;
		if (remove)
			*fp = f->next;
		return f;
	}
	return NULL;
}

static void
drain_fwd_free(struct drain_fwd *f)
{
	ctl_client_unref(f->cl);
	free(f->peer);
	free(f);
}

/* From the drained host: to the ternctl that asked, under its id. */
static void
drain_relay(struct agent *a, const char *peer, const Envelope *env)
{
	struct drain_fwd		*f;
	const Tern__HostDrainReply	*r;
	Envelope			 out;
	int				 last;

	last = env->body_case == TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY;
	if (!env->has_request_id ||
	    (f = drain_fwd_take(a, peer, env->request_id, last)) == NULL)
		return;		/* its ternctl went: dropped */
	if (last && (r = env->host_drain_reply)->error != NULL) {
		ctl_client_error(f->cl, f->client_id, r->has_code ? r->code :
		    TERN__ERROR_CODE__ERROR_INTERNAL, "%s", r->error);
	} else {
		out = *env;
		out.request_id = f->client_id;
		ctl_client_reply(f->cl, &out);
	}
	if (last)
		drain_fwd_free(f);
}

int
drain_on_msg(struct agent *a, const char *peer, const Envelope *env)
{
	const Tern__HostDrainRequest	*r;
	struct drain_out		 out;
	char				*text;

	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_HOST_DRAIN_PROGRESS:
	case TERN__ENVELOPE__BODY_HOST_DRAIN_REPLY:
		drain_relay(a, peer, env);
		return 1;
	case TERN__ENVELOPE__BODY_HOST_DRAIN_REQUEST:
		break;
	default:
		return 0;
	}
	r = env->host_drain_request;
	drain_out_init(&out, NULL, peer, env->request_id);
	if (strcmp(r->host, a->ternd->conf->host_name) != 0) {
		/* Forwarded once, never on. */
		xasprintf(&text, "%s is not %s (a drain is forwarded only to "
		    "the host it drains)", a->ternd->conf->host_name, r->host);
		drain_out_error(a, &out, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    text);
		free(text);
	} else {
		log_info("%s request from %s", r->has_undrain && r->undrain ?
		    "undrain" : "drain", peer);
		drain_local(a, &out, r);
	}
	drain_out_free(&out);
	return 1;
}

void
drain_peer_lost(struct agent *a, const char *peer, const char *why)
{
	struct drain_fwd	*f, **fp;

	fp = &a->drain->fwds;
	while ((f = *fp) != NULL) {
		if (strcmp(f->peer, peer) != 0) {
			fp = &f->next;
			continue;
		}
		*fp = f->next;
		ctl_client_error(f->cl, f->client_id,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "lost the link to %s "
		    "(%s): a drain there goes on without us (ternctl list on "
		    "%s shows what is left)", peer, why, peer);
		drain_fwd_free(f);
	}
}

void
drain_free(struct agent *a)
{
	struct drain_fwd	*f;

	if (a->drain == NULL)
		return;
	while ((f = a->drain->fwds) != NULL) {
		a->drain->fwds = f->next;
		drain_fwd_free(f);
	}
	free(a->drain);
	a->drain = NULL;
}
