/* High availability on the agent: what the lease keeper (agent/ha.h)
 * does to the instance table.  A protected instance (created with --ha)
 * runs only while this host holds a lease from the coordinator and the
 * coordinator says this host owns it, at the epoch it gave:
 *  - every renewal lists the protected instances held here (a new one
 *    with its spec, so the coordinator can add it);
 *  - every grant says what this host owns: an instance that came here by
 *    failover is created from its spec and started, one the operator
 *    wanted running and a fence stopped is started again, one the
 *    coordinator gave to another host (a higher epoch) is discarded;
 *  - a lost lease fences: the driver kills every protected instance at
 *    once (driver.h's fence op), before the coordinator may give it to
 *    another host. */
#ifndef TERN_AGENT_HA_INSTANCES_H
#define TERN_AGENT_HA_INSTANCES_H

#include "agent/agent.h"
#include "agent/driver.h"

/* Before the mesh starts: the handler for grants (from the coordinator's
 * host, this one's own included: main has the mesh deliver those). */
/* The coordinator this host talks to now (for messages): the one its
 * renewals go to, else the configured list. */
const char *ha_instances_coord_now(const struct agent *);
void	ha_instances_register(struct agent *);
/* Once the instance table is open: hold a lease from the coordinator
 * (conf coordinator), if any. */
void	ha_instances_start(struct agent *);
void	ha_instances_stop(struct agent *);
/* ternctl create --ha: 0 if it can be protected here, else -1 with
 * *code and *cause (the synchronous refusal of driver.h's contract). */
int	ha_instances_refuse_create(struct agent *, const struct inst_driver *,
	    const Tern__InstanceCreateRequest *, int *code, char **cause);
/* ternctl create --ha name, about to go to its driver: *cb and *arg are
 * replaced so that the answer waits for the coordinator (the grant that
 * lists it, or refuses it: then it is destroyed here again). */
void	ha_instances_creating(struct agent *, const char *name,
	    instances_done_cb *cb, void **arg);
/* ternctl destroy of a protected instance: the coordinator is told at the
 * next renewals, until no grant lists it, so it starts nowhere again; *cb
 * and *arg are replaced so that the answer waits for that (a host that
 * crashes before would have it failed over, destroyed or not). */
void	ha_instances_released(struct agent *, const struct instance *,
	    instances_done_cb *cb, void **arg);
/* Before a start or restore: 0 if in may run now, -1 with *code and
 * *cause if it is protected and this host holds no lease for it. */
int	ha_instances_may_run(struct instance *, int *code, char **cause);
/* in has just turned running (instance_set_state): 0 if it may run;
 * -1 if it is protected and this host holds no valid lease for its epoch
 * now (a start, restore or resume that began under the lease ended after
 * it): then it is fenced at once through its driver, and logged; it
 * stays wanted running, so a later grant starts it again. */
int	ha_instances_running(struct instance *);
/* For ternctl status (caller frees; NULL: no such role here). */
char	*ha_instances_lease(struct agent *);
char	*ha_instances_coordinator(struct agent *);

#endif
