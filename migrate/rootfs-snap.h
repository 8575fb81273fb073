/* A container's rootfs as a checkpoint replica carries it (docs/ha.md
 * "Replicated checkpoints"): a tree manifest, one more file of the
 * generation (ROOTFS_SNAP_FILE, covered by its MANIFEST), listing every
 * entry in walk order (path, type and mode, owner, size, times, inode,
 * link target) and, for a regular file, the SHA-256 digests of its
 * content in chunks of chunk_size.  The content itself lives in a
 * content-addressed chunk store (checkpoint/chunks.h): unchanged files
 * reuse the previous generation's chunks without being read, and a chunk
 * a replica holds never crosses again.
 *
 * Capture walks the rootfs with migrate/tree-scan.c's change detection
 * against the previous manifest: only entries new or changed since are
 * read (the owner runs it while the container is stopped for its dump).
 * Materialise writes a manifest back into an empty directory through
 * migrate/tree-apply.c (openat, O_NOFOLLOW, no "..", bounded).  A
 * manifest from a peer is untrusted: rootfs_snap_decode bounds and checks
 * it whole. */
#ifndef TERN_MIGRATE_ROOTFS_SNAP_H
#define TERN_MIGRATE_ROOTFS_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/digest.h"
#include "migrate/tree-internal.h"

#define ROOTFS_SNAP_FILE	"ROOTFS"
#define ROOTFS_SNAP_MAGIC	"TERNROOTFS"
#define ROOTFS_SNAP_VERSION	1
/* A file written this close (seconds) to the previous capture may have
 * changed within one timestamp tick after it: read it again. */
#define ROOTFS_SNAP_RACY_S	2

struct rootfs_ent {
	struct tree_ent	  e;		/* ctime, ino: the owner's change
					 * detection only */
	size_t		  n;		/* chunks */
	uint8_t		(*digests)[DIGEST_LEN];
};

struct rootfs_snap {
	uint32_t		 chunk_size;
	int64_t			 taken_sec;	/* CLOCK_REALTIME of capture */
	size_t			 n;
	struct rootfs_ent	*ents;		/* walk order, root ("") first */
};

struct rootfs_stats {
	uint64_t	entries;
	uint64_t	files_read;	/* files whose content was read */
	uint64_t	bytes_read;
};

void	rootfs_snap_free(struct rootfs_snap *);
/* The manifest as bytes (free *buf). */
void	rootfs_snap_encode(const struct rootfs_snap *, uint8_t **buf,
	    size_t *len);
/* Untrusted bytes: 0, or -1 and *cause (nothing kept). */
int	rootfs_snap_decode(const uint8_t *, size_t, struct rootfs_snap *,
	    char **cause);
/* gen_dir/ROOTFS: read and decode it; 1 if there is none. */
int	rootfs_snap_load(const char *gen_dir, struct rootfs_snap *,
	    char **cause);
/* Write gen_dir/ROOTFS (fsync'd). */
int	rootfs_snap_save(const char *gen_dir, const struct rootfs_snap *,
	    char **cause);
/* Walk rootfs: entries new or changed since `since` (NULL: all) are read
 * and their chunks put into store_dir's chunk store; unchanged regular
 * files keep since's digests (if the store still holds their chunks).
 * Blocking. */
int	rootfs_snap_capture(const char *rootfs, const struct rootfs_snap *since,
	    const char *store_dir, uint32_t chunk_size, struct rootfs_snap *out,
	    struct rootfs_stats *, char **cause);
/* The distinct chunks snap uses: digests and sizes (free both).  Returns
 * their count. */
size_t	rootfs_snap_chunks(const struct rootfs_snap *,
	    uint8_t (**digests)[DIGEST_LEN], uint32_t **sizes);
/* Write snap's tree into dir, which must not exist, from store_dir's
 * chunks (each checked against its digest).  Blocking. */
int	rootfs_snap_materialise(const struct rootfs_snap *,
	    const char *store_dir, const char *dir, char **cause);

#endif
