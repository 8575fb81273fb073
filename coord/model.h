/* The coordinator's picture of the cluster: hosts, instances with their
 * owner and epoch, and checkpoint replicas.  Loaded whole from the store
 * (coord/store.h) at start; changed only through a store transaction that
 * compares what it read, and changed in memory only once the store
 * committed, so the picture never runs ahead of what a restarted or newly
 * elected coordinator would read back.
 *
 * Keys: hosts/NAME, instances/NAME, replicas/INSTANCE/HOST,
 * failovers/SEQ (20 digits); values are the records of proto/tern.proto
 * (HostRecord, InstanceRecord, ReplicaRecord, FailoverRecord), decoded as
 * strictly as a peer's messages.
 *
 * Callback contract: a change refused at once (bad arguments, an unknown
 * name, a stale epoch) returns -1 with *cause and never calls back;
 * otherwise the callback runs exactly once, later, with error NULL when
 * the store committed it, or why not ("changed meanwhile": load again). */
#ifndef TERN_COORD_MODEL_H
#define TERN_COORD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "coord/membership.h"
#include "coord/store.h"
#include "daemon/msg.h"

struct model;

struct model_host {
	char			*name;
	int			 drained;
	uint64_t		 memory_mib;	/* 0: no limit */
	uint32_t		 max_instances;	/* 0: no limit */
	uint64_t		 mod_rev;
	/* Not stored: the caller sets it after a load (membership.h:
	 * every host granted "now", then the quiet period). */
	struct host_lease	 lease;
	/* Not stored: when this coordinator saw it fail (unix ms), for the
	 * failover history. */
	uint64_t		 failed_unix_ms;
};

enum model_ha {
	MODEL_HA_NONE = 0,
	MODEL_HA_RESTART = 1,
	MODEL_HA_CHECKPOINT = 2,
};

struct model_instance {
	char		*name;
	Tern__InstanceKind kind;
	char		*spec;
	char		*spec_dir;
	char		*owner;		/* NULL: runs nowhere */
	uint64_t	 epoch;
	enum model_ha	 ha;
	uint32_t	 interval_ms;
	uint32_t	 replicas;
	int32_t		 priority;
	uint64_t	 memory_mib;
	uint64_t	 mod_rev;
};

struct model_replica {
	char		*instance;
	char		*host;
	uint64_t	 epoch;
	uint64_t	 generation;
	uint64_t	 taken_unix_ms;
	uint8_t		 digest[32];
	size_t		 digest_len;
	uint64_t	 bytes;
	uint64_t	 mod_rev;
};

/* The failover history: the last MODEL_FAILOVERS_MAX records (by seq). */
#define MODEL_FAILOVERS_MAX	1000

enum model_outcome {
	MODEL_OUTCOME_PENDING = 0,	/* the target has not said yet */
	MODEL_OUTCOME_RUNNING = 1,
	MODEL_OUTCOME_FAILED = 2,
};

struct model_failover {
	uint64_t	 seq;
	uint64_t	 time_unix_ms;	/* the decision */
	char		*instance;
	char		*from;
	char		*to;		/* NULL: nowhere, see why */
	char		*why;
	uint64_t	 epoch;		/* the one it got, or stays at */
	uint64_t	 failed_unix_ms;	/* from declared failed, 0: ? */
	enum model_outcome outcome;
	uint64_t	 outcome_unix_ms;
	uint64_t	 mod_rev;
};

/* What ternctl ha set changes (has_*: given). */
struct model_ha_set {
	int		 has_ha, has_priority, has_interval, has_replicas;
	enum model_ha	 ha;
	int32_t		 priority;
	uint32_t	 interval_ms;
	uint32_t	 replicas;
};

/* Bounds of an instance's protection. */
#define MODEL_PRIORITY_MIN	(-1000)
#define MODEL_PRIORITY_MAX	1000

typedef void	(*model_cb)(void *arg, const char *error);

struct model	*model_new(struct store *);
void		 model_free(struct model *);
/* Read everything (the picture is replaced once all of it decoded). */
int		 model_load(struct model *, model_cb, void *, char **cause);

struct model_host	*model_host(struct model *, const char *name);
struct model_instance	*model_instance(struct model *, const char *name);
/* The replicas of an instance, newest first (epoch, then generation);
 * *n of them, valid until the next change.  Free the array only. */
struct model_replica	**model_replicas(struct model *, const char *instance,
			    size_t *n);
size_t			 model_hosts(struct model *, struct model_host ***);
/* The checkpoint-protected instances that have an owner, without a walk
 * over all of them (a grant's keep-list); valid until the next change. */
size_t			 model_ckpt_instances(struct model *,
			    struct model_instance ***);
/* Every instance; valid until the next change. */
size_t			 model_instances(struct model *,
			    struct model_instance ***);
/* The instances host owns, without a walk over all of them (a grant at
 * every renewal); valid until the next change.  Free the array only. */
size_t			 model_owned(struct model *, const char *host,
			    struct model_instance ***);

/* A host joins, or changes its capacity or drain mark. */
int	model_host_put(struct model *, const char *name, int drained,
	    uint64_t memory_mib, uint32_t max_instances, model_cb, void *,
	    char **cause);
/* A new instance, at epoch 1; refused if the name is taken. */
int	model_instance_add(struct model *, const struct model_instance *,
	    model_cb, void *, char **cause);
/* Ownership passes to host to (NULL: nowhere) at epoch + 1, only if the
 * instance is still at epoch: the one step of every failover and
 * migration commit. */
int	model_instance_move(struct model *, const char *name, uint64_t epoch,
	    const char *to, model_cb, void *, char **cause);
/* A verified replica, counted only if made at the instance's current
 * epoch (an old owner's late copy is refused). */
int	model_replica_put(struct model *, const struct model_replica *,
	    model_cb, void *, char **cause);

/* As model_instance_move, and the failover's history record fo
 * (instance, from, why, failed_unix_ms and time_unix_ms given; seq, to
 * and epoch are set here) in the same transaction, which also drops the
 * records MODEL_FAILOVERS_MAX or more seqs older. */
int	model_instance_failover(struct model *, const char *name,
	    uint64_t epoch, const char *to, const struct model_failover *fo,
	    model_cb, void *, char **cause);
/* A failover that found no target: its record alone (to NULL, why),
 * compared against the instance as read. */
int	model_failover_unplaced(struct model *, const char *name,
	    uint64_t epoch, const struct model_failover *fo, model_cb, void *,
	    char **cause);
/* The outcome of failover seq, once the target said. */
int	model_failover_outcome(struct model *, uint64_t seq,
	    enum model_outcome, const char *why, uint64_t unix_ms, model_cb,
	    void *, char **cause);
/* The history, oldest first; valid until the next change. */
size_t	model_failovers(struct model *, struct model_failover ***);
/* f as its stored record (strings borrowed from f; a pending outcome is
 * left out, as stored). */
void	model_failover_record(const struct model_failover *,
	    Tern__FailoverRecord *);
/* The newest record of instance, or NULL. */
struct model_failover *model_failover_last(struct model *,
	    const char *instance);

/* Change the protection of an instance (ternctl ha set), compared against
 * its record as read.  Refused at once, with what to do: an unknown
 * instance, a value out of bounds, replicas more than the other hosts or
 * HA_REPLICAS_MAX, checkpoint without an interval and replicas, or a
 * policy this version cannot give (msg_ha_refused). */
int	model_instance_set_ha(struct model *, const char *name,
	    const struct model_ha_set *, model_cb, void *, char **cause);

/* Where a failed host's instances go: the plan, in priority order. */
struct model_plan {
	struct model_instance	*instance;
	const char		*target;	/* NULL: nowhere, see why */
	const struct model_replica *replica;	/* checkpoint: restore this */
	char			*why;
};
/* The plan for every instance owned by failed, placed one after another
 * (each placement counts against its target's capacity).  Free with
 * model_plan_free. */
size_t	model_failover_plan(struct model *, const char *failed,
	    struct model_plan **);
/* The same, never placing on the hosts in exclude (those where a restore
 * of the instance failed). */
size_t	model_failover_plan_without(struct model *, const char *failed,
	    const char *const *exclude, size_t nexclude, struct model_plan **);
void	model_plan_free(struct model_plan *, size_t);

#endif
