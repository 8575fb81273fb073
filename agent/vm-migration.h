/* Live migration of a VM through the agents (the exchange is described
 * with MigrateOffer in proto/tern.proto): libvirt migrates peer to peer,
 * but both its control connection and QEMU's stream go through local
 * unix sockets that ternd relays over its mutual-TLS streams; QEMU
 * tracks the dirty pages, ternd reads its job numbers every round and
 * applies the convergence policy of migrate/vm-policy.h. */
#ifndef TERN_AGENT_VM_MIGRATION_H
#define TERN_AGENT_VM_MIGRATION_H

#include "agent/agent.h"
#include "agent/instances.h"
#include "checkpoint/vm.h"
#include "daemon/msg.h"
#include "daemon/stream.h"

struct instance;

/* ternctl migrate of a VM instance (progress, then done once). */
void	vm_migration_start(struct agent *, struct instance *,
	    const Tern__MigrateRequest *, instances_done_cb progress,
	    instances_done_cb done, void *arg);
/* ternctl migrate --cancel NAME. */
void	vm_migration_cancel(struct agent *, const char *name,
	    instances_done_cb, void *arg);
/* From migration.c's routing: an offer of kind "vm"; a step (1 if it
 * belongs to a VM migration); a relay stream named "<id>/vm-..."; a lost
 * peer; ternd stopping. */
void	vm_migration_offer(struct agent *, const char *peer,
	    const Tern__MigrateOffer *);
int	vm_migration_step(struct agent *, const char *peer,
	    const Tern__MigrateStep *);
int	vm_migration_accept_relay(struct agent *, const char *peer,
	    struct stream *, const char *name, char **cause);
void	vm_migration_peer_lost(struct agent *, const char *peer,
	    const char *why);
void	vm_migration_shutdown(struct agent *);
/* At start: no migration outlives its ternd; remove what they left. */
void	vm_migration_clean(struct agent *);
/* libvirt: the outgoing migration of name starts memory pass n. */
void	vm_migration_iteration(struct agent *, const char *name, int n);
/* libvirt, about the outgoing migration of name: VM_EV_POSTCOPY_SWITCH
 * (QEMU took the switch), VM_EV_MIGRATED_OUT (completed; detail: QEMU's
 * downtime in ms, -1 if libvirt did not give it). */
void	vm_migration_event(struct agent *, const char *name, enum vm_ev,
	    int detail);

#endif
