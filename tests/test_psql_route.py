"""The DBA route: the rendered SQL run with psql -f gives the same tables as the runner."""

from __future__ import annotations

import shutil
import subprocess

from scripts import pgembed
from scripts.run import EXIT_PASSED, STAGE_FILES, render_all, run_pipeline
from tests.helpers import REPO_ROOT, query

COMPARE = {
    "stg.orders": "SELECT order_id, customer_id, order_at, amount, status, file_sha256, line_number"
                  " FROM stg.orders ORDER BY order_id",
    "feats.customer_features": "SELECT * FROM feats.customer_features ORDER BY customer_id, feature_time",
    "meta.dataset_splits": "SELECT customer_id, feature_time, split FROM meta.dataset_splits"
                           " ORDER BY customer_id, feature_time",
    "meta.split_cutoffs": "SELECT split, starts_at, ends_before, row_count, gap_row_count, fraction"
                          " FROM meta.split_cutoffs ORDER BY split",
    "meta.validation_results": "SELECT check_id, status, failing_count FROM meta.validation_results"
                               " ORDER BY check_id",
}


def test_rendered_post_ingest_sql_through_psql_matches_the_runner(project, db_factory):
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    shutil.copy(REPO_ROOT / "configs" / "expectations.yaml", project.root / "configs" / "expectations.yaml")
    config = project.write_config()
    (project.root / config).write_text(
        (project.root / config).read_text().replace("configs/pipeline_expectations.yaml", "configs/expectations.yaml"))

    by_runner = db_factory()
    assert run_pipeline(config, by_runner, through="splits")[0] == EXIT_PASSED

    by_psql = db_factory()
    assert run_pipeline(config, by_psql, through="ingest")[0] == EXIT_PASSED
    out = project.root / "rendered"
    render_all(config, out)
    psql = str(pgembed.psql_binary())
    for stage in ("validate", "stage", "features", "splits"):
        for name in STAGE_FILES[stage]:
            subprocess.run(
                [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                 "-c", "SET raw_to_ready.run_id = 'psql'", "-f", str(out / name), "-d", by_psql],
                check=True, capture_output=True, text=True, timeout=120,
            )
    for table, sql in COMPARE.items():
        expected = query(by_runner, sql)
        assert expected, f"{table} is empty: the comparison would prove nothing"
        assert query(by_psql, sql) == expected, table
