/* The event loop's latency probe: a timer due every LOOP_PROBE_MS that
 * records how late it ran.  Lateness is what any callback on the loop
 * (a heartbeat, a deadline, a control request) waits behind whatever
 * blocks the loop, so its worst since the last reset is the measure of
 * issue "a call that blocks the loop".  Timings are not pass/fail in
 * tests; the benches print them. */
#ifndef TERN_LOOP_PROBE_H
#define TERN_LOOP_PROBE_H

#include <stdint.h>

#include <uv.h>

#define LOOP_PROBE_MS		10
/* Buckets of the lateness histogram: < 1, 2, 5, 10, 20, 50, 100, 500,
 * 1000 ms and more. */
#define LOOP_PROBE_NBUCKETS	10

struct loop_probe {
	uv_timer_t	 timer;
	uint64_t	 due_ns;	/* when the next tick should run */
	uint64_t	 since_ms;	/* now_ms() at start or reset */
	uint64_t	 worst_ns;
	uint64_t	 worst_at_ms;	/* now_ms() of the worst tick */
	uint64_t	 cpu_ns;	/* the loop thread's CPU time at the last tick */
	uint64_t	 worst_cpu_ns;	/* most CPU it used between two ticks */
	uint64_t	 ticks;
	uint64_t	 hist[LOOP_PROBE_NBUCKETS];
};

/* Start probing loop; the probe does not keep the loop alive. */
void	loop_probe_start(struct loop_probe *, uv_loop_t *);
/* Forget what was seen (a bench resets before what it measures). */
void	loop_probe_reset(struct loop_probe *);
/* The worst lateness since start or reset, in milliseconds (rounded up). */
uint64_t loop_probe_worst_ms(const struct loop_probe *);
/* The most CPU time the loop's thread used between two ticks, in ms: near
 * the worst lateness, a callback ran that long; far below it, the loop
 * waited (for the CPU on a busy machine, or in a blocking call). */
uint64_t loop_probe_worst_cpu_ms(const struct loop_probe *);
/* "worst 3 ms over 12.0 s (1200 ticks; <1ms 1190, <2ms 8, ...)";
 * caller frees. */
char	*loop_probe_describe(const struct loop_probe *);
/* Stop; the probe's memory may go once close_cb ran (NULL: it lives on
 * until the loop closes, as a static one does). */
void	loop_probe_stop(struct loop_probe *, uv_close_cb close_cb);

#endif
