/* migrate/rootfs-snap: a container's rootfs as a checkpoint replica
 * carries it.  Captured (only what changed since the previous manifest
 * is read), encoded and decoded, written back into an empty directory;
 * untrusted manifests refused whole. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/chunks.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/rootfs-snap.h"

#define CS	(64u << 10)		/* chunk size for the tests */
#define BIG	(3 * CS + 5)		/* 4 chunks */

struct fx {
	char	*tmp;
	char	*root;		/* the container's rootfs */
	char	*store;		/* the chunk store's dir */
};

static void
write_bytes(const char *dir, const char *name, const void *buf, size_t len)
{
	char	*path;
	int	 fd;

	xasprintf(&path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(path);
}

static char *
read_all(const char *dir, const char *name, size_t *len)
{
	char	*path, *cause = NULL, *text;

	xasprintf(&path, "%s/%s", dir, name);
	text = read_file_bounded(path, 1u << 24, len, &cause);
	free(cause);
	free(path);
	return text;
}

static int
setup(void **state)
{
	struct fx	*fx = xcalloc(1, sizeof *fx);
	uint8_t		*big = xmalloc(BIG);
	char		*path;
	size_t		 i;

	fx->tmp = xstrdup("/tmp/test-rootfs-snap.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	xasprintf(&fx->root, "%s/root", fx->tmp);
	xasprintf(&fx->store, "%s/store", fx->tmp);
	assert_int_equal(mkdir(fx->root, 0755), 0);
	assert_int_equal(mkdir(fx->store, 0700), 0);
	xasprintf(&path, "%s/a", fx->root);
	assert_int_equal(mkdir(path, 0750), 0);
	free(path);
	for (i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 7 + i / 1000);
	write_bytes(fx->root, "a/big", big, BIG);
	write_bytes(fx->root, "counter", "1\n", 2);
	write_bytes(fx->root, "empty", "", 0);
	write_bytes(fx->root, "gone", "soon\n", 5);
	xasprintf(&path, "%s/abs", fx->root);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	free(path);
	free(big);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*fx = *state;
	char		*cause = NULL;

	rm_rf(fx->tmp, &cause);
	free(cause);
	free(fx->tmp);
	free(fx->root);
	free(fx->store);
	free(fx);
	return 0;
}

static const struct rootfs_ent *
find(const struct rootfs_snap *s, const char *path)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->ents[i].e.path, path) == 0)
			return &s->ents[i];
	return NULL;
}

static void
capture(struct fx *fx, const struct rootfs_snap *since, struct rootfs_snap *s,
    struct rootfs_stats *st)
{
	char	*cause = NULL;

	if (rootfs_snap_capture(fx->root, since, fx->store, CS, s, st,
	    &cause) != 0)
		fail_msg("capture: %s", cause);
}

/* Captured whole, encoded, decoded, written back the same. */
static void
test_capture_materialise(void **state)
{
	struct fx		*fx = *state;
	struct rootfs_snap	 s, d;
	struct rootfs_stats	 st;
	struct stat		 sb;
	uint8_t			*buf;
	char			*out, *cause = NULL, *a, *b, target[64];
	size_t			 len, la, lb;
	ssize_t			 n;

	capture(fx, NULL, &s, &st);
	assert_int_equal(st.files_read, 4);
	assert_int_equal(st.bytes_read, BIG + 2 + 5);
	assert_int_equal(find(&s, "a/big")->n, 4);
	assert_int_equal(find(&s, "empty")->n, 0);
	assert_string_equal(find(&s, "abs")->e.target, "/etc/passwd");
	assert_string_equal(s.ents[0].e.path, "");

	rootfs_snap_encode(&s, &buf, &len);
	if (rootfs_snap_decode(buf, len, &d, &cause) != 0)
		fail_msg("decode: %s", cause);
	assert_int_equal(d.n, s.n);
	assert_memory_equal(find(&d, "a/big")->digests,
	    find(&s, "a/big")->digests, 4 * DIGEST_LEN);
	free(buf);

	xasprintf(&out, "%s/out", fx->tmp);
	if (rootfs_snap_materialise(&d, fx->store, out, &cause) != 0)
		fail_msg("materialise: %s", cause);
	a = read_all(fx->root, "a/big", &la);
	b = read_all(out, "a/big", &lb);
	assert_int_equal(la, BIG);
	assert_int_equal(lb, BIG);
	assert_memory_equal(a, b, BIG);
	free(a);
	free(b);
	b = read_all(out, "counter", &lb);
	assert_memory_equal(b, "1\n", 2);
	free(b);
	free(out);
	xasprintf(&out, "%s/out/abs", fx->tmp);
	n = readlink(out, target, sizeof target - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "/etc/passwd");
	free(out);
	xasprintf(&out, "%s/out/a", fx->tmp);
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	free(out);

	/* Never over something there. */
	xasprintf(&out, "%s/out", fx->tmp);
	assert_int_not_equal(rootfs_snap_materialise(&d, fx->store, out,
	    &cause), 0);
	free(cause);
	cause = NULL;
	free(out);
	rootfs_snap_free(&s);
	rootfs_snap_free(&d);
}

/* The next capture reads only what changed; a deleted file is gone; a
 * file whose chunks left the store is read again. */
static void
test_delta(void **state)
{
	struct fx		*fx = *state;
	struct rootfs_snap	 s1, s2, s3;
	struct rootfs_stats	 st;
	char			*path, *out, *cause = NULL, *text, hex[80];
	size_t			 len;

	capture(fx, NULL, &s1, &st);
	/* As if it had been taken a while after these files were written
	 * (else every one is "racy" and read again). */
	s1.taken_sec += 100;
	write_bytes(fx->root, "counter", "22\n", 3);
	xasprintf(&path, "%s/gone", fx->root);
	assert_int_equal(unlink(path), 0);
	free(path);
	capture(fx, &s1, &s2, &st);
	assert_int_equal(st.files_read, 1);
	assert_int_equal(st.bytes_read, 3);
	assert_null(find(&s2, "gone"));
	assert_memory_equal(find(&s2, "a/big")->digests,
	    find(&s1, "a/big")->digests, 4 * DIGEST_LEN);

	xasprintf(&out, "%s/out2", fx->tmp);
	if (rootfs_snap_materialise(&s2, fx->store, out, &cause) != 0)
		fail_msg("materialise: %s", cause);
	text = read_all(out, "counter", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(text, "22\n", 3);
	free(text);
	xasprintf(&path, "%s/gone", out);
	assert_int_not_equal(access(path, F_OK), 0);
	free(path);
	free(out);

	/* A chunk of a/big gone from the store: a/big is read again. */
	s2.taken_sec += 100;
	digest_hex(find(&s2, "a/big")->digests[1], hex);
	xasprintf(&path, "%s/%s/%s", fx->store, CHUNKS_STORE, hex);
	assert_int_equal(unlink(path), 0);
	capture(fx, &s2, &s3, &st);
	assert_int_equal(st.files_read, 1);
	assert_int_equal(st.bytes_read, BIG);
	assert_int_equal(access(path, F_OK), 0);
	free(path);

	/* And one missing when written back: refused, nothing left. */
	digest_hex(find(&s3, "counter")->digests[0], hex);
	xasprintf(&path, "%s/%s/%s", fx->store, CHUNKS_STORE, hex);
	assert_int_equal(unlink(path), 0);
	free(path);
	xasprintf(&out, "%s/out3", fx->tmp);
	assert_int_not_equal(rootfs_snap_materialise(&s3, fx->store, out,
	    &cause), 0);
	free(cause);
	assert_int_not_equal(access(out, F_OK), 0);
	free(out);
	rootfs_snap_free(&s1);
	rootfs_snap_free(&s2);
	rootfs_snap_free(&s3);
}

/* Encode s after change(), expect the decode to fail. */
static void
refused(const struct rootfs_snap *s, const char *what)
{
	struct rootfs_snap	 d;
	uint8_t			*buf;
	size_t			 len;
	char			*cause = NULL;

	rootfs_snap_encode(s, &buf, &len);
	if (rootfs_snap_decode(buf, len, &d, &cause) == 0)
		fail_msg("%s: accepted", what);
	assert_non_null(cause);
	free(cause);
	free(buf);
}

static void
set_path(struct rootfs_ent *r, const char *path)
{
	free(r->e.path);
	r->e.path = xstrdup(path);
}

static void
test_decode_refused(void **state)
{
	struct fx		*fx = *state;
	struct rootfs_snap	 s, d;
	struct rootfs_stats	 st;
	struct rootfs_ent	*r;
	uint8_t			*buf;
	size_t			 len, cut, i;
	char			*cause = NULL, *old;

	capture(fx, NULL, &s, &st);
	rootfs_snap_encode(&s, &buf, &len);
	/* Cut short anywhere, one byte more, a bad magic. */
	for (cut = 0; cut < len; cut++) {
		if (rootfs_snap_decode(buf, cut, &d, &cause) == 0)
			fail_msg("cut at %zu of %zu: accepted", cut, len);
		free(cause);
		cause = NULL;
	}
	buf = xrealloc(buf, len + 1);
	buf[len] = 0;
	assert_int_not_equal(rootfs_snap_decode(buf, len + 1, &d, &cause), 0);
	free(cause);
	cause = NULL;
	buf[0] ^= 1;
	assert_int_not_equal(rootfs_snap_decode(buf, len, &d, &cause), 0);
	free(cause);
	free(buf);

	r = (struct rootfs_ent *)find(&s, "counter");
	old = xstrdup(r->e.path);
	set_path(r, "../counter");
	refused(&s, "..");
	set_path(r, "/etc/shadow");
	refused(&s, "absolute");
	set_path(r, "a/../../x");
	refused(&s, "a/..");
	set_path(r, "abs/x");
	refused(&s, "below a symlink");
	set_path(r, "nodir/x");
	refused(&s, "below nothing");
	set_path(r, "a");
	refused(&s, "twice / out of order");
	set_path(r, old);
	free(old);

	r->e.size += CS;		/* a chunk count that does not match */
	refused(&s, "chunks for size");
	r->e.size -= CS;
	r->e.mode = S_IFSOCK | 0600;
	refused(&s, "socket");
	r->e.mode = S_IFREG | 0644;
	r->e.target = xstrdup("x");
	refused(&s, "target on a file");
	free(r->e.target);
	r->e.target = NULL;
	set_path(&s.ents[0], "r");
	refused(&s, "root not first");
	set_path(&s.ents[0], "");
	s.chunk_size = 100;
	refused(&s, "chunk size");
	s.chunk_size = CS;

	/* Entries swapped: out of walk order. */
	for (i = 1; i + 1 < s.n; i++)
		if (!S_ISDIR(s.ents[i].e.mode) && !S_ISDIR(s.ents[i + 1].e.mode))
			break;
	assert_true(i + 1 < s.n);
	{
		struct rootfs_ent t = s.ents[i];

		s.ents[i] = s.ents[i + 1];
		s.ents[i + 1] = t;
		refused(&s, "order");
		s.ents[i + 1] = s.ents[i];
		s.ents[i] = t;
	}
	/* Still whole after all that. */
	rootfs_snap_encode(&s, &buf, &len);
	assert_int_equal(rootfs_snap_decode(buf, len, &d, &cause), 0);
	rootfs_snap_free(&d);
	free(buf);
	rootfs_snap_free(&s);
}

/* The stored-only chunks of an offer: sizes that add up, one name. */
static void
test_stored_chunks(void **state)
{
	struct fx		*fx = *state;
	struct rootfs_snap	 s;
	struct rootfs_stats	 st;
	uint8_t			(*mds)[DIGEST_LEN];
	uint32_t		*sizes;
	size_t			 n;

	write_bytes(fx->root, "same", "1\n", 2);	/* = counter */
	capture(fx, NULL, &s, &st);
	n = rootfs_snap_chunks(&s, &mds, &sizes);
	/* a/big 4, counter = same 1, gone 1: distinct ones only */
	assert_int_equal(n, 6);
	free(mds);
	free(sizes);
	rootfs_snap_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capture_materialise, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stored_chunks, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
