/* ternctl: the operator's command line for tern. */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ternctl.h"
#include "daemon/sanitize.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

static const struct ctl_cmd *const ctl_cmds[] = {
	&cmd_status_entry,
	&cmd_hosts_entry,
	&cmd_host_entry,
	&cmd_ping_entry,
	&cmd_stream_test_entry,
	&cmd_create_entry,
	&cmd_start_entry,
	&cmd_stop_entry,
	&cmd_destroy_entry,
	&cmd_list_entry,
	&cmd_checkpoint_entry,
	&cmd_restore_entry,
	&cmd_migrate_entry,
	&cmd_ha_entry,
	&cmd_failovers_entry,
	&cmd_ca_entry,
	&cmd_cert_entry,
};
#define CTL_NCMDS (sizeof ctl_cmds / sizeof ctl_cmds[0])

void
ctl_error(const char *fmt, ...)
{
	va_list	 ap;
	char	 raw[2048], msg[4096];

	/* Causes quote what ternd and its peers said: one line, no escapes
	 * reach the terminal. */
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	sanitize_buf(msg, sizeof msg, raw, strlen(raw));
	fprintf(stderr, "ternctl: %s\n", msg);
}

int
ctl_usage(const struct ctl_cmd *cmd)
{
	fprintf(stderr, "usage: ternctl [-s socket] [--json] %s\n", cmd->usage);
	return CTL_EXIT_USAGE;
}

static void
usage(FILE *fp)
{
	size_t	i;

	fprintf(fp, "usage: ternctl [-s socket] [--json] command [args]\n\n"
	    "commands:\n");
	for (i = 0; i < CTL_NCMDS; i++)
		fprintf(fp, "  %-44s %s\n", ctl_cmds[i]->usage,
		    ctl_cmds[i]->summary);
	fprintf(fp, "\noptions:\n"
	    "  -s, --socket PATH   control socket of the local ternd\n"
	    "                      (default $TERN_SOCKET or %s/tern/ternd.sock)\n"
	    "  --json              machine-readable output\n"
	    "\nexit status: 0 ok, 1 failed, 2 usage error, 3 ternd unreachable\n",
	    RUNSTATEDIR);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl_env	 env;
	char		*dflt = NULL;
	size_t		 i;
	int		 ch, rc;

	memset(&env, 0, sizeof env);
	/* '+': stop at the command; its own options are its own. */
	while ((ch = getopt_long(argc, argv, "+s:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			env.socket_path = optarg;
			break;
		case 'j':
			env.json = 1;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (env.socket_path == NULL)
		env.socket_path = getenv("TERN_SOCKET");
	if (env.socket_path == NULL) {
		if (asprintf(&dflt, "%s/tern/ternd.sock", RUNSTATEDIR) < 0)
			return CTL_EXIT_FAILED;
		env.socket_path = dflt;
	}
	argc -= optind;
	argv += optind;
	/* --json is accepted after the command too ("ternctl hosts --json"). */
	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			env.json = 1;
			memmove(&argv[i], &argv[i + 1],
			    (size_t)(argc - (int)i) * sizeof *argv);
			argc--;
			i--;
		}
	}
	for (i = 0; i < CTL_NCMDS; i++) {
		if (strcmp(argv[0], ctl_cmds[i]->name) == 0) {
			/* Commands parse their own options from argv[0]. */
			optind = 0;
			rc = ctl_cmds[i]->exec(&env, argc, argv);
			free(dflt);
			return rc;
		}
	}
	ctl_error("unknown command \"%s\" (ternctl --help lists them)", argv[0]);
	free(dflt);
	return CTL_EXIT_USAGE;
}
