#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/restore-limits.h"
#include "daemon/xmalloc.h"

/* Past this many descriptors in all the tree is not inspected further:
 * the move is refused, saying so (a readlink each is cheap, a million is
 * not, on ternd's loop). */
#define RESTORE_LIMITS_MAX_FDS	(1u << 18)

/* A field "key: a b" of an fdinfo text: 1 and its first two numbers (the
 * second 0 if there is one only), 0 if the text has no such field. */
static int
fdinfo_field(const char *fdinfo, const char *key, long long *a, long long *b)
{
	size_t		 klen = strlen(key);
	const char	*p = fdinfo;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			p += klen + 1;
			*a = *b = 0;
			/* "it_value: (4, 935826151)" or "ticks: 1" */
			if (sscanf(p, " (%lld, %lld)", a, b) == 2 ||
			    sscanf(p, " %lld", a) == 1)
				return 1;
			return 0;
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

const char *
restore_limits_fd(const char *link, const char *fdinfo)
{
	long long	a, b, va, vb;

	if (strcmp(link, "anon_inode:[eventfd]") == 0) {
		if (fdinfo_field(fdinfo, "eventfd-semaphore", &a, &b) && a != 0)
			return "an EFD_SEMAPHORE eventfd, which CRIU 4.1.1 "
			    "restores as a counting one";
		return NULL;
	}
	if (strcmp(link, "anon_inode:[timerfd]") == 0) {
		/* Periodic, expired, not read: the kernel shows no time left
		 * until the read re-arms it. */
		if (fdinfo_field(fdinfo, "it_interval", &a, &b) &&
		    (a != 0 || b != 0) &&
		    fdinfo_field(fdinfo, "it_value", &va, &vb) &&
		    va == 0 && vb == 0)
			return "a periodic timerfd with expirations not read "
			    "yet, which CRIU 4.1.1 restores disarmed (it can "
			    "move once the program has read them)";
		return NULL;
	}
	return NULL;
}

/* One process's descriptors: 1 and *why on the first that CRIU restores
 * wrong, 0 if none, -1 if the process is gone. */
static int
restore_limits_one(pid_t pid, unsigned *seen, char **why)
{
	char		 path[64], link[64], info[1024];
	const char	*what;
	struct dirent	*de;
	DIR		*d;
	ssize_t		 len;
	int		 infos, fd, rc = 0;

	snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/fdinfo", (long)pid);
	if ((infos = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		closedir(d);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (++*seen > RESTORE_LIMITS_MAX_FDS) {
			xasprintf(why, "its processes have more than %u open "
			    "files to inspect", RESTORE_LIMITS_MAX_FDS);
			rc = 1;
			break;
		}
		len = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (len <= 0)
			continue;	/* closed meanwhile */
		link[len] = '\0';
		if (strncmp(link, "anon_inode:[", 12) != 0)
			continue;
		if ((fd = openat(infos, de->d_name, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		len = read(fd, info, sizeof info - 1);
		close(fd);
		if (len <= 0)
			continue;
		info[len] = '\0';
		if ((what = restore_limits_fd(link, info)) != NULL) {
			xasprintf(why, "process %ld holds, as descriptor %s, %s",
			    (long)pid, de->d_name, what);
			rc = 1;
			break;
		}
	}
	close(infos);
	closedir(d);
	return rc;
}

int
restore_limits_pids(const pid_t *pids, size_t n, char **why)
{
	unsigned	seen = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		if (restore_limits_one(pids[i], &seen, why) == 1)
			return 1;
	return 0;
}
