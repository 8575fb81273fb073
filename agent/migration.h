/* Moving a container to another host (stop-and-copy or post-copy, its
 * rootfs along when not shared), both ends: the protocol is described
 * with MigrateStep in proto/tern.proto. */
#ifndef TERN_AGENT_MIGRATION_H
#define TERN_AGENT_MIGRATION_H

#include "agent/agent.h"
#include "agent/instances.h"
#include "daemon/msg.h"
#include "daemon/stream.h"

struct instance;

/* The migration engine (a->mig, migrate/engine.h) and its drivers, at
 * start; the configuration reloaded (SIGHUP). */
void	migration_init(struct agent *);
void	migration_reconfigure(struct agent *);
/* ternctl migrate: MigrateProgress through progress while it runs (code
 * and error unused), then the answer through done, once. */
void	migration_start(struct agent *, const Tern__MigrateRequest *,
	    instances_done_cb progress, instances_done_cb done, void *arg);
/* From the mesh: a migration message (1 if it was one), an incoming image
 * file, a lost peer. */
int	migration_on_msg(struct agent *, const char *peer, const Envelope *);
int	migration_accept_file(struct agent *, const char *peer,
	    struct stream *, const char *name, uint64_t size, char **cause);
/* A "tree" stream: a rootfs pass of an incoming migration. */
int	migration_accept_tree(struct agent *, const char *peer,
	    struct stream *, const char *name, char **cause);
/* A "relay" stream: the peer's half of a post-copy page channel. */
int	migration_accept_relay(struct agent *, const char *peer,
	    struct stream *, const char *name, char **cause);
void	migration_peer_lost(struct agent *, const char *peer,
	    const char *why);
/* A stop or destroy of name (destroy: 1) while it moves, either way: -1
 * with *cause saying what the operator can do instead; 0 if it does not
 * move. */
int	migration_refuses_action(struct agent *, const char *name, int destroy,
	    char **cause);
/* A protected instance's commit point (docs/ha.md): the coordinator is
 * asked to make to the owner of in (this host's at in->epoch) at the next
 * epoch, in one store transaction.  done runs once, later: MOVED with the
 * new epoch, REFUSED with why (nothing changed: roll back), or UNKNOWN
 * with why (the answer could not be learned before this host's lease
 * ended: run neither copy).  A mover that holds no copy of its own any
 * more (libvirt moved the VM, paused) has nothing its lease must stop:
 * ask_until (uv_now ms, 0: none) lets it ask on past its lease until
 * then, before UNKNOWN.  -1 with *cause: not asked (no coordinator). */
enum owner_result {
	OWNER_MOVED,
	OWNER_REFUSED,
	OWNER_UNKNOWN,
};
typedef void	(*owner_cb)(void *arg, enum owner_result, uint64_t epoch,
		    const char *why);
int	migration_owner_move(struct agent *, const struct instance *,
	    const char *to, uint64_t migration, uint64_t ask_until,
	    owner_cb, void *arg, char **cause);
/* A grant lists name at epoch here (agent/ha-instances.c): an incoming
 * migration waiting for it may resume; an outgoing VM's copy that came
 * back after a lapse of the lease may too (vm_migration_listed). */
void	migration_owner_granted(struct agent *, const char *name,
	    uint64_t epoch);
/* How long a copy held until a grant lists it (a target's after COMMIT,
 * a VM source's come back after a lapse) waits before it is fenced: two
 * lease lives, so that the renewals under way land within it. */
uint64_t migration_grant_wait_ms(const struct agent *);
/* ternd stops: roll back every migration not yet committed, while the
 * peers can still be told; the engine goes once its last migration is
 * over (a->mig is NULL from here). */
void	migration_shutdown(struct agent *);

#endif
