"""non_null's ``mostly`` (as in Great Expectations: the share of all its rows that must be
non-null) at both levels, and thresholds that could never be breached refused at load.

The batch below is worked out by hand: 20 records (lines 2 to 21), customer_id empty on
records 5 and 12 (lines 6 and 13), so 18 of 20 (90 %) are non-null. Records 1 to 8 are
completed, 9 to 20 cancelled: of the 8 completed, record 5's customer is missing, 7 of 8
(87.5 %) non-null.
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.config import ConfigError, load
from scripts.run import EXIT_PASSED, EXIT_USAGE, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query

BATCH = HEADER + "".join(row + "\n" for row in [
    "O1,C1,2024-01-01 10:00:00,1.00,completed",
    "O2,C2,2024-01-02 10:00:00,1.00,completed",
    "O3,C3,2024-01-03 10:00:00,1.00,completed",
    "O4,C4,2024-01-04 10:00:00,1.00,completed",
    "O5,,2024-01-05 10:00:00,1.00,completed",      # line 6: no customer
    "O6,C6,2024-01-06 10:00:00,1.00,completed",
    "O7,C7,2024-01-07 10:00:00,1.00,completed",
    "O8,C8,2024-01-08 10:00:00,1.00,completed",
    "O9,C9,2024-01-09 10:00:00,1.00,cancelled",
    "O10,C10,2024-01-10 10:00:00,1.00,cancelled",
    "O11,C11,2024-01-11 10:00:00,1.00,cancelled",
    "O12,   ,2024-01-12 10:00:00,1.00,cancelled",  # line 13: blank is no customer either
    "O13,C13,2024-01-13 10:00:00,1.00,cancelled",
    "O14,C14,2024-01-14 10:00:00,1.00,cancelled",
    "O15,C15,2024-01-15 10:00:00,1.00,cancelled",
    "O16,C16,2024-01-16 10:00:00,1.00,cancelled",
    "O17,C17,2024-01-17 10:00:00,1.00,cancelled",
    "O18,C18,2024-01-18 10:00:00,1.00,cancelled",
    "O19,C19,2024-01-19 10:00:00,1.00,cancelled",
    "O20,C20,2024-01-20 10:00:00,1.00,cancelled",
])


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


def measures(check: dict[str, Any]) -> tuple[Any, ...]:
    return check["status"], check["failing_count"], check["row_count"], check["failing_percent"], check["error_if"]


# --- mostly on non_null ------------------------------------------------------------------------


@pytest.mark.parametrize(("mostly", "expected", "code"), [
    # 90 % non-null < 95 %: fails; 2 null of 20 rows is 10 % > 5 %
    pytest.param(0.95, ("fail", 2, 20, 10.0, ">5%"), EXIT_VALIDATION_FAILED, id="below-the-share"),
    # 90 % non-null >= 90 %: exactly enough
    pytest.param(0.9, ("pass", 2, 20, 10.0, ">10%"), EXIT_PASSED, id="at-the-share"),
])
def test_records_non_null_mostly_is_a_share_of_all_rows(project, db_url, mostly, expected, code):
    project.write_csv("orders.csv", BATCH)
    rule = {"non_null": [{"column": "customer_id", "mostly": mostly}]}
    result, report = run_pipeline(project.write_config(expectations=rule), db_url, through="validate")
    check = checks(report)["non_null.customer_id"]
    assert measures(check) == expected
    assert check["message"] == (  # a failure says what it found; a pass that its nulls are within the share
        f"customer_id has null values in more than {expected[4][1:]} of its rows" if code else
        "customer_id has null values: 2 of 20 (10.0%), within its thresholds")
    assert result == code, report["errors"]
    if code == EXIT_VALIDATION_FAILED:
        assert query(db_url, "SELECT line_number FROM meta.validation_failures"
                             " WHERE check_id = 'non_null.customer_id' ORDER BY 1") == [(6,), (13,)]


@pytest.mark.parametrize(("mostly", "expected", "code"), [
    # the model stages O5's and O12's customer as NULL: 2 of 20 orders, 10 %
    pytest.param(0.95, ("fail", 2, 20, 10.0, ">5%"), EXIT_VALIDATION_FAILED, id="below-the-share"),
    pytest.param(0.9, ("pass", 2, 20, 10.0, ">10%"), EXIT_PASSED, id="at-the-share"),
])
def test_orders_non_null_mostly_is_a_share_of_all_orders(project, db_url, mostly, expected, code):
    project.write_csv("orders.csv", BATCH)
    rule = {"orders": {"non_null": [{"column": "customer_id", "mostly": mostly}]}}
    result, report = run_pipeline(project.write_config(expectations=rule), db_url, through="model")
    assert measures(checks(report)["orders.non_null.customer_id"]) == expected
    assert result == code, report["errors"]


@pytest.mark.parametrize("level", ["records", "orders"])
@pytest.mark.parametrize(("mostly", "status"), [
    # of the 8 completed, 1 null: 87.5 % non-null, exactly 0.875; below 0.9
    pytest.param(0.875, "pass", id="at-the-share"),
    pytest.param(0.9, "fail", id="below-the-share"),
])
def test_non_null_mostly_with_where_is_a_share_of_those_rows(project, db_url, level, mostly, status):
    """With where, the base is the rows where it holds, nulls included (were the nulls left out,
    as mostly does for other rules, nothing could ever fail)."""
    project.write_csv("orders.csv", BATCH)
    rule = {"non_null": [{"column": "customer_id", "mostly": mostly, "where": {"status": {"in": ["completed"]}}}]}
    expectations = {"orders": rule} if level == "orders" else rule
    result, report = run_pipeline(project.write_config(expectations=expectations), db_url,
                                  through="model" if level == "orders" else "validate")
    check = checks(report)[("orders." if level == "orders" else "") + "non_null.customer_id"]
    assert (check["status"], check["failing_count"], check["row_count"], check["failing_percent"]) == (
        status, 1, 8, 12.5)
    assert result == (EXIT_PASSED if status == "pass" else EXIT_VALIDATION_FAILED), report["errors"]


def test_non_null_mostly_with_warn_if_warns_within_the_share(project, db_url):
    """warn_if may be given beside mostly: 90 % non-null is within mostly 0.9 (no error), but
    more than 0 nulls warns; the run goes on."""
    project.write_csv("orders.csv", BATCH)
    rule = {"non_null": [{"column": "customer_id", "mostly": 0.9, "warn_if": ">0"}]}
    result, report = run_pipeline(project.write_config(expectations=rule), db_url, through="validate")
    check = checks(report)["non_null.customer_id"]
    assert (check["status"], check["failing_count"], check["error_if"], check["warn_if"]) == ("warn", 2, ">10%", ">0")
    assert result == EXIT_PASSED


# --- thresholds that could never be breached ---------------------------------------------------


@pytest.mark.parametrize(("expectations", "key"), [
    pytest.param({"non_null": [{"column": "customer_id", "error_if": ">150%"}]}, "non_null.customer_id.error_if",
                 id="records-error-if"),
    pytest.param({"ranges": {"amount": {"min": 0, "severity": "warn", "warn_if": ">100%"}}}, "ranges.amount.warn_if",
                 id="records-warn-if-at-100"),
    pytest.param({"orders": {"non_null": [{"column": "customer_id", "error_if": ">=100.5%"}]}},
                 "orders.non_null.customer_id.error_if", id="orders-error-if"),
    pytest.param({"drift": {"null_rate": {"warn_if": ">150%"}}}, "drift.null_rate.warn_if", id="drift-null-rate"),
])
def test_a_threshold_that_can_never_be_breached_is_refused(project, db_url, capsys, expectations, key):
    """Exit 2 before any data work, naming the file, the key and why."""
    project.write_csv("orders.csv", BATCH)
    code, report = run_pipeline(project.write_config(expectations=expectations), db_url, through="validate")
    assert code == EXIT_USAGE, report["errors"]
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith(f"configs/pipeline_expectations.yaml: {key}: '>")
    assert "can never be breached" in report["errors"][0] and "100" in report["errors"][0]
    assert key in capsys.readouterr().err
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]


def test_at_most_every_row_and_a_row_count_change_above_100_percent_are_accepted(project):
    """'>=100%' can be breached (every row offends), and a row count can grow by more than
    100 %, so both load."""
    project.write_csv("orders.csv", BATCH)
    config = load(project.write_config(expectations={
        "non_null": [{"column": "customer_id", "error_if": ">=100%"}],
        "drift": {"row_count": {"warn_if": ">150%"}, "null_rate": {"warn_if": ">=100%"}}}))
    by_id = {c["id"]: c for c in config.checks}
    assert by_id["non_null.customer_id"]["error_if"] == {"op": ">=", "value": 100.0, "percent": True}
    assert by_id["drift.row_count"]["warn_if"] == {"op": ">", "value": 150.0, "percent": True}
    with pytest.raises(ConfigError, match=r"drift\.row_count\.warn_if: a change is a percentage"):
        load(project.write_config(expectations={"drift": {"row_count": {"warn_if": ">1.5"}}}))


def test_at_most_every_row_fails_when_every_row_offends(project, db_url):
    """'>=100%' is reachable: 2 records, both without a customer, is 100 % and fails."""
    project.write_csv("orders.csv", HEADER + "O1,,2024-01-01 10:00:00,1.00,completed\n"
                                             "O2,,2024-01-02 10:00:00,1.00,completed\n")
    rule = {"non_null": [{"column": "customer_id", "error_if": ">=100%"}]}
    code, report = run_pipeline(project.write_config(expectations=rule), db_url, through="validate")
    assert measures(checks(report)["non_null.customer_id"]) == ("fail", 2, 2, 100.0, ">=100%")
    assert code == EXIT_VALIDATION_FAILED
