#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "longjob"
#include "daemon/log.h"
#include "daemon/longjob.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

struct longjobs {
	uv_loop_t	*loop;
	uv_async_t	 async;		/* a job's thread finished */
	uv_mutex_t	 lock;
	struct longjob	*finished;	/* under lock */
	unsigned	 running;	/* started, done not yet called */
	unsigned	 max;
	char		*what;
};

static void
longjobs_async(uv_async_t *h)
{
	struct longjobs	*set = h->data;
	struct longjob	*j, *next;

	uv_mutex_lock(&set->lock);
	j = set->finished;
	set->finished = NULL;
	uv_mutex_unlock(&set->lock);
	for (; j != NULL; j = next) {
		next = j->next;
		uv_thread_join(&j->thread);
		/* Only jobs keep the loop alive. */
		if (--set->running == 0)
			uv_unref((uv_handle_t *)&set->async);
		j->done(j);
	}
}

static void
longjob_thread(void *arg)
{
	struct longjob	*j = arg;
	struct longjobs	*set = j->set;

	j->work(j);
	uv_mutex_lock(&set->lock);
	j->next = set->finished;
	set->finished = j;
	uv_mutex_unlock(&set->lock);
	uv_async_send(&set->async);
}

struct longjobs *
longjobs_new(uv_loop_t *loop, unsigned max, const char *what)
{
	struct longjobs	*set;

	set = xcalloc(1, sizeof *set);
	set->loop = loop;
	set->max = max;
	set->what = xstrdup(what);
	if (uv_mutex_init(&set->lock) != 0)
		fatalx("uv_mutex_init failed");
	uv_async_init(loop, &set->async, longjobs_async);
	set->async.data = set;
	uv_unref((uv_handle_t *)&set->async);
	return set;
}

void
longjobs_set_max(struct longjobs *set, unsigned max)
{
	set->max = max;
}

unsigned
longjobs_running(const struct longjobs *set)
{
	return set->running;
}

int
longjobs_start(struct longjobs *set, struct longjob *j, char **cause)
{
	uv_thread_options_t	opts;
	int			rc;

	if (set->running >= set->max) {
		set_cause(cause, "%u long jobs run already, the most %s "
		    "allows: wait for one to finish, or raise %s", set->running,
		    set->what, set->what);
		return -1;
	}
	j->set = set;
	j->next = NULL;
	/* libvirt's client (RPC, libxml2) wants a real stack. */
	memset(&opts, 0, sizeof opts);
	opts.flags = UV_THREAD_HAS_STACK_SIZE;
	opts.stack_size = 4 * 1024 * 1024;
	if ((rc = uv_thread_create_ex(&j->thread, &opts, longjob_thread,
	    j)) != 0) {
		set_cause(cause, "cannot start a thread: %s", uv_strerror(rc));
		return -1;
	}
	if (set->running++ == 0)
		uv_ref((uv_handle_t *)&set->async);
	return 0;
}

static void
longjobs_free_cb(uv_handle_t *h)
{
	struct longjobs	*set = h->data;

	uv_mutex_destroy(&set->lock);
	free(set->what);
	free(set);
}

void
longjobs_close(struct longjobs *set)
{
	if (set == NULL)
		return;
	if (set->running != 0)
		log_warnx("closing with %u long jobs running", set->running);
	uv_close((uv_handle_t *)&set->async, longjobs_free_cb);
}
