/* The store interface: limits checked once, then the backend. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "coord/store.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

int
store_txn_check(const struct store_txn *t, char **cause)
{
	size_t	i, klen;

	if (t->nops == 0 || t->nops > STORE_TXN_OPS_MAX ||
	    t->ncmp > STORE_TXN_OPS_MAX) {
		set_cause(cause, "a store transaction holds 1 to %u changes "
		    "and at most %u compares (got %zu and %zu)",
		    STORE_TXN_OPS_MAX, STORE_TXN_OPS_MAX, t->nops, t->ncmp);
		return -1;
	}
	for (i = 0; i < t->ncmp + t->nops; i++) {
		const char *key = i < t->ncmp ? t->cmp[i].key :
		    t->ops[i - t->ncmp].key;

		if (key == NULL || (klen = strlen(key)) == 0 ||
		    klen > STORE_KEY_MAX) {
			set_cause(cause, "a store key is empty or longer than "
			    "%u bytes", STORE_KEY_MAX);
			return -1;
		}
	}
	for (i = 0; i < t->nops; i++)
		if (t->ops[i].value != NULL && t->ops[i].len > STORE_VALUE_MAX) {
			set_cause(cause, "store key %s: a value of %zu bytes "
			    "(at most %u)", t->ops[i].key, t->ops[i].len,
			    STORE_VALUE_MAX);
			return -1;
		}
	return 0;
}

int
store_load(struct store *s, store_load_cb each, store_loaded_cb done,
    void *arg, char **cause)
{
	return s->ops->load(s, each, done, arg, cause);
}

int
store_txn(struct store *s, const struct store_txn *t, store_txn_cb cb,
    void *arg, char **cause)
{
	if (store_txn_check(t, cause) != 0)
		return -1;
	return s->ops->txn(s, t, cb, arg, cause);
}

int
store_campaign(struct store *s, const char *name, unsigned ttl_ms,
    store_leader_cb cb, void *arg, char **cause)
{
	if (name == NULL || *name == '\0' || strlen(name) > 255) {
		set_cause(cause, "a coordinator's name is 1 to 255 bytes");
		return -1;
	}
	return s->ops->campaign(s, name, ttl_ms, cb, arg, cause);
}

int
store_leadership(struct store *s, uint64_t *term, const char **leader)
{
	*term = 0;
	*leader = NULL;
	return s->ops->leadership != NULL ? s->ops->leadership(s, term,
	    leader) : 1;
}

void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}
