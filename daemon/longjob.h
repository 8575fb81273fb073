/* Long jobs: blocking calls that last as long as what they do (a VM's
 * whole migration in virDomainMigrateToURI3), each on a thread of its
 * own, never on libuv's thread pool: there they would hold the threads
 * that short control calls (a job's stats, an abort, a checkpoint's
 * MANIFEST) queue for, and --cancel and deadlines would stop working.
 *
 * At most max jobs run at once; one more is refused (no queue: a
 * queued migration would just be a late one).  The thread runs work(j);
 * then done(j) runs on the loop.  Jobs keep the loop alive while they
 * run; longjobs_close waits for none: close it once the loop has run
 * dry (every job done). */
#ifndef TERN_LONGJOB_H
#define TERN_LONGJOB_H

#include <uv.h>

struct longjobs;
struct longjob;

typedef void	(*longjob_fn)(struct longjob *);

struct longjob {
	longjob_fn	 work;		/* on the job's thread */
	longjob_fn	 done;		/* on the loop, after work */
	void		*data;		/* the caller's */
	/* Below: the module's. */
	struct longjobs	*set;
	uv_thread_t	 thread;
	struct longjob	*next;
};

/* A set for loop running at most max jobs at once; what refusals name
 * as the limit (a configuration option, e.g. "max_vm_migrations"). */
struct longjobs	*longjobs_new(uv_loop_t *, unsigned max, const char *what);
void		 longjobs_set_max(struct longjobs *, unsigned max);
unsigned	 longjobs_running(const struct longjobs *);
/* Start j (work, done and data set by the caller).  -1 and *cause, and
 * neither callback, if max jobs run already or no thread can start. */
int		 longjobs_start(struct longjobs *, struct longjob *j,
		     char **cause);
/* Free the set once no job runs (NULL is fine). */
void		 longjobs_close(struct longjobs *);

#endif
