/* wl: small workloads, one behaviour each, that check their own state
 * after a checkpoint, restore or migration (in the manner of CRIU's zdtm
 * tests; our own code).  See wl.c for how they run, docs/workloads.md for
 * the list. */
#ifndef WL_H
#define WL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WL_NET		0x1	/* wants a network namespace of its own */

/* How long a check waits for something that should come at once (a
 * byte, an event, a timer's tick): long enough for a loaded machine. */
#define WL_WAIT_MS	5000

struct workload {
	const char	*name;
	const char	*what;
	int		(*setup)(void);
	/* Repeatable: leaves the state as it found it. */
	int		(*verify)(void);
	unsigned	 flags;
};

extern const struct workload wl_ipc[], wl_net[], wl_mem[], wl_proc[],
    wl_sig[], wl_file[];

/* The reason of the last failure; wl_fail sets it and returns -1. */
extern char	wl_why[512];
int	wl_fail(const char *, ...) __attribute__((format(printf, 1, 2)));
int	wl_fail_errno(const char *);

void	wl_fill(void *, size_t, uint32_t);
int	wl_same(const void *, size_t, uint32_t, const char *);
int	wl_write_all(int, const void *, size_t, const char *);
int	wl_read_all(int, void *, size_t, const char *);
int	wl_readable(int, int);
int	wl_proc_state(pid_t, char *);
int	wl_proc_ppid(pid_t, pid_t *);
void	wl_msleep(long);
pid_t	wl_fork(void);

#endif
