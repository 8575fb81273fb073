#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "instance"
#include "agent/ctr-instance.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "checkpoint/container-work.h"
#include "checkpoint/container.h"
#include "checkpoint/restore-limits.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* A container's checkpoint or restore: CRIU on the pool, then what is
 * left of the container (thawed, stopped, killed) on the pool too. */
struct inst_op {
	struct instance		*in;
	instances_done_cb	 cb;
	void			*arg;
	int			 leave_running;
	enum inst_state		 before;
	char			*error;		/* CRIU's, while we clean up */
	struct ckpt_result	 res;		/* without its gen_dir: */
	char			*gen_dir;	/* our copy */
};

static void
inst_op_free(struct inst_op *op)
{
	free(op->error);
	free(op->gen_dir);
	free(op);
}

/* After a failed checkpoint: thawed (if it was ours to thaw). */
static void
checkpoint_failed(void *varg, pid_t pid, const char *thaw_error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;

	(void)pid;
	if (thaw_error != NULL)
		log_warnx("instance %s: %s", in->name, thaw_error);
	instance_set_error(in, op->error);
	log_warnx("instance %s: checkpoint failed: %s", in->name, op->error);
	instance_set_state(in, in->pid > 0 ? INST_RUNNING : INST_STOPPED,
	    "checkpoint failed");
	reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
	    "checkpoint of %s failed: %s", in->name, op->error);
	inst_op_free(op);
	instances_op_done(in->set);
}

/* The checkpoint is verified; what is left of the container is gone
 * (if it was to go). */
static void
checkpoint_settled(void *varg, pid_t pid, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	const struct ckpt_result *res = &op->res;

	(void)pid;
	if (error != NULL)
		log_warnx("instance %s: %s", in->name, error);
	if (op->leave_running && in->pid > 0)
		instance_set_state(in, INST_RUNNING, "checkpointed, left running");
	else if (op->leave_running)
		instance_set_state(in, INST_CHECKPOINTED, "exited after the "
		    "checkpoint");
	else
		instance_set_state(in, INST_CHECKPOINTED, NULL);
	log_info("instance %s: checkpoint %llu: %llu bytes in %llu ms "
	    "(frozen %llu ms)", in->name, (unsigned long long)res->generation,
	    (unsigned long long)res->bytes,
	    (unsigned long long)res->duration_ms,
	    (unsigned long long)res->frozen_ms);
	reply_checkpoint(op->cb, op->arg, in->name, res->generation,
	    res->bytes, res->duration_ms, res->frozen_ms, op->gen_dir);
	inst_op_free(op);
	instances_op_done(in->set);
}

static void
checkpoint_done(void *varg, const struct ckpt_result *res, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	uv_loop_t		*loop = in->set->agent->ternd->loop;

	if (error != NULL) {
		/* CRIU failed: it resumed the container, or it died with the
		 * container frozen (then we thaw it), or the container is gone. */
		op->error = xstrdup(error);
		if (in->pid > 0)
			container_thaw_async(loop, in->name, checkpoint_failed,
			    op);
		else
			checkpoint_failed(op, 0, NULL);
		return;
	}
	in->generation = res->generation;
	op->res = *res;
	op->gen_dir = res->gen_dir != NULL ? xstrdup(res->gen_dir) : NULL;
	op->res.gen_dir = NULL;
	if (op->leave_running && in->pid > 0) {
		checkpoint_settled(op, 0, NULL);
		return;
	}
	/* Its init exited while CRIU answered, or CRIU killed the tree
	 * after the dump: reap what is left, now or when it has gone. */
	ctr_forget_init(in);
	container_stop_async(loop, in->name, checkpoint_settled, op);
}

/* A checkpoint is for restoring: what CRIU would restore broken is not
 * taken (checkpoint/restore-limits.h).  0, or -1 refused. */
static int
ctr_restorable(struct instance *in, int *code, char **cause)
{
	pid_t	*pids = NULL;
	size_t	 npids = 0;
	char	*why = NULL;
	int	 rc = 0;

	if (container_pids(in->name, &pids, &npids, &why) != 0) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "instance %s: %s", in->name, why);
	} else if (restore_limits_pids(pids, npids, &why) > 0) {
		rc = inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST, "instance %s cannot "
		    "be checkpointed now: %s", in->name, why);
	}
	free(why);
	free(pids);
	return rc;
}

int
ctr_checkpoint(struct instance *in, int leave_running, instances_done_cb cb,
    void *arg, int *code, char **cause)
{
	struct instances	*set = in->set;
	struct inst_op		*op;
	struct ckpt_target	 t;

	if (ctr_usable(set, code, cause) != 0)
		return -1;
	if (in->state != INST_RUNNING)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: only a running instance can be "
		    "checkpointed", in->name, inst_state_names[in->state]);
	if (ctr_memory_in(in, "checkpoint it", code, cause) != 0)
		return -1;
	if (ctr_restorable(in, code, cause) != 0)
		return -1;
	op = xcalloc(1, sizeof *op);
	op->in = in;
	op->cb = cb;
	op->arg = arg;
	op->leave_running = leave_running;
	instance_set_state(in, INST_CHECKPOINTING, NULL);
	set->busy++;
	memset(&t, 0, sizeof t);
	t.name = in->name;
	t.criu_path = set->agent->ternd->conf->criu_path;
	t.dir = in->ckpt_dir;
	t.pid = in->pid;
	t.rootfs = in->spec->root;
	if (leave_running) {
		t.frozen = in->ckpt_frozen;
		t.frozen_arg = in->ckpt_frozen_arg;
		t.staged_mb = set->agent->ternd->conf->checkpoint_staging_mb;
		t.action_script = set->agent->criu_action;
	}
	in->ckpt_frozen = NULL;
	in->ckpt_frozen_arg = NULL;
	ckpt_dump(set->agent->ternd->loop, &t, ckpt_newest(in->ckpt_dir) + 1,
	    op->leave_running, checkpoint_done, op);
	return 0;
}

/* What a failed restore left is gone. */
static void
restore_failed(void *varg, pid_t pid, const char *kill_error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;

	(void)pid;
	if (kill_error != NULL)
		log_warnx("instance %s: %s", in->name, kill_error);
	instance_set_state(in, op->before, "restore failed");
	reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
	    "restore of %s failed: %s", in->name, op->error);
	inst_op_free(op);
	instances_op_done(in->set);
}

static void
restore_done(void *varg, const struct ckpt_result *res, const char *error)
{
	struct inst_op		*op = varg;
	struct instance		*in = op->in;
	Envelope		 env;
	Tern__RestoreReply	 r = TERN__RESTORE_REPLY__INIT;

	if (error != NULL) {
		/* An init CRIU forked before it failed is our child. */
		instances_reap_later(in->set, res->pid);
		instance_set_error(in, error);
		log_warnx("instance %s: restore failed: %s", in->name, error);
		instance_unmount_below(in->dir);
		op->error = xstrdup(error);
		container_stop_async(in->set->agent->ternd->loop, in->name,
		    restore_failed, op);
		return;
	}
	instance_set_error(in, NULL);
	instance_watch(in, res->pid, 0);
	if (instance_set_state(in, INST_RUNNING, "restored") != 0) {
		/* Fenced: no lease for it any more. */
		reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "instance %s: %s", in->name, in->last_error);
		free(op);
		instances_reap(in->set);
		instances_op_done(in->set);
		return;
	}
	r.name = in->name;
	r.generation = res->generation;
	r.pid = (uint32_t)res->pid;
	r.duration_ms = res->duration_ms;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_RESTORE_REPLY;
	env.restore_reply = &r;
	op->cb(op->arg, &env, 0, NULL);
	free(op);
	/* It may have exited before we watched it. */
	instances_reap(in->set);
	instances_op_done(in->set);
}

/* Which checkpoint, and is it one to run here: 0, or -1 refused. */
static int
restore_check(struct instance *in, const Tern__RestoreRequest *r,
    uint64_t *gen, int *code, char **cause)
{
	if ((in->state != INST_CHECKPOINTED && in->state != INST_STOPPED) ||
	    in->working)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: stop it before restoring (one copy "
		    "runs at a time)", in->name, in->working != NULL ?
		    in->working : inst_state_names[in->state]);
	/* Its init ended while a post-copy brought its memory: that move
	 * still holds it. */
	if (ctr_memory_in(in, "restore it", code, cause) != 0)
		return -1;
	if (in->moved_to != NULL && !(r->has_force && r->force))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s was committed to %s by a migration and may "
		    "run there: check ternctl list on %s; only if it does not "
		    "run there, ternctl restore %s --force here", in->name,
		    in->moved_to, in->moved_to, in->name);
	if (in->moved_to != NULL) {
		log_warnx("instance %s: restored by force although it was "
		    "committed to %s (the operator says it does not run there)",
		    in->name, in->moved_to);
		free(in->moved_to);
		in->moved_to = NULL;
	}
	*gen = r->has_generation && r->generation != 0 ? r->generation :
	    ckpt_newest(in->ckpt_dir);
	if (*gen == 0)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "instance %s has no complete checkpoint", in->name);
	return 0;
}

int
ctr_restore(struct instance *in, const Tern__RestoreRequest *r,
    instances_done_cb cb, void *arg, int *code, char **cause)
{
	struct instances	*set = in->set;
	struct inst_op		*op;
	struct ckpt_target	 t;
	uint64_t		 gen;
	char			*why = NULL;
	int			 rc;

	if (ctr_usable(set, code, cause) != 0 ||
	    restore_check(in, r, &gen, code, cause) != 0)
		return -1;
	/* CRIU puts the restored tree back into the container's cgroups;
	 * they carry the spec's limits whichever host restores it. */
	if (container_cgroup_create(in->name, in->spec, &why) != 0) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "instance %s: %s", in->name, why);
		free(why);
		return rc;
	}
	op = xcalloc(1, sizeof *op);
	op->in = in;
	op->cb = cb;
	op->arg = arg;
	op->before = in->state;
	instance_set_state(in, INST_RESTORING, NULL);
	set->busy++;
	memset(&t, 0, sizeof t);
	t.name = in->name;
	t.criu_path = set->agent->ternd->conf->criu_path;
	t.dir = in->ckpt_dir;
	t.rootfs = in->spec->root;
	ckpt_restore(set->agent->ternd->loop, &t, gen, restore_done, op);
	return 0;
}

/* ternd stops: a CRIU stuck in a dump or restore is not waited for. */
int
ctr_cancellable(const struct instance *in)
{
	return in->state == INST_CHECKPOINTING || in->state == INST_RESTORING;
}

void
ctr_cancel(const char *name, const char *why)
{
	ckpt_cancel(name, why);
}
