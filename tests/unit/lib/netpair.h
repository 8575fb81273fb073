/* A pair of tern connections over a unix socket in one process, each
 * with its stream mux: for unit tests of what runs over streams.  "a"
 * accepts, "b" dials; each side's accept callback is the test's. */
#ifndef TERN_TEST_NETPAIR_H
#define TERN_TEST_NETPAIR_H

#include <uv.h>

#include "daemon/conn.h"
#include "daemon/stream.h"

struct netpair {
	uv_loop_t		 loop;
	uv_pipe_t		 server;
	uv_timer_t		 timer;
	char			 sock[64];
	struct conn		*a, *b;
	struct stream_mux	*amux, *bmux;
	stream_accept_fn	 a_accept, b_accept;
	void			*data;		/* the test's, for its callbacks */
	uint32_t		 window;	/* streams' window; 0: 256 KiB */
	void			(*on_ready)(struct netpair *);	/* both muxes up */
};

/* Start connecting (limits: NULL for small test defaults); returns once
 * both muxes exist, or fails the test. */
void	netpair_start(struct netpair *, const struct conn_limits *);
/* Run the loop for ms milliseconds (or until uv_stop). */
void	netpair_run(struct netpair *, uint64_t ms);
/* Close everything and the loop. */
void	netpair_end(struct netpair *);

#endif
