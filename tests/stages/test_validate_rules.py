"""Validate: the rule kinds people bring from Great Expectations — a range implies its type,
timestamp ranges (fixed, and relative to the run's start), strict bounds, max_rows,
conditional rules (where), shares of the non-null values (mostly) — and the configs refused.

Every expected count below is worked out by hand from the CSV written in the test (line 1 is
the header, so the Nth record is on line N + 1), never taken from the code's own output.
Dates relative to "now" are built from the test's own clock with margins of months, so no
assertion depends on timing.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import psycopg
import pytest

from scripts.db import server as embedded
from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, render_all, run_pipeline
from tests.helpers import assert_refused_before_data_work, HEADER, query

ORDERS = "data/raw/orders.csv"


def validate(config: str, db_url: str, through: str = "validate") -> tuple[int, dict[str, Any]]:
    return run_pipeline(config, db_url, through=through)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


def lines(rows: list[str], header: str = HEADER) -> str:
    return header + "".join(row + "\n" for row in rows)


def failure_lines(db_url: str, check_id: str) -> list[tuple[str, int, str | None]]:
    """The offending records the failure history holds for a check: (file, line, value)."""
    return query(db_url, "SELECT file_path, line_number, failing_value FROM meta.validation_failures"
                         " WHERE check_id = %s ORDER BY line_number", (check_id,))


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


# --- 1. a range implies its type ---------------------------------------------------------------

QTY_HEADER = "order_id,customer_id,order_ts,amount,status,qty\n"


def test_a_range_without_a_types_rule_reports_non_numbers_as_type_errors(project, db_url):
    """qty has a range and no types rule: a value that is not a number is not passed
    silently (as it was) but fails the implied, implicit types.qty check; the range itself
    judges only the numbers."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed,5",      # line 2: ok
        "O2,C2,2024-01-01,1,completed,abc",    # line 3: not a number -> types.qty
        "O3,C3,2024-01-01,1,completed,-1",     # line 4: below min -> ranges.qty
        "O4,C4,2024-01-01,1,completed,11",     # line 5: above max -> ranges.qty
        "O5,C5,2024-01-01,1,completed,",       # line 6: missing: judged by neither
        'O6,C6,2024-01-01,1,completed,"1,5"',  # line 7: decimal comma -> types.qty
        "O7,C7,2024-01-01,1,completed, 7 ",    # line 8: padded, a number: ok
        "O8,C8,2024-01-01,1,completed,10",     # line 9: = max: ok
    ], QTY_HEADER))
    code, report = validate(project.write_config(expectations={"ranges": {"qty": {"min": 0, "max": 10}}}), db_url)
    assert code == EXIT_VALIDATION_FAILED
    by_id = checks(report)
    types = by_id["types.qty"]
    # lines 3 and 7: 2 of 8 records
    assert (types["status"], types["failing_count"], types["row_count"]) == ("fail", 2, 8)
    assert types["implicit"] is True, "the type check a range implies is marked implicit"
    assert failure_lines(db_url, "types.qty") == [(ORDERS, 3, "abc"), (ORDERS, 7, "1,5")]
    ranges = by_id["ranges.qty"]
    assert (ranges["status"], ranges["failing_count"]) == ("fail", 2)
    assert failure_lines(db_url, "ranges.qty") == [(ORDERS, 4, "-1"), (ORDERS, 5, "11")]
    assert sorted(report["errors"]) == ["qty has invalid numbers", "qty has negative values or values above 10"]


def test_a_declared_type_replaces_the_implied_one(project, db_url):
    """With types: {qty: integer} the range implies nothing more: one types.qty, the user's
    (integer: 2.5 is a type error), not marked implicit."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed,5",      # line 2: ok
        "O2,C2,2024-01-01,1,completed,2.5",    # line 3: not an integer
    ], QTY_HEADER))
    config = project.write_config(expectations={"types": {"qty": "integer"}, "ranges": {"qty": {"min": 0}}})
    code, report = validate(config, db_url)
    types = checks(report)["types.qty"]
    assert (types["failing_count"], types["implicit"]) == (1, False)
    assert failure_lines(db_url, "types.qty") == [(ORDERS, 3, "2.5")]
    assert code == EXIT_VALIDATION_FAILED


# --- 2. strict bounds --------------------------------------------------------------------------

AMOUNTS = [
    "O1,C1,2024-01-01,0,completed",        # line 2: = min
    "O2,C2,2024-01-01,0.01,completed",     # line 3: inside
    "O3,C3,2024-01-01,100,completed",      # line 4: = max
    "O4,C4,2024-01-01,100.01,completed",   # line 5: above max
    "O5,C5,2024-01-01,-0.01,completed",    # line 6: below min
]


@pytest.mark.parametrize(("bounds", "offending"), [
    # at the bounds themselves nothing offends: lines 5 and 6 only
    pytest.param({"min": 0, "max": 100}, [5, 6], id="inclusive"),
    # strict_min: the value 0 offends too (line 2)
    pytest.param({"min": 0, "max": 100, "strict_min": True}, [2, 5, 6], id="strict-min"),
    # strict_max: the value 100 offends too (line 4)
    pytest.param({"min": 0, "max": 100, "strict_max": True}, [4, 5, 6], id="strict-max"),
    pytest.param({"min": 0, "max": 100, "strict_min": True, "strict_max": True}, [2, 4, 5, 6], id="both-strict"),
])
def test_strict_bounds_exclude_the_bound_itself(project, db_url, bounds, offending):
    """strict_min / strict_max (Great Expectations' semantics): the bound itself offends."""
    project.write_csv("orders.csv", lines(AMOUNTS))
    code, report = validate(project.write_config(expectations={"ranges": {"amount": bounds}}), db_url)
    check = checks(report)["ranges.amount"]
    assert (check["status"], check["failing_count"]) == ("fail", len(offending))
    assert [line for _, line, _ in failure_lines(db_url, "ranges.amount")] == offending
    assert code == EXIT_VALIDATION_FAILED


# --- 3. timestamp ranges -----------------------------------------------------------------------

TIMESTAMPS = [
    "O1,C1,2023-12-31 23:59:59,1,completed",   # line 2: a second before min
    "O2,C2,2024-01-01 00:00:00,1,completed",   # line 3: = min
    "O3,C3,2024-06-15 12:00:00,1,completed",   # line 4: inside
    "O4,C4,2024-12-31 00:00:00,1,completed",   # line 5: = max
    "O5,C5,2024-12-31 00:00:01,1,completed",   # line 6: a second after max
    "O6,C6,not a date,1,completed",            # line 7: no timestamp: types.order_ts, not the range
    "O7,C7,,1,completed",                      # line 8: missing: non_null.order_ts, not the range
]


@pytest.mark.parametrize(("strict", "offending"), [
    pytest.param(False, [2, 6], id="inclusive"),
    pytest.param(True, [2, 3, 5, 6], id="strict"),   # the bounds themselves too: lines 3 and 5
])
def test_timestamp_range_with_fixed_bounds(project, db_url, strict, offending):
    """ISO bounds (a date is its midnight); a value that is no timestamp is the type check's."""
    project.write_csv("orders.csv", lines(TIMESTAMPS))
    rule = {"min": "2024-01-01", "max": "2024-12-31", "strict_min": strict, "strict_max": strict}
    code, report = validate(project.write_config(expectations={"ranges": {"order_ts": rule}}), db_url)
    by_id = checks(report)
    check = by_id["ranges.order_ts"]
    assert (check["status"], check["failing_count"], check["row_count"]) == ("fail", len(offending), 7)
    assert [line for _, line, _ in failure_lines(db_url, "ranges.order_ts")] == offending
    # staging's own type check on order_ts (not an implied one) reports line 7
    assert (by_id["types.order_ts"]["failing_count"], by_id["types.order_ts"]["implicit"]) == (1, True)
    assert code == EXIT_VALIDATION_FAILED


def test_timestamp_bounds_and_values_are_read_as_staging_reads_them(project, db_url):
    """A naive bound and naive values are read in staging.source_timezone, values with an
    offset keep it, and ambiguous dates follow staging.date_order (here DMY, New York).

    min '2024-01-15' is 2024-01-15 05:00 UTC (New York is UTC-5 in January)."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-15 03:00:00+00,1,completed",   # line 2: 2024-01-14 22:00 in New York: before
        "O2,C2,2024-01-15 01:00:00,1,completed",      # line 3: 01:00 New York = 06:00 UTC: ok
        "O3,C3,2024-01-15 04:59:59+00,1,completed",   # line 4: a second before min: before
        "O4,C4,2024-01-15 05:00:00+00,1,completed",   # line 5: = min: ok
        "O5,C5,02/01/2024 10:00,1,completed",         # line 6: DMY: 2 January: before
        "O6,C6,20/01/2024 10:00,1,completed",         # line 7: DMY: 20 January: ok
    ]))
    config = project.write_config(expectations={"ranges": {"order_ts": {"min": "2024-01-15"}}},
                                  staging={"source_timezone": "America/New_York", "date_order": "DMY"})
    code, report = validate(config, db_url)
    check = checks(report)["ranges.order_ts"]
    assert (check["failing_count"], check["message"]) == (3, "order_ts has values before 2024-01-15")
    assert [line for _, line, _ in failure_lines(db_url, "ranges.order_ts")] == [2, 4, 6]
    assert code == EXIT_VALIDATION_FAILED


def test_bounds_relative_to_the_run_start(project, db_url):
    """min: now - 400 days, max: now + 30 days, with dates months away from the test's own
    clock: the future-dated order and the one from two years ago offend, at both levels."""
    today = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    project.write_csv("orders.csv", lines([
        f"O1,C1,{iso(today - dt.timedelta(days=100))},1,completed",   # line 2: ok
        f"O2,C2,{iso(today + dt.timedelta(days=365))},1,completed",   # line 3: a year ahead: after max
        f"O3,C3,{iso(today - dt.timedelta(days=800))},1,completed",   # line 4: two years ago: before min
        f"O4,C4,{iso(today + dt.timedelta(days=1))},1,completed",     # line 5: tomorrow: within 30 days
    ]))
    config = project.write_config(expectations={
        "ranges": {"order_ts": {"min": "now - 400 days", "max": "now + 30 days"}},
        # at the order level: nothing after the run's start (line 3 and line 5)
        "orders": {"ranges": {"order_ts": {"max": "now"}}},
    })
    code, report = validate(config, db_url, through="model")
    by_id = checks(report)
    records = by_id["ranges.order_ts"]
    assert (records["status"], records["failing_count"]) == ("fail", 2)
    assert records["message"] == ("order_ts has values before the run's start - 400 days "
                                  "or values after the run's start + 30 days")
    assert [line for _, line, _ in failure_lines(db_url, "ranges.order_ts")] == [3, 4]
    assert code == EXIT_VALIDATION_FAILED
    # the record gate failed, so the order level did not run; allow the records and look again
    config = project.write_config(expectations={
        "ranges": {"order_ts": {"min": "now - 400 days", "max": "now + 30 days", "severity": "warn"}},
        "orders": {"ranges": {"order_ts": {"max": "now"}}},
    })
    code, report = validate(config, db_url, through="model")
    orders = checks(report)["orders.ranges.order_at"]
    assert (orders["status"], orders["failing_count"], orders["row_count"]) == ("fail", 2, 4)
    assert query(db_url, "SELECT line_number FROM meta.validation_failures"
                         " WHERE check_id = 'orders.ranges.order_at' AND run_id = %s ORDER BY line_number",
                 (report["run_id"],)) == [(3,), (5,)]
    assert code == EXIT_VALIDATION_FAILED


def _psql(target: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(embedded.psql_binary()), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                           *args, "-d", target], capture_output=True, text=True, timeout=120)


def test_now_is_the_start_recorded_in_meta_runs(project, db_url):
    """`now` is meta.runs.started_at of the run, never the clock: run as rendered SQL (the
    DBA route), the gate refuses to guess without the run's row, and with a start set to
    2000-01-01 an order of 2020 is 'in the future' while one of 1999 is not."""
    project.write_csv("orders.csv", lines([
        "O1,C1,1999-06-01 00:00:00+00,1,completed",   # line 2: before the recorded start: ok
        "O2,C2,2020-06-01 00:00:00+00,1,completed",   # line 3: after 2000-01-01: offends
    ]))
    config = project.write_config(expectations={"ranges": {"order_ts": {"max": "now"}}})
    out = project.root / "rendered"
    render_all(config, out)
    for migration in sorted((out / "migrations").glob("V*.sql")):
        assert _psql(db_url, "-f", str(migration)).returncode == 0, migration
    assert _psql(db_url, "-v", "run_id=manual-1", "-f", str(out / "ingest.file1.psql")).returncode == 0
    gate = ["-c", "SET raw_to_ready.run_id = 'manual-1'", "-f", str(out / "settings.sql"),
            "-f", str(out / "030_validate_expectations.sql")]

    without_row = _psql(db_url, *gate)
    assert without_row.returncode != 0
    assert "meta.runs has no row for run manual-1" in without_row.stderr

    with psycopg.connect(db_url) as connection:
        connection.execute("INSERT INTO meta.runs (run_id, config_path, started_at)"
                           " VALUES ('manual-1', 'configs/pipeline.yaml', '2000-01-01 00:00:00+00')")
    assert _psql(db_url, *gate).returncode == 0
    assert query(db_url, "SELECT status, failing_count FROM meta.validation_results"
                         " WHERE run_id = 'manual-1' AND check_id = 'ranges.order_ts'") == [("fail", 1)]


# --- 4. max_rows -------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_rows", "status", "failing"), [
    pytest.param(2, "fail", 1, id="one-too-many"),    # 3 records, 2 allowed: 1 beyond
    pytest.param(3, "pass", 0, id="at-the-maximum"),  # 3 records, 3 allowed
])
def test_max_rows_counts_the_records_beyond_the_maximum(project, db_url, max_rows, status, failing):
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",
        "O2,C2,2024-01-01,1,completed",
        "O3,C3,2024-01-01,1,completed",
    ]))
    code, report = validate(project.write_config(expectations={"max_rows": max_rows}), db_url)
    check = checks(report)["max_rows"]
    # a failure says what it found, a pass what holds
    assert (check["status"], check["failing_count"], check["message"]) == (
        status, failing, f"more than {max_rows} rows" if failing else f"at most {max_rows} rows")
    assert code == (EXIT_VALIDATION_FAILED if failing else EXIT_PASSED)


def test_max_rows_counts_every_named_file_in_an_incremental_run(project, db_url):
    """Like min_rows, max_rows counts the records of every named file: a daily run that adds
    b.csv (2 records) to a.csv (2 records) has 4 records against a maximum of 3."""
    rows = ["O1,C1,2024-01-01,1,completed", "O2,C2,2024-01-01,1,completed"]
    project.write_csv("a.csv", lines(rows))
    project.write_csv("b.csv", lines(["O3,C3,2024-01-02,1,completed", "O4,C4,2024-01-02,1,completed"]))
    first = project.write_config(paths=["data/raw/a.csv"], expectations={"max_rows": 3})
    assert validate(first, db_url, through="registry")[0] == EXIT_PASSED
    second = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"], expectations={"max_rows": 3})
    code, report = validate(second, db_url)
    check = checks(report)["max_rows"]
    assert (check["status"], check["failing_count"]) == ("fail", 1)
    assert code == EXIT_VALIDATION_FAILED


def test_max_rows_at_the_order_level(project, db_url):
    """orders.max_rows counts the orders the model made: 3 orders (O1 twice, verbatim, is one
    order) against a maximum of 2."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",
        "O1,C1,2024-01-01,1,completed",
        "O2,C2,2024-01-01,1,completed",
        "O3,C3,2024-01-01,1,completed",
    ]))
    config = project.write_config(expectations={"orders": {"max_rows": 2}})
    code, report = validate(config, db_url, through="model")
    check = checks(report)["orders.max_rows"]
    assert (check["status"], check["failing_count"], check["row_count"]) == ("fail", 1, 3)
    assert code == EXIT_VALIDATION_FAILED


# --- 5. conditional rules (where) --------------------------------------------------------------

REFUNDS = [
    "O1,C1,2024-01-01,10,completed",     # line 2: ok
    "O2,C2,2024-01-01,-5,completed",     # line 3: negative, not refunded: offends
    "O3,C3,2024-01-01,-5,refunded",      # line 4: refunded: not looked at
    "O4,C4,2024-01-01,-3, Refunded ",    # line 5: refunded, as staging stores it: not looked at
    "O5,C5,2024-01-01,-2,refund",        # line 6: the map sends 'refund' to refunded: not looked at
    "O6,C6,2024-01-01,-1,",              # line 7: no status is not refunded: offends
    "O7,C7,2024-01-01,-0.01,pending",    # line 8: offends
    "O8,C8,2024-01-01,4,pending",        # line 9: ok
]
REFUND_MAP = {"status_map": {"refund": "refunded"}}


def test_where_applies_a_rule_only_where_its_condition_holds(project, db_url):
    """amount >= 0 unless the status is refunded. Looked at: lines 2, 3, 7, 8, 9 (5 records);
    offending: lines 3, 7, 8 (3). Percentages are of the 5 looked at: 60 %, so error_if
    '>50%' fails (of all 8 records it would be 37.5 %, and pass)."""
    project.write_csv("orders.csv", lines(REFUNDS))
    rule = {"min": 0, "where": {"status": {"not_in": ["refunded"]}}, "error_if": ">50%"}
    code, report = validate(project.write_config(expectations={"ranges": {"amount": rule}}, staging=REFUND_MAP),
                            db_url)
    check = checks(report)["ranges.amount"]
    assert (check["status"], check["failing_count"], check["row_count"], check["failing_percent"]) == (
        "fail", 3, 5, 60.0)
    assert check["message"] == "amount has negative values where status is not refunded"
    assert failure_lines(db_url, "ranges.amount") == [(ORDERS, 3, "-5"), (ORDERS, 7, "-1"), (ORDERS, 8, "-0.01")]
    assert code == EXIT_VALIDATION_FAILED


def test_where_at_the_order_level(project, db_url):
    """The same rule over the orders (status as staged): the same three offend (O2, O6, O7),
    out of the 5 orders whose status is not refunded."""
    project.write_csv("orders.csv", lines(REFUNDS))
    rule = {"min": 0, "where": {"status": {"not_in": ["refunded"]}}}
    config = project.write_config(expectations={"orders": {"ranges": {"amount": rule}}}, staging=REFUND_MAP)
    code, report = validate(config, db_url, through="model")
    check = checks(report)["orders.ranges.amount"]
    assert (check["status"], check["failing_count"], check["row_count"]) == ("fail", 3, 5)
    assert query(db_url, "SELECT line_number, failing_value FROM meta.validation_failures"
                         " WHERE check_id = 'orders.ranges.amount' ORDER BY line_number") == [
        (3, "-5.00"), (7, "-1.00"), (8, "-0.01")]
    assert code == EXIT_VALIDATION_FAILED


def test_where_in_and_is_null(project, db_url):
    """non_null customer_id only for completed orders (in), and max_decimal_places on amount
    only where a customer is given (is_null: false)."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1.5,completed",     # line 2: ok
        "O2,,2024-01-01,1.5,completed",       # line 3: completed, no customer: non_null offends
        "O3,,2024-01-01,1.555,cancelled",     # line 4: not completed; no customer: neither looks
        "O4,C4,2024-01-01,1.555,pending",     # line 5: a customer, 3 decimals: offends
        "O5,   ,2024-01-01,1.25,COMPLETED",   # line 6: blank customer, completed: non_null offends
    ]))
    config = project.write_config(expectations={
        "non_null": [{"column": "customer_id", "where": {"status": {"in": ["completed"]}}}],
        "max_decimal_places": {"amount": {"places": 2, "where": {"customer_id": {"is_null": False}}}},
    })
    code, report = validate(config, db_url)
    by_id = checks(report)
    non_null = by_id["non_null.customer_id"]
    # completed: lines 2, 3, 6 (3 looked at); offending 3 and 6
    assert (non_null["failing_count"], non_null["row_count"]) == (2, 3)
    assert [line for _, line, _ in failure_lines(db_url, "non_null.customer_id")] == [3, 6]
    places = by_id["max_decimal_places.amount"]
    # a customer on lines 2 and 5 (2 looked at); offending 5
    assert (places["failing_count"], places["row_count"]) == (1, 2)
    assert failure_lines(db_url, "max_decimal_places.amount") == [(ORDERS, 5, "1.555")]
    assert code == EXIT_VALIDATION_FAILED


def test_a_conditional_quarantine_sets_aside_only_the_records_it_looks_at(project, db_url):
    """With action: quarantine, the conditional range sets aside lines 3, 7 and 8 and no
    refunded record; the other 5 orders are staged."""
    project.write_csv("orders.csv", lines(REFUNDS))
    rule = {"min": 0, "where": {"status": {"not_in": ["refunded"]}}, "action": "quarantine"}
    config = project.write_config(expectations={"ranges": {"amount": rule}}, staging=REFUND_MAP)
    code, report = validate(config, db_url, through="stage")
    assert code == EXIT_PASSED, report["errors"]
    assert query(db_url, "SELECT line_number FROM meta.quarantine WHERE check_id = 'ranges.amount'"
                         " ORDER BY line_number") == [(3,), (7,), (8,)]
    assert query(db_url, "SELECT order_id FROM stg.orders ORDER BY order_id") == [
        ("O1",), ("O3",), ("O4",), ("O5",), ("O8",)]


# --- 6. mostly: a share of the non-null values -------------------------------------------------

MOSTLY_ROWS = [
    "O1,C1,2024-01-01,1,completed,1",
    "O2,C2,2024-01-01,1,completed,2",
    "O3,C3,2024-01-01,1,completed,-3",     # line 4: offends
    "O4,C4,2024-01-01,1,completed,",       # line 5: null: not counted either way
    "O5,C5,2024-01-01,1,completed,5",
    "O6,C6,2024-01-01,1,completed,   ",    # line 7: blank is null: not counted either way
    "O7,C7,2024-01-01,1,completed,7",
    "O8,C8,2024-01-01,1,completed,-8",     # line 9: offends
    "O9,C9,2024-01-01,1,completed,9",
    "O10,C10,2024-01-01,1,completed,10",
]


@pytest.mark.parametrize(("mostly", "status"), [
    # 8 non-null values, 6 pass: 75 %, exactly the share required
    pytest.param(0.75, "pass", id="at-the-share"),
    # 75 % < 80 %: fails (of all 10 rows, 2 failing would be 20 %: within 1 - 0.8)
    pytest.param(0.8, "fail", id="below-the-share"),
])
def test_mostly_is_a_share_of_the_non_null_values(project, db_url, mostly, status):
    """mostly (Great Expectations): at least this share of the non-null values must pass.
    row_count and failing_percent are of the 8 non-null values: 2 failing is 25 %."""
    project.write_csv("orders.csv", lines(MOSTLY_ROWS, QTY_HEADER))
    config = project.write_config(expectations={"ranges": {"qty": {"min": 0, "mostly": mostly}}})
    code, report = validate(config, db_url)
    check = checks(report)["ranges.qty"]
    assert (check["status"], check["failing_count"], check["row_count"], check["failing_percent"]) == (
        status, 2, 8, 25.0)
    assert check["error_if"] == f">{round((1 - mostly) * 100)}%"
    assert code == (EXIT_VALIDATION_FAILED if status == "fail" else EXIT_PASSED)
    if status == "fail":
        assert [line for _, line, _ in failure_lines(db_url, "ranges.qty")] == [4, 9]


def test_mostly_on_unique_counts_the_records_with_a_key(project, db_url):
    """unique customer_id with mostly 0.5: 4 records have a customer (line 6's is blank),
    2 of them (C1 with two different contents) conflict: 50 % pass, exactly enough; with
    0.6 it fails."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",   # line 2: C1, first content
        "O2,C1,2024-01-01,2,completed",   # line 3: C1, other content: both conflict
        "O3,C2,2024-01-01,1,completed",
        "O4,C3,2024-01-01,1,completed",
        "O5,,2024-01-01,1,completed",     # line 6: no key: not counted either way
    ]))
    for mostly, status in ((0.5, "pass"), (0.6, "fail")):
        config = project.write_config(expectations={"unique": [{"column": "customer_id", "mostly": mostly}]})
        code, report = validate(config, db_url)
        check = checks(report)["unique.customer_id"]
        assert (check["status"], check["failing_count"], check["row_count"], check["failing_percent"]) == (
            status, 2, 4, 50.0), mostly
        assert code == (EXIT_PASSED if status == "pass" else EXIT_VALIDATION_FAILED)
    assert [line for _, line, _ in failure_lines(db_url, "unique.customer_id")] == [2, 3]


def test_mostly_at_the_order_level_with_where(project, db_url):
    """orders.allowed_values on status where an amount is given (all 5 orders) with mostly
    0.5: 4 orders have a status (O5's blank one is staged as NULL: not a value, not
    counted); 2 of the 4 are outside [completed], so 50 % pass: exactly enough."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",
        "O2,C2,2024-01-01,1,shipped",      # line 3: outside
        "O3,C3,2024-01-01,1,completed",
        "O4,C4,2024-01-01,1,lost",         # line 5: outside
        "O5,C5,2024-01-01,1,",             # line 6: no status: not a value
    ]))
    rule = {"values": ["completed"], "mostly": 0.5, "where": {"amount": {"is_null": False}}}
    config = project.write_config(expectations={"orders": {"allowed_values": {"status": rule}}})
    code, report = validate(config, db_url, through="model")
    check = checks(report)["orders.allowed_values.status"]
    assert (check["status"], check["failing_count"], check["row_count"], check["failing_percent"]) == (
        "pass", 2, 4, 50.0)
    assert code == EXIT_PASSED


# --- 7. refused configs ------------------------------------------------------------------------


@pytest.mark.parametrize(("expectations", "key"), [
    pytest.param({"allowed_values": {"status": []}}, "allowed_values.status", id="empty-allowed-values"),
    pytest.param({"ranges": {"order_ts": {"max": "yesterday"}}}, "ranges.order_ts.max", id="bound-not-a-timestamp"),
    pytest.param({"ranges": {"order_ts": {"max": "now + 1 fortnight"}}}, "ranges.order_ts.max",
                 id="unknown-offset-unit"),
    pytest.param({"ranges": {"order_ts": {"max": "now + 2000 years"}}}, "ranges.order_ts.max", id="offset-too-far"),
    pytest.param({"ranges": {"amount": {"min": True}}}, "ranges.amount.min", id="boolean-bound"),
    pytest.param({"ranges": {"amount": {"min": 0, "max": "now"}}}, "ranges.amount", id="number-and-timestamp"),
    pytest.param({"ranges": {"order_ts": {"min": "2024-02-01", "max": "2024-01-01"}}}, "ranges.order_ts",
                 id="timestamp-min-above-max"),
    pytest.param({"ranges": {"order_ts": {"min": "now", "max": "now - 1 day"}}}, "ranges.order_ts",
                 id="relative-min-above-max"),
    pytest.param({"ranges": {"amount": {"min": 5, "max": 5, "strict_max": True}}}, "ranges.amount",
                 id="strict-bound-on-a-single-value"),
    pytest.param({"ranges": {"amount": {"max": "now"}}}, "ranges.amount", id="timestamp-bounds-on-a-number"),
    pytest.param({"ranges": {"order_ts": {"min": 0}}}, "ranges.order_ts", id="number-bounds-on-a-timestamp"),
    pytest.param({"types": {"customer_id": "text"}, "ranges": {"customer_id": {"min": 0}}}, "ranges.customer_id",
                 id="range-disagrees-with-declared-type"),
    pytest.param({"ranges": {"amount": {"max": 5, "strict_min": True}}}, "ranges.amount.strict_min",
                 id="strict-without-its-bound"),
    pytest.param({"ranges": {"amount": {"min": 0, "strict_min": "yes"}}}, "ranges.amount.strict_min",
                 id="strict-not-a-boolean"),
    pytest.param({"ranges": {"amount": {"min": 0, "strict": True}}}, "ranges.amount.strict", id="unknown-option"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": "status != 'refunded'"}}}, "ranges.amount.where",
                 id="where-as-sql"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": {"status": {"like": ["ref%"]}}}}},
                 "ranges.amount.where.status.like", id="where-unknown-test"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": {"status": {"not_in": []}}}}},
                 "ranges.amount.where.status.not_in", id="where-empty-list"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": {"status": "refunded"}}}}, "ranges.amount.where.status",
                 id="where-without-a-test"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": {"status": {"is_null": "no"}}}}},
                 "ranges.amount.where.status.is_null", id="where-is-null-not-a-boolean"),
    pytest.param({"unique": [{"column": "customer_id", "where": {"status": {"in": ["paid"]}}}]},
                 "unique.customer_id.where", id="where-on-unique"),
    pytest.param({"min_rows": {"min": 1, "where": {"status": {"in": ["paid"]}}}}, "min_rows.where",
                 id="where-on-min-rows"),
    pytest.param({"non_null": [{"column": "order_id", "where": {"status": {"in": ["paid"]}}}]},
                 "non_null.order_id.where", id="where-on-a-rule-staging-needs"),
    pytest.param({"orders": {"ranges": {"amount": {"min": 0, "where": {"Status": {"in": ["paid"]}}}}}},
                 "orders.ranges.amount.where.Status", id="order-where-on-an-unknown-column"),
    pytest.param({"ranges": {"amount": {"min": 0, "where": {"stauts": {"not_in": ["refunded"]}}}}},
                 "ranges.amount.where.stauts", id="record-where-on-a-column-no-file-has"),
    pytest.param({"ranges": {"amount": {"min": 0, "mostly": 1.5}}}, "ranges.amount.mostly", id="mostly-above-1"),
    pytest.param({"ranges": {"amount": {"min": 0, "mostly": "95%"}}}, "ranges.amount.mostly", id="mostly-as-text"),
    pytest.param({"ranges": {"amount": {"min": 0, "mostly": 0.9, "error_if": ">5%"}}}, "ranges.amount.mostly",
                 id="mostly-and-error-if"),
    pytest.param({"non_null": [{"column": "customer_id", "mostly": 0.9, "error_if": ">5%"}]},
                 "non_null.customer_id.mostly", id="mostly-and-error-if-on-non-null"),
    pytest.param({"non_null": [{"column": "order_id", "mostly": 0.9}]}, "non_null.order_id.mostly",
                 id="mostly-on-a-non-null-staging-needs"),
    pytest.param({"types": {"order_ts": {"type": "timestamptz", "mostly": 0.9}}}, "types.order_ts.mostly",
                 id="mostly-on-a-rule-staging-needs"),
    pytest.param({"max_rows": -1}, "max_rows", id="negative-max-rows"),
    pytest.param({"min_rows": 5, "max_rows": 2}, "max_rows", id="max-rows-below-min-rows"),
    pytest.param({"orders": {"ranges": {"amount": {"max": "now"}}}}, "orders.ranges.amount",
                 id="order-timestamp-bounds-on-amount"),
    pytest.param({"orders": {"ranges": {"order_at": {"min": 0}}}}, "orders.ranges.order_at",
                 id="order-number-bounds-on-order-at"),
])
def test_broken_rules_are_refused_before_any_data_work(project, db_url, capsys, expectations, key):
    """Each broken rule stops the run with exit 2 and a message naming the file and the key,
    before the database is even migrated."""
    assert_refused_before_data_work(project, db_url, capsys, expectations, key)
