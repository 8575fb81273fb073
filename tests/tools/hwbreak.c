/* hwbreak: print whether hardware breakpoints fire on this machine
 * (checkpoint/hwbreak.h): "fires", "silent", or "unknown: why".  Scripts
 * that run CRIU by hand export CRIU_FAULT=130 on "silent", as ternd does
 * for its own. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "checkpoint/hwbreak.h"

int
main(void)
{
	char	*cause = NULL;

	switch (hwbreak_probe(&cause)) {
	case HWBREAK_FIRES:
		puts("fires");
		break;
	case HWBREAK_SILENT:
		puts("silent");
		break;
	case HWBREAK_UNKNOWN:
		printf("unknown: %s\n", cause);
		break;
	}
	free(cause);
	return 0;
}
