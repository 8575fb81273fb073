/* checkpoint/staging: the page-server side a staged dump talks to.  A
 * fake dump (this test) writes CRIU's requests; the staging keeps the
 * stream as sent, answers what asks for an answer, and refuses what a
 * plain dump never sends. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/staging.h"

#define PAGE	4096u

struct wire {
	uint8_t	*buf;
	size_t	 len;
};

/* A request as CRIU writes it: u32 cmd, u32 nr_pages, u64 vaddr, u64 id;
 * pages (a byte pattern) follow when present. */
static void
req(struct wire *w, uint32_t cmd, uint32_t nr, int pages)
{
	uint64_t	vaddr = 0x7f0000000000ull, id = 0x101;
	size_t		data = pages ? (size_t)nr * PAGE : 0, i;

	w->buf = realloc(w->buf, w->len + 24 + data);
	assert_non_null(w->buf);
	memcpy(w->buf + w->len, &cmd, 4);
	memcpy(w->buf + w->len + 4, &nr, 4);
	memcpy(w->buf + w->len + 8, &vaddr, 8);
	memcpy(w->buf + w->len + 16, &id, 8);
	for (i = 0; i < data; i++)
		w->buf[w->len + 24 + i] = (uint8_t)(i * 7 + nr);
	w->len += 24 + data;
}

/* A plain dump's conversation: open, pages (present, and not), flush. */
static void
dump_stream(struct wire *w, uint32_t pages)
{
	req(w, 4, 0, 0);			/* OPEN2 */
	req(w, 6 | (4u << 16), pages, 1);	/* ADD_F, PE_PRESENT */
	req(w, 6 | (1u << 16), 3, 0);		/* ADD_F, PE_PARENT: none */
	req(w, 2, 1, 0);			/* HOLE */
	req(w, 1, 1, 1);			/* ADD: a page follows */
	req(w, 0x1023, 0, 0);			/* FLUSH */
}

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void
done_with(struct staging *s, struct wire *w, int sv[2])
{
	staging_free(s);
	free(w->buf);
	close(sv[0]);
	close(sv[1]);
}

/* What the staging answered: one byte per OPEN2, four per FLUSH. */
static size_t
answers(int fd, uint8_t *buf, size_t len)
{
	ssize_t	n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	n = read(fd, buf, len);
	return n < 0 ? 0 : (size_t)n;
}

static void
test_keeps_the_stream_and_answers(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	const uint8_t	*data;
	uint8_t		 ans[16];
	size_t		 len, off;
	char		*cause = NULL;
	int		 sv[2];

	(void)state;
	pair(sv);
	dump_stream(&w, 5);
	assert_non_null(s = staging_new(1, 64u << 20, &cause));
	/* Byte by byte and in odd pieces: requests split anywhere. */
	for (off = 0; off < 100; off++)
		assert_int_equal(staging_feed(s, w.buf + off, 1, sv[0],
		    &cause), 0);
	assert_false(staging_complete(s));
	for (; off < w.len; off += 4099)
		assert_int_equal(staging_feed(s, w.buf + off,
		    w.len - off < 4099 ? w.len - off : 4099, sv[0], &cause), 0);
	assert_true(staging_complete(s));
	assert_int_equal(staging_pages(s), 6);
	data = staging_data(s, &len);
	assert_int_equal(len, w.len);
	assert_memory_equal(data, w.buf, w.len);
	assert_int_equal(answers(sv[1], ans, sizeof ans), 5);
	assert_int_equal(ans[0], 0);		/* no parent */
	assert_int_equal(ans[1] | ans[2] | ans[3] | ans[4], 0);
	done_with(s, &w, sv);
}

/* The stream outgrows the room estimated for it: it grows, whole. */
static void
test_grows_past_its_room(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	const uint8_t	*data;
	size_t		 len;
	char		*cause = NULL;
	int		 sv[2];

	(void)state;
	pair(sv);
	dump_stream(&w, 1200);			/* 4.7 MiB: past 2 MiB */
	assert_non_null(s = staging_new(1, 64u << 20, &cause));
	assert_int_equal(staging_feed(s, w.buf, w.len, sv[0], &cause), 0);
	assert_true(staging_complete(s));
	data = staging_data(s, &len);
	assert_int_equal(len, w.len);
	assert_memory_equal(data, w.buf, w.len);
	done_with(s, &w, sv);
}

/* ... but not past the most it may hold. */
static void
test_stops_at_its_most(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	char		*cause = NULL;
	int		 sv[2];

	(void)state;
	pair(sv);
	dump_stream(&w, 1200);
	assert_non_null(s = staging_new(1, 2u << 20, &cause));
	assert_int_equal(staging_feed(s, w.buf, w.len, sv[0], &cause), -1);
	assert_non_null(strstr(cause, "outgrew the 2 MiB"));
	free(cause);
	done_with(s, &w, sv);
}

/* A limit set after the start holds (the budget, shared with other
 * dumps, had less left): the stream stops there, and grows again once
 * the limit rises.  The room it holds is what it reports. */
static void
test_a_later_limit_holds(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	char		*cause = NULL;
	size_t		 half, len;
	int		 sv[2];

	(void)state;
	pair(sv);
	dump_stream(&w, 1200);			/* 4.7 MiB */
	assert_non_null(s = staging_new(1, 64u << 20, &cause));
	assert_int_equal(staging_room(s), 2u << 20);
	half = w.len / 2;			/* 2.3 MiB: past the room */
	staging_limit(s, 1);			/* never below the room */
	assert_int_equal(staging_feed(s, w.buf, 1u << 20, sv[0], &cause), 0);
	assert_int_equal(staging_feed(s, w.buf + (1u << 20), half - (1u << 20),
	    sv[0], &cause), -1);
	assert_non_null(strstr(cause, "outgrew the 2 MiB"));
	free(cause);
	cause = NULL;
	staging_data(s, &len);
	assert_int_equal(len, 1u << 20);	/* nothing of the refused read */
	staging_limit(s, 64u << 20);
	assert_int_equal(staging_feed(s, w.buf + len, w.len - len, sv[0],
	    &cause), 0);
	assert_true(staging_complete(s));
	assert_true(staging_room(s) >= w.len);
	done_with(s, &w, sv);
}

/* A socketpair on which neither the test's writes nor the staging's
 * reads block. */
static void
pair_nonblocking(int sv[2])
{
	pair(sv);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
}

/* Write what the socket takes of w from *off on and let the staging
 * read it, until it answers other than 0, or (until_growth) its room
 * grew, or all is written. */
static int
pump(struct staging *s, const struct wire *w, int sv[2], size_t *off,
    int until_growth, char **cause)
{
	size_t	room = staging_room(s);
	ssize_t	n;
	int	rc = 0;

	while (rc == 0 && *off < w->len &&
	    (!until_growth || staging_room(s) == room)) {
		n = write(sv[1], w->buf + *off, w->len - *off);
		if (n > 0)
			*off += (size_t)n;
		rc = staging_read(s, sv[0], cause);
	}
	return rc;
}

/* Read from a socket, it grows by an eighth of its room at a time, and
 * only as far as the limit set between reads allows: to the last byte
 * of it, then no further. */
static void
test_reads_grow_within_the_limit(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	size_t		 off = 0;
	char		*cause = NULL;
	int		 sv[2];

	(void)state;
	pair_nonblocking(sv);
	dump_stream(&w, 8192);			/* 32 MiB */
	assert_non_null(s = staging_new(16u << 20, 64u << 20, &cause));
	assert_int_equal(staging_room(s), 16u << 20);
	staging_limit(s, 17u << 20);		/* half a huge page more */
	assert_int_equal(pump(s, &w, sv, &off, 1, &cause), 0);
	assert_int_equal(staging_room(s), 17u << 20);	/* the last MiB */
	assert_int_equal(pump(s, &w, sv, &off, 0, &cause), -1);
	assert_non_null(strstr(cause, "outgrew the 17 MiB"));	/* no more */
	free(cause);
	cause = NULL;
	done_with(s, &w, sv);

	/* Unlimited, the next growth is an eighth of the room. */
	w.buf = NULL;
	w.len = 0;
	off = 0;
	pair_nonblocking(sv);
	dump_stream(&w, 8192);
	assert_non_null(s = staging_new(16u << 20, 64u << 20, &cause));
	assert_int_equal(pump(s, &w, sv, &off, 1, &cause), 0);
	assert_int_equal(staging_room(s), 18u << 20);	/* 16 + 16/8 */
	done_with(s, &w, sv);
}

/* What a plain dump never sends is refused, with its number. */
static void
test_refuses_other_requests(void **state)
{
	static const uint32_t	 bad[] = { 5, 7, 8, 0, 0x1025 };
	struct staging		*s;
	struct wire		 w;
	char			*cause = NULL;
	size_t			 i;
	int			 sv[2];

	(void)state;
	pair(sv);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		w.buf = NULL;
		w.len = 0;
		req(&w, 4, 0, 0);
		req(&w, bad[i], 1, 0);
		assert_non_null(s = staging_new(1, 64u << 20, &cause));
		assert_int_equal(staging_feed(s, w.buf, w.len, sv[0], &cause),
		    -2);
		assert_non_null(cause);
		assert_non_null(strstr(cause, "does not serve"));
		free(cause);
		cause = NULL;
		staging_free(s);
		free(w.buf);
	}
	/* Nor anything after the end of the transfer. */
	w.buf = NULL;
	w.len = 0;
	dump_stream(&w, 1);
	req(&w, 6 | (4u << 16), 1, 1);
	assert_non_null(s = staging_new(1, 64u << 20, &cause));
	assert_int_equal(staging_feed(s, w.buf, w.len, sv[0], &cause), -1);
	assert_non_null(strstr(cause, "after the end"));
	free(cause);
	done_with(s, &w, sv);
}

/* From a socket, as the loop reads it: everything (past the room it
 * started with), then CRIU's close. */
static void
test_reads_a_socket(void **state)
{
	struct staging	*s;
	struct wire	 w = { NULL, 0 };
	const uint8_t	*data;
	uint8_t		 ans[8];
	size_t		 len, off = 0;
	ssize_t		 n;
	char		*cause = NULL;
	int		 sv[2], rc = 0;

	(void)state;
	pair_nonblocking(sv);
	dump_stream(&w, 600);
	assert_non_null(s = staging_new(1, 64u << 20, &cause));
	while (rc == 0) {
		if (off < w.len) {
			n = write(sv[1], w.buf + off, w.len - off);
			if (n > 0)
				off += (size_t)n;
			else
				assert_int_equal(errno, EAGAIN);
			if (off == w.len)
				shutdown(sv[1], SHUT_WR);
		}
		rc = staging_read(s, sv[0], &cause);
	}
	assert_int_equal(rc, 1);
	assert_true(staging_complete(s));
	data = staging_data(s, &len);
	assert_int_equal(len, w.len);
	assert_memory_equal(data, w.buf, w.len);
	assert_int_equal(read(sv[1], ans, sizeof ans), 5);
	done_with(s, &w, sv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keeps_the_stream_and_answers),
		cmocka_unit_test(test_grows_past_its_room),
		cmocka_unit_test(test_stops_at_its_most),
		cmocka_unit_test(test_a_later_limit_holds),
		cmocka_unit_test(test_reads_grow_within_the_limit),
		cmocka_unit_test(test_refuses_other_requests),
		cmocka_unit_test(test_reads_a_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
