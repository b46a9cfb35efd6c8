"""Versioned schema migrations, applied once each and recorded like Flyway does.

Files: sql/migrations/V<version>__<description>.sql, applied in version order, each in its
own transaction together with its row in meta.schema_migrations (version, description,
sha256 checksum, applied_at, execution time, success). A migration edited after it was
applied is refused: its checksum no longer matches the recorded one.

Once V011 (the roles, scripts/db/roles.py) has set the database up, each migration runs as
raw_to_ready_owner (SET LOCAL ROLE, when the connecting role may), so that what it creates
belongs to the owner whoever connects; the tables of stg, feats, meta and work get the
loader's read and write privileges by default. A migration that creates a table the data
stages replace or drop hands it over (ALTER TABLE ... OWNER TO raw_to_ready_loader); one
that needs the connecting role itself (CREATE EXTENSION as a superuser) starts with RESET ROLE.

    python -m scripts.db.migrate          # apply pending migrations (make migrate)
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from scripts import config
from scripts.db import connection, pipelines, roles
from scripts.db.locks import MIGRATION_LOCK_KEY
from scripts.errors import EXIT_CODES_HELP, MigrationError, failure
from scripts.paths import SQL_DIR

MIGRATIONS_DIR = SQL_DIR / "migrations"
HISTORY_FILE = MIGRATIONS_DIR / "000_schema_migrations.sql"
NAME_RE = re.compile(r"^V(\d+)__([A-Za-z0-9_]+)\.sql$")


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = [p for p in directory.glob("*.sql") if p != HISTORY_FILE and p.name != HISTORY_FILE.name]
    for path in files:
        if not NAME_RE.match(path.name):
            raise MigrationError(f"{path}: migration files are named V<version>__<description>.sql")
    return sorted(files, key=lambda p: int(NAME_RE.match(p.name).group(1)))


def _shown(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _migrating(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction holding the migration lock, run as raw_to_ready_owner when the
    database is set up for it and the session may (scripts/db/roles.py: migrator_role)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        previous = None
        if roles.migrator_role(conn):
            previous = conn.execute("SELECT current_setting('role')").fetchone()[0]
            conn.execute(f"SET LOCAL ROLE {roles.OWNER}")
        yield
        if previous is not None:  # the transaction may be a savepoint: leave the role as it was
            conn.execute("SELECT set_config('role', %s, true)", (previous,))


def apply_pending(
    conn: psycopg.Connection,
    directory: Path = MIGRATIONS_DIR,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    with _migrating(conn):
        # the bootstrap creates what is missing only, but CREATE SCHEMA IF NOT EXISTS needs
        # CREATE on the database even when the schema exists: a role without it skips it
        present = conn.execute(
            "SELECT to_regclass('meta.schema_migrations') IS NOT NULL"
            " AND to_regclass('meta.schema_migrations_version_success_key') IS NOT NULL"
        ).fetchone()[0]
        if not present:
            conn.execute(HISTORY_FILE.read_text(encoding="utf-8").encode("utf-8"))
    files = migration_files(directory)
    with _migrating(conn):
        _check_history(conn, files)
    applied_now = []
    for path in files:
        version, description = NAME_RE.match(path.name).groups()
        digest = checksum(path)
        with _migrating(conn):
            row = conn.execute(
                "SELECT checksum_sha256 FROM meta.schema_migrations WHERE version = %s AND is_success",
                (version,),
            ).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise MigrationError(
                        f"{_shown(path)}: migration V{version} was edited after it was applied "
                        f"(applied checksum {row[0]}, file checksum {digest}); "
                        "restore the file and put the change in a new migration"
                    )
                continue
        started = time.perf_counter()
        try:
            with _migrating(conn):
                if conn.execute(
                    "SELECT 1 FROM meta.schema_migrations WHERE version = %s AND is_success", (version,)
                ).fetchone():
                    continue  # another migrator applied it meanwhile
                conn.execute(path.read_text(encoding="utf-8").encode("utf-8"))
                _record(conn, version, description, path, digest, started, True)
        except psycopg.Error as exc:
            with _migrating(conn):
                _record(conn, version, description, path, digest, started, False)
            raise MigrationError(f"{_shown(path)}: migration V{version} failed: {str(exc).strip()}") from None
        applied_now.append(version)
        log(f"  applied migration V{version} {description} ({time.perf_counter() - started:.3f} s)")
    return applied_now


def psql_script(files: list[Path]) -> str:
    """migrate.psql for the DBA route: every migration not yet recorded in
    meta.schema_migrations applied and recorded as apply_pending does, each in its own
    transaction, and one recorded with another checksum refused (run without psql -1)."""
    lines = ["-- The migrations, applied and recorded in meta.schema_migrations as `make migrate` does:",
             "-- each one not recorded yet, in its own transaction; one recorded with another checksum",
             "-- stops the script. Run it whole, without --single-transaction:",
             "--   psql -v ON_ERROR_STOP=1 -f migrate.psql",
             f"\\ir migrations/{HISTORY_FILE.name}"]
    for path in files:
        version, description = NAME_RE.match(path.name).groups()
        v, name, digest = (sql.Literal(x).as_string(None) for x in (version, path.name, checksum(path)))
        edited = sql.Literal(f"migration V{version} was edited after it was applied; restore {path.name}")
        recorded = f"SELECT 1 FROM meta.schema_migrations WHERE version = {v} AND is_success"
        lines += [
            "",
            f"-- V{version} {description.replace('_', ' ')}",
            f"DO $edited$ BEGIN IF EXISTS ({recorded} AND checksum_sha256 <> {digest}) THEN "
            f"RAISE EXCEPTION {edited.as_string(None)}; END IF; END $edited$;",
            f"SELECT NOT EXISTS ({recorded}) AS pending \\gset",
            "\\if :pending",
            "BEGIN;",
            f"\\ir migrations/{path.name}",
            "INSERT INTO meta.schema_migrations (version, description, script, checksum_sha256, execution_ms,"
            " is_success, applied_by)",
            f"VALUES ({v}, {sql.Literal(description.replace('_', ' ')).as_string(None)}, {name}, {digest}, 0, TRUE,"
            " session_user);",
            "COMMIT;",
            f"\\echo applied migration V{version} {description}",
            "\\endif",
        ]
    return "\n".join(lines) + "\n"


def _check_history(conn: psycopg.Connection, files: list[Path]) -> None:
    """Refuse a history the files no longer explain, as Flyway's validate does."""
    on_disk = {NAME_RE.match(p.name).group(1): p for p in files}
    applied = [row[0] for row in conn.execute(
        "SELECT version FROM meta.schema_migrations WHERE is_success ORDER BY version::integer")]
    missing = [v for v in applied if v not in on_disk]
    if missing:
        raise MigrationError(
            f"migration V{missing[0]} was applied to this database but its file is missing from "
            f"{_shown(files[0].parent) if files else 'sql/migrations'}; restore it (a migration is never deleted)"
        )
    if applied:
        latest = max(int(v) for v in applied)
        late = [p for v, p in on_disk.items() if v not in applied and int(v) < latest]
        if late:
            raise MigrationError(
                f"{_shown(late[0])}: V{NAME_RE.match(late[0].name).group(1)} is numbered below V{latest}, "
                "which is already applied; renumber it above the latest applied migration"
            )


def _record(
    conn: psycopg.Connection, version: str, description: str, path: Path, digest: str, started: float, ok: bool
) -> None:
    conn.execute(
        # applied_by: the role that connected, also when the migration ran as the owner
        "INSERT INTO meta.schema_migrations"
        " (version, description, script, checksum_sha256, execution_ms, is_success, applied_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, session_user)",
        (version, description.replace("_", " "), path.name, digest,
         int((time.perf_counter() - started) * 1000), ok),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.db.migrate", epilog=EXIT_CODES_HELP,
                                     description="Apply the pending schema migrations (sql/migrations/) to the "
                                                 "database of the pipeline of --config (make migrate).")
    config.add_config_argument(parser)
    args = parser.parse_args(argv)
    try:
        url = pipelines.database_url(config.name_of(args.config))
        with psycopg.connect(url, autocommit=True) as conn:
            applied = apply_pending(conn)
    except Exception as exc:  # noqa: BLE001 - every failure is one message and an exit code
        # a failed connection: its cause and fix (scripts/db/connection.py)
        return failure(connection.connect_error(exc) if connection.is_connect_failure(exc) else exc)
    print(f"{len(applied)} migration(s) applied" if applied else "schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
