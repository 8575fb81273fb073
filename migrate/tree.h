/* A directory tree over a peer's stream: a container's rootfs follows it
 * when it is not on shared storage.  A full pass while the container runs,
 * then, frozen, a delta of what changed since (one stream each).
 *
 * The walking, reading and writing run on threads of their own; the event
 * loop only moves bounded chunks between them and the stream. */
#ifndef TERN_MIGRATE_TREE_H
#define TERN_MIGRATE_TREE_H

#include <stdint.h>

#include <uv.h>

#include "daemon/stream.h"

#define TREE_STREAM_KIND	TERN__STREAM_KIND__STREAM_TREE

struct tree_index;
struct tree_send;

struct tree_stats {
	uint64_t	entries;	/* entries sent or applied, deletions too */
	uint64_t	files;		/* regular files whose content moved */
	uint64_t	bytes;		/* file content bytes */
	uint64_t	deleted;	/* deletions (a directory counts once) */
	uint64_t	duration_ns;
};

/* error is NULL on success.  Called once, from the loop. */
typedef void (*tree_done_cb)(void *arg, const struct tree_stats *,
    const char *error);

/* Send dir as one stream of kind "tree" named name, held to limit (NULL:
 * none).  since NULL: every
 * entry (full pass); else only entries new or changed since that index
 * (type, mode, owner, size, mtime, ctime, inode, link target), and
 * deletions of the entries that vanished.  since must stay valid until cb.
 * On success *out_index receives the index of this pass (the since of the
 * next one; the caller frees it), on failure it is set to NULL.
 *
 * Success means the receiver's stream layer took every byte, not that it
 * applied them: the receiver's tree_recv callback says that.
 * NULL and *cause if dir cannot be opened or no stream channel is free;
 * then cb is never called. */
struct tree_send	*tree_send(uv_loop_t *, struct stream_mux *,
			    const char *dir, const char *name,
			    struct ratelimit *limit,
			    const struct tree_index *since,
			    struct tree_index **out_index, tree_done_cb,
			    void *arg, char **cause);
/* Bytes handed to the stream so far (records, not only file content). */
uint64_t		 tree_send_bytes(const struct tree_send *);
/* Stop (before cb): the stream is aborted, cb is not called.  May block
 * the loop for as long as one read of the walker takes. */
void			 tree_send_cancel(struct tree_send *);

void			 tree_index_free(struct tree_index *);
size_t			 tree_index_count(const struct tree_index *);

/* Apply an incoming "tree" stream into dir (created if missing, 0700).
 * cb once, when the stream ended and everything was applied or failed.
 * A failed pass leaves every file either old or new, never half-written.
 * -1 and *cause if dir cannot be created or opened; then cb is not
 * called. */
int			 tree_recv(uv_loop_t *, struct stream *, const char *dir,
			    tree_done_cb, void *arg, char **cause);

/* fsync every regular file and directory below dir, then dir.  Blocking:
 * run it on a worker (uv_queue_work).  -1 and *cause on the first
 * failure. */
int			 tree_sync(const char *dir, char **cause);

#endif
