/* migrate/tree: full and delta passes of a tree with every kind of entry,
 * hostile record streams, and the same passes over a real (plain, unix
 * socket) connection with streams, in-process. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "daemon/conn.h"
#include "daemon/log.h"
#include "daemon/stream.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/tree-internal.h"
#include "migrate/tree.h"

struct fixture {
	char	*base, *src, *dst, *out;
};

static int
setup(void **state)
{
	struct fixture	*f = xcalloc(1, sizeof *f);
	char		 tmpl[] = "/tmp/test-tree.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	f->base = xstrdup(tmpl);
	xasprintf(&f->src, "%s/src", f->base);
	xasprintf(&f->dst, "%s/dst", f->base);
	xasprintf(&f->out, "%s/outside", f->base);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(mkdir(f->out, 0755), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(rm_rf(f->base, NULL), 0);
	free(f->base);
	free(f->src);
	free(f->dst);
	free(f->out);
	free(f);
	return 0;
}

static void
put_file(const char *dir, const char *name, const void *p, size_t len)
{
	char	*path;
	int	 fd;

	xasprintf(&path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd != -1);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
	free(path);
}

static char *
at(const char *dir, const char *name)
{
	static char	buf[4][4096];
	static int	i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

static void
set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec	ts[2] = { { 0, UTIME_OMIT }, { sec, nsec } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int
is_root(void)
{
	return geteuid() == 0;
}

/* Every kind of entry. */
static void
make_tree(const char *src)
{
	struct sockaddr_un	 sun;
	uint8_t			*big;
	size_t			 i;
	int			 s;

	assert_int_equal(mkdir(at(src, "a"), 0750), 0);
	assert_int_equal(mkdir(at(src, "a/b"), 0755), 0);
	put_file(src, "a/b/deep.txt", "deep", 4);
	big = xmalloc(300000);
	for (i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 7 + i / 1000);
	put_file(src, "a/big.bin", big, 300000);
	free(big);
	put_file(src, "a/empty", "", 0);
	put_file(src, "suid", "x", 1);
	assert_int_equal(chmod(at(src, "suid"), 04755), 0);
	put_file(src, "file.txt", "hello", 5);
	if (is_root())
		assert_int_equal(chown(at(src, "file.txt"), 1234, 5678), 0);
	put_file(src, "hl1", "linked", 6);
	assert_int_equal(link(at(src, "hl1"), at(src, "a/hl2")), 0);
	assert_int_equal(link(at(src, "hl1"), at(src, "hl3")), 0);
	assert_int_equal(symlink("file.txt", at(src, "sym")), 0);
	assert_int_equal(symlink("/etc/passwd", at(src, "abs")), 0);
	assert_int_equal(symlink("nowhere/x", at(src, "dangling")), 0);
	assert_int_equal(mkfifo(at(src, "fifo"), 0640), 0);
	if (is_root())
		assert_int_equal(mknod(at(src, "null"), S_IFCHR | 0666,
		    makedev(1, 3)), 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", at(src, "sock"));
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof sun), 0);
	close(s);
	assert_int_equal(mkdir(at(src, "gone"), 0755), 0);
	assert_int_equal(mkdir(at(src, "gone/x"), 0755), 0);
	put_file(src, "gone/x/y", "y", 1);
	put_file(src, "f2d", "file", 4);
	assert_int_equal(mkdir(at(src, "d2s"), 0755), 0);
	put_file(src, "d2s/child", "c", 1);

	set_mtime(at(src, "file.txt"), 1000000000, 123456789);
	set_mtime(at(src, "sym"), 1000000001, 1);
	set_mtime(at(src, "fifo"), 1000000002, 999999999);
	set_mtime(at(src, "a/b"), 1000000003, 5);	/* dirs last */
	assert_int_equal(chmod(at(src, "a/b"), 0555), 0);
	set_mtime(at(src, "a"), 1000000004, 6);
}

static char **
names(const char *dir, size_t *np)
{
	struct dirent	*de;
	DIR		*d;
	char		**v = NULL, *p;
	size_t		 n = 0, i, j;
	struct stat	 st;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_int_equal(lstat(at(dir, de->d_name), &st), 0);
		if (S_ISSOCK(st.st_mode))
			continue;	/* not sent */
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(v[j], v[i]) < 0) {
				p = v[i];
				v[i] = v[j];
				v[j] = p;
			}
	*np = n;
	return v;
}

static void
same_content(const char *a, const char *b)
{
	char	*x, *y;
	size_t	 xl, yl;

	x = read_file_bounded(a, 1 << 20, &xl, NULL);
	y = read_file_bounded(b, 1 << 20, &yl, NULL);
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(xl, yl);
	assert_memory_equal(x, y, xl);
	free(x);
	free(y);
}

/* a and b are the same tree: names, types, modes, owners, mtimes,
 * contents, targets, devices, link counts. */
static void
same_tree(const char *a, const char *b)
{
	struct stat	 sa, sb;
	char		**na, **nb, pa[4096], pb[4096], ta[4096], tb[4096];
	size_t		 n, m, i;
	ssize_t		 la, lb;

	na = names(a, &n);
	nb = names(b, &m);
	for (i = 0; i < n && i < m; i++)
		if (strcmp(na[i], nb[i]) != 0)
			fail_msg("%s: %s vs %s: %s", a, na[i], b, nb[i]);
	if (n != m)
		fail_msg("%s has %zu entries, %s %zu", a, n, b, m);
	for (i = 0; i < n; i++) {
		snprintf(pa, sizeof pa, "%s/%s", a, na[i]);
		snprintf(pb, sizeof pb, "%s/%s", b, nb[i]);
		assert_int_equal(lstat(pa, &sa), 0);
		assert_int_equal(lstat(pb, &sb), 0);
		if (sa.st_mode != sb.st_mode)
			fail_msg("%s: mode %o, %s: %o", pa, sa.st_mode, pb,
			    sb.st_mode);
		assert_int_equal(sa.st_uid, sb.st_uid);
		assert_int_equal(sa.st_gid, sb.st_gid);
		if (S_ISDIR(sa.st_mode))
			same_tree(pa, pb);
		else {
			assert_int_equal(sa.st_size, sb.st_size);
			assert_int_equal(sa.st_nlink, sb.st_nlink);
		}
		if (S_ISREG(sa.st_mode))
			same_content(pa, pb);
		if (S_ISLNK(sa.st_mode)) {
			la = readlink(pa, ta, sizeof ta);
			lb = readlink(pb, tb, sizeof tb);
			assert_true(la > 0);
			assert_int_equal(la, lb);
			assert_memory_equal(ta, tb, (size_t)la);
		}
		if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode))
			assert_int_equal(sa.st_rdev, sb.st_rdev);
		if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
		    sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
			fail_msg("%s: mtime %lld.%09ld, %s: %lld.%09ld", pa,
			    (long long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec,
			    pb, (long long)sb.st_mtim.tv_sec,
			    sb.st_mtim.tv_nsec);
	}
	for (i = 0; i < n; i++)
		free(na[i]);
	for (i = 0; i < m; i++)
		free(nb[i]);
	free(na);
	free(nb);
	/* The directories themselves (after their contents were read). */
	assert_int_equal(lstat(a, &sa), 0);
	assert_int_equal(lstat(b, &sb), 0);
	assert_int_equal(sa.st_mode, sb.st_mode);
	assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	assert_int_equal(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
}

static int
dir_is_empty(const char *dir)
{
	size_t	 n, i;
	char	**v = names(dir, &n);

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return n == 0;
}

static int
exists(const char *path)
{
	struct stat	st;

	return lstat(path, &st) == 0;
}

/* --- passes on buffers ------------------------------------------------------ */

/* Feed each record in two pieces, so the decoder reassembles. */
static int
feed_split(void *arg, const void *p, size_t len)
{
	struct tree_apply	*a = arg;
	size_t			 cut = len * 7 / 13;

	if (tree_apply_feed(a, p, cut, NULL) != 0 ||
	    tree_apply_feed(a, (const uint8_t *)p + cut, len - cut, NULL) != 0)
		return -1;
	return 0;
}

static int
feed_nothing(void *arg, const void *p, size_t len)
{
	(void)arg; (void)p; (void)len;
	return 0;
}

static void
pass(const char *src, const char *dst, const struct tree_index *since,
    struct tree_index **idx, struct tree_stats *sent, struct tree_stats *got)
{
	struct tree_scan	*s;
	struct tree_apply	*a;
	char			*cause = NULL;

	assert_non_null(s = tree_scan_new(src, since, &cause));
	assert_non_null(a = tree_apply_new(dst, &cause));
	if (tree_scan_run(s, feed_split, a, &cause) != 0 ||
	    tree_apply_end(a, &cause) != 0)
		fail_msg("pass: %s", cause);
	tree_scan_stats(s, sent);
	tree_apply_stats(a, got);
	*idx = tree_scan_take_index(s);
	tree_scan_free(s);
	tree_apply_free(a);
}

static void
modify_tree(const char *src)
{
	int	fd;

	fd = open(at(src, "a/big.bin"), O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "CHANGED", 7, 100000), 7);
	close(fd);
	fd = open(at(src, "file.txt"), O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, " world", 6), 6);
	close(fd);
	put_file(src, "a/b/new.txt", "new", 3);	/* in a 0555 dir (root) */
	assert_int_equal(unlink(at(src, "a/empty")), 0);
	assert_int_equal(rm_rf(at(src, "gone"), NULL), 0);
	assert_int_equal(unlink(at(src, "f2d")), 0);
	assert_int_equal(mkdir(at(src, "f2d"), 0700), 0);
	put_file(src, "f2d/c", "c", 1);
	assert_int_equal(rm_rf(at(src, "d2s"), NULL), 0);
	assert_int_equal(symlink("a/b", at(src, "d2s")), 0);
	assert_int_equal(chmod(at(src, "suid"), 0700), 0);
	assert_int_equal(link(at(src, "a/b/deep.txt"), at(src, "deep2")), 0);
	set_mtime(at(src, "a/b"), 1000000013, 15);
}

static void
test_full_and_delta(void **state)
{
	struct fixture		*f = *state;
	struct tree_index	*i1, *i2, *i3;
	struct tree_stats	 s, r;
	struct stat		 st1, st2;

	make_tree(f->src);
	pass(f->src, f->dst, NULL, &i1, &s, &r);
	same_tree(f->src, f->dst);
	assert_false(exists(at(f->dst, "sock")));
	assert_int_equal(stat(at(f->dst, "hl1"), &st1), 0);
	assert_int_equal(stat(at(f->dst, "a/hl2"), &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(stat(at(f->dst, "hl3"), &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	/* a/b/deep.txt a/big.bin a/empty suid file.txt hl1 gone/x/y f2d
	 * d2s/child */
	assert_int_equal(s.files, 9);
	assert_int_equal(r.files, 9);
	assert_int_equal(s.bytes, 4 + 300000 + 0 + 1 + 5 + 6 + 1 + 4 + 1);
	assert_int_equal(r.bytes, s.bytes);
	assert_int_equal(s.deleted, 0);
	assert_int_equal(r.entries, s.entries);

	modify_tree(f->src);
	pass(f->src, f->dst, i1, &i2, &s, &r);
	same_tree(f->src, f->dst);
	/* big.bin file.txt new.txt suid f2d/c deep.txt (its link count) */
	assert_int_equal(s.files, 6);
	assert_int_equal(r.files, 6);
	assert_int_equal(s.deleted, 2);		/* a/empty, gone */
	assert_int_equal(r.deleted, 2);
	assert_int_equal(stat(at(f->dst, "deep2"), &st1), 0);
	assert_int_equal(stat(at(f->dst, "a/b/deep.txt"), &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);

	/* Nothing changed: nothing moves. */
	pass(f->src, f->dst, i2, &i3, &s, &r);
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.files, 0);
	assert_int_equal(s.deleted, 0);
	same_tree(f->src, f->dst);
	assert_int_equal(tree_index_count(i3), tree_index_count(i2));
	tree_index_free(i1);
	tree_index_free(i2);
	tree_index_free(i3);
}

/* --- hostile records ------------------------------------------------------------ */

struct buf {
	uint8_t	*p;
	size_t	 len;
};

static void
buf_add(struct buf *b, struct tree_wbuf *w)
{
	size_t	len = tree_wbuf_end(w);

	b->p = xrealloc(b->p, b->len + len);
	memcpy(b->p + b->len, w->p, len);
	b->len += len;
}

static uint8_t	recbuf[TREE_HDR_SIZE + TREE_VALUE_MAX];

static void
rec_head(struct buf *b)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, recbuf, TREE_REC_HEAD);
	tree_putmem(&w, TREE_MAGIC, strlen(TREE_MAGIC));
	tree_put32(&w, TREE_VERSION);
	tree_put32(&w, 0);
	buf_add(b, &w);
}

/* An entry record; path may hold NULs (plen gives its length). */
static void
rec_entry(struct buf *b, enum tree_rec type, const char *path, size_t plen,
    uint32_t mode, const void *extra, size_t elen)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, recbuf, type);
	tree_put16(&w, (uint16_t)plen);
	tree_putmem(&w, path, plen);
	tree_put32(&w, mode);
	tree_put32(&w, 0);
	tree_put32(&w, 0);
	tree_put64(&w, 1000000000);
	tree_put32(&w, 0);
	tree_putmem(&w, extra, elen);
	buf_add(b, &w);
}

static void
rec_raw(struct buf *b, enum tree_rec type, const void *p, size_t len)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, recbuf, type);
	tree_putmem(&w, p, len);
	buf_add(b, &w);
}

static void
rec_u64(struct buf *b, enum tree_rec type, uint64_t v)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, recbuf, type);
	tree_put64(&w, v);
	buf_add(b, &w);
}

static void
rec_file(struct buf *b, const char *path, const char *data, uint64_t fend)
{
	uint8_t	size[8] = { 0 };

	rec_entry(b, TREE_REC_FILE, path, strlen(path), S_IFREG | 0644, size,
	    sizeof size);
	if (data != NULL)
		rec_raw(b, TREE_REC_DATA, data, strlen(data));
	rec_u64(b, TREE_REC_FEND, fend);
}

static void
rec_end(struct buf *b, uint64_t entries, uint64_t files, uint64_t bytes,
    uint64_t deleted)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, recbuf, TREE_REC_END);
	tree_put64(&w, entries);
	tree_put64(&w, files);
	tree_put64(&w, bytes);
	tree_put64(&w, deleted);
	buf_add(b, &w);
}

/* Apply b into dst byte by byte and then in one go (fresh each): the
 * result must not depend on the pieces.  0 or -1. */
static int
apply(const char *dst, struct buf *b, int bytewise)
{
	struct tree_apply	*a;
	char			*cause = NULL;
	size_t			 i;
	int			 rc = 0;

	assert_non_null(a = tree_apply_new(dst, &cause));
	if (bytewise) {
		for (i = 0; rc == 0 && i < b->len; i++)
			rc = tree_apply_feed(a, b->p + i, 1, &cause);
	} else
		rc = tree_apply_feed(a, b->p, b->len, &cause);
	if (rc == 0)
		rc = tree_apply_end(a, &cause);
	if (rc != 0) {
		assert_non_null(cause);
		print_message("    refused: %s\n", cause);
	}
	free(cause);
	tree_apply_free(a);
	free(b->p);
	b->p = NULL;
	b->len = 0;
	return rc;
}

static void
test_good_records(void **state)
{
	struct fixture	*f = *state;
	struct buf	 b = { 0 };

	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "d", 1, S_IFDIR | 0755, NULL, 0);
	rec_file(&b, "d/f", "abc", 3);
	rec_entry(&b, TREE_REC_DIREND, "d", 1, S_IFDIR | 0711, NULL, 0);
	rec_entry(&b, TREE_REC_DIREND, "", 0, S_IFDIR | 0750, NULL, 0);
	rec_end(&b, 2, 1, 3, 0);
	assert_int_equal(apply(f->dst, &b, 1), 0);
	assert_true(exists(at(f->dst, "d/f")));
}

/* Each stream must be refused, and nothing may appear outside dst. */
static void
test_bad_paths(void **state)
{
	struct fixture	*f = *state;
	struct buf	 b = { 0 };
	const char	*bad[] = { "../escape", "/abs", "a//b", "a/./b", ".",
	    "..", "a/..", "a/", "/", "a/../../x" };
	char		 longname[300], longpath[5000];
	size_t		 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rec_head(&b);
		rec_entry(&b, TREE_REC_DIR, bad[i], strlen(bad[i]),
		    S_IFDIR | 0755, NULL, 0);
		rec_end(&b, 1, 0, 0, 0);
		assert_int_equal(apply(f->dst, &b, i & 1), -1);
	}
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "a\0b", 3, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "", 0, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	memset(longname, 'n', sizeof longname);
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, longname, sizeof longname, S_IFDIR | 0755,
	    NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	for (i = 0; i < sizeof longpath; i++)
		longpath[i] = i % 10 == 9 ? '/' : 'p';
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, longpath, sizeof longpath, S_IFDIR | 0755,
	    NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	/* Delete and link paths are checked too. */
	rec_head(&b);
	rec_raw(&b, TREE_REC_DELETE, "../outside", 10);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	put_file(f->out, "victim", "v", 1);
	rec_raw(&b, TREE_REC_LINK, "\0\002ln../outside/victim", 21);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	assert_true(exists(at(f->out, "victim")));
	assert_false(exists(at(f->dst, "ln")));
	assert_int_equal(unlink(at(f->out, "victim")), 0);
	assert_true(dir_is_empty(f->out));
	assert_false(exists(at(f->base, "escape")));
	assert_false(exists("/abs"));
}

/* A symlink the stream made must never be followed. */
static void
test_symlink_escape(void **state)
{
	struct fixture	*f = *state;
	struct buf	 b = { 0 };
	struct stat	 st;
	char		 data[8] = { 0 };

	put_file(f->out, "keep", "k", 1);
	assert_int_equal(chmod(f->out, 0755), 0);

	rec_head(&b);
	rec_entry(&b, TREE_REC_SYMLINK, "ln", 2, S_IFLNK | 0777, f->out,
	    strlen(f->out));
	rec_file(&b, "ln/pwned", "x", 1);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "ln/sub", 6, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 1), -1);

	rec_head(&b);
	rec_entry(&b, TREE_REC_SYMLINK, "ln", 2, S_IFLNK | 0777, f->out,
	    strlen(f->out));
	rec_entry(&b, TREE_REC_DIREND, "ln", 2, S_IFDIR | 0777, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	rec_head(&b);
	rec_raw(&b, TREE_REC_DELETE, "ln/keep", 7);	/* nothing beneath */
	rec_raw(&b, TREE_REC_LINK, "\0\004hardln/keep", 13);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	rec_head(&b);
	rec_entry(&b, TREE_REC_NODE, "ln/fifo", 7, S_IFIFO | 0644, data,
	    sizeof data);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	/* The symlink itself is there, as a symlink, and outside is as it
	 * was. */
	assert_int_equal(lstat(at(f->dst, "ln"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_true(exists(at(f->out, "keep")));
	assert_false(exists(at(f->out, "pwned")));
	assert_false(exists(at(f->out, "sub")));
	assert_false(exists(at(f->out, "fifo")));
	assert_false(exists(at(f->dst, "hard")));
	assert_int_equal(stat(f->out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

static void
test_malformed(void **state)
{
	struct fixture	*f = *state;
	struct buf	 b = { 0 };
	uint8_t		 huge[5] = { TREE_REC_DATA, 0xff, 0xff, 0xff, 0xff };
	uint8_t		 over[5] = { TREE_REC_DIR, 0, 1, 0, 1 };
	char		*text;
	size_t		 len;

	/* Oversized length: refused from the header alone. */
	rec_head(&b);
	b.p = xrealloc(b.p, b.len + 5);
	memcpy(b.p + b.len, huge, 5);
	b.len += 5;
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	b.p = xrealloc(b.p, b.len + 5);
	memcpy(b.p + b.len, over, 5);
	b.len += 5;
	assert_int_equal(apply(f->dst, &b, 1), -1);

	/* Truncated: no END, or cut inside a record. */
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "d", 1, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_end(&b, 0, 0, 0, 0);
	b.len -= 3;
	assert_int_equal(apply(f->dst, &b, 0), -1);

	/* Not a tree stream; a record before HEAD; a second HEAD. */
	rec_raw(&b, TREE_REC_HEAD, "TERNTRE?\0\0\0\1\0\0\0\0", 16);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_entry(&b, TREE_REC_DIR, "d", 1, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_head(&b);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	/* Unknown type, bytes after END, END counts that do not match. */
	rec_head(&b);
	rec_raw(&b, 99, "", 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_end(&b, 0, 0, 0, 0);
	rec_end(&b, 0, 0, 0, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_end(&b, 5, 0, 0, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	/* Type bits that do not match the record; short entry; bad nsec. */
	rec_head(&b);
	rec_entry(&b, TREE_REC_DIR, "d", 1, S_IFREG | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_entry(&b, TREE_REC_NODE, "s", 1, S_IFSOCK | 0755, "\0\0\0\0\0\0\0\0",
	    8);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_raw(&b, TREE_REC_DIR, "\0\001d\0\0", 5);
	assert_int_equal(apply(f->dst, &b, 0), -1);

	/* DATA outside a file, a record inside one. */
	rec_head(&b);
	rec_raw(&b, TREE_REC_DATA, "abc", 3);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_entry(&b, TREE_REC_FILE, "f", 1, S_IFREG | 0644,
	    "\0\0\0\0\0\0\0\0", 8);
	rec_entry(&b, TREE_REC_DIR, "d", 1, S_IFDIR | 0755, NULL, 0);
	assert_int_equal(apply(f->dst, &b, 0), -1);
	assert_false(exists(at(f->dst, "f")));

	/* A failed pass leaves the old file, whole, and no temporary. */
	put_file(f->dst, "f", "old", 3);
	rec_head(&b);
	rec_file(&b, "f", "new!", 3);		/* 4 bytes arrived */
	assert_int_equal(apply(f->dst, &b, 0), -1);
	rec_head(&b);
	rec_entry(&b, TREE_REC_FILE, "f", 1, S_IFREG | 0644,
	    "\0\0\0\0\0\0\0\0", 8);
	rec_raw(&b, TREE_REC_DATA, "newer", 5);
	assert_int_equal(apply(f->dst, &b, 1), -1);	/* cut off */
	text = read_file_bounded(at(f->dst, "f"), 100, &len, NULL);
	assert_non_null(text);
	assert_string_equal(text, "old");
	free(text);
	assert_int_equal(unlink(at(f->dst, "f")), 0);
	assert_int_equal(rmdir(at(f->dst, "d")), 0);	/* the truncated pass's */
	assert_true(dir_is_empty(f->dst));		/* no temporaries */
	assert_true(dir_is_empty(f->out));
}

/* Deletions stay beneath dst, and take directories whole. */
static void
test_delete(void **state)
{
	struct fixture	*f = *state;
	struct buf	 b = { 0 };

	assert_int_equal(mkdir(f->dst, 0755), 0);
	assert_int_equal(mkdir(at(f->dst, "d"), 0755), 0);
	assert_int_equal(mkdir(at(f->dst, "d/e"), 0555), 0);
	put_file(f->dst, "d/e/f", "f", 1);
	assert_int_equal(symlink(f->out, at(f->dst, "d/out")), 0);
	put_file(f->out, "keep", "k", 1);
	rec_head(&b);
	rec_raw(&b, TREE_REC_DELETE, "d", 1);
	rec_raw(&b, TREE_REC_DELETE, "missing/x", 9);
	rec_end(&b, 2, 0, 0, 2);
	assert_int_equal(apply(f->dst, &b, 0), 0);
	assert_false(exists(at(f->dst, "d")));
	assert_true(exists(at(f->out, "keep")));
}

/* --- over a connection ------------------------------------------------------------ */

struct net {
	uv_loop_t		 loop;
	uv_pipe_t		 server;
	struct conn		*client, *served;
	struct stream_mux	*cmux, *smux;
	const char		*src, *dst;
	struct tree_index	*since, *idx;
	struct tree_stats	 sent, got;
	int			 sent_done, got_done, cancel;
	char			*sent_error, *got_error;
	struct tree_send	*ts;
};

static const struct conn_limits net_limits = {
	.max_frame = 64u << 10,
	.send_max = 256u << 10,
	.handshake_ms = 5000,
};

static void
net_sent(void *arg, const struct tree_stats *st, const char *error)
{
	struct net	*n = arg;

	n->sent = *st;
	n->sent_done = 1;
	n->sent_error = error != NULL ? xstrdup(error) : NULL;
}

static void
net_got(void *arg, const struct tree_stats *st, const char *error)
{
	struct net	*n = arg;

	n->got = *st;
	n->got_done = 1;
	n->got_error = error != NULL ? xstrdup(error) : NULL;
}

static int
net_accept(struct stream_mux *mux, struct stream *st, Tern__StreamKind kind,
    const char *name, uint64_t size, char **cause)
{
	struct net	*n = stream_mux_data(mux);

	assert_int_equal(kind, TREE_STREAM_KIND);
	assert_string_equal(name, "ct1/rootfs");
	return tree_recv(&n->loop, st, n->dst, net_got, n, cause);
}

static void
net_ready(struct conn *c)
{
	struct net	*n = conn_data(c);
	char		*cause = NULL;

	if (c == n->served) {
		n->smux = stream_mux_new(c, 128u << 10, net_accept, n);
		return;
	}
	n->cmux = stream_mux_new(c, 128u << 10, net_accept, n);
	n->ts = tree_send(&n->loop, n->cmux, n->src, "ct1/rootfs", NULL, n->since,
	    &n->idx, net_sent, n, &cause);
	if (n->ts == NULL)
		fail_msg("tree_send: %s", cause);
	if (n->cancel) {
		tree_send_cancel(n->ts);
		n->sent_done = 1;
	}
}

static void
net_msg(struct conn *c, Envelope *env)
{
	struct net	*n = conn_data(c);

	stream_mux_msg(c == n->served ? n->smux : n->cmux, env);
}

static void
net_data(struct conn *c, uint16_t ch, const uint8_t *p, size_t len)
{
	struct net	*n = conn_data(c);

	stream_mux_data_frame(c == n->served ? n->smux : n->cmux, ch, p, len);
}

static void
net_drain(struct conn *c)
{
	struct net	*n = conn_data(c);

	stream_mux_drain(c == n->served ? n->smux : n->cmux);
}

static void
net_close(struct conn *c, const char *cause)
{
	struct net	*n = conn_data(c);

	if (c == n->served) {
		stream_mux_free(n->smux, cause);
		n->smux = NULL;
		n->served = NULL;
	} else {
		stream_mux_free(n->cmux, cause);
		n->cmux = NULL;
		n->client = NULL;
	}
}

static const struct conn_ops net_ops = {
	.on_ready = net_ready,
	.on_msg = net_msg,
	.on_data = net_data,
	.on_drain = net_drain,
	.on_close = net_close,
};

static void
net_connection(uv_stream_t *server, int status)
{
	struct net	*n = server->data;

	assert_int_equal(status, 0);
	n->served = conn_new(&n->loop, &net_ops, &net_limits, "served", n);
	assert_int_equal(conn_accept(n->served, server, NULL, NULL), 0);
}

static void
net_check(uv_idle_t *h)
{
	struct net	*n = h->data;

	if (!n->sent_done || !n->got_done)
		return;
	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, NULL);
	if (n->client != NULL)
		conn_close(n->client, "done");
	if (n->served != NULL)
		conn_close(n->served, "done");
	uv_close((uv_handle_t *)&n->server, NULL);
}

/* One pass from src to dst over a fresh connection. */
static void
net_pass(struct fixture *f, struct net *n)
{
	uv_idle_t	 idle;
	char		*sock;

	n->src = f->src;
	n->dst = f->dst;
	assert_int_equal(uv_loop_init(&n->loop), 0);
	xasprintf(&sock, "%s/sock.%d", f->base, n->cancel);
	assert_int_equal(uv_pipe_init(&n->loop, &n->server, 0), 0);
	n->server.data = n;
	assert_int_equal(uv_pipe_bind(&n->server, sock), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&n->server, 4,
	    net_connection), 0);
	n->client = conn_new(&n->loop, &net_ops, &net_limits, "client", n);
	assert_int_equal(conn_connect_unix(n->client, sock, NULL), 0);
	uv_idle_init(&n->loop, &idle);
	idle.data = n;
	uv_idle_start(&idle, net_check);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&n->loop), 0);
	unlink(sock);
	free(sock);
}

static void
test_stream(void **state)
{
	struct fixture		*f = *state;
	struct net		 n;
	struct tree_index	*i1;

	make_tree(f->src);
	memset(&n, 0, sizeof n);
	net_pass(f, &n);
	if (n.sent_error != NULL || n.got_error != NULL)
		fail_msg("sent: %s; got: %s", n.sent_error, n.got_error);
	assert_non_null(n.idx);
	same_tree(f->src, f->dst);
	assert_int_equal(n.sent.files, 9);
	assert_int_equal(n.got.files, 9);
	assert_int_equal(n.got.bytes, n.sent.bytes);
	i1 = n.idx;

	modify_tree(f->src);
	memset(&n, 0, sizeof n);
	n.since = i1;
	net_pass(f, &n);
	if (n.sent_error != NULL || n.got_error != NULL)
		fail_msg("sent: %s; got: %s", n.sent_error, n.got_error);
	same_tree(f->src, f->dst);
	assert_int_equal(n.sent.files, 6);
	assert_int_equal(n.got.files, 6);
	assert_int_equal(n.got.deleted, 2);
	tree_index_free(i1);
	tree_index_free(n.idx);

	/* Cancelled at once: no callback on the sender, the receiver sees
	 * the stream end with an error. */
	memset(&n, 0, sizeof n);
	n.cancel = 1;
	net_pass(f, &n);
	assert_null(n.idx);
	assert_true(n.got_done);
	assert_non_null(n.got_error);
	free(n.got_error);
	assert_int_equal(tree_sync(f->dst, NULL), 0);
}

/* Needs mount(2): skipped without it. */
static void
test_mounts(void **state)
{
	struct fixture		*f = *state;
	struct tree_index	*idx;
	struct tree_stats	 s, r;
	struct net		 n;
	struct stat		 st;
	size_t			 cnt;

	assert_int_equal(mkdir(at(f->src, "mnt"), 0755), 0);
	if (mount("tmpfs", at(f->src, "mnt"), "tmpfs", 0, "size=1m") != 0) {
		print_message("    no mount(2) here (%s): skipped\n",
		    strerror(errno));
		skip();
	}
	put_file(f->src, "mnt/inside", "not the rootfs", 14);
	put_file(f->src, "outside.txt", "rootfs", 6);
	pass(f->src, f->dst, NULL, &idx, &s, &r);
	assert_int_equal(umount2(at(f->src, "mnt"), MNT_DETACH), 0);
	/* The mount point came as an empty directory. */
	assert_int_equal(lstat(at(f->dst, "mnt"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_false(exists(at(f->dst, "mnt/inside")));
	assert_true(exists(at(f->dst, "outside.txt")));
	tree_index_free(idx);
	assert_int_equal(rm_rf(f->dst, NULL), 0);

	/* The receiver runs out of room: both sides fail, and no file is
	 * half there under its name. */
	make_tree(f->src);
	assert_int_equal(mkdir(f->dst, 0755), 0);
	assert_int_equal(mount("tmpfs", f->dst, "tmpfs", 0, "size=64k"), 0);
	memset(&n, 0, sizeof n);
	net_pass(f, &n);
	assert_non_null(n.got_error);
	assert_non_null(strstr(n.got_error, "No space"));
	assert_non_null(n.sent_error);
	assert_null(n.idx);
	print_message("    receiver: %s\n    sender: %s\n", n.got_error,
	    n.sent_error);
	assert_false(exists(at(f->dst, "a/big.bin")));
	free(n.sent_error);
	free(n.got_error);
	/* No temporaries left behind. */
	assert_int_equal(lstat(at(f->dst, "a"), &st), 0);
	{
		char	**v = names(at(f->dst, "a"), &cnt);
		size_t	  i;

		for (i = 0; i < cnt; i++) {
			assert_null(strstr(v[i], ".tern-tree"));
			free(v[i]);
		}
		free(v);
	}
	assert_int_equal(umount2(f->dst, MNT_DETACH), 0);
}

/* What a hostile workload does to the sender's walk: a regular file
 * swapped for a FIFO between the walk's stat and its open (that open
 * used to block the walker for good), and a tree deeper than any rootfs
 * needs (one fd held per level). */
static void
test_hostile_walk(void **state)
{
	struct fixture		*f = *state;
	struct tree_scan	*s;
	struct stat		 st;
	char			*cause = NULL, *p;
	int			 dfd, fd, i;

	put_file(f->src, "was-a-file", "x", 1);
	dfd = open(f->src, O_RDONLY | O_DIRECTORY);
	assert_int_equal(fstatat(dfd, "was-a-file", &st, AT_SYMLINK_NOFOLLOW),
	    0);
	assert_int_equal(unlink(at(f->src, "was-a-file")), 0);
	assert_int_equal(mkfifo(at(f->src, "was-a-file"), 0644), 0);
	fd = tree_open_regular(dfd, "was-a-file", &st);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EAGAIN);
	/* The same name, still a file, opens. */
	assert_int_equal(unlink(at(f->src, "was-a-file")), 0);
	put_file(f->src, "was-a-file", "y", 1);
	assert_int_equal(fstatat(dfd, "was-a-file", &st, AT_SYMLINK_NOFOLLOW),
	    0);
	assert_true((fd = tree_open_regular(dfd, "was-a-file", &st)) >= 0);
	close(fd);
	assert_int_equal(unlink(at(f->src, "was-a-file")), 0);
	close(dfd);

	/* TREE_MAX_DEPTH + 4 levels of "d". */
	p = xstrdup(f->src);
	for (i = 0; i < TREE_MAX_DEPTH + 4; i++) {
		char *q;

		xasprintf(&q, "%s/d", p);
		free(p);
		p = q;
		assert_int_equal(mkdir(p, 0755), 0);
	}
	free(p);
	assert_non_null(s = tree_scan_new(f->src, NULL, &cause));
	assert_int_equal(tree_scan_run(s, feed_nothing, NULL, &cause), -1);
	assert_non_null(strstr(cause, "directories deep"));
	free(cause);
	tree_scan_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_and_delta, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_good_records, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_escape, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_walk, setup,
		    teardown),
	};

	log_init("test-tree", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
