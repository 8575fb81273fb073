/* The coordinator role on a ternd: opens the store the configuration
 * names (journal or etcd), runs the coordinator (coordinator.h) and
 * registers its lease messages on the mesh.  An agent on the same host
 * reaches it without the mesh (a host has no link to itself): its
 * messages go through coord_role_local, and the grants for this host come
 * back through the deliver function, always from a later loop turn. */
#ifndef TERN_COORD_ROLE_H
#define TERN_COORD_ROLE_H

#include "daemon/msg.h"

struct coord_role;
struct coordinator;
struct ternd;

typedef int (*coord_deliver_fn)(void *ctx, const char *peer, const Envelope *);

/* -1 and *cause if the store cannot be opened or the configuration is
 * unusable; the role then does not run. */
struct coord_role *coord_role_start(struct ternd *, char **cause);
/* Where grants for this host go (the local agent's handler). */
void		 coord_role_set_local(struct coord_role *, coord_deliver_fn,
		    void *ctx);
/* A message from the local agent. */
int		 coord_role_local(struct coord_role *, const Envelope *);
struct coordinator *coord_role_coordinator(struct coord_role *);
/* "leading, 3 hosts: h1 up, h2 suspect, h3 up", for status; caller frees. */
char		*coord_role_describe(struct coord_role *);
void		 coord_role_stop(struct coord_role *);

#endif
