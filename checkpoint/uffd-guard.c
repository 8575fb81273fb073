#include "config.h"

#include <sys/pidfd.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "ckpt"
#include "checkpoint/uffd-guard.h"
#include "daemon/log.h"
#include "daemon/spawn.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* The guard's end of the socket. */
#define GUARD_FD	3

/* What ternd tells the guard (nothing comes back). */
struct guard_msg {
	uint64_t	ticket;
	uint32_t	op;
	uint32_t	unused;
};
#define GUARD_HOLD	1	/* fds: the init's pidfd, its userfaultfds */
#define GUARD_LET_GO	2
/* Room for the descriptors one message carries, aligned for cmsghdr. */
union guard_ctl {
	struct cmsghdr	hdr;
	char		buf[CMSG_SPACE(sizeof(int) * (1 + UFFD_GUARD_UFFD_MAX))];
};

/* --- ternd's side ---------------------------------------------------------- */

static struct {
	uv_loop_t	*loop;
	struct spawn	 proc;
	int		 up;		/* proc is open (until its close) */
	int		 sock;		/* our end, -1 if none */
	int		 closing;	/* ternd stops: no restart */
	uint64_t	 next_ticket;
} guard = { .sock = -1 };

static void
uffd_guard_closed(uv_handle_t *h)
{
	char	*cause = NULL;

	(void)h;
	guard.up = 0;
	if (guard.closing)
		return;
	if (uffd_guard_start(guard.loop, &cause) != 0) {
		log_warnx("cannot start the guard of post-copies' missing "
		    "pages again: %s", cause);
		free(cause);
	}
}

static void
uffd_guard_exited(struct spawn *s, int64_t status, int term_signal)
{
	if (!guard.closing)
		log_warnx("the guard of post-copies' missing pages (pid %ld) "
		    "ended (status %lld, signal %d): the trees it held have "
		    "none until their memory is in; starting another",
		    (long)s->pid, (long long)status, term_signal);
	if (guard.sock != -1) {
		close(guard.sock);
		guard.sock = -1;
	}
	spawn_close(s, uffd_guard_closed);
}

int
uffd_guard_start(uv_loop_t *loop, char **cause)
{
	struct spawn_opts	 o;
	char			*args[] = { "ternd", UFFD_GUARD_ARG, NULL };
	int			 fds[GUARD_FD + 1], sv[2];

	if (guard.up)
		return 0;
	guard.loop = loop;
	guard.closing = 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		return -1;
	}
	fds[0] = fds[1] = fds[2] = -1;
	fds[GUARD_FD] = sv[1];
	memset(&o, 0, sizeof o);
	/* This very binary, whatever became of its path since. */
	o.file = "/proc/self/exe";
	o.args = args;
	o.fds = fds;
	o.nfds = GUARD_FD + 1;
	/* A signal to ternd's session or group does not reach it. */
	o.setsid = 1;
	if (spawn_start(loop, &guard.proc, &o, uffd_guard_exited,
	    cause) != 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(sv[1]);
	guard.sock = sv[0];
	guard.up = 1;
	log_info("guard of post-copies' missing pages started (pid %ld)",
	    (long)guard.proc.pid);
	return 0;
}

static int
uffd_guard_send(const struct guard_msg *m, const int *fds, size_t nfds,
    char **cause)
{
	union guard_ctl	 ctl;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	ssize_t		 n;

	if (guard.sock == -1) {
		set_cause(cause, "no guard runs");
		return -1;
	}
	memset(&mh, 0, sizeof mh);
	iov.iov_base = (void *)m;
	iov.iov_len = sizeof *m;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(guard.sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof *m) {
		set_cause(cause, "telling the guard (pid %ld): %s",
		    (long)guard.proc.pid, n == -1 ? strerror(errno) :
		    "short write");
		return -1;
	}
	return 0;
}

uint64_t
uffd_guard_hold(pid_t init, const int *uffds, size_t nuffds, char **cause)
{
	struct guard_msg	 m;
	int			 fds[1 + UFFD_GUARD_UFFD_MAX];
	int			 rc;

	if (nuffds > UFFD_GUARD_UFFD_MAX) {
		log_warnx("the guard of post-copies' missing pages holds the "
		    "first %d of %zu userfaultfds of the tree of %ld only",
		    UFFD_GUARD_UFFD_MAX, nuffds, (long)init);
		nuffds = UFFD_GUARD_UFFD_MAX;
	}
	if ((fds[0] = pidfd_open(init, 0)) == -1) {
		set_cause(cause, "pidfd_open of its init (pid %ld): %s",
		    (long)init, strerror(errno));
		return 0;
	}
	memcpy(fds + 1, uffds, sizeof(int) * nuffds);
	memset(&m, 0, sizeof m);
	m.ticket = ++guard.next_ticket;
	m.op = GUARD_HOLD;
	rc = uffd_guard_send(&m, fds, 1 + nuffds, cause);
	close(fds[0]);
	return rc == 0 ? m.ticket : 0;
}

void
uffd_guard_let_go(uint64_t ticket)
{
	struct guard_msg	 m;
	char			*cause = NULL;

	if (ticket == 0)
		return;
	memset(&m, 0, sizeof m);
	m.ticket = ticket;
	m.op = GUARD_LET_GO;
	/* Should it not hear, it holds the copies until the tree exits:
	 * the tree's munmap and the like on its ranges wait till then. */
	if (uffd_guard_send(&m, NULL, 0, &cause) != 0) {
		log_warnx("cannot let the guard of post-copies' missing pages "
		    "go of a tree: %s", cause);
		free(cause);
	}
}

void
uffd_guard_close(void)
{
	guard.closing = 1;
	if (guard.sock != -1) {
		close(guard.sock);	/* it exits; its exit closes proc */
		guard.sock = -1;
	}
}

/* --- the guard ------------------------------------------------------------ */

struct held {
	uint64_t	 ticket;
	int		*fds;		/* [0]: the init's pidfd */
	size_t		 nfds;
};

static void
held_drop(struct held *h, size_t *n, size_t i)
{
	size_t	k;

	for (k = 0; k < h[i].nfds; k++)
		close(h[i].fds[k]);
	free(h[i].fds);
	h[i] = h[--*n];
}

/* A message from ternd: 1 taken, 0 the socket ended, -1 it failed. */
static int
guard_take(struct held **h, size_t *n)
{
	union guard_ctl	 ctl;
	struct guard_msg	 m;
	struct msghdr		 mh;
	struct iovec		 iov;
	struct cmsghdr		*c;
	int			*fds = NULL;
	size_t			 nfds = 0, i;
	ssize_t			 got;

	memset(&mh, 0, sizeof mh);
	iov.iov_base = &m;
	iov.iov_len = sizeof m;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof ctl.buf;
	got = recvmsg(GUARD_FD, &mh, MSG_CMSG_CLOEXEC);
	if (got == -1)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (got == 0)
		return 0;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if ((fds = malloc(sizeof(int) * (nfds + 1))) == NULL)
			return -1;	/* as if ternd died: kill */
		memcpy(fds, CMSG_DATA(c), sizeof(int) * nfds);
		break;
	}
	if (got == (ssize_t)sizeof m && m.op == GUARD_HOLD && nfds > 0) {
		struct held	*more = realloc(*h, sizeof **h * (*n + 1));

		if (more == NULL) {
			/* Not held: the one tree it would guard dies. */
			pidfd_send_signal(fds[0], SIGKILL, NULL, 0);
		} else {
			*h = more;
			(*h)[*n].ticket = m.ticket;
			(*h)[*n].fds = fds;
			(*h)[*n].nfds = nfds;
			(*n)++;
			return 1;
		}
	} else if (got == (ssize_t)sizeof m && m.op == GUARD_LET_GO) {
		for (i = 0; i < *n; i++)
			if ((*h)[i].ticket == m.ticket) {
				held_drop(*h, n, i);
				break;
			}
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	free(fds);
	return 1;
}

int
uffd_guard_main(void)
{
	struct held	*h = NULL;
	struct pollfd	*p = NULL;
	sigset_t	 all;
	size_t		 n = 0, i, k;
	int		 rc = 1;

	/* What reaches it comes through the socket, never a signal
	 * (SIGKILL aside). */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		if ((p = realloc(p, sizeof *p * (n + 1))) == NULL)
			break;
		p[0].fd = GUARD_FD;
		p[0].events = POLLIN;
		for (i = 0; i < n; i++) {
			p[1 + i].fd = h[i].fds[0];
			p[1 + i].events = POLLIN;
		}
		if (poll(p, n + 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* A tree that exited needs no guard (last first: a drop
		 * moves the last entry into the hole). */
		for (i = n; i > 0; i--)
			if (p[i].revents != 0)
				held_drop(h, &n, i - 1);
		if (p[0].revents != 0 && (rc = guard_take(&h, &n)) != 1)
			break;
	}
	/* ternd is gone (or it could not wait): nobody can bring these
	 * trees their missing pages.  An init's death takes its pid
	 * namespace with it; once each is gone (its pidfd reads ready only
	 * after the kernel killed the rest) no fault waits any more, and
	 * the copies may go with this process. */
	for (i = 0; i < n; i++)
		pidfd_send_signal(h[i].fds[0], SIGKILL, NULL, 0);
	for (i = 0; i < n; i++) {
		struct pollfd	one = { .fd = h[i].fds[0], .events = POLLIN };

		while (poll(&one, 1, -1) == -1 && errno == EINTR)
			;
		for (k = 0; k < h[i].nfds; k++)
			close(h[i].fds[k]);
		free(h[i].fds);
	}
	free(h);
	free(p);
	return rc == 0 ? 0 : 1;
}
