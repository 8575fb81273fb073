/* Named fault points, for tests (as CRIU's fault injection).
 *
 * TERN_FAULT="point:action[,point:action...]" in ternd's environment,
 * read once by fault_init.  A step of a long protocol asks fault_check
 * at its named point; when the point is armed it is logged at warn
 * ("fault point NAME fired: ACTION"), so a test can assert that its
 * fault really fired.  The code at a point carries out the action itself;
 * what it means is the point's to say (documented where it is asked):
 *   kill      a process dies: ternd itself (fault_die) or one it talks to
 *   fail      the step fails as if its own work had failed
 *   delay=MS  the step waits MS milliseconds before going on (the caller
 *             arms a timer; nothing blocks)
 *   stall     the step never goes on (until the operation is cancelled)
 * A point may fire every time (the default), at its first N hits only
 * ("point:action@N"), or at N hits after letting the first K pass
 * ("point:action@N+K": a step that recurs, faulted once it is under way).
 * Unarmed points cost one string compare per armed point. */
#ifndef TERN_FAULT_H
#define TERN_FAULT_H

enum fault_action {
	FAULT_NONE = 0,
	FAULT_FAIL,
	FAULT_KILL,
	FAULT_DELAY,
	FAULT_STALL,
};

/* Parse spec (NULL or "" arms nothing).  -1 and *cause if it is malformed:
 * a test that names a fault wrongly must not pass without it. */
int		 fault_init(const char *spec, char **cause);
/* The action armed at point (FAULT_NONE mostly); *ms for FAULT_DELAY. */
enum fault_action fault_check(const char *point, unsigned *ms);
/* The same, for points that take no delay. */
enum fault_action fault_hit(const char *point);
/* "kill" of ternd itself: SIGKILL, now (no cleanup, as a crash). */
void		 fault_die(const char *point) __attribute__((noreturn));
/* A point where only a crash matters: ternd dies there (fault_die) when
 * it is armed with kill; one line at the step a test kills ternd in. */
void		 fault_die_at(const char *point);
void		 fault_fini(void);

#endif
