/* What the coordinator concludes about each host's liveness, from the
 * lease renewals it granted: the rules of invariant 1 on the coordinator's
 * side, as pure functions of CLOCK_MONOTONIC milliseconds (tested with a
 * fake clock; the caller owns the timers and the store).
 *
 *   up       the host's lease runs: granted less than ttl ago
 *   suspect  its lease may have run out, but the host may still be
 *            finishing its own self-fence: nothing is decided yet
 *   failed   ttl + margin passed since the last grant (and the quiet
 *            period is over): the host has stopped its instances by its
 *            own rule, so they may run elsewhere
 *   fenced   fence_command said the host is off: the same, at once
 *
 * The margin covers the two clocks' drift over one ttl and the host's
 * own stopping time.  A coordinator that starts (restarted, or newly
 * elected) does not know when the last grants went out: it counts every
 * known host as granted at its start, and decides nothing before a full
 * ttl + margin (the quiet period). */
#ifndef TERN_COORD_MEMBERSHIP_H
#define TERN_COORD_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

enum host_state {
	HOST_UP,
	HOST_SUSPECT,
	HOST_FAILED,
	HOST_FENCED,
};

extern const char *const host_state_names[];

struct membership_conf {
	uint32_t	ttl_ms;		/* a lease's life */
	uint32_t	margin_ms;	/* more, before a silent host fails */
};

/* Bounds for the configuration: 0, or -1 and *cause if conf breaks them. */
int	membership_conf_check(const struct membership_conf *, char **cause);

struct host_lease {
	enum host_state	 state;
	uint64_t	 granted_ms;	/* the last renewal we granted */
	uint64_t	 changed_ms;	/* state since */
};

/* A host known at start (from the store): granted "now", as far as we
 * can tell. */
void	host_lease_init(struct host_lease *, uint64_t now);

/* A renewal arrived at now.  Granted (0) unless the host failed or was
 * fenced: its instances may run elsewhere already, so it must register
 * again and learn their new epochs first (-1). */
int	host_lease_renew(struct host_lease *, uint64_t now);
/* A host that registers again after it failed: up, granted now. */
void	host_lease_rejoin(struct host_lease *, uint64_t now);
/* fence_command reported the host powered off. */
void	host_lease_fenced(struct host_lease *, uint64_t now);

/* The state at now, given the coordinator's quiet period (it decides no
 * failure before quiet_until); moves the lease there.  Returns 1 when the
 * state changed. */
int	host_lease_check(struct host_lease *, const struct membership_conf *,
	    uint64_t quiet_until, uint64_t now);
/* Milliseconds from now until host_lease_check may change the state
 * without a renewal; UINT64_MAX when only an event can. */
uint64_t host_lease_next(const struct host_lease *,
	    const struct membership_conf *, uint64_t quiet_until, uint64_t now);

/* The end of the quiet period of a coordinator that starts at now. */
uint64_t membership_quiet_until(const struct membership_conf *, uint64_t now);

#endif
