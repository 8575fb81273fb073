/* The control socket: a unix socket on which the local ternd serves
 * ternctl.  Only root and processes that have the control group (as
 * primary or supplementary group) get in, judged on the credentials the
 * kernel recorded at connect (SO_PEERCRED, SO_PEERGROUPS), never on the
 * user database; everyone else is told why and disconnected.  The group
 * (a name, resolved once at start, or a number) is root-equivalent: see
 * docs/security.md. */
#ifndef TERN_CTLSOCK_H
#define TERN_CTLSOCK_H

#include <uv.h>

#include "daemon/conn.h"
#include "daemon/msg.h"

struct ctlsock;
/* One ternctl connection.  Requests may be answered later: hold a
 * reference (ctl_client_ref) across the wait; replies to a client that
 * went away are dropped. */
struct ctl_client;

typedef void (*ctlsock_request_fn)(struct ctl_client *, const Envelope *,
    void *arg);

struct ctlsock	*ctlsock_listen(uv_loop_t *, const char *path,
		    const char *group, const struct conn_limits *,
		    ctlsock_request_fn, void *arg, char **cause);
/* Stop listening, drop every client, remove the socket file. */
void		 ctlsock_close(struct ctlsock *);

void		 ctl_client_ref(struct ctl_client *);
void		 ctl_client_unref(struct ctl_client *);
/* Send a reply; its request_id must be set by the caller. */
void		 ctl_client_reply(struct ctl_client *, const Envelope *);
void		 ctl_client_error(struct ctl_client *, uint64_t request_id,
		    int code, const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));

#endif
