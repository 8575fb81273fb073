/* Live migration of a VM through the agents (the exchange is described
 * with MigrateOffer in proto/tern.proto): libvirt migrates peer to peer,
 * but both its control connection and QEMU's stream go through local
 * unix sockets that ternd relays over its mutual-TLS streams; QEMU
 * tracks the dirty pages, ternd reads its job numbers every round and
 * applies the convergence policy of migrate/vm-policy.h. */
#ifndef TERN_AGENT_VM_MIGRATION_H
#define TERN_AGENT_VM_MIGRATION_H

#include "agent/agent.h"
#include "checkpoint/vm.h"

/* The VM's driver (kind "vm") on the agent's migration engine (a->mig,
 * migrate/engine.h): ternctl migrate and --cancel, offers, steps, relay
 * streams "<id>/vm-...", a lost peer and shutdown come through it. */
void	vm_migration_register(struct agent *);
/* At start: no migration outlives its ternd; remove what they left. */
void	vm_migration_clean(struct agent *);
/* libvirt: the outgoing migration of name starts memory pass n. */
void	vm_migration_iteration(struct agent *, const char *name, int n);
/* libvirt, about the outgoing migration of name: VM_EV_POSTCOPY_SWITCH
 * (QEMU took the switch), VM_EV_MIGRATED_OUT (completed; detail: QEMU's
 * downtime in ms, -1 if libvirt did not give it). */
void	vm_migration_event(struct agent *, const char *name, enum vm_ev,
	    int detail);
/* The coordinator's grant listed a VM migrating in (migration.h). */
struct mig;
void	vm_migration_granted(struct mig *);
/* S: a grant lists the VM here at epoch (its copy may come back). */
void	vm_migration_listed(struct mig *, uint64_t epoch);
/* A VM arrived paused and held until its grant (docs/ha.md) keeps the
 * instance table busy: 1 if name is held and not being resumed, and
 * letting go of the hold (ternd stops, or the instance is destroyed):
 * the migration ends, the domain stays paused in libvirt. */
int	vm_migration_held(const char *name);
void	vm_migration_unhold(const char *name, const char *why);

#endif
