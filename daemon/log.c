#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define LOG_MODULE "log"
#include "daemon/log.h"
#include "daemon/sanitize.h"
#include "daemon/xmalloc.h"

#define LOG_MAX_FILTERS 32

struct log_filter {
	char		 module[32];	/* "" matches every module */
	enum log_level	 level;
};

static int			 log_foreground = 1;
static enum log_level		 log_default = LOG_LEVEL_INFO;
static struct log_filter	 log_filters[LOG_MAX_FILTERS];
static int			 log_nfilters;

static const char *const log_level_names[] = {
	"error", "warn", "info", "debug"
};

void
log_init(const char *ident, int foreground)
{
	log_foreground = foreground;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_level_parse(const char *s, enum log_level *level)
{
	size_t	i;

	for (i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int
log_set_filters(const char *spec, char **cause)
{
	struct log_filter	 filters[LOG_MAX_FILTERS];
	enum log_level		 deflevel = LOG_LEVEL_INFO, level;
	char			*copy, *word, *save = NULL, *colon;
	int			 n = 0, rc = -1;

	copy = xstrdup(spec);
	for (word = strtok_r(copy, " \t,", &save); word != NULL;
	    word = strtok_r(NULL, " \t,", &save)) {
		colon = strrchr(word, ':');
		if (log_level_parse(colon != NULL ? colon + 1 : word, &level) != 0) {
			set_cause(cause, "unknown log level in \"%s\" "
			    "(use error, warn, info or debug)", word);
			goto out;
		}
		if (colon == NULL || (colon - word == 1 && word[0] == '*')) {
			deflevel = level;
			continue;
		}
		if (n == LOG_MAX_FILTERS || (size_t)(colon - word) >=
		    sizeof filters[0].module || colon == word) {
			set_cause(cause, "bad log filter \"%s\"", word);
			goto out;
		}
		memcpy(filters[n].module, word, (size_t)(colon - word));
		filters[n].module[colon - word] = '\0';
		filters[n].level = level;
		n++;
	}
	memcpy(log_filters, filters, sizeof filters);
	log_nfilters = n;
	log_default = deflevel;
	rc = 0;
out:
	free(copy);
	return rc;
}

/* A filter "net" covers "net" and "net.tls"; the longest match wins. */
static enum log_level
log_level_for(const char *module)
{
	enum log_level	 level = log_default;
	size_t		 best = 0, len;
	int		 i;

	for (i = 0; i < log_nfilters; i++) {
		len = strlen(log_filters[i].module);
		if (strncmp(module, log_filters[i].module, len) != 0)
			continue;
		if (module[len] != '\0' && module[len] != '.')
			continue;
		if (len > best) {
			best = len;
			level = log_filters[i].level;
		}
	}
	return level;
}

int
log_enabled(const char *module, enum log_level level)
{
	return level <= log_level_for(module);
}

void
log_vmsg(const char *module, enum log_level level, int with_errno,
    const char *fmt, va_list ap)
{
	static const int	 prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char			 raw[2048], msg[4096], stamp[32];
	int			 saved = errno;
	struct timespec		 ts;
	struct tm		 tm;

	if (!log_enabled(module, level))
		return;
	vsnprintf(raw, sizeof raw, fmt, ap);
	if (with_errno) {
		size_t len = strlen(raw);
		snprintf(raw + len, sizeof raw - len, ": %s", strerror(saved));
	}
	/* One line per message whatever a peer, a container or CRIU put
	 * into the strings it quotes. */
	sanitize_buf(msg, sizeof msg, raw, strlen(raw));
	if (log_foreground) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_level_names[level], module, msg);
	} else
		syslog(prio[level], "%s %s: %s", log_level_names[level], module,
		    msg);
	errno = saved;
}

void
log_msg(const char *module, enum log_level level, int with_errno,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(module, level, with_errno, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *module, int with_errno, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(module, LOG_LEVEL_ERROR, with_errno, fmt, ap);
	va_end(ap);
	exit(1);
}
