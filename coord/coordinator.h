/* The coordinator role: grants the agents' leases, decides which hosts
 * failed (coord/membership.h), and moves a failed host's protected
 * instances to survivors (coord/model.h's plan, one store transaction per
 * instance).  It acts only while it leads (store_campaign) and decides no
 * failure during its quiet period after it starts or wins leadership.
 *
 * Level-triggered: every grant tells the host what it owns now (name,
 * epoch, the replica to restore when it came by failover).  There is no
 * separate order to lose: an agent that missed a grant learns the same
 * at the next one, and a coordinator that restarts after moving an
 * instance needs to resend nothing.
 *
 * Callback contract: as the store's (coord/store.h): a failure found at
 * once returns -1 with *cause and never calls back; otherwise the
 * callback runs exactly once, later, from the loop. */
#ifndef TERN_COORD_COORDINATOR_H
#define TERN_COORD_COORDINATOR_H

#include <stdint.h>

#include <uv.h>

#include "coord/membership.h"
#include "coord/model.h"
#include "coord/store.h"
#include "daemon/msg.h"

struct coordinator;

struct coord_conf {
	const char		*name;		/* this coordinator (campaign) */
	struct membership_conf	 lease;
	/* The store's leadership lease (etcd): leader_ttl_ms of the
	 * config, whose 0 the config resolved. */
	uint32_t		 leader_ttl_ms;
	/* Run with a suspect host's name; exit 0 = it is off (fence.h).
	 * NULL: none. */
	const char		*fence_command;
	uint32_t		 fence_timeout_ms;
	/* Milliseconds of CLOCK_MONOTONIC; NULL: now_ms().  Tests give
	 * their own clock. */
	uint64_t		(*clock)(void *);
	void			*clock_arg;
};

/* How the coordinator answers a host (the mesh's send). */
struct coord_transport {
	int	(*send)(void *ctx, const char *host, const Envelope *,
		    char **cause);
	void	*ctx;
};

/* What happened, for logs, `ternctl hosts` and tests. */
enum coord_event {
	COORD_EV_LEADING,	/* won leadership; quiet period begins */
	COORD_EV_DEPOSED,	/* lost it: decides nothing more */
	COORD_EV_HOST_STATE,	/* a host's lease state changed */
	COORD_EV_FAILOVER,	/* an instance moved (or could not: why) */
};
typedef void (*coord_event_cb)(void *arg, enum coord_event,
    const char *host, const char *instance, const char *text);

struct coordinator *coord_new(uv_loop_t *, const struct coord_conf *,
		    struct store *, const struct coord_transport *);
void		 coord_set_events(struct coordinator *, coord_event_cb, void *);
/* Load the picture, then run for leadership; ready once it loaded. */
int		 coord_start(struct coordinator *, void (*ready)(void *,
		    const char *error), void *arg, char **cause);
/* From the mesh: a lease message from host (1 if it was one). */
int		 coord_on_msg(struct coordinator *, const char *host,
		    const Envelope *);
/* The host's drain mark as the mesh last heard it (its Hello and
 * HostState), given with each of its renewals: a drained host is never
 * a failover target (model_failover_plan). */
void		 coord_host_drained(struct coordinator *, const char *host,
		    int drained);
/* ternctl ha set: change name's protection (model_instance_set_ha) while
 * leading; once stored, its owner is nudged (its grant carries the
 * policy: none stops the lease gating it). */
int		 coord_ha_set(struct coordinator *, const char *name,
		    const struct model_ha_set *, model_cb, void *,
		    char **cause);
/* Check every host now (the timer does it on its own). */
void		 coord_check(struct coordinator *);
struct model	*coord_model(struct coordinator *);
int		 coord_leading(const struct coordinator *);
/* Who leads when this one does not, as its store last saw (NULL: this
 * one leads, or not known). */
const char	*coord_leader_seen(struct coordinator *);
/* Stop the timer; the store stays the caller's. */
void		 coord_free(struct coordinator *);

#endif
