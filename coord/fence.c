/* Running fence_command (see fence.h). */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/fence.h"
#include "daemon/xmalloc.h"

struct fence {
	uv_process_t	 proc;
	uv_timer_t	 timer;
	int		 handles;
	int		 timed_out;
	int		 answered;
	fence_cb	 cb;
	void		*arg;
	char		*host;
	char		*path;
};

static void
fence_closed(uv_handle_t *h)
{
	struct fence	*f = h->data;

	if (--f->handles > 0)
		return;
	free(f->host);
	free(f->path);
	free(f);
}

static void
fence_answer(struct fence *f, int fenced, const char *why)
{
	if (f->answered)
		return;
	f->answered = 1;
	if (f->cb != NULL)
		f->cb(f->arg, fenced, why);
}

static void
fence_exited(uv_process_t *p, int64_t status, int sig)
{
	struct fence	*f = p->data;
	char		*why;

	uv_timer_stop(&f->timer);
	if (f->timed_out)
		xasprintf(&why, "%s %s did not finish in time (killed)",
		    f->path, f->host);
	else if (sig != 0)
		xasprintf(&why, "%s %s was killed by signal %d", f->path,
		    f->host, sig);
	else if (status != 0)
		xasprintf(&why, "%s %s exited with status %lld", f->path,
		    f->host, (long long)status);
	else
		xasprintf(&why, "%s %s: the host is off", f->path, f->host);
	fence_answer(f, !f->timed_out && sig == 0 && status == 0, why);
	free(why);
	uv_close((uv_handle_t *)&f->proc, fence_closed);
	uv_close((uv_handle_t *)&f->timer, fence_closed);
}

static void
fence_deadline(uv_timer_t *t)
{
	struct fence	*f = t->data;

	f->timed_out = 1;
	uv_process_kill(&f->proc, SIGKILL);
}

struct fence *
fence_start(uv_loop_t *loop, const char *path, const char *host,
    uint32_t timeout_ms, fence_cb cb, void *arg, char **cause)
{
	struct fence		*f = xcalloc(1, sizeof *f);
	uv_process_options_t	 o;
	uv_stdio_container_t	 stdio[3];
	char			*argv[3];
	int			 rc;

	f->cb = cb;
	f->arg = arg;
	f->host = xstrdup(host);
	f->path = xstrdup(path);
	argv[0] = f->path;
	argv[1] = f->host;
	argv[2] = NULL;
	memset(&o, 0, sizeof o);
	memset(stdio, 0, sizeof stdio);
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 2;		/* its words go to our log */
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	o.file = f->path;
	o.args = argv;
	o.exit_cb = fence_exited;
	o.stdio = stdio;
	o.stdio_count = 3;
	f->proc.data = f;
	if ((rc = uv_spawn(loop, &f->proc, &o)) != 0) {
		set_cause(cause, "fence_command %s: %s", path, uv_strerror(rc));
		/* uv_spawn initialised the handle: it must be closed. */
		f->handles = 1;
		f->answered = 1;
		uv_close((uv_handle_t *)&f->proc, fence_closed);
		return NULL;
	}
	f->handles = 2;
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	uv_timer_start(&f->timer, fence_deadline, timeout_ms, 0);
	return f;
}

void
fence_cancel(struct fence *f)
{
	if (f == NULL)
		return;
	f->answered = 1;
	f->timed_out = 1;
	uv_process_kill(&f->proc, SIGKILL);
}
