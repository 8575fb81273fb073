#!/usr/bin/env bash
# ha-coord-kill.sh with the coordinator's store on three etcd members (one
# on each test host; a crashed host takes its member along, and it comes
# back with the host).  The coordinator on h3 is killed and started
# again: its own old leader key (under a lease that has not lapsed) is
# revoked, and it leads again; etcd's compares refuse whatever a dead
# leader had in flight.
exec env HA_KILL_STORE=etcd HA_KILL_ROUNDS="${HA_KILL_ROUNDS:-3}" bash "$TERN_SRCDIR/tests/integration/ha-coord-kill.sh" "$@"
