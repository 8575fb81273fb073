/* An agent's lease on its right to run instances: the rules of invariant
 * 1 on the host's side, as pure functions of CLOCK_MONOTONIC milliseconds
 * (tested with a fake clock; agent/ owns the timers and the stopping).
 *
 * The lease is counted from the moment the agent SENT the renewal the
 * coordinator then granted, never from when the grant came back: the
 * coordinator counts from its grant, which is later, so the agent's
 * deadline always falls first.  Before deadline - margin the agent stops
 * every protected instance unless a later renewal was granted; it starts
 * or resumes one only while the lease is valid. */
#ifndef TERN_AGENT_LEASE_H
#define TERN_AGENT_LEASE_H

#include <stdint.h>

struct lease {
	uint32_t	 margin_ms;	/* stop this long before the end */
	uint64_t	 deadline_ms;	/* 0: no lease */
	uint64_t	 granted_sent_ms;	/* the renewal it came from */
};

void	lease_init(struct lease *, uint32_t margin_ms);
/* A renewal sent at sent_ms was granted for ttl_ms.  A grant for an
 * older renewal than one already counted changes nothing (answers may
 * come out of order over a reconnect). */
void	lease_granted(struct lease *, uint64_t sent_ms, uint32_t ttl_ms);
/* The coordinator refused, or said the host failed: no lease at all. */
void	lease_revoke(struct lease *);
/* 1 while instances may run: before deadline - margin. */
int	lease_valid(const struct lease *, uint64_t now);
/* When protected instances must be stopped (deadline - margin), or 0 if
 * there is no lease (stop now). */
uint64_t lease_stop_at(const struct lease *);

#endif
