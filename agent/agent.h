/* The host role of ternd: what one agent holds.  What every role of the
 * process shares (loop, configuration, TLS, the peer mesh) is in struct
 * ternd (daemon/ternd.h). */
#ifndef TERN_AGENT_AGENT_H
#define TERN_AGENT_AGENT_H

#include <stdint.h>

#include <uv.h>

#include "checkpoint/criu.h"
#include "daemon/ternd.h"

struct instances;
struct mig_engine;
struct ha_agent;
struct ha_pending;
struct ha_released;
struct ha_failed;
struct replicas;
struct vm_host;
struct longjobs;

struct agent {
	struct ternd		*ternd;
	struct instances	*instances;	/* NULL until CRIU was probed */
	struct vm_host		*vms;		/* libvirt; NULL: no VMs here */
	struct mig_engine	*mig;		/* every migration, either kind */
	struct ha_agent		*ha;		/* our lease; NULL: unprotected */
	struct ha_pending	*ha_pending;	/* creates waiting for it */
	struct ha_released	*ha_released;	/* destroyed, to tell it */
	struct ha_failed	*ha_failed;	/* take-overs that failed */
	uint64_t		 ha_stop_at;	/* the lease, as ternd stops */
	struct replicas		*replicas;	/* agent/replica.h */
	uint64_t		 next_migration;
	struct criu_features	 criu;		/* what container work CRIU allows */
	int			 criu_probed;
	char			*criu_action;	/* criu_action_script(), or NULL */
	uint8_t			*cpuinfo;	/* this CPU for CRIU (cpuinfo.img), */
	size_t			 cpuinfo_len;	/* sent with migration offers */
	char			*cpuinfo_error;	/* why there is none */
	struct longjobs		*longjobs;	/* VM migrations' threads */
	struct drain_state	*drain;		/* ternctl host drain's mark */
	struct ha_ops_state	*ha_ops;	/* ternctl ha's forwards */
	struct owner_move	*owner_moves;	/* commits the store is asked */
};

/* agent.c */
/* What this host can do, for Hello and status: a NULL-terminated array of
 * static strings. */
const char	**agent_capabilities(const struct agent *, size_t *n);
/* Register the agent's handlers on the mesh (before mesh_start): the
 * migrations' messages and streams, lost peers, Hello's capabilities. */
void		 agent_mesh_register(struct agent *, struct mesh *);

#endif
