#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "instance"
#include "agent/driver.h"
#include "agent/vm-instances.h"
#include "agent/vm-migration.h"
#include "checkpoint/ckpt.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* ACPI shutdown first; a guest that ignores it is destroyed after this. */
#define VM_STOP_GRACE_MS	10000
#define VM_STOP_KILLED		"destroyed after the grace period"
#define VM_XML_MAX		(1024 * 1024)
#define VM_IMAGE		"vm.img"	/* libvirt's saved state */
#define VM_IMAGE_XML		"domain.xml"	/* its definition then */

enum vm_opkind {
	VMOP_CREATE,
	VMOP_START,
	VMOP_SHUTDOWN,
	VMOP_KILL,		/* the grace period is over */
	VMOP_DESTROY,		/* pull the plug and undefine */
	VMOP_SYNC,		/* what does libvirt say */
	VMOP_CHECKPOINT,
	VMOP_RESTORE,
};

/* One libvirt call chain on the thread pool. */
struct vm_op {
	uv_work_t		 w;
	enum vm_opkind		 kind;
	struct instances	*set;
	struct instance		*in;
	struct vm_host		*host;
	char			*name;
	char			*gen_dir;	/* checkpoint, restore */
	char			*why;		/* sync: the event's reason;
						 * checkpoint: a warning */
	uint64_t		 generation;
	int			 leave_running;

	int			 rc;
	int			 code;		/* create: its error's */
	char			*cause;
	enum vm_run		 run;
	uint64_t		 bytes;
	uint64_t		 duration_ms;
	uint64_t		 frozen_ms;

	instances_done_cb	 cb;
	void			*arg;
};

static void	vm_op_queue(struct instances *, struct instance *,
		    enum vm_opkind, instances_done_cb, void *);

/* 0 if libvirt answers here, else -1 with *code, *cause. */
static int
vmi_usable(const struct instances *set, int *code, char **cause)
{
	struct agent	*a = set->agent;

	if (a->vms == NULL)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "VMs are not available on %s: libvirt_uri is empty in "
		    "ternd.conf", a->ternd->conf->host_name);
	if (!vm_host_up(a->vms))
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "VMs are not available on %s now: libvirtd at %s does not "
		    "answer (ternd keeps trying; is libvirtd running?)",
		    a->ternd->conf->host_name, vm_host_uri(a->vms));
	return 0;
}

/* --- the work -------------------------------------------------------------- */

/* Define the domain, then save the instance: an instance is never
 * without its domain, and a refused one leaves neither behind. */
static int
vm_op_create(struct vm_op *op)
{
	char	*cause = NULL;

	op->code = TERN__ERROR_CODE__ERROR_BAD_REQUEST;
	if (vm_state(op->host, op->name, &op->run, NULL, &op->cause) != 0)
		return -1;
	if (op->run != VM_ABSENT) {
		op->code = TERN__ERROR_CODE__ERROR_EXISTS;
		set_cause(&op->cause, "libvirt here already has a domain %s; "
		    "tern manages the domains it defines (choose another "
		    "name, or virsh undefine it)", op->name);
		return -1;
	}
	if (vm_define(op->host, op->in->spec_text, &op->cause) != 0)
		return -1;
	if (instance_save(op->in, &op->cause) == 0)
		return 0;
	op->code = TERN__ERROR_CODE__ERROR_RESOURCE;
	if (vm_undefine(op->host, op->name, &cause) != 0 ||
	    rm_rf(op->in->dir, &cause) != 0) {
		log_warnx("instance %s: %s", op->name, cause);
		free(cause);
	}
	return -1;
}

/* Save the running domain into gen_dir with its definition, publish the
 * MANIFEST.  One kept running is snapshotted live, with its disks (the
 * generation carries them: vm_snapshot_disks).  On failure op->run says
 * whether it runs. */
static int
vm_op_checkpoint(struct vm_op *op)
{
	char		*img, *path, *xml = NULL, *cause = NULL;
	uint64_t	 t0;
	int		 rc = -1, keep = 0;

	op->run = VM_RUNNING;
	if (mkdir_p(op->gen_dir, 0700, &op->cause) != 0)
		return -1;
	xasprintf(&img, "%s/%s", op->gen_dir, VM_IMAGE);
	if ((xml = vm_xml(op->host, op->name, &op->cause)) == NULL)
		goto out;
	xasprintf(&path, "%s/%s", op->gen_dir, VM_IMAGE_XML);
	rc = write_file_atomic(path, xml, &op->cause);
	free(path);
	if (rc != 0)
		goto out;
	/* Left running: written while it runs, its disks (if any) with
	 * the memory, from the same instant. */
	if (op->leave_running && (rc = vm_snapshot_live(op->host, op->name,
	    img, &op->frozen_ms, &op->cause)) == 1)
		rc = vm_snapshot_disks(op->host, op->name, img, op->gen_dir,
		    &op->frozen_ms, &op->cause);
	if (op->leave_running) {
		if (rc == 0)
			rc = ckpt_publish(op->gen_dir, &op->bytes, &op->cause);
		goto out;
	}
	t0 = now_ms();
	if ((rc = vm_save(op->host, op->name, img, &op->cause)) != 0)
		goto out;
	op->frozen_ms = now_ms() - t0;
	rc = ckpt_publish(op->gen_dir, &op->bytes, &op->cause);
	if (rc != 0 && vm_restore(op->host, img, NULL, &cause) != 0) {
		/* Not a checkpoint, but the only copy of the VM now. */
		keep = 1;
		xasprintf(&path, "%s; cannot run it again either (%s): its "
		    "saved state stays in %s", op->cause, cause, op->gen_dir);
		free(op->cause);
		op->cause = path;
		free(cause);
		cause = NULL;
	}
out:
	if (rc != 0 && !keep && rm_rf(op->gen_dir, &cause) != 0) {
		log_warnx("instance %s: %s", op->name, cause);
		free(cause);
		cause = NULL;
	}
	/* A failed save leaves it running, as a failed restore leaves it
	 * off; when libvirt cannot tell, it runs as before. */
	if (rc != 0 && vm_state(op->host, op->name, &op->run, NULL,
	    &cause) != 0) {
		op->run = keep ? VM_SHUTOFF : VM_RUNNING;
		free(cause);
	}
	free(img);
	free(xml);
	return rc;
}

/* The <uuid> of a domain XML text (libvirt's own format), "" if none. */
static void
vm_uuid(const char *xml, char *buf, size_t len)
{
	const char	*s, *e;

	buf[0] = '\0';
	if ((s = strstr(xml, "<uuid>")) == NULL ||
	    (e = strstr(s, "</uuid>")) == NULL)
		return;
	s += strlen("<uuid>");
	if ((size_t)(e - s) < len) {
		memcpy(buf, s, (size_t)(e - s));
		buf[e - s] = '\0';
	}
}

static int
vm_op_restore(struct vm_op *op)
{
	char		*path, *xml, *theirs, *now = NULL, *cause = NULL, *disks;
	const char	*mine;
	char		 want[64], have[64];
	uint64_t	 bytes;
	int		 rc;

	if (ckpt_verify(op->gen_dir, &bytes, &op->cause) != 0)
		return -1;
	if (vm_state(op->host, op->name, &op->run, NULL, &op->cause) != 0)
		return -1;
	if (op->run != VM_ABSENT && op->run != VM_SHUTOFF) {
		set_cause(&op->cause, "domain %s is not shut off in libvirt",
		    op->name);
		return -1;
	}
	/* Its disks go where the definition here says, the domain's or
	 * its spec's, never the generation's (a peer's) own. */
	if (op->run == VM_SHUTOFF &&
	    (now = vm_xml(op->host, op->name, &op->cause)) == NULL)
		return -1;
	mine = now != NULL ? now : op->in->spec_text;
	if (vm_disks_allowed(op->gen_dir, mine, &op->cause) != 0) {
		free(now);
		return -1;
	}
	/* It runs and is defined from that definition too, with only the
	 * checkpoint's uuid, which libvirt requires, taken from the
	 * generation: the XML in the peer's image is never run (libvirt
	 * refuses ours if it does not fit the image). */
	xasprintf(&path, "%s/%s", op->gen_dir, VM_IMAGE_XML);
	theirs = read_file_bounded(path, VM_XML_MAX, NULL, &op->cause);
	free(path);
	xml = theirs != NULL ? vm_restore_xml(mine, theirs, &op->cause) :
	    NULL;
	free(theirs);
	if (xml == NULL) {
		free(now);
		return -1;
	}
	/* Defined here from the spec (a failover, a move), it got a uuid
	 * of its own, which libvirt does not let a saved state take over:
	 * defined again with the checkpoint's. */
	vm_uuid(xml, want, sizeof want);
	if (now != NULL)
		vm_uuid(now, have, sizeof have);
	if (now != NULL && strcmp(want, have) != 0) {
		log_info("instance %s: defined again with the uuid of its "
		    "checkpoint (%s, not %s)", op->name, want, have);
		if (vm_undefine(op->host, op->name, &op->cause) != 0) {
			free(now);
			free(xml);
			return -1;
		}
		op->run = VM_ABSENT;
	}
	rc = op->run == VM_ABSENT ? vm_define(op->host, xml, &op->cause) : 0;
	if (rc != 0 && now != NULL && vm_define(op->host, now, &cause) != 0) {
		log_warnx("instance %s: %s", op->name, cause);
		free(cause);
	}
	/* The memory goes on from the disks of its own instant. */
	if (rc == 0)
		rc = vm_disks_put(op->name, op->gen_dir, mine, &op->cause);
	if (rc != 0) {
		free(now);
		free(xml);
		return -1;
	}
	xasprintf(&path, "%s/%s", op->gen_dir, VM_IMAGE);
	/* fail: the memory restore fails (as libvirt refusing the image)
	 * after the disks were put. */
	if (fault_hit("vm.restore.memory") == FAULT_FAIL) {
		set_cause(&op->cause, "fault point vm.restore.memory");
		rc = -1;
	} else
		rc = vm_restore(op->host, path, xml, &op->cause);
	/* Not restored: the disks it had are back, the checkpoint's would
	 * not go with the memory that runs next (a cold start, another
	 * generation).  Unless QEMU runs all the same (libvirt's answer
	 * lost, not its work): it writes to those disks. */
	xasprintf(&disks, "%s/%s", op->gen_dir, VM_DISKS_LIST);
	if (access(disks, F_OK) != 0)
		;	/* no disks: nothing put */
	else if (rc == 0)
		vm_disks_settle(op->name, op->gen_dir, mine);
	else {
		char		*why = op->cause, *state_why = NULL;
		enum vm_run	 run;
		const char	*left = NULL;

		if (vm_state(op->host, op->name, &run, NULL, &state_why) != 0)
			left = "libvirt cannot say whether it runs";
		else if (run != VM_ABSENT && run != VM_SHUTOFF)
			left = "its domain runs all the same";
		else if (vm_disks_rollback(op->name, op->gen_dir, mine) != 0)
			left = "they could not all be put back (ternd's log "
			    "names them)";
		if (left != NULL) {
			op->cause = NULL;
			set_cause(&op->cause, "%s; its disks hold the "
			    "checkpoint's now, each previous image beside it "
			    "as IMAGE%s: %s", why, VM_DISK_OLD_SUFFIX, left);
			free(why);
		}
		free(state_why);
	}
	free(disks);
	free(now);
	free(xml);
	free(path);
	return rc;
}

static void
vm_op_work(uv_work_t *w)
{
	struct vm_op	*op = w->data;
	uint64_t	 t0 = now_ms();

	switch (op->kind) {
	case VMOP_CREATE:
		op->rc = vm_op_create(op);
		break;
	case VMOP_START:
		op->rc = vm_start(op->host, op->name, &op->cause);
		break;
	case VMOP_SHUTDOWN:
		op->rc = vm_shutdown(op->host, op->name, &op->cause);
		break;
	case VMOP_KILL:
		op->rc = vm_destroy(op->host, op->name, &op->cause);
		break;
	case VMOP_DESTROY:
		if ((op->rc = vm_state(op->host, op->name, &op->run, NULL,
		    &op->cause)) != 0 || op->run == VM_ABSENT)
			break;
		if ((op->rc = vm_destroy(op->host, op->name, &op->cause)) == 0)
			op->rc = vm_undefine(op->host, op->name, &op->cause);
		break;
	case VMOP_SYNC:
		op->rc = vm_state(op->host, op->name, &op->run, NULL,
		    &op->cause);
		break;
	case VMOP_CHECKPOINT:
		op->rc = vm_op_checkpoint(op);
		break;
	case VMOP_RESTORE:
		op->rc = vm_op_restore(op);
		break;
	}
	op->duration_ms = now_ms() - t0;
}

/* --- results on the loop ---------------------------------------------------- */

static void
vm_finish_stop(struct instance *in, const char *why)
{
	instances_done_cb	 cb = in->stop_cb;
	void			*arg = in->stop_arg;

	uv_timer_stop(&in->timer);
	in->stop_cb = NULL;
	instance_set_state(in, in->generation > 0 ? INST_CHECKPOINTED :
	    INST_STOPPED, why);
	if (cb != NULL)
		reply_done(cb, arg, "instance %s stopped (%s)", in->name, why);
}

static void	vm_sync(struct instance *, const char *);

/* Why a destroy of ours stopped it: a fence says why, else the grace
 * period of a stop ran out. */
static const char *
vm_killed_why(const struct instance *in)
{
	return in->stop_why != NULL ? in->stop_why : VM_STOP_KILLED;
}

/* The destroy failed (libvirtd went away, ...): it may run on, so it is
 * running until libvirt says otherwise. */
static void
vm_stop_failed(struct instance *in, const char *cause)
{
	instances_done_cb	 cb = in->stop_cb;
	void			*arg = in->stop_arg;

	in->stop_cb = NULL;
	instance_set_error(in, cause);
	instance_set_state(in, INST_RUNNING, "stop failed");
	if (cb != NULL)
		reply_error(cb, arg, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "instance %s: cannot stop it: %s", in->name, cause);
	if (vm_host_up(in->set->agent->vms))
		vm_sync(in, NULL);
}

static void
vm_stop_grace(uv_timer_t *t)
{
	struct instance	*in = t->data;

	if (in->state != INST_STOPPING)
		return;
	if (in->vm_busy) {
		uv_timer_start(&in->timer, vm_stop_grace, 500, 0);
		return;
	}
	log_warnx("instance %s: still running %d s after the ACPI shutdown; "
	    "destroying it", in->name, VM_STOP_GRACE_MS / 1000);
	in->stop_killed = 1;
	vm_op_queue(in->set, in, VMOP_KILL, NULL, NULL);
}

/* libvirt's view of an instance: after events may have been missed, or
 * to confirm one (op->why: what it said happened). */
static void
vm_sync_done(struct instance *in, struct vm_op *op)
{
	const char	*why = op->why;

	if (op->rc != 0) {
		instance_set_error(in, op->cause);
		return;
	}
	/* A migration's own: a paused arrival is not running (as RUNNING
	 * without its grant it would be fenced). */
	if (in->state == INST_INCOMING || in->state == INST_MIGRATING)
		return;
	switch (op->run) {
	case VM_RUNNING:
	case VM_PAUSED:
	case VM_INCOMING:
	case VM_POSTCOPY:
	case VM_OTHER:
		if (in->state == INST_RUNNING || in->state == INST_STOPPING)
			break;
		if (why != NULL)
			instance_set_error(in, why);
		instance_set_state(in, INST_RUNNING, why != NULL ? why :
		    "runs in libvirt");
		break;
	case VM_SHUTOFF:
		if (in->state == INST_STOPPING)
			vm_finish_stop(in, why != NULL ? why : "stopped");
		else if (in->state == INST_RUNNING) {
			if (why != NULL)
				instance_set_error(in, why);
			instance_set_state(in, in->generation > 0 ?
			    INST_CHECKPOINTED : INST_STOPPED, why != NULL ? why :
			    "shut off in libvirt");
		}
		break;
	case VM_ABSENT:
		instance_set_error(in, "its domain is gone from libvirt here "
		    "(migrated away, or undefined outside tern)");
		if (in->state == INST_STOPPING)
			vm_finish_stop(in, "gone");
		else if (in->state == INST_RUNNING)
			instance_set_state(in, in->generation > 0 ?
			    INST_CHECKPOINTED : INST_STOPPED, "gone");
		break;
	}
}

static void
vm_checkpoint_done(struct instance *in, struct vm_op *op)
{
	if (op->rc != 0) {
		instance_set_error(in, op->cause);
		instance_set_state(in, op->run == VM_SHUTOFF ||
		    op->run == VM_ABSENT ? (in->generation > 0 ?
		    INST_CHECKPOINTED : INST_STOPPED) : INST_RUNNING,
		    "checkpoint failed");
		reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "checkpoint of %s failed: %s", in->name, op->cause);
		return;
	}
	in->generation = op->generation;
	instance_set_error(in, op->why);
	instance_set_state(in, op->leave_running ? INST_RUNNING :
	    INST_CHECKPOINTED, op->leave_running ? "checkpointed, left "
	    "running" : NULL);
	log_info("instance %s: checkpoint %llu: %llu bytes in %llu ms "
	    "(paused %llu ms)", in->name, (unsigned long long)op->generation,
	    (unsigned long long)op->bytes,
	    (unsigned long long)op->duration_ms,
	    (unsigned long long)op->frozen_ms);
	reply_checkpoint(op->cb, op->arg, in->name, op->generation, op->bytes,
	    op->duration_ms, op->frozen_ms, op->gen_dir);
}

static void
vm_restore_done(struct instance *in, struct vm_op *op)
{
	Envelope		 env;
	Tern__RestoreReply	 r = TERN__RESTORE_REPLY__INIT;

	if (op->rc != 0) {
		instance_set_error(in, op->cause);
		instance_set_state(in, in->generation > 0 ? INST_CHECKPOINTED :
		    INST_STOPPED, "restore failed");
		reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "restore of %s failed: %s", in->name, op->cause);
		return;
	}
	instance_set_error(in, NULL);
	if (instance_set_state(in, INST_RUNNING, "restored") != 0) {
		/* Fenced: no lease for it any more. */
		reply_error(op->cb, op->arg, TERN__ERROR_CODE__ERROR_UNAVAILABLE,
		    "instance %s: %s", in->name, in->last_error);
		return;
	}
	r.name = in->name;
	r.generation = op->generation;
	r.pid = 0;
	r.duration_ms = op->duration_ms;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_RESTORE_REPLY;
	env.restore_reply = &r;
	op->cb(op->arg, &env, 0, NULL);
}

static void
vm_create_done(struct instance *in, struct vm_op *op)
{
	in->creating = 0;
	if (op->rc != 0) {
		reply_error(op->cb, op->arg, op->code, "instance %s: %s",
		    op->name, op->cause);
		instance_unlink(in);
		return;
	}
	log_info("instance %s: created (vm, libvirt %s)", in->name,
	    vm_host_uri(op->host));
	reply_done(op->cb, op->arg, "instance %s created", in->name);
}

static void
vm_op_done(uv_work_t *w, int status)
{
	struct vm_op		*op = w->data;
	struct instance		*in = op->in;
	struct instances	*set = op->set;

	(void)status;
	if (in != NULL)
		in->vm_busy = 0;
	switch (op->kind) {
	case VMOP_CREATE:
		vm_create_done(in, op);
		break;
	case VMOP_START:
		if (op->rc != 0) {
			instance_set_error(in, op->cause);
			reply_error(op->cb, op->arg,
			    TERN__ERROR_CODE__ERROR_INTERNAL, "%s", op->cause);
			break;
		}
		instance_set_error(in, NULL);
		if (instance_set_state(in, INST_RUNNING, NULL) != 0)
			reply_error(op->cb, op->arg,
			    TERN__ERROR_CODE__ERROR_UNAVAILABLE, "instance %s: "
			    "%s", in->name, in->last_error);
		else
			reply_done(op->cb, op->arg, "instance %s started",
			    in->name);
		break;
	case VMOP_SHUTDOWN:
		if (op->rc != 0 && in->state == INST_STOPPING) {
			log_warnx("instance %s: %s; destroying it", in->name,
			    op->cause);
			uv_timer_start(&in->timer, vm_stop_grace, 0, 0);
		}
		break;
	case VMOP_KILL:
		if (in->state != INST_STOPPING)
			break;
		if (op->rc == 0)
			vm_finish_stop(in, vm_killed_why(in));
		else
			vm_stop_failed(in, op->cause);
		break;
	case VMOP_DESTROY:
		if (op->rc != 0) {
			reply_error(op->cb, op->arg,
			    TERN__ERROR_CODE__ERROR_INTERNAL, "instance %s: %s",
			    in->name, op->cause);
			break;
		}
		reply_done(op->cb, op->arg, "instance %s destroyed", in->name);
		instance_destroy(in);
		break;
	case VMOP_SYNC:
		vm_sync_done(in, op);
		break;
	case VMOP_CHECKPOINT:
		vm_checkpoint_done(in, op);
		break;
	case VMOP_RESTORE:
		vm_restore_done(in, op);
		break;
	}
	free(op->name);
	free(op->gen_dir);
	free(op->why);
	free(op->cause);
	free(op);
	instances_op_done(set);
}

static struct vm_op *
vm_op_new(struct instances *set, struct instance *in, enum vm_opkind kind,
    instances_done_cb cb, void *arg)
{
	struct vm_op	*op;

	op = xcalloc(1, sizeof *op);
	op->kind = kind;
	op->set = set;
	op->in = in;
	op->host = set->agent->vms;
	op->name = xstrdup(in->name);
	op->cb = cb;
	op->arg = arg;
	op->w.data = op;
	return op;
}

static void
vm_op_start(struct vm_op *op)
{
	if (op->in != NULL)
		op->in->vm_busy = 1;
	op->set->busy++;
	uv_queue_work(op->set->agent->ternd->loop, &op->w, vm_op_work, vm_op_done);
}

static void
vm_op_queue(struct instances *set, struct instance *in, enum vm_opkind kind,
    instances_done_cb cb, void *arg)
{
	vm_op_start(vm_op_new(set, in, kind, cb, arg));
}

/* Ask libvirt, unless a call of ours is out (its answer decides). */
static void
vm_sync(struct instance *in, const char *why)
{
	struct vm_op	*op;

	if (in->vm_busy)
		return;
	op = vm_op_new(in->set, in, VMOP_SYNC, NULL, NULL);
	op->why = why != NULL ? xstrdup(why) : NULL;
	vm_op_start(op);
}

/* --- requests ---------------------------------------------------------------- */

static int
vmi_create(struct instances *set, const Tern__InstanceCreateRequest *r,
    instances_done_cb cb, void *arg, int *code, char **cause)
{
	struct instance	*in;
	char		*name, *why = NULL;
	int		 rc;

	if (vmi_usable(set, code, cause) != 0)
		return -1;
	if ((name = vm_xml_name(r->spec, &why)) == NULL) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s: %s", r->name, why);
		free(why);
		return rc;
	}
	if (strcmp(name, r->name) != 0) {
		rc = inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s: the domain XML names it \"%s\"; the "
		    "instance and its domain must have the same name", r->name,
		    name);
		free(name);
		return rc;
	}
	free(name);
	/* In the table from now on (busy): a second create of the name,
	 * or a migration bringing one, is refused while libvirt works. */
	in = instance_add(set, &vm_inst_driver, r->name, r->spec, "");
	in->vm = 1;
	in->creating = 1;
	vm_op_queue(set, in, VMOP_CREATE, cb, arg);
	return 0;
}

static int
vmi_save(struct instance *in, char **cause)
{
	char	*path;
	int	 rc;

	xasprintf(&path, "%s/domain.xml", in->dir);
	rc = write_file_atomic(path, in->spec_text, cause);
	free(path);
	return rc;
}

/* libvirt answers, and no call of ours on in is out. */
static int
vmi_idle(struct instance *in, int *code, char **cause)
{
	if (vmi_usable(in->set, code, cause) != 0)
		return -1;
	if (in->vm_busy)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is busy with libvirt; try again", in->name);
	return 0;
}

static int
vmi_refuse_state(struct instance *in, int *code, char **cause)
{
	return inst_refuse(code, cause, TERN__ERROR_CODE__ERROR_BAD_REQUEST,
	    "instance %s is %s", in->name, inst_state_names[in->state]);
}

static int
vmi_start(struct instance *in, instances_done_cb cb, void *arg, int *code,
    char **cause)
{
	if (vmi_idle(in, code, cause) != 0)
		return -1;
	if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED)
		return vmi_refuse_state(in, code, cause);
	vm_op_queue(in->set, in, VMOP_START, cb, arg);
	return 0;
}

static int
vmi_stop(struct instance *in, instances_done_cb cb, void *arg, int *code,
    char **cause)
{
	if (vmi_idle(in, code, cause) != 0)
		return -1;
	if (in->state != INST_RUNNING)
		return vmi_refuse_state(in, code, cause);
	in->stop_cb = cb;
	in->stop_arg = arg;
	in->stop_killed = 0;
	free(in->stop_why);
	in->stop_why = NULL;
	instance_set_state(in, INST_STOPPING, "ACPI shutdown");
	uv_timer_start(&in->timer, vm_stop_grace, VM_STOP_GRACE_MS, 0);
	vm_op_queue(in->set, in, VMOP_SHUTDOWN, NULL, NULL);
	return 0;
}

static int
vmi_destroy(struct instance *in, instances_done_cb cb, void *arg,
    int *code, char **cause)
{
	if (vmi_idle(in, code, cause) != 0)
		return -1;
	if (in->state != INST_STOPPED && in->state != INST_CHECKPOINTED &&
	    in->state != INST_RUNNING)
		return vmi_refuse_state(in, code, cause);
	vm_op_queue(in->set, in, VMOP_DESTROY, cb, arg);
	return 0;
}

/* Above every numbered directory, complete or not: one without a
 * MANIFEST may hold a VM's only saved state. */
static uint64_t
vm_next_generation(struct instance *in)
{
	struct dirent	*de;
	DIR		*d;
	char		*end;
	uint64_t	 gen, top = in->generation;

	if ((d = opendir(in->ckpt_dir)) == NULL)
		return top + 1;
	while ((de = readdir(d)) != NULL) {
		gen = strtoull(de->d_name, &end, 10);
		if (de->d_name[0] != '\0' && *end == '\0' && gen > top)
			top = gen;
	}
	closedir(d);
	return top + 1;
}

static int
vmi_checkpoint(struct instance *in, int leave_running, instances_done_cb cb,
    void *arg, int *code, char **cause)
{
	struct vm_op	*op;

	if (vmi_idle(in, code, cause) != 0)
		return -1;
	if (in->state != INST_RUNNING)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: only a running instance can be "
		    "checkpointed", in->name, inst_state_names[in->state]);
	op = vm_op_new(in->set, in, VMOP_CHECKPOINT, cb, arg);
	op->generation = vm_next_generation(in);
	xasprintf(&op->gen_dir, "%s/%llu", in->ckpt_dir,
	    (unsigned long long)op->generation);
	op->leave_running = leave_running;
	instance_set_state(in, INST_CHECKPOINTING, NULL);
	vm_op_start(op);
	return 0;
}

static int
vmi_restore(struct instance *in, const Tern__RestoreRequest *r,
    instances_done_cb cb, void *arg, int *code, char **cause)
{
	struct vm_op	*op;
	struct stat	 st;
	char		*path;
	uint64_t	 generation = r->has_generation ? r->generation : 0;
	int		 complete;

	if (vmi_idle(in, code, cause) != 0)
		return -1;
	if (in->state != INST_CHECKPOINTED && in->state != INST_STOPPED)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_BAD_REQUEST,
		    "instance %s is %s: stop it before restoring (one copy "
		    "runs at a time)", in->name, inst_state_names[in->state]);
	if (generation == 0)
		generation = ckpt_newest(in->ckpt_dir);
	if (generation == 0)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "instance %s has no complete checkpoint", in->name);
	xasprintf(&path, "%s/%llu/%s", in->ckpt_dir,
	    (unsigned long long)generation, CKPT_MANIFEST);
	complete = stat(path, &st) == 0;
	free(path);
	if (!complete)
		return inst_refuse(code, cause,
		    TERN__ERROR_CODE__ERROR_NOT_FOUND,
		    "instance %s has no complete checkpoint %llu", in->name,
		    (unsigned long long)generation);
	op = vm_op_new(in->set, in, VMOP_RESTORE, cb, arg);
	op->generation = generation;
	xasprintf(&op->gen_dir, "%s/%llu", in->ckpt_dir,
	    (unsigned long long)generation);
	instance_set_state(in, INST_RESTORING, NULL);
	vm_op_start(op);
	return 0;
}

/* --- libvirt's news ---------------------------------------------------------- */

void
vm_instances_event(struct instances *set, const char *name, enum vm_ev ev,
    const char *why, int migration)
{
	struct instance	*in;
	char		*text;

	if (name == NULL) {
		for (in = set->list; in != NULL; in = in->next) {
			if (in->drv != &vm_inst_driver)
				continue;
			if (ev == VM_EV_CONN_LOST) {
				xasprintf(&text, "lost libvirtd: %s", why);
				instance_set_error(in, text);
				free(text);
			} else if (in->state != INST_INCOMING &&
			    in->state != INST_MIGRATING)
				/* a migration's: it decides (as below) */
				vm_sync(in, NULL);
		}
		return;
	}
	if ((in = instance_find(set, name)) == NULL ||
	    in->drv != &vm_inst_driver)
		return;
	log_debug("instance %s: libvirt event %d%s%s%s", name, ev,
	    why != NULL ? " (" : "", why != NULL ? why : "",
	    why != NULL ? ")" : "");
	/* A migration, a checkpoint or our own call in flight decides. */
	if (in->state == INST_MIGRATING || in->state == INST_INCOMING ||
	    migration)
		return;
	/* Events can come after the reply of the call that caused them (a
	 * checkpoint left running stops and starts its domain): the event
	 * says why, libvirt's state now says whether. */
	switch (ev) {
	case VM_EV_STARTED:
	case VM_EV_RESUMED:
		if (in->state == INST_STOPPED || in->state == INST_CHECKPOINTED)
			vm_sync(in, "started outside tern");
		break;
	case VM_EV_STOPPED:
		if (in->state == INST_STOPPING)
			vm_finish_stop(in, in->stop_killed ? vm_killed_why(in) :
			    why);
		else if (in->state == INST_RUNNING)
			vm_sync(in, why);
		break;
	case VM_EV_UNDEFINED:
		if (!in->vm_busy)
			instance_set_error(in, "its domain was undefined in "
			    "libvirt outside tern (ternctl destroy forgets "
			    "it)");
		break;
	case VM_EV_SUSPENDED:
		if (why != NULL)
			instance_set_error(in, why);
		break;
	default:
		break;
	}
}

/* --- loading ------------------------------------------------------------------ */

static int
vmi_load(struct instances *set, const char *name,
    const struct inst_saved *saved, char **cause)
{
	struct instance	*in;
	char		*path, *xml;

	xasprintf(&path, "%s/%s/domain.xml", set->dir, name);
	if (access(path, F_OK) != 0) {
		free(path);
		return 1;	/* not a VM's */
	}
	xml = read_file_bounded(path, VM_XML_MAX, NULL, cause);
	free(path);
	if (xml == NULL)
		return -1;
	in = instance_add(set, &vm_inst_driver, name, xml, "");
	free(xml);
	in->vm = 1;
	in->generation = ckpt_newest(in->ckpt_dir);
	/* Until libvirt says otherwise. */
	in->state = saved->state == INST_RUNNING ? INST_RUNNING :
	    in->generation > 0 ? INST_CHECKPOINTED : INST_STOPPED;
	if (saved->state != INST_RUNNING && saved->state != INST_STOPPED &&
	    saved->state != INST_CHECKPOINTED)
		instance_set_error(in, "ternd stopped while it was being "
		    "changed");
	instance_saved_apply(in, saved);
	instance_persist(in);
	if (set->agent->vms != NULL && vm_host_up(set->agent->vms))
		vm_sync(in, NULL);
	return 0;
}

/* Arrived paused and held for its grant (agent/vm-mig-target.c): ternd
 * stopping, or a destroy, ends the hold rather than wait for the grant. */
static int
vmi_cancellable(const struct instance *in)
{
	return in->state == INST_INCOMING && vm_migration_held(in->name);
}

struct instance *
vm_instance_arrived(struct instances *set, const char *name, const char *xml,
    char **cause)
{
	struct instance	*in;

	in = instance_add(set, &vm_inst_driver, name, xml, "");
	in->vm = 1;
	in->state = INST_RUNNING;
	if (instance_save(in, cause) != 0) {
		instance_destroy(in);
		return NULL;
	}
	return in;
}

/* The lease is ending (agent/ha.h): pull the plug now (virDomainDestroy
 * on the pool), no ACPI, no grace; the destroy's answer settles it as a
 * killed stop.  Anything else it is doing (a restore, a checkpoint) ends
 * through instance_set_state, whose lease check calls this again. */
static void
vmi_fence(struct instance *in, const char *why)
{
	if (in->state != INST_RUNNING && in->state != INST_STOPPING)
		return;
	if (in->set->agent->vms == NULL || !vm_host_up(in->set->agent->vms)) {
		log_warnx("instance %s: must stop (%s) but libvirtd does not "
		    "answer: it may run on while the coordinator starts it "
		    "elsewhere; destroy it by hand now (virsh destroy %s)",
		    in->name, why, in->name);
		return;
	}
	log_warnx("instance %s: destroyed at once: %s", in->name, why);
	uv_timer_stop(&in->timer);
	in->stop_killed = 1;
	free(in->stop_why);
	xasprintf(&in->stop_why, "fenced: %s", why);
	if (in->state == INST_RUNNING)
		instance_set_state(in, INST_STOPPING, why);
	vm_op_queue(in->set, in, VMOP_KILL, NULL, NULL);
}

const struct inst_driver vm_inst_driver = {
	.kind = TERN__INSTANCE_KIND__KIND_VM,
	.name = "vm",
	.create = vmi_create,
	.load = vmi_load,
	.save = vmi_save,
	.start = vmi_start,
	.stop = vmi_stop,
	.destroy = vmi_destroy,
	.checkpoint = vmi_checkpoint,
	.restore = vmi_restore,
	.fence = vmi_fence,
	.cancellable = vmi_cancellable,
	.cancel = vm_migration_unhold,
};
