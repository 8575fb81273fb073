/* Migration phases, their order, and the failure table (see phases.h). */
#include "config.h"

#include "migrate/phases.h"

const char *const mig_phase_names[] = {
	"offered", "ready", "preparing", "freezing", "transfer", "restoring",
	"held", "recording", "committing", "committed", "paging", "done", "rolling-back",
	"failed",
};

const char *const mig_fail_names[] = {
	"link lost", "timeout", "shutdown", "cancel", "peer abort",
	"channel broke", "local failure",
};

const char *const mig_verdict_names[] = {
	"ignore", "roll back", "discard", "keep", "await", "uncertain",
	"split",
};

/* Each role's order; -1: not a phase of that role. */
static const int	source_rank[MIG_PH_COUNT] = {
	[MIG_PH_OFFERED] = 0,
	[MIG_PH_READY] = -1,
	[MIG_PH_PREPARING] = 1,
	[MIG_PH_FREEZING] = 2,
	[MIG_PH_TRANSFER] = 3,
	[MIG_PH_RESTORING] = 4,
	[MIG_PH_HELD] = -1,
	[MIG_PH_RECORDING] = 5,
	[MIG_PH_COMMITTING] = 6,
	[MIG_PH_COMMITTED] = 7,
	[MIG_PH_PAGING] = 8,
	[MIG_PH_DONE] = 9,
	[MIG_PH_ROLLING_BACK] = -1,
	[MIG_PH_FAILED] = -1,
};

static const int	target_rank[MIG_PH_COUNT] = {
	[MIG_PH_OFFERED] = 0,
	[MIG_PH_READY] = 1,
	[MIG_PH_PREPARING] = -1,
	[MIG_PH_FREEZING] = -1,
	[MIG_PH_TRANSFER] = -1,
	[MIG_PH_RESTORING] = 2,
	[MIG_PH_HELD] = 3,
	[MIG_PH_RECORDING] = -1,
	[MIG_PH_COMMITTING] = -1,
	[MIG_PH_COMMITTED] = 4,
	[MIG_PH_PAGING] = 5,
	[MIG_PH_DONE] = 6,
	[MIG_PH_ROLLING_BACK] = -1,
	[MIG_PH_FAILED] = -1,
};

static int
phase_valid(enum mig_phase ph)
{
	return (unsigned)ph < MIG_PH_COUNT;
}

int
mig_phase_committed(enum mig_phase ph)
{
	return ph == MIG_PH_COMMITTED || ph == MIG_PH_PAGING ||
	    ph == MIG_PH_DONE;
}

/* Before the commit point and still going. */
static int
phase_open(enum mig_phase ph)
{
	return !mig_phase_committed(ph) && ph != MIG_PH_COMMITTING &&
	    ph != MIG_PH_ROLLING_BACK && ph != MIG_PH_FAILED;
}

int
mig_phase_next_ok(enum mig_role role, enum mig_phase from, enum mig_phase to)
{
	const int	*rank = role == MIG_ROLE_SOURCE ? source_rank :
	    target_rank;

	if (!phase_valid(from) || !phase_valid(to) || from == to ||
	    from == MIG_PH_DONE || from == MIG_PH_FAILED)
		return 0;
	if (to == MIG_PH_ROLLING_BACK)
		return phase_open(from);
	if (to == MIG_PH_FAILED)
		/* Rolled back, or ended badly past the commit (unconfirmed,
		 * split); never straight from a phase that must await. */
		return from != MIG_PH_COMMITTING;
	if (from == MIG_PH_ROLLING_BACK || rank[from] < 0 || rank[to] < 0)
		return 0;
	return rank[to] > rank[from];
}

enum mig_verdict
mig_phase_verdict(enum mig_role role, enum mig_phase ph, enum mig_fail f)
{
	if (!phase_valid(ph) || (unsigned)f >= MIG_FAIL_COUNT ||
	    ph == MIG_PH_DONE || ph == MIG_PH_ROLLING_BACK ||
	    ph == MIG_PH_FAILED)
		return MIG_V_IGNORE;
	if (role == MIG_ROLE_SOURCE) {
		if (ph == MIG_PH_RECORDING)
			/* The store decides: a move it recorded must not be
			 * undone here, one it refused rolls back. */
			return f == MIG_FAIL_CANCEL ? MIG_V_IGNORE :
			    MIG_V_AWAIT;
		if (f == MIG_FAIL_CANCEL)
			/* The operator may stop it only while it can roll
			 * back; past that it is the target's. */
			return phase_open(ph) ? MIG_V_ROLLBACK : MIG_V_IGNORE;
		if (phase_open(ph))
			return MIG_V_ROLLBACK;
		if (ph == MIG_PH_COMMITTING)
			return MIG_V_AWAIT;
		if (ph == MIG_PH_PAGING)
			return MIG_V_SPLIT;
		/* COMMITTED: ours stopped, the target's unconfirmed. */
		return f == MIG_FAIL_CHANNEL || f == MIG_FAIL_LOCAL ?
		    MIG_V_IGNORE : MIG_V_UNCERTAIN;
	}
	if (f == MIG_FAIL_CANCEL)
		return MIG_V_IGNORE;	/* the source's to ask */
	if (ph == MIG_PH_PAGING)
		return MIG_V_SPLIT;
	if (mig_phase_committed(ph))
		return MIG_V_KEEP;
	return MIG_V_DISCARD;
}
