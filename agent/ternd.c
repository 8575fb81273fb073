/* ternd: the tern agent.  Loads the configuration, opens the control
 * socket and the mutual-TLS peer listener, and runs the event loop until
 * SIGTERM/SIGINT; SIGHUP reloads the configuration, keeping the old one
 * if the new one is invalid. */
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
#include "agent/control.h"
#include "agent/ha-instances.h"
#include "agent/instances.h"
#include "agent/migration.h"
#include "agent/vm-instances.h"
#include "agent/vm-migration.h"
#include "checkpoint/vm.h"
#include "checkpoint/cpuinfo.h"
#include "daemon/ctlsock.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/longjob.h"
#include "daemon/loop-probe.h"
#include "daemon/mesh.h"
#include "daemon/pidfile.h"
#include "daemon/tls.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define TERND_HANDSHAKE_MS	5000

static uv_signal_t	sig_term, sig_int, sig_hup;

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
agent_limits(struct agent *a)
{
	struct ternd	*td = a->ternd;

	td->peer_limits.max_frame = (uint32_t)td->conf->max_frame_size;
	td->peer_limits.send_max = td->conf->send_buffer_max;
	td->peer_limits.handshake_ms = TERND_HANDSHAKE_MS;
	criu_set_timeout((unsigned)td->conf->criu_timeout_ms);
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
agent_reload(struct agent *a)
{
	struct ternd	*td = a->ternd;
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
	agent_limits(a);
	longjobs_set_max(a->longjobs, (unsigned)td->conf->max_vm_migrations);
	migration_reconfigure(a);
	mesh_reconfigure(td->mesh);
	log_info("configuration reloaded");
	return;
fail:
	log_warnx("reload failed, keeping the old configuration: %s", cause);
	free(cause);
	conf_free(conf);
}

static void
agent_stop(struct agent *a)
{
	struct ternd	*td = a->ternd;
	char		*desc;

	if (td->stopping)
		return;
	td->stopping = 1;
	log_info("shutting down");
	ctlsock_close(td->ctl);
	td->ctl = NULL;
	migration_shutdown(a);
	ha_instances_stop(a);
	mesh_stop(td->mesh);
	td->mesh = NULL;
	instances_close(a->instances);
	a->instances = NULL;
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	desc = loop_probe_describe(&td->probe);
	log_info("event loop latency: %s", desc);
	free(desc);
	loop_probe_stop(&td->probe, NULL);
}

/* libvirt's news: a migration's pass for the migrations, the rest for
 * the instance table. */
static void
agent_vm_event(void *arg, const char *name, enum vm_ev ev, const char *why,
    int detail)
{
	struct agent	*a = arg;

	if (ev == VM_EV_ITERATION) {
		vm_migration_iteration(a, name, detail);
		return;
	}
	if (ev == VM_EV_MIGRATED_OUT || ev == VM_EV_POSTCOPY_SWITCH) {
		vm_migration_event(a, name, ev, detail);
		return;
	}
	if (a->instances != NULL)
		vm_instances_event(a->instances, name, ev, why, detail);
}

static void
agent_vms_open(struct agent *a)
{
	struct ternd	*td = a->ternd;
	char		*cause = NULL;

	vm_migration_clean(a);
	if (td->conf->libvirt_uri[0] == '\0') {
		log_info("libvirt_uri is empty: no VMs on this host");
		return;
	}
	if ((a->vms = vm_host_open(td->loop, td->conf->libvirt_uri,
	    agent_vm_event, a, &cause)) == NULL) {
		log_warnx("no VMs on this host: %s", cause);
		free(cause);
		return;
	}
	if (cause != NULL) {
		log_warnx("%s; VMs wait until it answers", cause);
		free(cause);
	} else
		log_info("libvirt %s: connected", td->conf->libvirt_uri);
}

/* Open the instances and meet the peers (their Hello carries our
 * capabilities). */
static void
agent_open(struct agent *a)
{
	struct ternd	*td = a->ternd;
	char		*cause = NULL;

	if ((a->instances = instances_open(a, &cause)) == NULL ||
	    mesh_start(td->mesh, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
		td->exit_code = 1;
		agent_stop(a);
		return;
	}
	ha_instances_start(a);
}

/* This CPU as CRIU sees it, for the targets of our migrations to check.
 * Without it containers still run here, but do not migrate away. */
static void
agent_cpuinfo_dumped(uint8_t *img, size_t len, const char *error, void *arg)
{
	struct agent	*a = arg;

	if (img != NULL) {
		a->cpuinfo = img;
		a->cpuinfo_len = len;
		log_debug("CPU description for migrations: %zu bytes", len);
	} else {
		a->cpuinfo_error = xstrdup(error);
		log_warnx("cannot describe this CPU for migrations, so none "
		    "will start here: %s", error);
	}
	if (!a->ternd->stopping)
		agent_open(a);
}

/* CRIU is known: say what container work is possible, then describe the
 * CPU (if CRIU can work here) and open for business. */
static void
agent_criu_probed(const struct criu_features *f, void *arg)
{
	struct agent	*a = arg;
	struct ternd	*td = a->ternd;
	char		*what, *cause = NULL;

	criu_features_clear(&a->criu);
	a->criu = *f;
	a->criu.problem = f->problem != NULL ? xstrdup(f->problem) : NULL;
	a->criu.lazy_problem = f->lazy_problem != NULL ?
	    xstrdup(f->lazy_problem) : NULL;
	a->criu_probed = 1;
	what = criu_features_describe(&a->criu);
	if (a->criu.usable && !a->criu.mem_track)
		log_info("%s; container migration will use %s, not pre-copy",
		    what, a->criu.lazy_pages ? "post-copy" : "stop-and-copy");
	else if (a->criu.usable)
		log_info("%s", what);
	else
		log_warnx("%s", what);
	free(what);
	if (a->criu.usable && a->criu.lazy_pages &&
	    (a->criu_action = criu_action_script(td->conf->state_dir,
	    &cause)) == NULL) {
		/* Post-copy drives CRIU's command line through it. */
		log_warnx("%s; no post-copy from here", cause);
		free(cause);
		a->criu.lazy_pages = 0;
	}
	if (td->stopping)
		return;
	if (!a->criu.usable) {
		agent_open(a);
		return;
	}
	/* Before any migration can start: offers carry it. */
	cpuinfo_dump(td->loop, td->conf->criu_path, td->conf->state_dir,
	    agent_cpuinfo_dumped, a);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct agent	*a = h->data;

	if (signum == SIGHUP)
		agent_reload(a);
	else
		agent_stop(a);
}

static void
signal_watch(uv_loop_t *loop, uv_signal_t *h, int signum, struct agent *a)
{
	uv_signal_init(loop, h);
	h->data = a;
	uv_signal_start(h, on_signal, signum);
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

/* A start that failed after the loop began: let it run dry. */
static void
agent_abort_start(struct agent *a, uv_loop_t *loop)
{
	agent_stop(a);
	longjobs_close(a->longjobs);
	a->longjobs = NULL;
	uv_run(loop, UV_RUN_DEFAULT);
}

/* The loop and the roles on it, until ternd stops: the exit status. */
static int
agent_run(struct agent *a, uv_loop_t *loop)
{
	struct ternd	*td = a->ternd;
	char		*path, *cause = NULL, pool[16];

	/* libuv reads it once, when the pool first starts.  Long jobs run
	 * on threads of their own (daemon/longjob.h), not there. */
	snprintf(pool, sizeof pool, "%d", td->conf->thread_pool_size);
	setenv("UV_THREADPOOL_SIZE", pool, 1);
	uv_loop_init(loop);
	td->loop = loop;
	loop_probe_start(&td->probe, loop);
	a->longjobs = longjobs_new(loop, (unsigned)td->conf->max_vm_migrations,
	    "max_vm_migrations");
	td->start_ms = now_ms();
	migration_init(a);
	agent_limits(a);
	signal_watch(loop, &sig_term, SIGTERM, a);
	signal_watch(loop, &sig_int, SIGINT, a);
	signal_watch(loop, &sig_hup, SIGHUP, a);

	xasprintf(&path, "%s/ternd.sock", td->conf->run_dir);
	td->ctl = ctlsock_listen(loop, path, td->conf->control_group,
	    &td->peer_limits, control_request, a, &cause);
	free(path);
	if (td->ctl == NULL) {
		log_warnx("%s", cause);
		free(cause);
		agent_abort_start(a, loop);
		return 1;
	}
	td->mesh = mesh_new(td);
	agent_mesh_register(a, td->mesh);
	if (ha_instances_register(a, &cause) != 0) {
		log_warnx("coordinator role: %s", cause);
		free(cause);
		agent_abort_start(a, loop);
		return 1;
	}
	agent_vms_open(a);
	log_info("ternd %s started as host %s (pid %ld, %zu peers)",
	    PACKAGE_VERSION, td->conf->host_name, (long)getpid(),
	    td->conf->npeers);
	if (td->conf->criu_path[0] != '\0')
		criu_probe(loop, td->conf->criu_path, td->conf->state_dir,
		    agent_criu_probed, a);
	else {
		struct criu_features none = { .problem = "criu_path is empty" };

		agent_criu_probed(&none, a);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	/* Only now: VM calls on the thread pool and long jobs used the
	 * connection (the loop ran dry: every long job is done). */
	longjobs_close(a->longjobs);
	a->longjobs = NULL;
	vm_host_close(a->vms);
	a->vms = NULL;
	uv_run(loop, UV_RUN_DEFAULT);
	log_info("stopped");
	return td->exit_code;
}

int
main(int argc, char **argv)
{
	struct ternd	 ternd, *td = &ternd;
	struct agent	 agent, *a = &agent;
	uv_loop_t	 loop;
	const char	*conf_path = NULL;
	char		*pidpath = NULL;
	int		 check = 0, foreground = 0, pidfd = -1, rc = 1;

	memset(td, 0, sizeof *td);
	memset(a, 0, sizeof *a);
	a->ternd = td;
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
	rc = agent_run(a, &loop);
	if (uv_loop_close(&loop) != 0)
		log_warnx("event loop closed with handles still open");
out:
	if (pidpath != NULL)
		pidfile_remove(pidpath, pidfd);
	free(pidpath);
	tls_ctx_free(td->tls);
	criu_features_clear(&a->criu);
	free(a->criu_action);
	free(a->cpuinfo);
	free(a->cpuinfo_error);
	conf_free(td->conf);
	fault_fini();
	free(td->conf_path);
	return rc;
}
