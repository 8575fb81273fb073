/* Facts about this agent that several parts report, and what it serves on
 * the peer mesh. */
#include "config.h"

#include "agent/agent.h"
#include "agent/drain.h"
#include "agent/ha-ops.h"
#include "agent/migration.h"
#include "daemon/mesh.h"
#include "migrate/files.h"
#include "migrate/relay.h"
#include "migrate/tree.h"

const char **
agent_capabilities(const struct agent *a, size_t *n)
{
	static const char	*caps[8];
	size_t			 i = 0;

	caps[i++] = "stream.v1";
	/* Takes data frames without a payload CRC over TLS (daemon/frame.h). */
	caps[i++] = "frame.unchecked-tls";
	if (a->criu.usable) {
		caps[i++] = "criu";
		if (a->criu.lazy_pages)
			caps[i++] = "criu.lazy-pages";
		if (a->criu.mem_track)
			caps[i++] = "criu.mem-track";
		/* Stop-and-copy's pages over a relayed page server. */
		if (a->criu_action != NULL)
			caps[i++] = "criu.page-server";
	}
	caps[i] = NULL;
	*n = i;
	return caps;
}

/* --- the mesh's handlers: ctx is the agent -------------------------------- */

static const char **
agent_mesh_caps(void *ctx, size_t *n)
{
	return agent_capabilities(ctx, n);
}

static int
agent_mesh_msg(void *ctx, const char *peer, const Envelope *env)
{
	return migration_on_msg(ctx, peer, env);
}

static int
agent_mesh_file(void *ctx, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	return migration_accept_file(ctx, peer, st, name, size, cause);
}

static int
agent_mesh_tree(void *ctx, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	return migration_accept_tree(ctx, peer, st, name, cause);
}

static int
agent_mesh_relay(void *ctx, const char *peer, struct stream *st,
    const char *name, uint64_t size, char **cause)
{
	return migration_accept_relay(ctx, peer, st, name, cause);
}

static void
agent_mesh_lost(void *ctx, const char *peer, const char *why)
{
	migration_peer_lost(ctx, peer, why);
}

void
agent_mesh_register(struct agent *a, struct mesh *ms)
{
	mesh_set_capabilities(ms, agent_mesh_caps, a);
	/* Both kinds' migrations: offers and their steps. */
	mesh_on_message(ms, TERN__ENVELOPE__BODY_MIGRATE_OFFER, agent_mesh_msg,
	    a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_MIGRATE_STEP, agent_mesh_msg,
	    a);
	/* A protected instance's commit point: the coordinator's answers. */
	mesh_on_message(ms, TERN__ENVELOPE__BODY_OWNER_MOVE_REPLY,
	    agent_mesh_msg, a);
	mesh_on_message(ms, TERN__ENVELOPE__BODY_OWNER_QUERY_REPLY,
	    agent_mesh_msg, a);
	mesh_on_stream(ms, FILES_STREAM_KIND, agent_mesh_file, a);
	mesh_on_stream(ms, TREE_STREAM_KIND, agent_mesh_tree, a);
	mesh_on_stream(ms, RELAY_STREAM_KIND, agent_mesh_relay, a);
	mesh_on_peer_lost(ms, agent_mesh_lost, a);
	/* ternctl host drain: the mark, and forwarded requests. */
	drain_init(a, ms);
	/* ternctl ha set / ha status / failovers, asked of the
	 * coordinator. */
	ha_ops_init(a, ms);
}
