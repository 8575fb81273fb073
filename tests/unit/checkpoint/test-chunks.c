/* checkpoint/chunks: a generation split into chunks, sent (here: put)
 * only where the replica lacks them, assembled and verified; untrusted
 * manifests and damaged chunks refused; old generations pruned. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/chunks.h"
#include "checkpoint/ckpt.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define CS	(64u << 10)		/* chunk size for the tests */
#define PAGES	(5 * CS + 1000)		/* 6 chunks */

struct fx {
	char	*tmp;		/* owner's checkpoint dir */
	char	*rep;		/* replica's dir */
};

static void
write_bytes(const char *path, const uint8_t *buf, size_t len)
{
	int	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Generation gen of the owner: pages-1.img (PAGES bytes of seed, with
 * byte at flip changed if flip >= 0), core-1.img, a log; MANIFEST. */
static char *
make_gen(struct fx *fx, uint64_t gen, int flip)
{
	char		*dir, *path, *cause = NULL;
	uint8_t		*buf = xmalloc(PAGES);
	uint64_t	 bytes;
	size_t		 i;

	for (i = 0; i < PAGES; i++)
		buf[i] = (uint8_t)(i * 131 + i / 977);
	if (flip >= 0)
		buf[flip] ^= 0x5a;
	xasprintf(&dir, "%s/%llu", fx->tmp, (unsigned long long)gen);
	assert_int_equal(mkdir(dir, 0700), 0);
	xasprintf(&path, "%s/pages-1.img", dir);
	write_bytes(path, buf, PAGES);
	free(path);
	xasprintf(&path, "%s/core-1.img", dir);
	write_bytes(path, (const uint8_t *)"core", 4);
	free(path);
	xasprintf(&path, "%s/dump.log", dir);
	write_bytes(path, (const uint8_t *)"log", 3);
	free(path);
	assert_int_equal(ckpt_publish(dir, &bytes, &cause), 0);
	free(buf);
	return dir;
}

/* What the owner's transfer does: put every chunk the replica lacks
 * (once); returns how many crossed. */
static size_t
send_missing(struct fx *fx, const struct chunk_manifest *m, const char *gen_dir)
{
	size_t		 k, i, sent = 0, len;
	const struct chunk_file *f;
	uint8_t		*buf = xmalloc(m->chunk_size);
	char		*path, *cause = NULL;
	FILE		*fp;

	for (k = 0; k < m->nchunks; k++) {
		assert_int_equal(chunks_at(m, k, &f, &i), 0);
		if (chunks_have(fx->rep, f->digests[i]))
			continue;
		len = chunks_size(m, f, i);
		xasprintf(&path, "%s/%s", gen_dir, f->name);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_int_equal(fseek(fp, (long)(i * m->chunk_size), SEEK_SET),
		    0);
		assert_int_equal(fread(buf, 1, len, fp), len);
		fclose(fp);
		free(path);
		assert_int_equal(chunks_put(fx->rep, f->digests[i], buf, len,
		    &cause), 0);
		sent++;
	}
	free(buf);
	return sent;
}

static int
setup(void **state)
{
	struct fx	*fx = xcalloc(1, sizeof *fx);
	char		 t1[] = "/tmp/test-chunks.XXXXXX";
	char		 t2[] = "/tmp/test-chunks.XXXXXX";

	assert_non_null(mkdtemp(t1));
	assert_non_null(mkdtemp(t2));
	fx->tmp = xstrdup(t1);
	fx->rep = xstrdup(t2);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*fx = *state;
	char		*cause = NULL;

	rm_rf(fx->tmp, &cause);
	rm_rf(fx->rep, &cause);
	free(cause);
	free(fx->tmp);
	free(fx->rep);
	free(fx);
	return 0;
}

static void
assemble_ok(struct fx *fx, const struct chunk_manifest *m, uint64_t gen)
{
	char		*cause = NULL, *dir;
	uint64_t	 bytes;
	uint8_t		 md[DIGEST_LEN];

	if (chunks_assemble(fx->rep, m, gen, &bytes, md, &cause) != 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(bytes, PAGES + 4);
	xasprintf(&dir, "%s/%llu", fx->rep, (unsigned long long)gen);
	if (ckpt_verify(dir, &bytes, &cause) != 0)
		fail_msg("verify: %s", cause);
	assert_int_equal(ckpt_newest(fx->rep), gen);
	free(dir);
}

/* Gen 2 differs from gen 1 in one byte: only that chunk and MANIFEST's
 * cross; both generations assemble and verify. */
static void
test_dedup(void **state)
{
	struct fx		*fx = *state;
	struct chunk_manifest	 m1, m2;
	char			*g1, *g2, *cause = NULL;
	size_t			 i;

	g1 = make_gen(fx, 1, -1);
	assert_int_equal(chunks_scan_dir(g1, CS, &m1, &cause), 0);
	/* pages (6), core (1), MANIFEST (1); no log */
	assert_int_equal(m1.nfiles, 3);
	assert_int_equal(m1.nchunks, 8);
	for (i = 0; i < m1.nfiles; i++)
		assert_null(strstr(m1.files[i].name, ".log"));
	assert_int_equal(send_missing(fx, &m1, g1), 8);
	assemble_ok(fx, &m1, 1);

	g2 = make_gen(fx, 2, 3 * CS + 7);
	assert_int_equal(chunks_scan_dir(g2, CS, &m2, &cause), 0);
	assert_int_equal(send_missing(fx, &m2, g2), 2);
	assemble_ok(fx, &m2, 2);
	/* Nothing crosses twice. */
	assert_int_equal(send_missing(fx, &m2, g2), 0);
	chunks_manifest_free(&m1);
	chunks_manifest_free(&m2);
	free(g1);
	free(g2);
}

/* A chunk whose bytes do not have its digest is not stored. */
static void
test_corrupt_chunk(void **state)
{
	struct fx		*fx = *state;
	struct chunk_manifest	 m;
	char			*g, *cause = NULL;
	uint8_t			 buf[4] = { 'c', 'o', 'r', 'x' };
	const struct chunk_file	*f = NULL;
	size_t			 i;

	g = make_gen(fx, 1, -1);
	assert_int_equal(chunks_scan_dir(g, CS, &m, &cause), 0);
	for (i = 0; i < m.nfiles; i++)
		if (strcmp(m.files[i].name, "core-1.img") == 0)
			f = &m.files[i];
	assert_non_null(f);
	assert_int_equal(chunks_put(fx->rep, f->digests[0], buf, 4, &cause),
	    -1);
	assert_non_null(strstr(cause, "damaged"));
	free(cause);
	assert_false(chunks_have(fx->rep, f->digests[0]));
	chunks_manifest_free(&m);
	free(g);
}

/* A stored chunk damaged on disk: the generation is refused, the chunk
 * removed (so the next transfer sends it again), nothing published. */
static void
test_damaged_on_disk(void **state)
{
	struct fx		*fx = *state;
	struct chunk_manifest	 m;
	char			*g, *cause = NULL, *path, hex[DIGEST_HEX_LEN + 1];
	uint64_t		 bytes;
	uint8_t			 md[DIGEST_LEN];

	g = make_gen(fx, 1, -1);
	assert_int_equal(chunks_scan_dir(g, CS, &m, &cause), 0);
	send_missing(fx, &m, g);
	digest_hex(m.files[0].digests[0], hex);
	xasprintf(&path, "%s/chunks/%s", fx->rep, hex);
	write_bytes(path, (const uint8_t *)"zz", 2);
	assert_int_equal(chunks_assemble(fx->rep, &m, 1, &bytes, md, &cause),
	    -1);
	assert_non_null(cause);
	free(cause);
	cause = NULL;
	assert_false(chunks_have(fx->rep, m.files[0].digests[0]));
	assert_int_equal(ckpt_newest(fx->rep), 0);
	/* Sent again, it assembles. */
	assert_int_equal(send_missing(fx, &m, g), 1);
	assemble_ok(fx, &m, 1);
	free(path);
	chunks_manifest_free(&m);
	free(g);
}

/* Untrusted manifests: traversal and odd names, counts that do not add
 * up, no MANIFEST, too many of anything. */
static void
test_manifest_refused(void **state)
{
	static const char *const bad[] = { "../x", "a/b", ".hidden", "",
	    "..", "dump.log", "x\ny", "MANIFEST.tmp" };
	struct chunk_file	 files[2];
	struct chunk_manifest	 m;
	uint8_t			 d[2][DIGEST_LEN];
	char			*cause = NULL;
	size_t			 i;

	(void)state;
	memset(files, 0, sizeof files);
	memset(d, 0, sizeof d);
	memset(&m, 0, sizeof m);
	m.chunk_size = CS;
	m.files = files;
	m.nfiles = 2;
	m.nchunks = 2;
	files[0].name = (char *)"MANIFEST";
	files[0].size = 10;
	files[0].n = 1;
	files[0].digests = d;
	files[1].name = (char *)"pages-1.img";
	files[1].size = CS;
	files[1].n = 1;
	files[1].digests = d + 1;
	assert_int_equal(chunks_manifest_check(&m, &cause), 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		files[1].name = (char *)bad[i];
		assert_int_equal(chunks_manifest_check(&m, &cause), -1);
		free(cause);
		cause = NULL;
	}
	files[1].name = (char *)"pages-1.img";
	files[1].size = CS + 1;		/* two chunks, one given */
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	files[1].size = UINT64_MAX;
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	files[1].size = CS;
	files[1].name = (char *)"MANIFEST";	/* twice, and no image */
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	files[0].name = (char *)"core-1.img";
	files[1].name = (char *)"pages-1.img";	/* no MANIFEST */
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	files[0].name = (char *)"MANIFEST";
	m.nchunks = 3;
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	m.nchunks = 2;
	m.chunk_size = 1;
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	m.chunk_size = CS;
	m.nfiles = CHUNKS_FILES_MAX + 1;
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
}

static const struct chunk_file *
pages(const struct chunk_manifest *m)
{
	size_t	i;

	for (i = 0; i < m->nfiles; i++)
		if (strcmp(m->files[i].name, "pages-1.img") == 0)
			return &m->files[i];
	fail_msg("no pages-1.img");
	return NULL;
}

/* Three generations, keep two: the oldest goes with the chunks only it
 * used; the kept ones still assemble from the store. */
static void
test_prune(void **state)
{
	struct fx		*fx = *state;
	struct chunk_manifest	 m[3];
	char			*g[3], *cause = NULL, *path;
	struct stat		 st;
	int			 k;

	for (k = 0; k < 3; k++) {
		g[k] = make_gen(fx, (uint64_t)k + 1, k * (int)CS + 3);
		assert_int_equal(chunks_scan_dir(g[k], CS, &m[k], &cause), 0);
		send_missing(fx, &m[k], g[k]);
		assemble_ok(fx, &m[k], (uint64_t)k + 1);
	}
	assert_int_equal(chunks_prune(fx->rep, CHUNKS_KEEP, &cause), 0);
	xasprintf(&path, "%s/1", fx->rep);
	assert_int_not_equal(stat(path, &st), 0);
	free(path);
	xasprintf(&path, "%s/2/MANIFEST", fx->rep);
	assert_int_equal(stat(path, &st), 0);
	free(path);
	/* gen 1's first pages chunk was its own: gone */
	assert_false(chunks_have(fx->rep, pages(&m[0])->digests[0]));
	assert_true(chunks_have(fx->rep, pages(&m[1])->digests[0]));
	assert_int_equal(send_missing(fx, &m[1], g[1]), 0);
	assert_int_equal(send_missing(fx, &m[2], g[2]), 0);
	/* The owner's own checkpoints: no chunk lists, no store (UBSan saw
	 * qsort get NULL there). */
	assert_int_equal(chunks_prune(fx->tmp, CHUNKS_KEEP, &cause), 0);
	xasprintf(&path, "%s/1", fx->tmp);
	assert_int_not_equal(stat(path, &st), 0);
	free(path);
	xasprintf(&path, "%s/3/MANIFEST", fx->tmp);
	assert_int_equal(stat(path, &st), 0);
	free(path);
	for (k = 0; k < 3; k++) {
		chunks_manifest_free(&m[k]);
		free(g[k]);
	}
}

/* A rootfs's stored-only chunks: sizes that add up, under their one
 * name; assembled only if every one is in the store and whole; kept by
 * pruning with the generation that lists them. */
static void
test_stored(void **state)
{
	struct fx		*fx = *state;
	struct chunk_manifest	 m;
	struct chunk_file	*f;
	uint8_t			 a[100], b[CS], md[DIGEST_LEN];
	uint64_t		 bytes;
	char			*g, *cause = NULL;

	memset(a, 'a', sizeof a);
	memset(b, 'b', sizeof b);
	g = make_gen(fx, 1, -1);
	assert_int_equal(chunks_scan_dir(g, CS, &m, &cause), 0);
	send_missing(fx, &m, g);		/* the images' chunks */
	m.files = xreallocarray(m.files, m.nfiles + 1, sizeof *m.files);
	f = &m.files[m.nfiles++];
	memset(f, 0, sizeof *f);
	f->name = xstrdup(CHUNKS_STORED);
	f->n = 2;
	f->digests = xcalloc(2, DIGEST_LEN);
	f->sizes = xcalloc(2, sizeof *f->sizes);
	digest_buf(a, sizeof a, f->digests[0]);
	digest_buf(b, sizeof b, f->digests[1]);
	f->sizes[0] = sizeof a;
	f->sizes[1] = sizeof b;
	f->size = sizeof a + sizeof b;
	m.nchunks += 2;
	assert_int_equal(chunks_manifest_check(&m, &cause), 0);
	assert_int_equal(chunks_size(&m, f, 0), sizeof a);

	f->size++;				/* sizes that do not add up */
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	f->size--;
	f->sizes[1] = CS + 1;			/* more than a chunk */
	f->size += 1;
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	f->sizes[1] = CS;
	f->size -= 1;
	free(f->name);				/* stored under another name */
	f->name = xstrdup("pages-9.img");
	assert_int_equal(chunks_manifest_check(&m, &cause), -1);
	free(cause);
	cause = NULL;
	free(f->name);
	f->name = xstrdup(CHUNKS_STORED);

	/* Not in the store: refused; then there, assembled and kept. */
	assert_int_equal(chunks_assemble(fx->rep, &m, 1, &bytes, md, &cause),
	    -1);
	free(cause);
	cause = NULL;
	assert_int_equal(chunks_put(fx->rep, f->digests[0], a, sizeof a,
	    &cause), 0);
	assert_int_equal(chunks_put(fx->rep, f->digests[1], b, sizeof b,
	    &cause), 0);
	assemble_ok(fx, &m, 1);
	assert_int_equal(chunks_prune(fx->rep, CHUNKS_KEEP, &cause), 0);
	assert_true(chunks_have(fx->rep, f->digests[0]));
	assert_true(chunks_have(fx->rep, f->digests[1]));
	chunks_manifest_free(&m);
	free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_chunk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged_on_disk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_manifest_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
