#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "daemon/pidfile.h"
#include "daemon/xmalloc.h"

int
pidfile_create(const char *path, char **cause)
{
	char	buf[32], other[32];
	ssize_t	n;
	int	fd, len;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		set_cause(cause, "%s: cannot open pidfile: %s", path,
		    strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = read(fd, other, sizeof other - 1);
		other[n > 0 ? n : 0] = '\0';
		other[strcspn(other, "\n")] = '\0';
		set_cause(cause, "%s: another ternd (pid %s) is running with "
		    "this run_dir", path, other[0] != '\0' ? other : "?");
		close(fd);
		return -1;
	}
	len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		set_cause(cause, "%s: cannot write pidfile: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
pidfile_remove(const char *path, int fd)
{
	if (fd == -1)
		return;
	unlink(path);
	close(fd);
}
