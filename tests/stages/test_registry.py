"""Registry: feature_version derived from content; same inputs, same version."""

from __future__ import annotations

import hashlib
import shutil

from scripts.db import render as sqltemplate
from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query

ROWS = HEADER + "O1,C1,2024-01-01 10:00:00,10.00,completed\nO2,C1,2024-01-05 10:00:00,5.50,completed\n"


def versions(db_url: str) -> list[str]:
    return [r[0] for r in query(db_url, "SELECT feature_version FROM meta.feature_registry ORDER BY created_at")]


def test_same_inputs_give_the_same_version(project, db_url):
    project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    first, second = run_pipeline(config, db_url), run_pipeline(config, db_url)
    assert first[0] == second[0] == EXIT_PASSED
    assert first[1]["run_id"] != second[1]["run_id"]
    assert first[1]["feature_version"] == second[1]["feature_version"]
    assert versions(db_url) == [first[1]["feature_version"]] * 2


def test_same_inputs_give_the_same_version_in_another_database(project, db_factory):
    project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    assert run_pipeline(config, db_factory())[1]["feature_version"] == \
        run_pipeline(config, db_factory())[1]["feature_version"]


def test_a_changed_data_byte_gives_a_new_version(project, db_url):
    project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    before = run_pipeline(config, db_url)[1]["feature_version"]
    project.write_csv("orders.csv", ROWS.replace("5.50", "5.51"))
    assert run_pipeline(config, db_url)[1]["feature_version"] not in (None, before)


def test_a_changed_config_byte_gives_a_new_version(project, db_url):
    project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    before = run_pipeline(config, db_url)[1]["feature_version"]
    path = project.root / config
    path.write_text(path.read_text() + "# a comment\n")
    assert run_pipeline(config, db_url)[1]["feature_version"] not in (None, before)
    exp = project.root / "configs" / "pipeline_expectations.yaml"
    middle = versions(db_url)[-1]
    exp.write_text(exp.read_text() + "# another\n")
    assert run_pipeline(config, db_url)[1]["feature_version"] not in (None, before, middle)


def test_a_changed_sql_file_gives_a_new_version(project, db_url, tmp_path, monkeypatch):
    project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    before = run_pipeline(config, db_url)[1]["feature_version"]
    sql_copy = tmp_path / "sql_copy"
    shutil.copytree(sqltemplate.SQL_DIR, sql_copy)
    target = sql_copy / "50_features" / "050_customer_feature_history.sql"
    target.write_text(target.read_text() + "\n-- a comment is a change too\n")
    monkeypatch.setattr(sqltemplate, "SQL_DIR", sql_copy)
    assert run_pipeline(config, db_url)[1]["feature_version"] not in (None, before)


def test_registry_row_records_hashes_counts_and_validation(project, db_url):
    data = project.write_csv("orders.csv", ROWS)
    config = project.write_config()
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    (sql_hashes, source_hashes, config_hashes, counts, passed, columns, cutoffs), = query(
        db_url, "SELECT sql_sha256, source_sha256, config_sha256, row_counts, validation_passed,"
                " feature_columns, split_cutoffs FROM meta.feature_registry")
    assert source_hashes == {data: hashlib.sha256((project.root / data).read_bytes()).hexdigest()}
    assert config_hashes[config] == hashlib.sha256((project.root / config).read_bytes()).hexdigest()
    rendered = (project.root / "artifacts" / "runs" / report["run_id"] / "sql" / "040_stg_orders.sql").read_text()
    assert sql_hashes["040_stg_orders.sql"] == hashlib.sha256(rendered.encode()).hexdigest()
    assert counts == {"raw_events": 2, "stg_orders": 2, "customer_features": 2, "dataset_splits": 2}
    assert passed is True
    assert columns == ["customer_id", "feature_time", "orders_7d", "revenue_7d", "orders_30d", "revenue_30d",
                       "days_since_last_order"]
    assert [c["split"] for c in cutoffs] == ["train", "val", "test"]


def test_failed_run_registers_nothing(project, db_url):
    project.write_csv("orders.csv", HEADER + "O1,C1,not a time,1.00,completed\n")
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_VALIDATION_FAILED and report["feature_version"] is None
    assert query(db_url, "SELECT count(*) FROM meta.feature_registry") == [(0,)]


def test_version_depends_on_content_not_on_where_files_lie(project, db_factory):
    """Sources count by their sha256 and configs by their bytes: a renamed file matched by
    the same glob, or the config named as ./configs/..., gives the same feature_version."""
    (project.root / "data" / "raw" / "in").mkdir()
    (project.root / "data" / "raw" / "in" / "a.csv").write_text(ROWS)
    config = project.write_config(paths="data/raw/in/*.csv")
    first = run_pipeline(config, db_factory())[1]["feature_version"]
    (project.root / "data" / "raw" / "in" / "a.csv").rename(project.root / "data" / "raw" / "in" / "b.csv")
    renamed = run_pipeline(config, db_factory())[1]["feature_version"]
    dotted = run_pipeline("./" + config, db_factory())[1]["feature_version"]
    assert first == renamed == dotted and first is not None
