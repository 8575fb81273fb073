/* A process that keeps a post-copy's restored tree off the pages it lacks
 * should ternd die.
 *
 * Post-copy's lazy-pages daemon gets its pages through ternd (a socket
 * ternd relays to the source).  Should ternd die, the daemon sees its
 * page source end and exits, ternd's copies of its userfaultfds
 * (ckpt_lazy_hold_uffds) close with ternd, and the kernel drops the
 * ranges with their last file: the tree would read what it lacks as
 * zeros and run on, while the source, told the transfer broke, has its
 * operator restore the checkpoint there.
 *
 * The guard is ternd itself, executed again (`ternd --uffd-guard`) in a
 * session of its own, holding copies of the userfaultfds and a pidfd of
 * the tree's init, and waiting on a pipe from ternd.  Released (every
 * page is in, or ternd killed the tree), it exits.  If the pipe ends
 * unreleased (ternd died), it SIGKILLs the init, which takes the tree's
 * pid namespace with it, and exits once the init is gone.  Until then
 * a fault on a missing page waits. */
#ifndef TERN_CHECKPOINT_UFFD_GUARD_H
#define TERN_CHECKPOINT_UFFD_GUARD_H

#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

#define UFFD_GUARD_ARG	"--uffd-guard"

struct uffd_guard;

/* Start a guard over the tree whose init is init (the only process of a
 * pid namespace of its own), holding copies of uffds.  name is for the
 * log.  NULL and *cause if it cannot start. */
struct uffd_guard	*uffd_guard_start(uv_loop_t *, const char *name,
			    pid_t init, const int *uffds, size_t nuffds,
			    char **cause);
/* Let it go: it exits and the handle is freed.  NULL is a no-op. */
void			 uffd_guard_release(struct uffd_guard *);

/* The guard's side: main runs it for UFFD_GUARD_ARG; its exit status. */
int			 uffd_guard_main(void);

#endif
