/* What every role of one ternd process shares: the loop, the
 * configuration, the TLS context, the peer mesh, the control socket.
 * main() (main/ternd.c) owns it and composes the roles: a role (the
 * agent, the coordinator) points to it and registers its handlers on the
 * mesh (daemon/mesh.h); roles never call each other, and reach each
 * other only through the mesh or what main puts here. */
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

	/* main's: stop every role and let the loop run dry.  A role that
	 * cannot go on once the loop runs sets exit_code and calls it. */
	void			(*stop)(struct ternd *);
	/* main's, when this process runs the coordinator role: its line
	 * for ternctl status (caller frees); NULL when it does not. */
	char			*(*coord_describe)(void *ctx);
	void			*coord_ctx;
};

#endif
