"""Quarantine: a check with action: quarantine sets its records aside and the run goes on."""

from __future__ import annotations

import psycopg
import pytest

from scripts.run import EXIT_PASSED, EXIT_USAGE, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query

# two of five orders have no customer (lines 3 and 5 of the file; the header is line 1)
ORDERS = HEADER + (
    "O1,C1,2024-01-01 10:00:00,10.00,completed\n"
    "O2,,2024-01-02 10:00:00,20.00,completed\n"
    "O3,C1,2024-01-03 10:00:00,30.00,completed\n"
    "O4,  ,2024-01-04 10:00:00,40.00,completed\n"
    "O5,C2,2024-01-05 10:00:00,50.00,completed\n"
)
CORRECTED = ORDERS.replace("O2,,", "O2,C2,").replace("O4,  ,", "O4,C3,")
QUARANTINE_CUSTOMER = {"non_null": [{"column": "customer_id", "action": "quarantine"}]}


def test_quarantined_records_are_set_aside_and_the_run_goes_on(project, db_url, capsys):
    project.write_csv("orders.csv", ORDERS)
    code, report = run_pipeline(project.write_config(expectations=QUARANTINE_CUSTOMER), db_url)
    assert code == EXIT_PASSED
    assert query(db_url, "SELECT check_id, file_path, line_number, payload ->> 'order_id' FROM meta.quarantine"
                         " ORDER BY line_number") == [
        ("non_null.customer_id", "data/raw/orders.csv", 3, "O2"),
        ("non_null.customer_id", "data/raw/orders.csv", 5, "O4"),
    ]
    assert [r[0] for r in query(db_url, "SELECT order_id FROM stg.orders ORDER BY 1")] == ["O1", "O3", "O5"]
    check = next(c for c in report["checks"] if c["id"] == "non_null.customer_id")
    assert (check["status"], check["action"], check["failing_count"]) == ("quarantine", "quarantine", 2)
    assert [(s["line_number"], s["value"]) for s in check["samples"]] == [(3, None), (5, "  ")]
    assert report["quarantine"] == {"records": 2, "by_check": {"non_null.customer_id": 2}}
    assert report["validation_passed"] is True
    assert "QUARANTINE non_null.customer_id: 2 records set aside" in capsys.readouterr().out


def test_a_corrected_file_stages_them_and_nothing_quarantined_is_lost(project, db_url):
    project.write_csv("orders.csv", ORDERS)
    config = project.write_config(expectations=QUARANTINE_CUSTOMER)
    first = run_pipeline(config, db_url)[1]["run_id"]
    project.write_csv("orders.csv", CORRECTED)
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED and report["quarantine"]["records"] == 0
    assert query(db_url, "SELECT order_id, customer_id FROM stg.orders ORDER BY 1") == [
        ("O1", "C1"), ("O2", "C2"), ("O3", "C1"), ("O4", "C3"), ("O5", "C2")]
    # the first run's quarantined records are still there, with their payload as received
    assert query(db_url, "SELECT run_id, payload ->> 'order_id' FROM meta.quarantine ORDER BY 2") == [
        (first, "O2"), (first, "O4")]


def test_quarantine_is_append_only(project, db_url):
    project.write_csv("orders.csv", ORDERS)
    run_pipeline(project.write_config(expectations=QUARANTINE_CUSTOMER), db_url)
    for statement in ("UPDATE meta.quarantine SET check_id = 'x'", "DELETE FROM meta.quarantine",
                      "TRUNCATE meta.quarantine"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            query(db_url, statement)
    assert query(db_url, "SELECT count(*) FROM meta.quarantine") == [(2,)]


@pytest.mark.parametrize(("error_if", "expected"), [(">2", EXIT_PASSED), (">=2", EXIT_VALIDATION_FAILED),
                                                    (">40%", EXIT_PASSED), (">=40%", EXIT_VALIDATION_FAILED)])
def test_a_threshold_still_gates(project, db_url, error_if, expected):
    project.write_csv("orders.csv", ORDERS)
    rules = {"non_null": [{"column": "customer_id", "action": "quarantine", "error_if": error_if}]}
    code, report = run_pipeline(project.write_config(expectations=rules), db_url)
    assert code == expected
    staged = query(db_url, "SELECT count(*) FROM stg.orders")[0][0]
    if expected == EXIT_VALIDATION_FAILED:
        assert staged == 0 and report["errors"] == ["customer_id has null values"]
        # the records are kept aside all the same, and the failure says so
        assert query(db_url, "SELECT count(*) FROM meta.quarantine")[0][0] == 2
    else:
        assert staged == 3


def test_a_staging_critical_check_may_quarantine_instead_of_failing(project, db_url):
    """One unreadable timestamp among many: set it aside, stage the rest."""
    project.write_csv("orders.csv", ORDERS.replace("2024-01-03 10:00:00", "2024-13-45 99:00"))
    assert run_pipeline(project.write_config(), db_url)[0] == EXIT_VALIDATION_FAILED
    rules = {"types": {"order_ts": {"type": "timestamptz", "action": "quarantine"}}}
    code, report = run_pipeline(project.write_config(expectations=rules), db_url)
    assert code == EXIT_PASSED
    assert query(db_url, "SELECT failing_value, line_number FROM meta.quarantine WHERE run_id = %s",
                 (report["run_id"],)) == [("2024-13-45 99:00", 4)]
    assert [r[0] for r in query(db_url, "SELECT order_id FROM stg.orders ORDER BY 1")] == ["O1", "O2", "O4", "O5"]


@pytest.mark.parametrize(("rules", "message"), [
    ({"min_rows": {"min": 1, "action": "quarantine"}}, "min_rows.action: min_rows cannot quarantine records"),
    ({"orders": {"non_null": [{"column": "customer_id", "action": "quarantine"}]}},
     "orders.non_null.customer_id.action: quarantine sets source records aside"),
    ({"non_null": [{"column": "customer_id", "action": "drop"}]}, "must be fail or quarantine, got 'drop'"),
])
def test_quarantine_where_it_cannot_work_is_refused(project, db_url, capsys, rules, message):
    project.write_csv("orders.csv", ORDERS)
    code, _ = run_pipeline(project.write_config(expectations=rules), db_url)
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
