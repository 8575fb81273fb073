#include "config.h"

#include <stdlib.h>

#define LOG_MODULE "net.ratelimit"
#include "daemon/log.h"
#include "daemon/ratelimit.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define NS	1000000000u

struct ratelimit {
	uv_timer_t		 timer;		/* the head waiter's tokens due */
	struct ratelimit_bucket	 b;
	struct ratelimit_waiter	*head, *tail;
	int			 refs;
};

void
ratelimit_bucket_init(struct ratelimit_bucket *b, uint64_t rate,
    uint64_t now_ns)
{
	b->rate = rate;
	b->burst = rate / 10 > RATELIMIT_MIN_BURST ? rate / 10 :
	    RATELIMIT_MIN_BURST;
	b->tokens = b->burst;
	b->last_ns = now_ns;
	b->rem = 0;
}

/* Add what accrued since last_ns.  What is short of a whole token is
 * kept (rem), so many small steps add up to exactly rate * time. */
static void
ratelimit_bucket_fill(struct ratelimit_bucket *b, uint64_t now_ns)
{
	unsigned __int128	p;

	if (now_ns <= b->last_ns)
		return;
	p = (unsigned __int128)(now_ns - b->last_ns) * b->rate + b->rem;
	b->last_ns = now_ns;
	b->rem = (uint64_t)(p % NS);
	if (p / NS >= b->burst - b->tokens) {
		b->tokens = b->burst;
		b->rem = 0;
	} else
		b->tokens += (uint64_t)(p / NS);
}

uint64_t
ratelimit_bucket_take(struct ratelimit_bucket *b, uint64_t want,
    uint64_t now_ns)
{
	if (b->rate == 0)
		return want;
	ratelimit_bucket_fill(b, now_ns);
	if (want > b->tokens)
		want = b->tokens;
	b->tokens -= want;
	return want;
}

uint64_t
ratelimit_bucket_wait_ns(struct ratelimit_bucket *b, uint64_t want,
    uint64_t now_ns)
{
	unsigned __int128	ns;

	if (b->rate == 0)
		return 0;
	ratelimit_bucket_fill(b, now_ns);
	if (want > b->burst)
		want = b->burst;	/* more never fits */
	if (b->tokens >= want)
		return 0;
	/* At least 1: a whole token is missing and rem < NS. */
	ns = ((unsigned __int128)(want - b->tokens) * NS - b->rem +
	    b->rate - 1) / b->rate;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/* --- on the loop ------------------------------------------------------------ */

static void	ratelimit_fire(uv_timer_t *);

struct ratelimit *
ratelimit_new(uv_loop_t *loop, uint64_t rate)
{
	struct ratelimit	*rl;

	rl = xcalloc(1, sizeof *rl);
	ratelimit_bucket_init(&rl->b, rate, now_ns());
	if (uv_timer_init(loop, &rl->timer) != 0)
		fatalx("cannot create a timer");
	rl->timer.data = rl;
	rl->refs = 1;
	return rl;
}

void
ratelimit_ref(struct ratelimit *rl)
{
	rl->refs++;
}

static void
ratelimit_closed(uv_handle_t *h)
{
	free(h->data);
}

void
ratelimit_unref(struct ratelimit *rl)
{
	if (rl == NULL || --rl->refs > 0)
		return;
	uv_timer_stop(&rl->timer);
	uv_close((uv_handle_t *)&rl->timer, ratelimit_closed);
}

uint64_t
ratelimit_rate(const struct ratelimit *rl)
{
	return rl->b.rate;
}

static size_t
ratelimit_quantum(size_t want)
{
	return want < RATELIMIT_QUANTUM ? want : RATELIMIT_QUANTUM;
}

size_t
ratelimit_take(struct ratelimit *rl, size_t want)
{
	uint64_t	now = now_ns();

	if (want == 0 ||
	    ratelimit_bucket_wait_ns(&rl->b, ratelimit_quantum(want), now) != 0)
		return 0;
	return (size_t)ratelimit_bucket_take(&rl->b, want, now);
}

/* The timer runs while anyone waits, set for the head of the queue. */
static void
ratelimit_arm(struct ratelimit *rl)
{
	uv_loop_t	*loop = rl->timer.loop;
	uint64_t	 now, due_ms, base_ms;

	if (rl->head == NULL || uv_is_active((uv_handle_t *)&rl->timer))
		return;
	/* The loop's time is whole milliseconds, truncated (libuv reads
	 * the same monotonic clock): count the delay from it, up to the
	 * millisecond the tokens are there in, or the timer fires up to a
	 * millisecond early and wakes everyone to find too little. */
	uv_update_time(loop);
	base_ms = uv_now(loop);
	now = now_ns();
	due_ms = (now + ratelimit_bucket_wait_ns(&rl->b,
	    ratelimit_quantum(rl->head->want), now) + 999999) / 1000000;
	uv_timer_start(&rl->timer, ratelimit_fire,
	    due_ms > base_ms ? due_ms - base_ms : 0, 0);
}

/* Wake everyone who waited when it fired, in turn: the first takes what
 * is due, the others find too little and queue again, behind it.  So the
 * senders take turns. */
static void
ratelimit_fire(uv_timer_t *t)
{
	struct ratelimit	*rl = t->data;
	struct ratelimit_waiter	*w;
	size_t			 n = 0;

	for (w = rl->head; w != NULL; w = w->next)
		n++;
	rl->refs++;	/* a callback may drop every other reference */
	while (n-- > 0 && (w = rl->head) != NULL) {
		if ((rl->head = w->next) == NULL)
			rl->tail = NULL;
		w->next = NULL;
		w->queued = 0;
		w->cb(w->arg);
	}
	ratelimit_arm(rl);
	ratelimit_unref(rl);
}

void
ratelimit_wait(struct ratelimit *rl, struct ratelimit_waiter *w, size_t want,
    void (*cb)(void *), void *arg)
{
	if (w->queued)
		return;
	w->queued = 1;
	w->want = want;
	w->cb = cb;
	w->arg = arg;
	w->next = NULL;
	if (rl->tail != NULL)
		rl->tail->next = w;
	else
		rl->head = w;
	rl->tail = w;
	ratelimit_arm(rl);
}

void
ratelimit_cancel(struct ratelimit *rl, struct ratelimit_waiter *w)
{
	struct ratelimit_waiter	**pp, *prev = NULL;

	if (!w->queued)
		return;
	for (pp = &rl->head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			if (rl->tail == w)
				rl->tail = prev;
			break;
		}
	}
	w->next = NULL;
	w->queued = 0;
	if (rl->head == NULL)
		uv_timer_stop(&rl->timer);
}
