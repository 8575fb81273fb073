/* What the files of a VM migration share (agent/vm-migration.h is the
 * agent's view): vm-migration.c the table, the steps' routing and the
 * faults; vm-mig-chan.c the relays and listeners; vm-mig-work.c libvirt's
 * calls on the thread pool and the long job; vm-mig-source.c and
 * vm-mig-target.c the two ends. */
#ifndef TERN_AGENT_VM_MIG_INTERNAL_H
#define TERN_AGENT_VM_MIG_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

#include "agent/lease.h"
#include "agent/vm-migration.h"
#include "checkpoint/vm.h"
#include "daemon/longjob.h"
#include "migrate/engine.h"
#include "migrate/phases.h"
#include "migrate/vm-policy.h"

#define VMM_TICK_MS		500	/* job numbers, policy, progress */
#define VMM_STALL_MS		10000	/* no progress this long: act */
#define VMM_COMPLETE_WAIT_MS	20000	/* T's COMPLETE after libvirt's yes */
#define VMM_BACK_CHECKS		3	/* S: waits while libvirt here still
					 * takes a returning copy in */
#define VMM_ARRIVE_WAIT_MS	10000	/* T: libvirt's finish resuming it */
#define VMM_LEASE_POLL_MS	250	/* S: came back, our lease awaited */
#define VMM_BANDWIDTH_MIN	1000000	/* bytes/s, as for containers */
/* Auto-converge, steeper than QEMU's 20 + 10 per pass: a guest that
 * outruns the link is slowed down enough within a few passes, instead of
 * after a dozen (each pass takes its whole dirty set's time). */
#define VMM_AC_INITIAL		30
#define VMM_AC_INCREMENT	20
/* What one incoming VM migration may open on the target: each relay is
 * a connection to libvirtd or QEMU.  libvirt's peer-to-peer migration
 * opens a few of each; a peer gets no more. */
#define VMM_MAX_RELAYS		8	/* at once */
#define VMM_MAX_RELAYS_TOTAL	64	/* over the whole migration */

struct vm_migration;

/* One connection libvirt or QEMU made through us. */
struct vm_chan {
	struct vm_chan		*next;
	struct vm_migration	*m;
	struct relay		*relay;
	char			*name;		/* the stream pair's */
};

/* S: where libvirtd and QEMU connect to reach T. */
struct vm_listener {
	uv_poll_t		 poll;
	int			 fd;
	char			*path;
	const char		*kind;		/* "libvirt", "qemu" */
	unsigned		 n;		/* connections so far */
	int			 open;
	struct vm_migration	*m;
};

/* A VM migration: the engine's struct mig (migrate/engine.h) carries its
 * id, peer, name, role and phase; this is its priv. */
struct vm_migration {
	struct agent		*agent;
	struct mig		*mig;
	/* The engine's, for messages; valid as long as this is. */
	uint64_t		 id;		/* the source's */
	int			 source;
	const char		*peer;
	const char		*name;
	struct instance		*in;		/* S */
	/* mig->phase, in the shared order (migrate/phases.h).  S: OFFERED
	 * -> TRANSFER (libvirt's pre-copy) [-> PAGING: QEMU switched to
	 * post-copy] -> COMMITTED (libvirt finished a pre-copy) or DONE
	 * (a post-copy), then T's COMPLETE; T: OFFERED (libvirt checks
	 * the name) -> READY (relaying) -> COMMITTED (taking it in) ->
	 * DONE; either: ROLLING_BACK -> FAILED.  Protected (m->store): S
	 * TRANSFER -> RECORDING -> COMMITTED, or -> ROLLING_BACK while T
	 * sends the paused copy back (m->returning). */
	int			 postcopy_asked; /* S: the switch is asked for */
	int			 job_running;	/* S: libvirt's migration call */
	int			 settling;	/* T: asking libvirt before a
						 * discard (vmm_target_discard) */
	char			*dir;		/* the sockets' */
	char			*qemu_path;
	struct vm_listener	 lis[2];
	struct vm_chan		*chans;
	unsigned		 nchans;
	unsigned		 relays_total;	/* T: every relay it opened */

	/* S: the request and the policy */
	Tern__MigrationMode	 mode;	/* auto, precopy, postcopy */
	uint64_t		 bandwidth;
	uint32_t		 max_downtime_ms;
	int			 auto_converge;
	uint64_t		 memory;
	struct vm_policy	 policy;
	char			*policy_note;	/* what the policy did */
	char			*abort_reason;	/* why we aborted libvirt's job */
	char			*discard_why;	/* T: why it is discarded */
	struct vm_job		 job;		/* the last reading */
	int			 stats_busy;
	int			 switched;	/* QEMU switched to post-copy */
	int			 throttle_max;
	int64_t			 qemu_downtime_ms; /* S: QEMU's, -1: none */
	uint64_t		 passes;	/* S: QEMU's, from its events */
	uint64_t		 downtime_ms;
	uint64_t		 bytes;

	uv_timer_t		 tick;
	uv_timer_t		 timer;		/* a step that does not come */
	atomic_int		 job_aborted;	/* an abort was sent to libvirt */
	int			 closing;	/* finished: handles closing */

	/* A protected VM (docs/ha.md): libvirt leaves T's copy paused; the
	 * coordinator's store is the commit point (phase RECORDING on S,
	 * migration_owner_move), T resumes it once its grant lists it. */
	int			 store;		/* S: commit through the store */
	uint64_t		 owner_epoch;	/* T: the store's, from COMMIT */
	uint64_t		 commit_epoch;	/* S: the store's, for COMMIT */
	int			 ha;		/* T: its policy, from COMMIT */
	struct instance		*tin;		/* T: arrived, held paused */
	struct vm_migration	*held_next;	/* T: vmm_held's list */
	int			 resuming;	/* resume or fence asked (S:
						 * of its copy come back) */
	int			 returning;	/* the store refused: T sends
						 * its paused copy back to S */
	char			*return_why;	/* S: the store's refusal */
	unsigned		 back_checks;	/* S: VMMW_BACK re-waits */
	uint64_t		 ready_at;	/* S: T's READY came (uv_now) */
	struct held_copy	 held;		/* S: its copy, should it come
						 * back: at the start's epoch
						 * and lapses (agent/lease.h) */
	int			 back;		/* S: its copy came back */
	char			*back_why;	/* S: why it was fenced */
};

/* One libvirt call for a migration, on the thread pool. */
enum vmm_workkind {
	VMMW_MEMORY,		/* S: the guest's size, for the deadline */
	VMMW_MIGRATE,
	VMMW_STATS,
	VMMW_POSTCOPY,
	VMMW_ABORT,
	VMMW_CHECK,		/* T: the name is free, the directory exists */
	VMMW_ARRIVE,		/* T: the domain runs here: take it */
	VMMW_SETTLE,		/* T: S is gone: did libvirt finish? */
	VMMW_CLEAN,		/* T: no domain left */
	VMMW_RESUME,		/* T: the store moved it here: run it */
	VMMW_FENCE,		/* T: no grant came: destroy the paused copy */
	VMMW_RETURN,		/* T: migrate the paused copy back to S */
	VMMW_BACK,		/* S: no word from T: did it come back? */
};

struct vmm_work {
	uv_work_t		 w;
	struct longjob		 lj;		/* VMMW_MIGRATE: a thread's */
	int			 stall;		/* a test holds it (fault) */
	enum vmm_workkind	 kind;
	struct vm_migration	*m;
	struct vm_host		*host;
	char			*name;
	struct vm_migrate_args	 args;
	char			*dconnuri;
	char			*uri;
	char			*dir;
	uint32_t		 max_downtime_ms;

	int			 rc;
	char			*cause;
	enum vm_run		 run;
	struct vm_job		 job;
	char			*xml;
	uint64_t		 memory;
};

/* vm-migration.c */
extern const struct mig_driver vmm_driver;
struct vm_migration *vmm_of(struct mig *);
struct agent *vmm_agent(struct mig_engine *);
struct vm_migration *vmm_new(struct mig *);
void	vmm_census(struct mig *self, enum mig_role, unsigned *n,
	    int *named);
void	vmm_arm(struct vm_migration *);
int	vmm_set_phase(struct vm_migration *, enum mig_phase);
const char *vmm_phase_name(const struct vm_migration *);
void	vmm_fail(struct vm_migration *, enum mig_fail, const char *why);
void	vmm_close_listener(struct vm_listener *);
void	vmm_drop_chans(struct vm_migration *);
void	vmm_free(struct vm_migration *);
int	vmm_send_step(struct vm_migration *, Tern__MigrateStep__Step,
	    const char *error, uint64_t downtime_ms, uint64_t bytes);
int	vmm_send_commit(struct vm_migration *, uint64_t epoch, int ha);
void	vmm_timeout(uv_timer_t *);

/* vm-mig-chan.c */
int	vmm_listen(struct vm_migration *, struct vm_listener *,
	    const char *kind, char **cause);
int	vmm_accept_stream(struct mig_engine *, const char *peer,
	    Tern__StreamKind stream_kind, struct stream *, const char *name,
	    char **cause);

/* vm-mig-work.c */
void	vmm_work_queue(struct vm_migration *, enum vmm_workkind);

/* vm-mig-source.c: the table's verdicts for the source */
int	vmm_source_begin(struct mig *, const Tern__MigrateRequest *,
	    int *code, char **cause);
void	vmm_source_rollback(struct vm_migration *, enum mig_fail,
	    const char *why);
void	vmm_source_uncertain(struct vm_migration *, enum mig_fail,
	    const char *why);
void	vmm_source_split(struct vm_migration *, enum mig_fail,
	    const char *why);
void	vmm_note(struct vm_migration *, const char *);
void	vmm_stats(struct vm_migration *, struct vmm_work *);
void	vmm_source_done(struct vm_migration *, int have_numbers);
void	vmm_migrated(struct vm_migration *, struct vmm_work *);
void	vmm_source_step(struct vm_migration *, const Tern__MigrateStep *);
void	vmm_source_offer(struct vm_migration *, struct vmm_work *);

/* vm-mig-target.c: DISCARD for the target */
int	vmm_target_begin(struct mig *, const Tern__MigrateOffer *,
	    char **cause);
void	vmm_target_discard(struct vm_migration *, enum mig_fail,
	    const char *why);
void	vmm_target_checked(struct vm_migration *, struct vmm_work *);
void	vmm_target_arrived(struct vm_migration *, struct vmm_work *);
void	vmm_target_step(struct vm_migration *, const Tern__MigrateStep *);
void	vmm_target_resumed(struct vm_migration *, struct vmm_work *);
void	vmm_target_fenced(struct vm_migration *, struct vmm_work *);
void	vmm_target_granted(struct vm_migration *);
void	vmm_target_returned(struct vm_migration *, struct vmm_work *);
void	vmm_source_back(struct vm_migration *, struct vmm_work *);
void	vmm_source_back_fenced(struct vm_migration *, struct vmm_work *);
void	vmm_source_back_checked(struct vm_migration *, struct vmm_work *);
void	vmm_source_listed(struct vm_migration *, uint64_t epoch);

#endif
