/* Fault points: a test hook to make one failure edge happen on purpose.
 *
 * The environment variable TERN_FAULT, read once, names points and what
 * happens at each: "name:action[,name:action...]", e.g.
 * TERN_FAULT=criu.dump:stall,ckpt.after-post-dump:kill.  The code at a
 * point asks fault_hit("name") and carries out the action itself (what
 * "kill" kills is the point's to say).  Every hit is logged at warn, so a
 * test can check that its fault fired.  Present in every build; never set
 * TERN_FAULT outside tests. */
#ifndef TERN_DAEMON_FAULT_H
#define TERN_DAEMON_FAULT_H

enum fault_action {
	FAULT_NONE = 0,
	FAULT_FAIL,		/* the step fails */
	FAULT_KILL,		/* a process the step talks to is killed */
	FAULT_STALL,		/* ... or stopped: it never answers */
};

/* The action TERN_FAULT sets for point name, FAULT_NONE if none. */
enum fault_action	fault_hit(const char *name);

#endif
