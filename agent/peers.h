/* Peers: the other ternd hosts this agent talks to over mutual TLS.
 *
 * Each pair of hosts keeps one connection, dialled by the host whose name
 * sorts first (so the two never race); the other side accepts.  A
 * connection counts as up once both Hellos were exchanged and each side's
 * name matched its certificate.  Heartbeats (Ping/Pong) measure the round
 * trip and detect a dead link within peer_timeout_ms; the dialling side
 * reconnects with exponential back-off. */
#ifndef TERN_AGENT_PEERS_H
#define TERN_AGENT_PEERS_H

#include <stdint.h>

#include "agent/agent.h"
#include "daemon/msg.h"

struct peers;

/* The peer table from the configuration; no network yet. */
struct peers	*peers_new(struct agent *);
/* Listen and dial: -1 and *cause if the listener cannot be opened. */
int		 peers_start(struct peers *, char **cause);
/* Close every connection and the listener; frees once they are closed. */
void		 peers_stop(struct peers *);
/* Apply a reloaded configuration: peers added, removed or moved. */
void		 peers_reconfigure(struct peers *);

/* Fill reply->hosts (self first); free with peers_hosts_free. */
void		 peers_hosts(struct peers *, Tern__HostsReply *);
void		 peers_hosts_free(Tern__HostsReply *);
void		 peers_count(struct peers *, unsigned *total, unsigned *up);

/* For migrations: send to an up peer (-1 and *cause if it is not), its
 * streams, whether it announced a capability. */
int		 peers_send(struct peers *, const char *host, const Envelope *,
		    char **cause);
struct stream_mux *peers_mux(struct peers *, const char *host);
int		 peers_has_capability(struct peers *, const char *host,
		    const char *cap);

/* Completion of an asynchronous peer operation: error NULL on success. */
typedef void (*peers_ping_cb)(void *arg, uint64_t rtt_us, const char *error);
typedef void (*peers_stream_test_cb)(void *arg, uint64_t bytes,
    uint64_t elapsed_ns, const char *error);

/* -1 and *cause when the host is unknown or not up; else cb follows. */
int		 peers_ping(struct peers *, const char *host, peers_ping_cb,
		    void *arg, char **cause);
int		 peers_stream_test(struct peers *, const char *host,
		    uint64_t bytes, peers_stream_test_cb, void *arg,
		    char **cause);

#endif
