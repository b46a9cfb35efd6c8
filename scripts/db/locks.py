"""The advisory locks, both keys in one place: one migrator at a time, one run at a time.

Both are PostgreSQL advisory locks on the pipeline's database. The migration lock is a
transaction's (held while migrations or `make roles` run); the run lock is the session's
(held by a pipeline run from before ingest to its end, and released when its session ends,
also when the runner is killed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from scripts.errors import LockError

MIGRATION_LOCK_KEY = 7_342_001  # pg_advisory_xact_lock key: one migrator at a time
RUN_LOCK_KEY = 7_342_002  # pg_advisory_lock key: one pipeline run per database at a time


def lock_pipeline(conn: psycopg.Connection, timeout: float = 600.0, log: Callable[[str], None] = print) -> None:
    """One run per database at a time: the lock ends with the session that holds it.

    A run that finds the lock held says who holds it and waits, up to ``timeout`` seconds
    (0: not at all). A killed runner's session ends within a second even in mid-statement,
    because the runner's sessions set client_connection_check_interval (scripts/pipeline/runner.py: connect).
    """
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:
        return
    holder = conn.execute(
        "SELECT a.pid, a.application_name, a.state FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (RUN_LOCK_KEY,),
    ).fetchone()
    who = f"pid {holder[0]} ({holder[1] or 'no application name'}, {holder[2]})" if holder else "another session"
    if timeout <= 0:
        raise LockError(f"another pipeline run holds the lock on this database ({who}); "
                          "wait for it to finish, or give --lock-timeout to wait for it")
    log(f"waiting up to {timeout:g} s for the pipeline lock, held by {who} ...")
    started = time.monotonic()
    try:
        with conn.transaction():  # the wait's limit is local; the lock itself is the session's
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout * 1000)}ms",))
            conn.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        raise LockError(f"gave up after {timeout:g} s waiting for the pipeline lock, held by {who}; "
                          "give --lock-timeout to wait longer") from None
    log(f"  got the pipeline lock after {time.monotonic() - started:.1f} s")
