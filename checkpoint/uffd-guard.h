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
 * The guard is ternd itself, executed again (`ternd --uffd-guard`) once,
 * when ternd finds it can do post-copy: starting a process that loads
 * ternd's libraries takes tens of milliseconds of CPU, which no freeze
 * must pay.  It lives in a session of its own and waits on a socket from
 * ternd.  At a resume ternd hands it, over that socket, a pidfd of the
 * tree's init and copies of the userfaultfds; once every page is in (or
 * ternd killed the tree) ternd lets that tree go and the guard closes
 * them.  If the socket ends (ternd died, or stops with a post-copy still
 * under way), the guard SIGKILLs every init it holds, each of which
 * takes its pid namespace with it, and exits once they are all gone.
 * Until then a fault on a missing page waits. */
#ifndef TERN_CHECKPOINT_UFFD_GUARD_H
#define TERN_CHECKPOINT_UFFD_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#define UFFD_GUARD_ARG	"--uffd-guard"
/* The most userfaultfds one tree hands the guard (one message). */
#define UFFD_GUARD_UFFD_MAX	250

/* Start this ternd's guard (once; again if it died).  -1 and *cause if
 * it cannot start: trees then have no guard. */
int		 uffd_guard_start(uv_loop_t *, char **cause);
/* Hand it the tree whose init is init (the only process of a pid
 * namespace of its own) with copies of its userfaultfds (at most
 * UFFD_GUARD_UFFD_MAX).  Returns the tree's ticket, 0 and *cause if the
 * guard did not take it. */
uint64_t	 uffd_guard_hold(pid_t init, const int *uffds, size_t nuffds,
		    char **cause);
/* Let the tree of ticket go (0 is a no-op). */
void		 uffd_guard_let_go(uint64_t ticket);
/* At ternd's stop: the guard exits, killing the trees it still holds
 * (their memory can no longer come); the loop waits for its exit. */
void		 uffd_guard_close(void);

/* The guard's side: main runs it for UFFD_GUARD_ARG; its exit status. */
int		 uffd_guard_main(void);

#endif
