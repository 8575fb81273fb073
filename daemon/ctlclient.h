/* The client side of the control socket, for ternctl: blocking, one
 * request at a time, every wait bounded by a timeout. */
#ifndef TERN_CTLCLIENT_H
#define TERN_CTLCLIENT_H

#include "daemon/msg.h"

struct ctlclient;

struct ctlclient	*ctlclient_connect(const char *path, char **cause);
void			 ctlclient_close(struct ctlclient *);
/* Send a request (its request_id is assigned here). */
int			 ctlclient_send(struct ctlclient *, Envelope *, char **cause);
/* Wait up to timeout_ms for the next message.  An Error body is returned
 * like any other message. */
Envelope		*ctlclient_recv(struct ctlclient *, int timeout_ms,
			    char **cause);
/* send + recv; an Error reply becomes NULL with *cause = its text.
 * Progress reports (MigrateProgress, HostDrainProgress) before the answer go to progress
 * when it is set, and are skipped otherwise; the timeout counts from the
 * last message. */
typedef void (*ctlclient_progress_fn)(const Envelope *, void *arg);
Envelope		*ctlclient_call(struct ctlclient *, Envelope *,
			    int timeout_ms, ctlclient_progress_fn, void *arg,
			    char **cause);

#endif
