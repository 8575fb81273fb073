#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/conf.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define CONF_KIB		1024ULL
#define CONF_MIB		(1024ULL * CONF_KIB)
#define CONF_GIB		(1024ULL * CONF_MIB)

/* Numbers larger than this are out of range for every option. */
#define CONF_NUMBER_CAP		(1ULL << 50)
/* Longest piece of input quoted back in a message. */
#define CONF_QUOTE_MAX		64
/* leader_ttl_ms = 0: lease_ttl_ms, but never less (conf_check_ha). */
#define LEADER_TTL_AUTO_MIN_MS	5000

#define CONF_NAME_RULE \
	"1..63 characters of a-z, 0-9 and '-', not starting or ending with '-'"

enum conf_type {
	CONF_INT,
	CONF_SIZE,
	CONF_STRING,
	CONF_LIST,
	CONF_BOOL,
};

struct conf_option {
	const char		*name;
	enum conf_type		 type;
	size_t			 offset;
	int			 required;
	const char		*def_string;	/* CONF_STRING */
	unsigned long long	 def_number;	/* CONF_INT, CONF_SIZE, CONF_BOOL */
	unsigned long long	 min;
	unsigned long long	 max;
	/* CONF_STRING: 0 if allowed, else -1 and *reason (caller frees). */
	int			(*check)(const char *, char **);
	const char		*rule;		/* what is allowed, in words */
	const char		*help;
	const char *const	*def_list;	/* CONF_LIST, NULL-terminated */
};

static int	conf_check_host_name(const char *, char **);
static int	conf_check_nonempty(const char *, char **);
static int	conf_check_absolute(const char *, char **);
static int	conf_check_role(const char *, char **);
static int	conf_check_coordinator(const char *, char **);
static int	conf_check_store(const char *, char **);

#ifndef CRIU_DEFAULT_PATH
#define CRIU_DEFAULT_PATH "/opt/tern/criu/bin/criu"
#endif

#define CONF_FIELD(f)	offsetof(struct conf, f)

/* Where container root filesystems may be (issue 9, docs/security.md). */
static const char *const conf_def_rootfs_prefixes[] = {
	"/srv", LOCALSTATEDIR "/lib/tern/rootfs", NULL
};

static const struct conf_option conf_options[] = {
	{ .name = "host_name", .type = CONF_STRING,
	  .offset = CONF_FIELD(host_name), .required = 1,
	  .check = conf_check_host_name, .rule = CONF_NAME_RULE,
	  .help = "This host's name: its identity in its certificate." },
	{ .name = "listen_address", .type = CONF_STRING,
	  .offset = CONF_FIELD(listen_address), .def_string = "0.0.0.0",
	  .check = conf_check_nonempty, .rule = "non-empty",
	  .help = "Address to listen on for peer connections." },
	{ .name = "listen_port", .type = CONF_INT,
	  .offset = CONF_FIELD(listen_port), .def_number = 7480,
	  .min = 1, .max = 65535,
	  .help = "TCP port to listen on for peer connections." },
	{ .name = "peers", .type = CONF_LIST,
	  .offset = CONF_FIELD(peers),
	  .rule = "each \"NAME@ADDRESS:PORT\" (NAME as for host_name, ADDRESS "
	      "an IPv4 address or a host name, PORT 1..65535); at most 4096 "
	      "(a coordinator lists every agent); no two with the same "
	      "NAME, none named as host_name",
	  .help = "The other hosts of the cluster." },
	{ .name = "ca_file", .type = CONF_STRING,
	  .offset = CONF_FIELD(ca_file),
	  .def_string = SYSCONFDIR "/tern/pki/ca.pem",
	  .check = conf_check_nonempty, .rule = "non-empty path",
	  .help = "Cluster CA certificate (PEM); every peer's certificate "
	      "must be signed by it." },
	{ .name = "cert_file", .type = CONF_STRING,
	  .offset = CONF_FIELD(cert_file),
	  .def_string = SYSCONFDIR "/tern/pki/host.pem",
	  .check = conf_check_nonempty, .rule = "non-empty path",
	  .help = "This host's certificate (PEM)." },
	{ .name = "key_file", .type = CONF_STRING,
	  .offset = CONF_FIELD(key_file),
	  .def_string = SYSCONFDIR "/tern/pki/host.key",
	  .check = conf_check_nonempty, .rule = "non-empty path",
	  .help = "This host's private key (PEM)." },
	{ .name = "state_dir", .type = CONF_STRING,
	  .offset = CONF_FIELD(state_dir),
	  .def_string = LOCALSTATEDIR "/lib/tern",
	  .check = conf_check_absolute, .rule = "absolute path",
	  .help = "Directory for persistent state." },
	{ .name = "run_dir", .type = CONF_STRING,
	  .offset = CONF_FIELD(run_dir),
	  .def_string = RUNSTATEDIR "/tern",
	  .check = conf_check_absolute, .rule = "absolute path",
	  .help = "Directory of the control socket ternd.sock and the "
	      "pidfile ternd.pid." },
	{ .name = "control_group", .type = CONF_STRING,
	  .offset = CONF_FIELD(control_group), .def_string = "tern",
	  .check = conf_check_nonempty, .rule = "a group name (resolved once, "
	      "at start) or a numeric gid",
	  .help = "Group allowed to use the control socket besides root; "
	      "its members are root-equivalent (docs/security.md)." },
	{ .name = "criu_path", .type = CONF_STRING,
	  .offset = CONF_FIELD(criu_path), .def_string = CRIU_DEFAULT_PATH,
	  .rule = "path of a criu binary, or \"\" for no container support",
	  .help = "CRIU used for containers (scripts/install-criu provides "
	      "one that works on current kernels)." },
	{ .name = "libvirt_uri", .type = CONF_STRING,
	  .offset = CONF_FIELD(libvirt_uri), .def_string = "qemu:///system",
	  .rule = "a libvirt connection URI, or \"\" for no VM support",
	  .help = "The libvirtd ternd runs VMs with." },
	{ .name = "libvirt_socket", .type = CONF_STRING,
	  .offset = CONF_FIELD(libvirt_socket),
	  .def_string = "/run/libvirt/libvirt-sock",
	  .check = conf_check_absolute, .rule = "absolute path",
	  .help = "The same libvirtd's unix socket: a peer migrating a VM "
	      "here talks to it through ternd." },
	{ .name = "log_filters", .type = CONF_STRING,
	  .offset = CONF_FIELD(log_filters), .def_string = "info",
	  .rule = "LEVEL or MODULE:LEVEL words, LEVEL one of error, warn, "
	      "info, debug (checked by ternd)",
	  .help = "Log levels, e.g. \"info\" or \"tls:debug migrate:warn\"." },
	{ .name = "max_frame_size", .type = CONF_SIZE,
	  .offset = CONF_FIELD(max_frame_size), .def_number = CONF_MIB,
	  .min = 64 * CONF_KIB, .max = 16 * CONF_MIB,
	  .help = "Largest frame accepted from a peer." },
	{ .name = "stream_window", .type = CONF_SIZE,
	  .offset = CONF_FIELD(stream_window), .def_number = 8 * CONF_MIB,
	  .min = 64 * CONF_KIB, .max = 256 * CONF_MIB,
	  .help = "Flow-control window of one state stream." },
	{ .name = "send_buffer_max", .type = CONF_SIZE,
	  .offset = CONF_FIELD(send_buffer_max), .def_number = 8 * CONF_MIB,
	  .min = 256 * CONF_KIB, .max = CONF_GIB,
	  .help = "Most bytes queued for one peer before back-pressure." },
	{ .name = "heartbeat_interval_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(heartbeat_interval_ms), .def_number = 1000,
	  .min = 50, .max = 60000,
	  .help = "Interval between heartbeats to each peer, in "
	      "milliseconds." },
	{ .name = "peer_timeout_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(peer_timeout_ms), .def_number = 5000,
	  .min = 200, .max = 600000,
	  .rule = "greater than heartbeat_interval_ms",
	  .help = "A peer silent for this many milliseconds is down." },
	{ .name = "reconnect_max_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(reconnect_max_ms), .def_number = 10000,
	  .min = 100, .max = 600000,
	  .help = "Longest back-off between attempts to reconnect to a "
	      "peer, in milliseconds." },
	{ .name = "migration_timeout_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(migration_timeout_ms), .def_number = 600000,
	  .min = 1000, .max = 86400000,
	  .help = "A migration with no step and no byte crossing for this "
	      "long (the peer silent or stuck) is rolled back; once a "
	      "post-copy's container runs on its target, until the "
	      "source's CRIU has ended the transfer, it breaks as a cut "
	      "link would (the container stops on both hosts)." },
	{ .name = "criu_timeout_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(criu_timeout_ms), .def_number = 120000,
	  .min = 1000, .max = 86400000,
	  .help = "A CRIU call (dump, restore, check, ...) that has not "
	      "finished after this many milliseconds is killed and its "
	      "container thawed (a 1 GiB dump took about 6 s on a 2-core "
	      "test machine)." },
	{ .name = "thread_pool_size", .type = CONF_INT,
	  .offset = CONF_FIELD(thread_pool_size), .def_number = 16,
	  .min = 4, .max = 128,
	  .help = "Threads for short blocking calls (a libvirt query, an "
	      "fsync, a checksum), so none waits behind another; fixed at "
	      "start (UV_THREADPOOL_SIZE)." },
	{ .name = "drain_parallel", .type = CONF_INT,
	  .offset = CONF_FIELD(drain_parallel), .def_number = 2,
	  .min = 1, .max = 16,
	  .help = "Instances ternctl host drain moves off this host at once "
	      "(its --parallel overrides it)." },
	{ .name = "max_vm_migrations", .type = CONF_INT,
	  .offset = CONF_FIELD(max_vm_migrations), .def_number = 4,
	  .min = 1, .max = 64,
	  .help = "Most VM migrations this host sends at once (each holds "
	      "a thread of its own for as long as it runs); one more is "
	      "refused." },
	/* Trust boundaries (docs/security.md). */
	{ .name = "max_pending_handshakes", .type = CONF_INT,
	  .offset = CONF_FIELD(max_pending_handshakes), .def_number = 32,
	  .min = 1, .max = 1024,
	  .help = "Most accepted peer connections not yet authenticated; "
	      "beyond that new ones are closed at once, so clients that "
	      "never finish TLS cannot use up ternd's descriptors." },
	{ .name = "handshake_timeout_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(handshake_timeout_ms), .def_number = 2000,
	  .min = 100, .max = 60000,
	  .help = "An accepted peer connection that has not finished its "
	      "TLS handshake within this many milliseconds is closed." },
	{ .name = "max_incoming_vm_migrations", .type = CONF_INT,
	  .offset = CONF_FIELD(max_incoming_vm_migrations), .def_number = 4,
	  .min = 1, .max = 64,
	  .help = "Most VM migrations this host receives at once, from all "
	      "peers together; beyond that an offer is refused (each one "
	      "holds libvirtd connections and a QEMU)." },
	{ .name = "accept_test_streams", .type = CONF_BOOL,
	  .offset = CONF_FIELD(accept_test_streams), .def_number = 0,
	  .help = "Accept the test-only \"sink\" stream kind from peers "
	      "(ternctl stream-test, bench/stream.sh); off in production, "
	      "where it would only let a peer use bandwidth and CPU." },
	{ .name = "stopcopy_resume_early", .type = CONF_BOOL,
	  .offset = CONF_FIELD(stopcopy_resume_early), .def_number = 1,
	  .help = "A container moving here by stop-and-copy resumes once "
	      "all of its checkpoint is here, and its memory is copied in "
	      "afterwards from that local copy (CRIU's lazy pages): the "
	      "freeze is shorter by about the time a full restore takes to "
	      "read the memory (seconds per GiB).  Until that copy is done "
	      "(about a second per GiB) the container depends on a local "
	      "CRIU process; if it dies, the container is stopped, never run "
	      "with memory missing, and ternctl restore brings it back from "
	      "the move's checkpoint.  false: all memory in before the "
	      "resume." },
	{ .name = "checkpoint_staging_mb", .type = CONF_INT,
	  .offset = CONF_FIELD(checkpoint_staging_mb), .def_number = 2048,
	  .min = 0, .max = 16777216,
	  .help = "A container checkpointed while it keeps running (ternctl "
	      "checkpoint --leave-running, HA's schedule) stands still only "
	      "while CRIU copies its memory into memory ternd reserved "
	      "before; the pages are written to disk after it runs again. "
	      "This is the most memory (MiB) ternd holds for that at once, "
	      "about as much as each such container uses, for the "
	      "checkpoint's duration.  A checkpoint that would need more "
	      "than is left stands still while CRIU writes its pages, as "
	      "with 0." },
	{ .name = "rootfs_allowed_prefixes", .type = CONF_LIST,
	  .offset = CONF_FIELD(rootfs_allowed_prefixes),
	  .def_list = conf_def_rootfs_prefixes,
	  .rule = "absolute paths without \"..\"; at most 64",
	  .help = "Directories below which a container's root.path may be "
	      "(after symlinks are resolved), from ternctl create or a "
	      "peer's migration; nothing else on the host can become or "
	      "receive a rootfs." },
	/* High availability (docs/ha.md). */
	{ .name = "role", .type = CONF_STRING,
	  .offset = CONF_FIELD(role), .def_string = "agent",
	  .check = conf_check_role,
	  .rule = "agent, coordinator or agent+coordinator",
	  .help = "What this ternd does: run instances (agent), grant "
	      "leases and fail over a crashed host's instances "
	      "(coordinator), or both." },
	{ .name = "coordinator", .type = CONF_STRING,
	  .offset = CONF_FIELD(coordinator), .def_string = "",
	  .check = conf_check_coordinator,
	  .rule = "\"\", or up to 8 comma-separated names, each host_name "
	      "or one of peers, none twice",
	  .help = "The hosts whose coordinator this agent holds its lease "
	      "from (store = etcd: the leader among them; it turns to the "
	      "next when one does not lead or answer); \"\": none, and "
	      "this host's instances are not protected (nothing fails "
	      "them over)." },
	{ .name = "lease_ttl_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(lease_ttl_ms), .def_number = 2000,
	  .min = 500, .max = 60000,
	  .help = "How long a granted lease lasts; an agent renews it every "
	      "third of it." },
	{ .name = "lease_margin_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(lease_margin_ms), .def_number = 500,
	  .min = 50, .max = 30000,
	  .rule = "at least a tenth of lease_ttl_ms, less than half of it",
	  .help = "An agent stops its protected instances this long before "
	      "its lease ends; the coordinator waits this long after it "
	      "before it declares the host failed." },
	{ .name = "leader_ttl_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(leader_ttl_ms), .def_number = 0,
	  .min = 0, .max = 600000,
	  .rule = "0 (lease_ttl_ms, or 5000 if that is less), or 2000..600000",
	  .help = "Coordinator with store = etcd: the etcd lease it leads "
	      "under (whole seconds).  It leads on while etcd elects its "
	      "own leader only if this leaves time for the election (the "
	      "default, 5 s, leaves at least 3 s); shorter, and an "
	      "election stops it and may end the agents' leases.  A "
	      "standby leads about this long after the leader's host "
	      "crashed: to have it renew the agents' leases in time, keep "
	      "it well below lease_ttl_ms - lease_margin_ms (docs/ha.md)." },
	{ .name = "fence_command", .type = CONF_STRING,
	  .offset = CONF_FIELD(fence_command), .def_string = "",
	  .rule = "absolute path of an executable, or \"\" for none",
	  .help = "Coordinator: run with a suspect host's name as its only "
	      "argument (no shell); exit status 0 means the host is powered "
	      "off, and its instances fail over at once instead of after "
	      "lease_ttl_ms + lease_margin_ms." },
	{ .name = "fence_timeout_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(fence_timeout_ms), .def_number = 30000,
	  .min = 1000, .max = 600000,
	  .help = "A fence_command still running after this long is killed "
	      "and counts as failed." },
	{ .name = "restore_wait_ms", .type = CONF_INT,
	  .offset = CONF_FIELD(restore_wait_ms), .def_number = 60000,
	  .min = 1000, .max = 3600000,
	  .help = "Agent: how long a failover's restore of a replica waits "
	      "for a cause that passes (the driver busy, libvirtd or CRIU "
	      "not ready, the lease lapsed for a moment) before it fails "
	      "and the coordinator tries another replica host." },
	{ .name = "store", .type = CONF_STRING,
	  .offset = CONF_FIELD(store), .def_string = "journal",
	  .check = conf_check_store, .rule = "journal or etcd",
	  .help = "The coordinator's state store: a journal on local disk "
	      "(one coordinator) or etcd v3 (several)." },
	{ .name = "store_dir", .type = CONF_STRING,
	  .offset = CONF_FIELD(store_dir), .def_string = "",
	  .rule = "absolute path, or \"\" for state_dir/coord",
	  .help = "Where the journal store lives." },
	{ .name = "etcd_endpoints", .type = CONF_STRING,
	  .offset = CONF_FIELD(etcd_endpoints), .def_string = "",
	  .rule = "comma-separated http(s) URLs",
	  .help = "The etcd members (store = etcd)." },
	{ .name = "revoked_file", .type = CONF_STRING,
	  .offset = CONF_FIELD(revoked_file),
	  .def_string = SYSCONFDIR "/tern/pki/revoked",
	  .rule = "path, or \"\" for none; a missing file revokes nothing",
	  .help = "Serial numbers of revoked certificates (ternctl cert "
	      "revoke writes it; copy it to every host and send ternd "
	      "SIGHUP): refused at the handshake, and links made with one "
	      "are dropped." },
};

#define CONF_NOPTIONS	(sizeof conf_options / sizeof conf_options[0])

/* Where the parser is; the text is [p, end), never NUL-terminated. */
struct conf_parser {
	const char	*file;
	const char	*p;
	const char	*end;
	size_t		 line;
	char		**cause;
	struct conf	*conf;
	size_t		 seen[CONF_NOPTIONS];	/* line set on, 0 if not */
	size_t		*peer_lines;		/* line of each peer */
};

enum conf_kind {
	CONF_V_NUMBER,		/* digits, maybe a sign and a suffix */
	CONF_V_WORD,		/* anything else unquoted */
	CONF_V_STRING,
	CONF_V_LIST,
};

struct conf_value {
	enum conf_kind	 kind;
	size_t		 line;
	const char	*tok;		/* NUMBER, WORD: the text */
	size_t		 toklen;
	char		*str;		/* STRING */
	char		**items;	/* LIST */
	size_t		*lines;
	size_t		 nitems;
	size_t		 nalloc;
};

static void	conf_error(struct conf_parser *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
conf_is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
conf_is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
conf_is_name_char(int c)
{
	return conf_is_alpha(c) || conf_is_digit(c) || c == '_';
}

static int
conf_is_token_char(int c)
{
	return conf_is_name_char(c) || c == '-' || c == '+' || c == '.';
}

/*
 * A piece of input made safe to put in a message: at most CONF_QUOTE_MAX
 * bytes, bytes that are not printable ASCII as \xNN, in double quotes if
 * quoted.  The caller frees it.
 */
static char *
conf_quote(const char *s, size_t len, int quoted)
{
	char		*out, *o;
	size_t		 i, n;
	unsigned char	 c;

	n = len > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : len;
	out = o = xmalloc(4 * n + 8);
	if (quoted)
		*o++ = '"';
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f) {
			snprintf(o, 5, "\\x%02x", c);
			o += 4;
		} else
			*o++ = (char)c;
	}
	if (quoted)
		*o++ = '"';
	if (n < len) {
		memcpy(o, "...", 3);
		o += 3;
	}
	*o = '\0';
	return out;
}

static void
conf_error(struct conf_parser *ps, size_t line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	set_cause(ps->cause, "%s:%zu: %s", ps->file, line, msg);
	free(msg);
}

static const char *
conf_type_name(enum conf_type type)
{
	switch (type) {
	case CONF_INT:
		return "integer";
	case CONF_SIZE:
		return "size";
	case CONF_STRING:
		return "string";
	case CONF_LIST:
		return "list of strings";
	case CONF_BOOL:
		return "boolean";
	}
	return "?";
}

/* What a value of this type looks like, for "expected ..." messages. */
static const char *
conf_type_expected(enum conf_type type)
{
	switch (type) {
	case CONF_INT:
		return "an integer";
	case CONF_SIZE:
		return "a size (an integer with an optional k, m or g suffix)";
	case CONF_STRING:
		return "a quoted string";
	case CONF_LIST:
		return "a list of quoted strings [ \"...\", ... ]";
	case CONF_BOOL:
		return "true or false";
	}
	return "?";
}

/* A number as the user would write it: sizes with the largest exact suffix. */
static void
conf_format_number(char *buf, size_t size, enum conf_type type,
    unsigned long long n)
{
	if (type == CONF_SIZE && n != 0 && n % CONF_GIB == 0)
		snprintf(buf, size, "%lluG", n / CONF_GIB);
	else if (type == CONF_SIZE && n != 0 && n % CONF_MIB == 0)
		snprintf(buf, size, "%lluM", n / CONF_MIB);
	else if (type == CONF_SIZE && n != 0 && n % CONF_KIB == 0)
		snprintf(buf, size, "%lluK", n / CONF_KIB);
	else
		snprintf(buf, size, "%llu", n);
}

/* A name as host_name wants it, and as each peer's NAME must be. */
static int
conf_valid_name(const char *s, size_t len)
{
	return host_name_check(s, len, NULL) == 0;
}

/* A dotted quad: four decimal parts 0..255, no leading zeros. */
static int
conf_valid_ipv4(const char *s, size_t len)
{
	size_t		i = 0, start;
	unsigned int	part, parts = 0;

	for (;;) {
		start = i;
		part = 0;
		while (i < len && conf_is_digit(s[i]) && i - start < 3)
			part = part * 10 + (unsigned int)(s[i++] - '0');
		if (i == start || part > 255 || (s[start] == '0' && i - start > 1))
			return 0;
		parts++;
		if (i == len)
			break;
		if (s[i] != '.' || parts == 4)
			return 0;
		i++;
	}
	return parts == 4;
}

/* An IPv4 literal, or a DNS host name (labels of letters, digits, '-'). */
static int
conf_valid_address(const char *s, size_t len)
{
	size_t	i, label = 0;
	int	numeric = 1;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (!conf_is_digit(s[i]) && s[i] != '.')
			numeric = 0;
	}
	if (numeric)
		return conf_valid_ipv4(s, len);

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!conf_is_alpha(s[i]) && !conf_is_digit(s[i]) && s[i] != '-')
			return 0;
		if (label == 0 && s[i] == '-')
			return 0;
		label++;
	}
	return 1;
}

static int
conf_check_host_name(const char *value, char **reason)
{
	char	*q;

	if (conf_valid_name(value, strlen(value)))
		return 0;
	q = conf_quote(value, strlen(value), 1);
	xasprintf(reason, "%s is not a valid host name (%s)", q,
	    CONF_NAME_RULE);
	free(q);
	return -1;
}

static int
conf_check_nonempty(const char *value, char **reason)
{
	if (*value != '\0')
		return 0;
	*reason = xstrdup("must not be empty");
	return -1;
}

static int
conf_check_absolute(const char *value, char **reason)
{
	char	*q;

	if (*value == '/')
		return 0;
	q = conf_quote(value, strlen(value), 1);
	xasprintf(reason, "%s is not an absolute path (it must start with "
	    "'/')", q);
	free(q);
	return -1;
}

static int
conf_check_one_of(const char *value, const char *const *allowed,
    const char *what, char **reason)
{
	char	*q;
	size_t	 i;

	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(value, allowed[i]) == 0)
			return 0;
	q = conf_quote(value, strlen(value), 1);
	xasprintf(reason, "%s is not %s", q, what);
	free(q);
	return -1;
}

static int
conf_check_role(const char *value, char **reason)
{
	static const char *const roles[] = { "agent", "coordinator",
	    "agent+coordinator", NULL };

	return conf_check_one_of(value, roles,
	    "agent, coordinator or agent+coordinator", reason);
}

static int
conf_check_store(const char *value, char **reason)
{
	static const char *const stores[] = { "journal", "etcd", NULL };

	return conf_check_one_of(value, stores, "journal or etcd", reason);
}

/* Split "h3,h4" into its names (no check); the caller frees each and
 * the array. */
static size_t
conf_split_coordinators(const char *value, char ***out)
{
	const char	*p = value, *comma;
	char		**v = NULL;
	size_t		 n = 0;

	if (*value == '\0') {
		*out = NULL;
		return 0;
	}
	for (;;) {
		comma = strchr(p, ',');
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n++] = comma != NULL ? xstrndup(p, (size_t)(comma - p)) :
		    xstrdup(p);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = v;
	return n;
}

static void
conf_free_names(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
conf_check_coordinator(const char *value, char **reason)
{
	char	**v;
	size_t	  n, i, k;
	int	  rc = 0;

	n = conf_split_coordinators(value, &v);
	if (n > CONF_MAX_COORDINATORS) {
		xasprintf(reason, "%zu coordinators: at most %d", n,
		    CONF_MAX_COORDINATORS);
		rc = -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		if (conf_check_host_name(v[i], reason) == -1)
			rc = -1;
		for (k = 0; k < i && rc == 0; k++)
			if (strcmp(v[k], v[i]) == 0) {
				xasprintf(reason, "coordinator %s is listed "
				    "twice", v[i]);
				rc = -1;
			}
	}
	conf_free_names(v, n);
	return rc;
}

/* Split and check "NAME@ADDRESS:PORT"; on error *reason is set. */
static int
conf_parse_peer(const char *s, struct conf_peer *peer, char **reason)
{
	const char	*at, *colon, *port;
	char		*q, *part = NULL;
	size_t		 i, len;
	int		 n = 0;

	len = strlen(s);
	q = conf_quote(s, len, 1);
	at = strchr(s, '@');
	colon = strrchr(s, ':');
	if (at == NULL || colon == NULL || colon < at) {
		xasprintf(reason, "%s is not \"NAME@ADDRESS:PORT\"", q);
		goto fail;
	}
	if (!conf_valid_name(s, (size_t)(at - s))) {
		part = conf_quote(s, (size_t)(at - s), 1);
		xasprintf(reason, "%s: peer name %s is not valid (%s)", q, part,
		    CONF_NAME_RULE);
		goto fail;
	}
	if (!conf_valid_address(at + 1, (size_t)(colon - at - 1))) {
		part = conf_quote(at + 1, (size_t)(colon - at - 1), 1);
		xasprintf(reason, "%s: address %s is not an IPv4 address or a "
		    "host name", q, part);
		goto fail;
	}
	port = colon + 1;
	len = strlen(port);
	for (i = 0; i < len && i < 6 && conf_is_digit(port[i]); i++)
		n = n * 10 + (port[i] - '0');
	if (len == 0 || i != len || n < 1 || n > 65535) {
		part = conf_quote(port, len, 1);
		xasprintf(reason, "%s: port %s is not in 1..65535", q, part);
		goto fail;
	}
	free(q);
	peer->name = xstrndup(s, (size_t)(at - s));
	peer->address = xstrndup(at + 1, (size_t)(colon - at - 1));
	peer->port = n;
	return 0;

fail:
	free(part);
	free(q);
	return -1;
}

static const struct conf_option *
conf_find_option(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < CONF_NOPTIONS; i++) {
		if (strlen(conf_options[i].name) == len &&
		    memcmp(conf_options[i].name, name, len) == 0)
			return &conf_options[i];
	}
	return NULL;
}

/* Skip blanks and a comment; with newlines, go on over following lines. */
static void
conf_skip(struct conf_parser *ps, int newlines)
{
	while (ps->p < ps->end) {
		switch (*ps->p) {
		case ' ':
		case '\t':
		case '\r':
		case '\f':
		case '\v':
			ps->p++;
			break;
		case '#':
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
			break;
		case '\n':
			if (!newlines)
				return;
			ps->line++;
			ps->p++;
			break;
		default:
			return;
		}
	}
}

/* A quoted string, on one line, at ps->p. */
static int
conf_parse_string(struct conf_parser *ps, const char *name, char **out)
{
	const char	*q;
	char		*s;
	size_t		 n = 0, i = 0;

	for (q = ps->p + 1; q < ps->end && *q != '"' && *q != '\n'; q++) {
		if (*q == '\\' && q + 1 < ps->end && q[1] != '\n') {
			if (q[1] != '"' && q[1] != '\\') {
				if (q[1] > ' ' && q[1] < 0x7f) {
					conf_error(ps, ps->line, "%s: invalid "
					    "escape \\%c in string (only \\\" "
					    "and \\\\ are allowed)", name,
					    q[1]);
				} else {
					conf_error(ps, ps->line, "%s: invalid "
					    "escape in string (only \\\" and "
					    "\\\\ are allowed)", name);
				}
				return -1;
			}
			q++;
		}
		n++;
	}
	if (q >= ps->end || *q != '"') {
		conf_error(ps, ps->line, "%s: unterminated string (missing "
		    "closing '\"')", name);
		return -1;
	}

	s = xmalloc(n + 1);
	for (q = ps->p + 1; *q != '"'; q++) {
		if (*q == '\\')
			q++;
		s[i++] = *q;
	}
	s[i] = '\0';
	ps->p = q + 1;
	*out = s;
	return 0;
}

/* A list of quoted strings, maybe over several lines, at ps->p. */
static int
conf_parse_list(struct conf_parser *ps, const char *name,
    struct conf_value *v)
{
	size_t	 start = ps->line, line;
	char	*item;

	ps->p++;
	for (;;) {
		conf_skip(ps, 1);
		if (ps->p == ps->end)
			break;
		if (*ps->p == ']') {
			ps->p++;
			return 0;
		}
		if (*ps->p != '"') {
			conf_error(ps, ps->line, "%s: expected a quoted string "
			    "or ']' in the list started on line %zu", name,
			    start);
			return -1;
		}
		line = ps->line;
		if (conf_parse_string(ps, name, &item) != 0)
			return -1;
		if (v->nitems == v->nalloc) {
			v->nalloc = v->nalloc == 0 ? 8 : v->nalloc * 2;
			v->items = xreallocarray(v->items, v->nalloc,
			    sizeof *v->items);
			v->lines = xreallocarray(v->lines, v->nalloc,
			    sizeof *v->lines);
		}
		v->items[v->nitems] = item;
		v->lines[v->nitems] = line;
		v->nitems++;

		conf_skip(ps, 1);
		if (ps->p == ps->end)
			break;
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == ']') {
			ps->p++;
			return 0;
		}
		conf_error(ps, ps->line, "%s: expected ',' or ']' after a list "
		    "element (list started on line %zu)", name, start);
		return -1;
	}
	conf_error(ps, start, "%s: unterminated list (missing ']')", name);
	return -1;
}

static int
conf_parse_value(struct conf_parser *ps, const struct conf_option *opt,
    struct conf_value *v)
{
	int	c;

	c = ps->p < ps->end ? (unsigned char)*ps->p : '\n';
	v->line = ps->line;
	if (c == '\n' || c == '#') {
		conf_error(ps, ps->line, "%s: missing value (expected %s)",
		    opt->name, conf_type_expected(opt->type));
		return -1;
	}
	if (c == '"') {
		v->kind = CONF_V_STRING;
		return conf_parse_string(ps, opt->name, &v->str);
	}
	if (c == '[') {
		v->kind = CONF_V_LIST;
		return conf_parse_list(ps, opt->name, v);
	}
	if (conf_is_digit(c) || c == '-' || c == '+')
		v->kind = CONF_V_NUMBER;
	else if (conf_is_token_char(c))
		v->kind = CONF_V_WORD;
	else {
		conf_error(ps, ps->line, "%s: expected %s", opt->name,
		    conf_type_expected(opt->type));
		return -1;
	}
	v->tok = ps->p;
	while (ps->p < ps->end && conf_is_token_char(*ps->p))
		ps->p++;
	v->toklen = (size_t)(ps->p - v->tok);
	return 0;
}

static void
conf_value_clear(struct conf_value *v)
{
	size_t	i;

	free(v->str);
	for (i = 0; i < v->nitems; i++)
		free(v->items[i]);
	free(v->items);
	free(v->lines);
	memset(v, 0, sizeof *v);
}

static int
conf_type_error(struct conf_parser *ps, const struct conf_option *opt,
    const struct conf_value *v)
{
	char	*q;

	switch (v->kind) {
	case CONF_V_NUMBER:
		conf_error(ps, v->line, "%s: expected %s, got a number",
		    opt->name, conf_type_expected(opt->type));
		break;
	case CONF_V_WORD:
		q = conf_quote(v->tok, v->toklen, 0);
		conf_error(ps, v->line, "%s: expected %s, got bare word %s",
		    opt->name, conf_type_expected(opt->type), q);
		free(q);
		break;
	case CONF_V_STRING:
		conf_error(ps, v->line, "%s: expected %s, got a quoted string",
		    opt->name, conf_type_expected(opt->type));
		break;
	case CONF_V_LIST:
		conf_error(ps, v->line, "%s: expected %s, got a list",
		    opt->name, conf_type_expected(opt->type));
		break;
	}
	return -1;
}

/* Convert and bound-check an integer or size token. */
static int
conf_number(struct conf_parser *ps, const struct conf_option *opt,
    const struct conf_value *v, unsigned long long *out)
{
	const char		*s = v->tok, *end = v->tok + v->toklen;
	unsigned long long	 n = 0, mult = 1;
	char			*q, min[32], max[32];
	int			 neg = 0, big = 0;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (s == end || !conf_is_digit(*s))
		goto invalid;
	for (; s < end && conf_is_digit(*s); s++) {
		if (n > CONF_NUMBER_CAP)
			big = 1;
		else
			n = n * 10 + (unsigned long long)(*s - '0');
	}
	if (s != end) {
		if (opt->type != CONF_SIZE || s + 1 != end)
			goto invalid;
		switch (*s) {
		case 'k':
		case 'K':
			mult = CONF_KIB;
			break;
		case 'm':
		case 'M':
			mult = CONF_MIB;
			break;
		case 'g':
		case 'G':
			mult = CONF_GIB;
			break;
		default:
			goto invalid;
		}
	}
	if (big || (neg && n != 0) || n > opt->max / mult ||
	    n * mult < opt->min) {
		q = conf_quote(v->tok, v->toklen, 0);
		conf_format_number(min, sizeof min, opt->type, opt->min);
		conf_format_number(max, sizeof max, opt->type, opt->max);
		conf_error(ps, v->line, "%s: %s is out of range (%s..%s)",
		    opt->name, q, min, max);
		free(q);
		return -1;
	}
	*out = n * mult;
	return 0;

invalid:
	q = conf_quote(v->tok, v->toklen, 1);
	if (opt->type == CONF_SIZE) {
		conf_error(ps, v->line, "%s: %s is not a valid size (use an "
		    "integer with an optional k, m or g suffix, e.g. 64K or "
		    "8M)", opt->name, q);
	} else {
		conf_error(ps, v->line, "%s: %s is not a valid integer",
		    opt->name, q);
	}
	free(q);
	return -1;
}

/* Replace the rootfs prefixes by the NULL-terminated list (or none). */
static void
conf_set_paths(struct conf *conf, const char *const *list)
{
	size_t	i;

	for (i = 0; i < conf->nrootfs_allowed_prefixes; i++)
		free(conf->rootfs_allowed_prefixes[i]);
	free(conf->rootfs_allowed_prefixes);
	conf->rootfs_allowed_prefixes = NULL;
	conf->nrootfs_allowed_prefixes = 0;
	for (i = 0; list != NULL && list[i] != NULL; i++) {
		conf->rootfs_allowed_prefixes = xreallocarray(
		    conf->rootfs_allowed_prefixes, i + 1, sizeof (char *));
		conf->rootfs_allowed_prefixes[i] = xstrdup(list[i]);
		conf->nrootfs_allowed_prefixes = i + 1;
	}
}

/* A list of absolute paths, none with a ".." component. */
static int
conf_apply_paths(struct conf_parser *ps, const struct conf_option *opt,
    struct conf_value *v)
{
	const char	*s, *e;
	char		*reason, *q;
	size_t		 i;

	if (v->nitems > 64) {
		conf_error(ps, v->lines[64], "%s: too many paths (at most 64)",
		    opt->name);
		return -1;
	}
	for (i = 0; i < v->nitems; i++) {
		if (conf_check_absolute(v->items[i], &reason) != 0) {
			conf_error(ps, v->lines[i], "%s: %s", opt->name,
			    reason);
			free(reason);
			return -1;
		}
		for (s = v->items[i]; *s != '\0'; s = e) {
			while (*s == '/')
				s++;
			for (e = s; *e != '\0' && *e != '/'; e++)
				;
			if (e - s == 2 && s[0] == '.' && s[1] == '.') {
				q = conf_quote(v->items[i], strlen(v->items[i]),
				    1);
				conf_error(ps, v->lines[i], "%s: %s has a \"..\" "
				    "component", opt->name, q);
				free(q);
				return -1;
			}
		}
	}
	v->items = xreallocarray(v->items, v->nitems + 1, sizeof *v->items);
	v->items[v->nitems] = NULL;
	conf_set_paths(ps->conf, (const char *const *)v->items);
	return 0;
}

static int
conf_apply_peers(struct conf_parser *ps, const struct conf_option *opt,
    struct conf_value *v)
{
	struct conf	*conf = ps->conf;
	char		*reason, *q;
	size_t		 i, j;

	if (v->nitems > CONF_MAX_PEERS) {
		conf_error(ps, v->lines[CONF_MAX_PEERS], "%s: too many peers "
		    "(at most %d)", opt->name, CONF_MAX_PEERS);
		return -1;
	}
	if (v->nitems == 0)
		return 0;
	conf->peers = xcalloc(v->nitems, sizeof *conf->peers);
	for (i = 0; i < v->nitems; i++) {
		if (conf_parse_peer(v->items[i], &conf->peers[i],
		    &reason) != 0) {
			conf_error(ps, v->lines[i], "%s: %s", opt->name,
			    reason);
			free(reason);
			return -1;
		}
		conf->npeers++;
		for (j = 0; j < i; j++) {
			if (strcmp(conf->peers[i].name,
			    conf->peers[j].name) != 0)
				continue;
			q = conf_quote(conf->peers[i].name,
			    strlen(conf->peers[i].name), 1);
			conf_error(ps, v->lines[i], "%s: duplicate peer name %s "
			    "(also on line %zu)", opt->name, q, v->lines[j]);
			free(q);
			return -1;
		}
	}
	ps->peer_lines = v->lines;
	v->lines = NULL;
	return 0;
}

static int
conf_apply(struct conf_parser *ps, const struct conf_option *opt,
    struct conf_value *v)
{
	char			*field = (char *)ps->conf + opt->offset;
	char			*reason, **sp;
	unsigned long long	 n;

	switch (opt->type) {
	case CONF_INT:
	case CONF_SIZE:
		if (v->kind != CONF_V_NUMBER)
			return conf_type_error(ps, opt, v);
		if (conf_number(ps, opt, v, &n) != 0)
			return -1;
		if (opt->type == CONF_INT)
			*(int *)(void *)field = (int)n;
		else
			*(size_t *)(void *)field = (size_t)n;
		return 0;
	case CONF_STRING:
		if (v->kind != CONF_V_STRING)
			return conf_type_error(ps, opt, v);
		if (opt->check != NULL && opt->check(v->str, &reason) != 0) {
			conf_error(ps, v->line, "%s: %s", opt->name, reason);
			free(reason);
			return -1;
		}
		sp = (char **)(void *)field;
		free(*sp);
		*sp = v->str;
		v->str = NULL;
		return 0;
	case CONF_LIST:
		if (v->kind != CONF_V_LIST)
			return conf_type_error(ps, opt, v);
		if (opt->offset == CONF_FIELD(peers))
			return conf_apply_peers(ps, opt, v);
		return conf_apply_paths(ps, opt, v);
	case CONF_BOOL:
		if (v->kind != CONF_V_WORD)
			return conf_type_error(ps, opt, v);
		if (v->toklen == 4 && memcmp(v->tok, "true", 4) == 0)
			*(int *)(void *)field = 1;
		else if (v->toklen == 5 && memcmp(v->tok, "false", 5) == 0)
			*(int *)(void *)field = 0;
		else
			return conf_type_error(ps, opt, v);
		return 0;
	}
	return -1;
}

/* One "name = value" line, at ps->p, which is not blank. */
static int
conf_parse_line(struct conf_parser *ps)
{
	const struct conf_option	*opt;
	struct conf_value		 v;
	const char			*name;
	char				*q;
	size_t				 namelen, idx;
	int				 rc = -1;

	memset(&v, 0, sizeof v);
	name = ps->p;
	while (ps->p < ps->end && conf_is_name_char(*ps->p))
		ps->p++;
	namelen = (size_t)(ps->p - name);
	if (namelen == 0 || conf_is_digit(*name)) {
		conf_error(ps, ps->line, "malformed line (expected \"name = "
		    "value\")");
		return -1;
	}
	conf_skip(ps, 0);
	if (ps->p == ps->end || *ps->p != '=') {
		q = conf_quote(name, namelen, 0);
		conf_error(ps, ps->line, "malformed line (expected \"=\" after "
		    "%s)", q);
		free(q);
		return -1;
	}
	ps->p++;

	if ((opt = conf_find_option(name, namelen)) == NULL) {
		q = conf_quote(name, namelen, 1);
		conf_error(ps, ps->line, "unknown option %s (ternd "
		    "--help-config lists them)", q);
		free(q);
		return -1;
	}
	idx = (size_t)(opt - conf_options);
	if (ps->seen[idx] != 0) {
		conf_error(ps, ps->line, "%s: duplicate option (first set on "
		    "line %zu)", opt->name, ps->seen[idx]);
		return -1;
	}
	ps->seen[idx] = ps->line;

	conf_skip(ps, 0);
	if (conf_parse_value(ps, opt, &v) != 0)
		goto out;
	conf_skip(ps, 0);
	if (ps->p < ps->end && *ps->p != '\n') {
		conf_error(ps, ps->line, "%s: unexpected text after the value",
		    opt->name);
		goto out;
	}
	rc = conf_apply(ps, opt, &v);

out:
	conf_value_clear(&v);
	return rc;
}

/* Rules that need the whole file: required options, cross-checks. */
/* The line an option was set on, or 0 (a default). */
static size_t
conf_line_of(const struct conf_parser *ps, const char *name)
{
	const struct conf_option	*opt = conf_find_option(name,
					    strlen(name));

	return opt != NULL ? ps->seen[opt - conf_options] : 0;
}

/* The HA options agree with each other and with the peers. */
static int
conf_check_ha(struct conf_parser *ps)
{
	struct conf	*conf = ps->conf;
	size_t		 i, k;
	int		 ttl = conf->lease_ttl_ms, margin = conf->lease_margin_ms;

	if (margin * 10 < ttl || margin * 2 >= ttl) {
		conf_error(ps, conf_line_of(ps, "lease_margin_ms"),
		    "lease_margin_ms (%d) must be at least a tenth of "
		    "lease_ttl_ms (%d) and less than half of it", margin, ttl);
		return -1;
	}
	if (*conf->fence_command != '\0' && *conf->fence_command != '/') {
		conf_error(ps, conf_line_of(ps, "fence_command"), "fence_command "
		    "must be an absolute path");
		return -1;
	}
	if (*conf->store_dir != '\0' && *conf->store_dir != '/') {
		conf_error(ps, conf_line_of(ps, "store_dir"), "store_dir must "
		    "be an absolute path");
		return -1;
	}
	if (strcmp(conf->store, "etcd") == 0 && *conf->etcd_endpoints ==
	    '\0' && strstr(conf->role, "coordinator") != NULL) {
		conf_error(ps, conf_line_of(ps, "store"), "store = etcd needs "
		    "etcd_endpoints");
		return -1;
	}
	if (conf->leader_ttl_ms != 0 && conf->leader_ttl_ms < 2000) {
		conf_error(ps, conf_line_of(ps, "leader_ttl_ms"),
		    "leader_ttl_ms (%d) must be 0 (lease_ttl_ms, or 5000 if "
		    "that is less) or at least 2000: etcd grants no shorter "
		    "lease",
		    conf->leader_ttl_ms);
		return -1;
	}
	/* A leader stops a quarter of its etcd lease before the end, counted
	 * from the last keepalive it sent (they go every third of the lease,
	 * 667 ms apart at most): when etcd stops answering it leads on for
	 * 3/4 of the lease less that.  etcd electing its raft leader takes a
	 * second or two (and renews every lease once done).  Under the
	 * agents' 2 s that left 0.83 s, less than many elections: the
	 * coordinator stopped granting, at times long enough for the agents'
	 * leases to end and their instances to stop.  5 s leaves 3.08 s. */
	if (conf->leader_ttl_ms == 0)
		conf->leader_ttl_ms = conf->lease_ttl_ms >
		    LEADER_TTL_AUTO_MIN_MS ? conf->lease_ttl_ms :
		    LEADER_TTL_AUTO_MIN_MS;
	conf->ncoordinators = conf_split_coordinators(conf->coordinator,
	    &conf->coordinators);
	for (k = 0; k < conf->ncoordinators; k++) {
		const char *c = conf->coordinators[k];

		if (strcmp(c, conf->host_name) == 0) {
			if (strstr(conf->role, "coordinator") != NULL)
				continue;
			conf_error(ps, conf_line_of(ps, "coordinator"),
			    "coordinator %s is this host, but role does not "
			    "include coordinator", c);
			return -1;
		}
		for (i = 0; i < conf->npeers; i++)
			if (strcmp(conf->peers[i].name, c) == 0)
				break;
		if (i == conf->npeers) {
			conf_error(ps, conf_line_of(ps, "coordinator"),
			    "coordinator %s is neither host_name nor one of "
			    "peers", c);
			return -1;
		}
	}
	return 0;
}

static int
conf_check_all(struct conf_parser *ps)
{
	struct conf		*conf = ps->conf;
	const struct conf_option *hb, *pt;
	size_t			 i, line;
	char			*q;

	for (i = 0; i < CONF_NOPTIONS; i++) {
		if (conf_options[i].required && ps->seen[i] == 0) {
			set_cause(ps->cause, "%s: %s is required", ps->file,
			    conf_options[i].name);
			return -1;
		}
	}

	for (i = 0; i < conf->npeers; i++) {
		if (strcmp(conf->peers[i].name, conf->host_name) != 0)
			continue;
		q = conf_quote(conf->peers[i].name, strlen(conf->peers[i].name),
		    1);
		conf_error(ps, ps->peer_lines[i], "peers: peer %s has the same "
		    "name as host_name", q);
		free(q);
		return -1;
	}

	if (conf_check_ha(ps) == -1)
		return -1;
	if (conf->peer_timeout_ms <= conf->heartbeat_interval_ms) {
		hb = conf_find_option("heartbeat_interval_ms",
		    strlen("heartbeat_interval_ms"));
		pt = conf_find_option("peer_timeout_ms",
		    strlen("peer_timeout_ms"));
		line = ps->seen[pt - conf_options];
		if (line == 0)
			line = ps->seen[hb - conf_options];
		conf_error(ps, line, "peer_timeout_ms (%d) must be greater than "
		    "heartbeat_interval_ms (%d)", conf->peer_timeout_ms,
		    conf->heartbeat_interval_ms);
		return -1;
	}
	return 0;
}

static struct conf *
conf_defaults(void)
{
	const struct conf_option	*opt;
	struct conf			*conf;
	char				*field;
	size_t				 i;

	conf = xcalloc(1, sizeof *conf);
	for (i = 0; i < CONF_NOPTIONS; i++) {
		opt = &conf_options[i];
		field = (char *)conf + opt->offset;
		switch (opt->type) {
		case CONF_INT:
		case CONF_BOOL:
			*(int *)(void *)field = (int)opt->def_number;
			break;
		case CONF_SIZE:
			*(size_t *)(void *)field = (size_t)opt->def_number;
			break;
		case CONF_STRING:
			if (opt->def_string != NULL)
				*(char **)(void *)field =
				    xstrdup(opt->def_string);
			break;
		case CONF_LIST:
			if (opt->def_list != NULL)
				conf_set_paths(conf, opt->def_list);
			break;
		}
	}
	return conf;
}

struct conf *
conf_parse(const char *text, size_t len, const char *filename, char **cause)
{
	struct conf_parser	 ps;
	const char		*nul, *s;
	size_t			 line;

	if (filename == NULL)
		filename = "(config)";
	if (text == NULL || len == 0) {
		text = "";
		len = 0;
	}
	memset(&ps, 0, sizeof ps);
	ps.file = filename;
	ps.p = text;
	ps.end = text + len;
	ps.line = 1;
	ps.cause = cause;
	ps.conf = conf_defaults();

	if ((nul = memchr(text, '\0', len)) != NULL) {
		line = 1;
		for (s = text; s < nul; s++) {
			if (*s == '\n')
				line++;
		}
		conf_error(&ps, line, "NUL byte in configuration");
		goto fail;
	}

	for (;;) {
		conf_skip(&ps, 1);
		if (ps.p == ps.end)
			break;
		if (conf_parse_line(&ps) != 0)
			goto fail;
	}
	if (conf_check_all(&ps) != 0)
		goto fail;

	free(ps.peer_lines);
	return ps.conf;

fail:
	free(ps.peer_lines);
	conf_free(ps.conf);
	return NULL;
}

struct conf *
conf_load(const char *path, char **cause)
{
	struct conf	*conf;
	char		*buf;
	size_t		 len;

	if ((buf = read_file_bounded(path, CONF_MAX_FILE_SIZE, &len,
	    cause)) == NULL)
		return NULL;
	conf = conf_parse(buf, len, path, cause);
	free(buf);
	return conf;
}

void
conf_free(struct conf *conf)
{
	size_t	i;

	if (conf == NULL)
		return;
	free(conf->host_name);
	free(conf->listen_address);
	for (i = 0; i < conf->npeers; i++) {
		free(conf->peers[i].name);
		free(conf->peers[i].address);
	}
	free(conf->peers);
	free(conf->ca_file);
	free(conf->cert_file);
	free(conf->key_file);
	free(conf->state_dir);
	free(conf->run_dir);
	free(conf->control_group);
	free(conf->criu_path);
	free(conf->libvirt_uri);
	free(conf->libvirt_socket);
	free(conf->log_filters);
	/* Trust boundaries. */
	free(conf->revoked_file);
	conf_set_paths(conf, NULL);
	/* High availability. */
	free(conf->role);
	free(conf->coordinator);
	conf_free_names(conf->coordinators, conf->ncoordinators);
	free(conf->store);
	free(conf->store_dir);
	free(conf->etcd_endpoints);
	free(conf->fence_command);
	free(conf);
}

void
conf_print_options(FILE *fp)
{
	const struct conf_option	*opt;
	char				 def[64], min[32], max[32];
	size_t				 i;

	fprintf(fp, "ternd configuration: one \"name = value\" per line, "
	    "'#' starts a comment.\n"
	    "Values: integer 7480; size 65536, 64K, 8M, 1G (k, m, g are "
	    "powers of 1024);\n"
	    "string \"text\" (escapes \\\" and \\\\); list [ \"a\", \"b\" ] "
	    "(may span lines);\nboolean true or false.\n\n");
	for (i = 0; i < CONF_NOPTIONS; i++) {
		opt = &conf_options[i];
		fprintf(fp, "%s (%s)\n", opt->name, conf_type_name(opt->type));

		switch (opt->type) {
		case CONF_INT:
		case CONF_SIZE:
			conf_format_number(def, sizeof def, opt->type,
			    opt->def_number);
			conf_format_number(min, sizeof min, opt->type, opt->min);
			conf_format_number(max, sizeof max, opt->type, opt->max);
			fprintf(fp, "    default: %s\n", def);
			fprintf(fp, "    allowed: %s..%s%s%s\n", min, max,
			    opt->rule != NULL ? ", " : "",
			    opt->rule != NULL ? opt->rule : "");
			break;
		case CONF_STRING:
			if (opt->required)
				fprintf(fp, "    default: none, required\n");
			else
				fprintf(fp, "    default: \"%s\"\n",
				    opt->def_string);
			if (opt->rule != NULL)
				fprintf(fp, "    allowed: %s\n", opt->rule);
			break;
		case CONF_LIST:
			if (opt->def_list != NULL) {
				const char *const *d;

				fprintf(fp, "    default: [");
				for (d = opt->def_list; *d != NULL; d++)
					fprintf(fp, "%s \"%s\"", d ==
					    opt->def_list ? "" : ",", *d);
				fprintf(fp, " ]\n");
			} else
				fprintf(fp, "    default: [] (empty)\n");
			if (opt->rule != NULL)
				fprintf(fp, "    allowed: %s\n", opt->rule);
			break;
		case CONF_BOOL:
			fprintf(fp, "    default: %s\n    allowed: true, false\n",
			    opt->def_number ? "true" : "false");
			break;
		}
		fprintf(fp, "    %s\n\n", opt->help);
	}
}
