/* Whether a hardware breakpoint set through ptrace fires on this machine.
 *
 * CRIU stops a task leaving its parasite (dump) or its restorer (restore)
 * on a hardware breakpoint when it can set one.  Some hypervisors accept
 * the debug registers but never raise the trap: CRIU then waits for good
 * ("pie: ... new_sp=..." is the last line of its log).  CRIU's own switch
 * CRIU_FAULT=130 (FI_NO_BREAKPOINTS, meant for Xen guests) makes it trace
 * syscalls instead; hwbreak_setup sets it for every CRIU ternd runs when
 * the probe says breakpoints stay silent here. */
#ifndef TERN_CHECKPOINT_HWBREAK_H
#define TERN_CHECKPOINT_HWBREAK_H

enum hwbreak {
	HWBREAK_FIRES,		/* CRIU may use them */
	HWBREAK_SILENT,		/* set, never raised: CRIU must not */
	HWBREAK_UNKNOWN,	/* no answer (ptrace refused, not x86-64) */
};

/* "fires", "silent", "unknown". */
const char	*hwbreak_name(enum hwbreak);

/* Runs a child under ptrace with a breakpoint on a function it calls;
 * blocking, a few milliseconds.  *cause says why for HWBREAK_UNKNOWN. */
enum hwbreak	 hwbreak_probe(char **cause);

/* Before any thread or CRIU starts: probe, and when breakpoints stay
 * silent set CRIU_FAULT=130 in this process's environment (which every
 * CRIU inherits), unless the operator set CRIU_FAULT.  Logs what it
 * decided. */
void		 hwbreak_setup(void);

#endif
