#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/pidfd.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MODULE "ckpt"
#include "checkpoint/ckpt.h"
#include "checkpoint/confine.h"
#include "checkpoint/container.h"
#include "checkpoint/criu.h"
#include "checkpoint/staging.h"
#include "checkpoint/uffd-guard.h"
#include "daemon/crc32c.h"
#include "daemon/digest.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

struct ckpt_op {
	struct ckpt_op		*next;		/* ckpt_ops: for ckpt_cancel */
	uv_loop_t		*loop;
	ckpt_hold_cb		 hold_cb;	/* migration: hold at commit */
	int			 holding;
	int			 acked;		/* dump: post-dump acked: keep all */
	int			 aborted;	/* CRIU given up on: killed */
	char			*cancel_why;	/* dump: CRIU asked to stop */
	int			 cancel_heard;	/* ... and it answered: failed */
	int			 committing;	/* post-dump / pre-resume came:
						 * not cancelled, released */
	char			*saved_error;	/* restore: CRIU's answer ... */
	pid_t			 saved_pid;	/* ... while held */
	pid_t			 tree_pid;	/* restore: the init CRIU forked */
	int			 saved;
	uv_work_t		 work;		/* hashing runs off the loop */
	int			 working;
	struct criu		*criu;		/* dump: until CRIU answered */
	struct criu		*swrk;		/* restore: ckpt_target's */
	int			 answered;	/* dump: CRIU answered meanwhile */
	uint64_t		 answered_at;
	uint64_t		 frozen_ms;	/* leave-running: until post-dump */
	int			 publish_tried;
	char			*answer_error;
	char			*rootfs;	/* restore */
	char			*criu_path;	/* restore */
	int			 leave_running;	/* dump */
	int			(*frozen)(void *, const char *, char **);
	void			*frozen_arg;
	char			*frozen_error;	/* ... or why not */
	int			 lazy;		/* post-copy: pages served later */
	int			 ps;		/* pages went to a page server */
	int			 pages_checked;	/* restore: see ckpt_target */
	uint64_t		 bytes;		/* what MANIFEST lists */
	int			 published;	/* dump: MANIFEST is on disk */
	char			*publish_error;	/* ... or why not */
	char			*verify_error;	/* restore */
	char			*name;
	char			*gen_dir;
	uint64_t		 generation;
	int			 dir_fd;
	int			 dump;
	uint64_t		 start_ms;
	uint64_t		 verified_at;	/* restore: CRIU started */
	uint64_t		 frozen_at;	/* pre-dump notification */
	struct staging		*staging;	/* leave-running: pages staged */
	int			 stage_reserving; /* ... its room being made */
	int			 stage_fd;	/* ... read from here */
	uv_poll_t		*stage_poll;
	char			*stage_error;	/* ... why it stopped */
	char			*action_script;	/* ... its CRIU runs by that */
	pid_t			 stage_pid;	/* ... the tree's init */
	size_t			 stage_bytes;	/* ... room held (counted) */
	size_t			 stage_max;	/* ... the most it may take at
						 * first (the budget's rest) */
	ckpt_cb			 cb;
	void			*arg;
};

static int	ckpt_is_image(const char *);
static int	ckpt_is_lazy(const char *);
static int	ckpt_has_stream(const char *);
static int	ckpt_replay_pages(const char *, const char *, char **);

/* Operations in progress, for ckpt_cancel. */
static struct ckpt_op	*ckpt_ops;
/* What staged dumps hold together (each its room, or its estimate
 * until the room is made), and the most they may: checkpoint_staging_mb
 * as the latest to start read it (a reload reaches the running ones
 * when the next starts). */
static uint64_t		 ckpt_staged_bytes;
static uint64_t		 ckpt_staged_budget;
/* A CRIU that asked our page server for what it does not serve: staging
 * is off until ternd restarts. */
static int		 ckpt_staging_refused;

static void
ckpt_op_unlink(struct ckpt_op *op)
{
	struct ckpt_op	**pp;

	for (pp = &ckpt_ops; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
}

int
ckpt_cancel(const char *name, const char *why)
{
	struct ckpt_op	*op;
	int		 n = 0;

	/* Not started yet: it stops before its CRIU would. */
	for (op = ckpt_ops; op != NULL; op = op->next)
		if (strcmp(op->name, name) == 0 && op->stage_reserving &&
		    op->cancel_why == NULL) {
			op->cancel_why = xstrdup(why);
			n++;
		}
	/* A restore's callback runs inside criu_abort and may end any
	 * operation: look again from the start after each. */
	for (;;) {
		for (op = ckpt_ops; op != NULL; op = op->next)
			if (strcmp(op->name, name) == 0 && op->criu != NULL &&
			    !op->committing && !op->aborted &&
			    op->cancel_why == NULL)
				break;
		if (op == NULL)
			return n;
		log_warnx("%s: cancelling criu %s (pid %ld): %s", name,
		    op->dump ? "dump" : "restore", (long)criu_pid(op->criu),
		    why);
		n++;
		if (op->dump) {
			/* Killed, a dump's CRIU may take the container with
			 * it (its parasite runs inside, its code poked into
			 * the tasks'): it is asked to stop, and undoes its
			 * work itself; killed only if it is stuck. */
			op->cancel_why = xstrdup(why);
			criu_cancel(op->criu, why);
			if (op->stage_fd != -1)	/* its page transfer */
				shutdown(op->stage_fd, SHUT_RDWR);
			continue;
		}
		/* What a restore made never ran: nothing to lose. */
		op->aborted = 1;
		criu_abort(op->criu, why);
	}
}

/* A dump that failed leaves images nobody will restore: free the space
 * (a full disk is a likely reason it failed), keep CRIU's log. */
static void
ckpt_discard_images(const char *gen_dir)
{
	struct dirent	*de;
	DIR		*d;
	char		*path;

	if ((d = opendir(gen_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!ckpt_is_image(de->d_name) &&
		    strcmp(de->d_name, CKPT_MANIFEST) != 0)
			continue;
		xasprintf(&path, "%s/%s", gen_dir, de->d_name);
		unlink(path);
		free(path);
	}
	closedir(d);
}

static void
ckpt_thaw(struct ckpt_op *op)
{
	char	*cause = NULL;

	if (container_thaw(op->name, &cause) != 0) {
		log_warnx("%s: %s", op->name, cause);
		free(cause);
	} else
		log_info("%s: thawed (%s)", op->name, op->aborted ?
		    "criu was killed" : "its staged dump failed");
}

static void
ckpt_staged_poll_closed(uv_handle_t *h)
{
	free(h);
}

/* Stop reading the staged pages (all came, or the dump is over). */
static void
ckpt_staged_close(struct ckpt_op *op)
{
	if (op->stage_poll != NULL) {
		uv_poll_stop(op->stage_poll);
		uv_close((uv_handle_t *)op->stage_poll, ckpt_staged_poll_closed);
		op->stage_poll = NULL;
	}
	if (op->stage_fd != -1) {
		close(op->stage_fd);
		op->stage_fd = -1;
	}
}

/* Its share of checkpoint_staging_mb is free again. */
static void
ckpt_staged_release(struct ckpt_op *op)
{
	ckpt_staged_bytes -= op->stage_bytes;
	op->stage_bytes = 0;
}

static void
ckpt_op_finish(struct ckpt_op *op, struct ckpt_result *res, const char *error)
{
	struct ckpt_result	 none;

	/* After a post-dump ack the images may be the only copy left. */
	if (error != NULL && op->dump && !op->acked)
		ckpt_discard_images(op->gen_dir);
	/* A criu killed in the middle may have left the cgroup frozen: the
	 * container resumes (it was never told to die). */
	if (error != NULL && op->dump && !op->acked &&
	    (op->aborted || op->stage_max != 0))
		ckpt_thaw(op);	/* staged: CRIU lost its socket, whatever way */
	else if (error != NULL && op->dump && op->cancel_heard)
		log_info("%s: criu stopped its dump as asked and let %s run on",
		    op->name, op->name);
	ckpt_op_unlink(op);
	ckpt_staged_close(op);

	if (res == NULL) {
		memset(&none, 0, sizeof none);
		res = &none;
	}
	res->generation = op->generation;
	res->gen_dir = op->gen_dir;
	res->duration_ms = now_ms() - op->start_ms;
	op->cb(op->arg, res, error);
	criu_close(op->swrk);		/* not used: failed before CRIU */
	if (op->dir_fd != -1)
		close(op->dir_fd);
	free(op->cancel_why);
	free(op->publish_error);
	free(op->frozen_error);
	free(op->answer_error);
	free(op->saved_error);
	free(op->verify_error);
	ckpt_staged_release(op);
	staging_free(op->staging);
	free(op->stage_error);
	free(op->action_script);
	free(op->rootfs);
	free(op->criu_path);
	free(op->gen_dir);
	free(op->name);
	free(op);
}

/* CRIU's reason plus the error lines of its log. */
static char *
ckpt_criu_error(struct ckpt_op *op, const CriuResp *resp, const char *error,
    const char *log_name)
{
	char		*why, *log, *errors, *s;
	const char	*full = "";
	struct statvfs	 vfs;

	xasprintf(&log, "%s/%s", op->gen_dir, log_name);
	errors = criu_log_errors(log);
	if (resp != NULL && (resp->cr_errmsg == NULL || errors != NULL))
		why = xstrdup("criu failed");	/* the log says it better */
	else
		why = resp != NULL ? criu_error(resp) : xstrdup(error);
	/* A full disk truncates CRIU's own log: say it plainly. */
	if (statvfs(op->gen_dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20))
		full = "; the filesystem holding it is full";
	xasprintf(&s, "%s%s%s (CRIU log: %s)%s", why, errors != NULL ? ": " : "",
	    errors != NULL ? errors : "", log, full);
	free(errors);
	free(log);
	free(why);
	return s;
}

static int
fsync_path(const char *path, int flags, char **cause)
{
	int	fd;

	if ((fd = open(path, flags | O_CLOEXEC)) == -1 || fsync(fd) != 0) {
		set_cause(cause, "%s: fsync: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
ckpt_is_image(const char *name)
{
	size_t	len = strlen(name);

	if (name[0] == '.' || strcmp(name, CKPT_MANIFEST) == 0)
		return 0;
	/* CRIU's statistics (stats-dump, stats-restore) are rewritten by
	 * every restore and never read back. */
	if (strncmp(name, "stats-", 6) == 0)
		return 0;
	/* CRIU's logs are for people, not for restore. */
	return !(len > 4 && strcmp(name + len - 4, ".log") == 0);
}

/* Checksum every image, fsync it, then publish MANIFEST atomically: a
 * generation counts only once its MANIFEST exists. */
static int
ckpt_write_manifest(const char *gen_dir, int lazy, uint64_t *bytes,
    char **cause)
{
	struct dirent	*de;
	DIR		*d;
	FILE		*fp = NULL;
	char		*path = NULL, *tmp = NULL, *final = NULL;
	char		 hex[DIGEST_HEX_LEN + 1];
	uint64_t	 size;
	int		 rc = -1;

	*bytes = 0;
	if ((d = opendir(gen_dir)) == NULL) {
		set_cause(cause, "%s: %s", gen_dir, strerror(errno));
		return -1;
	}
	xasprintf(&tmp, "%s/%s.tmp", gen_dir, CKPT_MANIFEST);
	xasprintf(&final, "%s/%s", gen_dir, CKPT_MANIFEST);
	if ((fp = fopen(tmp, "w")) == NULL) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(fp, "# tern checkpoint manifest v1: size sha256 file\n");
	if (lazy)
		fprintf(fp, "%s\n", CKPT_LAZY_MARK);
	while ((de = readdir(d)) != NULL) {
		if (!ckpt_is_image(de->d_name) || strstr(de->d_name, ".tmp") ||
		    de->d_type == DT_SOCK)
			continue;
		free(path);
		xasprintf(&path, "%s/%s", gen_dir, de->d_name);
		if (digest_file(path, hex, &size, cause) != 0 ||
		    fsync_path(path, O_RDONLY, cause) != 0)
			goto out;
		fprintf(fp, "%" PRIu64 " %s %s\n", size, hex, de->d_name);
		*bytes += size;
	}
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fclose(fp);
	fp = NULL;
	if (rename(tmp, final) != 0) {
		set_cause(cause, "%s: %s", final, strerror(errno));
		goto out;
	}
	if (fsync_path(gen_dir, O_RDONLY | O_DIRECTORY, cause) != 0)
		goto out;
	rc = 0;
out:
	if (fp != NULL)
		fclose(fp);
	closedir(d);
	free(path);
	free(tmp);
	free(final);
	return rc;
}

/* What a page server writes (criu/image-desc.c: pagemap-%u, pages-%u). */
static int
ckpt_is_page_image(const char *name)
{
	size_t	len = strlen(name);

	return (strncmp(name, "pages-", 6) == 0 ||
	    strncmp(name, "pagemap-", 8) == 0) && len > 4 &&
	    strcmp(name + len - 4, ".img") == 0;
}

/* An image in gen_dir that is not among the n names the MANIFEST listed
 * (nor, with pages, a page server's). */
static int
ckpt_unlisted(const char *gen_dir, char **listed, int n, int pages,
    char **cause)
{
	struct dirent	*de;
	DIR		*d;
	int		 i, rc = 0;

	if ((d = opendir(gen_dir)) == NULL) {
		set_cause(cause, "%s: %s", gen_dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!ckpt_is_image(de->d_name) || strstr(de->d_name, ".tmp") ||
		    de->d_type == DT_SOCK ||
		    (pages && ckpt_is_page_image(de->d_name)))
			continue;
		for (i = 0; i < n && strcmp(listed[i], de->d_name) != 0; i++)
			;
		if (i == n) {
			set_cause(cause, "%s/%s is not in the MANIFEST: the "
			    "checkpoint was tampered with", gen_dir, de->d_name);
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

static int	ckpt_verify_listed(const char *, int, uint64_t *, char **);

int
ckpt_verify(const char *gen_dir, uint64_t *bytes, char **cause)
{
	return ckpt_verify_listed(gen_dir, 0, bytes, cause);
}

/* A page server's generation: the MANIFEST's images, and page images. */
static int
ckpt_verify_pages(const char *gen_dir, uint64_t *bytes, char **cause)
{
	return ckpt_verify_listed(gen_dir, 1, bytes, cause);
}

static int
ckpt_verify_listed(const char *gen_dir, int pages, uint64_t *bytes,
    char **cause)
{
	FILE		*fp;
	char		*path, line[1024], file[512], want[DIGEST_HEX_LEN + 1];
	char		 hex[DIGEST_HEX_LEN + 1], **listed = NULL;
	uint64_t	 size, got;
	int		 rc = -1, n = 0, i;

	*bytes = 0;
	xasprintf(&path, "%s/%s", gen_dir, CKPT_MANIFEST);
	if ((fp = fopen(path, "r")) == NULL) {
		set_cause(cause, "%s: %s (an incomplete checkpoint)", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	path = NULL;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%" SCNu64 " %64s %511s", &size, want, file) != 3 ||
		    strchr(file, '/') != NULL || file[0] == '.') {
			set_cause(cause, "%s/%s: malformed line %d", gen_dir,
			    CKPT_MANIFEST, n + 1);
			goto out;
		}
		free(path);
		xasprintf(&path, "%s/%s", gen_dir, file);
		if (digest_file(path, hex, &got, cause) != 0)
			goto out;
		if (got != size || strcmp(hex, want) != 0) {
			set_cause(cause, "%s: checksum mismatch (%" PRIu64
			    " bytes, sha256 %.12s..., manifest says %" PRIu64
			    " bytes, %.12s...): the checkpoint is damaged", path,
			    got, hex, size, want);
			goto out;
		}
		*bytes += size;
		listed = xreallocarray(listed, (size_t)n + 1, sizeof *listed);
		listed[n++] = xstrdup(file);
	}
	if (n == 0) {
		set_cause(cause, "%s/%s lists no image", gen_dir, CKPT_MANIFEST);
		goto out;
	}
	/* CRIU reads every image in the directory, not just the listed ones. */
	if (ckpt_unlisted(gen_dir, listed, n, pages, cause) != 0)
		goto out;
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(listed[i]);
	free(listed);
	free(path);
	fclose(fp);
	return rc;
}

int
ckpt_publish(const char *gen_dir, uint64_t *bytes, char **cause)
{
	return ckpt_write_manifest(gen_dir, 0, bytes, cause);
}

/* --- a page server's stream, kept --------------------------------------- */

char *
ckpt_pages_stream_path(const char *gen_dir)
{
	char	*path;

	xasprintf(&path, "%s.pages", gen_dir);
	return path;
}

static int
ckpt_has_stream(const char *gen_dir)
{
	char	*path;
	int	 rc;

	xasprintf(&path, "%s.pages.sum", gen_dir);
	rc = access(path, F_OK) == 0;
	free(path);
	return rc;
}

int
ckpt_pages_stream_seal(const char *gen_dir, int fd, uint64_t len,
    uint32_t crc, char **cause)
{
	char	*sum, *tmp, *dir, *slash;
	FILE	*fp;
	int	 rc = -1;

	xasprintf(&sum, "%s.pages.sum", gen_dir);
	xasprintf(&tmp, "%s.tmp", sum);
	dir = xstrdup(gen_dir);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	/* Its last block may have been written whole, padded. */
	if (ftruncate(fd, (off_t)len) != 0) {
		set_cause(cause, "%s.pages: truncate: %s", gen_dir,
		    strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		set_cause(cause, "%s.pages: fsync: %s", gen_dir, strerror(errno));
		goto out;
	}
	/* On disk now: its page cache (as large as the memory) is read
	 * again only if this copy is ever restored.  Freed, it serves the
	 * restore that runs meanwhile: faulting in memory the host has not
	 * backed recently is most of a large restore's time. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if ((fp = fopen(tmp, "w")) == NULL) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(fp, "%" PRIu64 " %08x\n", len, crc);
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		fclose(fp);
		goto out;
	}
	fclose(fp);
	if (rename(tmp, sum) != 0) {
		set_cause(cause, "%s: %s", sum, strerror(errno));
		goto out;
	}
	if (fsync_path(dir, O_RDONLY | O_DIRECTORY, cause) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		unlink(tmp);
	free(dir);
	free(tmp);
	free(sum);
	return rc;
}

void
ckpt_pages_stream_drop(const char *gen_dir)
{
	char	*path;

	xasprintf(&path, "%s.pages", gen_dir);
	unlink(path);
	free(path);
	xasprintf(&path, "%s.pages.sum", gen_dir);
	unlink(path);
	free(path);
}

/* Page images a page server wrote into gen_dir: gone (before a replay,
 * after a failed one). */
static void
ckpt_drop_page_images(const char *gen_dir)
{
	struct dirent	*de;
	DIR		*d;
	char		*path;

	if ((d = opendir(gen_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!ckpt_is_page_image(de->d_name))
			continue;
		xasprintf(&path, "%s/%s", gen_dir, de->d_name);
		unlink(path);
		free(path);
	}
	closedir(d);
}

/* The seal of a kept page stream: its length and CRC32C.  0, or -1 and
 * *cause. */
static int
ckpt_pages_sum_read(const char *sum, uint64_t *len, uint32_t *crc,
    char **cause)
{
	FILE	*fp;
	int	 ok;

	if ((fp = fopen(sum, "r")) == NULL) {
		set_cause(cause, "%s: %s", sum, strerror(errno));
		return -1;
	}
	ok = fscanf(fp, "%" SCNu64 " %x", len, crc) == 2;
	fclose(fp);
	if (!ok) {
		set_cause(cause, "%s: malformed", sum);
		return -1;
	}
	return 0;
}

/* A page stream fed to a criu page-server of our own, which writes the
 * page images into gen_dir: read from fd (crc and len of what was read,
 * unless NULL), or from mem when fd is -1.  Blocking: on the pool. */
static int
ckpt_page_server_feed(const char *gen_dir, const char *criu_path, int fd,
    const uint8_t *mem, size_t mem_len, uint64_t *len, uint32_t *crc,
    char **cause)
{
	extern char		**environ;
	posix_spawn_file_actions_t fa;
	char			*argv[10];
	const uint8_t		*chunk;
	uint8_t			*buf = NULL;
	ssize_t			 n, w, off;
	size_t			 fed = 0;
	pid_t			 pid = -1;
	int			 sv[2] = { -1, -1 }, st, rc = -1;

	ckpt_drop_page_images(gen_dir);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		goto out;
	}
	argv[0] = (char *)criu_path;
	argv[1] = "page-server";
	argv[2] = "--ps-socket";
	argv[3] = "3";
	argv[4] = "-D";
	argv[5] = (char *)gen_dir;
	argv[6] = "-o";
	argv[7] = "page-server-replay.log";
	argv[8] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	st = posix_spawn(&pid, criu_path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	sv[1] = -1;
	if (st != 0) {
		pid = -1;
		set_cause(cause, "cannot run %s: %s", criu_path, strerror(st));
		goto out;
	}
	buf = xmalloc(1u << 20);
	for (;;) {
		if (fd != -1) {
			if ((n = read(fd, buf, 1u << 20)) <= 0)
				break;
			if (crc != NULL)
				*crc = crc32c(*crc, buf, (size_t)n);
			if (len != NULL)
				*len += (uint64_t)n;
			chunk = buf;
		} else {
			if ((n = (ssize_t)(mem_len - fed)) > (1 << 20))
				n = 1 << 20;
			if (n == 0)
				break;
			chunk = mem + fed;
			fed += (size_t)n;
		}
		for (off = 0; off < n; off += w) {
			w = send(sv[0], chunk + off, (size_t)(n - off),
			    MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				w = 0;
			else if (w < 0) {
				set_cause(cause, "criu page-server (replay) "
				    "stopped reading: %s (its log: %s/"
				    "page-server-replay.log)", strerror(errno),
				    gen_dir);
				goto out;
			}
		}
	}
	if (n < 0) {
		set_cause(cause, "reading the kept page stream: %s",
		    strerror(errno));
		goto out;
	}
	/* Its answers (a few words) wait in the socket: drain them. */
	shutdown(sv[0], SHUT_WR);
	while ((n = read(sv[0], buf, 1u << 20)) > 0)
		;
	rc = 0;
out:
	if (sv[0] != -1)
		close(sv[0]);
	if (pid > 0) {
		while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
			;
		if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			set_cause(cause, "criu page-server (replay) failed "
			    "(its log: %s/page-server-replay.log)", gen_dir);
			rc = -1;
		}
	}
	if (rc != 0)
		ckpt_drop_page_images(gen_dir);
	free(buf);
	return rc;
}

/* The stream kept at the dump, checked against its sum and fed to a
 * criu page-server of our own, which writes the page images again.
 * Blocking: on the thread pool. */
static int
ckpt_replay_pages(const char *gen_dir, const char *criu_path, char **cause)
{
	char		*stream, *sum;
	uint64_t	 want_len, len = 0;
	uint32_t	 want_crc, crc = 0;
	int		 fd = -1, rc = -1;

	stream = ckpt_pages_stream_path(gen_dir);
	xasprintf(&sum, "%s.sum", stream);
	if (ckpt_pages_sum_read(sum, &want_len, &want_crc, cause) != 0)
		goto out;
	if ((fd = open(stream, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: %s", stream, strerror(errno));
		goto out;
	}
	if (ckpt_page_server_feed(gen_dir, criu_path, fd, NULL, 0, &len, &crc,
	    cause) != 0)
		goto out;
	if (len != want_len || crc != want_crc) {
		set_cause(cause, "%s: %" PRIu64 " bytes, crc32c %08x, where "
		    "the dump sent %" PRIu64 " bytes, crc32c %08x: the "
		    "checkpoint is damaged", stream, len, crc, want_len,
		    want_crc);
		ckpt_drop_page_images(gen_dir);
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(sum);
	free(stream);
	return rc;
}

/* A post-copy's images: complete but for the memory pages. */
static int
ckpt_is_lazy(const char *gen_dir)
{
	FILE	*fp;
	char	*path, line[256];
	int	 lazy = 0;

	xasprintf(&path, "%s/%s", gen_dir, CKPT_MANIFEST);
	if ((fp = fopen(path, "r")) != NULL) {
		while (!lazy && fgets(line, sizeof line, fp) != NULL &&
		    line[0] == '#')
			lazy = strncmp(line, CKPT_LAZY_MARK,
			    strlen(CKPT_LAZY_MARK)) == 0;
		fclose(fp);
	}
	free(path);
	return lazy;
}

uint64_t
ckpt_newest(const char *dir)
{
	struct dirent	*de;
	DIR		*d;
	char		*path, *end;
	uint64_t	 gen, best = 0;
	struct stat	 st;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		gen = strtoull(de->d_name, &end, 10);
		if (*end != '\0' || gen <= best)
			continue;
		xasprintf(&path, "%s/%s/%s", dir, de->d_name, CKPT_MANIFEST);
		if (stat(path, &st) == 0) {
			free(path);
			xasprintf(&path, "%s/%s", dir, de->d_name);
			if (!ckpt_is_lazy(path) || ckpt_has_stream(path))
				best = gen;
		}
		free(path);
	}
	closedir(d);
	return best;
}

/* --- dump ------------------------------------------------------------------ */

static void	ckpt_dump_conclude(struct ckpt_op *);
static void	ckpt_dump_answer(struct criu *, const CriuResp *, const char *,
		    void *);
static int	ckpt_dump_notify(struct criu *, const char *, void *);
static char	**ckpt_externals(int, pid_t, size_t *);
static void	ckpt_externals_free(char **);
static pid_t	ckpt_dump_run(uv_loop_t *, const struct ckpt_target *, uint64_t,
		    int, int, int, int, ckpt_hold_cb, ckpt_cb, void *);

/* Thread pool: checksum and fsync every image, publish the MANIFEST.
 * Gigabytes of SHA-256 must not stall the loop (heartbeats, leases). */
static void
ckpt_publish_work(uv_work_t *w)
{
	struct ckpt_op	*op = w->data;
	const uint8_t	*data;
	size_t		 len;
	int		 rc;

	if (op->staging != NULL) {
		/* The thawed tree runs on; its pages, as they were at the
		 * dump, become CRIU's page images now. */
		data = staging_data(op->staging, &len);
		if (!staging_complete(op->staging)) {
			xasprintf(&op->publish_error, "the staged pages of "
			    "checkpoint %" PRIu64 " ended before criu ended "
			    "their transfer (see %s/dump.log; the next "
			    "checkpoint tries again)", op->generation,
			    op->gen_dir);
			return;
		}
		if (fault_hit("ckpt.staging.replay") == FAULT_FAIL) {
			xasprintf(&op->publish_error, "writing the staged pages "
			    "of checkpoint %" PRIu64 ": fault point "
			    "ckpt.staging.replay", op->generation);
			return;
		}
		rc = ckpt_page_server_feed(op->gen_dir, op->criu_path, -1, data,
		    len, NULL, NULL, &op->publish_error);
		/* GiBs unmapped here, not on the loop. */
		staging_free(op->staging);
		op->staging = NULL;
		if (rc != 0)
			return;
	}
	if (ckpt_write_manifest(op->gen_dir, op->lazy, &op->bytes,
	    &op->publish_error) == 0)
		op->published = 1;
}

static void
ckpt_publish_done(uv_work_t *w, int status)
{
	struct ckpt_op	*op = w->data;

	if (op->staging == NULL)
		ckpt_staged_release(op);	/* written out */

	if (op->hold_cb != NULL && op->published && op->criu != NULL) {
		/* Frozen, published: the caller decides (ckpt_hold_release). */
		op->holding = 1;
		op->hold_cb(op->arg, (struct ckpt_hold *)op, op->gen_dir,
		    op->bytes);
		return;
	}
	if (op->criu != NULL) {
		/* From the ack CRIU kills the tree: the images are the
		 * container now, whatever becomes of CRIU. */
		if (op->published && !op->leave_running)
			op->acked = 1;
		/* working stays set: a reply that cannot be sent answers
		 * at once, and leaves the conclusion to us, below. */
		criu_notify_reply(op->criu, op->published);
		if (op->acked && op->criu != NULL &&
		    fault_hit("ckpt.after-post-dump") == FAULT_KILL)
			criu_kill(op->criu);
	}
	op->working = 0;
	if (op->answered)	/* CRIU answered (leave-running) or died */
		ckpt_dump_conclude(op);
}

/* Thread pool, the tree stopped: the caller's capture (ckpt_target's
 * frozen). */
static void
ckpt_frozen_work(uv_work_t *w)
{
	struct ckpt_op	*op = w->data;

	if (op->frozen(op->frozen_arg, op->gen_dir, &op->frozen_error) != 0 &&
	    op->frozen_error == NULL)
		op->frozen_error = xstrdup("capture failed");
}

static void
ckpt_frozen_done(uv_work_t *w, int status)
{
	struct ckpt_op	*op = w->data;

	(void)status;
	op->frozen_ms = now_ms() - op->frozen_at;
	if (op->criu != NULL)
		criu_notify_reply(op->criu, op->frozen_error == NULL);
	op->working = 0;
	if (op->answered)	/* CRIU died meanwhile */
		ckpt_dump_conclude(op);
}

/* post-dump is the commit point: the images are complete and the tree is
 * still frozen.  Publish the MANIFEST now; if that fails, refusing the
 * notification makes CRIU resume the container instead of killing it, so
 * a container never dies without a verified checkpoint. */
static int
ckpt_dump_notify(struct criu *c, const char *script, void *arg)
{
	struct ckpt_op	*op = arg;

	if (strcmp(script, "pre-dump") == 0)
		op->frozen_at = now_ms();
	if (strcmp(script, "post-dump") != 0)
		return 0;
	/* CRIU had our answer to the end of its page transfer: every page
	 * is staged (unless the transfer broke). */
	if (op->staging != NULL && !staging_complete(op->staging)) {
		if (op->stage_error == NULL)
			op->stage_error = xstrdup("criu reached post-dump "
			    "before the end of its page transfer (a CRIU "
			    "whose page transfer differs from 4.1's: set "
			    "checkpoint_staging_mb = 0)");
		return -1;
	}
	op->committing = 1;
	if (op->leave_running && op->frozen != NULL) {
		/* CRIU waits, every task stopped, for the capture. */
		op->working = 1;
		op->work.data = op;
		uv_queue_work(op->loop, &op->work, ckpt_frozen_work,
		    ckpt_frozen_done);
		return CRIU_NOTIFY_LATER;
	}
	if (op->leave_running) {
		/* It keeps running either way: publish after CRIU thawed it,
		 * not while it stands still. */
		op->frozen_ms = now_ms() - op->frozen_at;
		return 0;
	}
	op->working = 1;
	op->work.data = op;
	uv_queue_work(op->loop, &op->work, ckpt_publish_work, ckpt_publish_done);
	return CRIU_NOTIFY_LATER;
}

/* CRIU answered (or died) and no publishing is running: the outcome. */
static void
ckpt_dump_conclude(struct ckpt_op *op)
{
	struct ckpt_result	 res;
	char			*m;

	if (op->publish_error != NULL) {
		/* CRIU resumed the container: nothing was lost. */
		ckpt_op_finish(op, NULL, op->publish_error);
		return;
	}
	if (op->frozen_error != NULL) {
		/* Refused at post-dump: CRIU resumed the container. */
		ckpt_op_finish(op, NULL, op->frozen_error);
		return;
	}
	if (op->leave_running && op->answer_error == NULL && !op->published &&
	    op->publish_error == NULL && !op->publish_tried) {
		op->publish_tried = 1;
		op->working = 1;
		op->work.data = op;
		uv_queue_work(op->loop, &op->work, ckpt_publish_work,
		    ckpt_publish_done);
		return;
	}
	if (op->answer_error != NULL && op->acked && op->published &&
	    !op->lazy) {
		/* CRIU failed after we acked its post-dump: it had written
		 * every image (they were checksummed, fsync'd and published
		 * before the ack) and was killing the tree.  The checkpoint
		 * stands: the caller stops what is left of the container. */
		log_warnx("%s: criu failed after the checkpoint was complete "
		    "(%s); checkpoint %" PRIu64 " is kept: its MANIFEST was "
		    "published before criu was told to stop the container",
		    op->name, op->answer_error, op->generation);
		free(op->answer_error);
		op->answer_error = NULL;
	}
	if (op->answer_error != NULL || !op->published) {
		/* A MANIFEST published before CRIU failed would bless images
		 * of a dump CRIU disowns. */
		if (op->published && !op->acked) {
			xasprintf(&m, "%s/%s", op->gen_dir, CKPT_MANIFEST);
			unlink(m);
			free(m);
		}
		ckpt_op_finish(op, NULL, op->answer_error != NULL ?
		    op->answer_error : "criu finished without the post-dump "
		    "notification; checkpoint not published");
		return;
	}
	memset(&res, 0, sizeof res);
	res.bytes = op->bytes;
	res.frozen_ms = op->frozen_ms != 0 ? op->frozen_ms : op->answered_at -
	    (op->frozen_at != 0 ? op->frozen_at : op->start_ms);
	ckpt_op_finish(op, &res, NULL);
}

static void
ckpt_dump_answer(struct criu *c, const CriuResp *resp, const char *error,
    void *arg)
{
	struct ckpt_op	*op = arg;

	op->aborted |= criu_aborted(c);
	criu_close(c);
	op->criu = NULL;
	/* Past the end of its page transfer: the stream is only read (by
	 * the pool) from now. */
	ckpt_staged_close(op);
	op->answered = 1;
	op->answered_at = now_ms();
	if (resp == NULL && op->aborted && !op->acked)
		xasprintf(&op->answer_error, "%s; %s runs on as it was (thawed): "
		    "see in the CRIU log %s/dump.log what it waited for%s", error,
		    op->name, op->gen_dir, op->cancel_why != NULL ? "" :
		    ", then try again, or raise criu_timeout_ms if dumps this "
		    "large take longer");
	else if ((resp == NULL || !resp->success) && op->stage_error != NULL) {
		char	*was = ckpt_criu_error(op, resp, error, "dump.log");

		xasprintf(&op->answer_error, "staging the pages: %s; criu "
		    "then: %s", op->stage_error, was);
		free(was);
	} else if (resp == NULL || !resp->success) {
		op->answer_error = ckpt_criu_error(op, resp, error, "dump.log");
		if (op->cancel_why != NULL && resp != NULL) {
			char	*was = op->answer_error;

			op->cancel_heard = 1;
			xasprintf(&op->answer_error, "%s (criu stopped as "
			    "asked: %s)", op->cancel_why, was);
			free(was);
		}
	}
	if (op->working)
		return;	/* ckpt_publish_done concludes */
	ckpt_dump_conclude(op);
}

/* External mounts: the host's device nodes bind-mounted into the
 * container's /dev (dump names them "dev-NAME", restore maps them back)
 * and the masked directories (confine_mask_externals).  pid: the dump's
 * container init.  Returns the NULL-terminated array; free with
 * ckpt_externals_free. */
static char **
ckpt_externals(int dump, pid_t pid, size_t *n)
{
	const char *const	*dev = container_host_devices();
	char			**ext;
	size_t			 i;

	for (*n = 0; dev[*n] != NULL; (*n)++)
		;
	ext = xcalloc(*n + 1, sizeof *ext);
	for (i = 0; i < *n; i++) {
		if (dump)
			xasprintf(&ext[i], "mnt[/dev/%s]:dev-%s", dev[i], dev[i]);
		else
			xasprintf(&ext[i], "mnt[dev-%s]:/dev/%s", dev[i], dev[i]);
	}
	confine_mask_externals(pid, dump, &ext, n);
	return ext;
}

static void
ckpt_externals_free(char **ext)
{
	size_t	i;

	for (i = 0; ext != NULL && ext[i] != NULL; i++)
		free(ext[i]);
	free(ext);
}

/* Options both directions share: what a container's tree holds. */
static void
ckpt_common_opts(CriuOpts *o, int dir_fd, const char *log_file)
{
	o->images_dir_fd = dir_fd;
	o->log_file = (char *)log_file;
	o->has_log_level = 1;
	o->log_level = 4;
	o->has_manage_cgroups = 1;
	o->manage_cgroups = 1;
	o->has_manage_cgroups_mode = 1;
	o->manage_cgroups_mode = CRIU_CG_MODE__SOFT;
	o->has_file_locks = 1;
	o->file_locks = 1;
	o->has_ext_unix_sk = 1;
	o->ext_unix_sk = 1;
	o->has_notify_scripts = 1;
	o->notify_scripts = 1;
}

static struct ckpt_op *
ckpt_op_new(uv_loop_t *loop, const struct ckpt_target *t, uint64_t generation,
    int dump, ckpt_cb cb, void *arg, char **cause)
{
	struct ckpt_op	*op;

	op = xcalloc(1, sizeof *op);
	op->loop = loop;
	op->name = xstrdup(t->name);
	op->generation = generation;
	op->dump = dump;
	op->start_ms = now_ms();
	op->cb = cb;
	op->arg = arg;
	op->dir_fd = -1;
	op->stage_fd = -1;
	xasprintf(&op->gen_dir, "%s/%" PRIu64, t->dir, generation);
	op->next = ckpt_ops;
	ckpt_ops = op;
	return op;
}

void
ckpt_dump_held(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, ckpt_hold_cb hold_cb, ckpt_cb cb, void *arg)
{
	ckpt_dump_run(loop, t, generation, 0, -1, -1, 0, hold_cb, cb, arg);
}

pid_t
ckpt_dump_lazy_held(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int ps_fd, int keep_fd, ckpt_hold_cb hold_cb,
    ckpt_cb cb, void *arg)
{
	return ckpt_dump_run(loop, t, generation, 0, ps_fd, keep_fd, 1,
	    hold_cb, cb, arg);
}

pid_t
ckpt_dump_ps_held(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int ps_fd, ckpt_hold_cb hold_cb, ckpt_cb cb,
    void *arg)
{
	return ckpt_dump_run(loop, t, generation, 0, ps_fd, -1, 0, hold_cb,
	    cb, arg);
}

void
ckpt_dump(uv_loop_t *loop, const struct ckpt_target *t, uint64_t generation,
    int leave_running, ckpt_cb cb, void *arg)
{
	ckpt_dump_run(loop, t, generation, leave_running, -1, -1, 0, NULL,
	    cb, arg);
}

/* Freeze the container by its cgroup for the dump (nothing it forks
 * meanwhile escapes), unless a task is stopped: CRIU would then wait
 * forever in the kernel to seize it (PTRACE_SEIZE waits for a stopped
 * task to trap, the v1 freezer never lets it run; upstream CRIU fails its
 * stopped* tests with --freeze-cgroup too).  Without the freezer CRIU
 * seizes the tree with ptrace alone, which handles stopped tasks and
 * restores them stopped.  A task stopped after this check is the
 * deadline's to catch.  Returns the freezer's path, or NULL. */
static char *
ckpt_freezer(const char *name)
{
	int	n = container_stopped_tasks(name);

	if (fault_hit("ckpt.stopped-check") == FAULT_FAIL)
		n = 0;
	if (n > 0) {
		log_info("%s: %d task%s stopped: CRIU seizes the tree without "
		    "freezing its cgroup", name, n, n == 1 ? "" : "s");
		return NULL;
	}
	return container_freezer_path(name);
}

/* A lazy dump, or one sending its pages to a page server, runs criu's
 * command line: its RPC cannot give the page server a socket of ours (it
 * would listen on the network instead).  The same options as the RPC
 * dump, spelled as flags. */
static struct criu *
ckpt_dump_lazy_spawn(struct ckpt_op *op, const struct ckpt_target *t,
    int ps_fd, int keep_fd, char **cause)
{
	struct criu	*c;
	int		 fds[2] = { ps_fd, keep_fd };
	char		*args[96], **ext, pid[16], psfd[16], *freezer;
	size_t		 n = 0, i, next;

	snprintf(pid, sizeof pid, "%ld", (long)t->pid);
	snprintf(psfd, sizeof psfd, "%d", criu_passed_fd(0));
	freezer = ckpt_freezer(t->name);
	ext = ckpt_externals(1, t->pid, &next);
	args[n++] = "dump";
	args[n++] = "-t";
	args[n++] = pid;
	args[n++] = "-D";
	args[n++] = op->gen_dir;
	args[n++] = "-o";
	args[n++] = "dump.log";
	args[n++] = "-v4";
	args[n++] = "--manage-cgroups=soft";
	args[n++] = "--file-locks";
	args[n++] = "--ext-unix-sk";
	if (freezer != NULL) {
		args[n++] = "--freeze-cgroup";
		args[n++] = freezer;
	}
	for (i = 0; i < next && n < sizeof args / sizeof args[0] - 6; i++) {
		args[n++] = "--external";
		args[n++] = ext[i];
	}
	if (op->leave_running)
		args[n++] = "--leave-running";
	args[n++] = op->ps ? "--page-server" : "--lazy-pages";
	args[n++] = "--ps-socket";
	args[n++] = psfd;
	args[n] = NULL;
	c = criu_run(op->loop, t->criu_path, t->action_script, args, fds,
	    keep_fd != -1 ? 2 : 1, ckpt_dump_answer, ckpt_dump_notify, op,
	    cause);
	ckpt_externals_free(ext);
	free(freezer);
	return c;
}

/* The dump through CRIU's RPC, its images (pages too) written by CRIU. */
static struct criu *
ckpt_dump_rpc(struct ckpt_op *op, const struct ckpt_target *t, char **cause)
{
	struct criu	*c;
	CriuReq		 req = CRIU_REQ__INIT;
	CriuOpts	 opts = CRIU_OPTS__INIT;
	char		**ext, *freezer;

	if ((c = criu_spawn(op->loop, t->criu_path, NULL, 0, cause)) == NULL)
		return NULL;
	ckpt_common_opts(&opts, op->dir_fd, "dump.log");
	opts.has_pid = 1;
	opts.pid = t->pid;
	ext = ckpt_externals(1, t->pid, &opts.n_external);
	opts.external = ext;
	opts.freeze_cgroup = freezer = ckpt_freezer(t->name);
	opts.has_leave_running = 1;
	opts.leave_running = op->leave_running != 0;
	req.type = CRIU_REQ_TYPE__DUMP;
	req.opts = &opts;
	log_info("%s: checkpoint %" PRIu64 " into %s%s", t->name,
	    op->generation, op->gen_dir, op->leave_running ?
	    " (leaving it running)" : "");
	if (criu_call(c, &req, ckpt_dump_answer, ckpt_dump_notify, op,
	    cause) != 0) {
		criu_close(c);
		c = NULL;
	}
	ckpt_externals_free(ext);
	free(freezer);
	return c;
}

/* The staged dump's target, from what the operation kept of it. */
static void
ckpt_staged_target(const struct ckpt_op *op, struct ckpt_target *t)
{
	memset(t, 0, sizeof *t);
	t->name = op->name;
	t->criu_path = op->criu_path;
	t->pid = op->stage_pid;
	t->action_script = op->action_script;
}

/* The room it holds, counted: a stream that grew past its estimate
 * holds more of the budget. */
static void
ckpt_staged_count(struct ckpt_op *op)
{
	size_t	room = staging_room(op->staging);

	if (room > op->stage_bytes) {
		ckpt_staged_bytes += room - op->stage_bytes;
		op->stage_bytes = room;
	}
}

/* What the budget has left for staged dumps now. */
static uint64_t
ckpt_staged_left(void)
{
	return ckpt_staged_budget > ckpt_staged_bytes ?
	    ckpt_staged_budget - ckpt_staged_bytes : 0;
}

/* It may grow into what the budget has left now: other staged dumps
 * that started or grew since took theirs. */
static void
ckpt_staged_limit(struct ckpt_op *op)
{
	uint64_t	left = ckpt_staged_left();
	size_t		room = staging_room(op->staging);

	staging_limit(op->staging, room + (left > SIZE_MAX - room ?
	    SIZE_MAX - room : (size_t)left));
}

static void
ckpt_staged_readable(uv_poll_t *h, int status, int events)
{
	struct ckpt_op	*op = h->data;
	char		*cause = NULL;
	size_t		 len;
	int		 rc;

	(void)events;
	staging_data(op->staging, &len);
	if (status < 0)
		set_cause(&cause, "reading criu's pages: %s",
		    uv_strerror(status));
	else if (len >= (1u << 20) &&	/* mid-transfer */
	    fault_hit("ckpt.staging.read") == FAULT_FAIL)
		set_cause(&cause, "fault point ckpt.staging.read");
	if (cause == NULL) {
		ckpt_staged_limit(op);
		rc = staging_read(op->staging, op->stage_fd, &cause);
		ckpt_staged_count(op);
	} else
		rc = -1;
	if (rc == 0)
		return;
	staging_data(op->staging, &len);
	if (rc == 1)
		log_debug("%s: checkpoint %" PRIu64 ": %" PRIu64 " pages staged "
		    "(%zu bytes of stream)", op->name, op->generation,
		    staging_pages(op->staging), len);
	if (rc == -2 && !ckpt_staging_refused) {
		ckpt_staging_refused = 1;
		log_warnx("%s: %s; no checkpoint stages its pages until ternd "
		    "restarts (checkpoint_staging_mb = 0 says so for good)",
		    op->name, cause);
	}
	if (rc < 0) {
		/* Closing our end fails CRIU's transfer: it thaws the tree
		 * and answers; the checkpoint fails with our reason. */
		xasprintf(&op->stage_error, "%s, %zu bytes in", cause, len);
		log_warnx("%s: checkpoint %" PRIu64 ": %s", op->name,
		    op->generation, op->stage_error);
		free(cause);
	}
	ckpt_staged_close(op);
}

/* Thread pool: the room for the pages, reserved before the freeze. */
static int
ckpt_staged_reserve(void *arg, char **cause)
{
	struct ckpt_op	*op = arg;

	if (fault_hit("ckpt.staging.reserve") == FAULT_FAIL) {
		set_cause(cause, "fault point ckpt.staging.reserve");
		return -1;
	}
	return (op->staging = staging_new(op->stage_bytes, op->stage_max,
	    cause)) != NULL ? 0 : -1;
}

static void
ckpt_staged_reserved(void *arg, const char *error)
{
	struct ckpt_op		*op = arg;
	struct ckpt_target	 t;
	char			*cause = NULL;
	int			 sv[2] = { -1, -1 }, rc;

	op->stage_reserving = 0;
	ckpt_staged_target(op, &t);
	if (op->cancel_why != NULL) {
		/* Nothing started: the container ran on throughout. */
		xasprintf(&cause, "checkpoint %" PRIu64 " not started: %s",
		    op->generation, op->cancel_why);
		goto fail;
	}
	if (error != NULL) {
		ckpt_staged_release(op);
		op->stage_max = 0;
		log_warnx("%s: %s; checkpoint %" PRIu64 " is written by criu "
		    "while %s stands still", op->name, error, op->generation,
		    op->name);
		if ((op->criu = ckpt_dump_rpc(op, &t, &cause)) == NULL)
			goto fail;
		return;
	}
	ckpt_staged_count(op);	/* its room, rounded up to huge pages */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
		set_cause(&cause, "socketpair: %s", strerror(errno));
		goto fail;
	}
	op->stage_poll = xmalloc(sizeof *op->stage_poll);
	if ((rc = uv_poll_init(op->loop, op->stage_poll, sv[0])) != 0) {
		free(op->stage_poll);
		op->stage_poll = NULL;
		set_cause(&cause, "watching criu's page socket: %s",
		    uv_strerror(rc));
		goto fail;
	}
	op->stage_poll->data = op;
	op->stage_fd = sv[0];
	sv[0] = -1;
	op->ps = 1;	/* pages to a page server: ours */
	log_info("%s: checkpoint %" PRIu64 " into %s (leaving it running; its "
	    "pages staged in %zu MiB of memory)", op->name, op->generation,
	    op->gen_dir, op->stage_bytes >> 20);
	if ((op->criu = ckpt_dump_lazy_spawn(op, &t, sv[1], -1,
	    &cause)) == NULL)
		goto fail;
	close(sv[1]);
	uv_poll_start(op->stage_poll, UV_READABLE, ckpt_staged_readable);
	return;
fail:
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	ckpt_op_finish(op, NULL, cause);
	free(cause);
}

/* A leave-running dump with its pages staged: the room first (seconds
 * per GiB where fresh memory is dear, none of it frozen), then CRIU.
 * 0, or -1 if what it would hold is more than the budget leaves. */
static int
ckpt_staged_start(struct ckpt_op *op, const struct ckpt_target *t)
{
	/* What it holds now (its page cache too: a generous guess), and
	 * room to grow while the dump starts. */
	uint64_t	want = container_memory_usage(t->name) + (16u << 20);
	uint64_t	budget = (uint64_t)t->staged_mb << 20, left, avail;

	ckpt_staged_budget = budget;
	left = ckpt_staged_left();
	if (want > left) {
		log_info("%s: checkpoint %" PRIu64 " is written by criu while "
		    "%s stands still: staging its pages would take %" PRIu64
		    " MiB, and %" PRIu64 " of checkpoint_staging_mb = %d are "
		    "left (raise it if this host has the memory)", t->name,
		    op->generation, t->name, want >> 20, left >> 20,
		    t->staged_mb);
		return -1;
	}
	/* Memory the kernel would have to take from someone is no
	 * staging room (and touching it could wake the OOM killer). */
	if ((avail = mem_available()) != 0 && want > avail / 2) {
		log_info("%s: checkpoint %" PRIu64 " is written by criu while "
		    "%s stands still: staging its pages would take %" PRIu64
		    " MiB of the %" PRIu64 " MiB this host has available",
		    t->name, op->generation, t->name, want >> 20, avail >> 20);
		return -1;
	}
	op->criu_path = xstrdup(t->criu_path);
	op->action_script = xstrdup(t->action_script);
	op->stage_pid = t->pid;
	op->stage_bytes = (size_t)want;
	op->stage_max = (size_t)left;
	ckpt_staged_bytes += want;
	op->stage_reserving = 1;
	work_run(op->loop, ckpt_staged_reserve, op, ckpt_staged_reserved, op);
	return 0;
}

static pid_t
ckpt_dump_run(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int leave_running, int ps_fd, int keep_fd,
    int lazy, ckpt_hold_cb hold_cb, ckpt_cb cb, void *arg)
{
	struct ckpt_op	*op;
	char		*cause = NULL;

	op = ckpt_op_new(loop, t, generation, 1, cb, arg, &cause);
	op->hold_cb = hold_cb;
	/* A generation without MANIFEST is an earlier failed attempt. */
	if (rm_rf(op->gen_dir, &cause) != 0 ||
	    mkdir_p(op->gen_dir, 0700, &cause) != 0)
		goto fail;
	if ((op->dir_fd = open(op->gen_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		set_cause(&cause, "%s: %s", op->gen_dir, strerror(errno));
		goto fail;
	}
	if (ps_fd != -1) {
		/* Either way the generation lacks the pages: lazy-marked. */
		op->lazy = 1;
		op->ps = !lazy;
		log_info("%s: checkpoint %" PRIu64 " into %s, pages %s",
		    t->name, generation, op->gen_dir, lazy ? "served lazily "
		    "(post-copy)" : "sent to a page server as they are dumped");
		if ((op->criu = ckpt_dump_lazy_spawn(op, t, ps_fd, keep_fd,
		    &cause)) == NULL)
			goto fail;
		return criu_pid(op->criu);
	}
	op->leave_running = leave_running != 0;
	if (op->leave_running) {
		op->frozen = t->frozen;
		op->frozen_arg = t->frozen_arg;
	}
	if (op->leave_running && t->staged_mb > 0 && !ckpt_staging_refused &&
	    t->action_script != NULL && ckpt_staged_start(op, t) == 0)
		return 0;	/* CRIU starts later */
	if ((op->criu = ckpt_dump_rpc(op, t, &cause)) == NULL)
		goto fail;
	return criu_pid(op->criu);
fail:
	ckpt_op_finish(op, NULL, cause);
	free(cause);
	return 0;
}

/* --- restore --------------------------------------------------------------- */

static void
ckpt_restore_conclude(struct ckpt_op *op)
{
	struct ckpt_result	res;

	memset(&res, 0, sizeof res);
	if (op->saved_error != NULL) {
		/* CRIU kills a tree it fails to restore, but its init is
		 * our child (restored as our sibling): the caller reaps it. */
		res.pid = op->tree_pid;
		ckpt_op_finish(op, &res, op->saved_error);
		return;
	}
	res.pid = op->saved_pid;
	ckpt_op_finish(op, &res, NULL);
}

static void
ckpt_restore_answer(struct criu *c, const CriuResp *resp, const char *error,
    void *arg)
{
	struct ckpt_op	*op = arg;

	op->aborted |= criu_aborted(c);
	/* The tree's root: CRIU's answer names it, failed or not, once it
	 * forked it; a CRIU that never answered named it at best in a
	 * notification. */
	if (resp != NULL && resp->restore != NULL && resp->restore->pid > 0)
		op->tree_pid = resp->restore->pid;
	else if (criu_notified_pid(c) > 0)
		op->tree_pid = criu_notified_pid(c);
	criu_close(c);
	op->criu = NULL;
	op->saved = 1;
	if (resp == NULL && op->aborted)
		xasprintf(&op->saved_error, "%s: see in the CRIU log "
		    "%s/restore.log what it waited for, then try again, or "
		    "raise criu_timeout_ms if restores this large take longer",
		    error, op->gen_dir);
	else if (resp == NULL || !resp->success || resp->restore == NULL)
		op->saved_error = ckpt_criu_error(op, resp, error, "restore.log");
	else
		op->saved_pid = resp->restore->pid;
	if (op->holding)
		return;	/* ckpt_hold_release concludes */
	ckpt_restore_conclude(op);
}

/* Where a restore's time went, up to its resume: our check of the
 * images, then CRIU, and of CRIU's time the restorer's reads of the
 * pages into memory (from its log: faulting in fresh memory is most of
 * a large restore).  The log of a large restore runs to megabytes: it is
 * read on the pool, not on the loop while the tree waits to resume. */
struct restore_timing {
	char		*name, *log;
	uint64_t	 generation, total_ms, checked_ms, criu_ms;
	int64_t		 read_ms;
};

static int
ckpt_restore_timing_read(void *arg, char **cause)
{
	struct restore_timing	*rt = arg;

	(void)cause;
	rt->read_ms = criu_log_pages_read_ms(rt->log);
	return 0;
}

static void
ckpt_restore_timing_done(void *arg, const char *error)
{
	struct restore_timing	*rt = arg;
	char			 read[64] = "";

	(void)error;
	if (rt->read_ms >= 0)
		snprintf(read, sizeof read, ", of which reading the pages "
		    "into memory %" PRId64 " ms", rt->read_ms);
	log_info("%s: timing: checkpoint %" PRIu64 " restored in %" PRIu64
	    " ms: images checked in %" PRIu64 " ms, CRIU %" PRIu64 " ms%s",
	    rt->name, rt->generation, rt->total_ms, rt->checked_ms,
	    rt->criu_ms, read);
	free(rt->name);
	free(rt->log);
	free(rt);
}

static void
ckpt_restore_timing(const struct ckpt_op *op)
{
	struct restore_timing	*rt;
	uint64_t		 now = now_ms();

	rt = xcalloc(1, sizeof *rt);
	rt->name = xstrdup(op->name);
	xasprintf(&rt->log, "%s/restore.log", op->gen_dir);
	rt->generation = op->generation;
	rt->total_ms = now - op->start_ms;
	rt->checked_ms = op->verified_at - op->start_ms;
	rt->criu_ms = now - op->verified_at;
	rt->read_ms = -1;
	work_run(op->loop, ckpt_restore_timing_read, rt,
	    ckpt_restore_timing_done, rt);
}

/* pre-resume: restored, not running yet.  A held restore waits here. */
static int
ckpt_restore_notify(struct criu *c, const char *script, void *arg)
{
	struct ckpt_op	*op = arg;

	/* After the fork: CRIU then fails the restore of a forked tree
	 * (fail), or dies without an answer that names it (kill). */
	if (strcmp(script, "setup-namespaces") == 0) {
		switch (fault_hit("ckpt.restore.setup-ns")) {
		case FAULT_KILL:
			criu_kill(c);
			return -1;
		case FAULT_FAIL:
			return -1;
		default:
			break;
		}
	}
	if (strcmp(script, "pre-resume") != 0)
		return 0;
	ckpt_restore_timing(op);
	if (op->hold_cb == NULL)
		return 0;
	op->committing = 1;
	op->holding = 1;
	op->hold_cb(op->arg, (struct ckpt_hold *)op, op->gen_dir, op->bytes);
	return CRIU_NOTIFY_LATER;
}

pid_t
ckpt_hold_tree(const struct ckpt_hold *hold)
{
	const struct ckpt_op	*op = (const struct ckpt_op *)hold;

	if (op->criu != NULL && criu_notified_pid(op->criu) > 0)
		return criu_notified_pid(op->criu);
	return op->tree_pid;
}

const char *
ckpt_hold_lost(const struct ckpt_hold *hold)
{
	const struct ckpt_op	*op = (const struct ckpt_op *)hold;

	if (op->holding && op->criu != NULL && !op->answered && !op->saved)
		return NULL;
	if (op->answer_error != NULL)
		return op->answer_error;
	if (op->saved_error != NULL)
		return op->saved_error;
	return "criu answered before it was released";
}

void
ckpt_hold_release(struct ckpt_hold *hold, int ok)
{
	struct ckpt_op	*op = (struct ckpt_op *)hold;

	if (!op->holding)
		return;
	/* A reply that cannot be sent answers the request at once: working
	 * (dump) and holding (restore) stay set meanwhile, so that answer
	 * leaves the conclusion to us, here, once. */
	if (op->dump) {
		op->holding = 0;
		if (ok)
			op->acked = 1;
		/* Serving pages lasts as long as the link needs: the
		 * migration watches the bytes, not a clock. */
		if (ok && op->lazy && !op->ps && op->criu != NULL)
			criu_no_deadline(op->criu);
		if (op->criu != NULL)
			criu_notify_reply(op->criu, ok);
		op->working = 0;
		if (op->answered)	/* CRIU died while held */
			ckpt_dump_conclude(op);
		return;
	}
	if (op->criu != NULL)
		criu_notify_reply(op->criu, ok);
	op->holding = 0;
	if (op->saved)
		ckpt_restore_conclude(op);
}

void
ckpt_hold_kill(struct ckpt_hold *hold)
{
	struct ckpt_op	*op = (struct ckpt_op *)hold;

	if (op->criu != NULL)
		criu_kill(op->criu);
}

static void
ckpt_verify_work(uv_work_t *w)
{
	struct ckpt_op	*op = w->data;

	if (op->pages_checked) {
		/* The page server's images come with no MANIFEST line: the
		 * digest of their stream was checked instead. */
		ckpt_verify_pages(op->gen_dir, &op->bytes, &op->verify_error);
		return;
	}
	if (!op->lazy && ckpt_is_lazy(op->gen_dir) &&
	    ckpt_has_stream(op->gen_dir)) {
		/* A page server's dump: its pages from the stream kept. */
		if (ckpt_replay_pages(op->gen_dir, op->criu_path,
		    &op->verify_error) == 0)
			ckpt_verify_pages(op->gen_dir, &op->bytes,
			    &op->verify_error);
		return;
	}
	if (!op->lazy && ckpt_is_lazy(op->gen_dir)) {
		xasprintf(&op->verify_error, "checkpoint %" PRIu64 " holds no "
		    "memory (a post-copy's images, left by a ternd that died "
		    "in one): it cannot be restored", op->generation);
		return;
	}
	ckpt_verify(op->gen_dir, &op->bytes, &op->verify_error);
}

/* Verified (or not): hand the images to CRIU. */
static void
ckpt_roots_free(CgroupRoot *roots, CgroupRoot **rootp, size_t n)
{
	size_t	i;

	for (i = 0; roots != NULL && i < n; i++)
		free(roots[i].path);
	free(roots);
	free(rootp);
}

static void
ckpt_verify_done(uv_work_t *w, int status)
{
	struct ckpt_op		*op = w->data;
	struct criu		*c;
	CriuReq			 req = CRIU_REQ__INIT;
	CriuOpts		 opts = CRIU_OPTS__INIT;
	CgroupRoot		*roots = NULL, **rootp = NULL;
	const char *const	*ctrls;
	size_t			 n = 0, i;
	char			*cause = NULL, **ext = NULL, *unified;

	op->working = 0;
	op->verified_at = now_ms();
	if (op->verify_error != NULL) {
		/* Nothing unverified reaches CRIU. */
		ckpt_op_finish(op, NULL, op->verify_error);
		return;
	}
	if ((op->dir_fd = open(op->gen_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		set_cause(&cause, "%s: %s", op->gen_dir, strerror(errno));
		goto fail;
	}
	/* The directory its masked paths bind (external mounts). */
	if (confine_mask_dir_ready(&cause) != 0)
		goto fail;
	c = op->swrk;
	op->swrk = NULL;
	if (c != NULL && !criu_usable(c)) {
		log_info("%s: the criu started ahead for its restore is gone; "
		    "starting another", op->name);
		criu_close(c);
		c = NULL;
	}
	if (c == NULL &&
	    (c = criu_spawn(op->loop, op->criu_path, NULL, 0, &cause)) == NULL)
		goto fail;
	ckpt_common_opts(&opts, op->dir_fd, "restore.log");
	opts.root = op->rootfs;
	/* The images name the cgroups of the host that dumped them: restore
	 * into this host's own (they differ after a migration).  That holds
	 * for the v2 hierarchy too (CRIU names it ""): left to the images, a
	 * migrated container would join its source ternd's v2 cgroup, which
	 * on one kernel shared by test hosts is the source's to kill. */
	ctrls = container_cgroup_controllers();
	for (n = 0; ctrls[n] != NULL; n++)
		;
	roots = xcalloc(n + 1, sizeof *roots);
	rootp = xcalloc(n + 1, sizeof *rootp);
	for (i = 0; i < n; i++) {
		cgroup_root__init(&roots[i]);
		roots[i].ctrl = (char *)ctrls[i];
		roots[i].path = container_cgroup_relpath(op->name, ctrls[i]);
		rootp[i] = &roots[i];
	}
	if ((unified = container_unified_path()) != NULL) {
		cgroup_root__init(&roots[n]);
		roots[n].ctrl = (char *)"";
		roots[n].path = unified;
		rootp[n] = &roots[n];
		n++;
	}
	opts.n_cg_root = n;
	opts.cg_root = rootp;
	ext = ckpt_externals(0, 0, &opts.n_external);
	opts.external = ext;
	/* The restored init becomes our child, like a started one. */
	opts.has_rst_sibling = 1;
	opts.rst_sibling = 1;
	if (op->lazy) {
		/* Memory comes from the lazy-pages daemon already running
		 * on this directory (ckpt_lazy_start). */
		opts.has_lazy_pages = 1;
		opts.lazy_pages = 1;
	}
	req.type = CRIU_REQ_TYPE__RESTORE;
	req.opts = &opts;
	log_info("%s: restoring checkpoint %" PRIu64 " (%" PRIu64 " bytes "
	    "verified)", op->name, op->generation, op->bytes);
	if (criu_call(c, &req, ckpt_restore_answer, ckpt_restore_notify, op,
	    &cause) != 0) {
		criu_close(c);
		goto fail;
	}
	op->criu = c;
	ckpt_roots_free(roots, rootp, n);
	ckpt_externals_free(ext);
	return;
fail:
	ckpt_roots_free(roots, rootp, n);
	ckpt_externals_free(ext);
	ckpt_op_finish(op, NULL, cause);
	free(cause);
}

void
ckpt_restore(uv_loop_t *loop, const struct ckpt_target *t, uint64_t generation,
    ckpt_cb cb, void *arg)
{
	ckpt_restore_held(loop, t, generation, NULL, cb, arg);
}

void
ckpt_restore_held(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, ckpt_hold_cb hold_cb, ckpt_cb cb, void *arg)
{
	struct ckpt_op	*op;

	op = ckpt_op_new(loop, t, generation, 0, cb, arg, NULL);
	op->hold_cb = hold_cb;
	op->swrk = t->swrk;
	op->lazy = t->lazy;
	op->pages_checked = t->pages_checked;
	op->rootfs = xstrdup(t->rootfs);
	op->criu_path = xstrdup(t->criu_path);
	op->working = 1;
	op->work.data = op;
	uv_queue_work(loop, &op->work, ckpt_verify_work, ckpt_verify_done);
}

/* --- the lazy-pages daemon (post-copy target) ------------------------------ */

/* The most userfaultfds held for one daemon: one per restored process
 * with lazy memory. */
#define CKPT_LAZY_UFFD_MAX	256

struct ckpt_lazy {
	struct criu	*criu;
	const char	*what;		/* "lazy-pages", "page-server" */
	char		*name;
	char		*log;
	int		 ready;
	ckpt_lazy_cb	 ready_cb;
	ckpt_lazy_cb	 done_cb;
	void		*arg;
	int		*uffds;		/* ours: see ckpt_lazy_hold_uffds */
	size_t		 nuffds;
	uint64_t	 guard;		/* uffd_guard_hold's ticket */
};

static void
ckpt_lazy_drop_uffds(struct ckpt_lazy *lz)
{
	size_t	i;

	uffd_guard_let_go(lz->guard);
	lz->guard = 0;
	for (i = 0; i < lz->nuffds; i++)
		close(lz->uffds[i]);
	free(lz->uffds);
	lz->uffds = NULL;
	lz->nuffds = 0;
}

static void
ckpt_lazy_release(struct ckpt_lazy *lz)
{
	ckpt_lazy_drop_uffds(lz);
	free(lz->log);
	free(lz->name);
	free(lz);
}

/* status-ready: it listens for the restore's userfaultfds. */
static int
ckpt_lazy_notify(struct criu *c, const char *script, void *arg)
{
	struct ckpt_lazy	*lz = arg;

	if (strcmp(script, "status-ready") == 0 && !lz->ready) {
		lz->ready = 1;
		/* It runs until every page came: the migration watches. */
		criu_no_deadline(c);
		lz->ready_cb(lz->arg, NULL);
	}
	return 0;
}

static void
ckpt_lazy_answer(struct criu *c, const CriuResp *resp, const char *error,
    void *arg)
{
	struct ckpt_lazy	*lz = arg;
	char			*why = NULL, *errors;
	ckpt_lazy_cb		 cb;

	criu_close(c);
	lz->criu = NULL;
	if (resp == NULL || !resp->success) {
		errors = criu_log_errors(lz->log);
		xasprintf(&why, "criu %s %s%s%s (CRIU log: %s)", lz->what,
		    error != NULL ? error : "failed", errors != NULL ? ": " : "",
		    errors != NULL ? errors : "", lz->log);
		free(errors);
	} else
		ckpt_lazy_drop_uffds(lz);	/* every page is in */
	cb = lz->ready ? lz->done_cb : lz->ready_cb;
	lz->ready = 1;
	cb(lz->arg, why != NULL ? why : NULL);
	free(why);
	/* It exited: the handle goes with it (the caller forgets it).  A
	 * broken one's userfaultfds only now: the callback killed the tree
	 * its faults held. */
	ckpt_lazy_release(lz);
}

/* CRIU's lazy-pages daemon or page server for a generation, fed
 * through ps_fd: `criu WHAT [OPT] --ps-socket FD -D DIR -o WHAT.log
 * [LAST]`; with ps_fd -1, from the generation's own images (no socket).
 * NULL and *cause if it cannot start. */
static struct ckpt_lazy *
ckpt_helper_start(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int ps_fd, const char *what, const char *opt,
    const char *last, criu_notify_cb notify, char **cause)
{
	struct ckpt_lazy	*lz;
	char			*args[16], *dir, *logname, psfd[16];
	size_t			 n = 0;

	xasprintf(&dir, "%s/%" PRIu64, t->dir, generation);
	xasprintf(&logname, "%s.log", what);
	snprintf(psfd, sizeof psfd, "%d", criu_passed_fd(0));
	lz = xcalloc(1, sizeof *lz);
	lz->name = xstrdup(t->name);
	xasprintf(&lz->log, "%s/%s", dir, logname);
	lz->what = what;
	args[n++] = (char *)what;
	if (opt != NULL)
		args[n++] = (char *)opt;
	if (ps_fd != -1) {
		args[n++] = "--ps-socket";
		args[n++] = psfd;
	}
	args[n++] = "-D";
	args[n++] = dir;
	args[n++] = "-o";
	args[n++] = logname;
	if (last != NULL)
		args[n++] = (char *)last;
	args[n] = NULL;
	/* Its readiness is all it tells: --status-fd, no action script. */
	lz->criu = criu_run(loop, t->criu_path, NULL, args, &ps_fd,
	    ps_fd != -1 ? 1 : 0, ckpt_lazy_answer, notify, lz, cause);
	free(dir);
	free(logname);
	if (lz->criu == NULL) {
		ckpt_lazy_release(lz);
		return NULL;
	}
	return lz;
}

struct ckpt_lazy *
ckpt_lazy_start(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int ps_fd, ckpt_lazy_cb ready_cb, ckpt_lazy_cb done_cb,
    void *arg, char **cause)
{
	struct ckpt_lazy	*lz;

	lz = ckpt_helper_start(loop, t, generation, ps_fd, "lazy-pages",
	    ps_fd != -1 ? "--page-server" : NULL, "-v4", ckpt_lazy_notify, cause);
	if (lz == NULL)
		return NULL;
	lz->ready_cb = ready_cb;
	lz->done_cb = done_cb;
	lz->arg = arg;
	log_info("%s: lazy-pages daemon for checkpoint %" PRIu64 " started%s",
	    t->name, generation, ps_fd == -1 ? " (pages from the images here)" :
	    "");
	return lz;
}

struct ckpt_lazy *
ckpt_page_server_start(uv_loop_t *loop, const struct ckpt_target *t,
    uint64_t generation, int ps_fd, ckpt_lazy_cb done_cb, void *arg,
    char **cause)
{
	struct ckpt_lazy	*lz;

	lz = ckpt_helper_start(loop, t, generation, ps_fd, "page-server",
	    NULL, NULL, NULL, cause);
	if (lz == NULL)
		return NULL;
	lz->ready = 1;		/* nothing to wait for: done_cb only */
	lz->done_cb = done_cb;
	lz->arg = arg;
	/* It waits for the dump, which waits for the rootfs: the migration
	 * watches its progress, not a clock. */
	criu_no_deadline(lz->criu);
	log_info("%s: page server for checkpoint %" PRIu64 " started",
	    t->name, generation);
	return lz;
}

void
ckpt_lazy_rebind(struct ckpt_lazy *lz, ckpt_lazy_cb done_cb, void *arg)
{
	lz->done_cb = done_cb;
	lz->arg = arg;
}

void
ckpt_lazy_kill(struct ckpt_lazy *lz)
{
	if (lz != NULL && lz->criu != NULL)
		criu_kill(lz->criu);
}

pid_t
ckpt_lazy_pid(const struct ckpt_lazy *lz)
{
	return lz->criu != NULL ? criu_pid(lz->criu) : 0;
}

void
ckpt_lazy_free(struct ckpt_lazy *lz)
{
	if (lz == NULL)
		return;
	if (lz->criu != NULL) {
		criu_kill(lz->criu);
		criu_close(lz->criu);
	}
	ckpt_lazy_release(lz);
}

/* Without its daemon, a lazy restore's missing pages read as zeros: the
 * kernel drops a userfaultfd's ranges once the last file for it closes.
 * Holding a copy of each of the daemon's keeps them: a fault on a page
 * not yet in then waits until the tree is killed, instead of running on
 * zeros (and perhaps writing them out) for the moment a dead daemon's
 * exit takes to reach us. */
int
ckpt_lazy_hold_uffds(struct ckpt_lazy *lz, pid_t guard_init, char **cause)
{
	struct dirent	*e;
	DIR		*d;
	char		 dir[64], target[64], *why = NULL;
	ssize_t		 n;
	pid_t		 pid;
	int		 pidfd, fd, dfd;

	if ((pid = ckpt_lazy_pid(lz)) <= 0) {
		set_cause(cause, "its lazy-pages daemon is gone");
		return -1;
	}
	/* Our child, not yet reaped (only this loop reaps): the pid is its. */
	if ((pidfd = pidfd_open(pid, 0)) == -1) {
		set_cause(cause, "pidfd_open of its lazy-pages daemon (pid "
		    "%ld): %s", (long)pid, strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
	if ((d = opendir(dir)) == NULL) {
		set_cause(cause, "%s: %s", dir, strerror(errno));
		close(pidfd);
		return -1;
	}
	dfd = dirfd(d);
	while ((e = readdir(d)) != NULL && lz->nuffds < CKPT_LAZY_UFFD_MAX) {
		if (e->d_name[0] == '.')
			continue;
		n = readlinkat(dfd, e->d_name, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[userfaultfd]") != 0)
			continue;
		fd = pidfd_getfd(pidfd, atoi(e->d_name), 0);
		if (fd == -1) {
			set_cause(cause, "pidfd_getfd of userfaultfd %s of its "
			    "lazy-pages daemon: %s", e->d_name, strerror(errno));
			closedir(d);
			close(pidfd);
			return -1;
		}
		lz->uffds = xreallocarray(lz->uffds, lz->nuffds + 1,
		    sizeof *lz->uffds);
		lz->uffds[lz->nuffds++] = fd;
	}
	closedir(d);
	close(pidfd);
	if (lz->nuffds == 0)
		log_warnx("%s: its lazy-pages daemon (pid %ld) holds no "
		    "userfaultfd: should it die, nothing keeps the restored "
		    "tree off the pages not in", lz->name, (long)pid);
	else if (lz->nuffds == CKPT_LAZY_UFFD_MAX)
		log_warnx("%s: holding the first %d userfaultfds of its "
		    "lazy-pages daemon only", lz->name, CKPT_LAZY_UFFD_MAX);
	else
		log_info("%s: holding %zu userfaultfd%s of its lazy-pages "
		    "daemon until every page is in", lz->name, lz->nuffds,
		    lz->nuffds == 1 ? "" : "s");
	if (guard_init > 0 && lz->nuffds > 0 &&
	    (lz->guard = uffd_guard_hold(guard_init, lz->uffds, lz->nuffds,
	    &why)) == 0) {
		log_warnx("%s: the guard of its missing pages does not hold "
		    "them (%s): should ternd die before every page is in, the "
		    "container may read them as zeros", lz->name, why);
		free(why);
	}
	return 0;
}

void
ckpt_lazy_refuse(int fd)
{
	uint8_t	bad[64];
	ssize_t	n;

	/* Longer than any page-server request header, and an unknown
	 * command wherever a request boundary falls: CRIU's server fails on
	 * it (or on the short read that follows) instead of ending. */
	memset(bad, 0xff, sizeof bad);
	n = send(fd, bad, sizeof bad, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof bad)
		log_warnx("cannot refuse the lazy page transfer: %s",
		    n < 0 ? strerror(errno) : "short write");
}

void
ckpt_discard(const char *gen_dir)
{
	ckpt_discard_images(gen_dir);
}
