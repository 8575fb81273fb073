/* The host role of ternd: what one agent process holds. */
#ifndef TERN_AGENT_AGENT_H
#define TERN_AGENT_AGENT_H

#include <stdint.h>

#include <uv.h>

#include "checkpoint/criu.h"
#include "daemon/conf.h"
#include "daemon/conn.h"
#include "daemon/loop-probe.h"

struct peers;
struct instances;
struct mig_engine;
struct ctlsock;
struct tls_ctx;
struct vm_host;
struct longjobs;

struct agent {
	uv_loop_t		*loop;
	char			*conf_path;
	struct conf		*conf;
	struct tls_ctx		*tls;
	struct conn_limits	 peer_limits;
	struct peers		*peers;
	struct instances	*instances;	/* NULL until CRIU was probed */
	struct vm_host		*vms;		/* libvirt; NULL: no VMs here */
	struct mig_engine	*mig;		/* every migration, either kind */
	uint64_t		 next_migration;
	struct ctlsock		*ctl;
	uint64_t		 boot_id;
	uint64_t		 start_ms;
	int			 stopping;
	int			 exit_code;
	struct criu_features	 criu;		/* what container work CRIU allows */
	int			 criu_probed;
	char			*criu_action;	/* criu_action_script(), or NULL */
	uint8_t			*cpuinfo;	/* this CPU for CRIU (cpuinfo.img), */
	size_t			 cpuinfo_len;	/* sent with migration offers */
	char			*cpuinfo_error;	/* why there is none */
	struct loop_probe	 probe;		/* the loop's worst lateness */
	struct longjobs		*longjobs;	/* VM migrations' threads */
};

/* agent.c */
/* What this host can do, for Hello and status: a NULL-terminated array of
 * static strings. */
const char	**agent_capabilities(const struct agent *, size_t *n);

#endif
