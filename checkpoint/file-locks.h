/* File locks that cannot cross with a container.
 *
 * A lock a container holds on a file of storage both hosts share is
 * still held by the frozen source while the target restores: CRIU takes
 * POSIX locks again with F_SETLKW and flocks with a blocking flock, so
 * the restore waits for a source that only lets go once the target has
 * restored.  Such a container cannot move while it holds the lock. */
#ifndef TERN_CHECKPOINT_FILE_LOCKS_H
#define TERN_CHECKPOINT_FILE_LOCKS_H

#include <sys/types.h>

/* 1 and *why (naming the process, the kind of lock and the file's inode)
 * when one of pids (a container's processes) holds a POSIX or flock lock
 * on a file of the filesystem root is on; 0 if none; -1 and *why if it
 * cannot be told. */
int	file_locks_on_shared(const char *root, const pid_t *pids, size_t n,
	    char **why);
/* The same over a /proc/locks text (for tests). */
int	file_locks_find(const char *proc_locks, const pid_t *pids, size_t n,
	    dev_t dev, char **why);

#endif
