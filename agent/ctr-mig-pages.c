/* Container stop-and-copy as a pipeline: the source's CRIU dumps its
 * memory pages straight into a page-server channel that ternd relays to
 * the target's `criu page-server` (one stream each way, inside the mutual
 * TLS link): they are on the target when the dump ends, and the
 * source keeps them as the stream it sent (GEN.pages, written past the
 * page cache where it can) until the target's copy runs.  The other
 * images follow as files.
 *
 * Every byte that crosses towards the page server is CRC32C-summed on
 * both sides (the relay's taps, on the loop thread: one read at a time,
 * at most 1 MiB); the source sends its sum with RESTORE and the target
 * restores only if its own sum of what it received matches. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-mig-internal.h"
#include "agent/instance-internal.h"
#include "checkpoint/ckpt.h"
#include "daemon/crc32c.h"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/mesh.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/relay.h"

/* The fault points below fire only past this much of the stream: in the
 * middle of the pages, not in CRIU's opening requests. */
#define PAGES_FAULT_AT		(1u << 20)
/* mig.pages.corrupt flips a byte in the middle of a read this large
 * (page data: CRIU's requests are 24 bytes between runs of pages). */
#define PAGES_CORRUPT_MIN	(64u << 10)

static void	ctr_pages_tee(struct migration *, const uint8_t *, size_t);

/* Source: what CRIU sent, summed and kept before it goes out.  Fault
 * point mig.pages.corrupt (fail: flip one byte after that, so the
 * target's sum differs). */
static void
ctr_pages_out(void *arg, uint8_t *data, size_t len)
{
	struct migration	*m = arg;

	m->page_crc = crc32c(m->page_crc, data, len);
	m->page_len += len;
	ctr_pages_tee(m, data, len);
	if (m->page_len < PAGES_FAULT_AT)
		return;
	if (len >= PAGES_CORRUPT_MIN &&
	    fault_hit("mig.pages.corrupt") == FAULT_FAIL)
		data[len / 2] ^= 0x01;
}

/* Target: what arrived, summed before the page server gets it.  Fault
 * point mig.pages.server: kill, the page server dies mid-way; stall, it
 * is SIGSTOPped there (the pages stop crossing, as on a link gone
 * silent). */
static void
ctr_pages_in(void *arg, const uint8_t *data, size_t len)
{
	struct migration	*m = arg;

	m->page_crc = crc32c(m->page_crc, data, len);
	m->page_len += len;
	if (m->page_len < PAGES_FAULT_AT || m->lazy == NULL)
		return;
	switch (fault_hit("mig.pages.server")) {
	case FAULT_KILL:
		ckpt_lazy_kill(m->lazy);
		break;
	case FAULT_STALL:
		kill(ckpt_lazy_pid(m->lazy), SIGSTOP);
		break;
	default:
		break;
	}
}

/* Target: why the pages stopped, for the source (which says it to the
 * operator): a full disk plainly, else what broke. */
static char *
ctr_pages_why(struct migration *m, const char *error)
{
	struct statvfs	 vfs;
	char		*why;

	if (m->in != NULL && statvfs(m->in->ckpt_dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20))
		xasprintf(&why, "writing the memory pages into %s: the "
		    "receiving host's disk is full (%s)", m->in->ckpt_dir,
		    error);
	else
		xasprintf(&why, "the page channel from %s broke: %s", m->peer,
		    error);
	return why;
}

/* The channel broke, or drained.  Once every page is in (the dump
 * reached post-dump, the page server ended cleanly) a break changes
 * nothing; before, the table decides (a rollback). */
static void
ctr_pages_relay_done(void *arg, const char *error)
{
	struct migration	*m = arg;
	char			*why;

	if (error == NULL) {
		m->relay_ended = 1;
		log_debug("mig %" PRIx64 " %s: page channel drained", m->id,
		    m->name);
		return;
	}
	if (m->source ? m->state != CTR_OFFERED && m->state != CTR_SYNCING &&
	    m->state != CTR_DUMPING : m->pages_done) {
		log_info("mig %" PRIx64 " %s: page channel: %s (after the "
		    "last page)", m->id, m->name, error);
		return;
	}
	if (m->source)
		xasprintf(&why, "the page channel to %s broke: %s", m->peer,
		    error);
	else
		why = ctr_pages_why(m, error);
	mig_fail(m->mig, MIG_FAIL_CHANNEL, why);
	free(why);
}

/* CRIU splices the pages into the socket in runs of up to 4 MiB: a
 * buffer that takes a run whole saves a wakeup of CRIU and of ternd per
 * 200 KiB (the default).  Root may exceed net.core.wmem_max; else the
 * largest it allows. */
#define PAGES_SOCKBUF		(4 << 20)

static void
ctr_pages_sockbuf(int fd)
{
	int	size = PAGES_SOCKBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

/* The page channel: a socketpair, CRIU gets one end (m->ps_fd), the
 * other is relayed to the peer's as "<id>/pages" (both sides open their
 * direction under that name, as post-copy's channel). */
int
ctr_pages_new(struct migration *m, char **cause)
{
	int	 sv[2];
	char	*what, *name;

	m->tee_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		set_cause(cause, "socketpair: %s", strerror(errno));
		return -1;
	}
	ctr_pages_sockbuf(sv[0]);
	ctr_pages_sockbuf(sv[1]);
	xasprintf(&what, "mig %" PRIx64 " %s pages", m->id, m->name);
	m->relay = relay_new(m->agent->ternd->loop, sv[0], what,
	    ctr_pages_relay_done, m);
	free(what);
	if (m->source)
		relay_set_tap(m->relay, ctr_pages_out, NULL, m);
	else
		relay_set_tap(m->relay, NULL, ctr_pages_in, m);
	xasprintf(&name, "%" PRIx64 "/pages", m->id);
	if (relay_open(m->relay, mesh_mux(m->agent->ternd->mesh, m->peer),
	    name, m->limit, cause) != 0) {
		free(name);
		relay_free(m->relay);
		m->relay = NULL;
		close(sv[1]);
		return -1;
	}
	free(name);
	m->ps_fd = sv[1];
	return 0;
}

/* Target: the page server exited.  Cleanly means CRIU's dump ended its
 * transfer and every page is in the generation (page cache). */
static void
ctr_pages_server_done(void *arg, const char *error)
{
	struct migration	*m = arg;

	char			*why;

	m->lazy = NULL;		/* it exited: the handle is gone */
	if (error != NULL) {
		if (m->state == CTR_RECEIVING && m->relay != NULL &&
		    relay_peer_ended(m->relay) && !m->page_sum_in) {
			/* The source ended the stream before the transfer's
			 * end: its CRIU died there, and it knows why better
			 * than we do.  Its ABORT follows (or a RESTORE we
			 * answer with this). */
			log_warnx("mig %" PRIx64 " %s: %s; waiting for %s's "
			    "word", m->id, m->name, error, m->peer);
			free(m->pages_failed);
			m->pages_failed = ctr_pages_why(m, error);
			return;
		}
		if (m->state == CTR_RECEIVING) {
			why = ctr_pages_why(m, error);
			ctr_target_abort(m, why);
			free(why);
		}
		return;
	}
	m->pages_done = 1;
	log_info("mig %" PRIx64 " %s: every page arrived from %s (%" PRIu64
	    " bytes, %" PRIu64 " ms after the offer)", m->id, m->name, m->peer,
	    m->page_len, now_ms() - m->start_ms);
	ctr_target_maybe_restore(m);
}

/* Target: CRIU's page server on our end of the channel, writing into
 * the incoming generation. */
int
ctr_pages_server_start(struct migration *m, char **cause)
{
	struct ckpt_target	t;

	memset(&t, 0, sizeof t);
	t.name = m->in->name;
	t.criu_path = m->agent->ternd->conf->criu_path;
	t.dir = m->in->ckpt_dir;
	t.action_script = m->agent->criu_action;
	m->lazy = ckpt_page_server_start(m->agent->ternd->loop, &t,
	    m->generation, m->ps_fd, ctr_pages_server_done, m, cause);
	close(m->ps_fd);	/* CRIU has it now */
	m->ps_fd = -1;
	return m->lazy != NULL ? 0 : -1;
}

/* Target: the page server failed before; the source's RESTORE came. */
void
ctr_pages_failed_abort(struct migration *m)
{
	char	*why = m->pages_failed;

	m->pages_failed = NULL;
	ctr_target_abort(m, why);
	free(why);
}

/* Target: the pages are all here and the source's sum came. */
int
ctr_pages_ready(struct migration *m)
{
	return !m->pipeline || (m->pages_done && m->page_sum_in);
}

/* Target, before the restore: what arrived is what the source sent. */
int
ctr_pages_check(struct migration *m, char **why)
{
	if (m->page_len == m->peer_len && m->page_crc == m->peer_crc) {
		log_info("mig %" PRIx64 " %s: page stream checked: %" PRIu64
		    " bytes, crc32c %08x as %s sent them", m->id, m->name,
		    m->page_len, m->page_crc, m->peer);
		return 0;
	}
	xasprintf(why, "the memory pages from %s arrived damaged (%" PRIu64
	    " bytes, crc32c %08x, where %s sent %" PRIu64 " bytes, crc32c "
	    "%08x): refused before the restore; %s keeps running there",
	    m->peer, m->page_len, m->page_crc, m->peer, m->peer_len,
	    m->peer_crc, m->name);
	return -1;
}

/* Source: RESTORE, with the sum of the pages (final: the page server
 * answered CRIU's last request before post-dump came). */
int
ctr_pages_send_restore(struct migration *m)
{
	Envelope		env;
	Tern__MigrateStep	ms = TERN__MIGRATE_STEP__INIT;
	char			*cause = NULL;
	int			 rc;

	if (!m->pipeline)
		return ctr_send_step(m, TERN__MIGRATE_STEP__STEP__RESTORE, NULL);
	msg_init(&env, 0);
	ms.migration = m->id;
	ms.step = TERN__MIGRATE_STEP__STEP__RESTORE;
	ms.has_page_crc = 1;
	ms.page_crc = m->page_crc;
	ms.has_page_bytes = 1;
	ms.page_bytes = m->page_len;
	env.body_case = TERN__ENVELOPE__BODY_MIGRATE_STEP;
	env.migrate_step = &ms;
	if ((rc = mig_send(m->mig, &env, &cause)) != 0) {
		log_debug("mig %" PRIx64 " %s: RESTORE: %s", m->id, m->name,
		    cause);
		free(cause);
	}
	return rc;
}

/* Source: the generation's pages are kept here too, as the stream CRIU
 * sends (the pages never cross our disk twice: written once, read back
 * only if this copy is ever restored).  Until the target confirms, it is
 * the container's only copy that survives this host's ternd (the target's
 * is not durable before it runs). */
void
ctr_pages_tee_open(struct migration *m)
{
	char	*path;
	/* O_DSYNC: each block is on stable storage when its write
	 * returns, while CRIU still dumps.  The commit needs this copy
	 * durable; left to one fsync at post-dump, every block still in a
	 * write-back cache (a virtual disk's, the host's) was flushed
	 * inside the freeze: 0.47 to 0.70 s per GiB here, 5 ms with it. */
	int	 flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DSYNC;

	xasprintf(&m->tee_gen, "%s/%" PRIu64, m->in->ckpt_dir, m->generation);
	path = ckpt_pages_stream_path(m->tee_gen);
	/* Straight to the disk where the file system allows it: a page
	 * cache as large as the memory is new memory, the dearest thing
	 * on a host whose hypervisor takes freed memory back (writing
	 * 1 GiB here: 1.9 s buffered, 0.9 s direct). */
	m->tee_fd = open(path, flags | O_DIRECT, 0600);
	if (m->tee_fd == -1 && errno == EINVAL)
		m->tee_fd = open(path, flags, 0600);
	if (m->tee_fd == -1) {
		m->tee_errno = errno;
		free(m->sync_error);
		xasprintf(&m->sync_error, "%s: %s", path, strerror(errno));
		log_warnx("mig %" PRIx64 " %s: keeping the pages here: %s",
		    m->id, m->name, m->sync_error);
		m->tee_state = -1;
	}
	free(path);
}

/* Our own copy, as sent, gathered in blocks of TEE_BLOCK bytes (aligned
 * for O_DIRECT, used again while the migration lasts: new memory costs
 * more than the copy into it) and written on the pool; with TEE_BLOCKS
 * blocks (64 MiB) waiting there, CRIU's socket is not read until one is
 * written: a write on the loop would stall every peer's heartbeat for as
 * long as the disk takes (4 MiB O_DSYNC: 6.5 ms on average here, one
 * writer alone; a busy or slow disk takes far longer). */
#define TEE_BLOCK		(4u << 20)
#define TEE_ALIGN		4096u
#define TEE_BLOCKS		16u
_Static_assert(TEE_BLOCKS == sizeof ((struct migration *)0)->tee_spare /
    sizeof (uint8_t *), "tee_spare holds TEE_BLOCKS blocks");

struct ctr_tee_write {
	uv_work_t		 w;
	struct migration	*m;
	uint64_t		 off;
	size_t			 len;		/* a multiple of TEE_ALIGN */
	unsigned		 delay_ms;	/* mig.pages.tee */
	int			 err;
	uint8_t			*block;
};

/* A file system may take O_DIRECT at open and refuse a write: then the
 * page cache after all. */
static int
ctr_pages_pwrite(int fd, const uint8_t *data, size_t len, uint64_t off)
{
	ssize_t	n;
	int	fl;

	while (len > 0) {
		if ((n = pwrite(fd, data, len, (off_t)off)) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL &&
			    (fl = fcntl(fd, F_GETFL)) != -1 &&
			    (fl & O_DIRECT) != 0 &&
			    fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0)
				continue;
			return errno;
		}
		data += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static uint8_t *
ctr_pages_block_get(struct migration *m)
{
	void	*p;

	if (m->tee_nspare > 0)
		return m->tee_spare[--m->tee_nspare];
	if ((errno = posix_memalign(&p, TEE_ALIGN, TEE_BLOCK)) != 0)
		fatal("posix_memalign");
	return p;
}

static void
ctr_pages_block_put(struct migration *m, uint8_t *block)
{
	if (m->tee_nspare < TEE_BLOCKS && !m->tee_freed)
		m->tee_spare[m->tee_nspare++] = block;
	else
		free(block);
}

static void
ctr_pages_blocks_free(struct migration *m)
{
	while (m->tee_nspare > 0)
		free(m->tee_spare[--m->tee_nspare]);
	free(m->tee_block);
	m->tee_block = NULL;
}

static void
ctr_pages_tee_fail(struct migration *m, int err)
{
	if (m->tee_state != 0)
		return;
	m->tee_errno = err;
	free(m->sync_error);
	xasprintf(&m->sync_error, "%s.pages: %s", m->tee_gen, strerror(err));
	log_warnx("mig %" PRIx64 " %s: keeping the pages here: %s", m->id,
	    m->name, m->sync_error);
	m->tee_state = -1;
}

static void	ctr_pages_seal_start(struct migration *);

/* The move cannot commit without the source's own copy of the pages (a
 * no-op once it rolls back or has committed). */
static void
ctr_pages_keep_failed(struct migration *m)
{
	int	full = m->tee_errno == ENOSPC || m->tee_errno == EDQUOT;

	ctr_source_fail(m, "this host cannot keep its own copy of the pages "
	    "it sends: %s; %s runs on here (%s, then migrate again)",
	    m->sync_error != NULL ? m->sync_error : "cannot write them",
	    m->name, full ? "free space there" : "see to that file system");
}

static void
ctr_pages_tee_work(uv_work_t *w)
{
	struct ctr_tee_write	*tw = w->data;

	if (tw->delay_ms != 0)		/* a slow disk (fault point) */
		usleep((useconds_t)(tw->delay_ms < 60000 ? tw->delay_ms :
		    60000) * 1000u);

	tw->err = ctr_pages_pwrite(tw->m->tee_fd, tw->block, tw->len, tw->off);
}

static void
ctr_pages_tee_written(uv_work_t *w, int status)
{
	struct ctr_tee_write	*tw = w->data;
	struct migration	*m = tw->m;
	struct mig		*mig = m->mig;

	(void)status;
	m->tee_pending--;
	if (m->tee_paused && m->tee_pending < TEE_BLOCKS) {
		m->tee_paused = 0;
		if (m->relay != NULL)
			relay_pause_out(m->relay, 0);
	}
	if (tw->err != 0)
		ctr_pages_tee_fail(m, tw->err);
	ctr_pages_block_put(m, tw->block);
	free(tw);
	if (m->tee_pending == 0 && m->tee_freed) {
		ctr_pages_free(m);
	} else if (m->tee_state == -1) {
		/* This write failed: never sealed.
		 * The move cannot commit without this copy: stop it now
		 * rather than send the rest for nothing. */
		m->tee_seal_wanted = 0;
		if (m->tee_pending == 0)
			ctr_pages_blocks_free(m);
		if (!mig->finished)
			ctr_pages_keep_failed(m);
	} else if (m->tee_pending == 0 && m->tee_seal_wanted)
		ctr_pages_seal_start(m);
	mig_drop(mig);
}

/* The block gathered so far goes to the file, whole: the last one padded
 * to TEE_ALIGN with zeros (the seal cuts the file to the stream's
 * length). */
static void
ctr_pages_tee_flush(struct migration *m, int from_tap)
{
	struct ctr_tee_write	*tw;
	size_t			 len;

	if (m->tee_block == NULL)
		return;
	len = (m->tee_fill + TEE_ALIGN - 1) / TEE_ALIGN * TEE_ALIGN;
	memset(m->tee_block + m->tee_fill, 0, len - m->tee_fill);
	tw = xmalloc(sizeof *tw);
	tw->w.data = tw;
	tw->m = m;
	tw->off = m->tee_off;
	tw->len = len;
	tw->err = 0;
	tw->block = m->tee_block;
	/* Fault point mig.pages.tee:delay=MS: each block takes MS longer to
	 * write, as on a disk slower than the link. */
	tw->delay_ms = 0;
	if (fault_check("mig.pages.tee", &tw->delay_ms) != FAULT_DELAY)
		tw->delay_ms = 0;
	m->tee_pending++;
	mig_hold(m->mig);
	uv_queue_work(m->agent->ternd->loop, &tw->w, ctr_pages_tee_work,
	    ctr_pages_tee_written);
	if (from_tap && m->tee_pending >= TEE_BLOCKS && !m->tee_paused &&
	    m->relay != NULL) {
		m->tee_paused = 1;
		m->tee_pauses++;
		relay_pause_out(m->relay, 1);
	}
	m->tee_block = NULL;
	m->tee_off += m->tee_fill;
	m->tee_fill = 0;
}

static void
ctr_pages_tee(struct migration *m, const uint8_t *data, size_t len)
{
	size_t	n;

	if (m->tee_fd == -1 || m->tee_state != 0)
		return;
	while (len > 0) {
		if (m->tee_block == NULL)
			m->tee_block = ctr_pages_block_get(m);
		n = TEE_BLOCK - m->tee_fill;
		if (n > len)
			n = len;
		memcpy(m->tee_block + m->tee_fill, data, n);
		m->tee_fill += n;
		data += n;
		len -= n;
		if (m->tee_fill == TEE_BLOCK)
			ctr_pages_tee_flush(m, 1);
	}
}

static void
ctr_pages_seal_work(uv_work_t *w)
{
	struct migration	*m = w->data;

	free(m->sync_error);
	m->sync_error = NULL;
	if (ckpt_pages_stream_seal(m->tee_gen, m->tee_fd, m->page_len,
	    m->page_crc, &m->sync_error) != 0)
		m->tee_state = -1;
}

static void
ctr_pages_sealed(uv_work_t *w, int status)
{
	struct migration	*m = w->data;
	struct mig		*mig = m->mig;
	Tern__MigrateStep	 s = TERN__MIGRATE_STEP__INIT;

	(void)status;
	m->tee_sealing = 0;
	if (m->tee_freed) {
		/* Rolled back meanwhile: nothing waits for it. */
		ctr_pages_free(m);
		mig_drop(mig);
		return;
	}
	close(m->tee_fd);
	m->tee_fd = -1;
	if (m->tee_state == 0)
		m->tee_state = 1;
	log_info("mig %" PRIx64 " %s: timing: the pages kept here sealed %"
	    PRIu64 " ms after the dump (CRIU held back %u times for the "
	    "disk)", m->id, m->name, now_ms() - m->phase_ms, m->tee_pauses);
	if (!mig->finished && m->state != CTR_ABORTING) {
		if (m->tee_state != 1)
			ctr_pages_keep_failed(m);
		else if (m->restored_early) {
			/* The commit waited for this copy: go on. */
			m->restored_early = 0;
			s.migration = m->id;
			s.step = TERN__MIGRATE_STEP__STEP__RESTORED;
			ctr_source_step(m, &s);
		}
	}
	mig_drop(mig);
}

/* Source, at post-dump: every page was written; make them durable while
 * the target restores (the commit waits for it). */
void
ctr_pages_tee_seal(struct migration *m)
{
	if (m->tee_fd == -1 || m->tee_state != 0) {
		m->tee_state = -1;
		ctr_pages_keep_failed(m);
		return;
	}
	ctr_pages_tee_flush(m, 0);	/* CRIU has said all: no pause */
	if (m->tee_pending > 0) {
		m->tee_seal_wanted = 1;	/* ctr_pages_tee_written starts it */
		return;
	}
	ctr_pages_seal_start(m);
}

static void
ctr_pages_seal_start(struct migration *m)
{
	ctr_pages_blocks_free(m);	/* every byte is written */
	m->tee_seal_wanted = 0;
	m->work.data = m;
	m->tee_sealing = 1;
	mig_hold(m->mig);
	uv_queue_work(m->agent->ternd->loop, &m->work, ctr_pages_seal_work,
	    ctr_pages_sealed);
}

/* The migration is over: a stream kept for a copy that never committed
 * goes. */
void
ctr_pages_free(struct migration *m)
{
	free(m->pages_failed);
	m->pages_failed = NULL;
	if (m->tee_gen == NULL)
		return;
	if (m->tee_sealing || m->tee_pending > 0) {
		/* ctr_pages_sealed, ctr_pages_tee_written come back here */
		m->tee_freed = 1;
		return;
	}
	ctr_pages_blocks_free(m);
	if (m->tee_fd != -1)
		close(m->tee_fd);
	m->tee_fd = -1;
	if (m->state != CTR_COMMITTED)
		ckpt_pages_stream_drop(m->tee_gen);
	free(m->tee_gen);
	m->tee_gen = NULL;
}
