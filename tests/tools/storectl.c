/* Test helper: drive the coordinator's store (coord/store.h) from a test.
 *
 *   storectl conform STORE      the same semantics checked on any backend:
 *                               revisions, compares, deletes, ordered and
 *                               paged loads; exits 0 or says what differs
 *   storectl lead STORE NAME TTL_MS
 *                               campaign; while leading, write the key
 *                               "owner" every 100 ms; print one line per
 *                               event: "leads TERM", "wrote REV",
 *                               "refused: WHY", "stops: WHY";
 *                               SIGTERM closes the store (a leader's
 *                               lease is given up) and exits
 *
 * STORE is journal:DIR or etcd:URL[,URL...] (keys under /tern-test/). */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "coord/store.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

static uv_loop_t	*loop;
static struct store	*st;
static int		 failed;

static void	bad(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
bad(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fprintf(stderr, "storectl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	failed = 1;
}

static struct store *
store_from(const char *spec)
{
	struct store_etcd_conf	 c;
	char			*cause = NULL;
	struct store		*s;

	if (strncmp(spec, "journal:", 8) == 0)
		s = store_journal_open(loop, spec + 8, &cause);
	else if (strncmp(spec, "etcd:", 5) == 0) {
		memset(&c, 0, sizeof c);
		c.endpoints = spec + 5;
		c.prefix = "/tern-test/";
		c.timeout_ms = 1500;
		s = store_etcd_open(loop, &c, &cause);
	} else {
		fprintf(stderr, "storectl: STORE is journal:DIR or etcd:URLS\n");
		exit(2);
	}
	if (s == NULL) {
		fprintf(stderr, "storectl: %s\n", cause);
		exit(1);
	}
	return s;
}

/* --- conform ------------------------------------------------------------------ */

struct answer {
	int		 called, committed;
	uint64_t	 rev;
	char		*error;
};

static void
on_answer(void *arg, int committed, uint64_t rev, const char *error)
{
	struct answer	*a = arg;

	a->called = 1;
	a->committed = committed;
	a->rev = rev;
	a->error = error != NULL ? xstrdup(error) : NULL;
}

/* put (value NULL: delete) under a compare unless cmp == (uint64_t)-1. */
static struct answer
txn(const char *key, const char *value, uint64_t cmp)
{
	struct answer	 a = { 0 };
	struct store_cmp c = { key, cmp };
	struct store_op	 o = { key, value, value != NULL ? strlen(value) : 0 };
	struct store_txn t = { &c, cmp != (uint64_t)-1, &o, 1 };
	char		*cause = NULL;

	if (store_txn(st, &t, on_answer, &a, &cause) != 0) {
		bad("txn %s: %s", key, cause);
		exit(1);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	if (a.error != NULL) {
		bad("txn %s: %s", key, a.error);
		exit(1);
	}
	return a;
}

struct loaded {
	size_t		 n;
	char		*keys[4096];
	char		*values[4096];
	uint64_t	 revs[4096];
	uint64_t	 rev;
	int		 done;
};

static void
on_key(void *arg, const char *key, const void *value, size_t len,
    uint64_t rev)
{
	struct loaded	*l = arg;

	if (l->n == 4096) {
		bad("more than 4096 keys");
		return;
	}
	l->keys[l->n] = xstrdup(key);
	l->values[l->n] = xmalloc(len + 1);
	memcpy(l->values[l->n], value, len);
	l->values[l->n][len] = '\0';
	l->revs[l->n++] = rev;
}

static void
on_loaded(void *arg, uint64_t rev, const char *error)
{
	struct loaded	*l = arg;

	if (error != NULL)
		bad("load: %s", error);
	l->rev = rev;
	l->done = 1;
}

static struct loaded *
load(void)
{
	struct loaded	*l = xcalloc(1, sizeof *l);
	char		*cause = NULL;

	if (store_load(st, on_key, on_loaded, l, &cause) != 0) {
		bad("load: %s", cause);
		exit(1);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	if (!l->done)
		bad("load never ended");
	return l;
}

static void
loaded_free(struct loaded *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++) {
		free(l->keys[i]);
		free(l->values[i]);
	}
	free(l);
}

static int
conform(void)
{
	struct answer	 a, b, c;
	struct loaded	*l;
	char		 key[32];
	size_t		 i, found = 0;
	uint64_t	 first = 0, prev = 0;

	/* A fresh key: compare on "absent" holds once, then fails. */
	a = txn("conform/a", "1", 0);
	if (!a.committed || a.rev == 0)
		bad("put of an absent key under compare 0 did not commit");
	b = txn("conform/a", "2", 0);
	if (b.committed)
		bad("a compare on an absent key held for a present one");
	/* A compare on the revision read holds; a stale one fails. */
	b = txn("conform/a", "2", a.rev);
	if (!b.committed || b.rev <= a.rev)
		bad("compare on the current mod_rev failed (rev %" PRIu64
		    " after %" PRIu64 ")", b.rev, a.rev);
	c = txn("conform/a", "3", a.rev);
	if (c.committed)
		bad("a stale compare held");
	/* A delete; the key is absent again. */
	c = txn("conform/a", NULL, b.rev);
	if (!c.committed)
		bad("delete under a compare failed");
	if (!txn("conform/a", "4", 0).committed)
		bad("compare 0 failed after a delete");
	/* More keys than one etcd page (500), loaded in key order. */
	for (i = 0; i < 1200; i++) {
		snprintf(key, sizeof key, "conform/k%04zu", i);
		a = txn(key, key, (uint64_t)-1);
		if (i == 0)
			first = a.rev;
	}
	l = load();
	for (i = 0; i < l->n; i++) {
		if (i > 0 && strcmp(l->keys[i - 1], l->keys[i]) >= 0)
			bad("load out of key order at %s", l->keys[i]);
		if (strncmp(l->keys[i], "conform/k", 9) == 0) {
			found++;
			if (strcmp(l->keys[i], l->values[i]) != 0)
				bad("%s holds %s", l->keys[i], l->values[i]);
			if (l->revs[i] < first || l->revs[i] <= prev)
				bad("%s: mod_rev %" PRIu64 " out of order",
				    l->keys[i], l->revs[i]);
			prev = l->revs[i];
		}
		if (strcmp(l->keys[i], "conform/a") == 0 &&
		    strcmp(l->values[i], "4") != 0)
			bad("conform/a holds %s, not 4", l->values[i]);
	}
	if (found != 1200)
		bad("load found %zu of 1200 keys", found);
	if (l->rev < prev)
		bad("load's revision %" PRIu64 " is older than its keys",
		    l->rev);
	loaded_free(l);
	if (!failed)
		printf("conform: ok\n");
	return failed;
}

/* --- lead ------------------------------------------------------------------------ */

static const char	*lead_name;
static int		 leading, writing;
static uv_timer_t	 write_timer;
static uv_signal_t	 term_signal;

static void	say(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
on_wrote(void *arg, int committed, uint64_t rev, const char *error)
{
	(void)arg;
	writing = 0;
	if (error != NULL)
		say("refused: %s", error);
	else if (committed)
		say("wrote %" PRIu64, rev);
	else
		say("refused: compare failed at %" PRIu64, rev);
}

static void
on_write_timer(uv_timer_t *t)
{
	struct store_op	 o = { "owner", lead_name, strlen(lead_name) };
	struct store_txn tx = { NULL, 0, &o, 1 };
	char		*cause = NULL;

	(void)t;
	if (writing)
		return;
	if (store_txn(st, &tx, on_wrote, NULL, &cause) != 0) {
		if (leading)
			say("refused: %s", cause);
		free(cause);
		return;
	}
	writing = 1;
}

static void
on_lead(void *arg, int leader, const char *why)
{
	uint64_t	 term = 0;
	const char	*who = NULL;

	(void)arg;
	leading = leader;
	if (leader) {
		(void)store_leadership(st, &term, &who);
		say("leads %" PRIu64, term);
	} else
		say("stops: %s", why);
}

/* Leave as ternd does: the store closed, so the next leader need not
 * wait out this one's lease. */
static void
on_term(uv_signal_t *s, int signum)
{
	(void)signum;
	uv_close((uv_handle_t *)s, NULL);
	uv_close((uv_handle_t *)&write_timer, NULL);
	store_close(st);
	st = NULL;
}

static int
lead(const char *name, unsigned ttl_ms)
{
	char	*cause = NULL;

	lead_name = name;
	if (store_campaign(st, name, ttl_ms, on_lead, NULL, &cause) != 0) {
		bad("campaign: %s", cause);
		return 1;
	}
	uv_timer_init(loop, &write_timer);
	uv_timer_start(&write_timer, on_write_timer, 100, 100);
	uv_signal_init(loop, &term_signal);
	uv_signal_start(&term_signal, on_term, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}

int
main(int argc, char **argv)
{
	char	*cause = NULL;
	int	 rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* As ternd: TERN_FAULT arms fault points (store-etcd.sh). */
	if (fault_init(getenv("TERN_FAULT"), &cause) != 0) {
		fprintf(stderr, "storectl: TERN_FAULT: %s\n", cause);
		free(cause);
		return 2;
	}
	loop = uv_default_loop();
	if (argc == 3 && strcmp(argv[1], "conform") == 0) {
		st = store_from(argv[2]);
		rc = conform();
	} else if (argc == 5 && strcmp(argv[1], "lead") == 0) {
		st = store_from(argv[2]);
		rc = lead(argv[3], (unsigned)strtoul(argv[4], NULL, 10));
	} else {
		fprintf(stderr, "usage: storectl conform STORE | lead STORE "
		    "NAME TTL_MS\n");
		return 2;
	}
	if (st != NULL)
		store_close(st);
	uv_run(loop, UV_RUN_DEFAULT);
	fault_fini();
	return rc;
}
