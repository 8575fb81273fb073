/* The container driver of the instance table (agent/driver.h): CRIU
 * checkpoints, a launcher's init watched by SIGCHLD or, when adopted
 * from an earlier ternd, by a pidfd.  What its files share. */
#ifndef TERN_AGENT_CTR_INSTANCE_H
#define TERN_AGENT_CTR_INSTANCE_H

#include <sys/types.h>

#include "agent/driver.h"

/* 0 if CRIU allows container work here, else -1 with *code, *cause. */
int	ctr_usable(const struct instances *, int *code, char **cause);
/* Its init exited (status from waitpid, -1: unknown, adopted). */
void	ctr_exited(struct instance *, int status);
/* in stops watching its init (killed, or leaving the table with its
 * instance): one of ours not reaped yet is reaped when it exits, not
 * left a zombie. */
void	ctr_forget_init(struct instance *);
/* container_kill of a tree the table does not watch (a restore held or
 * failing: CRIU made its init our child); those of its processes that
 * are our children are reaped when they exit. */
int	ctr_kill_unwatched(struct instance *, char **cause);
/* Hold the init an earlier ternd left running: 0, or -1 with *cause. */
int	ctr_adopt(struct instance *, pid_t, char **cause);
/* A stop-and-copy resumed it before its memory was in: the loader copies
 * that in from its newest checkpoint (in->generation, the move's: none
 * is taken meanwhile), and goes with the instance. */
void	ctr_loader_adopt(struct instance *, struct ckpt_lazy *);
/* That copy failed (why): killed at once, never run on missing memory;
 * stopped, and restorable from in->generation. */
void	ctr_loader_failed(struct instance *, const char *why);
/* Its memory is still coming in: a post-copy's pages from its source
 * (in->paging), or a stop-and-copy's loader from the checkpoint here.
 * CRIU cannot dump it, and nothing may take it from under what fills
 * it.  0 once it is all in, else -1 with *code and a *cause that says
 * when the operator may act (act: "checkpoint it", ...). */
int	ctr_memory_in(const struct instance *, const char *act, int *code,
	    char **cause);

/* ctr-instance-ckpt.c */
int	ctr_checkpoint(struct instance *, int leave_running,
	    instances_done_cb, void *, int *code, char **cause);
int	ctr_restore(struct instance *, const Tern__RestoreRequest *,
	    instances_done_cb, void *, int *code, char **cause);
int	ctr_cancellable(const struct instance *);
void	ctr_cancel(const char *name, const char *why);

/* ctr-instance-load.c */
int	ctr_load(struct instances *, const char *name,
	    const struct inst_saved *, char **cause);

#endif
