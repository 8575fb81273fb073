/* A leave-running dump's memory pages, staged in memory.
 *
 * CRIU's dump holds the container frozen until every page is written.
 * Into new page cache that is slow wherever fresh memory is dear (1.7 to
 * 2.5 s per GiB on the test machine, where a first touch costs a fault
 * on the hypervisor's side).  Staged, CRIU sends its pages over its
 * page-server protocol (`--page-server --ps-socket`) to ternd, which
 * keeps the stream, as sent, in memory reserved and touched before the
 * freeze (huge pages where the kernel gives them): the freeze lasts as
 * long as the copy into memory already ours.  After the thaw the stream
 * goes to CRIU's own page server, which writes the usual page images;
 * the checkpoint is then hashed and published as any other.
 *
 * This side of the protocol answers what a dump asks (PS_IOV_OPEN2: no
 * parent; PS_IOV_FLUSH: done) and refuses what a plain dump never sends,
 * so a CRIU whose protocol differs fails the dump (which thaws the
 * container) instead of being misread. */
#ifndef TERN_CHECKPOINT_STAGING_H
#define TERN_CHECKPOINT_STAGING_H

#include <stddef.h>
#include <stdint.h>

struct staging;

/* Room for about bytes of stream, reserved and touched now: a blocking
 * call (seconds per GiB where fresh memory is dear), for the thread
 * pool.  The stream may grow to max_room bytes, no further.  NULL and
 * *cause if the memory cannot be had. */
struct staging	*staging_new(size_t bytes, size_t max_room, char **cause);
void		 staging_free(struct staging *);

/* Take what fd (non-blocking, CRIU's end of the page-server socket's
 * twin) has now into the stream and answer the requests that ask.  The
 * stream grows past its room if it must (slower: that memory is new),
 * up to max_room.  0: more may come; 1: CRIU closed its end; -1: the
 * stream outgrew max_room, or the socket failed (*cause); -2: CRIU
 * asked for a request this side does not serve (*cause). */
int		 staging_read(struct staging *, int fd, char **cause);
/* Feed bytes (a test): as read from the socket, answers to reply_fd;
 * returns as staging_read does, without 1. */
int		 staging_feed(struct staging *, const uint8_t *, size_t,
		    int reply_fd, char **cause);
/* 1 once the dump ended its transfer (PS_IOV_FLUSH): the stream is
 * whole only then. */
int		 staging_complete(const struct staging *);
const uint8_t	*staging_data(const struct staging *, size_t *len);
/* Pages (4 KiB) the stream carries. */
uint64_t	 staging_pages(const struct staging *);
/* The memory it holds now (its room: at least the stream). */
size_t		 staging_room(const struct staging *);
/* From now on the stream may grow to max_room, no further (never less
 * than its room): a budget shared with others is read again before
 * each read, not only at the start. */
void		 staging_limit(struct staging *, size_t max_room);

#endif
