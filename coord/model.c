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
#define FAILOVERS_PREFIX	"failovers/"
/* Old history records one failover drops at most (more only if the
 * bound was lowered: the next failovers drop the rest). */
#define FAILOVERS_DROP_MAX	8

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

/* The checkpoint-protected instances that have an owner, and the
 * replicas grouped by instance (the name's hash), rebuilt at the first
 * use after a change: a grant's keep-list costs what the checkpoint-
 * protected instances hold, not a walk over every instance and replica
 * per instance. */
struct ckpt_index {
	struct model_instance	**insts;
	size_t			  ninsts;
	struct model_replica	**reps;		/* grouped by bucket */
	size_t			 *start;	/* as owner_index's */
	size_t			  nbuckets;
	int			  valid;
};

struct picture {
	struct model_host	**hosts;
	size_t			  nhosts;
	struct model_instance	**insts;
	size_t			  ninsts;
	struct model_replica	**reps;
	size_t			  nreps;
	struct model_failover	**fos;		/* by seq */
	size_t			  nfos;
	struct name_index	  host_ix, inst_ix;
	struct owner_index	  owners;
	struct ckpt_index	  ckpt;
};

struct model {
	struct store	*store;
	struct picture	 pic;
	uint64_t	 next_seq;	/* the next failover record's */
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
fo_free(struct model_failover *f)
{
	if (f == NULL)
		return;
	free(f->instance);
	free(f->from);
	free(f->to);
	free(f->why);
	free(f);
}

static void
picture_clear(struct picture *p)
{
	size_t	i;

	for (i = 0; i < p->nfos; i++)
		fo_free(p->fos[i]);
	free(p->fos);

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
	free(p->ckpt.insts);
	free(p->ckpt.reps);
	free(p->ckpt.start);
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

size_t
model_failovers(struct model *m, struct model_failover ***fos)
{
	*fos = m->pic.fos;
	return m->pic.nfos;
}

struct model_failover *
model_failover_last(struct model *m, const char *instance)
{
	size_t	i;

	for (i = m->pic.nfos; i > 0; i--)
		if (strcmp(m->pic.fos[i - 1]->instance, instance) == 0)
			return m->pic.fos[i - 1];
	return NULL;
}

static int
fo_by_seq(const void *a, const void *b)
{
	const struct model_failover *x = *(struct model_failover *const *)a;
	const struct model_failover *y = *(struct model_failover *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static struct model_failover *
pic_fo(struct picture *p, uint64_t seq, size_t *at)
{
	size_t	i;

	for (i = 0; i < p->nfos; i++)
		if (p->fos[i]->seq == seq) {
			if (at != NULL)
				*at = i;
			return p->fos[i];
		}
	return NULL;
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

static void
ckpt_build(struct picture *p)
{
	struct ckpt_index	*x = &p->ckpt;
	size_t			*fill, i, b;

	free(x->insts);
	free(x->reps);
	free(x->start);
	x->insts = xcalloc(p->ninsts + 1, sizeof *x->insts);
	x->ninsts = 0;
	for (i = 0; i < p->ninsts; i++)
		if (p->insts[i]->ha == MODEL_HA_CHECKPOINT &&
		    p->insts[i]->owner != NULL)
			x->insts[x->ninsts++] = p->insts[i];
	for (x->nbuckets = 64; x->nbuckets < p->nreps; x->nbuckets *= 2)
		;
	x->start = xcalloc(x->nbuckets + 1, sizeof *x->start);
	x->reps = xcalloc(p->nreps + 1, sizeof *x->reps);
	fill = xcalloc(x->nbuckets, sizeof *fill);
	for (i = 0; i < p->nreps; i++)
		x->start[(name_hash(p->reps[i]->instance) &
		    (x->nbuckets - 1)) + 1]++;
	for (b = 0; b < x->nbuckets; b++)
		x->start[b + 1] += x->start[b];
	for (i = 0; i < p->nreps; i++) {
		b = name_hash(p->reps[i]->instance) & (x->nbuckets - 1);
		x->reps[x->start[b] + fill[b]++] = p->reps[i];
	}
	free(fill);
	x->valid = 1;
}

size_t
model_ckpt_instances(struct model *m, struct model_instance ***insts)
{
	if (!m->pic.ckpt.valid)
		ckpt_build(&m->pic);
	*insts = m->pic.ckpt.insts;
	return m->pic.ckpt.ninsts;
}

struct model_replica **
model_replicas(struct model *m, const char *instance, size_t *n)
{
	struct ckpt_index	 *x = &m->pic.ckpt;
	struct model_replica	**v = NULL;
	size_t			  i, b;

	if (!x->valid)
		ckpt_build(&m->pic);
	*n = 0;
	b = name_hash(instance) & (x->nbuckets - 1);
	for (i = x->start[b]; i < x->start[b + 1]; i++)
		if (strcmp(x->reps[i]->instance, instance) == 0)
			append((void ***)&v, n, x->reps[i]);
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

static struct model_failover *
fo_copy(const struct model_failover *src)
{
	struct model_failover	*f = xcalloc(1, sizeof *f);

	*f = *src;
	f->instance = xstrdup(src->instance);
	f->from = xstrdup(src->from);
	f->to = dup_or_null(src->to);
	f->why = dup_or_null(src->why);
	return f;
}

static struct model_failover *
fo_from(const Tern__FailoverRecord *r, uint64_t rev)
{
	struct model_failover	*f = xcalloc(1, sizeof *f);

	f->seq = r->seq;
	f->time_unix_ms = r->time_unix_ms;
	f->instance = xstrdup(r->instance);
	f->from = xstrdup(r->from);
	f->to = dup_or_null(r->to);
	f->why = dup_or_null(r->why);
	f->epoch = r->epoch;
	f->failed_unix_ms = r->failed_unix_ms;
	f->outcome = (enum model_outcome)r->outcome;
	f->outcome_unix_ms = r->outcome_unix_ms;
	f->mod_rev = rev;
	return f;
}

void
model_failover_record(const struct model_failover *f,
    Tern__FailoverRecord *r)
{
	tern__failover_record__init(r);
	r->seq = f->seq;
	r->time_unix_ms = f->time_unix_ms;
	r->instance = f->instance;
	r->from = f->from;
	r->to = f->to;
	r->why = f->why;
	r->epoch = f->epoch;
	r->has_failed_unix_ms = f->failed_unix_ms != 0;
	r->failed_unix_ms = f->failed_unix_ms;
	r->has_outcome = f->outcome != MODEL_OUTCOME_PENDING;
	r->outcome = (Tern__FailoverRecord__Outcome)f->outcome;
	r->has_outcome_unix_ms = f->outcome_unix_ms != 0;
	r->outcome_unix_ms = f->outcome_unix_ms;
}

static char *
fo_key(uint64_t seq)
{
	char	*key;

	xasprintf(&key, FAILOVERS_PREFIX "%020" PRIu64, seq);
	return key;
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
	} else if (strncmp(key, FAILOVERS_PREFIX,
	    strlen(FAILOVERS_PREFIX)) == 0) {
		Tern__FailoverRecord	*fr;
		char			*want;

		if ((r = record_unpack(&tern__failover_record__descriptor, key,
		    value, len, cause)) == NULL)
			return -1;
		fr = (Tern__FailoverRecord *)r;
		want = fo_key(fr->seq);
		ok = strcmp(want, key) == 0 && fr->seq != 0 &&
		    name_ok(fr->instance) && name_ok(fr->from) &&
		    (fr->to == NULL || *fr->to == '\0' || name_ok(fr->to)) &&
		    protobuf_c_enum_descriptor_get_value(
		    &tern__failover_record__outcome__descriptor,
		    (int)fr->outcome) != NULL;
		free(want);
		if (ok)
			append((void ***)&l->pic.fos, &l->pic.nfos,
			    fo_from(fr, rev));
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
		/* Keys come in key order, which is seq order. */
		if (l->m->pic.nfos > 1)
			qsort(l->m->pic.fos, l->m->pic.nfos,
			    sizeof *l->m->pic.fos, fo_by_seq);
		l->m->next_seq = l->m->pic.nfos > 0 ?
		    l->m->pic.fos[l->m->pic.nfos - 1]->seq + 1 : 1;
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

/* The history records one new record deletes: every one MODEL_FAILOVERS_MAX
 * seqs older or more (FAILOVERS_DROP_MAX at most), and the one exactly
 * that old, so that moves in flight together still keep the bound. */
struct fo_drops {
	uint64_t	 seq[FAILOVERS_DROP_MAX + 1];
	size_t		 n;
};

enum change_kind {
	CHANGE_HOST,
	CHANGE_INSTANCE,
	CHANGE_REPLICA,
	CHANGE_FAILOVER,	/* fo alone */
};

/* A change on its way to the store, applied to the picture on commit. */
struct model_change {
	struct model		*m;
	enum change_kind	 kind;
	void			*obj;		/* the new host/instance/replica */
	struct model_failover	*fo;		/* a history record with it */
	struct fo_drops		 drops;		/* history seqs it deletes */
	char			*what;		/* for "changed meanwhile" */
	model_cb		 cb;
	void			*arg;
};

/* A committed history record: replaces its seq's or joins at the end;
 * the records it deleted go. */
static void
pic_fo_apply(struct picture *p, struct model_failover *f, uint64_t rev,
    const struct fo_drops *drops)
{
	size_t	i, k, j;
	int	drop;

	f->mod_rev = rev;
	if (pic_fo(p, f->seq, &i) != NULL) {
		fo_free(p->fos[i]);
		p->fos[i] = f;
	} else {
		append((void ***)&p->fos, &p->nfos, f);
		if (p->nfos > 1 && p->fos[p->nfos - 2]->seq > f->seq)
			qsort(p->fos, p->nfos, sizeof *p->fos, fo_by_seq);
	}
	for (i = k = 0; i < p->nfos; i++) {
		for (j = 0, drop = 0; j < drops->n && !drop; j++)
			drop = p->fos[i]->seq == drops->seq[j];
		if (drop)
			fo_free(p->fos[i]);
		else
			p->fos[k++] = p->fos[i];
	}
	p->nfos = k;
}

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
	p->ckpt.valid = 0;
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
	case CHANGE_FAILOVER:
		break;
	}
	c->obj = NULL;
	if (c->fo != NULL) {
		pic_fo_apply(p, c->fo, rev, &c->drops);
		c->fo = NULL;
	}
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
	fo_free(c->fo);
	free(c->what);
	free(c);
}

/* Commit t; on success obj and fo are the change's (applied on commit),
 * on failure still the caller's. */
static int
model_commit_fo(struct model *m, const struct store_txn *t,
    enum change_kind kind, void *obj, struct model_failover *fo,
    const struct fo_drops *drops, const char *what, model_cb cb, void *arg,
    char **cause)
{
	struct model_change	*c = xcalloc(1, sizeof *c);

	c->m = m;
	c->kind = kind;
	c->obj = obj;
	c->fo = fo;
	if (drops != NULL)
		c->drops = *drops;
	c->what = xstrdup(what);
	c->cb = cb;
	c->arg = arg;
	if (store_txn(m->store, t, model_committed, c, cause) != 0) {
		free(c->what);
		free(c);
		return -1;
	}
	return 0;
}

static int
model_commit(struct model *m, const struct store_txn *t, enum change_kind kind,
    void *obj, const char *what, model_cb cb, void *arg, char **cause)
{
	return model_commit_fo(m, t, kind, obj, NULL, NULL, what, cb, arg,
	    cause);
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

static void
fo_drop(struct fo_drops *d, uint64_t seq, struct store_op *ops, size_t *nops,
    char **keys, size_t *nkeys)
{
	d->seq[d->n++] = seq;
	keys[*nkeys] = fo_key(seq);
	ops[*nops].key = keys[(*nkeys)++];
	ops[*nops].value = NULL;
	ops[(*nops)++].len = 0;
}

/* The history record fo (seq given) and the deletes that keep the bound
 * (struct fo_drops): ops[*nops...], keys[] to free. */
static void
fo_ops(struct model *m, const struct model_failover *fo, uint8_t **buf,
    struct store_op *ops, size_t *nops, char **keys, size_t *nkeys,
    struct fo_drops *d)
{
	Tern__FailoverRecord	 r;
	uint64_t		 old;
	size_t			 len, i;
	int			 listed = 0;

	model_failover_record(fo, &r);
	*buf = record_pack((ProtobufCMessage *)&r, &len);
	keys[*nkeys] = fo_key(fo->seq);
	ops[*nops].key = keys[(*nkeys)++];
	ops[*nops].value = *buf;
	ops[(*nops)++].len = len;
	memset(d, 0, sizeof *d);
	old = fo->seq > MODEL_FAILOVERS_MAX ? fo->seq - MODEL_FAILOVERS_MAX : 0;
	for (i = 0; i < m->pic.nfos && i < FAILOVERS_DROP_MAX; i++) {
		if (m->pic.fos[i]->seq > old)
			break;
		listed |= m->pic.fos[i]->seq == old;
		fo_drop(d, m->pic.fos[i]->seq, ops, nops, keys, nkeys);
	}
	if (old != 0 && !listed)
		fo_drop(d, old, ops, nops, keys, nkeys);
}

/* Ownership to to at epoch + 1, and the history record fo_src if given,
 * all in one transaction. */
static int
inst_move(struct model *m, const char *name, uint64_t epoch, const char *to,
    const struct model_failover *fo_src, model_cb cb, void *arg,
    char **cause)
{
	struct model_instance	*cur, *in;
	struct model_failover	*fo = NULL;
	Tern__InstanceRecord	 r;
	struct store_op		 ops[3 + FAILOVERS_DROP_MAX];
	struct store_cmp	 cmp[2];
	struct store_txn	 t;
	struct fo_drops		 drops;
	char			*keys[3 + FAILOVERS_DROP_MAX], *what;
	uint8_t			*ibuf, *fbuf = NULL;
	size_t			 nops = 0, nkeys = 0, len, i;
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
	if (fo_src != NULL && (!name_ok(fo_src->from) ||
	    strcmp(fo_src->instance, name) != 0)) {
		set_cause(cause, "failover of %s: its record names another "
		    "instance or no host it came from", name);
		return -1;
	}
	in = inst_copy(cur);
	free(in->owner);
	in->owner = to != NULL ? xstrdup(to) : NULL;
	in->epoch = epoch + 1;
	inst_to(in, &r);
	ibuf = record_pack((ProtobufCMessage *)&r, &len);
	xasprintf(&keys[nkeys], INSTANCES_PREFIX "%s", name);
	cmp[0].key = ops[nops].key = keys[nkeys++];
	cmp[0].mod_rev = cur->mod_rev;
	ops[nops].value = ibuf;
	ops[nops++].len = len;
	t.cmp = cmp;
	t.ncmp = 1;
	if (fo_src != NULL) {
		fo = fo_copy(fo_src);
		fo->seq = m->next_seq;
		free(fo->to);
		fo->to = to != NULL ? xstrdup(to) : NULL;
		fo->epoch = epoch + 1;
		fo_ops(m, fo, &fbuf, ops, &nops, keys, &nkeys, &drops);
		cmp[1].key = ops[1].key;	/* a seq is written once */
		cmp[1].mod_rev = 0;
		t.ncmp = 2;
	}
	t.ops = ops;
	t.nops = nops;
	xasprintf(&what, "instance %s (epoch %" PRIu64 ")", name, epoch);
	rc = model_commit_fo(m, &t, CHANGE_INSTANCE, in, fo,
	    fo != NULL ? &drops : NULL, what, cb, arg, cause);
	if (rc != 0) {
		inst_free(in);
		fo_free(fo);
	} else if (fo != NULL)
		m->next_seq++;
	free(what);
	free(ibuf);
	free(fbuf);
	for (i = 0; i < nkeys; i++)
		free(keys[i]);
	return rc;
}

int
model_instance_move(struct model *m, const char *name, uint64_t epoch,
    const char *to, model_cb cb, void *arg, char **cause)
{
	return inst_move(m, name, epoch, to, NULL, cb, arg, cause);
}

int
model_instance_failover(struct model *m, const char *name, uint64_t epoch,
    const char *to, const struct model_failover *fo, model_cb cb, void *arg,
    char **cause)
{
	return inst_move(m, name, epoch, to, fo, cb, arg, cause);
}

int
model_failover_unplaced(struct model *m, const char *name, uint64_t epoch,
    const struct model_failover *fo_src, model_cb cb, void *arg,
    char **cause)
{
	struct model_instance	*cur;
	struct model_failover	*fo;
	struct store_op		 ops[2 + FAILOVERS_DROP_MAX];
	struct store_cmp	 cmp[2];
	struct store_txn	 t;
	struct fo_drops		 drops;
	char			*keys[3 + FAILOVERS_DROP_MAX], *what;
	uint8_t			*buf = NULL;
	size_t			 nops = 0, nkeys = 0, i;
	int			 rc;

	if ((cur = pic_inst(&m->pic, name)) == NULL || cur->epoch != epoch ||
	    !name_ok(fo_src->from) || strcmp(fo_src->instance, name) != 0) {
		set_cause(cause, "instance %s: not at epoch %" PRIu64 ", or "
		    "its record names another instance or no host", name,
		    epoch);
		return -1;
	}
	fo = fo_copy(fo_src);
	fo->seq = m->next_seq;
	free(fo->to);
	fo->to = NULL;
	fo->epoch = epoch;
	fo_ops(m, fo, &buf, ops, &nops, keys, &nkeys, &drops);
	xasprintf(&keys[nkeys], INSTANCES_PREFIX "%s", name);
	cmp[0].key = keys[nkeys++];
	cmp[0].mod_rev = cur->mod_rev;
	cmp[1].key = ops[0].key;
	cmp[1].mod_rev = 0;
	t.cmp = cmp;
	t.ncmp = 2;
	t.ops = ops;
	t.nops = nops;
	xasprintf(&what, "failover record of %s", name);
	rc = model_commit_fo(m, &t, CHANGE_FAILOVER, NULL, fo, &drops, what,
	    cb, arg, cause);
	if (rc != 0)
		fo_free(fo);
	else
		m->next_seq++;
	free(what);
	free(buf);
	for (i = 0; i < nkeys; i++)
		free(keys[i]);
	return rc;
}

int
model_failover_outcome(struct model *m, uint64_t seq,
    enum model_outcome outcome, const char *why, uint64_t unix_ms,
    model_cb cb, void *arg, char **cause)
{
	struct model_failover	*cur, *fo;
	Tern__FailoverRecord	 r;
	char			*key, *what;
	uint8_t			*buf;
	size_t			 len;
	int			 rc;

	if ((cur = pic_fo(&m->pic, seq, NULL)) == NULL) {
		set_cause(cause, "no failover record %" PRIu64, seq);
		return -1;
	}
	fo = fo_copy(cur);
	fo->outcome = outcome;
	fo->outcome_unix_ms = unix_ms;
	if (why != NULL) {
		free(fo->why);
		fo->why = xstrdup(why);
	}
	model_failover_record(fo, &r);
	buf = record_pack((ProtobufCMessage *)&r, &len);
	key = fo_key(seq);
	xasprintf(&what, "failover record %" PRIu64 " (%s)", seq,
	    cur->instance);
	{
		struct store_cmp	cmp = { key, cur->mod_rev };
		struct store_op		op = { key, buf, len };
		struct store_txn	t = { &cmp, 1, &op, 1 };

		rc = model_commit_fo(m, &t, CHANGE_FAILOVER, NULL, fo, NULL,
		    what, cb, arg, cause);
	}
	if (rc != 0)
		fo_free(fo);
	free(what);
	free(buf);
	free(key);
	return rc;
}

/* 0, or -1 and *cause saying what is wrong with set for in (what the
 * instance would be is *out). */
static int
ha_set_check(struct model *m, const struct model_instance *in,
    const struct model_ha_set *set, struct model_instance *out,
    char **cause)
{
	char		*why = NULL;
	size_t		 others = m->pic.nhosts;

	*out = *in;
	if (set->has_ha) {
		if (set->ha > MODEL_HA_CHECKPOINT) {
			set_cause(cause, "instance %s: no such policy (none, "
			    "restart or checkpoint); nothing changed", in->name);
			return -1;
		}
		if (msg_ha_refused((int)set->ha, (int)in->kind, in->name,
		    in->spec, &why) != 0) {
			set_cause(cause, "instance %s: %s; nothing changed",
			    in->name, why);
			free(why);
			return -1;
		}
		out->ha = set->ha;
	}
	if (set->has_priority) {
		if (set->priority < MODEL_PRIORITY_MIN ||
		    set->priority > MODEL_PRIORITY_MAX) {
			set_cause(cause, "instance %s: priority %" PRId32 " is "
			    "out of range (%d..%d, higher fails over first); "
			    "nothing changed", in->name, set->priority,
			    MODEL_PRIORITY_MIN, MODEL_PRIORITY_MAX);
			return -1;
		}
		out->priority = set->priority;
	}
	if (set->has_interval) {
		if (set->interval_ms < HA_INTERVAL_MIN_MS ||
		    set->interval_ms > HA_INTERVAL_MAX_MS) {
			set_cause(cause, "instance %s: interval %" PRIu32 " ms "
			    "is out of range (%u..%u ms between checkpoints); "
			    "nothing changed", in->name, set->interval_ms,
			    HA_INTERVAL_MIN_MS, HA_INTERVAL_MAX_MS);
			return -1;
		}
		out->interval_ms = set->interval_ms;
	}
	if (set->has_replicas) {
		/* A replica on each other host at most: never the owner's. */
		if (in->owner != NULL && pic_host(&m->pic, in->owner) != NULL)
			others--;
		if (set->replicas < 1 || set->replicas > HA_REPLICAS_MAX ||
		    set->replicas > others) {
			set_cause(cause, "instance %s: %" PRIu32 " replicas: "
			    "give 1 to %zu (one on each other host of the "
			    "cluster, %u at most); nothing changed", in->name,
			    set->replicas, others < HA_REPLICAS_MAX ? others :
			    (size_t)HA_REPLICAS_MAX, HA_REPLICAS_MAX);
			return -1;
		}
		out->replicas = set->replicas;
	}
	if (out->ha == MODEL_HA_CHECKPOINT && (out->interval_ms == 0 ||
	    out->replicas == 0)) {
		set_cause(cause, "instance %s: checkpoint protection needs "
		    "--interval and --replicas; nothing changed", in->name);
		return -1;
	}
	return 0;
}

int
model_instance_set_ha(struct model *m, const char *name,
    const struct model_ha_set *set, model_cb cb, void *arg, char **cause)
{
	struct model_instance	*cur, *in, want;
	char			*what;
	int			 rc;

	if (name == NULL || (cur = pic_inst(&m->pic, name)) == NULL) {
		set_cause(cause, "no instance %s in the coordinator's records "
		    "(ternctl ha status lists them); nothing changed",
		    name != NULL ? name : "?");
		return -1;
	}
	if (!set->has_ha && !set->has_priority && !set->has_interval &&
	    !set->has_replicas) {
		set_cause(cause, "instance %s: nothing to set (--policy, "
		    "--priority, --interval, --replicas)", name);
		return -1;
	}
	if (ha_set_check(m, cur, set, &want, cause) != 0)
		return -1;
	in = inst_copy(cur);
	in->ha = want.ha;
	in->priority = want.priority;
	in->interval_ms = want.interval_ms;
	in->replicas = want.replicas;
	xasprintf(&what, "instance %s", name);
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

/* What one failover plan places against. */
struct plan_ctx {
	struct model		*m;
	struct load		*loads;		/* per host, as placed so far */
	const char		*failed;
	const char *const	*exclude;
	size_t			 nexclude;
};

/* Whether host h may take in: not the failed one nor an excluded one,
 * and host_refuses has nothing against it. */
static int
plan_may_take(const struct plan_ctx *pc, size_t h,
    const struct model_instance *in)
{
	const struct model_host	*host = pc->m->pic.hosts[h];
	size_t			 i;

	if (strcmp(host->name, pc->failed) == 0)
		return 0;
	for (i = 0; i < pc->nexclude; i++)
		if (strcmp(pc->exclude[i], host->name) == 0)
			return 0;
	return host_refuses(host, &pc->loads[h], in) == NULL;
}

/* Checkpoint: the host of the newest replica that may take in, or
 * (size_t)-1 and plan->why. */
static size_t
plan_replica(const struct plan_ctx *pc, struct model_instance *in,
    struct model_plan *plan)
{
	struct picture		 *p = &pc->m->pic;
	struct model_replica	**reps;
	size_t			  nreps, k, h, best = (size_t)-1;

	reps = model_replicas(pc->m, in->name, &nreps);
	for (k = 0; k < nreps && best == (size_t)-1; k++) {
		for (h = 0; h < p->nhosts; h++)
			if (strcmp(p->hosts[h]->name, reps[k]->host) == 0)
				break;
		if (h == p->nhosts || !plan_may_take(pc, h, in))
			continue;
		best = h;
		plan->replica = reps[k];
	}
	free(reps);
	if (best == (size_t)-1)
		xasprintf(&plan->why, "%s: no replica on a host that is up, "
		    "not drained and has room (%zu replica%s in all)",
		    in->name, nreps, nreps == 1 ? "" : "s");
	return best;
}

/* Restart: the least loaded host that may take in (memory, then count,
 * then name), or (size_t)-1 and plan->why. */
static size_t
plan_restart(const struct plan_ctx *pc, struct model_instance *in,
    struct model_plan *plan)
{
	struct picture		*p = &pc->m->pic;
	const struct load	*l = pc->loads;
	size_t			 k, best = (size_t)-1;

	for (k = 0; k < p->nhosts; k++) {
		if (!plan_may_take(pc, k, in))
			continue;
		if (best == (size_t)-1 || l[k].memory_mib < l[best].memory_mib ||
		    (l[k].memory_mib == l[best].memory_mib &&
		    (l[k].count < l[best].count || (l[k].count ==
		    l[best].count && strcmp(p->hosts[k]->name,
		    p->hosts[best]->name) < 0))))
			best = k;
	}
	if (best == (size_t)-1)
		xasprintf(&plan->why, "%s: %s", in->name, p->nhosts <= 1 ?
		    "no other host" : "no host is up, not drained and has room");
	return best;
}

size_t
model_failover_plan(struct model *m, const char *failed,
    struct model_plan **out)
{
	return model_failover_plan_without(m, failed, NULL, 0, out);
}

size_t
model_failover_plan_without(struct model *m, const char *failed,
    const char *const *exclude, size_t nexclude, struct model_plan **out)
{
	struct picture		 *p = &m->pic;
	struct plan_ctx		  pc;
	struct model_instance	**todo = NULL;
	struct model_plan	 *plan;
	size_t			  ntodo = 0, i, k, best;

	pc.m = m;
	pc.loads = xcalloc(p->nhosts + 1, sizeof *pc.loads);
	pc.failed = failed;
	pc.exclude = exclude;
	pc.nexclude = nexclude;
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
				pc.loads[k].memory_mib += in->memory_mib;
				pc.loads[k].count++;
			}
	}
	if (ntodo > 1)
		qsort(todo, ntodo, sizeof *todo, inst_prio);
	plan = xcalloc(ntodo + 1, sizeof *plan);
	for (i = 0; i < ntodo; i++) {
		struct model_instance	*in = todo[i];

		plan[i].instance = in;
		if (in->ha == MODEL_HA_NONE) {
			xasprintf(&plan[i].why, "%s is not protected (ha none)",
			    in->name);
			continue;
		}
		best = in->ha == MODEL_HA_CHECKPOINT ?
		    plan_replica(&pc, in, &plan[i]) :
		    plan_restart(&pc, in, &plan[i]);
		if (best == (size_t)-1)
			continue;
		plan[i].target = p->hosts[best]->name;
		pc.loads[best].memory_mib += in->memory_mib;
		pc.loads[best].count++;
	}
	free(todo);
	free(pc.loads);
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
	m->next_seq = 1;
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
