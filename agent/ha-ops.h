/* ternctl ha set, ha status and failovers: the local ternd sends the
 * request over the mesh to its coordinator (to itself through
 * mesh_deliver_local when it is the coordinator, coord/role.c answers)
 * and relays the reply to ternctl. */
#ifndef TERN_AGENT_HA_OPS_H
#define TERN_AGENT_HA_OPS_H

#include "agent/agent.h"
#include "daemon/ctlsock.h"
#include "daemon/msg.h"

struct mesh;

/* Register the replies' handlers and the lost peers' (before mesh_start). */
void	ha_ops_init(struct agent *, struct mesh *);
/* A control request: 1 if it was one of ours (answered now or later). */
int	ha_ops_control(struct agent *, struct ctl_client *, const Envelope *);
void	ha_ops_free(struct agent *);

#endif
