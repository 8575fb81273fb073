/* The coordinator role on a ternd: opens the store the configuration
 * names (journal or etcd), runs the coordinator (coordinator.h) and
 * registers its lease messages on the mesh.  An agent on the same host
 * reaches it as any other does, through the mesh: main (main/ternd.c)
 * has the mesh deliver lease messages a host sends itself
 * (mesh_deliver_local); the two roles never call each other. */
#ifndef TERN_COORD_ROLE_H
#define TERN_COORD_ROLE_H

#include "daemon/msg.h"

struct coord_role;
struct coordinator;
struct ternd;

/* -1 and *cause if the store cannot be opened or the configuration is
 * unusable; the role then does not run. */
struct coord_role *coord_role_start(struct ternd *, char **cause);
struct coordinator *coord_role_coordinator(struct coord_role *);
/* "leading, 3 hosts: h1 up, h2 suspect, h3 up", for status; caller frees. */
char		*coord_role_describe(struct coord_role *);
void		 coord_role_stop(struct coord_role *);

#endif
