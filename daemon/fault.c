#include "config.h"

#include <stdlib.h>
#include <string.h>

#define LOG_MODULE "fault"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/xmalloc.h"

#define FAULT_MAX	16

static const char *const fault_names[] = {
	[FAULT_NONE] = "none",
	[FAULT_FAIL] = "fail",
	[FAULT_KILL] = "kill",
	[FAULT_STALL] = "stall",
};

static struct {
	char			*name;
	enum fault_action	 action;
} fault_points[FAULT_MAX];
static int	fault_npoints = -1;	/* -1: TERN_FAULT not read yet */

static void
fault_load(void)
{
	const char	*env = getenv("TERN_FAULT");
	char		*copy, *item, *save, *colon;
	size_t		 a;

	fault_npoints = 0;
	if (env == NULL || *env == '\0')
		return;
	copy = xstrdup(env);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		if ((colon = strchr(item, ':')) == NULL) {
			log_warnx("TERN_FAULT: \"%s\" has no action (NAME:ACTION)",
			    item);
			continue;
		}
		*colon++ = '\0';
		for (a = 1; a < sizeof fault_names / sizeof fault_names[0]; a++)
			if (strcmp(colon, fault_names[a]) == 0)
				break;
		if (a == sizeof fault_names / sizeof fault_names[0]) {
			log_warnx("TERN_FAULT: %s: unknown action \"%s\" (fail, "
			    "kill or stall)", item, colon);
			continue;
		}
		if (fault_npoints == FAULT_MAX) {
			log_warnx("TERN_FAULT: more than %d points", FAULT_MAX);
			break;
		}
		fault_points[fault_npoints].name = xstrdup(item);
		fault_points[fault_npoints].action = (enum fault_action)a;
		fault_npoints++;
		log_warnx("TERN_FAULT: fault point %s armed (%s)", item, colon);
	}
	free(copy);
}

enum fault_action
fault_hit(const char *name)
{
	int	i;

	if (fault_npoints == -1)
		fault_load();
	for (i = 0; i < fault_npoints; i++) {
		if (strcmp(fault_points[i].name, name) == 0) {
			log_warnx("fault point %s fired: %s (TERN_FAULT)", name,
			    fault_names[fault_points[i].action]);
			return fault_points[i].action;
		}
	}
	return FAULT_NONE;
}
