/* Allocation that never returns NULL: out of memory is fatal, so callers
 * keep only their real error paths. */
#ifndef TERN_XMALLOC_H
#define TERN_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	     __attribute__((format(printf, 2, 3)));
int	 xvasprintf(char **, const char *, va_list)
	     __attribute__((format(printf, 2, 0)));

/* Set *cause (if cause is not NULL) to a formatted message the caller frees. */
void	 set_cause(char **, const char *, ...)
	     __attribute__((format(printf, 2, 3)));

#endif
