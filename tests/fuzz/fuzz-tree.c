/* libFuzzer target: a "tree" stream from a peer (migrate/tree-apply.c),
 * decoded and applied into a scratch directory.
 *
 * Input: one control byte, then the stream.  The control byte chooses
 * where the stream is split between two feeds (bits 1..7, as a fraction
 * of its length) and whether the rest goes byte by byte (bit 0).
 *
 * Besides the sanitizers, the target checks what the applier promises:
 * nothing appears or disappears outside the directory it applies into. */
#include "config.h"

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/util.h"
#include "migrate/tree-internal.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	base[64], root[96], outside[96], keep[128];

static void
fuzz_cleanup(void)
{
	rm_rf(base, NULL);
}

static void
fuzz_setup(void)
{
	FILE	*f;

	strcpy(base, "/tmp/fuzz-tree.XXXXXX");
	if (mkdtemp(base) == NULL)
		abort();
	snprintf(root, sizeof root, "%s/root", base);
	snprintf(outside, sizeof outside, "%s/outside", base);
	snprintf(keep, sizeof keep, "%s/keep", outside);
	if (mkdir(outside, 0755) != 0 || (f = fopen(keep, "w")) == NULL)
		abort();
	fputs("keep", f);
	fclose(f);
	atexit(fuzz_cleanup);
}

/* Only root and outside in base, only keep (unchanged) in outside. */
static void
fuzz_check_outside(void)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	int		 n = 0;

	if ((d = opendir(base)) == NULL)
		abort();
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, "root") != 0 &&
		    strcmp(de->d_name, "outside") != 0)
			abort();
		n++;
	}
	closedir(d);
	if ((d = opendir(outside)) == NULL)
		abort();
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, "keep") != 0)
			abort();
	closedir(d);
	if (lstat(keep, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 4 ||
	    lstat(outside, &st) != 0 || (st.st_mode & 07777) != 0755)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tree_apply	*a;
	struct tree_stats	 stats;
	size_t			 split, i;
	int			 bytewise, rc;
	char			*cause = NULL;

	if (base[0] == '\0')
		fuzz_setup();
	if (size < 1)
		return 0;
	bytewise = data[0] & 1;
	split = (size - 1) * (size_t)(data[0] >> 1) / 127;
	data++;
	size--;

	if ((a = tree_apply_new(root, &cause)) == NULL)
		abort();
	rc = tree_apply_feed(a, data, split, &cause);
	if (rc == 0 && bytewise) {
		for (i = split; rc == 0 && i < size; i++)
			rc = tree_apply_feed(a, data + i, 1, &cause);
	} else if (rc == 0)
		rc = tree_apply_feed(a, data + split, size - split, &cause);
	if (rc == 0)
		rc = tree_apply_end(a, &cause);
	if ((rc != 0) != (cause != NULL))
		abort();
	tree_apply_stats(a, &stats);
	tree_apply_free(a);
	free(cause);

	fuzz_check_outside();
	if (rm_rf(root, NULL) != 0)
		abort();
	return 0;
}
