/* A kind of instance (container, VM) is a driver: one ops table.  The
 * instance table (agent/instances.c) keeps names, states, persistence
 * and the requests' checks that do not depend on the kind, and calls
 * the instance's driver (in->drv) for the rest; it never asks which
 * kind an instance is.  A registry there maps a create request's kind
 * to its driver.
 *
 * Callback contract, for every op that takes a callback:
 *  - an op that fails synchronously returns -1 with *code (a
 *    TERN__ERROR_CODE__*) and *cause (the operator's error, which the
 *    caller answers with) and never calls the callback;
 *  - an op that returns 0 has taken the request on: from then on the
 *    callback is called exactly once, whatever happens, maybe before the
 *    op returns; the caller touches the instance no more (it may be
 *    gone: a destroy);
 *  - ops are only called on the loop thread; work an op queues on the
 *    pool holds the table open (set->busy) until it came back.
 * Ops without a callback say what they return. */
#ifndef TERN_AGENT_DRIVER_H
#define TERN_AGENT_DRIVER_H

#include "agent/instance-internal.h"

/* What a previous ternd recorded in an instance's state file. */
struct inst_saved {
	enum inst_state	 state;		/* INST_STOPPED without a file */
	long		 pid;		/* its init's, 0 if none */
	long		 criu_pid;	/* a lazy dump's CRIU, 0 if none */
	char		*moved_to;	/* committed there, NULL if not */
	char		*paging_from;	/* post-copy's memory came from there */
	int		 ha;		/* HA policy, epoch, wanted running */
	int32_t		 priority;
	uint64_t	 epoch;
	int		 want_running;
	int		 ha_unconfirmed;	/* instance-internal.h */
	uint64_t	 replica_restore_gen;	/* instance-internal.h */
};

/* A driver's load: set what saved holds for HA on in once its state is
 * settled, before it persists in. */
void	instance_saved_apply(struct instance *, const struct inst_saved *);

struct inst_driver {
	/* The create request's kind and ternctl list's; its word
	 * ("container", "vm", as msg_kind_name says) for messages. */
	Tern__InstanceKind kind;
	const char	*name;

	/* Create r->name (valid, not in the table) from the request. */
	int	(*create)(struct instances *,
		    const Tern__InstanceCreateRequest *r, instances_done_cb,
		    void *, int *code, char **cause);
	/* At start: add name from its directory (set->dir/name) and what
	 * the previous ternd saved.  1: the directory holds no definition
	 * of this kind (the next driver is asked); 0: taken (added, or
	 * found half-made and discarded); -1 with *cause: not loadable,
	 * ignored by the caller with a warning. */
	int	(*load)(struct instances *, const char *name,
		    const struct inst_saved *, char **cause);
	/* Write its definition (spec files) into in->dir: 0, or -1 with
	 * *cause.  Blocks: called on the pool, from instance_save(). */
	int	(*save)(struct instance *, char **cause);

	int	(*start)(struct instance *, instances_done_cb, void *,
		    int *code, char **cause);
	int	(*stop)(struct instance *, instances_done_cb, void *,
		    int *code, char **cause);
	/* Stop it if it runs, then forget it (instance_destroy). */
	int	(*destroy)(struct instance *, instances_done_cb, void *,
		    int *code, char **cause);
	/* The callback gets a CheckpointReply or the error. */
	int	(*checkpoint)(struct instance *, int leave_running,
		    instances_done_cb, void *, int *code, char **cause);
	/* The callback gets a RestoreReply or the error. */
	int	(*restore)(struct instance *, const Tern__RestoreRequest *,
		    instances_done_cb, void *, int *code, char **cause);

	/* ternctl list: what the table does not know itself (name, kind,
	 * state, since, generation and last_error are filled).  Optional. */
	void	(*info)(const struct instance *, Tern__InstanceInfo *);
	/* SIGCHLD came: reap in's processes that are our children and act
	 * on their exit.  Optional. */
	void	(*reap)(struct instance *);
	/* ternd stops: 1 if in's long work in progress (a CRIU dump or
	 * restore) is to be given up rather than waited for.  Optional. */
	int	(*cancellable)(const struct instance *);
	/* Give up name's long work: it ends as failed through its own
	 * callback, maybe before this returns (and may free the table). */
	void	(*cancel)(const char *name, const char *why);
	/* Out of the table: let go of what watches it (its processes run
	 * on).  Optional. */
	void	(*unlink)(struct instance *);
	/* The lease is ending (agent/ha.h), or the instance turned running
	 * without a valid lease (instance_set_state): stop it at once, no
	 * grace, no waiting (kill its processes; the exit is seen as any
	 * other).  It may be called from instance_set_state.  Optional: a
	 * kind without it cannot be protected. */
	void	(*fence)(struct instance *, const char *why);
	/* Free what the driver holds in in (just before in).  Optional. */
	void	(*release)(struct instance *);
};

/* The drivers (the registry in agent/instances.c lists them). */
extern const struct inst_driver	ctr_inst_driver;
extern const struct inst_driver	vm_inst_driver;

/* For drivers: a new instance of drv in the table (state stopped, its
 * files not written yet: instance_save). */
struct instance	*instance_add(struct instances *, const struct inst_driver *,
		    const char *name, const char *spec_text,
		    const char *spec_dir);
/* An op's synchronous refusal, in the contract's form: -1. */
int		 inst_refuse(int *code, char **cause, int c, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));
/* SIGCHLD's work now, for an instance that may have exited before it
 * was watched: every instance's reap. */
void		 instances_reap(struct instances *);
/* pid, a child of ours, is no instance's any more but has not exited
 * yet (a copy killed as its migration broke, then dropped from the
 * table): reap it when it does, or it stays a zombie until ternd exits. */
void		 instances_reap_later(struct instances *, pid_t);
/* ... until an instance watches it after all: off the list (1 if it was
 * there; a pid reaped from it already is no child of ours any more). */
int		 instances_reap_claim(struct instances *, pid_t);
/* Detach whatever is mounted below dir (a criu killed mid-restore
 * leaves its cgroup yard mounted in the images directory). */
void		 instance_unmount_below(const char *dir);

#endif
