/* Checkpoint generations as content-addressed chunks (see chunks.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "chunks"
#include "checkpoint/chunks.h"
#include "checkpoint/ckpt.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define CHUNKS_NAME_MAX	200

/* What a generation is made of: images and MANIFEST, not CRIU's logs
 * and statistics (ckpt.c leaves them out of the MANIFEST too). */
static int
chunks_wanted(const char *name)
{
	size_t	len = strlen(name);

	if (name[0] == '.' || strncmp(name, "stats-", 6) == 0 ||
	    strstr(name, ".tmp") != NULL)
		return 0;
	return !(len > 4 && strcmp(name + len - 4, ".log") == 0);
}

/* One path component, no dot file, printable. */
static int
chunks_name_valid(const char *name)
{
	size_t	i, len = strlen(name);

	if (len == 0 || len > CHUNKS_NAME_MAX || name[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (name[i] == '/' || name[i] <= ' ' || name[i] >= 127)
			return 0;
	return 1;
}

void
chunks_manifest_free(struct chunk_manifest *m)
{
	size_t	i;

	for (i = 0; i < m->nfiles; i++) {
		free(m->files[i].name);
		free(m->files[i].digests);
		free(m->files[i].sizes);
	}
	free(m->files);
	memset(m, 0, sizeof *m);
}

static int
chunks_read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t	done = 0;
	ssize_t	n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int
chunks_scan_file(const char *dir, struct chunk_file *f, uint32_t chunk_size,
    uint8_t *buf, char **cause)
{
	char		*path;
	struct stat	 st;
	size_t		 i, len;
	int		 fd, rc = -1;

	xasprintf(&path, "%s/%s", dir, f->name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fstat(fd, &st) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	f->size = (uint64_t)st.st_size;
	f->n = (size_t)((f->size + chunk_size - 1) / chunk_size);
	f->digests = xcalloc(f->n + 1, DIGEST_LEN);
	for (i = 0; i < f->n; i++) {
		len = (size_t)(f->size - (uint64_t)i * chunk_size);
		if (len > chunk_size)
			len = chunk_size;
		if (chunks_read_full(fd, buf, len, (uint64_t)i * chunk_size)) {
			set_cause(cause, "%s: short read (changed while read?)",
			    path);
			goto out;
		}
		digest_buf(buf, len, f->digests[i]);
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(path);
	return rc;
}

int
chunks_scan_dir(const char *gen_dir, uint32_t chunk_size,
    struct chunk_manifest *m, char **cause)
{
	DIR		*d;
	struct dirent	*de;
	uint8_t		*buf = NULL;
	size_t		 i;
	int		 rc = -1;

	memset(m, 0, sizeof *m);
	m->chunk_size = chunk_size;
	if ((d = opendir(gen_dir)) == NULL) {
		set_cause(cause, "%s: %s", gen_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!chunks_wanted(de->d_name) || de->d_type == DT_DIR ||
		    de->d_type == DT_SOCK || de->d_type == DT_LNK)
			continue;
		m->files = xreallocarray(m->files, m->nfiles + 1,
		    sizeof *m->files);
		memset(&m->files[m->nfiles], 0, sizeof *m->files);
		m->files[m->nfiles++].name = xstrdup(de->d_name);
	}
	closedir(d);
	buf = xmalloc(chunk_size);
	for (i = 0; i < m->nfiles; i++) {
		if (chunks_scan_file(gen_dir, &m->files[i], chunk_size, buf,
		    cause) != 0)
			goto out;
		m->nchunks += m->files[i].n;
	}
	rc = chunks_manifest_check(m, cause);
out:
	free(buf);
	if (rc != 0)
		chunks_manifest_free(m);
	return rc;
}

/* The stored-only file: sizes that add up, each a chunk's at most. */
static int
chunks_stored_check(const struct chunk_manifest *m, const struct chunk_file *f,
    char **cause)
{
	uint64_t	sum = 0;
	size_t		i;

	if (strcmp(f->name, CHUNKS_STORED) != 0 || f->n > CHUNKS_MAX) {
		set_cause(cause, "stored chunks as \"%.64s\" (%zu) refused",
		    f->name, f->n);
		return -1;
	}
	for (i = 0; i < f->n; i++) {
		if (f->sizes[i] == 0 || f->sizes[i] > m->chunk_size) {
			set_cause(cause, "stored chunk %zu of %" PRIu32 " bytes",
			    i, f->sizes[i]);
			return -1;
		}
		sum += f->sizes[i];
	}
	if (sum != f->size) {
		set_cause(cause, "stored chunks of %" PRIu64 " bytes said to "
		    "be %" PRIu64, sum, f->size);
		return -1;
	}
	return 0;
}

int
chunks_manifest_check(const struct chunk_manifest *m, char **cause)
{
	size_t	i, j, total = 0;
	int	manifest = 0;

	if (m->chunk_size < CHUNK_SIZE_MIN || m->chunk_size > CHUNK_SIZE) {
		set_cause(cause, "chunk size %" PRIu32 " out of bounds",
		    m->chunk_size);
		return -1;
	}
	if (m->nfiles == 0 || m->nfiles > CHUNKS_FILES_MAX) {
		set_cause(cause, "%zu files: not between 1 and %d", m->nfiles,
		    CHUNKS_FILES_MAX);
		return -1;
	}
	for (i = 0; i < m->nfiles; i++) {
		const struct chunk_file *f = &m->files[i];

		if (!chunks_name_valid(f->name) || !chunks_wanted(f->name)) {
			set_cause(cause, "file name \"%.64s\" refused: one "
			    "path component, no dot file, no log", f->name);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(m->files[j].name, f->name) == 0) {
				set_cause(cause, "file %s twice", f->name);
				return -1;
			}
		if (f->sizes != NULL) {
			if (chunks_stored_check(m, f, cause) != 0)
				return -1;
		} else if (strcmp(f->name, CHUNKS_STORED) == 0 ||
		    f->size > (uint64_t)CHUNKS_MAX * m->chunk_size ||
		    f->n != (f->size + m->chunk_size - 1) / m->chunk_size) {
			set_cause(cause, "file %s: %zu chunks for %" PRIu64
			    " bytes", f->name, f->n, f->size);
			return -1;
		}
		total += f->n;
		if (total > CHUNKS_MAX) {
			set_cause(cause, "more than %d chunks", CHUNKS_MAX);
			return -1;
		}
		manifest |= strcmp(f->name, CKPT_MANIFEST) == 0;
	}
	if (!manifest) {
		set_cause(cause, "no %s among the files", CKPT_MANIFEST);
		return -1;
	}
	if (total != m->nchunks) {
		set_cause(cause, "%zu chunks counted, %zu said", total,
		    m->nchunks);
		return -1;
	}
	return 0;
}

size_t
chunks_size(const struct chunk_manifest *m, const struct chunk_file *f,
    size_t i)
{
	uint64_t	left = f->size - (uint64_t)i * m->chunk_size;

	if (f->sizes != NULL)
		return f->sizes[i];
	return left > m->chunk_size ? m->chunk_size : (size_t)left;
}

int
chunks_at(const struct chunk_manifest *m, size_t index,
    const struct chunk_file **f, size_t *i)
{
	size_t	k;

	for (k = 0; k < m->nfiles; k++) {
		if (index < m->files[k].n) {
			*f = &m->files[k];
			*i = index;
			return 0;
		}
		index -= m->files[k].n;
	}
	return -1;
}

static char *
chunks_path(const char *dir, const uint8_t *digest)
{
	char	hex[DIGEST_HEX_LEN + 1], *path;

	digest_hex(digest, hex);
	xasprintf(&path, "%s/%s/%s", dir, CHUNKS_STORE, hex);
	return path;
}

int
chunks_have(const char *dir, const uint8_t *digest)
{
	char		*path = chunks_path(dir, digest);
	struct stat	 st;
	int		 rc;

	rc = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return rc;
}

static int
chunks_write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
chunks_put(const char *dir, const uint8_t *digest, const void *buf,
    size_t len, char **cause)
{
	uint8_t	 md[DIGEST_LEN];
	char	*store, *path = NULL, *tmp = NULL, hex[DIGEST_HEX_LEN + 1];
	int	 fd = -1, rc = -1;

	digest_buf(buf, len, md);
	if (memcmp(md, digest, DIGEST_LEN) != 0) {
		digest_hex(digest, hex);
		set_cause(cause, "chunk %.16s... (%zu bytes) does not have its "
		    "digest: damaged on the way", hex, len);
		return -1;
	}
	xasprintf(&store, "%s/%s", dir, CHUNKS_STORE);
	if (mkdir_p(store, 0700, cause) != 0)
		goto out;
	path = chunks_path(dir, digest);
	xasprintf(&tmp, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || chunks_write_all(fd, buf, len) != 0 ||
	    close(fd) != 0) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(store);
	free(path);
	free(tmp);
	return rc;
}

/* Chunk digest of the store, checked, into buf; a damaged one is
 * removed (the next generation sends it again). */
static int
chunks_get(const char *dir, const uint8_t *digest, uint8_t *buf, size_t len,
    char **cause)
{
	char		*path = chunks_path(dir, digest);
	uint8_t		 md[DIGEST_LEN];
	struct stat	 st;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != len ||
	    chunks_read_full(fd, buf, len, 0) != 0)
		set_cause(cause, "%s: not %zu bytes", path, len);
	else {
		digest_buf(buf, len, md);
		if (memcmp(md, digest, DIGEST_LEN) == 0)
			rc = 0;
		else
			set_cause(cause, "%s: damaged on disk (its bytes do "
			    "not have its digest)", path);
	}
	close(fd);
	if (rc != 0) {
		log_warnx("%s: removed", path);
		unlink(path);
	}
	free(path);
	return rc;
}

int
chunks_read(const char *dir, const uint8_t *digest, uint8_t *buf, size_t len,
    char **cause)
{
	return chunks_get(dir, digest, buf, len, cause);
}

/* Stored-only chunks: each there, and whole. */
static int
chunks_check_stored(const char *dir, const struct chunk_manifest *m,
    const struct chunk_file *f, uint8_t *buf, char **cause)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		if (chunks_get(dir, f->digests[i], buf, chunks_size(m, f, i),
		    cause) != 0)
			return -1;
	return 0;
}

static int
chunks_write_file(const char *dir, const struct chunk_manifest *m,
    const struct chunk_file *f, const char *path, uint8_t *buf, char **cause)
{
	size_t	i, len;
	int	fd, rc = -1;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < f->n; i++) {
		len = chunks_size(m, f, i);
		if (chunks_get(dir, f->digests[i], buf, len, cause) != 0)
			goto out;
		if (chunks_write_all(fd, buf, len) != 0) {
			set_cause(cause, "%s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (fsync(fd) != 0) {
		set_cause(cause, "%s: fsync: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* DIR/GEN.chunks: the digests GEN uses, for chunks_prune. */
static int
chunks_write_list(const char *dir, const struct chunk_manifest *m,
    uint64_t gen, char **cause)
{
	char	*path, *text, hex[DIGEST_HEX_LEN + 1];
	size_t	 i, j, off = 0;
	int	 rc;

	text = xmalloc(m->nchunks * (DIGEST_HEX_LEN + 1) + 1);
	for (i = 0; i < m->nfiles; i++)
		for (j = 0; j < m->files[i].n; j++) {
			digest_hex(m->files[i].digests[j], hex);
			memcpy(text + off, hex, DIGEST_HEX_LEN);
			off += DIGEST_HEX_LEN;
			text[off++] = '\n';
		}
	text[off] = '\0';
	xasprintf(&path, "%s/%" PRIu64 ".chunks", dir, gen);
	rc = write_file_atomic(path, text, cause);
	free(path);
	free(text);
	return rc;
}

int
chunks_assemble(const char *dir, const struct chunk_manifest *m,
    uint64_t gen, uint64_t *bytes, uint8_t *manifest_digest, char **cause)
{
	char		*gen_dir, *path = NULL, *final = NULL, *text = NULL;
	uint8_t		*buf = NULL;
	size_t		 i, len;
	int		 rc = -1;

	if (chunks_manifest_check(m, cause) != 0)
		return -1;
	xasprintf(&gen_dir, "%s/%" PRIu64, dir, gen);
	if (rm_rf(gen_dir, cause) != 0 || mkdir_p(gen_dir, 0700, cause) != 0)
		goto out;
	if (chunks_write_list(dir, m, gen, cause) != 0)
		goto out;
	buf = xmalloc(m->chunk_size);
	/* The MANIFEST last, through a temporary name: a generation counts
	 * only once its MANIFEST exists (ckpt.h). */
	for (i = 0; i < m->nfiles; i++) {
		const struct chunk_file *f = &m->files[i];
		int last = strcmp(f->name, CKPT_MANIFEST) == 0;

		if (f->sizes != NULL) {
			if (chunks_check_stored(dir, m, f, buf, cause) != 0)
				goto out;
			continue;
		}
		if (last)
			continue;
		free(path);
		xasprintf(&path, "%s/%s", gen_dir, f->name);
		if (chunks_write_file(dir, m, f, path, buf, cause) != 0)
			goto out;
	}
	for (i = 0; i < m->nfiles; i++) {
		const struct chunk_file *f = &m->files[i];

		if (strcmp(f->name, CKPT_MANIFEST) != 0)
			continue;
		free(path);
		xasprintf(&path, "%s/%s.tmp", gen_dir, f->name);
		xasprintf(&final, "%s/%s", gen_dir, f->name);
		if (chunks_write_file(dir, m, f, path, buf, cause) != 0)
			goto out;
		free(text);
		if ((text = read_file_bounded(path, (size_t)f->size + 1, &len,
		    cause)) == NULL)
			goto out;
		digest_buf(text, len, manifest_digest);
	}
	/* Check the images against the MANIFEST before it is published. */
	if (rename(path, final) != 0) {
		set_cause(cause, "%s: %s", final, strerror(errno));
		goto out;
	}
	if (ckpt_verify(gen_dir, bytes, cause) != 0) {
		unlink(final);
		goto out;
	}
	if (fsync_parent(final, cause) != 0 || fsync_parent(gen_dir, cause) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		char *ignore = NULL;

		rm_rf(gen_dir, &ignore);
		free(ignore);
		free(final);
		xasprintf(&final, "%s/%" PRIu64 ".chunks", dir, gen);
		unlink(final);
	}
	free(buf);
	free(text);
	free(path);
	free(final);
	free(gen_dir);
	return rc;
}

static int
chunks_cmp_gen(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;	/* newest first */
}

/* Add the digests listed in dir/GEN.chunks to *keep. */
static void
chunks_keep_list(const char *dir, uint64_t gen, char ***keep, size_t *n)
{
	char	*path, line[DIGEST_HEX_LEN + 8];
	FILE	*fp;

	xasprintf(&path, "%s/%" PRIu64 ".chunks", dir, gen);
	if ((fp = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof line, fp) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			*keep = xreallocarray(*keep, *n + 1, sizeof **keep);
			(*keep)[(*n)++] = xstrdup(line);
		}
		fclose(fp);
	}
	free(path);
}

static int
chunks_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
chunks_prune(const char *dir, unsigned keep, char **cause)
{
	DIR		*d;
	struct dirent	*de;
	uint64_t	*gens = NULL, gen;
	size_t		 ngens = 0, nkeep = 0, i, kept = 0;
	char		**keepers = NULL, *path, *end, *store;
	int		 rc = 0;

	if ((d = opendir(dir)) == NULL) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		gen = strtoull(de->d_name, &end, 10);
		if (*end != '\0' || gen == 0)
			continue;
		gens = xreallocarray(gens, ngens + 1, sizeof *gens);
		gens[ngens++] = gen;
	}
	closedir(d);
	if (ngens > 0)
		qsort(gens, ngens, sizeof *gens, chunks_cmp_gen);
	for (i = 0; i < ngens; i++) {
		struct stat st;

		xasprintf(&path, "%s/%" PRIu64 "/%s", dir, gens[i],
		    CKPT_MANIFEST);
		/* The newest complete ones stay, and anything newer than
		 * them; the rest goes. */
		if (kept < keep && stat(path, &st) == 0) {
			kept++;
			chunks_keep_list(dir, gens[i], &keepers, &nkeep);
			free(path);
			continue;
		}
		free(path);
		if (kept == 0)
			continue;
		xasprintf(&path, "%s/%" PRIu64, dir, gens[i]);
		if (rm_rf(path, cause) != 0)
			rc = -1;
		free(path);
		xasprintf(&path, "%s/%" PRIu64 ".chunks", dir, gens[i]);
		unlink(path);
		free(path);
	}
	if (nkeep > 0)
		qsort(keepers, nkeep, sizeof *keepers, chunks_cmp_str);
	xasprintf(&store, "%s/%s", dir, CHUNKS_STORE);
	if ((d = opendir(store)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char *name = de->d_name;

			if (name[0] == '.' || (nkeep > 0 && bsearch(&name,
			    keepers, nkeep, sizeof *keepers, chunks_cmp_str) !=
			    NULL))
				continue;
			xasprintf(&path, "%s/%s", store, name);
			unlink(path);
			free(path);
		}
		closedir(d);
	}
	free(store);
	for (i = 0; i < nkeep; i++)
		free(keepers[i]);
	free(keepers);
	free(gens);
	return rc;
}
