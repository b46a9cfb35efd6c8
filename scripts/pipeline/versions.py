"""What a run's version is derived from, and what a run must process.

feature_version is a sha256 over content only: the configs, the rendered SQL and the source
files' sha256. The *definition* is the same without the sources: the part that, when it
changes, makes every stored row suspect.

A run is incremental when the database holds a published version of the same definition
and every staged file the config no longer names holds only its own orders (V012): it then
validates, models and stages the new files only, removes the orders of the files no longer
named, and the derived layers recompute what those changed. Anything else (the first run, a
changed definition, a removed file that shares orders, --full-refresh) is a full refresh.
Either way the result is the one a full rebuild gives; see docs/daily-runs.md.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from scripts.config.sections import as_dict
from scripts.db import migrate
from scripts.db.render import literal
from scripts.paths import SQL_DIR


FULL_REFRESH_SQLSTATE = "R2R01"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hashes(config: Any, sources: list[dict[str, Any]], ingest_files: Iterable[str],
                   rendered: Iterable[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """What feature_version is derived from: configs, SQL, migrations and source data."""
    sql_hashes: dict[str, str] = {}
    for template in ingest_files:  # rendered per file from the header, which the data hash covers
        sql_hashes[Path(template).name] = hashlib.sha256((SQL_DIR / template).read_bytes()).hexdigest()
    for path in migrate.migration_files():
        sql_hashes[f"migrations/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    for name, text in rendered:
        sql_hashes[name] = sha256_text(text)
    for name in sorted((SQL_DIR / "macros").glob("*.sql")):
        sql_hashes[f"macros/{name.name}"] = hashlib.sha256(name.read_bytes()).hexdigest()
    return {
        "config": {
            str(config.path): hashlib.sha256(Path(config.path).read_bytes()).hexdigest(),
            str(config.expectations_path): hashlib.sha256(Path(config.expectations_path).read_bytes()).hexdigest(),
        },
        "sql": dict(sorted(sql_hashes.items())),
        "source": {s["path"]: s["sha256"] for s in sources},
    }


def feature_version(hashes: dict[str, dict[str, str]]) -> str:
    """sha256 over content only: where a file lies or how its path is spelled does not count.

    The configs count as (pipeline, expectations) in that order, the SQL by its name in
    sql/, the sources as the set of their sha256.
    """
    content = {
        "config": list(hashes["config"].values()),  # pipeline first, then expectations
        "sql": hashes["sql"],
        "source": sorted(set(hashes["source"].values())),
    }
    return sha256_text(json.dumps(content, sort_keys=True))


def definition_sha256(config: Any) -> str:
    """What the rows follow from besides the data: the configs as read (every setting and
    check, but not which files the sources name: a daily run names one more) and the SQL as
    written (the templates, not their rendering, which names the files of the batch)."""
    settings = {
        "sources": sorted({(f.source_name, f.model, f.encoding, f.delimiter, f.quote, tuple(f.columns or ()),
                            f.lines_model) for f in config.files}, key=str),
        **{key: as_dict(getattr(config, key)) for key in ("staging", "features", "splits", "labels", "validation",
                                                          "retention")},
        "columns": config.columns, "checks": config.checks,
    }
    files = sorted(SQL_DIR.rglob("*.sql")) + sorted({Path(m) for f in config.files for m in (f.model, f.lines_model)
                                                     if m})
    sql = {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
    return sha256_text(json.dumps({"config": settings, "sql": sql}, sort_keys=True, default=str))


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def write_psql_settings(config: Any, sources: list[dict[str, Any]], hashes: dict[str, dict[str, str]],
                        target: Path) -> Path:
    """The settings the stage files read, for a full refresh run with psql (the runner sets
    them per transaction); the version numbers come from the database at run time."""
    values = {"pipeline": config.name, "full_refresh": "on", "work_files": ",".join(dict.fromkeys(s["sha256"] for s in sources)),
              "removed_files": "",
              "definition_sha256": definition_sha256(config),
              "feature_version": feature_version(hashes), "git_commit": "",
              **{f"{key}_sha256": json.dumps(hashes[key], sort_keys=True) for key in ("config", "sql", "source")}}
    lines = ["-- Settings of a full refresh for the rendered stages (docs/database.md: the DBA route):",
             "--   psql -c \"SET raw_to_ready.run_id = 'manual-1'\" -f settings.sql -f <stage>.sql"]
    lines += [f"SET raw_to_ready.{key} = {literal(value)};" for key, value in values.items()]
    lines += ["SELECT",
              "    set_config('raw_to_ready.published_version', coalesce(max(version_number), 0)::text, false),",
              "    set_config('raw_to_ready.version_number', (coalesce(max(version_number), 0) + 1)::text, false)",
              "FROM meta.feature_versions;", ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return target



@dataclass
class Plan:
    full_refresh: bool
    reason: str
    work_files: list[str]  # sha256 of the files to validate and model
    version_number: int  # the version this run writes
    published_version: int  # the latest published version (0: none)
    definition: str
    removed_files: tuple[str, ...] = ()  # staged files an incremental run removes

    @property
    def settings(self) -> dict[str, str]:
        """What the SQL reads with current_setting('raw_to_ready.*') (sql/macros/versions.sql)."""
        return {
            "full_refresh": "on" if self.full_refresh else "off",
            "work_files": ",".join(self.work_files),
            "removed_files": ",".join(self.removed_files),
            "version_number": str(self.version_number),
            "published_version": str(self.published_version),
            "definition_sha256": self.definition,
        }

    def as_full_refresh(self, named: list[str], reason: str) -> Plan:
        return Plan(True, reason, named, self.version_number, self.published_version, self.definition)


def plan(conn: psycopg.Connection, named: list[str], definition: str, force_full: bool,
         sizes: dict[str, int] | None = None) -> Plan:
    """Decide from the database's state (published versions, staged files) what to process.
    ``sizes`` (sha256 -> bytes of the named files): new files that outweigh the staged ones
    go the full way, which is cheaper than recomputing nearly every customer one by one and
    gives the same rows (tests/runner/test_incremental.py)."""
    named = list(dict.fromkeys(named))  # the same file named twice is one file
    published, published_definition = conn.execute(
        "SELECT coalesce(max(version_number), 0),"
        " (SELECT definition_sha256 FROM meta.feature_versions ORDER BY version_number DESC LIMIT 1)"
        " FROM meta.feature_versions"
    ).fetchone()
    rows = conn.execute("SELECT file_sha256, definition_sha256, holds_only_its_orders FROM stg.staged_files").fetchall()
    staged = {file: definition for file, definition, _ in rows}
    removable = {file for file, _, alone in rows if alone}
    removed = [f for f in staged if f not in set(named)]
    if force_full:
        reason = "--full-refresh"
    elif not published:
        reason = "no version published yet"
    elif published_definition != definition:
        reason = "the configs or the SQL changed since the published version"
    elif any(d != definition for d in staged.values()):
        reason = "files were staged under other configs or SQL"
    elif any(f not in removable for f in removed):
        reason = (f"{sum(f not in removable for f in removed)} staged file(s) no longer named "
                  "may share orders with other files")
    elif (heavy := outweighs(conn, [f for f in named if f not in staged], removed, sizes or {})) is not None:
        reason = heavy
    else:
        new = [f for f in named if f not in staged]
        gone = f", {len(removed)} removed" if removed else ""
        return Plan(False, f"{len(new)} new file(s), {len(named) - len(new)} staged already{gone}", new,
                    published + 1, published, definition, tuple(removed))
    return Plan(True, reason, named, published + 1, published, definition)


def outweighs(conn: psycopg.Connection, new: list[str], removed: list[str], sizes: dict[str, int]) -> str | None:
    """Why a batch goes the full way by its size, or None: its new files hold more bytes than
    the staged files that stay (a first big load after a sample, say)."""
    new_bytes = sum(sizes.get(f, 0) for f in new)
    if not new_bytes:
        return None
    kept_bytes = conn.execute(
        "SELECT coalesce(sum(i.file_bytes), 0) FROM stg.staged_files AS s"
        " INNER JOIN raw.ingested_files AS i ON s.file_sha256 = i.file_sha256"
        " WHERE NOT s.file_sha256 = ANY(%s)", (removed,)).fetchone()[0]
    if new_bytes <= kept_bytes:
        return None
    return (f"the {len(new)} new file(s) ({new_bytes:,} bytes) outweigh the {kept_bytes:,} bytes staged already, "
            "so recomputing everything is cheaper")


def describe(plan_: Plan, log: Callable[[str], None]) -> None:
    log(f"  {'full refresh' if plan_.full_refresh else 'incremental'}: {plan_.reason}; "
        f"what changes becomes version {plan_.version_number}")
