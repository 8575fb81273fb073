/* Replays fuzz inputs without libFuzzer, so that `make check` runs every
 * corpus (under ASan and UBSan in the sanitizer build): an input that once
 * found a bug keeps being tried by every build, not only by fuzzing runs.
 *
 * Each argument is a file or a directory of files; each file is fed once
 * to the target's LLVMFuzzerTestOneInput.  Exits non-zero if an input
 * cannot be read or none was found (an empty corpus proves nothing). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Larger than any corpus entry; the targets cut their input anyway. */
#define REPLAY_MAX	(4u << 20)

static int
replay_file(const char *path)
{
	static uint8_t	 buf[REPLAY_MAX];
	FILE		*f;
	uint8_t		*in;
	size_t		 n;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof buf, f);
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	/* A copy of exactly n bytes: ASan then sees a read past the input. */
	if ((in = malloc(n != 0 ? n : 1)) == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		return -1;
	}
	memcpy(in, buf, n);
	LLVMFuzzerTestOneInput(in, n);
	free(in);
	return 0;
}

static int
replay_path(const char *path, unsigned *count)
{
	struct stat	 st;
	struct dirent	**names;
	char		 child[4096];
	int		 n, i, rc = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (replay_file(path) != 0)
			return -1;
		(*count)++;
		return 0;
	}
	/* Sorted, so that a failure names the same input on every run. */
	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (rc == 0 && names[i]->d_name[0] != '.') {
			snprintf(child, sizeof child, "%s/%s", path,
			    names[i]->d_name);
			rc = replay_path(child, count);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	unsigned	count = 0;
	int		i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-FILE-OR-DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) != 0)
			return 1;
	if (count == 0) {
		fprintf(stderr, "replay: no input found in the corpus\n");
		return 1;
	}
	printf("%s: %u inputs replayed\n", argv[0], count);
	return 0;
}
