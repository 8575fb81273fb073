#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/lazy-check.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* Past this many processes, or this many mappings in all, the tree is
 * not inspected further (a workload must not make ternd read forever);
 * it moves by stop-and-copy. */
#define LAZY_CHECK_MAX_PIDS	4096
#define LAZY_CHECK_MAX_MAPS	(1u << 20)

/* Anonymous memory shared on purpose: MAP_SHARED|MAP_ANONYMOUS shows as
 * no path or /dev/zero, SysV shm as /SYSV..., memfd as /memfd:... */
static int
shared_anon_path(const char *path)
{
	return *path == '\0' || strncmp(path, "/dev/zero", 9) == 0 ||
	    strncmp(path, "/SYSV", 5) == 0 || strncmp(path, "/memfd:", 7) == 0;
}

/* Private anonymous memory of the process's own: no file, the heap, a
 * stack, a named anonymous mapping.  Not [vdso], [vvar] and the like:
 * the kernel's, shared by every process and restored by CRIU as such. */
static int
private_anon_path(const char *path)
{
	return *path == '\0' || strcmp(path, "[heap]") == 0 ||
	    strncmp(path, "[stack", 6) == 0 || strncmp(path, "[anon:", 6) == 0;
}

/* One process's mappings.  1 and *why on the first problem, 0 if none,
 * -1 if it is gone (exited meanwhile: nothing of it to move).  Copy-on-
 * write sharing needs smaps' page counts, which cost the kernel a walk of
 * every page table (about 20 ms per GiB resident, on ternd's loop); a
 * process alone in its tree shares with nobody it moves with, so its
 * maps (the shared mappings) are enough. */
static int
lazy_check_one(pid_t pid, int alone, unsigned *maps, char **why)
{
	char		 path[64], line[512], perms[8], name[256];
	unsigned long	 inode, kb;
	uint64_t	 cow_kb = 0;
	int		 anon_private = 0, n;
	FILE		*fp;

	snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, alone ? "maps" :
	    "smaps");
	if ((fp = fopen(path, "re")) == NULL)
		return errno == ENOENT || errno == ESRCH ? -1 : 1;
	while (fgets(line, sizeof line, fp) != NULL) {
		name[0] = '\0';
		n = sscanf(line, "%*x-%*x %7s %*x %*x:%*x %lu %255[^\n]", perms,
		    &inode, name);
		if (n >= 2 && strlen(perms) == 4) {
			char *p = name;

			while (*p == ' ')
				p++;
			if (++*maps > LAZY_CHECK_MAX_MAPS) {
				xasprintf(why, "its processes have more than %u "
				    "memory mappings to inspect", LAZY_CHECK_MAX_MAPS);
				fclose(fp);
				return 1;
			}
			anon_private = 0;
			if (inode == 0 && perms[3] == 'p' && private_anon_path(p))
				anon_private = 1;
			else if (perms[3] == 's' && shared_anon_path(p)) {
				xasprintf(why, "process %ld maps shared memory (%s), "
				    "which lazy pages do not serve", (long)pid,
				    *p != '\0' ? p : "anonymous, MAP_SHARED");
				fclose(fp);
				return 1;
			}
			continue;
		}
		if (anon_private && (sscanf(line, "Shared_Clean: %lu kB",
		    &kb) == 1 || sscanf(line, "Shared_Dirty: %lu kB", &kb) == 1))
			cow_kb += kb;
	}
	fclose(fp);
	if (cow_kb > 0) {
		xasprintf(why, "process %ld shares %" PRIu64 " KiB of its private "
		    "memory copy-on-write with another process (a fork without "
		    "exec); lazy pages would restore them as private copies",
		    (long)pid, cow_kb);
		return 1;
	}
	return 0;
}

int
lazy_check_pids(const pid_t *pids, size_t n, char **why)
{
	unsigned	maps = 0;
	size_t		i;

	if (n > LAZY_CHECK_MAX_PIDS) {
		xasprintf(why, "it has %zu processes, more than the %u tern "
		    "inspects", n, LAZY_CHECK_MAX_PIDS);
		return 1;
	}
	for (i = 0; i < n; i++) {
		switch (lazy_check_one(pids[i], n == 1, &maps, why)) {
		case 1:
			if (*why == NULL)
				xasprintf(why, "the memory of process %ld cannot "
				    "be inspected", (long)pids[i]);
			return 1;
		default:
			break;
		}
	}
	return 0;
}
