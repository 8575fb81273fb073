#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "checkpoint/file-locks.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* /proc/locks is small (a line per lock); bound it all the same. */
#define FILE_LOCKS_MAX	(4u << 20)

int
file_locks_find(const char *text, const pid_t *pids, size_t n, dev_t dev,
    char **why)
{
	const char	*line, *next;
	char		 kind[16], buf[256];
	unsigned	 maj, min;
	unsigned long	 ino;
	long		 pid;
	size_t		 i, len;

	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		len = next != NULL ? (size_t)(next - line) : strlen(line);
		next = next != NULL ? next + 1 : line + len;
		if (len >= sizeof buf)
			continue;
		memcpy(buf, line, len);
		buf[len] = '\0';
		/* "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a
		 * waiter's line has "->" after the number: not held. */
		if (strstr(buf, "->") != NULL ||
		    sscanf(buf, "%*d: %15s %*s %*s %ld %x:%x:%lu", kind, &pid,
		    &maj, &min, &ino) != 5)
			continue;
		if (strcmp(kind, "POSIX") != 0 && strcmp(kind, "FLOCK") != 0)
			continue;
		if (makedev(maj, min) != dev)
			continue;
		for (i = 0; i < n; i++) {
			if (pids[i] != (pid_t)pid)
				continue;
			xasprintf(why, "process %ld holds a%s lock on inode %lu "
			    "of its shared rootfs: the target cannot take it "
			    "while the source holds it (release it first, or "
			    "give the container a rootfs of its own, which "
			    "moves with it)", pid, strcmp(kind, "FLOCK") == 0 ?
			    " flock" : " POSIX", ino);
			return 1;
		}
	}
	return 0;
}

int
file_locks_on_shared(const char *root, const pid_t *pids, size_t n,
    char **why)
{
	struct stat	 st;
	char		*text, *cause = NULL;
	int		 rc;

	if (stat(root, &st) != 0) {
		xasprintf(why, "%s: cannot tell its file locks", root);
		return -1;
	}
	if ((text = read_file_bounded("/proc/locks", FILE_LOCKS_MAX, NULL,
	    &cause)) == NULL) {
		xasprintf(why, "cannot tell its file locks: %s", cause);
		free(cause);
		return -1;
	}
	rc = file_locks_find(text, pids, n, st.st_dev, why);
	free(text);
	return rc;
}
