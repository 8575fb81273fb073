/* What CRIU 4.1.1 dumps without error but restores wrong.
 *
 * Two kernel objects come back from a restore in another state than they
 * were dumped in, silently (both reproduced with criu dump and criu
 * restore by hand, no tern; docs/workloads.md):
 *
 *   - an eventfd made with EFD_SEMAPHORE comes back as a counting one
 *     (CRIU's image keeps the file's flags, not the eventfd's own);
 *   - a periodic timerfd whose expiry was not read yet shows it_value 0
 *     (the kernel re-arms it only on read); CRIU arms it again with that
 *     value, which disarms it for good.
 *
 * A move or a checkpoint of such a tree would hand back a program that
 * no longer works, so tern refuses it and says which descriptor. */
#ifndef TERN_CHECKPOINT_RESTORE_LIMITS_H
#define TERN_CHECKPOINT_RESTORE_LIMITS_H

#include <sys/types.h>

/* 1 and *why (naming the process, the descriptor and what CRIU would
 * restore wrong) when one of pids (a container's processes) holds such a
 * descriptor; 0 if none does; 1 too, saying so, past the number of
 * descriptors tern inspects (a workload must not make ternd read
 * forever).  A process that exits meanwhile is skipped. */
int	restore_limits_pids(const pid_t *pids, size_t n, char **why);

/* The verdict on one descriptor: link is its /proc/PID/fd link
 * ("anon_inode:[eventfd]"), fdinfo the text of /proc/PID/fdinfo/FD.
 * NULL if CRIU restores it as it is, else a static phrase saying what
 * CRIU would get wrong. */
const char *restore_limits_fd(const char *link, const char *fdinfo);

#endif
