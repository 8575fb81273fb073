/* Container migration, the source's start: what the operator asked
 * for, the mode, the offer. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-instance.h"
#include "agent/ctr-mig-internal.h"
#include "agent/instance-internal.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container.h"
#include "checkpoint/file-locks.h"
#include "checkpoint/lazy-check.h"
#include "checkpoint/restore-limits.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/ratelimit.h"
#include "daemon/xmalloc.h"

static int
ctr_postcopy_possible(struct agent *a, const char *to)
{
	return a->criu.lazy_pages && a->criu_action != NULL &&
	    mesh_has_capability(a->ternd->mesh, to, "criu.lazy-pages");
}

/* Stop-and-copy freezes a container for its dump, copy and restore: about
 * its memory over MIG_STOPCOPY_RATE (what 1 GiB took here, end to end),
 * or over --bandwidth if that is lower.  1 and *cause if that exceeds
 * --max-downtime. */
#define MIG_STOPCOPY_RATE	(100ULL << 20)

/* The lowest --bandwidth: 1 MB/s.  Slower, a stop-and-copy of even a
 * small container stands frozen for minutes (over 17 per GiB), and a
 * post-copy one waits as long on the pages it touches. */
#define MIG_BANDWIDTH_MIN	1000000ULL

static int
ctr_stopcopy_too_long(struct agent *a, struct instance *in,
    const Tern__MigrateRequest *r, int postcopy_ok, char **cause)
{
	uint64_t	mem = container_memory_usage(in->name), rate, est;
	int		limited = 0;

	rate = MIG_STOPCOPY_RATE;
	if (r->has_bandwidth && r->bandwidth < rate) {
		rate = r->bandwidth;
		limited = 1;
	}
	est = mem * 1000 / rate;
	if (est <= r->max_downtime_ms)
		return 0;
	xasprintf(cause, "stop-and-copy would freeze %s for about %llu ms "
	    "(%.0f MiB at ~%.1f MB/s%s), more than --max-downtime %u ms; %s",
	    in->name, (unsigned long long)est, (double)mem / (1 << 20),
	    (double)rate / 1e6, limited ? ", the --bandwidth" : "",
	    r->max_downtime_ms, postcopy_ok ?
	    "--mode postcopy (or auto) freezes it only while its other state "
	    "moves" : "post-copy is not available between these hosts");
	return 1;
}

/* What the operator asked for, and where to: 0 and the instance, or -1
 * with *code and *cause. */
static int
ctr_source_check(struct agent *a, const Tern__MigrateRequest *r,
    struct instance **inp, int *code, char **cause)
{
	Tern__MigrationMode mode;
	char		 rate[32];
	struct instance	*in;

	mode = r->has_mode ? r->mode : TERN__MIGRATION_MODE__MODE_AUTO;
	*code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
	if (mode == TERN__MIGRATION_MODE__MODE_PRECOPY) {
		*cause = xstrdup(a->criu.mem_track ?
		    "pre-copy of containers is not implemented; use --mode "
		    "postcopy or stopcopy" : "pre-copy needs memory tracking "
		    "(soft-dirty), which this host's kernel lacks (criu check "
		    "--feature mem_dirty_track); use --mode auto, postcopy or "
		    "stopcopy");
		return -1;
	}
	if (r->has_bandwidth && r->bandwidth < MIG_BANDWIDTH_MIN) {
		ctr_format_rate(rate, sizeof rate, r->bandwidth);
		xasprintf(cause, "--bandwidth %s is too low: at least 1M (1 "
		    "MB/s, 8mbit), or a container stands frozen (stop-and-copy) "
		    "or stalled on its memory (post-copy) for minutes", rate);
		return -1;
	}
	if (a->instances == NULL ||
	    (in = instance_find(a->instances, r->name)) == NULL) {
		*code = TERN__ERROR_CODE__ERROR_NOT_FOUND;
		*cause = xstrdup("no instance named so on this host (ternctl "
		    "list)");
		return -1;
	}
	if (in->state != INST_RUNNING || in->pid <= 0) {
		xasprintf(cause, "instance %s is %s: only a running instance "
		    "migrates", in->name, inst_state_names[in->state]);
		return -1;
	}
	if (ctr_memory_in(in, "migrate it", code, cause) != 0)
		return -1;
	if (!mesh_has_capability(a->ternd->mesh, r->to, "criu")) {
		xasprintf(cause, "host %s cannot run containers (no usable "
		    "CRIU there: see ternctl status on it)", r->to);
		return -1;
	}
	if (a->cpuinfo == NULL) {
		xasprintf(cause, "%s cannot describe its CPU for %s to check: "
		    "%s", a->ternd->conf->host_name, r->to, a->cpuinfo_error != NULL ?
		    a->cpuinfo_error : "no CRIU cpuinfo dump");
		return -1;
	}
	*inp = in;
	return 0;
}

/* Post-copy or stop-and-copy, and why (*note, for the operator): 0, or
 * -1 with *cause. */
static int
ctr_source_mode(struct agent *a, struct instance *in,
    const Tern__MigrateRequest *r, int *postcopyp, int *lazy_restorep,
    char **note, char **cause)
{
	Tern__MigrationMode mode;
	char		*why = NULL, *lazy_why = NULL;
	pid_t		*pids = NULL;
	size_t		 npids = 0;
	int		 postcopy, rc = -1;

	mode = r->has_mode ? r->mode : TERN__MIGRATION_MODE__MODE_AUTO;
	/* auto: pre-copy where memory is tracked (not built for containers),
	 * else post-copy where both CRIUs do lazy pages, else stop-and-copy. */
	postcopy = ctr_postcopy_possible(a, r->to);
	if (mode == TERN__MIGRATION_MODE__MODE_POSTCOPY && !postcopy) {
		if (a->criu.lazy_pages)
			xasprintf(cause, "post-copy needs lazy pages in CRIU on "
			    "both hosts; %s has none (ternctl status there)",
			    r->to);
		else
			xasprintf(cause, "post-copy is not possible from %s: %s",
			    a->ternd->conf->host_name, a->criu.lazy_problem != NULL ?
			    a->criu.lazy_problem : "its CRIU or kernel has no "
			    "lazy pages (userfaultfd)");
		return -1;
	}
	if (mode == TERN__MIGRATION_MODE__MODE_STOPCOPY)
		postcopy = 0;
	if (container_pids(in->name, &pids, &npids, cause) != 0)
		return -1;
	/* A lock on shared storage would make the target's restore wait for
	 * the frozen source: refused, whatever the mode. */
	if (in->spec->shared_storage && file_locks_on_shared(in->spec->root,
	    pids, npids, &why) > 0) {
		xasprintf(cause, "%s cannot move now: %s", in->name, why);
		goto out;
	}
	free(why);
	why = NULL;
	/* What CRIU would bring back broken is not moved at all. */
	if (restore_limits_pids(pids, npids, &why) > 0) {
		xasprintf(cause, "%s cannot move now: %s", in->name, why);
		goto out;
	}
	free(why);
	why = NULL;
	/* What lazy pages cannot carry moves by stop-and-copy, or not at all
	 * when post-copy was asked for. */
	if (postcopy && lazy_check_pids(pids, npids, &why) != 0) {
		if (mode == TERN__MIGRATION_MODE__MODE_POSTCOPY) {
			xasprintf(cause, "post-copy cannot move %s: %s; use "
			    "--mode stopcopy (or auto)", in->name, why);
			goto out;
		}
		postcopy = 0;
	}
	/* Stop-and-copy: the target may resume it before its memory is in
	 * (ctr_target_restore) if lazy pages can carry it. */
	*lazy_restorep = !postcopy && why == NULL &&
	    mesh_has_capability(a->ternd->mesh, r->to, "criu.lazy-pages") &&
	    lazy_check_pids(pids, npids, &lazy_why) == 0;
	free(lazy_why);
	if (!postcopy && r->has_max_downtime_ms && r->max_downtime_ms > 0 &&
	    ctr_stopcopy_too_long(a, in, r, ctr_postcopy_possible(a, r->to),
	    cause))
		goto out;
	if (mode == TERN__MIGRATION_MODE__MODE_AUTO && why != NULL)
		xasprintf(note, "auto: %sstop-and-copy, not post-copy: %s",
		    a->criu.mem_track ? "" : "no pre-copy (this kernel has no "
		    "soft-dirty memory tracking); ", why);
	else if (mode == TERN__MIGRATION_MODE__MODE_AUTO)
		xasprintf(note, "auto: %s%s", a->criu.mem_track ? "" :
		    "no pre-copy (this kernel has no soft-dirty memory "
		    "tracking); ", postcopy ? "post-copy (lazy pages over "
		    "userfaultfd)" : "stop-and-copy (no lazy pages on both "
		    "hosts)");
	*postcopyp = postcopy;
	rc = 0;
out:
	free(why);
	free(pids);
	return rc;
}

/* The offer: what the target checks before it says READY. */
static int
ctr_source_offer(struct migration *m, char **cause)
{
	struct agent		*a = m->agent;
	struct instance		*in = m->in;
	Envelope		 env;
	Tern__MigrateOffer	 o = TERN__MIGRATE_OFFER__INIT;

	msg_init(&env, 0);
	o.migration = m->id;
	o.name = in->name;
	o.kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
	o.spec = in->spec_text;
	o.spec_dir = in->spec_dir;
	o.generation = m->generation;
	/* Absent: stop-and-copy. */
	o.has_mode = m->postcopy;
	o.mode = TERN__MIGRATION_MODE__MODE_POSTCOPY;
	o.has_page_server = m->pipeline;
	o.page_server = m->pipeline;
	o.has_lazy_restore = m->lazy_restore;
	o.lazy_restore = m->lazy_restore;
	o.has_rootfs_copy = m->rootfs_copy;
	o.rootfs_copy = m->rootfs_copy;
	o.has_cpuinfo = 1;	/* the target checks it before READY */
	o.cpuinfo.data = a->cpuinfo;
	o.cpuinfo.len = a->cpuinfo_len;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_OFFER;
	env.migrate_offer = &o;
	return mig_send(m->mig, &env, cause);
}

/* The driver's source_begin: ternctl migrate of a container. */
int
ctr_source_begin(struct mig *mig, const Tern__MigrateRequest *r, int *code,
    char **cause)
{
	struct agent		*a = mig_engine_data(mig->engine);
	struct instance		*in;
	struct migration	*m;
	char			*note = NULL, rate[32];
	int			 postcopy, lazy_restore = 0;

	if (ctr_source_check(a, r, &in, code, cause) != 0)
		return -1;
	if (ctr_source_mode(a, in, r, &postcopy, &lazy_restore, &note,
	    cause) != 0)
		return -1;
	if (r->has_bandwidth) {
		char	*was = note;

		ctr_format_rate(rate, sizeof rate, r->bandwidth);
		xasprintf(&note, "%s%slimited to %s (--bandwidth)",
		    was != NULL ? was : "", was != NULL ? "; " : "", rate);
		free(was);
	}
	m = ctr_new(a, mig);
	m->in = in;
	m->postcopy = postcopy;
	m->lazy_restore = lazy_restore;
	/* Stop-and-copy streams the pages to a page server on the target
	 * where both ends can; else the images go as files. */
	m->pipeline = !postcopy && a->criu_action != NULL &&
	    mesh_has_capability(a->ternd->mesh, r->to, "criu.page-server");
	if (r->has_bandwidth)
		m->limit = ratelimit_new(a->ternd->loop, r->bandwidth);
	uv_timer_start(&m->tick, ctr_tick, 500, 500);
	m->max_downtime_ms = r->has_max_downtime_ms ? r->max_downtime_ms : 0;
	m->note = note;
	m->rootfs_copy = !in->spec->shared_storage;
	m->generation = ckpt_newest(in->ckpt_dir) + 1;
	instance_set_state(in, INST_MIGRATING, NULL);
	in->set->busy++;
	log_info("mig %" PRIx64 " %s: %s -> %s, %s%s%s%s", m->id, in->name,
	    a->ternd->conf->host_name, r->to, postcopy ? "post-copy" : "stop-and-copy",
	    m->pipeline ? " (pages to a page server there)" : "",
	    note != NULL ? "; " : "", note != NULL ? note : "");
	if (ctr_source_offer(m, cause) != 0 ||
	    (postcopy && ctr_relay_new(m, cause) != 0) ||
	    (m->pipeline && ctr_pages_new(m, cause) != 0)) {
		/* Taken on: the rollback answers. */
		ctr_source_fail(m, "%s", *cause);
		free(*cause);
		*cause = NULL;
	}
	return 0;
}
