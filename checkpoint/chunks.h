/* Checkpoint generations as content-addressed chunks, for replicas
 * (agent/replica.c, docs/ha.md "Replicated checkpoints").
 *
 * The owner splits every file of a generation directory (its images and
 * MANIFEST, ckpt.h) into chunks of at most CHUNK_SIZE bytes, each named
 * by its SHA-256.  A replica keeps, per instance, a store of chunks
 * (DIR/chunks/HEX) and the generations assembled from them (DIR/GEN/,
 * restorable as they are, with DIR/GEN.chunks listing the chunks they
 * use).  CRIU's page images change little between two generations, so
 * most chunks of the next one are in the store already: only the others
 * cross.
 *
 * A manifest from a peer is untrusted: chunks_manifest_check bounds its
 * counts and sizes and refuses a name that is not one path component.
 * A chunk is stored only if its bytes have its digest; one read back for
 * assembly is checked again (a damaged chunk is removed and the
 * generation refused: the next one sends it again). */
#ifndef TERN_CHECKPOINT_CHUNKS_H
#define TERN_CHECKPOINT_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/digest.h"

#define CHUNK_SIZE		(1u << 20)
#define CHUNK_SIZE_MIN		4096
#define CHUNKS_FILES_MAX	4096
/* Chunks in one generation: 64 GiB at a MiB each. */
#define CHUNKS_MAX		65536
#define CHUNKS_STORE		"chunks"
/* What a replica keeps of an instance: the newest generations. */
#define CHUNKS_KEEP		2

struct chunk_file {
	char		*name;
	uint64_t	 size;
	size_t		 n;		/* chunks */
	uint8_t		(*digests)[DIGEST_LEN];
	/* Stored only (CHUNKS_STORED): chunks of a container's rootfs
	 * (migrate/rootfs-snap.h), each of its own size, kept in the store
	 * for the generation's ROOTFS manifest, never assembled into a
	 * file.  NULL for a file of the generation. */
	uint32_t	*sizes;
};

/* The name of the stored-only pseudo-file of an offer. */
#define CHUNKS_STORED		"ROOTFS.chunks"

struct chunk_manifest {
	uint32_t		 chunk_size;
	size_t			 nfiles;
	struct chunk_file	*files;
	size_t			 nchunks;	/* over every file */
};

/* Every regular file of gen_dir (MANIFEST included, CRIU's logs and
 * statistics left out), split into chunks of chunk_size. */
int	chunks_scan_dir(const char *gen_dir, uint32_t chunk_size,
	    struct chunk_manifest *, char **cause);
void	chunks_manifest_free(struct chunk_manifest *);
/* A manifest as a peer may send it: 0, or -1 and *cause. */
int	chunks_manifest_check(const struct chunk_manifest *, char **cause);
/* The size of chunk i of f. */
size_t	chunks_size(const struct chunk_manifest *, const struct chunk_file *,
	    size_t i);
/* The flat index'th chunk (files in order, then chunks): its file and
 * index there.  -1 if out of range. */
int	chunks_at(const struct chunk_manifest *, size_t index,
	    const struct chunk_file **, size_t *i);

/* The store of dir (dir/chunks). */
int	chunks_have(const char *dir, const uint8_t *digest);
/* Chunk digest of len bytes from the store into buf, checked against its
 * digest (a damaged one is removed): 0, or -1 and *cause. */
int	chunks_read(const char *dir, const uint8_t *digest, uint8_t *buf,
	    size_t len, char **cause);
/* Keep len bytes as chunk digest, if they have that digest (else -1 and
 * *cause, nothing written).  Not fsync'd: chunks_assemble syncs what a
 * generation uses. */
int	chunks_put(const char *dir, const uint8_t *digest, const void *buf,
	    size_t len, char **cause);
/* Write generation gen of dir (dir/GEN/, any older copy replaced) from
 * the store, checking every chunk as it is read, fsync it, and check it
 * whole against its MANIFEST (ckpt_verify).  *bytes: the image bytes.
 * Blocking: on the thread pool. */
int	chunks_assemble(const char *dir, const struct chunk_manifest *,
	    uint64_t gen, uint64_t *bytes, uint8_t *manifest_digest,
	    char **cause);
/* Keep the newest keep generations of dir, and the chunks they use;
 * remove the rest (so never while a transfer to dir is on its way: its
 * chunks are not listed yet).  Blocking. */
int	chunks_prune(const char *dir, unsigned keep, char **cause);

#endif
