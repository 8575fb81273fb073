/* Small helpers shared by every tern process. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

uint64_t	now_ns(void);		/* monotonic */
uint64_t	now_ms(void);		/* monotonic */
/* A host (and instance) name as tern uses it: 1..63 of [a-z0-9-], not
 * starting or ending with '-'.  check: len bytes of s, 0 or -1 and *cause
 * saying what is wrong (cause may be NULL). */
int		host_name_check(const char *s, size_t len, char **cause);
int		host_name_valid(const char *);
/* Read a whole file of at most max bytes into a NUL-terminated buffer
 * (caller frees); NULL and *cause (naming the file) on error. */
char		*read_file_bounded(const char *path, size_t max, size_t *len,
		    char **cause);
/* From /proc/PID/stat (a process or a thread): its state letter ('R',
 * 'S', 'D', 'T', 'Z', ...), if ppid is not NULL its parent, and if
 * cpu_ticks is not NULL the user and system time it has run, in clock
 * ticks.  -1 if it is gone. */
int		proc_stat(pid_t pid, char *state, pid_t *ppid,
		    uint64_t *cpu_ticks);
/* A child of ours in process group pgrp, or 0: what a process of that
 * group forked as its sibling (clone's CLONE_PARENT, as CRIU restores a
 * tree's init).  While we have not reaped it, it keeps pgrp in use. */
pid_t		proc_child_in_group(pid_t pgrp);
/* What the kernel says this host can still give without swapping
 * (MemAvailable), in bytes; 0 if it does not say. */
uint64_t	mem_available(void);
/* "10.1.2.3:7480" or "[::1]:7480" into ss; -1 and *cause on error. */
int		sockaddr_parse(const char *addr, int port,
		    struct sockaddr_storage *ss, char **cause);
/* Format a byte count as "1.5 GiB". */
void		format_bytes(char *buf, size_t len, uint64_t bytes);
/* Create dir and parents with mode, each new one fsync'd in its parent;
 * -1 and *cause on error (also where a component is not a directory). */
int		mkdir_p(const char *dir, unsigned mode, char **cause);
/* fsync the directory that holds path. */
int		fsync_parent(const char *path, char **cause);
/* Write text to path through a temporary file of its own, fsync, rename,
 * fsync the directory: all or nothing, and durable once it returns. */
int		write_file_atomic(const char *path, const char *text, char **cause);
/* The same for len bytes of data. */
int		write_file_atomic_buf(const char *path, const void *data,
		    size_t len, char **cause);
/* Remove path and everything below it (symlinks are not followed). */
int		rm_rf(const char *path, char **cause);

/* One line of /proc/PID/mountinfo ("ID PARENT MAJ:MIN ROOT MOUNTPOINT
 * OPTIONS ... - FSTYPE SOURCE ..."), split in place: root and mountpoint
 * with mountinfo's octal escapes (\040 for a space) undone. */
struct mountinfo_line {
	unsigned	 major, minor;
	char		*root;
	char		*mountpoint;
	char		*fstype;
};
/* 0, or -1 for a line of another shape. */
int		mountinfo_parse(char *line, struct mountinfo_line *);

#endif
