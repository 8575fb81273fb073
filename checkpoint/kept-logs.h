/* The CRIU logs of a failed attempt, kept after its images go.
 *
 * A refused restore quotes CRIU and names its log; the incoming copy it
 * belonged to is then deleted.  The logs move first to
 * ROOT/TIME-LABEL/ (TIME in UTC, so the oldest sort first), each cut to
 * its last KEPT_LOGS_MAX bytes (where CRIU says what failed), and only
 * the KEPT_LOGS_ATTEMPTS newest attempts stay. */
#ifndef TERN_CHECKPOINT_KEPT_LOGS_H
#define TERN_CHECKPOINT_KEPT_LOGS_H

#define KEPT_LOGS_ATTEMPTS	10
#define KEPT_LOGS_MAX		(4u << 20)

/* Move gen_dir's *.log under root; return error with gen_dir replaced by
 * the place they went (or with that place added), for the caller to
 * free.  Blocking but brief (renames and one bounded copy). */
char	*kept_logs_save(const char *gen_dir, const char *root,
	    const char *label, const char *error);

#endif
