/* ternctl create NAME --kind container --spec FILE: define an instance on
 * the local host from a spec file (see docs/container-spec.md);
 * ternctl create NAME --kind vm --xml FILE: from a libvirt domain XML
 * (docs/vms.md).  --ha restart|checkpoint protects it (docs/ha.md). */
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
ctl_parse_ha(const char *s, Tern__HaPolicy *ha)
{
	if (strcmp(s, "none") == 0)
		*ha = TERN__HA_POLICY__HA_NONE;
	else if (strcmp(s, "restart") == 0)
		*ha = TERN__HA_POLICY__HA_RESTART;
	else if (strcmp(s, "checkpoint") == 0)
		*ha = TERN__HA_POLICY__HA_CHECKPOINT;
	else {
		ctl_error("--ha %s: use none, restart (started again from its "
		    "spec elsewhere) or checkpoint (restored from its newest "
		    "replica)", s);
		return -1;
	}
	return 0;
}

static int
ctl_parse_kind(const char *s, Tern__InstanceKind *kind)
{
	int	k;

	if ((k = msg_kind_parse(s)) == -1) {
		ctl_error("--kind %s: use container (--spec FILE) or vm (--xml "
		    "FILE)", s);
		return -1;
	}
	*kind = (Tern__InstanceKind)k;
	return 0;
}

static int
ctl_parse_priority(const char *s, int32_t *prio)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < -1000 ||
	    v > 1000) {
		ctl_error("--priority %s: an integer from -1000 to 1000 (higher "
		    "fails over first)", s);
		return -1;
	}
	*prio = (int32_t)v;
	return 0;
}

/* --interval MS, --replicas N: bounds the ternd checks again. */
static int
ctl_parse_u32(const char *opt, const char *s, unsigned long lo,
    unsigned long hi, uint32_t *out)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo ||
	    v > hi) {
		ctl_error("--%s %s: an integer from %lu to %lu", opt, s, lo, hi);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int
cmd_create_exec(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "spec", required_argument, NULL, 's' },
		{ "xml", required_argument, NULL, 'x' },
		{ "ha", required_argument, NULL, 'H' },
		{ "priority", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "replicas", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	Envelope			 req, *reply;
	Tern__InstanceCreateRequest	 cr = TERN__INSTANCE_CREATE_REQUEST__INIT;
	const char			*spec = NULL;
	char				 abs[PATH_MAX], *text = NULL, *dir;
	FILE				*fp;
	size_t				 n;
	int				 ch, rc = CTL_EXIT_OK;

	cr.kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
	while ((ch = getopt_long(argc, argv, "k:s:x:H:p:i:r:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'H':
			if (ctl_parse_ha(optarg, &cr.ha) == -1)
				return CTL_EXIT_USAGE;
			cr.has_ha = 1;
			break;
		case 'p':
			if (ctl_parse_priority(optarg, &cr.priority) == -1)
				return CTL_EXIT_USAGE;
			cr.has_priority = 1;
			break;
		case 'i':
			if (ctl_parse_u32("interval", optarg, 500, 3600000,
			    &cr.interval_ms) == -1)
				return CTL_EXIT_USAGE;
			cr.has_interval_ms = 1;
			break;
		case 'r':
			if (ctl_parse_u32("replicas", optarg, 1, 8,
			    &cr.replicas) == -1)
				return CTL_EXIT_USAGE;
			cr.has_replicas = 1;
			break;
		case 'k':
			if (ctl_parse_kind(optarg, &cr.kind) == -1)
				return CTL_EXIT_USAGE;
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
	if ((cr.has_interval_ms || cr.has_replicas) &&
	    (!cr.has_ha || cr.ha != TERN__HA_POLICY__HA_CHECKPOINT)) {
		ctl_error("--interval and --replicas go with --ha checkpoint");
		return CTL_EXIT_USAGE;
	}
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
	    "create NAME --kind vm --xml FILE  [--ha none|restart|checkpoint "
	    "[--priority N] [--interval MS] [--replicas N]]",
	"define an instance on this host", cmd_create_exec
};
