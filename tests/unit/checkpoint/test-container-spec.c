#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "checkpoint/confine.h"
#include "checkpoint/container-spec.h"
#include "daemon/conf.h"
#include "daemon/xmalloc.h"

#define BASE	"/srv/tern/specs"

/* A spec with every key tern knows. */
static const char full_spec[] =
    "{\n"
    "  \"ociVersion\": \"1.0.2\",\n"
    "  \"process\": {\n"
    "    \"args\": [\"/bin/memcheck\", \"64\", \"/var/log/state\"],\n"
    "    \"env\": [\"PATH=/usr/bin:/bin\", \"HOME=/root\", \"EMPTY=\"],\n"
    "    \"cwd\": \"/var/log\"\n"
    "  },\n"
    "  \"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
    "  \"hostname\": \"web-1.example\",\n"
    "  \"linux\": {\n"
    "    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"mount\"},\n"
    "      {\"type\": \"uts\"}, {\"type\": \"ipc\"}, {\"type\": \"network\"}],\n"
    "    \"resources\": {\n"
    "      \"memory\": {\"limit\": 268435456},\n"
    "      \"cpu\": {\"shares\": 512, \"quota\": 50000, \"period\": 100000},\n"
    "      \"pids\": {\"limit\": 64}\n"
    "    }\n"
    "  },\n"
    "  \"tern\": {\"shared_storage\": true}\n"
    "}\n";

static struct container_spec *
parse_ok(const char *text, const char *base)
{
	struct container_spec	*spec;
	char			*cause = NULL;

	spec = container_spec_parse(text, strlen(text), base, &cause);
	if (spec == NULL)
		fail_msg("unexpected error: %s", cause);
	assert_null(cause);
	return spec;
}

/* The text must fail with exactly this message. */
static void
expect_len(const char *text, size_t len, const char *base,
    const char *message)
{
	struct container_spec	*spec;
	char			*cause = NULL;

	spec = container_spec_parse(text, len, base, &cause);
	if (spec != NULL) {
		container_spec_free(spec);
		fail_msg("parsed, but expected \"%s\"", message);
	}
	assert_non_null(cause);
	if (strcmp(cause, message) != 0)
		fail_msg("got \"%s\"\nwanted \"%s\"", cause, message);
	free(cause);
}

static void
expect_base(const char *text, const char *base, const char *message)
{
	expect_len(text, strlen(text), base, message);
}

static void
expect(const char *text, const char *message)
{
	expect_len(text, strlen(text), BASE, message);
}

/* A minimal valid spec with extra text spliced in at the top level. */
static char *
with_top(const char *extra)
{
	char	*s;

	xasprintf(&s, "{\"process\": {\"args\": [\"sh\"]}, \"root\": "
	    "{\"path\": \"/r\"}%s}", extra);
	return s;
}

static void
expect_top(const char *extra, const char *message)
{
	char	*s = with_top(extra);

	expect(s, message);
	free(s);
}

static void
test_full(void **state)
{
	struct container_spec	*spec;

	(void)state;
	spec = parse_ok(full_spec, BASE);
	assert_int_equal(spec->nargs, 3);
	assert_string_equal(spec->args[0], "/bin/memcheck");
	assert_string_equal(spec->args[2], "/var/log/state");
	assert_null(spec->args[3]);
	assert_int_equal(spec->nenv, 3);
	assert_string_equal(spec->env[1], "HOME=/root");
	assert_string_equal(spec->env[2], "EMPTY=");
	assert_null(spec->env[3]);
	assert_string_equal(spec->cwd, "/var/log");
	assert_string_equal(spec->root, BASE "/rootfs");
	assert_true(spec->root_readonly);
	assert_string_equal(spec->hostname, "web-1.example");
	assert_true(spec->net_ns);
	assert_int_equal(spec->memory_limit, 268435456);
	assert_int_equal(spec->cpu_shares, 512);
	assert_int_equal(spec->cpu_quota, 50000);
	assert_int_equal(spec->cpu_period, 100000);
	assert_int_equal(spec->pids_limit, 64);
	assert_true(spec->shared_storage);
	assert_string_equal(container_spec_path(spec), "/usr/bin:/bin");
	container_spec_free(spec);
}

static void
test_minimal_defaults(void **state)
{
	struct container_spec	*spec;

	(void)state;
	spec = parse_ok("{\"process\":{\"args\":[\"sh\"]},"
	    "\"root\":{\"path\":\"/srv/c/rootfs/\"}}", NULL);
	assert_int_equal(spec->nargs, 1);
	assert_int_equal(spec->nenv, 0);
	assert_non_null(spec->env);
	assert_null(spec->env[0]);
	assert_string_equal(spec->cwd, "/");
	assert_string_equal(spec->root, "/srv/c/rootfs");
	assert_false(spec->root_readonly);
	assert_null(spec->hostname);
	assert_false(spec->net_ns);
	assert_int_equal(spec->memory_limit, -1);
	assert_int_equal(spec->cpu_shares, 0);
	assert_int_equal(spec->cpu_quota, -1);
	assert_int_equal(spec->cpu_period, 0);
	assert_int_equal(spec->pids_limit, -1);
	assert_false(spec->shared_storage);
	assert_int_equal(spec->unconfined, 0);
	assert_string_equal(container_spec_path(spec),
	    CONTAINER_SPEC_DEFAULT_PATH);
	container_spec_free(spec);

	/* -1 is "no limit" where a limit is allowed. */
	spec = parse_ok("{\"process\":{\"args\":[\"sh\"]},\"root\":{\"path\":"
	    "\"/r\"},\"linux\":{\"resources\":{\"memory\":{\"limit\":-1},"
	    "\"cpu\":{\"quota\":-1},\"pids\":{\"limit\":-1}}}}", NULL);
	assert_int_equal(spec->memory_limit, -1);
	assert_int_equal(spec->cpu_quota, -1);
	assert_int_equal(spec->pids_limit, -1);
	container_spec_free(spec);
}

static void
test_args(void **state)
{
	(void)state;
	expect("{\"process\": {}, \"root\": {\"path\": \"/r\"}}",
	    "process.args: is required (the command to run, as a non-empty "
	    "array of strings)");
	expect("{\"process\": {\"args\": []}, \"root\": {\"path\": \"/r\"}}",
	    "process.args: must be a non-empty array of strings");
	expect("{\"process\": {\"args\": \"sh\"}, \"root\": {\"path\": "
	    "\"/r\"}}", "process.args: must be a non-empty array of strings");
	expect("{\"process\": {\"args\": [\"sh\", 1]}, \"root\": {\"path\": "
	    "\"/r\"}}", "process.args: must be a non-empty array of strings "
	    "(process.args[1] is a number)");
	expect("{\"process\": {\"args\": [\"sh\", null]}, \"root\": "
	    "{\"path\": \"/r\"}}", "process.args: must be a non-empty array "
	    "of strings (process.args[1] is null)");
	expect("{\"process\": {\"args\": [\"\"]}, \"root\": {\"path\": "
	    "\"/r\"}}", "process.args[0]: must not be empty");
	expect("{\"process\": {\"args\": [\"a\\u0000b\"]}, \"root\": "
	    "{\"path\": \"/r\"}}",
	    "process.args[0]: must not contain a NUL character");
	expect("{\"root\": {\"path\": \"/r\"}}",
	    "process: is required (with process.args, the command to run)");
	expect("{\"process\": [\"sh\"], \"root\": {\"path\": \"/r\"}}",
	    "process: must be an object");
}

static void
test_bad_types(void **state)
{
	(void)state;
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"/r\", \"readonly\": \"yes\"}}",
	    "root.readonly: must be true or false");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": 7}}",
	    "root.path: must be a string");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {}}",
	    "root.path: is required (the container's root directory)");
	expect("{\"process\": {\"args\": [\"sh\"]}}",
	    "root: is required (with root.path, the container's root "
	    "directory)");
	expect("{\"process\": {\"args\": [\"sh\"], \"cwd\": \"tmp\"}, "
	    "\"root\": {\"path\": \"/r\"}}",
	    "process.cwd: must be an absolute path inside the container");
	expect("{\"process\": {\"args\": [\"sh\"], \"env\": \"A=1\"}, "
	    "\"root\": {\"path\": \"/r\"}}",
	    "process.env: must be an array of strings");
	expect("{\"process\": {\"args\": [\"sh\"], \"env\": [\"A=1\", "
	    "\"NOVALUE\"]}, \"root\": {\"path\": \"/r\"}}",
	    "process.env[1]: must be \"NAME=VALUE\" with a non-empty NAME");
	expect("{\"process\": {\"args\": [\"sh\"], \"env\": [\"=x\"]}, "
	    "\"root\": {\"path\": \"/r\"}}",
	    "process.env[0]: must be \"NAME=VALUE\" with a non-empty NAME");
	expect("{\"process\": {\"args\": [\"sh\"], \"env\": [\"A=1\", "
	    "\"B=2\", \"A=3\"]}, \"root\": {\"path\": \"/r\"}}",
	    "process.env[2]: A is already set by process.env[0]");
	expect_top(", \"ociVersion\": 1", "ociVersion: must be a string");
	expect_top(", \"hostname\": 5", "hostname: must be a string");
	expect_top(", \"hostname\": \"-bad\"", "hostname: \"-bad\" is not a "
	    "valid host name (1..64 of A-Z, a-z, 0-9, '-' and '.', not "
	    "starting with '-' or '.')");
	expect_top(", \"hostname\": \"a b\"", "hostname: \"a b\" is not a "
	    "valid host name (1..64 of A-Z, a-z, 0-9, '-' and '.', not "
	    "starting with '-' or '.')");
	expect_top(", \"tern\": {\"shared_storage\": 1}",
	    "tern.shared_storage: must be true or false");
	expect_top(", \"tern\": true", "tern: must be an object");
	expect_top(", \"linux\": {\"resources\": {\"memory\": {\"limit\": "
	    "\"1G\"}}}", "linux.resources.memory.limit: must be an integer "
	    "(or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"memory\": {\"limit\": "
	    "1.5e9}}}", "linux.resources.memory.limit: must be an integer "
	    "(or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"memory\": {\"limit\": "
	    "4096}}}", "linux.resources.memory.limit: 4096 is out of range "
	    "(1048576..1125899906842624, or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"memory\": {\"limit\": "
	    "99999999999999999999999}}}", "linux.resources.memory.limit: "
	    "the number is out of range (1048576..1125899906842624, "
	    "or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"cpu\": {\"shares\": "
	    "1}}}", "linux.resources.cpu.shares: 1 is out of range "
	    "(2..262144)");
	expect_top(", \"linux\": {\"resources\": {\"cpu\": {\"shares\": "
	    "-1}}}", "linux.resources.cpu.shares: -1 is out of range "
	    "(2..262144)");
	expect_top(", \"linux\": {\"resources\": {\"cpu\": {\"quota\": "
	    "10}}}", "linux.resources.cpu.quota: 10 is out of range "
	    "(1000..1099511627776, or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"cpu\": {\"period\": "
	    "2000000}}}", "linux.resources.cpu.period: 2000000 is out of "
	    "range (1000..1000000)");
	expect_top(", \"linux\": {\"resources\": {\"pids\": {\"limit\": "
	    "0}}}", "linux.resources.pids.limit: 0 is out of range "
	    "(1..4194304, or -1 for no limit)");
	expect_top(", \"linux\": {\"resources\": {\"pids\": 10}}",
	    "linux.resources.pids: must be an object");
	expect_top(", \"linux\": {\"namespaces\": {\"type\": \"pid\"}}",
	    "linux.namespaces: must be an array of {\"type\": ...} objects");
	expect_top(", \"linux\": {\"namespaces\": [\"pid\"]}",
	    "linux.namespaces[0]: must be an object");
	expect_top(", \"linux\": {\"namespaces\": [{}]}",
	    "linux.namespaces[0].type: is required");
	expect_top(", \"process\": null", "process: must be an object");
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	expect_top(", \"mounts\": []", "mounts is not supported by tern");
	expect_top(", \"linux\": {\"seccomp\": {}}",
	    "linux.seccomp is not supported by tern");
	expect_top(", \"linux\": {\"resources\": {\"blockIO\": {}}}",
	    "linux.resources.blockIO is not supported by tern");
	expect_top(", \"linux\": {\"resources\": {\"memory\": {\"swap\": "
	    "0}}}", "linux.resources.memory.swap is not supported by tern");
	expect_top(", \"linux\": {\"resources\": {\"cpu\": {\"cpus\": "
	    "\"0-1\"}}}", "linux.resources.cpu.cpus is not supported by tern");
	expect_top(", \"linux\": {\"namespaces\": [{\"type\": \"network\", "
	    "\"path\": \"/run/netns/x\"}]}",
	    "linux.namespaces[0].path is not supported by tern");
	expect_top(", \"tern\": {\"lazy\": true}",
	    "tern.lazy is not supported by tern");
	expect("{\"process\": {\"args\": [\"sh\"], \"terminal\": false}, "
	    "\"root\": {\"path\": \"/r\"}}",
	    "process.terminal is not supported by tern");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"/r\", \"mode\": 1}}", "root.mode is not supported by tern");
	/* Keys are quoted back printable and cut short. */
	expect_top(", \"a\\nb\": 1", "a?b is not supported by tern");
	expect_top(", \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxx\": 1", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxx... is not supported by tern");
}

/* tern.unconfined: names from a fixed list, each once; fully confined
 * by default. */
static void
test_unconfined(void **state)
{
	struct container_spec	*spec;
	char			*s;

	(void)state;
	s = with_top(", \"tern\": {\"unconfined\": [\"seccomp\", "
	    "\"devices\"]}");
	spec = parse_ok(s, NULL);
	assert_int_equal(spec->unconfined, CONFINE_SECCOMP | CONFINE_DEVICES);
	container_spec_free(spec);
	free(s);
	s = with_top(", \"tern\": {\"unconfined\": [\"capabilities\", "
	    "\"no_new_privs\", \"masked_paths\", \"readonly_paths\"]}");
	spec = parse_ok(s, NULL);
	assert_int_equal(spec->unconfined, CONFINE_CAPS |
	    CONFINE_NO_NEW_PRIVS | CONFINE_MASKED_PATHS |
	    CONFINE_READONLY_PATHS);
	container_spec_free(spec);
	free(s);
	s = with_top(", \"tern\": {\"unconfined\": [\"all\"]}");
	spec = parse_ok(s, NULL);
	assert_int_equal(spec->unconfined, CONFINE_ALL);
	container_spec_free(spec);
	free(s);
	s = with_top(", \"tern\": {\"unconfined\": []}");
	spec = parse_ok(s, NULL);
	assert_int_equal(spec->unconfined, 0);
	container_spec_free(spec);
	free(s);

	expect_top(", \"tern\": {\"unconfined\": true}",
	    "tern.unconfined: must be an array of strings");
	expect_top(", \"tern\": {\"unconfined\": \"all\"}",
	    "tern.unconfined: must be an array of strings");
	expect_top(", \"tern\": {\"unconfined\": [1]}",
	    "tern.unconfined[0]: must be a string");
	expect_top(", \"tern\": {\"unconfined\": [\"seccomp\", "
	    "\"apparmor\"]}", "tern.unconfined[1]: \"apparmor\" is not a "
	    "confinement (one of: capabilities, no_new_privs, masked_paths, "
	    "readonly_paths, seccomp, devices, all)");
	expect_top(", \"tern\": {\"unconfined\": [\"Seccomp\"]}",
	    "tern.unconfined[0]: \"Seccomp\" is not a confinement (one of: "
	    "capabilities, no_new_privs, masked_paths, readonly_paths, "
	    "seccomp, devices, all)");
	expect_top(", \"tern\": {\"unconfined\": [\"devices\", "
	    "\"devices\"]}", "tern.unconfined[1]: \"devices\" is listed "
	    "twice");
	expect_top(", \"tern\": {\"unconfined\": [\"all\", "
	    "\"devices\"]}", "tern.unconfined[1]: \"devices\" with other "
	    "items: give \"all\" alone");
	expect_top(", \"tern\": {\"unconfined\": [\"seccomp\", "
	    "\"all\"]}", "tern.unconfined[1]: \"all\" with other items: "
	    "give \"all\" alone");
	/* OCI's own keys for these are still refused by name. */
	expect_top(", \"linux\": {\"seccomp\": {}}",
	    "linux.seccomp is not supported by tern");
	expect_top(", \"linux\": {\"maskedPaths\": []}",
	    "linux.maskedPaths is not supported by tern");
}

static void
test_namespaces(void **state)
{
	struct container_spec	*spec;
	char			*s;

	(void)state;
	expect_top(", \"linux\": {\"namespaces\": [{\"type\": \"pid\"}, "
	    "{\"type\": \"user\"}]}", "linux.namespaces[1].type: \"user\" is "
	    "not supported by tern (supported: pid, mount, uts, ipc, "
	    "network)");
	expect_top(", \"linux\": {\"namespaces\": [{\"type\": \"cgroup\"}]}",
	    "linux.namespaces[0].type: \"cgroup\" is not supported by tern "
	    "(supported: pid, mount, uts, ipc, network)");
	expect_top(", \"linux\": {\"namespaces\": [{\"type\": 3}]}",
	    "linux.namespaces[0].type: must be a string");
	expect_top(", \"linux\": {\"namespaces\": [{\"type\": \"uts\"}, "
	    "{\"type\": \"uts\"}]}",
	    "linux.namespaces[1].type: \"uts\" is listed twice");

	/* Without "network" the host's network stays. */
	s = with_top(", \"linux\": {\"namespaces\": [{\"type\": \"pid\"}]}");
	spec = parse_ok(s, NULL);
	assert_false(spec->net_ns);
	container_spec_free(spec);
	free(s);
	s = with_top(", \"linux\": {\"namespaces\": []}");
	spec = parse_ok(s, NULL);
	assert_false(spec->net_ns);
	container_spec_free(spec);
	free(s);
}

static void
root_is(const char *path, const char *base, const char *want)
{
	struct container_spec	*spec;
	char			*s;

	xasprintf(&s, "{\"process\": {\"args\": [\"sh\"]}, \"root\": "
	    "{\"path\": \"%s\"}}", path);
	spec = parse_ok(s, base);
	assert_string_equal(spec->root, want);
	container_spec_free(spec);
	free(s);
}

static void
test_root_path(void **state)
{
	(void)state;
	root_is("rootfs", BASE, BASE "/rootfs");
	root_is("./a//b/./", BASE, BASE "/a/b");
	root_is("rootfs", "/", "/rootfs");
	root_is("/abs/olute", BASE, "/abs/olute");
	root_is("//abs///olute/", NULL, "/abs/olute");

	expect_base("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"rootfs\"}}", NULL, "root.path: \"rootfs\" is relative, but "
	    "there is no spec file directory to resolve it against: give an "
	    "absolute path");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"/\"}}", "root.path: is the host's root directory; a container "
	    "needs its own rootfs");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"/./\"}}", "root.path: is the host's root directory; a "
	    "container needs its own rootfs");
	expect_base("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\".\"}}", "/", "root.path: is the host's root directory; a "
	    "container needs its own rootfs");
	expect("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"\"}}", "root.path: must not be empty");
}

/* Issue 9 #1: ".." is refused wherever it is, in root.path or in the spec
 * directory a relative one is joined to (both come from peers). */
static void
test_root_dotdot(void **state)
{
	static const char *const hostile[] = {
		"/x/../etc", "/x/nonexist/../etc/cron.d", "/..", "/../", "..",
		"../images/web", "a/..", "/srv/..//etc", "/srv/a/../..",
	};
	char	*s, *want, q[80];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
		xasprintf(&s, "{\"process\": {\"args\": [\"sh\"]}, \"root\": "
		    "{\"path\": \"%s\"}}", hostile[i]);
		snprintf(q, sizeof q, "%s", hostile[i]);
		xasprintf(&want, "root.path: \"%s\" has a \"..\" component: "
		    "give the rootfs's real path", q);
		expect_base(s, BASE, want);
		free(want);
		free(s);
	}
	/* A relative root.path joined to a spec directory with "..". */
	expect_base("{\"process\": {\"args\": [\"sh\"]}, \"root\": {\"path\": "
	    "\"etc\"}}", "/x/..", "root.path: \"/x/..\" has a \"..\" "
	    "component: give the rootfs's real path");
	/* Names that merely contain dots are fine. */
	root_is("/srv/..a/b..", NULL, "/srv/..a/b..");
	root_is("/srv/.../x", NULL, "/srv/.../x");
}

/* Issue 9 #1: container_root_allowed resolves the path (the longest
 * existing prefix, symlinks included) and wants it strictly below an
 * allowed prefix. */
static void
test_root_allowed(void **state)
{
	char		 dir[] = "/tmp/tern-test-root.XXXXXX";
	char		*allowed, *other, *link, *up, *p, *cause = NULL;
	char		*prefixes[2];
	struct conf	 conf;

	(void)state;
	assert_non_null(mkdtemp(dir));
	xasprintf(&allowed, "%s/allowed", dir);
	xasprintf(&other, "%s/other", dir);
	assert_int_equal(mkdir(allowed, 0700), 0);
	assert_int_equal(mkdir(other, 0700), 0);
	xasprintf(&link, "%s/allowed/escape", dir);
	assert_int_equal(symlink(other, link), 0);
	xasprintf(&up, "%s/allowed/root", dir);
	assert_int_equal(symlink("/", up), 0);

	memset(&conf, 0, sizeof conf);
	prefixes[0] = allowed;
	prefixes[1] = "/does/not/exist";
	conf.rootfs_allowed_prefixes = prefixes;
	conf.nrootfs_allowed_prefixes = 2;

#define OK(path) do {							\
	if (container_root_allowed(&conf, (path), &cause) != 0)		\
		fail_msg("%s refused: %s", (path), cause);		\
} while (0)
#define NO(path, part) do {						\
	if (container_root_allowed(&conf, (path), &cause) == 0)		\
		fail_msg("%s allowed", (path));				\
	if (strstr(cause, (part)) == NULL)				\
		fail_msg("%s: cause \"%s\" lacks \"%s\"", (path), cause,	\
		    (part));						\
	free(cause);							\
	cause = NULL;							\
} while (0)

	xasprintf(&p, "%s/web", allowed);		/* absent: fine */
	OK(p);
	free(p);
	xasprintf(&p, "%s//web/./deeper/", allowed);
	OK(p);
	free(p);
	NO(allowed, "not below any of rootfs_allowed_prefixes");
	NO("/etc", "not below any");
	NO("/", "the host's root directory");
	NO("//", "the host's root directory");
	NO("/x/../etc", "without \"..\"");
	NO("/..", "without \"..\"");
	NO("relative", "absolute");
	/* Through a symlink inside the prefix to outside it. */
	xasprintf(&p, "%s/escape/web", allowed);
	NO(p, "really");
	free(p);
	NO(link, "really");
	xasprintf(&p, "%s/etc", up);
	NO(p, "really /etc");
	free(p);
	NO(up, "the host's root directory");
	/* A prefix that does not exist allows what would be below it. */
	OK("/does/not/exist/web");
	/* No prefixes: nothing is allowed. */
	conf.nrootfs_allowed_prefixes = 0;
	xasprintf(&p, "%s/web", allowed);
	NO(p, "(none)");
	free(p);
#undef OK
#undef NO
	unlink(up);
	unlink(link);
	rmdir(other);
	rmdir(allowed);
	rmdir(dir);
	free(up);
	free(link);
	free(other);
	free(allowed);
}

static void
test_malformed(void **state)
{
	static const char nul[] = "{\"process\": \0}";

	(void)state;
	expect("", "the spec is empty (it must be a JSON object)");
	expect(" \n\t ", "the spec is empty (it must be a JSON object)");
	expect("[1, 2]", "the spec must be a JSON object");
	expect("\"text\"", "the spec must be a JSON object");
	expect("{\"process\": ",
	    "line 1, column 13: malformed JSON: unexpected end of input");
	expect("{\n  \"process\": {\"args\": [\"sh\",]}\n}",
	    "line 2, column 29: malformed JSON: unexpected character");
	expect("{\n\n  \"root\" {}}",
	    "line 3, column 10: malformed JSON: object property name "
	    "separator ':' expected");
	expect("{\"a\": 1} {",
	    "line 1, column 10: malformed JSON: unexpected character");
	expect("{'process': 1}", "line 1, column 2: malformed JSON: single "
	    "quotes are not JSON (use \")");
	expect("{\"it's\": 1, 'x': 2}", "line 1, column 13: malformed JSON: "
	    "single quotes are not JSON (use \")");
	expect("{/* c */}", "line 1, column 2: malformed JSON: quoted object "
	    "property name expected");
	expect("{\"a\": 01}", "line 1, column 9: malformed JSON: number "
	    "expected");
	expect_len(nul, sizeof nul - 1, BASE,
	    "line 1, column 13: malformed JSON: NUL byte");
}

static void
test_load(void **state)
{
	struct container_spec	*spec;
	char			 dir[] = "/tmp/test-container-spec.XXXXXX";
	char			*path, *want, *cause = NULL, *real;
	FILE			*fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_non_null(real = realpath(dir, NULL));
	xasprintf(&path, "%s/web.json", dir);

	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(full_spec, fp);
	fclose(fp);
	spec = container_spec_load(path, &cause);
	if (spec == NULL)
		fail_msg("%s", cause);
	xasprintf(&want, "%s/rootfs", real);
	assert_string_equal(spec->root, want);
	free(want);
	container_spec_free(spec);

	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("{\"process\": {\"args\": []}, \"root\": {\"path\": \"r\"}}",
	    fp);
	fclose(fp);
	assert_null(container_spec_load(path, &cause));
	xasprintf(&want, "%s: process.args: must be a non-empty array of "
	    "strings", path);
	assert_string_equal(cause, want);
	free(want);
	free(cause);
	cause = NULL;

	unlink(path);
	assert_null(container_spec_load(path, &cause));
	xasprintf(&want, "%s: No such file or directory", path);
	assert_string_equal(cause, want);
	free(want);
	free(cause);

	rmdir(dir);
	free(path);
	free(real);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_bad_types),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_unconfined),
		cmocka_unit_test(test_root_path),
		cmocka_unit_test(test_root_dotdot),
		cmocka_unit_test(test_root_allowed),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
