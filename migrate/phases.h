/* The phases of one migration, on either end and for either kind of
 * instance, their order, and the one table that says what a failure
 * means in each: the place where "never lost, never twice" is decided.
 *
 * The commit point splits every migration in two.  Before it the source
 * owns the instance: any failure rolls back to it (the source resumes
 * its copy; the target discards what arrived).  From it on the target
 * owns the instance: the target keeps it whatever happens, and the
 * source never runs its copy again.  A source that cannot tell whether
 * the commit reached the target keeps its verified checkpoint and says
 * so (it never guesses).  Post-copy after the switch splits the memory
 * between the hosts: a broken page channel then stops both copies.
 *
 *   source:  OFFERED -> [PREPARING] -> [FREEZING] -> TRANSFER
 *            -> RESTORING -> [RECORDING] -> COMMITTING -> COMMITTED
 *            [-> PAGING] -> DONE
 *   target:  OFFERED -> READY -> RESTORING -> HELD -> COMMITTED
 *            [-> PAGING] -> DONE
 *   either:  before COMMITTING/COMMITTED -> ROLLING_BACK -> FAILED
 *
 * RECORDING: a protected instance's commit point is the coordinator's
 * store transaction (owner source at epoch E -> target at E + 1).  While
 * it is asked, nothing may decide alone: every failure awaits its answer
 * (or, if the answer is lost, what the store says when asked); a refusal
 * rolls back, a recorded move commits.
 *
 * Containers use every phase; a VM's source goes OFFERED -> TRANSFER
 * (libvirt's pre-copy) -> COMMITTED (libvirt finished) -> DONE, or
 * after QEMU's post-copy switch TRANSFER -> PAGING -> DONE; its target
 * OFFERED -> READY -> COMMITTED -> DONE.  A protected VM's source goes
 * TRANSFER (libvirt leaves the target's copy paused) -> RECORDING ->
 * COMMITTED, or on a refusal -> ROLLING_BACK while the target (READY ->
 * ROLLING_BACK) migrates the paused copy back. */
#ifndef TERN_MIGRATE_PHASES_H
#define TERN_MIGRATE_PHASES_H

enum mig_role {
	MIG_ROLE_SOURCE,
	MIG_ROLE_TARGET,
};

enum mig_phase {
	MIG_PH_OFFERED,		/* S: waiting for READY; T: checking it */
	MIG_PH_READY,		/* T: taking what arrives */
	MIG_PH_PREPARING,	/* S: work while it still runs (rootfs) */
	MIG_PH_FREEZING,	/* S: CRIU dumping: frozen by its end */
	MIG_PH_TRANSFER,	/* S: the state crosses */
	MIG_PH_RESTORING,	/* S: waiting for RESTORED; T: restoring */
	MIG_PH_HELD,		/* T: restored, held: the commit comes next */
	MIG_PH_RECORDING,	/* S: the coordinator's store is asked to
				 * make the target the owner */
	MIG_PH_COMMITTING,	/* S: passing the commit point */
	MIG_PH_COMMITTED,	/* past it: the target owns the instance */
	MIG_PH_PAGING,		/* post-copy: it runs there, memory follows */
	MIG_PH_DONE,
	MIG_PH_ROLLING_BACK,	/* before the commit: undoing */
	MIG_PH_FAILED,
	MIG_PH_COUNT,
};

/* What ends or endangers a migration. */
enum mig_fail {
	MIG_FAIL_LINK,		/* the peer's link dropped or was replaced */
	MIG_FAIL_TIMEOUT,	/* no progress for migration_timeout_ms */
	MIG_FAIL_SHUTDOWN,	/* this ternd stops */
	MIG_FAIL_CANCEL,	/* the operator asked (source only) */
	MIG_FAIL_PEER_ABORT,	/* the peer said ABORT */
	MIG_FAIL_CHANNEL,	/* a state channel (pages, relay) broke */
	MIG_FAIL_LOCAL,		/* our own step failed (CRIU, libvirt, disk) */
	MIG_FAIL_COUNT,
};

/* What to do about it. */
enum mig_verdict {
	MIG_V_IGNORE,		/* over already, or not this phase's concern */
	MIG_V_ROLLBACK,		/* S: resume ours, tell T to discard */
	MIG_V_DISCARD,		/* T: drop the incoming copy, tell S */
	MIG_V_KEEP,		/* T: ours now, whatever S does */
	MIG_V_AWAIT,		/* S: the commit is being made: decide once
				 * the driver says whether ours stopped */
	MIG_V_UNCERTAIN,	/* S: committed, unconfirmed: keep our
				 * verified checkpoint, run nothing, say so */
	MIG_V_SPLIT,		/* post-copy broke: stop both copies */
};

extern const char *const mig_phase_names[];
extern const char *const mig_fail_names[];
extern const char *const mig_verdict_names[];

/* 1 if a migration in role may go from one phase to the other: forward
 * along its role's order, or to ROLLING_BACK/FAILED before the commit. */
int		 mig_phase_next_ok(enum mig_role, enum mig_phase from,
		    enum mig_phase to);
/* 1 once the target owns the instance. */
int		 mig_phase_committed(enum mig_phase);
/* The one table: what failure f means to role in phase ph. */
enum mig_verdict mig_phase_verdict(enum mig_role, enum mig_phase ph,
		    enum mig_fail f);

#endif
