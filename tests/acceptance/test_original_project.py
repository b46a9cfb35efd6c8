"""the original from-raw-to-ready project's own files (tests/original/, unchanged) run through this pipeline.

Contract under test:
  - tests/original/configs/pipeline.yaml runs as published: `sources[].path`, the default
    expectations path resolved against the original project's root, `splits.*_ratio`,
    `validation.fail_on_error`, and a `db` section that is ignored with a note;
  - the original project's expectations nest rules under the dataset name `orders:`: order-level checks
    on the staged orders, ids prefixed "orders.";
  - the original README's queries work and its feature example follows the definitions
    (windows inclusive, t - N days <= order_at <= t; days_since_last_order floored, NULL
    when there is no earlier order);
  - the project's default expectations accept the original project's status words.

Expected values are worked out by hand from tests/original/data/raw/orders.csv (and read
independently with Python's csv module), never taken from the pipeline.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import REPO_ROOT, query

UTC = dt.timezone.utc
ORIGINAL = REPO_ROOT / "tests" / "original"
ORIGINAL_CONFIG = ORIGINAL / "configs" / "pipeline.yaml"
ORIGINAL_CSV = ORIGINAL / "data" / "raw" / "orders.csv"
D = Decimal


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def original_records() -> list[dict[str, str]]:
    """The original project's sample read with Python's csv module (UTF-8 with a BOM)."""
    with open(ORIGINAL_CSV, newline="", encoding="utf-8-sig") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 6
    return records


def copy_original(project) -> Path:
    """The original project's folder copied into the scratch project, to be edited there."""
    target = project.root / "original"
    shutil.copytree(ORIGINAL, target)
    return target


def replace_once(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1, (path, old)
    path.write_bytes(data.replace(old, new))


def checks_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ids = [c["id"] for c in report.get("checks") or []]
    assert len(ids) == len(set(ids)), f"check ids repeat: {ids}"
    return {c["id"]: c for c in report.get("checks") or []}


def run_original(config: Path | str, db_url: str) -> tuple[int, dict[str, Any]]:
    return run_pipeline(str(config), db_url)


# --- 1 and 2: the original project's files run as published ---------------------------------------------

ORDER_LEVEL = ("orders.unique.order_id", "orders.ranges.amount", "orders.allowed_values.status",
               "orders.non_null.customer_id")


def test_original_config_runs_as_published(project, db_url, capsys):
    """The unchanged original config ingests the original project's 6 records, uses the original project's expectations
    (order-level, ids prefixed "orders.") and says that its db section is ignored."""
    code, report = run_original(ORIGINAL_CONFIG, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    assert report["validation_passed"] is True and report["errors"] == []
    assert (project.root / "artifacts" / "reports" / f"{report['run_id']}.json").exists()

    output = capsys.readouterr()
    notes = [line for line in (output.out + output.err).splitlines() if "db is ignored" in line]
    assert notes, "no note that the original project's db section is ignored"

    # the original project's own orders.csv, every field exactly as the csv module reads it
    records = original_records()
    raw = query(db_url, "SELECT file_path, line_number, payload FROM raw.raw_events ORDER BY line_number")
    assert len(raw) == 6
    assert all(path.replace("\\", "/").endswith("tests/original/data/raw/orders.csv") for path, _, _ in raw), raw
    assert [line for _, line, _ in raw] == [2, 3, 4, 5, 6, 7]
    assert [payload for _, _, payload in raw] == records

    # the original project's expectations: its rules are order-level checks, all passing
    by_id = checks_by_id(report)
    for check_id in ORDER_LEVEL:
        assert check_id in by_id, f"{check_id} missing from {sorted(by_id)}"
        assert by_id[check_id]["status"] == "pass", by_id[check_id]
    order_level = [c for c in by_id if c.startswith("orders.")]
    assert len(order_level) >= len(ORDER_LEVEL)
    assert all(by_id[c]["status"] == "pass" for c in order_level), {c: by_id[c]["status"] for c in order_level}
    # ... not record-level copies of them (the default expectations file was not read either:
    # it has max_decimal_places and min_rows, the original project's has neither)
    assert not {"allowed_values.status", "ranges.amount", "max_decimal_places.amount", "min_rows"} & set(by_id)

    # staged as read: ids, customers, UTC instants, amounts, the original project's status word kept
    staged = query(db_url, "SELECT order_id, customer_id, order_at, amount, status FROM stg.orders ORDER BY order_id")
    assert staged == [
        (r["order_id"], r["customer_id"], dt.datetime.fromisoformat(r["order_ts"].replace("Z", "+00:00")),
         D(r["amount"]), r["status"])
        for r in records
    ]
    assert staged[0] == ("A001", "C001", utc(2025, 12, 1, 10, 0), D("29.99"), "paid")


# --- 3: the original project's split ratios -------------------------------------------------------------


def test_original_split_ratios_are_read(project, db_url):
    """splits.train_ratio/val_ratio/test_ratio (0.70/0.15/0.15) are the targets. With 6 rows at
    6 distinct instants the train cut lands after 4 rows (4/6 is closer to 0.70 than 5/6) and
    the val cut after 5 (5/6 is closer to 0.85 than 6/6): train 4, val 1, test 1."""
    code, report = run_original(ORIGINAL_CONFIG, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    cutoffs = query(db_url, "SELECT split, target_fraction, row_count FROM meta.split_cutoffs WHERE run_id = %s",
                    (report["run_id"],))
    assert {s: (D(t), n) for s, t, n in cutoffs} == {
        "train": (D("0.70"), 4), "val": (D("0.15"), 1), "test": (D("0.15"), 1)}
    assignment = query(db_url, "SELECT customer_id, feature_time, split FROM meta.dataset_splits"
                               " ORDER BY feature_time")
    assert assignment == [
        ("C001", utc(2025, 12, 1, 10, 0), "train"),
        ("C001", utc(2025, 12, 5, 10, 0), "train"),
        ("C002", utc(2025, 12, 10, 10, 0), "train"),
        ("C002", utc(2025, 12, 15, 10, 0), "train"),
        ("C003", utc(2025, 12, 20, 10, 0), "val"),
        ("C003", utc(2025, 12, 25, 10, 0), "test"),
    ]


# --- 4: failing variants of the original project's files ------------------------------------------------


def test_original_amount_above_the_original_maximum_fails_the_run(project, db_url):
    """An amount of 200000 breaks the original project's ranges rule (max 100000): exit 1 with the
    message in the original project's style, and the run is not registered as complete."""
    copied = copy_original(project)
    replace_once(copied / "data" / "raw" / "orders.csv", b"A003,C002,2025-12-10T10:00:00Z,105.50,paid",
                 b"A003,C002,2025-12-10T10:00:00Z,200000,paid")
    code, report = run_original(copied / "configs" / "pipeline.yaml", db_url)
    assert code == EXIT_VALIDATION_FAILED, report.get("errors")
    # one check covers both bounds of the original project's range, and its sentence names both
    assert report["errors"] == ["amount has negative values or values above 100000"]
    assert report["validation_passed"] is False
    check = checks_by_id(report)["orders.ranges.amount"]
    assert (check["status"], check["failing_count"]) == ("fail", 1)
    # the edited copy was read, not the repository's copy
    assert [(project.root / p).resolve() for (p,) in query(db_url, "SELECT DISTINCT file_path FROM raw.raw_events")] \
        == [(copied / "data" / "raw" / "orders.csv").resolve()]
    assert query(db_url, "SELECT count(*) FROM meta.feature_registry") == [(0,)]


def test_original_status_outside_the_allowed_words_fails_the_run(project, db_url):
    """A status the original project does not allow ("shipped") fails orders.allowed_values.status: exit 1."""
    copied = copy_original(project)
    replace_once(copied / "data" / "raw" / "orders.csv", b"12.00,paid", b"12.00,shipped")
    code, report = run_original(copied / "configs" / "pipeline.yaml", db_url)
    assert code == EXIT_VALIDATION_FAILED, report.get("errors")
    assert report["validation_passed"] is False
    check = checks_by_id(report)["orders.allowed_values.status"]
    assert (check["status"], check["failing_count"]) == ("fail", 1)
    assert check["message"] in report["errors"]
    assert query(db_url, "SELECT count(*) FROM meta.feature_registry") == [(0,)]


def test_original_fail_on_error_false_turns_the_failure_into_a_warning(project, db_url):
    """validation.fail_on_error: false with the same status: exit 0, the check a warning."""
    copied = copy_original(project)
    replace_once(copied / "data" / "raw" / "orders.csv", b"12.00,paid", b"12.00,shipped")
    replace_once(copied / "configs" / "pipeline.yaml", b"fail_on_error: true", b"fail_on_error: false")
    code, report = run_original(copied / "configs" / "pipeline.yaml", db_url)
    assert code == EXIT_PASSED, report.get("errors")
    check = checks_by_id(report)["orders.allowed_values.status"]
    assert (check["status"], check["failing_count"]) == ("warn", 1)
    assert check["message"] in report["warnings"]
    assert query(db_url, "SELECT count(*) FROM stg.orders WHERE status = 'shipped'") == [(1,)]
    assert query(db_url, "SELECT count(*) FROM meta.feature_registry WHERE run_id = %s",
                 (report["run_id"],)) == [(1,)]


# --- 5: the original README's queries -----------------------------------------------------------


def test_original_readme_queries_work_as_written(project, db_url):
    code, report = run_original(ORIGINAL_CONFIG, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    assert len(query(db_url, "SELECT * FROM stg.orders;")) == 6
    assert len(query(db_url, "SELECT * FROM feats.customer_features;")) == 6
    assert dict(query(db_url, "SELECT split, COUNT(*) FROM meta.dataset_splits GROUP BY split;")) == {
        "train": 4, "val": 1, "test": 1}


# --- 6: hand-worked features ----------------------------------------------------------------


def test_original_features_worked_by_hand(project, db_url):
    """Every feature row of the original project sample, worked out by hand from its orders.csv:
      C001: A001 12-01 10:00 29.99, A002 12-05 10:00 19.99 (4 days apart)
      C002: A003 12-10 10:00 105.50, A004 12-15 10:00 12.00 (5 days apart)
      C003: A005 12-20 10:00 70.00, A006 12-25 10:00 9.00 (5 days apart)
    Each customer's second order has the first inside both windows (4 or 5 days <= 7), so
    orders_7d = orders_30d = 2. The original README's example says orders_7d = 1 for C002 at
    12-15, which contradicts its own 7-day definition (12-10 is 5 days earlier)."""
    code, report = run_original(ORIGINAL_CONFIG, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    rows = query(db_url, "SELECT customer_id, feature_time, orders_7d, revenue_7d, orders_30d, revenue_30d,"
                         " days_since_last_order FROM feats.customer_features ORDER BY customer_id, feature_time")
    assert rows == [
        ("C001", utc(2025, 12, 1, 10, 0), 1, D("29.99"), 1, D("29.99"), None),
        ("C001", utc(2025, 12, 5, 10, 0), 2, D("49.98"), 2, D("49.98"), 4),
        ("C002", utc(2025, 12, 10, 10, 0), 1, D("105.50"), 1, D("105.50"), None),
        ("C002", utc(2025, 12, 15, 10, 0), 2, D("117.50"), 2, D("117.50"), 5),
        ("C003", utc(2025, 12, 20, 10, 0), 1, D("70.00"), 1, D("70.00"), None),
        ("C003", utc(2025, 12, 25, 10, 0), 2, D("79.00"), 2, D("79.00"), 5),
    ]
    # the original project README's example rows, in its columns (orders_7d of C002 corrected to 2)
    example = query(db_url, "SELECT customer_id, feature_time, orders_7d, orders_30d, revenue_30d,"
                            " days_since_last_order FROM feats.customer_features"
                            " WHERE (customer_id, feature_time) IN (('C001', %s), ('C002', %s))"
                            " ORDER BY customer_id", (utc(2025, 12, 5, 10), utc(2025, 12, 15, 10)))
    assert example == [("C001", utc(2025, 12, 5, 10), 2, 2, D("49.98"), 4),
                       ("C002", utc(2025, 12, 15, 10), 2, 2, D("117.50"), 5)]


# --- 7: the project's default expectations and the original project's statuses ---------------------------


@pytest.mark.parametrize("layout", ["project-config", "original-config"])
def test_default_expectations_accept_the_original_statuses(project, db_url, layout):
    """The original project's orders.csv (paid, 6 records) with a copy of the project's default
    configs/expectations.yaml passes: with the project's pipeline.yaml in a scratch project,
    and with the original project's own pipeline.yaml beside the copied expectations."""
    if layout == "project-config":
        shutil.copyfile(ORIGINAL_CSV, project.root / "data" / "raw" / "orders.csv")
        shutil.copyfile(REPO_ROOT / "configs" / "expectations.yaml", project.root / "configs" / "expectations.yaml")
        shutil.copyfile(REPO_ROOT / "configs" / "pipeline.yaml", project.root / "configs" / "pipeline.yaml")
        config = project.root / "configs" / "pipeline.yaml"
    else:
        original = copy_original(project)
        shutil.copyfile(REPO_ROOT / "configs" / "expectations.yaml", original / "configs" / "expectations.yaml")
        config = original / "configs" / "pipeline.yaml"
    code, report = run_original(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    assert report["validation_passed"] is True
    by_id = checks_by_id(report)
    # the default file's status rule was evaluated and passed (not dropped)
    status_checks = [c for c in by_id if c.endswith("allowed_values.status")]
    assert status_checks and all(by_id[c]["status"] == "pass" for c in status_checks), status_checks
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(6,)]
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(6,)]
    saved = json.loads((project.root / "artifacts" / "reports" / f"{report['run_id']}.json").read_text())
    assert saved["exit_code"] == EXIT_PASSED
