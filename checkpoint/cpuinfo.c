#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "ckpt.cpuinfo"
#include "checkpoint/cpuinfo.h"
#include "checkpoint/criu.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define CPUINFO_IMG		"cpuinfo.img"
#define CPUINFO_CHECK_LOG	"cpuinfo-check.log"
#define CPUINFO_DUMP_LOG	"cpuinfo-dump.log"
/* CRIU's cpu_cap bits (cr_options.h): what `criu restore` checks by
 * default.  CPU_CAP_CPU (every capability bit equal) would refuse hosts
 * that differ only in things no process sees, such as microcode flags. */
#define CRIU_CPU_CAP_FPU	(1u << 0)
#define CRIU_CPU_CAP_INS	(1u << 2)

struct cpuinfo_op {
	uv_loop_t		*loop;
	char			*criu_path;
	char			*work_dir;
	int			 dir_fd;
	int			 checking;	/* else a dump */
	int			 looking;	/* check failed: dumping ours */
	uint8_t			*img;		/* check: the image offered */
	size_t			 len;
	char			*problem;	/* check: CRIU's reason */
	cpuinfo_dump_cb		 dump_cb;
	cpuinfo_check_cb	 check_cb;
	void			*arg;
};

static void	cpuinfo_call(struct cpuinfo_op *, int, const char *);

static char *
cpuinfo_path(struct cpuinfo_op *op, const char *file)
{
	char	*path;

	xasprintf(&path, "%s/%s", op->work_dir, file);
	return path;
}

static void
cpuinfo_unlink(struct cpuinfo_op *op, const char *file)
{
	char	*path = cpuinfo_path(op, file);

	if (unlink(path) != 0 && errno != ENOENT)
		log_warn("%s", path);
	free(path);
}

/* Leave work_dir as it was, then answer. */
static void
cpuinfo_finish(struct cpuinfo_op *op, uint8_t *img, size_t len,
    const char *error)
{
	cpuinfo_unlink(op, CPUINFO_IMG);
	cpuinfo_unlink(op, CPUINFO_CHECK_LOG);
	cpuinfo_unlink(op, CPUINFO_DUMP_LOG);
	if (op->checking)
		op->check_cb(error, op->arg);
	else
		op->dump_cb(img, len, error, op->arg);
	if (op->dir_fd != -1)
		close(op->dir_fd);
	free(op->problem);
	free(op->img);
	free(op->work_dir);
	free(op->criu_path);
	free(op);
}

/* "(00.035125) Error (criu/arch/x86/cpu.c:223): cpu: CPU xsave size
 * mismatch (11009/11008)" is, for the operator, "CPU xsave size mismatch
 * (11009/11008)".  lines is criu_log_errors' " | "-separated list. */
static char *
cpuinfo_tidy(const char *lines)
{
	char		*copy, *seg, *next, *out = NULL, *s;
	const char	*p;

	copy = xstrdup(lines);
	for (seg = copy; seg != NULL; seg = next) {
		if ((next = strstr(seg, " | ")) != NULL) {
			*next = '\0';
			next += 3;
		}
		p = (p = strstr(seg, "): ")) != NULL ? p + 3 : seg;
		if (strncmp(p, "cpu: ", 5) == 0)
			p += 5;
		if (out == NULL)
			out = xstrdup(p);
		else {
			xasprintf(&s, "%s; %s", out, p);
			free(out);
			out = s;
		}
	}
	free(copy);
	return out;
}

/* Why CRIU said no: the errors in its log, else its answer. */
static char *
cpuinfo_reason(struct cpuinfo_op *op, const CriuResp *resp, const char *log)
{
	char	*path, *errors, *why;

	path = cpuinfo_path(op, log);
	errors = criu_log_errors(path);
	free(path);
	if (errors != NULL) {
		why = cpuinfo_tidy(errors);
		free(errors);
		return why;
	}
	return resp != NULL ? criu_error(resp) : xstrdup("criu failed");
}

/* Our own image is in work_dir now: name what the offered CPU had. */
static void
cpuinfo_looked(struct cpuinfo_op *op, int ok)
{
	char	*path, *here, *missing = NULL, *problem;
	size_t	 len;

	if (ok) {
		path = cpuinfo_path(op, CPUINFO_IMG);
		if ((here = read_file_bounded(path, CPUINFO_MAX, &len,
		    NULL)) != NULL) {
			missing = cpuinfo_missing(op->img, op->len,
			    (uint8_t *)here, len);
			free(here);
		}
		free(path);
	}
	if (missing != NULL)
		xasprintf(&problem, "CPU lacks %s (CRIU cpuinfo check: %s)",
		    missing, op->problem);
	else
		xasprintf(&problem, "CRIU cpuinfo check: %s", op->problem);
	free(missing);
	cpuinfo_finish(op, NULL, 0, problem);
	free(problem);
}

static void
cpuinfo_answer(struct criu *c, const CriuResp *resp, const char *error,
    void *arg)
{
	struct cpuinfo_op	*op = arg;
	char			*why, *path, *cause = NULL;
	uint8_t			*img;
	size_t			 len;

	criu_close(c);
	if (op->looking) {
		cpuinfo_looked(op, resp != NULL && resp->success);
		return;
	}
	if (resp == NULL) {
		xasprintf(&why, "%s swrk: %s", op->criu_path, error);
		cpuinfo_finish(op, NULL, 0, why);
		free(why);
		return;
	}
	if (!op->checking) {
		if (!resp->success) {
			why = cpuinfo_reason(op, resp, CPUINFO_DUMP_LOG);
			xasprintf(&cause, "CRIU cpuinfo dump: %s", why);
			free(why);
			cpuinfo_finish(op, NULL, 0, cause);
			free(cause);
			return;
		}
		path = cpuinfo_path(op, CPUINFO_IMG);
		img = (uint8_t *)read_file_bounded(path, CPUINFO_MAX, &len,
		    &cause);
		free(path);
		/* img goes to the caller, who frees it */
		cpuinfo_finish(op, img, len, cause);
		free(cause);
		return;
	}
	if (resp->success) {
		cpuinfo_finish(op, NULL, 0, NULL);
		return;
	}
	/* CRIU says only "instruction capabilities do not match": ask it
	 * for our own image too, to name the features. */
	op->problem = cpuinfo_reason(op, resp, CPUINFO_CHECK_LOG);
	op->looking = 1;
	cpuinfo_call(op, CRIU_REQ_TYPE__CPUINFO_DUMP, CPUINFO_DUMP_LOG);
}

/* One request in its own swrk. */
static void
cpuinfo_call(struct cpuinfo_op *op, int type, const char *log)
{
	CriuReq		 req = CRIU_REQ__INIT;
	CriuOpts	 opts = CRIU_OPTS__INIT;
	struct criu	*c;
	char		*cause = NULL;

	if ((c = criu_spawn(op->loop, op->criu_path, NULL, 0, &cause)) == NULL)
		goto fail;
	req.type = type;
	/* Without opts CRIU's worker fails without a word. */
	opts.images_dir_fd = op->dir_fd;	/* ours: CRIU opens it via /proc */
	opts.log_file = (char *)log;
	opts.has_log_level = 1;
	opts.log_level = 4;
	opts.has_cpu_cap = 1;
	opts.cpu_cap = CRIU_CPU_CAP_FPU | CRIU_CPU_CAP_INS;
	req.opts = &opts;
	if (criu_call(c, &req, cpuinfo_answer, NULL, op, &cause) == 0)
		return;
	criu_close(c);
fail:
	if (op->looking)
		cpuinfo_looked(op, 0);
	else
		cpuinfo_finish(op, NULL, 0, cause);
	free(cause);
}

static struct cpuinfo_op *
cpuinfo_new(uv_loop_t *loop, const char *criu_path, const char *work_dir,
    void *arg)
{
	struct cpuinfo_op	*op;

	op = xcalloc(1, sizeof *op);
	op->loop = loop;
	op->criu_path = xstrdup(criu_path);
	op->work_dir = xstrdup(work_dir);
	op->arg = arg;
	op->dir_fd = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return op;
}

void
cpuinfo_dump(uv_loop_t *loop, const char *criu_path, const char *work_dir,
    cpuinfo_dump_cb cb, void *arg)
{
	struct cpuinfo_op	*op;
	char			*cause;

	op = cpuinfo_new(loop, criu_path, work_dir, arg);
	op->dump_cb = cb;
	if (op->dir_fd == -1) {
		xasprintf(&cause, "%s: %s", work_dir, strerror(errno));
		cpuinfo_finish(op, NULL, 0, cause);
		free(cause);
		return;
	}
	cpuinfo_call(op, CRIU_REQ_TYPE__CPUINFO_DUMP, CPUINFO_DUMP_LOG);
}

void
cpuinfo_check(uv_loop_t *loop, const char *criu_path, const char *work_dir,
    const uint8_t *img, size_t len, cpuinfo_check_cb cb, void *arg)
{
	struct cpuinfo_op	*op;
	char			*path, *cause = NULL;
	size_t			 off = 0;
	ssize_t			 n;
	int			 fd;

	op = cpuinfo_new(loop, criu_path, work_dir, arg);
	op->checking = 1;
	op->check_cb = cb;
	if (len == 0 || len > CPUINFO_MAX) {
		xasprintf(&cause, "a CPU description of %zu bytes is not a "
		    "CRIU cpuinfo image", len);
		goto fail;
	}
	op->img = xmalloc(len);
	memcpy(op->img, img, len);
	op->len = len;
	if (op->dir_fd == -1) {
		xasprintf(&cause, "%s: %s", work_dir, strerror(errno));
		goto fail;
	}
	/* Small enough to write here, without a thread. */
	path = cpuinfo_path(op, CPUINFO_IMG);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
		xasprintf(&cause, "%s: %s", path, strerror(errno));
		free(path);
		goto fail;
	}
	while (off < len) {
		if ((n = write(fd, img + off, len - off)) == -1 &&
		    errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(&cause, "%s: %s", path, strerror(errno));
			close(fd);
			free(path);
			goto fail;
		}
		off += (size_t)n;
	}
	close(fd);
	free(path);
	cpuinfo_call(op, CRIU_REQ_TYPE__CPUINFO_CHECK, CPUINFO_CHECK_LOG);
	return;
fail:
	cpuinfo_finish(op, NULL, 0, cause);
	free(cause);
}

/* --- naming what is missing ---------------------------------------------- */

/* The bits CRIU's instruction check compares (x86_ins_capability_mask in
 * criu/arch/x86/cpu.c, CRIU 4.x), by compel's word numbering (word 9 is
 * CPUID 7.0 EBX, word 11 CPUID 7.0 ECX, ...), named as /proc/cpuinfo
 * does; xsaves is part of its FPU check. */
static const struct {
	unsigned	 word;
	unsigned	 bit;
	const char	*name;
} cpuinfo_features[] = {
	{ 0, 0, "fpu" }, { 0, 4, "tsc" }, { 0, 8, "cx8" }, { 0, 11, "sep" },
	{ 0, 15, "cmov" }, { 0, 19, "clflush" }, { 0, 23, "mmx" },
	{ 0, 24, "fxsr" }, { 0, 25, "sse" }, { 0, 26, "sse2" },
	{ 1, 11, "syscall" }, { 1, 22, "mmxext" }, { 1, 27, "rdtscp" },
	{ 1, 30, "3dnowext" }, { 1, 31, "3dnow" },
	{ 3, 16, "rep_good" }, { 3, 20, "nopl" },
	{ 4, 0, "sse3" }, { 4, 1, "pclmulqdq" }, { 4, 3, "monitor" },
	{ 4, 9, "ssse3" }, { 4, 13, "cx16" }, { 4, 19, "sse4_1" },
	{ 4, 20, "sse4_2" }, { 4, 22, "movbe" }, { 4, 23, "popcnt" },
	{ 4, 25, "aes" }, { 4, 26, "xsave" }, { 4, 27, "osxsave" },
	{ 4, 28, "avx" }, { 4, 29, "f16c" }, { 4, 30, "rdrand" },
	{ 6, 5, "abm" }, { 6, 6, "sse4a" }, { 6, 7, "misalignsse" },
	{ 6, 8, "3dnowprefetch" }, { 6, 11, "xop" }, { 6, 16, "fma4" },
	{ 6, 21, "tbm" },
	{ 9, 0, "fsgsbase" }, { 9, 3, "bmi1" }, { 9, 4, "hle" },
	{ 9, 5, "avx2" }, { 9, 8, "bmi2" }, { 9, 9, "erms" }, { 9, 11, "rtm" },
	{ 9, 14, "mpx" }, { 9, 16, "avx512f" }, { 9, 17, "avx512dq" },
	{ 9, 18, "rdseed" }, { 9, 19, "adx" }, { 9, 23, "clflushopt" },
	{ 9, 26, "avx512pf" }, { 9, 27, "avx512er" }, { 9, 28, "avx512cd" },
	{ 9, 29, "sha_ni" }, { 9, 30, "avx512bw" }, { 9, 31, "avx512vl" },
	{ 10, 0, "xsaveopt" }, { 10, 1, "xsavec" }, { 10, 2, "xgetbv1" },
	{ 10, 3, "xsaves" },
	{ 11, 1, "avx512vbmi" }, { 11, 6, "avx512_vbmi2" }, { 11, 8, "gfni" },
	{ 11, 9, "vaes" }, { 11, 10, "vpclmulqdq" }, { 11, 11, "avx512_vnni" },
	{ 11, 12, "avx512_bitalg" }, { 11, 13, "tme" },
	{ 11, 14, "avx512_vpopcntdq" }, { 11, 22, "rdpid" },
	{ 13, 0, "clzero" },
	{ 18, 2, "avx512_4vnniw" }, { 18, 3, "avx512_4fmaps" },
};

#define CPUINFO_WORDS	32

static int
pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned	shift;

	*v = 0;
	for (shift = 0; shift < 64 && *p < end; shift += 7) {
		*v |= (uint64_t)(**p & 0x7f) << shift;
		if ((*(*p)++ & 0x80) == 0)
			return 0;
	}
	return -1;
}

/* Skip a field's value; *data and *len for length-delimited ones. */
static int
pb_skip(const uint8_t **p, const uint8_t *end, unsigned wire,
    const uint8_t **data, uint64_t *len)
{
	uint64_t	v;

	switch (wire) {
	case 0:
		return pb_varint(p, end, &v);
	case 1:
	case 5:
		v = wire == 1 ? 8 : 4;
		break;
	case 2:
		if (pb_varint(p, end, &v) != 0)
			return -1;
		break;
	default:
		return -1;
	}
	if (v > (uint64_t)(end - *p))
		return -1;
	if (data != NULL) {
		*data = *p;
		*len = v;
	}
	*p += v;
	return 0;
}

/* The capability words of a cpuinfo.img's x86 entry (a CRIU image: two
 * magics, then a 32-bit little-endian size and a CpuinfoEntry, whose field
 * 1 is the x86 entry, whose field 6 are the words).  -1 if it is not one. */
static int
cpuinfo_words(const uint8_t *img, size_t len, uint32_t *w, size_t *nw)
{
	const uint8_t	*p, *end, *x86 = NULL, *data, *q, *qend;
	uint64_t	 key, v, dlen, x86_len = 0;
	uint32_t	 size;

	*nw = 0;
	if (len < 12)
		return -1;
	size = (uint32_t)img[8] | (uint32_t)img[9] << 8 |
	    (uint32_t)img[10] << 16 | (uint32_t)img[11] << 24;
	if (size > len - 12)
		return -1;
	p = img + 12;
	end = p + size;
	while (p < end && x86 == NULL) {
		if (pb_varint(&p, end, &key) != 0)
			return -1;
		data = NULL;
		if (pb_skip(&p, end, key & 7, &data, &dlen) != 0)
			return -1;
		if (key >> 3 == 1 && (key & 7) == 2) {
			x86 = data;
			x86_len = dlen;
		}
	}
	if (x86 == NULL)
		return -1;
	p = x86;
	end = x86 + x86_len;
	while (p < end) {
		if (pb_varint(&p, end, &key) != 0)
			return -1;
		if (key >> 3 == 6 && (key & 7) == 0) {
			if (pb_varint(&p, end, &v) != 0)
				return -1;
			if (*nw < CPUINFO_WORDS)
				w[(*nw)++] = (uint32_t)v;
			continue;
		}
		data = NULL;
		if (pb_skip(&p, end, key & 7, &data, &dlen) != 0)
			return -1;
		if (key >> 3 == 6 && (key & 7) == 2) {
			/* packed, should a CRIU ever write it so */
			for (q = data, qend = data + dlen; q < qend;) {
				if (pb_varint(&q, qend, &v) != 0)
					return -1;
				if (*nw < CPUINFO_WORDS)
					w[(*nw)++] = (uint32_t)v;
			}
		}
	}
	return *nw > 0 ? 0 : -1;
}

char *
cpuinfo_missing(const uint8_t *img, size_t len, const uint8_t *here,
    size_t here_len)
{
	uint32_t	 a[CPUINFO_WORDS], b[CPUINFO_WORDS];
	size_t		 na, nb, i;
	char		*out = NULL, *s;

	if (cpuinfo_words(img, len, a, &na) != 0 ||
	    cpuinfo_words(here, here_len, b, &nb) != 0)
		return NULL;
	for (i = 0; i < sizeof cpuinfo_features / sizeof cpuinfo_features[0];
	    i++) {
		unsigned word = cpuinfo_features[i].word;
		uint32_t bit = 1u << cpuinfo_features[i].bit;

		if (word >= na || word >= nb || (a[word] & bit) == 0 ||
		    (b[word] & bit) != 0)
			continue;
		if (out == NULL)
			out = xstrdup(cpuinfo_features[i].name);
		else {
			xasprintf(&s, "%s %s", out, cpuinfo_features[i].name);
			free(out);
			out = s;
		}
	}
	return out;
}
