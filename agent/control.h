/* Requests from ternctl on the control socket. */
#ifndef TERN_AGENT_CONTROL_H
#define TERN_AGENT_CONTROL_H

#include "agent/agent.h"
#include "daemon/ctlsock.h"

void	control_request(struct ctl_client *, const Envelope *, void *agent);

#endif
