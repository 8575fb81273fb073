/* HTTP requests on the libuv loop: libcurl's multi interface, its sockets
 * watched by uv_poll and its timeouts by a uv_timer, so a slow or dead
 * server never blocks the loop.  Only what the etcd store needs: POSTs of
 * JSON with a deadline, the whole answer delivered at once.
 *
 * Callback contract: http_post returns -1 and *cause on a failure found
 * at once (the callback never runs); otherwise the callback runs exactly
 * once, from the loop, never from inside http_post, unless the client is
 * freed first (then it runs with error "cancelled"). */
#ifndef TERN_COORD_HTTP_H
#define TERN_COORD_HTTP_H

#include <stddef.h>

#include <uv.h>

struct http;

/* status: the HTTP status; 0 when no answer came, -1 when the request
 * surely never reached the server (no connection could be made: another
 * server may be asked safely).  body: the answer, NUL-terminated, valid
 * during the call; error: set when no answer came (connection refused,
 * timeout, answer too large). */
typedef void	(*http_cb)(void *arg, long status, const char *body,
		    size_t len, const char *error);

/* TLS material for https endpoints (all NULL for http). */
struct http_tls {
	const char	*ca_file;
	const char	*cert_file;
	const char	*key_file;
};

struct http	*http_new(uv_loop_t *, const struct http_tls *, char **cause);
/* POST body (JSON) to url; the answer within timeout_ms, at most max
 * bytes.  headers: NULL-terminated extra header lines, or NULL. */
int		 http_post(struct http *, const char *url, const char *body,
		    const char *const *headers, long timeout_ms, size_t max,
		    http_cb, void *arg, char **cause);
/* Requests still open are answered "cancelled" first. */
void		 http_free(struct http *);

#endif
