/* Inside the peer mesh: shared by mesh.c (links) and mesh-use.c (what
 * roles and ternctl do over them).  Nothing else includes this. */
#ifndef TERN_MESH_INTERNAL_H
#define TERN_MESH_INTERNAL_H

#include <stdint.h>

#include <uv.h>

#include "daemon/mesh.h"

enum peer_state {
	PEER_CONNECTING,	/* dialling, handshaking, or waiting to be dialled */
	PEER_UP,		/* Hellos exchanged */
	PEER_DOWN,		/* lost or failed; last_error says why */
};

extern const char *const mesh_peer_state_names[];

/* A request sent to a peer that waits for its answer. */
struct peer_wait {
	struct peer_wait	*next;
	uint64_t		 id;
	uint64_t		 sent_ns;
	mesh_ping_cb		 cb;
	void			*arg;
};

/* What a peer connection's data points to: a known peer, or an accepted
 * connection not yet identified.  Both start with this tag. */
enum peer_obj {
	PEER_OBJ_PEER,
	PEER_OBJ_PENDING,
};

struct mesh_peer {
	enum peer_obj		 obj;
	struct mesh		*mesh;
	struct mesh_peer	*next;
	char			*name;
	char			*address;
	int			 port;
	int			 dialer;	/* we dial this one */
	int			 removed;	/* dropped by a reload or stop */
	int			 timer_closed;

	enum peer_state		 state;
	uint64_t		 since_ms;
	char			*last_error;
	struct conn		*conn;
	struct stream_mux	*mux;
	uint64_t		 last_rx_ms;
	uint64_t		 rtt_us;
	char			*software;
	char			**caps;
	size_t			 ncaps;
	uint64_t		 boot_id;
	struct mesh_host_state	 hstate;	/* as it last said */
	struct mesh_host_state	 hsent;		/* ours, as we last said */

	uv_timer_t		 timer;		/* heartbeat or reconnect */
	unsigned		 backoff_ms;
	uv_getaddrinfo_t	 gai;
	int			 resolving;

	struct peer_wait	*waits;
	uint64_t		 next_id;
};

/* Handlers the roles registered. */
struct mesh_msg_handler {
	struct mesh_msg_handler	*next;
	int			 body_case;
	mesh_msg_fn		 fn;
	void			*ctx;
};

struct mesh_stream_handler {
	struct mesh_stream_handler *next;
	Tern__StreamKind	 kind;
	mesh_stream_fn		 fn;
	void			*ctx;
};

struct mesh_lost_handler {
	struct mesh_lost_handler *next;
	mesh_lost_fn		 fn;
	void			*ctx;
};

/* Body cases a host may send to itself (two roles' messages). */
#define MESH_LOCAL_MAX	32

struct mesh_local_msg;

struct mesh {
	struct ternd		*td;
	struct mesh_peer	*list;
	uv_tcp_t		 listener;
	int			 started;	/* listening and dialling */
	int			 stopping;
	int			 listener_closed;
	struct peer_pending	*pending;	/* accepted, not identified yet */
	int			 npending;
	int			 refusing;	/* refused sockets not yet closed */
	uint64_t		 refused;	/* since the last warning */
	uint64_t		 refused_warned_ms;

	mesh_caps_fn		 caps_fn;
	void			*caps_ctx;
	mesh_state_fn		 state_fn;
	void			*state_ctx;
	struct mesh_msg_handler	*on_msg;
	struct mesh_stream_handler *on_stream;
	struct mesh_lost_handler *on_lost;

	/* Messages to this host itself (mesh_deliver_local). */
	int			 local_cases[MESH_LOCAL_MAX];
	size_t			 nlocal;
	struct mesh_local_msg	*local, **local_tail;
	uv_timer_t		*local_timer;	/* NULL until one is sent */

	/* Every peer of list by name (open addressing, NULL empty), built
	 * at the first mesh_find after one was added or released: a
	 * coordinator finds a peer for each of its agents' renewals. */
	struct mesh_peer	**ix;
	size_t			 ixcap;		/* a power of two */
	int			 ix_stale;
};

/* mesh.c */
/* A configured peer by name (not one removed by a reload), or NULL. */
struct mesh_peer *mesh_find(struct mesh *, const char *name);
/* The peer if it is up, else NULL and *cause (when not NULL). */
struct mesh_peer *mesh_find_up(struct mesh *, const char *host, char **cause);

/* mesh-use.c */
/* Our state now (zero when no role set it). */
void		 mesh_self_state(struct mesh *, struct mesh_host_state *);
/* Send ours to p if it changed since p last heard it (p up). */
void		 mesh_send_state(struct mesh_peer *p);
/* The roles' handlers, when the mesh is freed. */
void		 mesh_handlers_free(struct mesh *);
/* mesh_stop: drop what was sent to this host and not delivered yet. */
void		 mesh_local_stop(struct mesh *);
/* The sink stream kind: a test's bytes into nothing. */
int		 mesh_accept_sink(void *ctx, const char *peer, struct stream *,
		    const char *name, uint64_t size, char **cause);

#endif
