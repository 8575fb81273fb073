/* Moving a container to another host (stop-and-copy or post-copy, its
 * rootfs along when not shared), both ends: the protocol is described
 * with MigrateStep in proto/tern.proto. */
#ifndef TERN_AGENT_MIGRATION_H
#define TERN_AGENT_MIGRATION_H

#include "agent/agent.h"
#include "agent/instances.h"
#include "daemon/msg.h"
#include "daemon/stream.h"

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
/* ternd stops: roll back every migration not yet committed, while the
 * peers can still be told; the engine goes once its last migration is
 * over (a->mig is NULL from here). */
void	migration_shutdown(struct agent *);

#endif
