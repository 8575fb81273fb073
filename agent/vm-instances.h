/* The VM driver of the instance table (vm_inst_driver, agent/driver.h):
 * libvirt domains tern defined.
 *
 * libvirt is the truth about a domain; the table follows its lifecycle
 * events (a guest that shuts down, a QEMU that dies, a virsh destroy
 * from outside) and says why in last_error.  Every libvirt call runs on
 * the thread pool, one at a time per instance. */
#ifndef TERN_AGENT_VM_INSTANCES_H
#define TERN_AGENT_VM_INSTANCES_H

#include "agent/instance-internal.h"
#include "checkpoint/vm.h"

/* From the agent's libvirt connection. */
void	vm_instances_event(struct instances *, const char *name, enum vm_ev,
	    const char *why, int migration);
/* A migration brought the domain here: add it, running. */
struct instance *vm_instance_arrived(struct instances *, const char *name,
	    const char *xml, char **cause);

#endif
