/* wl: memory: shared, copy-on-write, sparse, protected, discarded. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wl.h"

#define PAGE	4096UL

/* The permissions /proc/self/maps shows for the mapping holding addr. */
static int
maps_perms(const void *addr, char perms[5], unsigned long *start,
    unsigned long *end)
{
	unsigned long	a = (unsigned long)addr, s, e;
	char		line[512], p[5];
	FILE		*f;

	if ((f = fopen("/proc/self/maps", "re")) == NULL)
		return wl_fail_errno("/proc/self/maps");
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) != 3)
			continue;
		if (a >= s && a < e) {
			fclose(f);
			memcpy(perms, p, 5);
			if (start != NULL)
				*start = s;
			if (end != NULL)
				*end = e;
			return 0;
		}
	}
	fclose(f);
	return wl_fail("no mapping at %p", addr);
}

/* --- posix_shm: shm_open, mapped shared ---------------------------------- */

#define PSHM_SIZE	(32 * 1024)
static char	*pshm;

static int
posix_shm_setup(void)
{
	int	fd;

	mkdir("/dev/shm", 01777);
	if ((fd = shm_open("/wl-shm", O_CREAT | O_RDWR, 0600)) == -1)
		return wl_fail_errno("shm_open /wl-shm");
	if (ftruncate(fd, PSHM_SIZE) != 0)
		return wl_fail_errno("ftruncate");
	pshm = mmap(NULL, PSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (pshm == MAP_FAILED)
		return wl_fail_errno("mmap");
	wl_fill(pshm, PSHM_SIZE, 61);
	return 0;
}

static int
posix_shm_verify(void)
{
	char	buf[PSHM_SIZE];
	int	fd, rc;

	if (wl_same(pshm, PSHM_SIZE, 61, "mapping") != 0)
		return -1;
	if ((fd = shm_open("/wl-shm", O_RDONLY, 0)) == -1)
		return wl_fail_errno("shm_open /wl-shm again");
	rc = pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf ?
	    wl_same(buf, sizeof buf, 61, "the object read by name") :
	    wl_fail("short read of /dev/shm/wl-shm");
	close(fd);
	return rc;
}

/* --- mmap_shared_file: memory and file are one -------------------------- */

#define MSF_SIZE	(64 * 1024)
static char	*msf;
static int	 msf_fd;

static int
mmap_shared_file_setup(void)
{
	if ((msf_fd = open("/wl-mapped", O_CREAT | O_RDWR | O_TRUNC, 0644)) ==
	    -1)
		return wl_fail_errno("/wl-mapped");
	if (ftruncate(msf_fd, MSF_SIZE) != 0)
		return wl_fail_errno("ftruncate");
	msf = mmap(NULL, MSF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, msf_fd,
	    0);
	if (msf == MAP_FAILED)
		return wl_fail_errno("mmap");
	wl_fill(msf, MSF_SIZE, 62);
	return 0;
}

static int
mmap_shared_file_verify(void)
{
	char	buf[MSF_SIZE], c;

	if (wl_same(msf, MSF_SIZE, 62, "mapping") != 0)
		return -1;
	if (pread(msf_fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
		return wl_fail("short read of /wl-mapped");
	if (wl_same(buf, sizeof buf, 62, "the file") != 0)
		return -1;
	/* A store through the mapping is the file's. */
	c = msf[100];
	msf[100] = (char)~c;
	if (pread(msf_fd, buf, 1, 100) != 1 || buf[0] != (char)~c) {
		msf[100] = c;
		return wl_fail("a store to the mapping is not in the file");
	}
	msf[100] = c;
	return 0;
}

/* --- shared_anon: MAP_SHARED|MAP_ANONYMOUS between parent and child ------ */

#define SA_SIZE	(64 * 1024)
static char	*sa;
static pid_t	 sa_child;

static int
shared_anon_setup(void)
{
	volatile uint32_t	*slot;

	sa = mmap(NULL, SA_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sa == MAP_FAILED)
		return wl_fail_errno("mmap");
	wl_fill(sa, SA_SIZE - 64, 63);
	slot = (volatile uint32_t *)(sa + SA_SIZE - 64);
	slot[0] = slot[1] = 0;
	if ((sa_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (sa_child == 0) {
		for (;;) {
			slot[1] = slot[0];
			wl_msleep(5);
		}
	}
	return 0;
}

static int
shared_anon_verify(void)
{
	volatile uint32_t	*slot = (volatile uint32_t *)(sa + SA_SIZE -
	    64);
	int			 i;

	if (wl_same(sa, SA_SIZE - 64, 63, "shared memory") != 0)
		return -1;
	slot[0]++;
	for (i = 0; i < WL_WAIT_MS / 5 && slot[1] != slot[0]; i++)
		wl_msleep(5);
	if (slot[1] != slot[0])
		return wl_fail("the child no longer shares the memory "
		    "(%u, %u)", slot[0], slot[1]);
	return 0;
}

/* --- cow: private memory still shared copy-on-write after fork ---------- */

#define COW_PAGES	64
static char	*cow;
static pid_t	 cow_child;

/* The page frame of each page of [addr, addr + n pages) in pid. */
static int
pfns(pid_t pid, const void *addr, size_t n, uint64_t *out)
{
	char	path[64];
	ssize_t	r;
	int	fd;
	size_t	i;

	snprintf(path, sizeof path, "/proc/%ld/pagemap", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return wl_fail_errno(path);
	r = pread(fd, out, n * sizeof *out,
	    (off_t)((unsigned long)addr / PAGE * sizeof *out));
	close(fd);
	if (r != (ssize_t)(n * sizeof *out))
		return wl_fail("short read of %s", path);
	for (i = 0; i < n; i++) {
		if (!(out[i] >> 63))
			return wl_fail("page %zu not present in process %ld",
			    i, (long)pid);
		out[i] &= (1ULL << 55) - 1;
		if (out[i] == 0)
			return wl_fail("%s hides page frames (no "
			    "CAP_SYS_ADMIN?)", path);
	}
	return 0;
}

static int
cow_setup(void)
{
	uint64_t	a[COW_PAGES];

	cow = mmap(NULL, COW_PAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cow == MAP_FAILED)
		return wl_fail_errno("mmap");
	madvise(cow, COW_PAGES * PAGE, MADV_NOHUGEPAGE);
	wl_fill(cow, COW_PAGES * PAGE, 64);
	if ((cow_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (cow_child == 0) {
		for (;;)	/* never touches cow */
			pause();
	}
	return pfns(getpid(), cow, COW_PAGES, a);
}

static int
cow_verify(void)
{
	uint64_t	a[COW_PAGES], b[COW_PAGES];
	size_t		i;
	char		st;

	if (wl_proc_state(cow_child, &st) != 0)
		return -1;
	if (wl_same(cow, COW_PAGES * PAGE, 64, "private memory") != 0)
		return -1;
	if (pfns(getpid(), cow, COW_PAGES, a) != 0 ||
	    pfns(cow_child, cow, COW_PAGES, b) != 0)
		return -1;
	for (i = 0; i < COW_PAGES; i++)
		if (a[i] != b[i])
			return wl_fail("page %zu is not shared with the child "
			    "(frames %#llx, %#llx)", i,
			    (unsigned long long)a[i], (unsigned long long)b[i]);
	return 0;
}

/* --- sparse: a large mapping with a few pages in it ---------------------- */

#define SPARSE_SIZE	(1UL << 30)
#define SPARSE_STEP	(64UL << 20)
static char	*sparse;

static int
sparse_setup(void)
{
	unsigned long	off;

	sparse = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sparse == MAP_FAILED)
		return wl_fail_errno("mmap 1 GiB");
	for (off = 0; off < SPARSE_SIZE; off += SPARSE_STEP)
		wl_fill(sparse + off + PAGE, PAGE, (uint32_t)(off >> 20));
	return 0;
}

static int
sparse_verify(void)
{
	unsigned long	off, s, e;
	char		perms[5], what[64];
	size_t		i;

	if (maps_perms(sparse, perms, &s, &e) != 0)
		return -1;
	if (s != (unsigned long)sparse || e - s != SPARSE_SIZE)
		return wl_fail("the mapping is %#lx-%#lx, not %p + 1 GiB", s, e,
		    (void *)sparse);
	for (off = 0; off < SPARSE_SIZE; off += SPARSE_STEP) {
		snprintf(what, sizeof what, "page at %lu MiB", off >> 20);
		if (wl_same(sparse + off + PAGE, PAGE, (uint32_t)(off >> 20),
		    what) != 0)
			return -1;
		for (i = 0; i < PAGE; i++)
			if (sparse[off + i] != 0 || sparse[off + 2 * PAGE + i])
				return wl_fail("a page next to the one at %lu "
				    "MiB is not zero", off >> 20);
	}
	return 0;
}

/* --- mprotect: regions of one mapping with different protections -------- */

static char	*mp;
static const int mp_prot[8] = {
	PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ, PROT_READ,
	PROT_NONE, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
	PROT_READ | PROT_WRITE
};

static int
mprotect_setup(void)
{
	int	i;

	mp = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mp == MAP_FAILED)
		return wl_fail_errno("mmap");
	wl_fill(mp, 8 * PAGE, 65);
	for (i = 0; i < 8; i++)
		if (mprotect(mp + i * PAGE, PAGE, mp_prot[i]) != 0)
			return wl_fail_errno("mprotect");
	return 0;
}

static int
mprotect_verify(void)
{
	char	perms[5], want[5], buf[8 * PAGE];
	int	i, rc;

	for (i = 0; i < 8; i++) {
		if (maps_perms(mp + i * PAGE, perms, NULL, NULL) != 0)
			return -1;
		snprintf(want, sizeof want, "%c%c%cp",
		    (mp_prot[i] & PROT_READ) ? 'r' : '-',
		    (mp_prot[i] & PROT_WRITE) ? 'w' : '-',
		    (mp_prot[i] & PROT_EXEC) ? 'x' : '-');
		if (strcmp(perms, want) != 0)
			return wl_fail("page %d is %s, not %s", i, perms, want);
	}
	/* The PROT_NONE page's content too, briefly readable. */
	if (mprotect(mp + 4 * PAGE, PAGE, PROT_READ) != 0)
		return wl_fail_errno("mprotect");
	memcpy(buf, mp, sizeof buf);
	mprotect(mp + 4 * PAGE, PAGE, PROT_NONE);
	rc = wl_same(buf, sizeof buf, 65, "the mapping");
	return rc;
}

/* --- madvise: pages discarded with MADV_DONTNEED stay zero --------------- */

static char	*md;

static int
madvise_setup(void)
{
	md = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (md == MAP_FAILED)
		return wl_fail_errno("mmap");
	wl_fill(md, 8 * PAGE, 66);
	if (madvise(md + 2 * PAGE, 3 * PAGE, MADV_DONTNEED) != 0)
		return wl_fail_errno("madvise");
	wl_fill(md + 3 * PAGE, PAGE, 67);	/* one written again */
	return 0;
}

static int
madvise_verify(void)
{
	char	ref[8 * PAGE];
	size_t	i;

	wl_fill(ref, sizeof ref, 66);
	memset(ref + 2 * PAGE, 0, 3 * PAGE);
	wl_fill(ref + 3 * PAGE, PAGE, 67);
	for (i = 0; i < sizeof ref; i++)
		if (md[i] != ref[i])
			return wl_fail("byte %zu (page %zu) is 0x%02x, not "
			    "0x%02x", i, i / PAGE, (unsigned char)md[i],
			    (unsigned char)ref[i]);
	return 0;
}

/* --- memfd: sealed, mapped, read by fd ----------------------------------- */

#define MEMFD_SIZE	(64 * 1024)
static int	 mfd;
static char	*mfd_map;

static int
memfd_setup(void)
{
	char	buf[MEMFD_SIZE];

	if ((mfd = memfd_create("wl-memfd", MFD_ALLOW_SEALING)) == -1)
		return wl_fail_errno("memfd_create");
	wl_fill(buf, sizeof buf, 68);
	if (wl_write_all(mfd, buf, sizeof buf, "write the memfd") != 0)
		return -1;
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
		return wl_fail_errno("F_ADD_SEALS");
	mfd_map = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
	    mfd, 0);
	if (mfd_map == MAP_FAILED)
		return wl_fail_errno("mmap");
	return 0;
}

static int
memfd_verify(void)
{
	char		buf[MEMFD_SIZE], link[128], path[64];
	struct stat	st;
	ssize_t		n;
	int		seals;

	if ((seals = fcntl(mfd, F_GET_SEALS)) == -1)
		return wl_fail_errno("F_GET_SEALS");
	if (seals != (F_SEAL_SHRINK | F_SEAL_GROW))
		return wl_fail("seals %#x, not %#x", seals,
		    F_SEAL_SHRINK | F_SEAL_GROW);
	if (fstat(mfd, &st) != 0 || st.st_size != MEMFD_SIZE)
		return wl_fail("the memfd's size changed");
	snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
	n = readlink(path, link, sizeof link - 1);
	if (n <= 0)
		return wl_fail_errno(path);
	link[n] = '\0';
	if (strncmp(link, "/memfd:wl-memfd", 15) != 0)
		return wl_fail("the memfd is now %s", link);
	if (pread(mfd, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
		return wl_fail("short read of the memfd");
	if (wl_same(buf, sizeof buf, 68, "memfd by read") != 0 ||
	    wl_same(mfd_map, MEMFD_SIZE, 68, "memfd by mapping") != 0)
		return -1;
	return 0;
}

/* --- heap: malloc'd blocks, brk and mmap sized ---------------------------- */

#define HEAP_SMALL	200
static char	*heap_big;
static char	*heap_small[HEAP_SMALL];

static int
heap_setup(void)
{
	int	i;

	if ((heap_big = malloc(2 << 20)) == NULL)
		return wl_fail("malloc 2 MiB");
	wl_fill(heap_big, 2 << 20, 69);
	for (i = 0; i < HEAP_SMALL; i++) {
		if ((heap_small[i] = malloc((size_t)(16 + i * 40))) == NULL)
			return wl_fail("malloc");
		wl_fill(heap_small[i], (size_t)(16 + i * 40),
		    (uint32_t)(1000 + i));
	}
	/* Holes in the brk heap. */
	for (i = 0; i < HEAP_SMALL; i += 3) {
		free(heap_small[i]);
		heap_small[i] = NULL;
	}
	return 0;
}

static int
heap_verify(void)
{
	int	i;

	if (wl_same(heap_big, 2 << 20, 69, "2 MiB block") != 0)
		return -1;
	for (i = 0; i < HEAP_SMALL; i++)
		if (heap_small[i] != NULL &&
		    wl_same(heap_small[i], (size_t)(16 + i * 40),
		    (uint32_t)(1000 + i), "small block") != 0)
			return -1;
	/* The allocator's own state works. */
	for (i = 0; i < HEAP_SMALL; i += 3) {
		char *p = malloc((size_t)(16 + i * 40));
		if (p == NULL)
			return wl_fail("malloc after the move");
		memset(p, 0x5a, (size_t)(16 + i * 40));
		free(p);
	}
	return 0;
}

const struct workload wl_mem[] = {
	{ "posix_shm", "POSIX shared memory (shm_open), mapped",
	    posix_shm_setup, posix_shm_verify, 0 },
	{ "mmap_shared_file", "a file mapped MAP_SHARED",
	    mmap_shared_file_setup, mmap_shared_file_verify, 0 },
	{ "shared_anon", "anonymous shared memory between parent and child",
	    shared_anon_setup, shared_anon_verify, 0 },
	{ "cow", "private memory still shared copy-on-write with a forked "
	    "child (same page frames)", cow_setup, cow_verify, 0 },
	{ "sparse", "a 1 GiB mapping with 16 pages written", sparse_setup,
	    sparse_verify, 0 },
	{ "mprotect", "one mapping, pages of different protections",
	    mprotect_setup, mprotect_verify, 0 },
	{ "madvise", "pages discarded by MADV_DONTNEED", madvise_setup,
	    madvise_verify, 0 },
	{ "memfd", "a sealed memfd, mapped", memfd_setup, memfd_verify, 0 },
	{ "heap", "malloc'd blocks (brk and mmap)", heap_setup, heap_verify,
	    0 },
	{ NULL, NULL, NULL, NULL, 0 }
};
