"""Which database a pipeline uses, and which pipeline a database belongs to.

A pipeline is named in its config (``name:``, else the config file's stem; see
scripts/config/pipeline.py). On the embedded server (DATABASE_URL unset) each pipeline has a
database of its own name, made on its first run, so the sample, the demos and your own
configs never share state. With DATABASE_URL the URL names the database; several pipelines
share one PostgreSQL by each having a database of its own there (docs/pipelines.md).

Either way a database belongs to the first pipeline that runs on it (meta.pipeline, made by
V019): a run of another pipeline is refused, naming both, unless it is told to take the
database over (``--take-over``). A database that some run wrote before pipelines had names
goes to the first named pipeline that runs on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from scripts.console import mask_database_url
from scripts.db import server
from scripts.errors import CommandError, EXIT_USAGE


class PipelineOwnerError(CommandError):
    """A database belongs to another pipeline (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def on_embedded_server() -> bool:
    return not os.environ.get("DATABASE_URL", "").strip()


def database_url(name: str, *, create: bool = True) -> str:
    """The URL of pipeline ``name``'s database (scripts/db/server.py pipeline_database_url)."""
    return server.pipeline_database_url(name, create=create)


def owner(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The pipeline that owns the connected database (name, config_path, claimed_at), or None."""
    if conn.execute("SELECT to_regclass('meta.pipeline') IS NULL").fetchone()[0]:
        return None
    row = conn.execute("SELECT pipeline_name, config_path, claimed_at FROM meta.pipeline").fetchone()
    return None if row is None else {"name": row[0], "config_path": row[1], "claimed_at": row[2]}


def database_name(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT current_database()").fetchone()[0]


def refusal(conn: psycopg.Connection, found: dict[str, Any], name: str, config_path: str | Path,
            action: str) -> PipelineOwnerError:
    where = f"database {database_name(conn)}"
    if not on_embedded_server():
        where += f" ({mask_database_url(os.environ['DATABASE_URL'])})"
    since = found["claimed_at"].strftime("%Y-%m-%d %H:%M UTC")
    return PipelineOwnerError(
        f"{where} belongs to pipeline {found['name']} ({found['config_path']}, since {since}), "
        f"not to pipeline {name} ({config_path})\n"
        f"  give pipeline {name} a database of its own (DATABASE_URL=.../<another database>; "
        f"unset, the embedded server makes one per pipeline){action}")


def check(conn: psycopg.Connection, name: str, config_path: str | Path, take_over: bool = False) -> None:
    """Refuse (PipelineOwnerError, exit 2) when the database belongs to another pipeline,
    unless ``take_over``; nothing is written."""
    found = owner(conn)
    if found is not None and found["name"] != name and not take_over:
        raise refusal(conn, found, name, config_path,
                      f", or run it with --take-over (RUN_ARGS=--take-over) to hand this database over to "
                      f"pipeline {name}: what pipeline {found['name']} stored stays and becomes its input")


def check_reader(conn: psycopg.Connection, name: str, config_path: str | Path) -> None:
    """For the commands that read a pipeline's results (export, train, retrieve, the API):
    refuse a database that another pipeline owns."""
    found = owner(conn)
    if found is not None and found["name"] != name:
        raise refusal(conn, found, name, config_path, "")


def claim(conn: psycopg.Connection, name: str, config_path: str | Path, run_id: str) -> str | None:
    """Make pipeline ``name`` the database's owner inside the caller's transaction (after
    check); return the name of the pipeline it was taken from, if another. Runs recorded
    before any pipeline owned the database become this pipeline's."""
    previous = owner(conn)
    if previous is None:
        conn.execute("UPDATE meta.runs SET pipeline = %s WHERE pipeline IS NULL", (name,))
    conn.execute(
        "INSERT INTO meta.pipeline (pipeline_name, config_path, claimed_by_run) VALUES (%s, %s, %s) "
        "ON CONFLICT (only_row) DO UPDATE SET pipeline_name = excluded.pipeline_name, "
        "config_path = excluded.config_path, claimed_at = CASE WHEN meta.pipeline.pipeline_name = "
        "excluded.pipeline_name THEN meta.pipeline.claimed_at ELSE now() END, claimed_by_run = CASE WHEN "
        "meta.pipeline.pipeline_name = excluded.pipeline_name THEN meta.pipeline.claimed_by_run "
        "ELSE excluded.claimed_by_run END",
        (name, str(config_path), run_id),
    )
    return previous["name"] if previous is not None and previous["name"] != name else None

