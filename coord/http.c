/* libcurl's multi interface driven by the libuv loop (see http.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "coord/http.h"
#include "daemon/log.h"
#include "daemon/xmalloc.h"

struct http_req {
	struct http_req		*next;
	struct http		*h;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*buf;
	size_t			 len, cap, max;
	int			 too_large;
	char			 errbuf[CURL_ERROR_SIZE];
	http_cb			 cb;
	void			*arg;
};

/* One socket libcurl asked us to watch. */
struct http_sock {
	uv_poll_t		 poll;
	curl_socket_t		 fd;
	struct http		*h;
};

struct http {
	uv_loop_t		*loop;
	CURLM			*multi;
	uv_timer_t		 timer;
	struct http_req		*reqs;
	struct http_tls		 tls;
	char			*ca_file, *cert_file, *key_file;
	int			 freeing;
};

static int	curl_ready;

static void
http_req_unlink(struct http_req *r)
{
	struct http_req	**pp;

	for (pp = &r->h->reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

static void
http_req_free(struct http_req *r)
{
	curl_multi_remove_handle(r->h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->buf);
	free(r);
}

/* The request never reached the server (refused, no route, or no answer
 * to the connection attempt: a crashed host's packets are dropped, not
 * refused): asking another one is safe.  A timeout counts only if not a
 * byte of the request left (on a reused connection it may have). */
static int
http_never_connected(CURL *easy, CURLcode result)
{
	long	sent = -1;

	if (result == CURLE_COULDNT_CONNECT ||
	    result == CURLE_COULDNT_RESOLVE_HOST)
		return 1;
	if (result != CURLE_OPERATION_TIMEDOUT)
		return 0;
	return curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent) ==
	    CURLE_OK && sent == 0;
}

/* Collect what finished and answer it. */
static void
http_check_done(struct http *h)
{
	CURLMsg		*msg;
	int		 left;
	struct http_req	*r;
	long		 status = 0;
	char		 error[CURL_ERROR_SIZE + 64];

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&r);
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		if (r->too_large)
			snprintf(error, sizeof error, "the answer is larger "
			    "than %zu bytes", r->max);
		else if (msg->data.result != CURLE_OK) {
			snprintf(error, sizeof error, "%s",
			    r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(msg->data.result));
			if (http_never_connected(r->easy, msg->data.result))
				status = -1;
		} else
			error[0] = '\0';
		/* Unlinked first: the callback may free the client. */
		http_req_unlink(r);
		r->cb(r->arg, status, r->buf != NULL ? r->buf : "", r->len,
		    error[0] != '\0' ? error : NULL);
		http_req_free(r);
	}
}

static void
http_sock_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static void
http_on_poll(uv_poll_t *p, int status, int events)
{
	struct http_sock	*s = p->data;
	int			 flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
	http_check_done(s->h);
}

static int
http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct http		*h = userp;
	struct http_sock	*s = socketp;
	int			 events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, http_sock_closed);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		curl_multi_assign(h->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, http_on_poll);
	return 0;
}

static void
http_on_timer(uv_timer_t *t)
{
	struct http	*h = t->data;
	int		 running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(h);
}

/* libcurl wants to be woken in timeout_ms (-1: never).  Never act from
 * inside this callback: the timer does, from the loop. */
static int
http_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
	struct http	*h = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, http_on_timer, (uint64_t)timeout_ms,
		    0);
	return 0;
}

static size_t
http_on_data(char *data, size_t size, size_t n, void *arg)
{
	struct http_req	*r = arg;
	size_t		 len = size * n;

	if (r->len + len > r->max) {
		r->too_large = 1;
		return 0;	/* libcurl fails the transfer */
	}
	if (r->len + len + 1 > r->cap) {
		r->cap = r->len + len + 1 > 2 * r->cap ? r->len + len + 1 :
		    2 * r->cap;
		r->buf = xreallocarray(r->buf, 1, r->cap);
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	r->buf[r->len] = '\0';
	return len;
}

struct http *
http_new(uv_loop_t *loop, const struct http_tls *tls, char **cause)
{
	struct http	*h;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			set_cause(cause, "libcurl failed to initialise");
			return NULL;
		}
		curl_ready = 1;
	}
	h = xcalloc(1, sizeof *h);
	h->loop = loop;
	if ((h->multi = curl_multi_init()) == NULL) {
		set_cause(cause, "libcurl: no multi handle");
		free(h);
		return NULL;
	}
	if (tls != NULL) {
		h->ca_file = tls->ca_file != NULL ? xstrdup(tls->ca_file) : NULL;
		h->cert_file = tls->cert_file != NULL ?
		    xstrdup(tls->cert_file) : NULL;
		h->key_file = tls->key_file != NULL ? xstrdup(tls->key_file) :
		    NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_on_timeout);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	return h;
}

int
http_post(struct http *h, const char *url, const char *body,
    const char *const *headers, long timeout_ms, size_t max, http_cb cb,
    void *arg, char **cause)
{
	struct http_req	*r;
	size_t		 i;

	if (h->freeing) {
		set_cause(cause, "the HTTP client is closing");
		return -1;
	}
	r = xcalloc(1, sizeof *r);
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->max = max;
	if ((r->easy = curl_easy_init()) == NULL) {
		set_cause(cause, "libcurl: no easy handle");
		free(r);
		return -1;
	}
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		r->headers = curl_slist_append(r->headers, headers[i]);
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	/* A connection on a LAN takes a millisecond: one not made in a
	 * third of the request's time will not come, and the caller can ask
	 * another server sooner. */
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms / 3 > 100 ? timeout_ms / 3 : timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, http_on_data);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	if (h->ca_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, h->ca_file);
	if (h->cert_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_SSLCERT, h->cert_file);
	if (h->key_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_SSLKEY, h->key_file);
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		set_cause(cause, "libcurl: cannot add a request");
		curl_easy_cleanup(r->easy);
		curl_slist_free_all(r->headers);
		free(r);
		return -1;
	}
	r->next = h->reqs;
	h->reqs = r;
	return 0;
}

static void
http_timer_closed(uv_handle_t *hd)
{
	struct http	*h = hd->data;

	curl_multi_cleanup(h->multi);
	free(h->ca_file);
	free(h->cert_file);
	free(h->key_file);
	free(h);
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	h->freeing = 1;
	while (h->reqs != NULL) {
		struct http_req	*r = h->reqs;

		http_req_unlink(r);
		r->cb(r->arg, 0, "", 0, "cancelled");
		http_req_free(r);
	}
	uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}
