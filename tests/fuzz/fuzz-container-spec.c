/* libFuzzer target: the container spec parser takes operator input (a
 * JSON file) and must refuse anything malformed without crashing or
 * leaking. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "checkpoint/container-spec.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct container_spec	*spec;
	char			*cause = NULL;

	spec = container_spec_parse((const char *)data, size, "/srv/ct", &cause);
	container_spec_free(spec);
	free(cause);
	return 0;
}
