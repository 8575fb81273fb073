/* Relays: a local socket carried over a peer's streams, both ways.
 *
 * A process that speaks its own protocol on a socket (CRIU's page server
 * and its lazy-pages daemon, later libvirt and QEMU) gets one end of a
 * socketpair; ternd holds the other and relays it to the peer over two
 * one-way streams, one opened by each side under the same name.  Every
 * byte therefore travels inside the mutual-TLS connection, CRC-checked
 * and under credit flow control; nothing listens on the network.
 *
 * Backpressure both ways: bytes from the peer are acknowledged
 * (stream_consumed) only once the local socket took them, and the socket
 * is read only while the outgoing stream has credit. */
#ifndef TERN_MIGRATE_RELAY_H
#define TERN_MIGRATE_RELAY_H

#include <stdint.h>

#include <uv.h>

#include "daemon/stream.h"

#define RELAY_STREAM_KIND	TERN__STREAM_KIND__STREAM_RELAY

struct relay;

/* Once: error NULL when both directions ended cleanly (the local side
 * closed after the peer's stream ended whole); else why it broke.  The
 * local socket stays open until relay_free, so the caller decides what
 * its process sees (an EOF, or nothing until it is killed). */
typedef void (*relay_done_cb)(void *arg, const char *error);

/* Relay fd (made non-blocking; the relay owns it).  what names it in
 * messages ("mig 1a2b pages"). */
struct relay	*relay_new(uv_loop_t *, int fd, const char *what,
		    relay_done_cb, void *arg);
/* Open our direction towards the peer, held to limit (NULL: none).  -1
 * and *cause if the peer cannot be reached. */
int		 relay_open(struct relay *, struct stream_mux *, const char *name,
		    struct ratelimit *limit, char **cause);
/* The peer's direction arrived (from the stream accept callback).  -1
 * and *cause if it had arrived already (or the relay is over): the
 * caller refuses the stream, the relay goes on with the first. */
int		 relay_attach(struct relay *, struct stream *, char **cause);
/* Bytes carried so far: from the local socket to the peer, and back. */
uint64_t	 relay_bytes_out(const struct relay *);
uint64_t	 relay_bytes_in(const struct relay *);
/* Gate the peer's direction: gate(arg, data, len) returns how many bytes
 * at the start of data may reach the local socket now.  What it keeps
 * (and everything after it, and the peer's end) waits, and is offered to
 * it again with what arrives next, until relay_gate_open lets it all
 * through.  For a protocol whose last word must wait for a decision
 * (CRIU's page server ends a transfer, and kills its tree, on one). */
typedef size_t	(*relay_gate_fn)(void *arg, const uint8_t *data, size_t len);
void		 relay_set_gate(struct relay *, relay_gate_fn, void *arg);
void		 relay_gate_open(struct relay *);
/* Watch the bytes as they cross, in order: out(arg, data, len) gets what
 * was read from the local socket before it goes to the peer (it may
 * change it: a fault test), in(arg, data, len) what arrived from the
 * peer before it reaches the socket.  On the loop thread: keep it cheap
 * (a CRC of one read, at most 1 MiB).  NULL: not watched. */
typedef void	(*relay_tap_out_fn)(void *arg, uint8_t *data, size_t len);
typedef void	(*relay_tap_in_fn)(void *arg, const uint8_t *data, size_t len);
void		 relay_set_tap(struct relay *, relay_tap_out_fn,
		    relay_tap_in_fn, void *arg);
/* Stop reading the local socket until called again with 0 (the peer's
 * direction goes on): a tap that cannot keep up (a disk it copies to)
 * holds the process writing there back, as the stream's credit does. */
void		 relay_pause_out(struct relay *, int paused);
/* Bytes the gate holds back now. */
size_t		 relay_gate_held(const struct relay *);
/* 1 once the peer's direction ended cleanly (it has said all it will). */
int		 relay_peer_ended(const struct relay *);
/* The local socket, to say a last word to its process before relay_free. */
int		 relay_local_fd(const struct relay *);
/* Stop: abort both streams, close the socket; no callback follows. */
void		 relay_free(struct relay *);

#endif
