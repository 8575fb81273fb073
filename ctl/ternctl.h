/* ternctl: the operator's command line.  One table of subcommands
 * (ternctl.c); each lives in its own cmd-NAME.c and exports one
 * `const struct ctl_cmd cmd_NAME_entry`. */
#ifndef TERN_CTL_TERNCTL_H
#define TERN_CTL_TERNCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon/ctlclient.h"
#include "daemon/msg.h"

/* Exit codes, documented in ternctl --help. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILED = 1,	/* the operation was refused or failed */
	CTL_EXIT_USAGE = 2,	/* bad command line */
	CTL_EXIT_UNREACHABLE = 3,	/* cannot reach the local ternd */
};

struct ctl_env {
	const char	*socket_path;	/* -s, control socket of the local ternd */
	int		 json;		/* --json */
};

struct ctl_cmd {
	const char	*name;
	const char	*usage;		/* "ca init --dir DIR [--days N]" */
	const char	*summary;
	/* argv[0] is the subcommand name; returns an enum ctl_exit. */
	int		(*exec)(const struct ctl_env *, int argc, char **argv);
};

extern const struct ctl_cmd cmd_status_entry;
extern const struct ctl_cmd cmd_hosts_entry;
extern const struct ctl_cmd cmd_host_entry;
extern const struct ctl_cmd cmd_ping_entry;
extern const struct ctl_cmd cmd_ca_entry;
extern const struct ctl_cmd cmd_cert_entry;
extern const struct ctl_cmd cmd_stream_test_entry;
extern const struct ctl_cmd cmd_create_entry;
extern const struct ctl_cmd cmd_start_entry;
extern const struct ctl_cmd cmd_stop_entry;
extern const struct ctl_cmd cmd_destroy_entry;
extern const struct ctl_cmd cmd_list_entry;
extern const struct ctl_cmd cmd_checkpoint_entry;
extern const struct ctl_cmd cmd_restore_entry;
extern const struct ctl_cmd cmd_migrate_entry;
extern const struct ctl_cmd cmd_ha_entry;
extern const struct ctl_cmd cmd_failovers_entry;

/* Print "ternctl: <message>" to stderr. */
void	ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a usage error for cmd and return CTL_EXIT_USAGE. */
int	ctl_usage(const struct ctl_cmd *cmd);

/* output.c: JSON string escaping for --json output; "1.5s" style ages. */
void	ctl_json_string(FILE *, const char *);
void	ctl_format_age(char *, size_t, uint64_t ms);
/* Print a Done reply (its text, or {"ok":true,"text":...}); an other
 * reply is an error.  Returns an enum ctl_exit. */
int	ctl_print_done(const struct ctl_env *, const Envelope *);

/* request.c: one request to the local ternd and its reply, or NULL with
 * the error printed and *exit_code set (CTL_EXIT_UNREACHABLE when ternd
 * cannot be reached, CTL_EXIT_FAILED when it refused). */
Envelope	*ctl_request(const struct ctl_env *, Envelope *, int timeout_ms,
		    int *exit_code);
/* The same, with the progress reports that come before the reply. */
Envelope	*ctl_request_progress(const struct ctl_env *, Envelope *,
		    int timeout_ms, ctlclient_progress_fn, void *arg,
		    int *exit_code);

#endif
