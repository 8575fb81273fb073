/* ternctl ca init: create the cluster CA. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ternctl.h"
#include "daemon/pki.h"
#include "daemon/xmalloc.h"

static int	cmd_ca_exec(const struct ctl_env *, int, char **);

const struct ctl_cmd cmd_ca_entry = {
	.name = "ca",
	.usage = "ca init --dir DIR [--name NAME] [--days N] [--force]",
	.summary = "create the cluster CA (certificate and key)",
	.exec = cmd_ca_exec,
};

/* Report a getopt_long error for "ca SUB" and return CTL_EXIT_USAGE. */
static int
cmd_ca_badopt(const char *sub, int ch, char **argv)
{
	const char	*arg = argv[optind - 1];

	if (ch == ':')
		ctl_error("ca %s: %s needs an argument", sub, arg);
	else if (optopt != 0)
		ctl_error("ca %s: unknown option -%c", sub, optopt);
	else
		ctl_error("ca %s: unknown option %s", sub, arg);
	return ctl_usage(&cmd_ca_entry);
}

static int
cmd_ca_days(const char *s, int *days)
{
	char	*end;
	long	 n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || n < 1 ||
	    n > PKI_DAYS_MAX) {
		ctl_error("--days: \"%s\" is not a number of days from 1 to %d",
		    s, PKI_DAYS_MAX);
		return -1;
	}
	*days = (int)n;
	return 0;
}

static int
cmd_ca_init(const struct ctl_env *env, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "dir",	required_argument,	NULL,	'd' },
		{ "name",	required_argument,	NULL,	'n' },
		{ "days",	required_argument,	NULL,	'D' },
		{ "force",	no_argument,		NULL,	'f' },
		{ "json",	no_argument,		NULL,	'j' },
		{ NULL,		0,			NULL,	0 }
	};
	const char			*dir = NULL, *name = NULL;
	char				*cause = NULL, *cert_path = NULL;
	char				*key_path = NULL;
	int				 days = PKI_CA_DAYS, force = 0;
	int				 json = env->json, ch, rc;

	/* 0, not 1: glibc and musl then start afresh, whatever state the
	 * parse of ternctl's own options left behind. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'D':
			if (cmd_ca_days(optarg, &days) != 0)
				return ctl_usage(&cmd_ca_entry);
			break;
		case 'f':
			force = 1;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return cmd_ca_badopt("init", ch, argv);
		}
	}
	if (optind < argc) {
		ctl_error("ca init: unexpected argument \"%s\"", argv[optind]);
		return ctl_usage(&cmd_ca_entry);
	}
	if (dir == NULL || *dir == '\0') {
		ctl_error("ca init: --dir is required (where to keep the CA, "
		    "e.g. /etc/tern/pki)");
		return ctl_usage(&cmd_ca_entry);
	}

	cert_path = pki_path(dir, PKI_CA_CERT);
	key_path = pki_path(dir, PKI_CA_KEY);
	if (pki_ca_init(dir, name, days, force, &cause) != 0) {
		if (!force && access(key_path, F_OK) == 0)
			ctl_error("cannot create the CA: %s; use --force to "
			    "replace it (every certificate it issued will no "
			    "longer be trusted)", cause);
		else
			ctl_error("cannot create the CA: %s", cause);
		rc = CTL_EXIT_FAILED;
		goto out;
	}

	if (json) {
		fputs("{\"ca\":", stdout);
		ctl_json_string(stdout, cert_path);
		fputs("}\n", stdout);
	} else
		printf("CA created: %s\n", cert_path);
	rc = CTL_EXIT_OK;
out:
	free(key_path);
	free(cert_path);
	free(cause);
	return rc;
}

static int
cmd_ca_exec(const struct ctl_env *env, int argc, char **argv)
{
	if (argc < 2) {
		ctl_error("ca: missing subcommand (init)");
		return ctl_usage(&cmd_ca_entry);
	}
	if (strcmp(argv[1], "init") == 0)
		return cmd_ca_init(env, argc - 1, argv + 1);
	ctl_error("ca: unknown subcommand \"%s\" (known: init)", argv[1]);
	return ctl_usage(&cmd_ca_entry);
}
