/* The VM kind of the instance table: libvirt domains tern defined.
 *
 * libvirt is the truth about a domain; the table follows its lifecycle
 * events (a guest that shuts down, a QEMU that dies, a virsh destroy
 * from outside) and says why in last_error.  Every libvirt call runs on
 * the thread pool, one at a time per instance. */
#ifndef TERN_AGENT_VM_INSTANCES_H
#define TERN_AGENT_VM_INSTANCES_H

#include "agent/instance-internal.h"
#include "checkpoint/vm.h"

/* Refuse (through cb) when this host has no libvirt; 1 if usable. */
int	vm_instances_usable(struct instances *, instances_done_cb, void *);
void	vm_instances_create(struct instances *,
	    const Tern__InstanceCreateRequest *, instances_done_cb, void *);
void	vm_instance_action(struct instance *, int action, instances_done_cb,
	    void *);
void	vm_instance_checkpoint(struct instance *, int leave_running,
	    instances_done_cb, void *);
void	vm_instance_restore(struct instance *, uint64_t generation,
	    instances_done_cb, void *);
/* From the agent's libvirt connection. */
void	vm_instances_event(struct instances *, const char *name, enum vm_ev,
	    const char *why, int migration);
/* At start: an instance whose directory holds domain.xml. */
void	vm_instance_load(struct instances *, const char *name, char *xml,
	    enum inst_state saved);
/* A migration brought the domain here: add it, running. */
struct instance *vm_instance_arrived(struct instances *, const char *name,
	    const char *xml, char **cause);

#endif
