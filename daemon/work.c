#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "work"
#include "daemon/fault.h"
#include "daemon/log.h"
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
	char		*what;		/* work_discard: said when done */
	char		*fail;		/* ... or before its failure */
	work_done_cb	 cb;
	void		*arg;
	unsigned	 delay_ms;	/* fault point work.write_file */
	int		 rc;
	char		*cause;
};

static void
work_do(uv_work_t *w)
{
	struct work	*k = w->data;

	if (k->delay_ms > 0)
		usleep(k->delay_ms * 1000u);	/* a disk that takes its time */
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
	if (k->cb != NULL)
		k->cb(k->arg, k->rc == 0 ? NULL : k->cause);
	else if (k->rc != 0)
		log_warnx("%s: %s", k->fail, k->cause);
	else if (k->what != NULL)
		log_info("%s", k->what);
	free(k->what);
	free(k->fail);
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
	if (fault_check("work.write_file", &k->delay_ms) != FAULT_DELAY)
		k->delay_ms = 0;
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

void
work_discard(uv_loop_t *loop, const char *path, const char *who,
    const char *what, work_done_cb cb, void *arg)
{
	struct work	*k = xcalloc(1, sizeof *k);
	char		*aside;
	int		 fd;

	k->kind = WORK_RM_RF;
	/* A unique name beside it: made, then taken over by the rename. */
	xasprintf(&aside, "%s.discard-XXXXXX", path);
	if ((fd = mkstemp(aside)) != -1) {
		close(fd);
		unlink(aside);
		if (rename(path, aside) == 0) {
			k->path = aside;
			aside = NULL;
			log_info("%s: removed %s %s (its files are deleted in "
			    "the background)", who, what, path);
		}
	}
	if (k->path == NULL) {
		if (errno != ENOENT) {
			log_debug("%s: cannot move %s aside (%s): removing "
			    "it in place", who, path, strerror(errno));
			xasprintf(&k->what, "%s: removed %s %s", who, what,
			    path);
		}
		k->path = xstrdup(path);
	}
	free(aside);
	xasprintf(&k->fail, "%s: %s %s", who, what, path);
	work_queue(loop, k, cb, arg);
}
