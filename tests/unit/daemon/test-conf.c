#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/conf.h"
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

#define NAME	"t.conf"

static struct conf *
parse_ok(const char *text)
{
	struct conf	*conf;
	char		*cause = NULL;

	conf = conf_parse(text, strlen(text), NAME, &cause);
	if (conf == NULL)
		fail_msg("unexpected error: %s", cause);
	assert_null(cause);
	return conf;
}

/* The text must fail with a message starting "t.conf:LINE: " (or exactly
 * prefix, when line is 0) and containing every one of the parts. */
static void
expect_error(const char *text, size_t len, unsigned int line, ...)
{
	struct conf	*conf;
	char		*cause = NULL, prefix[64];
	const char	*part;
	va_list		 ap;

	conf = conf_parse(text, len, NAME, &cause);
	if (conf != NULL) {
		conf_free(conf);
		fail_msg("parsed, but expected an error on line %u", line);
	}
	assert_non_null(cause);
	if (line == 0)
		snprintf(prefix, sizeof prefix, "%s: ", NAME);
	else
		snprintf(prefix, sizeof prefix, "%s:%u: ", NAME, line);
	if (strncmp(cause, prefix, strlen(prefix)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", cause, prefix);
	va_start(ap, line);
	while ((part = va_arg(ap, const char *)) != NULL) {
		if (strstr(cause, part) == NULL)
			fail_msg("\"%s\" does not contain \"%s\"", cause, part);
	}
	va_end(ap);
	free(cause);
}

#define ERR(text, line, ...) \
	expect_error(text, strlen(text), line, __VA_ARGS__, (const char *)NULL)

/* The message must be exactly this. */
static void
expect_exact(const char *text, const char *message)
{
	struct conf	*conf;
	char		*cause = NULL;

	conf = conf_parse(text, strlen(text), NAME, &cause);
	if (conf != NULL) {
		conf_free(conf);
		fail_msg("parsed, but expected \"%s\"", message);
	}
	assert_non_null(cause);
	assert_string_equal(cause, message);
	free(cause);
}

static void
test_full(void **state)
{
	const char	*text =
	    "# ternd.conf\n"
	    "\n"
	    "host_name = \"alpha-1\"\n"
	    "listen_address = \"192.0.2.1\"\n"
	    "listen_port = 7000\n"
	    "peers = [ \"beta@192.0.2.2:7001\", \"gamma@gamma.example.org:7002\" ]\n"
	    "ca_file = \"/pki/ca.pem\"\n"
	    "cert_file = \"/pki/alpha.pem\"\n"
	    "key_file = \"/pki/alpha.key\"\n"
	    "state_dir = \"/srv/tern\"\n"
	    "run_dir = \"/tmp/tern-run\"\n"
	    "control_group = \"wheel\"\n"
	    "log_filters = \"tls:debug *:warn\"\n"
	    "max_frame_size = 2M\n"
	    "stream_window = 16M\n"
	    "send_buffer_max = 512K\n"
	    "heartbeat_interval_ms = 250\n"
	    "peer_timeout_ms = 2000\n"
	    "reconnect_max_ms = 30000\n";
	struct conf	*conf;

	conf = parse_ok(text);
	assert_string_equal(conf->host_name, "alpha-1");
	assert_string_equal(conf->listen_address, "192.0.2.1");
	assert_int_equal(conf->listen_port, 7000);
	assert_int_equal(conf->npeers, 2);
	assert_string_equal(conf->peers[0].name, "beta");
	assert_string_equal(conf->peers[0].address, "192.0.2.2");
	assert_int_equal(conf->peers[0].port, 7001);
	assert_string_equal(conf->peers[1].name, "gamma");
	assert_string_equal(conf->peers[1].address, "gamma.example.org");
	assert_int_equal(conf->peers[1].port, 7002);
	assert_string_equal(conf->ca_file, "/pki/ca.pem");
	assert_string_equal(conf->cert_file, "/pki/alpha.pem");
	assert_string_equal(conf->key_file, "/pki/alpha.key");
	assert_string_equal(conf->state_dir, "/srv/tern");
	assert_string_equal(conf->run_dir, "/tmp/tern-run");
	assert_string_equal(conf->control_group, "wheel");
	assert_string_equal(conf->log_filters, "tls:debug *:warn");
	assert_int_equal(conf->max_frame_size, 2 * 1024 * 1024);
	assert_int_equal(conf->stream_window, 16 * 1024 * 1024);
	assert_int_equal(conf->send_buffer_max, 512 * 1024);
	assert_int_equal(conf->heartbeat_interval_ms, 250);
	assert_int_equal(conf->peer_timeout_ms, 2000);
	assert_int_equal(conf->reconnect_max_ms, 30000);
	conf_free(conf);
}

static void
test_defaults(void **state)
{
	struct conf	*conf;

	conf = parse_ok("host_name = \"h\"");	/* no final newline */
	assert_string_equal(conf->host_name, "h");
	assert_string_equal(conf->listen_address, "0.0.0.0");
	assert_int_equal(conf->listen_port, 7480);
	assert_int_equal(conf->npeers, 0);
	assert_null(conf->peers);
	assert_string_equal(conf->ca_file, SYSCONFDIR "/tern/pki/ca.pem");
	assert_string_equal(conf->cert_file,
	    SYSCONFDIR "/tern/pki/host.pem");
	assert_string_equal(conf->key_file,
	    SYSCONFDIR "/tern/pki/host.key");
	assert_string_equal(conf->state_dir, LOCALSTATEDIR "/lib/tern");
	assert_string_equal(conf->run_dir, RUNSTATEDIR "/tern");
	assert_string_equal(conf->control_group, "tern");
	assert_string_equal(conf->log_filters, "info");
	assert_int_equal(conf->max_frame_size, 1024 * 1024);
	assert_int_equal(conf->stream_window, 8 * 1024 * 1024);
	assert_int_equal(conf->send_buffer_max, 8 * 1024 * 1024);
	assert_int_equal(conf->heartbeat_interval_ms, 1000);
	assert_int_equal(conf->peer_timeout_ms, 5000);
	assert_int_equal(conf->reconnect_max_ms, 10000);
	assert_int_equal(conf->criu_timeout_ms, 120000);
	assert_int_equal(conf->thread_pool_size, 16);
	assert_int_equal(conf->max_vm_migrations, 4);
	assert_int_equal(conf->max_pending_handshakes, 32);
	assert_int_equal(conf->handshake_timeout_ms, 2000);
	assert_int_equal(conf->max_incoming_vm_migrations, 4);
	assert_int_equal(conf->accept_test_streams, 0);
	assert_int_equal(conf->stopcopy_resume_early, 1);
	assert_string_equal(conf->revoked_file, SYSCONFDIR "/tern/pki/revoked");
	assert_int_equal(conf->nrootfs_allowed_prefixes, 2);
	assert_string_equal(conf->rootfs_allowed_prefixes[0], "/srv");
	assert_string_equal(conf->rootfs_allowed_prefixes[1],
	    LOCALSTATEDIR "/lib/tern/rootfs");
	conf_free(conf);
}

/* Issue 9: the trust-boundary options, their bounds and their lists. */
static void
test_trust_options(void **state)
{
	struct conf	*conf;

	(void)state;
	conf = parse_ok("host_name = \"h\"\n"
	    "max_pending_handshakes = 8\nhandshake_timeout_ms = 500\n"
	    "revoked_file = \"\"\n"
	    "rootfs_allowed_prefixes = [ \"/a\", \"/b/c/\" ]\n");
	assert_int_equal(conf->max_pending_handshakes, 8);
	assert_int_equal(conf->handshake_timeout_ms, 500);
	assert_string_equal(conf->revoked_file, "");
	assert_int_equal(conf->nrootfs_allowed_prefixes, 2);
	assert_string_equal(conf->rootfs_allowed_prefixes[1], "/b/c/");
	conf_free(conf);
	/* An empty list allows no rootfs anywhere. */
	conf = parse_ok("host_name = \"h\"\nrootfs_allowed_prefixes = []\n");
	assert_int_equal(conf->nrootfs_allowed_prefixes, 0);
	conf_free(conf);
	conf = parse_ok("host_name = \"h\"\nmax_incoming_vm_migrations = 64\n"
	    "accept_test_streams = true\n");
	assert_int_equal(conf->max_incoming_vm_migrations, 64);
	assert_int_equal(conf->accept_test_streams, 1);
	conf_free(conf);
	conf = parse_ok("host_name = \"h\"\naccept_test_streams = false\n");
	assert_int_equal(conf->accept_test_streams, 0);
	conf_free(conf);
	conf = parse_ok("host_name = \"h\"\nstopcopy_resume_early = false\n");
	assert_int_equal(conf->stopcopy_resume_early, 0);
	conf_free(conf);
	ERR("host_name = \"h\"\nmax_incoming_vm_migrations = 0\n", 2,
	    "max_incoming_vm_migrations: 0 is out of range (1..64)");
	ERR("host_name = \"h\"\naccept_test_streams = yes\n", 2,
	    "accept_test_streams: expected true or false, got bare word yes");
	ERR("host_name = \"h\"\naccept_test_streams = 1\n", 2,
	    "accept_test_streams: expected true or false, got a number");
	ERR("host_name = \"h\"\naccept_test_streams = \"true\"\n", 2,
	    "accept_test_streams: expected true or false, got a quoted string");
	ERR("host_name = \"h\"\nmax_pending_handshakes = 0\n", 2,
	    "max_pending_handshakes: 0 is out of range (1..1024)");
	ERR("host_name = \"h\"\nhandshake_timeout_ms = 60001\n", 2,
	    "handshake_timeout_ms: 60001 is out of range (100..60000)");
	ERR("host_name = \"h\"\nrootfs_allowed_prefixes = [\n\"/srv\",\n"
	    "\"srv\" ]\n", 4, "rootfs_allowed_prefixes:");
	ERR("host_name = \"h\"\nrootfs_allowed_prefixes = [ \"/srv/../etc\" ]\n",
	    2, "rootfs_allowed_prefixes: \"/srv/../etc\" has a \"..\" component");
	ERR("host_name = \"h\"\nrootfs_allowed_prefixes = \"/srv\"\n", 2,
	    "rootfs_allowed_prefixes: expected a list");
}

static void
test_size_suffixes(void **state)
{
	struct conf	*conf;

	conf = parse_ok("host_name = \"h\"\n"
	    "max_frame_size = 64k\n"
	    "stream_window = 256m\n"
	    "send_buffer_max = 1G\n");
	assert_int_equal(conf->max_frame_size, 64 * 1024);
	assert_int_equal(conf->stream_window, 256 * 1024 * 1024);
	assert_int_equal(conf->send_buffer_max, 1024 * 1024 * 1024);
	conf_free(conf);

	conf = parse_ok("host_name = \"h\"\n"
	    "max_frame_size = 65536\n"
	    "stream_window = 128M\n"
	    "send_buffer_max = 300K\n");
	assert_int_equal(conf->max_frame_size, 65536);
	assert_int_equal(conf->stream_window, 128 * 1024 * 1024);
	assert_int_equal(conf->send_buffer_max, 300 * 1024);
	conf_free(conf);
}

static void
test_size_suffixes_bad(void **state)
{
	ERR("host_name = \"h\"\nstream_window = 1g\n", 2,
	    "stream_window: 1g is out of range (64K..256M)");
	ERR("host_name = \"h\"\nmax_frame_size = 8X\n", 2,
	    "max_frame_size: \"8X\" is not a valid size");
	ERR("host_name = \"h\"\nmax_frame_size = 8MB\n", 2,
	    "max_frame_size: \"8MB\" is not a valid size");
	ERR("host_name = \"h\"\nmax_frame_size = M\n", 2,
	    "max_frame_size: expected a size", "bare word M");
	ERR("host_name = \"h\"\nlisten_port = 7k\n", 2,
	    "listen_port: \"7k\" is not a valid integer");
	ERR("host_name = \"h\"\nlisten_port = 1.5\n", 2,
	    "listen_port: \"1.5\" is not a valid integer");
	ERR("host_name = \"h\"\nlisten_port = -\n", 2,
	    "listen_port: \"-\" is not a valid integer");
}

static void
test_list_multiline(void **state)
{
	struct conf	*conf;

	conf = parse_ok("host_name = \"a\"\n"
	    "peers = [\n"
	    "    \"b@10.0.0.2:1\",   # first\n"
	    "\n"
	    "    # a comment line\n"
	    "    \"c@host-c:65535\",\n"
	    "]\n"
	    "listen_port = 1\n");
	assert_int_equal(conf->npeers, 2);
	assert_string_equal(conf->peers[0].name, "b");
	assert_string_equal(conf->peers[0].address, "10.0.0.2");
	assert_int_equal(conf->peers[0].port, 1);
	assert_string_equal(conf->peers[1].name, "c");
	assert_string_equal(conf->peers[1].address, "host-c");
	assert_int_equal(conf->peers[1].port, 65535);
	assert_int_equal(conf->listen_port, 1);
	conf_free(conf);

	conf = parse_ok("host_name = \"a\"\npeers = [ ]\n");
	assert_int_equal(conf->npeers, 0);
	conf_free(conf);
}

static void
test_strings(void **state)
{
	struct conf	*conf;

	conf = parse_ok("host_name = \"h\"   # the name\n"
	    "log_filters = \"a#b\" # not part of it\n"
	    "control_group = \"q\\\"uo\\\\te\"\n"
	    "listen_address = \"\tx y\"\n");
	assert_string_equal(conf->log_filters, "a#b");
	assert_string_equal(conf->control_group, "q\"uo\\te");
	assert_string_equal(conf->listen_address, "\tx y");
	conf_free(conf);

	ERR("host_name = \"h\"\nlog_filters = \"a\\nb\"\n", 2,
	    "log_filters: invalid escape \\n");
}

static void
test_whitespace(void **state)
{
	struct conf	*conf;

	conf = parse_ok("\r\n  host_name=\"h\"\r\n\tlisten_port\t=\t9\t\r\n"
	    "# end");
	assert_string_equal(conf->host_name, "h");
	assert_int_equal(conf->listen_port, 9);
	conf_free(conf);
}

static void
test_not_nul_terminated(void **state)
{
	const char	 text[] = "host_name = \"abc\"\nlisten_port = 12345678";
	struct conf	*conf;
	char		*cause = NULL, *copy;
	size_t		 len;

	/* Stop after "12": the rest of the buffer must not be read. */
	len = strlen(text) - 6;
	copy = xmalloc(len);
	memcpy(copy, text, len);
	conf = conf_parse(copy, len, NAME, &cause);
	assert_non_null(conf);
	assert_int_equal(conf->listen_port, 12);
	conf_free(conf);
	free(copy);

	/* Stop inside a string. */
	len = 15;
	copy = xmalloc(len);
	memcpy(copy, text, len);
	expect_error(copy, len, 1, "host_name: unterminated string", NULL);
	free(copy);

	/* Empty text. */
	expect_error("", 0, 0, "host_name is required", NULL);
}

static void
test_unknown_option(void **state)
{
	expect_exact("host_name = \"h\"\n\n# x\nlisten_prot = 1\n",
	    NAME ":4: unknown option \"listen_prot\" "
	    "(ternd --help-config lists them)");
}

static void
test_wrong_type(void **state)
{
	ERR("host_name = \"h\"\nlisten_port = \"7480\"\n", 2,
	    "listen_port: expected an integer, got a quoted string");
	ERR("host_name = alpha\n", 1,
	    "host_name: expected a quoted string, got bare word alpha");
	ERR("host_name = 12\n", 1,
	    "host_name: expected a quoted string, got a number");
	ERR("host_name = \"h\"\n\npeers = \"b@1.2.3.4:5\"\n", 3,
	    "peers: expected a list");
	ERR("host_name = [ \"h\" ]\n", 1,
	    "host_name: expected a quoted string, got a list");
	ERR("host_name = 'h'\n", 1, "host_name: expected a quoted string");
}

static void
test_out_of_range(void **state)
{
	expect_exact("host_name = \"h\"\nlisten_port = 70000\n",
	    NAME ":2: listen_port: 70000 is out of range (1..65535)");
	ERR("host_name = \"h\"\nlisten_port = 0\n", 2,
	    "listen_port: 0 is out of range (1..65535)");
	ERR("host_name = \"h\"\nlisten_port = -5\n", 2,
	    "listen_port: -5 is out of range (1..65535)");
	ERR("host_name = \"h\"\nlisten_port = "
	    "999999999999999999999999999999999999\n", 2,
	    "listen_port: 9999", "is out of range (1..65535)");
	ERR("host_name = \"h\"\nmax_frame_size = 32K\n", 2,
	    "max_frame_size: 32K is out of range (64K..16M)");
	ERR("host_name = \"h\"\nmax_frame_size = 17M\n", 2,
	    "max_frame_size: 17M is out of range (64K..16M)");
	ERR("host_name = \"h\"\nsend_buffer_max = 2G\n", 2,
	    "send_buffer_max: 2G is out of range (256K..1G)");
	ERR("host_name = \"h\"\nsend_buffer_max = 99999999999999G\n", 2,
	    "send_buffer_max: 99999999999999G is out of range");
	ERR("host_name = \"h\"\nheartbeat_interval_ms = 49\n", 2,
	    "heartbeat_interval_ms: 49 is out of range (50..60000)");
	ERR("host_name = \"h\"\ncriu_timeout_ms = 999\n", 2,
	    "criu_timeout_ms: 999 is out of range (1000..86400000)");
	ERR("host_name = \"h\"\nthread_pool_size = 2\n", 2,
	    "thread_pool_size: 2 is out of range (4..128)");
	ERR("host_name = \"h\"\nmax_vm_migrations = 0\n", 2,
	    "max_vm_migrations: 0 is out of range (1..64)");
	ERR("host_name = \"h\"\npeer_timeout_ms = 600001\n", 2,
	    "peer_timeout_ms: 600001 is out of range (200..600000)");
	ERR("host_name = \"h\"\nreconnect_max_ms = 99\n", 2,
	    "reconnect_max_ms: 99 is out of range (100..600000)");
}

/* The HA options: each bad value, and the options that must agree. */
static void
test_ha(void **state)
{
	struct conf	*conf;
	char		*cause = NULL;
	const char	*good = "host_name = \"h1\"\npeers = [\"h2@10.0.0.2:7480\"]\n"
	    "coordinator = \"h2\"\nlease_ttl_ms = 3000\n"
	    "lease_margin_ms = 400\n";

	(void)state;
	conf = conf_parse(good, strlen(good), NAME, &cause);
	if (conf == NULL)
		fail_msg("%s", cause);
	assert_string_equal(conf->role, "agent");
	assert_string_equal(conf->coordinator, "h2");
	assert_string_equal(conf->store, "journal");
	assert_int_equal(conf->lease_ttl_ms, 3000);
	assert_int_equal(conf->ncoordinators, 1);
	assert_string_equal(conf->coordinators[0], "h2");
	/* 0, the default: lease_ttl_ms, but 5 s at least (an etcd
	 * election must not stop the coordinator). */
	assert_int_equal(conf->leader_ttl_ms, 5000);
	conf_free(conf);
	{
		const char *two = "host_name = \"h1\"\n"
		    "role = \"agent+coordinator\"\n"
		    "peers = [\"h2@10.0.0.2:7480\", \"h3@10.0.0.3:7480\"]\n"
		    "coordinator = \"h3,h1\"\nleader_ttl_ms = 2000\n";

		conf = conf_parse(two, strlen(two), NAME, &cause);
		if (conf == NULL)
			fail_msg("%s", cause);
		assert_string_equal(conf->coordinator, "h3,h1");
		assert_int_equal(conf->ncoordinators, 2);
		assert_string_equal(conf->coordinators[0], "h3");
		assert_string_equal(conf->coordinators[1], "h1");
		assert_int_equal(conf->leader_ttl_ms, 2000);
		conf_free(conf);
	}
	{
		/* A lease shorter than etcd grants is fine for the agents:
		 * the leader's own lease is the longer default.  A longer
		 * one is the default itself. */
		const char *etcd = "host_name = \"h\"\n"
		    "role = \"coordinator\"\nstore = \"etcd\"\n"
		    "etcd_endpoints = \"http://127.0.0.1:2379\"\n"
		    "lease_ttl_ms = 1000\nlease_margin_ms = 200\n";
		const char *slow = "host_name = \"h\"\nlease_ttl_ms = 8000\n"
		    "lease_margin_ms = 1000\n";

		conf = conf_parse(etcd, strlen(etcd), NAME, &cause);
		if (conf == NULL)
			fail_msg("%s", cause);
		assert_int_equal(conf->leader_ttl_ms, 5000);
		conf_free(conf);
		conf = conf_parse(slow, strlen(slow), NAME, &cause);
		if (conf == NULL)
			fail_msg("%s", cause);
		assert_int_equal(conf->leader_ttl_ms, 8000);
		conf_free(conf);
	}
	ERR("host_name = \"h\"\nrole = \"boss\"\n", 2,
	    "\"boss\" is not agent, coordinator or agent+coordinator");
	ERR("host_name = \"h\"\nstore = \"zk\"\n", 2,
	    "\"zk\" is not journal or etcd");
	ERR("host_name = \"h\"\ncoordinator = \"h9\"\n", 2,
	    "coordinator h9 is neither host_name nor one of peers");
	ERR("host_name = \"h\"\ncoordinator = \"h\"\n", 2,
	    "role does not include coordinator");
	/* A list of coordinators (a standby): each known, none twice, a
	 * bounded number. */
	ERR("host_name = \"h\"\npeers = [\"h2@10.0.0.2:7480\"]\n"
	    "coordinator = \"h2,h9\"\n", 3,
	    "coordinator h9 is neither host_name nor one of peers");
	ERR("host_name = \"h\"\npeers = [\"h2@10.0.0.2:7480\"]\n"
	    "coordinator = \"h2,h2\"\n", 3,
	    "coordinator h2 is listed twice");
	ERR("host_name = \"h\"\ncoordinator = \"h2,,h3\"\n", 2,
	    "\"\" is not a valid host name");
	ERR("host_name = \"h\"\ncoordinator = \"a,b,c,d,e,f,g,i,j\"\n", 2,
	    "9 coordinators: at most 8");
	ERR("host_name = \"h\"\nleader_ttl_ms = 1000\n", 2,
	    "leader_ttl_ms (1000) must be 0 (lease_ttl_ms, or 5000 if that "
	    "is less) or at least 2000");
	ERR("host_name = \"h\"\nlease_margin_ms = 100\n", 2,
	    "lease_margin_ms (100) must be at least a tenth");
	ERR("host_name = \"h\"\nlease_margin_ms = 1000\n", 2,
	    "less than half of it");
	ERR("host_name = \"h\"\nlease_ttl_ms = 100\n", 2,
	    "lease_ttl_ms: 100 is out of range (500..60000)");
	ERR("host_name = \"h\"\nrole = \"coordinator\"\nstore = \"etcd\"\n",
	    3, "store = etcd needs etcd_endpoints");
	ERR("host_name = \"h\"\nstore_dir = \"rel\"\n", 2,
	    "store_dir must be an absolute path");
	ERR("host_name = \"h\"\nfence_command = \"ipmi-off\"\n", 2,
	    "fence_command must be an absolute path");
}

static void
test_duplicate(void **state)
{
	expect_exact("host_name = \"h\"\nlisten_port = 1\n\nlisten_port = 1\n",
	    NAME ":4: listen_port: duplicate option (first set on line 2)");
	ERR("host_name = \"h\"\nhost_name = \"h\"\n", 2,
	    "host_name: duplicate option");
}

static void
test_required(void **state)
{
	expect_exact("listen_port = 1\n", NAME ": host_name is required");
	expect_exact("# nothing\n\n", NAME ": host_name is required");
}

static void
test_malformed(void **state)
{
	ERR("host_name = \"h\"\nlisten_port 7480\n", 2,
	    "malformed line", "\"=\" after listen_port");
	ERR("host_name = \"h\"\nlisten_port\n", 2,
	    "malformed line", "listen_port");
	ERR("host_name = \"h\"\n= 5\n", 2, "malformed line");
	ERR("host_name = \"h\"\n\"x\" = 5\n", 2, "malformed line");
	ERR("host_name = \"h\"\n9x = 5\n", 2, "malformed line");
	ERR("host_name = \"h\"\nlisten_port =\n", 2,
	    "listen_port: missing value (expected an integer)");
	ERR("host_name = \"h\"\nlisten_port = # none\n", 2,
	    "listen_port: missing value");
	ERR("host_name = \"h\"\nlisten_port =", 2,
	    "listen_port: missing value");
	ERR("host_name = \"h\"\nlisten_port = 1 2\n", 2,
	    "listen_port: unexpected text after the value");
	ERR("host_name = \"h\" \"i\"\n", 1,
	    "host_name: unexpected text after the value");
	ERR("host_name = \"h\"\npeers = [ ] x\n", 2,
	    "peers: unexpected text after the value");
}

static void
test_unterminated(void **state)
{
	ERR("\nhost_name = \"abc\n\"\n", 2, "host_name: unterminated string");
	ERR("host_name = \"abc\\\"", 1, "host_name: unterminated string");
	ERR("host_name = \"abc\\", 1, "host_name: unterminated string");
	ERR("host_name = \"h\"\npeers = [ \"b@1.2.3.4:5\",\n\n  # c\n", 2,
	    "peers: unterminated list");
	ERR("host_name = \"h\"\npeers = [", 2, "peers: unterminated list");
	ERR("host_name = \"h\"\npeers = [\n \"b@1.2.3.4:5\n ]\n", 3,
	    "peers: unterminated string");
	/* A list left open runs into the next option. */
	ERR("host_name = \"h\"\npeers = [ \"b@1.2.3.4:5\"\n"
	    "listen_port = 1\n", 3,
	    "peers: expected ',' or ']'", "list started on line 2");
	ERR("host_name = \"h\"\npeers = [ \"b@1.2.3.4:5\",\n"
	    "listen_port = 1\n", 3,
	    "peers: expected a quoted string or ']'",
	    "list started on line 2");
	ERR("host_name = \"h\"\npeers = [ \"b@1.2.3.4:5\" \"c@1.2.3.4:5\" ]\n",
	    2, "peers: expected ',' or ']'");
}

static void
test_nul_byte(void **state)
{
	const char	text[] = "host_name = \"h\"\n\nlisten_port = 1\0\n";
	const char	text2[] = "host\0_name = \"h\"\n";
	const char	text3[] = "host_name = \"h\0\"\n";

	expect_error(text, sizeof text - 1, 3, "NUL byte", NULL);
	expect_error(text2, sizeof text2 - 1, 1, "NUL byte", NULL);
	expect_error(text3, sizeof text3 - 1, 1, "NUL byte", NULL);
}

static void
test_host_name(void **state)
{
	struct conf	*conf;
	char		 text[128];

	conf = parse_ok("host_name = \"0-a-9\"\n");
	conf_free(conf);

	snprintf(text, sizeof text, "host_name = \"%.63s\"\n",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	conf = parse_ok(text);
	assert_int_equal(strlen(conf->host_name), 63);
	conf_free(conf);

	snprintf(text, sizeof text, "host_name = \"%.64s\"\n",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	ERR(text, 1, "host_name: ", "is not a valid host name",
	    "1..63 characters of a-z, 0-9 and '-'");
	ERR("host_name = \"Alpha\"\n", 1,
	    "host_name: \"Alpha\" is not a valid host name");
	ERR("host_name = \"-a\"\n", 1, "host_name: \"-a\" is not a valid");
	ERR("host_name = \"a-\"\n", 1, "host_name: \"a-\" is not a valid");
	ERR("host_name = \"a.b\"\n", 1, "host_name: \"a.b\" is not a valid");
	ERR("host_name = \"\"\n", 1, "host_name: \"\" is not a valid");
	ERR("host_name = \"a\x01\"\n", 1,
	    "host_name: \"a\\x01\" is not a valid");
}

static void
test_string_rules(void **state)
{
	ERR("host_name = \"h\"\nlisten_address = \"\"\n", 2,
	    "listen_address: must not be empty");
	ERR("host_name = \"h\"\nca_file = \"\"\n", 2,
	    "ca_file: must not be empty");
	ERR("host_name = \"h\"\nstate_dir = \"var/lib/tern\"\n", 2,
	    "state_dir: \"var/lib/tern\" is not an absolute path");
	ERR("host_name = \"h\"\nrun_dir = \"\"\n", 2,
	    "run_dir: \"\" is not an absolute path");
}

static void
test_peers_bad(void **state)
{
	ERR("host_name = \"a\"\npeers = [ \"b-1.2.3.4:5\" ]\n", 2,
	    "peers: \"b-1.2.3.4:5\" is not \"NAME@ADDRESS:PORT\"");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.4\" ]\n", 2,
	    "is not \"NAME@ADDRESS:PORT\"");
	ERR("host_name = \"a\"\npeers = [ \"b:5@1.2.3.4\" ]\n", 2,
	    "is not \"NAME@ADDRESS:PORT\"");
	ERR("host_name = \"a\"\npeers = [\n\"b@1.2.3.4:5\",\n"
	    "\"B@1.2.3.4:5\" ]\n", 4,
	    "peers: \"B@1.2.3.4:5\": peer name \"B\" is not valid");
	ERR("host_name = \"a\"\npeers = [ \"@1.2.3.4:5\" ]\n", 2,
	    "peer name \"\" is not valid");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.256:5\" ]\n", 2,
	    "address \"1.2.3.256\" is not an IPv4 address or a host name");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3:5\" ]\n", 2,
	    "address \"1.2.3\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@01.2.3.4:5\" ]\n", 2,
	    "address \"01.2.3.4\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@:5\" ]\n", 2,
	    "address \"\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@-x.example:5\" ]\n", 2,
	    "address \"-x.example\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@x..example:5\" ]\n", 2,
	    "address \"x..example\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@x_y:5\" ]\n", 2,
	    "address \"x_y\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@::1:5\" ]\n", 2,
	    "address \"::1\" is not");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.4:0\" ]\n", 2,
	    "peers: \"b@1.2.3.4:0\": port \"0\" is not in 1..65535");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.4:65536\" ]\n", 2,
	    "port \"65536\" is not in 1..65535");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.4:\" ]\n", 2,
	    "port \"\" is not in 1..65535");
	ERR("host_name = \"a\"\npeers = [ \"b@1.2.3.4:+5\" ]\n", 2,
	    "port \"+5\" is not in 1..65535");
}

static void
test_peers_duplicate(void **state)
{
	expect_exact("host_name = \"a\"\npeers = [\n  \"b@1.2.3.4:5\",\n"
	    "  \"c@1.2.3.5:5\",\n  \"b@1.2.3.6:5\",\n]\n",
	    NAME ":5: peers: duplicate peer name \"b\" (also on line 3)");
}

static void
test_peers_self(void **state)
{
	/* host_name may come after peers; the line is the peer's. */
	expect_exact("peers = [ \"b@1.2.3.4:5\",\n  \"a@1.2.3.5:5\" ]\n"
	    "host_name = \"a\"\n",
	    NAME ":2: peers: peer \"a\" has the same name as host_name");
}

static void
test_peers_max(void **state)
{
	struct conf	*conf;
	char		*text, *p;
	size_t		 size = (CONF_MAX_PEERS + 2) * 40;
	int		 i, n, last = CONF_MAX_PEERS - 1;
	char		 name[16], addr[20];

	/* A coordinator lists every agent: 4096 of them. */
	assert_int_equal(CONF_MAX_PEERS, 4096);
	for (n = CONF_MAX_PEERS; n <= CONF_MAX_PEERS + 1; n++) {
		p = text = xmalloc(size);
		p += sprintf(p, "host_name = \"h\"\npeers = [\n");
		for (i = 0; i < n; i++)
			p += sprintf(p, "\"p%d@10.0.%d.%d:%d\",\n", i, i / 256,
			    i % 256, 1000 + i);
		sprintf(p, "]\n");
		if (n == CONF_MAX_PEERS) {
			conf = parse_ok(text);
			assert_int_equal(conf->npeers, CONF_MAX_PEERS);
			snprintf(name, sizeof name, "p%d", last);
			snprintf(addr, sizeof addr, "10.0.%d.%d", last / 256,
			    last % 256);
			assert_string_equal(conf->peers[last].name, name);
			assert_string_equal(conf->peers[last].address, addr);
			assert_int_equal(conf->peers[last].port, 1000 + last);
			conf_free(conf);
		} else {
			/* the 4097th peer is on line 2 + 4097 */
			ERR(text, 2 + CONF_MAX_PEERS + 1,
			    "peers: too many peers (at most 4096)");
		}
		free(text);
	}
}

static void
test_timeouts(void **state)
{
	struct conf	*conf;

	expect_exact("host_name = \"h\"\nheartbeat_interval_ms = 500\n"
	    "peer_timeout_ms = 500\n",
	    NAME ":3: peer_timeout_ms (500) must be greater than "
	    "heartbeat_interval_ms (500)");
	/* Only the heartbeat is set: its line is named. */
	ERR("host_name = \"h\"\n\nheartbeat_interval_ms = 6000\n", 3,
	    "peer_timeout_ms (5000) must be greater than "
	    "heartbeat_interval_ms (6000)");
	/* Order in the file does not matter. */
	ERR("peer_timeout_ms = 300\nhost_name = \"h\"\n", 1,
	    "peer_timeout_ms (300) must be greater than "
	    "heartbeat_interval_ms (1000)");

	conf = parse_ok("host_name = \"h\"\nheartbeat_interval_ms = 500\n"
	    "peer_timeout_ms = 501\n");
	assert_int_equal(conf->peer_timeout_ms, 501);
	conf_free(conf);
}

static void
test_long_lines(void **state)
{
	struct conf	*conf;
	char		*text;
	size_t		 n = 200000, len;

	text = xmalloc(2 * n + 100);
	len = (size_t)sprintf(text, "host_name = \"h\" #");
	memset(text + len, 'x', n);
	len += n;
	len += (size_t)sprintf(text + len, "\nlog_filters = \"");
	memset(text + len, 'y', n);
	len += n;
	len += (size_t)sprintf(text + len, "\"\n");
	conf = conf_parse(text, len, NAME, NULL);
	assert_non_null(conf);
	assert_int_equal(strlen(conf->log_filters), n);
	conf_free(conf);

	/* A long unknown name is shortened in the message. */
	memset(text, 'z', n);
	len = n + (size_t)sprintf(text + n, " = 1\n");
	expect_error(text, len, 1, "unknown option \"zzzz", "...", NULL);
	free(text);
}

static void
test_garbage(void **state)
{
	struct conf	*conf;
	char		 buf[256], *cause;
	static const char alphabet[] = "a_=\"\\[],#\n 1kM@:.-\r\t\x80";
	unsigned int	 seed = 1;
	size_t		 i, len;
	int		 round;

	for (round = 0; round < 20000; round++) {
		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % sizeof buf;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			if (round % 2 == 0)
				buf[i] = (char)(seed >> 16);
			else
				buf[i] = alphabet[(seed >> 16) %
				    (sizeof alphabet - 1)];
		}
		cause = NULL;
		conf = conf_parse(buf, len, NAME, &cause);
		assert_true((conf == NULL) == (cause != NULL));
		if (cause != NULL)
			assert_int_equal(strncmp(cause, NAME ":", 7), 0);
		conf_free(conf);
		free(cause);
	}
}

static void
test_load(void **state)
{
	struct conf	*conf;
	char		 path[] = "/tmp/test-conf.XXXXXX", *cause = NULL;
	char		*big, *expected;
	FILE		*fp;
	int		 fd;

	conf = conf_load("/nonexistent/ternd.conf", &cause);
	assert_null(conf);
	assert_string_equal(cause,
	    "/nonexistent/ternd.conf: No such file or directory");
	free(cause);
	cause = NULL;

	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(fp = fdopen(fd, "w"));
	fprintf(fp, "host_name = \"h\"\nlisten_port = 99999\n");
	fclose(fp);
	conf = conf_load(path, &cause);
	assert_null(conf);
	xasprintf(&expected, "%s:2: listen_port: 99999 is out of range "
	    "(1..65535)", path);
	assert_string_equal(cause, expected);
	free(expected);
	free(cause);
	cause = NULL;

	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "host_name = \"h\"\nlisten_port = 9999\n");
	fclose(fp);
	conf = conf_load(path, &cause);
	assert_non_null(conf);
	assert_int_equal(conf->listen_port, 9999);
	conf_free(conf);

	/* Just over 1 MiB of comment. */
	big = xmalloc(CONF_MAX_FILE_SIZE + 1);
	memset(big, '#', CONF_MAX_FILE_SIZE + 1);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(big, 1, CONF_MAX_FILE_SIZE + 1, fp),
	    CONF_MAX_FILE_SIZE + 1);
	fclose(fp);
	conf = conf_load(path, &cause);
	assert_null(conf);
	xasprintf(&expected, "%s: file is larger than 1 MiB", path);
	assert_string_equal(cause, expected);
	free(expected);
	free(cause);
	cause = NULL;

	/* Exactly 1 MiB is fine (host_name then comment). */
	memcpy(big, "host_name = \"h\"\n", 16);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(big, 1, CONF_MAX_FILE_SIZE, fp),
	    CONF_MAX_FILE_SIZE);
	fclose(fp);
	conf = conf_load(path, &cause);
	assert_non_null(conf);
	conf_free(conf);
	free(big);

	unlink(path);

	conf = conf_load("/", &cause);
	assert_null(conf);
	assert_string_equal(cause, "/: Is a directory");
	free(cause);
}

static void
test_print_options(void **state)
{
	static const char *names[] = {
		"host_name", "listen_address", "listen_port", "peers",
		"ca_file", "cert_file", "key_file", "state_dir", "run_dir",
		"control_group", "log_filters", "max_frame_size",
		"stream_window", "send_buffer_max", "heartbeat_interval_ms",
		"peer_timeout_ms", "reconnect_max_ms", "thread_pool_size",
		"max_vm_migrations",
	};
	char		*buf = NULL, needle[64];
	size_t		 size = 0, i;
	FILE		*fp;

	assert_non_null(fp = open_memstream(&buf, &size));
	conf_print_options(fp);
	fclose(fp);
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(needle, sizeof needle, "\n%s (", names[i]);
		if (strstr(buf, needle) == NULL)
			fail_msg("%s missing from conf_print_options", names[i]);
	}
	assert_non_null(strstr(buf, "64K..16M"));
	assert_non_null(strstr(buf, "1..65535"));
	assert_non_null(strstr(buf, "default: 7480"));
	assert_non_null(strstr(buf, "default: \"0.0.0.0\""));
	free(buf);

	conf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_suffixes_bad),
		cmocka_unit_test(test_list_multiline),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_ha),
		cmocka_unit_test(test_trust_options),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_unterminated),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_host_name),
		cmocka_unit_test(test_string_rules),
		cmocka_unit_test(test_peers_bad),
		cmocka_unit_test(test_peers_duplicate),
		cmocka_unit_test(test_peers_self),
		cmocka_unit_test(test_peers_max),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_print_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
