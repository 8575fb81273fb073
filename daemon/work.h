/* Short blocking file work off the event loop: on libuv's thread pool,
 * with a callback on the loop.  For work whose length the disk sets (an
 * fsync, removing a copied rootfs) and that must not hold the loop that
 * carries heartbeats.  None of these fails synchronously: the callback
 * runs once, always, with error NULL or the message (valid during the
 * call). */
#ifndef TERN_WORK_H
#define TERN_WORK_H

#include <uv.h>

typedef void	(*work_done_cb)(void *arg, const char *error);

/* rm_rf(path). */
void	work_rm_rf(uv_loop_t *, const char *path, work_done_cb, void *arg);
/* Make path go at once and its contents later: rename it to a name of
 * its own beside it (PATH.discard-XXXXXX, one metadata call here), then
 * rm_rf that on the pool.  path is free for reuse when this returns (a
 * new copy there is never removed by the old one's removal); what could
 * not be renamed (a mount point) is removed in place.  Logged at info as
 * "WHO: removed WHAT PATH" once it is gone from path; cb may be NULL:
 * then a failure is logged too. */
void	work_discard(uv_loop_t *, const char *path, const char *who,
	    const char *what, work_done_cb cb, void *arg);
/* write_file_atomic(path, text): durable once cb says NULL.  Two writes
 * of one path may finish in any order: callers keep one in flight.
 * Fault point work.write_file: delay=MS waits MS on the worker first (a
 * disk busy with a migration's images). */
void	work_write_file(uv_loop_t *, const char *path, const char *text,
	    work_done_cb, void *arg);
/* fn(fn_arg) on the pool, then cb(arg, error) with error fn's *cause. */
void	work_run(uv_loop_t *, int (*fn)(void *fn_arg, char **cause),
	    void *fn_arg, work_done_cb, void *arg);

#endif
