/* The one migration engine: every migration of either kind, on either
 * end, is a struct mig in one table.  The engine routes what arrives
 * (offers, steps, streams, a lost peer, shutdown, the operator's cancel),
 * keeps the phase order (migrate/phases.h) and turns every failure into
 * the verdict of phases.c's table, which it hands to the kind's driver to
 * carry out.  What is particular to a kind (CRIU's images and lazy pages;
 * libvirt's peer-to-peer job and its relays) lives in the driver.
 *
 * Callback contract, for the engine and every driver op alike:
 *  - a function that fails synchronously returns -1 (and a cause where it
 *    takes one) and never calls a callback or frees the migration;
 *  - a function that returns 0 has taken the migration on: from then on
 *    the operator's done callback is called exactly once, through
 *    mig_answer(), whatever happens;
 *  - driver ops are only called on the loop thread; a driver that queues
 *    work holds the migration (mig_hold) until the work came back.
 *
 * The commit point is to become one driver op (commit) called by the
 * source's driver through mig_commit() (not there yet): today each
 * driver makes the instance's new owner durable on this host itself, and
 * for a protected container the container driver first has the
 * coordinator's store record it (phase RECORDING, agent/migration.h's
 * migration_owner_move). */
#ifndef TERN_MIGRATE_ENGINE_H
#define TERN_MIGRATE_ENGINE_H

#include <stdint.h>

#include <uv.h>

#include "daemon/msg.h"
#include "daemon/stream.h"
#include "migrate/phases.h"

struct mig;
struct mig_engine;

/* The operator's terminal: progress (MigrateProgress envelopes, code and
 * error unused), then the answer once.  Same shape as the agent's. */
typedef void (*mig_reply_cb)(void *arg, const Envelope *reply, int code,
    const char *error);

/* How the engine reaches peers (the mesh's send). */
struct mig_transport {
	int	(*send)(void *ctx, const char *peer, const Envelope *,
		    char **cause);
	void	*ctx;
};

/* A kind's half of migration.  Every op is required unless marked. */
struct mig_driver {
	Tern__InstanceKind kind;	/* the offer's kind */
	const char	*name;		/* "container", "vm", in messages */

	/* Source: the operator asked to move r->name, an instance of this
	 * kind.  Check, then send the offer: 0, or -1 with *code and *cause
	 * (the engine answers the operator and drops m). */
	int	(*source_begin)(struct mig *, const Tern__MigrateRequest *r,
		    int *code, char **cause);
	/* Target: an offer of this kind.  0: taken (READY or ABORT follows
	 * from the driver), -1 with *cause: the engine answers ABORT. */
	int	(*target_begin)(struct mig *, const Tern__MigrateOffer *,
		    char **cause);
	/* A step for m from its peer (ABORT included: the engine has already
	 * turned ABORT into mig_fail(MIG_FAIL_PEER_ABORT) unless the driver
	 * sets wants_abort_steps). */
	void	(*step)(struct mig *, const Tern__MigrateStep *);
	/* A stream the peer opened (file, tree, relay): 0 accepted, -1
	 * refused with *cause, 1 not this driver's.  Drivers find their
	 * migration from the stream's name (mig_find, mig_find_name).
	 * Optional (NULL: the driver takes no streams). */
	int	(*accept_stream)(struct mig_engine *, const char *peer,
		    Tern__StreamKind stream_kind, struct stream *,
		    const char *name, char **cause);
	/* The same with the size the sender announced (image files are
	 * checked against the disk before a byte is written).  Optional;
	 * asked instead of accept_stream when set. */
	int	(*accept_stream_sized)(struct mig_engine *, const char *peer,
		    Tern__StreamKind stream_kind, struct stream *,
		    const char *name, uint64_t size, char **cause);

	/* Carrying out a verdict of the table (migrate/phases.h). */
	void	(*rollback)(struct mig *, enum mig_fail, const char *why);
	void	(*discard)(struct mig *, enum mig_fail, const char *why);
	void	(*await)(struct mig *, enum mig_fail, const char *why);
	void	(*uncertain)(struct mig *, enum mig_fail, const char *why);
	void	(*split)(struct mig *, enum mig_fail, const char *why);

	/* Bytes moved so far: the timeout counts no progress while they
	 * grow.  Optional (NULL: only phase changes are progress). */
	uint64_t (*bytes_moved)(struct mig *);
	/* What the timeout's message calls where m stands (the driver's own
	 * state names, which operators and tests know).  Optional (NULL:
	 * the phase's name). */
	const char *(*state_name)(struct mig *);
	/* Free the driver's state (priv, NULL if a begin op refused before
	 * it made any); called once, after mig_finish and the last
	 * mig_drop; m is gone after it returns. */
	void	(*release)(struct mig *);
};

struct mig {
	struct mig_engine	*engine;
	const struct mig_driver	*drv;
	void			*priv;		/* the driver's state */
	uint64_t		 id;		/* the source's id */
	enum mig_role		 role;
	enum mig_phase		 phase;
	char			*peer;
	char			*name;		/* the instance's */
	uint64_t		 start_ms;
	int			 wants_abort_steps;	/* driver: see step */
	/* internal to the engine */
	struct mig		*next;
	unsigned		 holds;
	int			 finished;
	int			 answered;
	uv_timer_t		 timer;
	uint32_t		 timeout_ms;
	int			 timeout_own;	/* mig_set_timeout was called */
	uint64_t		 timer_bytes;
	mig_reply_cb		 progress, done;
	void			*arg;
};

struct mig_engine_conf {
	const char	*host_name;
	uint32_t	 timeout_ms;	/* no progress this long: MIG_FAIL_TIMEOUT */
	uint64_t	 boot_id;	/* source ids: ++counter | boot_id << 16 */
	/* The counter, shared with what allocates ids outside the engine
	 * (so a peer never sees one id twice); NULL: the engine's own. */
	uint64_t	*id_counter;
};

struct mig_engine *mig_engine_new(uv_loop_t *, const struct mig_engine_conf *,
		    const struct mig_transport *);
void		 mig_engine_set_conf(struct mig_engine *,
		    const struct mig_engine_conf *);
void		 mig_engine_register(struct mig_engine *, const struct mig_driver *);
/* The host's own pointer, for the drivers (the agent). */
void		 mig_engine_set_data(struct mig_engine *, void *);
void		*mig_engine_data(const struct mig_engine *);
/* Frees the table once every migration is gone (after shutdown). */
void		 mig_engine_free(struct mig_engine *);

/* ternctl migrate of an instance of kind (the instance's driver says
 * which): the engine makes m (id: see the conf) and calls source_begin.
 * r->cancel set (kind unused, 0): MIG_FAIL_CANCEL to name's outgoing
 * migration, answered at once: Done "cancelling ...", NOT_FOUND if there
 * is none, BAD_REQUEST if the table ignores a cancel in its phase. */
void		 mig_engine_start(struct mig_engine *,
		    Tern__InstanceKind kind, const Tern__MigrateRequest *,
		    mig_reply_cb progress, mig_reply_cb done, void *arg);
/* From the mesh: a migration message (1 if it was one).  An offer goes
 * to its kind's driver (none: ABORT "bad offer"; a duplicate: ignored);
 * a step to the migration of (peer, id), source first; RESTORE or
 * COMMIT for none is answered ABORT "unknown migration (discarded
 * here)", other steps for none are dropped. */
int		 mig_engine_on_msg(struct mig_engine *, const char *peer,
		    const Envelope *);
/* From the mesh: a stream of kind for a migration (size: what the sender
 * announced): 0, -1 with *cause (no driver took it included). */
int		 mig_engine_accept_stream(struct mig_engine *, const char *peer,
		    Tern__StreamKind stream_kind, struct stream *,
		    const char *name, uint64_t size, char **cause);
void		 mig_engine_peer_lost(struct mig_engine *, const char *peer,
		    const char *why);
/* ternd stops: every migration gets MIG_FAIL_SHUTDOWN while the peers
 * can still be told. */
void		 mig_engine_shutdown(struct mig_engine *);
/* The migration with peer of that id in role, or NULL; that of the
 * instance name in role (any if -1), or NULL.  Only migrations still in
 * the table (not finished). */
struct mig	*mig_find(struct mig_engine *, const char *peer, uint64_t id,
		    enum mig_role);
struct mig	*mig_find_name(struct mig_engine *, const char *name, int role);
/* What the operator is told m is doing: its driver's state, else its
 * phase. */
const char	*mig_state_name(struct mig *);
/* 1 if a driver of that kind is registered. */
int		 mig_engine_has_kind(const struct mig_engine *,
		    Tern__InstanceKind kind);
uv_loop_t	*mig_engine_loop(const struct mig_engine *);
/* For each migration (status listings). */
void		 mig_engine_each(struct mig_engine *,
		    void (*)(struct mig *, void *), void *);

/* --- for drivers ---------------------------------------------------------- */

/* The one transition function: forward along the role's order, or to
 * ROLLING_BACK/FAILED before the commit; a step backwards is refused,
 * logged, and returns -1.  A phase change is progress (timeout rearmed). */
int		 mig_set_phase(struct mig *, enum mig_phase);
/* A failure: the table's verdict for (role, phase, f), carried out by
 * the driver's op (m held meanwhile).  The only way a failure is acted
 * on; ignored once m is finished. */
void		 mig_fail(struct mig *, enum mig_fail, const char *why);
/* Progress seen (bytes, a step): the timeout starts over. */
void		 mig_touch(struct mig *);
/* This migration's own no-progress timeout from now on, instead of the
 * engine's; 0: none (its driver owns its deadlines). */
void		 mig_set_timeout(struct mig *, uint32_t ms);
int		 mig_send(struct mig *, const Envelope *, char **cause);
/* A MigrateStep to the peer: step, error (may be NULL). */
int		 mig_send_step(struct mig *, Tern__MigrateStep__Step,
		    const char *error);
/* To the operator (source): a progress line; the answer, once. */
void		 mig_progress(struct mig *, const Envelope *);
void		 mig_answer(struct mig *, const Envelope *reply, int code,
		    const char *error);
/* Outstanding asynchronous work: m stays until the last drop. */
void		 mig_hold(struct mig *);
void		 mig_drop(struct mig *);
/* Over: out of the table at once (routing no longer finds it); freed,
 * with drv->release, after the last hold is dropped.  Answers the
 * operator with error if it was not answered yet. */
void		 mig_finish(struct mig *, const char *error);
const char	*mig_host_name(const struct mig *);

#endif
