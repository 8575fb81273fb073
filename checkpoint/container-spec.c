#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json.h>

#include "checkpoint/confine.h"
#include "checkpoint/container-spec.h"
#include "daemon/conf.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* Longest JSON path or key quoted back in a message. */
#define SPEC_QUOTE_MAX		64
#define SPEC_PATH_MAX		256
#define SPEC_HOSTNAME_MAX	64

#define SPEC_MIB		(1024LL * 1024)
#define SPEC_MEMORY_MIN		SPEC_MIB
#define SPEC_MEMORY_MAX		(1LL << 50)
#define SPEC_SHARES_MIN		2
#define SPEC_SHARES_MAX		262144
#define SPEC_QUOTA_MIN		1000
#define SPEC_QUOTA_MAX		(1LL << 40)
#define SPEC_PERIOD_MIN		1000
#define SPEC_PERIOD_MAX		1000000
#define SPEC_PIDS_MIN		1
#define SPEC_PIDS_MAX		4194304

struct spec_parser {
	char			**cause;
	int			  failed;
	struct container_spec	 *spec;
	const char		 *base_dir;
};

static const char *const spec_top_keys[] = {
	"ociVersion", "process", "root", "hostname", "linux", "tern", NULL
};
static const char *const spec_process_keys[] = {
	"args", "env", "cwd", NULL
};
static const char *const spec_root_keys[] = { "path", "readonly", NULL };
static const char *const spec_linux_keys[] = {
	"namespaces", "resources", NULL
};
static const char *const spec_namespace_keys[] = { "type", NULL };
static const char *const spec_resources_keys[] = {
	"memory", "cpu", "pids", NULL
};
static const char *const spec_memory_keys[] = { "limit", NULL };
static const char *const spec_cpu_keys[] = {
	"shares", "quota", "period", NULL
};
static const char *const spec_pids_keys[] = { "limit", NULL };
static const char *const spec_tern_keys[] = {
	"shared_storage", "unconfined", NULL
};

static void	spec_error(struct spec_parser *, const char *, const char *,
		    ...) __attribute__((format(printf, 3, 4)));

/* Report the first error only: "PATH: reason" (or just reason). */
static void
spec_error(struct spec_parser *p, const char *path, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	if (path == NULL || *path == '\0')
		set_cause(p->cause, "%s", msg);
	else
		set_cause(p->cause, "%s: %s", path, msg);
	free(msg);
}

/* Copy s into buf as printable ASCII ('?' for anything else), cut to
 * SPEC_QUOTE_MAX with "...". */
static void
spec_quote(char *buf, size_t size, const char *s)
{
	size_t	i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < size; i++) {
		if (i == SPEC_QUOTE_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[n] = '\0';
}

/* path + "." + key into buf. */
static void
spec_join(char *buf, size_t size, const char *path, const char *key)
{
	if (*path == '\0')
		snprintf(buf, size, "%s", key);
	else
		snprintf(buf, size, "%s.%s", path, key);
}

static int
spec_in(const char *const *list, const char *key)
{
	for (; *list != NULL; list++) {
		if (strcmp(*list, key) == 0)
			return 1;
	}
	return 0;
}

/* obj must be an object holding only keys from allowed. */
static int
spec_check_object(struct spec_parser *p, struct json_object *obj,
    const char *path, const char *const *allowed)
{
	char	quoted[SPEC_QUOTE_MAX + 8], full[SPEC_PATH_MAX];

	if (!json_object_is_type(obj, json_type_object)) {
		if (*path == '\0')
			spec_error(p, NULL, "the spec must be a JSON object");
		else
			spec_error(p, path, "must be an object");
		return -1;
	}
	json_object_object_foreach(obj, key, val) {
		(void)val;
		if (spec_in(allowed, key))
			continue;
		spec_quote(quoted, sizeof quoted, key);
		spec_join(full, sizeof full, path, quoted);
		spec_error(p, NULL, "%s is not supported by tern", full);
		return -1;
	}
	return 0;
}

static int
spec_string(struct spec_parser *p, struct json_object *obj, const char *path,
    const char **out)
{
	const char	*s;

	if (!json_object_is_type(obj, json_type_string)) {
		spec_error(p, path, "must be a string");
		return -1;
	}
	s = json_object_get_string(obj);
	if (strlen(s) != (size_t)json_object_get_string_len(obj)) {
		spec_error(p, path, "must not contain a NUL character");
		return -1;
	}
	*out = s;
	return 0;
}

static int
spec_bool(struct spec_parser *p, struct json_object *obj, const char *path,
    int *out)
{
	if (!json_object_is_type(obj, json_type_boolean)) {
		spec_error(p, path, "must be true or false");
		return -1;
	}
	*out = json_object_get_boolean(obj) ? 1 : 0;
	return 0;
}

/* An integer in min..max, or -1 if unlimited is set. */
static int
spec_integer(struct spec_parser *p, struct json_object *obj,
    const char *path, int64_t min, int64_t max, int unlimited, int64_t *out)
{
	int64_t	 v;
	char	*text;

	if (!json_object_is_type(obj, json_type_int)) {
		spec_error(p, path, "must be an integer%s",
		    unlimited ? " (or -1 for no limit)" : "");
		return -1;
	}
	/* json-c clamps to the int64 range, which is outside every range. */
	v = json_object_get_int64(obj);
	if ((v >= min && v <= max) || (unlimited && v == -1)) {
		*out = v;
		return 0;
	}
	/* json-c clamps what does not fit; do not quote the clamped value. */
	if (v == INT64_MAX || v == INT64_MIN)
		xasprintf(&text, "the number");
	else
		xasprintf(&text, "%lld", (long long)v);
	spec_error(p, path, "%s is out of range (%lld..%lld%s)", text,
	    (long long)min, (long long)max, unlimited ?
	    ", or -1 for no limit" : "");
	free(text);
	return -1;
}

/* What a JSON value is, in words. */
static const char *
spec_type_name(struct json_object *obj)
{
	switch (json_object_get_type(obj)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_int:
	case json_type_double:
		return "a number";
	case json_type_string:
		return "a string";
	case json_type_array:
		return "an array";
	case json_type_object:
		return "an object";
	}
	return "unknown";
}

/* A non-empty array of strings (allow_empty: may be empty) into a
 * NULL-terminated vector. */
static int
spec_strings(struct spec_parser *p, struct json_object *obj, const char *path,
    int allow_empty, char ***out, size_t *nout)
{
	struct json_object	*item;
	const char		*what = allow_empty ? "an array of strings" :
				    "a non-empty array of strings";
	char			**v;
	size_t			 n, i;

	if (!json_object_is_type(obj, json_type_array) ||
	    (json_object_array_length(obj) == 0 && !allow_empty)) {
		spec_error(p, path, "must be %s", what);
		return -1;
	}
	n = json_object_array_length(obj);
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(obj, i);
		if (!json_object_is_type(item, json_type_string)) {
			spec_error(p, path, "must be %s (%s[%zu] is %s)", what,
			    path, i, spec_type_name(item));
			return -1;
		}
		if (strlen(json_object_get_string(item)) !=
		    (size_t)json_object_get_string_len(item)) {
			spec_error(p, NULL, "%s[%zu]: must not contain a NUL "
			    "character", path, i);
			return -1;
		}
	}
	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = xstrdup(json_object_get_string(
		    json_object_array_get_idx(obj, i)));
	*out = v;
	*nout = n;
	return 0;
}

static int
spec_hostname_valid(const char *s)
{
	size_t	len, i;

	len = strlen(s);
	if (len == 0 || len > SPEC_HOSTNAME_MAX || s[0] == '-' || s[0] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
			return 0;
	}
	return 1;
}

/* 1 if an absolute or relative path has a ".." component. */
static int
spec_has_dotdot(const char *path)
{
	const char	*s, *e;

	for (s = path; *s != '\0'; s = e) {
		while (*s == '/')
			s++;
		for (e = s; *e != '\0' && *e != '/'; e++)
			;
		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return 1;
	}
	return 0;
}

/* Drop empty and "." components and a trailing '/' from an absolute path
 * (one without "..": see spec_has_dotdot). */
static char *
spec_clean_path(const char *path)
{
	char		*out, *o;
	const char	*s = path, *e;
	size_t		 n;

	out = o = xmalloc(strlen(path) + 2);
	while (*s != '\0') {
		while (*s == '/')
			s++;
		e = s;
		while (*e != '\0' && *e != '/')
			e++;
		n = (size_t)(e - s);
		if (n != 0 && !(n == 1 && s[0] == '.')) {
			*o++ = '/';
			memcpy(o, s, n);
			o += n;
		}
		s = e;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	return out;
}

static void
spec_process(struct spec_parser *p, struct json_object *obj)
{
	struct container_spec	*spec = p->spec;
	struct json_object	*v;
	const char		*s, *eq;
	char			 path[SPEC_PATH_MAX];
	size_t			 i, j, klen;

	if (spec_check_object(p, obj, "process", spec_process_keys) != 0)
		return;

	if (!json_object_object_get_ex(obj, "args", &v)) {
		spec_error(p, "process.args", "is required (the command to "
		    "run, as a non-empty array of strings)");
		return;
	}
	if (spec_strings(p, v, "process.args", 0, &spec->args,
	    &spec->nargs) != 0)
		return;
	if (spec->args[0][0] == '\0') {
		spec_error(p, "process.args[0]", "must not be empty");
		return;
	}

	if (json_object_object_get_ex(obj, "env", &v)) {
		if (spec_strings(p, v, "process.env", 1, &spec->env,
		    &spec->nenv) != 0)
			return;
	} else
		spec->env = xcalloc(1, sizeof *spec->env);
	for (i = 0; i < spec->nenv; i++) {
		s = spec->env[i];
		snprintf(path, sizeof path, "process.env[%zu]", i);
		if ((eq = strchr(s, '=')) == NULL || eq == s) {
			spec_error(p, path, "must be \"NAME=VALUE\" with a "
			    "non-empty NAME");
			return;
		}
		klen = (size_t)(eq - s);
		for (j = 0; j < i; j++) {
			if (strncmp(spec->env[j], s, klen + 1) == 0) {
				spec_error(p, path, "%.*s is already set by "
				    "process.env[%zu]", (int)(klen >
				    SPEC_QUOTE_MAX ? SPEC_QUOTE_MAX : klen), s,
				    j);
				return;
			}
		}
	}

	if (json_object_object_get_ex(obj, "cwd", &v)) {
		if (spec_string(p, v, "process.cwd", &s) != 0)
			return;
		if (s[0] != '/') {
			spec_error(p, "process.cwd", "must be an absolute path "
			    "inside the container");
			return;
		}
		if (strlen(s) >= PATH_MAX) {
			spec_error(p, "process.cwd", "is too long");
			return;
		}
		spec->cwd = xstrdup(s);
	} else
		spec->cwd = xstrdup("/");
}

static void
spec_root(struct spec_parser *p, struct json_object *obj)
{
	struct container_spec	*spec = p->spec;
	struct json_object	*v;
	const char		*s;
	char			*joined, quoted[SPEC_QUOTE_MAX + 8];

	if (spec_check_object(p, obj, "root", spec_root_keys) != 0)
		return;

	if (!json_object_object_get_ex(obj, "path", &v)) {
		spec_error(p, "root.path", "is required (the container's root "
		    "directory)");
		return;
	}
	if (spec_string(p, v, "root.path", &s) != 0)
		return;
	if (*s == '\0') {
		spec_error(p, "root.path", "must not be empty");
		return;
	}
	/* Paths come from peers too: ".." is never resolved as text (it
	 * would climb out of whatever directory a check looked at). */
	if (spec_has_dotdot(s) || (s[0] != '/' && p->base_dir != NULL &&
	    spec_has_dotdot(p->base_dir))) {
		spec_quote(quoted, sizeof quoted, spec_has_dotdot(s) ? s :
		    p->base_dir);
		spec_error(p, "root.path", "\"%s\" has a \"..\" component: "
		    "give the rootfs's real path", quoted);
		return;
	}
	if (s[0] == '/')
		spec->root = spec_clean_path(s);
	else if (p->base_dir == NULL || p->base_dir[0] != '/') {
		spec_quote(quoted, sizeof quoted, s);
		spec_error(p, "root.path", "\"%s\" is relative, but there is "
		    "no spec file directory to resolve it against: give an "
		    "absolute path", quoted);
		return;
	} else {
		xasprintf(&joined, "%s/%s", p->base_dir, s);
		spec->root = spec_clean_path(joined);
		free(joined);
	}
	if (strcmp(spec->root, "/") == 0) {
		spec_error(p, "root.path", "is the host's root directory; a "
		    "container needs its own rootfs");
		return;
	}
	if (strlen(spec->root) >= PATH_MAX - 64) {
		spec_error(p, "root.path", "is too long");
		return;
	}

	if (json_object_object_get_ex(obj, "readonly", &v))
		spec_bool(p, v, "root.readonly", &spec->root_readonly);
}

static void
spec_namespaces(struct spec_parser *p, struct json_object *obj)
{
	static const char *const known[] = {
		"pid", "mount", "uts", "ipc", "network", NULL
	};
	struct json_object	*item, *v;
	int			 seen[8] = { 0 };
	const char		*type;
	char			 path[SPEC_PATH_MAX], quoted[SPEC_QUOTE_MAX + 8];
	size_t			 n, i, k;

	if (!json_object_is_type(obj, json_type_array)) {
		spec_error(p, "linux.namespaces", "must be an array of "
		    "{\"type\": ...} objects");
		return;
	}
	n = json_object_array_length(obj);
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(obj, i);
		snprintf(path, sizeof path, "linux.namespaces[%zu]", i);
		if (spec_check_object(p, item, path,
		    spec_namespace_keys) != 0)
			return;
		snprintf(path, sizeof path, "linux.namespaces[%zu].type", i);
		if (!json_object_object_get_ex(item, "type", &v)) {
			spec_error(p, path, "is required");
			return;
		}
		if (spec_string(p, v, path, &type) != 0)
			return;
		for (k = 0; known[k] != NULL; k++) {
			if (strcmp(known[k], type) == 0)
				break;
		}
		if (known[k] == NULL) {
			spec_quote(quoted, sizeof quoted, type);
			spec_error(p, path, "\"%s\" is not supported by tern "
			    "(supported: pid, mount, uts, ipc, network)",
			    quoted);
			return;
		}
		if (seen[k]) {
			spec_error(p, path, "\"%s\" is listed twice", type);
			return;
		}
		seen[k] = 1;
		if (strcmp(type, "network") == 0)
			p->spec->net_ns = 1;
	}
}

static void
spec_resources(struct spec_parser *p, struct json_object *obj)
{
	struct container_spec	*spec = p->spec;
	struct json_object	*sub, *v;
	int64_t			 n;

	if (spec_check_object(p, obj, "linux.resources",
	    spec_resources_keys) != 0)
		return;

	if (json_object_object_get_ex(obj, "memory", &sub)) {
		if (spec_check_object(p, sub, "linux.resources.memory",
		    spec_memory_keys) != 0)
			return;
		if (json_object_object_get_ex(sub, "limit", &v) &&
		    spec_integer(p, v, "linux.resources.memory.limit",
		    SPEC_MEMORY_MIN, SPEC_MEMORY_MAX, 1,
		    &spec->memory_limit) != 0)
			return;
	}

	if (json_object_object_get_ex(obj, "cpu", &sub)) {
		if (spec_check_object(p, sub, "linux.resources.cpu",
		    spec_cpu_keys) != 0)
			return;
		if (json_object_object_get_ex(sub, "shares", &v)) {
			if (spec_integer(p, v, "linux.resources.cpu.shares",
			    SPEC_SHARES_MIN, SPEC_SHARES_MAX, 0, &n) != 0)
				return;
			spec->cpu_shares = (uint64_t)n;
		}
		if (json_object_object_get_ex(sub, "quota", &v) &&
		    spec_integer(p, v, "linux.resources.cpu.quota",
		    SPEC_QUOTA_MIN, SPEC_QUOTA_MAX, 1, &spec->cpu_quota) != 0)
			return;
		if (json_object_object_get_ex(sub, "period", &v)) {
			if (spec_integer(p, v, "linux.resources.cpu.period",
			    SPEC_PERIOD_MIN, SPEC_PERIOD_MAX, 0, &n) != 0)
				return;
			spec->cpu_period = (uint64_t)n;
		}
	}

	if (json_object_object_get_ex(obj, "pids", &sub)) {
		if (spec_check_object(p, sub, "linux.resources.pids",
		    spec_pids_keys) != 0)
			return;
		if (json_object_object_get_ex(sub, "limit", &v) &&
		    spec_integer(p, v, "linux.resources.pids.limit",
		    SPEC_PIDS_MIN, SPEC_PIDS_MAX, 1, &spec->pids_limit) != 0)
			return;
	}
}

static void
spec_linux(struct spec_parser *p, struct json_object *obj)
{
	struct json_object	*v;

	if (spec_check_object(p, obj, "linux", spec_linux_keys) != 0)
		return;
	if (json_object_object_get_ex(obj, "namespaces", &v))
		spec_namespaces(p, v);
	if (!p->failed && json_object_object_get_ex(obj, "resources", &v))
		spec_resources(p, v);
}

/* tern.unconfined: the confinements a container goes without. */
static void
spec_unconfined(struct spec_parser *p, struct json_object *obj)
{
	struct json_object	*item;
	const char		*name;
	char			 path[SPEC_PATH_MAX], quoted[SPEC_QUOTE_MAX + 8];
	unsigned		 bit, seen = 0;
	size_t			 n, i;

	if (!json_object_is_type(obj, json_type_array)) {
		spec_error(p, "tern.unconfined", "must be an array of "
		    "strings");
		return;
	}
	n = json_object_array_length(obj);
	for (i = 0; i < n; i++) {
		item = json_object_array_get_idx(obj, i);
		snprintf(path, sizeof path, "tern.unconfined[%zu]", i);
		if (spec_string(p, item, path, &name) != 0)
			return;
		if ((bit = confine_bit(name)) == 0) {
			spec_quote(quoted, sizeof quoted, name);
			spec_error(p, path, "\"%s\" is not a confinement "
			    "(one of: capabilities, no_new_privs, "
			    "masked_paths, readonly_paths, seccomp, devices, "
			    "all)", quoted);
			return;
		}
		if (seen & bit) {
			spec_error(p, path, "\"%s\" %s", name,
			    bit == CONFINE_ALL || seen == CONFINE_ALL ?
			    "with other items: give \"all\" alone" :
			    "is listed twice");
			return;
		}
		seen |= bit;
	}
	p->spec->unconfined = seen;
}

static void
spec_tern(struct spec_parser *p, struct json_object *obj)
{
	struct json_object	*v;

	if (spec_check_object(p, obj, "tern", spec_tern_keys) != 0)
		return;
	if (json_object_object_get_ex(obj, "shared_storage", &v) &&
	    spec_bool(p, v, "tern.shared_storage",
	    &p->spec->shared_storage) != 0)
		return;
	if (json_object_object_get_ex(obj, "unconfined", &v))
		spec_unconfined(p, v);
}

static void
spec_top(struct spec_parser *p, struct json_object *top)
{
	struct json_object	*v;
	const char		*s;
	char			 quoted[SPEC_QUOTE_MAX + 8];

	if (spec_check_object(p, top, "", spec_top_keys) != 0)
		return;

	if (json_object_object_get_ex(top, "ociVersion", &v) &&
	    spec_string(p, v, "ociVersion", &s) != 0)
		return;

	if (!json_object_object_get_ex(top, "process", &v)) {
		spec_error(p, "process", "is required (with process.args, "
		    "the command to run)");
		return;
	}
	spec_process(p, v);
	if (p->failed)
		return;

	if (!json_object_object_get_ex(top, "root", &v)) {
		spec_error(p, "root", "is required (with root.path, the "
		    "container's root directory)");
		return;
	}
	spec_root(p, v);
	if (p->failed)
		return;

	if (json_object_object_get_ex(top, "hostname", &v)) {
		if (spec_string(p, v, "hostname", &s) != 0)
			return;
		if (!spec_hostname_valid(s)) {
			spec_quote(quoted, sizeof quoted, s);
			spec_error(p, "hostname", "\"%s\" is not a valid host "
			    "name (1..64 of A-Z, a-z, 0-9, '-' and '.', not "
			    "starting with '-' or '.')", quoted);
			return;
		}
		p->spec->hostname = xstrdup(s);
	}

	if (json_object_object_get_ex(top, "linux", &v)) {
		spec_linux(p, v);
		if (p->failed)
			return;
	}

	if (json_object_object_get_ex(top, "tern", &v))
		spec_tern(p, v);
}

/* Line and column (1-based, in bytes) of offset off. */
static void
spec_position(const char *json, size_t off, size_t *line, size_t *col)
{
	size_t	i, start = 0;

	*line = 1;
	for (i = 0; i < off; i++) {
		if (json[i] == '\n') {
			(*line)++;
			start = i + 1;
		}
	}
	*col = off - start + 1;
}

/* What json-c lets through in strict mode but JSON forbids: NUL bytes and
 * single-quoted strings.  Returns the offset of the first, or len. */
static size_t
spec_prescan(const char *json, size_t len, const char **why)
{
	size_t	i;
	int	in_string = 0, escape = 0;

	for (i = 0; i < len; i++) {
		if (json[i] == '\0') {
			*why = "NUL byte";
			return i;
		}
		if (in_string) {
			if (escape)
				escape = 0;
			else if (json[i] == '\\')
				escape = 1;
			else if (json[i] == '"')
				in_string = 0;
			continue;
		}
		if (json[i] == '"')
			in_string = 1;
		else if (json[i] == '\'') {
			*why = "single quotes are not JSON (use \")";
			return i;
		}
	}
	return len;
}

struct container_spec *
container_spec_parse(const char *json, size_t len, const char *base_dir,
    char **cause)
{
	struct spec_parser	 p;
	struct container_spec	*spec;
	struct json_tokener	*tok = NULL;
	struct json_object	*top = NULL;
	enum json_tokener_error	 jerr;
	const char		*why = NULL;
	size_t			 off, line, col, i;

	memset(&p, 0, sizeof p);
	p.cause = cause;
	p.base_dir = base_dir;
	p.spec = spec = xcalloc(1, sizeof *spec);
	spec->memory_limit = -1;
	spec->cpu_quota = -1;
	spec->pids_limit = -1;

	for (i = 0; i < len; i++) {
		if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' &&
		    json[i] != '\r')
			break;
	}
	if (i == len) {
		spec_error(&p, NULL, "the spec is empty (it must be a JSON "
		    "object)");
		goto out;
	}
	if (len > INT_MAX) {
		spec_error(&p, NULL, "the spec is too large");
		goto out;
	}
	if ((off = spec_prescan(json, len, &why)) != len) {
		spec_position(json, off, &line, &col);
		spec_error(&p, NULL, "line %zu, column %zu: malformed JSON: %s",
		    line, col, why);
		goto out;
	}

	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	top = json_tokener_parse_ex(tok, json, (int)len);
	jerr = json_tokener_get_error(tok);
	if (top == NULL || jerr != json_tokener_success) {
		off = json_tokener_get_parse_end(tok);
		if (off > len)
			off = len;
		spec_position(json, off, &line, &col);
		spec_error(&p, NULL, "line %zu, column %zu: malformed JSON: %s",
		    line, col, jerr == json_tokener_continue ?
		    "unexpected end of input" : json_tokener_error_desc(jerr));
		goto out;
	}
	/* Strict mode rejects anything but whitespace after the value. */
	spec_top(&p, top);

out:
	if (top != NULL)
		json_object_put(top);
	if (tok != NULL)
		json_tokener_free(tok);
	if (p.failed) {
		container_spec_free(spec);
		return NULL;
	}
	return spec;
}

struct container_spec *
container_spec_load(const char *path, char **cause)
{
	struct container_spec	*spec = NULL;
	char			*buf = NULL, *real = NULL, *slash, *error = NULL;
	size_t			 len;

	if ((buf = read_file_bounded(path, CONTAINER_SPEC_MAX_FILE_SIZE, &len,
	    cause)) == NULL)
		return NULL;
	if ((real = realpath(path, NULL)) == NULL) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	slash = strrchr(real, '/');
	if (slash == real)
		slash[1] = '\0';
	else
		*slash = '\0';
	spec = container_spec_parse(buf, len, real, &error);
	if (spec == NULL) {
		set_cause(cause, "%s: %s", path, error);
		free(error);
	}
out:
	free(buf);
	free(real);
	return spec;
}

void
container_spec_free(struct container_spec *spec)
{
	size_t	i;

	if (spec == NULL)
		return;
	if (spec->args != NULL) {
		for (i = 0; i < spec->nargs; i++)
			free(spec->args[i]);
		free(spec->args);
	}
	if (spec->env != NULL) {
		for (i = 0; i < spec->nenv; i++)
			free(spec->env[i]);
		free(spec->env);
	}
	free(spec->cwd);
	free(spec->root);
	free(spec->hostname);
	free(spec);
}

const char *
container_spec_path(const struct container_spec *spec)
{
	size_t	i;

	for (i = 0; i < spec->nenv; i++) {
		if (strncmp(spec->env[i], "PATH=", 5) == 0)
			return spec->env[i] + 5;
	}
	return CONTAINER_SPEC_DEFAULT_PATH;
}

/* The real path of path, which need not exist: the longest prefix that
 * exists is resolved (symlinks included), the rest appended as it is (it
 * has no "..", and what does not exist is no symlink).  NULL and *cause on
 * error. */
static char *
spec_resolve(const char *path, char **cause)
{
	char	*clean, *head, *real, *out = NULL, *slash;
	size_t	 len;

	clean = spec_clean_path(path);
	head = xstrdup(clean);
	len = strlen(head);
	/* head is always clean's first len bytes (or "/" when len is 0). */
	while ((real = realpath(head, NULL)) == NULL) {
		if (errno != ENOENT && errno != ENOTDIR) {
			set_cause(cause, "cannot resolve %s: %s", head,
			    strerror(errno));
			goto out;
		}
		slash = strrchr(head, '/');
		len = (size_t)(slash - head);
		if (len == 0)
			strcpy(head, "/");
		else
			*slash = '\0';
	}
	if (strcmp(head, "/") == 0)
		len = 0;
	xasprintf(&out, "%s%s", strcmp(real, "/") == 0 ? "" : real,
	    clean + len);
	if (*out == '\0') {
		free(out);
		out = xstrdup("/");
	}
out:
	free(real);
	free(head);
	free(clean);
	return out;
}

int
container_root_allowed(const struct conf *conf, const char *path,
    char **cause)
{
	char	*real = NULL, *prefix = NULL, *list = NULL, *next;
	size_t	 i, n;
	int	 rc = -1;

	if (path[0] != '/' || spec_has_dotdot(path)) {
		set_cause(cause, "rootfs %s: must be an absolute path without "
		    "\"..\"", path);
		return -1;
	}
	if ((real = spec_resolve(path, cause)) == NULL)
		return -1;
	if (strcmp(real, "/") == 0) {
		set_cause(cause, "rootfs %s is the host's root directory", path);
		goto out;
	}
	for (i = 0; i < conf->nrootfs_allowed_prefixes; i++) {
		free(prefix);
		if ((prefix = spec_resolve(conf->rootfs_allowed_prefixes[i],
		    NULL)) == NULL)
			continue;
		n = strlen(prefix);
		/* Strictly below: the prefix itself is no rootfs. */
		if ((strcmp(prefix, "/") == 0 && real[1] != '\0') ||
		    (strncmp(real, prefix, n) == 0 && real[n] == '/' &&
		    real[n + 1] != '\0')) {
			rc = 0;
			goto out;
		}
	}
	for (i = 0; i < conf->nrootfs_allowed_prefixes; i++) {
		xasprintf(&next, "%s%s%s", list != NULL ? list : "",
		    list != NULL ? ", " : "", conf->rootfs_allowed_prefixes[i]);
		free(list);
		list = next;
	}
	if (strcmp(real, path) != 0)
		set_cause(cause, "rootfs %s (really %s) is not below any of "
		    "rootfs_allowed_prefixes (%s)", path, real, list != NULL ?
		    list : "none");
	else
		set_cause(cause, "rootfs %s is not below any of "
		    "rootfs_allowed_prefixes (%s)", path, list != NULL ? list :
		    "none");
out:
	free(list);
	free(prefix);
	free(real);
	return rc;
}
