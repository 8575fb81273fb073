/* checkpoint/confine: names, the prepared filter, and what confine_apply
 * leaves a process (in a forked child, as root; skipped otherwise). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/prctl.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/confine.h"
#include "checkpoint/container-spec.h"

static void
test_names(void **state)
{
	static const char *const names[] = {
		"capabilities", "no_new_privs", "masked_paths",
		"readonly_paths", "seccomp", "devices", NULL
	};
	unsigned	bit, all = 0;
	size_t		i;

	(void)state;
	for (i = 0; names[i] != NULL; i++) {
		bit = confine_bit(names[i]);
		assert_int_not_equal(bit, 0);
		assert_string_equal(confine_name(bit), names[i]);
		assert_int_equal(all & bit, 0);
		all |= bit;
	}
	assert_int_equal(all, CONFINE_ALL);
	assert_int_equal(confine_bit("all"), CONFINE_ALL);
	assert_int_equal(confine_bit(""), 0);
	assert_int_equal(confine_bit("Seccomp"), 0);
	assert_int_equal(confine_bit("user"), 0);
	assert_null(confine_name(CONFINE_ALL));
	assert_null(confine_name(0));
}

static void
test_prepare(void **state)
{
	struct container_spec	spec;
	struct confine		c;
	char			*cause = NULL;

	(void)state;
	memset(&spec, 0, sizeof spec);
	assert_int_equal(confine_prepare(&c, "t", &spec, &cause), 0);
	assert_int_equal(c.on, CONFINE_ALL);
	assert_non_null(c.filter);
	assert_true(c.filter_len > 10);
	assert_true(c.last_cap >= CAP_AUDIT_WRITE);
	assert_false(c.keep_caps & (1ULL << CAP_SYS_ADMIN));
	assert_true(c.keep_caps & (1ULL << CAP_CHOWN));
	confine_free(&c);

	spec.unconfined = CONFINE_SECCOMP;
	assert_int_equal(confine_prepare(&c, "t", &spec, &cause), 0);
	assert_int_equal(c.on, CONFINE_ALL & ~CONFINE_SECCOMP);
	assert_null(c.filter);
	confine_free(&c);

	spec.unconfined = CONFINE_ALL;
	assert_int_equal(confine_prepare(&c, "t", &spec, &cause), 0);
	assert_int_equal(c.on, 0);
	confine_free(&c);
	assert_null(cause);
}

/* In a child: apply, then check; exit 0, or the number of the first
 * check that failed. */
static int
child_checks(const struct confine *c, int nnp)
{
	pid_t	pid;
	int	step, idx, status;

	if (confine_apply(c, &step, &idx) != 0)
		return 1;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != nnp)
		return 2;
	if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0)
		return 3;
	if (prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) != 1)
		return 4;
	if (syscall(SYS_keyctl, 0, -3, 0) != -1 || errno != EPERM)
		return 5;
	if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
		return 6;
#ifdef SYS_clone3
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 7;
#endif
	if (syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL,
	    NULL) != -1 || errno != EPERM)
		return 8;
	if (personality(ADDR_NO_RANDOMIZE) != -1 || errno != EPERM)
		return 9;
	if (personality(PER_LINUX) == -1)
		return 10;
	if (syscall(SYS_mount, "none", "/", "tmpfs", 0UL, NULL) != -1 ||
	    errno != EPERM)
		return 11;
	/* Ordinary things still work. */
	if ((pid = fork()) == 0)
		_exit(3);
	if (pid == -1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 3)
		return 12;
	return 0;
}

static void
run_child(unsigned unconfined, int nnp)
{
	struct container_spec	spec;
	struct confine		c;
	char			*cause = NULL;
	pid_t			pid;
	int			status;

	if (geteuid() != 0) {
		skip();
		return;
	}
	memset(&spec, 0, sizeof spec);
	spec.unconfined = unconfined;
	assert_int_equal(confine_prepare(&c, "t", &spec, &cause), 0);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0)
		_exit(child_checks(&c, nnp));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	confine_free(&c);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("check %d failed in the confined child",
		    WEXITSTATUS(status));
}

static void
test_apply(void **state)
{
	(void)state;
	run_child(0, 1);
}

/* Without no_new_privs the filter needs CAP_SYS_ADMIN: it must go in
 * before the capabilities are dropped. */
static void
test_apply_without_nnp(void **state)
{
	(void)state;
	run_child(CONFINE_NO_NEW_PRIVS, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_apply_without_nnp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
