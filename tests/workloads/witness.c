/* witness: the instance as the witness of "one runner" (tests/lib/witness.sh
 * says how tests use it, tests/tools/witness-check.py how its records are
 * judged).  Built static, so it runs in a bare rootfs.
 *
 *	witness FILE
 *
 * Appends one record every 20 ms to FILE (opened, appended to and closed
 * each time, so no descriptor stays open across a checkpoint):
 *
 *	RUN HOST COUNTER TIME
 *
 * RUN is drawn at start and kept in memory (a restore keeps it, a cold
 * start draws another); HOST is read from /proc/self/cgroup for every
 * record, so a restore elsewhere shows; COUNTER is this copy's own, in
 * memory, and a cold start carries on from FILE's last record; TIME is
 * CLOCK_REALTIME, which a restored copy's time namespace does not shift.
 *
 * It was a busybox sh loop, which forked for every pause: six of them
 * took most of a core from the tests they witnessed.  This one costs a
 * write and a short sleep per record.
 *
 * SIGTERM or SIGINT: exit 0 (as a container's first process an unhandled
 * SIGTERM would be ignored, and every stop would wait out its grace
 * period).  Exit 1 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_NS (20 * 1000 * 1000L)

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

/* The counter of FILE's last complete record, or 0 (none, or not a
 * record: four fields, the third all digits). */
static unsigned long last_counter(const char *file)
{
	char buf[4096], run[64], host[512], count[32], when[64], extra[2];
	ssize_t len;
	off_t size;
	char *line;
	int fd;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0) {
		close(fd);
		return 0;
	}
	len = pread(fd, buf, sizeof(buf) - 1,
		    size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	/* A torn last line (its writer killed mid-write) is not a record. */
	if (buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	else if ((line = strrchr(buf, '\n')) != NULL)
		*line = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (sscanf(line, "%63s %511s %31s %63s %1s", run, host, count, when,
		   extra) != 4 || count[strspn(count, "0123456789")] != '\0')
		return 0;
	return strtoul(count, NULL, 10);
}

/* Where this copy runs, as its freezer cgroup says: a test host's cgroup
 * is .../tern-test/NET-HOST/..., anything else is shown whole. */
static void current_host(char *host, size_t size)
{
	char line[1024], *path, *slash, *dash;
	FILE *f;

	snprintf(host, size, "unknown");
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		path = strstr(line, ":freezer:");
		if (!path)
			continue;
		path += strlen(":freezer:");
		path[strcspn(path, "\n")] = '\0';
		if ((slash = strstr(path, "/tern-test/")) != NULL) {
			path = slash + strlen("/tern-test/");
			path[strcspn(path, "/")] = '\0';
			if ((dash = strchr(path, '-')) != NULL)
				path = dash + 1;
		}
		snprintf(host, size, "%s", path);
		break;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	const struct timespec period = { 0, PERIOD_NS };
	char host[512], rec[768];
	bool said = false;
	unsigned long n;
	uint32_t run;
	int fd, len;

	if (argc != 2) {
		fprintf(stderr, "usage: witness FILE\n");
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (getrandom(&run, sizeof(run), 0) != sizeof(run)) {
		fprintf(stderr, "witness: getrandom: %s\n", strerror(errno));
		return 1;
	}
	n = last_counter(argv[1]);
	for (;;) {
		struct timespec now;

		current_host(host, sizeof(host));
		clock_gettime(CLOCK_REALTIME, &now);
		n++;
		len = snprintf(rec, sizeof(rec), "%08x %s %lu %lld.%06ld\n",
			       run, host, n, (long long)now.tv_sec,
			       now.tv_nsec / 1000);
		/* One write per record: records never interleave. */
		fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, rec, (size_t)len) != len) {
			if (!said)
				fprintf(stderr, "witness: cannot append to %s: %s\n",
					argv[1], strerror(errno));
			said = true;
		}
		if (fd >= 0)
			close(fd);
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL) == EINTR)
			;
	}
}
