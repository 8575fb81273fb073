/* A framed connection on the event loop: a TCP connection with mutual
 * TLS between ternd processes, or a plain unix-socket connection between
 * ternctl and its local ternd.
 *
 * Memory stays bounded both ways: received frames are limited by the
 * maximum frame size; queued output above the send limit means the peer
 * is not reading, and the connection is closed rather than grown.
 * Producers of bulk data ask conn_writable() and wait for on_drain; a slow
 * consumer holds its sender back by credit (daemon/stream.h).
 *
 * Nor does one connection hold the loop: after CONN_TURN_BYTES moved
 * either way (encrypted and queued, or read, decrypted and dispatched)
 * it reads no more and is not writable until the loop has turned once;
 * then it reads again and calls on_drain.  No callback that feeds or
 * drains a connection runs long, whatever the queue and windows allow. */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "daemon/msg.h"

struct conn;
struct tls_ctx;

/* About a millisecond of AES-GCM and copying on a machine of today. */
#define CONN_TURN_BYTES		(1u << 20)

struct conn_ops {
	/* Handshake done: TLS verified (its peer name is known) or, for a
	 * plain connection, connected/accepted. */
	void	(*on_ready)(struct conn *);
	/* A decoded message; the connection frees it after the call. */
	void	(*on_msg)(struct conn *, Envelope *);
	/* A data frame on a channel; data is valid during the call only. */
	void	(*on_data)(struct conn *, uint16_t channel, const uint8_t *,
		    size_t);
	/* The output queue fell below the low watermark. */
	void	(*on_drain)(struct conn *);
	/* Last call: the connection is gone and is freed after it returns.
	 * cause is NULL after a clean close by this side. */
	void	(*on_close)(struct conn *, const char *cause);
};

struct conn_limits {
	uint32_t	max_frame;	/* largest payload received or sent */
	size_t		send_max;	/* conn_writable() below this */
	unsigned	handshake_ms;	/* connect + TLS deadline */
};

struct conn	*conn_new(uv_loop_t *, const struct conn_ops *,
		    const struct conn_limits *, const char *label, void *data);
/* Accept a pending connection on a listening stream; tls NULL for plain. */
int		 conn_accept(struct conn *, uv_stream_t *server,
		    struct tls_ctx *, char **cause);
/* Connect over TCP; the server's certificate must name expect_host. */
int		 conn_connect_tcp(struct conn *, const struct sockaddr *,
		    struct tls_ctx *, const char *expect_host, char **cause);
/* Connect to a unix socket, plain. */
int		 conn_connect_unix(struct conn *, const char *path, char **cause);

/* Queue a message or data frame.  -1 (and the connection closing) when it
 * is closing or the peer stopped reading. */
int		 conn_send_msg(struct conn *, const Envelope *);
int		 conn_send_data(struct conn *, uint16_t channel, const void *,
		    size_t);
/* Send Error{code,text} and close once it is out. */
void		 conn_send_error_close(struct conn *, int code, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4)));
int		 conn_writable(const struct conn *);
/* Bytes left of this turn's CONN_TURN_BYTES: a producer sends no more
 * in one callback (what it sends beyond goes out all the same). */
size_t		 conn_turn_room(const struct conn *);

/* Close; on_close follows from the loop.  Idempotent. */
void		 conn_close(struct conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
int		 conn_closing(const struct conn *);

void		*conn_data(const struct conn *);
void		 conn_set_data(struct conn *, void *);
const char	*conn_label(const struct conn *);
void		 conn_set_label(struct conn *, const char *);
/* Host name from the peer's verified certificate (TLS only), or NULL. */
const char	*conn_peer_name(const struct conn *);
/* Serial number of the peer's certificate (upper-case hex), or NULL. */
const char	*conn_peer_serial(const struct conn *);
/* TLS cipher suite in use, or "none". */
const char	*conn_cipher(const struct conn *);
/* Peer credentials on a unix socket: 0 and uid/gid/pid, else -1. */
int		 conn_peer_cred(const struct conn *, uid_t *, gid_t *, pid_t *);
/* The peer's supplementary groups as of its connect (SO_PEERGROUPS): how
 * many were stored (at most max), or -1 (then errno; ERANGE: more than
 * max). */
int		 conn_peer_groups(const struct conn *, gid_t *, int max);
/* Largest payload we may send: our own limit, lowered to the peer's once
 * it told us (conn_set_peer_max_frame). */
uint32_t	 conn_max_frame(const struct conn *);
void		 conn_set_peer_max_frame(struct conn *, uint32_t);
int		 conn_is_client(const struct conn *);
/* The peer accepts data frames without a payload CRC on a TLS connection
 * (daemon/frame.h, FRAME_FLAG_UNCHECKED): send them so from now on.  A
 * TLS connection always accepts them; a plain one never sends them. */
void		 conn_set_peer_unchecked(struct conn *);

#endif
