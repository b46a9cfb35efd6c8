"""Reports and exit codes: every run writes artifacts/reports/<run_id>.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg

from scripts.db import locks
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

GOOD = HEADER + "O1,C1,2024-01-01 10:00:00,10.00,completed\nO2,C2,2024-01-02 10:00:00,5.00,completed\n"


def read_report(project, run_id: str) -> dict:
    return json.loads((project.root / "artifacts" / "reports" / f"{run_id}.json").read_text())


def test_passing_run_reports_every_stage(project, db_url):
    project.write_csv("orders.csv", GOOD)
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_PASSED
    saved = read_report(project, report["run_id"])
    assert saved["validation_passed"] is True and saved["errors"] == [] and saved["status"] == "passed"
    assert [s["stage"] for s in saved["stages"]] == [
        "migrate", "ingest", "validate", "model", "stage", "features", "labels", "splits", "profile", "registry"]
    assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in saved["stages"])
    # each stage's rows are those it wrote to its table; what it read is labelled apart
    rows = {s["stage"]: (s["rows"], s["table"], s.get("read")) for s in saved["stages"]}
    assert rows["ingest"] == (2, "raw.raw_events", None)
    assert rows["validate"] == (0, "meta.quarantine", 2)  # two records checked, none set aside
    assert rows["model"] == (2, "stg.model_orders", None) and rows["stage"] == (2, "stg.orders", None)
    assert rows["features"] == (2, "feats.customer_feature_history", 2)
    assert rows["registry"] == (1, "meta.feature_versions", None)
    assert saved["feature_version"] and len(saved["feature_version"]) == 64
    assert {c["id"] for c in saved["checks"]} >= {"types.order_ts", "non_null.order_id"}
    # the default model meets the order contract by construction: no order-level check is added
    assert {c["level"] for c in saved["checks"]} == {"records"}
    assert saved["quarantine"] == {"records": 0, "by_check": {}}


def test_failing_run_reports_in_the_seed_shape(project, db_url):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,-1.00,completed\nO1,C1,2024-01-01,2.00,completed\n"
                      "O2,C2,yesterday,1.00,completed\n")
    config = project.write_config(expectations={"unique": ["order_id"], "ranges": {"amount": {"min": 0}}})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    saved = read_report(project, report["run_id"])
    assert saved["validation_passed"] is False and saved["status"] == "failed"
    assert set(saved["errors"]) == {"order_id has duplicate values", "amount has negative values",
                                    "order_ts has invalid timestamps"}
    assert [s["stage"] for s in saved["stages"]] == ["migrate", "ingest", "validate"]
    assert saved["stages"][-1]["status"] == "failed"


def test_unreachable_database_still_writes_a_report(project):
    project.write_csv("orders.csv", GOOD)
    code, report = run_pipeline(project.write_config(), "postgresql://nobody@127.0.0.1:9/none?connect_timeout=3")
    assert code == EXIT_RUNTIME
    saved = read_report(project, report["run_id"])
    assert saved["status"] == "error" and "could not connect" in saved["errors"][0]


def cli(project, *args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "scripts.run", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_exit_codes(project, db_url):
    project.write_csv("orders.csv", GOOD)
    project.write_csv("dirty.csv", HEADER + "O1,C1,now,1.00,completed\n")
    good = project.write_config()
    dirty = project.write_config(paths="data/raw/dirty.csv", name="dirty.yaml")

    passed = cli(project, "--config", good, database_url=db_url)
    assert passed.returncode == EXIT_PASSED, passed.stderr
    for stage in ("migrate", "ingest", "validate", "stage", "features", "splits", "profile", "registry"):
        assert f"[{stage:<8}] ok" in passed.stdout  # one progress line per stage

    failed = cli(project, "--config", dirty, database_url=db_url)
    assert failed.returncode == EXIT_VALIDATION_FAILED
    assert "order_ts has invalid timestamps" in failed.stdout

    (project.root / "configs" / "bad.yaml").write_text("sources: []\nfeaturs: {}\n")
    bad = cli(project, "--config", "configs/bad.yaml", database_url=db_url)
    assert bad.returncode == EXIT_USAGE
    assert "configs/bad.yaml: featurs: unknown key" in bad.stderr and "Traceback" not in bad.stderr

    down = cli(project, "--config", good, database_url="postgresql://nobody@127.0.0.1:9/none?connect_timeout=3")
    assert down.returncode == EXIT_RUNTIME
    assert "could not connect" in down.stderr and "is PostgreSQL running? set DATABASE_URL" in down.stderr
    assert "Traceback" not in down.stderr

    usage = cli(project, "--stage", "nonsense", database_url=db_url)
    assert usage.returncode == EXIT_USAGE


def test_stage_option_runs_through_that_stage_only(project, db_url):
    project.write_csv("orders.csv", GOOD)
    code, report = run_pipeline(project.write_config(), db_url, through="ingest")
    assert code == EXIT_PASSED
    assert [s["stage"] for s in report["stages"]] == ["migrate", "ingest"]


def test_yaml_error_names_line_and_column(project, db_url):
    (project.root / "configs" / "broken.yaml").write_text("sources:\n  - name: [unclosed\n")
    code, report = run_pipeline("configs/broken.yaml", db_url)
    assert code == EXIT_USAGE
    assert "configs/broken.yaml: line 3, column 1: invalid YAML" in report["errors"][0]


def test_rerun_reports_zero_staged_rows(project, db_url):
    """The stage line counts orders added or changed: an unchanged re-run stages 0."""
    project.write_csv("orders.csv", GOOD)
    config = project.write_config()
    first = {s["stage"]: s["rows"] for s in run_pipeline(config, db_url)[1]["stages"]}
    second = {s["stage"]: s["rows"] for s in run_pipeline(config, db_url)[1]["stages"]}
    assert (first["ingest"], first["stage"]) == (2, 2)
    assert (second["ingest"], second["stage"]) == (0, 0)
    assert second["features"] == 0  # nothing changed, so no feature row is recomputed
    # and nothing is published: the registry wrote no version, and the views still show the first
    assert (first["registry"], second["registry"]) == (1, 0)
    assert query(db_url, "SELECT count(*) FROM meta.feature_versions") == [(1,)]


def test_warn_error_turns_warnings_into_a_failed_gate(project, db_url):
    """--warn-error: a warning fails the run (exit 1), nothing is staged, and the report
    says so consistently."""
    project.write_csv("orders.csv", GOOD + "O2,C2,2024-01-02 10:00:00,5.00,completed\n")  # an exact repeat
    config = project.write_config(expectations={"exact_duplicates": {"severity": "warn"}})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED and report["warnings"] == ["some records are exact repeats of another record"]
    # a full refresh validates every file again (an incremental run: only new ones)
    code, report = run_pipeline(config, db_url, warn_error=True, full_refresh=True)
    assert code == EXIT_VALIDATION_FAILED
    assert report["validation_passed"] is False and report["status"] == "failed"
    assert report["errors"] == ["some records are exact repeats of another record"]


def test_thresholds_only_compare_too_many(project, db_url):
    """'<5' would fail clean data; only > and >= are accepted, before any data work."""
    project.write_csv("orders.csv", GOOD)
    config = project.write_config(expectations={"non_null": [{"column": "customer_id", "error_if": "<5"}]})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_USAGE
    assert "non_null.customer_id.error_if" in report["errors"][0] and "only > and >=" in report["errors"][0]


def test_percent_threshold_is_exact_at_the_boundary(project, db_url):
    """1 offending record in 10,000 is exactly 0.01 %: not '>0.01%', but '>=0.01%'."""
    rows = [f"O{i},C{i % 50},2024-01-01 10:00:00,1.00,completed" for i in range(9_999)]
    project.write_csv("orders.csv", HEADER + "\n".join(rows) + "\nOX,,2024-01-01 10:00:00,1.00,completed\n")
    strict = project.write_config(expectations={"non_null": [{"column": "customer_id", "error_if": ">0.01%"}]})
    code, report = run_pipeline(strict, db_url, through="validate")
    check = next(c for c in report["checks"] if c["id"] == "non_null.customer_id")
    assert code == EXIT_PASSED and check["failing_count"] == 1 and check["status"] == "warn"
    inclusive = project.write_config(expectations={"non_null": [{"column": "customer_id", "error_if": ">=0.01%"}]},
                                     name="inclusive.yaml")
    code, report = run_pipeline(inclusive, db_url, through="validate")
    assert code == EXIT_VALIDATION_FAILED


def test_unreadable_config_is_a_config_error_not_a_traceback(project, db_url):
    (project.root / "configs" / "latin1.yaml").write_bytes("sources: []\n# caf\xe9\n".encode("latin-1"))
    code, report = run_pipeline("configs/latin1.yaml", db_url)
    assert code == EXIT_USAGE and "must be UTF-8" in report["errors"][0]
    (project.root / "configs" / "adir.yaml").mkdir()
    code, report = run_pipeline("configs/adir.yaml", db_url)
    assert code == EXIT_USAGE and "cannot read" in report["errors"][0]
    assert (project.root / "artifacts" / "reports" / f"{report['run_id']}.json").exists()


def test_one_run_per_database_at_a_time(project, db_url):
    """A second run while another holds the pipeline lock stops (at once with
    --lock-timeout 0), says why and who holds it, and changes nothing."""
    project.write_csv("orders.csv", GOOD)
    config = project.write_config()
    with psycopg.connect(db_url, autocommit=True, application_name="the other run") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (locks.RUN_LOCK_KEY,))
        code, report = run_pipeline(config, db_url, lock_timeout=0)
    assert code == EXIT_RUNTIME
    assert "another pipeline run holds the lock on this database (pid" in report["errors"][0]
    assert "the other run" in report["errors"][0]
    assert query(db_url, "SELECT to_regclass('raw.ingested_files')") == [(None,)]  # not even migrated
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED  # the lock ends with its session


def test_splits_line_counts_rows_assigned(project, db_url):
    """The splits stage reports the rows it wrote to the split history (not its three cut-off
    rows), and the rows in a split as what it read."""
    project.write_csv("orders.csv", HEADER)  # no orders at all
    code, report = run_pipeline(project.write_config(expectations={"min_rows": 0}), db_url)
    assert code == EXIT_PASSED
    assert {s["stage"]: s["rows"] for s in report["stages"]}["splits"] == 0
    project.write_csv("two.csv", GOOD)
    code, report = run_pipeline(project.write_config(paths="data/raw/two.csv", name="two.yaml"), db_url)
    splits = next(s for s in report["stages"] if s["stage"] == "splits")
    assert (splits["rows"], splits["table"], splits["read"]) == (2, "meta.dataset_split_history", 2)
    assert query(db_url, "SELECT count(*) FROM meta.dataset_split_history WHERE valid_to IS NULL") == [(2,)]


def test_render_errors_exit_without_a_traceback(project):
    project.write_csv("orders.csv", GOOD)
    config = project.write_config()
    (project.root / "not_a_dir").write_text("a file")
    result = subprocess.run([sys.executable, "-m", "scripts.run", "--config", config, "--render",
                             "--out", "not_a_dir/rendered"], cwd=project.root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert result.returncode == EXIT_RUNTIME and "Traceback" not in result.stderr
    assert "not_a_dir" in result.stderr


def test_a_passing_check_reads_as_a_pass(project, db_url):
    """A check with no offender says what holds; one with offenders within its thresholds says
    how many and that they are within; a failing one keeps what it found."""
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,10.00,completed\nO2,,2024-01-02,5.00,completed\n"
                      "O3,C3,2024-01-03,5.00,completed\nO4,C4,2024-01-04,5.00,completed\n")
    config = project.write_config(expectations={
        "unique": ["order_id"],
        "non_null": [{"column": "customer_id", "error_if": ">30%", "warn_if": ">30%"}],  # 1 of 4, 25 %: within
        "ranges": {"amount": {"max": 9}},  # O1 is above: fails
    })
    code, report = run_pipeline(config, db_url, through="validate")
    assert code == EXIT_VALIDATION_FAILED
    messages = {c["id"]: (c["status"], c["message"]) for c in report["checks"]}
    assert messages["unique.order_id"] == ("pass", "order_id has no duplicate values")
    assert messages["non_null.customer_id"] == (
        "pass", "customer_id has null values: 1 of 4 (25.0%), within its thresholds")
    assert messages["ranges.amount"] == ("fail", "amount has values above 9")
    assert report["errors"] == ["amount has values above 9"]
