#include "config.h"

#include <stdlib.h>

#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

enum work_kind {
	WORK_RM_RF,
	WORK_WRITE,
	WORK_FN,
};

struct work {
	uv_work_t	 w;
	enum work_kind	 kind;
	char		*path;
	char		*text;
	int		(*fn)(void *, char **);
	void		*fn_arg;
	work_done_cb	 cb;
	void		*arg;
	int		 rc;
	char		*cause;
};

static void
work_do(uv_work_t *w)
{
	struct work	*k = w->data;

	switch (k->kind) {
	case WORK_RM_RF:
		k->rc = rm_rf(k->path, &k->cause);
		break;
	case WORK_WRITE:
		k->rc = write_file_atomic(k->path, k->text, &k->cause);
		break;
	case WORK_FN:
		k->rc = k->fn(k->fn_arg, &k->cause);
		break;
	}
	if (k->rc != 0 && k->cause == NULL)
		k->cause = xstrdup("failed (no reason given)");
}

static void
work_after(uv_work_t *w, int status)
{
	struct work	*k = w->data;

	(void)status;	/* never cancelled: nothing calls uv_cancel */
	k->cb(k->arg, k->rc == 0 ? NULL : k->cause);
	free(k->path);
	free(k->text);
	free(k->cause);
	free(k);
}

static void
work_queue(uv_loop_t *loop, struct work *k, work_done_cb cb, void *arg)
{
	k->w.data = k;
	k->cb = cb;
	k->arg = arg;
	uv_queue_work(loop, &k->w, work_do, work_after);
}

void
work_rm_rf(uv_loop_t *loop, const char *path, work_done_cb cb, void *arg)
{
	struct work	*k = xcalloc(1, sizeof *k);

	k->kind = WORK_RM_RF;
	k->path = xstrdup(path);
	work_queue(loop, k, cb, arg);
}

void
work_write_file(uv_loop_t *loop, const char *path, const char *text,
    work_done_cb cb, void *arg)
{
	struct work	*k = xcalloc(1, sizeof *k);

	k->kind = WORK_WRITE;
	k->path = xstrdup(path);
	k->text = xstrdup(text);
	work_queue(loop, k, cb, arg);
}

void
work_run(uv_loop_t *loop, int (*fn)(void *, char **), void *fn_arg,
    work_done_cb cb, void *arg)
{
	struct work	*k = xcalloc(1, sizeof *k);

	k->kind = WORK_FN;
	k->fn = fn;
	k->fn_arg = fn_arg;
	work_queue(loop, k, cb, arg);
}
