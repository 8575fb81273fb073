/* A container spec: the part of an OCI runtime config.json that tern
 * needs.  container_spec_parse is a pure function from text to a struct
 * container_spec (no I/O, so it can be unit-tested and fuzzed);
 * container_spec_load reads a file and resolves a relative root.path
 * against the file's directory.  docs/container-spec.md has an example.
 *
 * Format: one JSON object (RFC 8259; single-quoted strings, comments,
 * trailing commas and NUL bytes are errors).  Every key below is optional
 * unless marked required; a key that is not listed here, at the top level
 * or inside any of the objects below, is an error naming its JSON path
 * ("linux.seccomp is not supported by tern").  null is not a value.
 *
 *	ociVersion		string, ignored
 *	process			object, required
 *	  args			required: non-empty array of strings; args[0]
 *				is looked up in PATH (from env, else
 *				/bin:/sbin:/usr/bin:/usr/sbin) inside the
 *				container unless it contains a '/'
 *	  env			array of "NAME=VALUE" strings, NAME non-empty,
 *				no NAME twice; the container gets only these
 *	  cwd			absolute path inside the container; "/"
 *	root			object, required
 *	  path			required: the rootfs directory; a relative path
 *				is relative to the spec file's directory; it
 *				needs proc/ and dev/ directories
 *	  readonly		boolean: mount the rootfs read-only; false
 *	hostname		1..64 of [A-Za-z0-9.-], not starting with '-'
 *				or '.'; default: the container's name
 *	linux			object
 *	  namespaces		array of {"type": T}; T one of pid, mount, uts,
 *				ipc (always used, listing them changes
 *				nothing) and network (a new network namespace
 *				with only lo, up); no T twice
 *	  resources		object
 *	    memory.limit	bytes, 1048576..2^50, or -1 (no limit)
 *	    cpu.shares		2..262144
 *	    cpu.quota		microseconds per period, 1000..2^40, or -1
 *	    cpu.period		microseconds, 1000..1000000
 *	    pids.limit		1..4194304, or -1 (no limit)
 *	tern			object, tern's own settings
 *	  shared_storage	boolean: the rootfs is on storage that every
 *				host sees (a migration does not copy it);
 *				false
 *	  unconfined		array of names of confinements to leave out
 *				(checkpoint/confine.h): capabilities,
 *				no_new_privs, masked_paths, readonly_paths,
 *				seccomp, devices, or "all"; no name twice;
 *				default [] (fully confined)
 *
 * A key given twice in one object: the last one counts (json-c keeps
 * only that one).
 *
 * Errors are one message, "JSON.PATH: reason", e.g. "process.args: must be
 * a non-empty array of strings", or "line L, column C: malformed JSON:
 * reason" for text that is not JSON.  container_spec_load prefixes the
 * file name: "spec.json: process.args: ...".
 */
#ifndef TERN_CONTAINER_SPEC_H
#define TERN_CONTAINER_SPEC_H

#include <stddef.h>
#include <stdint.h>

/* container_spec_load refuses files larger than this. */
#define CONTAINER_SPEC_MAX_FILE_SIZE	(1024 * 1024)
/* PATH inside the container when process.env sets none. */
#define CONTAINER_SPEC_DEFAULT_PATH	"/bin:/sbin:/usr/bin:/usr/sbin"

struct container_spec {
	char		**args;		/* NULL-terminated, nargs >= 1 */
	size_t		  nargs;
	char		**env;		/* "NAME=VALUE", NULL-terminated */
	size_t		  nenv;
	char		 *cwd;		/* absolute, inside the container */

	char		 *root;		/* absolute, cleaned of "//", "/./"
					   and a trailing '/'; not "/" */
	int		  root_readonly;

	char		 *hostname;	/* NULL: the container's name */
	int		  net_ns;	/* new network namespace, lo only */

	int64_t		  memory_limit;	/* bytes; -1 no limit */
	uint64_t	  cpu_shares;	/* 0 not set (kernel: 1024) */
	int64_t		  cpu_quota;	/* us per period; -1 no limit */
	uint64_t	  cpu_period;	/* us; 0 not set (kernel: 100000) */
	int64_t		  pids_limit;	/* -1 no limit */

	int		  shared_storage;
	unsigned	  unconfined;	/* CONFINE_* bits turned off */
};

/* Parse len bytes of json (need not be NUL-terminated).  A relative
 * root.path is joined to base_dir (absolute; NULL makes a relative
 * root.path an error).  Returns NULL and *cause on error. */
struct container_spec	*container_spec_parse(const char *json, size_t len,
			     const char *base_dir, char **cause);
/* Read and parse the spec file at path; errors start with "PATH: ". */
struct container_spec	*container_spec_load(const char *path, char **cause);
void			 container_spec_free(struct container_spec *);
struct conf;
/* May a container's rootfs be at path (a spec's root, from ternctl create or
 * a peer's offer)?  path must be absolute without ".."; its real path (the
 * longest existing prefix resolved, symlinks included) must lie strictly
 * below one of conf's rootfs_allowed_prefixes (themselves resolved) and
 * not be "/".  0, or -1 and *cause naming the path and the prefixes. */
int			 container_root_allowed(const struct conf *,
			     const char *path, char **cause);
/* PATH from the spec's env, else CONTAINER_SPEC_DEFAULT_PATH. */
const char		*container_spec_path(const struct container_spec *);

#endif
