/* Replicated checkpoints (--ha checkpoint, docs/ha.md "Replicated
 * checkpoints").
 *
 * Owner: every instance a grant lists with policy checkpoint is
 * checkpointed (leaving it running) every interval the grant gives, never
 * two at once (a tick while a generation is still being sent is skipped,
 * and logged), never while it is not simply running (a migration, a
 * stop).  Each generation goes to the replica hosts the grant names as
 * content-addressed chunks (checkpoint/chunks.h, proto ReplicaOffer):
 * only the chunks a replica lacks cross.  A replica's acknowledgement is
 * reported to the coordinator with the next renewal, which is sent at
 * once; only then does the coordinator count the replica.
 *
 * Replica: keeps what it receives under state_dir/replicas/INSTANCE (the
 * chunk store and the newest CHUNKS_KEEP generations, each restorable as
 * it is); acknowledges a generation only once every chunk had its digest,
 * the files were assembled, checked against their MANIFEST and fsync'd.
 * An instance that fails over here is restored from there.
 *
 * Fault point replica.send.corrupt (fail): the first chunk of a
 * generation sent after one was acknowledged has a byte changed on the
 * wire. */
#ifndef TERN_AGENT_REPLICA_H
#define TERN_AGENT_REPLICA_H

#include <stdint.h>

#include "agent/agent.h"
#include "daemon/msg.h"

#define REPLICA_DIR		"replicas"

/* Before the mesh starts: the replica messages and streams. */
void	replica_register(struct agent *);
/* ternd stops: transfers end, timers stop. */
void	replica_stop(struct agent *);
/* A grant: checkpoint what it lists with policy checkpoint, on its
 * schedule, to its replica hosts; stop for anything it does not list. */
void	replica_owned(struct agent *, const Tern__LeaseGrant *);
/* A renewal: the acknowledged replicas not reported yet go with it
 * (r->replicas); replica_reports_free after the send. */
void	replica_reports(struct agent *, Tern__LeaseRenew *);
void	replica_reports_free(struct agent *, Tern__LeaseRenew *);
/* Restoring name's replica here failed: the next renewal says so (once,
 * replica_restore_failure gives it until replica_reports_free). */
void	replica_restore_failed(struct agent *, const char *name,
	    const char *why);
const char *replica_restore_failure(struct agent *, const char *name);
/* Generation gen of name as this host keeps it as a replica becomes
 * ckpt_dir/gen (a rename), its rootfs (if it carries one) written to
 * root first, which must be absent or an empty directory; then
 * cb(arg, NULL), or cb(arg, why) if there is no such complete generation
 * or the rootfs cannot be written.  The rest of the replica is removed.
 * On the thread pool: cb comes from the loop, always. */
typedef void (*replica_take_cb)(void *arg, const char *error);
void	replica_take(struct agent *, const char *name, uint64_t gen,
	    const char *ckpt_dir, const char *root, replica_take_cb,
	    void *arg);

#endif
