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
	char		*cause = NULL;
	enum hwbreak	 hb = hwbreak_probe(&cause);

	if (hb == HWBREAK_UNKNOWN)
		printf("%s: %s\n", hwbreak_name(hb), cause);
	else
		puts(hwbreak_name(hb));
	free(cause);
	return 0;
}
