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
	char	 dummy[1], reason[200], throttle[64] = "";

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
		    "with %llu KiB left",
		    (unsigned long long)(p->conf.deadline_ms / 1000),
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
	if (p->conf.auto_converge && s->throttle > p->throttle &&
	    p->throttle < VM_POLICY_THROTTLE_MAX) {
		/* QEMU is slowing the guest down: give that a chance. */
		p->throttle = s->throttle;
		p->best_ms = s->now_ms;
		return VM_POLICY_WAIT;
	}
	if (p->conf.stall_ms == 0 || s->now_ms - p->best_ms < p->conf.stall_ms)
		return VM_POLICY_WAIT;
	if (p->conf.auto_converge)
		snprintf(throttle, sizeof throttle, ", auto-converge's throttle "
		    "%s at %d%%", p->throttle >= VM_POLICY_THROTTLE_MAX ?
		    "at its limit" : "stuck", p->throttle);
	snprintf(reason, sizeof reason, "not converging: no progress for %llu "
	    "s (best %llu KiB left, now %llu KiB%s)",
	    (unsigned long long)((s->now_ms - p->best_ms) / 1000),
	    (unsigned long long)(p->best >> 10),
	    (unsigned long long)(s->remaining >> 10), throttle);
	return vm_policy_give_up(p, reason, why, len);
}
