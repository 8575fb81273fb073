/* memcheck-guest: the init of the test VM.  It keeps memory dirty and
 * knows what that memory should hold, so a live migration that loses or
 * mangles a page is seen by the guest itself (tests/workloads/memcheck.c
 * is the same idea for containers).  Built static; it is the whole
 * userland of the guest's initramfs (scripts/build-test-guest).
 *
 *	memcheck-guest [-m MIB] [-r MIB_PER_S] [-p PERIOD_MS] [-c SECONDS]
 *	    [-n CHECKS]
 *
 * As PID 1 (in the VM) it mounts /proc, /sys and /dev, writes to
 * /dev/console (ttyS0 with console=ttyS0) and takes its settings from the
 * kernel command line instead: guestcheck.mib=, guestcheck.rate=,
 * guestcheck.period=, guestcheck.corrupt=, guestcheck.checks= (dotted
 * names, so the kernel keeps them out of init's argv and environment).
 *
 * Allocates MIB MiB (default 32) and fills it, block by block (64 KiB),
 * with a pattern derived from the block's number and the value of a
 * counter when the block was last written.  Then, forever, every 10 ms it
 * rewrites the next few blocks (round robin, MIB_PER_S MiB per second,
 * default 8), bumping the counter once per block and keeping per-block
 * sums and their total up to date.  Every PERIOD_MS (default 1000) it
 * checks the whole area against the pattern and the sums and prints one
 * line:
 *	guestcheck check=K counter=N up_ms=T stall_ms=S [hidden_ms=H] ok
 *	guestcheck check=K counter=N up_ms=T stall_ms=S [hidden_ms=H] CORRUPT
 *	    at offset X
 * (X: the offset of the first bad 8-byte word of the area, or "checksum"
 * when only the sums
 * disagree).  The counter only grows; K counts checks.  S: the longest
 * stall of its own progress (it ticks every 10 ms) since the previous
 * check line, its own checks not counted; H: how much of it the guest's
 * clock did not see.  For the guest's clocks stand still while QEMU has
 * the VM stopped (TCG's TSC, HPET, PM timer: all QEMU's virtual clock,
 * which a migration carries over), so a migration's downtime is hidden
 * from T.  The CMOS RTC follows the host's clock instead (QEMU's default
 * -rtc clock=host): reading it every tick, it notes in its own clock
 * when each second of the RTC begins; a second that begins later than
 * the ones before predicted is time its clock missed, H, and S is then
 * that plus the longest tick gap since the previous RTC second.  So S
 * counts a stopped VM only within about a tick (the moment the RTC's
 * second turns is seen to a tick), and only once the next RTC second has
 * begun: up to a second late, it may come with the check line after the
 * one that follows the stop.  Without an RTC (/dev/rtc0) S is what the
 * guest's clock saw and H is left out.  Lines printed once:
 *	guestcheck start mib=M rate=R period=P pid=N
 *	guestcheck ready counter=N up_ms=T	(the area is filled)
 *	guestcheck corrupting offset X (deliberate)	(-c, see below)
 *
 * -c SECONDS flips one byte of the area SECONDS after "ready" without
 * updating the sums, so the next check must say CORRUPT: the proof that
 * the check can fail.  -n CHECKS stops after CHECKS checks: exit 0 when
 * every check was ok, 2 when one was CORRUPT (PID 1 powers the VM off
 * instead).  Exit 1 on a usage or setup error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/rtc.h>

#define AREA_BLOCK	(64 * 1024)
#define AREA_WORDS	(AREA_BLOCK / sizeof(uint64_t))
#define TICK_MS		10
#define TICKS_PER_SEC	(1000 / TICK_MS)

struct settings {
	unsigned long	mib;		/* size of the area */
	unsigned long	rate;		/* MiB rewritten per second */
	unsigned long	period;		/* ms between checks */
	long		corrupt;	/* s after ready, -1: never */
	unsigned long	checks;		/* stop after that many, 0: never */
};

static volatile sig_atomic_t	stop_requested;

static uint64_t	*area;
static size_t	 nblocks;
static uint64_t	*gens;		/* counter value at each block's rewrite */
static uint64_t	*sums;		/* sum of each block's words */
static uint64_t	 total;		/* sum of sums */
static uint64_t	 counter;
static unsigned long checks_done;
static int	 out_fd = STDOUT_FILENO;

/* The stall since the last check line, in ms of the host's time. */
static long long stall_ms;	/* longest, RTC-corrected */
static long long hidden_ms;	/* the guest's clock missed that much */
static long long gap_since_sec;	/* longest tick gap since the RTC's last
				 * second that began on time */
static long long late_ms;	/* what the late seconds since then missed */

/* The RTC: host - guest time (ms) lies in [off_lo, off_hi], narrowed at
 * each new RTC second, which began between two of our reads. */
static int	 rtc_fd = -1;
static long long rtc_last_s = -1;	/* RTC seconds at the last read */
static long long rtc_last_ms;		/* our clock before that read */
static long long off_lo, off_hi;
static int	 off_known;

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

/* The value of word i of a block whose seed is seed. */
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
	uint64_t	*w = area + b * AREA_WORDS, seed, v, sum = 0;
	size_t		 i;

	gens[b] = ++counter;
	seed = block_seed(b, gens[b]);
	for (i = 0; i < AREA_WORDS; i++) {
		v = pattern(seed, i);
		w[i] = v;
		sum += v;
	}
	total = total - sums[b] + sum;
	sums[b] = sum;
}

static long long
uptime_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The RTC's time in seconds, -1 if it cannot be read. */
static long long
rtc_seconds(void)
{
	struct rtc_time	rt;
	struct tm	tm;

	if (rtc_fd == -1 || ioctl(rtc_fd, RTC_RD_TIME, &rt) == -1)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_sec = rt.tm_sec;
	tm.tm_min = rt.tm_min;
	tm.tm_hour = rt.tm_hour;
	tm.tm_mday = rt.tm_mday;
	tm.tm_mon = rt.tm_mon;
	tm.tm_year = rt.tm_year;
	return (long long)timegm(&tm);
}

/* One progress tick that came gap ms (our clock) after the previous one:
 * account for it, and read the RTC. */
static void
tick_done(long long gap)
{
	long long	before, after, s, lo, hi;

	if (gap > gap_since_sec)
		gap_since_sec = gap;
	if (gap > stall_ms)
		stall_ms = gap;
	before = uptime_ms();
	s = rtc_seconds();
	after = uptime_ms();
	if (s < 0)
		return;
	if (rtc_last_s >= 0 && s != rtc_last_s) {
		/* Second s began after our previous read, by this one. */
		lo = s * 1000 - after;
		hi = s * 1000 - rtc_last_ms;
		if (off_known && lo > off_hi) {
			/* It began later than our clock predicted: the time
			 * between is time our clock did not see.  A second
			 * that begins while the VM is stopped shows part of
			 * it, the next one the rest: one stall. */
			hidden_ms += lo - off_hi;
			late_ms += lo - off_hi;
			if (late_ms + gap_since_sec > stall_ms)
				stall_ms = late_ms + gap_since_sec;
			off_lo = lo;
			off_hi = hi;
		} else {
			if (off_known && hi >= off_lo) {
				off_lo = lo > off_lo ? lo : off_lo;
				off_hi = hi < off_hi ? hi : off_hi;
			} else {
				off_lo = lo;
				off_hi = hi;
			}
			off_known = 1;
			gap_since_sec = 0;
			late_ms = 0;
		}
	}
	rtc_last_s = s;
	rtc_last_ms = before;
}

/* " stall_ms=S [hidden_ms=H]" for a check line; starts the next period. */
static const char *
stall_fields(void)
{
	static char	buf[64];

	if (rtc_fd != -1)
		snprintf(buf, sizeof buf, " stall_ms=%lld hidden_ms=%lld",
		    stall_ms, hidden_ms);
	else
		snprintf(buf, sizeof buf, " stall_ms=%lld", stall_ms);
	stall_ms = 0;
	hidden_ms = 0;
	return buf;
}

/* Print one whole line with a single write(2), so lines of the console
 * log never interleave or tear. */
static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
say(const char *fmt, ...)
{
	char	line[256];
	va_list	ap;
	size_t	len, off = 0;
	ssize_t	n;
	int	r;

	va_start(ap, fmt);
	r = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	len = (size_t)r < sizeof line - 2 ? (size_t)r : sizeof line - 2;
	line[len++] = '\n';
	while (off < len) {
		n = write(out_fd, line + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
}

/* Check the whole area against the pattern and the running sums; 0 ok. */
static int
verify(void)
{
	uint64_t	*w, seed, sum, all = 0, sumsum = 0;
	size_t		 b, i;
	long long	 bad = -1;

	for (b = 0; b < nblocks && bad < 0; b++) {
		w = area + b * AREA_WORDS;
		seed = block_seed(b, gens[b]);
		sum = 0;
		for (i = 0; i < AREA_WORDS; i++) {
			if (w[i] != pattern(seed, i)) {
				bad = (long long)((b * AREA_WORDS + i) *
				    sizeof(uint64_t));
				break;
			}
			sum += w[i];
		}
		if (bad < 0 && sum != sums[b])
			bad = (long long)(b * AREA_BLOCK);
		all += sum;
		sumsum += sums[b];
	}
	checks_done++;
	if (bad >= 0) {
		say("guestcheck check=%lu counter=%llu up_ms=%lld%s CORRUPT "
		    "at offset %lld", checks_done, (unsigned long long)counter,
		    uptime_ms(), stall_fields(), bad);
		return 1;
	}
	if (all != total || sumsum != total) {
		say("guestcheck check=%lu counter=%llu up_ms=%lld%s CORRUPT "
		    "at offset checksum", checks_done,
		    (unsigned long long)counter, uptime_ms(), stall_fields());
		return 1;
	}
	say("guestcheck check=%lu counter=%llu up_ms=%lld%s ok", checks_done,
	    (unsigned long long)counter, uptime_ms(), stall_fields());
	return 0;
}

static int
parse_ulong(const char *name, const char *s, unsigned long max,
    unsigned long *out)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 ||
	    v > max) {
		fprintf(stderr, "memcheck-guest: %s must be 0..%lu, not '%s'\n",
		    name, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Apply one setting by its long name; -1 on a bad value. */
static int
set_option(struct settings *st, const char *name, const char *val)
{
	unsigned long	v;

	if (strcmp(name, "mib") == 0) {
		if (parse_ulong(name, val, 4096, &v) == -1 || v == 0)
			return -1;
		st->mib = v;
	} else if (strcmp(name, "rate") == 0) {
		if (parse_ulong(name, val, 65536, &v) == -1)
			return -1;
		st->rate = v;
	} else if (strcmp(name, "period") == 0) {
		if (parse_ulong(name, val, 3600000, &v) == -1 || v == 0)
			return -1;
		st->period = v;
	} else if (strcmp(name, "corrupt") == 0) {
		if (parse_ulong(name, val, 86400, &v) == -1)
			return -1;
		st->corrupt = (long)v;
	} else if (strcmp(name, "checks") == 0) {
		if (parse_ulong(name, val, 1000000000UL, &v) == -1)
			return -1;
		st->checks = v;
	}
	/* Unknown guestcheck.* names are ignored: an older guest boots. */
	return 0;
}

/* PID 1: the filesystems a program expects, the console as stdio. */
static void
init_setup(struct settings *st)
{
	char	 buf[4096], *tok, *save = NULL, *eq;
	ssize_t	 n;
	int	 fd;

	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	    NULL);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \t\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, "guestcheck.", 11) != 0)
			continue;
		eq = strchr(tok, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		if (set_option(st, tok + 11, eq + 1) == -1)
			say("guestcheck bad option %s=%s ignored", tok + 11,
			    eq + 1);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: memcheck-guest [-m MIB] [-r MIB_PER_S] "
	    "[-p PERIOD_MS] [-c SECONDS] [-n CHECKS]\n");
}

static int
finish(int is_init, int rc)
{
	if (is_init) {
		say("guestcheck halt");
		sync();
		reboot(RB_POWER_OFF);
		for (;;)
			pause();
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct settings		 st = { 32, 8, 1000, -1, 0 };
	struct sigaction	 sa;
	struct timespec		 tick = { 0, TICK_MS * 1000000L };
	long long		 ready_ms, next_check, now, last_tick;
	size_t			 per_tick, next = 0, b, k, off;
	int			 c, is_init = getpid() == 1, corrupt = 0;
	int			 corrupted = 0;
	const char		*name;

	if (is_init) {
		init_setup(&st);
	} else {
		while ((c = getopt(argc, argv, "m:r:p:c:n:")) != -1) {
			switch (c) {
			case 'm': name = "mib"; break;
			case 'r': name = "rate"; break;
			case 'p': name = "period"; break;
			case 'c': name = "corrupt"; break;
			case 'n': name = "checks"; break;
			default: usage(); return 1;
			}
			if (set_option(&st, name, optarg) == -1)
				return 1;
		}
		if (optind != argc) {
			usage();
			return 1;
		}
	}

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	say("guestcheck start mib=%lu rate=%lu period=%lu pid=%ld", st.mib,
	    st.rate, st.period, (long)getpid());
	nblocks = (size_t)st.mib * (1024 * 1024 / AREA_BLOCK);
	area = mmap(NULL, nblocks * AREA_BLOCK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gens = calloc(nblocks, sizeof *gens);
	sums = calloc(nblocks, sizeof *sums);
	if (area == MAP_FAILED || gens == NULL || sums == NULL) {
		say("guestcheck setup failed: cannot allocate %lu MiB: %s",
		    st.mib, strerror(errno));
		return finish(is_init, 1);
	}
	for (b = 0; b < nblocks; b++)
		write_block(b);
	ready_ms = uptime_ms();
	say("guestcheck ready counter=%llu up_ms=%lld",
	    (unsigned long long)counter, ready_ms);

	per_tick = (size_t)st.rate * (1024 * 1024 / AREA_BLOCK) /
	    TICKS_PER_SEC;
	if (per_tick == 0 && st.rate > 0)
		per_tick = 1;
	next_check = ready_ms + (long long)st.period;
	rtc_fd = open("/dev/rtc0", O_RDONLY | O_CLOEXEC);
	last_tick = uptime_ms();
	while (!stop_requested) {
		now = uptime_ms();
		tick_done(now - last_tick);
		last_tick = now;
		if (st.corrupt >= 0 && !corrupted &&
		    now >= ready_ms + st.corrupt * 1000LL) {
			/* One byte in the middle of a block the rewrite loop
			 * will not reach before the next check. */
			b = (next + nblocks / 2) % nblocks;
			off = b * AREA_BLOCK + AREA_BLOCK / 2 + 3;
			((volatile unsigned char *)area)[off] ^= 0x40;
			corrupted = 1;
			say("guestcheck corrupting offset %zu (deliberate)",
			    off);
			next_check = now;	/* before the loop mends it */
		}
		if (now >= next_check) {
			if (verify() != 0)
				corrupt = 1;
			last_tick = uptime_ms();	/* the check is no stall */
			next_check += (long long)st.period;
			if (next_check <= now)
				next_check = now + (long long)st.period;
			if (st.checks != 0 && checks_done >= st.checks)
				break;
		}
		for (k = 0; k < per_tick; k++) {
			write_block(next);
			next = (next + 1) % nblocks;
		}
		nanosleep(&tick, NULL);
	}
	return finish(is_init, corrupt ? 2 : 0);
}
