/* Inside migrate/tree: the record format (tree-wire.c), the walker that
 * encodes a directory (tree-scan.c) and the applier that decodes records
 * into one (tree-apply.c).  Both are blocking and thread-agnostic, so the
 * unit tests and the fuzzer drive them on plain buffers. */
#ifndef TERN_MIGRATE_TREE_INTERNAL_H
#define TERN_MIGRATE_TREE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "migrate/tree.h"

#define TREE_MAGIC		"TERNTREE"
#define TREE_VERSION		1
#define TREE_FLAG_DELTA		0x1

#define TREE_HDR_SIZE		5		/* type, length */
#define TREE_DATA_MAX		(64u << 10)	/* content per DATA record */
#define TREE_VALUE_MAX		TREE_DATA_MAX	/* any record's value */
#define TREE_PATH_MAX		4095		/* bytes of a path */
#define TREE_NAME_MAX		255		/* bytes of a component */
#define TREE_TARGET_MAX		4095		/* bytes of a symlink target */
/* What a sender walks, at most: a container shapes its own rootfs, and
 * must not make ternd hold an fd per level or index without end. */
#define TREE_MAX_DEPTH		256		/* directories open at once */
#define TREE_MAX_ENTRIES	1000000u	/* entries in one index */

enum tree_rec {
	TREE_REC_HEAD = 1,
	TREE_REC_DIR,
	TREE_REC_FILE,
	TREE_REC_DATA,
	TREE_REC_FEND,
	TREE_REC_SYMLINK,
	TREE_REC_NODE,
	TREE_REC_LINK,
	TREE_REC_DELETE,
	TREE_REC_DIREND,
	TREE_REC_END,
};

/* What an entry record carries, and what the index keeps per path. */
struct tree_ent {
	char		*path;
	char		*target;	/* symlink target */
	uint32_t	 mode;		/* with the type bits */
	uint32_t	 uid, gid;
	uint64_t	 size;
	int64_t		 mtime_sec, ctime_sec;
	uint32_t	 mtime_nsec, ctime_nsec;
	uint64_t	 ino, rdev;
};

struct tree_index {
	struct tree_ent	*ents;		/* in walk order (tree_path_cmp) */
	size_t		 n, alloc;
};

/* tree-wire.c */
/* Encoding into a record buffer of TREE_HDR_SIZE + TREE_VALUE_MAX. */
struct tree_wbuf {
	uint8_t		*p;
	size_t		 len;
};
void	 tree_wbuf_start(struct tree_wbuf *, uint8_t *, enum tree_rec);
void	 tree_put8(struct tree_wbuf *, uint8_t);
void	 tree_put16(struct tree_wbuf *, uint16_t);
void	 tree_put32(struct tree_wbuf *, uint32_t);
void	 tree_put64(struct tree_wbuf *, uint64_t);
void	 tree_putmem(struct tree_wbuf *, const void *, size_t);
void	 tree_put_entry(struct tree_wbuf *, const struct tree_ent *);
/* Fill in the length; returns the record's size. */
size_t	 tree_wbuf_end(struct tree_wbuf *);

struct tree_rbuf {
	const uint8_t	*p;
	size_t		 len;
	int		 bad;		/* read past the end */
};
uint8_t	 tree_get8(struct tree_rbuf *);
uint16_t tree_get16(struct tree_rbuf *);
uint32_t tree_get32(struct tree_rbuf *);
uint64_t tree_get64(struct tree_rbuf *);
const uint8_t *tree_getmem(struct tree_rbuf *, size_t);

/* A relative path as the wire may carry it: no NUL, no leading '/', no
 * empty, "." or ".." component, bounded.  empty_ok: "" is the root. */
int	 tree_path_valid(const char *, size_t, int empty_ok);
/* Walk order: component by component, a directory before its contents. */
int	 tree_path_cmp(const char *, const char *);
/* a lies strictly below directory b ("" is the root). */
int	 tree_path_below(const char *a, const char *b);

/* tree-scan.c */
struct tree_scan;
/* Bytes out; -1 stops the walk (cancelled). */
typedef int (*tree_write_fn)(void *arg, const void *, size_t);

struct tree_scan	*tree_scan_new(const char *dir,
			    const struct tree_index *since, char **cause);
/* Walk and encode every record, HEAD to END.  -1 and *cause on error. */
int			 tree_scan_run(struct tree_scan *, tree_write_fn,
			    void *arg, char **cause);
void			 tree_scan_stats(const struct tree_scan *,
			    struct tree_stats *);
/* Take the index of the pass (after a successful run). */
struct tree_index	*tree_scan_take_index(struct tree_scan *);
/* Open name in dfd for reading only if it is still the regular file st
 * describes (st is then its fstat): never blocks on a FIFO put in its
 * place, never opens a device.  -1 with errno; EAGAIN if it changed. */
struct stat;
int			 tree_open_regular(int dfd, const char *name,
			    struct stat *st);
void			 tree_scan_free(struct tree_scan *);

/* tree-apply.c */
struct tree_apply;

struct tree_apply	*tree_apply_new(const char *dir, char **cause);
/* Feed stream bytes, in any pieces.  -1 and *cause on a malformed record
 * or a failure to apply it; every later call fails too. */
int			 tree_apply_feed(struct tree_apply *, const uint8_t *,
			    size_t, char **cause);
/* The stream ended: -1 and *cause unless it ended with END. */
int			 tree_apply_end(struct tree_apply *, char **cause);
void			 tree_apply_stats(const struct tree_apply *,
			    struct tree_stats *);
/* Removes a half-written temporary file, if any. */
void			 tree_apply_free(struct tree_apply *);

#endif
