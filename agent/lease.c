/* The agent's lease clock (see lease.h). */
#include "config.h"

#include "agent/lease.h"

void
lease_init(struct lease *l, uint32_t margin_ms)
{
	l->margin_ms = margin_ms;
	l->deadline_ms = 0;
	l->granted_sent_ms = 0;
}

void
lease_granted(struct lease *l, uint64_t sent_ms, uint32_t ttl_ms)
{
	if (l->deadline_ms != 0 && sent_ms <= l->granted_sent_ms)
		return;
	l->granted_sent_ms = sent_ms;
	l->deadline_ms = sent_ms + ttl_ms;
}

void
lease_revoke(struct lease *l)
{
	l->deadline_ms = 0;
	l->granted_sent_ms = 0;
}

uint64_t
lease_stop_at(const struct lease *l)
{
	if (l->deadline_ms <= l->margin_ms)
		return 0;
	return l->deadline_ms - l->margin_ms;
}

int
lease_valid(const struct lease *l, uint64_t now)
{
	return l->deadline_ms != 0 && now < lease_stop_at(l);
}

enum held_verdict
held_copy_verdict(const struct held_copy *h, uint64_t listed_epoch,
    int valid, uint64_t lapses, uint64_t now)
{
	if (listed_epoch != h->epoch)
		return HELD_FENCE_EPOCH;
	if (valid && h->epoch != 0 &&
	    (lapses == h->lapses0 || lapses == h->listed_lapses))
		return HELD_RESUME;
	if (now < h->until)
		return HELD_WAIT;
	return valid ? HELD_FENCE_NO_GRANT : HELD_FENCE_NO_LEASE;
}
