/* coord/model: the coordinator's picture over a real journal store in a
 * scratch directory: epochs that only grow and only by compare, replicas
 * bound to the epoch that made them, a picture that survives a reload,
 * bad records refused by key, and failover plans (priority, replicas,
 * capacity, drained and failed hosts), the failover history written with
 * each move and bounded, and ternctl ha set's compare-and-swap and
 * refusals. */
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

/* One failover of name (at its epoch) from -> to, with its history
 * record; the error, NULL when stored. */
static char *
failover(const char *name, const char *from, const char *to)
{
	struct model_failover	 fo;
	struct done		 d = { 0 };
	char			*cause = NULL;

	memset(&fo, 0, sizeof fo);
	fo.instance = (char *)name;
	fo.from = (char *)from;
	fo.time_unix_ms = 5000;
	fo.failed_unix_ms = 3000;
	if (model_instance_failover(m, name, model_instance(m, name)->epoch,
	    to, &fo, on_done, &d, &cause) != 0)
		fail_msg("failover %s: %s", name, cause);
	return wait_done(&d);
}

/* Every failover leaves its record, in the move's own transaction; the
 * history survives a reload and keeps the last MODEL_FAILOVERS_MAX. */
static void
test_history(void **state)
{
	struct model_failover	**fos, fo;
	struct done		  d[10];
	char			 *cause = NULL, name[16];
	size_t			  n, i, k, rounds;

	(void)state;
	host("h1", 0, 0, 0);
	host("h2", 0, 0, 0);
	inst("web", "h1", MODEL_HA_RESTART, 0, 0);
	assert_null(failover("web", "h1", "h2"));
	n = model_failovers(m, &fos);
	assert_int_equal(n, 1);
	assert_int_equal(fos[0]->seq, 1);
	assert_string_equal(fos[0]->instance, "web");
	assert_string_equal(fos[0]->from, "h1");
	assert_string_equal(fos[0]->to, "h2");
	assert_int_equal(fos[0]->epoch, 2);
	assert_int_equal(fos[0]->failed_unix_ms, 3000);
	assert_int_equal(fos[0]->outcome, MODEL_OUTCOME_PENDING);
	assert_int_equal(model_instance(m, "web")->epoch, 2);
	/* A move refused (stale epoch) leaves no record. */
	memset(&fo, 0, sizeof fo);
	fo.instance = "web";
	fo.from = "h1";
	assert_int_equal(model_instance_failover(m, "web", 1, "h1", &fo,
	    on_done, &d[0], &cause), -1);
	free(cause);
	cause = NULL;
	assert_int_equal(model_failovers(m, &fos), 1);
	/* The outcome, then nowhere to go: a record without a target. */
	memset(&d[0], 0, sizeof d[0]);
	assert_int_equal(model_failover_outcome(m, 1, MODEL_OUTCOME_RUNNING,
	    NULL, 6000, on_done, &d[0], &cause), 0);
	assert_null(wait_done(&d[0]));
	fo.from = "h2";
	fo.why = "web: no host is up";
	memset(&d[0], 0, sizeof d[0]);
	assert_int_equal(model_failover_unplaced(m, "web", 2, &fo, on_done,
	    &d[0], &cause), 0);
	assert_null(wait_done(&d[0]));
	close_model();
	open_model();
	n = model_failovers(m, &fos);
	assert_int_equal(n, 2);
	assert_int_equal(fos[0]->outcome, MODEL_OUTCOME_RUNNING);
	assert_int_equal(fos[0]->outcome_unix_ms, 6000);
	assert_int_equal(fos[1]->seq, 2);
	assert_null(fos[1]->to);
	assert_string_equal(fos[1]->why, "web: no host is up");
	assert_int_equal(fos[1]->epoch, 2);
	assert_ptr_equal(model_failover_last(m, "web"), fos[1]);
	/* Bounded: ten instances moving back and forth, ten moves in
	 * flight at a time, past the bound. */
	for (k = 0; k < 10; k++) {
		snprintf(name, sizeof name, "i%zu", k);
		inst(name, "h1", MODEL_HA_RESTART, 0, 0);
	}
	rounds = MODEL_FAILOVERS_MAX / 10 + 1;
	for (i = 0; i < rounds; i++) {
		for (k = 0; k < 10; k++) {
			struct model_instance *in;

			snprintf(name, sizeof name, "i%zu", k);
			in = model_instance(m, name);
			memset(&fo, 0, sizeof fo);
			fo.instance = name;
			fo.from = in->owner;
			memset(&d[k], 0, sizeof d[k]);
			assert_int_equal(model_instance_failover(m, name,
			    in->epoch, strcmp(in->owner, "h1") == 0 ? "h2" :
			    "h1", &fo, on_done, &d[k], &cause), 0);
		}
		uv_run(uv_default_loop(), UV_RUN_DEFAULT);
		for (k = 0; k < 10; k++) {
			assert_int_equal(d[k].called, 1);
			assert_null(d[k].error);
		}
	}
	n = model_failovers(m, &fos);
	assert_int_equal(n, MODEL_FAILOVERS_MAX);
	assert_int_equal(fos[n - 1]->seq, 2 + rounds * 10);
	assert_int_equal(fos[0]->seq, fos[n - 1]->seq - MODEL_FAILOVERS_MAX +
	    1);
	/* The store holds exactly that too. */
	close_model();
	open_model();
	n = model_failovers(m, &fos);
	assert_int_equal(n, MODEL_FAILOVERS_MAX);
	assert_int_equal(fos[n - 1]->seq, 2 + rounds * 10);
	for (i = 1; i < n; i++)
		assert_int_equal(fos[i]->seq, fos[i - 1]->seq + 1);
}

/* ha set with a bad value: refused at once, naming the instance, and
 * nothing changed. */
static void
set_refused(const char *name, const struct model_ha_set *set,
    const char *want)
{
	struct model_instance	*in = model_instance(m, name);
	uint64_t		 rev = in != NULL ? in->mod_rev : 0;
	struct done		 d = { 0 };
	char			*cause = NULL;

	assert_int_equal(model_instance_set_ha(m, name, set, on_done, &d,
	    &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL || strstr(cause, name) == NULL)
		fail_msg("ha set %s: \"%s\" does not say \"%s\"", name, cause,
		    want);
	free(cause);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(d.called, 0);
	if (in != NULL)
		assert_int_equal(model_instance(m, name)->mod_rev, rev);
}

/* ternctl ha set: one transaction compared on the record read; nonsense
 * refused with nothing changed. */
static void
test_ha_set(void **state)
{
	struct model_ha_set	 set;
	struct done		 d1 = { 0 }, d2 = { 0 };
	char			*cause = NULL, *e1, *e2;
	uint64_t		 rev;

	(void)state;
	host("h1", 0, 0, 0);
	host("h2", 0, 0, 0);
	host("h3", 0, 0, 0);
	inst("web", "h1", MODEL_HA_RESTART, 0, 0);
	rev = model_instance(m, "web")->mod_rev;
	memset(&set, 0, sizeof set);
	set.has_priority = 1;
	set.priority = 7;
	assert_int_equal(model_instance_set_ha(m, "web", &set, on_done, &d1,
	    &cause), 0);
	assert_null(wait_done(&d1));
	assert_int_equal(model_instance(m, "web")->priority, 7);
	assert_true(model_instance(m, "web")->mod_rev > rev);
	assert_int_equal(model_instance(m, "web")->epoch, 1);
	assert_int_equal(model_instance(m, "web")->ha, MODEL_HA_RESTART);

	memset(&set, 0, sizeof set);
	set_refused("ghost", &set, "no instance ghost");
	set_refused("web", &set, "nothing to set");
	set.has_priority = 1;
	set.priority = MODEL_PRIORITY_MAX + 1;
	set_refused("web", &set, "priority 1001 is out of range");
	set.priority = MODEL_PRIORITY_MIN - 1;
	set_refused("web", &set, "out of range");
	memset(&set, 0, sizeof set);
	set.has_interval = 1;
	set_refused("web", &set, "interval 0 ms is out of range");
	set.interval_ms = HA_INTERVAL_MAX_MS + 1;
	set_refused("web", &set, "out of range");
	memset(&set, 0, sizeof set);
	set.has_replicas = 1;
	set_refused("web", &set, "0 replicas");
	set.replicas = 3;		/* h2 and h3 are the other hosts */
	set_refused("web", &set, "give 1 to 2");
	memset(&set, 0, sizeof set);
	set.has_ha = 1;
	set.ha = (enum model_ha)7;
	set_refused("web", &set, "no such policy");
	set.ha = MODEL_HA_CHECKPOINT;
	set.has_replicas = 1;
	set.replicas = 1;
	set_refused("web", &set, "needs --interval and --replicas");
	assert_int_equal(model_instance(m, "web")->priority, 7);

	/* Two changes from the same read: the second finds it changed. */
	memset(&set, 0, sizeof set);
	set.has_ha = 1;
	set.ha = MODEL_HA_NONE;
	assert_int_equal(model_instance_set_ha(m, "web", &set, on_done, &d1,
	    &cause), 0);
	set.ha = MODEL_HA_RESTART;
	set.has_priority = 1;
	set.priority = -3;
	assert_int_equal(model_instance_set_ha(m, "web", &set, on_done, &d2,
	    &cause), 0);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	e1 = d1.error;
	e2 = d2.error;
	assert_null(e1);
	assert_non_null(e2);
	assert_non_null(strstr(e2, "changed meanwhile"));
	free(e2);
	assert_int_equal(model_instance(m, "web")->ha, MODEL_HA_NONE);
	assert_int_equal(model_instance(m, "web")->priority, 7);
	close_model();
	open_model();
	assert_int_equal(model_instance(m, "web")->ha, MODEL_HA_NONE);
	assert_int_equal(model_instance(m, "web")->priority, 7);
	assert_string_equal(model_instance(m, "web")->owner, "h1");
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
		cmocka_unit_test_setup_teardown(test_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ha_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookups, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
