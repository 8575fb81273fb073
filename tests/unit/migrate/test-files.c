/* migrate/files: which directory entries count as image files, also on a
 * filesystem that leaves d_type DT_UNKNOWN (there images used to be
 * skipped silently: neither sent nor fsync'd). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"

static char	 dir[] = "/tmp/tern-test-files.XXXXXX";
static int	 dfd = -1;

static int
setup(void **state)
{
	char	path[256];
	int	fd;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/pages-1.img", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) == -1)
		return -1;
	close(fd);
	snprintf(path, sizeof path, "%s/sub", dir);
	if (mkdir(path, 0700) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/link.img", dir);
	if (symlink("pages-1.img", path) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/fifo.img", dir);
	if (mkfifo(path, 0600) != 0)
		return -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	return dfd == -1 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (dfd != -1)
		close(dfd);
	rm_rf(dir, NULL);
	return 0;
}

/* A dirent as readdir would give it, with the d_type of our choosing. */
static int
regular(const char *name, unsigned char type)
{
	struct dirent	de;

	memset(&de, 0, sizeof de);
	snprintf(de.d_name, sizeof de.d_name, "%s", name);
	de.d_type = type;
	return files_dirent_regular(dfd, &de);
}

static void
test_unknown_type_asks_the_inode(void **state)
{
	(void)state;
	assert_int_equal(regular("pages-1.img", DT_UNKNOWN), 1);
	assert_int_equal(regular("sub", DT_UNKNOWN), 0);
	assert_int_equal(regular("link.img", DT_UNKNOWN), 0);	/* not followed */
	assert_int_equal(regular("fifo.img", DT_UNKNOWN), 0);
	assert_int_equal(regular("gone.img", DT_UNKNOWN), 0);
}

static void
test_known_type_is_trusted(void **state)
{
	(void)state;
	assert_int_equal(regular("pages-1.img", DT_REG), 1);
	assert_int_equal(regular("link.img", DT_LNK), 0);
	assert_int_equal(regular("sub", DT_DIR), 0);
}

static void
test_sync_dir(void **state)
{
	char	*cause = NULL;
	char	 missing[300];

	(void)state;
	assert_int_equal(files_sync_dir(dir, &cause), 0);
	snprintf(missing, sizeof missing, "%s/nothere", dir);
	assert_int_equal(files_sync_dir(missing, &cause), -1);
	assert_non_null(strstr(cause, "nothere"));
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_type_asks_the_inode),
		cmocka_unit_test(test_known_type_is_trusted),
		cmocka_unit_test(test_sync_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
