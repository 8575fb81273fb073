/* Text that came from outside (a peer, a container, CRIU's logs, ternd
 * seen from ternctl) is made safe to show before it reaches a log line or
 * a terminal: control characters, ANSI escape sequences, DEL, C1 controls
 * and bytes that are not UTF-8 become visible escapes ("\n", "\x1b") and
 * the result is bounded: one line out for any input.  Backslashes are kept
 * as they are, so escaping twice changes nothing. */
#ifndef TERN_SANITIZE_H
#define TERN_SANITIZE_H

#include <stddef.h>

/* The longest free text kept from a peer (error texts, notes), in bytes
 * of input; longer text is cut and ends in "...". */
#define SANITIZE_TEXT_MAX	4096

/* Escape len bytes of src into dst (size dstlen > 0, always
 * NUL-terminated).  When it does not fit, the output is cut on an escape
 * boundary and ends in "...".  Returns the length written. */
size_t		 sanitize_buf(char *dst, size_t dstlen, const char *src,
		     size_t len);
/* A new string (caller frees) with the first max bytes of s escaped; "..."
 * marks a cut. */
char		*sanitize_dup(const char *s, size_t max);
/* 1 when s needs no escaping (printable UTF-8). */
int		 sanitize_clean(const char *s);

#endif
