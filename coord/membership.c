/* The coordinator's liveness rules (see membership.h). */
#include "config.h"

#include <stdint.h>

#include "coord/membership.h"
#include "daemon/xmalloc.h"

const char *const host_state_names[] = { "up", "suspect", "failed",
    "fenced" };

int
membership_conf_check(const struct membership_conf *c, char **cause)
{
	if (c->ttl_ms < 500 || c->ttl_ms > 600000) {
		set_cause(cause, "lease_ttl_ms %u: 500 to 600000", c->ttl_ms);
		return -1;
	}
	/* Below a tenth of the TTL, drift and the host's stopping time
	 * are not covered. */
	if (c->margin_ms < c->ttl_ms / 10 || c->margin_ms > 600000) {
		set_cause(cause, "lease_margin_ms %u: at least a tenth of "
		    "lease_ttl_ms (%u), at most 600000", c->margin_ms,
		    c->ttl_ms / 10);
		return -1;
	}
	return 0;
}

void
host_lease_init(struct host_lease *l, uint64_t now)
{
	l->state = HOST_UP;
	l->granted_ms = now;
	l->changed_ms = now;
}

int
host_lease_renew(struct host_lease *l, uint64_t now)
{
	if (l->state == HOST_FAILED || l->state == HOST_FENCED)
		return -1;
	l->granted_ms = now;
	if (l->state != HOST_UP) {
		l->state = HOST_UP;
		l->changed_ms = now;
	}
	return 0;
}

void
host_lease_rejoin(struct host_lease *l, uint64_t now)
{
	l->state = HOST_UP;
	l->granted_ms = now;
	l->changed_ms = now;
}

void
host_lease_fenced(struct host_lease *l, uint64_t now)
{
	if (l->state == HOST_FENCED)
		return;
	l->state = HOST_FENCED;
	l->changed_ms = now;
}

uint64_t
membership_quiet_until(const struct membership_conf *c, uint64_t now)
{
	return now + c->ttl_ms + c->margin_ms;
}

/* The state the clock alone gives, for a lease that is up or suspect. */
static enum host_state
host_lease_due(const struct host_lease *l, const struct membership_conf *c,
    uint64_t quiet_until, uint64_t now)
{
	uint64_t	expires = l->granted_ms + c->ttl_ms;

	if (now < expires)
		return HOST_UP;
	if (now < expires + c->margin_ms || now < quiet_until)
		return HOST_SUSPECT;
	return HOST_FAILED;
}

int
host_lease_check(struct host_lease *l, const struct membership_conf *c,
    uint64_t quiet_until, uint64_t now)
{
	enum host_state	s;

	if (l->state == HOST_FAILED || l->state == HOST_FENCED)
		return 0;	/* only a rejoin ends these */
	s = host_lease_due(l, c, quiet_until, now);
	if (s == l->state)
		return 0;
	l->state = s;
	l->changed_ms = now;
	return 1;
}

uint64_t
host_lease_next(const struct host_lease *l, const struct membership_conf *c,
    uint64_t quiet_until, uint64_t now)
{
	uint64_t	expires = l->granted_ms + c->ttl_ms, at;

	if (l->state == HOST_FAILED || l->state == HOST_FENCED)
		return UINT64_MAX;
	if (now < expires)
		at = expires;
	else {
		at = expires + c->margin_ms;
		if (at < quiet_until)
			at = quiet_until;
	}
	return at > now ? at - now : 0;
}
