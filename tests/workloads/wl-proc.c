/* wl: tasks and their attributes: threads, futexes, FPU registers,
 * stopped and zombie children, sessions, a tree, rlimits, umask, cwd,
 * environment, clocks, a pty. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

static void
block_all_signals(void)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* --- threads: each counts, keeps its TLS and its name --------------------- */

#define NTHREADS	4
static _Thread_local uint64_t	tls_tag;
static volatile uint64_t	th_count[NTHREADS];
static volatile int		th_bad[NTHREADS];
static volatile pid_t		th_tid[NTHREADS];
static pthread_t		th[NTHREADS];

static void *
thread_main(void *arg)
{
	int	i = (int)(long)arg;
	char	name[16];

	block_all_signals();
	th_tid[i] = (pid_t)syscall(SYS_gettid);
	snprintf(name, sizeof name, "wl-thread-%d", i);
	prctl(PR_SET_NAME, name);
	tls_tag = 0xabc000u + (uint64_t)i;
	for (;;) {
		if (tls_tag != 0xabc000u + (uint64_t)i)
			th_bad[i] = 1;
		th_count[i]++;
		wl_msleep(5);
	}
	return NULL;
}

static int
threads_setup(void)
{
	long	i;

	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)i) != 0)
			return wl_fail("pthread_create failed");
	return 0;
}

static int
threads_verify(void)
{
	uint64_t	before[NTHREADS];
	char		path[64], name[32], want[16];
	int		i, k, n = 0, fd;
	ssize_t		r;

	for (i = 0; i < NTHREADS; i++)
		before[i] = th_count[i];
	for (k = 0; k < WL_WAIT_MS / 10; k++) {
		wl_msleep(10);
		for (n = 0, i = 0; i < NTHREADS; i++)
			n += th_count[i] > before[i];
		if (n == NTHREADS)
			break;
	}
	if (n != NTHREADS)
		return wl_fail("only %d of %d threads run", n, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		if (th_bad[i])
			return wl_fail("thread %d saw its TLS change", i);
		snprintf(path, sizeof path, "/proc/self/task/%ld/comm",
		    (long)th_tid[i]);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			return wl_fail_errno(path);
		r = read(fd, name, sizeof name - 1);
		close(fd);
		name[r > 0 ? r - 1 : 0] = '\0';
		snprintf(want, sizeof want, "wl-thread-%d", i);
		if (strcmp(name, want) != 0)
			return wl_fail("thread %d is named \"%s\"", i, name);
	}
	return 0;
}

/* --- futex: two threads hand a token back and forth ---------------------- */

static volatile uint32_t	fx_word;	/* 0: ping's turn, 1: pong's */
static volatile uint64_t	fx_rounds;

static long
futex(volatile uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void *
futex_side(void *arg)
{
	uint32_t	me = (uint32_t)(long)arg;

	block_all_signals();
	for (;;) {
		while (__atomic_load_n(&fx_word, __ATOMIC_ACQUIRE) != me)
			futex(&fx_word, FUTEX_WAIT_PRIVATE, 1 - me);
		if (me == 1)
			fx_rounds++;
		__atomic_store_n(&fx_word, 1 - me, __ATOMIC_RELEASE);
		futex(&fx_word, FUTEX_WAKE_PRIVATE, 1);
		wl_msleep(2);
	}
	return NULL;
}

static int
futex_setup(void)
{
	pthread_t	t;

	if (pthread_create(&t, NULL, futex_side, (void *)0L) != 0 ||
	    pthread_create(&t, NULL, futex_side, (void *)1L) != 0)
		return wl_fail("pthread_create failed");
	return 0;
}

static int
futex_verify(void)
{
	uint64_t	before = fx_rounds;
	int		k;

	for (k = 0; k < WL_WAIT_MS / 10 && fx_rounds < before + 5; k++)
		wl_msleep(10);
	if (fx_rounds < before + 5)
		return wl_fail("the futex ping-pong stopped at %llu rounds",
		    (unsigned long long)fx_rounds);
	return 0;
}

/* --- fpu: SSE/AVX, x87 and control registers held across the move ------- */

/* A thread loads known values into the registers and sleeps with them (in
 * raw syscalls, which keep them) until asked to store them. */
static unsigned char	fpu_in[16][32] __attribute__((aligned(32)));
static unsigned char	fpu_out[16][32] __attribute__((aligned(32)));
static long double	fpu_ld_in = 3.14159265358979323846264338327950288L;
static long double	fpu_ld_out;
static uint32_t		fpu_mx_in = 0x1f80 | 0x6000;	/* round to zero */
static uint32_t		fpu_mx_out;
static uint16_t		fpu_cw_in = 0x037f | 0x0c00;	/* truncate */
static uint16_t		fpu_cw_out;
/* 0: load them, 3: holding, 1: store them, 2: stored */
static volatile int	fpu_flag;
static int		fpu_avx;

#define LD(n) "movdqu " #n "*32(%[in]), %%xmm" #n "\n\t"
#define ST(n) "movdqu %%xmm" #n ", " #n "*32(%[out])\n\t"
#define VLD(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define VST(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
#define WAIT \
	"movl $3, (%[flag])\n\t"	/* holding */ \
	"1:\n\t" \
	"movl $35, %%eax\n\t"		/* nanosleep */ \
	"movq %[ts], %%rdi\n\t" \
	"xorl %%esi, %%esi\n\t" \
	"syscall\n\t" \
	"cmpl $1, (%[flag])\n\t" \
	"jne 1b\n\t"

static void
fpu_hold(void)
{
	static const struct timespec	ts = { 0, 10000000 };
	uint32_t			mx_save;
	uint16_t			cw_save;

	__asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mx_save),
	    "=m"(cw_save));
	if (fpu_avx) {
		__asm__ volatile(
		    VLD(0) VLD(1) VLD(2) VLD(3) VLD(4) VLD(5) VLD(6) VLD(7)
		    VLD(8) VLD(9) VLD(10) VLD(11) VLD(12) VLD(13) VLD(14)
		    VLD(15)
		    "ldmxcsr (%[mx])\n\tfldcw (%[cw])\n\tfldt (%[ld])\n\t"
		    WAIT
		    VST(0) VST(1) VST(2) VST(3) VST(4) VST(5) VST(6) VST(7)
		    VST(8) VST(9) VST(10) VST(11) VST(12) VST(13) VST(14)
		    VST(15)
		    "stmxcsr (%[mxo])\n\tfnstcw (%[cwo])\n\tfstpt (%[ldo])\n\t"
		    "vzeroupper\n\t"
		    :
		    : [in] "r"(fpu_in), [out] "r"(fpu_out),
		      [mx] "r"(&fpu_mx_in),
		      [cw] "r"(&fpu_cw_in), [ld] "r"(&fpu_ld_in),
		      [mxo] "r"(&fpu_mx_out), [cwo] "r"(&fpu_cw_out),
		      [ldo] "r"(&fpu_ld_out), [flag] "r"(&fpu_flag),
		      [ts] "r"(&ts)
		    : "rax", "rcx", "rdi", "rsi", "r11", "memory", "cc",
		      "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		      "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		      "xmm13", "xmm14", "xmm15");
	} else {
		__asm__ volatile(
		    LD(0) LD(1) LD(2) LD(3) LD(4) LD(5) LD(6) LD(7)
		    LD(8) LD(9) LD(10) LD(11) LD(12) LD(13) LD(14) LD(15)
		    "ldmxcsr (%[mx])\n\tfldcw (%[cw])\n\tfldt (%[ld])\n\t"
		    WAIT
		    ST(0) ST(1) ST(2) ST(3) ST(4) ST(5) ST(6) ST(7)
		    ST(8) ST(9) ST(10) ST(11) ST(12) ST(13) ST(14) ST(15)
		    "stmxcsr (%[mxo])\n\tfnstcw (%[cwo])\n\tfstpt (%[ldo])\n\t"
		    :
		    : [in] "r"(fpu_in), [out] "r"(fpu_out),
		      [mx] "r"(&fpu_mx_in),
		      [cw] "r"(&fpu_cw_in), [ld] "r"(&fpu_ld_in),
		      [mxo] "r"(&fpu_mx_out), [cwo] "r"(&fpu_cw_out),
		      [ldo] "r"(&fpu_ld_out), [flag] "r"(&fpu_flag),
		      [ts] "r"(&ts)
		    : "rax", "rcx", "rdi", "rsi", "r11", "memory", "cc",
		      "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		      "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		      "xmm13", "xmm14", "xmm15");
	}
	__asm__ volatile("ldmxcsr %0\n\tfldcw %1" : : "m"(mx_save),
	    "m"(cw_save));
}

static void *
fpu_thread(void *arg)
{
	(void)arg;
	block_all_signals();
	for (;;) {
		while (fpu_flag != 0)
			wl_msleep(2);
		fpu_hold();
		fpu_flag = 2;
	}
	return NULL;
}

static int
fpu_wait(int state)
{
	int	k;

	for (k = 0; k < WL_WAIT_MS / 5 && fpu_flag != state; k++)
		wl_msleep(5);
	return fpu_flag == state;
}

static int
fpu_setup(void)
{
	pthread_t	t;

	__builtin_cpu_init();
	fpu_avx = __builtin_cpu_supports("avx");
	wl_fill(fpu_in, sizeof fpu_in, 71);
	if (pthread_create(&t, NULL, fpu_thread, NULL) != 0)
		return wl_fail("pthread_create failed");
	return fpu_wait(3) ? 0 : wl_fail("the register thread does not start");
}

static int
fpu_verify(void)
{
	size_t	r, len = fpu_avx ? 32 : 16;

	if (!fpu_wait(3))
		return wl_fail("the register thread does not hold (%d)",
		    fpu_flag);
	memset(fpu_out, 0, sizeof fpu_out);
	fpu_ld_out = 0;
	fpu_flag = 1;
	if (!fpu_wait(2))
		return wl_fail("the register thread does not answer");
	for (r = 0; r < 16; r++)
		if (memcmp(fpu_in[r], fpu_out[r], len) != 0) {
			fpu_flag = 0;
			return wl_fail("%cmm%zu changed", fpu_avx ? 'y' : 'x',
			    r);
		}
	fpu_flag = 0;
	if (fpu_mx_out != fpu_mx_in)
		return wl_fail("MXCSR is %#x, not %#x", fpu_mx_out, fpu_mx_in);
	if ((fpu_cw_out & 0x1f3f) != (fpu_cw_in & 0x1f3f))
		return wl_fail("x87 control word is %#x, not %#x", fpu_cw_out,
		    fpu_cw_in);
	if (memcmp(&fpu_ld_out, &fpu_ld_in, 10) != 0)
		return wl_fail("x87 st(0) changed");
	return 0;
}

/* --- stopped: a child stopped by SIGSTOP stays stopped ------------------- */

static pid_t	stopped_child;

static int
stopped_setup(void)
{
	char	st = 0;
	int	k;

	if ((stopped_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (stopped_child == 0) {
		raise(SIGSTOP);
		for (;;)
			pause();
	}
	for (k = 0; k < 200; k++) {
		if (wl_proc_state(stopped_child, &st) != 0)
			return -1;
		if (st == 'T')
			return 0;
		wl_msleep(5);
	}
	return wl_fail("the child did not stop (state %c)", st);
}

static int
stopped_verify(void)
{
	char	st;

	if (wl_proc_state(stopped_child, &st) != 0)
		return -1;
	if (st != 'T')
		return wl_fail("the stopped child is in state %c, not T", st);
	return 0;
}

/* --- zombie: a child that exited and was never reaped -------------------- */

static pid_t	zombie_child;

static int
zombie_setup(void)
{
	char	st = 0;
	int	k;

	if ((zombie_child = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (zombie_child == 0)
		_exit(7);
	for (k = 0; k < 200; k++) {
		if (wl_proc_state(zombie_child, &st) != 0)
			return -1;
		if (st == 'Z')
			return 0;
		wl_msleep(5);
	}
	return wl_fail("the child did not exit (state %c)", st);
}

static int
zombie_verify(void)
{
	siginfo_t	si;
	char		st;

	if (wl_proc_state(zombie_child, &st) != 0)
		return -1;
	if (st != 'Z')
		return wl_fail("the zombie is in state %c", st);
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)zombie_child, &si, WEXITED | WNOWAIT |
	    WNOHANG) != 0)
		return wl_fail_errno("waitid");
	if (si.si_pid != zombie_child || si.si_code != CLD_EXITED ||
	    si.si_status != 7)
		return wl_fail("the zombie says pid %ld code %d status %d, not "
		    "exit 7", (long)si.si_pid, si.si_code, si.si_status);
	return 0;
}

/* --- sessions: a child session with its own process group ---------------- */

static pid_t	ses_a, ses_b, ses_c, ses_sid, ses_pgid;

static int
sessions_setup(void)
{
	int	p[2];
	pid_t	b;

	ses_sid = getsid(0);
	ses_pgid = getpgid(0);
	if (pipe(p) != 0)
		return wl_fail_errno("pipe");
	if ((ses_a = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (ses_a == 0) {
		setsid();
		if ((b = wl_fork()) == 0) {
			setpgid(0, 0);
			for (;;)
				pause();
		}
		/* Before it reports: B is in its own group either way. */
		setpgid(b, b);
		if (write(p[1], &b, sizeof b) != sizeof b)
			_exit(1);
		for (;;)
			pause();
	}
	if ((ses_c = wl_fork()) == -1)
		return wl_fail_errno("fork");
	if (ses_c == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(ses_c, ses_c);
	close(p[1]);
	if (wl_read_all(p[0], &ses_b, sizeof ses_b, "grandchild's pid") != 0)
		return -1;
	close(p[0]);
	return 0;
}

static int
sessions_verify(void)
{
	struct {
		const char	*who;
		pid_t		 pid, sid, pgid;
	} t[] = {
		{ "init", getpid(), ses_sid, ses_pgid },
		{ "session leader", ses_a, ses_a, ses_a },
		{ "its child", ses_b, ses_a, ses_b },
		{ "group leader", ses_c, ses_sid, ses_c },
	};
	size_t	i;
	pid_t	sid, pgid;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		sid = getsid(t[i].pid);
		pgid = getpgid(t[i].pid);
		if (sid != t[i].sid || pgid != t[i].pgid)
			return wl_fail("%s %ld: session %ld group %ld, not %ld "
			    "%ld", t[i].who, (long)t[i].pid, (long)sid,
			    (long)pgid, (long)t[i].sid, (long)t[i].pgid);
	}
	return 0;
}

/* --- tree: ten processes, three levels ----------------------------------- */

#define TREE_N	9	/* besides init */
static pid_t	tree_pid[TREE_N], tree_ppid[TREE_N];

static int
tree_setup(void)
{
	pid_t	c, g[2], rec[3];
	int	p[2], i, j;

	if (pipe(p) != 0)
		return wl_fail_errno("pipe");
	for (i = 0; i < 3; i++) {
		if ((c = wl_fork()) == -1)
			return wl_fail_errno("fork");
		if (c == 0) {
			close(p[0]);
			for (j = 0; j < 2; j++)
				if ((g[j] = wl_fork()) == 0)
					for (;;)
						pause();
			rec[0] = getpid();
			rec[1] = g[0];
			rec[2] = g[1];
			if (write(p[1], rec, sizeof rec) != sizeof rec)
				_exit(1);
			for (;;)
				pause();
		}
	}
	close(p[1]);
	for (i = 0; i < 3; i++) {
		if (wl_read_all(p[0], rec, sizeof rec, "pids of the tree") != 0)
			return -1;
		tree_pid[i * 3] = rec[0];
		tree_ppid[i * 3] = getpid();
		for (j = 1; j < 3; j++) {
			tree_pid[i * 3 + j] = rec[j];
			tree_ppid[i * 3 + j] = rec[0];
		}
	}
	close(p[0]);
	return 0;
}

static int
tree_verify(void)
{
	pid_t	pp;
	char	st;
	int	i;

	for (i = 0; i < TREE_N; i++) {
		if (wl_proc_state(tree_pid[i], &st) != 0 ||
		    wl_proc_ppid(tree_pid[i], &pp) != 0)
			return -1;
		if (st == 'Z' || st == 'X')
			return wl_fail("process %ld died", (long)tree_pid[i]);
		if (pp != tree_ppid[i])
			return wl_fail("process %ld has parent %ld, not %ld",
			    (long)tree_pid[i], (long)pp, (long)tree_ppid[i]);
	}
	return 0;
}

/* --- rlimits ------------------------------------------------------------- */

static const struct {
	int		res;
	const char	*name;
	rlim_t		soft, hard;
} rl[] = {
	{ RLIMIT_NOFILE, "NOFILE", 300, 400 },
	{ RLIMIT_CORE, "CORE", 4096, 1 << 20 },
	{ RLIMIT_MSGQUEUE, "MSGQUEUE", 12345, 54321 },
	{ RLIMIT_NICE, "NICE", 0, 0 },
};

static int
rlimits_setup(void)
{
	struct rlimit	r;
	size_t		i;

	for (i = 0; i < sizeof rl / sizeof rl[0]; i++) {
		r.rlim_cur = rl[i].soft;
		r.rlim_max = rl[i].hard;
		if (setrlimit(rl[i].res, &r) != 0)
			return wl_fail("setrlimit %s: %s", rl[i].name,
			    strerror(errno));
	}
	return 0;
}

static int
rlimits_verify(void)
{
	struct rlimit	r;
	size_t		i;

	for (i = 0; i < sizeof rl / sizeof rl[0]; i++) {
		if (getrlimit(rl[i].res, &r) != 0)
			return wl_fail_errno("getrlimit");
		if (r.rlim_cur != rl[i].soft || r.rlim_max != rl[i].hard)
			return wl_fail("RLIMIT_%s is %llu/%llu, not %llu/%llu",
			    rl[i].name, (unsigned long long)r.rlim_cur,
			    (unsigned long long)r.rlim_max,
			    (unsigned long long)rl[i].soft,
			    (unsigned long long)rl[i].hard);
	}
	return 0;
}

/* --- umask_cwd ----------------------------------------------------------- */

static int
umask_cwd_setup(void)
{
	mkdir("/wl-cwd", 0755);
	mkdir("/wl-cwd/sub dir", 0755);
	if (chdir("/wl-cwd/sub dir") != 0)
		return wl_fail_errno("chdir");
	umask(0027);
	return 0;
}

static int
umask_cwd_verify(void)
{
	char	cwd[256];
	mode_t	m;

	m = umask(0);
	umask(m);
	if (m != 0027)
		return wl_fail("umask %03o, not 027", (unsigned)m);
	if (getcwd(cwd, sizeof cwd) == NULL)
		return wl_fail_errno("getcwd");
	if (strcmp(cwd, "/wl-cwd/sub dir") != 0)
		return wl_fail("cwd is %s", cwd);
	return 0;
}

/* --- environ: the environment as given and as changed -------------------- */

static char	env_path[256], env_term[256];

static int
environ_setup(void)
{
	const char	*v;

	snprintf(env_path, sizeof env_path, "%s", (v = getenv("PATH")) ?
	    v : "");
	snprintf(env_term, sizeof env_term, "TERM=%s", (v = getenv("TERM")) ?
	    v : "");
	if (env_term[5] == '\0')
		return wl_fail("no TERM in the environment to remove");
	if (setenv("WL_ADDED", "added after start", 1) != 0 ||
	    unsetenv("TERM") != 0)
		return wl_fail_errno("setenv");
	return 0;
}

static int
environ_verify(void)
{
	const char	*v;
	char		 buf[4096];
	ssize_t		 n;
	int		 fd;

	if ((v = getenv("WL_ADDED")) == NULL ||
	    strcmp(v, "added after start") != 0)
		return wl_fail("WL_ADDED is %s", v ? v : "unset");
	if (getenv("TERM") != NULL)
		return wl_fail("TERM came back");
	if ((v = getenv("PATH")) == NULL || strcmp(v, env_path) != 0)
		return wl_fail("PATH is %s", v ? v : "unset");
	/* The kernel's copy still holds what exec gave. */
	if ((fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC)) == -1)
		return wl_fail_errno("/proc/self/environ");
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return wl_fail("empty /proc/self/environ");
	if (memmem(buf, (size_t)n, env_term, strlen(env_term) + 1) == NULL)
		return wl_fail("/proc/self/environ lost %s", env_term);
	return 0;
}

/* --- clocks: monotonic time does not go back ---------------------------- */

static struct timespec	clk_mono, clk_boot;

static int
ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static int
clocks_setup(void)
{
	clock_gettime(CLOCK_MONOTONIC, &clk_mono);
	clock_gettime(CLOCK_BOOTTIME, &clk_boot);
	return 0;
}

static int
clocks_verify(void)
{
	struct timespec	mono, boot;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	if (!ts_before(&clk_mono, &mono))
		return wl_fail("CLOCK_MONOTONIC went back: %lld.%09ld -> "
		    "%lld.%09ld", (long long)clk_mono.tv_sec, clk_mono.tv_nsec,
		    (long long)mono.tv_sec, mono.tv_nsec);
	if (!ts_before(&clk_boot, &boot))
		return wl_fail("CLOCK_BOOTTIME went back");
	clk_mono = mono;
	clk_boot = boot;
	return 0;
}

/* --- pty: a pseudo-terminal pair on a devpts of the container's own ------ */

static int	pty_m, pty_s;

static int
pty_setup(void)
{
	struct termios	t;
	char		name[64];
	int		n;

	/* tern gives a container its own devpts; mount one elsewhere. */
	if (access("/dev/pts/ptmx", F_OK) != 0) {
		mkdir("/dev/pts", 0755);
		if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID |
		    MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0)
			return wl_fail_errno("mount devpts on /dev/pts");
	}
	if ((pty_m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY)) == -1)
		return wl_fail_errno("/dev/pts/ptmx");
	n = 0;
	if (ioctl(pty_m, TIOCSPTLCK, &n) != 0 ||
	    ioctl(pty_m, TIOCGPTN, &n) != 0)
		return wl_fail_errno("unlock the pty");
	snprintf(name, sizeof name, "/dev/pts/%d", n);
	if ((pty_s = open(name, O_RDWR | O_NOCTTY)) == -1)
		return wl_fail_errno(name);
	if (tcgetattr(pty_s, &t) != 0)
		return wl_fail_errno("tcgetattr");
	cfmakeraw(&t);
	cfsetspeed(&t, B38400);
	if (tcsetattr(pty_s, TCSANOW, &t) != 0)
		return wl_fail_errno("tcsetattr");
	return wl_write_all(pty_m, "to the slave", 12, "write the master");
}

static int
pty_verify(void)
{
	struct termios	t;
	char		buf[16];

	if (tcgetattr(pty_s, &t) != 0)
		return wl_fail_errno("tcgetattr");
	if ((t.c_lflag & (ICANON | ECHO)) || cfgetospeed(&t) != B38400)
		return wl_fail("the terminal's settings changed (lflag %#x)",
		    (unsigned)t.c_lflag);
	if (wl_read_all(pty_s, buf, 12, "the slave") != 0)
		return -1;
	if (memcmp(buf, "to the slave", 12) != 0)
		return wl_fail("the slave read \"%.12s\"", buf);
	if (wl_write_all(pty_s, "to master", 9, "write the slave") != 0 ||
	    wl_read_all(pty_m, buf, 9, "the master") != 0)
		return -1;
	if (memcmp(buf, "to master", 9) != 0)
		return wl_fail("the master read \"%.9s\"", buf);
	return wl_write_all(pty_m, "to the slave", 12, "write the master");
}

const struct workload wl_proc[] = {
	{ "threads", "threads counting, with TLS and names", threads_setup,
	    threads_verify, 0 },
	{ "futex", "two threads handing a futex back and forth", futex_setup,
	    futex_verify, 0 },
	{ "fpu", "SSE/AVX, x87 and MXCSR registers held in a thread",
	    fpu_setup, fpu_verify, 0 },
	{ "stopped", "a child stopped by SIGSTOP", stopped_setup,
	    stopped_verify, 0 },
	{ "zombie", "an unreaped child that exited 7", zombie_setup,
	    zombie_verify, 0 },
	{ "sessions", "a child session and process groups", sessions_setup,
	    sessions_verify, 0 },
	{ "tree", "a tree of ten processes, three levels", tree_setup,
	    tree_verify, 0 },
	{ "rlimits", "lowered resource limits", rlimits_setup,
	    rlimits_verify, 0 },
	{ "umask_cwd", "umask 027 and a working directory", umask_cwd_setup,
	    umask_cwd_verify, 0 },
	{ "environ", "the environment, changed after start", environ_setup,
	    environ_verify, 0 },
	{ "clocks", "monotonic and boot clocks never go back", clocks_setup,
	    clocks_verify, 0 },
	{ "pty", "a pseudo-terminal pair on its own devpts", pty_setup,
	    pty_verify, 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};
