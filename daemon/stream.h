/* Streams: one-way byte streams multiplexed on a peer connection, the
 * carrier for files, memory pages and raw tunnels in later work.
 *
 * Flow control is by credit: the receiver grants bytes with StreamWindow
 * as its consumer makes progress (stream_consumed), the sender never has
 * more in flight than it was granted, and the connection's output queue is
 * bounded too.  A slow consumer therefore holds back its sender, and
 * neither side's memory grows with the stream's size.
 *
 * Life of a stream: opener sends StreamOpen; receiver answers with a first
 * StreamWindow (accept) or StreamEnd with an error (refuse); data frames
 * follow; the sender's StreamEnd carries the byte count, and the receiver
 * confirms with its own StreamEnd (bytes it received).  Channel numbers are
 * odd for streams opened by the connecting side, even for the other.
 *
 * A sender may also be held to a rate shared with other streams
 * (stream_set_limit, daemon/ratelimit.h).  Whatever holds it back,
 * credit, connection room or the rate, its own wake-up calls on_writable:
 * a StreamWindow, the connection's drain, or the limit's timer. */
#ifndef TERN_STREAM_H
#define TERN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/conn.h"
#include "daemon/msg.h"

struct ratelimit;
struct stream;
struct stream_mux;

struct stream_ops {
	/* Receiver: bytes arrived.  Call stream_consumed when they are dealt
	 * with (now or later); unconsumed bytes hold back the sender. */
	void	(*on_data)(struct stream *, const uint8_t *, size_t);
	/* Sender: more may be sent now (credit and connection room). */
	void	(*on_writable)(struct stream *);
	/* Both: the stream ended.  error NULL on success (the receiver got
	 * every byte).  The stream is freed after the call. */
	void	(*on_end)(struct stream *, uint64_t bytes, const char *error);
};

/* Decide on an incoming stream: set its ops with stream_set_ops and
 * return 0, or return -1 with *cause to refuse it. */
typedef int (*stream_accept_fn)(struct stream_mux *, struct stream *,
    Tern__StreamKind kind, const char *name, uint64_t size, char **cause);

struct stream_mux	*stream_mux_new(struct conn *, uint32_t window,
			    stream_accept_fn, void *data);
/* The connection is gone: every open stream ends with cause. */
void			 stream_mux_free(struct stream_mux *, const char *cause);
void			*stream_mux_data(const struct stream_mux *);
/* Feed from the connection's callbacks.  msg returns 1 if it was a stream
 * message; -1 means a protocol violation and the connection was closed. */
int			 stream_mux_msg(struct stream_mux *, const Envelope *);
void			 stream_mux_data_frame(struct stream_mux *, uint16_t channel,
			    const uint8_t *, size_t);
void			 stream_mux_drain(struct stream_mux *);
/* Data bytes received on the streams an owner marked as its own (a
 * migration's images, rootfs and pages): its progress, whatever else the
 * peer sends.  Refcounted: each marked stream holds it until it ends. */
struct stream_tally;
struct stream_tally	*stream_tally_new(void);
void			 stream_tally_unref(struct stream_tally *);
uint64_t		 stream_tally_bytes(const struct stream_tally *);
unsigned		 stream_tally_streams(const struct stream_tally *);	/* open */
void			 stream_set_tally(struct stream *, struct stream_tally *);
/* Data bytes received on every stream so far: the peer is sending. */
uint64_t		 stream_mux_bytes_in(const struct stream_mux *);

/* Open a stream towards the peer; on_writable fires once it is accepted. */
struct stream		*stream_open(struct stream_mux *,
			    Tern__StreamKind kind, const char *name,
			    uint64_t size, const struct stream_ops *,
			    void *data);
void			 stream_set_ops(struct stream *, const struct stream_ops *,
			    void *data);
void			*stream_data(const struct stream *);
uint16_t		 stream_channel(const struct stream *);
/* Send up to len bytes; returns how many were taken (0: wait for
 * on_writable).  Held back by its rate limit, even in part, the stream
 * gets on_writable once tokens are due.  Data is copied. */
size_t			 stream_send(struct stream *, const void *, size_t);
/* No more data: send StreamEnd; on_end follows the receiver's answer. */
void			 stream_finish(struct stream *);
/* Sender: count every byte against rl (shared, referenced while the
 * stream lives); NULL for none. */
void			 stream_set_limit(struct stream *, struct ratelimit *);
/* End now with an error, either side. */
void			 stream_abort(struct stream *, int code, const char *fmt, ...)
			    __attribute__((format(printf, 3, 4)));
/* Receiver: n bytes handed to on_data are dealt with. */
void			 stream_consumed(struct stream *, size_t n);

#endif
