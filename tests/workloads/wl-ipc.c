/* wl: pipes, fifos, unix sockets, SysV IPC, eventfd, epoll, inotify. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wl.h"

#define INFLIGHT	3000	/* bytes left in a pipe or socket */

/* --- pipe: data in flight ------------------------------------------------ */

static int	pipe_fds[2];

static int
pipe_setup(void)
{
	char	buf[INFLIGHT];

	if (pipe(pipe_fds) != 0)
		return wl_fail_errno("pipe");
	wl_fill(buf, sizeof buf, 11);
	return wl_write_all(pipe_fds[1], buf, sizeof buf, "write to the pipe");
}

static int
pipe_verify(void)
{
	char	buf[INFLIGHT];

	if (wl_read_all(pipe_fds[0], buf, sizeof buf, "pipe") != 0)
		return -1;
	if (wl_readable(pipe_fds[0], 0))
		return wl_fail("pipe holds more than it was given");
	if (wl_same(buf, sizeof buf, 11, "pipe data") != 0)
		return -1;
	return wl_write_all(pipe_fds[1], buf, sizeof buf, "refill the pipe");
}

/* --- pipe_child: a child blocked in read() on a pipe, echoing ------------ */

static int	pc_to[2], pc_from[2];
static pid_t	pc_child;
static uint32_t	pc_seq;

static int
pipe_child_setup(void)
{
	char	c;

	if (pipe(pc_to) != 0 || pipe(pc_from) != 0)
		return wl_fail_errno("pipe");
	if ((pc_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (pc_child == 0) {
		close(pc_to[1]);
		close(pc_from[0]);
		for (;;) {
			ssize_t n = read(pc_to[0], &c, 1);
			if (n == -1 && errno == EINTR)
				continue;
			if (n != 1)
				_exit(1);
			c = (char)(c + 1);
			if (write(pc_from[1], &c, 1) != 1)
				_exit(1);
		}
	}
	close(pc_to[0]);
	close(pc_from[1]);
	return 0;
}

static int
pipe_child_verify(void)
{
	char	c = (char)(++pc_seq), r;

	if (wl_write_all(pc_to[1], &c, 1, "pipe to the child") != 0 ||
	    wl_read_all(pc_from[0], &r, 1, "pipe from the child") != 0)
		return -1;
	if (r != (char)(c + 1))
		return wl_fail("the child answered %d to %d", r, c);
	return 0;
}

/* --- fifo: a named pipe with data in flight ------------------------------
 * On the container's own /tmp: a fifo on shared storage, opened by the
 * restored copy while the frozen source still holds it on the same kernel,
 * would be one pipe for both (its data restored twice). */

static int	fifo_r, fifo_w;

static int
fifo_setup(void)
{
	char	buf[INFLIGHT];

	unlink("/tmp/wl-fifo");
	if (mkfifo("/tmp/wl-fifo", 0600) != 0)
		return wl_fail_errno("mkfifo /tmp/wl-fifo");
	if ((fifo_r = open("/tmp/wl-fifo", O_RDONLY | O_NONBLOCK)) == -1 ||
	    (fifo_w = open("/tmp/wl-fifo", O_WRONLY)) == -1)
		return wl_fail_errno("open /tmp/wl-fifo");
	wl_fill(buf, sizeof buf, 12);
	return wl_write_all(fifo_w, buf, sizeof buf, "write to the fifo");
}

static int
fifo_verify(void)
{
	char		buf[INFLIGHT];
	struct stat	st;

	if (fstat(fifo_r, &st) != 0 || !S_ISFIFO(st.st_mode))
		return wl_fail("the fifo's read end is not a fifo");
	if (wl_read_all(fifo_r, buf, sizeof buf, "fifo") != 0 ||
	    wl_same(buf, sizeof buf, 12, "fifo data") != 0)
		return -1;
	if (wl_readable(fifo_r, 0))
		return wl_fail("fifo holds more than it was given");
	return wl_write_all(fifo_w, buf, sizeof buf, "refill the fifo");
}

/* --- socketpairs of each type, data queued both ways -------------------- */

static int	sp_fds[3][2];
static const int sp_types[3] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };

static int
sp_setup(int i)
{
	char	buf[INFLIGHT];
	int	k, d;

	if (socketpair(AF_UNIX, sp_types[i], 0, sp_fds[i]) != 0)
		return wl_fail_errno("socketpair");
	for (d = 0; d < 2; d++) {
		for (k = 0; k < 3; k++) {	/* three messages each way */
			wl_fill(buf, sizeof buf, (uint32_t)(100 + d * 10 + k));
			if (wl_write_all(sp_fds[i][d], buf,
			    (size_t)(1000 + k * 500), "send") != 0)
				return -1;
		}
	}
	return 0;
}

static int
sp_verify(int i)
{
	char	buf[INFLIGHT + 100], what[64];
	ssize_t	n;
	int	k, d;

	for (d = 0; d < 2; d++) {
		int rfd = sp_fds[i][1 - d];
		for (k = 0; k < 3; k++) {
			size_t want = (size_t)(1000 + k * 500);
			snprintf(what, sizeof what, "message %d from end %d",
			    k, d);
			if (sp_types[i] == SOCK_STREAM) {
				if (wl_read_all(rfd, buf, want, what) != 0)
					return -1;
				n = (ssize_t)want;
			} else {
				if (!wl_readable(rfd, WL_WAIT_MS))
					return wl_fail("%s: missing", what);
				n = recv(rfd, buf, sizeof buf, MSG_DONTWAIT);
				if (n == -1)
					return wl_fail_errno(what);
				if ((size_t)n != want)
					return wl_fail("%s: %zd bytes, not %zu "
					    "(boundaries lost)", what, n, want);
			}
			if (wl_same(buf, (size_t)n,
			    (uint32_t)(100 + d * 10 + k), what) != 0)
				return -1;
		}
		if (wl_readable(rfd, 0))
			return wl_fail("end %d holds more than it was sent",
			    1 - d);
	}
	/* Requeue everything for the next check. */
	for (d = 0; d < 2; d++)
		for (k = 0; k < 3; k++) {
			wl_fill(buf, sizeof buf, (uint32_t)(100 + d * 10 + k));
			if (wl_write_all(sp_fds[i][d], buf,
			    (size_t)(1000 + k * 500), "requeue") != 0)
				return -1;
		}
	return 0;
}

static int sp_stream_setup(void) { return sp_setup(0); }
static int sp_stream_verify(void) { return sp_verify(0); }
static int sp_dgram_setup(void) { return sp_setup(1); }
static int sp_dgram_verify(void) { return sp_verify(1); }
static int sp_seqpacket_setup(void) { return sp_setup(2); }
static int sp_seqpacket_verify(void) { return sp_verify(2); }

/* --- unix sockets on paths --------------------------------------------- */

static int
unix_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof sun->sun_path, "%s", path);
	return 0;
}

static int	ul_fd;

static int
unix_listen_setup(void)
{
	struct sockaddr_un	sun;

	unix_addr(&sun, "/tmp/wl-listen.sock");
	unlink(sun.sun_path);
	if ((ul_fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (bind(ul_fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    listen(ul_fd, 8) != 0)
		return wl_fail_errno("bind/listen /tmp/wl-listen.sock");
	return 0;
}

static int
unix_listen_verify(void)
{
	struct sockaddr_un	sun;
	char			c = 'x', r = 0;
	int			cfd, afd, rc = -1;

	unix_addr(&sun, "/tmp/wl-listen.sock");
	if ((cfd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (connect(cfd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		wl_fail_errno("connect to the listening socket");
		close(cfd);
		return -1;
	}
	if (!wl_readable(ul_fd, WL_WAIT_MS)) {
		close(cfd);
		return wl_fail("the listener saw no connection");
	}
	if ((afd = accept(ul_fd, NULL, NULL)) == -1) {
		wl_fail_errno("accept");
		close(cfd);
		return -1;
	}
	if (wl_write_all(cfd, &c, 1, "send") == 0 &&
	    wl_read_all(afd, &r, 1, "receive") == 0) {
		if (r == c)
			rc = 0;
		else
			wl_fail("received %c, not %c", r, c);
	}
	close(afd);
	close(cfd);
	return rc;
}

/* A connected pair made through a path (listener closed), data queued. */
static int	uc_fds[2];

static int
unix_connected_setup(void)
{
	struct sockaddr_un	sun;
	char			buf[INFLIGHT];
	int			lfd;

	unix_addr(&sun, "/tmp/wl-conn.sock");
	unlink(sun.sun_path);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    (uc_fds[0] = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (bind(lfd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    listen(lfd, 1) != 0 ||
	    connect(uc_fds[0], (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    (uc_fds[1] = accept(lfd, NULL, NULL)) == -1)
		return wl_fail_errno("connect through /tmp/wl-conn.sock");
	close(lfd);
	wl_fill(buf, sizeof buf, 21);
	if (wl_write_all(uc_fds[0], buf, sizeof buf, "send") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 22);
	return wl_write_all(uc_fds[1], buf, sizeof buf, "send back");
}

static int
unix_connected_verify(void)
{
	char	buf[INFLIGHT];

	if (wl_read_all(uc_fds[1], buf, sizeof buf, "accepted end") != 0 ||
	    wl_same(buf, sizeof buf, 21, "data to the accepted end") != 0 ||
	    wl_read_all(uc_fds[0], buf, sizeof buf, "connected end") != 0 ||
	    wl_same(buf, sizeof buf, 22, "data to the connecting end") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 21);
	if (wl_write_all(uc_fds[0], buf, sizeof buf, "requeue") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 22);
	return wl_write_all(uc_fds[1], buf, sizeof buf, "requeue");
}

/* A bound datagram socket with messages queued from a bound sender. */
static int	ud_rx, ud_tx;

static int
unix_dgram_send(void)
{
	char	msg[32];
	int	k;

	for (k = 0; k < 4; k++) {
		snprintf(msg, sizeof msg, "datagram %d", k);
		if (send(ud_tx, msg, strlen(msg), 0) == -1)
			return wl_fail_errno("send a datagram");
	}
	return 0;
}

static int
unix_dgram_setup(void)
{
	struct sockaddr_un	rx, tx;

	unix_addr(&rx, "/tmp/wl-dgram-rx.sock");
	unix_addr(&tx, "/tmp/wl-dgram-tx.sock");
	unlink(rx.sun_path);
	unlink(tx.sun_path);
	if ((ud_rx = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1 ||
	    (ud_tx = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (bind(ud_rx, (struct sockaddr *)&rx, sizeof rx) != 0 ||
	    bind(ud_tx, (struct sockaddr *)&tx, sizeof tx) != 0 ||
	    connect(ud_tx, (struct sockaddr *)&rx, sizeof rx) != 0)
		return wl_fail_errno("bind/connect datagram sockets");
	return unix_dgram_send();
}

static int
unix_dgram_verify(void)
{
	struct sockaddr_un	from;
	socklen_t		len;
	char			msg[64], want[32];
	ssize_t			n;
	int			k;

	for (k = 0; k < 4; k++) {
		if (!wl_readable(ud_rx, WL_WAIT_MS))
			return wl_fail("datagram %d missing", k);
		len = sizeof from;
		n = recvfrom(ud_rx, msg, sizeof msg - 1, MSG_DONTWAIT,
		    (struct sockaddr *)&from, &len);
		if (n == -1)
			return wl_fail_errno("recvfrom");
		msg[n] = '\0';
		snprintf(want, sizeof want, "datagram %d", k);
		if (strcmp(msg, want) != 0)
			return wl_fail("got \"%s\", not \"%s\"", msg, want);
		if (strcmp(from.sun_path, "/tmp/wl-dgram-tx.sock") != 0)
			return wl_fail("datagram %d from \"%s\"", k,
			    from.sun_path);
	}
	return unix_dgram_send();
}

/* --- scm_rights: a descriptor in flight in a unix socket's queue -------- */

static int	scm_fds[2];

static int
scm_send(void)
{
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cm;
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} u;
	char		 data[INFLIGHT], tag = 'F';
	int		 p[2];

	/* The fd sent is a pipe's read end, with data in its pipe. */
	if (pipe(p) != 0)
		return wl_fail_errno("pipe");
	wl_fill(data, sizeof data, 31);
	if (wl_write_all(p[1], data, sizeof data, "fill the pipe") != 0)
		return -1;
	close(p[1]);
	memset(&mh, 0, sizeof mh);
	memset(&u, 0, sizeof u);
	iov.iov_base = &tag;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof u.buf;
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	if (sendmsg(scm_fds[0], &mh, 0) != 1)
		return wl_fail_errno("sendmsg SCM_RIGHTS");
	close(p[0]);
	return 0;
}

static int
scm_setup(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, scm_fds) != 0)
		return wl_fail_errno("socketpair");
	return scm_send();
}

static int
scm_verify(void)
{
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cm;
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} u;
	char		 data[INFLIGHT], tag = 0;
	int		 fd, rc;

	if (!wl_readable(scm_fds[1], WL_WAIT_MS))
		return wl_fail("no message queued");
	memset(&mh, 0, sizeof mh);
	iov.iov_base = &tag;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof u.buf;
	if (recvmsg(scm_fds[1], &mh, MSG_DONTWAIT) != 1 || tag != 'F')
		return wl_fail("the message is gone or changed");
	cm = CMSG_FIRSTHDR(&mh);
	if (cm == NULL || cm->cmsg_type != SCM_RIGHTS)
		return wl_fail("the message lost its descriptor");
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	rc = wl_read_all(fd, data, sizeof data, "the passed pipe");
	if (rc == 0)
		rc = wl_same(data, sizeof data, 31, "data behind the fd");
	close(fd);
	if (rc != 0)
		return rc;
	return scm_send();
}

/* --- SysV semaphores ---------------------------------------------------- */

static int	sem_id;
static const unsigned short sem_vals[3] = { 1, 5, 7 };

static int
sysv_sem_setup(void)
{
	struct sembuf	op = { .sem_num = 2, .sem_op = -2,
	    .sem_flg = SEM_UNDO };
	unsigned short	vals[3] = { 1, 5, 9 };

	if ((sem_id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600)) == -1)
		return wl_fail_errno("semget");
	if (semctl(sem_id, 0, SETALL, vals) != 0)
		return wl_fail_errno("semctl SETALL");
	/* An undo entry too: 9 - 2 = 7 now, 9 again if we exit. */
	if (semop(sem_id, &op, 1) != 0)
		return wl_fail_errno("semop");
	return 0;
}

static int
sysv_sem_verify(void)
{
	unsigned short	vals[3];
	struct sembuf	op[2] = {
		{ .sem_num = 0, .sem_op = -1, .sem_flg = IPC_NOWAIT },
		{ .sem_num = 0, .sem_op = 1, .sem_flg = 0 },
	};
	int		i;

	if (semctl(sem_id, 0, GETALL, vals) != 0)
		return wl_fail_errno("semctl GETALL");
	for (i = 0; i < 3; i++)
		if (vals[i] != sem_vals[i])
			return wl_fail("semaphore %d is %u, not %u", i, vals[i],
			    sem_vals[i]);
	if (semop(sem_id, &op[0], 1) != 0 || semop(sem_id, &op[1], 1) != 0)
		return wl_fail_errno("semop down/up");
	return 0;
}

/* --- SysV shared memory, attached in a child too ------------------------- */

#define SHM_SIZE	(64 * 1024)
static int	shm_id;
static char	*shm_addr;
static pid_t	shm_child;

static int
sysv_shm_setup(void)
{
	volatile uint32_t	*slot;

	if ((shm_id = shmget(IPC_PRIVATE, SHM_SIZE, IPC_CREAT | 0600)) == -1)
		return wl_fail_errno("shmget");
	if ((shm_addr = shmat(shm_id, NULL, 0)) == (void *)-1)
		return wl_fail_errno("shmat");
	wl_fill(shm_addr, SHM_SIZE - 64, 41);
	slot = (volatile uint32_t *)(shm_addr + SHM_SIZE - 64);
	slot[0] = slot[1] = 0;
	if ((shm_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (shm_child == 0) {
		/* Echo slot 0 into slot 1 through the segment. */
		for (;;) {
			slot[1] = slot[0];
			wl_msleep(5);
		}
	}
	return 0;
}

static int
sysv_shm_verify(void)
{
	volatile uint32_t	*slot = (volatile uint32_t *)(shm_addr +
	    SHM_SIZE - 64);
	struct shmid_ds		 ds;
	int			 i;

	if (shmctl(shm_id, IPC_STAT, &ds) != 0)
		return wl_fail_errno("shmctl IPC_STAT");
	if (ds.shm_segsz != SHM_SIZE)
		return wl_fail("segment of %zu bytes", (size_t)ds.shm_segsz);
	if (ds.shm_nattch != 2)
		return wl_fail("segment attached %lu times, not 2",
		    (unsigned long)ds.shm_nattch);
	if (wl_same(shm_addr, SHM_SIZE - 64, 41, "segment") != 0)
		return -1;
	slot[0]++;
	for (i = 0; i < WL_WAIT_MS / 5 && slot[1] != slot[0]; i++)
		wl_msleep(5);
	if (slot[1] != slot[0])
		return wl_fail("the child does not see the segment (%u, %u)",
		    slot[0], slot[1]);
	return 0;
}

/* --- SysV message queue -------------------------------------------------- */

static int	msg_id;
struct wl_msg {
	long	type;
	char	text[64];
};

static int
sysv_msg_send(void)
{
	struct wl_msg	m;
	int		k;

	for (k = 1; k <= 3; k++) {
		m.type = k * 10;
		snprintf(m.text, sizeof m.text, "message of type %d", k * 10);
		if (msgsnd(msg_id, &m, strlen(m.text) + 1, IPC_NOWAIT) != 0)
			return wl_fail_errno("msgsnd");
	}
	return 0;
}

static int
sysv_msg_setup(void)
{
	if ((msg_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) == -1)
		return wl_fail_errno("msgget");
	return sysv_msg_send();
}

static int
sysv_msg_verify(void)
{
	struct msqid_ds	ds;
	struct wl_msg	m;
	char		want[64];
	int		k;

	if (msgctl(msg_id, IPC_STAT, &ds) != 0)
		return wl_fail_errno("msgctl IPC_STAT");
	if (ds.msg_qnum != 3)
		return wl_fail("%lu messages queued, not 3",
		    (unsigned long)ds.msg_qnum);
	/* Out of order, by type. */
	for (k = 3; k >= 1; k--) {
		if (msgrcv(msg_id, &m, sizeof m.text, k * 10, IPC_NOWAIT) ==
		    -1)
			return wl_fail("no message of type %d: %s", k * 10,
			    strerror(errno));
		snprintf(want, sizeof want, "message of type %d", k * 10);
		if (strcmp(m.text, want) != 0)
			return wl_fail("type %d holds \"%s\"", k * 10, m.text);
	}
	return sysv_msg_send();
}

/* --- eventfd ------------------------------------------------------------- */

static int	efd, efd_sem;

static int
eventfd_setup(void)
{
	if ((efd = eventfd(0, EFD_NONBLOCK)) == -1)
		return wl_fail_errno("eventfd");
	if (eventfd_write(efd, 4242) != 0)
		return wl_fail_errno("eventfd_write");
	return 0;
}

static int
eventfd_verify(void)
{
	eventfd_t	v;

	if (eventfd_read(efd, &v) != 0)
		return wl_fail_errno("eventfd_read");
	if (eventfd_write(efd, 4242) != 0)
		return wl_fail_errno("eventfd_write");
	if (v != 4242)
		return wl_fail("eventfd counter %llu, not 4242",
		    (unsigned long long)v);
	return 0;
}

static int
eventfd_sem_setup(void)
{
	if ((efd_sem = eventfd(3, EFD_NONBLOCK | EFD_SEMAPHORE)) == -1)
		return wl_fail_errno("eventfd");
	return 0;
}

static int
eventfd_sem_verify(void)
{
	eventfd_t	v = 0;
	int		k, rc = 0;

	for (k = 0; k < 3 && rc == 0; k++)
		if (eventfd_read(efd_sem, &v) != 0 || v != 1)
			rc = wl_fail("read %d gave %llu, not 1 (semaphore mode "
			    "lost?)", k, (unsigned long long)v);
	if (rc == 0 && eventfd_read(efd_sem, &v) == 0)
		rc = wl_fail("counted past 3");
	/* Back to 3 whatever was read. */
	while (eventfd_read(efd_sem, &v) == 0)
		;
	if (eventfd_write(efd_sem, 3) != 0)
		return wl_fail_errno("eventfd_write");
	return rc;
}

/* --- epoll: a set of pipes and an eventfd with their cookies ------------- */

static int	ep_fd, ep_pipe[2], ep_efd;

static int
epoll_setup(void)
{
	struct epoll_event	ev;

	if ((ep_fd = epoll_create1(0)) == -1 || pipe(ep_pipe) != 0 ||
	    (ep_efd = eventfd(1, EFD_NONBLOCK)) == -1)
		return wl_fail_errno("epoll_create1/pipe/eventfd");
	ev.events = EPOLLIN;
	ev.data.u64 = 0x1122334455667788ULL;
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, ep_pipe[0], &ev) != 0)
		return wl_fail_errno("epoll_ctl pipe");
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x99aabbccddeeff00ULL;
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, ep_efd, &ev) != 0)
		return wl_fail_errno("epoll_ctl eventfd");
	return 0;
}

static int
epoll_verify(void)
{
	struct epoll_event	ev[4];
	eventfd_t		v;
	int			n;

	/* Level-triggered pipe: not ready; the eventfd: re-armed below. */
	if (eventfd_write(ep_efd, 1) != 0)
		return wl_fail_errno("eventfd_write");
	n = epoll_wait(ep_fd, ev, 4, WL_WAIT_MS);
	if (n != 1)
		return wl_fail("epoll_wait gave %d events, not 1", n);
	if (ev[0].data.u64 != 0x99aabbccddeeff00ULL)
		return wl_fail("the eventfd's cookie is %#llx",
		    (unsigned long long)ev[0].data.u64);
	if (eventfd_read(ep_efd, &v) != 0)
		return wl_fail_errno("eventfd_read");
	if (wl_write_all(ep_pipe[1], "p", 1, "pipe") != 0)
		return -1;
	n = epoll_wait(ep_fd, ev, 4, WL_WAIT_MS);
	if (n != 1 || ev[0].data.u64 != 0x1122334455667788ULL)
		return wl_fail("the pipe's event is missing or wrong (%d)", n);
	if (read(ep_pipe[0], &v, 1) != 1)
		return wl_fail_errno("read the pipe");
	if (epoll_wait(ep_fd, ev, 4, 0) != 0)
		return wl_fail("epoll reports events nobody caused");
	return eventfd_write(ep_efd, 1) == 0 ? 0 :
	    wl_fail_errno("eventfd_write");
}

/* --- inotify: a watch on a directory of the rootfs ----------------------- */

static int	in_fd, in_wd;
static unsigned	in_seq;

static int
inotify_setup(void)
{
	mkdir("/wl-inotify", 0755);
	if ((in_fd = inotify_init1(IN_NONBLOCK)) == -1)
		return wl_fail_errno("inotify_init1");
	if ((in_wd = inotify_add_watch(in_fd, "/wl-inotify", IN_CREATE)) ==
	    -1)
		return wl_fail_errno("inotify_add_watch /wl-inotify");
	return 0;
}

static int
inotify_verify(void)
{
	union {
		char			buf[4096];
		struct inotify_event	ev;
	} u;
	char	name[64], path[128];
	ssize_t	n;
	int	fd;

	snprintf(name, sizeof name, "f%u", ++in_seq);
	snprintf(path, sizeof path, "/wl-inotify/%s", name);
	if ((fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == -1)
		return wl_fail_errno(path);
	close(fd);
	unlink(path);
	if (!wl_readable(in_fd, WL_WAIT_MS))
		return wl_fail("no event for %s (watch lost)", path);
	n = read(in_fd, u.buf, sizeof u.buf);
	if (n < (ssize_t)sizeof u.ev)
		return wl_fail("short inotify read");
	if (u.ev.wd != in_wd || !(u.ev.mask & IN_CREATE) ||
	    strcmp(u.ev.name, name) != 0)
		return wl_fail("event wd %d mask %#x name %s, not %d IN_CREATE "
		    "%s", u.ev.wd, u.ev.mask, u.ev.len ? u.ev.name : "",
		    in_wd, name);
	return 0;
}

const struct workload wl_ipc[] = {
	{ "pipe", "a pipe with data in flight", pipe_setup, pipe_verify, 0 },
	{ "pipe_child", "a child blocked reading a pipe, echoing",
	    pipe_child_setup, pipe_child_verify, 0 },
	{ "fifo", "a named pipe with data in flight", fifo_setup,
	    fifo_verify, 0 },
	{ "socketpair_stream", "stream socketpair, data queued both ways",
	    sp_stream_setup, sp_stream_verify, 0 },
	{ "socketpair_dgram", "datagram socketpair, messages queued",
	    sp_dgram_setup, sp_dgram_verify, 0 },
	{ "socketpair_seqpacket", "seqpacket socketpair, messages queued",
	    sp_seqpacket_setup, sp_seqpacket_verify, 0 },
	{ "unix_listen", "a listening unix socket on a path",
	    unix_listen_setup, unix_listen_verify, 0 },
	{ "unix_connected", "a unix stream connection made by path, data "
	    "queued", unix_connected_setup, unix_connected_verify, 0 },
	{ "unix_dgram", "bound unix datagram sockets, messages queued",
	    unix_dgram_setup, unix_dgram_verify, 0 },
	{ "scm_rights", "a pipe's fd in flight in a unix socket",
	    scm_setup, scm_verify, 0 },
	{ "sysv_sem", "SysV semaphores with an undo entry", sysv_sem_setup,
	    sysv_sem_verify, 0 },
	{ "sysv_shm", "SysV shared memory attached by parent and child",
	    sysv_shm_setup, sysv_shm_verify, 0 },
	{ "sysv_msg", "SysV message queue with typed messages",
	    sysv_msg_setup, sysv_msg_verify, 0 },
	{ "eventfd", "an eventfd's counter", eventfd_setup, eventfd_verify,
	    0 },
	{ "eventfd_sem", "an eventfd in semaphore mode", eventfd_sem_setup,
	    eventfd_sem_verify, 0 },
	{ "epoll", "epoll set with cookies, level and edge triggered",
	    epoll_setup, epoll_verify, 0 },
	{ "inotify", "an inotify watch on a directory", inotify_setup,
	    inotify_verify, 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};
