/* What every role of one ternd process shares: the loop, the
 * configuration, the TLS context, the peer mesh, the control socket.
 * main() owns it; a role (the agent, later the coordinator) points to it
 * and registers its handlers on the mesh (daemon/mesh.h). */
#ifndef TERN_TERND_H
#define TERN_TERND_H

#include <stdint.h>

#include <uv.h>

#include "daemon/conf.h"
#include "daemon/conn.h"
#include "daemon/loop-probe.h"

struct ctlsock;
struct mesh;
struct tls_ctx;

struct ternd {
	uv_loop_t		*loop;
	char			*conf_path;
	struct conf		*conf;		/* replaced by a reload */
	struct tls_ctx		*tls;		/* replaced by a reload */
	struct conn_limits	 peer_limits;
	struct mesh		*mesh;		/* NULL once stopping */
	struct ctlsock		*ctl;
	uint64_t		 boot_id;	/* random, new every start */
	uint64_t		 start_ms;
	int			 stopping;
	int			 exit_code;
	struct loop_probe	 probe;		/* the loop's worst lateness */
};

#endif
