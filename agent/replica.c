/* Replicated checkpoints (see replica.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_MODULE "replica"
#include "agent/driver.h"
#include "agent/ha.h"
#include "agent/instance-internal.h"
#include "agent/replica.h"
#include "checkpoint/chunks.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/container-spec.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/stream.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"
#include "migrate/rootfs-snap.h"

/* A transfer that has not ended by then is given up (either side). */
#define REPLICA_TIMEOUT_MS	120000
/* Transfers a host receives at once. */
#define REPLICA_RECV_MAX	16
/* A replica the coordinator stopped listing for this host is removed
 * once it has gone unlisted this long: a generation offered just as the
 * instance became protected here is never taken for a stale one. */
#define REPLICA_GRACE_MS	10000

struct rep_gen;

/* One generation going to one replica host. */
struct rep_send {
	struct rep_gen	*rg;
	char		*host;
	int		 state;		/* REP_* */
	uint32_t	*need;
	size_t		 nneed, cursor;
	uint8_t		*buf;		/* the chunk being sent */
	size_t		 len, off;
	uint64_t	 sent;
	struct stream	*stream;
};

enum { REP_OFFERED, REP_SENDING, REP_SENT, REP_DONE };

/* One generation of an owned instance, on its way to its replicas. */
struct rep_gen {
	struct rep_gen		*next;		/* rs->gens */
	struct replicas		*rs;
	struct rep_inst		*ri;		/* NULL: no longer owned */
	char			*name;
	uint64_t		 epoch, gen, taken_ms;
	char			*gen_dir;
	char			*ckpt_dir;
	struct chunk_manifest	 m;
	struct rep_send		*sends;
	size_t			 nsends, open;
	int			 corrupt;	/* the fault point fires */
	int			 offered;	/* sends are open */
	uv_timer_t		*timer;
	char			*rootfs;	/* captured with it, or NULL */
	struct rootfs_snap	 pre;		/* read ahead, running */
	int			 have_pre;
	struct rootfs_stats	 rst;
	uint64_t		 capture_ms;
};

/* A checkpoint-protected instance this host owns. */
struct rep_inst {
	struct rep_inst	*next;
	struct replicas	*rs;
	char		*name;
	uint64_t	 epoch;
	uint32_t	 interval_ms;
	char		**hosts;
	size_t		 nhosts;
	uint64_t	 acked;		/* generations acknowledged */
	struct rep_gen	*busy;
	uv_timer_t	*timer;
	int		 seen;
};

/* Bytes of the replica stream not dealt with yet (not consumed: they
 * hold back the sender). */
struct rep_pend {
	struct rep_pend	*next;
	uint8_t		*data;
	size_t		 len, off;
};

/* One generation arriving from its owner. */
struct rep_recv {
	struct rep_recv		*next;
	struct replicas		*rs;
	char			*peer;
	char			*name;
	char			*dir;
	uint64_t		 gen;
	struct chunk_manifest	 m;
	uint32_t		*need;
	size_t			 nneed, cursor;
	uint8_t			*buf;
	size_t			 have;
	uint64_t		 received;
	struct stream		*stream;
	struct rep_pend		*pend, **pend_tail;	/* not yet in buf */
	int			 writing;	/* a chunk is on the pool */
	int			 ended;		/* the stream ended whole */
	int			 dead;		/* ended: freed once written */
	int			 assembling;
	uint64_t		 bytes;
	uint8_t			 digest[DIGEST_LEN];
	uv_timer_t		*timer;
};

struct rep_report {
	struct rep_report	*next;
	Tern__ReplicaReport	 r;
	uint8_t			 digest[DIGEST_LEN];
};

/* A failed restore of a replica, for the next renewal. */
struct rep_failed {
	struct rep_failed	*next;
	char			*name;
	char			*why;
};

/* A replica kept here that the coordinator does not list any more. */
struct rep_stale {
	struct rep_stale	*next;
	char			*name;
	uint64_t		 since_ms;
	int			 seen;
};

struct replicas {
	struct agent		*a;
	struct rep_stale	*stale;
	struct rep_failed	*failed;
	struct rep_inst		*insts;
	/* Every generation alive, owned or not any more (an instance
	 * destroyed while one was sent): replica_stop ends them all. */
	struct rep_gen		*gens;
	struct rep_recv		*recvs;
	struct rep_report	*reports;
	Tern__ReplicaReport	**out;		/* in a renewal now */
	size_t			 nout;
	unsigned		 inflight;	/* generations, assemblies */
	int			 stopping;
};

static void	rep_gen_end(struct rep_gen *);
static void	rep_abandon(struct rep_gen *);
static void	rep_recv_end(struct rep_recv *, const char *error);
static const struct stream_ops rep_send_ops, rep_recv_ops;

static uint64_t
wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
rep_timer_closed(uv_handle_t *h)
{
	free(h);
}

/* Timers never hold a stopping ternd's loop open. */
static uv_timer_t *
rep_timer_new(struct agent *a, void *data)
{
	uv_timer_t	*t = xcalloc(1, sizeof *t);

	uv_timer_init(a->ternd->loop, t);
	uv_unref((uv_handle_t *)t);
	t->data = data;
	return t;
}

/* The last work of a stopped ternd is over: the state goes. */
static void
rep_maybe_free(struct replicas *rs)
{
	if (!rs->stopping || rs->inflight > 0 || rs->recvs != NULL)
		return;
	rs->a->replicas = NULL;
	free(rs);
}

static void
rep_timer_free(uv_timer_t *t)
{
	if (t != NULL)
		uv_close((uv_handle_t *)t, rep_timer_closed);
}

static char *
rep_dir(struct agent *a, const char *name)
{
	char	*dir;

	xasprintf(&dir, "%s/%s/%s", a->ternd->conf->state_dir, REPLICA_DIR,
	    name);
	return dir;
}

static int
rep_send_msg(struct agent *a, const char *host, Envelope *env)
{
	char	*cause = NULL;

	if (mesh_send(a->ternd->mesh, host, env, &cause) == -1) {
		log_warnx("cannot send %s to %s: %s", msg_name(env), host,
		    cause);
		free(cause);
		return -1;
	}
	return 0;
}

/* --- owner: the schedule ----------------------------------------------- */

static void	rep_tick(uv_timer_t *);

static struct rep_inst *
rep_inst_find(struct replicas *rs, const char *name)
{
	struct rep_inst	*ri;

	for (ri = rs->insts; ri != NULL; ri = ri->next)
		if (strcmp(ri->name, name) == 0)
			return ri;
	return NULL;
}

static void
rep_inst_hosts_free(struct rep_inst *ri)
{
	size_t	i;

	for (i = 0; i < ri->nhosts; i++)
		free(ri->hosts[i]);
	free(ri->hosts);
	ri->hosts = NULL;
	ri->nhosts = 0;
}

static void
rep_inst_free(struct rep_inst *ri)
{
	if (ri->busy != NULL)
		ri->busy->ri = NULL;
	rep_timer_free(ri->timer);
	rep_inst_hosts_free(ri);
	free(ri->name);
	free(ri);
}

static void
rep_stale_free(struct replicas *rs)
{
	struct rep_stale	*st;

	while ((st = rs->stale) != NULL) {
		rs->stale = st->next;
		free(st->name);
		free(st);
	}
}

/* The grant lists the replicas this host should keep: one not listed
 * for REPLICA_GRACE_MS (its instance destroyed, its policy no longer
 * checkpoint, this host no longer among its replica hosts) is removed. */
static void
rep_sweep(struct replicas *rs, const Tern__LeaseGrant *g)
{
	struct agent		 *a = rs->a;
	struct rep_stale	 *st, **pp;
	struct rep_recv		 *rv;
	struct dirent		 *de;
	DIR			 *d;
	char			 *top, *dir;
	size_t			  i;
	uint64_t		  now = now_ms();
	int			  keep;

	xasprintf(&top, "%s/%s", a->ternd->conf->state_dir, REPLICA_DIR);
	for (st = rs->stale; st != NULL; st = st->next)
		st->seen = 0;
	if ((d = opendir(top)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' || strstr(de->d_name,
			    ".discard-") != NULL || !host_name_valid(de->d_name))
				continue;
			keep = 0;
			for (i = 0; i < g->n_keep_replicas && !keep; i++)
				keep = strcmp(g->keep_replicas[i],
				    de->d_name) == 0;
			/* One arriving now is the owner's to finish. */
			for (rv = rs->recvs; rv != NULL && !keep; rv = rv->next)
				keep = strcmp(rv->name, de->d_name) == 0;
			if (keep)
				continue;
			for (st = rs->stale; st != NULL; st = st->next)
				if (strcmp(st->name, de->d_name) == 0)
					break;
			if (st == NULL) {
				st = xcalloc(1, sizeof *st);
				st->name = xstrdup(de->d_name);
				st->since_ms = now;
				st->next = rs->stale;
				rs->stale = st;
			}
			st->seen = 1;
			if (now - st->since_ms < REPLICA_GRACE_MS)
				continue;
			log_info("replica of %s: removed (the coordinator no "
			    "longer lists it for this host: destroyed, not "
			    "checkpoint-protected, or its replicas are "
			    "elsewhere)", st->name);
			xasprintf(&dir, "%s/%s", top, st->name);
			work_discard(a->ternd->loop, dir, st->name,
			    "the stale replica", NULL, NULL);
			free(dir);
			st->seen = 0;
		}
		closedir(d);
	}
	for (pp = &rs->stale; (st = *pp) != NULL;) {
		if (st->seen) {
			pp = &st->next;
			continue;
		}
		*pp = st->next;
		free(st->name);
		free(st);
	}
	free(top);
}

void
replica_owned(struct agent *a, const Tern__LeaseGrant *g)
{
	struct replicas	*rs = a->replicas;
	struct rep_inst	*ri, **pp;
	size_t		 i, j;

	if (rs == NULL || rs->stopping)
		return;
	if (g->has_lists_replicas && g->lists_replicas)
		rep_sweep(rs, g);
	for (ri = rs->insts; ri != NULL; ri = ri->next)
		ri->seen = 0;
	for (i = 0; i < g->n_owned; i++) {
		const Tern__OwnedInstance *o = g->owned[i];
		struct instance *in = a->instances != NULL ?
		    instance_find(a->instances, o->name) : NULL;
		uint32_t iv;

		/* The policy is the instance's own (the grant gives it only
		 * with a spec). */
		if (in == NULL || in->ha != TERN__HA_POLICY__HA_CHECKPOINT)
			continue;
		iv = o->has_interval_ms && o->interval_ms >=
		    HA_INTERVAL_MIN_MS ? o->interval_ms : HA_INTERVAL_DEF_MS;
		if ((ri = rep_inst_find(rs, o->name)) == NULL) {
			ri = xcalloc(1, sizeof *ri);
			ri->rs = rs;
			ri->name = xstrdup(o->name);
			ri->timer = rep_timer_new(a, ri);
			ri->next = rs->insts;
			rs->insts = ri;
			log_info("instance %s: checkpointed every %" PRIu32
			    " ms to %zu replica host%s", o->name, iv,
			    o->n_replica_hosts, o->n_replica_hosts == 1 ? "" :
			    "s");
		}
		ri->seen = 1;
		ri->epoch = o->epoch;
		rep_inst_hosts_free(ri);
		ri->hosts = xcalloc(o->n_replica_hosts + 1, sizeof *ri->hosts);
		for (j = 0; j < o->n_replica_hosts && j < HA_REPLICAS_MAX;
		    j++)
			ri->hosts[ri->nhosts++] = xstrdup(o->replica_hosts[j]);
		if (ri->interval_ms != iv || !uv_is_active((uv_handle_t *)
		    ri->timer)) {
			ri->interval_ms = iv;
			uv_timer_start(ri->timer, rep_tick, iv, iv);
		}
	}
	for (pp = &rs->insts; (ri = *pp) != NULL;) {
		if (ri->seen) {
			pp = &ri->next;
			continue;
		}
		*pp = ri->next;
		log_info("instance %s: no longer checkpointed here (not this "
		    "host's any more)", ri->name);
		rep_inst_free(ri);
	}
}

/* --- owner: one generation to its replicas ------------------------------ */

static void
rep_gen_free(struct rep_gen *rg)
{
	struct replicas	*rs = rg->rs;
	struct rep_gen	**pp;
	size_t		 i;

	for (pp = &rs->gens; *pp != NULL; pp = &(*pp)->next)
		if (*pp == rg) {
			*pp = rg->next;
			break;
		}
	for (i = 0; i < rg->nsends; i++) {
		free(rg->sends[i].host);
		free(rg->sends[i].need);
		free(rg->sends[i].buf);
	}
	free(rg->sends);
	chunks_manifest_free(&rg->m);
	rep_timer_free(rg->timer);
	free(rg->name);
	free(rg->gen_dir);
	free(rg->ckpt_dir);
	free(rg->rootfs);
	rootfs_snap_free(&rg->pre);
	free(rg);
	rs->inflight--;
	rep_maybe_free(rs);
}

static int
rep_prune_local(void *arg, char **cause)
{
	struct rep_gen	*rg = arg;

	/* The owner's own checkpoints: the newest two are enough. */
	return chunks_prune(rg->ckpt_dir, CHUNKS_KEEP, cause);
}

static void
rep_pruned(void *arg, const char *error)
{
	struct rep_gen	*rg = arg;

	if (error != NULL)
		log_warnx("instance %s: old checkpoints not removed: %s",
		    rg->name, error);
	if (rg->ri != NULL)
		rg->ri->busy = NULL;
	rep_gen_free(rg);
}

/* One send ended (error NULL: acknowledged). */
static void
rep_send_done(struct rep_send *s, const char *error)
{
	struct rep_gen	*rg = s->rg;

	if (s->state == REP_DONE)
		return;
	if (error != NULL)
		log_warnx("instance %s: generation %" PRIu64 " not replicated "
		    "to %s: %s", rg->name, rg->gen, s->host, error);
	if (s->stream != NULL) {
		struct stream *st = s->stream;

		s->stream = NULL;
		stream_set_ops(st, &rep_send_ops, NULL);
		stream_abort(st, TERN__ERROR_CODE__ERROR_INTERNAL, "%s",
		    error != NULL ? error : "ended");
	}
	s->state = REP_DONE;
	if (--rg->open == 0)
		rep_gen_end(rg);
}

static void
rep_gen_end(struct rep_gen *rg)
{
	uv_timer_stop(rg->timer);
	work_run(rg->rs->a->ternd->loop, rep_prune_local, rg, rep_pruned, rg);
}

static void
rep_gen_timeout(uv_timer_t *t)
{
	struct rep_gen	*rg = t->data;
	size_t		 i;

	for (i = 0; i < rg->nsends && rg->offered && rg->open > 0; i++)
		if (rg->sends[i].state != REP_DONE)
			rep_send_done(&rg->sends[i], "no answer in time");
}

static struct rep_send *
rep_send_find(struct replicas *rs, const char *host, const char *name,
    uint64_t gen)
{
	struct rep_inst	*ri;
	size_t		 i;

	for (ri = rs->insts; ri != NULL; ri = ri->next) {
		struct rep_gen *rg = ri->busy;

		if (rg == NULL || strcmp(rg->name, name) != 0 || rg->gen != gen)
			continue;
		for (i = 0; i < rg->nsends; i++)
			if (strcmp(rg->sends[i].host, host) == 0 &&
			    rg->sends[i].state != REP_DONE)
				return &rg->sends[i];
	}
	return NULL;
}

/* The next chunk the replica lacks into s->buf; 0 when there is none. */
static int
rep_load_chunk(struct rep_send *s, char **cause)
{
	struct rep_gen		*rg = s->rg;
	const struct chunk_file	*f;
	size_t			 i;
	char			*path;
	ssize_t			 n;
	int			 fd;

	if (s->cursor >= s->nneed)
		return 0;
	if (chunks_at(&rg->m, s->need[s->cursor], &f, &i) != 0) {
		set_cause(cause, "chunk %" PRIu32 " out of range",
		    s->need[s->cursor]);
		return -1;
	}
	s->len = chunks_size(&rg->m, f, i);
	s->off = 0;
	if (f->sizes != NULL) {
		/* The rootfs's: from the chunk store, checked. */
		if (chunks_read(rg->ckpt_dir, f->digests[i], s->buf, s->len,
		    cause) != 0)
			return -1;
		goto loaded;
	}
	xasprintf(&path, "%s/%s", rg->gen_dir, f->name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	n = pread(fd, s->buf, s->len, (off_t)i * rg->m.chunk_size);
	close(fd);
	if (n != (ssize_t)s->len) {
		set_cause(cause, "%s: short read", path);
		free(path);
		return -1;
	}
	free(path);
loaded:
	if (rg->corrupt) {
		rg->corrupt = 0;
		s->buf[s->len / 2] ^= 0x01;
	}
	s->cursor++;
	return 1;
}

static void
rep_writable(struct stream *st)
{
	struct rep_send	*s = stream_data(st);
	char		*cause = NULL;
	size_t		 n;
	int		 rc;

	if (s == NULL)
		return;
	for (;;) {
		if (s->off == s->len) {
			if ((rc = rep_load_chunk(s, &cause)) < 0) {
				rep_send_done(s, cause);
				free(cause);
				return;
			}
			if (rc == 0) {
				if (s->state == REP_SENDING) {
					s->state = REP_SENT;
					stream_finish(st);
				}
				return;
			}
		}
		n = stream_send(st, s->buf + s->off, s->len - s->off);
		if (n == 0)
			return;
		s->off += n;
		s->sent += n;
	}
}

static void
rep_stream_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct rep_send	*s = stream_data(st);

	(void)bytes;
	if (s == NULL)
		return;
	s->stream = NULL;
	if (error != NULL)
		rep_send_done(s, error);
	/* else the ReplicaAck says how it went */
}

static const struct stream_ops rep_send_ops = {
	.on_writable = rep_writable,
	.on_end = rep_stream_end,
};

static int
rep_on_need(struct replicas *rs, const char *peer, const Tern__ReplicaNeed *n)
{
	struct rep_send		*s;
	struct stream_mux	*mux;
	uint64_t		 total = 0;
	const struct chunk_file	*f;
	size_t			 i, k;
	char			*sname;

	s = rep_send_find(rs, peer, n->instance, n->generation);
	if (s == NULL || s->state != REP_OFFERED)
		return 1;	/* given up already */
	if (n->error != NULL) {
		rep_send_done(s, n->error);
		return 1;
	}
	for (i = 0; i < n->n_need; i++) {
		if ((i > 0 && n->need[i] <= n->need[i - 1]) ||
		    chunks_at(&s->rg->m, n->need[i], &f, &k) != 0) {
			rep_send_done(s, "the replica asked for chunks that "
			    "are not in the offer");
			return 1;
		}
		total += chunks_size(&s->rg->m, f, k);
	}
	if ((mux = mesh_mux(rs->a->ternd->mesh, peer)) == NULL) {
		rep_send_done(s, "the replica host is not connected");
		return 1;
	}
	s->need = xcalloc(n->n_need + 1, sizeof *s->need);
	memcpy(s->need, n->need, n->n_need * sizeof *s->need);
	s->nneed = n->n_need;
	s->buf = xmalloc(s->rg->m.chunk_size);
	s->state = REP_SENDING;
	log_debug("instance %s: generation %" PRIu64 " to %s: %zu of %zu "
	    "chunks (%" PRIu64 " bytes)", s->rg->name, s->rg->gen, peer,
	    s->nneed, s->rg->m.nchunks, total);
	xasprintf(&sname, "%s/%" PRIu64, s->rg->name, s->rg->gen);
	s->stream = stream_open(mux, TERN__STREAM_KIND__STREAM_REPLICA, sname,
	    total, &rep_send_ops, s);
	free(sname);
	if (s->stream == NULL)
		rep_send_done(s, "cannot open a stream to the replica host");
	return 1;
}

static void
rep_report_add(struct replicas *rs, struct rep_gen *rg, const char *host,
    const Tern__ReplicaAck *ack)
{
	struct rep_report	*rp = xcalloc(1, sizeof *rp);

	tern__replica_report__init(&rp->r);
	rp->r.instance = xstrdup(rg->name);
	rp->r.host = xstrdup(host);
	rp->r.epoch = rg->epoch;
	rp->r.generation = rg->gen;
	rp->r.taken_unix_ms = rg->taken_ms;
	if (ack->has_digest && ack->digest.len == DIGEST_LEN) {
		memcpy(rp->digest, ack->digest.data, DIGEST_LEN);
		rp->r.has_digest = 1;
		rp->r.digest.data = rp->digest;
		rp->r.digest.len = DIGEST_LEN;
	}
	rp->r.has_bytes = ack->has_bytes;
	rp->r.bytes = ack->bytes;
	rp->next = rs->reports;
	rs->reports = rp;
}

static int
rep_on_ack(struct replicas *rs, const char *peer, const Tern__ReplicaAck *ack)
{
	struct rep_send	*s;

	s = rep_send_find(rs, peer, ack->instance, ack->generation);
	if (s == NULL)
		return 1;
	if (ack->error != NULL) {
		rep_send_done(s, ack->error);
		return 1;
	}
	log_info("instance %s: generation %" PRIu64 " acknowledged by %s "
	    "(%" PRIu64 " bytes crossed of %" PRIu64 ")", s->rg->name,
	    s->rg->gen, peer, ack->has_received ? ack->received : s->sent,
	    ack->has_bytes ? ack->bytes : 0);
	if (s->rg->ri != NULL)
		s->rg->ri->acked++;
	rep_report_add(rs, s->rg, peer, ack);
	/* Tell the coordinator now, not at the next renewal. */
	if (rs->a->ha != NULL)
		ha_agent_renew(rs->a->ha);
	rep_send_done(s, NULL);
	return 1;
}

/* The generation is on disk and split: offer it to every replica host. */
static void
rep_offer(struct rep_gen *rg)
{
	struct replicas		 *rs = rg->rs;
	Envelope		  env;
	Tern__ReplicaOffer	  o = TERN__REPLICA_OFFER__INIT;
	Tern__ReplicaFile	 *files, **fptrs;
	ProtobufCBinaryData	 *rchunks = NULL;
	size_t			  i, j, nf = 0;

	files = xcalloc(rg->m.nfiles + 1, sizeof *files);
	fptrs = xcalloc(rg->m.nfiles + 1, sizeof *fptrs);
	for (i = 0; i < rg->m.nfiles; i++) {
		const struct chunk_file *f = &rg->m.files[i];

		if (f->sizes != NULL) {
			/* The rootfs's chunks: by digest and size. */
			rchunks = xcalloc(f->n + 1, sizeof *rchunks);
			for (j = 0; j < f->n; j++) {
				rchunks[j].data = f->digests[j];
				rchunks[j].len = DIGEST_LEN;
			}
			o.n_rootfs_chunks = f->n;
			o.rootfs_chunks = rchunks;
			o.n_rootfs_chunk_sizes = f->n;
			o.rootfs_chunk_sizes = f->sizes;
			continue;
		}
		tern__replica_file__init(&files[i]);
		files[i].name = f->name;
		files[i].size = f->size;
		files[i].n_chunks = f->n;
		files[i].chunks = xcalloc(f->n + 1, sizeof *files[i].chunks);
		for (j = 0; j < f->n; j++) {
			files[i].chunks[j].data = f->digests[j];
			files[i].chunks[j].len = DIGEST_LEN;
		}
		fptrs[nf++] = &files[i];
	}
	o.instance = rg->name;
	o.epoch = rg->epoch;
	o.generation = rg->gen;
	o.taken_unix_ms = rg->taken_ms;
	o.chunk_size = rg->m.chunk_size;
	o.n_files = nf;
	o.files = fptrs;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_REPLICA_OFFER;
	env.replica_offer = &o;
	rg->open = rg->nsends;
	rg->offered = 1;
	for (i = 0; i < rg->nsends; i++)
		if (rep_send_msg(rs->a, rg->sends[i].host, &env) != 0)
			rep_send_done(&rg->sends[i], "the offer was not sent (see "
			    "above)");
	for (i = 0; i < rg->m.nfiles; i++)
		free(files[i].chunks);
	free(files);
	free(fptrs);
	free(rchunks);
	if (rg->open > 0)
		uv_timer_start(rg->timer, rep_gen_timeout, REPLICA_TIMEOUT_MS,
		    0);
}

/* The generation's rootfs chunks as the stored-only file of m. */
static int
rep_scan_rootfs(const char *gen_dir, struct chunk_manifest *m, char **cause)
{
	struct rootfs_snap	 snap;
	struct chunk_file	*f;
	uint8_t			(*mds)[DIGEST_LEN];
	uint32_t		*sizes;
	size_t			 n, i;
	int			 rc;

	if ((rc = rootfs_snap_load(gen_dir, &snap, cause)) != 0)
		return rc == 1 ? 0 : -1;
	n = rootfs_snap_chunks(&snap, &mds, &sizes);
	rootfs_snap_free(&snap);
	m->files = xreallocarray(m->files, m->nfiles + 1, sizeof *m->files);
	f = &m->files[m->nfiles++];
	memset(f, 0, sizeof *f);
	f->name = xstrdup(CHUNKS_STORED);
	f->n = n;
	f->digests = mds;
	f->sizes = sizes;
	for (i = 0; i < n; i++)
		f->size += sizes[i];
	m->nchunks += n;
	return chunks_manifest_check(m, cause);
}

static int
rep_scan(void *arg, char **cause)
{
	struct rep_gen	*rg = arg;

	if (chunks_scan_dir(rg->gen_dir, CHUNK_SIZE, &rg->m, cause) != 0)
		return -1;
	return rep_scan_rootfs(rg->gen_dir, &rg->m, cause);
}

/* ckpt's frozen hook: the container stopped for its dump, its rootfs
 * is taken now, so files and memory come from the same instant.  Only
 * what changed since the pass just before the dump (else since the
 * previous generation) is read; the content goes
 * into the owner's chunk store (ckpt_dir/chunks), which its
 * GEN.chunks keeps through chunks_prune. */
static int
rep_capture(void *arg, const char *gen_dir, char **cause)
{
	struct rep_gen		 *rg = arg;
	struct rootfs_snap	  prev, snap;
	uint8_t			(*mds)[DIGEST_LEN] = NULL;
	uint32_t		 *sizes = NULL;
	char			 *prev_dir, *list = NULL, *text, *base;
	char			  hex[DIGEST_HEX_LEN + 1];
	size_t			  n, i;
	uint64_t		  start = now_ms();
	int			  have_prev, rc = -1;

	if (rg->have_pre)
		have_prev = 0;
	else {
		xasprintf(&prev_dir, "%s/%" PRIu64, rg->ckpt_dir,
		    ckpt_newest(rg->ckpt_dir));
		have_prev = rootfs_snap_load(prev_dir, &prev, cause) == 0;
		free(*cause);
		*cause = NULL;
		free(prev_dir);
	}
	if (rootfs_snap_capture(rg->rootfs, rg->have_pre ? &rg->pre :
	    have_prev ? &prev : NULL, rg->ckpt_dir, CHUNK_SIZE, &snap,
	    &rg->rst, cause) != 0)
		goto out;
	n = rootfs_snap_chunks(&snap, &mds, &sizes);
	text = xcalloc(n + 1, DIGEST_HEX_LEN + 1);
	for (i = 0; i < n; i++) {
		digest_hex(mds[i], hex);
		memcpy(text + i * (DIGEST_HEX_LEN + 1), hex, DIGEST_HEX_LEN);
		text[i * (DIGEST_HEX_LEN + 1) + DIGEST_HEX_LEN] = '\n';
	}
	base = strrchr(gen_dir, '/');
	xasprintf(&list, "%s/%s.chunks", rg->ckpt_dir, base != NULL ? base + 1 :
	    gen_dir);
	rc = write_file_atomic(list, text, cause) == 0 &&
	    rootfs_snap_save(gen_dir, &snap, cause) == 0 ? 0 : -1;
	free(text);
	rootfs_snap_free(&snap);
out:
	if (have_prev)
		rootfs_snap_free(&prev);
	free(mds);
	free(sizes);
	free(list);
	rg->capture_ms = now_ms() - start;
	return rc;
}

static void
rep_scanned(void *arg, const char *error)
{
	struct rep_gen	*rg = arg;

	if (error != NULL || rg->rs->stopping || rg->ri == NULL) {
		if (error != NULL)
			log_warnx("instance %s: generation %" PRIu64 " cannot "
			    "be read for its replicas: %s", rg->name, rg->gen,
			    error);
		rep_gen_end(rg);
		return;
	}
	if (rg->rootfs != NULL)
		log_info("instance %s: generation %" PRIu64 " carries its rootfs "
		    "(%" PRIu64 " entries; %" PRIu64 " files, %" PRIu64 " bytes "
		    "read while stopped, in %" PRIu64 " ms)", rg->name, rg->gen,
		    rg->rst.entries, rg->rst.files_read, rg->rst.bytes_read,
		    rg->capture_ms);
	/* One byte changed on the wire, once one generation made it. */
	if (rg->ri->acked > 0 && fault_hit("replica.send.corrupt") ==
	    FAULT_FAIL)
		rg->corrupt = 1;
	rep_offer(rg);
}

static void
rep_checkpointed(void *arg, const Envelope *reply, int code,
    const char *error)
{
	struct rep_gen	*rg = arg;
	struct agent	*a = rg->rs->a;
	struct instance	*in;

	(void)code;
	in = a->instances != NULL ? instance_find(a->instances, rg->name) :
	    NULL;
	if (in == NULL || instance_destroying(in)) {
		/* Its instance goes with its checkpoints: nothing to send
		 * (the grant that no longer lists it tells the replicas). */
		log_info("instance %s: generation for its replicas discarded: "
		    "the instance is being destroyed", rg->name);
		rep_abandon(rg);
		return;
	}
	if (error != NULL || reply == NULL ||
	    reply->body_case != TERN__ENVELOPE__BODY_CHECKPOINT_REPLY) {
		log_warnx("instance %s: checkpoint for its replicas failed: %s",
		    rg->name, error != NULL ? error : "no answer");
		if (rg->ri != NULL)
			rg->ri->busy = NULL;
		rep_gen_free(rg);
		return;
	}
	rg->gen = reply->checkpoint_reply->generation;
	rg->gen_dir = xstrdup(reply->checkpoint_reply->dir);
	work_run(rg->rs->a->ternd->loop, rep_scan, rg, rep_scanned, rg);
}

/* Only a copy that simply runs here, under the lease: never during a
 * migration or while a move still brings its memory in, a stop, the
 * operator's own checkpoint. */
static struct instance *
rep_runs_here(struct rep_inst *ri)
{
	struct agent	*a = ri->rs->a;
	struct instance	*in;

	in = a->instances != NULL ? instance_find(a->instances, ri->name) :
	    NULL;
	if (in == NULL || in->state != INST_RUNNING || in->working != NULL ||
	    in->paging || in->loader != NULL || in->epoch != ri->epoch ||
	    a->ha == NULL || !ha_agent_may_run(a->ha, in->epoch) ||
	    ri->nhosts == 0)
		return NULL;
	return in;
}

static void
rep_abandon(struct rep_gen *rg)
{
	if (rg->ri != NULL)
		rg->ri->busy = NULL;
	rep_gen_free(rg);
}

/* The dump (and, stopped with it, the rootfs capture). */
static void
rep_dump(struct rep_gen *rg)
{
	struct instance	*in;
	char		*cause = NULL;
	int		 code = 0;

	if (rg->rs->stopping || rg->ri == NULL ||
	    (in = rep_runs_here(rg->ri)) == NULL) {
		rep_abandon(rg);
		return;
	}
	rg->taken_ms = wall_ms();
	if (rg->rootfs != NULL) {
		in->ckpt_frozen = rep_capture;
		in->ckpt_frozen_arg = rg;
	}
	if (in->drv->checkpoint == NULL || in->drv->checkpoint(in, 1,
	    rep_checkpointed, rg, &code, &cause) != 0) {
		in->ckpt_frozen = NULL;
		in->ckpt_frozen_arg = NULL;
		log_warnx("instance %s: no checkpoint for its replicas: %s",
		    rg->name, cause != NULL ? cause : "its kind cannot");
		free(cause);
		rep_abandon(rg);
	}
}

/* Before the dump, the container running: what changed in its rootfs
 * since the previous generation is read now, so the capture while it is
 * stopped reads only what changed since this pass. */
static int
rep_prepass(void *arg, char **cause)
{
	struct rep_gen		*rg = arg;
	struct rootfs_snap	 prev;
	struct rootfs_stats	 st;
	char			*prev_dir;
	int			 have_prev;

	xasprintf(&prev_dir, "%s/%" PRIu64, rg->ckpt_dir,
	    ckpt_newest(rg->ckpt_dir));
	have_prev = rootfs_snap_load(prev_dir, &prev, cause) == 0;
	free(*cause);
	*cause = NULL;
	free(prev_dir);
	if (rootfs_snap_capture(rg->rootfs, have_prev ? &prev : NULL,
	    rg->ckpt_dir, CHUNK_SIZE, &rg->pre, &st, cause) == 0)
		rg->have_pre = 1;
	if (have_prev)
		rootfs_snap_free(&prev);
	return rg->have_pre ? 0 : -1;
}

static void
rep_prepassed(void *arg, const char *error)
{
	struct rep_gen	*rg = arg;

	if (error != NULL)
		log_warnx("instance %s: rootfs not read ahead of its "
		    "checkpoint (read while it is stopped instead): %s",
		    rg->name, error);
	rep_dump(rg);
}

static void
rep_tick(uv_timer_t *t)
{
	struct rep_inst	*ri = t->data;
	struct replicas	*rs = ri->rs;
	struct agent	*a = rs->a;
	struct instance	*in;
	struct rep_gen	*rg;
	size_t		 i;

	if (ri->busy != NULL) {
		log_info("instance %s: checkpoint skipped: generation %" PRIu64
		    " is still being sent", ri->name, ri->busy->gen);
		return;
	}
	if ((in = rep_runs_here(ri)) == NULL)
		return;
	rg = xcalloc(1, sizeof *rg);
	rg->rs = rs;
	rs->inflight++;
	rg->next = rs->gens;
	rs->gens = rg;
	rg->ri = ri;
	rg->name = xstrdup(ri->name);
	rg->epoch = ri->epoch;
	rg->ckpt_dir = xstrdup(in->ckpt_dir);
	rg->timer = rep_timer_new(a, rg);
	rg->nsends = ri->nhosts;
	rg->sends = xcalloc(ri->nhosts, sizeof *rg->sends);
	for (i = 0; i < ri->nhosts; i++) {
		rg->sends[i].rg = rg;
		rg->sends[i].host = xstrdup(ri->hosts[i]);
	}
	ri->busy = rg;
	/* A rootfs not on shared storage travels with the generation. */
	if (in->spec != NULL && !in->spec->shared_storage &&
	    in->spec->root != NULL) {
		rg->rootfs = xstrdup(in->spec->root);
		work_run(a->ternd->loop, rep_prepass, rg, rep_prepassed, rg);
		return;
	}
	rep_dump(rg);
}

/* --- replica: receiving ---------------------------------------------------- */

static void
rep_recv_free(struct rep_recv *rv)
{
	struct rep_pend	*p;

	while ((p = rv->pend) != NULL) {
		rv->pend = p->next;
		free(p->data);
		free(p);
	}
	free(rv->peer);
	free(rv->name);
	free(rv->dir);
	free(rv->need);
	free(rv->buf);
	chunks_manifest_free(&rv->m);
	rep_timer_free(rv->timer);
	free(rv);
}

static void
rep_ack(struct rep_recv *rv, const char *error)
{
	Envelope		env;
	Tern__ReplicaAck	ack = TERN__REPLICA_ACK__INIT;

	ack.instance = rv->name;
	ack.generation = rv->gen;
	if (error != NULL)
		ack.error = (char *)error;
	else {
		ack.has_digest = 1;
		ack.digest.data = rv->digest;
		ack.digest.len = DIGEST_LEN;
		ack.has_bytes = 1;
		ack.bytes = rv->bytes;
	}
	ack.has_received = 1;
	ack.received = rv->received;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_REPLICA_ACK;
	env.replica_ack = &ack;
	rep_send_msg(rv->rs->a, rv->peer, &env);
}

/* Out of the list, answered (error: refused), freed. */
static void
rep_recv_end(struct rep_recv *rv, const char *error)
{
	struct rep_recv	**pp;
	struct replicas	*rs;

	for (pp = &rv->rs->recvs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == rv) {
			*pp = rv->next;
			break;
		}
	if (rv->stream != NULL) {
		struct stream *st = rv->stream;

		rv->stream = NULL;
		stream_set_ops(st, &rep_recv_ops, NULL);
		stream_abort(st, TERN__ERROR_CODE__ERROR_BAD_REQUEST, "%s",
		    error != NULL ? error : "ended");
	}
	if (error != NULL)
		log_warnx("replica of %s from %s: generation %" PRIu64 " "
		    "refused: %s", rv->name, rv->peer, rv->gen, error);
	else
		log_info("replica of %s from %s: generation %" PRIu64 " kept "
		    "(%" PRIu64 " image bytes, %" PRIu64 " crossed)", rv->name,
		    rv->peer, rv->gen, rv->bytes, rv->received);
	if (!rv->rs->stopping)
		rep_ack(rv, error);
	if (rv->writing) {
		rv->dead = 1;	/* rep_put_done frees it */
		return;
	}
	rs = rv->rs;
	rep_recv_free(rv);
	rep_maybe_free(rs);
}

static void
rep_recv_timeout(uv_timer_t *t)
{
	struct rep_recv	*rv = t->data;

	if (!rv->assembling && !rv->dead)
		rep_recv_end(rv, "the transfer did not end in time");
}

/* The offer as a manifest: what a peer says, bounded and checked. */
static int
rep_offer_manifest(const Tern__ReplicaOffer *o, struct chunk_manifest *m,
    char **cause)
{
	size_t	i, j;

	memset(m, 0, sizeof *m);
	m->chunk_size = o->chunk_size;
	if (o->n_files == 0 || o->n_files > CHUNKS_FILES_MAX) {
		set_cause(cause, "%zu files", o->n_files);
		return -1;
	}
	m->files = xcalloc(o->n_files, sizeof *m->files);
	m->nfiles = o->n_files;
	for (i = 0; i < o->n_files; i++) {
		const Tern__ReplicaFile *rf = o->files[i];
		struct chunk_file *f = &m->files[i];

		f->name = xstrdup(rf->name);
		f->size = rf->size;
		if (rf->n_chunks > CHUNKS_MAX || m->nchunks + rf->n_chunks >
		    CHUNKS_MAX) {
			set_cause(cause, "more than %d chunks", CHUNKS_MAX);
			return -1;
		}
		f->n = rf->n_chunks;
		f->digests = xcalloc(f->n + 1, DIGEST_LEN);
		for (j = 0; j < f->n; j++) {
			if (rf->chunks[j].len != DIGEST_LEN) {
				set_cause(cause, "a chunk digest of %zu bytes",
				    rf->chunks[j].len);
				return -1;
			}
			memcpy(f->digests[j], rf->chunks[j].data, DIGEST_LEN);
		}
		m->nchunks += f->n;
	}
	if (o->n_rootfs_chunks > 0 || o->n_rootfs_chunk_sizes > 0) {
		struct chunk_file *f;

		if (o->n_rootfs_chunks != o->n_rootfs_chunk_sizes ||
		    o->n_rootfs_chunks > CHUNKS_MAX || m->nchunks +
		    o->n_rootfs_chunks > CHUNKS_MAX) {
			set_cause(cause, "%zu rootfs chunks with %zu sizes",
			    o->n_rootfs_chunks, o->n_rootfs_chunk_sizes);
			return -1;
		}
		m->files = xreallocarray(m->files, m->nfiles + 1,
		    sizeof *m->files);
		f = &m->files[m->nfiles++];
		memset(f, 0, sizeof *f);
		f->name = xstrdup(CHUNKS_STORED);
		f->n = o->n_rootfs_chunks;
		f->digests = xcalloc(f->n + 1, DIGEST_LEN);
		f->sizes = xcalloc(f->n + 1, sizeof *f->sizes);
		for (j = 0; j < f->n; j++) {
			if (o->rootfs_chunks[j].len != DIGEST_LEN) {
				set_cause(cause, "a rootfs chunk digest of %zu "
				    "bytes", o->rootfs_chunks[j].len);
				return -1;
			}
			memcpy(f->digests[j], o->rootfs_chunks[j].data,
			    DIGEST_LEN);
			f->sizes[j] = o->rootfs_chunk_sizes[j];
			f->size += f->sizes[j];
		}
		m->nchunks += f->n;
	}
	return chunks_manifest_check(m, cause);
}

static void
rep_need_refuse(struct agent *a, const char *peer, const Tern__ReplicaOffer *o,
    const char *why)
{
	Envelope		env;
	Tern__ReplicaNeed	n = TERN__REPLICA_NEED__INIT;

	log_warnx("replica of %.64s from %s: generation %" PRIu64 " refused: "
	    "%s", o->instance, peer, o->generation, why);
	n.instance = o->instance;
	n.generation = o->generation;
	n.error = (char *)why;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_REPLICA_NEED;
	env.replica_need = &n;
	rep_send_msg(a, peer, &env);
}

static int
rep_on_offer(struct replicas *rs, const char *peer,
    const Tern__ReplicaOffer *o)
{
	struct agent		*a = rs->a;
	struct rep_recv		*rv, *x;
	Envelope		 env;
	Tern__ReplicaNeed	 n = TERN__REPLICA_NEED__INIT;
	char			*cause = NULL;
	size_t			 k, i, count = 0;
	const struct chunk_file	*f;

	if (!host_name_valid(o->instance)) {
		rep_need_refuse(a, peer, o, "not a valid instance name");
		return 1;
	}
	for (x = rs->recvs; x != NULL; x = x->next) {
		count++;
		if (strcmp(x->name, o->instance) == 0) {
			rep_need_refuse(a, peer, o, "a generation of it is "
			    "still arriving");
			return 1;
		}
	}
	if (count >= REPLICA_RECV_MAX || rs->stopping) {
		rep_need_refuse(a, peer, o, "this host receives too many "
		    "replicas at once");
		return 1;
	}
	if (a->instances != NULL && instance_find(a->instances, o->instance)) {
		rep_need_refuse(a, peer, o, "this host holds the instance "
		    "itself");
		return 1;
	}
	rv = xcalloc(1, sizeof *rv);
	rv->rs = rs;
	rv->peer = xstrdup(peer);
	rv->name = xstrdup(o->instance);
	rv->gen = o->generation;
	rv->dir = rep_dir(a, o->instance);
	if (rep_offer_manifest(o, &rv->m, &cause) != 0 ||
	    mkdir_p(rv->dir, 0700, &cause) != 0) {
		rep_need_refuse(a, peer, o, cause);
		free(cause);
		rep_recv_free(rv);
		return 1;
	}
	rv->need = xcalloc(rv->m.nchunks + 1, sizeof *rv->need);
	for (k = 0; k < rv->m.nchunks; k++) {
		chunks_at(&rv->m, k, &f, &i);
		if (!chunks_have(rv->dir, f->digests[i]))
			rv->need[rv->nneed++] = (uint32_t)k;
	}
	rv->buf = xmalloc(rv->m.chunk_size);
	rv->timer = rep_timer_new(a, rv);
	uv_timer_start(rv->timer, rep_recv_timeout, REPLICA_TIMEOUT_MS, 0);
	rv->next = rs->recvs;
	rs->recvs = rv;
	n.instance = rv->name;
	n.generation = rv->gen;
	n.n_need = rv->nneed;
	n.need = rv->need;
	msg_init(&env, 0);
	env.body_case = TERN__ENVELOPE__BODY_REPLICA_NEED;
	env.replica_need = &n;
	if (rep_send_msg(a, peer, &env) != 0)
		rep_recv_end(rv, "the owner is not connected");
	return 1;
}

static int
rep_assemble(void *arg, char **cause)
{
	struct rep_recv	*rv = arg;
	char		*ignore = NULL;

	if (chunks_assemble(rv->dir, &rv->m, rv->gen, &rv->bytes, rv->digest,
	    cause) != 0)
		return -1;
	if (chunks_prune(rv->dir, CHUNKS_KEEP, &ignore) != 0) {
		log_warnx("replica of %s: %s", rv->name, ignore);
		free(ignore);
	}
	return 0;
}

static void
rep_assembled(void *arg, const char *error)
{
	rep_recv_end(arg, error);
}

static void	rep_recv_pump(struct rep_recv *);

/* Every chunk arrived and is kept: assemble the generation. */
static void
rep_recv_finish(struct rep_recv *rv)
{
	if (rv->cursor != rv->nneed || rv->have != 0) {
		rep_recv_end(rv, "the stream ended before every chunk came");
		return;
	}
	rv->assembling = 1;
	work_run(rv->rs->a->ternd->loop, rep_assemble, rv, rep_assembled, rv);
}

static int
rep_put_work(void *arg, char **cause)
{
	struct rep_recv		*rv = arg;
	const struct chunk_file	*f;
	size_t			 i;

	/* Each chunk is checked against its name before it is kept. */
	chunks_at(&rv->m, rv->need[rv->cursor], &f, &i);
	return chunks_put(rv->dir, f->digests[i], rv->buf, rv->have, cause);
}

static void
rep_put_done(void *arg, const char *error)
{
	struct rep_recv	*rv = arg;
	struct replicas	*rs = rv->rs;

	rv->writing = 0;
	rs->inflight--;
	if (rv->dead) {
		rep_recv_free(rv);
		rep_maybe_free(rs);
		return;
	}
	if (error != NULL) {
		rep_recv_end(rv, error);
		return;
	}
	rv->have = 0;
	rv->cursor++;
	rep_recv_pump(rv);
}

/* Fill the chunk buffer from what arrived; a full chunk goes to the
 * pool, and nothing more is taken until it is written. */
static void
rep_recv_pump(struct rep_recv *rv)
{
	const struct chunk_file	*f;
	struct rep_pend		*p;
	size_t			 i, want, take;

	while (!rv->writing && (p = rv->pend) != NULL) {
		if (rv->cursor >= rv->nneed) {
			rep_recv_end(rv, "more bytes than the chunks asked for");
			return;
		}
		chunks_at(&rv->m, rv->need[rv->cursor], &f, &i);
		want = chunks_size(&rv->m, f, i);
		take = want - rv->have < p->len - p->off ? want - rv->have :
		    p->len - p->off;
		memcpy(rv->buf + rv->have, p->data + p->off, take);
		rv->have += take;
		p->off += take;
		rv->received += take;
		if (p->off == p->len) {
			rv->pend = p->next;
			if (rv->pend == NULL)
				rv->pend_tail = &rv->pend;
			if (rv->stream != NULL)
				stream_consumed(rv->stream, p->len);
			free(p->data);
			free(p);
		}
		if (rv->have == want) {
			rv->writing = 1;
			rv->rs->inflight++;
			work_run(rv->rs->a->ternd->loop, rep_put_work, rv,
			    rep_put_done, rv);
		}
	}
	if (!rv->writing && rv->pend == NULL && rv->ended)
		rep_recv_finish(rv);
}

static void
rep_recv_data(struct stream *st, const uint8_t *data, size_t len)
{
	struct rep_recv	*rv = stream_data(st);
	struct rep_pend	*p;

	if (rv == NULL || len == 0)
		return;
	p = xcalloc(1, sizeof *p);
	p->data = xmalloc(len);
	memcpy(p->data, data, len);
	p->len = len;
	if (rv->pend_tail == NULL)
		rv->pend_tail = &rv->pend;
	*rv->pend_tail = p;
	rv->pend_tail = &p->next;
	rep_recv_pump(rv);
}

static void
rep_recv_stream_end(struct stream *st, uint64_t bytes, const char *error)
{
	struct rep_recv	*rv = stream_data(st);

	(void)bytes;
	if (rv == NULL)
		return;
	rv->stream = NULL;
	if (error != NULL) {
		rep_recv_end(rv, error);
		return;
	}
	rv->ended = 1;
	if (!rv->writing && rv->pend == NULL)
		rep_recv_finish(rv);
}

static const struct stream_ops rep_recv_ops = {
	.on_data = rep_recv_data,
	.on_end = rep_recv_stream_end,
};

static int
rep_on_stream(void *ctx, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	struct agent	*a = ctx;
	struct rep_recv	*rv;
	const struct chunk_file *f;
	uint64_t	 total = 0;
	size_t		 k, i;
	char		*want;

	if (a->replicas == NULL) {
		set_cause(cause, "ternd is stopping");
		return -1;
	}
	for (rv = a->replicas->recvs; rv != NULL; rv = rv->next) {
		xasprintf(&want, "%s/%" PRIu64, rv->name, rv->gen);
		k = strcmp(want, name) == 0 && strcmp(rv->peer, peer) == 0 &&
		    rv->stream == NULL && !rv->assembling && !rv->ended;
		free(want);
		if (k)
			break;
	}
	if (rv == NULL) {
		set_cause(cause, "no replica offer for %s", name);
		return -1;
	}
	for (k = 0; k < rv->nneed; k++) {
		chunks_at(&rv->m, rv->need[k], &f, &i);
		total += chunks_size(&rv->m, f, i);
	}
	if (size != total) {
		set_cause(cause, "%" PRIu64 " bytes announced, %" PRIu64
		    " asked for", size, total);
		return -1;
	}
	rv->stream = st;
	stream_set_ops(st, &rep_recv_ops, rv);
	return 0;
}

static int
rep_on_msg(void *ctx, const char *peer, const Envelope *env)
{
	struct agent	*a = ctx;

	if (a->replicas == NULL)
		return 0;
	switch (env->body_case) {
	case TERN__ENVELOPE__BODY_REPLICA_OFFER:
		return rep_on_offer(a->replicas, peer, env->replica_offer);
	case TERN__ENVELOPE__BODY_REPLICA_NEED:
		return rep_on_need(a->replicas, peer, env->replica_need);
	case TERN__ENVELOPE__BODY_REPLICA_ACK:
		return rep_on_ack(a->replicas, peer, env->replica_ack);
	default:
		return 0;
	}
}

static void
rep_peer_lost(void *ctx, const char *peer, const char *why)
{
	struct agent	*a = ctx;
	struct rep_recv	*rv, *next;
	struct rep_inst	*ri;
	size_t		 i;

	if (a->replicas == NULL)
		return;
	for (rv = a->replicas->recvs; rv != NULL; rv = next) {
		next = rv->next;
		if (strcmp(rv->peer, peer) == 0 && !rv->assembling)
			rep_recv_end(rv, why);
	}
	for (ri = a->replicas->insts; ri != NULL; ri = ri->next)
		for (i = 0; ri->busy != NULL && i < ri->busy->nsends; i++)
			if (strcmp(ri->busy->sends[i].host, peer) == 0 &&
			    ri->busy->sends[i].state != REP_DONE &&
			    ri->busy->offered)
				rep_send_done(&ri->busy->sends[i], why);
}

/* --- reports, takeover, start and stop ---------------------------------- */

static void
rep_failed_free(struct replicas *rs)
{
	struct rep_failed	*f;

	while ((f = rs->failed) != NULL) {
		rs->failed = f->next;
		free(f->name);
		free(f->why);
		free(f);
	}
}

void
replica_restore_failed(struct agent *a, const char *name, const char *why)
{
	struct replicas		*rs = a->replicas;
	struct rep_failed	*f;

	if (rs == NULL || rs->stopping)
		return;
	f = xcalloc(1, sizeof *f);
	f->name = xstrdup(name);
	f->why = xstrdup(why);
	f->next = rs->failed;
	rs->failed = f;
	if (a->ha != NULL)
		ha_agent_renew(a->ha);
}

const char *
replica_restore_failure(struct agent *a, const char *name)
{
	struct rep_failed	*f;

	for (f = a->replicas != NULL ? a->replicas->failed : NULL; f != NULL;
	    f = f->next)
		if (strcmp(f->name, name) == 0)
			return f->why;
	return NULL;
}

void
replica_reports(struct agent *a, Tern__LeaseRenew *r)
{
	struct replicas		*rs = a->replicas;
	struct rep_report	*rp;
	size_t			 n = 0;

	if (rs == NULL || rs->reports == NULL)
		return;
	for (rp = rs->reports; rp != NULL; rp = rp->next)
		n++;
	rs->out = xcalloc(n, sizeof *rs->out);
	for (rp = rs->reports; rp != NULL; rp = rp->next)
		rs->out[rs->nout++] = &rp->r;
	r->n_replicas = rs->nout;
	r->replicas = rs->out;
}

/* Sent once: a lost renewal loses them, and the next generation's
 * report comes an interval later. */
void
replica_reports_free(struct agent *a, Tern__LeaseRenew *r)
{
	struct replicas		*rs = a->replicas;
	struct rep_report	*rp;

	r->n_replicas = 0;
	r->replicas = NULL;
	if (rs != NULL)
		rep_failed_free(rs);
	if (rs == NULL || rs->out == NULL)
		return;
	while ((rp = rs->reports) != NULL) {
		rs->reports = rp->next;
		free(rp->r.instance);
		free(rp->r.host);
		free(rp);
	}
	free(rs->out);
	rs->out = NULL;
	rs->nout = 0;
}

/* A replica generation becoming the instance's checkpoint (on the
 * pool: the rootfs may be large, the loop renews leases). */
struct rep_take {
	struct agent		*a;
	struct replicas		*rs;		/* held (inflight) */
	char			*name;
	char			*dir;		/* the replica */
	char			*ckpt_dir;
	char			*root;		/* the spec's rootfs, or NULL */
	uint64_t		 gen;
	size_t			 entries;	/* rootfs written: its entries */
	int			 wrote;
	int			 kept;		/* before a restart: 1 the
						 * rootfs written, 2 all taken */
	replica_take_cb		 cb;
	void			*arg;
};

/* In the instance's checkpoint directory from the moment its rootfs is
 * written from replica generation gen until that generation is taken in
 * beside it: a take that ternd's restart cut short knows the rootfs there
 * is the replica's, not a stale copy. */
static char *
rep_rootfs_mark(const struct rep_take *t)
{
	char	*mark;

	xasprintf(&mark, "%s/rootfs-from-replica-%" PRIu64, t->ckpt_dir,
	    t->gen);
	return mark;
}

/* The generation carries the container's rootfs: write it where its
 * spec says, before CRIU restores.  That path must be absent or an empty
 * directory here: a rootfs found there (a stale copy, or someone
 * else's) is never overwritten; the failover moves on.  Unless this take
 * wrote it before ternd restarted (rep_rootfs_mark): it is kept. */
static int
rep_rootfs_put(struct rep_take *t, const char *gen_dir, char **cause)
{
	struct rootfs_snap	 snap;
	struct stat		 st;
	char			*tmp = NULL, *mark;
	int			 rc;

	if ((rc = rootfs_snap_load(gen_dir, &snap, cause)) != 0)
		return rc == 1 ? 0 : -1;
	rc = -1;
	mark = rep_rootfs_mark(t);
	if (t->root == NULL) {
		set_cause(cause, "replica generation carries a rootfs, but "
		    "the instance has no rootfs path here");
		goto out;
	}
	if (lstat(mark, &st) == 0 && lstat(t->root, &st) == 0 &&
	    S_ISDIR(st.st_mode)) {
		t->kept = 1;
		rc = 0;
		goto out;
	}
	if (lstat(t->root, &st) == 0 && (!S_ISDIR(st.st_mode) ||
	    rmdir(t->root) != 0)) {
		set_cause(cause, "its rootfs %s exists on this host and is not "
		    "an empty directory: not overwritten (if it is a stale "
		    "copy of %s, remove it before the next failover; the "
		    "replica stays in %s)", t->root, t->name, t->dir);
		goto out;
	}
	xasprintf(&tmp, "%s.tern-replica", t->root);
	if (rm_rf(tmp, cause) != 0 ||
	    rootfs_snap_materialise(&snap, t->dir, tmp, cause) != 0)
		goto out;
	/* Marked before it is in place (the rename is atomic): whatever
	 * is at root from now on is this take's. */
	if (mkdir_p(t->ckpt_dir, 0700, cause) != 0 ||
	    write_file_atomic(mark, "", cause) != 0)
		goto out;
	if (rename(tmp, t->root) != 0) {
		set_cause(cause, "%s: %s", t->root, strerror(errno));
		goto out;
	}
	if (fsync_parent(t->root, cause) != 0)
		goto out;
	t->wrote = 1;
	t->entries = snap.n;
	/* kill: ternd dies with the rootfs written and the generation not
	 * yet taken in (its restart must resume the restore). */
	fault_die_at("replica.take.rootfs");
	rc = 0;
out:
	rootfs_snap_free(&snap);
	free(mark);
	free(tmp);
	return rc;
}

static int
rep_take_work(void *arg, char **cause)
{
	struct rep_take	*t = arg;
	char		*from, *to, *mark;
	struct stat	 st;
	int		 rc = -1;

	xasprintf(&from, "%s/%" PRIu64, t->dir, t->gen);
	xasprintf(&to, "%s/%" PRIu64, t->ckpt_dir, t->gen);
	xasprintf(&mark, "%s/%s", to, CKPT_MANIFEST);
	/* Taken in already, before ternd restarted (its rootfs first):
	 * gone from the replica, complete beside the instance. */
	if (lstat(from, &st) == -1 && errno == ENOENT &&
	    lstat(mark, &st) == 0) {
		t->kept = 2;
		rc = 0;
		goto taken;
	}
	free(mark);
	xasprintf(&mark, "%s/%s", from, CKPT_MANIFEST);
	if (lstat(mark, &st) != 0) {
		set_cause(cause, "this host holds no complete replica "
		    "generation %" PRIu64 " of it (%s)", t->gen, t->dir);
		goto out;
	}
	if (rep_rootfs_put(t, from, cause) != 0)
		goto out;
	if (mkdir_p(t->ckpt_dir, 0700, cause) != 0 || rm_rf(to, cause) != 0)
		goto out;
	if (rename(from, to) != 0) {
		set_cause(cause, "%s: %s", to, strerror(errno));
		goto out;
	}
	if ((rc = fsync_parent(to, cause)) != 0)
		goto out;
	/* kill: ternd dies with the generation taken in, not restored. */
	fault_die_at("replica.take.moved");
taken:
	free(mark);
	mark = rep_rootfs_mark(t);
	(void)unlink(mark);
out:
	free(mark);
	free(from);
	free(to);
	return rc;
}

static void
rep_take_done(void *arg, const char *error)
{
	struct rep_take	*t = arg;
	struct replicas	*rs = t->rs;

	if (t->wrote)
		log_info("instance %s: rootfs %s written from its replica "
		    "(%zu entries)", t->name, t->root, t->entries);
	else if (t->kept == 1)
		log_info("instance %s: rootfs %s was written from replica "
		    "generation %" PRIu64 " before ternd restarted: kept",
		    t->name, t->root, t->gen);
	else if (t->kept == 2)
		log_info("instance %s: replica generation %" PRIu64 " was "
		    "taken in before ternd restarted: kept", t->name, t->gen);
	if (error == NULL)
		work_discard(t->a->ternd->loop, t->dir, t->name, "the replica",
		    NULL, NULL);
	t->cb(t->arg, error);
	free(t->name);
	free(t->dir);
	free(t->ckpt_dir);
	free(t->root);
	free(t);
	if (rs != NULL) {
		rs->inflight--;
		rep_maybe_free(rs);
	}
}

void
replica_take(struct agent *a, const char *name, uint64_t gen,
    const char *ckpt_dir, const char *root, replica_take_cb cb, void *arg)
{
	struct rep_take	*t = xcalloc(1, sizeof *t);

	t->a = a;
	t->name = xstrdup(name);
	t->dir = rep_dir(a, name);
	t->ckpt_dir = xstrdup(ckpt_dir);
	t->root = root != NULL ? xstrdup(root) : NULL;
	t->gen = gen;
	t->cb = cb;
	t->arg = arg;
	if ((t->rs = a->replicas) != NULL)
		t->rs->inflight++;
	work_run(a->ternd->loop, rep_take_work, t, rep_take_done, t);
}

void
replica_register(struct agent *a)
{
	struct mesh	*ms = a->ternd->mesh;

	if (a->replicas == NULL) {
		a->replicas = xcalloc(1, sizeof *a->replicas);
		a->replicas->a = a;
	}
	mesh_on_message(ms, TERN__ENVELOPE__BODY_REPLICA_OFFER, rep_on_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_REPLICA_NEED, rep_on_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_REPLICA_ACK, rep_on_msg, a);
	mesh_on_stream(ms, TERN__STREAM_KIND__STREAM_REPLICA, rep_on_stream, a);
	mesh_on_peer_lost(ms, rep_peer_lost, a);
}

void
replica_stop(struct agent *a)
{
	struct replicas		*rs = a->replicas;
	struct rep_inst		*ri;
	struct rep_gen		*rg, *next_rg;
	struct rep_report	*rp;
	struct rep_recv		*rv, *next;
	size_t			 i;

	if (rs == NULL)
		return;
	rs->stopping = 1;
	rs->inflight++;		/* not freed halfway through */
	while ((ri = rs->insts) != NULL) {
		rs->insts = ri->next;
		rep_inst_free(ri);
	}
	/* Owned or orphaned (its instance destroyed meanwhile): each send
	 * still open ends; the last one ends its generation. */
	for (rg = rs->gens; rg != NULL; rg = next_rg) {
		next_rg = rg->next;
		for (i = 0; rg->offered && i < rg->nsends; i++)
			if (rg->sends[i].state != REP_DONE)
				rep_send_done(&rg->sends[i],
				    "ternd is stopping");
	}
	for (rv = rs->recvs; rv != NULL; rv = next) {
		next = rv->next;
		if (!rv->assembling)
			rep_recv_end(rv, "ternd is stopping");
	}
	while ((rp = rs->reports) != NULL) {
		rs->reports = rp->next;
		free(rp->r.instance);
		free(rp->r.host);
		free(rp);
	}
	rep_failed_free(rs);
	rep_stale_free(rs);
	/* What is still on the pool ends by itself (its callbacks see
	 * stopping) and frees the state last. */
	rs->inflight--;
	rep_maybe_free(rs);
}
