/* The ternd configuration: a pure parser from text to a struct conf (so it
 * can be unit-tested and fuzzed) and a loader that reads a file into it.
 *
 * File format (in the style of libvirtd.conf):
 *
 *	# comment, from '#' (outside a quoted string) to the end of the line
 *	host_name = "alpha"
 *	listen_port = 7480
 *	max_frame_size = 1M
 *	peers = [ "beta@192.0.2.2:7480",	# comments allowed here too
 *		  "gamma@gamma.example:7480" ]
 *
 * - One "name = value" per line; blank lines are ignored.
 * - Option names are the ones listed by conf_print_options (ternd
 *   --help-config); an unknown name, or a name given twice, is an error.
 * - A value is one of:
 *	integer	decimal digits, e.g. 7480;
 *	size	decimal digits with an optional suffix k/K, m/M or g/G
 *		(powers of 1024), e.g. 65536, 64K, 8M, 1G;
 *	string	double-quoted, on one line; inside it the only escapes are
 *		\" and \\ (any other backslash is an error);
 *	list	[ "a", "b" ]: quoted strings separated by commas, a trailing
 *		comma allowed; a list may span lines and hold comments;
 *	boolean	true or false, unquoted.
 * - A NUL byte anywhere in the text is an error.
 *
 * Every error is one message, "FILE:LINE: reason", where LINE is the line
 * of the offending token (for an unterminated string or list, the line
 * where it started), and the reason names the option and what is allowed,
 * e.g. "ternd.conf:7: listen_port: 70000 is out of range (1..65535)".  A
 * missing required option is reported as "FILE: host_name is required".
 */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <stddef.h>
#include <stdio.h>

/* At most this many entries in "peers". */
#define CONF_MAX_PEERS		4096
/* coordinator = "h3,h4,...": at most this many. */
#define CONF_MAX_COORDINATORS	8
/* conf_load refuses files larger than this. */
#define CONF_MAX_FILE_SIZE	(1024 * 1024)

struct conf_peer {
	char	*name;		/* valid as a host_name */
	char	*address;	/* IPv4 literal or host name */
	int	 port;		/* 1..65535 */
};

struct conf {
	char			*host_name;
	char			*listen_address;
	int			 listen_port;

	struct conf_peer	*peers;
	size_t			 npeers;

	char			*ca_file;
	char			*cert_file;
	char			*key_file;
	char			*state_dir;
	char			*run_dir;	/* ternd.sock, ternd.pid */
	char			*control_group;
	char			*criu_path;	/* "" = no container support */
	char			*libvirt_uri;	/* "" = no VM support */
	char			*libvirt_socket;	/* where peers' migrations
						 * reach our libvirtd */
	char			*log_filters;	/* not checked here: ternd does */

	size_t			 max_frame_size;
	size_t			 stream_window;
	size_t			 send_buffer_max;

	int			 heartbeat_interval_ms;
	int			 peer_timeout_ms;
	int			 reconnect_max_ms;
	int			 migration_timeout_ms;
	int			 criu_timeout_ms;
	int			 thread_pool_size;	/* fixed at start */
	int			 max_vm_migrations;
	int			 drain_parallel;	/* ternctl host drain */

	/* Trust boundaries (docs/security.md). */
	int			 max_pending_handshakes;
	int			 handshake_timeout_ms;
	int			 max_incoming_vm_migrations;
	int			 accept_test_streams;	/* the "sink" kind */
	int			 stopcopy_resume_early;
	int			 checkpoint_staging_mb;
	char			*revoked_file;	/* "" = none */
	char			**rootfs_allowed_prefixes;	/* absolute */
	size_t			 nrootfs_allowed_prefixes;

	/* High availability (docs/ha.md). */
	char			*role;		/* agent, coordinator, both */
	char			*coordinator;	/* "" = not protected; else a
						 * list "h3,h4" as given */
	char			**coordinators;	/* it, split */
	size_t			 ncoordinators;
	int			 leader_ttl_ms;	/* etcd leadership (0 resolved) */
	int			 lease_ttl_ms;
	int			 lease_margin_ms;
	char			*store;		/* journal, etcd */
	char			*store_dir;	/* "" = state_dir/coord */
	char			*etcd_endpoints;
	char			*fence_command;	/* "" = none */
	int			 fence_timeout_ms;
	int			 restore_wait_ms;
};

/* Parse len bytes of text (need not be NUL-terminated); filename is used
 * only in messages.  Returns a struct conf the caller frees with conf_free,
 * or NULL with *cause set (the caller frees *cause). */
struct conf	*conf_parse(const char *text, size_t len, const char *filename,
		     char **cause);

/* Read the file at path (at most CONF_MAX_FILE_SIZE bytes) and parse it.
 * Errors name the path: "/x/ternd.conf: No such file or directory". */
struct conf	*conf_load(const char *path, char **cause);

/* Free a struct conf; NULL is accepted. */
void		 conf_free(struct conf *);

/* Print the option table (name, type, default, allowed values, help) to
 * fp, for "ternd --help-config". */
void		 conf_print_options(FILE *fp);

#endif
