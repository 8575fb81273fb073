#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/page-server.h"
#include "checkpoint/staging.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* criu/page-xfer.c (CRIU 3.x and 4.x): the requests a plain dump sends.
 * The low 16 bits of cmd name the request, the high ones its flags. */
#define PS_IOV_ADD		1	/* pages follow */
#define PS_IOV_HOLE		2
#define PS_IOV_OPEN		3
#define PS_IOV_OPEN2		4	/* answered: one byte, has a parent */
#define PS_IOV_ADD_F		6	/* pages follow if PE_PRESENT */
#define PE_PRESENT		(1u << 2)
#define PS_PAGE_SIZE		4096u
#define STAGING_ALIGN		(2u << 20)	/* a huge page */
#define STAGING_READ_MAX	(8u << 20)	/* per wakeup of the loop */

struct staging {
	uint8_t		*buf;
	size_t		 room, len, max_room;
	size_t		 scan;		/* where the next request starts */
	int		 complete;	/* PS_IOV_FLUSH came */
	uint64_t	 pages;
};

static size_t
staging_round(size_t bytes)
{
	if (bytes < STAGING_ALIGN)
		bytes = STAGING_ALIGN;
	return (bytes + STAGING_ALIGN - 1) / STAGING_ALIGN * STAGING_ALIGN;
}

/* Fault every page in now: later the copy into it runs at memory speed. */
static void
staging_touch(uint8_t *p, size_t len)
{
	volatile uint8_t	*v = p;
	size_t			 off;

	(void)madvise(p, len, MADV_HUGEPAGE);	/* none here: 4 KiB pages */
	for (off = 0; off < len; off += PS_PAGE_SIZE)
		v[off] = 0;
}

struct staging *
staging_new(size_t bytes, size_t max_room, char **cause)
{
	struct staging	*s;
	void		*p;
	size_t		 room = staging_round(bytes);

	if (max_room < room)
		max_room = room;

	p = mmap(NULL, room, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		set_cause(cause, "cannot reserve %zu MiB to stage the pages: "
		    "%s", room >> 20, strerror(errno));
		return NULL;
	}
	staging_touch(p, room);
	s = xcalloc(1, sizeof *s);
	s->buf = p;
	s->room = room;
	s->max_room = max_room;
	return s;
}

void
staging_free(struct staging *s)
{
	if (s == NULL)
		return;
	munmap(s->buf, s->room);
	free(s);
}

/* Room for at least want more bytes: the stream outgrew the estimate.
 * An eighth more at a time: the budget counts the room, and a stream
 * that doubled would hold what other checkpoints could stage in. */
static int
staging_grow(struct staging *s, size_t want, char **cause)
{
	size_t	 room = staging_round(s->room + (s->room / 8 > want ?
	    s->room / 8 : want));
	void	*p;

	if (room > s->max_room)
		room = s->max_room;
	if (room - s->room < want) {
		set_cause(cause, "the pages outgrew the %zu MiB that could be "
		    "staged for them (the container grew since its size was "
		    "read, past what the staging budget had left: the next "
		    "checkpoint reads it again)", s->max_room >> 20);
		return -1;
	}
	p = mremap(s->buf, s->room, room, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		set_cause(cause, "the pages outgrew the %zu MiB staged for "
		    "them and %zu MiB cannot be had: %s", s->room >> 20,
		    room >> 20, strerror(errno));
		return -1;
	}
	(void)madvise((uint8_t *)p + s->room, room - s->room, MADV_HUGEPAGE);
	s->buf = p;
	s->room = room;
	return 0;
}

static int
staging_reply(int fd, const void *data, size_t len, char **cause)
{
	ssize_t	n;

	do
		n = write(fd, data, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		set_cause(cause, "answering criu's page transfer: %s",
		    n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

/* The requests whose header arrived whole since the last look. */
static int
staging_scan(struct staging *s, int reply_fd, char **cause)
{
	uint32_t	hdr[2], cmd, flags;
	uint64_t	data;
	int32_t		done = 0;
	char		parent = 0;

	while (s->scan <= s->len &&
	    s->len - s->scan >= PAGE_SERVER_REQUEST_SIZE) {
		memcpy(hdr, s->buf + s->scan, sizeof hdr);
		cmd = hdr[0] & 0xffffu;
		flags = hdr[0] >> 16;
		data = 0;
		if (s->complete) {
			set_cause(cause, "criu sent request %#x after the end "
			    "of its page transfer", cmd);
			return -1;
		}
		switch (cmd) {
		case PS_IOV_ADD:
			data = (uint64_t)hdr[1] * PS_PAGE_SIZE;
			break;
		case PS_IOV_ADD_F:
			if (flags & PE_PRESENT)
				data = (uint64_t)hdr[1] * PS_PAGE_SIZE;
			break;
		case PS_IOV_HOLE:
		case PS_IOV_OPEN:
			break;
		case PS_IOV_OPEN2:
			if (staging_reply(reply_fd, &parent, 1, cause) != 0)
				return -1;
			break;
		case PAGE_SERVER_FLUSH:
		case PAGE_SERVER_FLUSH_N_CLOSE:
			if (staging_reply(reply_fd, &done, sizeof done,
			    cause) != 0)
				return -1;
			s->complete = 1;
			break;
		default:
			set_cause(cause, "criu asked its page server for "
			    "request %#x (flags %#x), which a staged dump does "
			    "not serve (a CRIU whose page transfer differs "
			    "from 4.1's)", cmd, flags);
			return -2;
		}
		if (data > SIZE_MAX - PAGE_SERVER_REQUEST_SIZE - s->scan) {
			set_cause(cause, "criu announced %" PRIu64 " bytes of "
			    "pages in one request", data);
			return -1;
		}
		if (data != 0)
			s->pages += hdr[1];
		s->scan += PAGE_SERVER_REQUEST_SIZE + (size_t)data;
	}
	return 0;
}

int
staging_feed(struct staging *s, const uint8_t *data, size_t len,
    int reply_fd, char **cause)
{
	if (s->room - s->len < len && staging_grow(s, len, cause) != 0)
		return -1;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return staging_scan(s, reply_fd, cause);
}

int
staging_read(struct staging *s, int fd, char **cause)
{
	size_t	got = 0, want;
	ssize_t	n;
	int	rc;

	while (got < STAGING_READ_MAX) {
		if (s->room == s->len &&	/* a byte more is enough */
		    staging_grow(s, 1, cause) != 0)
			return -1;
		want = s->room - s->len;
		if (want > STAGING_READ_MAX - got)
			want = STAGING_READ_MAX - got;
		n = read(fd, s->buf + s->len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			set_cause(cause, "reading criu's pages: %s",
			    strerror(errno));
			return -1;
		}
		if (n == 0)
			return 1;
		s->len += (size_t)n;
		got += (size_t)n;
		if ((rc = staging_scan(s, fd, cause)) != 0)
			return rc;
	}
	return 0;
}

int
staging_complete(const struct staging *s)
{
	return s->complete && s->scan == s->len;
}

const uint8_t *
staging_data(const struct staging *s, size_t *len)
{
	*len = s->len;
	return s->buf;
}

uint64_t
staging_pages(const struct staging *s)
{
	return s->pages;
}

size_t
staging_room(const struct staging *s)
{
	return s->room;
}

void
staging_limit(struct staging *s, size_t max_room)
{
	s->max_room = max_room > s->room ? max_room : s->room;
}
