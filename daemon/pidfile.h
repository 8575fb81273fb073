/* The pidfile: written exclusively and locked, so a second ternd with the
 * same run_dir refuses to start instead of stealing the sockets. */
#ifndef TERN_PIDFILE_H
#define TERN_PIDFILE_H

/* Returns the locked fd (kept open for the process's life) or -1. */
int	pidfile_create(const char *path, char **cause);
void	pidfile_remove(const char *path, int fd);

#endif
