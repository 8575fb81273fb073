/* One logging vocabulary for every tern process.
 *
 * Each .c file may define LOG_MODULE ("net.tls", "migrate", ...) before
 * including this header; the module selects the level from the filters
 * (log_set_filters) and prefixes every line.  log_warn appends strerror(errno),
 * log_warnx does not; fatal/fatalx log and exit(1). */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>

#ifndef LOG_MODULE
#define LOG_MODULE "tern"
#endif

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Start logging: to stderr when foreground, else to syslog as ident. */
void	 log_init(const char *ident, int foreground);
/* "info" or "tls:debug migrate:warn *:info"; returns -1 and *cause on error. */
int	 log_set_filters(const char *, char **cause);
int	 log_level_parse(const char *, enum log_level *);
int	 log_enabled(const char *module, enum log_level);

void	 log_msg(const char *module, enum log_level, int with_errno,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	 log_vmsg(const char *module, enum log_level, int with_errno,
	     const char *fmt, va_list) __attribute__((format(printf, 4, 0)));
void	 log_fatal(const char *module, int with_errno, const char *fmt, ...)
	     __attribute__((format(printf, 3, 4), noreturn));

#define log_error(...) log_msg(LOG_MODULE, LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_MODULE, LOG_LEVEL_WARN, 1, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_MODULE, LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_MODULE, LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) do {						\
	if (log_enabled(LOG_MODULE, LOG_LEVEL_DEBUG))			\
		log_msg(LOG_MODULE, LOG_LEVEL_DEBUG, 0, __VA_ARGS__);	\
} while (0)
#define fatal(...)  log_fatal(LOG_MODULE, 1, __VA_ARGS__)
#define fatalx(...) log_fatal(LOG_MODULE, 0, __VA_ARGS__)

#endif
