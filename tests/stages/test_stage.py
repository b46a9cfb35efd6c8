"""Stage: the validated batch becomes stg.orders, typed, standardised, one row per order_id,
upserted idempotently, with lineage back to the raw event it came from.

Every expected value is worked out by hand from the CSV the test writes (line 1 is the
header; a record spanning several lines starts where its first line is).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query

UTC = dt.timezone.utc
STG_COLUMNS = ("order_id, customer_id, order_at, amount, status, source_event_id, file_sha256, line_number,"
               " staged_run_id, staged_at")


def stage(config: str, db_url: str) -> tuple[int, dict[str, Any]]:
    return run_pipeline(config, db_url, through="stage")


def lines(rows: list[str]) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def sha256_of(project, path: str) -> str:
    return hashlib.sha256((project.root / path).read_bytes()).hexdigest()


def orders(db_url: str) -> list[tuple]:
    return query(db_url, f"SELECT {STG_COLUMNS} FROM stg.orders ORDER BY order_id")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- 1. standardisation -------------------------------------------------------------------


def test_values_are_trimmed_mapped_rounded_and_read_in_the_source_time_zone(project, db_url):
    """Ids are trimmed; status is trimmed, lower-cased and mapped by staging.status_map; an
    empty or blank customer becomes NULL; amount is rounded to amount_scale half away from
    zero (PostgreSQL numeric, not binary floats); naive timestamps are read in
    staging.source_timezone (Europe/London: BST in July, GMT in January) while an explicit
    offset is kept, whatever the database session's own time zone is."""
    project.write_csv("orders.csv", lines([
        " O1 , C1 ,2024-07-01 12:00:00,12.25, Completed ",   # BST: 11:00 UTC
        "O2,,2024-01-15 12:00:00,-12.25,DONE",               # GMT: no shift
        'O3,"",2024-07-01 12:00:00+02,12.35,Shipped',         # explicit offset: 10:00 UTC
        "O4,   ,2024-07-01,7,",                              # midnight BST = 23:00 UTC the day before
        "O5,C5,2024-07-01 12:00:00Z,0.04, CANCELED",         # explicit UTC
    ]))
    config = project.write_config(staging={"source_timezone": "Europe/London", "amount_scale": 1,
                                           "status_map": {"done": "completed", "Canceled": "Cancelled"}})
    # the session time zone of the database must not leak into how naive timestamps are read
    with psycopg.connect(db_url, autocommit=True) as conn:
        dbname = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(sql.SQL("ALTER DATABASE {} SET timezone = 'Asia/Tokyo'").format(sql.Identifier(dbname)))
    code, report = stage(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    rows = query(db_url, "SELECT order_id, customer_id, order_at, amount::text, status FROM stg.orders"
                         " ORDER BY order_id")
    assert rows == [
        ("O1", "C1", utc(2024, 7, 1, 11, 0), "12.3", "completed"),
        ("O2", None, utc(2024, 1, 15, 12, 0), "-12.3", "completed"),
        ("O3", None, utc(2024, 7, 1, 10, 0), "12.4", "shipped"),
        ("O4", None, utc(2024, 6, 30, 23, 0), "7.0", None),
        ("O5", "C5", utc(2024, 7, 1, 12, 0), "0.0", "cancelled"),
    ]


def test_mapped_source_columns_and_no_status(project, db_url):
    """Canonical columns read the source columns the config maps them to; with status: null
    orders are staged without a status."""
    project.write_csv("orders.csv", "Invoice,Who,When,Price\nA1,K1,2024-01-01 09:30:00,3.456\n")
    config = project.write_config(columns={"order_id": "Invoice", "customer_id": "Who", "order_ts": "When",
                                           "amount": "Price", "status": None})
    code, report = stage(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    assert query(db_url, "SELECT order_id, customer_id, order_at, amount::text, status FROM stg.orders") == [
        ("A1", "K1", utc(2024, 1, 1, 9, 30), "3.46", None)]


# --- 2. one row per order -------------------------------------------------------------------


def test_one_row_per_order_and_exact_repeats_are_collapsed(project, db_url):
    """Records repeated verbatim, in one file and across files, stage as one order; the row's
    lineage points at the latest copy (the highest raw event)."""
    repeat = "O1,C1,2024-01-01 10:00:00,10.00,completed"
    project.write_csv("a.csv", lines([repeat, "O2,C2,2024-01-02 10:00:00,20.00,completed", repeat]))  # O1: 2, 4
    project.write_csv("b.csv", lines(["O3,C3,2024-01-03 10:00:00,30.00,completed", repeat]))           # O1: 3
    config = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"],
                                  expectations={"unique": ["order_id"], "exact_duplicates": {"severity": "warn"}})
    code, report = stage(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    assert report["warnings"] == ["some records are exact repeats of another record"]
    assert query(db_url, "SELECT order_id, amount, count(*) OVER () FROM stg.orders ORDER BY order_id") == [
        ("O1", Decimal("10.00"), 3), ("O2", Decimal("20.00"), 3), ("O3", Decimal("30.00"), 3)]
    assert query(db_url, "SELECT file_sha256, line_number FROM stg.orders WHERE order_id = 'O1'") == [
        (sha256_of(project, "data/raw/b.csv"), 3)]


# --- 3. idempotence -------------------------------------------------------------------------


def test_rerunning_the_same_inputs_changes_nothing(project, db_url):
    """A second run over the same files re-validates and re-stages, but every row of
    stg.orders is left exactly as the first run wrote it (same staged_run_id and staged_at)."""
    project.write_csv("orders.csv", lines([
        "O1, C1 ,2024-01-01 10:00:00,10.005,Completed",
        "O2,,2024-01-02 10:00:00,20,done",
        "O2,,2024-01-02 10:00:00,20,done",
    ]))
    config = project.write_config(staging={"source_timezone": "Europe/London", "amount_scale": 2,
                                           "status_map": {"done": "completed"}})
    code1, report1 = stage(config, db_url)
    first = orders(db_url)
    code2, report2 = stage(config, db_url)
    assert code1 == code2 == EXIT_PASSED
    assert report1["run_id"] != report2["run_id"]
    assert orders(db_url) == first
    assert {row[8] for row in first} == {report1["run_id"]}
    assert [row[:5] for row in first] == [
        ("O1", "C1", utc(2024, 1, 1, 10, 0), Decimal("10.01"), "completed"),
        ("O2", None, utc(2024, 1, 2, 10, 0), Decimal("20.00"), "completed"),
    ]
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(3,)]


# --- 4. new and corrected files -------------------------------------------------------------


def test_a_new_file_adds_orders_and_a_corrected_file_updates_only_the_changed_order(project, db_url):
    """Run 1 stages v1.csv. Run 2 also names new.csv: its orders are added, the rest is
    untouched. Run 3 names v2.csv (v1.csv corrected: O2's amount) instead of v1.csv: O2 gets
    the new amount; O1 and O3 keep their values but their lineage moves to v2.csv (v1.csv
    is no longer in the batch); O4, still from new.csv, keeps its row untouched."""
    v1 = project.write_csv("v1.csv", lines([
        "O1,C1,2024-01-01 10:00:00,10.00,completed",
        "O2,C2,2024-01-02 10:00:00,20.00,completed",
        "O3,C3,2024-01-03 10:00:00,30.00,completed",
    ]))
    new = project.write_csv("new.csv", lines(["O4,C4,2024-01-04 10:00:00,40.00,completed"]))
    v2 = project.write_csv("v2.csv", lines([
        "O1,C1,2024-01-01 10:00:00,10.00,completed",
        "O2,C2,2024-01-02 10:00:00,25.00,completed",   # line 3: corrected
        "O3,C3,2024-01-03 10:00:00,30.00,completed",
    ]))
    expectations = {"unique": ["order_id"]}
    code1, run1 = stage(project.write_config(paths=[v1], expectations=expectations), db_url)
    assert code1 == EXIT_PASSED, run1["errors"]
    after1 = {r[0]: r for r in orders(db_url)}

    code2, run2 = stage(project.write_config(paths=[v1, new], expectations=expectations), db_url)
    assert code2 == EXIT_PASSED, run2["errors"]
    after2 = {r[0]: r for r in orders(db_url)}
    assert sorted(after2) == ["O1", "O2", "O3", "O4"]
    assert all(after2[k] == after1[k] for k in after1)
    assert (after2["O4"][3], after2["O4"][6], after2["O4"][7], after2["O4"][8]) == (
        Decimal("40.00"), sha256_of(project, new), 2, run2["run_id"])

    code3, run3 = stage(project.write_config(paths=[v2, new], expectations=expectations), db_url)
    assert code3 == EXIT_PASSED, run3["errors"]
    after3 = {r[0]: r for r in orders(db_url)}
    assert (after3["O2"][3], after3["O2"][6], after3["O2"][7], after3["O2"][8]) == (
        Decimal("25.00"), sha256_of(project, v2), 3, run3["run_id"])
    assert [k for k in sorted(after3) if after3[k][8] == run3["run_id"]] == ["O1", "O2", "O3"]
    for key, line in (("O1", 2), ("O3", 4)):
        assert after3[key][1:5] == after2[key][1:5]  # same values
        assert (after3[key][6], after3[key][7]) == (sha256_of(project, v2), line)  # lineage in the batch
    assert after3["O4"] == after2["O4"]


# --- 5. rejected then corrected -------------------------------------------------------------


def test_a_rejected_file_is_kept_raw_but_only_the_corrected_file_is_staged(project, db_url):
    """Run 1 names bad.csv, which fails validation: exit 1, nothing staged. Run 2 names
    fixed.csv instead and passes: raw.raw_events still holds bad.csv's events (immutable
    history) but stg.orders holds only fixed.csv's orders."""
    bad = project.write_csv("bad.csv", lines([
        "O1,C1,2024-01-01 10:00:00,10.00,completed",
        "O2,C2,2024-01-02 10:00:00,-20.00,completed",
        "O9,C9,2024-01-09 10:00:00,90.00,completed",     # dropped from the corrected file
    ]))
    fixed = project.write_csv("fixed.csv", lines([
        "O1,C1,2024-01-01 10:00:00,10.00,completed",
        "O2,C2,2024-01-02 10:00:00,20.00,completed",
    ]))
    expectations = {"ranges": {"amount": {"min": 0}}}
    code1, run1 = stage(project.write_config(paths=bad, expectations=expectations), db_url)
    assert code1 == EXIT_VALIDATION_FAILED and run1["errors"] == ["amount has negative values"]
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(0,)]

    code2, run2 = stage(project.write_config(paths=fixed, expectations=expectations), db_url)
    assert code2 == EXIT_PASSED, run2["errors"]
    assert query(db_url, "SELECT file_path, count(*) FROM raw.raw_events GROUP BY file_path ORDER BY 1") == [
        (bad, 3), (fixed, 2)]
    assert query(db_url, "SELECT order_id, amount, file_sha256, staged_run_id FROM stg.orders ORDER BY 1") == [
        ("O1", Decimal("10.00"), sha256_of(project, fixed), run2["run_id"]),
        ("O2", Decimal("20.00"), sha256_of(project, fixed), run2["run_id"]),
    ]


# --- 6. lineage -----------------------------------------------------------------------------


def test_lineage_points_at_the_raw_event(project, db_url):
    """file_sha256, line_number and source_event_id of every staged order point at the raw
    event it was typed from; a quoted multi-line field moves the next record's line down."""
    path = project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01 10:00:00,1.00,completed",            # line 2
        'O2,C2,2024-01-02 10:00:00,2.00,"two\nline status"',   # lines 3-4
        " O3 ,C3,2024-01-03 10:00:00,3.00,completed",          # line 5
    ]))
    code, report = stage(project.write_config(), db_url)
    assert code == EXIT_PASSED, report["errors"]
    sha = sha256_of(project, path)
    assert query(db_url, "SELECT order_id, file_sha256, line_number, status FROM stg.orders ORDER BY 1") == [
        ("O1", sha, 2, "completed"), ("O2", sha, 3, "two\nline status"), ("O3", sha, 5, "completed")]
    # the raw event behind each row: same file, same line, the same order id as received
    assert query(db_url, "SELECT o.order_id, e.payload ->> 'order_id', e.file_path"
                         " FROM stg.orders AS o JOIN raw.raw_events AS e ON e.event_id = o.source_event_id"
                         " WHERE (e.file_sha256, e.line_number) = (o.file_sha256, o.line_number)"
                         " ORDER BY 1") == [("O1", "O1", path), ("O2", "O2", path), ("O3", " O3 ", path)]


def test_orders_of_a_file_no_longer_named_leave_staging(project, db_factory):
    """stg.orders holds exactly the batch: dropping a file from the config removes its
    orders from staging (its raw events stay), and a database that only ever saw the
    second config ends with the same orders, features and feature_version."""
    project.write_csv("a.csv", lines(["O1,C1,2024-01-01 10:00:00,10.00,completed",
                                      "O2,C1,2024-01-02 10:00:00,20.00,completed"]))
    project.write_csv("b.csv", lines(["O3,C1,2024-01-03 10:00:00,30.00,completed"]))
    both = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"], name="both.yaml")
    only_b = project.write_config(paths=["data/raw/b.csv"], name="only_b.yaml")
    # the same pipeline config text for both databases' last run
    history, fresh = db_factory(), db_factory()
    assert run_pipeline(both, history)[0] == EXIT_PASSED
    code, last = run_pipeline(only_b, history)
    assert code == EXIT_PASSED
    assert [r[0] for r in orders(history)] == ["O3"]
    assert query(history, "SELECT count(*) FROM raw.raw_events") == [(3,)]  # raw history kept
    assert {s["stage"]: s["rows"] for s in last["stages"]}["stage"] == 2  # two orders removed
    code, direct = run_pipeline(only_b, fresh)
    assert code == EXIT_PASSED
    features = "SELECT * FROM feats.customer_features ORDER BY customer_id, feature_time"
    assert query(history, features) == query(fresh, features) != []
    # the staged rows and their lineage (file, line) too; event ids differ between databases
    staged = ("SELECT order_id, customer_id, order_at, amount, status, file_sha256, line_number"
              " FROM stg.orders ORDER BY order_id")
    assert query(history, staged) == query(fresh, staged)
    assert last["feature_version"] == direct["feature_version"]


def test_huge_amounts_flow_through_to_features(project, db_url):
    """A valid number far beyond bigint (1e20) is staged and summed exactly."""
    project.write_csv("orders.csv", lines(["O1,C1,2024-01-01 10:00:00,100000000000000000000,completed",
                                           "O2,C1,2024-01-02 10:00:00,0.01,completed"]))
    assert run_pipeline(project.write_config(), db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT revenue_7d FROM feats.customer_features ORDER BY feature_time") == [
        (Decimal("100000000000000000000.00"),), (Decimal("100000000000000000000.01"),)]


def test_the_record_latest_in_the_batch_wins_whatever_the_ingest_order(project, db_factory):
    """With unique relaxed to a warning, an order with two different records takes the one
    latest in the batch (the file named last, then the last line), not the one ingested
    last: ingesting y.csv before x.csv changes nothing."""
    project.write_csv("x.csv", lines(["O1,C1,2024-01-01 10:00:00,1.00,completed"]))
    project.write_csv("y.csv", lines(["O1,C1,2024-01-01 10:00:00,9.00,completed"]))
    expectations = {"unique": [{"column": "order_id", "severity": "warn"}]}
    both = project.write_config(paths=["data/raw/x.csv", "data/raw/y.csv"], expectations=expectations)
    y_first = project.write_config(paths=["data/raw/y.csv"], expectations=expectations, name="y.yaml")
    in_order, reversed_order = db_factory(), db_factory()
    assert run_pipeline(both, in_order)[0] == EXIT_PASSED
    assert run_pipeline(y_first, reversed_order, through="ingest")[0] == EXIT_PASSED
    assert run_pipeline(both, reversed_order)[0] == EXIT_PASSED
    staged = "SELECT order_id, amount, file_sha256, line_number FROM stg.orders"
    assert query(in_order, staged) == query(reversed_order, staged) == [
        ("O1", Decimal("9.00"), sha256_of(project, "data/raw/y.csv"), 2)]


@pytest.mark.parametrize(("date_order", "server_style", "expected"), [
    ("MDY", "ISO, DMY", utc(2024, 1, 2)),
    ("DMY", "ISO, MDY", utc(2024, 2, 1)),
])
def test_ambiguous_dates_follow_the_configured_order_not_the_server(
    project, db_url, date_order, server_style, expected
):
    """01/02/2024 is read in staging.date_order (MDY by default) even when the database's
    DateStyle says the opposite; a date impossible in that order fails validation."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET datestyle = {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(server_style)))
    project.write_csv("orders.csv", lines(["O1,C1,01/02/2024,1.00,completed"]))
    config = project.write_config(staging={"date_order": date_order})
    assert stage(config, db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT order_at FROM stg.orders") == [(expected,)]
    project.write_csv("bad.csv", lines(["O1,C1,13/31/2024,1.00,completed"]))  # no 13th month, no 31st month
    code, report = stage(project.write_config(paths="data/raw/bad.csv", staging={"date_order": date_order},
                                              name="bad.yaml"), db_url)
    assert code == EXIT_VALIDATION_FAILED and "order_ts has invalid timestamps" in report["errors"]
