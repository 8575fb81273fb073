/* CRIU through its RPC: `criu swrk FD` on one end of a SOCK_SEQPACKET
 * socketpair, protobuf-c messages from CRIU's own rpc.proto, driven from
 * the event loop (nothing here blocks for long).
 *
 * One struct criu is one swrk process.  Without keep_open it serves one
 * request and exits; with keep_open a chain of requests (pre-dumps, then
 * the dump) shares it.  Notifications (pre-dump, post-dump, ...) arrive
 * through the notify callback, whose answer CRIU waits for: post-dump is
 * the commit point of a migration (ack and the source dies; fail it and
 * the source resumes). */
#ifndef TERN_CHECKPOINT_CRIU_H
#define TERN_CHECKPOINT_CRIU_H

#include <uv.h>

#include "rpc.pb-c.h"

struct criu;

/* resp is NULL when error is set (CRIU exited, bad answer); otherwise the
 * response, freed after the call.  A response with success == 0 carries
 * CRIU's own reason, see criu_error(). */
typedef void (*criu_resp_cb)(struct criu *, const CriuResp *resp,
    const char *error, void *arg);
/* A notification (script is "pre-dump", "post-dump", ...): 0 acks it,
 * -1 makes CRIU fail the operation, CRIU_NOTIFY_LATER means the answer
 * comes later through criu_notify_reply (CRIU waits, the tree frozen). */
#define CRIU_NOTIFY_LATER	1
typedef int (*criu_notify_cb)(struct criu *, const char *script, void *arg);

/* Start `criu_path swrk 3`; pass_fds are inherited by criu as fd 4, 5, ...
 * (criu_passed_fd), for the page server's socket and the like.  Note that
 * CRIU resolves images_dir_fd and work_dir_fd in the CALLER's fd table
 * (/proc/<our pid>/fd/N): those are our own descriptors, not passed ones.
 * NULL and *cause on error. */
struct criu	*criu_spawn(uv_loop_t *, const char *criu_path,
		    const int *pass_fds, int npass, char **cause);
/* What the RPC cannot do (a lazy dump's page server on a socket we give
 * it, the lazy-pages daemon): run criu's command line with args (from
 * the action, "dump"), pass_fds as above.  It starts at once, as if
 * criu_call had been made: cb follows once with a response whose success
 * is the exit status (the reason is in its log); notifications come
 * through script, the file criu_action_script wrote.  script NULL: a
 * helper that only says it is ready (lazy-pages, page-server) gets no
 * script but --status-fd (a shell started for each action costs
 * milliseconds), and that is one "status-ready" notification whose
 * answer CRIU does not wait for. */
struct criu	*criu_run(uv_loop_t *, const char *criu_path,
		    const char *script, char *const *args, const int *pass_fds,
		    int npass, criu_resp_cb, criu_notify_cb, void *arg,
		    char **cause);
/* Write the action script criu_run needs into dir; its path. */
char		*criu_action_script(const char *dir, char **cause);
/* Its process id. */
pid_t		 criu_pid(const struct criu *);
/* The pid its last notification that named one named, or 0: a
 * restore names the root of the tree it forked (setup-namespaces,
 * post-restore), so its init is known even when CRIU dies after.  A CRIU
 * that died or was given up on before it named it: the init found in its
 * process group (our child, CRIU forks it as its sibling), killed. */
pid_t		 criu_notified_pid(const struct criu *);
/* 1 while a request can still go to it: a swrk started ahead may have
 * died, or closed its socket, before its request came. */
int		 criu_usable(const struct criu *);
/* SIGKILL it and its process group now (its exit follows). */
void		 criu_kill(struct criu *);
/* Give up on it now: SIGKILL it (and its process group: it runs in a
 * session of its own) and fail the pending request with why at once,
 * without waiting for its exit (a criu stuck in the kernel on a frozen
 * task may not die before its container is thawed: the caller thaws it
 * in the callback).  Every request does this by itself when it has not
 * finished within the deadline (criu_set_timeout); a restore's rollback
 * calls it. */
void		 criu_abort(struct criu *, const char *why);
/* Ask it to stop instead: a dump at work has its parasite code inside
 * the tasks, and SIGKILL there can take them with it.  Every notification
 * is refused from now on (CRIU then undoes its work and resumes the
 * tasks; the caller breaks a page transfer itself), and its answer comes
 * as usual.  If it neither runs nor waits for a CPU for 2 s (stuck in the
 * kernel on a frozen task), is stopped, or has not ended within 30 s (or
 * by its request's deadline, if sooner), criu_abort.  A dump that writes
 * its images locally notices only at post-dump: it is waited for.
 * A notification waiting for its answer is left to whoever holds it. */
void		 criu_cancel(struct criu *, const char *why);
/* 1 once criu_abort (or the deadline) gave up on it. */
int		 criu_aborted(const struct criu *);
/* The caller watches this criu's progress itself (a transfer of pages
 * whose length depends on the link): no deadline from now on. */
void		 criu_no_deadline(struct criu *);
/* The deadline of every request, in ms (criu_timeout_ms); 0: default. */
#define CRIU_DEFAULT_TIMEOUT_MS	120000
void		 criu_set_timeout(unsigned ms);
unsigned	 criu_timeout(void);
/* Send one request; cb follows exactly once unless this fails.  The
 * deadline runs while CRIU works, not while a notification waits for a
 * CRIU_NOTIFY_LATER answer (whoever holds it owns the timing). */
int		 criu_call(struct criu *, CriuReq *, criu_resp_cb,
		    criu_notify_cb, void *arg, char **cause);
/* Answer a notification deferred with CRIU_NOTIFY_LATER. */
void		 criu_notify_reply(struct criu *, int ok);
/* Close the socket, let criu exit (killed after a grace period) and free. */
void		 criu_close(struct criu *);
/* CRIU's reason for an unsuccessful response, as one line. */
char		*criu_error(const CriuResp *);
/* The fd number criu sees for pass_fds[i]. */
int		 criu_passed_fd(int i);

/* What a CRIU can do on this host. */
struct criu_features {
	int	 usable;	/* CHECK passed */
	int	 mem_track;	/* soft-dirty: iterative pre-copy */
	int	 lazy_pages;	/* userfaultfd: post-copy */
	char	 version[32];
	char	*problem;	/* why not usable, for the operator */
	char	*lazy_problem;	/* why no lazy pages though CRIU has them */
};

typedef void (*criu_probe_cb)(const struct criu_features *, void *arg);
/* VERSION, FEATURE_CHECK and CHECK, one swrk each; cb always follows.
 * CRIU's log goes to work_dir/probe.log, and its errors into the problem. */
void		 criu_probe(uv_loop_t *, const char *criu_path,
		    const char *work_dir, criu_probe_cb, void *arg);
/* The lines of a CRIU log that report errors (the last few), or NULL. */
char		*criu_log_errors(const char *path);
/* The ms CRIU's restorer spent reading pages into memory, from its -v4
 * restore log (the sum over its tasks), or -1 if the log has none. */
int64_t		 criu_log_pages_read_ms(const char *path);
void		 criu_features_clear(struct criu_features *);
/* "CRIU 4.1.1: lazy pages yes, memory tracking no" or the problem. */
char		*criu_features_describe(const struct criu_features *);

#endif
