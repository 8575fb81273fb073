/* memcheck: a workload that keeps memory dirty and knows what it should
 * hold, in the manner of CRIU's zdtm tests.  Built static, so it runs in
 * a rootfs with nothing else.
 *
 *	memcheck MIB STATEFILE
 *
 * Allocates MIB MiB and fills it, block by block (64 KiB), with a pattern
 * derived from the block's number and the counter value when it was last
 * written.  Then, forever, every 10 ms it rewrites the next few blocks
 * (round robin, about half of the area per second), bumping the counter
 * once per block, and keeps a checksum of the whole area up to date
 * incrementally (per-block sums, so each rewrite costs one block).
 *
 * STATEFILE (opened, appended to and closed each time, so no descriptor
 * stays open across a checkpoint) gets:
 *	ready pid=P		once the area is filled (P as seen inside)
 *	counter=N ok		on SIGUSR1, if every byte of the area matches
 *				the pattern and the checksum
 *	counter=N CORRUPT at offset X	otherwise (X: first bad byte, or
 *				"checksum" if only the checksum differs)
 *	stall max_ms=S ticks=T	on SIGUSR1, just before the counter line (in
 *				the same write):
 *				the longest time between two of its own
 *				progress ticks (T of them) since "ready" or
 *				the previous report, which it then forgets.
 *				Its own check's time does not count.  The
 *				downtime the workload saw across a
 *				checkpoint or a migration: it is frozen and
 *				does not tick.  CLOCK_REALTIME, because a
 *				time namespace (which CRIU restores with the
 *				clocks it had at the dump) hides a freeze
 *				from CLOCK_MONOTONIC, never from the wall
 *				clock; the test hosts share one kernel, so
 *				one wall clock.
 * SIGTERM or SIGINT: exit 0 (it may be pid 1 of a container, where an
 * unhandled SIGTERM would be ignored).  Exit 1 on a usage or setup error,
 * 2 if a check found corruption when it exits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_SIZE	(64 * 1024)
#define BLOCK_WORDS	(BLOCK_SIZE / sizeof(uint64_t))
#define TICK_MS		10
#define TICKS_PER_SEC	(1000 / TICK_MS)

static volatile sig_atomic_t	check_requested;
static volatile sig_atomic_t	stop_requested;

static uint64_t	*area;
static size_t	 nblocks;
static uint64_t	*gens;		/* counter value at each block's rewrite */
static uint64_t	*sums;		/* sum of each block's words */
static uint64_t	 total;		/* sum of sums */
static uint64_t	 counter;
static const char *statefile;
static int	 corrupt_seen;
static long long stall_max_us;	/* longest gap between ticks, unreported */
static unsigned long long stall_ticks;

static void
on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static void
on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* splitmix64: a cheap, well-mixed 64-bit function. */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The value of word i of block b written at generation g. */
static inline uint64_t
pattern(uint64_t seed, size_t i)
{
	return seed + (uint64_t)i * 0xd6e8feb86659fd93ULL;
}

static uint64_t
block_seed(size_t b, uint64_t g)
{
	return mix(((uint64_t)b << 40) ^ g);
}

static void
write_block(size_t b)
{
	uint64_t	*w = area + b * BLOCK_WORDS, seed, v, sum = 0;
	size_t		 i;

	gens[b] = ++counter;
	seed = block_seed(b, gens[b]);
	for (i = 0; i < BLOCK_WORDS; i++) {
		v = pattern(seed, i);
		w[i] = v;
		sum += v;
	}
	total = total - sums[b] + sum;
	sums[b] = sum;
}

static void
append_state(const char *line)
{
	size_t	len = strlen(line), off = 0;
	ssize_t	n;
	int	fd;

	fd = open(statefile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		fprintf(stderr, "memcheck: %s: %s\n", statefile,
		    strerror(errno));
		return;
	}
	while (off < len) {
		n = write(fd, line + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "memcheck: %s: %s\n", statefile,
			    strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	close(fd);
}

static long long
wall_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Check the whole area against the pattern and the running checksum,
 * and report it with the longest gap between progress ticks since the
 * last report (one write, so a reader never sees one line without the
 * other); then start over. */
static void
verify(void)
{
	uint64_t	*w, seed, sum, all = 0, sumsum = 0;
	size_t		 b, i;
	char		 line[192];
	int		 n;
	long long	 bad = -1;

	for (b = 0; b < nblocks && bad < 0; b++) {
		w = area + b * BLOCK_WORDS;
		seed = block_seed(b, gens[b]);
		sum = 0;
		for (i = 0; i < BLOCK_WORDS; i++) {
			if (w[i] != pattern(seed, i)) {
				bad = (long long)((b * BLOCK_WORDS + i) *
				    sizeof(uint64_t));
				break;
			}
			sum += w[i];
		}
		if (bad < 0 && sum != sums[b])
			bad = (long long)(b * BLOCK_SIZE);
		all += sum;
		sumsum += sums[b];
	}
	n = snprintf(line, sizeof line, "stall max_ms=%lld ticks=%llu\n",
	    (stall_max_us + 500) / 1000, stall_ticks);
	stall_max_us = 0;
	stall_ticks = 0;
	if (bad >= 0) {
		snprintf(line + n, sizeof line - n, "counter=%llu CORRUPT at "
		    "offset %lld\n", (unsigned long long)counter, bad);
		corrupt_seen = 1;
	} else if (all != total || sumsum != total) {
		snprintf(line + n, sizeof line - n, "counter=%llu CORRUPT at "
		    "offset checksum\n", (unsigned long long)counter);
		corrupt_seen = 1;
	} else {
		snprintf(line + n, sizeof line - n, "counter=%llu ok\n",
		    (unsigned long long)counter);
	}
	append_state(line);
	fputs(line, stdout);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct sigaction	 sa;
	struct timespec		 tick = { 0, TICK_MS * 1000000L };
	unsigned long		 mib;
	size_t			 per_tick, next = 0, b, k;
	char			*end, line[64];
	long long		 last_us, now_us;

	if (argc != 3) {
		fprintf(stderr, "usage: memcheck MIB STATEFILE\n");
		return 1;
	}
	errno = 0;
	mib = strtoul(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || errno != 0 || mib == 0 ||
	    mib > 65536) {
		fprintf(stderr, "memcheck: MIB must be 1..65536, not %s\n",
		    argv[1]);
		return 1;
	}
	statefile = argv[2];

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	nblocks = (size_t)mib * (1024 * 1024 / BLOCK_SIZE);
	area = mmap(NULL, nblocks * BLOCK_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		fprintf(stderr, "memcheck: cannot map %lu MiB: %s\n", mib,
		    strerror(errno));
		return 1;
	}
	gens = calloc(nblocks, sizeof *gens);
	sums = calloc(nblocks, sizeof *sums);
	if (gens == NULL || sums == NULL) {
		fprintf(stderr, "memcheck: out of memory\n");
		return 1;
	}
	for (b = 0; b < nblocks; b++)
		write_block(b);

	snprintf(line, sizeof line, "ready pid=%ld\n", (long)getpid());
	append_state(line);
	fputs(line, stdout);
	fflush(stdout);

	/* About half of the area per second. */
	per_tick = nblocks / 2 / TICKS_PER_SEC;
	if (per_tick == 0)
		per_tick = 1;
	last_us = wall_us();
	while (!stop_requested) {
		if (check_requested) {
			check_requested = 0;
			verify();
			last_us = wall_us();	/* the check is no stall */
		}
		for (k = 0; k < per_tick; k++) {
			write_block(next);
			next = (next + 1) % nblocks;
		}
		/* A wall clock stepped back gives a negative gap: no stall. */
		now_us = wall_us();
		if (now_us - last_us > stall_max_us)
			stall_max_us = now_us - last_us;
		last_us = now_us;
		stall_ticks++;
		nanosleep(&tick, NULL);
	}
	return corrupt_seen ? 2 : 0;
}
