/* Files over a peer's streams: checkpoint images (and later the rootfs)
 * move between hosts this way, one stream per file, under the streams'
 * credit flow control, every chunk CRC32C-checked by the framing. */
#ifndef TERN_MIGRATE_FILES_H
#define TERN_MIGRATE_FILES_H

#include <stdint.h>

#include <uv.h>

#include "daemon/stream.h"

#define FILES_STREAM_KIND	TERN__STREAM_KIND__STREAM_FILES

struct files_send;

/* error is NULL when every file arrived whole (the receiver confirmed each
 * byte count). */
typedef void (*files_done_cb)(void *arg, uint64_t bytes, const char *error);

/* Send each regular file of dir, in turn, as a stream named PREFIX/FILE,
 * every stream held to limit (NULL: none), at most a MiB per turn of
 * loop.  NULL and *cause if dir cannot be read (cb is not called); else
 * cb follows exactly once. */
struct files_send	*files_send_dir(uv_loop_t *, struct stream_mux *,
			    const char *dir, const char *prefix,
			    struct ratelimit *limit, files_done_cb, void *arg,
			    char **cause);

/* Bytes handed to the streams so far. */
uint64_t		 files_send_bytes(const struct files_send *);
/* Stop sending: the current stream is aborted, cb is not called. */
void			 files_send_cancel(struct files_send *);

/* Receiving: write the stream into path (created, must not exist), size
 * bytes as the sender announced: more is refused at once, fewer fails at
 * the end (the file is removed either way).  The writes run on loop's
 * thread pool, one batch at a time; bytes are consumed (the sender's
 * window opens) only once written.  The stream may end (and the sender
 * hear that every byte arrived) before the last bytes are written: cb
 * (arg, path, error, told) says when the file is complete (error NULL)
 * or removed, exactly once, never before files_recv returns; told: the
 * sender heard of the error through the stream (else a write failed
 * after the stream had ended cleanly, and only the caller can tell
 * it).  cb may be NULL.  Not fsync'd here: the receiver makes the whole directory
 * durable when it suits it (files_sync_dir), e.g. after the migrated
 * container resumed.  -1 and *cause if path cannot be created (cb is not
 * called).  Fault point files.recv.write: delay=MS before each batch of
 * writes (a slow disk). */
typedef void (*files_recv_cb)(void *arg, const char *path, const char *error,
    int told);
int			 files_recv(uv_loop_t *, struct stream *, const char *path,
			    uint64_t size, files_recv_cb, void *arg,
			    char **cause);
/* fsync every regular file of dir, then dir (blocking: run it off the
 * event loop).  -1 and *cause on the first failure. */
int			 files_sync_dir(const char *dir, char **cause);

/* A regular file, also where the filesystem leaves d_type DT_UNKNOWN
 * (then by fstatat in dfd, not following a symlink). */
struct dirent;
int			 files_dirent_regular(int dfd, const struct dirent *);

/* A file name as a peer may send it: one path component, no dot files. */
int			 files_name_valid(const char *);

#endif
