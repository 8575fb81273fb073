#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#define LOG_MODULE "container"
#include "checkpoint/container-work.h"
#include "checkpoint/container.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

enum cwork_kind {
	CWORK_START,
	CWORK_STOP,
	CWORK_THAW,
};

static const char *const cwork_points[] = {
	"container.start", "container.kill", "container.thaw",
};

struct cwork {
	uv_work_t			 w;
	enum cwork_kind			 kind;
	char				*name;
	const struct container_spec	*spec;
	unsigned			 delay_ms;	/* fault point */
	int				 fail;		/* fault point */
	container_work_cb		 cb;
	void				*arg;
	pid_t				 pid;
	int				 rc;
	char				*cause;
};

static void
cwork_run(uv_work_t *w)
{
	struct cwork	*k = w->data;

	if (k->delay_ms > 0)
		usleep(k->delay_ms * 1000u);
	if (k->fail) {
		set_cause(&k->cause, "container %s: %s failed (fault point)",
		    k->name, cwork_points[k->kind]);
		k->rc = -1;
		return;
	}
	switch (k->kind) {
	case CWORK_START:
		k->rc = container_start(k->name, k->spec, &k->pid, &k->cause);
		break;
	case CWORK_STOP:
		if ((k->rc = container_kill(k->name, &k->cause)) == 0)
			k->rc = container_cgroup_remove(k->name, &k->cause);
		break;
	case CWORK_THAW:
		k->rc = container_thaw(k->name, &k->cause);
		break;
	}
	if (k->rc != 0 && k->cause == NULL)
		set_cause(&k->cause, "container %s: %s failed", k->name,
		    cwork_points[k->kind]);
}

static void
cwork_done(uv_work_t *w, int status)
{
	struct cwork	*k = w->data;

	(void)status;	/* never cancelled */
	k->cb(k->arg, k->rc == 0 ? k->pid : 0, k->rc == 0 ? NULL : k->cause);
	free(k->name);
	free(k->cause);
	free(k);
}

static void
cwork_queue(uv_loop_t *loop, enum cwork_kind kind, const char *name,
    const struct container_spec *spec, container_work_cb cb, void *arg)
{
	struct cwork	*k;

	k = xcalloc(1, sizeof *k);
	k->w.data = k;
	k->kind = kind;
	k->name = xstrdup(name);
	k->spec = spec;
	k->cb = cb;
	k->arg = arg;
	switch (fault_check(cwork_points[kind], &k->delay_ms)) {
	case FAULT_FAIL:
		k->fail = 1;
		break;
	case FAULT_DELAY:
		break;
	default:
		k->delay_ms = 0;
		break;
	}
	uv_queue_work(loop, &k->w, cwork_run, cwork_done);
}

void
container_start_async(uv_loop_t *loop, const char *name,
    const struct container_spec *spec, container_work_cb cb, void *arg)
{
	cwork_queue(loop, CWORK_START, name, spec, cb, arg);
}

void
container_stop_async(uv_loop_t *loop, const char *name, container_work_cb cb,
    void *arg)
{
	cwork_queue(loop, CWORK_STOP, name, NULL, cb, arg);
}

void
container_thaw_async(uv_loop_t *loop, const char *name, container_work_cb cb,
    void *arg)
{
	cwork_queue(loop, CWORK_THAW, name, NULL, cb, arg);
}
