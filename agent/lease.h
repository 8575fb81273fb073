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

/* A copy held paused for the store's word while the lease may lapse (a
 * VM whose move was undone, back on its source).  A lapse may have let
 * the coordinator fail the host over, so after one only a grant since
 * the last lapse that lists the copy here at its epoch says it is still
 * ours; a grant at another epoch says a failover happened and what ran
 * since is newer than this copy's memory. */
struct held_copy {
	uint64_t	 epoch;		/* it may run at this epoch only */
	uint64_t	 lapses0;	/* the host's lapses when it was set
					 * aside; UINT64_MAX: no valid lease
					 * then */
	uint64_t	 listed_lapses;	/* lapses when a grant last listed it
					 * here at epoch; UINT64_MAX: none */
	uint64_t	 until;		/* it waits no longer than this */
};

enum held_verdict {
	HELD_RESUME,
	HELD_WAIT,		/* paused, never running, until .until */
	HELD_FENCE_EPOCH,	/* a grant lists it at another epoch */
	HELD_FENCE_NO_LEASE,	/* .until passed without a valid lease */
	HELD_FENCE_NO_GRANT,	/* .until passed with one, but no grant
				 * since the lapse listed it */
};

/* What the held copy does now, given the epoch this host's grants last
 * listed it at, whether the lease is valid, and the host's lapses so far
 * (ha_agent_lapses). */
enum held_verdict held_copy_verdict(const struct held_copy *,
	    uint64_t listed_epoch, int valid, uint64_t lapses, uint64_t now);

#endif
