#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MODULE "loop"
#include "daemon/log.h"
#include "daemon/loop-probe.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

static const unsigned	loop_probe_bounds[LOOP_PROBE_NBUCKETS - 1] = {
	1, 2, 5, 10, 20, 50, 100, 500, 1000
};

/* A tick this late (the benches' goal) is worth a line in the log:
 * something blocked. */
#define LOOP_PROBE_WARN_MS	20

static void	loop_probe_tick(uv_timer_t *);

/* A window of the loop's work this long is worth a line too. */
#define LOOP_PROBE_WARN_CB_MS	10

static uint64_t
loop_probe_cpu_ns(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Due LOOP_PROBE_MS from now, by the loop's clock and by ours alike.
 * Re-armed from each tick: one long block counts once, not as many
 * missed ticks. */
static void
loop_probe_arm(struct loop_probe *p)
{
	uv_update_time(p->timer.loop);
	p->due_ns = now_ns() + (uint64_t)LOOP_PROBE_MS * 1000000;
	uv_timer_start(&p->timer, loop_probe_tick, LOOP_PROBE_MS, 0);
}

static void
loop_probe_tick(uv_timer_t *t)
{
	struct loop_probe	*p = t->data;
	uint64_t		 now = now_ns(), late, cpu, busy;
	size_t			 i;

	cpu = loop_probe_cpu_ns();
	busy = cpu - p->cpu_ns;
	p->cpu_ns = cpu;
	if (busy > p->worst_cpu_ns)
		p->worst_cpu_ns = busy;

	late = now > p->due_ns ? now - p->due_ns : 0;
	for (i = 0; i < LOOP_PROBE_NBUCKETS - 1; i++)
		if (late < (uint64_t)loop_probe_bounds[i] * 1000000)
			break;
	p->hist[i]++;
	p->ticks++;
	if (late > p->worst_ns) {
		p->worst_ns = late;
		p->worst_at_ms = now / 1000000;
	}
	if (late >= (uint64_t)LOOP_PROBE_WARN_MS * 1000000)
		log_info("the event loop ran %llu ms late (busy %llu ms since "
		    "the last tick)", (unsigned long long)(late / 1000000),
		    (unsigned long long)(busy / 1000000));
	loop_probe_arm(p);
}

static void
loop_probe_mark(struct loop_probe *p)
{
	p->mark_cpu_ns = loop_probe_cpu_ns();
	p->mark_ns = now_ns();
	p->mark_idle_ns = uv_metrics_idle_time(p->timer.loop);
}

/* One window of the turn ended: what ran in it, by CPU and by the wall
 * clock (less the poll's wait). */
static void
loop_probe_edge(struct loop_probe *p, const char *what)
{
	uint64_t	cpu0 = p->mark_cpu_ns, t0 = p->mark_ns;
	uint64_t	idle0 = p->mark_idle_ns, cpu, wall;

	loop_probe_mark(p);
	cpu = p->mark_cpu_ns > cpu0 ? p->mark_cpu_ns - cpu0 : 0;
	wall = p->mark_ns - t0;
	wall = wall > p->mark_idle_ns - idle0 ? wall - (p->mark_idle_ns - idle0) :
	    0;
	if (cpu > p->longest_cpu_ns)
		p->longest_cpu_ns = cpu;
	if (wall > p->longest_wall_ns)
		p->longest_wall_ns = wall;
	if (cpu >= (uint64_t)LOOP_PROBE_WARN_CB_MS * 1000000)
		log_info("the event loop ran %s for %llu ms of CPU (%llu ms "
		    "by the clock)", what, (unsigned long long)(cpu / 1000000),
		    (unsigned long long)(wall / 1000000));
}

static void
loop_probe_prepare(uv_prepare_t *h)
{
	loop_probe_edge(h->data, "timer, idle and close callbacks");
}

static void
loop_probe_check(uv_check_t *h)
{
	loop_probe_edge(h->data, "I/O callbacks");
}

void
loop_probe_start(struct loop_probe *p, uv_loop_t *loop)
{
	memset(p, 0, sizeof *p);
	/* Only sets a flag: the poll's wait is counted from now on. */
	uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_unref((uv_handle_t *)&p->timer);
	uv_prepare_init(loop, &p->prepare);
	p->prepare.data = p;
	uv_prepare_start(&p->prepare, loop_probe_prepare);
	uv_unref((uv_handle_t *)&p->prepare);
	uv_check_init(loop, &p->check);
	p->check.data = p;
	uv_check_start(&p->check, loop_probe_check);
	uv_unref((uv_handle_t *)&p->check);
	loop_probe_reset(p);
}

void
loop_probe_reset(struct loop_probe *p)
{
	p->since_ms = now_ms();
	p->worst_ns = 0;
	p->worst_at_ms = 0;
	p->worst_cpu_ns = 0;
	p->cpu_ns = loop_probe_cpu_ns();
	p->ticks = 0;
	memset(p->hist, 0, sizeof p->hist);
	p->longest_cpu_ns = p->longest_wall_ns = 0;
	loop_probe_mark(p);
	loop_probe_arm(p);
}

uint64_t
loop_probe_worst_ms(const struct loop_probe *p)
{
	return (p->worst_ns + 999999) / 1000000;
}

uint64_t
loop_probe_worst_cpu_ms(const struct loop_probe *p)
{
	return (p->worst_cpu_ns + 999999) / 1000000;
}

uint64_t
loop_probe_longest_callback_ms(const struct loop_probe *p)
{
	return (p->longest_cpu_ns + 999999) / 1000000;
}

uint64_t
loop_probe_longest_wall_ms(const struct loop_probe *p)
{
	return (p->longest_wall_ns + 999999) / 1000000;
}

char *
loop_probe_describe(const struct loop_probe *p)
{
	char	*s, *t;
	size_t	 i;

	xasprintf(&s, "worst %llu ms late, busy at most %llu ms between "
	    "ticks, longest callback %llu ms (CPU), %llu ms (wall), over "
	    "%.1f s (%llu ticks;",
	    (unsigned long long)loop_probe_worst_ms(p),
	    (unsigned long long)loop_probe_worst_cpu_ms(p),
	    (unsigned long long)loop_probe_longest_callback_ms(p),
	    (unsigned long long)loop_probe_longest_wall_ms(p),
	    (double)(now_ms() - p->since_ms) / 1000.0,
	    (unsigned long long)p->ticks);
	for (i = 0; i < LOOP_PROBE_NBUCKETS; i++) {
		if (p->hist[i] == 0)
			continue;
		if (i < LOOP_PROBE_NBUCKETS - 1)
			xasprintf(&t, "%s <%ums %llu", s, loop_probe_bounds[i],
			    (unsigned long long)p->hist[i]);
		else
			xasprintf(&t, "%s >=%ums %llu", s,
			    loop_probe_bounds[i - 1],
			    (unsigned long long)p->hist[i]);
		free(s);
		s = t;
	}
	xasprintf(&t, "%s)", s);
	free(s);
	return t;
}

static void
loop_probe_closed(uv_handle_t *h)
{
	struct loop_probe	*p = h->data;

	if (--p->closing == 0 && p->close_cb != NULL)
		p->close_cb((uv_handle_t *)&p->timer);
}

void
loop_probe_stop(struct loop_probe *p, uv_close_cb close_cb)
{
	p->close_cb = close_cb;
	p->closing = 3;
	uv_timer_stop(&p->timer);
	uv_prepare_stop(&p->prepare);
	uv_check_stop(&p->check);
	uv_close((uv_handle_t *)&p->timer, loop_probe_closed);
	uv_close((uv_handle_t *)&p->prepare, loop_probe_closed);
	uv_close((uv_handle_t *)&p->check, loop_probe_closed);
}
