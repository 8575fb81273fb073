/* One request to the local ternd over the control socket. */
#include "config.h"

#include <stdlib.h>

#include "ctl/ternctl.h"
#include "daemon/ctlclient.h"

Envelope *
ctl_request(const struct ctl_env *env, Envelope *req, int timeout_ms,
    int *exit_code)
{
	return ctl_request_progress(env, req, timeout_ms, NULL, NULL,
	    exit_code);
}

Envelope *
ctl_request_progress(const struct ctl_env *env, Envelope *req,
    int timeout_ms, ctlclient_progress_fn progress, void *arg,
    int *exit_code)
{
	struct ctlclient	*cc;
	Envelope		*reply;
	char			*cause = NULL;

	if ((cc = ctlclient_connect(env->socket_path, &cause)) == NULL) {
		ctl_error("%s", cause);
		free(cause);
		*exit_code = CTL_EXIT_UNREACHABLE;
		return NULL;
	}
	if ((reply = ctlclient_call(cc, req, timeout_ms, progress, arg,
	    &cause)) == NULL) {
		ctl_error("%s", cause);
		free(cause);
		*exit_code = CTL_EXIT_FAILED;
	}
	ctlclient_close(cc);
	return reply;
}
