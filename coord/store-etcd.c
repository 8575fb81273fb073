/* The etcd backend of the store: several coordinators, one leader.
 *
 * It speaks etcd v3's JSON gateway (POST /v3/kv/range, /v3/kv/txn,
 * /v3/lease/grant, /v3/lease/keepalive) through coord/http.c, keys and
 * values in base64, 64-bit numbers as strings, fields at their default
 * value omitted (a failed txn has no "succeeded").
 *
 * Leadership: a lease, and the leader key created under it only if it is
 * absent (compare CREATE == 0).  Its create revision names this term;
 * every later transaction also compares it, so a deposed leader's write
 * fails in etcd itself, whatever that leader believes.  The leader also
 * fences itself: its lease is taken to end TTL after the moment it SENT
 * the last renewal that was granted (CLOCK_MONOTONIC), and it stops
 * leading a margin before that unless a later renewal was granted.  It
 * keeps its lease and leader key meanwhile (suspended): a keepalive that
 * etcd answers with time left proves that nobody can have led since
 * (the key lives as long as the lease), and it leads again at once, in
 * the same term; one answered "expired", or a lease's length without
 * one that lets it lead, makes it give the key up and campaign.
 * etcd electing its own leader (a second or two, longer than the margin
 * of a 2 s lease) no longer costs a step-down and a new campaign, which
 * waited out the old lease (etcd renews every lease when it elects).
 *
 * A request that could not connect goes to the next endpoint; one that
 * may have reached etcd is answered as unknown (error), never retried,
 * and if it got no answer at all the next requests go to the next
 * endpoint (a member whose host is paused accepts connections in its
 * kernel but never answers: asking it again would never end).  An
 * idempotent request (the leader's lease keepalive) is the exception:
 * whatever went wrong, it goes again to the next member at once, so
 * that a mute member (one cut from etcd's leader holds a keepalive and
 * answers nothing) cannot make a leader with a quorum up step down. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coord/base64.h"
#include "coord/http.h"
#include "coord/store.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/sanitize.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define ETCD_ENDPOINTS_MAX	16
#define ETCD_ANSWER_MAX		(64u << 20)
#define ETCD_PAGE		500
#define ETCD_LEADER_KEY		"leader"
/* While another leads: how often to try for the leader key. */
#define ETCD_CAMPAIGN_RETRY_MS	500
/* The leader's keepalives go every third of its lease, and at least this
 * often: see etcd_renew_every. */
#define ETCD_RENEW_EVERY_MAX_MS	667

struct etcd {
	struct store	 s;
	struct http	*http;
	char		*endpoints[ETCD_ENDPOINTS_MAX];
	size_t		 nendpoints, cur;
	char		*prefix;
	long		 timeout_ms;
	int		 closing;
	unsigned	 calls;		/* requests on their way */

	/* leadership */
	char		*name;
	unsigned	 ttl_ms;
	store_leader_cb	 lead_cb;
	void		*lead_arg;
	char		*lease;		/* its id, as etcd writes it */
	uint64_t	 term;		/* our leader key's create revision */
	int		 leader;
	int		 suspended;	/* leader key ours, lease unsure */
	int		 led;		/* in this term, once */
	uint64_t	 lease_end;	/* monotonic ms: the lease may end */
	uint64_t	 renew_sent;	/* the renewal on its way, sent at */
	int		 renewing, granting, claiming;
	uv_timer_t	 renew_timer;	/* next renewal */
	uv_timer_t	 fence_timer;	/* stop leading before lease_end;
					 * suspended: give the key up */
	uv_timer_t	 retry_timer;	/* campaign again */
	uv_timer_t	 late_timer;	/* fault point store.etcd.keepalive */
	char		*late_id;	/* the lease its held keepalive is for */
	int		 handles;
	char		*seen_leader;	/* who leads, as last said */
};

typedef void	(*etcd_cb)(struct etcd *, void *arg, struct json_object *,
		    const char *error);

struct etcd_call {
	struct etcd	*e;
	char		*path;
	char		*body;
	size_t		 tries;
	size_t		 ep;		/* the endpoint it went to */
	long		 timeout_ms;	/* at each member */
	int		 idempotent;	/* may be sent again after any failure */
	etcd_cb		 cb;
	void		*arg;
};

static int	etcd_send(struct etcd_call *, char **);
static void	etcd_finish(struct etcd *);

/* --- requests ---------------------------------------------------------------- */

static void
etcd_call_free(struct etcd_call *c)
{
	c->e->calls--;
	free(c->path);
	free(c->body);
	free(c);
}

static void
etcd_on_answer(void *arg, long status, const char *body, size_t len,
    const char *error)
{
	struct etcd_call	*c = arg;
	struct etcd		*e = c->e;
	struct json_object	*j = NULL, *msg;
	struct json_tokener	*tok;
	char			*text = NULL, *cause = NULL;

	if (!e->closing && (status == -1 || (c->idempotent &&
	    (error != NULL || status != 200))) && ++c->tries < e->nendpoints) {
		/* Never reached etcd, or asking again does no harm: the next
		 * member, now. */
		if (e->cur == c->ep)
			e->cur = (c->ep + 1) % e->nendpoints;
		if (error != NULL && status != -1)
			log_warnx("store: etcd at %s did not answer %s (%s); "
			    "sending it again to %s", e->endpoints[c->ep],
			    c->path, error, e->endpoints[e->cur]);
		else if (error == NULL)
			log_warnx("store: etcd at %s answered %s with HTTP %ld; "
			    "sending it again to %s", e->endpoints[c->ep],
			    c->path, status, e->endpoints[e->cur]);
		if (etcd_send(c, &cause) == 0)
			return;
		error = cause;
	} else if (error != NULL && status == 0 && e->nendpoints > 1 &&
	    e->cur == c->ep) {
		/* It may have reached etcd, so it stays unanswered, but the
		 * member said nothing: the next requests ask another. */
		e->cur = (c->ep + 1) % e->nendpoints;
		log_warnx("store: etcd at %s did not answer %s (%s); asking "
		    "%s from now on", e->endpoints[c->ep], c->path, error,
		    e->endpoints[e->cur]);
	}
	if (error == NULL) {
		tok = json_tokener_new();
		j = json_tokener_parse_ex(tok, body, (int)len);
		if (j == NULL || json_tokener_get_parse_end(tok) != len ||
		    !json_object_is_type(j, json_type_object)) {
			json_object_put(j);
			j = NULL;
			xasprintf(&text, "%s answered %s with no JSON object "
			    "(HTTP %ld)", e->endpoints[c->ep], c->path, status);
		} else if (status != 200) {
			if (!json_object_object_get_ex(j, "message", &msg) &&
			    !json_object_object_get_ex(j, "error", &msg))
				msg = NULL;
			xasprintf(&text, "%s answered %s with HTTP %ld: %s",
			    e->endpoints[c->ep], c->path, status, msg != NULL ?
			    json_object_get_string(msg) : "no message");
			json_object_put(j);
			j = NULL;
		}
		json_tokener_free(tok);
	} else
		xasprintf(&text, "etcd at %s, %s: %s", e->endpoints[c->ep],
		    c->path, error);
	c->cb(e, c->arg, j, text);
	json_object_put(j);
	free(text);
	free(cause);
	etcd_call_free(c);
	if (e->closing && e->calls == 0)
		etcd_finish(e);
}

static int
etcd_send(struct etcd_call *c, char **cause)
{
	struct etcd	*e = c->e;
	char		*url;
	int		 rc;

	c->ep = e->cur;
	xasprintf(&url, "%s%s", e->endpoints[c->ep], c->path);
	rc = http_post(e->http, url, c->body, NULL, c->timeout_ms,
	    ETCD_ANSWER_MAX, etcd_on_answer, c, cause);
	free(url);
	return rc;
}

/* POST body (taken) to path, waiting timeout_ms at most for each
 * member (idempotent: sent again to the next one after any failure); cb
 * gets the answer's JSON object or why not.  -1 and *cause if it could
 * not even be sent (cb never runs). */
static int
etcd_call_as(struct etcd *e, const char *path, struct json_object *body,
    long timeout_ms, int idempotent, etcd_cb cb, void *arg, char **cause)
{
	struct etcd_call	*c = xcalloc(1, sizeof *c);

	c->e = e;
	c->timeout_ms = timeout_ms;
	c->idempotent = idempotent;
	c->path = xstrdup(path);
	c->body = xstrdup(json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(body);
	c->cb = cb;
	c->arg = arg;
	e->calls++;
	if (etcd_send(c, cause) != 0) {
		etcd_call_free(c);
		return -1;
	}
	return 0;
}

static int
etcd_call(struct etcd *e, const char *path, struct json_object *body,
    etcd_cb cb, void *arg, char **cause)
{
	return etcd_call_as(e, path, body, e->timeout_ms, 0, cb, arg, cause);
}

/* --- JSON helpers -------------------------------------------------------------- */

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
add_b64(struct json_object *o, const char *k, const void *v, size_t len)
{
	char	*s = base64_encode(v, len);

	add_str(o, k, s);
	free(s);
}

static void
add_u64(struct json_object *o, const char *k, uint64_t v)
{
	char	buf[24];

	snprintf(buf, sizeof buf, "%" PRIu64, v);
	add_str(o, k, buf);
}

/* A 64-bit number etcd wrote as a string (or, rarely, a number); absent
 * means 0 (omitted default). */
static int
get_u64(struct json_object *o, const char *k, uint64_t *v)
{
	struct json_object	*x;
	const char		*s;
	char			*end;

	*v = 0;
	if (!json_object_object_get_ex(o, k, &x))
		return 0;
	if (json_object_is_type(x, json_type_int)) {
		if (json_object_get_int64(x) < 0)
			return -1;
		*v = (uint64_t)json_object_get_int64(x);
		return 0;
	}
	if (!json_object_is_type(x, json_type_string))
		return -1;
	s = json_object_get_string(x);
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *s == '\0' || *end != '\0' ? -1 : 0;
}

static struct json_object *
get_obj(struct json_object *o, const char *k, json_type t)
{
	struct json_object	*x;

	if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, t))
		return NULL;
	return x;
}

static int
get_bool(struct json_object *o, const char *k)
{
	struct json_object	*x = get_obj(o, k, json_type_boolean);

	return x != NULL && json_object_get_boolean(x);
}

static uint64_t
header_rev(struct json_object *o)
{
	struct json_object	*h = get_obj(o, "header", json_type_object);
	uint64_t		 rev = 0;

	if (h != NULL)
		(void)get_u64(h, "revision", &rev);
	return rev;
}

static char *
full_key(struct etcd *e, const char *key)
{
	char	*k;

	xasprintf(&k, "%s%s", e->prefix, key);
	return k;
}

/* The end of the prefix's range: the prefix with its last byte + 1. */
static char *
prefix_end(const char *prefix)
{
	char	*end = xstrdup(prefix);
	size_t	 n = strlen(end);

	end[n - 1]++;
	return end;
}

/* --- load ------------------------------------------------------------------------ */

struct etcd_load {
	store_load_cb	 each;
	store_loaded_cb	 done;
	void		*arg;
	uint64_t	 rev;		/* every page at this revision */
	char		*after;		/* next page from this key on */
};

static int	etcd_load_page(struct etcd *, struct etcd_load *, char **);

static void
etcd_load_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	struct etcd_load	*l = arg;
	struct json_object	*kvs, *kv, *k, *v;
	size_t			 i, n, klen, vlen, plen = strlen(e->prefix);
	uint8_t			*key = NULL, *val = NULL;
	uint64_t		 mod;
	char			*cause = NULL;

	if (error != NULL)
		goto fail;
	if (l->rev == 0 && (l->rev = header_rev(j)) == 0) {
		error = "etcd's range answer has no revision";
		goto fail;
	}
	kvs = get_obj(j, "kvs", json_type_array);
	n = kvs != NULL ? json_object_array_length(kvs) : 0;
	for (i = 0; i < n; i++) {
		kv = json_object_array_get_idx(kvs, i);
		if (!json_object_is_type(kv, json_type_object) ||
		    (k = get_obj(kv, "key", json_type_string)) == NULL ||
		    (key = base64_decode(json_object_get_string(k), &klen)) ==
		    NULL || klen <= plen || memcmp(key, e->prefix, plen) != 0 ||
		    memchr(key, '\0', klen) != NULL ||
		    get_u64(kv, "mod_revision", &mod) != 0 || mod == 0) {
			error = "etcd's range answer holds a malformed key";
			goto fail;
		}
		v = get_obj(kv, "value", json_type_string);
		if ((val = base64_decode(v != NULL ? json_object_get_string(v) :
		    "", &vlen)) == NULL) {
			error = "etcd's range answer holds a malformed value";
			goto fail;
		}
		l->each(l->arg, (char *)key + plen, val, vlen, mod);
		free(l->after);
		l->after = (char *)key;
		key = NULL;
		free(val);
		val = NULL;
	}
	if (get_bool(j, "more") && n > 0) {
		if (etcd_load_page(e, l, &cause) == 0)
			return;
		error = cause;
		goto fail;
	}
	l->done(l->arg, l->rev, NULL);
	free(l->after);
	free(l);
	return;
fail:
	free(key);
	free(val);
	l->done(l->arg, 0, error);
	free(cause);
	free(l->after);
	free(l);
}

static int
etcd_load_page(struct etcd *e, struct etcd_load *l, char **cause)
{
	struct json_object	*req = json_object_new_object();
	char			*end = prefix_end(e->prefix);

	if (l->after != NULL) {
		/* Just past the last key: the key with a NUL appended. */
		size_t	 n = strlen(l->after) + 1;
		char	*from = xmalloc(n);

		memcpy(from, l->after, n);
		add_b64(req, "key", from, n);
		free(from);
	} else
		add_b64(req, "key", e->prefix, strlen(e->prefix));
	add_b64(req, "range_end", end, strlen(end));
	free(end);
	add_u64(req, "limit", ETCD_PAGE);
	if (l->rev != 0)
		add_u64(req, "revision", l->rev);
	return etcd_call(e, "/v3/kv/range", req, etcd_load_answer, l, cause);
}

static int
etcd_load(struct store *s, store_load_cb each, store_loaded_cb done,
    void *arg, char **cause)
{
	struct etcd		*e = s->impl;
	struct etcd_load	*l = xcalloc(1, sizeof *l);

	l->each = each;
	l->done = done;
	l->arg = arg;
	if (etcd_load_page(e, l, cause) != 0) {
		free(l);
		return -1;
	}
	return 0;
}

/* --- transactions ------------------------------------------------------------------ */

struct etcd_txn {
	store_txn_cb	 cb;
	void		*arg;
	uint64_t	 term;		/* the leader compare it carried */
};

static void	etcd_step_down(struct etcd *, const char *);

static void
etcd_txn_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	struct etcd_txn		*t = arg;
	struct json_object	*resp, *r, *kvs, *kv;
	uint64_t		 rev, created = 0;

	if (error != NULL) {
		t->cb(t->arg, 0, 0, error);
		free(t);
		return;
	}
	rev = header_rev(j);
	if (get_bool(j, "succeeded")) {
		t->cb(t->arg, 1, rev, NULL);
		free(t);
		return;
	}
	if (t->term != 0) {
		/* Which compare failed: ours on the leader key? */
		resp = get_obj(j, "responses", json_type_array);
		r = resp != NULL && json_object_array_length(resp) > 0 ?
		    json_object_array_get_idx(resp, 0) : NULL;
		r = r != NULL ? get_obj(r, "response_range", json_type_object) :
		    NULL;
		kvs = r != NULL ? get_obj(r, "kvs", json_type_array) : NULL;
		kv = kvs != NULL && json_object_array_length(kvs) > 0 ?
		    json_object_array_get_idx(kvs, 0) : NULL;
		if (kv != NULL)
			(void)get_u64(kv, "create_revision", &created);
		if (created != t->term) {
			etcd_step_down(e, "another coordinator leads now (the "
			    "leader key changed)");
			t->cb(t->arg, 0, rev, "this coordinator no longer "
			    "leads: the write was refused");
			free(t);
			return;
		}
	}
	t->cb(t->arg, 0, rev, NULL);
	free(t);
}

static struct json_object *
compare(const char *key, const char *target, uint64_t rev)
{
	struct json_object	*c = json_object_new_object();

	add_b64(c, "key", key, strlen(key));
	add_str(c, "target", target);
	add_str(c, "result", "EQUAL");
	add_u64(c, strcmp(target, "MOD") == 0 ? "mod_revision" :
	    "create_revision", rev);
	return c;
}

static int
etcd_txn(struct store *s, const struct store_txn *t, store_txn_cb cb,
    void *arg, char **cause)
{
	struct etcd		*e = s->impl;
	struct json_object	*req, *cmp, *ok, *fail, *op, *x;
	struct etcd_txn		*tx;
	char			*k;
	size_t			 i;

	if (e->closing) {
		set_cause(cause, "the store is closing");
		return -1;
	}
	if (e->lead_cb != NULL && !e->leader) {
		set_cause(cause, "this coordinator does not lead (now)");
		return -1;
	}
	req = json_object_new_object();
	cmp = json_object_new_array();
	ok = json_object_new_array();
	fail = json_object_new_array();
	for (i = 0; i < t->ncmp; i++) {
		k = full_key(e, t->cmp[i].key);
		json_object_array_add(cmp, compare(k, "MOD", t->cmp[i].mod_rev));
		free(k);
	}
	if (e->lead_cb != NULL) {
		k = full_key(e, ETCD_LEADER_KEY);
		json_object_array_add(cmp, compare(k, "CREATE", e->term));
		/* On failure: read the leader key, to tell why. */
		op = json_object_new_object();
		x = json_object_new_object();
		add_b64(x, "key", k, strlen(k));
		json_object_object_add(op, "request_range", x);
		json_object_array_add(fail, op);
		free(k);
	}
	for (i = 0; i < t->nops; i++) {
		k = full_key(e, t->ops[i].key);
		op = json_object_new_object();
		x = json_object_new_object();
		add_b64(x, "key", k, strlen(k));
		if (t->ops[i].value != NULL) {
			add_b64(x, "value", t->ops[i].value, t->ops[i].len);
			json_object_object_add(op, "request_put", x);
		} else
			json_object_object_add(op, "request_delete_range", x);
		json_object_array_add(ok, op);
		free(k);
	}
	json_object_object_add(req, "compare", cmp);
	json_object_object_add(req, "success", ok);
	json_object_object_add(req, "failure", fail);
	tx = xcalloc(1, sizeof *tx);
	tx->cb = cb;
	tx->arg = arg;
	tx->term = e->lead_cb != NULL ? e->term : 0;
	if (etcd_call(e, "/v3/kv/txn", req, etcd_txn_answer, tx, cause) != 0) {
		free(tx);
		return -1;
	}
	return 0;
}

/* --- leadership ------------------------------------------------------------------------ */

static void	etcd_campaign_step(struct etcd *);
static void	etcd_renew(uv_timer_t *);

static void
etcd_on_retry(uv_timer_t *t)
{
	etcd_campaign_step(t->data);
}

static void
etcd_ignore_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	(void)e;
	(void)arg;
	(void)j;
	(void)error;
}

/* Revoke lease id, answer or not (unanswered, it expires). */
static void
etcd_revoke(struct etcd *e, const char *id)
{
	struct json_object	*req;
	char			*cause = NULL;

	req = json_object_new_object();
	add_str(req, "ID", id);
	if (etcd_call(e, "/v3/lease/revoke", req, etcd_ignore_answer, NULL,
	    &cause) != 0)
		free(cause);
}

/* Forget the lease (revoked if etcd can be told; else it expires, no
 * longer renewed), and with it anything held under it. */
static void
etcd_drop_lease(struct etcd *e)
{
	uv_timer_stop(&e->renew_timer);
	/* A keepalive still out is for this lease: the next lease's go
	 * their own way (etcd_renew_answer tells them apart). */
	e->renewing = 0;
	if (e->lease == NULL)
		return;
	etcd_revoke(e, e->lease);
	free(e->lease);
	e->lease = NULL;
}

/* Stop leading: say so first (unless suspended: said then), then give the
 * term up and try again. */
static void
etcd_step_down(struct etcd *e, const char *why)
{
	if (!e->leader && !e->suspended)
		return;
	uv_timer_stop(&e->fence_timer);
	log_warnx("store: %s %s: %s", e->name, e->leader ? "stops leading" :
	    "gives its term up", why);
	if (e->leader) {
		e->leader = 0;
		e->lead_cb(e->lead_arg, 0, why);
	}
	e->suspended = 0;
	e->term = 0;
	etcd_drop_lease(e);
	if (!e->closing)
		uv_timer_start(&e->retry_timer, etcd_on_retry,
		    ETCD_CAMPAIGN_RETRY_MS, 0);
}

/* Milliseconds the lease leaves to lead, a quarter of it kept back (0:
 * none). */
static uint64_t
etcd_lease_left(const struct etcd *e)
{
	uint64_t	now = now_ms(), stop = e->lease_end - e->ttl_ms / 4;

	return e->lease_end > e->ttl_ms / 4 && stop > now ? stop - now : 0;
}

/* Suspended a whole lease without leading again (keepalives unanswered,
 * or answered too late to lead on): give the key up, so that another
 * coordinator may lead, as a step-down at the margin always did. */
static void
etcd_on_suspended_long(uv_timer_t *t)
{
	struct etcd	*e = t->data;

	etcd_step_down(e, "no keepalive gave the lease time to lead on "
	    "within a lease's length");
}

/* Not leading (any longer), with the key held under a lease that may be
 * ending: keepalives go on and decide, within a lease's length. */
static void
etcd_suspend_now(struct etcd *e)
{
	e->suspended = 1;
	uv_timer_start(&e->fence_timer, etcd_on_suspended_long, e->ttl_ms, 0);
}

/* The lease may end soon without a granted renewal: stop leading before
 * it can (invariant 1: act only on a lease known to be valid), but keep
 * the lease and the key. */
static void
etcd_suspend(struct etcd *e, const char *why)
{
	if (!e->leader)
		return;
	e->leader = 0;
	etcd_suspend_now(e);
	log_warnx("store: %s stops leading: %s; it leads again if etcd renews "
	    "lease %s in time (term %" PRIu64 ")", e->name, why, e->lease,
	    e->term);
	e->lead_cb(e->lead_arg, 0, why);
}

static void
etcd_on_fence(uv_timer_t *t)
{
	etcd_suspend(t->data, "no lease renewal was granted in time");
}

/* Leading (e->leader set) with left ms to lead: stop before then. */
static void
etcd_arm_fence(struct etcd *e, uint64_t left)
{
	uv_timer_start(&e->fence_timer, etcd_on_fence, left, 0);
}

/* Suspended (or just holding the key), and the lease leaves left ms to
 * lead: leading, in the key's term (it lived on under the lease). */
static void
etcd_lead(struct etcd *e, uint64_t left)
{
	e->suspended = 0;
	e->leader = 1;
	if (e->led)
		log_info("store: %s leads again (term %" PRIu64 "): etcd "
		    "renewed lease %s", e->name, e->term, e->lease);
	else
		log_info("store: %s leads (term %" PRIu64 ")", e->name,
		    e->term);
	e->led = 1;
	etcd_arm_fence(e, left);
	e->lead_cb(e->lead_arg, 1, NULL);
}

/* Milliseconds between keepalives: a third of the lease, but no more
 * than ETCD_RENEW_EVERY_MAX_MS.  The lease counts from the last one sent,
 * so when etcd stops answering (it elects its leader) the leader leads on
 * for 3/4 of the lease less up to one of these: a longer lease rides out
 * a longer election only if its keepalives do not space out with it.
 * And a keepalive is the store's probe of the member it talks to (one
 * that does not answer is passed over): it must not slow down either. */
static uint64_t
etcd_renew_every(const struct etcd *e)
{
	return e->ttl_ms / 3 < ETCD_RENEW_EVERY_MAX_MS ? e->ttl_ms / 3 :
	    ETCD_RENEW_EVERY_MAX_MS;
}

/* Milliseconds until the next keepalive: etcd_renew_every after the last
 * one was sent. */
static uint64_t
etcd_renew_delay(const struct etcd *e)
{
	uint64_t	next = e->renew_sent + etcd_renew_every(e);
	uint64_t	now = now_ms();

	return next > now ? next - now : 0;
}

/* arg: the id of the lease the keepalive was for.  A keepalive outlives
 * a step-down (it goes from member to member meanwhile): its answer is
 * about a lease given up since, never about the one held now. */
static void
etcd_renew_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	struct json_object	*res;
	uint64_t		 ttl = 0, left;
	char			*id = arg;
	int			 stale;

	stale = e->lease == NULL || strcmp(id, e->lease) != 0;
	if (stale && !e->closing)
		log_info("store: %s: the keepalive of lease %s, given up "
		    "since, was answered: ignored", e->name, id);
	free(id);
	if (stale)
		return;		/* e->renewing is the held lease's */
	e->renewing = 0;
	if (e->closing)
		return;
	res = j != NULL ? get_obj(j, "result", json_type_object) : NULL;
	/* An answer without a result (etcd's gateway puts an error there)
	 * says nothing of the lease: not "expired". */
	if (error == NULL && res == NULL)
		error = "etcd answered without a result";
	if (error == NULL)
		(void)get_u64(res, "TTL", &ttl);
	if (error != NULL)
		log_warnx("store: renewing %s's lease: %s", e->name, error);
	else if (ttl == 0) {
		/* Nothing granted: the lease is gone, and the key with it. */
		if (e->leader || e->suspended)
			etcd_step_down(e, "the lease expired");
		else {
			etcd_drop_lease(e);
			etcd_campaign_step(e);
		}
		return;
	} else {
		/* Counted from when it was first sent (to whichever member),
		 * not when it came back. */
		e->lease_end = e->renew_sent + ttl * 1000;
		left = etcd_lease_left(e);
		if (e->leader && left > 0)
			etcd_arm_fence(e, left);
		else if (e->leader)
			etcd_suspend(e, "the lease is about to end");
		else if (e->suspended && left > 0)
			etcd_lead(e, left);
	}
	if (e->lease != NULL)
		uv_timer_start(&e->renew_timer, etcd_renew,
		    etcd_renew_delay(e), 0);
}

/* A keepalive sent etcd_renew_every after the last one was SENT (the
 * lease counts from there) and waiting half that at most at each member
 * leaves room for one more, to the next member at once, well before the
 * step-down timer (a quarter before the lease's end): with 2 s, sent at
 * +667 ms, given up at +1000 and sent again to the next, step down at
 * +1500; with 5 s, the same, and step down at +3750.  With one member
 * there is no other to ask: it waits the store's own timeout. */
static long
etcd_renew_timeout(const struct etcd *e)
{
	long	t = (long)etcd_renew_every(e) / 2;

	if (e->nendpoints == 1 || t > e->timeout_ms)
		t = e->timeout_ms;
	return t < 100 ? 100 : t;
}

/* Send the keepalive for lease id (taken). */
static void
etcd_renew_send(struct etcd *e, char *id)
{
	struct json_object	*req;
	char			*cause = NULL;

	req = json_object_new_object();
	add_str(req, "ID", id);
	if (etcd_call_as(e, "/v3/lease/keepalive", req, etcd_renew_timeout(e),
	    1, etcd_renew_answer, id, &cause) == 0)
		return;
	log_warnx("store: renewing %s's lease: %s", e->name, cause);
	free(cause);
	if (e->lease != NULL && strcmp(id, e->lease) == 0) {
		e->renewing = 0;
		uv_timer_start(&e->renew_timer, etcd_renew,
		    etcd_renew_every(e), 0);
	}
	free(id);
}

static void
etcd_renew_late(uv_timer_t *t)
{
	struct etcd	*e = t->data;
	char		*id = e->late_id;

	e->late_id = NULL;
	etcd_renew_send(e, id);
}

static void
etcd_renew(uv_timer_t *t)
{
	struct etcd	*e = t->data;
	unsigned	 ms;

	if (e->lease == NULL || e->renewing || e->closing)
		return;
	e->renew_sent = now_ms();
	e->renewing = 1;
	/* Fault point store.etcd.keepalive (delay=MS): this keepalive goes
	 * MS late, as one held up in the network: its lease may be given up
	 * and another granted before its answer comes. */
	if (e->late_id == NULL && fault_check("store.etcd.keepalive", &ms) ==
	    FAULT_DELAY) {
		e->late_id = xstrdup(e->lease);
		uv_timer_start(&e->late_timer, etcd_renew_late, ms, 0);
		return;
	}
	etcd_renew_send(e, xstrdup(e->lease));
}

static void
etcd_grant_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	struct json_object	*id;
	uint64_t		 ttl = 0, sent = *(uint64_t *)arg;

	free(arg);
	e->granting = 0;
	if (e->closing)
		return;
	if (error == NULL && ((id = get_obj(j, "ID", json_type_string)) ==
	    NULL || get_u64(j, "TTL", &ttl) != 0 || ttl == 0))
		error = "etcd granted no lease";
	if (error != NULL) {
		log_warnx("store: %s campaigning: %s", e->name, error);
		uv_timer_start(&e->retry_timer, etcd_on_retry,
		    ETCD_CAMPAIGN_RETRY_MS, 0);
		return;
	}
	e->lease = xstrdup(json_object_get_string(id));
	/* etcd may grant more than asked (2 s at least here): renew on
	 * our schedule, but count the lease by what was granted. */
	e->lease_end = sent + ttl * 1000;
	uv_timer_start(&e->renew_timer, etcd_renew, etcd_renew_every(e), 0);
	etcd_campaign_step(e);
}

/* The leader key holds this contender's own name under a lease it no
 * longer has: it stepped down while etcd could not be told (the revoke
 * was lost), or it is a ternd of this host started again after one that
 * died leading.  Nobody leads under that lease: revoke it rather than
 * wait out its TTL.  (A second live contender of the same name would be
 * deposed by this, and its writes refused: names are unique.) */
static void
etcd_revoke_stale(struct etcd *e, struct json_object *kv)
{
	struct json_object	*l;
	const char		*id;

	if ((l = get_obj(kv, "lease", json_type_string)) == NULL)
		return;
	id = json_object_get_string(l);
	if (e->lease != NULL && strcmp(id, e->lease) == 0) {
		/* Our claim took, but its answer was lost: we never acted
		 * under it; give the lease up and campaign afresh. */
		log_info("store: %s: its claim took without an answer: "
		    "giving lease %s up to campaign again", e->name, id);
		etcd_drop_lease(e);
		return;
	}
	log_info("store: %s: the leader key is its own, under lease %s that "
	    "it gave up: revoking it", e->name, id);
	etcd_revoke(e, id);
}

/* A claim failed: the leader key's holder, from the failure branch's
 * range, said once per change. */
static void
etcd_note_leader(struct etcd *e, struct json_object *j)
{
	struct json_object	*r, *kvs, *kv, *v;
	uint8_t			*name = NULL;
	size_t			 len;

	r = get_obj(j, "responses", json_type_array);
	r = r != NULL && json_object_array_length(r) > 0 ?
	    json_object_array_get_idx(r, 0) : NULL;
	r = r != NULL ? get_obj(r, "response_range", json_type_object) : NULL;
	kvs = r != NULL ? get_obj(r, "kvs", json_type_array) : NULL;
	kv = kvs != NULL && json_object_array_length(kvs) > 0 ?
	    json_object_array_get_idx(kvs, 0) : NULL;
	v = kv != NULL ? get_obj(kv, "value", json_type_string) : NULL;
	if (v == NULL || (name = base64_decode(json_object_get_string(v),
	    &len)) == NULL || len == 0 || len > 255) {
		free(name);
		return;
	}
	if (len == strlen(e->name) && memcmp(name, e->name, len) == 0)
		etcd_revoke_stale(e, kv);
	if (e->seen_leader == NULL || strcmp(e->seen_leader,
	    (char *)name) != 0) {
		free(e->seen_leader);
		e->seen_leader = sanitize_dup((char *)name, len);
		log_info("store: %s waits: %s leads", e->name, e->seen_leader);
	}
	free(name);
}

static void
etcd_claim_answer(struct etcd *e, void *arg, struct json_object *j,
    const char *error)
{
	uint64_t	left;

	(void)arg;
	e->claiming = 0;
	if (e->closing)
		return;
	if (e->lease == NULL)
		;	/* dropped while the claim was out: campaign again */
	else if (error != NULL)
		log_warnx("store: %s campaigning: %s", e->name, error);
	else if (get_bool(j, "succeeded")) {
		e->term = header_rev(j);
		e->led = 0;
		if ((left = etcd_lease_left(e)) > 0)
			etcd_lead(e, left);
		else {
			/* The key is ours, the lease may be ending: the
			 * next keepalive decides. */
			etcd_suspend_now(e);
			log_warnx("store: %s holds the leader key (term %"
			    PRIu64 ") but its lease may be ending: it leads "
			    "once etcd renews it", e->name, e->term);
		}
		return;
	} else
		etcd_note_leader(e, j);
	uv_timer_start(&e->retry_timer, etcd_on_retry, ETCD_CAMPAIGN_RETRY_MS,
	    0);
}

/* One step towards leading: a lease, then the leader key under it if no
 * one holds it. */
static void
etcd_campaign_step(struct etcd *e)
{
	struct json_object	*req, *cmp, *ok, *fail, *op, *x;
	char			*k, *cause = NULL;
	uint64_t		*sent;

	if (e->closing || e->leader || e->suspended || e->granting ||
	    e->claiming)
		return;
	if (e->lease == NULL) {
		req = json_object_new_object();
		add_u64(req, "TTL", (e->ttl_ms + 999) / 1000);
		sent = xmalloc(sizeof *sent);
		*sent = now_ms();
		e->granting = 1;
		if (etcd_call(e, "/v3/lease/grant", req, etcd_grant_answer, sent,
		    &cause) != 0) {
			e->granting = 0;
			free(sent);
			goto retry;
		}
		return;
	}
	k = full_key(e, ETCD_LEADER_KEY);
	req = json_object_new_object();
	cmp = json_object_new_array();
	ok = json_object_new_array();
	fail = json_object_new_array();
	json_object_array_add(cmp, compare(k, "CREATE", 0));
	op = json_object_new_object();
	x = json_object_new_object();
	add_b64(x, "key", k, strlen(k));
	add_b64(x, "value", e->name, strlen(e->name));
	add_str(x, "lease", e->lease);
	json_object_object_add(op, "request_put", x);
	json_object_array_add(ok, op);
	/* Else: who leads, to say so. */
	op = json_object_new_object();
	x = json_object_new_object();
	add_b64(x, "key", k, strlen(k));
	json_object_object_add(op, "request_range", x);
	json_object_array_add(fail, op);
	json_object_object_add(req, "compare", cmp);
	json_object_object_add(req, "success", ok);
	json_object_object_add(req, "failure", fail);
	free(k);
	e->claiming = 1;
	if (etcd_call(e, "/v3/kv/txn", req, etcd_claim_answer, NULL,
	    &cause) != 0) {
		e->claiming = 0;
		goto retry;
	}
	return;
retry:
	log_warnx("store: %s campaigning: %s", e->name, cause);
	free(cause);
	uv_timer_start(&e->retry_timer, etcd_on_retry, ETCD_CAMPAIGN_RETRY_MS,
	    0);
}

static int
etcd_campaign(struct store *s, const char *name, unsigned ttl_ms,
    store_leader_cb cb, void *arg, char **cause)
{
	struct etcd	*e = s->impl;

	if (e->lead_cb != NULL || e->closing) {
		set_cause(cause, "the store is %s", e->closing ? "closing" :
		    "campaigning already");
		return -1;
	}
	if (ttl_ms < 2000 || ttl_ms > 600000) {
		set_cause(cause, "a leader lease of %u ms: etcd grants 2 s to "
		    "600 s", ttl_ms);
		return -1;
	}
	e->name = xstrdup(name);
	e->ttl_ms = ttl_ms;
	e->lead_cb = cb;
	e->lead_arg = arg;
	uv_timer_start(&e->retry_timer, etcd_on_retry, 0, 0);
	return 0;
}

/* Asked at each grant: the step-down timer may be overdue (a host
 * resumed from a pause runs I/O first), the clock is not. */
static int
etcd_leadership(struct store *s, uint64_t *term, const char **leader)
{
	struct etcd	*e = s->impl;

	if (e->leader && etcd_lease_left(e) > 0) {
		*term = e->term;
		return 1;
	}
	*leader = e->seen_leader;
	return 0;
}

/* --- open, close ---------------------------------------------------------------------------- */

static void
etcd_handle_closed(uv_handle_t *h)
{
	struct etcd	*e = h->data;
	size_t		 i;

	if (--e->handles > 0)
		return;
	for (i = 0; i < e->nendpoints; i++)
		free(e->endpoints[i]);
	free(e->prefix);
	free(e->name);
	free(e->lease);
	free(e->seen_leader);
	free(e);
}

/* Everything answered: let go of the client and the timers. */
static void
etcd_finish(struct etcd *e)
{
	if (e->http == NULL)
		return;
	http_free(e->http);
	e->http = NULL;
	uv_close((uv_handle_t *)&e->renew_timer, etcd_handle_closed);
	uv_close((uv_handle_t *)&e->fence_timer, etcd_handle_closed);
	uv_close((uv_handle_t *)&e->retry_timer, etcd_handle_closed);
	uv_close((uv_handle_t *)&e->late_timer, etcd_handle_closed);
}

static void
etcd_close(struct store *s)
{
	struct etcd	*e = s->impl;

	e->closing = 1;
	uv_timer_stop(&e->fence_timer);
	uv_timer_stop(&e->retry_timer);
	uv_timer_stop(&e->late_timer);
	free(e->late_id);
	e->late_id = NULL;
	if (e->leader || e->suspended) {
		e->leader = e->suspended = 0;
		log_info("store: %s stops leading: closing", e->name);
	}
	/* Let the next leader in now rather than after the lease's TTL;
	 * requests on their way are answered first (within the timeout). */
	etcd_drop_lease(e);
	if (e->calls == 0)
		etcd_finish(e);
}

static const struct store_ops etcd_ops = {
	.name = "etcd",
	.load = etcd_load,
	.txn = etcd_txn,
	.campaign = etcd_campaign,
	.leadership = etcd_leadership,
	.close = etcd_close,
};

static int
etcd_endpoint_valid(const char *s)
{
	size_t	i;

	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '?' || s[i] == '#')
			return 0;
	return i > 8 && s[i - 1] != '/';
}

struct store *
store_etcd_open(uv_loop_t *loop, const struct store_etcd_conf *conf,
    char **cause)
{
	struct etcd		*e;
	struct http_tls		 tls = { conf->ca_file, conf->cert_file,
	    conf->key_file };
	char			*list, *tok, *save;

	if (conf->prefix == NULL || conf->prefix[0] != '/' ||
	    conf->prefix[strlen(conf->prefix) - 1] != '/' ||
	    strlen(conf->prefix) > 128) {
		set_cause(cause, "the etcd key prefix must start and end with "
		    "'/' (e.g. /tern/), at most 128 bytes");
		return NULL;
	}
	if (conf->timeout_ms < 100 || conf->timeout_ms > 60000) {
		set_cause(cause, "an etcd request timeout of %u ms: 100 to "
		    "60000", conf->timeout_ms);
		return NULL;
	}
	e = xcalloc(1, sizeof *e);
	list = xstrdup(conf->endpoints != NULL ? conf->endpoints : "");
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (!etcd_endpoint_valid(tok) ||
		    e->nendpoints == ETCD_ENDPOINTS_MAX) {
			set_cause(cause, "etcd endpoint \"%.64s\": want up to "
			    "%d of http[s]://HOST:PORT, comma-separated", tok,
			    ETCD_ENDPOINTS_MAX);
			goto fail;
		}
		e->endpoints[e->nendpoints++] = xstrdup(tok);
	}
	if (e->nendpoints == 0) {
		set_cause(cause, "no etcd endpoint given");
		goto fail;
	}
	if ((e->http = http_new(loop, &tls, cause)) == NULL)
		goto fail;
	free(list);
	e->s.ops = &etcd_ops;
	e->s.loop = loop;
	e->s.impl = e;
	e->prefix = xstrdup(conf->prefix);
	e->timeout_ms = conf->timeout_ms;
	uv_timer_init(loop, &e->renew_timer);
	uv_timer_init(loop, &e->fence_timer);
	uv_timer_init(loop, &e->retry_timer);
	uv_timer_init(loop, &e->late_timer);
	e->renew_timer.data = e->fence_timer.data = e->retry_timer.data = e;
	e->late_timer.data = e;
	e->handles = 4;
	return &e->s;
fail:
	free(list);
	while (e->nendpoints > 0)
		free(e->endpoints[--e->nendpoints]);
	free(e);
	return NULL;
}
