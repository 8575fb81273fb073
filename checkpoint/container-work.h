/* The container calls that wait for the kernel, off the event loop.
 *
 * container_start waits (up to 10 s) for the first process to exec;
 * freeze and thaw wait (up to 5 s each) for the freezer, and a kill for
 * the cgroup to empty (5 s more).  On the loop that carries heartbeats
 * such a wait drops every peer (peer_timeout_ms is 5 s by default) and
 * breaks whatever migration is in flight, so these run them on libuv's
 * thread pool and call back on the loop.
 *
 * None of these fails synchronously: the callback runs exactly once,
 * later, on the loop, with error NULL or the message (valid during the
 * call).  name and spec must stay valid until then.
 *
 * Fault points (TERN_FAULT, checked on the loop when the call is made):
 * container.start, container.kill, container.thaw: delay=MS waits MS
 * before the call on the worker (a kernel that takes its time), fail
 * fails it without calling. */
#ifndef TERN_CONTAINER_WORK_H
#define TERN_CONTAINER_WORK_H

#include <sys/types.h>

#include <uv.h>

#include "checkpoint/container-spec.h"

typedef void	(*container_work_cb)(void *arg, pid_t pid, const char *error);

/* container_start; pid is its first process (the caller's child: reap
 * it with waitpid(pid, ...)), 0 on error. */
void	container_start_async(uv_loop_t *, const char *name,
	    const struct container_spec *, container_work_cb, void *arg);
/* container_kill, then container_cgroup_remove. */
void	container_stop_async(uv_loop_t *, const char *name,
	    container_work_cb, void *arg);
/* container_thaw. */
void	container_thaw_async(uv_loop_t *, const char *name,
	    container_work_cb, void *arg);

#endif
