/* wl: TCP and UDP over the loopback of the container's own netns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wl.h"

#define INFLIGHT	3000

static void
lo_addr(struct sockaddr_in *sin, int port)
{
	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* --- tcp_listen ---------------------------------------------------------- */

static int	tl_fd;

static int
tcp_listen_setup(void)
{
	struct sockaddr_in	sin;
	int			one = 1;

	lo_addr(&sin, 7001);
	if ((tl_fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	setsockopt(tl_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(tl_fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(tl_fd, 8) != 0)
		return wl_fail_errno("bind/listen 127.0.0.1:7001");
	return 0;
}

static int
tcp_listen_verify(void)
{
	struct sockaddr_in	sin;
	char			c = 't', r = 0;
	int			cfd, afd, rc = -1;

	lo_addr(&sin, 7001);
	if ((cfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (connect(cfd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		wl_fail_errno("connect to 127.0.0.1:7001");
		close(cfd);
		return -1;
	}
	if (!wl_readable(tl_fd, WL_WAIT_MS) ||
	    (afd = accept(tl_fd, NULL, NULL)) == -1) {
		close(cfd);
		return wl_fail("the listener accepts nothing");
	}
	if (wl_write_all(cfd, &c, 1, "send") == 0 &&
	    wl_read_all(afd, &r, 1, "receive") == 0)
		rc = r == c ? 0 : wl_fail("received %c, not %c", r, c);
	close(afd);
	close(cfd);
	return rc;
}

/* --- tcp_established: a connection with data queued both ways ----------- */

static int	te_fds[2];

static int
tcp_established_setup(void)
{
	struct sockaddr_in	sin;
	char			buf[INFLIGHT];
	int			lfd, one = 1;

	lo_addr(&sin, 7002);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    (te_fds[0] = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return wl_fail_errno("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(lfd, 1) != 0 ||
	    connect(te_fds[0], (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    (te_fds[1] = accept(lfd, NULL, NULL)) == -1)
		return wl_fail_errno("connect over 127.0.0.1:7002");
	close(lfd);
	setsockopt(te_fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	wl_fill(buf, sizeof buf, 51);
	if (wl_write_all(te_fds[0], buf, sizeof buf, "send") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 52);
	return wl_write_all(te_fds[1], buf, sizeof buf, "send back");
}

static int
tcp_established_verify(void)
{
	char	buf[INFLIGHT];
	int	one = 0;
	socklen_t len = sizeof one;

	if (getsockopt(te_fds[0], IPPROTO_TCP, TCP_NODELAY, &one, &len) != 0 ||
	    !one)
		return wl_fail("TCP_NODELAY lost");
	if (wl_read_all(te_fds[1], buf, sizeof buf, "accepted end") != 0 ||
	    wl_same(buf, sizeof buf, 51, "data to the accepted end") != 0 ||
	    wl_read_all(te_fds[0], buf, sizeof buf, "connected end") != 0 ||
	    wl_same(buf, sizeof buf, 52, "data to the connecting end") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 51);
	if (wl_write_all(te_fds[0], buf, sizeof buf, "requeue") != 0)
		return -1;
	wl_fill(buf, sizeof buf, 52);
	return wl_write_all(te_fds[1], buf, sizeof buf, "requeue");
}

/* --- udp: bound and connected sockets keep their addresses --------------- */

static int	ud_a, ud_b;
static unsigned	ud_seq;

static int
udp_setup(void)
{
	struct sockaddr_in	a, b;

	lo_addr(&a, 7003);
	lo_addr(&b, 7004);
	if ((ud_a = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    (ud_b = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return wl_fail_errno("socket");
	if (bind(ud_a, (struct sockaddr *)&a, sizeof a) != 0 ||
	    bind(ud_b, (struct sockaddr *)&b, sizeof b) != 0 ||
	    connect(ud_a, (struct sockaddr *)&b, sizeof b) != 0)
		return wl_fail_errno("bind/connect udp");
	return 0;
}

static int
udp_verify(void)
{
	struct sockaddr_in	from;
	socklen_t		len = sizeof from;
	char			msg[32], got[64];
	ssize_t			n;

	snprintf(msg, sizeof msg, "udp %u", ++ud_seq);
	if (send(ud_a, msg, strlen(msg), 0) == -1)
		return wl_fail_errno("send on the connected udp socket");
	if (!wl_readable(ud_b, WL_WAIT_MS))
		return wl_fail("the datagram did not arrive");
	n = recvfrom(ud_b, got, sizeof got - 1, MSG_DONTWAIT,
	    (struct sockaddr *)&from, &len);
	if (n == -1)
		return wl_fail_errno("recvfrom");
	got[n] = '\0';
	if (strcmp(got, msg) != 0)
		return wl_fail("got \"%s\", not \"%s\"", got, msg);
	if (ntohs(from.sin_port) != 7003)
		return wl_fail("it came from port %u, not 7003",
		    ntohs(from.sin_port));
	return 0;
}

const struct workload wl_net[] = {
	{ "tcp_listen", "a listening TCP socket on 127.0.0.1",
	    tcp_listen_setup, tcp_listen_verify, WL_NET },
	{ "tcp_established", "an established TCP connection over loopback, "
	    "data queued", tcp_established_setup, tcp_established_verify,
	    WL_NET },
	{ "udp", "bound and connected UDP sockets on loopback", udp_setup,
	    udp_verify, WL_NET },
	{ NULL, NULL, NULL, NULL, 0 }
};
