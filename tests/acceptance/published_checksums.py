"""Content checksums of everything the pipeline publishes, for four scenarios run through the CLI.

A scenario copies the project (without .git, .venv, artifacts) into a scratch folder, runs
``<python> -m scripts.run --config ...`` there against a fresh database, and returns
{name: checksum}: one per table and view of the published schemas, one per section of each
run's JSON report (one per check). Only the CLI is used (nothing is imported from
``scripts``), so module and SQL file paths may change freely between the two sides compared.

    python -m tests.acceptance.published_checksums --database-url URL --out tests/acceptance/fixtures/published_checksums.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import conninfo, sql

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
UCI_DIR = Path(os.environ.get("UCI_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "real" / "uci_online_retail"))
SCHEMAS = ["stg", "feats", "meta"]  # the published schemas (raw is the landing zone, work is scratch)
EXCLUDED_COLUMNS = {  # by name, in every relation: what differs between two runs of the same code
    "run_id": "a run's id: start time plus a random suffix",
    "staged_run_id": "the id of the run that staged the row",
    "feature_version": "sha256 over the rendered SQL and config: changes with any SQL text edit",
    "definition_sha256": "sha256 of the SQL/config definition (stg.staged_files, meta.feature_versions)",
    "config_sha256": "sha256 of the config files (meta.feature_registry)",
    "sql_sha256": "sha256 of each stage's rendered SQL (meta.feature_registry, meta.run_stages)",
    "checksum_sha256": "sha256 of a migration's SQL text (meta.schema_migrations)",
    "git_commit": "the commit the code ran from (meta.feature_registry)",
    "applied_by": "the role that connected (the server's user, not the code's doing)",
    "created_at": "wall clock", "published_at": "wall clock", "started_at": "wall clock",
    "finished_at": "wall clock", "ingested_at": "wall clock", "staged_at": "wall clock",
    "checked_at": "wall clock", "recorded_at": "wall clock", "quarantined_at": "wall clock",
    "profiled_at": "wall clock", "applied_at": "wall clock", "dropped_at": "wall clock",
    "seconds": "a stage's duration (meta.run_stages)",
    "execution_ms": "a migration's duration (meta.schema_migrations)",
    "claimed_at": "wall clock", "claimed_by_run": "a run's id (meta.pipeline)",
    "report": "a run's whole report (meta.runs): its sections are checksummed from the JSON, without what differs",
}
# the same in the JSON report, plus the runner's memory peak and the drift baseline's run id
REPORT_EXCLUDED_KEYS = set(EXCLUDED_COLUMNS) | {"runner_peak_rss_mib", "baseline_run_id"}
SESSION = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
           "extra_float_digits": "1", "bytea_output": "hex"}  # how values print as text
COPY_IGNORED = shutil.ignore_patterns(".git", ".venv", ".pgdata", ".citus", "artifacts", "bench",
                                      "__pycache__", ".pytest_cache")
RUN_ID_TOKEN = "<run_id>"  # run ids quoted inside text (a stage's message) are replaced by this

Checksums = dict[str, str]


def relations(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    """Every table, view and materialized view of SCHEMAS with its kept columns, in order."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition"
        " GROUP BY 1, 2 ORDER BY 1, 2", (SCHEMAS,)).fetchall()
    return [(schema, name, [col for col in cols if col not in EXCLUDED_COLUMNS]) for schema, name, cols in rows]


def relation_checksum(conn: psycopg.Connection, schema: str, name: str, columns: list[str],
                      run_ids: list[str]) -> str:
    """md5 of the header and the rows as text, sorted bytewise; with the row count."""
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    params: list[Any] = [",".join(columns) + "\n"]
    if run_ids:
        row = sql.SQL("regexp_replace({}, %s, %s, 'g')").format(row)
        params += ["|".join(map(re.escape, run_ids)), RUN_ID_TOKEN]
    query = sql.SQL(
        "SELECT count(*), md5(%s || coalesce(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\"), ''))"
        " FROM (SELECT {} AS r FROM {}) AS s").format(row, sql.Identifier(schema, name))
    count, digest = conn.execute(query, params).fetchone()  # type: ignore[misc]
    return f"{count} rows, md5 {digest}"


def published_checksums(db_url: str, run_ids: list[str] | None = None) -> Checksums:
    """{schema.relation: checksum} for every relation of the published schemas."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for setting, value in SESSION.items():
            conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
        return {f"{schema}.{name}": relation_checksum(conn, schema, name, cols, run_ids or [])
                for schema, name, cols in relations(conn)}


def scrubbed(value: Any) -> Any:
    """The report value without REPORT_EXCLUDED_KEYS, at any depth."""
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items() if k not in REPORT_EXCLUDED_KEYS}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


def report_checksums(report: dict[str, Any], prefix: str, run_ids: list[str]) -> Checksums:
    """{prefix.section: md5} per top-level report section, and one per check (prefix.checks.<id>)."""
    parts = {f"{prefix}.{key}": value for key, value in scrubbed(report).items() if key != "checks"}
    parts.update({f"{prefix}.checks.{check['id']}": check for check in scrubbed(report.get("checks", []))})

    def digest(value: Any) -> str:
        text = json.dumps(value, sort_keys=True)
        for run_id in run_ids:
            text = text.replace(run_id, RUN_ID_TOKEN)
        return "md5 " + hashlib.md5(text.encode("utf-8")).hexdigest()

    return {key: digest(value) for key, value in parts.items()}


def run_cli(project: Path, config: str, db_url: str, python: str, expected_exit: int) -> dict[str, Any]:
    """Run the pipeline CLI in ``project``; return the run's JSON report."""
    env = {k: v for k, v in os.environ.items() if k != "ALERTS_WEBHOOK_URL"} | {"DATABASE_URL": db_url}
    done = subprocess.run([python, "-m", "scripts.run", "--config", config], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    found = re.findall(r"^report: (\S+\.json)$", done.stdout, re.MULTILINE)
    if done.returncode != expected_exit or not found:
        raise RuntimeError(f"{config}: exit {done.returncode} (expected {expected_exit}), report {found}\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads((project / found[-1]).read_text(encoding="utf-8"))


def single_run(config: str, expected_exit: int) -> Callable[[Path, str, str], Checksums]:
    def scenario(project: Path, db_url: str, python: str) -> Checksums:
        report = run_cli(project, config, db_url, python, expected_exit)
        return report_checksums(report, "report", [report["run_id"]]) | published_checksums(db_url, [report["run_id"]])
    return scenario


def uci_scenario(project: Path, db_url: str, python: str) -> Checksums:
    """The bundled UCI config over every day kept in shared/ (the repository holds a subset)."""
    for folder in ("by-day", "extra-days"):
        files = sorted((UCI_DIR / folder).glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"no UCI Online Retail files in {UCI_DIR / folder} (set UCI_DATA_DIR)")
        for path in files:
            shutil.copyfile(path, project / "data" / "uci_online_retail" / folder / path.name)
    return single_run("configs/uci_online_retail.yaml", 0)(project, db_url, python)


def quarter_files(project: Path) -> list[str]:
    """data/raw/orders.csv split by the quarter of order_ts into data/daily/orders_<YYYY>Q<n>.csv."""
    with open(project / "data" / "raw" / "orders.csv", newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    at = header.index("order_ts")
    parts: dict[str, list[list[str]]] = {}
    for row in rows:
        parts.setdefault(f"{row[at][:4]}Q{(int(row[at][5:7]) - 1) // 3 + 1}", []).append(row)
    (project / "data" / "daily").mkdir()
    for quarter, part in parts.items():
        with open(project / "data" / "daily" / f"orders_{quarter}.csv", "w", newline="", encoding="utf-8") as out:
            csv.writer(out, lineterminator="\n").writerows([header, *part])
    return [f"data/daily/orders_{quarter}.csv" for quarter in sorted(parts)]


def write_daily_config(project: Path, paths: list[str]) -> str:
    config = yaml.safe_load((project / "configs" / "pipeline.yaml").read_text(encoding="utf-8"))
    config["sources"][0]["paths"] = paths
    (project / "configs" / "daily.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return "configs/daily.yaml"


def daily_scenario(project: Path, db_url: str, python: str) -> Checksums:
    """The sample as quarterly files: a run on all but the last, then an incremental run adding it."""
    files = quarter_files(project)
    first = run_cli(project, write_daily_config(project, files[:-1]), db_url, python, 0)
    second = run_cli(project, write_daily_config(project, files), db_url, python, 0)
    run_ids = [first["run_id"], second["run_id"]]
    return (report_checksums(first, "report[1]", run_ids) | report_checksums(second, "report[2]", run_ids)
            | published_checksums(db_url, run_ids))


SCENARIOS: dict[str, Callable[[Path, str, str], Checksums]] = {
    "sample": single_run("configs/pipeline.yaml", 0),
    "dirty": single_run("configs/pipeline_dirty.yaml", 1),  # the gate fails on purpose
    "uci_online_retail": uci_scenario,
    "daily": daily_scenario,
}


def run_scenario(name: str, db_url: str, repo: Path = REPO_ROOT, python: str = sys.executable) -> Checksums:
    """Run scenario ``name`` in a scratch copy of ``repo`` against the fresh database ``db_url``."""
    with tempfile.TemporaryDirectory(prefix=f"r2r-{name}-") as scratch:
        project = Path(scratch) / "project"
        shutil.copytree(repo, project, ignore=COPY_IGNORED)
        return dict(sorted(SCENARIOS[name](project, db_url, python).items()))


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url``, dropped afterwards."""
    name = f"r2r_checksums_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield conninfo.make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.acceptance.published_checksums", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a server where this user may create databases")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="only these (default: all)")
    args = parser.parse_args(argv)
    result: dict[str, Checksums] = {}
    for name in args.scenario or SCENARIOS:
        started = time.monotonic()
        with fresh_database(args.database_url) as db_url:
            result[name] = run_scenario(name, db_url)
        print(f"{name}: {len(result[name])} checksums in {time.monotonic() - started:.1f} s", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
