"""The pipeline's roles: who owns what, and which role the data stages run as.

sql/migrations/V011__create_roles.sql creates three NOLOGIN roles, once per cluster, and
gives each the least it needs in the database it migrates:

    raw_to_ready_owner   DDL: owns the schemas, the raw layer and its triggers, every table a
                         trigger guards, meta.schema_migrations; later migrations run as it
    raw_to_ready_loader  the data stages (ingest onward): SELECT and INSERT in raw, nothing
                         else there; owns the tables of stg, feats, meta and work
    raw_to_ready_reader  SELECT on stg, feats and meta; nothing that writes

The runner calls ``become_loader`` after the migrate stage: from then on its session runs
as the loader. ``migrator_role`` tells scripts/db/migrate.py to run a migration as the owner.

    python -m scripts.db.roles      # make roles: as a DBA, create the roles and set up the database
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import psycopg

from scripts import config
from scripts.console import mask_database_url
from scripts.db import connection, pipelines
from scripts.db.locks import MIGRATION_LOCK_KEY
from scripts.errors import EXIT_CODES_HELP, ConfigError, EmbeddedServerError, failure
from scripts.paths import SQL_DIR

OWNER = "raw_to_ready_owner"
LOADER = "raw_to_ready_loader"
READER = "raw_to_ready_reader"
ROLES = (OWNER, LOADER, READER)
ROLES_MIGRATION = SQL_DIR / "migrations" / "V011__create_roles.sql"


def migrator_role(conn: psycopg.Connection) -> str | None:
    """raw_to_ready_owner when this database is set up for it (V011 or `make roles` gave it
    CREATE on the database) and the session may become it; else None (the connecting role
    migrates, as before V011)."""
    row = conn.execute(
        "SELECT coalesce(pg_has_role(session_user, r.oid, 'SET')"
        " AND has_database_privilege(r.oid, current_database(), 'CREATE'), false)"
        " FROM (SELECT to_regrole(%s) AS oid) AS r",
        (OWNER,),
    ).fetchone()
    return OWNER if row[0] else None


def become_loader(conn: psycopg.Connection) -> str:
    """Run this session's further statements as raw_to_ready_loader; return the role they run as.

    Call it after the migrate stage and before ingest, outside a transaction (the runner's
    connection is in autocommit mode). It switches when the loader exists, the session's
    user may become it (a superuser, a member of the owner or of the loader) and the
    database is set up for it (V011 applied); otherwise nothing changes and the connecting
    role is returned, e.g. a role a DBA gave the loader's privileges to directly.

    SET ROLE limits what every statement of the session may do, so a mistake in the
    stages' SQL cannot touch the raw layer; it is not a sandbox: SQL that says RESET ROLE
    gets the connecting role back. For that, connect as a LOGIN role that is a member of
    the loader only (see "Roles and least privilege" in docs/database.md).
    """
    row = conn.execute(
        "SELECT coalesce(pg_has_role(session_user, r.oid, 'SET') AND has_schema_privilege(r.oid, n.oid, 'CREATE'),"
        " false) FROM (SELECT to_regrole(%s) AS oid) AS r, (SELECT to_regnamespace('stg') AS oid) AS n",
        (LOADER,),
    ).fetchone()
    if row[0]:
        conn.execute(f"SET ROLE {LOADER}")
    return conn.execute("SELECT current_user").fetchone()[0]


def set_up(conn: psycopg.Connection, log: Callable[[str], None] = print) -> None:
    """`make roles`: run V011's statements (idempotent) in one transaction, printing its notices.

    Not recorded in meta.schema_migrations: the migration V011 still runs (and finds
    everything done) when the migrations reach it."""
    def notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity in ("NOTICE", "WARNING"):
            log(f"  {diag.severity.lower()}: {diag.message_primary}")

    conn.add_notice_handler(notice)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))  # never alongside a migrator
            conn.execute(ROLES_MIGRATION.read_text(encoding="utf-8").encode("utf-8"))
    finally:
        conn.remove_notice_handler(notice)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.db.roles", epilog=EXIT_CODES_HELP,
                                     description="Create the owner, loader and reader roles and set the database of "
                                                 "the pipeline of --config up for them, as a DBA (make roles).")
    config.add_config_argument(parser)
    args = parser.parse_args(argv)
    url = ""
    try:
        url = pipelines.database_url(config.name_of(args.config))
        with psycopg.connect(url, autocommit=True) as conn:
            set_up(conn)
            database, user = conn.execute("SELECT current_database(), current_user").fetchone()
    except ConfigError as exc:
        return failure(exc)
    except (EmbeddedServerError, psycopg.Error) as exc:
        if connection.is_connect_failure(exc):  # its cause and fix (scripts/db/connection.py)
            return failure(connection.connect_error(exc, url or None))
        print(f"error: {str(exc).strip()}", file=sys.stderr)  # the server's hint included
        if url:
            print(f"  (database: {mask_database_url(url)})", file=sys.stderr)
        return 3
    print(f"roles {', '.join(ROLES)} set up in database {database} (as {user}).")
    print(f"  the role that runs the migrations (make migrate, make all): GRANT {OWNER} TO <role>;")
    print(f"  a role that runs the data stages only:                       GRANT {LOADER} TO <role>;")
    print(f"  a role that reads what is published:                        GRANT {READER} TO <role>;")
    return 0


if __name__ == "__main__":
    sys.exit(main())
