/* ternctl checkpoint NAME [--leave-running] and ternctl restore NAME
 * [--generation N]: checkpoints on the local host. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl/ternctl.h"

static int
cmd_checkpoint_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "leave-running", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope			 req, *reply;
	Tern__CheckpointRequest		 cr = TERN__CHECKPOINT_REQUEST__INIT;
	const Tern__CheckpointReply	*r;
	int				 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "l", longopts, NULL)) != -1) {
		if (ch != 'l')
			return ctl_usage(&cmd_checkpoint_entry);
		cr.has_leave_running = 1;
		cr.leave_running = 1;
	}
	if (optind != argc - 1)
		return ctl_usage(&cmd_checkpoint_entry);
	msg_init(&req, 0);
	cr.name = argv[optind];
	req.body_case = TERN__ENVELOPE__BODY_CHECKPOINT_REQUEST;
	req.checkpoint_request = &cr;
	if ((reply = ctl_request(env, &req, 600000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_CHECKPOINT_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	r = reply->checkpoint_reply;
	if (env->json) {
		printf("{\"name\":");
		ctl_json_string(stdout, r->name);
		printf(",\"generation\":%llu,\"bytes\":%llu,\"duration_ms\":%llu,"
		    "\"frozen_ms\":%llu,\"dir\":", (unsigned long long)r->generation,
		    (unsigned long long)r->bytes,
		    (unsigned long long)r->duration_ms,
		    (unsigned long long)r->frozen_ms);
		ctl_json_string(stdout, r->dir);
		printf("}\n");
	} else
		printf("%s: checkpoint %llu, %.1f MiB in %llu ms (frozen %llu ms)"
		    "\n  %s\n", r->name, (unsigned long long)r->generation,
		    (double)r->bytes / (1 << 20),
		    (unsigned long long)r->duration_ms,
		    (unsigned long long)r->frozen_ms, r->dir);
	msg_free(reply);
	return rc;
}

static int
cmd_restore_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "generation", required_argument, NULL, 'g' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope		 req, *reply;
	Tern__RestoreRequest	 rr = TERN__RESTORE_REQUEST__INIT;
	const Tern__RestoreReply *r;
	char			*end;
	int			 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "g:f", longopts, NULL)) != -1) {
		if (ch == 'f') {
			rr.has_force = rr.force = 1;
			continue;
		}
		if (ch != 'g')
			return ctl_usage(&cmd_restore_entry);
		rr.has_generation = 1;
		rr.generation = strtoull(optarg, &end, 10);
		if (*end != '\0' || rr.generation == 0) {
			ctl_error("--generation: \"%s\" is not a generation number",
			    optarg);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return ctl_usage(&cmd_restore_entry);
	msg_init(&req, 0);
	rr.name = argv[optind];
	req.body_case = TERN__ENVELOPE__BODY_RESTORE_REQUEST;
	req.restore_request = &rr;
	if ((reply = ctl_request(env, &req, 600000, &rc)) == NULL)
		return rc;
	if (reply->body_case != TERN__ENVELOPE__BODY_RESTORE_REPLY) {
		ctl_error("unexpected reply %s", msg_name(reply));
		msg_free(reply);
		return CTL_EXIT_FAILED;
	}
	r = reply->restore_reply;
	if (env->json) {
		printf("{\"name\":");
		ctl_json_string(stdout, r->name);
		printf(",\"generation\":%llu,\"pid\":%u,\"duration_ms\":%llu}\n",
		    (unsigned long long)r->generation, r->pid,
		    (unsigned long long)r->duration_ms);
	} else if (r->pid == 0)		/* a VM: QEMU's pid is libvirt's */
		printf("%s: restored checkpoint %llu in %llu ms\n", r->name,
		    (unsigned long long)r->generation,
		    (unsigned long long)r->duration_ms);
	else
		printf("%s: restored checkpoint %llu as pid %u in %llu ms\n",
		    r->name, (unsigned long long)r->generation, r->pid,
		    (unsigned long long)r->duration_ms);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_checkpoint_entry = {
	"checkpoint", "checkpoint NAME [--leave-running]",
	"checkpoint an instance to this host's disk", cmd_checkpoint_exec
};
const struct ctl_cmd cmd_restore_entry = {
	"restore", "restore NAME [--generation N] [--force]",
	"restore an instance from a verified checkpoint", cmd_restore_exec
};
