#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/ctlclient.h"
#include "daemon/frame.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define CTLCLIENT_MAX_FRAME	(16u << 20)

struct ctlclient {
	int			fd;
	char			*path;
	uint64_t		next_id;
	struct frame_decoder	dec;
};

struct ctlclient *
ctlclient_connect(const char *path, char **cause)
{
	struct ctlclient	*cc;
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		set_cause(cause, "%s: socket path too long", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		set_cause(cause, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		set_cause(cause, "cannot reach ternd at %s: %s (is ternd "
		    "running? see -s)", path, strerror(errno));
		close(fd);
		return NULL;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->fd = fd;
	cc->path = xstrdup(path);
	cc->next_id = 1;
	frame_decoder_init(&cc->dec, CTLCLIENT_MAX_FRAME);
	return cc;
}

void
ctlclient_close(struct ctlclient *cc)
{
	if (cc == NULL)
		return;
	close(cc->fd);
	frame_decoder_free(&cc->dec);
	free(cc->path);
	free(cc);
}

int
ctlclient_send(struct ctlclient *cc, Envelope *env, char **cause)
{
	uint8_t	*payload, *buf;
	size_t	 len, off = 0;
	ssize_t	 n;
	int	 rc = -1;

	env->has_request_id = 1;
	env->request_id = cc->next_id++;
	payload = msg_pack(env, &len);
	buf = xmalloc(FRAME_HEADER_SIZE + len);
	frame_header_encode(buf, FRAME_MSG, 0, payload, (uint32_t)len);
	memcpy(buf + FRAME_HEADER_SIZE, payload, len);
	len += FRAME_HEADER_SIZE;
	while (off < len) {
		n = send(cc->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_cause(cause, "%s: send: %s", cc->path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	rc = 0;
out:
	free(payload);
	free(buf);
	return rc;
}

Envelope *
ctlclient_recv(struct ctlclient *cc, int timeout_ms, char **cause)
{
	struct frame_hdr	 hdr;
	const uint8_t		*payload;
	enum frame_status	 st;
	struct pollfd		 pfd;
	uint64_t		 deadline = now_ms() + (uint64_t)timeout_ms;
	uint8_t			*space;
	size_t			 room;
	ssize_t			 n;
	int			 code, left;

	for (;;) {
		st = frame_decoder_next(&cc->dec, &hdr, &payload);
		if (st == FRAME_OK) {
			if (hdr.type != FRAME_MSG) {
				set_cause(cause, "ternd sent a data frame on the "
				    "control socket");
				return NULL;
			}
			return msg_unpack(payload, hdr.length, &code, cause);
		}
		if (st != FRAME_NEED_MORE) {
			set_cause(cause, "bad reply from ternd: %s",
			    frame_status_string(st));
			return NULL;
		}
		left = (int)(deadline - now_ms());
		if ((int64_t)(deadline - now_ms()) <= 0) {
			set_cause(cause, "ternd did not answer within %d ms",
			    timeout_ms);
			return NULL;
		}
		pfd.fd = cc->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
			set_cause(cause, "poll: %s", strerror(errno));
			return NULL;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		space = frame_decoder_space(&cc->dec, &room);
		n = recv(cc->fd, space, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_cause(cause, "ternd closed the connection%s%s",
			    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return NULL;
		}
		frame_decoder_commit(&cc->dec, (size_t)n);
	}
}

Envelope *
ctlclient_call(struct ctlclient *cc, Envelope *req, int timeout_ms,
    ctlclient_progress_fn progress, void *arg, char **cause)
{
	Envelope	*reply;
	char		*why = NULL;

	if (ctlclient_send(cc, req, &why) != 0) {
		/* ternd may have refused us before reading (permission): its
		 * Error is waiting on the socket and says more than EPIPE. */
		reply = ctlclient_recv(cc, 1000, NULL);
		if (reply == NULL || reply->body_case !=
		    TERN__ENVELOPE__BODY_ERROR) {
			msg_free(reply);
			set_cause(cause, "%s", why);
			free(why);
			return NULL;
		}
		free(why);
	} else {
		while ((reply = ctlclient_recv(cc, timeout_ms, cause)) != NULL &&
		    (reply->body_case == TERN__ENVELOPE__BODY_MIGRATE_PROGRESS ||
		    reply->body_case ==
		    TERN__ENVELOPE__BODY_HOST_DRAIN_PROGRESS)) {
			if (progress != NULL)
				progress(reply, arg);
			msg_free(reply);
		}
		if (reply == NULL)
			return NULL;
	}
	if (reply->body_case == TERN__ENVELOPE__BODY_ERROR) {
		set_cause(cause, "%s", reply->error->text);
		msg_free(reply);
		return NULL;
	}
	return reply;
}
