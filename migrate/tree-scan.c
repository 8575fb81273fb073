/* The sending side of a tree pass: walk a directory in walk order and
 * encode the records for what is new or changed since the last pass (see
 * tree-wire.c for the format).  Blocking; runs on a thread of its own.
 *
 * The walk and the previous index are in the same order, so new, changed
 * and vanished entries fall out of one merge, and deletions in a
 * directory go out before its DIREND restores its mtime.  Memory is the
 * index (one entry per path, which the next delta needs anyway), one
 * directory's names per level and one record buffer; never a whole file.
 * Extended attributes and ACLs are not sent (the container images we run
 * do not rely on them); sockets are skipped, their owner recreates them.
 * Mount points below dir are sent as empty directories: what is mounted
 * there (volumes, /proc) is not the rootfs. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_MODULE "migrate.tree"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/tree-internal.h"

/* A file with more than one link, first seen at index entry ent. */
struct tree_link {
	uint64_t	 dev, ino;
	size_t		 ent;
	int		 used;
};

struct tree_scan {
	char			*dir;
	int			 rootfd;
	dev_t			 rootdev;
	const struct tree_index	*since;
	size_t			 cur;		/* next since entry to merge */
	const char		*gone;		/* since entries below were removed */
	struct tree_index	*idx;
	struct tree_link	*links;
	size_t			 nlinks, linkcap;	/* open addressing */
	char			 path[TREE_PATH_MAX + 1];
	uint8_t			*rec;
	tree_write_fn		 write;
	void			*arg;
	struct tree_stats	 stats;
	uint64_t		 start;
	unsigned		 depth;		/* directories open now */
	char			**cause;
};

static int	tree_scan_dir(struct tree_scan *, int, size_t, int *);

void
tree_index_free(struct tree_index *idx)
{
	size_t	i;

	if (idx == NULL)
		return;
	for (i = 0; i < idx->n; i++) {
		free(idx->ents[i].path);
		free(idx->ents[i].target);
	}
	free(idx->ents);
	free(idx);
}

size_t
tree_index_count(const struct tree_index *idx)
{
	return idx->n;
}

static struct tree_ent *
tree_index_set(struct tree_ent *e, const char *path, const struct stat *st)
{
	memset(e, 0, sizeof *e);
	e->path = xstrdup(path);
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->size = (uint64_t)st->st_size;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->ctime_sec = st->st_ctim.tv_sec;
	e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->rdev = st->st_rdev;
	return e;
}

static struct tree_ent *
tree_index_add(struct tree_index *idx, const char *path, const struct stat *st)
{
	if (idx->n == idx->alloc) {
		idx->alloc = idx->alloc == 0 ? 256 : idx->alloc * 2;
		idx->ents = xreallocarray(idx->ents, idx->alloc,
		    sizeof *idx->ents);
	}
	return tree_index_set(&idx->ents[idx->n++], path, st);
}

static int
tree_ent_differs(const struct tree_ent *a, const struct tree_ent *b)
{
	if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->size != b->size || a->ino != b->ino || a->rdev != b->rdev ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	    a->ctime_sec != b->ctime_sec || a->ctime_nsec != b->ctime_nsec)
		return 1;
	if ((a->target == NULL) != (b->target == NULL))
		return 1;
	return a->target != NULL && strcmp(a->target, b->target) != 0;
}

static int
tree_scan_out(struct tree_scan *s, struct tree_wbuf *w)
{
	size_t	len = tree_wbuf_end(w);

	if (s->write(s->arg, w->p, len) != 0) {
		set_cause(s->cause, "%s: cancelled", s->dir);
		return -1;
	}
	return 0;
}

struct tree_scan *
tree_scan_new(const char *dir, const struct tree_index *since, char **cause)
{
	struct tree_scan	*s;
	int			 fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	s->dir = xstrdup(dir);
	s->rootfd = fd;
	s->since = since;
	s->idx = xcalloc(1, sizeof *s->idx);
	s->rec = xmalloc(TREE_HDR_SIZE + TREE_VALUE_MAX);
	return s;
}

void
tree_scan_free(struct tree_scan *s)
{
	if (s == NULL)
		return;
	if (s->rootfd != -1)
		close(s->rootfd);
	tree_index_free(s->idx);
	free(s->links);
	free(s->rec);
	free(s->dir);
	free(s);
}

void
tree_scan_stats(const struct tree_scan *s, struct tree_stats *stats)
{
	*stats = s->stats;
}

struct tree_index *
tree_scan_take_index(struct tree_scan *s)
{
	struct tree_index	*idx = s->idx;

	s->idx = NULL;
	return idx;
}

/* Deletions for every since entry before path (NULL: below directory
 * s->path, which is being left). */
static int
tree_scan_vanished(struct tree_scan *s, const char *path, int *dirty)
{
	const struct tree_ent	*e;
	struct tree_wbuf	 w;
	size_t			 len;

	if (s->since == NULL)
		return 0;
	for (; s->cur < s->since->n; s->cur++) {
		e = &s->since->ents[s->cur];
		if (path != NULL ? tree_path_cmp(e->path, path) >= 0 :
		    !tree_path_below(e->path, s->path))
			break;
		if (s->gone != NULL && tree_path_below(e->path, s->gone))
			continue;	/* went with its directory */
		s->gone = e->path;
		len = strlen(e->path);
		tree_wbuf_start(&w, s->rec, TREE_REC_DELETE);
		tree_putmem(&w, e->path, len);
		if (tree_scan_out(s, &w) != 0)
			return -1;
		s->stats.deleted++;
		s->stats.entries++;
		*dirty = 1;
	}
	return 0;
}

/* The since entry for path, if any; it is consumed. */
static const struct tree_ent *
tree_scan_old(struct tree_scan *s, const char *path)
{
	const struct tree_ent	*e;

	if (s->since == NULL || s->cur == s->since->n)
		return NULL;
	e = &s->since->ents[s->cur];
	if (strcmp(e->path, path) != 0)
		return NULL;
	s->cur++;
	return e;
}

static int
tree_scan_entry_rec(struct tree_scan *s, enum tree_rec type,
    const struct tree_ent *e)
{
	struct tree_wbuf	w;

	tree_wbuf_start(&w, s->rec, type);
	tree_put_entry(&w, e);
	switch (type) {
	case TREE_REC_FILE:
		tree_put64(&w, e->size);
		break;
	case TREE_REC_SYMLINK:
		tree_putmem(&w, e->target, strlen(e->target));
		break;
	case TREE_REC_NODE:
		tree_put64(&w, e->rdev);
		break;
	default:
		break;
	}
	if (type != TREE_REC_DIREND)
		s->stats.entries++;
	return tree_scan_out(s, &w);
}

static int
tree_scan_file(struct tree_scan *s, int fd, const struct tree_ent *e)
{
	struct tree_wbuf	w;
	uint64_t		off = 0;
	size_t			want;
	ssize_t			n;

	if (tree_scan_entry_rec(s, TREE_REC_FILE, e) != 0)
		return -1;
	/* Up to the size it had: a file that grows while the container runs
	 * would otherwise never end; the delta pass sends it again. */
	while (off < e->size) {
		want = e->size - off < TREE_DATA_MAX ?
		    (size_t)(e->size - off) : TREE_DATA_MAX;
		n = pread(fd, s->rec + TREE_HDR_SIZE, want, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			set_cause(s->cause, "%s/%s: read: %s", s->dir, e->path,
			    strerror(errno));
			return -1;
		}
		if (n == 0)
			break;	/* shrank: the delta pass sends it again */
		tree_wbuf_start(&w, s->rec, TREE_REC_DATA);
		w.len += (size_t)n;
		if (tree_scan_out(s, &w) != 0)
			return -1;
		off += (uint64_t)n;
	}
	tree_wbuf_start(&w, s->rec, TREE_REC_FEND);
	tree_put64(&w, off);
	s->stats.files++;
	s->stats.bytes += off;
	return tree_scan_out(s, &w);
}

/* The slot of (dev, ino) in the table of files with several links. */
static struct tree_link *
tree_scan_link_slot(struct tree_scan *s, uint64_t dev, uint64_t ino)
{
	size_t	i;

	i = (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ dev) & (s->linkcap - 1);
	while (s->links[i].used &&
	    (s->links[i].dev != dev || s->links[i].ino != ino))
		i = (i + 1) & (s->linkcap - 1);
	return &s->links[i];
}

/* A second name of a file seen earlier in this pass: a LINK record. */
static int
tree_scan_hardlink(struct tree_scan *s, const struct stat *st,
    const char *path, int changed, int *linked)
{
	struct tree_link	*l;
	struct tree_wbuf	 w;
	const char		*first;

	*linked = 0;
	if (s->nlinks == 0 || S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return 0;
	l = tree_scan_link_slot(s, st->st_dev, st->st_ino);
	if (!l->used)
		return 0;
	*linked = 1;
	if (!changed)
		return 0;
	first = s->idx->ents[l->ent].path;
	tree_wbuf_start(&w, s->rec, TREE_REC_LINK);
	tree_put16(&w, (uint16_t)strlen(path));
	tree_putmem(&w, path, strlen(path));
	tree_putmem(&w, first, strlen(first));
	s->stats.entries++;
	return tree_scan_out(s, &w);
}

static void
tree_scan_remember_link(struct tree_scan *s, const struct stat *st, size_t ei)
{
	struct tree_link	*old;
	size_t			 oldcap, i;

	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return;
	if ((s->nlinks + 1) * 2 > s->linkcap) {
		old = s->links;
		oldcap = s->linkcap;
		s->linkcap = oldcap == 0 ? 64 : oldcap * 2;
		s->links = xcalloc(s->linkcap, sizeof *s->links);
		for (i = 0; i < oldcap; i++)
			if (old[i].used)
				*tree_scan_link_slot(s, old[i].dev,
				    old[i].ino) = old[i];
		free(old);
	}
	old = tree_scan_link_slot(s, st->st_dev, st->st_ino);
	old->used = 1;
	old->dev = st->st_dev;
	old->ino = st->st_ino;
	old->ent = ei;
	s->nlinks++;
}

static int
tree_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted: the walk order. */
static char **
tree_scan_names(struct tree_scan *s, int dfd, size_t *np)
{
	struct dirent	*de;
	DIR		*d;
	char		**names = NULL;
	size_t		 n = 0;
	int		 fd;

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		set_cause(s->cause, "%s/%s: %s", s->dir, s->path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = xreallocarray(names, n + 1, sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n != 0)
		qsort(names, n, sizeof *names, tree_name_cmp);
	*np = n;
	return names != NULL ? names : xcalloc(1, sizeof *names);
}

int
tree_open_regular(int dfd, const char *name, struct stat *st)
{
	struct stat	 now;
	char		 proc[64];
	int		 pfd, fd;

	/* O_PATH opens nothing (no FIFO wait, no device side effect) and
	 * pins the inode: what is opened for reading is what was checked. */
	if ((pfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(pfd, &now) != 0) {
		close(pfd);
		return -1;
	}
	if (!S_ISREG(now.st_mode) || now.st_ino != st->st_ino ||
	    now.st_dev != st->st_dev) {
		close(pfd);
		errno = EAGAIN;
		return -1;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	close(pfd);
	if (fd == -1 || fstat(fd, st) != 0) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/* A directory: its record, what is below it (on the same device), then
 * its end record, which sets its mtime on the peer. */
static int
tree_scan_subdir(struct tree_scan *s, int dfd, const char *name, size_t plen,
    size_t ei, int changed, const struct stat *st)
{
	int	fd, sub = 0, rc = -1;

	if (changed &&
	    tree_scan_entry_rec(s, TREE_REC_DIR, &s->idx->ents[ei]) != 0)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		set_cause(s->cause, "%s/%s: %s", s->dir, s->path,
		    strerror(errno));
		return -1;
	}
	if (s->depth >= TREE_MAX_DEPTH) {
		set_cause(s->cause, "%s/%s: more than %u directories deep (put "
		    "such a rootfs on shared storage)", s->dir, s->path,
		    TREE_MAX_DEPTH);
		goto out;
	}
	s->depth++;
	if (st->st_dev == s->rootdev && tree_scan_dir(s, fd, plen, &sub) != 0) {
		s->depth--;
		goto out;
	}
	s->depth--;
	s->path[plen] = '\0';
	/* The index grew: ei, not a pointer.  Our changes below moved its
	 * mtime on the peer: set it. */
	if ((changed || sub) &&
	    tree_scan_entry_rec(s, TREE_REC_DIREND, &s->idx->ents[ei]) != 0)
		goto out;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* A regular file that changed: read, and indexed as it was read (a later
 * change shows in the next delta).  1: gone meanwhile. */
static int
tree_scan_regular(struct tree_scan *s, int dfd, const char *name,
    struct tree_ent *e, struct stat *st)
{
	int	fd, rc;

	fd = tree_open_regular(dfd, name, st);
	if (fd == -1 && errno == ENOENT)
		return 1;	/* a deletion next time */
	if (fd == -1 && errno == EAGAIN) {
		set_cause(s->cause, "%s/%s: replaced while read (no longer the "
		    "regular file it was)", s->dir, s->path);
		return -1;
	}
	if (fd == -1) {
		set_cause(s->cause, "%s/%s: %s", s->dir, s->path,
		    strerror(errno));
		return -1;
	}
	free(e->path);
	e = tree_index_set(e, s->path, st);
	rc = tree_scan_file(s, fd, e);
	close(fd);
	return rc;
}

/* Its index entry, and whether it changed since the last pass (then the
 * parent's entries change on the peer: *dirty). */
static struct tree_ent *
tree_scan_index(struct tree_scan *s, int dfd, const char *name,
    const struct stat *st, int *changed, int *dirty)
{
	const struct tree_ent	*old = tree_scan_old(s, s->path);
	struct tree_ent		*e;
	char			 target[TREE_TARGET_MAX + 1];
	ssize_t			 n;

	if (s->idx->n >= TREE_MAX_ENTRIES) {
		set_cause(s->cause, "%s: more than %u entries (put such a "
		    "rootfs on shared storage)", s->dir, TREE_MAX_ENTRIES);
		return NULL;
	}
	e = tree_index_add(s->idx, s->path, st);
	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(dfd, name, target, sizeof target);
		if (n <= 0 || (size_t)n >= sizeof target) {
			set_cause(s->cause, "%s/%s: readlink: %s", s->dir,
			    s->path, n < 0 ? strerror(errno) : "bad length");
			return NULL;
		}
		target[n] = '\0';
		e->target = xstrdup(target);
	}
	*changed = old == NULL || tree_ent_differs(old, e);
	if (old != NULL && *changed && S_ISDIR(old->mode) &&
	    !S_ISDIR(e->mode))
		s->gone = old->path;	/* its contents go with it */
	if (*changed && (old == NULL || (old->mode & S_IFMT) !=
	    (e->mode & S_IFMT) || !S_ISDIR(e->mode)))
		*dirty = 1;
	return e;
}

/* One name in directory dfd; s->path is its path. */
static int
tree_scan_one(struct tree_scan *s, int dfd, const char *name, size_t plen,
    int *dirty)
{
	struct tree_ent		*e;
	struct stat		 st;
	size_t			 ei;
	int			 changed, linked, rc = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;	/* gone meanwhile: a deletion next time */
		set_cause(s->cause, "%s/%s: %s", s->dir, s->path,
		    strerror(errno));
		return -1;
	}
	if (S_ISSOCK(st.st_mode))
		return 0;
	if (tree_scan_vanished(s, s->path, dirty) != 0)
		return -1;
	ei = s->idx->n;
	if ((e = tree_scan_index(s, dfd, name, &st, &changed, dirty)) == NULL)
		return -1;
	if (tree_scan_hardlink(s, &st, s->path, changed, &linked) != 0)
		return -1;
	if (linked)
		return 0;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		rc = tree_scan_subdir(s, dfd, name, plen, ei, changed, &st);
		break;
	case S_IFREG:
		if (changed)
			rc = tree_scan_regular(s, dfd, name, e, &st);
		break;
	case S_IFLNK:
		if (changed)
			rc = tree_scan_entry_rec(s, TREE_REC_SYMLINK, e);
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
		if (changed)
			rc = tree_scan_entry_rec(s, TREE_REC_NODE, e);
		break;
	}
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	tree_scan_remember_link(s, &st, ei);
	return 0;
}

/* The directory dfd, whose path (plen bytes) is in s->path. */
static int
tree_scan_dir(struct tree_scan *s, int dfd, size_t plen, int *dirty)
{
	char	**names;
	size_t	  n, i, len;
	int	  rc = 0;

	if ((names = tree_scan_names(s, dfd, &n)) == NULL)
		return -1;
	for (i = 0; rc == 0 && i < n; i++) {
		len = strlen(names[i]);
		if (plen + (plen != 0) + len > TREE_PATH_MAX) {
			set_cause(s->cause, "%s/%s/%s: path too long", s->dir,
			    s->path, names[i]);
			rc = -1;
			break;
		}
		if (plen != 0)
			s->path[plen] = '/';
		memcpy(s->path + plen + (plen != 0), names[i], len + 1);
		rc = tree_scan_one(s, dfd, names[i], plen + (plen != 0) + len,
		    dirty);
		s->path[plen] = '\0';
	}
	if (rc == 0)
		rc = tree_scan_vanished(s, NULL, dirty);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int
tree_scan_run(struct tree_scan *s, tree_write_fn write, void *arg,
    char **cause)
{
	const struct tree_ent	*old;
	struct tree_ent		*root;
	struct tree_wbuf	 w;
	struct stat		 st;
	int			 dirty = 0;

	s->write = write;
	s->arg = arg;
	s->cause = cause;
	s->start = now_ns();
	tree_wbuf_start(&w, s->rec, TREE_REC_HEAD);
	tree_putmem(&w, TREE_MAGIC, strlen(TREE_MAGIC));
	tree_put32(&w, TREE_VERSION);
	tree_put32(&w, s->since != NULL ? TREE_FLAG_DELTA : 0);
	if (tree_scan_out(s, &w) != 0)
		return -1;

	if (fstat(s->rootfd, &st) != 0) {
		set_cause(cause, "%s: %s", s->dir, strerror(errno));
		return -1;
	}
	s->rootdev = st.st_dev;
	s->path[0] = '\0';
	old = tree_scan_old(s, "");
	root = tree_index_add(s->idx, "", &st);
	if (tree_scan_dir(s, s->rootfd, 0, &dirty) != 0)
		return -1;
	s->path[0] = '\0';
	root = &s->idx->ents[0];	/* the index grew */
	if ((old == NULL || dirty || tree_ent_differs(old, root)) &&
	    tree_scan_entry_rec(s, TREE_REC_DIREND, root) != 0)
		return -1;

	tree_wbuf_start(&w, s->rec, TREE_REC_END);
	tree_put64(&w, s->stats.entries);
	tree_put64(&w, s->stats.files);
	tree_put64(&w, s->stats.bytes);
	tree_put64(&w, s->stats.deleted);
	if (tree_scan_out(s, &w) != 0)
		return -1;
	s->stats.duration_ns = now_ns() - s->start;
	log_debug("%s: %llu entries, %llu files, %llu bytes, %llu deleted",
	    s->dir, (unsigned long long)s->stats.entries,
	    (unsigned long long)s->stats.files,
	    (unsigned long long)s->stats.bytes,
	    (unsigned long long)s->stats.deleted);
	return 0;
}
