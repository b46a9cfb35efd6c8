"""Citus (distribution: citus in the config): what the runner says when a stage fails on the
cluster. A worker that stops in mid-statement fails the statement with the worker's own
message ("terminating connection due to administrator command"), which does not say which
node; the coordinator can: it tries each active worker."""

from __future__ import annotations

import psycopg
from psycopg import conninfo

NODES_DOWN = """
SELECT format('%s:%s', n.nodename, n.nodeport)
FROM pg_catalog.pg_dist_node AS n
WHERE n.isactive AND n.noderole = 'primary' AND n.shouldhaveshards
    AND NOT citus_check_connection_to_node(n.nodename, n.nodeport)
ORDER BY n.nodename, n.nodeport
"""


def unreachable_workers(conn: psycopg.Connection) -> list[str]:
    """host:port of each worker the coordinator cannot reach now, over a new connection made
    with ``conn``'s parameters (the stage's may be broken); [] when it cannot tell."""
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    try:
        with psycopg.connect(conninfo.make_conninfo(**params), connect_timeout=10) as check:
            return [row[0] for row in check.execute(NODES_DOWN).fetchall()]
    except psycopg.Error:
        return []


def describe_failure(conn: psycopg.Connection) -> str:
    """A line for a stage's error when Citus workers are down, else ''."""
    down = unreachable_workers(conn)
    if not down:
        return ""
    return (f"\n  Citus worker {', '.join(down)} does not answer: the stage's transaction was rolled back on "
            "every node; run again once it is up")
