/* The agent's side of high availability: it renews its lease with the
 * coordinator every third of the lease's life, counts the lease from the
 * moment it SENT the renewal that was granted (agent/lease.h), and stops
 * its protected instances (the fence op) before the lease can end unless
 * a later renewal was granted.  A refusal (the host was declared
 * failed, or is unknown) fences at once and registers again; a "not
 * leading" refusal does not: the agent turns to the leader (or the next
 * of its coordinators), as it does when one does not answer within
 * ttl/3.  A grant of a lower term than the highest granted is a deposed
 * leader's: ignored.  Every grant says what this host owns; the owned op
 * reconciles (run exactly those, at those epochs; discard any other
 * protected copy).
 *
 * The transport and the instances are ops, so the rules are tested with
 * a fake clock and a fake coordinator (tests/unit/agent/test-ha.c). */
#ifndef TERN_AGENT_HA_H
#define TERN_AGENT_HA_H

#include <stdint.h>

#include <uv.h>

#include "agent/lease.h"
#include "daemon/msg.h"

struct ha_agent;

struct ha_agent_ops {
	int	(*send)(void *ctx, const char *host, const Envelope *,
		    char **cause);
	/* The lease is gone or about to end: stop every protected instance
	 * now (freeze then kill; pause then destroy).  Called once per loss;
	 * again only after a later grant was lost too. */
	void	(*fence)(void *ctx, const char *why);
	/* A grant: what this host owns now. */
	void	(*owned)(void *ctx, const Tern__LeaseGrant *);
	/* Optional: fill r->held (n_held) with the protected instances held
	 * here; held_free undoes it after the send. */
	void	(*held)(void *ctx, Tern__LeaseRenew *r);
	void	(*held_free)(void *ctx, Tern__LeaseRenew *r);
	/* CLOCK_MONOTONIC ms; NULL: now_ms(). */
	uint64_t (*clock)(void *ctx);
	/* Optional: remember the lease's stop time (CLOCK_MONOTONIC ms) for
	 * a ternd restarted on the same boot (conf.resume_stop_at).  No
	 * fsync needed: a host crash starts a new boot and a new clock. */
	void	(*save)(void *ctx, uint64_t stop_at_ms);
};

struct ha_agent_conf {
	/* Host names, "h3" or "h3,h4" (checked by conf.c): renewals go to
	 * the one that granted the last lease; one that does not lead, or
	 * does not answer, makes the agent turn to the next. */
	const char	*coordinator;
	uint32_t	 ttl_ms;	/* renew every third of it */
	uint32_t	 margin_ms;
	uint64_t	 boot_id;
	/* The previous ternd's lease stop time on this boot (0: none):
	 * protected instances it left running may run until then; without
	 * it they are fenced at once until a grant comes. */
	uint64_t	 resume_stop_at;
};

struct ha_agent *ha_agent_new(uv_loop_t *, const struct ha_agent_conf *,
		    const struct ha_agent_ops *, void *ctx);
/* Register (a renewal with join set) now, then renew on the timer; fence
 * now unless the previous lease (resume_stop_at) still runs. */
void		 ha_agent_start(struct ha_agent *);
/* Renew now (the timer calls it). */
void		 ha_agent_renew(struct ha_agent *);
/* Fence if the lease ended (the timer calls it). */
void		 ha_agent_check(struct ha_agent *);
/* A lease message from peer (1 if it was one; from a host that is none
 * of the coordinators it is ignored). */
int		 ha_agent_on_msg(struct ha_agent *, const char *peer,
		    const Envelope *);
/* 1 while protected instances may run (and start, and resume). */
int		 ha_agent_valid(const struct ha_agent *);
/* 1 if an instance the coordinator gave this host at epoch may run now:
 * it has an epoch (the coordinator knows it) and the lease is valid
 * (before its deadline minus the margin).  Asked at the moment a
 * protected instance turns running, whatever made it run. */
int		 ha_agent_may_run(const struct ha_agent *, uint64_t epoch);
/* A count that moves whenever this host's lease ends or is refused (it
 * fences) and whenever a grant makes a lapsed lease valid again.  While
 * it stays the same and the lease is valid, the lease never lapsed, so
 * the coordinator cannot have failed this host over meanwhile. */
uint64_t	 ha_agent_lapses(const struct ha_agent *);
/* When the protected instances must stop (now_ms()), 0 if the lease is
 * not valid now. */
uint64_t	 ha_agent_stop_at(const struct ha_agent *);
/* "lease from h3, valid for 1234 ms", "no lease from h3: ...", for
 * status. */
char		*ha_agent_describe(const struct ha_agent *);
/* The coordinator renewals go to now (ternctl ha ops ask it too). */
const char	*ha_agent_coordinator(const struct ha_agent *);
/* 1 if host is one of the coordinators this agent lists. */
int		 ha_agent_is_coordinator(const struct ha_agent *, const char *host);
void		 ha_agent_free(struct ha_agent *);

#endif
