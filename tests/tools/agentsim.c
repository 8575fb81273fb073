/* agentsim: many simulated HA agents in one process, for bench/coord-scale.
 *
 * Each agent is a host of its own to the coordinator: its own mutual-TLS
 * connection (daemon/conn.c, daemon/tls.c, as ternd's mesh dials), its own
 * certificate signed by the cluster CA (issued here with daemon/pki.c if
 * missing), and the lease protocol exactly as agent/ha.c speaks it: Hello,
 * a join renewal listing its protected instances (epoch 0: new, with kind,
 * spec and policy), renewals every ttl/3 counted from the send, a renewal
 * 20 ms after the last one when nudged, and the instances a grant lists
 * held from then on at the epoch it gave.
 *
 * Phases: connect (at most --window handshakes at once, under the mesh's
 * max_pending_handshakes) until every agent holds all its instances at an
 * epoch; steady for --steady seconds (renew->grant latency of every
 * renewal, the coordinator's CPU from /proc/PID/stat when --cpu-pid); then
 * the victim (the first agent, --victim-instances instances) stops
 * renewing (--checkpoint: the other agents' instances are --ha
 * checkpoint, with no replica ever reported; the victim's restart), and the tool waits until survivors were granted every one of
 * its instances.  Times printed as CLOCK_REALTIME seconds are for
 * comparing with ternd's log.  Exit: 0 done, 1 a phase failed, 2 usage or
 * setup. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "daemon/conn.h"
#include "daemon/frame.h"
#include "daemon/msg.h"
#include "daemon/pki.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define SENT_MAX	16	/* as HA_SENT_MAX in agent/ha.c */
#define NUDGE_GAP_MS	20	/* as HA_NUDGE_GAP_MS */
#define RETRY_MS	200
#define SPEC		"{\"process\": {\"args\": [\"/bin/true\"]}}"

enum phase { PH_CONNECT, PH_STEADY, PH_FAILOVER, PH_DONE };

struct held {
	char		*name;
	uint64_t	 epoch;		/* 0: not known to the coordinator yet */
	int		 from_victim;	/* came by failover (counted once) */
};

struct agent {
	struct sim	*sim;
	int		 idx;
	char		 name[32];
	struct conn	*conn;
	struct tls_ctx	*tls;		/* its certificate's */
	int		 up;		/* Hellos exchanged */
	int		 handshaking;	/* holds a window slot */
	int		 registered;	/* every instance held at an epoch */
	int		 stopped;	/* the victim, once it stops renewing */
	int		 join;
	uint64_t	 seq;
	struct {
		uint64_t seq, at_ns;
	}		 sent[SENT_MAX];
	struct held	*held;
	size_t		 nheld;
	uint64_t	 last_grant_ns;	/* receipt of the last grant */
	double		 last_grant_real;
	uv_timer_t	 renew;
	uv_timer_t	 ping;
};

struct sim {
	uv_loop_t	*loop;
	struct sockaddr_storage addr;
	const char	*coord;		/* the coordinator's host name */
	const char	*ca_file, *ca_dir, *cert_dir, *prefix;
	int		 nagents, per_agent, victim_n, window;
	int		 checkpoint;	/* others' instances --ha checkpoint */
	unsigned	 ttl_ms, margin_ms, heartbeat_ms;
	double		 steady_s, failover_timeout_s, connect_timeout_s;
	int		 cpu_pid;
	struct agent	*agents;
	int		 next_dial, inflight, nregistered;
	enum phase	 phase;
	uint64_t	 t0_ns, phase_ns;
	uint64_t	*lat_us;	/* steady renew->grant, microseconds */
	size_t		 nlat, alat;
	uint64_t	*flat_us;	/* the same during the failover */
	size_t		 nflat, aflat;
	int		 moved;		/* victim instances granted elsewhere */
	double		 cpu0;		/* coordinator's CPU seconds at start */
	double		 self0;		/* ours */
	uint64_t	 nrenew, ngrant, nrefused, nclosed;
	uv_timer_t	 tick;
	int		 rc;
};

static struct conn_limits limits = {
	.max_frame = 1u << 20, .send_max = 8u << 20, .handshake_ms = 10000,
};

static void	agent_dial(struct agent *);
static void	agent_renew(struct agent *);

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list	ap;

	fputs("agentsim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double
real_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
since_s(uint64_t from_ns)
{
	return (double)(now_ns() - from_ns) / 1e9;
}

/* Our own utime + stime in seconds. */
static double
self_seconds(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of pid in seconds, or -1. */
static double
cpu_seconds(int pid)
{
	char			 path[64], buf[1024], *p;
	FILE			*fp;
	unsigned long long	 ut, st;
	size_t			 n;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3,
	 * utime and stime fields 14 and 15. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
lat_add(uint64_t **v, size_t *n, size_t *a, uint64_t x)
{
	if (*n == *a) {
		*a = *a == 0 ? 4096 : *a * 2;
		*v = xreallocarray(*v, *a, sizeof **v);
	}
	(*v)[(*n)++] = x;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
lat_print(const char *what, uint64_t *v, size_t n)
{
	if (n == 0) {
		printf("%s: no renewals\n", what);
		return;
	}
	qsort(v, n, sizeof *v, u64_cmp);
	printf("%s: %zu renewals, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	    what, n, (double)v[n / 2] / 1000, (double)v[n * 99 / 100] / 1000,
	    (double)v[n - 1] / 1000);
}

/* --- the lease protocol, as agent/ha.c ------------------------------------ */

static void
renew_due(uv_timer_t *t)
{
	agent_renew(t->data);
}

static void
agent_renew(struct agent *a)
{
	struct sim		*s = a->sim;
	Envelope		 env;
	Tern__LeaseRenew	 r = TERN__LEASE_RENEW__INIT;
	Tern__HeldInstance	*hi, **ptrs;
	size_t			 i;

	if (a->stopped || !a->up || a->conn == NULL)
		return;
	a->seq++;
	a->sent[a->seq % SENT_MAX].seq = a->seq;
	a->sent[a->seq % SENT_MAX].at_ns = now_ns();
	r.seq = a->seq;
	r.has_join = r.join = a->join;
	r.has_boot_id = 1;
	r.boot_id = 0x5eed0000u + (uint64_t)a->idx;
	hi = xcalloc(a->nheld + 1, sizeof *hi);
	ptrs = xcalloc(a->nheld + 1, sizeof *ptrs);
	for (i = 0; i < a->nheld; i++) {
		tern__held_instance__init(&hi[i]);
		hi[i].name = a->held[i].name;
		hi[i].epoch = a->held[i].epoch;
		if (hi[i].epoch == 0) {
			hi[i].has_kind = 1;
			hi[i].kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
			hi[i].spec = (char *)SPEC;
			hi[i].has_ha = 1;
			/* The victim's stay restart: with no replica a
			 * checkpoint-protected one fails over nowhere. */
			hi[i].ha = TERN__HA_POLICY__HA_RESTART;
			if (a->sim->checkpoint && a->idx != 0) {
				hi[i].ha = TERN__HA_POLICY__HA_CHECKPOINT;
				hi[i].has_interval_ms = 1;
				hi[i].interval_ms = 2000;
				hi[i].has_replicas = 1;
				hi[i].replicas = 1;
			}
			hi[i].has_priority = 1;
			hi[i].priority = 0;
		}
		ptrs[i] = &hi[i];
	}
	r.n_held = a->nheld;
	r.held = ptrs;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_LEASE_RENEW;
	env.lease_renew = &r;
	conn_send_msg(a->conn, &env);
	free(hi);
	free(ptrs);
	s->nrenew++;
	uv_timer_start(&a->renew, renew_due, s->ttl_ms / 3, 0);
}

static struct held *
agent_held(struct agent *a, const char *name)
{
	size_t	i;

	for (i = 0; i < a->nheld; i++)
		if (strcmp(a->held[i].name, name) == 0)
			return &a->held[i];
	return NULL;
}

static void
agent_check_registered(struct agent *a)
{
	struct sim	*s = a->sim;
	size_t		 i;

	if (a->registered)
		return;
	for (i = 0; i < a->nheld; i++)
		if (a->held[i].epoch == 0)
			return;
	a->registered = 1;
	s->nregistered++;
}

static void
agent_on_grant(struct agent *a, const Tern__LeaseGrant *g)
{
	struct sim	*s = a->sim;
	struct held	*h;
	uint64_t	 now = now_ns(), lat;
	size_t		 i;

	if (g->seq == 0 || a->sent[g->seq % SENT_MAX].seq != g->seq)
		return;
	lat = (now - a->sent[g->seq % SENT_MAX].at_ns) / 1000;
	if (g->refused != NULL || !g->has_ttl_ms) {
		s->nrefused++;
		if (!a->stopped)
			fprintf(stderr, "agentsim: %s refused: %s\n", a->name,
			    g->refused != NULL ? g->refused : "no lease");
		a->join = 1;
		return;
	}
	s->ngrant++;
	if (s->phase == PH_STEADY)
		lat_add(&s->lat_us, &s->nlat, &s->alat, lat);
	else if (s->phase == PH_FAILOVER)
		lat_add(&s->flat_us, &s->nflat, &s->aflat, lat);
	a->join = 0;
	a->last_grant_ns = now;
	a->last_grant_real = real_now();
	for (i = 0; i < g->n_refusals; i++)
		fprintf(stderr, "agentsim: %s: %s refused: %s\n", a->name,
		    g->refusals[i]->name, g->refusals[i]->why);
	for (i = 0; i < g->n_owned; i++) {
		const Tern__OwnedInstance *o = g->owned[i];

		if ((h = agent_held(a, o->name)) == NULL) {
			/* Given by failover: held from now on. */
			a->held = xreallocarray(a->held, a->nheld + 1,
			    sizeof *a->held);
			h = &a->held[a->nheld++];
			h->name = xstrdup(o->name);
			h->from_victim = 0;
		}
		h->epoch = o->epoch;
		if (!h->from_victim && a != &s->agents[0] &&
		    strncmp(o->name, s->agents[0].name,
		    strlen(s->agents[0].name)) == 0 &&
		    o->name[strlen(s->agents[0].name)] == '-') {
			h->from_victim = 1;
			s->moved++;
		}
	}
	agent_check_registered(a);
}

static void
agent_nudged(struct agent *a)
{
	uint64_t	now = now_ns() / 1000000;
	uint64_t	next = a->sent[a->seq % SENT_MAX].at_ns / 1000000 +
			    NUDGE_GAP_MS;

	if (a->stopped)
		return;
	uv_timer_start(&a->renew, renew_due, next > now ? next - now : 0, 0);
}

/* --- the mesh's side: Hello, pings ----------------------------------------- */

static void
ping_due(uv_timer_t *t)
{
	struct agent	*a = t->data;
	Envelope	 env;
	Tern__Ping	 p = TERN__PING__INIT;

	if (a->conn == NULL || !a->up)
		return;
	msg_init(&env, 0);
	p.sent_ns = now_ns();
	env.body_case = TERN__ENVELOPE__BODY_PING;
	env.ping = &p;
	conn_send_msg(a->conn, &env);
}

static void
send_hello(struct agent *a)
{
	Envelope	 env;
	Tern__Hello	 h = TERN__HELLO__INIT;
	char		*caps[] = { "stream.v1" };

	msg_init(&env, 0);
	h.host = a->name;
	h.software = (char *)TERN_SOFTWARE;
	h.n_capabilities = 1;
	h.capabilities = caps;
	h.max_frame = limits.max_frame;
	h.boot_id = 0x5eed0000u + (uint64_t)a->idx;
	h.has_drained = 1;
	h.drained = 0;
	h.has_instances = 1;
	h.instances = (uint32_t)a->nheld;
	env.body_case = TERN__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	conn_send_msg(a->conn, &env);
}

static void
slot_free(struct agent *a)
{
	struct sim	*s = a->sim;

	if (!a->handshaking)
		return;
	a->handshaking = 0;
	s->inflight--;
	while (s->inflight < s->window && s->next_dial < s->nagents)
		agent_dial(&s->agents[s->next_dial++]);
}

static void
on_ready(struct conn *c)
{
	struct agent	*a = conn_data(c);

	slot_free(a);
	send_hello(a);
}

static void
on_msg(struct conn *c, Envelope *env)
{
	struct agent	*a = conn_data(c);
	struct sim	*s = a->sim;
	Envelope	 reply;
	Tern__Pong	 pong = TERN__PONG__INIT;

	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_HELLO:
		if (strcmp(env->hello->host, s->coord) != 0) {
			conn_close(c, "hello from %s", env->hello->host);
			return;
		}
		conn_set_peer_max_frame(c, env->hello->max_frame);
		a->up = 1;
		a->join = 1;
		uv_timer_start(&a->ping, ping_due, s->heartbeat_ms,
		    s->heartbeat_ms);
		agent_renew(a);
		break;
	case TERN__ENVELOPE__BODY_PING:
		msg_init(&reply, env->request_id);
		pong.sent_ns = env->ping->sent_ns;
		reply.body_case = TERN__ENVELOPE__BODY_PONG;
		reply.pong = &pong;
		conn_send_msg(c, &reply);
		break;
	case TERN__ENVELOPE__BODY_PONG:
	case TERN__ENVELOPE__BODY_HOST_STATE:
		break;
	case TERN__ENVELOPE__BODY_LEASE_GRANT:
		agent_on_grant(a, env->lease_grant);
		break;
	case TERN__ENVELOPE__BODY_LEASE_NUDGE:
		agent_nudged(a);
		break;
	case TERN__ENVELOPE__BODY_ERROR:
		fprintf(stderr, "agentsim: %s: the coordinator says: %s\n",
		    a->name, env->error->text);
		break;
	default:
		fprintf(stderr, "agentsim: %s: unexpected %s\n", a->name,
		    msg_name(env));
		break;
	}
}

static void
on_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t n)
{
	(void)c;
	(void)ch;
	(void)p;
	(void)n;
}

static void
on_drain(struct conn *c)
{
	(void)c;
}

static void
retry_due(uv_timer_t *t)
{
	agent_dial(t->data);
}

static void
on_close(struct conn *c, const char *cause)
{
	struct agent	*a = conn_data(c);
	struct sim	*s = a->sim;

	a->conn = NULL;
	a->up = 0;
	if (s->phase == PH_DONE)
		return;		/* sim_stop closed it; its timers are closing */
	s->nclosed++;
	uv_timer_stop(&a->ping);
	fprintf(stderr, "agentsim: %s: connection lost: %s\n", a->name,
		    cause != NULL ? cause : "closed");
	if (a->handshaking) {
		/* Refused (the limiter) or failed: back in the queue. */
		a->handshaking = 0;
		s->inflight--;
	}
	/* A new connection, then Hello and a join, as ternd would. */
	uv_timer_start(&a->renew, retry_due, RETRY_MS, 0);
}

static const struct conn_ops ops = {
	.on_ready = on_ready,
	.on_msg = on_msg,
	.on_data = on_data,
	.on_drain = on_drain,
	.on_close = on_close,
};

static void
agent_dial(struct agent *a)
{
	struct sim	*s = a->sim;
	char		*cert, *key, *cause = NULL;

	if (a->conn != NULL || s->phase == PH_DONE)
		return;
	if (a->tls == NULL) {
		xasprintf(&cert, "%s/%s.pem", s->cert_dir, a->name);
		xasprintf(&key, "%s/%s.key", s->cert_dir, a->name);
		/* One context per agent (its own certificate), loaded once
		 * and kept for its reconnects. */
		a->tls = tls_ctx_new(s->ca_file, cert, key, NULL, &cause);
		free(cert);
		free(key);
		if (a->tls == NULL)
			die("%s: %s", a->name, cause);
	}
	a->handshaking = 1;
	s->inflight++;
	a->conn = conn_new(s->loop, &ops, &limits, a->name, a);
	if (conn_connect_tcp(a->conn, (struct sockaddr *)&s->addr, a->tls,
	    s->coord, &cause) != 0)
		free(cause);	/* on_close follows */
}

/* --- phases ---------------------------------------------------------------- */

static void
sim_stop(struct sim *s, int rc)
{
	int	i;

	s->phase = PH_DONE;
	s->rc = rc;
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, NULL);
	for (i = 0; i < s->nagents; i++) {
		struct agent *a = &s->agents[i];

		uv_close((uv_handle_t *)&a->renew, NULL);
		uv_close((uv_handle_t *)&a->ping, NULL);
		if (a->conn != NULL) {
			conn_set_data(a->conn, a);
			conn_close(a->conn, NULL);
		}
	}
}

static void
steady_begin(struct sim *s)
{
	s->phase = PH_STEADY;
	s->phase_ns = now_ns();
	if (s->cpu_pid > 0)
		s->cpu0 = cpu_seconds(s->cpu_pid);
	s->self0 = self_seconds();
	printf("steady: %.0f s from %.3f\n", s->steady_s, real_now());
}

static void
failover_begin(struct sim *s)
{
	struct agent	*v = &s->agents[0];
	double		 cpu, wall = since_s(s->phase_ns);

	lat_print("renew->grant (steady)", s->lat_us, s->nlat);
	if (s->cpu_pid > 0 && (cpu = cpu_seconds(s->cpu_pid)) >= 0 &&
	    s->cpu0 >= 0)
		printf("coordinator cpu: %.2f s over %.1f s = %.1f%% of one "
		    "core\n", cpu - s->cpu0, wall, 100 * (cpu - s->cpu0) / wall);
	/* The latency includes our own loop's delays: a saturated agentsim
	 * shows here. */
	cpu = self_seconds() - s->self0;
	printf("agentsim cpu (all agents): %.2f s = %.1f%% of one core\n",
	    cpu, 100 * cpu / wall);
	s->phase = PH_FAILOVER;
	s->phase_ns = now_ns();
	v->stopped = 1;
	uv_timer_stop(&v->renew);
	printf("victim %s (%zu instances) stops renewing at %.3f\n", v->name,
	    v->nheld, real_now());
	fflush(stdout);
}

static void
tick(uv_timer_t *t)
{
	struct sim	*s = t->data;
	struct agent	*v = &s->agents[0];
	double		 earliest;

	switch (s->phase) {
	case PH_CONNECT:
		if (s->nregistered == s->nagents) {
			printf("registered: %d agents, %d instances, in %.2f s\n",
			    s->nagents, s->victim_n + (s->nagents - 1) *
			    s->per_agent, since_s(s->t0_ns));
			steady_begin(s);
		} else if (since_s(s->t0_ns) > s->connect_timeout_s) {
			printf("registered: only %d of %d agents after %.0f s\n",
			    s->nregistered, s->nagents, s->connect_timeout_s);
			sim_stop(s, 1);
		}
		break;
	case PH_STEADY:
		if (since_s(s->phase_ns) >= s->steady_s)
			failover_begin(s);
		break;
	case PH_FAILOVER:
		/* The coordinator granted the victim's last renewal before
		 * the grant arrived (a renewal in flight at the stop may be
		 * granted after it): its earliest decision is at most this. */
		earliest = v->last_grant_real + (s->ttl_ms + s->margin_ms) /
		    1000.0;
		if (s->moved >= (int)v->nheld) {
			lat_print("renew->grant (failover)", s->flat_us,
			    s->nflat);
			printf("victim's last grant received at %.3f; earliest "
			    "decision (grant + ttl + margin) %.3f\n",
			    v->last_grant_real, earliest);
			printf("failover: all %d instances granted to survivors "
			    "at %.3f, %.3f s after the earliest decision\n",
			    s->moved, real_now(), real_now() - earliest);
			sim_stop(s, 0);
		} else if (since_s(s->phase_ns) > s->failover_timeout_s) {
			printf("failover: only %d of %zu instances granted to "
			    "survivors after %.0f s\n", s->moved, v->nheld,
			    s->failover_timeout_s);
			sim_stop(s, 1);
		}
		break;
	case PH_DONE:
		break;
	}
	fflush(stdout);
}

static void
certs(struct sim *s)
{
	struct stat	 sb;
	char		*path, *cause = NULL;
	uint64_t	 t = now_ns();
	int		 i, made = 0;

	for (i = 0; i < s->nagents; i++) {
		xasprintf(&path, "%s/%s.pem", s->cert_dir, s->agents[i].name);
		if (stat(path, &sb) != 0) {
			if (s->ca_dir == NULL)
				die("%s missing and no --ca-dir to issue it",
				    path);
			if (pki_cert_issue(s->ca_dir, s->agents[i].name,
			    s->cert_dir, 2, PKI_NOT_BEFORE_OFFSET, &cause) != 0)
				die("%s", cause);
			made++;
		}
		free(path);
	}
	if (made > 0)
		printf("certificates: %d issued in %.2f s\n", made,
		    since_s(t));
}

static void
usage(void)
{
	fprintf(stderr,
"usage: agentsim --coordinator NAME --address IP:PORT --ca-file PEM\n"
"         --cert-dir DIR [--ca-dir DIR] [--agents N] [--instances K]\n"
"         [--victim-instances M] [--ttl MS] [--margin MS] [--steady S]\n"
"         [--window W] [--heartbeat MS] [--prefix P] [--cpu-pid PID]\n"
"         [--connect-timeout S] [--failover-timeout S] [--checkpoint]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "coordinator", required_argument, NULL, 'c' },
		{ "address", required_argument, NULL, 'a' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "ca-dir", required_argument, NULL, 'D' },
		{ "cert-dir", required_argument, NULL, 'd' },
		{ "agents", required_argument, NULL, 'n' },
		{ "instances", required_argument, NULL, 'k' },
		{ "victim-instances", required_argument, NULL, 'm' },
		{ "ttl", required_argument, NULL, 't' },
		{ "margin", required_argument, NULL, 'g' },
		{ "steady", required_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'w' },
		{ "heartbeat", required_argument, NULL, 'h' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "cpu-pid", required_argument, NULL, 'P' },
		{ "connect-timeout", required_argument, NULL, 'T' },
		{ "failover-timeout", required_argument, NULL, 'F' },
		{ "checkpoint", no_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	struct sim	 sim, *s = &sim;
	const char	*address = NULL;
	char		*host, *colon, *cause = NULL;
	int		 ch, i, k;

	memset(s, 0, sizeof *s);
	s->nagents = 1000;
	s->per_agent = 1;
	s->victim_n = 1000;
	s->ttl_ms = 2000;
	s->margin_ms = 500;
	s->steady_s = 30;
	s->window = 16;
	s->heartbeat_ms = 1000;
	s->prefix = "a";
	s->connect_timeout_s = 120;
	s->failover_timeout_s = 60;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': s->coord = optarg; break;
		case 'a': address = optarg; break;
		case 'C': s->ca_file = optarg; break;
		case 'D': s->ca_dir = optarg; break;
		case 'd': s->cert_dir = optarg; break;
		case 'n': s->nagents = atoi(optarg); break;
		case 'k': s->per_agent = atoi(optarg); break;
		case 'm': s->victim_n = atoi(optarg); break;
		case 't': s->ttl_ms = (unsigned)atoi(optarg); break;
		case 'g': s->margin_ms = (unsigned)atoi(optarg); break;
		case 's': s->steady_s = atof(optarg); break;
		case 'w': s->window = atoi(optarg); break;
		case 'h': s->heartbeat_ms = (unsigned)atoi(optarg); break;
		case 'p': s->prefix = optarg; break;
		case 'P': s->cpu_pid = atoi(optarg); break;
		case 'T': s->connect_timeout_s = atof(optarg); break;
		case 'F': s->failover_timeout_s = atof(optarg); break;
		case 'K': s->checkpoint = 1; break;
		default: usage();
		}
	}
	if (s->coord == NULL || address == NULL || s->ca_file == NULL ||
	    s->cert_dir == NULL || optind != argc || s->nagents < 2 ||
	    s->nagents > 100000 || s->per_agent < 0 || s->victim_n < 1 ||
	    s->ttl_ms < 300 || s->window < 1 || s->heartbeat_ms < 10)
		usage();
	host = xstrdup(address);
	if ((colon = strrchr(host, ':')) == NULL)
		usage();
	*colon = '\0';
	if (sockaddr_parse(host, atoi(colon + 1), &s->addr, &cause) != 0)
		die("%s: %s", address, cause);
	free(host);
	setvbuf(stdout, NULL, _IOLBF, 0);
	s->loop = uv_default_loop();
	s->agents = xcalloc((size_t)s->nagents, sizeof *s->agents);
	for (i = 0; i < s->nagents; i++) {
		struct agent *a = &s->agents[i];
		int n = i == 0 ? s->victim_n : s->per_agent;

		a->sim = s;
		a->idx = i;
		snprintf(a->name, sizeof a->name, "%s%05d", s->prefix, i);
		a->held = xcalloc((size_t)n + 1, sizeof *a->held);
		for (k = 0; k < n; k++)
			xasprintf(&a->held[a->nheld++].name, "%s-%04d",
			    a->name, k);
		uv_timer_init(s->loop, &a->renew);
		uv_timer_init(s->loop, &a->ping);
		a->renew.data = a->ping.data = a;
	}
	certs(s);
	uv_timer_init(s->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, tick, 50, 50);
	s->t0_ns = now_ns();
	printf("connecting %d agents to %s at %s, at most %d handshakes at "
	    "once\n", s->nagents, s->coord, address, s->window);
	while (s->inflight < s->window && s->next_dial < s->nagents)
		agent_dial(&s->agents[s->next_dial++]);
	uv_run(s->loop, UV_RUN_DEFAULT);
	printf("agentsim: %" PRIu64 " renewals, %" PRIu64 " grants, %" PRIu64
	    " refusals, %" PRIu64 " connections lost\n", s->nrenew, s->ngrant,
	    s->nrefused, s->nclosed);
	for (i = 0; i < s->nagents; i++) {
		size_t j;

		for (j = 0; j < s->agents[i].nheld; j++)
			free(s->agents[i].held[j].name);
		free(s->agents[i].held);
		tls_ctx_free(s->agents[i].tls);
	}
	free(s->agents);
	free(s->lat_us);
	free(s->flat_us);
	uv_loop_close(s->loop);
	return s->rc;
}
