/* The agent role on a ternd: the host's instance table, its migrations,
 * its lease, the control socket that serves ternctl.  main
 * (main/ternd.c) starts it on the shared struct ternd (daemon/ternd.h),
 * next to the coordinator role if the configuration names one; the two
 * talk through the mesh only.
 *
 * Its life: agent_role_start once the loop and the mesh exist (CRIU's
 * probe then opens the instance table and starts the mesh);
 * agent_role_reconfigure after a reload; at the end agent_role_stop
 * before the mesh stops, agent_role_close after, agent_role_finish once
 * the loop ran dry, agent_role_free after the loop is closed. */
#ifndef TERN_AGENT_ROLE_H
#define TERN_AGENT_ROLE_H

#include "agent/agent.h"

/* Before mesh_start: the control socket, the migrations, the agent's
 * mesh handlers, libvirt, CRIU's probe.  -1 and *cause if it cannot
 * serve (the control socket); then stop it as usual. */
int	agent_role_start(struct agent *, char **cause);
/* A reload replaced td->conf and td->tls: what the agent derives. */
void	agent_role_reconfigure(struct agent *);
/* ternd stops: the control socket, migrations and lease go (before the
 * mesh stops: migrations say goodbye over it). */
void	agent_role_stop(struct agent *);
/* After the mesh stopped: the instance table (running instances keep
 * running; work in progress finishes or is given up). */
void	agent_role_close(struct agent *);
/* The loop ran dry: libvirt's connection and the long jobs' threads. */
void	agent_role_finish(struct agent *);
void	agent_role_free(struct agent *);

#endif
