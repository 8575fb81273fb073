/* ternctl start|stop|destroy NAME: one instance's lifecycle. */
#include "config.h"

#include <stdio.h>

#include "ctl/ternctl.h"

static int
lifecycle(const struct ctl_env *env, int argc, char **argv,
    const struct ctl_cmd *cmd, Tern__InstanceActionRequest__Action action,
    int timeout_ms)
{
	Envelope			 req, *reply;
	Tern__InstanceActionRequest	 ar = TERN__INSTANCE_ACTION_REQUEST__INIT;
	int				 rc = CTL_EXIT_OK;

	if (argc != 2)
		return ctl_usage(cmd);
	msg_init(&req, 0);
	ar.name = argv[1];
	ar.action = action;
	req.body_case = TERN__ENVELOPE__BODY_INSTANCE_ACTION_REQUEST;
	req.instance_action_request = &ar;
	if ((reply = ctl_request(env, &req, timeout_ms, &rc)) == NULL)
		return rc;
	rc = ctl_print_done(env, reply);
	msg_free(reply);
	return rc;
}

static int
cmd_start_exec(const struct ctl_env *env, int argc, char **argv)
{
	return lifecycle(env, argc, argv, &cmd_start_entry,
	    TERN__INSTANCE_ACTION_REQUEST__ACTION__START, 30000);
}

static int
cmd_stop_exec(const struct ctl_env *env, int argc, char **argv)
{
	return lifecycle(env, argc, argv, &cmd_stop_entry,
	    TERN__INSTANCE_ACTION_REQUEST__ACTION__STOP, 60000);
}

static int
cmd_destroy_exec(const struct ctl_env *env, int argc, char **argv)
{
	return lifecycle(env, argc, argv, &cmd_destroy_entry,
	    TERN__INSTANCE_ACTION_REQUEST__ACTION__DESTROY, 60000);
}

const struct ctl_cmd cmd_start_entry = {
	"start", "start NAME", "start an instance", cmd_start_exec
};
const struct ctl_cmd cmd_stop_entry = {
	"stop", "stop NAME", "stop an instance (SIGTERM, then SIGKILL)",
	cmd_stop_exec
};
const struct ctl_cmd cmd_destroy_entry = {
	"destroy", "destroy NAME",
	"stop and forget an instance and its checkpoints", cmd_destroy_exec
};
