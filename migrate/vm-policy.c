#include "config.h"

#include <stdio.h>
#include <string.h>

#include "migrate/vm-policy.h"

#define VM_POLICY_DEADLINE_FLOOR_MS	60000
/* Copy rate assumed for the default deadline: slow on purpose (TCG
 * guests, busy links), four passes over the memory. */
#define VM_POLICY_SLOW_BPS		(16ULL << 20)
#define VM_POLICY_PASSES		4

void
vm_policy_init(struct vm_policy *p, const struct vm_policy_conf *conf)
{
	memset(p, 0, sizeof *p);
	p->conf = *conf;
}

void
vm_policy_postcopy(struct vm_policy *p)
{
	p->postcopy = 1;
}

uint64_t
vm_policy_deadline(uint64_t memory)
{
	return VM_POLICY_DEADLINE_FLOOR_MS +
	    memory * VM_POLICY_PASSES / (VM_POLICY_SLOW_BPS / 1000);
}

static enum vm_policy_action
vm_policy_give_up(struct vm_policy *p, const char *reason, char *why,
    size_t len)
{
	if (p->conf.allow_postcopy) {
		snprintf(why, len, "%s: switching to post-copy", reason);
		return VM_POLICY_POSTCOPY;
	}
	snprintf(why, len, "%s: aborting (post-copy not allowed)", reason);
	return VM_POLICY_ABORT;
}

enum vm_policy_action
vm_policy_step(struct vm_policy *p, const struct vm_policy_sample *s,
    char *why, size_t len)
{
	char	 dummy[1], reason[256], throttle[96] = "";

	if (why == NULL) {
		why = dummy;
		len = sizeof dummy;
	}
	why[0] = '\0';
	if (p->postcopy)
		return VM_POLICY_WAIT;
	/* QEMU reports nothing useful before its first pass starts. */
	if (s->iteration == 0 && s->remaining == 0)
		return VM_POLICY_WAIT;
	if (p->conf.force_postcopy && s->iteration >= 2) {
		snprintf(why, len, "first pass done: switching to post-copy "
		    "as asked");
		return VM_POLICY_POSTCOPY;
	}
	if (p->conf.deadline_ms > 0 && s->now_ms >= p->conf.deadline_ms) {
		snprintf(reason, sizeof reason, "deadline of %llu s reached "
		    "in pass %llu with %llu KiB left",
		    (unsigned long long)(p->conf.deadline_ms / 1000),
		    (unsigned long long)s->iteration,
		    (unsigned long long)(s->remaining >> 10));
		return vm_policy_give_up(p, reason, why, len);
	}
	if (!p->started || s->remaining * 100 <
	    p->best * (100 - VM_POLICY_PROGRESS_PCT)) {
		p->started = 1;
		p->best = s->remaining;
		p->best_ms = s->now_ms;
	} else if (s->remaining < p->best)
		p->best = s->remaining;	/* better, not by enough to count */
	if (!p->throttle_iteration)
		p->throttle_iteration = s->iteration;
	if (p->conf.auto_converge && s->throttle > p->throttle &&
	    p->throttle < VM_POLICY_THROTTLE_MAX) {
		/* QEMU is slowing the guest down: give that a chance. */
		p->throttle = s->throttle;
		p->throttle_iteration = s->iteration;
		p->best_ms = s->now_ms;
		return VM_POLICY_WAIT;
	}
	if (p->conf.stall_ms == 0 || s->now_ms - p->best_ms < p->conf.stall_ms)
		return VM_POLICY_WAIT;
	if (p->conf.auto_converge) {
		/* Still raising, as far as QEMU's passes tell: wait. */
		if (s->throttle < VM_POLICY_THROTTLE_MAX && s->iteration <
		    p->throttle_iteration + VM_POLICY_AC_PASSES)
			return VM_POLICY_WAIT;
		if (s->throttle >= VM_POLICY_THROTTLE_MAX)
			snprintf(throttle, sizeof throttle, ", auto-converge's "
			    "throttle at its limit, %d%%", s->throttle);
		else
			snprintf(throttle, sizeof throttle, ", auto-converge's "
			    "throttle at %d%%, not raised in %llu passes",
			    s->throttle, (unsigned long long)(s->iteration -
			    p->throttle_iteration));
	}
	snprintf(reason, sizeof reason, "not converging: no progress for %llu "
	    "s in pass %llu (best %llu KiB left, now %llu KiB%s)",
	    (unsigned long long)((s->now_ms - p->best_ms) / 1000),
	    (unsigned long long)s->iteration,
	    (unsigned long long)(p->best >> 10),
	    (unsigned long long)(s->remaining >> 10), throttle);
	return vm_policy_give_up(p, reason, why, len);
}
