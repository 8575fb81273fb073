/* The coordinator's state store: keys and values with revisions, changed
 * only by transactions, one interface over two backends (an append-only
 * journal on local disk; etcd v3).
 *
 * The model is etcd's, so that both backends mean the same thing: every
 * committed transaction gets the next store revision; a key remembers the
 * revision that last changed it (mod_rev; 0 = absent).  A transaction is
 * a list of compares (each key's mod_rev must be what the caller read)
 * and a list of puts and deletes applied all or nothing.  The coordinator
 * reads everything once at open and then keeps its own picture in
 * memory; only writes go through the store.
 *
 * Callback contract, for every function here: a failure found at once
 * (bad arguments, the store already failed) returns -1 with *cause and
 * never calls the callback; otherwise the callback runs exactly once,
 * later, from the loop, never from inside the call. */
#ifndef TERN_COORD_STORE_H
#define TERN_COORD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct store;

/* Limits both backends hold (etcd's default request limit is 1.5 MiB). */
#define STORE_KEY_MAX		512
#define STORE_VALUE_MAX		(256u << 10)
#define STORE_TXN_OPS_MAX	64

struct store_cmp {
	const char	*key;
	uint64_t	 mod_rev;	/* must equal; 0: the key is absent */
};

struct store_op {
	const char	*key;
	const void	*value;		/* NULL: delete the key */
	size_t		 len;
};

struct store_txn {
	const struct store_cmp	*cmp;
	size_t			 ncmp;
	const struct store_op	*ops;
	size_t			 nops;
};

/* The outcome of a transaction: error NULL and committed 1 when its
 * compares held and its ops are durable at revision rev; committed 0
 * when a compare failed (nothing changed, rev is the store's current);
 * error set when the store could not tell whether it committed: read
 * back before relying on either outcome.  (The journal then stops for
 * good; etcd may answer again once it has a quorum.) */
typedef void	(*store_txn_cb)(void *arg, int committed, uint64_t rev,
		    const char *error);
/* One key of a load; then the load's end (error NULL: every key was
 * given, rev is the store's revision). */
typedef void	(*store_load_cb)(void *arg, const char *key,
		    const void *value, size_t len, uint64_t mod_rev);
typedef void	(*store_loaded_cb)(void *arg, uint64_t rev, const char *error);

/* Leadership: leader 1 once this coordinator leads; 0 (with why) once it
 * may no longer act as leader (its lease could have expired).  Called
 * every time it changes, first when it is won. */
typedef void	(*store_leader_cb)(void *arg, int leader, const char *why);

/* What a backend implements. */
struct store_ops {
	const char	*name;
	int	(*load)(struct store *, store_load_cb, store_loaded_cb,
		    void *arg, char **cause);
	int	(*txn)(struct store *, const struct store_txn *,
		    store_txn_cb, void *arg, char **cause);
	int	(*campaign)(struct store *, const char *name, unsigned ttl_ms,
		    store_leader_cb, void *arg, char **cause);
	/* Optional (NULL: always leads, term 0): store_leadership. */
	int	(*leadership)(struct store *, uint64_t *term,
		    const char **leader);
	void	(*close)(struct store *);
};

struct store {
	const struct store_ops	*ops;
	uv_loop_t		*loop;
	void			*impl;
};

/* The journal backend: dir holds "snapshot" and "journal"; created if
 * absent.  Damage other than a crash's half-written tail refuses to open
 * (with what and where), rather than forget what was acknowledged. */
struct store	*store_journal_open(uv_loop_t *, const char *dir,
		    char **cause);

/* The etcd backend (v3, its JSON gateway): keys live under prefix. */
struct store_etcd_conf {
	const char	*endpoints;	/* "http://10.0.0.1:2379,http://..." */
	const char	*prefix;	/* e.g. "/tern/" */
	unsigned	 timeout_ms;	/* each request: 1000-2000 on a LAN */
	const char	*ca_file, *cert_file, *key_file;	/* https */
};
struct store	*store_etcd_open(uv_loop_t *, const struct store_etcd_conf *,
		    char **cause);

/* Run for leadership as name (unique per coordinator); the lease lasts
 * ttl_ms.  Once a campaign runs, every transaction also requires that
 * this coordinator still leads: a deposed leader's write fails.  The
 * journal (one coordinator) leads at once and for good. */
int	store_campaign(struct store *, const char *name, unsigned ttl_ms,
	    store_leader_cb, void *arg, char **cause);
/* 1 if this coordinator leads at this moment by its own clock (not
 * only as the step-down timer last said: a host paused and resumed runs
 * its I/O before its overdue timers), with *term its term (etcd: the
 * leader key's create revision; 0: the journal); else 0, with *leader
 * who leads as last seen (NULL: not known). */
int	store_leadership(struct store *, uint64_t *term, const char **leader);
/* Every key, in key order, then the store's revision. */
int	store_load(struct store *, store_load_cb, store_loaded_cb, void *arg,
	    char **cause);
int	store_txn(struct store *, const struct store_txn *, store_txn_cb,
	    void *arg, char **cause);
/* Transactions already accepted are written and answered, then the store
 * frees itself (the loop must run on); a load not yet delivered is
 * dropped. */
void	store_close(struct store *);

/* 0 if txn is within the limits above, else -1 and *cause. */
int	store_txn_check(const struct store_txn *, char **cause);

#endif
