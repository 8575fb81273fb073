/* The agent role on a ternd (see role.h): its start, reload and stop,
 * driven by main (main/ternd.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "ternd"
#include "agent/agent.h"
#include "agent/control.h"
#include "agent/drain.h"
#include "agent/ha-ops.h"
#include "agent/ha-instances.h"
#include "agent/instances.h"
#include "agent/migration.h"
#include "agent/role.h"
#include "agent/vm-instances.h"
#include "agent/vm-migration.h"
#include "checkpoint/vm.h"
#include "checkpoint/cpuinfo.h"
#include "checkpoint/uffd-guard.h"
#include "daemon/ctlsock.h"
#include "daemon/log.h"
#include "daemon/longjob.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

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
		td->stop(td);
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
	/* Once, now: a post-copy's resume only hands it the tree. */
	cause = NULL;
	if (a->criu.usable && a->criu.lazy_pages &&
	    uffd_guard_start(td->loop, &cause) != 0) {
		log_warnx("cannot start the guard of post-copies' missing "
		    "pages (%s): should ternd die in a post-copy, the container "
		    "may read the pages it lacks as zeros", cause);
		free(cause);
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

int
agent_role_start(struct agent *a, char **cause)
{
	struct ternd	*td = a->ternd;
	char		*path;

	a->longjobs = longjobs_new(td->loop, (unsigned)td->conf->max_vm_migrations,
	    "max_vm_migrations");
	migration_init(a);
	criu_set_timeout((unsigned)td->conf->criu_timeout_ms);
	xasprintf(&path, "%s/ternd.sock", td->conf->run_dir);
	td->ctl = ctlsock_listen(td->loop, path, td->conf->control_group,
	    &td->peer_limits, control_request, a, cause);
	free(path);
	if (td->ctl == NULL)
		return -1;
	agent_mesh_register(a, td->mesh);
	ha_instances_register(a);
	agent_vms_open(a);
	if (td->conf->criu_path[0] != '\0')
		criu_probe(td->loop, td->conf->criu_path, td->conf->state_dir,
		    agent_criu_probed, a);
	else {
		struct criu_features none = { .problem = "criu_path is empty" };

		agent_criu_probed(&none, a);
	}
	return 0;
}

void
agent_role_reconfigure(struct agent *a)
{
	struct ternd	*td = a->ternd;

	criu_set_timeout((unsigned)td->conf->criu_timeout_ms);
	longjobs_set_max(a->longjobs, (unsigned)td->conf->max_vm_migrations);
	migration_reconfigure(a);
}

void
agent_role_stop(struct agent *a)
{
	struct ternd	*td = a->ternd;

	ctlsock_close(td->ctl);
	td->ctl = NULL;
	migration_shutdown(a);
	ha_instances_stop(a);
}

void
agent_role_close(struct agent *a)
{
	instances_close(a->instances);
	a->instances = NULL;
	uffd_guard_close();
}

/* Only now: VM calls on the thread pool and long jobs used the
 * connection (the loop ran dry: every long job is done). */
void
agent_role_finish(struct agent *a)
{
	longjobs_close(a->longjobs);
	a->longjobs = NULL;
	vm_host_close(a->vms);
	a->vms = NULL;
}

void
agent_role_free(struct agent *a)
{
	drain_free(a);
	ha_ops_free(a);
	criu_features_clear(&a->criu);
	free(a->criu_action);
	free(a->cpuinfo);
	free(a->cpuinfo_error);
}
