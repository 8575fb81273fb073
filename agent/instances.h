/* The local instance table: the containers and VMs this host runs or
 * holds checkpoints of, their state machine, persisted in
 * state_dir/instances/ so a restarted ternd knows them again.  What
 * depends on the kind is the kind's driver's (agent/driver.h).
 *
 *   stopped --start--> running --stop--> stopped
 *   running --checkpoint--> checkpointing --> running (leave running)
 *                                        \--> checkpointed
 *   checkpointed|stopped --restore--> restoring --> running
 *   any --destroy--> (gone)
 *
 * Every transition is logged at info with the instance's name. */
#ifndef TERN_AGENT_INSTANCES_H
#define TERN_AGENT_INSTANCES_H

#include "agent/agent.h"
#include "daemon/msg.h"

struct instances;

struct instances	*instances_open(struct agent *, char **cause);
/* Stop watching (running containers keep running). */
void			 instances_close(struct instances *);

/* Completion of a request: reply is an Envelope body to send, or error. */
typedef void (*instances_done_cb)(void *arg, const Envelope *reply,
    int code, const char *error);

/* Each answers through cb exactly once (maybe before returning); a
 * request that is refused at once also goes through cb. */
void	instances_create(struct instances *, const Tern__InstanceCreateRequest *,
	    instances_done_cb, void *arg);
void	instances_action(struct instances *, const Tern__InstanceActionRequest *,
	    instances_done_cb, void *arg);
void	instances_list(struct instances *, instances_done_cb, void *arg);
void	instances_checkpoint(struct instances *, const Tern__CheckpointRequest *,
	    instances_done_cb, void *arg);
void	instances_restore(struct instances *, const Tern__RestoreRequest *,
	    instances_done_cb, void *arg);

#endif
