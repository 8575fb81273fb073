/* coord/model: the coordinator's picture over a real journal store in a
 * scratch directory: epochs that only grow and only by compare, replicas
 * bound to the epoch that made them, a picture that survives a reload,
 * bad records refused by key, and failover plans (priority, replicas,
 * capacity, drained and failed hosts). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/model.h"
#include "daemon/util.h"

static char		 dir[64];
static struct store	*st;
static struct model	*m;

struct done {
	int	 called;
	char	*error;
};

static void
on_done(void *arg, const char *error)
{
	struct done	*d = arg;

	d->called++;
	d->error = error != NULL ? strdup(error) : NULL;
}

/* Run the loop until the change is answered; its error (NULL: done). */
static char *
wait_done(struct done *d)
{
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(d->called, 1);
	return d->error;
}

static void
open_model(void)
{
	char		*cause = NULL;
	struct done	 d = { 0 };

	st = store_journal_open(uv_default_loop(), dir, &cause);
	if (st == NULL)
		fail_msg("open: %s", cause);
	m = model_new(st);
	assert_int_equal(model_load(m, on_done, &d, &cause), 0);
	assert_null(wait_done(&d));
}

static void
close_model(void)
{
	model_free(m);
	store_close(st);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	m = NULL;
	st = NULL;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tern-model.XXXXXX");
	assert_non_null(mkdtemp(dir));
	open_model();
	return 0;
}

static int
teardown(void **state)
{
	char	*cause = NULL;

	(void)state;
	if (m != NULL)
		close_model();
	assert_int_equal(rm_rf(dir, &cause), 0);
	return 0;
}

static void
host(const char *name, int drained, uint64_t mem, uint32_t max)
{
	struct done	 d = { 0 };
	char		*cause = NULL;

	assert_int_equal(model_host_put(m, name, drained, mem, max, on_done,
	    &d, &cause), 0);
	assert_null(wait_done(&d));
	host_lease_init(&model_host(m, name)->lease, 0);
}

static void
inst(const char *name, const char *owner, enum model_ha ha, int32_t prio,
    uint64_t mem)
{
	struct model_instance	 in;
	struct done		 d = { 0 };
	char			*cause = NULL;

	memset(&in, 0, sizeof in);
	in.name = (char *)name;
	in.kind = TERN__INSTANCE_KIND__KIND_CONTAINER;
	in.spec = "{}";
	in.owner = (char *)owner;
	in.ha = ha;
	in.interval_ms = ha == MODEL_HA_CHECKPOINT ? 5000 : 0;
	in.replicas = ha == MODEL_HA_CHECKPOINT ? 1 : 0;
	in.priority = prio;
	in.memory_mib = mem;
	if (model_instance_add(m, &in, on_done, &d, &cause) != 0)
		fail_msg("add %s: %s", name, cause);
	assert_null(wait_done(&d));
}

static void
replica(const char *name, const char *on, uint64_t gen)
{
	struct model_replica	 r;
	struct done		 d = { 0 };
	char			*cause = NULL;

	memset(&r, 0, sizeof r);
	r.instance = (char *)name;
	r.host = (char *)on;
	r.epoch = model_instance(m, name)->epoch;
	r.generation = gen;
	r.taken_unix_ms = 1000 * gen;
	if (model_replica_put(m, &r, on_done, &d, &cause) != 0)
		fail_msg("replica %s on %s: %s", name, on, cause);
	assert_null(wait_done(&d));
}

/* The lookups by name and by owner (indexes, model.c) answer what a walk
 * over every host and instance answers: after adds (the tables grow),
 * moves (owners change) and a reload (a new picture). */
static void
check_lookups(size_t nhosts, size_t ninsts)
{
	struct model_host	**hosts;
	struct model_instance	**insts, **owned;
	size_t			  i, j, n, walk;

	assert_int_equal(model_hosts(m, &hosts), nhosts);
	for (i = 0; i < nhosts; i++)
		assert_ptr_equal(model_host(m, hosts[i]->name), hosts[i]);
	assert_int_equal(model_instances(m, &insts), ninsts);
	for (i = 0; i < ninsts; i++)
		assert_ptr_equal(model_instance(m, insts[i]->name), insts[i]);
	assert_null(model_host(m, "nope"));
	assert_null(model_instance(m, "nope"));
	for (i = 0; i < nhosts; i++) {
		n = model_owned(m, hosts[i]->name, &owned);
		for (j = walk = 0; j < ninsts; j++)
			if (insts[j]->owner != NULL &&
			    strcmp(insts[j]->owner, hosts[i]->name) == 0)
				walk++;
		assert_int_equal(n, walk);
		for (j = 0; j < n; j++)
			assert_string_equal(owned[j]->owner, hosts[i]->name);
		free(owned);
	}
	n = model_owned(m, "nope", &owned);
	assert_int_equal(n, 0);
	free(owned);
}

static void
test_lookups(void **state)
{
	struct done	 d;
	char		 name[32], owner[32], *cause = NULL;
	size_t		 i;

	(void)state;
	check_lookups(0, 0);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "h%zu", i);
		host(name, 0, 0, 0);
		if (i % 7 == 0)
			check_lookups(i + 1, 0);
	}
	for (i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "i%zu", i);
		snprintf(owner, sizeof owner, "h%zu", i % 10);
		inst(name, owner, MODEL_HA_RESTART, 0, 0);
	}
	check_lookups(100, 200);
	/* Every instance of h3 to h4, one to nowhere. */
	for (i = 3; i < 200; i += 10) {
		snprintf(name, sizeof name, "i%zu", i);
		memset(&d, 0, sizeof d);
		assert_int_equal(model_instance_move(m, name, 1, i == 3 ? NULL :
		    "h4", on_done, &d, &cause), 0);
		assert_null(wait_done(&d));
	}
	check_lookups(100, 200);
	assert_null(model_instance(m, "i3")->owner);
	close_model();
	open_model();
	check_lookups(100, 200);
	assert_string_equal(model_instance(m, "i13")->owner, "h4");
}

/* Ownership moves only from the epoch read, and the epoch only grows. */
static void
test_epochs(void **state)
{
	struct done	 d = { 0 }, e = { 0 };
	char		*cause = NULL;

	(void)state;
	host("h1", 0, 0, 0);
	host("h2", 0, 0, 0);
	inst("web", "h1", MODEL_HA_RESTART, 0, 0);
	assert_int_equal(model_instance(m, "web")->epoch, 1);
	assert_int_equal(model_instance_move(m, "web", 1, "h2", on_done, &d,
	    &cause), 0);
	assert_null(wait_done(&d));
	assert_int_equal(model_instance(m, "web")->epoch, 2);
	assert_string_equal(model_instance(m, "web")->owner, "h2");
	/* A stale epoch is refused at once, and nothing changes. */
	assert_int_equal(model_instance_move(m, "web", 1, "h1", on_done, &e,
	    &cause), -1);
	assert_non_null(strstr(cause, "epoch 2, not 1"));
	free(cause);
	cause = NULL;
	assert_int_equal(e.called, 0);
	/* Two moves from the same read: the store lets one through. */
	d.called = 0;
	assert_int_equal(model_instance_move(m, "web", 2, "h1", on_done, &d,
	    &cause), 0);
	assert_int_equal(model_instance_move(m, "web", 2, NULL, on_done, &e,
	    &cause), 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_null(d.error);
	assert_non_null(e.error);
	assert_non_null(strstr(e.error, "changed meanwhile"));
	free(e.error);
	assert_int_equal(model_instance(m, "web")->epoch, 3);
	assert_string_equal(model_instance(m, "web")->owner, "h1");
	/* An unknown host or instance: refused at once. */
	assert_int_equal(model_instance_move(m, "web", 3, "h9", on_done, &e,
	    &cause), -1);
	free(cause);
	cause = NULL;
	assert_int_equal(model_instance_move(m, "nope", 1, "h1", on_done, &e,
	    &cause), -1);
	free(cause);
	cause = NULL;
	/* Reloaded from the store, the picture is the same. */
	close_model();
	open_model();
	assert_int_equal(model_instance(m, "web")->epoch, 3);
	assert_string_equal(model_instance(m, "web")->owner, "h1");
	assert_non_null(model_host(m, "h2"));
}

/* A replica counts only at the epoch that made it; newest first. */
static void
test_replicas(void **state)
{
	struct model_replica	  r, **v;
	struct done		  d = { 0 };
	char			 *cause = NULL;
	size_t			  n;

	(void)state;
	host("h1", 0, 0, 0);
	host("h2", 0, 0, 0);
	host("h3", 0, 0, 0);
	inst("db", "h1", MODEL_HA_CHECKPOINT, 0, 0);
	replica("db", "h2", 4);
	replica("db", "h3", 7);
	replica("db", "h2", 9);	/* replaces h2's */
	v = model_replicas(m, "db", &n);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->host, "h2");
	assert_int_equal(v[0]->generation, 9);
	free(v);
	/* It moves: the old owner's late copy is refused. */
	assert_int_equal(model_instance_move(m, "db", 1, "h2", on_done, &d,
	    &cause), 0);
	assert_null(wait_done(&d));
	memset(&r, 0, sizeof r);
	r.instance = "db";
	r.host = "h3";
	r.epoch = 1;
	r.generation = 10;
	assert_int_equal(model_replica_put(m, &r, on_done, &d, &cause), -1);
	assert_non_null(strstr(cause, "old owner"));
	free(cause);
	/* The new owner's newer epoch sorts first. */
	replica("db", "h3", 1);
	v = model_replicas(m, "db", &n);
	assert_string_equal(v[0]->host, "h3");
	assert_int_equal(v[0]->epoch, 2);
	free(v);
	close_model();
	open_model();
	v = model_replicas(m, "db", &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0]->epoch, 2);
	free(v);
}

static void
on_raw(void *arg, int committed, uint64_t rev, const char *error)
{
	(void)rev;
	assert_null(error);
	assert_true(committed);
	(*(int *)arg)++;
}

/* Write bytes under key, behind the model's back. */
static void
raw_put(const char *key, const void *value, size_t len)
{
	struct store_op		 op = { key, value, len };
	struct store_txn	 t = { NULL, 0, &op, 1 };
	char			*cause = NULL;
	int			 n = 0;

	assert_int_equal(store_txn(st, &t, on_raw, &n, &cause), 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(n, 1);
}

static char *
reload_error(void)
{
	struct done	 d = { 0 };
	char		*cause = NULL;

	assert_int_equal(model_load(m, on_done, &d, &cause), 0);
	return wait_done(&d);
}

/* A record that does not decode, does not match its key, or names
 * something invalid fails the load by key; the picture stays. */
static void
test_bad_records(void **state)
{
	static const uint8_t	 garbage[] = { 0xff, 0xff, 0xff };
	/* HostRecord{name: "h2"} under hosts/h1; then one with an unknown
	 * field 15 (varint 1). */
	static const uint8_t	 other[] = { 0x0a, 0x02, 'h', '2' };
	static const uint8_t	 unknown[] = { 0x0a, 0x02, 'h', '1', 0x78,
	    0x01 };
	/* InstanceRecord{name "x", kind KIND_CONTAINER, spec "s", epoch
	 * 0}; then one of kind 7, and one with the kind a string. */
	static const uint8_t	 epoch0[] = { 0x0a, 0x01, 'x', 0x10, 0x01,
	    0x1a, 0x01, 's', 0x30, 0x00 };
	static const uint8_t	 kind7[] = { 0x0a, 0x01, 'x', 0x10, 0x07,
	    0x1a, 0x01, 's', 0x30, 0x01 };
	static const uint8_t	 kindstr[] = { 0x0a, 0x01, 'x', 0x12, 0x01,
	    'c', 0x1a, 0x01, 's', 0x30, 0x01 };
	char			*e;

	(void)state;
	host("h1", 0, 0, 0);
	inst("web", "h1", MODEL_HA_NONE, 0, 0);
	raw_put("instances/web2", garbage, sizeof garbage);
	e = reload_error();
	assert_non_null(e);
	assert_non_null(strstr(e, "instances/web2"));
	free(e);
	assert_non_null(model_instance(m, "web"));	/* as it was */
	raw_put("instances/web2", NULL, 0);		/* delete */
	raw_put("hosts/h1", other, sizeof other);
	e = reload_error();
	assert_non_null(strstr(e, "does not match its key"));
	free(e);
	raw_put("hosts/h1", unknown, sizeof unknown);
	e = reload_error();
	assert_non_null(strstr(e, "unknown field 15"));
	free(e);
	raw_put("hosts/h1", NULL, 0);
	raw_put("instances/x", epoch0, sizeof epoch0);
	e = reload_error();
	assert_non_null(strstr(e, "instances/x"));
	free(e);
	raw_put("instances/x", kind7, sizeof kind7);
	e = reload_error();
	assert_non_null(strstr(e, "instances/x"));
	assert_non_null(strstr(e,
	    "unknown value 7 of tern.InstanceRecord.kind"));
	free(e);
	raw_put("instances/x", kindstr, sizeof kindstr);
	e = reload_error();
	assert_non_null(strstr(e, "instances/x"));
	free(e);
	raw_put("instances/x", NULL, 0);
	assert_null(reload_error());
	assert_null(model_host(m, "h1"));
	assert_non_null(model_instance(m, "web"));
}

/* Where a failed host's instances go. */
static void
test_plan(void **state)
{
	struct model_plan	*plan;
	size_t			 n, i;

	(void)state;
	host("h1", 0, 0, 0);
	host("h2", 0, 1024, 0);
	host("h3", 0, 0, 2);
	host("h4", 1, 0, 0);		/* drained */
	inst("a", "h1", MODEL_HA_RESTART, 1, 512);
	inst("b", "h1", MODEL_HA_RESTART, 5, 768);
	inst("c", "h1", MODEL_HA_CHECKPOINT, 3, 256);
	inst("d", "h1", MODEL_HA_NONE, 9, 0);
	inst("e", "h1", MODEL_HA_CHECKPOINT, 0, 0);
	inst("busy", "h3", MODEL_HA_NONE, 0, 100);
	replica("c", "h4", 8);		/* newest, but drained */
	replica("c", "h2", 6);
	replica("e", "h1", 3);		/* only on the failed host */
	n = model_failover_plan(m, "h1", &plan);
	assert_int_equal(n, 5);
	/* Priority order: d, b, c, a, e. */
	assert_string_equal(plan[0].instance->name, "d");
	assert_null(plan[0].target);
	assert_non_null(strstr(plan[0].why, "not protected"));
	/* b (768 MiB): h2 is empty of instances, h3 holds 100 MiB. */
	assert_string_equal(plan[1].instance->name, "b");
	assert_string_equal(plan[1].target, "h2");
	/* c: its newest replica is on drained h4: the one on h2, which has
	 * 256 MiB left after b. */
	assert_string_equal(plan[2].instance->name, "c");
	assert_string_equal(plan[2].target, "h2");
	assert_int_equal(plan[2].replica->generation, 6);
	/* a (512 MiB): h2 is full now; h3 has room for one more. */
	assert_string_equal(plan[3].instance->name, "a");
	assert_string_equal(plan[3].target, "h3");
	/* e: its only replica died with h1. */
	assert_string_equal(plan[4].instance->name, "e");
	assert_null(plan[4].target);
	assert_non_null(strstr(plan[4].why, "no replica"));
	model_plan_free(plan, n);
	/* A host whose lease is not up takes nothing. */
	model_host(m, "h2")->lease.state = HOST_SUSPECT;
	n = model_failover_plan(m, "h1", &plan);
	for (i = 0; i < n; i++)
		if (plan[i].target != NULL)
			assert_string_not_equal(plan[i].target, "h2");
	model_plan_free(plan, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_epochs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replicas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_records, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookups, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
