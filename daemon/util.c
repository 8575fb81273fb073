#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/util.h"
#include "daemon/xmalloc.h"

uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
now_ms(void)
{
	return now_ns() / 1000000u;
}

int
host_name_check(const char *s, size_t len, char **cause)
{
	size_t	i;
	char	c;

	if (len == 0) {
		set_cause(cause, "host name is empty");
		return -1;
	}
	if (len > 63) {
		set_cause(cause, "host name is %zu characters long; at most 63 "
		    "are allowed", len);
		return -1;
	}
	for (i = 0; i < len; i++) {
		c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')
			continue;
		if (c > 0x20 && c < 0x7f)
			set_cause(cause, "host name has '%c' at position %zu; "
			    "only a-z, 0-9 and '-' are allowed", c, i + 1);
		else
			set_cause(cause, "host name has byte 0x%02x at position "
			    "%zu; only a-z, 0-9 and '-' are allowed",
			    (unsigned char)c, i + 1);
		return -1;
	}
	if (s[0] == '-' || s[len - 1] == '-') {
		set_cause(cause, "host name \"%.*s\" starts or ends with '-'",
		    (int)len, s);
		return -1;
	}
	return 0;
}

int
host_name_valid(const char *s)
{
	return host_name_check(s, strlen(s), NULL) == 0;
}

int
sockaddr_parse(const char *addr, int port, struct sockaddr_storage *ss,
    char **cause)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (port < 1 || port > 65535) {
		set_cause(cause, "port %d out of range", port);
		return -1;
	}
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	set_cause(cause, "\"%s\" is not an IPv4 or IPv6 address", addr);
	return -1;
}

void
format_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double	v = (double)bytes;
	int	u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

int
fsync_parent(const char *path, char **cause)
{
	char	*dir, *slash;
	int	 fd, rc = 0;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	/* EINVAL: a filesystem with nothing to make durable (cgroupfs,
	 * procfs); not an error. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (fsync(fd) != 0 && errno != EINVAL)) {
		set_cause(cause, "%s: fsync: %s", dir, strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	free(dir);
	return rc;
}

int
mkdir_p(const char *dir, unsigned mode, char **cause)
{
	struct stat	 st;
	char		*copy, *p, saved;
	int		 rc = -1;

	copy = xstrdup(dir);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		saved = *p;
		*p = '\0';
		if (mkdir(copy, mode) == 0) {
			/* Its entry must survive a power cut like its
			 * contents: what is in it is durable only then. */
			if (fsync_parent(copy, cause) != 0)
				goto out;
		} else if (errno != EEXIST) {
			set_cause(cause, "%s: cannot create directory: %s", copy,
			    strerror(errno));
			goto out;
		} else if (stat(copy, &st) != 0 || !S_ISDIR(st.st_mode)) {
			set_cause(cause, "%s: exists and is not a directory",
			    copy);
			goto out;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static int
rm_rf_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int
rm_rf(const char *path, char **cause)
{
	if (nftw(path, rm_rf_one, 32, FTW_DEPTH | FTW_PHYS) != 0 &&
	    errno != ENOENT) {
		set_cause(cause, "cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* /proc/PID/stat into buf: what follows "PID (comm)", or NULL if it is
 * gone (comm may hold anything, even ") ": the last one ends it). */
static const char *
proc_stat_fields(long pid, char *buf, size_t size)
{
	char	 path[64], *p;
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return NULL;
	return p + 1;
}

int
proc_stat(pid_t pid, char *state, pid_t *ppid, uint64_t *cpu_ticks)
{
	char			 buf[1024];
	const char		*f;
	unsigned long long	 ut = 0, st = 0;
	int			 parent = 0;

	if ((f = proc_stat_fields(pid, buf, sizeof buf)) == NULL ||
	    sscanf(f, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    state, &parent, &ut, &st) != 4)
		return -1;
	if (ppid != NULL)
		*ppid = (pid_t)parent;
	if (cpu_ticks != NULL)
		*cpu_ticks = ut + st;
	return 0;
}

pid_t
proc_child_in_group(pid_t pgrp)
{
	struct dirent	*e;
	DIR		*d;
	char		 buf[1024], *end, state;
	const char	*f;
	pid_t		 self = getpid(), found = 0;
	long		 pid;
	int		 ppid, grp;

	if (pgrp <= 0 || (d = opendir("/proc")) == NULL)
		return 0;
	while (found == 0 && (e = readdir(d)) != NULL) {
		if ((pid = strtol(e->d_name, &end, 10)) <= 0 || *end != '\0')
			continue;
		if ((f = proc_stat_fields(pid, buf, sizeof buf)) != NULL &&
		    sscanf(f, " %c %d %d", &state, &ppid, &grp) == 3 &&
		    ppid == self && grp == pgrp)
			found = (pid_t)pid;
	}
	closedir(d);
	return found;
}

uint64_t
mem_available(void)
{
	char			 line[128];
	unsigned long long	 kib = 0;
	FILE			*fp;

	if ((fp = fopen("/proc/meminfo", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof line, fp) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(fp);
	return (uint64_t)kib << 10;
}

char *
read_file_bounded(const char *path, size_t max, size_t *lenp, char **cause)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(max + 2);
	for (;;) {
		n = read(fd, buf + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			set_cause(cause, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			char size[32];

			format_bytes(size, sizeof size, max);
			if (strcmp(size + strlen(size) - 6, ".0 MiB") == 0)
				snprintf(size, sizeof size, "%zu MiB", max >> 20);
			set_cause(cause, "%s: file is larger than %s", path, size);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

int
write_file_atomic(const char *path, const char *text, char **cause)
{
	return write_file_atomic_buf(path, text, strlen(text), cause);
}

int
write_file_atomic_buf(const char *path, const void *data, size_t len,
    char **cause)
{
	const char	*text = data;
	char		*tmp;
	int		 fd, rc = -1;
	size_t		 off = 0;
	ssize_t		 n;

	/* A name of its own: never a leftover (or planted) path.tmp. */
	xasprintf(&tmp, "%s.tmp.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		set_cause(cause, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		if ((n = write(fd, text + off, len - off)) < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off != len || fsync(fd) != 0) {
		set_cause(cause, "%s: %s", tmp, off != len && errno == 0 ?
		    "short write" : strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		set_cause(cause, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	/* The rename itself is durable only once the directory is. */
	if (fsync_parent(path, cause) != 0)
		goto out;
	rc = 0;
out:
	free(tmp);
	return rc;
}

/* Undo mountinfo's octal escapes in place. */
static void
mountinfo_unescape(char *p)
{
	char	*s, *d;

	for (s = d = p; *s != '\0'; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
			    (s[3] - '0'));
			s += 3;
		} else
			*d = *s;
	}
	*d = '\0';
}

int
mountinfo_parse(char *line, struct mountinfo_line *mi)
{
	char	*f[5], *p = line, *sep;
	int	 k;

	line[strcspn(line, "\n")] = '\0';
	for (k = 0; k < 5; k++) {
		f[k] = p;
		if ((p = strchr(p, ' ')) == NULL)
			return -1;
		*p++ = '\0';
	}
	if ((sep = strstr(p, " - ")) == NULL ||
	    sscanf(f[2], "%u:%u", &mi->major, &mi->minor) != 2)
		return -1;
	mi->fstype = sep + 3;
	mi->fstype[strcspn(mi->fstype, " ")] = '\0';
	mountinfo_unescape(f[3]);
	mountinfo_unescape(f[4]);
	mi->root = f[3];
	mi->mountpoint = f[4];
	return 0;
}
