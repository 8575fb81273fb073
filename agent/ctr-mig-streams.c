/* Container migration, the target's incoming streams: image files,
 * rootfs passes, post-copy's page channel. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define LOG_MODULE "migrate"
#include "agent/ctr-mig-internal.h"
#include "agent/instance-internal.h"
#include "daemon/fault.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"

/* "NAME/GEN/FILE", strictly: a valid instance name, a decimal generation
 * without sign or spaces, one safe file name, nothing else. */
static int
ctr_parse_file_name(const char *s, char *inst, size_t ilen, uint64_t *gen,
    char *file, size_t flen)
{
	const char	*a, *b;
	char		*end;

	if ((a = strchr(s, '/')) == NULL || (b = strchr(a + 1, '/')) == NULL)
		return -1;
	if ((size_t)(a - s) >= ilen || !(a[1] >= '0' && a[1] <= '9'))
		return -1;
	memcpy(inst, s, (size_t)(a - s));
	inst[a - s] = '\0';
	errno = 0;
	*gen = strtoull(a + 1, &end, 10);
	if (errno != 0 || end != b || strlen(b + 1) >= flen)
		return -1;
	strcpy(file, b + 1);
	return host_name_valid(inst) && files_name_valid(file) ? 0 : -1;
}

/* What one incoming migration may ask of the target's disk and fds: a
 * legitimate source sends one image at a time, a few thousand in all. */
#define MIG_MAX_FILES		65536
#define MIG_MAX_STREAMS		16

/* Which migration an image file is for: looked up when it is written
 * (the migration may be gone by then). */
struct ctr_file_ref {
	struct agent	*agent;
	char		*peer;
	uint64_t	 id;
};

/* An image file is written (its stream may have ended before). */
static void
ctr_target_file_written(void *arg, const char *path, const char *error,
    int told)
{
	struct ctr_file_ref	*ref = arg;
	struct migration	*m;
	char			*why;

	m = ctr_find(ref->agent, ref->peer, ref->id, 0);
	free(ref->peer);
	free(ref);
	if (m == NULL)
		return;
	m->files_writing--;
	if (error != NULL && !told && m->state == CTR_RECEIVING) {
		/* The source heard every byte arrive: tell it otherwise. */
		xasprintf(&why, "%s: %s", path, error);
		ctr_target_abort(m, why);
		free(why);
		return;
	}
	ctr_target_maybe_restore(m);
}

int
ctr_accept_file(struct agent *a, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	struct migration	*m;
	struct ctr_file_ref	*ref;
	struct statvfs		 vfs;
	char			 inst[64], file[256], *path;
	uint64_t		 gen, avail;
	int			 rc;

	if (ctr_parse_file_name(name, inst, sizeof inst, &gen, file,
	    sizeof file) != 0) {
		set_cause(cause, "bad image file name \"%s\"", name);
		return -1;
	}
	if ((m = ctr_match_receiving(a, peer, inst, gen, 0)) == NULL) {
		set_cause(cause, "no migration of %s generation %" PRIu64
		    " from %s is receiving", inst, gen, peer);
		return -1;
	}
	if (m->files_in >= MIG_MAX_FILES ||
	    stream_tally_streams(m->tally) >= MIG_MAX_STREAMS) {
		set_cause(cause, "migration of %s from %s: more than %u image "
		    "files, or %u streams at once", inst, peer, MIG_MAX_FILES,
		    MIG_MAX_STREAMS);
		return -1;
	}
	xasprintf(&path, "%s/%" PRIu64 "/%s", m->in->ckpt_dir, gen, file);
	/* Refused before a byte is written, rather than a disk filled for
	 * every other instance of this host. */
	if (statvfs(m->in->ckpt_dir, &vfs) == 0 &&
	    size > (avail = (uint64_t)vfs.f_bavail * vfs.f_frsize)) {
		set_cause(cause, "%s: %" PRIu64 " bytes do not fit in the %"
		    PRIu64 " bytes free on %s (the receiving host's disk is "
		    "full)", path, size, avail, a->ternd->conf->host_name);
		free(path);
		return -1;
	}
	if (fault_hit("mig.target.file") == FAULT_KILL)
		fault_die("mig.target.file");	/* an image on its way */
	ref = xcalloc(1, sizeof *ref);
	ref->agent = a;
	ref->peer = xstrdup(peer);
	ref->id = m->id;
	if ((rc = files_recv(a->ternd->loop, st, path, size, ctr_target_file_written,
	    ref, cause)) == 0) {
		stream_set_tally(st, m->tally);
		m->files_in++;
		m->files_writing++;
	} else {
		free(ref->peer);
		free(ref);
	}
	free(path);
	return rc;
}

/* "NAME/GEN": a rootfs pass for the migration receiving it. */
int
ctr_accept_tree(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct migration	*m;
	char			*end, inst[64];
	const char		*slash;
	uint64_t		 gen;

	if ((slash = strchr(name, '/')) == NULL ||
	    (size_t)(slash - name) >= sizeof inst ||
	    !(slash[1] >= '0' && slash[1] <= '9')) {
		set_cause(cause, "bad rootfs stream name \"%.64s\"", name);
		return -1;
	}
	memcpy(inst, name, (size_t)(slash - name));
	inst[slash - name] = '\0';
	errno = 0;
	gen = strtoull(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || !host_name_valid(inst)) {
		set_cause(cause, "bad rootfs stream name \"%.64s\"", name);
		return -1;
	}
	m = ctr_match_receiving(a, peer, inst, gen, 1);
	if (m == NULL || m->trees_done + m->trees_in >= 2) {
		set_cause(cause, "no migration of %s generation %" PRIu64
		    " from %s takes a rootfs now", inst, gen, peer);
		return -1;
	}
	if (tree_recv(a->ternd->loop, st, m->rootfs, ctr_target_tree_done, m,
	    cause) != 0)
		return -1;
	stream_set_tally(st, m->tally);
	m->trees_in++;
	mig_hold(m->mig);	/* until it is applied (ctr_target_tree_done) */
	return 0;
}

/* "<migration id in hex>/pages" from the peer of that migration. */
int
ctr_accept_relay(struct agent *a, const char *peer, struct stream *st,
    const char *name, char **cause)
{
	struct migration	*m;
	uint64_t		 id;
	char			*end;

	errno = 0;
	id = strtoull(name, &end, 16);
	if (errno != 0 || end == name || strcmp(end, "/pages") != 0 ||
	    !((name[0] >= '0' && name[0] <= '9') ||
	    (name[0] >= 'a' && name[0] <= 'f'))) {
		set_cause(cause, "bad relay name \"%.64s\"", name);
		return -1;
	}
	if ((m = ctr_find(a, peer, id, 1)) == NULL ||
	    !(m->postcopy || m->pipeline) || m->relay == NULL)
		m = ctr_find(a, peer, id, 0);
	if (m == NULL || !(m->postcopy || m->pipeline) || m->relay == NULL) {
		set_cause(cause, "no migration %" PRIx64 " with %s has a page "
		    "channel", id, peer);
		return -1;
	}
	if (relay_attach(m->relay, st, cause) != 0)
		return -1;
	stream_set_tally(st, m->tally);
	return 0;
}
