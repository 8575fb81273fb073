/* The peer mesh: the other ternd hosts this one talks to over mutual TLS.
 *
 * Each pair of hosts keeps one connection, dialled by the host whose name
 * sorts first (so the two never race); the other side accepts.  A
 * connection counts as up once both Hellos were exchanged and each side's
 * name matched its certificate.  Heartbeats (Ping/Pong) measure the round
 * trip and detect a dead link within peer_timeout_ms; the dialling side
 * reconnects with exponential back-off.
 *
 * The mesh is transport only: roles (the agent, the coordinator) register
 * handlers for the messages and stream kinds they serve and hear of lost
 * peers.  A message or stream kind nobody registered is refused. */
#ifndef TERN_MESH_H
#define TERN_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/msg.h"

struct mesh;
struct stream;
struct stream_mux;
struct ternd;

/* The peer table from td's configuration; no network yet.  The mesh reads
 * td's conf, tls and limits whenever it needs them (a reload replaces
 * them). */
struct mesh	*mesh_new(struct ternd *td);
/* Listen and dial: -1 and *cause if the listener cannot be opened. */
int		 mesh_start(struct mesh *, char **cause);
/* Close every connection and the listener; frees once they are closed. */
void		 mesh_stop(struct mesh *);
/* Apply a reloaded configuration: peers added, removed or moved, links
 * whose certificate is now revoked dropped. */
void		 mesh_reconfigure(struct mesh *);

/* --- what roles register, before mesh_start (mesh-use.c) ----------------- */

/* What this host can do, for its Hello: a NULL-terminated array of static
 * strings, asked for each Hello sent. */
typedef const char **(*mesh_caps_fn)(void *ctx, size_t *n);
void		 mesh_set_capabilities(struct mesh *, mesh_caps_fn, void *ctx);

/* What a host says of itself in its Hello, and in a HostState whenever
 * that changes (checked at each heartbeat, or at once through
 * mesh_state_changed). */
struct mesh_host_state {
	int		 drained;	/* takes no instance (ternctl host drain) */
	uint32_t	 instances;	/* how many it holds */
};
typedef void	(*mesh_state_fn)(void *ctx, struct mesh_host_state *);
void		 mesh_set_state_fn(struct mesh *, mesh_state_fn, void *ctx);

/* A message from an up peer with this body case (enum
 * Tern__Envelope__BodyCase): 1 if it was taken, 0 if not (the next
 * handler of that case is asked; when none takes it the peer is told
 * "unexpected message" and the link closes).  The mesh frees env. */
typedef int	(*mesh_msg_fn)(void *ctx, const char *peer, const Envelope *);
void		 mesh_on_message(struct mesh *, int body_case, mesh_msg_fn,
		    void *ctx);

/* An incoming stream of this kind: set its ops (stream_set_ops) and
 * return 0, or -1 and *cause to refuse it.  One handler per kind. */
typedef int	(*mesh_stream_fn)(void *ctx, const char *peer, struct stream *,
		    const char *name, uint64_t size, char **cause);
void		 mesh_on_stream(struct mesh *, Tern__StreamKind kind,
		    mesh_stream_fn, void *ctx);

/* A connection to the peer closed (up or not: a failed dial too), was
 * replaced by a new one, or the peer restarted (its Hello has a new boot
 * id): what it knew of our work is gone.  Every handler is called, in the
 * order registered. */
typedef void	(*mesh_lost_fn)(void *ctx, const char *peer, const char *why);
void		 mesh_on_peer_lost(struct mesh *, mesh_lost_fn, void *ctx);

/* Messages of this body case that this host sends to itself (mesh_send
 * to its own host name) are delivered to its own handlers, from a later
 * loop turn, as if they came from a peer named as this host: two roles
 * of one process (the agent and the coordinator) talk as they would
 * across hosts, and neither calls the other.  main wires it. */
void		 mesh_deliver_local(struct mesh *, int body_case);

/* --- using the links (mesh-use.c) ---------------------------------------- */

/* Fill reply->hosts (self first); free with mesh_hosts_free. */
void		 mesh_hosts(struct mesh *, Tern__HostsReply *);
void		 mesh_hosts_free(Tern__HostsReply *);
void		 mesh_count(struct mesh *, unsigned *total, unsigned *up);

/* Send to an up peer, or to this host itself for a body case delivered
 * locally (-1 and *cause if it is not, or the mesh is NULL: stopping),
 * its streams, whether it announced a capability. */
int		 mesh_send(struct mesh *, const char *host, const Envelope *,
		    char **cause);
struct stream_mux *mesh_mux(struct mesh *, const char *host);
int		 mesh_has_capability(struct mesh *, const char *host,
		    const char *cap);
/* Our state changed: tell the up peers now. */
void		 mesh_state_changed(struct mesh *);
/* A host's state: ours asked now, a peer's as it last said (kept while
 * it is down).  -1 if host is not in the mesh. */
int		 mesh_host_state(struct mesh *, const char *host,
		    struct mesh_host_state *);

/* Completion of an asynchronous peer operation: error NULL on success. */
typedef void (*mesh_ping_cb)(void *arg, uint64_t rtt_us, const char *error);
typedef void (*mesh_stream_test_cb)(void *arg, uint64_t bytes,
    uint64_t elapsed_ns, const char *error);

/* -1 and *cause when the host is unknown or not up; else cb follows. */
int		 mesh_ping(struct mesh *, const char *host, mesh_ping_cb,
		    void *arg, char **cause);
/* bytes of a pattern into the peer's "sink" (accept_test_streams). */
int		 mesh_stream_test(struct mesh *, const char *host,
		    uint64_t bytes, mesh_stream_test_cb, void *arg,
		    char **cause);

#endif
