/* daemon/util: write_file_atomic and mkdir_p, which every state file and
 * checkpoint directory of ternd goes through; proc_stat, which tells a
 * stuck CRIU and a stopped task; proc_child_in_group, which finds the
 * init of a tree a dead CRIU forked. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/util.h"
#include "daemon/xmalloc.h"

static char	dir[] = "/tmp/tern-test-util.XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	rm_rf(dir, NULL);
	return 0;
}

static char *
path_in(const char *name)
{
	char	*p;

	xasprintf(&p, "%s/%s", dir, name);
	return p;
}

static int
entries(void)
{
	struct dirent	*de;
	DIR		*d = opendir(dir);
	int		 n = 0;

	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
test_write_atomic(void **state)
{
	char	*path = path_in("state"), *text, *cause = NULL;

	(void)state;
	assert_int_equal(write_file_atomic(path, "state=running\n", &cause), 0);
	assert_int_equal(write_file_atomic(path, "state=stopped\n", &cause), 0);
	text = read_file_bounded(path, 1024, NULL, &cause);
	assert_string_equal(text, "state=stopped\n");
	assert_int_equal(entries(), 1);		/* no temporary file left */
	free(text);
	free(path);
}

/* A path.tmp left by a crash (or planted) neither blocks nor redirects
 * the write: it used to be opened with O_TRUNC, following symlinks. */
static void
test_write_atomic_ignores_leftover_tmp(void **state)
{
	char	*path = path_in("st2"), *tmp = path_in("st2.tmp"), *text;
	char	*cause = NULL;

	(void)state;
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(write_file_atomic(path, "gen=3\n", &cause), 0);
	text = read_file_bounded(path, 1024, NULL, &cause);
	assert_string_equal(text, "gen=3\n");
	free(text);
	rmdir(tmp);
	free(tmp);
	free(path);
}

static void
test_mkdir_p(void **state)
{
	char		*deep = path_in("a/b/c"), *file = path_in("f"),
			*under = path_in("f/x"), *cause = NULL;
	struct stat	 st;
	FILE		*fp;

	(void)state;
	assert_int_equal(mkdir_p(deep, 0700, &cause), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(mkdir_p(deep, 0700, &cause), 0);	/* again: fine */
	fp = fopen(file, "w");
	fclose(fp);
	/* A file where a directory should be is an error, not success. */
	assert_int_equal(mkdir_p(file, 0700, &cause), -1);
	assert_non_null(strstr(cause, "not a directory"));
	free(cause);
	cause = NULL;
	assert_int_equal(mkdir_p(under, 0700, &cause), -1);
	free(cause);
	free(deep);
	free(file);
	free(under);
}

/* A stopped child reads 'T' and names us its parent, this process 'R';
 * a reaped one is gone. */
static void
test_proc_stat(void **state)
{
	char		 st;
	uint64_t	 ticks = UINT64_MAX;
	pid_t		 pid, parent = 0;
	int		 status;

	(void)state;
	assert_int_equal(proc_stat(getpid(), &st, &parent, &ticks), 0);
	assert_int_equal(st, 'R');
	assert_int_equal(parent, getppid());
	assert_true(ticks != UINT64_MAX);
	if ((pid = fork()) == 0) {
		raise(SIGSTOP);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(proc_stat(pid, &st, &parent, NULL), 0);
	assert_int_equal(st, 'T');
	assert_int_equal(parent, getpid());
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(proc_stat(pid, &st, NULL, NULL), -1);
}

/* A process that leads its own group forks a sibling (CLONE_PARENT, as
 * CRIU forks a restored init) and exits: the sibling is our child in
 * the leader's group, found there; our own group holds no child of ours;
 * once the sibling is reaped, the leader's group is empty. */
static void
test_proc_child_in_group(void **state)
{
	pid_t	leader, sibling = 0;
	int	fds[2], status;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	if ((leader = fork()) == 0) {
		pid_t	pid;

		if (setpgid(0, 0) != 0)
			_exit(1);
		pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL,
		    NULL, NULL, NULL);
		if (pid == 0) {
			pause();
			_exit(0);
		}
		_exit(write(fds[1], &pid, sizeof pid) == sizeof pid ? 0 : 1);
	}
	assert_true(leader > 0);
	close(fds[1]);
	assert_int_equal(read(fds[0], &sibling, sizeof sibling),
	    sizeof sibling);
	close(fds[0]);
	assert_int_equal(waitpid(leader, &status, 0), leader);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(sibling > 0);

	assert_int_equal(proc_child_in_group(leader), sibling);
	assert_int_equal(proc_child_in_group(getpgrp()), 0);
	assert_int_equal(proc_child_in_group(0), 0);
	kill(-leader, SIGKILL);
	assert_int_equal(waitpid(sibling, &status, 0), sibling);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(proc_child_in_group(leader), 0);
}

/* This host has some memory available, and less than it has. */
static void
test_mem_available(void **state)
{
	uint64_t	avail = mem_available();

	(void)state;
	assert_true(avail > 0);
	assert_true(avail <= (uint64_t)sysconf(_SC_PHYS_PAGES) *
	    (uint64_t)sysconf(_SC_PAGESIZE));
}

/* mountinfo lines, with and without optional fields, escapes undone;
 * a line of another shape is refused. */
static void
test_mountinfo_parse(void **state)
{
	struct mountinfo_line	 mi;
	char			 a[] = "164 155 254:0 /usr/local/var/run/tern-masked "
				    "/proc/acpi ro,nosuid,nodev,noexec - ext4 "
				    "/dev/vda rw,discard\n";
	char			 b[] = "30 25 0:26 / /srv/my\\040dir rw,relatime "
				    "shared:12 master:3 - tmpfs tmpfs rw,size=64k\n";
	char			 c[] = "30 25 0:26 / /srv rw,relatime\n";
	char			 d[] = "garbage";

	(void)state;
	assert_int_equal(mountinfo_parse(a, &mi), 0);
	assert_int_equal(mi.major, 254);
	assert_int_equal(mi.minor, 0);
	assert_string_equal(mi.root, "/usr/local/var/run/tern-masked");
	assert_string_equal(mi.mountpoint, "/proc/acpi");
	assert_string_equal(mi.fstype, "ext4");
	assert_int_equal(mountinfo_parse(b, &mi), 0);
	assert_string_equal(mi.mountpoint, "/srv/my dir");
	assert_string_equal(mi.fstype, "tmpfs");
	assert_int_equal(mountinfo_parse(c, &mi), -1);
	assert_int_equal(mountinfo_parse(d, &mi), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_write_atomic_ignores_leftover_tmp),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_mountinfo_parse),
		cmocka_unit_test(test_proc_stat),
		cmocka_unit_test(test_proc_child_in_group),
		cmocka_unit_test(test_mem_available),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
