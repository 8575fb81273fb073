/* The drain's choice of target: a pure function, tested alone. */
#include "config.h"

#include <string.h>

#include "agent/drain-target.h"

/* 1 if a is a better target than b. */
static int
drain_better(const struct drain_host *a, const struct drain_host *b)
{
	if (a->instances != b->instances)
		return a->instances < b->instances;
	if (a->free_mib != 0 && b->free_mib != 0 && a->free_mib != b->free_mib)
		return a->free_mib > b->free_mib;
	return strcmp(a->name, b->name) < 0;
}

int
drain_pick_target(const struct drain_host *hosts, size_t n)
{
	size_t	i;
	int	best = -1;

	for (i = 0; i < n; i++) {
		if (!hosts[i].up || hosts[i].drained)
			continue;
		if (best == -1 || drain_better(&hosts[i], &hosts[best]))
			best = (int)i;
	}
	return best;
}
