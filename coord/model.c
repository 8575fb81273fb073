/* The coordinator's picture of the cluster (see model.h). */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "coord/model.h"
#include "daemon/msg.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define HOSTS_PREFIX		"hosts/"
#define INSTANCES_PREFIX	"instances/"
#define REPLICAS_PREFIX		"replicas/"

/* Names to array slots (open addressing, SIZE_MAX empty): a coordinator
 * with a thousand agents looks a host and its instances up at every
 * renewal.  Slots below n are in the table; later ones (appended) are
 * added at the next lookup, and a shorter array rebuilds it.  A hit is
 * checked against the array and a miss walks it, so a lookup answers
 * exactly what the walk alone would. */
struct name_index {
	size_t		*slot;
	size_t		 cap;		/* a power of two, or 0 */
	size_t		 n;
};

/* Instances grouped by owner (by the owner name's hash), rebuilt at the
 * first model_owned after a change: a grant lists what its host owns
 * without a walk over every instance. */
struct owner_index {
	struct model_instance	**by;		/* grouped by bucket */
	size_t			 *start;	/* bucket b: by[start[b]..start[b+1]) */
	size_t			  nbuckets;	/* a power of two */
	int			  valid;
};

struct picture {
	struct model_host	**hosts;
	size_t			  nhosts;
	struct model_instance	**insts;
	size_t			  ninsts;
	struct model_replica	**reps;
	size_t			  nreps;
	struct name_index	  host_ix, inst_ix;
	struct owner_index	  owners;
};

struct model {
	struct store	*store;
	struct picture	 pic;
};

/* --- the picture in memory ------------------------------------------------ */

static void
host_free(struct model_host *h)
{
	if (h == NULL)
		return;
	free(h->name);
	free(h);
}

static void
inst_free(struct model_instance *in)
{
	if (in == NULL)
		return;
	free(in->name);
	free(in->spec);
	free(in->spec_dir);
	free(in->owner);
	free(in);
}

static void
rep_free(struct model_replica *r)
{
	if (r == NULL)
		return;
	free(r->instance);
	free(r->host);
	free(r);
}

static void
picture_clear(struct picture *p)
{
	size_t	i;

	for (i = 0; i < p->nhosts; i++)
		host_free(p->hosts[i]);
	for (i = 0; i < p->ninsts; i++)
		inst_free(p->insts[i]);
	for (i = 0; i < p->nreps; i++)
		rep_free(p->reps[i]);
	free(p->hosts);
	free(p->insts);
	free(p->reps);
	free(p->host_ix.slot);
	free(p->inst_ix.slot);
	free(p->owners.by);
	free(p->owners.start);
	memset(p, 0, sizeof *p);
}

static void
append(void ***v, size_t *n, void *x)
{
	*v = xreallocarray(*v, *n + 1, sizeof **v);
	(*v)[(*n)++] = x;
}

/* FNV-1a */
static size_t
name_hash(const char *name)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *name != '\0'; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ULL;
	return (size_t)h;
}

static void
ix_put(struct name_index *ix, const char *name, size_t i)
{
	size_t	b;

	for (b = name_hash(name) & (ix->cap - 1); ix->slot[b] != SIZE_MAX;
	    b = (b + 1) & (ix->cap - 1))
		;
	ix->slot[b] = i;
}

/* Bring ix up to the array's n entries; name(v, i) is entry i's. */
static void
ix_update(struct name_index *ix, void **v, size_t n,
    const char *(*name)(void **, size_t))
{
	size_t	i;

	if (ix->n > n || (n + 1) * 2 > ix->cap) {
		/* Shrunk (rebuild), or more than half full (grow). */
		free(ix->slot);
		for (ix->cap = 64; ix->cap < (n + 1) * 4; ix->cap *= 2)
			;
		ix->slot = xreallocarray(NULL, ix->cap, sizeof *ix->slot);
		memset(ix->slot, 0xff, ix->cap * sizeof *ix->slot);
		ix->n = 0;
	}
	for (i = ix->n; i < n; i++)
		ix_put(ix, name(v, i), i);
	ix->n = n;
}

static ssize_t
ix_find(struct name_index *ix, void **v, size_t n,
    const char *(*name)(void **, size_t), const char *want)
{
	size_t	b, i;

	ix_update(ix, v, n, name);
	for (b = name_hash(want) & (ix->cap - 1); ix->slot[b] != SIZE_MAX;
	    b = (b + 1) & (ix->cap - 1))
		if (ix->slot[b] < n && strcmp(name(v, ix->slot[b]), want) == 0)
			return (ssize_t)ix->slot[b];
	for (i = 0; i < n; i++)		/* see struct name_index */
		if (strcmp(name(v, i), want) == 0)
			return (ssize_t)i;
	return -1;
}

static const char *
host_name_at(void **v, size_t i)
{
	return ((struct model_host **)v)[i]->name;
}

static const char *
inst_name_at(void **v, size_t i)
{
	return ((struct model_instance **)v)[i]->name;
}

static struct model_host *
pic_host(struct picture *p, const char *name)
{
	ssize_t	i = ix_find(&p->host_ix, (void **)p->hosts, p->nhosts,
		    host_name_at, name);

	return i < 0 ? NULL : p->hosts[i];
}

static struct model_instance *
pic_inst(struct picture *p, const char *name)
{
	ssize_t	i = ix_find(&p->inst_ix, (void **)p->insts, p->ninsts,
		    inst_name_at, name);

	return i < 0 ? NULL : p->insts[i];
}

static void
owners_build(struct picture *p)
{
	struct owner_index	*o = &p->owners;
	size_t			*fill, i, b;

	free(o->by);
	free(o->start);
	for (o->nbuckets = 64; o->nbuckets < p->ninsts; o->nbuckets *= 2)
		;
	o->start = xcalloc(o->nbuckets + 1, sizeof *o->start);
	o->by = xcalloc(p->ninsts + 1, sizeof *o->by);
	fill = xcalloc(o->nbuckets, sizeof *fill);
	for (i = 0; i < p->ninsts; i++)
		if (p->insts[i]->owner != NULL)
			o->start[(name_hash(p->insts[i]->owner) &
			    (o->nbuckets - 1)) + 1]++;
	for (b = 0; b < o->nbuckets; b++)
		o->start[b + 1] += o->start[b];
	for (i = 0; i < p->ninsts; i++) {
		if (p->insts[i]->owner == NULL)
			continue;
		b = name_hash(p->insts[i]->owner) & (o->nbuckets - 1);
		o->by[o->start[b] + fill[b]++] = p->insts[i];
	}
	free(fill);
	o->valid = 1;
}

size_t
model_owned(struct model *m, const char *host,
    struct model_instance ***out)
{
	struct owner_index	*o = &m->pic.owners;
	size_t			 b, i, n = 0;

	if (!o->valid)
		owners_build(&m->pic);
	b = name_hash(host) & (o->nbuckets - 1);
	*out = xcalloc(o->start[b + 1] - o->start[b] + 1, sizeof **out);
	for (i = o->start[b]; i < o->start[b + 1]; i++)
		if (strcmp(o->by[i]->owner, host) == 0)
			(*out)[n++] = o->by[i];
	return n;
}

static size_t
pic_rep_index(struct picture *p, const char *instance, const char *host)
{
	size_t	i;

	for (i = 0; i < p->nreps; i++)
		if (strcmp(p->reps[i]->instance, instance) == 0 &&
		    strcmp(p->reps[i]->host, host) == 0)
			return i;
	return (size_t)-1;
}

struct model_host *
model_host(struct model *m, const char *name)
{
	return pic_host(&m->pic, name);
}

struct model_instance *
model_instance(struct model *m, const char *name)
{
	return pic_inst(&m->pic, name);
}

size_t
model_hosts(struct model *m, struct model_host ***hosts)
{
	*hosts = m->pic.hosts;
	return m->pic.nhosts;
}

size_t
model_instances(struct model *m, struct model_instance ***insts)
{
	*insts = m->pic.insts;
	return m->pic.ninsts;
}

static int
rep_newer(const void *a, const void *b)
{
	const struct model_replica *x = *(struct model_replica *const *)a;
	const struct model_replica *y = *(struct model_replica *const *)b;

	if (x->epoch != y->epoch)
		return x->epoch > y->epoch ? -1 : 1;
	if (x->generation != y->generation)
		return x->generation > y->generation ? -1 : 1;
	return strcmp(x->host, y->host);
}

struct model_replica **
model_replicas(struct model *m, const char *instance, size_t *n)
{
	struct model_replica	**v = NULL;
	size_t			  i;

	*n = 0;
	for (i = 0; i < m->pic.nreps; i++)
		if (strcmp(m->pic.reps[i]->instance, instance) == 0)
			append((void ***)&v, n, m->pic.reps[i]);
	if (*n > 1)
		qsort(v, *n, sizeof *v, rep_newer);
	return v;
}

/* --- records ------------------------------------------------------------------ */

/* Names as the rest of tern takes them: host and instance names. */
static int
name_ok(const char *s)
{
	return s != NULL && host_name_valid(s);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

/* Decode value as msg's record type, strictly; NULL and *cause if not. */
static ProtobufCMessage *
record_unpack(const ProtobufCMessageDescriptor *d, const char *key,
    const void *value, size_t len, char **cause)
{
	ProtobufCMessage	*r;
	char			*why = NULL;

	if ((r = protobuf_c_message_unpack(d, NULL, len, value)) == NULL) {
		set_cause(cause, "store key %s: not a %s record", key, d->name);
		return NULL;
	}
	if (msg_check_strict(r, &why) != 0) {
		set_cause(cause, "store key %s: %s", key, why);
		free(why);
		protobuf_c_message_free_unpacked(r, NULL);
		return NULL;
	}
	return r;
}

static uint8_t *
record_pack(const ProtobufCMessage *r, size_t *len)
{
	uint8_t	*buf;

	*len = protobuf_c_message_get_packed_size(r);
	buf = xmalloc(*len != 0 ? *len : 1);
	protobuf_c_message_pack(r, buf);
	return buf;
}

static struct model_host *
host_from(const Tern__HostRecord *r, uint64_t rev)
{
	struct model_host	*h = xcalloc(1, sizeof *h);

	h->name = xstrdup(r->name);
	h->drained = r->has_drained && r->drained;
	h->memory_mib = r->memory_mib;
	h->max_instances = r->max_instances;
	h->mod_rev = rev;
	return h;
}

static struct model_instance *
inst_from(const Tern__InstanceRecord *r, uint64_t rev)
{
	struct model_instance	*in = xcalloc(1, sizeof *in);

	in->name = xstrdup(r->name);
	in->kind = r->kind;
	in->spec = xstrdup(r->spec);
	in->spec_dir = dup_or_null(r->spec_dir);
	in->owner = dup_or_null(r->owner);
	in->epoch = r->epoch;
	in->ha = (enum model_ha)r->ha;
	in->interval_ms = r->interval_ms;
	in->replicas = r->replicas;
	in->priority = r->priority;
	in->memory_mib = r->memory_mib;
	in->mod_rev = rev;
	return in;
}

static void
inst_to(const struct model_instance *in, Tern__InstanceRecord *r)
{
	tern__instance_record__init(r);
	r->name = in->name;
	r->kind = in->kind;
	r->spec = in->spec;
	r->spec_dir = in->spec_dir;
	r->owner = in->owner;
	r->epoch = in->epoch;
	r->has_ha = in->ha != MODEL_HA_NONE;
	r->ha = (Tern__HaPolicy)in->ha;
	r->has_interval_ms = in->interval_ms != 0;
	r->interval_ms = in->interval_ms;
	r->has_replicas = in->replicas != 0;
	r->replicas = in->replicas;
	r->has_priority = in->priority != 0;
	r->priority = in->priority;
	r->has_memory_mib = in->memory_mib != 0;
	r->memory_mib = in->memory_mib;
}

static struct model_replica *
rep_from(const Tern__ReplicaRecord *r, uint64_t rev)
{
	struct model_replica	*x = xcalloc(1, sizeof *x);

	x->instance = xstrdup(r->instance);
	x->host = xstrdup(r->host);
	x->epoch = r->epoch;
	x->generation = r->generation;
	x->taken_unix_ms = r->taken_unix_ms;
	if (r->has_digest && r->digest.len <= sizeof x->digest) {
		memcpy(x->digest, r->digest.data, r->digest.len);
		x->digest_len = r->digest.len;
	}
	x->bytes = r->bytes;
	x->mod_rev = rev;
	return x;
}

static void
rep_to(const struct model_replica *x, Tern__ReplicaRecord *r)
{
	tern__replica_record__init(r);
	r->instance = x->instance;
	r->host = x->host;
	r->epoch = x->epoch;
	r->generation = x->generation;
	r->taken_unix_ms = x->taken_unix_ms;
	r->has_digest = x->digest_len != 0;
	r->digest.data = (uint8_t *)x->digest;
	r->digest.len = x->digest_len;
	r->has_bytes = x->bytes != 0;
	r->bytes = x->bytes;
}

/* --- load ---------------------------------------------------------------------- */

struct model_loading {
	struct model	*m;
	struct picture	 pic;
	char		*error;
	model_cb	 cb;
	void		*arg;
};

static int
load_key(struct model_loading *l, const char *key, const void *value,
    size_t len, uint64_t rev, char **cause)
{
	ProtobufCMessage	*r;
	const char		*rest, *slash;
	int			 ok = 1;

	if (strncmp(key, HOSTS_PREFIX, strlen(HOSTS_PREFIX)) == 0) {
		rest = key + strlen(HOSTS_PREFIX);
		if ((r = record_unpack(&tern__host_record__descriptor, key,
		    value, len, cause)) == NULL)
			return -1;
		ok = strcmp(((Tern__HostRecord *)r)->name, rest) == 0 &&
		    name_ok(rest) && pic_host(&l->pic, rest) == NULL;
		if (ok)
			append((void ***)&l->pic.hosts, &l->pic.nhosts,
			    host_from((Tern__HostRecord *)r, rev));
	} else if (strncmp(key, INSTANCES_PREFIX,
	    strlen(INSTANCES_PREFIX)) == 0) {
		Tern__InstanceRecord	*ir;

		rest = key + strlen(INSTANCES_PREFIX);
		if ((r = record_unpack(&tern__instance_record__descriptor, key,
		    value, len, cause)) == NULL)
			return -1;
		ir = (Tern__InstanceRecord *)r;
		ok = strcmp(ir->name, rest) == 0 && name_ok(rest) &&
		    ir->epoch != 0 && (ir->owner == NULL || *ir->owner == '\0' ||
		    name_ok(ir->owner));
		if (ok)
			append((void ***)&l->pic.insts, &l->pic.ninsts,
			    inst_from(ir, rev));
	} else if (strncmp(key, REPLICAS_PREFIX,
	    strlen(REPLICAS_PREFIX)) == 0) {
		Tern__ReplicaRecord	*rr;
		size_t			 ilen;

		rest = key + strlen(REPLICAS_PREFIX);
		if ((slash = strchr(rest, '/')) == NULL) {
			set_cause(cause, "store key %s: not replicas/INSTANCE/"
			    "HOST", key);
			return -1;
		}
		if ((r = record_unpack(&tern__replica_record__descriptor, key,
		    value, len, cause)) == NULL)
			return -1;
		rr = (Tern__ReplicaRecord *)r;
		ilen = (size_t)(slash - rest);
		ok = strlen(rr->instance) == ilen &&
		    strncmp(rr->instance, rest, ilen) == 0 &&
		    strcmp(rr->host, slash + 1) == 0 && name_ok(rr->instance) &&
		    name_ok(rr->host) && (!rr->has_digest ||
		    rr->digest.len == 32);
		if (ok)
			append((void ***)&l->pic.reps, &l->pic.nreps,
			    rep_from(rr, rev));
	} else
		return 0;	/* another part of the coordinator's */
	protobuf_c_message_free_unpacked(r, NULL);
	if (!ok) {
		set_cause(cause, "store key %s: its record does not match its "
		    "key, or names something invalid", key);
		return -1;
	}
	return 0;
}

static void
model_on_key(void *arg, const char *key, const void *value, size_t len,
    uint64_t rev)
{
	struct model_loading	*l = arg;

	if (l->error == NULL)
		(void)load_key(l, key, value, len, rev, &l->error);
}

static void
model_on_loaded(void *arg, uint64_t rev, const char *error)
{
	struct model_loading	*l = arg;

	(void)rev;
	if (error != NULL && l->error == NULL)
		l->error = xstrdup(error);
	if (l->error == NULL) {
		picture_clear(&l->m->pic);
		l->m->pic = l->pic;
	} else
		picture_clear(&l->pic);
	l->cb(l->arg, l->error);
	free(l->error);
	free(l);
}

int
model_load(struct model *m, model_cb cb, void *arg, char **cause)
{
	struct model_loading	*l = xcalloc(1, sizeof *l);

	l->m = m;
	l->cb = cb;
	l->arg = arg;
	if (store_load(m->store, model_on_key, model_on_loaded, l,
	    cause) != 0) {
		free(l);
		return -1;
	}
	return 0;
}

/* --- changes ------------------------------------------------------------------- */

enum change_kind {
	CHANGE_HOST,
	CHANGE_INSTANCE,
	CHANGE_REPLICA,
};

/* A change on its way to the store, applied to the picture on commit. */
struct model_change {
	struct model		*m;
	enum change_kind	 kind;
	void			*obj;		/* the new host/instance/replica */
	char			*what;		/* for "changed meanwhile" */
	model_cb		 cb;
	void			*arg;
};

static void
model_committed(void *arg, int committed, uint64_t rev, const char *error)
{
	struct model_change	*c = arg;
	struct picture		*p = &c->m->pic;
	char			*text = NULL;
	size_t			 i;

	if (error != NULL)
		xasprintf(&text, "%s: %s", c->what, error);
	else if (!committed)
		xasprintf(&text, "%s changed meanwhile (another coordinator, "
		    "or a change in flight): load again", c->what);
	if (text != NULL) {
		c->cb(c->arg, text);
		free(text);
		goto done;
	}
	p->owners.valid = 0;
	switch (c->kind) {
	case CHANGE_HOST: {
		struct model_host *h = c->obj, *old = pic_host(p, h->name);

		h->mod_rev = rev;
		if (old != NULL) {
			h->lease = old->lease;
			for (i = 0; p->hosts[i] != old; i++)
				;
			host_free(old);
			p->hosts[i] = h;
		} else
			append((void ***)&p->hosts, &p->nhosts, h);
		break;
	}
	case CHANGE_INSTANCE: {
		struct model_instance *in = c->obj, *old = pic_inst(p, in->name);

		in->mod_rev = rev;
		if (old != NULL) {
			for (i = 0; p->insts[i] != old; i++)
				;
			inst_free(old);
			p->insts[i] = in;
		} else
			append((void ***)&p->insts, &p->ninsts, in);
		break;
	}
	case CHANGE_REPLICA: {
		struct model_replica *r = c->obj;

		r->mod_rev = rev;
		if ((i = pic_rep_index(p, r->instance, r->host)) != (size_t)-1) {
			rep_free(p->reps[i]);
			p->reps[i] = r;
		} else
			append((void ***)&p->reps, &p->nreps, r);
		break;
	}
	}
	c->obj = NULL;
	c->cb(c->arg, NULL);
done:
	if (c->obj != NULL) {
		if (c->kind == CHANGE_HOST)
			host_free(c->obj);
		else if (c->kind == CHANGE_INSTANCE)
			inst_free(c->obj);
		else
			rep_free(c->obj);
	}
	free(c->what);
	free(c);
}

static int
model_commit(struct model *m, const struct store_txn *t, enum change_kind kind,
    void *obj, const char *what, model_cb cb, void *arg, char **cause)
{
	struct model_change	*c = xcalloc(1, sizeof *c);

	c->m = m;
	c->kind = kind;
	c->obj = obj;
	c->what = xstrdup(what);
	c->cb = cb;
	c->arg = arg;
	if (store_txn(m->store, t, model_committed, c, cause) != 0) {
		c->obj = NULL;
		free(c->what);
		free(c);
		return -1;
	}
	return 0;
}

int
model_host_put(struct model *m, const char *name, int drained,
    uint64_t memory_mib, uint32_t max_instances, model_cb cb, void *arg,
    char **cause)
{
	struct model_host	*old, *h;
	Tern__HostRecord	 r = TERN__HOST_RECORD__INIT;
	char			*key, *what;
	uint8_t			*buf;
	size_t			 len;
	int			 rc;

	if (!name_ok(name)) {
		set_cause(cause, "bad host name");
		return -1;
	}
	old = pic_host(&m->pic, name);
	r.name = (char *)name;
	r.has_drained = drained != 0;
	r.drained = drained != 0;
	r.has_memory_mib = memory_mib != 0;
	r.memory_mib = memory_mib;
	r.has_max_instances = max_instances != 0;
	r.max_instances = max_instances;
	h = host_from(&r, 0);
	xasprintf(&key, HOSTS_PREFIX "%s", name);
	xasprintf(&what, "host %s", name);
	buf = record_pack((ProtobufCMessage *)&r, &len);
	{
		struct store_cmp	cmp = { key, old != NULL ? old->mod_rev : 0 };
		struct store_op		op = { key, buf, len };
		struct store_txn	t = { &cmp, 1, &op, 1 };

		rc = model_commit(m, &t, CHANGE_HOST, h, what, cb, arg, cause);
	}
	if (rc != 0)
		host_free(h);
	free(buf);
	free(key);
	free(what);
	return rc;
}

static int
inst_put(struct model *m, struct model_instance *in, uint64_t cmp_rev,
    const char *what, model_cb cb, void *arg, char **cause)
{
	Tern__InstanceRecord	 r;
	char			*key;
	uint8_t			*buf;
	size_t			 len;
	int			 rc;

	inst_to(in, &r);
	xasprintf(&key, INSTANCES_PREFIX "%s", in->name);
	buf = record_pack((ProtobufCMessage *)&r, &len);
	{
		struct store_cmp	cmp = { key, cmp_rev };
		struct store_op		op = { key, buf, len };
		struct store_txn	t = { &cmp, 1, &op, 1 };

		rc = model_commit(m, &t, CHANGE_INSTANCE, in, what, cb, arg,
		    cause);
	}
	free(buf);
	free(key);
	return rc;
}

static struct model_instance *
inst_copy(const struct model_instance *src)
{
	struct model_instance	*in = xcalloc(1, sizeof *in);

	*in = *src;
	in->name = xstrdup(src->name);
	in->spec = xstrdup(src->spec);
	in->spec_dir = dup_or_null(src->spec_dir);
	in->owner = dup_or_null(src->owner);
	return in;
}

int
model_instance_add(struct model *m, const struct model_instance *src,
    model_cb cb, void *arg, char **cause)
{
	struct model_instance	*in;
	char			*what;
	int			 rc;

	if (!name_ok(src->name) || src->spec == NULL ||
	    protobuf_c_enum_descriptor_get_value(
	    &tern__instance_kind__descriptor, (int)src->kind) == NULL ||
	    (src->owner != NULL && !name_ok(src->owner)) ||
	    src->ha > MODEL_HA_CHECKPOINT ||
	    (src->ha == MODEL_HA_CHECKPOINT && (src->interval_ms == 0 ||
	    src->replicas == 0))) {
		set_cause(cause, "instance %s: a name, a kind, a spec, a valid "
		    "owner, and for checkpoint protection an interval and a "
		    "replica count", src->name != NULL ? src->name : "?");
		return -1;
	}
	if (pic_inst(&m->pic, src->name) != NULL) {
		set_cause(cause, "instance %s exists already", src->name);
		return -1;
	}
	in = inst_copy(src);
	in->epoch = 1;
	xasprintf(&what, "instance %s", in->name);
	rc = inst_put(m, in, 0, what, cb, arg, cause);
	if (rc != 0)
		inst_free(in);
	free(what);
	return rc;
}

int
model_instance_move(struct model *m, const char *name, uint64_t epoch,
    const char *to, model_cb cb, void *arg, char **cause)
{
	struct model_instance	*cur, *in;
	char			*what;
	int			 rc;

	if ((cur = pic_inst(&m->pic, name)) == NULL) {
		set_cause(cause, "no instance %s", name);
		return -1;
	}
	if (cur->epoch != epoch) {
		set_cause(cause, "instance %s is at epoch %" PRIu64 ", not %"
		    PRIu64 ": it changed owner meanwhile", name, cur->epoch,
		    epoch);
		return -1;
	}
	if (to != NULL && pic_host(&m->pic, to) == NULL) {
		set_cause(cause, "instance %s: no host %s", name, to);
		return -1;
	}
	in = inst_copy(cur);
	free(in->owner);
	in->owner = to != NULL ? xstrdup(to) : NULL;
	in->epoch = epoch + 1;
	xasprintf(&what, "instance %s (epoch %" PRIu64 ")", name, epoch);
	rc = inst_put(m, in, cur->mod_rev, what, cb, arg, cause);
	if (rc != 0)
		inst_free(in);
	free(what);
	return rc;
}

int
model_replica_put(struct model *m, const struct model_replica *src,
    model_cb cb, void *arg, char **cause)
{
	struct model_instance	*in;
	struct model_replica	*r;
	Tern__ReplicaRecord	 rr;
	char			*rkey, *ikey, *what;
	uint8_t			*buf;
	size_t			 len, i;
	int			 rc;

	if ((in = pic_inst(&m->pic, src->instance)) == NULL ||
	    pic_host(&m->pic, src->host) == NULL) {
		set_cause(cause, "replica of %s on %s: no such instance or host",
		    src->instance, src->host);
		return -1;
	}
	if (src->epoch != in->epoch) {
		set_cause(cause, "replica of %s on %s was made at epoch %"
		    PRIu64 "; the instance is at %" PRIu64 " (an old owner's "
		    "copy)", src->instance, src->host, src->epoch, in->epoch);
		return -1;
	}
	if (src->digest_len != 0 && src->digest_len != 32) {
		set_cause(cause, "replica of %s: a digest is 32 bytes",
		    src->instance);
		return -1;
	}
	r = xcalloc(1, sizeof *r);
	*r = *src;
	r->instance = xstrdup(src->instance);
	r->host = xstrdup(src->host);
	rep_to(r, &rr);
	xasprintf(&rkey, REPLICAS_PREFIX "%s/%s", r->instance, r->host);
	xasprintf(&ikey, INSTANCES_PREFIX "%s", in->name);
	xasprintf(&what, "replica of %s on %s", r->instance, r->host);
	buf = record_pack((ProtobufCMessage *)&rr, &len);
	i = pic_rep_index(&m->pic, r->instance, r->host);
	{
		/* Bound to the instance as read: had it moved (a new epoch),
		 * this would be an old owner's copy, refused. */
		struct store_cmp	cmp[2] = {
			{ ikey, in->mod_rev },
			{ rkey, i != (size_t)-1 ? m->pic.reps[i]->mod_rev : 0 },
		};
		struct store_op		op = { rkey, buf, len };
		struct store_txn	t = { cmp, 2, &op, 1 };

		rc = model_commit(m, &t, CHANGE_REPLICA, r, what, cb, arg, cause);
	}
	if (rc != 0)
		rep_free(r);
	free(buf);
	free(rkey);
	free(ikey);
	free(what);
	return rc;
}

/* --- placement ----------------------------------------------------------------- */

struct load {
	uint64_t	memory_mib;
	uint32_t	count;
};

static int
inst_prio(const void *a, const void *b)
{
	const struct model_instance *x = *(struct model_instance *const *)a;
	const struct model_instance *y = *(struct model_instance *const *)b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Whether host h (at load l) may take in, and if not, why (static). */
static const char *
host_refuses(const struct model_host *h, const struct load *l,
    const struct model_instance *in)
{
	if (h->lease.state != HOST_UP)
		return "not up";
	if (h->drained)
		return "drained";
	if (h->memory_mib != 0 && l->memory_mib + in->memory_mib >
	    h->memory_mib)
		return "no memory left for it";
	if (h->max_instances != 0 && l->count + 1 > h->max_instances)
		return "at its instance limit";
	return NULL;
}

size_t
model_failover_plan(struct model *m, const char *failed,
    struct model_plan **out)
{
	struct picture		 *p = &m->pic;
	struct load		 *loads = xcalloc(p->nhosts + 1, sizeof *loads);
	struct model_instance	**todo = NULL;
	struct model_plan	 *plan;
	struct model_replica	**reps;
	size_t			  ntodo = 0, i, k, nreps, best;
	const char		 *no;

	for (i = 0; i < p->ninsts; i++) {
		struct model_instance *in = p->insts[i];

		if (in->owner == NULL)
			continue;
		if (strcmp(in->owner, failed) == 0) {
			append((void ***)&todo, &ntodo, in);
			continue;
		}
		for (k = 0; k < p->nhosts; k++)
			if (strcmp(p->hosts[k]->name, in->owner) == 0) {
				loads[k].memory_mib += in->memory_mib;
				loads[k].count++;
			}
	}
	if (ntodo > 1)
		qsort(todo, ntodo, sizeof *todo, inst_prio);
	plan = xcalloc(ntodo + 1, sizeof *plan);
	for (i = 0; i < ntodo; i++) {
		struct model_instance	*in = todo[i];

		plan[i].instance = in;
		best = (size_t)-1;
		if (in->ha == MODEL_HA_NONE) {
			xasprintf(&plan[i].why, "%s is not protected (ha none)",
			    in->name);
			continue;
		}
		if (in->ha == MODEL_HA_CHECKPOINT) {
			/* The newest replica on a host that may take it. */
			reps = model_replicas(m, in->name, &nreps);
			for (k = 0; k < nreps && best == (size_t)-1; k++) {
				size_t h;

				for (h = 0; h < p->nhosts; h++)
					if (strcmp(p->hosts[h]->name,
					    reps[k]->host) == 0)
						break;
				if (h == p->nhosts || strcmp(reps[k]->host,
				    failed) == 0 || host_refuses(p->hosts[h],
				    &loads[h], in) != NULL)
					continue;
				best = h;
				plan[i].replica = reps[k];
			}
			free(reps);
			if (best == (size_t)-1) {
				xasprintf(&plan[i].why, "%s: no replica on a "
				    "host that is up, not drained and has room "
				    "(%zu replica%s in all)", in->name, nreps,
				    nreps == 1 ? "" : "s");
				continue;
			}
		} else {
			/* Restart: the least loaded host that may take it. */
			for (k = 0; k < p->nhosts; k++) {
				if (strcmp(p->hosts[k]->name, failed) == 0 ||
				    host_refuses(p->hosts[k], &loads[k],
				    in) != NULL)
					continue;
				if (best == (size_t)-1 ||
				    loads[k].memory_mib <
				    loads[best].memory_mib ||
				    (loads[k].memory_mib ==
				    loads[best].memory_mib &&
				    (loads[k].count < loads[best].count ||
				    (loads[k].count == loads[best].count &&
				    strcmp(p->hosts[k]->name,
				    p->hosts[best]->name) < 0))))
					best = k;
			}
			if (best == (size_t)-1) {
				no = p->nhosts <= 1 ? "no other host" :
				    "no host is up, not drained and has room";
				xasprintf(&plan[i].why, "%s: %s", in->name, no);
				continue;
			}
		}
		plan[i].target = p->hosts[best]->name;
		loads[best].memory_mib += in->memory_mib;
		loads[best].count++;
	}
	free(todo);
	free(loads);
	*out = plan;
	return ntodo;
}

void
model_plan_free(struct model_plan *plan, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(plan[i].why);
	free(plan);
}

/* --- life ------------------------------------------------------------------------ */

struct model *
model_new(struct store *s)
{
	struct model	*m = xcalloc(1, sizeof *m);

	m->store = s;
	return m;
}

void
model_free(struct model *m)
{
	if (m == NULL)
		return;
	picture_clear(&m->pic);
	free(m);
}
