/* One request to the local ternd over the control socket. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "ctl/ternctl.h"
#include "daemon/ctlclient.h"

/* Everything ternd sends may quote a peer, a container or CRIU: every string
 * of a reply or a progress report is escaped before a subcommand can print
 * it (msg_sanitize). */
struct ctl_progress {
	ctlclient_progress_fn	 fn;
	void			*arg;
};

static void
ctl_request_progress_cb(const Envelope *env, void *arg)
{
	struct ctl_progress	*p = arg;

	/* The report is ctlclient's to free after this call and nobody reads
	 * it but us: escaping it in place is safe. */
	msg_sanitize((Envelope *)(uintptr_t)env, 1);
	p->fn(env, p->arg);
}

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
	struct ctl_progress	 p = { progress, arg };
	Envelope		*reply;
	char			*cause = NULL;

	if ((cc = ctlclient_connect(env->socket_path, &cause)) == NULL) {
		ctl_error("%s", cause);
		free(cause);
		*exit_code = CTL_EXIT_UNREACHABLE;
		return NULL;
	}
	if ((reply = ctlclient_call(cc, req, timeout_ms, progress != NULL ?
	    ctl_request_progress_cb : NULL, &p, &cause)) == NULL) {
		ctl_error("%s", cause);
		free(cause);
		*exit_code = CTL_EXIT_FAILED;
	} else
		msg_sanitize(reply, 1);
	ctlclient_close(cc);
	return reply;
}
