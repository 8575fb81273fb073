/* The drain's choice of target (agent/drain.h): a pure function. */
#ifndef TERN_AGENT_DRAIN_TARGET_H
#define TERN_AGENT_DRAIN_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* A candidate target, as the drain sees it. */
struct drain_host {
	const char	*name;
	int		 up;		/* a link to it is up */
	int		 drained;
	uint32_t	 instances;	/* it holds, plus what we sent it */
	uint64_t	 free_mib;	/* 0: not known */
};
/* The index of the host to move the next instance to: up, not drained,
 * the fewest instances (ties: the most free memory when both are known,
 * then the name that sorts first); -1 if none may take it. */
int	drain_pick_target(const struct drain_host *, size_t n);

#endif
