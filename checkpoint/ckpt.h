/* Checkpoint and restore of ONE container on ONE host with CRIU.
 *
 * Each checkpoint is a generation directory DIR/<gen>/ holding CRIU's
 * images, its log, and MANIFEST: one line per image file with its size
 * and SHA-256, written (and fsync'd, with the directory) only after CRIU
 * reported success.  A generation without a MANIFEST is incomplete and
 * never restored; restore verifies every checksum before CRIU reads a
 * byte. */
#ifndef TERN_CHECKPOINT_CKPT_H
#define TERN_CHECKPOINT_CKPT_H

#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#define CKPT_MANIFEST	"MANIFEST"
/* A MANIFEST line of a post-copy's images: never restored on their own,
 * never the newest checkpoint. */
#define CKPT_LAZY_MARK	"# lazy: the memory pages are not in this checkpoint"

struct ckpt_target {
	const char	*name;		/* for messages */
	const char	*criu_path;
	const char	*dir;		/* the instance's checkpoint directory */
	pid_t		 pid;		/* dump: the container's init */
	const char	*rootfs;	/* restore: its root directory */
	const char	*action_script;	/* criu_action_script(), lazy work */
	int		 lazy;		/* restore: pages from ckpt_lazy_start */
	/* Leave-running dump: called on the thread pool at CRIU's post-dump
	 * notification, while every task of the tree is still stopped (the
	 * images complete, nothing resumed yet): what must be taken at the
	 * same instant as the memory (a replica's rootfs).  -1 and *cause
	 * fail the dump (CRIU resumes the tree). */
	int		(*frozen)(void *arg, const char *gen_dir, char **cause);
	void		*frozen_arg;
	/* Leave-running dump: CRIU sends the pages to memory reserved
	 * before the freeze, and they are written after the thaw
	 * (checkpoint/staging.h), while all such dumps together hold at
	 * most staged_mb MiB (0: never); needs action_script.  Where that
	 * memory cannot be had CRIU writes them itself, as without. */
	int		 staged_mb;
	/* restore: the pages came from ckpt_page_server_start and their
	 * stream was checked by its digest; the MANIFEST (lazy-marked)
	 * lists the other images only. */
	int		 pages_checked;
	/* restore: a `criu swrk` started ahead (criu_spawn) while the
	 * images were on their way, or NULL.  The restore takes it (and
	 * starts its own if that one died meanwhile): a migration's freeze
	 * then holds no process start of CRIU's. */
	struct criu	*swrk;
};

struct ckpt_result {
	uint64_t	 generation;
	uint64_t	 bytes;		/* image bytes */
	uint64_t	 duration_ms;
	uint64_t	 frozen_ms;	/* dump: the container stood still */
	pid_t		 pid;		/* restore: the restored init; on
					 * error the one CRIU forked (0:
					 * none), dead or dying: the caller
					 * reaps it */
	const char	*gen_dir;
};

/* error is NULL on success; result is valid during the call only. */
typedef void (*ckpt_cb)(void *arg, const struct ckpt_result *,
    const char *error);

void		ckpt_dump(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, int leave_running, ckpt_cb, void *arg);
void		ckpt_restore(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, ckpt_cb, void *arg);

/* Held operations, for migration.  A dump held at CRIU's post-dump: the
 * images are complete and published (MANIFEST), the container frozen; a
 * restore held at CRIU's pre-resume: the tree is restored, not yet running.
 * on_hold is called once; the operation waits until ckpt_hold_release
 * (ok: the dump kills the source / the restore resumes; not ok: the dump
 * resumes the source / the restore discards the tree).  The final ckpt_cb
 * comes after the release, whatever happened meanwhile. */
struct ckpt_hold;
typedef void (*ckpt_hold_cb)(void *arg, struct ckpt_hold *,
    const char *gen_dir, uint64_t bytes);
void		ckpt_dump_held(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, ckpt_hold_cb, ckpt_cb, void *arg);
void		ckpt_restore_held(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, ckpt_hold_cb, ckpt_cb, void *arg);
void		ckpt_hold_release(struct ckpt_hold *, int ok);
/* Post-copy source: like ckpt_dump_held, but the memory pages stay in
 * CRIU, which serves them on ps_fd (a socket relayed to the target's
 * lazy-pages daemon) after the hold is released with ok, until the
 * target has them all; then the tree dies and cb follows.  If that
 * socket breaks first, CRIU resumes the tree. */
/* keep_fd, the other end of that socket (a dup), is only held by CRIU: a
 * ternd that dies then closes no channel, so CRIU neither resumes nor
 * kills the tree; the next ternd decides.  Returns CRIU's pid, or 0 when
 * it did not start (cb follows either way). */
pid_t		ckpt_dump_lazy_held(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, int ps_fd, int keep_fd, ckpt_hold_cb,
		    ckpt_cb, void *arg);
/* Stop-and-copy over a page server: like ckpt_dump_held, but CRIU sends
 * the memory pages over ps_fd (a socket relayed to the target's
 * ckpt_page_server_start) as it dumps, not into the generation, whose
 * MANIFEST is lazy-marked.  At the hold every page was taken by the page
 * server (CRIU ends its transfer before post-dump).  Returns CRIU's pid,
 * or 0 when it did not start (cb follows either way). */
pid_t		ckpt_dump_ps_held(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, int ps_fd, ckpt_hold_cb, ckpt_cb,
		    void *arg);
/* The source of such a dump keeps a copy of the pages beside the
 * generation: the stream CRIU sent, as it was (GEN_DIR.pages), sealed by
 * its length and CRC32C (GEN_DIR.pages.sum).  A lazy-marked generation
 * with a sealed stream is a checkpoint all the same: its restore replays
 * the stream into criu page-server first.  Seal: cut fd (the stream,
 * written by the caller, perhaps padded) to len and fsync it, then write
 * the sum durably; blocking (run it
 * off the loop).  Drop: remove both. */
char		*ckpt_pages_stream_path(const char *gen_dir);
int		ckpt_pages_stream_seal(const char *gen_dir, int fd,
		    uint64_t len, uint32_t crc, char **cause);
void		ckpt_pages_stream_drop(const char *gen_dir);
/* Post-copy source past the commit point, the transfer broken: SIGKILL
 * CRIU, so the tree stays frozen and is never resumed (the caller kills
 * it); cb follows with an error.  The handle of a lazy dump stays valid
 * after its release, until cb. */
void		ckpt_hold_kill(struct ckpt_hold *);
/* Post-copy source before the commit point: make the page server on fd
 * fail (a clean end would count as a finished transfer and CRIU would
 * kill the tree); it then resumes the tree.  Close fd afterwards. */
void		ckpt_lazy_refuse(int fd);
/* Post-copy target: CRIU's lazy-pages daemon on generation's images,
 * fetching pages over ps_fd; ps_fd -1 (a stop-and-copy's target resuming
 * early): the pages are in those images already, it copies them in after
 * the resume.  ready_cb once it listens (start the lazy restore then) or
 * failed before; done_cb when every page is in (error NULL) or it broke. */
struct ckpt_lazy;
typedef void (*ckpt_lazy_cb)(void *arg, const char *error);
struct ckpt_lazy *ckpt_lazy_start(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, int ps_fd, ckpt_lazy_cb ready_cb,
		    ckpt_lazy_cb done_cb, void *arg, char **cause);
/* Stop-and-copy target: `criu page-server` writing the pages it gets
 * over ps_fd into generation's directory.  done_cb once it exits: error
 * NULL when it ended the transfer cleanly (every page is on disk, in the
 * page cache).  Free it as a lazy-pages daemon (ckpt_lazy_free). */
struct ckpt_lazy *ckpt_page_server_start(uv_loop_t *, const struct ckpt_target *,
		    uint64_t generation, int ps_fd, ckpt_lazy_cb done_cb,
		    void *arg, char **cause);
/* Its done_cb and arg from now on (a stop-and-copy's loader passes from
 * the migration to the instance at the resume). */
void		ckpt_lazy_rebind(struct ckpt_lazy *, ckpt_lazy_cb done_cb,
		    void *arg);
/* SIGKILL it; its done_cb follows with the error (tests).  Its pid. */
void		ckpt_lazy_kill(struct ckpt_lazy *);
pid_t		ckpt_lazy_pid(const struct ckpt_lazy *);
/* Hold copies of its userfaultfds until it ends: every page in, they are
 * let go; broken, only after its done_cb (which must kill the tree).
 * Until then a fault on a missing page waits instead of reading zeros.
 * Take them once the restore handed them over (at the resume); -1 and
 * *cause if they cannot be had.  guard_init, the tree's init, if the
 * daemon gets its pages through ternd (post-copy): the guard process
 * holds copies too and kills that tree should ternd die first
 * (checkpoint/uffd-guard.h); 0 if the daemon needs no ternd. */
int		ckpt_lazy_hold_uffds(struct ckpt_lazy *, pid_t guard_init,
		    char **cause);
/* A restore held at pre-resume: its tree's init, as CRIU named it (0 if
 * it did not). */
pid_t		ckpt_hold_tree(const struct ckpt_hold *);
/* Kill it (if still running); no callback follows.  Once a callback
 * reported its exit (done_cb, or ready_cb with an error), the handle is
 * gone already. */
void		ckpt_lazy_free(struct ckpt_lazy *);
/* Give up on the CRIU call of every operation on instance name (not one
 * held at its commit point: release that instead).  A restore's CRIU is
 * killed now and its callback follows at once with why as its error.  A
 * dump's CRIU is asked to stop (criu_cancel): killed inside the
 * container, it may take the container with it.  It fails by itself at
 * once if the caller broke its page stream, else at its next
 * notification (post-dump, once its images are written); it is killed
 * only if stuck.  Its callback follows then, the container running (a
 * frozen cgroup is thawed).  Returns how many it cancelled. */
int		ckpt_cancel(const char *name, const char *why);
/* Drop a generation's images and MANIFEST (keep CRIU's logs): a lazy
 * dump's images lack the pages and must never be restored alone. */
void		ckpt_discard(const char *gen_dir);
/* NULL while CRIU holds; once it died or answered meanwhile, why
 * (releasing it with ok would commit to nothing). */
const char	*ckpt_hold_lost(const struct ckpt_hold *);
/* Newest generation with a MANIFEST in dir, 0 if none. */
uint64_t	ckpt_newest(const char *dir);
/* Checksum and fsync every file of gen_dir, then publish its MANIFEST
 * (images written by someone else than CRIU: a VM's saved state). */
int		ckpt_publish(const char *gen_dir, uint64_t *bytes, char **cause);
/* Check every file of gen_dir against its MANIFEST. */
int		ckpt_verify(const char *gen_dir, uint64_t *bytes, char **cause);

#endif
