#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/kept-logs.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

/* Keep the last max bytes of path. */
static void
kept_logs_tail(const char *path, off_t max)
{
	struct stat	 st;
	char		*buf;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > max) {
		buf = xmalloc((size_t)max);
		n = pread(fd, buf, (size_t)max, st.st_size - max);
		if (n > 0 && pwrite(fd, buf, (size_t)n, 0) == n &&
		    ftruncate(fd, n) != 0)
			unlink(path);	/* neither whole nor cut: useless */
		free(buf);
	}
	close(fd);
}

/* Drop the oldest attempts beyond KEPT_LOGS_ATTEMPTS. */
static void
kept_logs_prune(const char *root)
{
	struct dirent	**names = NULL;
	char		 *path;
	int		  i, n, kept = 0;

	if ((n = scandir(root, &names, NULL, alphasort)) < 0)
		return;
	for (i = n - 1; i >= 0; i--) {
		if (names[i]->d_name[0] != '.' &&
		    ++kept > KEPT_LOGS_ATTEMPTS) {
			xasprintf(&path, "%s/%s", root, names[i]->d_name);
			rm_rf(path, NULL);
			free(path);
		}
		free(names[i]);
	}
	free(names);
}

char *
kept_logs_save(const char *gen_dir, const char *root, const char *label,
    const char *error)
{
	struct dirent	*de;
	struct tm	 tm;
	DIR		*d;
	char		*kept, *from, *to, *text, *at, stamp[32];
	size_t		 len;
	time_t		 now;

	now = time(NULL);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
	xasprintf(&kept, "%s/%s-%s", root, stamp, label);
	if (mkdir_p(kept, 0700, NULL) != 0 || (d = opendir(gen_dir)) == NULL) {
		free(kept);
		return xstrdup(error);
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".log") != 0)
			continue;
		xasprintf(&from, "%s/%s", gen_dir, de->d_name);
		xasprintf(&to, "%s/%s", kept, de->d_name);
		if (rename(from, to) == 0)
			kept_logs_tail(to, KEPT_LOGS_MAX);
		free(from);
		free(to);
	}
	closedir(d);
	kept_logs_prune(root);
	/* "CRIU log: <gen_dir>/restore.log" -> "<kept>/restore.log" */
	len = strlen(gen_dir);
	if ((at = strstr(error, gen_dir)) != NULL &&
	    (at[len] == '/' || at[len] == '\0'))
		xasprintf(&text, "%.*s%s%s", (int)(at - error), error, kept,
		    at + len);
	else
		xasprintf(&text, "%s (CRIU's logs kept in %s)", error, kept);
	free(kept);
	return text;
}
