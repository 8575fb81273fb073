/* Facts about this agent that several parts report. */
#include "config.h"

#include "agent/agent.h"

const char **
agent_capabilities(const struct agent *a, size_t *n)
{
	static const char	*caps[8];
	size_t			 i = 0;

	caps[i++] = "stream.v1";
	/* Takes data frames without a payload CRC over TLS (daemon/frame.h). */
	caps[i++] = "frame.unchecked-tls";
	if (a->criu.usable) {
		caps[i++] = "criu";
		if (a->criu.lazy_pages)
			caps[i++] = "criu.lazy-pages";
		if (a->criu.mem_track)
			caps[i++] = "criu.mem-track";
	}
	caps[i] = NULL;
	*n = i;
	return caps;
}
