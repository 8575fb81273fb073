/* Rate limits: one token bucket that several senders share, so that
 * together they send at most a given number of bytes per second (ternctl
 * migrate --bandwidth: one per migration, over all its streams).
 *
 * A sender takes what the bucket grants (ratelimit_take).  Granted less
 * than it asked for, it queues a waiter (ratelimit_wait) and stops; the
 * limit's timer calls the waiter back once enough tokens are due.
 * Nothing blocks the loop, nothing polls, and a waiter is called exactly
 * once per ratelimit_wait unless it is cancelled first. */
#ifndef TERN_RATELIMIT_H
#define TERN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The bucket holds a tenth of a second's worth, at least this much. */
#define RATELIMIT_MIN_BURST	(256u << 10)
/* A sender waits for this much (or all it wants, if less) rather than
 * trickle out small frames. */
#define RATELIMIT_QUANTUM	(64u << 10)

/* The arithmetic alone, on a clock the caller passes. */
struct ratelimit_bucket {
	uint64_t	rate;		/* bytes per second; 0: no limit */
	uint64_t	burst;		/* most tokens it holds */
	uint64_t	tokens;
	uint64_t	last_ns;	/* tokens is right as of then */
	uint64_t	rem;		/* a token's part, in bytes * ns/s */
};

/* Start full. */
void		 ratelimit_bucket_init(struct ratelimit_bucket *, uint64_t rate,
		    uint64_t now_ns);
/* Take up to want tokens, as many as there are at now_ns. */
uint64_t	 ratelimit_bucket_take(struct ratelimit_bucket *, uint64_t want,
		    uint64_t now_ns);
/* Nanoseconds from now_ns until want tokens (at most the burst) are
 * there; 0 if they are now. */
uint64_t	 ratelimit_bucket_wait_ns(struct ratelimit_bucket *,
		    uint64_t want, uint64_t now_ns);

struct ratelimit;

/* Lives in the sender (a stream); queued on one limit at a time. */
struct ratelimit_waiter {
	struct ratelimit_waiter	*next;
	int			 queued;
	size_t			 want;
	void			(*cb)(void *);
	void			*arg;
};

/* rate > 0.  The caller holds the first reference. */
struct ratelimit	*ratelimit_new(uv_loop_t *, uint64_t rate);
void			 ratelimit_ref(struct ratelimit *);
/* The last reference gone, it is freed (once its timer closed).  Every
 * waiter must have been cancelled or called by then. */
void			 ratelimit_unref(struct ratelimit *);
uint64_t		 ratelimit_rate(const struct ratelimit *);
/* How many of want bytes may go now (taken from the bucket): 0 until at
 * least RATELIMIT_QUANTUM of them (or want, if less) may. */
size_t			 ratelimit_take(struct ratelimit *, size_t want);
/* Call cb(arg) once want bytes (at most a quantum) are due, from the
 * loop.  Queued already: nothing changes. */
void			 ratelimit_wait(struct ratelimit *,
			    struct ratelimit_waiter *, size_t want,
			    void (*cb)(void *), void *arg);
/* Off the queue, if on it; cb will not be called. */
void			 ratelimit_cancel(struct ratelimit *,
			    struct ratelimit_waiter *);

#endif
