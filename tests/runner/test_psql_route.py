"""The DBA route exactly as docs/database.md writes it: its two shell blocks, run with bash
from a project folder, give the same tables as the runner, on a fresh database, again on
the same one, and on a database the runner built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import conninfo

from scripts.db import server as embedded
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import REPO_ROOT, query

COMPARE = {
    "raw.raw_events": "SELECT file_sha256, source_name, file_path, line_number, record_number, payload"
                      " FROM raw.raw_events ORDER BY file_sha256, record_number",
    "stg.orders": "SELECT order_id, customer_id, order_at, amount, status, file_sha256, line_number"
                  " FROM stg.orders ORDER BY order_id",
    "feats.customer_features": "SELECT * FROM feats.customer_features ORDER BY customer_id, feature_time",
    "meta.dataset_splits": "SELECT customer_id, feature_time, split FROM meta.dataset_splits"
                           " ORDER BY customer_id, feature_time",
    "meta.split_cutoffs": "SELECT split, starts_at, ends_before, row_count, gap_row_count, fraction"
                          " FROM meta.split_cutoffs ORDER BY split, starts_at",
    "meta.validation_results": "SELECT check_id, level, status, failing_count FROM meta.validation_results"
                               " ORDER BY check_id, level",
    "meta.profiles": "SELECT subject, column_name, split, row_count, null_count FROM meta.profiles"
                     " ORDER BY 1, 2, 3",
    "meta.feature_versions": "SELECT version_number, feature_version FROM meta.feature_versions",
    "meta.schema_migrations": "SELECT version, checksum_sha256 FROM meta.schema_migrations WHERE is_success"
                              " ORDER BY version",
}
# what a rerun leaves as it was (the others gain the rerun's own rows: its checks, profiles, cut-offs)
STATE = ("raw.raw_events", "stg.orders", "feats.customer_features", "meta.dataset_splits", "meta.feature_versions",
         "meta.schema_migrations")
MANUAL = "raw_to_ready_manual"  # the database the documented block creates


def documented_blocks() -> tuple[str, str]:
    """The two sh blocks of the DBA route section of docs/database.md: create, then run."""
    text = (REPO_ROOT / "docs" / "database.md").read_text(encoding="utf-8")
    section = text[text.index("## The DBA route"):]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2, "the DBA route lost its two shell blocks"
    return blocks[0], blocks[1]


def scratch_project(project) -> None:
    """The repository's Makefile, config and sample (with a quoted line break near the top,
    which shifts every later record's line) in the project folder; .venv is the repository's."""
    header, *records = (REPO_ROOT / "data" / "raw" / "orders.csv").read_text().splitlines(keepends=True)
    project.write_csv("orders.csv", header + 'O9999999999,C0000001,2024-01-01 00:00:00,1.00,"multi\nline"\n'
                      + "".join(records))
    for name in ("pipeline.yaml", "expectations.yaml"):
        shutil.copy(REPO_ROOT / "configs" / name, project.root / "configs" / name)
    text = (project.root / "configs" / "expectations.yaml").read_text()
    without_status_rule = re.sub(r"allowed_values:\n  status: \[[^\]]*\][^\n]*\n", "", text)
    assert without_status_rule != text  # the multi-line status would fail it
    (project.root / "configs" / "expectations.yaml").write_text(without_status_rule)
    shutil.copy(REPO_ROOT / "Makefile", project.root / "Makefile")
    (project.root / ".venv").symlink_to(REPO_ROOT / ".venv")
    # make's install step is done: its stamp is newer than this copy of requirements.txt
    shutil.copy(REPO_ROOT / "requirements.txt", project.root / "requirements.txt")
    stamp = (REPO_ROOT / ".venv" / ".installed").stat().st_mtime
    os.utime(project.root / "requirements.txt", (stamp - 60, stamp - 60))


def bash(script: str, cwd: Path, admin_url: str, database: str | None = None) -> str:
    """Run ``script`` with bash as a user would: PG* pointing at the tests' server, the
    embedded server's psql and createdb first on PATH."""
    params = conninfo.conninfo_to_dict(admin_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env.update({"PGHOST": str(params.get("host") or "localhost"), "PGPORT": str(params.get("port") or 5432),
                "PGUSER": str(params.get("user") or "postgres"),
                "PATH": f"{embedded.psql_binary().parent}{os.pathsep}{env.get('PATH', '')}"})
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    if database:
        env["PGDATABASE"] = database
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def snapshot(url: str, tables: tuple[str, ...] = tuple(COMPARE)) -> dict[str, list[tuple]]:
    return {table: query(url, COMPARE[table]) for table in tables}


def test_the_documented_dba_route_matches_the_runner(project, db_factory, pg_admin_url):
    scratch_project(project)
    create, run = documented_blocks()
    assert f"export PGDATABASE={MANUAL}" in create and 'createdb "$PGDATABASE"' in create

    by_runner = db_factory()
    assert run_pipeline("configs/pipeline.yaml", by_runner)[0] == EXIT_PASSED
    expected = snapshot(by_runner)
    for table, rows in expected.items():
        assert rows, f"{table} is empty: the comparison would prove nothing"

    manual = embedded.with_database(pg_admin_url, MANUAL)
    try:
        # a fresh database: both blocks, as written
        output = bash(create + run, project.root, pg_admin_url)
        assert "applied migration V001" in output
        assert snapshot(manual) == expected

        # the same database again (an existing one): the run block only; nothing is migrated
        # or ingested twice, and the same version is not published again
        output = bash(run, project.root, pg_admin_url, MANUAL)
        assert "applied migration" not in output
        assert "already ingested" in output
        assert snapshot(manual, STATE) == snapshot(by_runner, STATE)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{MANUAL}" WITH (FORCE)')

    # a database the runner built: the run block only, on it
    runner_db = conninfo.conninfo_to_dict(by_runner)["dbname"]
    output = bash(run, project.root, pg_admin_url, runner_db)
    assert "applied migration" not in output and "already ingested" in output
    assert snapshot(by_runner, STATE) == {t: expected[t] for t in STATE}  # no second version published
