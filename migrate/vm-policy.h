/* When a live VM migration is not converging, and what to do about it.
 *
 * QEMU tracks the dirty pages and copies; this policy only reads its job
 * numbers every round (remaining bytes, iteration, auto-converge's
 * throttle) and decides:
 *   - progress: the remaining bytes beat their best by POLICY_PROGRESS
 *     (10%); the best is a minimum over the whole migration, so the
 *     oscillation of remaining bytes between QEMU's passes is not taken
 *     for progress;
 *   - no progress for stall_ms: while auto-converge is on and still
 *     raising its throttle, QEMU is acting, wait; otherwise switch to
 *     post-copy if allowed, else abort.  QEMU raises it at most every
 *     second pass (a pass over a slow link can take longer than
 *     stall_ms): it is stuck only when at its limit or not raised for
 *     VM_POLICY_AC_PASSES passes;
 *   - past deadline_ms in all: post-copy if allowed, else abort;
 *   - forced post-copy: switch once the first full pass is done (the
 *     pages the guest keeps touching then come on demand).
 * Nothing is decided once post-copy runs: it cannot be rolled back.
 * Pure (no I/O, time passed in): tests/unit/migrate/test-vm-policy.c. */
#ifndef TERN_MIGRATE_VM_POLICY_H
#define TERN_MIGRATE_VM_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define VM_POLICY_PROGRESS_PCT	10
#define VM_POLICY_THROTTLE_MAX	99	/* QEMU's cpu-throttle-max */
#define VM_POLICY_AC_PASSES	3	/* QEMU raises every 2nd pass at most */

struct vm_policy_conf {
	int		 allow_postcopy;
	int		 force_postcopy;
	int		 auto_converge;
	uint64_t	 stall_ms;	/* no progress this long: act */
	uint64_t	 deadline_ms;	/* whole migration */
};

/* One reading of the job. */
struct vm_policy_sample {
	uint64_t	 now_ms;	/* since the migration started */
	uint64_t	 remaining;	/* bytes */
	uint64_t	 iteration;	/* QEMU's memory passes */
	int		 throttle;	/* auto-converge, % */
};

enum vm_policy_action {
	VM_POLICY_WAIT,
	VM_POLICY_POSTCOPY,
	VM_POLICY_ABORT,
};

struct vm_policy {
	struct vm_policy_conf	 conf;
	uint64_t		 best;		/* fewest remaining bytes seen */
	uint64_t		 best_ms;	/* when */
	int			 throttle;	/* highest throttle seen */
	uint64_t		 throttle_iteration; /* the pass it came */
	int			 postcopy;	/* switched: hands off */
	int			 started;
};

void	vm_policy_init(struct vm_policy *, const struct vm_policy_conf *);
/* What to do after this sample; why (if not NULL) says it in words,
 * with this sample's figures (QEMU's current ones). */
enum vm_policy_action vm_policy_step(struct vm_policy *,
	    const struct vm_policy_sample *, char *why, size_t len);
/* The switch was made (or asked for): nothing more to decide. */
void	vm_policy_postcopy(struct vm_policy *);
/* The deadline for a guest of memory bytes when the operator gave none:
 * a floor plus the time to copy its memory a few times at a slow rate. */
uint64_t vm_policy_deadline(uint64_t memory);

#endif
