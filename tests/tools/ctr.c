/* ctr: drive checkpoint/container.c by hand, for the integration tests.
 *
 *	ctr start NAME SPEC	start the container, print its pid (as seen
 *				here) on a line of its own, then wait for it
 *				and reap it; exit with its exit status, or
 *				128 + the signal that killed it
 *	ctr kill NAME		kill every process of the container
 *	ctr freeze NAME		freeze it
 *	ctr thaw NAME		thaw it
 *	ctr pids NAME		print its processes, one pid a line
 *	ctr rm NAME		remove its cgroups (after kill)
 *	ctr check SPEC		parse the spec and print what it says
 *
 * Errors go to stderr as one line; the exit status is then 2 (a usage
 * error is 64). */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/container-spec.h"
#include "checkpoint/container.h"
#include "daemon/log.h"

#define CTR_FAILED	2
#define CTR_USAGE	64

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: ctr start NAME SPEC | kill NAME | freeze NAME "
	    "| thaw NAME | pids NAME | rm NAME | check SPEC\n");
	exit(CTR_USAGE);
}

static int
failed(char *cause)
{
	fprintf(stderr, "ctr: %s\n", cause);
	free(cause);
	return CTR_FAILED;
}

static int
cmd_start(const char *name, const char *file)
{
	struct container_spec	*spec;
	char			*cause = NULL;
	pid_t			 pid;
	int			 status;

	if ((spec = container_spec_load(file, &cause)) == NULL)
		return failed(cause);
	if (container_start(name, spec, &pid, &cause) != 0) {
		container_spec_free(spec);
		return failed(cause);
	}
	container_spec_free(spec);
	printf("%ld\n", (long)pid);
	fflush(stdout);

	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			fprintf(stderr, "ctr: waitpid %ld: %s\n", (long)pid,
			    strerror(errno));
			return CTR_FAILED;
		}
	}
	if (WIFEXITED(status)) {
		fprintf(stderr, "ctr: container %s exited with status %d\n",
		    name, WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "ctr: container %s killed by signal %d\n",
		    name, WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return CTR_FAILED;
}

static int
cmd_pids(const char *name)
{
	pid_t	*pids;
	size_t	 n, i;
	char	*cause = NULL;

	if (container_pids(name, &pids, &n, &cause) != 0)
		return failed(cause);
	for (i = 0; i < n; i++)
		printf("%ld\n", (long)pids[i]);
	free(pids);
	return 0;
}

static int
cmd_check(const char *file)
{
	struct container_spec	*spec;
	char			*cause = NULL;
	size_t			 i;

	if ((spec = container_spec_load(file, &cause)) == NULL)
		return failed(cause);
	for (i = 0; i < spec->nargs; i++)
		printf("args[%zu] %s\n", i, spec->args[i]);
	for (i = 0; i < spec->nenv; i++)
		printf("env[%zu] %s\n", i, spec->env[i]);
	printf("cwd %s\n", spec->cwd);
	printf("root %s%s\n", spec->root, spec->root_readonly ?
	    " (read-only)" : "");
	printf("hostname %s\n", spec->hostname != NULL ? spec->hostname :
	    "(the container's name)");
	printf("network %s\n", spec->net_ns ? "own namespace" : "host's");
	printf("memory.limit %lld\n", (long long)spec->memory_limit);
	printf("cpu.shares %llu\n", (unsigned long long)spec->cpu_shares);
	printf("cpu.quota %lld\n", (long long)spec->cpu_quota);
	printf("cpu.period %llu\n", (unsigned long long)spec->cpu_period);
	printf("pids.limit %lld\n", (long long)spec->pids_limit);
	printf("shared_storage %s\n", spec->shared_storage ? "yes" : "no");
	container_spec_free(spec);
	return 0;
}

int
main(int argc, char **argv)
{
	char	*cause = NULL;
	int	 rc = 0;

	log_init("ctr", 1);
	if (argc < 3)
		usage();
	if (strcmp(argv[1], "start") == 0) {
		if (argc != 4)
			usage();
		return cmd_start(argv[2], argv[3]);
	}
	if (argc != 3)
		usage();
	if (strcmp(argv[1], "kill") == 0)
		rc = container_kill(argv[2], &cause);
	else if (strcmp(argv[1], "freeze") == 0)
		rc = container_freeze(argv[2], &cause);
	else if (strcmp(argv[1], "thaw") == 0)
		rc = container_thaw(argv[2], &cause);
	else if (strcmp(argv[1], "rm") == 0)
		rc = container_cgroup_remove(argv[2], &cause);
	else if (strcmp(argv[1], "pids") == 0)
		return cmd_pids(argv[2]);
	else if (strcmp(argv[1], "check") == 0)
		return cmd_check(argv[2]);
	else
		usage();
	if (rc != 0)
		return failed(cause);
	return 0;
}
