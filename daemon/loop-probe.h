/* The event loop's latency probe: a timer due every LOOP_PROBE_MS that
 * records how late it ran.  Lateness is what any callback on the loop
 * (a heartbeat, a deadline, a control request) waits behind whatever
 * blocks the loop, so its worst since the last reset is the measure of
 * issue "a call that blocks the loop".
 *
 * Lateness on a shared machine also counts the time the loop waited for
 * a CPU.  What the loop itself ran is measured apart: a prepare handle
 * (just before the loop polls) and a check handle (just after the I/O
 * callbacks) cut each turn in two windows, poll plus I/O callbacks and
 * everything else (timers, idle, closes); the loop thread's CPU time over
 * each window bounds any single callback in it, whatever the load.  Its
 * wall time less the poll's wait (uv_metrics_idle_time) also counts a
 * callback that blocked without using CPU (fsync, a blocking read).
 * Timings are not pass/fail in tests; the benches print them. */
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
	uv_prepare_t	 prepare;	/* window edges, see above */
	uv_check_t	 check;
	uint64_t	 mark_cpu_ns;	/* loop thread's CPU at the last edge */
	uint64_t	 mark_ns;	/* ... now_ns() then */
	uint64_t	 mark_idle_ns;	/* ... uv_metrics_idle_time() then */
	uint64_t	 longest_cpu_ns; /* most CPU in one window */
	uint64_t	 longest_wall_ns; /* longest window, the poll's wait out */
	int		 closing;	/* handles not closed yet */
	uv_close_cb	 close_cb;
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
/* The most CPU the loop ran callbacks for in one window of a turn (see
 * above), in ms rounded up: no callback ran longer. */
uint64_t loop_probe_longest_callback_ms(const struct loop_probe *);
/* The same by the wall clock, the poll's wait left out: CPU starvation
 * and calls that block count in it too. */
uint64_t loop_probe_longest_wall_ms(const struct loop_probe *);
/* "worst 3 ms late, ..., longest callback 1 ms (CPU), 2 ms (wall), over
 * 12.0 s (1200 ticks; <1ms 1190, <2ms 8, ...)"; caller frees. */
char	*loop_probe_describe(const struct loop_probe *);
/* Stop; the probe's memory may go once close_cb ran (once, for the last
 * of its handles; NULL: it lives on until the loop closes, as a static
 * one does). */
void	loop_probe_stop(struct loop_probe *, uv_close_cb close_cb);

#endif
