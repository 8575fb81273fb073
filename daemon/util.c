#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
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
host_name_valid(const char *s)
{
	size_t	len, i;

	len = strlen(s);
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '-'))
			return 0;
	}
	return 1;
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
mkdir_p(const char *dir, unsigned mode, char **cause)
{
	char	*copy, *p;
	int	 rc = -1;

	copy = xstrdup(dir);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(copy, mode) != 0 && errno != EEXIST) {
			set_cause(cause, "%s: cannot create directory: %s", copy,
			    strerror(errno));
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
