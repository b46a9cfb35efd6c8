"""The DBA route: the rendered SQL run with psql -f gives the same tables as the runner."""

from __future__ import annotations

import re
import shutil
import subprocess

from scripts.db import server as embedded
from scripts.run import EXIT_PASSED, render_all, run_pipeline
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
                          " FROM meta.split_cutoffs ORDER BY split",
    "meta.validation_results": "SELECT check_id, status, failing_count FROM meta.validation_results"
                               " ORDER BY check_id",
    "meta.feature_versions": "SELECT version_number, feature_version FROM meta.feature_versions",
}


def psql(target: str, *args: str) -> None:
    subprocess.run([str(embedded.psql_binary()), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                    *args, "-d", target], check=True, capture_output=True, text=True, timeout=120)


def test_rendered_sql_through_psql_matches_the_runner(project, db_factory):
    """Migrations, ingest (with \\copy) and every post-ingest stage, run as rendered files
    with psql, give the same raw events and tables as the runner."""
    # a quoted line break near the top shifts the line numbers of every later record
    header, *records = (REPO_ROOT / "data" / "raw" / "orders.csv").read_text().splitlines(keepends=True)
    project.write_csv("orders.csv", header + 'O9999999999,C0000001,2024-01-01 00:00:00,1.00,"multi\nline"\n'
                      + "".join(records))
    shutil.copy(REPO_ROOT / "configs" / "expectations.yaml", project.root / "configs" / "expectations.yaml")
    config = project.write_config()
    (project.root / config).write_text(
        (project.root / config).read_text().replace("configs/pipeline_expectations.yaml", "configs/expectations.yaml"))
    text = (project.root / "configs" / "expectations.yaml").read_text()
    without_status_rule = re.sub(r"allowed_values:\n  status: \[[^\]]*\][^\n]*\n", "", text)
    assert without_status_rule != text
    (project.root / "configs" / "expectations.yaml").write_text(without_status_rule)

    by_runner = db_factory()
    assert run_pipeline(config, by_runner)[0] == EXIT_PASSED

    by_psql = db_factory()
    out = project.root / "rendered"
    render_all(config, out)
    for migration in sorted((out / "migrations").glob("V*.sql")):
        psql(by_psql, "-f", str(migration))
    psql(by_psql, "-v", "run_id=psql", "-f", str(out / "ingest.file1.psql"))
    # the loop docs/database.md gives: one psql transaction per stage script, in ls order
    scripts = sorted(out.glob("[3-7]*.psql"))
    assert [s.stem.split("_", 1)[1] for s in scripts] == [
        "validate", "model", "stage", "features", "labels", "splits", "profile", "registry"]
    for script in scripts:
        psql(by_psql, "-c", "SET raw_to_ready.run_id = 'psql'", "-f", str(out / "settings.sql"), "-f", str(script))
    for table, sql in COMPARE.items():
        expected = query(by_runner, sql)
        assert expected, f"{table} is empty: the comparison would prove nothing"
        assert query(by_psql, sql) == expected, table
