/* checkpoint/vm: a generation's disks put back at their images' paths,
 * only where the domain's definition here names an image; the definition
 * it restores with is the one here. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/vm.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

struct fx {
	char	*tmp;
	char	*gen;		/* the generation */
	char	*img;		/* where the domain's image is */
	char	*xml;		/* its definition, naming img */
};

static int
setup(void **state)
{
	struct fx	*f = xcalloc(1, sizeof *f);
	char		 t[] = "/tmp/test-vm-disks.XXXXXX", *p, *list;

	assert_non_null(mkdtemp(t));
	f->tmp = xstrdup(t);
	xasprintf(&f->gen, "%s/gen", f->tmp);
	assert_int_equal(mkdir(f->gen, 0700), 0);
	xasprintf(&f->img, "%s/images/web.img", f->tmp);
	xasprintf(&f->xml, "<domain><devices><disk type='file' device='disk'>"
	    "<source file='%s'/><target dev='vda'/></disk></devices>"
	    "</domain>", f->img);
	xasprintf(&p, "%s/%s%s", f->gen, VM_DISK_PREFIX, "vda");
	assert_int_equal(write_file_atomic(p, "DISK AT THE INSTANT", NULL), 0);
	free(p);
	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	xasprintf(&list, "vda %s\n", f->img);
	assert_int_equal(write_file_atomic(p, list, NULL), 0);
	free(list);
	free(p);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	assert_int_equal(rm_rf(f->tmp, NULL), 0);
	free(f->tmp);
	free(f->gen);
	free(f->img);
	free(f->xml);
	free(f);
	return 0;
}

/* Written at the path (its directory made), replacing what was there. */
static void
test_put(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *got;

	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_null(cause);
	got = read_file_bounded(f->img, 1024, NULL, NULL);
	assert_string_equal(got, "DISK AT THE INSTANT");
	free(got);
	assert_int_equal(write_file_atomic(f->img, "LATER", NULL), 0);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	got = read_file_bounded(f->img, 1024, NULL, NULL);
	assert_string_equal(got, "DISK AT THE INSTANT");
	free(got);
}

/* A path the definition does not name: refused, nothing written. */
static void
test_unnamed(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL;
	struct stat	 st;

	assert_int_equal(vm_disks_put("web", f->gen, "<domain><devices><disk "
	    "type='file' device='disk'><source file='/elsewhere.img'/><target "
	    "dev='vda'/>"
	    "</disk></devices></domain>", &cause), -1);
	assert_non_null(strstr(cause, "does not name"));
	free(cause);
	assert_int_equal(stat(f->img, &st), -1);
}

/* A bad DISKS line: refused. */
static void
test_bad_list(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p;

	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	assert_int_equal(write_file_atomic(p, "../vda relative\n", NULL), 0);
	free(p);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "bad line"));
	free(cause);
}

/* No DISKS: nothing to do. */
static void
test_none(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p;

	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_null(cause);
}

/* DISKS lists vda at path in f->gen (with its content). */
static void
list_one(struct fx *f, const char *target, const char *path)
{
	char	*p, *list;

	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	xasprintf(&list, "%s %s\n", target, path);
	assert_int_equal(write_file_atomic(p, list, NULL), 0);
	free(list);
	free(p);
}

/* The generation's own definition names a victim, the one here does
 * not: refused, the victim untouched (the definition here is the one
 * checked, never the generation's). */
static void
test_victim(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *victim, *theirs, *got;

	xasprintf(&victim, "%s/victim", f->tmp);
	assert_int_equal(write_file_atomic(victim, "VICTIM", NULL), 0);
	xasprintf(&theirs, "<domain><devices><disk type='file' "
	    "device='disk'><source file='%s'/><target dev='vda'/></disk>"
	    "</devices></domain>", victim);
	list_one(f, "vda", victim);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "does not name"));
	free(cause);
	got = read_file_bounded(victim, 1024, NULL, NULL);
	assert_string_equal(got, "VICTIM");
	free(got);
	/* Nor does the domain run or get defined with its disk. */
	got = vm_restore_xml(f->xml, theirs, &cause);
	assert_null(got);
	free(cause);
	free(theirs);
	free(victim);
}

#define UUID_HERE	"11111111-2222-3333-4444-555555555555"
#define UUID_CKPT	"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

/* The XML a generation restores with: the one here, only the
 * checkpoint's uuid taken from the generation's own definition, whose
 * host devices (a block disk, a <hostdev>, a serial file, QEMU's command
 * line) count for nothing. */
static void
test_restore_xml(void **state)
{
	const char	*mine, *theirs, *spec;
	char		*got, *want, *cause = NULL;

	(void)state;
	mine = "<domain type='qemu'>\n  <name>web</name>\n  <uuid>"
	    UUID_HERE "</uuid>\n  <devices>\n    <disk type='file' "
	    "device='disk'><source file='/var/lib/tern/web.img'/>"
	    "<target dev='vda'/></disk>\n  </devices>\n</domain>\n";
	theirs = "<domain type='qemu' xmlns:qemu='http://libvirt.org/"
	    "schemas/domain/qemu/1.0'>\n  <name>web</name>\n  <uuid>"
	    UUID_CKPT "</uuid>\n  <devices>\n    <disk type='block' "
	    "device='disk'><source dev='/dev/sda'/><target dev='vda'/>"
	    "</disk>\n    <hostdev mode='subsystem' type='pci'/>\n    "
	    "<serial type='file'><source path='/etc/shadow'/></serial>\n"
	    "  </devices>\n  <qemu:commandline><qemu:arg value='-x'/>"
	    "</qemu:commandline>\n</domain>\n";
	got = vm_restore_xml(mine, theirs, NULL);
	assert_non_null(got);
	want = xstrdup(mine);
	memcpy(strstr(want, UUID_HERE), UUID_CKPT, strlen(UUID_CKPT));
	assert_string_equal(got, want);
	assert_null(strstr(got, "hostdev"));
	assert_null(strstr(got, "block"));
	free(got);
	free(want);

	/* A spec without a uuid: it comes after the domain's name. */
	spec = "<domain type='qemu'><name>web</name><memory>1</memory>"
	    "</domain>";
	got = vm_restore_xml(spec, theirs, NULL);
	assert_non_null(got);
	assert_string_equal(got, "<domain type='qemu'><name>web</name>"
	    "<uuid>" UUID_CKPT "</uuid><memory>1</memory></domain>");
	free(got);

	/* No uuid, or not one, in the generation's: nothing to run. */
	assert_null(vm_restore_xml(mine, "<domain><name>web</name>"
	    "</domain>", &cause));
	assert_non_null(strstr(cause, "uuid"));
	free(cause);
	cause = NULL;
	assert_null(vm_restore_xml(mine, "<domain><uuid>" UUID_CKPT
	    "'/><hostdev/></uuid></domain>", &cause));
	free(cause);
	cause = NULL;
	assert_null(vm_restore_xml(mine, "<domain><uuid>aaaaaaaa-bbbb-cccc"
	    "-dddd-eeeeeeeeeeeg</uuid></domain>", &cause));
	free(cause);
}

/* vdb at vda's image: the pair is not in the definition, refused. */
static void
test_swap(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *xml, *other;
	struct stat	 st;

	xasprintf(&other, "%s/images/data.img", f->tmp);
	xasprintf(&xml, "<domain><devices><disk type='file' device='disk'>"
	    "<source file='%s'/><target dev='vda'/></disk>"
	    "<disk type='file' device='disk'><source file='%s'/>"
	    "<target dev='vdb'/></disk></devices></domain>", f->img, other);
	list_one(f, "vdb", f->img);
	assert_int_equal(vm_disks_put("web", f->gen, xml, &cause), -1);
	assert_non_null(strstr(cause, "does not name"));
	free(cause);
	assert_int_equal(stat(f->img, &st), -1);
	free(xml);
	free(other);
}

/* A backing file (or a read-only disk's) is no image to write. */
static void
test_backing(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *xml, *base;
	struct stat	 st;

	xasprintf(&base, "%s/images/base.img", f->tmp);
	xasprintf(&xml, "<domain><devices><disk type='file' device='disk'>"
	    "<source file='%s'/><backingStore type='file'><source "
	    "file='%s'/></backingStore><target dev='vda'/></disk>"
	    "</devices></domain>", f->img, base);
	list_one(f, "vda", base);
	assert_int_equal(vm_disks_put("web", f->gen, xml, &cause), -1);
	assert_non_null(strstr(cause, "does not name"));
	free(cause);
	assert_int_equal(stat(base, &st), -1);
	free(xml);
	xasprintf(&xml, "<domain><devices><disk type='file' device='disk'>"
	    "<source file='%s'/><target dev='vda'/><readonly/></disk>"
	    "</devices></domain>", f->img);
	list_one(f, "vda", f->img);
	cause = NULL;
	assert_int_equal(vm_disks_put("web", f->gen, xml, &cause), -1);
	assert_non_null(cause);
	free(cause);
	assert_int_equal(stat(f->img, &st), -1);
	free(xml);
	free(base);
}

/* DISKS there but unreadable (here a directory, or too big): the
 * restore fails, not "no disks". */
static void
test_unreadable(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p, *big;

	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "cannot read"));
	free(cause);
	assert_int_equal(rmdir(p), 0);
	big = xmalloc(128 * 1024 + 1);
	memset(big, 'x', 128 * 1024);
	big[128 * 1024] = '\0';
	assert_int_equal(write_file_atomic(p, big, NULL), 0);
	free(big);
	cause = NULL;
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "larger"));
	free(cause);
	free(p);
}

/* Refused at create: which disk, and why. */
static void
test_protectable(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL;

	assert_int_equal(vm_disks_protectable("web", f->xml, &cause), 0);
	assert_int_equal(vm_disks_protectable("web", "<domain><devices><disk "
	    "type='file' device='cdrom'><source file='/x.iso'/><target "
	    "dev='hdc'/><readonly/></disk></devices></domain>", &cause), -1);
	assert_non_null(strstr(cause, "disk hdc of web (type file, device "
	    "cdrom, read-only)"));
	free(cause);
}

/* A sparse image comes back sparse, the same bytes. */
static void
test_sparse(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p, *got;
	struct stat	 st;
	FILE		*fp;
	size_t		 len;

	xasprintf(&p, "%s/%s%s", f->gen, VM_DISK_PREFIX, "vda");
	assert_non_null(fp = fopen(p, "w"));
	assert_int_equal(fseek(fp, 8 << 20, SEEK_SET), 0);
	assert_true(fputs("DATA", fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	free(p);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_int_equal(stat(f->img, &st), 0);
	assert_int_equal(st.st_size, (8 << 20) + 4);
	/* 8 MiB of hole: far fewer than its 16 Ki blocks of 512 bytes. */
	assert_true(st.st_blocks < 1024);
	got = read_file_bounded(f->img, 9 << 20, &len, NULL);
	assert_non_null(got);
	assert_int_equal(len, (8 << 20) + 4);
	assert_memory_equal(got + (8 << 20), "DATA", 4);
	assert_int_equal(got[4096], '\0');
	free(got);
}

/* The image's content, or NULL when it is not there. */
static char *
content(const char *path)
{
	struct stat	st;

	if (lstat(path, &st) != 0)
		return NULL;
	return read_file_bounded(path, 1024, NULL, NULL);
}

static void
assert_content(const char *path, const char *want)
{
	char	*got = content(path);

	if (want == NULL)
		assert_null(got);
	else
		assert_string_equal(got, want);
	free(got);
}

/* Where vm_disks_put keeps the image it replaced. */
static char *
old_of(const struct fx *f)
{
	char	*old;

	xasprintf(&old, "%s%s", f->img, VM_DISK_OLD_SUFFIX);
	return old;
}

/* A restore that ran (put, settled), then the guest wrote its disk. */
static void
restored_then_written(struct fx *f)
{
	char	*cause = NULL;

	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	vm_disks_settle("web", f->gen, f->xml);
	assert_int_equal(write_file_atomic(f->img, "WRITTEN SINCE", NULL), 0);
}

/* Put, then the memory not restored: the image the domain had is back,
 * nothing left beside it. */
static void
test_rollback(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *old;

	old = old_of(f);
	restored_then_written(f);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_null(cause);
	assert_content(f->img, "DISK AT THE INSTANT");
	assert_content(old, "WRITTEN SINCE");
	assert_int_equal(vm_disks_rollback("web", f->gen, f->xml), 0);
	assert_content(f->img, "WRITTEN SINCE");
	assert_content(old, NULL);
	free(old);
}

/* An IMAGE.tern-old a restore left (ternd died between put and settle)
 * may be the only copy of the domain's image: refused, both untouched. */
static void
test_unfinished(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *old;

	old = old_of(f);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_int_equal(write_file_atomic(old, "THE DOMAIN'S OWN", NULL), 0);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "did not finish"));
	free(cause);
	assert_content(f->img, "DISK AT THE INSTANT");
	assert_content(old, "THE DOMAIN'S OWN");
	free(old);
}

/* A disk listed twice: refused before anything is written. */
static void
test_twice(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p, *list;

	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	xasprintf(&list, "vda %s\nvda %s\n", f->img, f->img);
	assert_int_equal(write_file_atomic(p, list, NULL), 0);
	free(list);
	free(p);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), -1);
	assert_non_null(strstr(cause, "listed twice"));
	free(cause);
	assert_content(f->img, NULL);
}

/* Rolled back where there was no image: none again. */
static void
test_rollback_absent(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL;

	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_content(f->img, "DISK AT THE INSTANT");
	assert_int_equal(vm_disks_rollback("web", f->gen, f->xml), 0);
	assert_content(f->img, NULL);
}

/* The memory runs on the new image: the old one goes. */
static void
test_settle(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *old;

	old = old_of(f);
	restored_then_written(f);
	assert_int_equal(vm_disks_put("web", f->gen, f->xml, &cause), 0);
	assert_content(old, "WRITTEN SINCE");
	vm_disks_settle("web", f->gen, f->xml);
	assert_content(f->img, "DISK AT THE INSTANT");
	assert_content(old, NULL);
	free(old);
}

/* Two disks, the second's image missing from the generation: all or
 * none, the first is back as it was. */
static void
test_put_all_or_none(void **state)
{
	struct fx	*f = *state;
	char		*cause = NULL, *p, *list, *img2, *xml;

	xasprintf(&img2, "%s/images/data.img", f->tmp);
	xasprintf(&xml, "<domain><devices><disk type='file' device='disk'>"
	    "<source file='%s'/><target dev='vda'/></disk><disk type='file' "
	    "device='disk'><source file='%s'/><target dev='vdb'/></disk>"
	    "</devices></domain>", f->img, img2);
	restored_then_written(f);
	assert_int_equal(write_file_atomic(img2, "DATA SINCE", NULL), 0);
	xasprintf(&p, "%s/%s", f->gen, VM_DISKS_LIST);
	xasprintf(&list, "vda %s\nvdb %s\n", f->img, img2);
	assert_int_equal(write_file_atomic(p, list, NULL), 0);
	free(list);
	free(p);
	assert_int_equal(vm_disks_put("web", f->gen, xml, &cause), -1);
	assert_non_null(cause);
	free(cause);
	assert_content(f->img, "WRITTEN SINCE");
	assert_content(img2, "DATA SINCE");
	xasprintf(&p, "%s%s", f->img, VM_DISK_OLD_SUFFIX);
	assert_content(p, NULL);
	free(p);
	free(img2);
	free(xml);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unnamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_victim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap, setup, teardown),
		cmocka_unit_test(test_restore_xml),
		cmocka_unit_test_setup_teardown(test_backing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_protectable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unfinished, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_absent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_settle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_all_or_none, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
