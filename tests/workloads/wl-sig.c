/* wl: signals and timers: signalfd, timerfd, POSIX timers, itimers,
 * masks, pending signals, the alternate stack, handlers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

static int
block(int sig)
{
	sigset_t	s;

	sigemptyset(&s);
	sigaddset(&s, sig);
	return sigprocmask(SIG_BLOCK, &s, NULL);
}

/* --- signalfd: a pending signal read through a signalfd ----------------- */

static int	sfd;

static int
signalfd_setup(void)
{
	sigset_t	s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, SIGRTMIN + 1);
	if (sigprocmask(SIG_BLOCK, &s, NULL) != 0)
		return wl_fail_errno("sigprocmask");
	if ((sfd = signalfd(-1, &s, SFD_NONBLOCK)) == -1)
		return wl_fail_errno("signalfd");
	if (kill(getpid(), SIGUSR2) != 0)
		return wl_fail_errno("kill");
	return 0;
}

static int
signalfd_verify(void)
{
	struct signalfd_siginfo	si;
	sigset_t		s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	if (!wl_readable(sfd, WL_WAIT_MS))
		return wl_fail("the signalfd has nothing to read");
	if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
		return wl_fail_errno("read the signalfd");
	if (si.ssi_signo != SIGUSR2)
		return wl_fail("the signalfd gave signal %u, not SIGUSR2",
		    si.ssi_signo);
	if (wl_readable(sfd, 0))
		return wl_fail("the signalfd has more than one signal");
	/* The set it watches: SIGRTMIN+1 shows there too. */
	if (sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = 9 })
	    != 0)
		return wl_fail_errno("sigqueue");
	if (!wl_readable(sfd, WL_WAIT_MS) ||
	    read(sfd, &si, sizeof si) != (ssize_t)sizeof si ||
	    (int)si.ssi_signo != SIGRTMIN + 1 || si.ssi_int != 9)
		return wl_fail("the signalfd no longer watches SIGRTMIN+1");
	return kill(getpid(), SIGUSR2) == 0 ? 0 : wl_fail_errno("kill");
}

/* --- timerfd: a periodic one, and one an hour away ---------------------- */

static int	tfd_p, tfd_o;

static int
timerfd_setup(void)
{
	struct itimerspec	p = { { 0, 50000000 }, { 0, 50000000 } };

	if ((tfd_p = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) == -1)
		return wl_fail_errno("timerfd_create");
	if (timerfd_settime(tfd_p, 0, &p, NULL) != 0)
		return wl_fail_errno("timerfd_settime");
	return 0;
}

static int
timerfd_verify(void)
{
	struct itimerspec	cur;
	uint64_t		n;

	if (timerfd_gettime(tfd_p, &cur) != 0)
		return wl_fail_errno("timerfd_gettime");
	if (cur.it_interval.tv_sec != 0 ||
	    cur.it_interval.tv_nsec != 50000000)
		return wl_fail("the periodic timer's interval is %lld.%09ld",
		    (long long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
	/* Drain what expired, then see it expire again. */
	if (read(tfd_p, &n, sizeof n) == -1 && errno != EAGAIN)
		return wl_fail_errno("read the timerfd");
	if (!wl_readable(tfd_p, WL_WAIT_MS) ||
	    read(tfd_p, &n, sizeof n) != 8 || n == 0)
		return wl_fail("the periodic timerfd no longer expires");
	return 0;
}

static int
timerfd_idle_setup(void)
{
	struct itimerspec	o = { { 0, 0 }, { 3600, 0 } };

	if ((tfd_o = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK)) == -1)
		return wl_fail_errno("timerfd_create");
	if (timerfd_settime(tfd_o, 0, &o, NULL) != 0)
		return wl_fail_errno("timerfd_settime");
	return 0;
}

static int
timerfd_idle_verify(void)
{
	struct itimerspec	cur;

	if (timerfd_gettime(tfd_o, &cur) != 0)
		return wl_fail_errno("timerfd_gettime");
	if (cur.it_value.tv_sec <= 0 || cur.it_value.tv_sec >= 3600 ||
	    cur.it_interval.tv_sec != 0)
		return wl_fail("the one-shot timer has %lld s left",
		    (long long)cur.it_value.tv_sec);
	if (wl_readable(tfd_o, 0))
		return wl_fail("the one-hour timer expired");
	return 0;
}

/* --- posix_timer: a periodic signal timer and an idle one ---------------- */

static timer_t			pt_periodic, pt_idle;
static volatile sig_atomic_t	pt_count, pt_badval;

static void
on_pt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != 77)
		pt_badval = 1;
	pt_count++;
}

static int
posix_timer_setup(void)
{
	struct sigaction	sa;
	struct sigevent		ev;
	struct itimerspec	p = { { 0, 20000000 }, { 0, 20000000 } };
	struct itimerspec	o = { { 0, 0 }, { 3600, 0 } };

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_pt;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 2, &sa, NULL);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_value.sival_int = 77;
	if (timer_create(CLOCK_MONOTONIC, &ev, &pt_periodic) != 0)
		return wl_fail_errno("timer_create");
	ev.sigev_notify = SIGEV_NONE;
	if (timer_create(CLOCK_REALTIME, &ev, &pt_idle) != 0)
		return wl_fail_errno("timer_create");
	if (timer_settime(pt_periodic, 0, &p, NULL) != 0 ||
	    timer_settime(pt_idle, 0, &o, NULL) != 0)
		return wl_fail_errno("timer_settime");
	return 0;
}

static int
posix_timer_verify(void)
{
	struct itimerspec	cur;
	sig_atomic_t		before = pt_count;
	int			k;

	for (k = 0; k < WL_WAIT_MS / 10 && pt_count < before + 3; k++)
		wl_msleep(10);
	if (pt_count < before + 3)
		return wl_fail("the periodic timer fires no more");
	if (pt_badval)
		return wl_fail("a timer signal came without its value");
	if (timer_gettime(pt_periodic, &cur) != 0)
		return wl_fail_errno("timer_gettime");
	if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != 20000000)
		return wl_fail("the periodic timer's interval changed");
	if (timer_gettime(pt_idle, &cur) != 0)
		return wl_fail_errno("timer_gettime");
	if (cur.it_value.tv_sec <= 0 || cur.it_value.tv_sec >= 3600)
		return wl_fail("the idle timer has %lld s left",
		    (long long)cur.it_value.tv_sec);
	return 0;
}

/* --- itimer: ITIMER_REAL, periodic --------------------------------------- */

static volatile sig_atomic_t	it_count;

static void
on_alrm(int sig)
{
	(void)sig;
	it_count++;
}

static int
itimer_setup(void)
{
	struct sigaction	sa;
	struct itimerval	v = { { 0, 30000 }, { 0, 30000 } };

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (setitimer(ITIMER_REAL, &v, NULL) != 0)
		return wl_fail_errno("setitimer");
	return 0;
}

static int
itimer_verify(void)
{
	struct itimerval	v;
	sig_atomic_t		before = it_count;
	int			k;

	if (getitimer(ITIMER_REAL, &v) != 0)
		return wl_fail_errno("getitimer");
	if (v.it_interval.tv_sec != 0 || v.it_interval.tv_usec != 30000)
		return wl_fail("ITIMER_REAL's interval is %ld.%06ld",
		    (long)v.it_interval.tv_sec, (long)v.it_interval.tv_usec);
	for (k = 0; k < WL_WAIT_MS / 10 && it_count < before + 3; k++)
		wl_msleep(10);
	if (it_count < before + 3)
		return wl_fail("SIGALRM no longer comes");
	return 0;
}

/* --- sigmask: the blocked set ------------------------------------------- */

static int
sigmask_setup(void)
{
	if (block(SIGUSR2) != 0 || block(SIGRTMIN + 3) != 0 ||
	    block(SIGWINCH) != 0)
		return wl_fail_errno("sigprocmask");
	return 0;
}

static int
sigmask_verify(void)
{
	sigset_t	cur;
	int		sig;

	if (sigprocmask(SIG_BLOCK, NULL, &cur) != 0)
		return wl_fail_errno("sigprocmask");
	for (sig = 1; sig < SIGRTMAX; sig++) {
		int want = sig == SIGUSR2 || sig == SIGRTMIN + 3 ||
		    sig == SIGWINCH;
		if (sigismember(&cur, sig) != want)
			return wl_fail("signal %d is %sblocked", sig,
			    want ? "not " : "");
	}
	return 0;
}

/* --- pending: signals queued to the process and to the thread ----------- */

static int
pending_queue(void)
{
	if (kill(getpid(), SIGUSR2) != 0 ||
	    sigqueue(getpid(), SIGRTMIN + 4,
	    (union sigval){ .sival_int = 1234 }) != 0 ||
	    sigqueue(getpid(), SIGRTMIN + 4,
	    (union sigval){ .sival_int = 5678 }) != 0 ||
	    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid),
	    SIGRTMIN + 5) != 0)
		return wl_fail_errno("queue signals");
	return 0;
}

static int
pending_setup(void)
{
	if (block(SIGUSR2) != 0 || block(SIGRTMIN + 4) != 0 ||
	    block(SIGRTMIN + 5) != 0)
		return wl_fail_errno("sigprocmask");
	return pending_queue();
}

static int
pending_verify(void)
{
	static const struct timespec	zero = { 0, 0 };
	sigset_t			set, pend;
	siginfo_t			si;
	int				k;
	const int			vals[2] = { 1234, 5678 };

	if (sigpending(&pend) != 0)
		return wl_fail_errno("sigpending");
	if (!sigismember(&pend, SIGUSR2) || !sigismember(&pend, SIGRTMIN + 4) ||
	    !sigismember(&pend, SIGRTMIN + 5))
		return wl_fail("pending signals lost (USR2 %d, RTMIN+4 %d, "
		    "RTMIN+5 %d)", sigismember(&pend, SIGUSR2),
		    sigismember(&pend, SIGRTMIN + 4),
		    sigismember(&pend, SIGRTMIN + 5));
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	for (k = 0; k < 2; k++) {
		if (sigtimedwait(&set, &si, &zero) != SIGRTMIN + 4)
			return wl_fail("queued SIGRTMIN+4 number %d lost", k);
		if (si.si_value.sival_int != vals[k])
			return wl_fail("SIGRTMIN+4 #%d carries %d, not %d",
			    k, si.si_value.sival_int, vals[k]);
	}
	if (sigtimedwait(&set, &si, &zero) != -1)
		return wl_fail("more SIGRTMIN+4 than were queued");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigtimedwait(&set, &si, &zero) != SIGUSR2)
		return wl_fail("pending SIGUSR2 lost");
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 5);
	if (sigtimedwait(&set, &si, &zero) != SIGRTMIN + 5)
		return wl_fail("the thread's pending SIGRTMIN+5 lost");
	return pending_queue();
}

/* --- sigaltstack: a handler runs on the alternate stack ------------------ */

static char			alt[64 * 1024] __attribute__((aligned(16)));
static volatile sig_atomic_t	alt_runs, alt_on;

static void
on_alt(int sig)
{
	char	here;

	(void)sig;
	alt_on = &here >= alt && &here < alt + sizeof alt;
	alt_runs++;
}

static int
sigaltstack_setup(void)
{
	struct sigaction	sa;
	stack_t			ss = { .ss_sp = alt, .ss_size = sizeof alt };

	if (sigaltstack(&ss, NULL) != 0)
		return wl_fail_errno("sigaltstack");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alt;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	return 0;
}

static int
sigaltstack_verify(void)
{
	stack_t		ss;
	sig_atomic_t	before = alt_runs;

	if (sigaltstack(NULL, &ss) != 0)
		return wl_fail_errno("sigaltstack");
	if (ss.ss_sp != alt || ss.ss_size != sizeof alt ||
	    (ss.ss_flags & SS_DISABLE))
		return wl_fail("the alternate stack is %p+%zu flags %#x",
		    ss.ss_sp, ss.ss_size, (unsigned)ss.ss_flags);
	alt_on = 0;
	raise(SIGUSR2);
	if (alt_runs != before + 1)
		return wl_fail("the handler did not run");
	if (!alt_on)
		return wl_fail("the handler ran off the alternate stack");
	return 0;
}

/* --- sighandlers: dispositions, flags and masks -------------------------- */

static volatile sig_atomic_t	hup_runs, hup_code;

static void
on_hup(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	hup_code = si->si_code;
	hup_runs++;
}

static int
sighandlers_setup(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_hup;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGRTMIN + 6);
	if (sigaction(SIGHUP, &sa, NULL) != 0)
		return wl_fail_errno("sigaction SIGHUP");
	signal(SIGWINCH, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
sighandlers_verify(void)
{
	struct sigaction	sa;
	sig_atomic_t		before = hup_runs;

	if (sigaction(SIGHUP, NULL, &sa) != 0)
		return wl_fail_errno("sigaction");
	if (sa.sa_sigaction != on_hup || !(sa.sa_flags & SA_SIGINFO) ||
	    !(sa.sa_flags & SA_RESTART) || !sigismember(&sa.sa_mask, SIGINT) ||
	    !sigismember(&sa.sa_mask, SIGRTMIN + 6) ||
	    sigismember(&sa.sa_mask, SIGUSR2))
		return wl_fail("SIGHUP's action changed (flags %#x)",
		    (unsigned)sa.sa_flags);
	if (sigaction(SIGWINCH, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		return wl_fail("SIGWINCH is no longer ignored");
	if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		return wl_fail("SIGPIPE is no longer ignored");
	if (sigaction(SIGQUIT, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL)
		return wl_fail("SIGQUIT is no longer SIG_DFL");
	kill(getpid(), SIGHUP);
	if (hup_runs != before + 1 || hup_code != SI_USER)
		return wl_fail("the SIGHUP handler did not run as set");
	return 0;
}

const struct workload wl_sig[] = {
	{ "signalfd", "a signalfd with a pending signal", signalfd_setup,
	    signalfd_verify, 0 },
	{ "timerfd", "a periodic timerfd (50 ms)", timerfd_setup,
	    timerfd_verify, 0 },
	{ "timerfd_idle", "a timerfd one hour away", timerfd_idle_setup,
	    timerfd_idle_verify, 0 },
	{ "posix_timer", "POSIX timers, a periodic signal and an idle one",
	    posix_timer_setup, posix_timer_verify, 0 },
	{ "itimer", "a periodic ITIMER_REAL", itimer_setup, itimer_verify, 0 },
	{ "sigmask", "a mask of blocked signals", sigmask_setup,
	    sigmask_verify, 0 },
	{ "pending", "pending signals, queued real-time values, "
	    "thread-directed", pending_setup, pending_verify, 0 },
	{ "sigaltstack", "a handler on the alternate signal stack",
	    sigaltstack_setup, sigaltstack_verify, 0 },
	{ "sighandlers", "signal dispositions, flags and masks",
	    sighandlers_setup, sighandlers_verify, 0 },
	{ NULL, NULL, NULL, NULL, 0 }
};
