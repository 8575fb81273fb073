#include "config.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_MODULE "fault"
#include "daemon/fault.h"
#include "daemon/log.h"
#include "daemon/util.h"
#include "daemon/xmalloc.h"

#define FAULT_MAX	16

struct fault {
	char		*point;
	enum fault_action action;
	unsigned	 ms;
	unsigned	 times;		/* 0: every time */
	unsigned	 skip;		/* hits let pass before the first */
};

static struct fault	faults[FAULT_MAX];
static int		nfaults;

void
fault_fini(void)
{
	int	i;

	for (i = 0; i < nfaults; i++)
		free(faults[i].point);
	nfaults = 0;
}

static int
fault_parse_one(char *item, struct fault *f, char **cause)
{
	char		*action, *at, *end;
	unsigned long	 n;

	memset(f, 0, sizeof *f);
	if ((action = strchr(item, ':')) == NULL || action == item) {
		set_cause(cause, "TERN_FAULT: \"%s\" is not point:action", item);
		return -1;
	}
	*action++ = '\0';
	if ((at = strchr(action, '@')) != NULL) {
		*at++ = '\0';
		n = strtoul(at, &end, 10);
		if (!isdigit((unsigned char)*at) ||
		    (*end != '\0' && *end != '+') || n == 0 ||
		    n > 1000000) {
			set_cause(cause, "TERN_FAULT: %s: bad count \"%s\"",
			    item, at);
			return -1;
		}
		f->times = (unsigned)n;
		if (*end == '+') {
			at = end + 1;
			n = strtoul(at, &end, 10);
			if (!isdigit((unsigned char)*at) || *end != '\0' ||
			    n > 1000000) {
				set_cause(cause, "TERN_FAULT: %s: bad number "
				    "of hits to let pass \"%s\"", item, at);
				return -1;
			}
			f->skip = (unsigned)n;
		}
	}
	if (strcmp(action, "kill") == 0)
		f->action = FAULT_KILL;
	else if (strcmp(action, "fail") == 0)
		f->action = FAULT_FAIL;
	else if (strcmp(action, "stall") == 0)
		f->action = FAULT_STALL;
	else if (strncmp(action, "delay=", 6) == 0) {
		n = strtoul(action + 6, &end, 10);
		if (action[6] == '\0' || *end != '\0' || n > 3600000) {
			set_cause(cause, "TERN_FAULT: %s: bad delay \"%s\"",
			    item, action + 6);
			return -1;
		}
		f->action = FAULT_DELAY;
		f->ms = (unsigned)n;
	} else {
		set_cause(cause, "TERN_FAULT: %s: unknown action \"%s\" (kill, "
		    "fail, stall, delay=MS)", item, action);
		return -1;
	}
	f->point = xstrdup(item);
	return 0;
}

int
fault_init(const char *spec, char **cause)
{
	char	*copy, *item, *save = NULL;
	int	 rc = 0;

	fault_fini();
	if (spec == NULL || *spec == '\0')
		return 0;
	copy = xstrdup(spec);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		if (nfaults == FAULT_MAX) {
			set_cause(cause, "TERN_FAULT: more than %d points",
			    FAULT_MAX);
			rc = -1;
			break;
		}
		if (fault_parse_one(item, &faults[nfaults], cause) != 0) {
			rc = -1;
			break;
		}
		log_warnx("fault point %s armed (TERN_FAULT: a test hook)",
		    faults[nfaults].point);
		nfaults++;
	}
	free(copy);
	if (rc != 0)
		fault_fini();
	return rc;
}

enum fault_action
fault_check(const char *point, unsigned *ms)
{
	struct fault	*f;
	int		 i;

	for (i = 0; i < nfaults; i++) {
		f = &faults[i];
		if (f->point == NULL || strcmp(f->point, point) != 0)
			continue;
		if (f->skip > 0) {
			f->skip--;	/* a later entry may fire */
			continue;
		}
		if (f->times != 0 && --f->times == 0) {
			free(f->point);	/* spent */
			f->point = NULL;
		}
		if (f->action == FAULT_DELAY)
			log_warnx("fault point %s fired: delay=%u", point, f->ms);
		else
			log_warnx("fault point %s fired: %s", point,
			    f->action == FAULT_FAIL ? "fail" : f->action ==
			    FAULT_KILL ? "kill" : "stall");
		if (ms != NULL)
			*ms = f->ms;
		return f->action;
	}
	return FAULT_NONE;
}

enum fault_action
fault_hit(const char *point)
{
	return fault_check(point, NULL);
}

void
fault_die(const char *point)
{
	log_warnx("fault point %s: ternd kills itself", point);
	kill(getpid(), SIGKILL);
	_exit(137);
}

void
fault_die_at(const char *point)
{
	if (fault_hit(point) == FAULT_KILL)
		fault_die(point);
}
