/* fence_command: the operator's executable that powers a host off (IPMI,
 * a hypervisor's API), run with the host's name as its only argument,
 * without a shell.  Exit status 0 within the deadline means the host is
 * off: its instances may run elsewhere at once.  Anything else (another
 * status, a signal, the deadline, a failed exec) means nothing is known,
 * and the coordinator waits out the lease as if there were no command. */
#ifndef TERN_COORD_FENCE_H
#define TERN_COORD_FENCE_H

#include <stdint.h>

#include <uv.h>

struct fence;

/* fenced 1: exit 0 in time.  why: what happened, for the log. */
typedef void (*fence_cb)(void *arg, int fenced, const char *why);

/* Start path host; NULL with *cause if it could not be started (cb is then
 * never called), else cb runs exactly once, later. */
struct fence	*fence_start(uv_loop_t *, const char *path, const char *host,
		    uint32_t timeout_ms, fence_cb, void *arg, char **cause);
/* Forget the answer (the coordinator stops): the process is killed and
 * cb is never called. */
void		 fence_cancel(struct fence *);

#endif
