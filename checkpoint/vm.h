/* VMs on ONE host through libvirt's C API.
 *
 * One connection to the host's libvirtd per ternd.  libvirt's own event
 * loop runs in a thread of ours (it serves the connection's keepalive
 * and its domain events); lifecycle events and the loss of the
 * connection are handed to ternd's libuv loop through an async handle,
 * so the callbacks below run on the loop thread like everything else.
 * When libvirtd goes away the connection is reopened with back-off.
 *
 * Every other call here is blocking (libvirt RPCs, some long: a start, a
 * save, a migration) and safe from any thread: the agent runs them on
 * libuv's thread pool.  Errors are libvirt's own message, prefixed with
 * what was asked. */
#ifndef TERN_CHECKPOINT_VM_H
#define TERN_CHECKPOINT_VM_H

#include <stdint.h>

#include <uv.h>

struct vm_host;

/* What happened to a domain (libvirt's lifecycle events), or with name
 * NULL to the connection. */
enum vm_ev {
	VM_EV_DEFINED,
	VM_EV_UNDEFINED,
	VM_EV_STARTED,
	VM_EV_SUSPENDED,
	VM_EV_RESUMED,
	VM_EV_STOPPED,
	VM_EV_OTHER,
	VM_EV_ITERATION,	/* an outgoing migration starts a memory pass */
	VM_EV_CONN_UP,
	VM_EV_CONN_LOST,
	VM_EV_MIGRATED_OUT,	/* an outgoing migration's job completed */
	VM_EV_POSTCOPY_SWITCH,	/* paused here for QEMU's switch to
				 * post-copy: it took the switch */
};
/* why: libvirt's reason in words ("the guest shut down", "QEMU crashed",
 * "destroyed", ...); detail: for VM_EV_ITERATION the number of the pass
 * that starts, for VM_EV_MIGRATED_OUT QEMU's downtime in ms (-1: not
 * given), else 1 when the event is a migration's doing. */
typedef void (*vm_event_cb)(void *arg, const char *name, enum vm_ev,
    const char *why, int detail);

/* Connect to uri (e.g. "qemu:///system").  NULL and *cause if libvirtd
 * does not answer. */
struct vm_host	*vm_host_open(uv_loop_t *, const char *uri, vm_event_cb,
		    void *arg, char **cause);
/* Stop the event thread and close the connection (running VMs go on). */
void		 vm_host_close(struct vm_host *);
/* Connected now? */
int		 vm_host_up(struct vm_host *);
const char	*vm_host_uri(const struct vm_host *);

/* What vm_state reports. */
enum vm_run {
	VM_ABSENT,		/* no such domain */
	VM_SHUTOFF,
	VM_RUNNING,
	VM_PAUSED,		/* paused (not by a migration) */
	VM_INCOMING,		/* paused: a migration into it runs */
	VM_POSTCOPY,		/* running or stuck in post-copy: its
				 * memory is split between two hosts */
	VM_OTHER,		/* shutting down, crashed, pmsuspended */
};

/* The <name> of a domain XML text, or NULL and *cause. */
char		*vm_xml_name(const char *xml, char **cause);

int		 vm_state(struct vm_host *, const char *name, enum vm_run *,
		    int *reason, char **cause);
/* Define (persistently) a domain from XML; it must not exist yet. */
int		 vm_define(struct vm_host *, const char *xml, char **cause);
int		 vm_undefine(struct vm_host *, const char *name, char **cause);
int		 vm_start(struct vm_host *, const char *name, char **cause);
/* Resume a paused domain. */
int		 vm_resume(struct vm_host *, const char *name, char **cause);
/* ACPI power button: the guest decides. */
int		 vm_shutdown(struct vm_host *, const char *name, char **cause);
/* Pull the plug; a domain already off is fine. */
int		 vm_destroy(struct vm_host *, const char *name, char **cause);
/* The persistent definition, as libvirt holds it (malloc'd). */
char		*vm_xml(struct vm_host *, const char *name, char **cause);
/* Memory in bytes the domain may use (its current balloon size). */
int		 vm_memory(struct vm_host *, const char *name, uint64_t *,
		    char **cause);

/* Save the running domain's memory and device state to path; the domain
 * is stopped after.  Restore starts it again from such a file, with xml
 * (vm_restore_xml) in place of the one in the file when not NULL: libvirt
 * refuses it if it does not fit the saved state (its ABI, its uuid). */
int		 vm_save(struct vm_host *, const char *name, const char *path,
		    char **cause);
int		 vm_restore(struct vm_host *, const char *path, const char *xml,
		    char **cause);
/* The same state, written while the domain runs (libvirt's external
 * memory snapshot, no snapshot metadata kept): paused only for QEMU's
 * switch-over, whose length goes to *downtime_ms.  The file restores
 * with vm_restore.  1 and nothing done when the domain has disks, whose
 * contents such a snapshot would leave behind: use vm_save then. */
int		 vm_snapshot_live(struct vm_host *, const char *name,
		    const char *path, uint64_t *downtime_ms, char **cause);
/* Memory and disks as of one instant, the domain running on (docs/ha.md
 * "Replicated checkpoints"): a live external snapshot writes the memory
 * to path and moves every disk onto a new overlay (IMAGE.tern-overlay,
 * beside it), leaving the images as they were at that instant; each is
 * copied to dir/disk-TARGET (fsync'd), the targets and images listed in
 * dir/DISKS, and the overlays are committed back (an active block
 * commit, pivoted) and removed.  Only writable file disks: another kind
 * is refused before anything is done.  The guest is paused for QEMU's
 * switch-over alone (*downtime_ms). */
#define VM_DISK_PREFIX		"disk-"
#define VM_DISKS_LIST		"DISKS"
/* Beside an image a restore replaced, until it settles. */
#define VM_DISK_OLD_SUFFIX	".tern-old"
int		 vm_snapshot_disks(struct vm_host *, const char *name,
		    const char *path, const char *dir, uint64_t *downtime_ms,
		    char **cause);
/* The disks a generation (dir) carries back at their images' paths
 * (each written beside it, then renamed), for instance name: 0 also when
 * it has none (no DISKS; any other error reading it fails).  xml is the
 * domain's definition on this host (defined here, else from its spec),
 * never the generation's own: each (target, image) pair must be one of
 * its writable file disks, else nothing is written.  All or none: on
 * failure the images already put are back.  Each image replaced is kept
 * (IMAGE.tern-old, a second name: no copy) until vm_disks_settle drops
 * it, once the memory runs on the new one, or vm_disks_rollback puts it
 * back, when the memory could not be restored.  An IMAGE.tern-old found
 * (a restore that did not finish) is refused, never removed: it may be
 * the only copy of the image the domain had. */
int		 vm_disks_put(const char *name, const char *dir,
		    const char *xml, char **cause);
/* After vm_disks_put: each image as it was before (an image that was
 * not there is removed again).  -1 when one could not be, warned of. */
int		 vm_disks_rollback(const char *name, const char *dir,
		    const char *xml);
void		 vm_disks_settle(const char *name, const char *dir,
		    const char *xml);
/* vm_disks_put's checks alone, nothing written. */
int		 vm_disks_allowed(const char *dir, const char *xml,
		    char **cause);
/* The definition a generation restores with here (docs/ha.md "A VM's
 * generation"): mine (the domain defined here, else its spec) with the
 * <uuid> of theirs (the generation's own definition, a peer's) swapped in,
 * nothing else of theirs.  NULL and *cause if theirs has no valid uuid. */
char		*vm_restore_xml(const char *mine, const char *theirs,
		    char **cause);
/* 0 if every disk of xml is one vm_snapshot_disks can take (a writable
 * file disk), else -1 and *cause says which disk and why. */
int		 vm_disks_protectable(const char *name, const char *xml,
		    char **cause);

/* A live migration job's numbers (libvirt's virDomainGetJobStats). */
struct vm_job {
	int		 active;	/* a job runs (or it completed) */
	uint64_t	 elapsed_ms;
	uint64_t	 data_total;
	uint64_t	 data_processed;
	uint64_t	 data_remaining;
	uint64_t	 mem_bps;	/* transfer rate */
	uint64_t	 dirty_rate;	/* pages/s */
	uint64_t	 page_size;
	uint64_t	 iteration;	/* memory passes so far */
	uint64_t	 postcopy_requests;
	uint64_t	 downtime_ms;	/* expected (running), measured (done) */
	int		 throttle;	/* auto-converge's CPU throttle, % */
};
/* completed: the last finished job's numbers. */
int		 vm_job_stats(struct vm_host *, const char *name,
		    int completed, struct vm_job *, char **cause);
int		 vm_job_abort(struct vm_host *, const char *name, char **cause);
int		 vm_postcopy_start(struct vm_host *, const char *name,
		    char **cause);
int		 vm_set_max_downtime(struct vm_host *, const char *name,
		    uint32_t ms, char **cause);

struct vm_migrate_args {
	const char	*dconnuri;	/* the target libvirtd, as the source's
					 * libvirtd reaches it */
	const char	*uri;		/* QEMU's stream: "unix:///path" */
	uint64_t	 bandwidth;	/* bytes/s, 0 = unlimited */
	int		 postcopy;	/* allow a switch to post-copy */
	int		 auto_converge;
	int		 ac_initial;	/* its first CPU throttle, % */
	int		 ac_increment;	/* added at every pass that does
					 * not converge */
	int		 paused;	/* the target's copy stays paused
					 * (a protected VM: it resumes once
					 * the coordinator's store moved it) */
};
/* Peer-to-peer live migration; returns when it finished (0: the domain
 * runs on the target and is gone here) or failed (libvirt rolled back). */
int		 vm_migrate(struct vm_host *, const char *name,
		    const struct vm_migrate_args *, char **cause);

#endif
