/* Whether this host's CPU can run processes dumped on another host, asked
 * of CRIU itself (its RPC's CPUINFO_DUMP and CPUINFO_CHECK, as `criu
 * cpuinfo dump` and `criu cpuinfo check` do).
 *
 * The source dumps a description of its CPU (CRIU's cpuinfo.img, a small
 * protobuf image) and sends the bytes along with a migration offer; the
 * target writes them into a directory and lets its CRIU compare them with
 * its own CPU, before anything is frozen on the source. */
#ifndef TERN_CHECKPOINT_CPUINFO_H
#define TERN_CHECKPOINT_CPUINFO_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* A cpuinfo.img is about 130 bytes on x86; anything this large is not one. */
#define CPUINFO_MAX	(64u << 10)

/* img (len bytes, the caller's to free) or NULL and the error. */
typedef void (*cpuinfo_dump_cb)(uint8_t *img, size_t len, const char *error,
    void *arg);
/* problem is NULL if this host can run the processes, else one line for
 * the operator (which CPU features are missing, or CRIU's own reason). */
typedef void (*cpuinfo_check_cb)(const char *problem, void *arg);

/* This host's cpuinfo.img.  work_dir must exist; CRIU writes the image and
 * its log there, both removed before cb.  cb follows exactly once, maybe
 * before this returns (when CRIU cannot even be started). */
void	 cpuinfo_dump(uv_loop_t *, const char *criu_path, const char *work_dir,
	     cpuinfo_dump_cb, void *arg);
/* Whether this host can run what was dumped on the CPU img describes
 * (CRIU's default restore policy: FPU/xsave layout and instruction set).
 * img is copied; work_dir is used and cleaned up as for cpuinfo_dump, and
 * must not be shared with another check running at the same time.  cb
 * follows exactly once, maybe before this returns. */
void	 cpuinfo_check(uv_loop_t *, const char *criu_path, const char *work_dir,
	     const uint8_t *img, size_t len, cpuinfo_check_cb, void *arg);

/* The instruction-set features CRIU's check looks at that the CPU of img
 * has and the CPU of here lacks, as "avx512er avx512pf", or NULL if none
 * (or if either image does not decode). */
char	*cpuinfo_missing(const uint8_t *img, size_t len, const uint8_t *here,
	     size_t here_len);

#endif
