/* ternd: one process per host that runs tern's roles on shared ground.
 * Loads the configuration, then composes the roles on one loop: the agent
 * (agent/role.h) always, the coordinator (coord/role.h) when the
 * configuration's role names it, and the peer mesh they share; runs the
 * loop until SIGTERM/SIGINT; SIGHUP reloads the configuration, keeping
 * the old one if the new one is invalid.  The roles never call each
 * other: the agent reaches this host's coordinator through the mesh,
 * which delivers lease messages a host sends itself (mesh_deliver_local),
 * and ternctl status asks the coordinator's line through struct ternd. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define LOG_MODULE "ternd"
#include "agent/agent.h"
#include "agent/role.h"
#include "checkpoint/hwbreak.h"
#include "checkpoint/uffd-guard.h"
#include "coord/role.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/loop-probe.h"
#include "daemon/mesh.h"
#include "daemon/pidfile.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define TERND_HANDSHAKE_MS	5000

/* The process: what main composes. */
static struct ternd		 ternd;
static struct agent		 agent;
static int			 agent_started;
static struct coord_role	*coord;
static uv_signal_t		 sig_term, sig_int, sig_hup;

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ternd [-Fn] [-f file]\n"
	    "       ternd --help-config\n"
	    "  -f file   configuration (default %s/tern/ternd.conf)\n"
	    "  -F        stay in the foreground, log to stderr\n"
	    "  -n        check the configuration and exit\n",
	    SYSCONFDIR);
}

static void
ternd_limits(struct ternd *td)
{
	td->peer_limits.max_frame = (uint32_t)td->conf->max_frame_size;
	td->peer_limits.send_max = td->conf->send_buffer_max;
	td->peer_limits.handshake_ms = TERND_HANDSHAKE_MS;
}

/* Options a running ternd cannot change; a reload changing one is refused. */
static const char *
conf_fixed_change(const struct conf *old, const struct conf *new)
{
	if (strcmp(old->host_name, new->host_name) != 0)
		return "host_name";
	if (strcmp(old->listen_address, new->listen_address) != 0)
		return "listen_address";
	if (old->listen_port != new->listen_port)
		return "listen_port";
	if (strcmp(old->run_dir, new->run_dir) != 0)
		return "run_dir";
	if (strcmp(old->state_dir, new->state_dir) != 0)
		return "state_dir";
	if (strcmp(old->control_group, new->control_group) != 0)
		return "control_group";
	if (strcmp(old->criu_path, new->criu_path) != 0)
		return "criu_path";
	if (old->thread_pool_size != new->thread_pool_size)
		return "thread_pool_size";
	return NULL;
}

static void
ternd_reload(struct ternd *td)
{
	struct conf	*conf;
	struct tls_ctx	*tls = NULL;
	const char	*fixed;
	char		*cause = NULL;

	log_info("reloading %s", td->conf_path);
	if ((conf = conf_load(td->conf_path, &cause)) == NULL)
		goto fail;
	if ((fixed = conf_fixed_change(td->conf, conf)) != NULL) {
		xasprintf(&cause, "%s changed: restart ternd to apply it", fixed);
		goto fail;
	}
	if (log_set_filters(conf->log_filters, &cause) != 0)
		goto fail;
	if ((tls = tls_ctx_new(conf->ca_file, conf->cert_file, conf->key_file,
	    conf->revoked_file, &cause)) == NULL) {
		log_set_filters(td->conf->log_filters, NULL);
		goto fail;
	}
	/* Live connections keep the TLS context they started with. */
	tls_ctx_free(td->tls);
	td->tls = tls;
	conf_free(td->conf);
	td->conf = conf;
	ternd_limits(td);
	agent_role_reconfigure(&agent);
	mesh_reconfigure(td->mesh);
	log_info("configuration reloaded");
	return;
fail:
	log_warnx("reload failed, keeping the old configuration: %s", cause);
	free(cause);
	conf_free(conf);
}

/* Every role stops; the loop then runs dry. */
static void
ternd_stop(struct ternd *td)
{
	char	*desc;

	if (td->stopping)
		return;
	td->stopping = 1;
	log_info("shutting down");
	if (agent_started)
		agent_role_stop(&agent);
	td->coord_describe = NULL;
	coord_role_stop(coord);
	coord = NULL;
	mesh_stop(td->mesh);
	td->mesh = NULL;
	if (agent_started)
		agent_role_close(&agent);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	desc = loop_probe_describe(&td->probe);
	log_info("event loop latency: %s", desc);
	free(desc);
	loop_probe_stop(&td->probe, NULL);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct ternd	*td = h->data;

	if (signum == SIGHUP)
		ternd_reload(td);
	else
		ternd_stop(td);
}

static void
signal_watch(struct ternd *td, uv_signal_t *h, int signum)
{
	uv_signal_init(td->loop, h);
	h->data = td;
	uv_signal_start(h, on_signal, signum);
}

static char *
ternd_coord_describe(void *ctx)
{
	return coord_role_describe(ctx);
}

/* The command line: 0 to go on, else the exit status + 1 (help). */
static int
ternd_args(int argc, char **argv, const char **conf_path, int *foreground,
    int *check)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "help-config", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;

	while ((ch = getopt_long(argc, argv, "Ff:hn", longopts, NULL)) != -1) {
		switch (ch) {
		case 'F':
			*foreground = 1;
			break;
		case 'f':
			*conf_path = optarg;
			break;
		case 'n':
			*check = 1;
			break;
		case 'C':
			conf_print_options(stdout);
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 3;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 3;
	}
	return 0;
}

/* The configuration, log filters and fault points: 0, or -1 (said on
 * stderr). */
static int
ternd_configure(struct ternd *td, const char *conf_path, int to_stderr)
{
	char	*cause = NULL;

	if (conf_path == NULL)
		xasprintf(&td->conf_path, "%s/tern/ternd.conf", SYSCONFDIR);
	else
		td->conf_path = xstrdup(conf_path);
	log_init("ternd", to_stderr);
	if ((td->conf = conf_load(td->conf_path, &cause)) == NULL)
		fprintf(stderr, "ternd: %s\n", cause);
	else if (log_set_filters(td->conf->log_filters, &cause) != 0)
		fprintf(stderr, "ternd: %s: log_filters: %s\n", td->conf_path,
		    cause);
	else if (fault_init(getenv("TERN_FAULT"), &cause) != 0)
		fprintf(stderr, "ternd: %s\n", cause);
	else
		return 0;
	free(cause);
	return -1;
}

/* Directories, the pid file, the TLS identity, the boot id: 0, or -1
 * (logged). */
static int
ternd_prepare(struct ternd *td, char **pidpath, int *pidfd)
{
	char	*cause = NULL;

	if (mkdir_p(td->conf->run_dir, 0755, &cause) != 0 ||
	    mkdir_p(td->conf->state_dir, 0700, &cause) != 0)
		goto fail;
	xasprintf(pidpath, "%s/ternd.pid", td->conf->run_dir);
	if ((*pidfd = pidfile_create(*pidpath, &cause)) == -1)
		goto fail;
	if ((td->tls = tls_ctx_new(td->conf->ca_file, td->conf->cert_file,
	    td->conf->key_file, td->conf->revoked_file, &cause)) == NULL)
		goto fail;
	if (strcmp(tls_ctx_own_name(td->tls), td->conf->host_name) != 0) {
		log_warnx("%s names host \"%s\" but host_name is \"%s\": issue a "
		    "certificate for this host (ternctl cert issue %s)",
		    td->conf->cert_file, tls_ctx_own_name(td->tls),
		    td->conf->host_name, td->conf->host_name);
		return -1;
	}
	if (getrandom(&td->boot_id, sizeof td->boot_id, 0) != sizeof td->boot_id)
		td->boot_id = (uint64_t)getpid() << 32 | (uint64_t)now_ns();
	return 0;
fail:
	log_warnx("%s", cause);
	free(cause);
	return -1;
}

/* The coordinator role, if the configuration names it: before the mesh
 * starts (the agent starts it once CRIU is known).  Lease messages this
 * host sends itself go to its own handlers. */
static int
ternd_coord_start(struct ternd *td, char **cause)
{
	if (strstr(td->conf->role, "coordinator") == NULL)
		return 0;
	if ((coord = coord_role_start(td, cause)) == NULL)
		return -1;
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_LEASE_RENEW);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_LEASE_GRANT);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_LEASE_NUDGE);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_OWNER_MOVE_REQUEST);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_OWNER_QUERY);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_OWNER_QUERY_REPLY);
	/* ternctl ha set / ha status / failovers on the coordinator's host */
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_HA_SET_REQUEST);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_HA_SET_REPLY);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_HA_STATUS_REQUEST);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_HA_STATUS_REPLY);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_FAILOVERS_REQUEST);
	mesh_deliver_local(td->mesh, TERN__ENVELOPE__BODY_FAILOVERS_REPLY);
	td->coord_describe = ternd_coord_describe;
	td->coord_ctx = coord;
	return 0;
}

/* The loop and the roles on it, until ternd stops: the exit status. */
static int
ternd_run(struct ternd *td, uv_loop_t *loop)
{
	char	*cause = NULL, pool[16];
	int	 rc = 0;

	/* libuv reads it once, when the pool first starts.  Long jobs run
	 * on threads of their own (daemon/longjob.h), not there. */
	snprintf(pool, sizeof pool, "%d", td->conf->thread_pool_size);
	setenv("UV_THREADPOOL_SIZE", pool, 1);
	/* The same goes for CRIU_FAULT, which every CRIU inherits. */
	if (td->conf->criu_path[0] != '\0')
		hwbreak_setup();
	uv_loop_init(loop);
	td->loop = loop;
	td->stop = ternd_stop;
	loop_probe_start(&td->probe, loop);
	td->start_ms = now_ms();
	ternd_limits(td);
	signal_watch(td, &sig_term, SIGTERM);
	signal_watch(td, &sig_int, SIGINT);
	signal_watch(td, &sig_hup, SIGHUP);
	td->mesh = mesh_new(td);
	if (ternd_coord_start(td, &cause) != 0) {
		log_warnx("coordinator role: %s", cause);
		rc = -1;
	} else {
		log_info("ternd %s started as host %s (pid %ld, %zu peers)",
		    PACKAGE_VERSION, td->conf->host_name, (long)getpid(),
		    td->conf->npeers);
		agent_started = 1;
		if (agent_role_start(&agent, &cause) != 0) {
			log_warnx("%s", cause);
			rc = -1;
		}
	}
	if (rc != 0) {
		/* A start that failed after the loop began: let it run dry. */
		free(cause);
		td->exit_code = 1;
		ternd_stop(td);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	if (agent_started)
		agent_role_finish(&agent);
	uv_run(loop, UV_RUN_DEFAULT);
	log_info("stopped");
	return td->exit_code;
}

int
main(int argc, char **argv)
{
	struct ternd	*td = &ternd;
	uv_loop_t	 loop;
	const char	*conf_path = NULL;
	char		*pidpath = NULL;
	int		 check = 0, foreground = 0, pidfd = -1, rc = 1;

	/* Not a ternd: the guard of a post-copy's missing pages, which
	 * ternd starts by executing itself (checkpoint/uffd-guard.h). */
	if (argc == 2 && strcmp(argv[1], UFFD_GUARD_ARG) == 0)
		return uffd_guard_main();
	agent.ternd = td;
	if ((rc = ternd_args(argc, argv, &conf_path, &foreground, &check)) != 0)
		return rc - 1;
	rc = 1;
	if (ternd_configure(td, conf_path, foreground || check) != 0)
		goto out;
	if (check) {
		printf("ternd: %s: configuration OK\n", td->conf_path);
		rc = 0;
		goto out;
	}
	if (!foreground && daemon(0, 0) != 0) {
		fprintf(stderr, "ternd: cannot daemonise: %s\n", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if (ternd_prepare(td, &pidpath, &pidfd) != 0)
		goto out;
	rc = ternd_run(td, &loop);
	if (uv_loop_close(&loop) != 0)
		log_warnx("event loop closed with handles still open");
out:
	if (pidpath != NULL)
		pidfile_remove(pidpath, pidfd);
	free(pidpath);
	tls_ctx_free(td->tls);
	agent_role_free(&agent);
	conf_free(td->conf);
	fault_fini();
	free(td->conf_path);
	return rc;
}
