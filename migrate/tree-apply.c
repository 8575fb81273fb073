/* The receiving side of a tree pass: decode records (tree-wire.c) and
 * apply them beneath one directory.  Blocking; runs on a thread of its
 * own.  The records come from a peer, so nothing in them is trusted:
 *
 * - every path is checked (tree_path_valid) and resolved with
 *   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (or O_NOFOLLOW at each component
 *   where openat2 is missing), and the last component is only used with
 *   *at calls that do not follow it, so nothing outside dir is touched;
 * - a record's length is checked before it is buffered, and one record
 *   buffer of fixed size is all the memory the stream takes;
 * - files, symlinks, nodes and hard links are made under a temporary name
 *   and renamed over the real one, so a failed pass never leaves a
 *   half-written file under its real name.
 *
 * Nothing is fsync'd here (tree_sync does that when the caller wants). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_MODULE "migrate.tree"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/tree-internal.h"

struct tree_apply {
	char			*dir;
	int			 rootfd;
	int			 head, ended;
	char			*error;		/* sticky */

	uint8_t			*rec;		/* header, then value */
	size_t			 have;		/* bytes of rec filled */
	size_t			 need;		/* header + value length */

	/* The parent directory of the last path: records come in walk
	 * order, so most share it. */
	char			*cpath;
	int			 cfd;

	/* The file between FILE and FEND. */
	int			 ffd;
	int			 fdir;
	char			 ftmp[64];
	char			*fname;
	struct tree_ent		 fent;
	uint64_t		 fwritten;

	unsigned		 seq;
	struct tree_stats	 stats;
	uint64_t		 start;
};

static int
tree_apply_fail(struct tree_apply *a, char **cause, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
tree_apply_fail(struct tree_apply *a, char **cause, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	if (a->error == NULL)
		xasprintf(&a->error, "%s: %s", a->dir, text);
	free(text);
	set_cause(cause, "%s", a->error);
	return -1;
}

struct tree_apply *
tree_apply_new(const char *dir, char **cause)
{
	struct tree_apply	*a;
	int			 fd;

	if (mkdir_p(dir, 0700, cause) != 0)
		return NULL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	a = xcalloc(1, sizeof *a);
	a->dir = xstrdup(dir);
	a->rootfd = fd;
	a->rec = xmalloc(TREE_HDR_SIZE + TREE_VALUE_MAX);
	a->need = TREE_HDR_SIZE;
	a->cfd = -1;
	a->ffd = -1;
	a->fdir = -1;
	a->start = now_ns();
	return a;
}

static void
tree_apply_uncache(struct tree_apply *a)
{
	if (a->cfd != -1)
		close(a->cfd);
	a->cfd = -1;
	free(a->cpath);
	a->cpath = NULL;
}

/* path is going away: drop the cached directory if it is path or below. */
static void
tree_apply_forget(struct tree_apply *a, const char *path)
{
	if (a->cpath != NULL && (strcmp(a->cpath, path) == 0 ||
	    tree_path_below(a->cpath, path)))
		tree_apply_uncache(a);
}

static void
tree_apply_file_close(struct tree_apply *a, int remove)
{
	if (a->ffd != -1)
		close(a->ffd);
	if (remove && a->fdir != -1)
		unlinkat(a->fdir, a->ftmp, 0);
	if (a->fdir != -1)
		close(a->fdir);
	a->ffd = a->fdir = -1;
	free(a->fname);
	a->fname = NULL;
	free(a->fent.path);
	a->fent.path = NULL;
}

void
tree_apply_free(struct tree_apply *a)
{
	if (a == NULL)
		return;
	tree_apply_file_close(a, 1);
	tree_apply_uncache(a);
	close(a->rootfd);
	free(a->rec);
	free(a->error);
	free(a->dir);
	free(a);
}

void
tree_apply_stats(const struct tree_apply *a, struct tree_stats *stats)
{
	*stats = a->stats;
	stats->duration_ns = now_ns() - a->start;
}

/* A directory beneath the root, never through a symlink.  -1 and errno. */
static int
tree_apply_open_dir(struct tree_apply *a, const char *path)
{
	struct open_how	 how;
	char		*copy, *p, *next;
	int		 fd, nfd;

	if (*path == '\0')
		return fcntl(a->rootfd, F_DUPFD_CLOEXEC, 3);
	memset(&how, 0, sizeof how);
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, a->rootfd, path, &how, sizeof how);
	if (fd != -1 || errno != ENOSYS)
		return fd;
	/* Before Linux 5.6.  Components are checked already (no ".."), so
	 * O_NOFOLLOW at each one keeps us beneath. */
	if ((fd = fcntl(a->rootfd, F_DUPFD_CLOEXEC, 3)) == -1)
		return -1;
	copy = xstrdup(path);
	for (p = copy; p != NULL; p = next) {
		if ((next = strchr(p, '/')) != NULL)
			*next++ = '\0';
		nfd = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(fd);
		if ((fd = nfd) == -1)
			break;
	}
	free(copy);
	return fd;
}

/* The directory holding path, and its last component.  -1 and *cause. */
static int
tree_apply_parent(struct tree_apply *a, const char *path, const char **name,
    char **cause)
{
	const char	*slash;
	char		*parent;
	int		 fd;

	if ((slash = strrchr(path, '/')) == NULL) {
		*name = path;
		return a->rootfd;
	}
	*name = slash + 1;
	parent = xstrndup(path, (size_t)(slash - path));
	if (a->cpath != NULL && strcmp(a->cpath, parent) == 0) {
		free(parent);
		return a->cfd;
	}
	if ((fd = tree_apply_open_dir(a, parent)) == -1) {
		tree_apply_fail(a, cause, "%s: %s", parent, strerror(errno));
		free(parent);
		return -1;
	}
	tree_apply_uncache(a);
	a->cpath = parent;
	a->cfd = fd;
	return fd;
}

/* Remove name (a directory with everything below it) from dfd. */
static int
tree_apply_remove(int dfd, const char *name)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 fd, rc = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = tree_apply_remove(dirfd(d), de->d_name);
	}
	closedir(d);
	if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

static void
tree_apply_tmpname(struct tree_apply *a, char *buf, size_t len)
{
	snprintf(buf, len, ".tern-tree.%ld.%u", (long)getpid(), a->seq++);
}

/* Rename tmp over name in dfd; a directory in the way goes first. */
static int
tree_apply_place(struct tree_apply *a, int dfd, const char *tmp,
    const char *path, const char *name, char **cause)
{
	struct stat	st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		tree_apply_forget(a, path);	/* never dfd: its parent */
		if (tree_apply_remove(dfd, name) != 0) {
			unlinkat(dfd, tmp, 0);
			return tree_apply_fail(a, cause, "%s: remove: %s",
			    path, strerror(errno));
		}
	}
	if (renameat(dfd, tmp, dfd, name) != 0) {
		unlinkat(dfd, tmp, 0);
		return tree_apply_fail(a, cause, "%s: rename: %s", path,
		    strerror(errno));
	}
	/* Two names of one file: rename did nothing, drop tmp. */
	unlinkat(dfd, tmp, 0);
	return 0;
}

static int
tree_apply_attrs_at(struct tree_apply *a, int dfd, const char *tmp,
    const struct tree_ent *e, char **cause)
{
	struct timespec	ts[2];

	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = e->mtime_sec;
	ts[1].tv_nsec = e->mtime_nsec;
	if (fchownat(dfd, tmp, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) != 0 ||
	    (!S_ISLNK(e->mode) && fchmodat(dfd, tmp, e->mode & 07777, 0) != 0) ||
	    utimensat(dfd, tmp, ts, AT_SYMLINK_NOFOLLOW) != 0)
		return tree_apply_fail(a, cause, "%s: attributes: %s", e->path,
		    strerror(errno));
	return 0;
}

static int
tree_apply_attrs_fd(struct tree_apply *a, int fd, const struct tree_ent *e,
    char **cause)
{
	struct timespec	ts[2];

	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = e->mtime_sec;
	ts[1].tv_nsec = e->mtime_nsec;
	/* chown first: it clears set-id bits that chmod then sets. */
	if (fchown(fd, e->uid, e->gid) != 0 || fchmod(fd, e->mode & 07777) != 0 ||
	    futimens(fd, ts) != 0)
		return tree_apply_fail(a, cause, "%s: attributes: %s",
		    *e->path != '\0' ? e->path : ".", strerror(errno));
	return 0;
}

/* entry := plen:u16 path mode:u32 uid:u32 gid:u32 mtime:i64 nsec:u32 */
static int
tree_apply_entry(struct tree_apply *a, struct tree_rbuf *r, struct tree_ent *e,
    int root_ok, char **cause)
{
	const uint8_t	*p;
	uint16_t	 len;

	memset(e, 0, sizeof *e);
	len = tree_get16(r);
	p = tree_getmem(r, len);
	e->mode = tree_get32(r);
	e->uid = tree_get32(r);
	e->gid = tree_get32(r);
	e->mtime_sec = (int64_t)tree_get64(r);
	e->mtime_nsec = tree_get32(r);
	if (r->bad)
		return tree_apply_fail(a, cause, "short entry record");
	if (!tree_path_valid((const char *)p, len, root_ok))
		return tree_apply_fail(a, cause, "bad path in record");
	if (e->mtime_nsec >= 1000000000u)
		return tree_apply_fail(a, cause, "bad mtime in record");
	if (e->uid == (uint32_t)-1 || e->gid == (uint32_t)-1)
		return tree_apply_fail(a, cause, "bad owner in record");
	e->path = xstrndup((const char *)p, len);
	return 0;
}

static int
tree_apply_dir(struct tree_apply *a, struct tree_ent *e, char **cause)
{
	struct stat	 st;
	const char	*name;
	int		 dfd;

	if (!S_ISDIR(e->mode))
		return tree_apply_fail(a, cause, "%s: not a directory", e->path);
	if ((dfd = tree_apply_parent(a, e->path, &name, cause)) == -1)
		return -1;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		if (unlinkat(dfd, name, 0) != 0)
			return tree_apply_fail(a, cause, "%s: unlink: %s",
			    e->path, strerror(errno));
	}
	/* Its real mode comes with DIREND, once its contents are in. */
	if (mkdirat(dfd, name, 0700) != 0)
		return tree_apply_fail(a, cause, "%s: mkdir: %s", e->path,
		    strerror(errno));
	return 0;
}

static int
tree_apply_direnddir(struct tree_apply *a, struct tree_ent *e, char **cause)
{
	const char	*name;
	int		 dfd, fd, rc;

	if (!S_ISDIR(e->mode))
		return tree_apply_fail(a, cause, "%s: not a directory", e->path);
	if (*e->path == '\0')
		fd = openat(a->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else {
		if ((dfd = tree_apply_parent(a, e->path, &name, cause)) == -1)
			return -1;
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	}
	if (fd == -1)
		return tree_apply_fail(a, cause, "%s: %s",
		    *e->path != '\0' ? e->path : ".", strerror(errno));
	rc = tree_apply_attrs_fd(a, fd, e, cause);
	close(fd);
	return rc;
}

static int
tree_apply_file(struct tree_apply *a, struct tree_ent *e, struct tree_rbuf *r,
    char **cause)
{
	const char	*name;
	int		 dfd;

	(void)tree_get64(r);	/* the size: a hint only */
	if (r->bad || r->len != 0)
		return tree_apply_fail(a, cause, "bad file record");
	if (!S_ISREG(e->mode))
		return tree_apply_fail(a, cause, "%s: not a file", e->path);
	if ((dfd = tree_apply_parent(a, e->path, &name, cause)) == -1)
		return -1;
	if ((a->fdir = fcntl(dfd, F_DUPFD_CLOEXEC, 3)) == -1)
		return tree_apply_fail(a, cause, "dup: %s", strerror(errno));
	tree_apply_tmpname(a, a->ftmp, sizeof a->ftmp);
	a->ffd = openat(dfd, a->ftmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (a->ffd == -1) {
		close(a->fdir);
		a->fdir = -1;
		return tree_apply_fail(a, cause, "%s: create: %s", e->path,
		    strerror(errno));
	}
	a->fname = xstrdup(name);
	a->fent = *e;
	e->path = NULL;		/* now a->fent's */
	a->fwritten = 0;
	return 0;
}

static int
tree_apply_data(struct tree_apply *a, const uint8_t *p, size_t len,
    char **cause)
{
	ssize_t	n;

	if (a->ffd == -1)
		return tree_apply_fail(a, cause, "data outside a file");
	while (len > 0) {
		n = write(a->ffd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return tree_apply_fail(a, cause, "%s: write: %s",
			    a->fent.path, strerror(errno));
		p += n;
		len -= (size_t)n;
		a->fwritten += (uint64_t)n;
		a->stats.bytes += (uint64_t)n;
	}
	return 0;
}

static int
tree_apply_fend(struct tree_apply *a, struct tree_rbuf *r, char **cause)
{
	uint64_t	size;
	int		rc;

	size = tree_get64(r);
	if (r->bad || r->len != 0)
		return tree_apply_fail(a, cause, "bad file end record");
	if (a->ffd == -1)
		return tree_apply_fail(a, cause, "file end outside a file");
	if (size != a->fwritten)
		return tree_apply_fail(a, cause, "%s: %llu bytes sent, %llu "
		    "arrived", a->fent.path, (unsigned long long)size,
		    (unsigned long long)a->fwritten);
	if (tree_apply_attrs_fd(a, a->ffd, &a->fent, cause) != 0)
		return -1;
	close(a->ffd);
	a->ffd = -1;
	rc = tree_apply_place(a, a->fdir, a->ftmp, a->fent.path, a->fname,
	    cause);
	tree_apply_file_close(a, 0);
	if (rc == 0)
		a->stats.files++;
	return rc;
}

static int
tree_apply_symlink(struct tree_apply *a, struct tree_ent *e,
    struct tree_rbuf *r, char **cause)
{
	const char	*name;
	char		*target, tmp[64];
	int		 dfd, rc;

	if (!S_ISLNK(e->mode) || r->len == 0 || r->len > TREE_TARGET_MAX ||
	    memchr(r->p, '\0', r->len) != NULL)
		return tree_apply_fail(a, cause, "%s: bad symlink record",
		    e->path);
	if ((dfd = tree_apply_parent(a, e->path, &name, cause)) == -1)
		return -1;
	target = xstrndup((const char *)r->p, r->len);
	tree_apply_tmpname(a, tmp, sizeof tmp);
	/* Never followed here: any target is fine, even "/" or "..". */
	if (symlinkat(target, dfd, tmp) != 0) {
		free(target);
		return tree_apply_fail(a, cause, "%s: symlink: %s", e->path,
		    strerror(errno));
	}
	free(target);
	if ((rc = tree_apply_attrs_at(a, dfd, tmp, e, cause)) != 0)
		unlinkat(dfd, tmp, 0);
	else
		rc = tree_apply_place(a, dfd, tmp, e->path, name, cause);
	return rc;
}

static int
tree_apply_node(struct tree_apply *a, struct tree_ent *e, struct tree_rbuf *r,
    char **cause)
{
	const char	*name;
	char		 tmp[64];
	uint64_t	 rdev;
	int		 dfd, rc;

	rdev = tree_get64(r);
	if (r->bad || r->len != 0 || !(S_ISCHR(e->mode) || S_ISBLK(e->mode) ||
	    S_ISFIFO(e->mode)))
		return tree_apply_fail(a, cause, "%s: bad node record", e->path);
	if ((dfd = tree_apply_parent(a, e->path, &name, cause)) == -1)
		return -1;
	tree_apply_tmpname(a, tmp, sizeof tmp);
	if (mknodat(dfd, tmp, (e->mode & S_IFMT) | 0600,
	    S_ISFIFO(e->mode) ? 0 : (dev_t)rdev) != 0)
		return tree_apply_fail(a, cause, "%s: mknod: %s", e->path,
		    strerror(errno));
	if ((rc = tree_apply_attrs_at(a, dfd, tmp, e, cause)) != 0)
		unlinkat(dfd, tmp, 0);
	else
		rc = tree_apply_place(a, dfd, tmp, e->path, name, cause);
	return rc;
}

static int
tree_apply_link(struct tree_apply *a, struct tree_rbuf *r, char **cause)
{
	const uint8_t	*p;
	const char	*name, *tname;
	char		*path = NULL, *target = NULL, tmp[64];
	uint16_t	 len;
	int		 dfd, tfd = -1, rc = -1;

	len = tree_get16(r);
	p = tree_getmem(r, len);
	if (r->bad || !tree_path_valid((const char *)p, len, 0) ||
	    !tree_path_valid((const char *)r->p, r->len, 0))
		return tree_apply_fail(a, cause, "bad link record");
	path = xstrndup((const char *)p, len);
	target = xstrndup((const char *)r->p, r->len);
	tname = strrchr(target, '/');
	if (tname == NULL) {
		tname = target;
		tfd = fcntl(a->rootfd, F_DUPFD_CLOEXEC, 3);
	} else {
		target[tname - target] = '\0';
		tfd = tree_apply_open_dir(a, target);
		tname++;
	}
	if (tfd == -1) {
		tree_apply_fail(a, cause, "%s: link target: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((dfd = tree_apply_parent(a, path, &name, cause)) == -1)
		goto out;
	tree_apply_tmpname(a, tmp, sizeof tmp);
	/* flags 0: a symlink is linked itself, never followed. */
	if (linkat(tfd, tname, dfd, tmp, 0) != 0) {
		tree_apply_fail(a, cause, "%s: link: %s", path,
		    strerror(errno));
		goto out;
	}
	rc = tree_apply_place(a, dfd, tmp, path, name, cause);
out:
	if (tfd != -1)
		close(tfd);
	free(path);
	free(target);
	return rc;
}

static int
tree_apply_delete(struct tree_apply *a, struct tree_rbuf *r, char **cause)
{
	const char	*name;
	char		*path;
	int		 dfd, rc = 0;

	if (!tree_path_valid((const char *)r->p, r->len, 0))
		return tree_apply_fail(a, cause, "bad delete record");
	path = xstrndup((const char *)r->p, r->len);
	dfd = tree_apply_parent(a, path, &name, NULL);
	if (dfd == -1) {
		/* No such directory beneath us: nothing to delete. */
		free(a->error);
		a->error = NULL;
	} else {
		tree_apply_forget(a, path);	/* never dfd: its parent */
		if (tree_apply_remove(dfd, name) != 0)
			rc = tree_apply_fail(a, cause, "%s: remove: %s", path,
			    strerror(errno));
	}
	free(path);
	if (rc == 0)
		a->stats.deleted++;
	return rc;
}

static int
tree_apply_head(struct tree_apply *a, struct tree_rbuf *r, char **cause)
{
	const uint8_t	*magic;
	uint32_t	 version;

	magic = tree_getmem(r, strlen(TREE_MAGIC));
	version = tree_get32(r);
	(void)tree_get32(r);	/* flags: nothing to do differently */
	if (r->bad || r->len != 0 ||
	    memcmp(magic, TREE_MAGIC, strlen(TREE_MAGIC)) != 0)
		return tree_apply_fail(a, cause, "not a tree stream");
	if (version != TREE_VERSION)
		return tree_apply_fail(a, cause, "tree stream version %u, "
		    "expected %u", version, TREE_VERSION);
	a->head = 1;
	return 0;
}

static int
tree_apply_endrec(struct tree_apply *a, struct tree_rbuf *r, char **cause)
{
	uint64_t	entries, files, bytes, deleted;

	entries = tree_get64(r);
	files = tree_get64(r);
	bytes = tree_get64(r);
	deleted = tree_get64(r);
	if (r->bad || r->len != 0)
		return tree_apply_fail(a, cause, "bad end record");
	if (entries != a->stats.entries || files != a->stats.files ||
	    bytes != a->stats.bytes || deleted != a->stats.deleted)
		return tree_apply_fail(a, cause, "sender counted %llu entries, "
		    "%llu files, %llu bytes, %llu deleted; %llu, %llu, %llu, "
		    "%llu arrived", (unsigned long long)entries,
		    (unsigned long long)files, (unsigned long long)bytes,
		    (unsigned long long)deleted,
		    (unsigned long long)a->stats.entries,
		    (unsigned long long)a->stats.files,
		    (unsigned long long)a->stats.bytes,
		    (unsigned long long)a->stats.deleted);
	a->ended = 1;
	return 0;
}

/* One whole record in a->rec. */
static int
tree_apply_record(struct tree_apply *a, char **cause)
{
	struct tree_rbuf	r;
	struct tree_ent		e;
	enum tree_rec		type = a->rec[0];
	int			rc;

	r.p = a->rec + TREE_HDR_SIZE;
	r.len = a->need - TREE_HDR_SIZE;
	r.bad = 0;
	if (a->ended)
		return tree_apply_fail(a, cause, "data after the end record");
	if (!a->head && type != TREE_REC_HEAD)
		return tree_apply_fail(a, cause, "not a tree stream");
	if (a->ffd != -1 && type != TREE_REC_DATA && type != TREE_REC_FEND)
		return tree_apply_fail(a, cause, "%s: record %u inside a file",
		    a->fent.path, type);
	switch (type) {
	case TREE_REC_HEAD:
		if (a->head)
			return tree_apply_fail(a, cause, "second head record");
		return tree_apply_head(a, &r, cause);
	case TREE_REC_DATA:
		return tree_apply_data(a, r.p, r.len, cause);
	case TREE_REC_FEND:
		return tree_apply_fend(a, &r, cause);
	case TREE_REC_LINK:
		a->stats.entries++;
		return tree_apply_link(a, &r, cause);
	case TREE_REC_DELETE:
		a->stats.entries++;
		return tree_apply_delete(a, &r, cause);
	case TREE_REC_END:
		return tree_apply_endrec(a, &r, cause);
	case TREE_REC_DIR:
	case TREE_REC_FILE:
	case TREE_REC_SYMLINK:
	case TREE_REC_NODE:
	case TREE_REC_DIREND:
		break;
	default:
		return tree_apply_fail(a, cause, "unknown record type %u", type);
	}
	if (tree_apply_entry(a, &r, &e, type == TREE_REC_DIREND, cause) != 0)
		return -1;
	if (type != TREE_REC_DIREND)
		a->stats.entries++;
	switch (type) {
	case TREE_REC_DIR:
		rc = r.len != 0 ? tree_apply_fail(a, cause, "bad dir record") :
		    tree_apply_dir(a, &e, cause);
		break;
	case TREE_REC_FILE:
		rc = tree_apply_file(a, &e, &r, cause);
		break;
	case TREE_REC_SYMLINK:
		rc = tree_apply_symlink(a, &e, &r, cause);
		break;
	case TREE_REC_NODE:
		rc = tree_apply_node(a, &e, &r, cause);
		break;
	default:
		rc = r.len != 0 ? tree_apply_fail(a, cause, "bad dir record") :
		    tree_apply_direnddir(a, &e, cause);
		break;
	}
	free(e.path);
	return rc;
}

int
tree_apply_feed(struct tree_apply *a, const uint8_t *p, size_t len,
    char **cause)
{
	size_t		n;
	uint32_t	vlen;

	if (a->error != NULL) {
		set_cause(cause, "%s", a->error);
		return -1;
	}
	while (len > 0) {
		n = a->need - a->have;
		if (n > len)
			n = len;
		memcpy(a->rec + a->have, p, n);
		a->have += n;
		p += n;
		len -= n;
		if (a->have < a->need)
			break;
		if (a->need == TREE_HDR_SIZE) {
			vlen = (uint32_t)a->rec[1] << 24 |
			    (uint32_t)a->rec[2] << 16 |
			    (uint32_t)a->rec[3] << 8 | a->rec[4];
			/* Checked before anything is buffered. */
			if (vlen > TREE_VALUE_MAX)
				return tree_apply_fail(a, cause, "record of "
				    "%u bytes (at most %u)", vlen,
				    TREE_VALUE_MAX);
			a->need += vlen;
			if (vlen != 0)
				continue;
		}
		if (tree_apply_record(a, cause) != 0)
			return -1;
		a->have = 0;
		a->need = TREE_HDR_SIZE;
	}
	return 0;
}

int
tree_apply_end(struct tree_apply *a, char **cause)
{
	if (a->error != NULL) {
		set_cause(cause, "%s", a->error);
		return -1;
	}
	if (!a->ended || a->have != 0)
		return tree_apply_fail(a, cause, "stream ended early");
	return 0;
}
