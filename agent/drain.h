/* Draining a host (ternctl host drain / undrain): the drained mark,
 * persisted in state_dir/drained and told to the peers (the mesh's host
 * state), and the drain job that moves every running instance off this
 * host through migration_start, drain_parallel at once, each to the up,
 * not drained peer holding the fewest instances.  A request for another
 * host is forwarded to its ternd over the mesh, and its progress relayed
 * back.  The ternd carries on when the ternctl that asked goes away. */
#ifndef TERN_AGENT_DRAIN_H
#define TERN_AGENT_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "agent/drain-target.h"
#include "daemon/ctlsock.h"
#include "daemon/msg.h"

/* drain.c */
/* Read the mark, tell the mesh our state (before mesh_start). */
void	drain_init(struct agent *, struct mesh *);
/* The mark: 1 if this host takes no instance. */
int	drain_drained(const struct agent *);
/* A create or an incoming migration: -1 and *cause when drained. */
int	drain_refuses(const struct agent *, char **cause);
/* ternctl host drain / undrain from the control socket. */
void	drain_control(struct agent *, struct ctl_client *, const Envelope *);
/* From the mesh: a forwarded request, or its progress and reply. */
int	drain_on_msg(struct agent *, const char *peer, const Envelope *);
void	drain_peer_lost(struct agent *, const char *peer, const char *why);
/* At the end: what is left of the forwarded requests. */
void	drain_free(struct agent *);

#endif
