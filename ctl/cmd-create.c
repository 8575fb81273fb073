/* ternctl create NAME --kind container --spec FILE: define an instance on
 * the local host from a spec file (see docs/container-spec.md);
 * ternctl create NAME --kind vm --xml FILE: from a libvirt domain XML
 * (docs/vms.md). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ternctl.h"

#define CREATE_SPEC_MAX	(1024 * 1024)

static int
cmd_create_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "spec", required_argument, NULL, 's' },
		{ "xml", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope			 req, *reply;
	Tern__InstanceCreateRequest	 cr = TERN__INSTANCE_CREATE_REQUEST__INIT;
	const char			*kind = "container", *spec = NULL;
	char				 abs[PATH_MAX], *text = NULL, *dir;
	FILE				*fp;
	size_t				 n;
	int				 ch, rc = CTL_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "k:s:x:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			kind = optarg;
			break;
		case 's':
		case 'x':
			spec = optarg;
			break;
		default:
			return ctl_usage(&cmd_create_entry);
		}
	}
	if (optind != argc - 1 || spec == NULL)
		return ctl_usage(&cmd_create_entry);
	if (realpath(spec, abs) == NULL) {
		ctl_error("%s: %s", spec, strerror(errno));
		return CTL_EXIT_FAILED;
	}
	if ((fp = fopen(abs, "r")) == NULL) {
		ctl_error("%s: %s", abs, strerror(errno));
		return CTL_EXIT_FAILED;
	}
	text = calloc(1, CREATE_SPEC_MAX + 1);
	n = text != NULL ? fread(text, 1, CREATE_SPEC_MAX + 1, fp) : 0;
	fclose(fp);
	if (text == NULL || n > CREATE_SPEC_MAX) {
		ctl_error("%s: larger than %d bytes", abs, CREATE_SPEC_MAX);
		free(text);
		return CTL_EXIT_FAILED;
	}
	text[n] = '\0';
	dir = dirname(abs);
	msg_init(&req, 0);
	cr.name = argv[optind];
	cr.kind = (char *)kind;
	cr.spec = text;
	cr.spec_dir = dir;
	req.body_case = TERN__ENVELOPE__BODY_INSTANCE_CREATE_REQUEST;
	req.instance_create_request = &cr;
	reply = ctl_request(env, &req, 30000, &rc);
	free(text);
	if (reply == NULL)
		return rc;
	rc = ctl_print_done(env, reply);
	msg_free(reply);
	return rc;
}

const struct ctl_cmd cmd_create_entry = {
	"create", "create NAME [--kind container] --spec FILE | "
	    "create NAME --kind vm --xml FILE",
	"define an instance on this host", cmd_create_exec
};
