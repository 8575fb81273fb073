#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#define LOG_MODULE "migrate.files"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"

#define FILES_CHUNK	(256u << 10)
/* Most bytes one callback hands to the streams before it lets the loop
 * run: each is read, framed, checksummed and encrypted right there, and
 * a window's worth (8 MiB) at once held the loop for tens of ms. */
#define FILES_BURST	(1u << 20)

struct files_send {
	struct stream_mux	*mux;
	uv_timer_t		 yield;		/* a burst was sent: go on soon */
	char			*dir;
	char			*prefix;
	char			**names;
	size_t			 n, next;
	int			 fd;
	struct stream		*st;		/* the file in flight */
	struct ratelimit	*limit;
	int			 cancelled;
	uint64_t		 off, size, total;
	uint8_t			*buf;
	files_done_cb		 cb;
	void			*arg;
};

/* Received bytes waiting for the worker: copies, in order. */
struct files_chunk {
	struct files_chunk	*next;
	size_t			 len;
	uint8_t			 data[];
};

struct files_recv {
	uv_loop_t		*loop;
	struct stream		*st;		/* NULL once it ended */
	int			 fd;
	char			*path;
	uint64_t		 bytes;		/* received */
	uint64_t		 size;		/* what the sender announced */
	char			*error;
	char			*end_error;	/* the stream's, at its end */
	int			 ended;
	int			 late;		/* failed after a clean end */
	struct files_chunk	*queue, **tail;	/* not yet handed out */
	struct files_chunk	*out;		/* the worker's */
	uv_work_t		 w;
	int			 writing;
	int			 werrno;	/* the worker's write failed */
	unsigned		 delay_ms;	/* fault point files.recv.write */
	files_recv_cb		 cb;
	void			*arg;
};

int
files_name_valid(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL &&
	    strlen(name) < 256;
}

static void	files_send_next(struct files_send *);

uint64_t
files_send_bytes(const struct files_send *fs)
{
	return fs->total;
}

static void
files_send_free(uv_handle_t *h)
{
	struct files_send	*fs = h->data;
	size_t			 i;

	for (i = 0; i < fs->n; i++)
		free(fs->names[i]);
	free(fs->names);
	free(fs->buf);
	ratelimit_unref(fs->limit);
	free(fs->dir);
	free(fs->prefix);
	free(fs);
}

static void
files_send_finish(struct files_send *fs, const char *error)
{
	if (fs->fd != -1)
		close(fs->fd);
	fs->fd = -1;
	if (!fs->cancelled)
		fs->cb(fs->arg, fs->total, error);
	uv_close((uv_handle_t *)&fs->yield, files_send_free);
}

static void	files_send_writable(struct stream *);

static void
files_send_resume(uv_timer_t *t)
{
	struct files_send	*fs = t->data;

	if (fs->st != NULL)
		files_send_writable(fs->st);
}

static void
files_send_writable(struct stream *st)
{
	struct files_send	*fs = stream_data(st);
	size_t			 want, sent, burst = 0;
	ssize_t			 n;

	uv_timer_stop(&fs->yield);
	while (fs->off < fs->size) {
		if (burst >= FILES_BURST) {
			/* Let the loop run (heartbeats, other streams); on
			 * again in its next turn. */
			uv_timer_start(&fs->yield, files_send_resume, 0, 0);
			return;
		}
		want = fs->size - fs->off < FILES_CHUNK ?
		    (size_t)(fs->size - fs->off) : FILES_CHUNK;
		n = pread(fs->fd, fs->buf, want, (off_t)fs->off);
		if (n <= 0) {
			stream_abort(st, TERN__ERROR_CODE__ERROR_INTERNAL,
			    "%s/%s: read failed: %s", fs->dir,
			    fs->names[fs->next - 1], n < 0 ? strerror(errno) :
			    "file shrank");
			return;
		}
		sent = stream_send(st, fs->buf, (size_t)n);
		fs->off += sent;
		fs->total += sent;
		burst += sent;
		if (sent < (size_t)n)
			return;	/* on_writable again when there is room */
	}
	stream_finish(st);
}

static void
files_send_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct files_send	*fs = stream_data(st);
	char			*why;

	close(fs->fd);
	fs->fd = -1;
	fs->st = NULL;
	if (fs->cancelled) {
		files_send_finish(fs, "cancelled");
		return;
	}
	if (error != NULL) {
		xasprintf(&why, "sending %s/%s: %s", fs->dir,
		    fs->names[fs->next - 1], error);
		files_send_finish(fs, why);
		free(why);
		return;
	}
	files_send_next(fs);
}

static const struct stream_ops files_send_ops = {
	.on_writable = files_send_writable,
	.on_end = files_send_end,
};

static void
files_send_next(struct files_send *fs)
{
	struct stat	 st;
	char		*path, *name;
	uint64_t	 announce;

	if (fs->next == fs->n) {
		files_send_finish(fs, NULL);
		return;
	}
	xasprintf(&path, "%s/%s", fs->dir, fs->names[fs->next]);
	fs->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fs->fd == -1 || fstat(fs->fd, &st) != 0) {
		xasprintf(&name, "%s: %s", path, strerror(errno));
		free(path);
		files_send_finish(fs, name);
		free(name);
		return;
	}
	free(path);
	fs->off = 0;
	fs->size = (uint64_t)st.st_size;
	/* A test stands in for a sender that lies about a file's size. */
	announce = fs->size;
	if (fault_hit("files.send.understate") == FAULT_FAIL)
		announce /= 2;
	xasprintf(&name, "%s/%s", fs->prefix, fs->names[fs->next]);
	fs->next++;
	log_debug("sending %s (%llu bytes)", name, (unsigned long long)fs->size);
	if ((fs->st = stream_open(fs->mux, FILES_STREAM_KIND, name, announce,
	    &files_send_ops, fs)) == NULL) {
		free(name);
		files_send_finish(fs, "no free stream channel");
		return;
	}
	stream_set_limit(fs->st, fs->limit);
	free(name);
}

struct files_send *
files_send_dir(uv_loop_t *loop, struct stream_mux *mux, const char *dir,
    const char *prefix, struct ratelimit *limit, files_done_cb cb, void *arg,
    char **cause)
{
	struct files_send	*fs;
	struct dirent		*de;
	DIR			*d;

	if ((d = opendir(dir)) == NULL) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	fs = xcalloc(1, sizeof *fs);
	fs->mux = mux;
	fs->dir = xstrdup(dir);
	fs->prefix = xstrdup(prefix);
	fs->fd = -1;
	if ((fs->limit = limit) != NULL)
		ratelimit_ref(limit);
	fs->cb = cb;
	fs->arg = arg;
	fs->buf = xmalloc(FILES_CHUNK);
	uv_timer_init(loop, &fs->yield);
	fs->yield.data = fs;
	while ((de = readdir(d)) != NULL) {
		if (!files_name_valid(de->d_name) ||
		    !files_dirent_regular(dirfd(d), de))
			continue;
		fs->names = xreallocarray(fs->names, fs->n + 1,
		    sizeof *fs->names);
		fs->names[fs->n++] = xstrdup(de->d_name);
	}
	closedir(d);
	files_send_next(fs);
	return fs;
}

void
files_send_cancel(struct files_send *fs)
{
	fs->cancelled = 1;
	if (fs->st != NULL)
		stream_abort(fs->st, TERN__ERROR_CODE__ERROR_INTERNAL,
		    "transfer cancelled");	/* its on_end frees fs */
}

/* --- receiving ------------------------------------------------------------- */

/* The writes run on the pool: write() into the page cache blocks when the
 * kernel throttles a writer with too much dirty memory, for as long as
 * the disk takes, and the loop carries every peer's heartbeats.  Bytes
 * are consumed (the sender's window opens) only once written, so the
 * stream's flow control still holds the sender to the disk's pace. */

static void	files_recv_kick(struct files_recv *);

static void
files_recv_write(uv_work_t *w)
{
	struct files_recv	*fr = w->data;
	struct files_chunk	*c;
	size_t			 off;
	ssize_t			 n;

	if (fr->delay_ms > 0)
		usleep(fr->delay_ms * 1000u);	/* a disk that takes its time */
	for (c = fr->out; c != NULL && fr->werrno == 0; c = c->next) {
		for (off = 0; off < c->len; off += (size_t)n) {
			n = write(fr->fd, c->data + off, c->len - off);
			if (n < 0 && errno == EINTR) {
				n = 0;
				continue;
			}
			if (n < 0) {
				fr->werrno = errno;
				break;
			}
		}
	}
}

/* Every byte written (or the file failed): the file is complete, or
 * removed; then the owner hears. */
static void
files_recv_finish(struct files_recv *fr)
{
	const char	*error = fr->end_error != NULL ? fr->end_error :
	    fr->error;

	if (error == NULL && fr->bytes != fr->size)
		error = "fewer bytes than announced";
	if (error != NULL) {
		log_warnx("%s: %s; removed", fr->path, error);
		unlink(fr->path);
	}
	close(fr->fd);
	if (fr->cb != NULL)
		fr->cb(fr->arg, fr->path, error, error != NULL && !fr->late);
	free(fr->end_error);
	free(fr->error);
	free(fr->path);
	free(fr);
}

static void
files_recv_written(uv_work_t *w, int status)
{
	struct files_recv	*fr = w->data;
	struct files_chunk	*c, *next;
	size_t			 n = 0;

	(void)status;	/* never cancelled */
	fr->writing = 0;
	for (c = fr->out; c != NULL; c = next) {
		next = c->next;
		n += c->len;
		free(c);
	}
	fr->out = NULL;
	if (fr->werrno != 0 && fr->error == NULL) {
		/* The sender shows this text, and the path reads the same on
		 * both hosts: say whose disk it is. */
		xasprintf(&fr->error, "%s: write: %s%s", fr->path,
		    strerror(fr->werrno), fr->werrno == ENOSPC ||
		    fr->werrno == EDQUOT ? " (the receiving host's disk is "
		    "full)" : "");
		fr->late = fr->st == NULL && fr->end_error == NULL;
		if (fr->st != NULL) {
			/* on_end follows, now or later, and finishes. */
			stream_abort(fr->st, TERN__ERROR_CODE__ERROR_RESOURCE,
			    "%s", fr->error);
			return;
		}
	}
	if (fr->st != NULL && fr->error == NULL)
		stream_consumed(fr->st, n);
	files_recv_kick(fr);
}

/* Hand what is queued to the worker, or finish once the stream ended and
 * nothing is left. */
static void
files_recv_kick(struct files_recv *fr)
{
	struct files_chunk	*c, *next;

	if (fr->writing)
		return;
	if (fr->error != NULL) {
		for (c = fr->queue; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
		fr->queue = NULL;
		fr->tail = &fr->queue;
	}
	if (fr->queue == NULL) {
		if (fr->ended)
			files_recv_finish(fr);
		return;
	}
	fr->out = fr->queue;
	fr->queue = NULL;
	fr->tail = &fr->queue;
	fr->writing = 1;
	fr->w.data = fr;
	uv_queue_work(fr->loop, &fr->w, files_recv_write, files_recv_written);
}

static void
files_recv_data(struct stream *st, const uint8_t *data, size_t len)
{
	struct files_recv	*fr = stream_data(st);
	struct files_chunk	*c;

	if (fr->error != NULL)
		return;
	if (len > fr->size - fr->bytes) {
		/* More than announced: a confused or hostile sender must not
		 * fill the disk past what was agreed to. */
		xasprintf(&fr->error, "%s: more than the %llu bytes announced",
		    fr->path, (unsigned long long)fr->size);
		stream_abort(st, TERN__ERROR_CODE__ERROR_BAD_REQUEST, "%s",
		    fr->error);
		return;
	}
	c = xmalloc(sizeof *c + len);
	c->next = NULL;
	c->len = len;
	memcpy(c->data, data, len);
	*fr->tail = c;
	fr->tail = &c->next;
	fr->bytes += len;
	files_recv_kick(fr);
}

static void
files_recv_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct files_recv	*fr = stream_data(st);

	(void)bytes;
	fr->st = NULL;
	fr->ended = 1;
	if (error != NULL)
		fr->end_error = xstrdup(error);
	files_recv_kick(fr);	/* finishes, unless a write is out */
}

static const struct stream_ops files_recv_ops = {
	.on_data = files_recv_data,
	.on_end = files_recv_end,
};

int
files_recv(uv_loop_t *loop, struct stream *st, const char *path,
    uint64_t size, files_recv_cb cb, void *arg, char **cause)
{
	struct files_recv	*fr;
	int			 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	fr = xcalloc(1, sizeof *fr);
	fr->loop = loop;
	fr->st = st;
	fr->fd = fd;
	fr->size = size;
	fr->path = xstrdup(path);
	fr->tail = &fr->queue;
	fr->cb = cb;
	fr->arg = arg;
	if (fault_check("files.recv.write", &fr->delay_ms) != FAULT_DELAY)
		fr->delay_ms = 0;
	stream_set_ops(st, &files_recv_ops, fr);
	return 0;
}

int
files_dirent_regular(int dfd, const struct dirent *de)
{
	struct stat	st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	/* Some filesystems do not fill d_type: ask the inode. */
	return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

int
files_sync_dir(const char *dir, char **cause)
{
	struct dirent	*de;
	DIR		*d;
	char		*path;
	int		 fd = -1, rc = 0;

	if ((d = opendir(dir)) == NULL) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!files_dirent_regular(dirfd(d), de))
			continue;
		xasprintf(&path, "%s/%s", dir, de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fsync(fd) != 0) {
			set_cause(cause, "%s: fsync: %s", path, strerror(errno));
			rc = -1;
		}
		if (fd != -1)
			close(fd);
		fd = -1;	/* closed: never twice (another thread's fd) */
		free(path);
	}
	closedir(d);
	if (rc == 0 && ((fd = open(dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || fsync(fd) != 0)) {
		set_cause(cause, "%s: fsync: %s", dir, strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	return rc;
}
