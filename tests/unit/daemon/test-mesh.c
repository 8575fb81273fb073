/* daemon/mesh: the peer mesh as transport (issue 10).  Two meshes on one
 * loop, linked over mutual TLS on 127.0.0.1, with what roles register:
 * message handlers by body case (asked in order until one takes it; none:
 * the link closes), stream kinds (unknown ones refused), lost-peer
 * handlers (every one, on a closed link and on a restart seen by a new
 * boot id, not on a mere reconnect), and Hello's capabilities. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "daemon/log.h"
#include "daemon/mesh-internal.h"
#include "daemon/mesh.h"
#include "daemon/pki.h"
#include "daemon/stream.h"
#include "daemon/ternd.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define WAIT_MS		10000	/* a guard against hanging, not a measure */

struct world;

struct host {
	struct world	*w;
	struct ternd	 td;
	const char	*name;
	int		 port;
};

struct world {
	uv_loop_t	 loop;
	uv_timer_t	 guard;
	int		 expired;
	char		 dir[64];
	struct host	 h1, h2;	/* h1 dials (its name sorts first) */

	/* What the handlers saw. */
	int		 calls[4];	/* message handlers, by number */
	char		 msg_peer[16];
	uint64_t	 msg_id;
	int		 lost_order[64];	/* lost handlers, in call order */
	int		 nlost;
	char		 lost_why[256];
	int		 restarted;	/* "its ternd restarted" heard */
	int		 accepted;
	char		 acc_peer[16], acc_name[32];
	uint64_t	 acc_size;
	uint64_t	 received;
	int		 ended;		/* sender's streams that ended */
	char		 end_error[256];
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* A port nobody listens on now (the kernel's pick). */
static int
free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof sin;
	int			 fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
host_init(struct world *w, struct host *h, const struct host *peer,
    uint64_t boot_id)
{
	struct ternd	*td = &h->td;
	char		*text, *cause = NULL;

	memset(td, 0, sizeof *td);
	h->w = w;
	xasprintf(&text,
	    "host_name = \"%s\"\n"
	    "listen_address = \"127.0.0.1\"\n"
	    "listen_port = %d\n"
	    "peers = [ \"%s@127.0.0.1:%d\" ]\n"
	    "ca_file = \"%s/ca/ca.pem\"\n"
	    "cert_file = \"%s/%s/%s.pem\"\n"
	    "key_file = \"%s/%s/%s.key\"\n"
	    "state_dir = \"%s\"\n"
	    "run_dir = \"%s\"\n"
	    "heartbeat_interval_ms = 50\n"
	    "peer_timeout_ms = 5000\n"
	    "reconnect_max_ms = 100\n",
	    h->name, h->port, peer->name, peer->port, w->dir, w->dir, h->name,
	    h->name, w->dir, h->name, h->name, w->dir, w->dir);
	td->conf = conf_parse(text, strlen(text), "test.conf", &cause);
	if (td->conf == NULL)
		fail_msg("%s", cause);
	free(text);
	td->tls = tls_ctx_new(td->conf->ca_file, td->conf->cert_file,
	    td->conf->key_file, NULL, &cause);
	if (td->tls == NULL)
		fail_msg("%s", cause);
	td->loop = &w->loop;
	td->peer_limits.max_frame = (uint32_t)td->conf->max_frame_size;
	td->peer_limits.send_max = td->conf->send_buffer_max;
	td->peer_limits.handshake_ms = 5000;
	td->boot_id = boot_id;
	td->start_ms = now_ms();
	td->mesh = mesh_new(td);
}

static void
host_start(struct host *h)
{
	char	*cause = NULL;

	if (mesh_start(h->td.mesh, &cause) != 0)
		fail_msg("%s", cause);
}

static void
host_stop(struct host *h)
{
	mesh_stop(h->td.mesh);
	h->td.mesh = NULL;
}

static void
host_free(struct host *h)
{
	tls_ctx_free(h->td.tls);
	conf_free(h->td.conf);
}

static void
world_init(struct world *w)
{
	char	*cause = NULL, *cadir, *out;

	memset(w, 0, sizeof *w);
	strcpy(w->dir, "/tmp/tern-test-mesh.XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	xasprintf(&cadir, "%s/ca", w->dir);
	assert_int_equal(pki_ca_init(cadir, NULL, 1, 0, &cause), 0);
	xasprintf(&out, "%s/h1", w->dir);
	assert_int_equal(pki_cert_issue(cadir, "h1", out, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), 0);
	free(out);
	xasprintf(&out, "%s/h2", w->dir);
	assert_int_equal(pki_cert_issue(cadir, "h2", out, 1,
	    PKI_NOT_BEFORE_OFFSET, &cause), 0);
	free(out);
	free(cadir);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->guard);
	w->guard.data = w;
	w->h1.name = "h1";
	w->h2.name = "h2";
	w->h1.port = free_port();
	w->h2.port = free_port();
	host_init(w, &w->h1, &w->h2, 0x1111);
	host_init(w, &w->h2, &w->h1, 0x2222);
}

static void
guard_fired(uv_timer_t *t)
{
	struct world	*w = t->data;

	w->expired = 1;
}

/* Run the loop until cond holds; fails the test if it never does. */
static void
run_until(struct world *w, int (*cond)(struct world *), const char *what)
{
	w->expired = 0;
	uv_timer_start(&w->guard, guard_fired, WAIT_MS, 0);
	while (!cond(w) && !w->expired)
		uv_run(&w->loop, UV_RUN_ONCE);
	uv_timer_stop(&w->guard);
	if (!cond(w))
		fail_msg("never happened: %s", what);
}

static int
both_up(struct world *w)
{
	unsigned	total, up1, up2;

	mesh_count(w->h1.td.mesh, &total, &up1);
	mesh_count(w->h2.td.mesh, &total, &up2);
	return up1 == 1 && up2 == 1;
}

/* h2 listens before h1 dials it; what the lost handlers heard until
 * both were up is forgotten (a refused dial counts as a closed link). */
static void
world_up(struct world *w)
{
	host_start(&w->h2);
	host_start(&w->h1);
	run_until(w, both_up, "both links up");
	w->nlost = 0;
}

static void
world_end(struct world *w)
{
	if (w->h1.td.mesh != NULL)
		host_stop(&w->h1);
	if (w->h2.td.mesh != NULL)
		host_stop(&w->h2);
	uv_close((uv_handle_t *)&w->guard, NULL);
	/* Returns once every mesh closed its links and freed itself. */
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	host_free(&w->h1);
	host_free(&w->h2);
	assert_int_equal(nftw(w->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* --- handlers ------------------------------------------------------------ */

static int
msg_decline(void *ctx, const char *peer, const Envelope *env)
{
	struct world	*w = ctx;

	w->calls[0]++;
	return 0;
}

static int
msg_take(void *ctx, const char *peer, const Envelope *env)
{
	struct world	*w = ctx;

	w->calls[1]++;
	snprintf(w->msg_peer, sizeof w->msg_peer, "%s", peer);
	w->msg_id = env->migrate_step->migration;
	return 1;
}

static int
msg_never(void *ctx, const char *peer, const Envelope *env)
{
	struct world	*w = ctx;

	w->calls[2]++;
	return 1;
}

static void
lost_record(struct world *w, int which, const char *peer, const char *why)
{
	assert_string_equal(peer, "h2");
	assert_true(w->nlost < 64);
	w->lost_order[w->nlost++] = which;
	snprintf(w->lost_why, sizeof w->lost_why, "%s", why);
	if (strcmp(why, "its ternd restarted") == 0)
		w->restarted++;
}

static void
lost_one(void *ctx, const char *peer, const char *why)
{
	lost_record(ctx, 1, peer, why);
}

static void
lost_two(void *ctx, const char *peer, const char *why)
{
	lost_record(ctx, 2, peer, why);
}

static void
send_step(struct world *w, uint64_t id)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;
	char			*cause = NULL;

	msg_init(&env, 0);
	ms.migration = id;
	ms.step = TERN__MIGRATE_STEP__STEP__READY;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if (mesh_send(w->h2.td.mesh, "h1", &env, &cause) != 0)
		fail_msg("%s", cause);
}

static int
taken(struct world *w)
{
	return w->calls[1] > 0;
}

static int
lost_twice(struct world *w)
{
	return w->nlost >= 2;
}

/* Handlers of a body case are asked in order until one takes it. */
static void
test_message_handlers(void **state)
{
	struct world	w;
	unsigned	total, up;

	world_init(&w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP,
	    msg_decline, &w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_OFFER,
	    msg_never, &w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP,
	    msg_take, &w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP,
	    msg_never, &w);
	world_up(&w);
	send_step(&w, 42);
	run_until(&w, taken, "the second handler took the step");
	assert_int_equal(w.calls[0], 1);
	assert_int_equal(w.calls[1], 1);
	assert_int_equal(w.calls[2], 0);
	assert_string_equal(w.msg_peer, "h2");
	assert_int_equal(w.msg_id, 42);
	mesh_count(w.h1.td.mesh, &total, &up);
	assert_int_equal(up, 1);
	world_end(&w);
}

static int
send_self(struct world *w, int body_case, uint64_t id)
{
	Envelope		 env;
	Tern__MigrateStep	 ms = TERN__MIGRATE_STEP__INIT;
	char			*cause = NULL;
	int			 rc;

	msg_init(&env, 0);
	ms.migration = id;
	ms.step = TERN__MIGRATE_STEP__STEP__READY;
	env.body_case = (Tern__Envelope__BodyCase)body_case;
	env.migrate_step = &ms;
	rc = mesh_send(w->h1.td.mesh, "h1", &env, &cause);
	free(cause);
	return rc;
}

/* Two roles of one host: a body case delivered locally goes from h1 to
 * its own handlers, named as coming from h1, from a later loop turn and
 * without a link; any other to h1 itself is refused; what is queued when
 * the mesh stops is dropped. */
static void
test_local_delivery(void **state)
{
	struct world	w;

	world_init(&w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP,
	    msg_take, &w);
	assert_int_equal(send_self(&w, TERN__ENVELOPE__BODY_MIGRATE_STEP, 1),
	    -1);
	mesh_deliver_local(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP);
	assert_int_equal(send_self(&w, TERN__ENVELOPE__BODY_MIGRATE_STEP, 5),
	    0);
	assert_int_equal(w.calls[1], 0);	/* not from within the send */
	run_until(&w, taken, "h1's message to itself taken");
	assert_int_equal(w.calls[1], 1);
	assert_string_equal(w.msg_peer, "h1");
	assert_int_equal(w.msg_id, 5);
	/* Not delivered locally: no such peer. */
	assert_int_equal(send_self(&w, TERN__ENVELOPE__BODY_MIGRATE_OFFER, 6),
	    -1);
	assert_int_equal(send_self(&w, TERN__ENVELOPE__BODY_MIGRATE_STEP, 7),
	    0);
	host_stop(&w.h1);
	world_end(&w);
	assert_int_equal(w.calls[1], 1);
}

/* A message no handler takes closes the link, and every lost-peer
 * handler hears of it, in the order registered. */
static void
test_message_unhandled(void **state)
{
	struct world	w;

	world_init(&w);
	mesh_on_message(w.h1.td.mesh, TERN__ENVELOPE__BODY_MIGRATE_STEP,
	    msg_decline, &w);
	mesh_on_peer_lost(w.h1.td.mesh, lost_one, &w);
	mesh_on_peer_lost(w.h1.td.mesh, lost_two, &w);
	world_up(&w);
	send_step(&w, 7);
	run_until(&w, lost_twice, "the link closed on an unexpected message");
	assert_int_equal(w.calls[0], 1);
	assert_int_equal(w.nlost, 2);
	assert_int_equal(w.lost_order[0], 1);
	assert_int_equal(w.lost_order[1], 2);
	world_end(&w);
}

/* --- streams ------------------------------------------------------------- */

static void
kind_on_data(struct stream *st, const uint8_t *data, size_t len)
{
	struct world	*w = stream_data(st);

	w->received += len;
	stream_consumed(st, len);
}

static const struct stream_ops kind_ops = {
	.on_data = kind_on_data,
};

static int
kind_accept(void *ctx, const char *peer, struct stream *st, const char *name,
    uint64_t size, char **cause)
{
	struct world	*w = ctx;

	w->accepted++;
	snprintf(w->acc_peer, sizeof w->acc_peer, "%s", peer);
	snprintf(w->acc_name, sizeof w->acc_name, "%s", name);
	w->acc_size = size;
	stream_set_ops(st, &kind_ops, w);
	return 0;
}

static void
out_on_writable(struct stream *st)
{
	if (stream_send(st, "hello", 5) == 5)
		stream_finish(st);
}

static void
out_on_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct world	*w = stream_data(st);

	w->ended++;
	snprintf(w->end_error, sizeof w->end_error, "%s",
	    error != NULL ? error : "");
}

static const struct stream_ops out_ops = {
	.on_writable = out_on_writable,
	.on_end = out_on_end,
};

static int
ended(struct world *w)
{
	return w->ended > 0;
}

static void
open_kind(struct world *w, Tern__StreamKind kind)
{
	struct stream_mux	*mux;

	w->ended = 0;
	assert_non_null(mux = mesh_mux(w->h2.td.mesh, "h1"));
	assert_non_null(stream_open(mux, kind, "n1", 5, &out_ops, w));
	run_until(w, ended, msg_stream_kind_name(kind));
}

/* A registered kind reaches its handler with the peer's name; a kind
 * nobody registered, and the sink where test streams are off, are
 * refused.  (The mesh alone registers only the sink: the others are the
 * agent's.) */
static void
test_stream_kinds(void **state)
{
	struct world	w;

	world_init(&w);
	mesh_on_stream(w.h1.td.mesh, TERN__STREAM_KIND__STREAM_FILES,
	    kind_accept, &w);
	world_up(&w);

	open_kind(&w, TERN__STREAM_KIND__STREAM_FILES);
	assert_string_equal(w.end_error, "");
	assert_int_equal(w.accepted, 1);
	assert_string_equal(w.acc_peer, "h2");
	assert_string_equal(w.acc_name, "n1");
	assert_int_equal(w.acc_size, 5);
	assert_int_equal(w.received, 5);

	open_kind(&w, TERN__STREAM_KIND__STREAM_TREE);
	if (strstr(w.end_error, "unknown stream kind \"tree\"") == NULL)
		fail_msg("refused with \"%s\"", w.end_error);
	open_kind(&w, TERN__STREAM_KIND__STREAM_SINK);
	if (strstr(w.end_error, "takes no test streams") == NULL)
		fail_msg("sink refused with \"%s\"", w.end_error);
	assert_int_equal(w.accepted, 1);
	world_end(&w);
}

/* --- hello --------------------------------------------------------------- */

static const char **
caps_h1(void *ctx, size_t *n)
{
	static const char	*caps[] = { "x.one", "x.two", NULL };

	*n = 2;
	return caps;
}

/* Hello carries what the role says it can do; the hosts listing too. */
static void
test_capabilities(void **state)
{
	struct world		w;
	Tern__HostsReply	hosts = TERN__HOSTS_REPLY__INIT;

	world_init(&w);
	mesh_set_capabilities(w.h1.td.mesh, caps_h1, &w);
	world_up(&w);
	assert_true(mesh_has_capability(w.h2.td.mesh, "h1", "x.one"));
	assert_true(mesh_has_capability(w.h2.td.mesh, "h1", "x.two"));
	assert_false(mesh_has_capability(w.h2.td.mesh, "h1", "criu"));
	assert_false(mesh_has_capability(w.h1.td.mesh, "h2", "x.one"));
	assert_false(mesh_has_capability(w.h2.td.mesh, "h3", "x.one"));
	mesh_hosts(w.h2.td.mesh, &hosts);
	assert_int_equal(hosts.n_hosts, 2);
	assert_string_equal(hosts.hosts[0]->name, "h2");
	assert_string_equal(hosts.hosts[0]->state, "self");
	assert_string_equal(hosts.hosts[1]->name, "h1");
	assert_string_equal(hosts.hosts[1]->state, "up");
	assert_int_equal(hosts.hosts[1]->n_capabilities, 2);
	assert_string_equal(hosts.hosts[1]->capabilities[1], "x.two");
	mesh_hosts_free(&hosts);
	world_end(&w);
}

/* --- peer lost ----------------------------------------------------------- */

static int
lost_and_back(struct world *w)
{
	return w->nlost >= 2 && both_up(w);
}

static int
lost_h2(struct world *w)
{
	unsigned	total, up;

	mesh_count(w->h1.td.mesh, &total, &up);
	return w->nlost >= 2 && up == 0;
}

static int
restart_seen(struct world *w)
{
	return w->restarted > 0;
}

/* h2 goes away: both handlers hear it.  h2 comes back as the same
 * process (same boot id): nothing more.  h2 comes back restarted (a new
 * boot id): both hear "its ternd restarted" once the Hello shows it. */
static void
test_peer_lost(void **state)
{
	struct world	w;
	int		i;

	world_init(&w);
	mesh_on_peer_lost(w.h1.td.mesh, lost_one, &w);
	mesh_on_peer_lost(w.h1.td.mesh, lost_two, &w);
	world_up(&w);

	host_stop(&w.h2);
	w.h2.td.mesh = mesh_new(&w.h2.td);
	host_start(&w.h2);
	run_until(&w, lost_and_back, "h1 lost h2, then linked again");
	assert_int_equal(w.restarted, 0);

	w.nlost = 0;
	host_stop(&w.h2);
	run_until(&w, lost_h2, "h1 lost h2 again");
	w.h2.td.boot_id = 0x3333;
	w.h2.td.mesh = mesh_new(&w.h2.td);
	host_start(&w.h2);
	run_until(&w, restart_seen, "h1 saw h2's restart");
	assert_int_equal(w.restarted, 2);	/* both handlers */
	assert_true(w.nlost % 2 == 0);
	for (i = 0; i < w.nlost; i++)
		assert_int_equal(w.lost_order[i], i % 2 + 1);
	run_until(&w, both_up, "linked after the restart");
	assert_int_equal(w.restarted, 2);
	world_end(&w);
}

/* conf with peers p<from>..p<to - 1> ("zz" sorts after them: it dials
 * none, and the mesh is not started anyway). */
static struct conf *
peers_conf(int from, int to)
{
	struct conf	*conf;
	char		*text, *p, *cause = NULL;
	int		 i;

	p = text = xmalloc((size_t)(to - from) * 40 + 256);
	p += sprintf(p, "host_name = \"zz\"\nca_file = \"/x\"\n"
	    "cert_file = \"/x\"\nkey_file = \"/x\"\npeers = [\n");
	for (i = from; i < to; i++)
		p += sprintf(p, "\"p%d@10.0.%d.%d:7480\",\n", i, i / 256,
		    i % 256);
	sprintf(p, "]\n");
	if ((conf = conf_parse(text, strlen(text), "test.conf", &cause)) ==
	    NULL)
		fail_msg("%s", cause);
	free(text);
	return conf;
}

/* mesh_find through its name index: every configured peer, nothing
 * else; after a reload a removed peer is gone (while its link and timer
 * close) and an added one is there. */
static void
test_peer_lookup(void **state)
{
	struct ternd	 td;
	uv_loop_t	 loop;
	char		 name[16];
	int		 i;

	(void)state;
	memset(&td, 0, sizeof td);
	assert_int_equal(uv_loop_init(&loop), 0);
	td.loop = &loop;
	td.conf = peers_conf(0, 300);
	td.mesh = mesh_new(&td);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "p%d", i);
		assert_non_null(mesh_find(td.mesh, name));
		assert_string_equal(mesh_find(td.mesh, name)->name, name);
	}
	assert_null(mesh_find(td.mesh, "p300"));
	assert_null(mesh_find(td.mesh, "zz"));
	conf_free(td.conf);
	td.conf = peers_conf(100, 400);
	mesh_reconfigure(td.mesh);
	for (i = 0; i < 400; i++) {
		snprintf(name, sizeof name, "p%d", i);
		if (i < 100)
			assert_null(mesh_find(td.mesh, name));
		else
			assert_string_equal(mesh_find(td.mesh, name)->name,
			    name);
	}
	/* The removed ones released: still not there, the rest still are. */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_null(mesh_find(td.mesh, "p0"));
	assert_string_equal(mesh_find(td.mesh, "p399")->name, "p399");
	mesh_stop(td.mesh);
	uv_run(&loop, UV_RUN_DEFAULT);
	conf_free(td.conf);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_handlers),
		cmocka_unit_test(test_message_unhandled),
		cmocka_unit_test(test_local_delivery),
		cmocka_unit_test(test_stream_kinds),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_peer_lost),
		cmocka_unit_test(test_peer_lookup),
	};

	log_init("test-mesh", 1);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
