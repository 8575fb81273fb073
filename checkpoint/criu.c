#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_MODULE "ckpt.criu"
#include "checkpoint/criu.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/spawn.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* CRIU's answers are small; a dump response with its stats is < 1 KiB. */
#define CRIU_MSG_MAX		(256u << 10)
#define CRIU_SWRK_FD		3
#define CRIU_KILL_GRACE_MS	5000
/* criu_cancel: how often it looks at the criu it asked to stop, and when
 * it gives up on it (neither on a CPU nor waiting for one for
 * CRIU_CANCEL_IDLE_MS: stuck in the kernel, or stopped; or not ended
 * after CRIU_CANCEL_MAX_MS, or its request's deadline if sooner). */
#define CRIU_CANCEL_TICK_MS	200
#define CRIU_CANCEL_IDLE_MS	2000
#define CRIU_CANCEL_MAX_MS	30000

/* A request CRIU has not answered by then is hung (a task in D state, a
 * stuck ptrace): kill it, so nothing waits forever on it.  criu_timeout_ms
 * in ternd.conf sets it. */
static unsigned	criu_deadline_ms = CRIU_DEFAULT_TIMEOUT_MS;

struct criu {
	uv_loop_t		*loop;
	char			*path;
	struct spawn		 proc;		/* its data is us */
	uv_poll_t		 poll;
	uv_timer_t		 timer;		/* kill grace after close */
	uv_timer_t		 deadline;	/* per request */
	uint64_t		 deadline_at;	/* ... when it fires (0: off) */
	int			 no_deadline;	/* the caller watches it */
	int			 aborted;	/* criu_abort: killed, answered */
	char			*cancel_why;	/* criu_cancel: asked to give up */
	uint64_t		 cancel_at;
	uint64_t		 cancel_cpu;	/* its CPU ticks at the last look */
	uint64_t		 cancel_moved;	/* ... when they last grew */
	char			 what[32];	/* "dump", "restore", ... */
	int			 notify_waiting;	/* CRIU waits for our answer */
	pid_t			 notified_pid;	/* a notification named it */
	int			 fd;
	int			 handles;	/* open uv handles */
	int			 exited;
	int64_t			 exit_status;
	int			 term_signal;
	int			 closing;
	int			 cli;		/* command line, not swrk */
	int			 answer_fd;	/* cli: our verdicts to the script */
	int			 status_only;	/* cli: --status-fd, no script */
	int			 status_seen;
	char			 line[128];	/* cli: a notification being read */
	size_t			 linelen;

	int			 pending;
	criu_resp_cb		 cb;
	criu_notify_cb		 notify;
	void			*arg;
};

int
criu_passed_fd(int i)
{
	return CRIU_SWRK_FD + 1 + i;
}

void
criu_set_timeout(unsigned ms)
{
	criu_deadline_ms = ms != 0 ? ms : CRIU_DEFAULT_TIMEOUT_MS;
}

unsigned
criu_timeout(void)
{
	return criu_deadline_ms;
}

/* What a request asks, for messages and fault points ("criu.dump"). */
static const char *
criu_req_name(CriuReqType type)
{
	switch (type) {
	case CRIU_REQ_TYPE__DUMP:		return "dump";
	case CRIU_REQ_TYPE__RESTORE:		return "restore";
	case CRIU_REQ_TYPE__CHECK:		return "check";
	case CRIU_REQ_TYPE__PRE_DUMP:		return "pre-dump";
	case CRIU_REQ_TYPE__PAGE_SERVER:	return "page-server";
	case CRIU_REQ_TYPE__CPUINFO_DUMP:	return "cpuinfo-dump";
	case CRIU_REQ_TYPE__CPUINFO_CHECK:	return "cpuinfo-check";
	case CRIU_REQ_TYPE__FEATURE_CHECK:	return "feature-check";
	case CRIU_REQ_TYPE__VERSION:		return "version";
	default:				return "request";
	}
}

static void	criu_deadline_passed(uv_timer_t *);

/* (Re)start the request's clock, unless the caller watches it instead. */
static void
criu_arm_deadline(struct criu *c)
{
	if (c->no_deadline || c->aborted || c->cancel_why != NULL)
		return;	/* (a cancel's watch has the timer) */
	c->deadline_at = now_ms() + criu_deadline_ms;
	uv_timer_start(&c->deadline, criu_deadline_passed, criu_deadline_ms, 0);
}

/* SIGKILL criu and what it started in its process group (its action
 * scripts, a restore's helpers).  It runs in a session of its own
 * (spawn_opts.setsid), so the group is never ternd's; and never a
 * container's either: a dump's tree is only ptraced, a restored tree
 * takes its own session and group before it runs. */
static void
criu_kill_group(struct criu *c)
{
	if (c->exited)
		return;
	if (kill(-c->proc.pid, SIGKILL) != 0)
		spawn_kill(&c->proc, SIGKILL);
}

/* A restore's CRIU that dies (or is given up on) between forking the
 * tree and the notification that names it leaves the tree's init behind:
 * our child (CRIU forks it as its own sibling), still in CRIU's process
 * group, and stuck without CRIU.  Name it, as a notification would, so
 * its caller reaps it; the group kill that follows reaches it.
 *
 * Still in the group, always: the init takes a session of its own
 * (restore_sid in criu/cr-restore.c) only once CRIU opened the stage
 * after setup-namespaces, and CRIU sends that notification, which names
 * the init, and waits for our answer before it opens the stage.  We read
 * a notification before we answer it, and that read sets notified_pid:
 * an init that left the group has been named. */
static int
criu_name_orphan(struct criu *c)
{
	pid_t	orphan;

	if (c->cli || c->notified_pid > 0 ||
	    (orphan = proc_child_in_group(c->proc.pid)) <= 0)
		return 0;
	log_warnx("criu %s %d left the tree it forked unnamed (init %ld): "
	    "killing it", c->what, c->proc.pid, (long)orphan);
	c->notified_pid = orphan;
	return 1;
}

/* A fault point at a request's start (tests): "stall" stops criu, so it
 * never answers, as a criu stuck in the kernel would not. */
static void
criu_fault(struct criu *c)
{
	char	name[64];

	snprintf(name, sizeof name, "criu.%s", c->what);
	switch (fault_hit(name)) {
	case FAULT_STALL:
		kill(c->proc.pid, SIGSTOP);
		break;
	case FAULT_KILL:
		criu_kill_group(c);
		break;
	default:
		break;
	}
}

/* A fault point at each notification (tests), "criu.notify.SCRIPT":
 * "kill" SIGKILLs criu alone, as if it died just before it sent this
 * notification, which is dropped unread (a restore's tree then lives on
 * unnamed: criu_name_orphan).  1 if it fired. */
static int
criu_notify_lost(struct criu *c, const char *script)
{
	char	name[64];

	snprintf(name, sizeof name, "criu.notify.%s", script);
	if (fault_hit(name) != FAULT_KILL)
		return 0;
	spawn_kill(&c->proc, SIGKILL);
	return 1;
}

static void
criu_handle_closed(uv_handle_t *h)
{
	struct criu	*c = h->data;

	if (--c->handles == 0) {
		free(c->cancel_why);
		free(c->path);
		free(c);
	}
}

static void
criu_exit_reason(struct criu *c, char *buf, size_t len)
{
	if (!c->exited)
		snprintf(buf, len, "criu closed its socket");
	else if (c->term_signal != 0)
		snprintf(buf, len, "criu was killed by signal %d", c->term_signal);
	else
		snprintf(buf, len, "criu exited with status %lld",
		    (long long)c->exit_status);
}

/* Deliver an error to the pending request, once. */
static void
criu_fail(struct criu *c, const char *error)
{
	criu_resp_cb	 cb = c->cb;

	if (!c->pending)
		return;
	c->pending = 0;
	c->cb = NULL;
	cb(c, NULL, error, c->arg);
}

static void	criu_on_readable(uv_poll_t *, int, int);
static void	criu_stop_reading(struct criu *);

/* A criu asked to stop is refused every notification: CRIU then undoes
 * its work itself (the parasite leaves, the tasks resume). */
static int
criu_notify_cancelled(struct criu *c, const char *script)
{
	if (c->cancel_why == NULL)
		return 0;
	log_debug("criu %s (pid %d): %s refused: %s", c->what, c->proc.pid,
	    script, c->cancel_why);
	return 1;
}

static void
criu_on_exit(struct spawn *p, int64_t status, int term_signal)
{
	struct criu	*c = p->data;
	char		 why[128];

	c->exited = 1;
	c->exit_status = status;
	c->term_signal = term_signal;
	uv_timer_stop(&c->deadline);
	log_debug("criu %s %d exited (status %lld, signal %d)",
	    c->cli ? c->what : "swrk", p->pid, (long long)status, term_signal);
	spawn_close(&c->proc, criu_handle_closed);
	if (c->closing) {
		uv_timer_stop(&c->timer);
		if (!uv_is_closing((uv_handle_t *)&c->timer))
			uv_close((uv_handle_t *)&c->timer, criu_handle_closed);
		return;
	}
	if (c->cli && c->pending && term_signal == 0) {
		/* The command line answers with its exit status; the reason
		 * is in its log. */
		CriuResp	resp = CRIU_RESP__INIT;
		criu_resp_cb	cb = c->cb;

		c->pending = 0;
		c->cb = NULL;
		resp.success = status == 0;
		cb(c, &resp, NULL, c->arg);
		return;
	}
	/* Its answer, if any, is in the socket already: read it first.
	 * Then do not wait for the socket to close: what a restore forked
	 * (its cgroup daemon, the restored tree) shares it and may outlive
	 * criu killed in the middle. */
	if (c->pending && c->fd != -1 && !c->cli)
		criu_on_readable(&c->poll, 0, UV_READABLE);
	/* Its group outlives it while our unreaped child is in it. */
	if (c->pending && criu_name_orphan(c))
		kill(-p->pid, SIGKILL);
	if (c->pending) {
		criu_stop_reading(c);
		criu_exit_reason(c, why, sizeof why);
		criu_fail(c, why);
	}
}

static int
criu_send(struct criu *c, const CriuReq *req, char **cause)
{
	uint8_t	*buf;
	size_t	 len;
	ssize_t	 n;
	int	 saved;

	len = criu_req__get_packed_size(req);
	buf = xmalloc(len);
	criu_req__pack(req, buf);
	n = send(c->fd, buf, len, MSG_NOSIGNAL);
	saved = errno;
	free(buf);
	if (n != (ssize_t)len) {
		set_cause(cause, "cannot send to criu: %s", n < 0 ?
		    strerror(saved) : "short write");
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	return 0;
}

static void
criu_stop_reading(struct criu *c)
{
	if (c->fd == -1)
		return;
	uv_poll_stop(&c->poll);
	uv_close((uv_handle_t *)&c->poll, criu_handle_closed);
	close(c->fd);
	c->fd = -1;
}

static void
criu_on_readable(uv_poll_t *h, int status, int events)
{
	struct criu	*c = h->data;
	CriuResp	*resp;
	criu_resp_cb	 cb;
	uint8_t		*buf;
	ssize_t		 n;
	char		 why[128];
	int		 rc;

	buf = xmalloc(CRIU_MSG_MAX);
	n = recv(c->fd, buf, CRIU_MSG_MAX, MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		free(buf);
		return;
	}
	if (n <= 0) {
		free(buf);
		criu_stop_reading(c);
		if (c->pending && c->exited) {
			criu_exit_reason(c, why, sizeof why);
			criu_fail(c, why);
		}
		/* else criu_on_exit reports it */
		return;
	}
	if ((size_t)n > CRIU_MSG_MAX) {
		free(buf);
		criu_stop_reading(c);
		criu_fail(c, "criu sent an oversized message");
		return;
	}
	resp = criu_resp__unpack(NULL, (size_t)n, buf);
	free(buf);
	if (resp == NULL) {
		criu_stop_reading(c);
		criu_fail(c, "criu sent a message that does not decode");
		return;
	}
	if (resp->type == CRIU_REQ_TYPE__NOTIFY) {
		const char *script = resp->notify != NULL &&
		    resp->notify->script != NULL ? resp->notify->script : "?";

		if (criu_notify_lost(c, script)) {
			criu_resp__free_unpacked(resp, NULL);
			return;
		}
		if (resp->notify != NULL && resp->notify->has_pid &&
		    resp->notify->pid > 0)
			c->notified_pid = resp->notify->pid;

		rc = criu_notify_cancelled(c, script) ? -1 : c->notify != NULL ?
		    c->notify(c, script, c->arg) : 0;
		criu_resp__free_unpacked(resp, NULL);
		if (rc == CRIU_NOTIFY_LATER) {
			/* Whoever holds it owns the timing now. */
			c->notify_waiting = 1;
			uv_timer_stop(&c->deadline);
			return;
		}
		criu_notify_reply(c, rc == 0);
		return;
	}
	if (!c->pending) {
		log_warnx("criu answered %d with no request pending", resp->type);
		criu_resp__free_unpacked(resp, NULL);
		return;
	}
	cb = c->cb;
	c->pending = 0;
	c->cb = NULL;
	uv_timer_stop(&c->deadline);
	cb(c, resp, NULL, c->arg);
	criu_resp__free_unpacked(resp, NULL);
}

/* criu's descriptors: /dev/null on 0-2, fd3 on 3, pass_fds from 4; the
 * count. */
static int
criu_fds(int *fds, int fd3, const int *pass_fds, int npass)
{
	int	i;

	for (i = 0; i < CRIU_SWRK_FD; i++)
		fds[i] = -1;
	fds[CRIU_SWRK_FD] = fd3;
	for (i = 0; i < npass; i++)
		fds[criu_passed_fd(i)] = pass_fds[i];
	return criu_passed_fd(npass);
}

/* Spawned: watch c->fd and arm the timers. */
static void
criu_watch(struct criu *c, uv_loop_t *loop, uv_poll_cb readable)
{
	c->handles = 4;
	uv_poll_init(loop, &c->poll, c->fd);
	c->poll.data = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_init(loop, &c->deadline);
	c->deadline.data = c;
	uv_poll_start(&c->poll, UV_READABLE, readable);
}

/* What the operator can do about a CRIU that does not start. */
static void
criu_start_failed(char **cause)
{
	char	*why;

	if (cause == NULL || *cause == NULL)
		return;
	why = *cause;
	*cause = NULL;
	set_cause(cause, "%s (criu_path in ternd.conf names the CRIU ternd "
	    "runs; ./quickstart deps installs one)", why);
	free(why);
}

struct criu *
criu_spawn(uv_loop_t *loop, const char *criu_path, const int *pass_fds,
    int npass, char **cause)
{
	struct criu		*c;
	struct spawn_opts	 opts;
	char			*args[4], fdarg[8];
	int			 fds[16], sv[2];

	if (npass < 0 || npass > 16 - CRIU_SWRK_FD - 1) {
		set_cause(cause, "too many descriptors for criu");
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		return NULL;
	}
	memset(&opts, 0, sizeof opts);
	snprintf(fdarg, sizeof fdarg, "%d", CRIU_SWRK_FD);
	args[0] = (char *)criu_path;
	args[1] = "swrk";
	args[2] = fdarg;
	args[3] = NULL;
	opts.file = criu_path;
	opts.args = args;
	opts.fds = fds;
	opts.nfds = criu_fds(fds, sv[1], pass_fds, npass);
	opts.setsid = 1;	/* its own group: criu_kill_group */

	c = xcalloc(1, sizeof *c);
	if (spawn_start(loop, &c->proc, &opts, criu_on_exit, cause) != 0) {
		criu_start_failed(cause);
		close(sv[0]);
		close(sv[1]);
		free(c);
		return NULL;
	}
	close(sv[1]);
	c->loop = loop;
	c->path = xstrdup(criu_path);
	c->fd = sv[0];
	c->answer_fd = -1;
	c->proc.data = c;
	criu_watch(c, loop, criu_on_readable);
	log_debug("criu swrk started as pid %d", c->proc.pid);
	return c;
}

static char	*criu_lazy_problem(void);

/* cli: the action script wrote "ACTION\n" lines into our pipe. */
static void
criu_cli_on_readable(uv_poll_t *h, int status, int events)
{
	struct criu	*c = h->data;
	ssize_t		 n;
	char		*nl;
	int		 rc;

	n = read(c->fd, c->line + c->linelen, sizeof c->line - 1 - c->linelen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		criu_stop_reading(c);	/* criu exited: criu_on_exit says */
		return;
	}
	if (c->status_only) {
		/* One byte, then CRIU closes it; nothing to answer. */
		if (!c->status_seen) {
			c->status_seen = 1;
			if (c->notify != NULL)
				c->notify(c, "status-ready", c->arg);
		}
		return;
	}
	c->linelen += (size_t)n;
	c->line[c->linelen] = '\0';
	if ((nl = strchr(c->line, '\n')) == NULL) {
		if (c->linelen == sizeof c->line - 1) {
			log_warnx("criu pid %d: garbled notification", c->proc.pid);
			c->linelen = 0;
		}
		return;
	}
	*nl = '\0';
	/* One notification at a time: the script waits for our verdict. */
	c->linelen = 0;
	rc = criu_notify_cancelled(c, c->line) ? -1 : c->notify != NULL ?
	    c->notify(c, c->line, c->arg) : 0;
	if (rc == CRIU_NOTIFY_LATER) {
		c->notify_waiting = 1;
		uv_timer_stop(&c->deadline);
		return;
	}
	criu_notify_reply(c, rc == 0);
}

struct criu *
criu_run(uv_loop_t *loop, const char *criu_path, const char *script,
    char *const *args, const int *pass_fds, int npass, criu_resp_cb cb,
    criu_notify_cb notify, void *arg, char **cause)
{
	extern char		**environ;
	struct criu		*c;
	struct spawn_opts	 opts;
	char			**argv, **env, *note, statusfd[8];
	int			 fds[16], ask[2], answer[2], rc, i, nargs, nenv;

	if (npass < 0 || npass > 16 - CRIU_SWRK_FD - 2) {
		set_cause(cause, "too many descriptors for criu");
		return NULL;
	}
	if (pipe2(ask, O_CLOEXEC) != 0) {
		set_cause(cause, "pipe: %s", strerror(errno));
		return NULL;
	}
	answer[0] = answer[1] = -1;
	if (script != NULL && pipe2(answer, O_CLOEXEC) != 0) {
		set_cause(cause, "pipe: %s", strerror(errno));
		close(ask[0]);
		close(ask[1]);
		return NULL;
	}
	fcntl(ask[0], F_SETFL, O_NONBLOCK);
	memset(&opts, 0, sizeof opts);
	/* The script reopens the pipes through /proc/<criu>/fd: CRIU closes
	 * what its children inherit. */
	opts.nfds = criu_fds(fds, ask[1], pass_fds, npass);
	if (script != NULL)
		fds[opts.nfds++] = answer[0];
	opts.fds = fds;

	for (nargs = 0; args[nargs] != NULL; nargs++)
		;
	argv = xcalloc((size_t)nargs + 4, sizeof *argv);
	argv[0] = (char *)criu_path;
	for (i = 0; i < nargs; i++)
		argv[i + 1] = args[i];
	snprintf(statusfd, sizeof statusfd, "%d", CRIU_SWRK_FD);
	argv[nargs + 1] = script != NULL ? "--action-script" : "--status-fd";
	argv[nargs + 2] = script != NULL ? (char *)script : statusfd;
	/* The script finds our pipes through its environment. */
	env = NULL;
	note = NULL;
	if (script != NULL) {
		for (nenv = 0; environ[nenv] != NULL; nenv++)
			;
		env = xcalloc((size_t)nenv + 2, sizeof *env);
		for (i = 0; i < nenv; i++)
			env[i] = environ[i];
		xasprintf(&note, "TERN_CRIU_NOTIFY=%d %d", CRIU_SWRK_FD,
		    criu_passed_fd(npass));
		env[nenv] = note;
	}
	opts.file = criu_path;
	opts.args = argv;
	opts.env = env;
	opts.setsid = 1;

	c = xcalloc(1, sizeof *c);
	rc = spawn_start(loop, &c->proc, &opts, criu_on_exit, cause);
	close(ask[1]);
	if (answer[0] != -1)
		close(answer[0]);
	free(argv);
	free(env);
	free(note);
	if (rc != 0) {
		criu_start_failed(cause);
		close(ask[0]);
		if (answer[1] != -1)
			close(answer[1]);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->cli = 1;
	c->status_only = script == NULL;
	c->path = xstrdup(criu_path);
	c->fd = ask[0];
	c->answer_fd = answer[1];
	c->proc.data = c;
	criu_watch(c, loop, criu_cli_on_readable);
	c->pending = 1;
	c->cb = cb;
	c->notify = notify;
	c->arg = arg;
	snprintf(c->what, sizeof c->what, "%s", args[0]);
	criu_arm_deadline(c);
	log_debug("criu %s started as pid %d", args[0], c->proc.pid);
	criu_fault(c);
	return c;
}

/* The action script CRIU runs for criu_run: it tells us the action and
 * exits with our verdict (non-zero makes CRIU fail or resume). */
static const char criu_action_text[] =
    "#!/bin/sh\n"
    "# Written by ternd: CRIU runs it at each action of a command-line\n"
    "# operation; ternd answers ok or no.\n"
    "set -- $TERN_CRIU_NOTIFY\n"
    "[ $# -eq 2 ] || exit 0\n"
    "echo \"$CRTOOLS_SCRIPT_ACTION\" >/proc/$PPID/fd/$1 || exit 1\n"
    "read -r verdict </proc/$PPID/fd/$2 || exit 1\n"
    "[ \"$verdict\" = ok ]\n";

char *
criu_action_script(const char *dir, char **cause)
{
	char	*path, *tmp;
	int	 fd;

	xasprintf(&path, "%s/criu-action", dir);
	xasprintf(&tmp, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0700)) == -1 ||
	    write(fd, criu_action_text, sizeof criu_action_text - 1) !=
	    (ssize_t)(sizeof criu_action_text - 1) ||
	    close(fd) != 0 || rename(tmp, path) != 0) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		free(path);
		return NULL;
	}
	free(tmp);
	return path;
}

int
criu_usable(const struct criu *c)
{
	return !c->exited && c->fd != -1 && !c->aborted && !c->closing &&
	    !c->pending;
}

pid_t
criu_pid(const struct criu *c)
{
	return c->proc.pid;
}

pid_t
criu_notified_pid(const struct criu *c)
{
	return c->notified_pid;
}

void
criu_kill(struct criu *c)
{
	if (c != NULL)
		criu_kill_group(c);
}

int
criu_aborted(const struct criu *c)
{
	return c->aborted;
}

void
criu_no_deadline(struct criu *c)
{
	c->no_deadline = 1;
	c->deadline_at = 0;
	if (c->cancel_why == NULL)
		uv_timer_stop(&c->deadline);
}

/* How long process pid has run on a CPU (UINT64_MAX: gone), in ns
 * (schedstat) or else in clock ticks; and its state letter ('?'). */
static uint64_t
criu_cpu_time(pid_t pid, char *state)
{
	char			 path[64], *text;
	unsigned long long	 ns;
	uint64_t		 ticks;
	int			 ok;

	*state = '?';
	if (proc_stat(pid, state, NULL, &ticks) != 0)
		return UINT64_MAX;
	snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
	if ((text = read_file_bounded(path, 256, NULL, NULL)) == NULL)
		return ticks;	/* no CONFIG_SCHED_INFO */
	ok = sscanf(text, "%llu", &ns) == 1;
	free(text);
	return ok ? ns : ticks;
}

static void
criu_cancel_tick(uv_timer_t *t)
{
	struct criu	*c = t->data;
	uint64_t	 cpu, now = now_ms(), end;
	char		 state, *why, what[80];

	if (c->exited || !c->pending || c->aborted) {
		uv_timer_stop(t);
		return;
	}
	cpu = criu_cpu_time(c->proc.pid, &state);
	/* At work, runnable (a busy host), or waiting on us. */
	if (c->notify_waiting || cpu != c->cancel_cpu || state == 'R') {
		c->cancel_cpu = cpu;
		c->cancel_moved = now;
	}
	end = c->cancel_at + CRIU_CANCEL_MAX_MS;
	if (c->deadline_at != 0 && c->deadline_at < end)
		end = c->deadline_at;
	if (state == 'T' || state == 't')
		snprintf(what, sizeof what, "is stopped");
	else if (now - c->cancel_moved >= CRIU_CANCEL_IDLE_MS)
		snprintf(what, sizeof what, "has not run for %d ms (state %c)",
		    CRIU_CANCEL_IDLE_MS, state);
	else if (now >= end)
		snprintf(what, sizeof what, "had not ended %" PRIu64 " ms "
		    "later", now - c->cancel_at);
	else
		return;
	xasprintf(&why, "%s; criu %s (pid %d), asked to stop, %s: killed",
	    c->cancel_why, c->what, c->proc.pid, what);
	log_warnx("%s", why);
	criu_abort(c, why);
	free(why);
}

void
criu_cancel(struct criu *c, const char *why)
{
	char	state;

	if (c == NULL || c->aborted || c->closing || c->exited ||
	    !c->pending || c->cancel_why != NULL)
		return;
	c->cancel_why = xstrdup(why);
	c->cancel_at = c->cancel_moved = now_ms();
	c->cancel_cpu = criu_cpu_time(c->proc.pid, &state);
	/* The request's deadline gives way to the watch. */
	uv_timer_start(&c->deadline, criu_cancel_tick, CRIU_CANCEL_TICK_MS,
	    CRIU_CANCEL_TICK_MS);
}

void
criu_abort(struct criu *c, const char *why)
{
	if (c == NULL || c->aborted || c->closing)
		return;
	c->aborted = 1;
	criu_name_orphan(c);
	/* Kill first: with SIGKILL pending it runs no more of its own code,
	 * so the caller may thaw the container at once (criu stuck in the
	 * kernel on a frozen task may need that thaw to die at all). */
	criu_kill_group(c);
	uv_timer_stop(&c->deadline);
	c->notify_waiting = 0;
	criu_stop_reading(c);
	/* A criu that never dies must not keep ternd's loop alive. */
	spawn_unref(&c->proc);
	uv_unref((uv_handle_t *)&c->timer);
	/* Answered now, not at its exit: that may never come. */
	criu_fail(c, why);
}


void
criu_notify_reply(struct criu *c, int ok)
{
	CriuReq	 ack = CRIU_REQ__INIT;
	char	*cause = NULL;

	c->notify_waiting = 0;
	if (c->closing || c->fd == -1)
		return;
	log_debug("criu notify: %s", ok ? "ack" : "fail");
	if (c->pending)
		criu_arm_deadline(c);
	if (c->cli) {
		/* The script waits for one line; a dead script is CRIU's
		 * failure to report, through its exit. */
		if (c->answer_fd != -1 &&
		    write(c->answer_fd, ok ? "ok\n" : "no\n", 3) != 3)
			log_debug("criu notify: %s", strerror(errno));
		return;
	}
	ack.type = CRIU_REQ_TYPE__NOTIFY;
	ack.has_notify_success = 1;
	ack.notify_success = ok != 0;
	if (criu_send(c, &ack, &cause) != 0) {
		criu_fail(c, cause);
		free(cause);
	}
}

static void
criu_deadline_passed(uv_timer_t *t)
{
	struct criu	*c = t->data;
	char		*why;

	if (!c->pending || c->exited)
		return;
	xasprintf(&why, "criu %s (pid %d) did not finish within %u ms "
	    "(criu_timeout_ms) and was killed", c->what, c->proc.pid,
	    criu_deadline_ms);
	log_warnx("%s", why);
	criu_abort(c, why);
	free(why);
}

int
criu_call(struct criu *c, CriuReq *req, criu_resp_cb cb,
    criu_notify_cb notify, void *arg, char **cause)
{
	if (c->pending || c->closing || c->aborted || c->fd == -1) {
		set_cause(cause, "criu session is %s", c->pending ? "busy" :
		    "closed");
		return -1;
	}
	if (criu_send(c, req, cause) != 0) {
		if (errno != EPIPE && errno != ECONNRESET)
			return -1;
		/* criu is already gone: its exit status says more than EPIPE,
		 * and arrives through cb like any other answer. */
		if (cause != NULL) {
			free(*cause);
			*cause = NULL;
		}
	}
	c->pending = 1;
	c->cb = cb;
	c->notify = notify;
	c->arg = arg;
	snprintf(c->what, sizeof c->what, "%s", criu_req_name(req->type));
	criu_arm_deadline(c);
	criu_fault(c);
	return 0;
}

static void
criu_kill_timeout(uv_timer_t *t)
{
	struct criu	*c = t->data;

	if (!c->exited) {
		log_warnx("criu pid %d did not exit; killing it", c->proc.pid);
		spawn_kill(&c->proc, SIGKILL);
	}
}

void
criu_close(struct criu *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = 1;
	c->pending = 0;
	uv_timer_stop(&c->deadline);
	uv_close((uv_handle_t *)&c->deadline, criu_handle_closed);
	criu_stop_reading(c);
	if (c->answer_fd != -1) {
		close(c->answer_fd);
		c->answer_fd = -1;
	}
	if (c->exited)
		uv_close((uv_handle_t *)&c->timer, criu_handle_closed);
	else
		uv_timer_start(&c->timer, criu_kill_timeout, CRIU_KILL_GRACE_MS, 0);
}

/* One line: CRIU's messages end with newlines. */
static void
criu_one_line(char *s)
{
	size_t	len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		s[--len] = '\0';
	for (; *s != '\0'; s++)
		if (*s == '\n')
			*s = ' ';
}

/* Said on every run where root lacks CAP_SYS_RESOURCE, and harmless: never
 * the reason anything failed. */
static int
criu_noise(const char *line)
{
	return strstr(line, "Can't setup RLIMIT_NOFILE") != NULL;
}

char *
criu_error(const CriuResp *resp)
{
	const char	*msg = resp->cr_errmsg, *nl;
	char		*s;

	/* cr_errmsg is CRIU's first error: skip the known noise. */
	while (msg != NULL && criu_noise(msg) && (nl = strchr(msg, '\n')) != NULL)
		msg = nl + 1;
	if (msg != NULL && (msg[0] == '\0' || criu_noise(msg)))
		msg = NULL;
	if (msg != NULL)
		xasprintf(&s, "%s%s%s", msg,
		    resp->has_cr_errno ? ": " : "",
		    resp->has_cr_errno ? strerror(resp->cr_errno) : "");
	else if (resp->has_cr_errno)
		xasprintf(&s, "criu failed: %s", strerror(resp->cr_errno));
	else
		s = xstrdup("criu failed without saying why (see its log)");
	criu_one_line(s);
	return s;
}

/* --- probing what CRIU can do here --------------------------------------- */

enum probe_step {
	PROBE_VERSION,
	PROBE_FEATURES,
	PROBE_CHECK,
	PROBE_DONE,
};

struct criu_probe {
	uv_loop_t		*loop;
	char			*path;
	char			*work_dir;
	int			 dir_fd;
	enum probe_step		 step;
	struct criu_features	 f;
	criu_probe_cb		 cb;
	void			*arg;
};

static void	criu_probe_next(struct criu_probe *);

static void
criu_probe_finish(struct criu_probe *p, const char *problem)
{
	if (problem != NULL) {
		p->f.usable = 0;
		free(p->f.problem);
		p->f.problem = xstrdup(problem);
	}
	p->cb(&p->f, p->arg);
	criu_features_clear(&p->f);
	if (p->dir_fd != -1)
		close(p->dir_fd);
	free(p->work_dir);
	free(p->path);
	free(p);
}

static void
criu_probe_answer(struct criu *c, const CriuResp *resp, const char *error,
    void *arg)
{
	struct criu_probe	*p = arg;
	char			*why = NULL, *problem = NULL;

	criu_close(c);
	if (resp == NULL) {
		xasprintf(&problem, "%s swrk: %s", p->path, error);
		criu_probe_finish(p, problem);
		free(problem);
		return;
	}
	switch (p->step) {
	case PROBE_VERSION:
		if (resp->success && resp->version != NULL)
			snprintf(p->f.version, sizeof p->f.version, "%d.%d%s%.0d",
			    resp->version->major_number,
			    resp->version->minor_number,
			    resp->version->has_sublevel ? "." : "",
			    resp->version->has_sublevel ?
			    resp->version->sublevel : 0);
		break;
	case PROBE_FEATURES:
		if (resp->success && resp->features != NULL) {
			p->f.mem_track = resp->features->has_mem_track &&
			    resp->features->mem_track;
			p->f.lazy_pages = resp->features->has_lazy_pages &&
			    resp->features->lazy_pages;
			if (p->f.lazy_pages &&
			    (p->f.lazy_problem = criu_lazy_problem()) != NULL)
				p->f.lazy_pages = 0;
		}
		break;
	case PROBE_CHECK:
		if (!resp->success) {
			char *log, *errors;

			why = criu_error(resp);
			xasprintf(&log, "%s/probe.log", p->work_dir);
			errors = criu_log_errors(log);
			xasprintf(&problem, "criu check failed: %s%s%s (log %s)",
			    why, errors != NULL ? ": " : "",
			    errors != NULL ? errors : "", log);
			free(errors);
			free(log);
			free(why);
			criu_probe_finish(p, problem);
			free(problem);
			return;
		}
		p->f.usable = 1;
		break;
	case PROBE_DONE:
		break;
	}
	p->step++;
	criu_probe_next(p);
}

static void
criu_probe_next(struct criu_probe *p)
{
	CriuReq		 req = CRIU_REQ__INIT;
	CriuOpts	 opts = CRIU_OPTS__INIT;
	CriuFeatures	 want = CRIU_FEATURES__INIT;
	struct criu	*c;
	char		*cause = NULL;

	if (p->step == PROBE_DONE) {
		criu_probe_finish(p, NULL);
		return;
	}
	if ((c = criu_spawn(p->loop, p->path, NULL, 0, &cause)) == NULL) {
		criu_probe_finish(p, cause);
		free(cause);
		return;
	}
	switch (p->step) {
	case PROBE_VERSION:
		req.type = CRIU_REQ_TYPE__VERSION;
		break;
	case PROBE_FEATURES:
		req.type = CRIU_REQ_TYPE__FEATURE_CHECK;
		want.has_mem_track = want.mem_track = 1;
		want.has_lazy_pages = want.lazy_pages = 1;
		req.features = &want;
		break;
	default:
		/* CHECK reads its options (where to log) like a dump would. */
		req.type = CRIU_REQ_TYPE__CHECK;
		opts.images_dir_fd = p->dir_fd;	/* ours: CRIU opens it via /proc */
		opts.log_file = "probe.log";
		opts.has_log_level = 1;
		opts.log_level = 4;
		req.opts = &opts;
		break;
	}
	if (criu_call(c, &req, criu_probe_answer, NULL, p, &cause) != 0) {
		criu_close(c);
		criu_probe_finish(p, cause);
		free(cause);
	}
}

void
criu_probe(uv_loop_t *loop, const char *criu_path, const char *work_dir,
    criu_probe_cb cb, void *arg)
{
	struct criu_probe	*p;
	char			*problem;

	p = xcalloc(1, sizeof *p);
	p->loop = loop;
	p->path = xstrdup(criu_path);
	p->work_dir = xstrdup(work_dir);
	p->cb = cb;
	p->arg = arg;
	p->dir_fd = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dir_fd == -1) {
		xasprintf(&problem, "%s: %s", work_dir, strerror(errno));
		criu_probe_finish(p, problem);
		free(problem);
		return;
	}
	if (access(criu_path, X_OK) != 0) {
		xasprintf(&problem, "%s: %s (run scripts/install-criu, or set "
		    "criu_path)", criu_path, strerror(errno));
		criu_probe_finish(p, problem);
		free(problem);
		return;
	}
	criu_probe_next(p);
}

char *
criu_log_errors(const char *path)
{
	FILE	*fp;
	char	 line[512], *kept[3] = { NULL, NULL, NULL }, *all = NULL, *next;
	size_t	 n = 0, i, len;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (strstr(line, "Error") == NULL)
			continue;
		if (criu_noise(line))
			continue;
		len = strcspn(line, "\n");
		line[len] = '\0';
		free(kept[n % 3]);
		kept[n % 3] = xstrdup(line);
		n++;
	}
	fclose(fp);
	for (i = n > 3 ? n - 3 : 0; i < n; i++) {
		if (all == NULL)
			all = xstrdup(kept[i % 3]);
		else {
			xasprintf(&next, "%s | %s", all, kept[i % 3]);
			free(all);
			all = next;
		}
	}
	for (i = 0; i < 3; i++)
		free(kept[i]);
	return all;
}

/* The restorer's page reads in a -v4 restore log: "(SECS) pie: PID:
 * Preadv ..." then "(SECS) pie: PID: `- returned N" (CRIU 4.x,
 * criu/pie/restorer.c).  Each task reads its own; they may interleave. */
#define CRIU_LOG_READERS	64

int64_t
criu_log_pages_read_ms(const char *path)
{
	FILE	*fp;
	char	 line[512], what[16];
	double	 t, start[CRIU_LOG_READERS], total = 0;
	int	 pid[CRIU_LOG_READERS], n = 0, i, p, found = 0;

	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (sscanf(line, "(%lf) pie: %d: %15s", &t, &p, what) != 3)
			continue;
		for (i = 0; i < n && pid[i] != p; i++)
			;
		if (strcmp(what, "Preadv") == 0) {
			if (i == n && n == CRIU_LOG_READERS)
				continue;
			if (i == n)
				pid[n++] = p;
			start[i] = t;
		} else if (strcmp(what, "`-") == 0 &&
		    strstr(line, "`- returned") != NULL && i < n &&
		    start[i] >= 0) {
			total += t - start[i];
			start[i] = -1;
			found = 1;
		}
	}
	fclose(fp);
	return found ? (int64_t)(total * 1000 + 0.5) : -1;
}

void
criu_features_clear(struct criu_features *f)
{
	free(f->problem);
	free(f->lazy_problem);
	memset(f, 0, sizeof *f);
}

/* CRIU's lazy page server sizes a pipe to 4 MiB (PIPE_MAX_SIZE pages) and
 * ignores the failure, then fails every page request.  Without
 * CAP_SYS_RESOURCE that needs fs.pipe-max-size >= 4 MiB. */
#define CRIU_LAZY_PIPE_BYTES	(4u << 20)
#define CAP_SYS_RESOURCE_BIT	24

static char *
criu_lazy_problem(void)
{
	FILE			*fp;
	char			 line[256], *s;
	unsigned long long	 eff = 0, max = 0;

	if ((fp = fopen("/proc/self/status", "r")) != NULL) {
		while (fgets(line, sizeof line, fp) != NULL)
			if (sscanf(line, "CapEff: %llx", &eff) == 1)
				break;
		fclose(fp);
	}
	if (eff & (1ULL << CAP_SYS_RESOURCE_BIT))
		return NULL;
	if ((fp = fopen("/proc/sys/fs/pipe-max-size", "r")) != NULL) {
		if (fscanf(fp, "%llu", &max) != 1)
			max = 0;
		fclose(fp);
	}
	if (max >= CRIU_LAZY_PIPE_BYTES)
		return NULL;
	xasprintf(&s, "fs.pipe-max-size is %llu and there is no "
	    "CAP_SYS_RESOURCE: CRIU's page server needs %u; sysctl -w "
	    "fs.pipe-max-size=%u", max, CRIU_LAZY_PIPE_BYTES,
	    CRIU_LAZY_PIPE_BYTES);
	return s;
}

char *
criu_features_describe(const struct criu_features *f)
{
	char	*s;

	if (!f->usable)
		xasprintf(&s, "no container support: %s", f->problem != NULL ?
		    f->problem : "criu unusable");
	else
		xasprintf(&s, "CRIU %s: lazy pages (post-copy) %s%s%s%s, memory "
		    "tracking (pre-copy) %s", f->version[0] != '\0' ?
		    f->version : "?", f->lazy_pages ? "yes" : "no",
		    f->lazy_problem != NULL ? " (" : "",
		    f->lazy_problem != NULL ? f->lazy_problem : "",
		    f->lazy_problem != NULL ? ")" : "",
		    f->mem_track ? "yes" : "no (kernel without soft-dirty)");
	return s;
}
