/* What agent/instances.c, the drivers (agent/driver.h) and the
 * migrations share about instances: the table, one instance, and the
 * operations they use. */
#ifndef TERN_AGENT_INSTANCE_INTERNAL_H
#define TERN_AGENT_INSTANCE_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "agent/instances.h"

enum inst_state {
	INST_STOPPED,
	INST_RUNNING,
	INST_STOPPING,
	INST_CHECKPOINTING,
	INST_CHECKPOINTED,
	INST_RESTORING,
	INST_MIGRATING,		/* leaving for another host */
	INST_INCOMING,		/* arriving from another host */
};

extern const char *const inst_state_names[];

struct persist_wait;
struct inst_driver;

struct instance {
	struct instances	*set;
	struct instance		*next;
	const struct inst_driver *drv;		/* its kind's ops */
	char			*name;
	uint64_t		 serial;	/* this one of that name: one
						 * made anew under it differs */
	char			*dir;		/* state_dir/instances/NAME */
	char			*ckpt_dir;	/* dir/ckpt */
	char			*spec_text;	/* a VM's: its domain XML */
	char			*spec_dir;
	struct container_spec	*spec;		/* containers only */
	int			 vm;		/* set by the VM driver, for
						 * the migrations only */
	int			 vm_busy;	/* a libvirt call is out */
	int			 creating;	/* its create is not answered */

	enum inst_state		 state;
	uint64_t		 since_ms;
	pid_t			 pid;		/* 0 when not running */
	int			 adopted;	/* not our child: polled */
	struct pid_watch	*watch;		/* adopted: its init's pidfd */
	uint64_t		 generation;	/* newest verified checkpoint */
	/* The next leave-running checkpoint only (agent/replica.c): taken
	 * with the tree stopped (ckpt_target's frozen). */
	int			(*ckpt_frozen)(void *, const char *, char **);
	void			*ckpt_frozen_arg;
	char			*last_error;
	pid_t			 criu_pid;	/* a lazy dump holds it frozen */
	/* Resumed by a stop-and-copy before its memory was in: the local
	 * lazy-pages daemon copying it in from the move's checkpoint
	 * (ctr_loader_adopt).  It must not outlive the daemon. */
	struct ckpt_lazy	*loader;
	char			*loader_failed;	/* why it was killed */
	int			 loader_unwanted; /* fenced: its end is no failure */
	char			*moved_to;	/* post-copy committed to there */
	/* Moved in by post-copy, its memory still coming from there: a
	 * restarted ternd kills what is left of it (it cannot get the
	 * rest) and drops it, as the move broke. */
	char			*paging_from;
	/* An incoming post-copy holds it (ctr-mig-target.c) until every
	 * page is in and its channel drained: no stop, destroy, checkpoint
	 * or move may take it from under that migration meanwhile. */
	int			 paging;
	/* High availability (agent/ha-instances.c): protected instances run
	 * only under a lease, at the epoch the coordinator gave. */
	int			 ha;		/* TERN__HA_POLICY__*, 0: none */
	int32_t			 priority;
	uint32_t		 ha_interval_ms; /* checkpoint: until the */
	uint32_t		 ha_replicas;	/* coordinator has it */
	uint64_t		 epoch;		/* 0: not known to it yet */
	int			 want_running;	/* the operator started it */
	int			 ha_creating;	/* a failover's create is out */
	int			 destroy_after_stop;
	/* A protected migration's commit went unconfirmed: the grant
	 * decides (listed here at its epoch: the move was not recorded,
	 * restore the checkpoint; refused: the target's).  Saved in the
	 * state file: a restarted ternd must still restore it.  Cleared
	 * once restored, or when a grant says otherwise. */
	int			 ha_unconfirmed;
	int			 ha_unconfirmed_tries; /* restores tried */
	/* A failover's replica generation is being taken in (its rootfs
	 * written) before its restore: no grant may cold-start it. */
	int			 replica_restoring;
	/* The replica generation a failover restores it from, until it
	 * runs or the restore failed.  Saved in the state file: a ternd
	 * restarted meanwhile resumes the restore at the next grant, never
	 * a cold start. */
	uint64_t		 replica_restore_gen;
	/* Since when the restore waits for a cause that passes (0: it
	 * does not): ha-instances.c ha_restore_wait. */
	uint64_t		 replica_restore_wait_ms;
	int			 stop_killed;
	const char		*working;	/* a container call is on the
						 * pool: "starting", ... */
	char			*stop_why;
	int			 persisting;	/* a state write is out */
	int			 persist_again;	/* changed since it went */
	int			 unlinked;	/* out of the table, and */
	int			 closed;	/* freed once the write is back */
	struct persist_wait	*persist_next;	/* for the next write */
	struct persist_wait	*persist_out;	/* for the one out */

	uv_timer_t		 timer;		/* stop grace, adoption poll */

	/* the request waiting for a stop (or a start) to finish */
	instances_done_cb	 stop_cb;
	void			*stop_arg;
	/* a destroy (or, with later_stop, a stop) waiting for its
	 * checkpoint (cancelled) or a driver call to end (instances.c
	 * instance_busy_with) */
	instances_done_cb	 destroy_cb;
	void			*destroy_arg;
	int			 later_stop;
};

struct instances {
	struct agent		*agent;
	char			*dir;
	struct instance		*list;
	uv_signal_t		 sigchld;
	int			 busy;		/* checkpoints/restores running */
	/* The create request being handed to a driver: instance_add takes
	 * its HA policy from it (drivers need not know about HA). */
	const Tern__InstanceCreateRequest *creating;
	int			 taking_over;	/* a failover's create */
	int			 closing;
	/* Children of ours whose instance let go of them before their exit
	 * was reaped (instances_reap_later). */
	pid_t			*orphans;
	size_t			 n_orphans;
};

struct container_spec;

struct instance	*instance_find(struct instances *, const char *name);
/* Answers for the requests' callbacks. */
void		 reply_error(instances_done_cb, void *, int code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void		 reply_done(instances_done_cb, void *, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
void		 reply_checkpoint(instances_done_cb, void *, const char *name,
		    uint64_t generation, uint64_t bytes, uint64_t duration_ms,
		    uint64_t frozen_ms, const char *dir);
/* A new container instance (the container driver's, for a migration's
 * target too); it owns spec. */
struct instance	*instance_new(struct instances *, const char *name,
		    const char *spec_text, const char *spec_dir,
		    struct container_spec *);
/* Logged at info, persisted.  Turning running: -1 if the instance is
 * protected and this host holds no valid lease for it now; it was
 * fenced (ha-instances.h), the caller answers so. */
int		 instance_set_state(struct instance *, enum inst_state,
		    const char *why);
void		 instance_set_error(struct instance *, const char *);
/* Write its state file (state, pid, generation, criu, moved_to) on the
 * pool: fsync waits for the disk, which a migration keeps busy.  Writes
 * of one instance go out one at a time, the newest state last. */
void		 instance_persist(struct instance *);
/* The same, and cb(arg, error) once the state as it is now is durable
 * (error: it could not be written, said once in the log too).  Never
 * calls cb before returning.  For a step that must not go before its
 * record (a commit). */
void		 instance_persist_then(struct instance *,
		    void (*cb)(void *arg, const char *error), void *arg);
/* A container's init to watch (the container driver's). */
void		 instance_watch(struct instance *, pid_t, int adopted);
/* Forget it for good: its state and checkpoints (not its rootfs). */
void		 instance_destroy(struct instance *);
/* Take it out of the table and free it; its files stay. */
void		 instance_unlink(struct instance *);
/* Save spec, state and dirs of a new instance; -1 and *cause on error.
 * Blocks (mkdir, fsync): call it on the pool, as creations do. */
int		 instance_save(struct instance *, char **cause);
/* Long operations hold the table open (instances_close waits).  The
 * end of a checkpoint: a destroy that waited for it goes on here, so
 * call it last, with nothing of the instance used after it. */
void		 instances_op_done(struct instances *);
/* A destroy or a stop waits for this instance's checkpoint to end:
 * the generation it takes is not sent. */
int		 instance_destroying(const struct instance *);

#endif
