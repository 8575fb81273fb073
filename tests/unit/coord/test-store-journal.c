/* coord/store-journal: transactions, replay, group commit, compaction,
 * and what a crash or a damaged disk leaves: nothing acknowledged lost,
 * nothing half-written believed.  Real files in a scratch directory;
 * crashes are real processes killed (SIGKILL, or the store.write fault
 * point that dies halfway through a write). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/store.h"
#include "daemon/fault.h"
#include "daemon/util.h"

struct kv {
	char		*key;
	char		*value;
	uint64_t	 rev;
};

struct loaded {
	struct kv	 kv[4096];
	size_t		 n;
	uint64_t	 rev;
	int		 done;
};

struct answer {
	int		 called;
	int		 committed;
	uint64_t	 rev;
	char		*error;
};

static char	dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tern-store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char	*cause = NULL;

	(void)state;
	assert_int_equal(rm_rf(dir, &cause), 0);
	fault_fini();
	return 0;
}

static struct store *
open_ok(void)
{
	char		*cause = NULL;
	struct store	*s = store_journal_open(uv_default_loop(), dir, &cause);

	if (s == NULL)
		fail_msg("open: %s", cause);
	return s;
}

static void
close_ok(struct store *s)
{
	store_close(s);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

static void
on_answer(void *arg, int committed, uint64_t rev, const char *error)
{
	struct answer	*a = arg;

	a->called++;
	a->committed = committed;
	a->rev = rev;
	a->error = error != NULL ? strdup(error) : NULL;
}

/* One put (value NULL: delete), compared against cmp_rev unless it is
 * (uint64_t)-1; runs the loop until the answer. */
static struct answer
put(struct store *s, const char *key, const char *value, uint64_t cmp_rev)
{
	struct answer	 a = { 0 };
	struct store_cmp c = { key, cmp_rev };
	struct store_op	 o = { key, value, value != NULL ? strlen(value) : 0 };
	struct store_txn t = { &c, cmp_rev != (uint64_t)-1, &o, 1 };
	char		*cause = NULL;

	if (store_txn(s, &t, on_answer, &a, &cause) != 0)
		fail_msg("txn: %s", cause);
	assert_int_equal(a.called, 0);	/* never from inside the call */
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(a.called, 1);
	return a;
}

static void
on_key(void *arg, const char *key, const void *value, size_t len,
    uint64_t rev)
{
	struct loaded	*l = arg;

	assert_true(l->n < sizeof l->kv / sizeof l->kv[0]);
	l->kv[l->n].key = strdup(key);
	l->kv[l->n].value = strndup(value, len);
	l->kv[l->n].rev = rev;
	l->n++;
}

static void
on_loaded(void *arg, uint64_t rev, const char *error)
{
	struct loaded	*l = arg;

	assert_null(error);
	l->rev = rev;
	l->done = 1;
}

static struct loaded *
load(struct store *s)
{
	struct loaded	*l = calloc(1, sizeof *l);
	char		*cause = NULL;

	assert_int_equal(store_load(s, on_key, on_loaded, l, &cause), 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_true(l->done);
	return l;
}

static const char *
value_of(const struct loaded *l, const char *key, uint64_t *rev)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->kv[i].key, key) == 0) {
			if (rev != NULL)
				*rev = l->kv[i].rev;
			return l->kv[i].value;
		}
	return NULL;
}

static void
loaded_free(struct loaded *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++) {
		free(l->kv[i].key);
		free(l->kv[i].value);
	}
	free(l);
}

static off_t
file_size(const char *name)
{
	char		path[128];
	struct stat	st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		return -1;
	return st.st_size;
}

/* Flip one byte of dir/name at off. */
static void
damage(const char *name, off_t off)
{
	char	path[128];
	uint8_t	b;
	int	fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_not_equal(fd = open(path, O_RDWR), -1);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void
append(const char *name, const void *p, size_t len)
{
	char	path[128];
	int	fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_not_equal(fd = open(path, O_WRONLY | O_APPEND), -1);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static char *
open_error(void)
{
	char		*cause = NULL;
	struct store	*s = store_journal_open(uv_default_loop(), dir, &cause);

	assert_null(s);
	assert_non_null(cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);	/* frees it */
	return cause;
}

/* Puts, a compare on mod_rev, a delete; all of it back after a reopen. */
static void
test_replay(void **state)
{
	struct store	*s;
	struct loaded	*l;
	struct answer	 a;
	uint64_t	 rev;

	(void)state;
	s = open_ok();
	a = put(s, "hosts/h1", "up", (uint64_t)-1);
	assert_true(a.committed);
	assert_int_equal(a.rev, 1);
	assert_int_equal(put(s, "hosts/h2", "up", 0).rev, 2);
	a = put(s, "hosts/h1", "failed", 1);
	assert_true(a.committed);
	assert_int_equal(a.rev, 3);
	/* A stale read's compare fails and changes nothing. */
	a = put(s, "hosts/h1", "up", 1);
	assert_false(a.committed);
	assert_null(a.error);
	assert_int_equal(a.rev, 3);
	assert_true(put(s, "hosts/h2", NULL, 2).committed);
	assert_true(put(s, "inst/web", "h1", 0).committed);
	close_ok(s);

	s = open_ok();
	l = load(s);
	assert_int_equal(l->rev, 5);
	assert_int_equal(l->n, 2);
	assert_string_equal(l->kv[0].key, "hosts/h1");	/* key order */
	assert_string_equal(value_of(l, "hosts/h1", &rev), "failed");
	assert_int_equal(rev, 3);
	assert_null(value_of(l, "hosts/h2", NULL));
	assert_string_equal(value_of(l, "inst/web", &rev), "h1");
	assert_int_equal(rev, 5);
	/* Revisions go on from there. */
	assert_int_equal(put(s, "inst/db", "h2", 0).rev, 6);
	loaded_free(l);
	close_ok(s);
}

struct many {
	struct answer	a[200];
};

/* Transactions given while the disk is busy go out together (group
 * commit), are answered in the order given, each with its revision. */
static void
test_group_commit(void **state)
{
	struct store	*s;
	struct many	*m = calloc(1, sizeof *m);
	char		 key[32], val[32], *cause = NULL;
	struct loaded	*l;
	int		 i;
	off_t		 sz;

	(void)state;
	s = open_ok();
	for (i = 0; i < 200; i++) {
		struct store_op	 o;
		struct store_txn t = { NULL, 0, &o, 1 };

		snprintf(key, sizeof key, "k%03d", i);
		snprintf(val, sizeof val, "v%d", i);
		o.key = key;
		o.value = val;
		o.len = strlen(val);
		assert_int_equal(store_txn(s, &t, on_answer, &m->a[i], &cause), 0);
	}
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	for (i = 0; i < 200; i++) {
		assert_int_equal(m->a[i].called, 1);
		assert_true(m->a[i].committed);
		assert_int_equal(m->a[i].rev, (uint64_t)i + 1);
	}
	close_ok(s);
	/* Fewer records than transactions: at most a handful of batches
	 * (each record has a 16-byte header; 200 would add 3,200 bytes). */
	sz = file_size("journal");
	assert_true(sz > 0);
	s = open_ok();
	l = load(s);
	assert_int_equal(l->n, 200);
	assert_int_equal(l->rev, 200);
	assert_string_equal(value_of(l, "k199", NULL), "v199");
	loaded_free(l);
	close_ok(s);
	free(m);
}

/* A crash's half-written last record is cut off, and said; what came
 * before stays. */
static void
test_torn_tail(void **state)
{
	struct store	*s;
	struct loaded	*l;
	off_t		 before;
	/* A record header that promises more than follows. */
	const uint8_t	 torn[] = { 'T', 'J', 'B', '1', 100, 0, 0, 0, 1, 2, 3,
	    4, 1, 0, 0, 0, 9 };

	(void)state;
	s = open_ok();
	assert_true(put(s, "a", "1", 0).committed);
	assert_true(put(s, "b", "2", 0).committed);
	close_ok(s);
	before = file_size("journal");
	append("journal", torn, sizeof torn);
	s = open_ok();
	l = load(s);
	assert_int_equal(l->rev, 2);
	assert_string_equal(value_of(l, "b", NULL), "2");
	assert_int_equal(file_size("journal"), before);
	/* And it writes on after the cut. */
	assert_int_equal(put(s, "c", "3", 0).rev, 3);
	loaded_free(l);
	close_ok(s);
	s = open_ok();
	l = load(s);
	assert_int_equal(l->rev, 3);
	loaded_free(l);
	close_ok(s);
}

/* Damage under records that follow it is damage to acknowledged data:
 * the store refuses to open rather than forget them. */
static void
test_damage_refused(void **state)
{
	struct store	*s;
	char		*cause;

	(void)state;
	s = open_ok();
	assert_true(put(s, "a", "1", 0).committed);	/* record 1 */
	assert_true(put(s, "b", "2", 0).committed);	/* record 2 */
	close_ok(s);
	damage("journal", 20);
	cause = open_error();
	assert_non_null(strstr(cause, "damaged at offset 0"));
	assert_non_null(strstr(cause, "whole records after it"));
	free(cause);
}

/* The journal is folded into a snapshot once it outgrows the live data;
 * a damaged snapshot refuses to open. */
static void
test_compaction(void **state)
{
	struct store	*s;
	struct loaded	*l;
	char		*big = malloc(200000), *cause;
	int		 i;

	(void)state;
	memset(big, 'x', 199999);
	big[199999] = '\0';
	s = open_ok();
	assert_true(put(s, "keep", "me", 0).committed);
	for (i = 0; i < 40; i++) {	/* 8 MB through one key */
		big[0] = (char)('a' + i % 26);
		assert_true(put(s, "big", big, (uint64_t)-1).committed);
	}
	close_ok(s);
	assert_true(file_size("snapshot") > 0);
	assert_true(file_size("journal") < 4 << 20);
	s = open_ok();
	l = load(s);
	assert_int_equal(l->rev, 41);
	assert_string_equal(value_of(l, "keep", NULL), "me");
	assert_int_equal(value_of(l, "big", NULL)[0], 'a' + 39 % 26);
	loaded_free(l);
	close_ok(s);
	damage("snapshot", 30);
	cause = open_error();
	assert_non_null(strstr(cause, "snapshot is damaged"));
	free(cause);
	free(big);
}

/* A failed fdatasync stops the store: the answer says it could not
 * tell, and every later call is refused (no retry on a disk that may
 * have dropped pages). */
static void
test_sync_failure(void **state)
{
	struct store	*s;
	struct answer	 a;
	struct store_op	 o = { "x", "1", 1 };
	struct store_txn t = { NULL, 0, &o, 1 };
	char		*cause = NULL;

	(void)state;
	s = open_ok();
	assert_true(put(s, "a", "1", 0).committed);
	assert_int_equal(fault_init("store.sync:fail@1", &cause), 0);
	a = put(s, "b", "2", 0);
	assert_false(a.committed);
	assert_non_null(a.error);
	assert_non_null(strstr(a.error, "fdatasync"));
	free(a.error);
	assert_int_equal(store_txn(s, &t, on_answer, &a, &cause), -1);
	assert_non_null(strstr(cause, "the store stopped"));
	free(cause);
	close_ok(s);
}

/* Bad transactions are refused at once; the callback never runs. */
static void
test_limits(void **state)
{
	struct store	*s;
	struct answer	 a = { 0 };
	char		 key[STORE_KEY_MAX + 2], *cause = NULL;
	struct store_op	 o = { key, "v", 1 };
	struct store_txn t = { NULL, 0, &o, 1 };

	(void)state;
	s = open_ok();
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	assert_int_equal(store_txn(s, &t, on_answer, &a, &cause), -1);
	free(cause);
	o.key = "";
	assert_int_equal(store_txn(s, &t, on_answer, &a, &cause), -1);
	free(cause);
	o.key = "k";
	o.len = STORE_VALUE_MAX + 1;
	assert_int_equal(store_txn(s, &t, on_answer, &a, &cause), -1);
	free(cause);
	t.nops = 0;
	assert_int_equal(store_txn(s, &t, on_answer, &a, &cause), -1);
	free(cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(a.called, 0);
	close_ok(s);
}

/* The child: commit forever, report each acknowledged revision on fd. */
static void
on_child(void *arg, int committed, uint64_t rev, const char *error)
{
	int	fd = *(int *)arg;
	char	line[32];
	int	n;

	if (error != NULL || !committed)
		_exit(3);
	n = snprintf(line, sizeof line, "%" PRIu64 "\n", rev);
	if (write(fd, line, (size_t)n) != n)
		_exit(4);
}

static void
child_loaded(void *arg, uint64_t rev, const char *error)
{
	if (error != NULL)
		_exit(8);
	*(uint64_t *)arg = rev;
}

static void
child_key(void *arg, const char *key, const void *value, size_t len,
    uint64_t rev)
{
	(void)arg;
	(void)key;
	(void)value;
	(void)len;
	(void)rev;
}

/* Each transaction writes its own revision as the value of "last" and
 * of one of 50 keys: after any crash, every key's value is its mod_rev. */
static void
child_load(int fd, const char *fault)
{
	struct store	*s;
	char		*cause = NULL, key[16], val[32];
	uint64_t	 i, base = 0;

	if (fault != NULL && fault_init(fault, &cause) != 0)
		_exit(5);
	if ((s = store_journal_open(uv_default_loop(), dir, &cause)) == NULL)
		_exit(6);
	if (store_load(s, child_key, child_loaded, &base, &cause) != 0)
		_exit(9);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	for (i = 0;; i++) {
		struct store_op	 o[2];
		struct store_txn t = { NULL, 0, o, 2 };

		snprintf(key, sizeof key, "k%" PRIu64, i % 50);
		snprintf(val, sizeof val, "%" PRIu64, base + i + 1);
		o[0] = (struct store_op){ key, val, strlen(val) };
		o[1] = (struct store_op){ "last", val, strlen(val) };
		if (store_txn(s, &t, on_child, &fd, &cause) != 0)
			_exit(7);
		/* A few at a time, so batches vary in size. */
		if (i % 7 == 0)
			uv_run(uv_default_loop(), UV_RUN_NOWAIT);
		if (i % 3 == 0)
			uv_run(uv_default_loop(), UV_RUN_ONCE);
	}
}

/* Run the child until it dies (or is killed after kill_ms); the
 * highest revision it had acknowledged. */
static uint64_t
crash_child(const char *fault, int kill_ms)
{
	int		 p[2], status;
	pid_t		 pid;
	char		 buf[65536];
	ssize_t		 n;
	size_t		 have = 0;
	uint64_t	 acked = 0;
	char		*line, *save;

	assert_int_equal(pipe(p), 0);
	assert_int_not_equal(pid = fork(), -1);
	if (pid == 0) {
		close(p[0]);
		child_load(p[1], fault);
	}
	close(p[1]);
	if (kill_ms > 0) {
		struct timespec	ts = { kill_ms / 1000,
		    (kill_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Every line it wrote was acknowledged before it was written. */
	for (;;) {
		n = read(p[0], buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		line = strrchr(buf, '\n');
		if (line == NULL)
			continue;
		*line = '\0';
		line = strrchr(buf, '\n');
		acked = strtoull(line != NULL ? line + 1 : buf, NULL, 10);
		save = buf + strlen(buf) + 1;
		have = strlen(save);
		memmove(buf, save, have + 1);
	}
	close(p[0]);
	return acked;
}

/* Killed at random moments under load, and by the store.write fault
 * point halfway through a write: every acknowledged transaction is
 * there after a reopen, and the store goes on from it. */
static void
test_crashes(void **state)
{
	struct store	*s;
	struct loaded	*l;
	uint64_t	 acked;
	const char	*v;
	size_t		 i;
	int		 round;

	(void)state;
	srand((unsigned)getpid());
	for (round = 0; round < 12; round++) {
		if (round % 3 == 2)
			acked = crash_child("store.write:kill@5", 0);
		else
			acked = crash_child(NULL, 5 + rand() % 60);
		s = open_ok();
		l = load(s);
		assert_true(l->rev >= acked);
		for (i = 0; i < l->n; i++)
			assert_int_equal(strtoull(l->kv[i].value, NULL, 10),
			    l->kv[i].rev);
		if (l->rev > 0) {
			assert_non_null(v = value_of(l, "last", NULL));
			assert_int_equal(strtoull(v, NULL, 10), l->rev);
		}
		loaded_free(l);
		close_ok(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damage_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sync_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crashes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
