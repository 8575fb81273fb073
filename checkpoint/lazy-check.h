/* What CRIU's lazy pages (post-copy) cannot carry.
 *
 * A lazy restore fills each process's private memory on demand through
 * userfaultfd, process by process: pages that processes of the tree
 * shared copy-on-write (a fork without exec) arrive as private copies,
 * so the sharing is lost (memory use grows; a program that relies on it
 * breaks), and memory mapped shared between them (anonymous MAP_SHARED,
 * SysV shm, memfd) is not served lazily at all.  Such a tree moves by
 * stop-and-copy, which keeps both. */
#ifndef TERN_CHECKPOINT_LAZY_CHECK_H
#define TERN_CHECKPOINT_LAZY_CHECK_H

#include <sys/types.h>

/* 1 and *why (the first reason found, naming the process) when pids (a
 * container's processes) have memory lazy pages cannot carry; 0 when
 * they have none; 1 too when they cannot be inspected (too many,
 * unreadable), saying so: stop-and-copy is the safe side. */
int	lazy_check_pids(const pid_t *pids, size_t n, char **why);

#endif
