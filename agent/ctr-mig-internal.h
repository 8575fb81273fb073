/* Container migration, the engine's driver for kind "container" (see
 * migrate/engine.h), split over ctr-migration.c (state, lifetime, the
 * verdicts carried out, the driver table), ctr-mig-start.c (the source's
 * checks and offer), ctr-mig-source.c, ctr-mig-target.c and
 * ctr-mig-streams.c (the target's incoming streams).  Internal to them;
 * agent/migration.h is the agent's view. */
#ifndef TERN_AGENT_CTR_MIG_INTERNAL_H
#define TERN_AGENT_CTR_MIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/agent.h"
#include "agent/instances.h"
#include "daemon/msg.h"
#include "daemon/stream.h"
#include "migrate/engine.h"
#include "migrate/tree.h"

enum ctr_state {
	CTR_OFFERED,		/* source: waiting for READY */
	CTR_DUMPING,		/* source: CRIU dumping */
	CTR_SENDING,		/* source: frozen, images going out */
	CTR_RESTORING,		/* source: waiting for RESTORED */
	CTR_COMMITTED,		/* source: acked post-dump; target owns it */
	CTR_RECEIVING,		/* target: instance incoming, files arriving */
	CTR_HELD,		/* target: restored, held at pre-resume */
	CTR_RESUMING,		/* target: COMMIT came, resuming */
	CTR_ABORTING,		/* either: rolling back */
	CTR_PAGING,		/* target: runs, post-copy pages arriving */
	CTR_SYNCING,		/* source: the rootfs's full pass, running */
	CTR_OWNING,		/* source: the coordinator's store is asked
				 * to make the target the owner */
};

/* A container migration: the container driver's state (priv) of one
 * struct mig of the engine.  id, source, peer, name and start_ms are the
 * engine's, copied (peer and name borrowed) for brevity. */
struct migration {
	struct mig		*mig;
	struct agent		*agent;
	uint64_t		 id;		/* the source's id */
	int			 source;
	char			*peer;
	char			*name;
	struct instance		*in;
	enum ctr_state		 state;
	uint64_t		 generation;
	struct ckpt_hold	*hold;
	uint64_t		 start_ms;
	uint64_t		 frozen_ms;
	uint64_t		 bytes;
	char			*error;		/* why it is rolling back */
	int			 dumped;	/* source: CRIU done, after commit */
	int			 link_lost;	/* source: at the commit point */
	int			 commit_sent;	/* source: COMMIT went out */
	int			 target_refused;	/* ... and came back ABORT */
	struct files_send	*fs;		/* source: images going out */
	uv_work_t		 work;		/* target: fsync after resume */
	char			*sync_dir;	/* (the instance may go meanwhile) */
	struct instances	*set;		/* ... the table stays until then */
	char			*sync_error;
	uv_timer_t		 tick;		/* source: progress to the operator */

	int			 postcopy;	/* memory follows after resume */
	struct relay		*relay;		/* post-copy: the page channel */
	struct ckpt_hold	*dump;		/* source, post-copy: until CRIU
						 * is done serving pages */
	struct ckpt_lazy	*lazy;		/* target: lazy-pages daemon */
	struct criu		*swrk;		/* target: its restore's CRIU,
						 * started at READY */
	int			 resumed;	/* source: RESUMED arrived */
	uint64_t		 dump_start_ms;
	uint64_t		 resumed_ms;
	char			*broken;	/* post-copy broke past commit */
	int			 ps_fd;		/* CRIU's end of the relay */
	uint64_t		 page_bytes;	/* post-copy: pages relayed */
	char			*note;		/* source: why this mode */
	uint32_t		 max_downtime_ms;
	int			 pages_done;	/* target: lazy-pages exited 0 */
	int			 complete;	/* source: COMPLETE arrived */
	int			 relay_ended;	/* the page channel closed cleanly */

	struct ratelimit	*limit;		/* source: --bandwidth, all streams */
	struct stream_tally	*tally;		/* target: bytes of our streams */
	unsigned		 files_in;	/* target: image files accepted */

	void			(*record_then)(struct migration *);
	struct instance		*recording_in;	/* source: moved_to being
						 * written, COMMIT waits */
	int			 rootfs_copy;	/* the rootfs follows, not shared */
	struct tree_send	*tree_tx;	/* source: a pass going out */
	struct tree_index	*tree_idx;	/* source: what the last pass sent */
	struct tree_index	*tree_prev;	/* ... the delta's base, in use */
	int			 tree_synced;	/* source: ROOTFS_SYNCED came */
	uint64_t		 tree_bytes;	/* rootfs bytes sent */
	char			*rootfs;	/* target: where it goes */
	int			 trees_in;	/* target: passes being applied */
	int			 trees_done;	/* target: passes applied */
	int			 restore_wanted;	/* target: RESTORE came early */
	unsigned		 files_writing;	/* target: files not yet written */
	int			 rootfs_keep;	/* target: ours now */

	/* Protected instances (docs/ha.md): the epoch the coordinator's
	 * store gave the target (source: COMMIT carries it; target: it
	 * resumes once its grant lists it, waiting on tick meanwhile). */
	uint64_t		 owner_epoch;
	char			*drop_why;	/* target: why it killed its
						 * held copy (CRIU only sees the
						 * kill) */
	void			(*own_then)(struct migration *);
	/* Stop-and-copy as a pipeline (ctr-mig-pages.c): CRIU's pages go
	 * over relay, m->lazy is the target's page server. */
	int			 pipeline;
	/* Stop-and-copy, resuming before the memory is in: the source
	 * found nothing lazy pages cannot carry (offered); the target
	 * takes it (its CRIU, stopcopy_resume_early).  The target's
	 * loader copies the memory in from its own images; it passes to
	 * the instance at the resume (ctr_loader_adopt). */
	int			 lazy_restore;
	struct ckpt_lazy	*loader;
	char			*loader_error;	/* it died while resuming */
	pid_t			 late_pid;	/* target: CRIU's answer, held */
	char			*late_error;	/* by ctr.target.answer */
	uint32_t		 page_crc;	/* of what crossed so far */
	uint64_t		 page_len;
	int			 page_sum_in;	/* target: RESTORE's came */
	char			*pages_failed;	/* target: why the page server
						 * failed, the source's word
						 * awaited */
	uint32_t		 peer_crc;	/* ... the source's */
	uint64_t		 peer_len;
	char			*tee_gen;	/* source: the generation whose
						 * pages are kept beside it */
	int			 tee_fd;	/* ... GEN.pages, being written */
	int			 tee_state;	/* 0 writing, 1 sealed, -1 failed */
	int			 tee_errno;	/* ... why, if it was a write */
	unsigned		 tee_pending;	/* blocks being written */
	int			 tee_paused;	/* ... too many: relay paused */
	unsigned		 tee_pauses;	/* ... how often, for the log */
	int			 tee_seal_wanted;	/* post-dump came first */
	int			 tee_sealing;	/* the seal is on the pool */
	int			 tee_freed;	/* ... and ctr_free came */
	uint8_t			*tee_block;	/* the block being gathered */
	size_t			 tee_fill;	/* ... its bytes */
	uint64_t		 tee_off;	/* ... where it goes */
	uint8_t			*tee_spare[16];	/* written blocks, kept */
	unsigned		 tee_nspare;
	int			 restored_early;	/* RESTORED before the seal */
	uint64_t		 phase_ms;	/* source: when the last phase
						 * began (timings in the log) */
};

extern const char *const	ctr_state_names[];
extern const struct mig_driver	ctr_driver;

/* ctr-migration.c: the migration's state and lifetime */
enum mig_phase	 ctr_phase(const struct migration *);
void		 ctr_set_state(struct migration *, enum ctr_state);
struct migration *ctr_new(struct agent *, struct mig *);
void		 ctr_drop_rootfs(struct migration *);
void		 ctr_free(struct migration *);
void		 ctr_release(struct mig *);
void		 ctr_answer(struct migration *, const Envelope *, int code,
		    const char *error);
void		 ctr_format_rate(char *, size_t, uint64_t rate);
void		 ctr_tick(uv_timer_t *);
int		 ctr_send_step(struct migration *, Tern__MigrateStep__Step,
		    const char *error);
int		 ctr_relay_new(struct migration *, char **cause);
void		 ctr_relay_done(void *, const char *);
struct migration *ctr_find(struct agent *, const char *peer, uint64_t id,
		    int source);
struct migration *ctr_match_receiving(struct agent *, const char *peer,
		    const char *name, uint64_t generation, int tree);
int		 ctr_accept_stream(struct mig_engine *, const char *peer,
		    Tern__StreamKind kind, struct stream *, const char *name,
		    uint64_t size, char **cause);

static inline struct migration *
ctr_of(struct mig *mig)
{
	return mig->priv;
}

/* ctr-mig-start.c */
int		 ctr_source_begin(struct mig *, const Tern__MigrateRequest *,
		    int *code, char **cause);

/* ctr-mig-source.c */
void		 ctr_source_fail(struct migration *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 ctr_source_orphaned(struct migration *, const char *);
void		 ctr_source_postcopy_broke(struct migration *, const char *);
void		 ctr_source_postcopy_finish(struct migration *);
void		 ctr_source_step(struct migration *, const Tern__MigrateStep *);

/* ctr-mig-target.c */
int		 ctr_target_begin(struct mig *, const Tern__MigrateOffer *,
		    char **cause);
void		 ctr_target_discard(struct migration *, const char *);
void		 ctr_target_abort(struct migration *, const char *);
void		 ctr_target_restore(struct migration *);
void		 ctr_target_maybe_restore(struct migration *);
void		 ctr_target_tree_done(void *, const struct tree_stats *,
		    const char *);
void		 ctr_target_postcopy_finish(struct migration *);
void		 ctr_target_step(struct migration *, const Tern__MigrateStep *);
void		 ctr_target_granted(struct migration *, uint64_t epoch);

/* ctr-mig-pages.c */
int		 ctr_pages_new(struct migration *, char **cause);
int		 ctr_pages_server_start(struct migration *, char **cause);
int		 ctr_pages_ready(struct migration *);
void		 ctr_pages_failed_abort(struct migration *);
int		 ctr_pages_check(struct migration *, char **why);
int		 ctr_pages_send_restore(struct migration *);
void		 ctr_pages_tee_open(struct migration *);
void		 ctr_pages_tee_seal(struct migration *);
void		 ctr_pages_free(struct migration *);

/* ctr-mig-streams.c */
int		 ctr_accept_file(struct agent *, const char *peer,
		    struct stream *, const char *name, uint64_t size,
		    char **cause);
int		 ctr_accept_tree(struct agent *, const char *peer,
		    struct stream *, const char *name, char **cause);
int		 ctr_accept_relay(struct agent *, const char *peer,
		    struct stream *, const char *name, char **cause);

#endif
