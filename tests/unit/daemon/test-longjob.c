/* Unit tests for daemon/longjob.c and daemon/work.c: long jobs on threads
 * of their own, capped, their done on the loop; a discarded directory
 * is gone from its path at once and removed on the pool. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "daemon/longjob.h"
#include "daemon/util.h"
#include "daemon/work.h"
#include "daemon/xmalloc.h"

static uv_mutex_t	gate;		/* held: the jobs wait */
static int		ran, done;
static uv_thread_t	loop_thread;

static void
job_work(struct longjob *j)
{
	(void)j;
	uv_mutex_lock(&gate);
	ran++;
	uv_mutex_unlock(&gate);
}

static void
job_done(struct longjob *j)
{
	/* On the loop's thread, after its work. */
	uv_thread_t	self = uv_thread_self();

	assert_true(uv_thread_equal(&self, &loop_thread));
	assert_non_null(j->data);
	done++;
}

static void
test_cap_and_done(void **state)
{
	uv_loop_t	 loop;
	struct longjobs	*set;
	struct longjob	 jobs[3];
	char		*cause = NULL;
	int		 i;

	(void)state;
	loop_thread = uv_thread_self();
	uv_loop_init(&loop);
	uv_mutex_init(&gate);
	ran = done = 0;
	set = longjobs_new(&loop, 2, "max_vm_migrations");
	uv_mutex_lock(&gate);
	for (i = 0; i < 3; i++) {
		memset(&jobs[i], 0, sizeof jobs[i]);
		jobs[i].work = job_work;
		jobs[i].done = job_done;
		jobs[i].data = &jobs[i];
	}
	assert_int_equal(longjobs_start(set, &jobs[0], &cause), 0);
	assert_int_equal(longjobs_start(set, &jobs[1], &cause), 0);
	assert_int_equal(longjobs_running(set), 2);
	/* The third is refused, naming the limit; its callbacks never run. */
	assert_int_equal(longjobs_start(set, &jobs[2], &cause), -1);
	assert_non_null(strstr(cause, "max_vm_migrations"));
	free(cause);
	cause = NULL;
	/* Held jobs keep the loop alive: it runs until both are done. */
	uv_mutex_unlock(&gate);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(ran, 2);
	assert_int_equal(done, 2);
	assert_int_equal(longjobs_running(set), 0);
	/* Room again. */
	assert_int_equal(longjobs_start(set, &jobs[2], &cause), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(done, 3);
	longjobs_close(set);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	uv_mutex_destroy(&gate);
}

static int	discarded;
static char	discard_error[256];

static void
discard_done(void *arg, const char *error)
{
	(void)arg;
	discarded++;
	snprintf(discard_error, sizeof discard_error, "%s",
	    error != NULL ? error : "");
}

static void
test_discard(void **state)
{
	uv_loop_t	 loop;
	char		 tmpl[] = "/tmp/tern-test-discard.XXXXXX", *dir, *path;
	char		*sub, *file;
	struct stat	 st;

	(void)state;
	uv_loop_init(&loop);
	assert_non_null(dir = mkdtemp(tmpl));
	xasprintf(&path, "%s/rootfs", dir);
	xasprintf(&sub, "%s/rootfs/a/b", dir);
	xasprintf(&file, "%s/rootfs/a/b/f", dir);
	assert_int_equal(mkdir_p(sub, 0700, NULL), 0);
	assert_int_equal(write_file_atomic(file, "x", NULL), 0);
	discarded = 0;
	work_discard(&loop, path, "test", "the rootfs", discard_done, NULL);
	/* Gone from its path before the loop ran: free for a new copy. */
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(discarded, 0);
	assert_int_equal(mkdir(path, 0700), 0);	/* a new copy */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(discarded, 1);
	assert_string_equal(discard_error, "");
	/* The new copy stays; nothing else is left beside it. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);	/* empty: the old one went */
	assert_int_equal(uv_loop_close(&loop), 0);
	free(path);
	free(sub);
	free(file);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_and_done),
		cmocka_unit_test(test_discard),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
