"""Validate: every expectation is counted over the batch, failures are sampled with lineage,
thresholds and severities decide the gate, and broken expectations are refused up front.

Every expected count below is worked out by hand from the CSV written in the test (line 1 is
the header, so the Nth record of a file without embedded line breaks is on line N + 1), or,
for the real UCI data, taken from SOURCE.md (counted independently with Python's csv module).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import assert_refused_before_data_work, HEADER, REPO_ROOT, UCI_DIR, query

ORDERS = "data/raw/orders.csv"


def validate(config: str, db_url: str, through: str = "validate") -> tuple[int, dict[str, Any]]:
    return run_pipeline(config, db_url, through=through)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


def samples(check: dict[str, Any]) -> list[tuple[str, int, str | None]]:
    return [(s["file_path"], s["line_number"], s["value"]) for s in check["samples"]]


def lines(rows: list[str]) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


# --- 1. each rule kind, with hand-known offenders -------------------------------------------


def test_non_null_counts_empty_and_whitespace_only_fields(project, db_url):
    """non_null flags an unquoted empty field (NULL), a quoted empty one and a spaces-only one,
    and nothing else; samples name each offending line with the value as received."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1.00,completed",     # line 2: ok
        "O2,,2024-01-01,1.00,completed",       # line 3: unquoted empty -> NULL
        'O3,"",2024-01-01,1.00,completed',     # line 4: quoted empty -> ''
        "O4,   ,2024-01-01,1.00,completed",    # line 5: spaces only
        "O5, C5 ,2024-01-01,1.00,completed",   # line 6: padded but not empty: ok
    ]))
    code, report = validate(project.write_config(expectations={"non_null": ["customer_id"]}), db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["non_null.customer_id"]
    assert (check["status"], check["failing_count"], check["row_count"]) == ("fail", 3, 5)
    assert check["failing_percent"] == 60.0
    assert samples(check) == [(ORDERS, 3, None), (ORDERS, 4, ""), (ORDERS, 5, "   ")]
    assert report["errors"] == ["customer_id has null values"]


def test_non_null_treats_a_tab_only_field_as_empty(project, db_url):
    """A field holding only whitespace other than spaces (a tab) is as empty as one of spaces."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1.00,completed",
        "O2,\t,2024-01-01,1.00,completed",     # line 3: a tab only
        "O3,\t \t,2024-01-01,1.00,completed",  # line 4: tabs and a space
    ]))
    code, report = validate(project.write_config(expectations={"non_null": ["customer_id"]}), db_url)
    check = checks(report)["non_null.customer_id"]
    assert check["failing_count"] == 2, "tab-only customer_id fields were not counted as empty"
    assert [s["line_number"] for s in check["samples"]] == [3, 4]
    assert code == EXIT_VALIDATION_FAILED


def test_unique_counts_conflicting_records_and_exact_duplicates_counts_repeats(project, db_url):
    """unique counts every record of an order_id that carries more than one distinct record
    (ids compared trimmed); a verbatim repeat is no conflict for unique but each extra copy
    counts for exact_duplicates."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1.00,completed",     # line 2: O1, first content
        "O2,C2,2024-01-01,2.00,completed",     # line 3: O2 repeated verbatim below
        "O1,C1,2024-01-01,9.99,completed",     # line 4: O1, other content -> conflict
        "O2,C2,2024-01-01,2.00,completed",     # line 5: exact repeat of line 3
        "O2,C2,2024-01-01,2.00,completed",     # line 6: exact repeat of line 3
        " O3 ,C3,2024-01-01,3.00,completed",   # line 7: O3 once padded...
        "O3,C3,2024-01-01,3.00,completed",     # line 8: ...once not: different records
        "O4,C4,2024-01-01,4.00,completed",     # line 9: unique
    ]))
    config = project.write_config(expectations={"unique": ["order_id"], "exact_duplicates": None})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    by_id = checks(report)
    unique = by_id["unique.order_id"]
    # O1: lines 2 and 4; O3: lines 7 and 8. O2's three identical copies are no conflict.
    assert (unique["status"], unique["failing_count"]) == ("fail", 4)
    assert samples(unique) == [(ORDERS, 2, "O1"), (ORDERS, 4, "O1"), (ORDERS, 7, " O3 "), (ORDERS, 8, "O3")]
    repeats = by_id["exact_duplicates"]
    # the second and third copies of O2
    assert (repeats["status"], repeats["failing_count"]) == ("fail", 2)
    assert [(s["file_path"], s["line_number"]) for s in repeats["samples"]] == [(ORDERS, 5), (ORDERS, 6)]
    assert sorted(report["errors"]) == ["order_id has duplicate values",
                                        "some records are exact repeats of another record"]


def test_exact_repeats_alone_pass_unique(project, db_url):
    """Records repeated verbatim (even across two files) do not fail unique on their own."""
    row = "O1,C1,2024-01-01,1.00,completed"
    project.write_csv("a.csv", lines([row, row]))
    project.write_csv("b.csv", lines([row, "O2,C2,2024-01-01,1.00,completed"]))
    config = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"],
                                  expectations={"unique": ["order_id"], "exact_duplicates": {"severity": "warn"}})
    code, report = validate(config, db_url)
    assert code == EXIT_PASSED
    by_id = checks(report)
    assert (by_id["unique.order_id"]["status"], by_id["unique.order_id"]["failing_count"]) == ("pass", 0)
    assert (by_id["exact_duplicates"]["status"], by_id["exact_duplicates"]["failing_count"]) == ("warn", 2)
    assert [(s["file_path"], s["line_number"]) for s in by_id["exact_duplicates"]["samples"]] == [
        ("data/raw/a.csv", 3), ("data/raw/b.csv", 2)]


TS_ROWS = [
    # (order_ts, amount, offends order_ts, offends amount)
    ("2024-01-01 10:00:00", "12.50", False, False),      # line 2
    ("not a date", "1", True, False),                    # line 3
    ("2024-02-30 10:00:00", "1", True, False),           # line 4: no 30 February
    ("now", "1", True, False),                           # line 5
    ("today", "1", True, False),                         # line 6
    ("epoch", "1", True, False),                         # line 7
    ("infinity", "1", True, False),                      # line 8
    ("-infinity", "1", True, False),                     # line 9
    (" Now ", "1", True, False),                         # line 10: the word, padded, capitalised
    ("2024-02-29 23:59:59", "abc", False, True),         # line 11: leap day is fine
    ("2024-07-01 12:00:00+02", '"12,50"', False, True),  # line 12: decimal comma
    ("2024-01-01", "NaN", False, True),                  # line 13
    ("2024-01-01", "Infinity", False, True),             # line 14
    ("2024-01-01", "-3", False, False),                  # line 15: negative is a number
    ("2024-01-01", " 7 ", False, False),                 # line 16: padded is a number
]


def test_types_reject_invalid_timestamps_special_words_and_non_numbers(project, db_url):
    """types: timestamptz refuses text, impossible dates and PostgreSQL's special words (now,
    today, epoch, infinity, -infinity); numeric refuses text, a decimal comma, NaN, Infinity."""
    project.write_csv("orders.csv", lines([f"O{i},C{i},{ts},{amount},completed"
                                           for i, (ts, amount, _, _) in enumerate(TS_ROWS, start=1)]))
    config = project.write_config(expectations={"types": {"order_ts": "timestamptz", "amount": "numeric"}})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    by_id = checks(report)
    bad_ts = [(ORDERS, line, ts) for line, (ts, _, bad, _) in enumerate(TS_ROWS, start=2) if bad]
    bad_amount = [(ORDERS, line, amount.strip('"')) for line, (_, amount, _, bad) in enumerate(TS_ROWS, start=2)
                  if bad]
    assert len(bad_ts) == 8 and len(bad_amount) == 4
    assert (by_id["types.order_ts"]["status"], by_id["types.order_ts"]["failing_count"]) == ("fail", 8)
    assert samples(by_id["types.order_ts"]) == bad_ts
    assert (by_id["types.amount"]["status"], by_id["types.amount"]["failing_count"]) == ("fail", 4)
    assert samples(by_id["types.amount"]) == bad_amount
    assert sorted(report["errors"]) == ["amount has invalid numbers", "order_ts has invalid timestamps"]


OTHER_TYPES_HEADER = "order_id,customer_id,order_ts,amount,status,qty,big,flag,day,local_ts\n"


def test_types_integer_bigint_boolean_date_timestamp(project, db_url):
    """The other types refuse what PostgreSQL cannot read as that type (and, for date and
    timestamp, the special words too); NULL is left to non_null."""
    extra = [
        "12,99999999999,true,2024-01-31,2024-01-01 10:00:00",      # line 2: all ok
        "12.5,x,maybe,2024-02-30,2024-01-01 25:00:00",             # line 3: all bad
        "99999999999,1,no,today,epoch",                           # line 4: int overflow, today, epoch
        " 7 ,-5, yes ,2024-02-29,2024-02-29 23:59:59",             # line 5: all ok
        ",,,,",                                                    # line 6: nulls, not judged
    ]
    project.write_csv("orders.csv", OTHER_TYPES_HEADER + "".join(
        f"O{i},C{i},2024-01-01,1,completed,{rest}\n" for i, rest in enumerate(extra, start=1)))
    config = project.write_config(expectations={"types": {
        "qty": "integer", "big": "bigint", "flag": "boolean", "day": "date", "local_ts": "timestamp"}})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    by_id = checks(report)
    assert samples(by_id["types.qty"]) == [(ORDERS, 3, "12.5"), (ORDERS, 4, "99999999999")]
    assert samples(by_id["types.big"]) == [(ORDERS, 3, "x")]
    assert samples(by_id["types.flag"]) == [(ORDERS, 3, "maybe")]
    assert samples(by_id["types.day"]) == [(ORDERS, 3, "2024-02-30"), (ORDERS, 4, "today")]
    assert samples(by_id["types.local_ts"]) == [(ORDERS, 3, "2024-01-01 25:00:00"), (ORDERS, 4, "epoch")]
    assert [by_id[f"types.{c}"]["failing_count"] for c in ("qty", "big", "flag", "day", "local_ts")] == [2, 1, 1, 2, 2]
    assert sorted(report["errors"]) == ["big has invalid numbers", "day has invalid dates",
                                        "flag has invalid boolean values", "local_ts has invalid timestamps",
                                        "qty has invalid numbers"]


def test_types_text_accepts_every_value(project, db_url):
    """Every value is valid text, blank ones included (blankness is non_null's business)."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",
        'O2,"",2024-01-01,1,completed',        # line 3: quoted empty
        "O3,   ,2024-01-01,1,completed",       # line 4: spaces only
        "O4,,2024-01-01,1,completed",          # line 5: NULL
    ]))
    code, report = validate(project.write_config(expectations={"types": {"customer_id": "text"}}), db_url)
    check = checks(report)["types.customer_id"]
    assert (check["status"], check["failing_count"], samples(check)) == ("pass", 0, [])
    assert code == EXIT_PASSED


def test_types_reject_special_words_with_a_time_or_wrapped_in_tabs(project, db_url):
    """The special words are refused in every spelling PostgreSQL accepts: with a time of day
    ('today 10:00' is today's date, read from the wall clock at staging) or surrounded by a
    tab ('\\tnow', 'infinity\\t', '\\tNaN'); otherwise they would be staged as real values."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01 10:00:00,1.00,completed",   # line 2: ok
        "O2,C2,today 10:00,1.00,completed",           # line 3: wall-clock date
        "O3,C3,yesterday 12:00:00,1.00,completed",    # line 4: wall-clock date
        "O4,C4,\tnow,1.00,completed",                 # line 5: wall clock
        "O5,C5,infinity\t,1.00,completed",            # line 6: not a time
        "O6,C6,2024-01-01,\tNaN,completed",           # line 7: not a number
        "O7,C7,2024-01-01,Infinity\t,completed",      # line 8: not a number
    ]))
    config = project.write_config(expectations={"types": {"order_ts": "timestamptz", "amount": "numeric"}})
    code, report = validate(config, db_url)
    by_id = checks(report)
    assert [s["line_number"] for s in by_id["types.order_ts"]["samples"]] == [3, 4, 5, 6]
    assert by_id["types.order_ts"]["failing_count"] == 4
    assert [s["line_number"] for s in by_id["types.amount"]["samples"]] == [7, 8]
    assert by_id["types.amount"]["failing_count"] == 2
    assert code == EXIT_VALIDATION_FAILED


def test_ranges_flag_values_below_min_and_above_max(project, db_url):
    """ranges: values below min and above max offend, the bounds themselves do not, and a
    value that is not a number is left to the types rule."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,0,completed",        # line 2: = min, ok
        "O2,C2,2024-01-01,-0.01,completed",    # line 3: below min
        "O3,C3,2024-01-01,100.00,completed",   # line 4: = max, ok
        "O4,C4,2024-01-01,100.01,completed",   # line 5: above max
        "O5,C5,2024-01-01,-500,completed",     # line 6: below min
        "O6,C6,2024-01-01,50,completed",       # line 7: ok
        "O7,C7,2024-01-01,,completed",         # line 8: null, not judged
    ]))
    config = project.write_config(expectations={"ranges": {"amount": {"min": 0, "max": 100}}})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["ranges.amount"]
    assert (check["status"], check["failing_count"]) == ("fail", 3)
    assert samples(check) == [(ORDERS, 3, "-0.01"), (ORDERS, 5, "100.01"), (ORDERS, 6, "-500")]
    assert report["errors"] == ["amount has negative values or values above 100"]


def test_ranges_with_only_a_max(project, db_url):
    """A range with only max flags values above it and nothing below."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,-1000,completed",    # line 2: no min: ok
        "O2,C2,2024-01-01,10,completed",       # line 3: = max: ok
        "O3,C3,2024-01-01,10.5,completed",     # line 4: above
    ]))
    config = project.write_config(expectations={"ranges": {"amount": {"max": 10}}})
    code, report = validate(config, db_url)
    check = checks(report)["ranges.amount"]
    assert (check["failing_count"], samples(check)) == (1, [(ORDERS, 4, "10.5")])
    assert code == EXIT_VALIDATION_FAILED and report["errors"] == ["amount has values above 10"]


def test_allowed_values_normalise_status_and_accept_mapped_variants(project, db_url):
    """allowed_values on the status column compares trimmed, lower-cased values and accepts
    the variants staging.status_map maps (matched the same way); anything else offends."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",        # line 2: ok
        "O2,C2,2024-01-01,1, Completed ",      # line 3: ok once trimmed and lower-cased
        "O3,C3,2024-01-01,1,CANCELLED",        # line 4: ok
        "O4,C4,2024-01-01,1,done",             # line 5: ok, a mapped variant
        "O5,C5,2024-01-01,1, Canceled",        # line 6: ok, a mapped variant in another case
        "O6,C6,2024-01-01,1,shipped",          # line 7: not allowed
        "O7,C7,2024-01-01,1,complete d",       # line 8: not allowed
        "O8,C8,2024-01-01,1,",                 # line 9: null is left to non_null
    ]))
    config = project.write_config(
        expectations={"allowed_values": {"status": ["Completed", "cancelled"]}},
        staging={"status_map": {"done": "completed", "CANCELED": "cancelled"}},
    )
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["allowed_values.status"]
    assert (check["status"], check["failing_count"]) == ("fail", 2)
    assert samples(check) == [(ORDERS, 7, "shipped"), (ORDERS, 8, "complete d")]


def test_allowed_values_refuse_a_variant_mapped_to_a_status_that_is_not_allowed(project, db_url):
    """A status_map variant is accepted only because staging turns it into a standard
    status; a variant mapped to a status outside allowed_values must still offend, or
    stg.orders would hold a status the expectations forbid."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",        # line 2: ok
        "O2,C2,2024-01-01,1,done",             # line 3: staged as 'shipped', not allowed
    ]))
    config = project.write_config(expectations={"allowed_values": {"status": ["completed"]}},
                                  staging={"status_map": {"done": "shipped"}})
    code, report = validate(config, db_url, through="stage")
    check = checks(report)["allowed_values.status"]
    assert (check["status"], check["failing_count"], samples(check)) == ("fail", 1, [(ORDERS, 3, "done")])
    assert code == EXIT_VALIDATION_FAILED
    assert query(db_url, "SELECT count(*) FROM stg.orders WHERE status = 'shipped'") == [(0,)]


def test_max_decimal_places_ignores_trailing_zeros(project, db_url):
    """max_decimal_places: 12.345 has 3 places and fails for 2; 12.340 is 12.34 and passes."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,12.34,completed",    # line 2: ok
        "O2,C2,2024-01-01,12.345,completed",   # line 3: 3 places
        "O3,C3,2024-01-01,12.340,completed",   # line 4: ok (trailing zero)
        "O4,C4,2024-01-01,12,completed",       # line 5: ok
        "O5,C5,2024-01-01,0.001,completed",    # line 6: 3 places
    ]))
    config = project.write_config(expectations={"max_decimal_places": {"amount": 2}})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["max_decimal_places.amount"]
    assert (check["status"], check["failing_count"]) == ("fail", 2)
    assert samples(check) == [(ORDERS, 3, "12.345"), (ORDERS, 6, "0.001")]
    assert report["errors"] == ["amount has more than 2 decimal places"]


def test_matches_flags_values_not_matching_the_pattern(project, db_url):
    """matches: every non-null value that does not match the regular expression offends."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",        # line 2: ok
        "O1234,C2,2024-01-01,1,completed",     # line 3: ok
        "X9,C3,2024-01-01,1,completed",        # line 4: wrong prefix
        "o5,C4,2024-01-01,1,completed",        # line 5: lower case
        "O6a,C5,2024-01-01,1,completed",       # line 6: trailing letter
    ]))
    config = project.write_config(expectations={"matches": {"order_id": "^O[0-9]+$"}})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["matches.order_id"]
    assert (check["status"], check["failing_count"]) == ("fail", 3)
    assert samples(check) == [(ORDERS, 4, "X9"), (ORDERS, 5, "o5"), (ORDERS, 6, "O6a")]
    assert report["errors"] == ["order_id has values not matching ^O[0-9]+$"]


def test_min_rows_counts_rows_of_the_whole_batch(project, db_url):
    """min_rows compares the batch's row count (two files, 4 rows) with the minimum; the
    failing count is how many rows are missing. Three runs over the same batch."""
    project.write_csv("a.csv", lines(["O1,C1,2024-01-01,1,completed", "O2,C2,2024-01-01,1,completed"]))
    project.write_csv("b.csv", lines(["O3,C3,2024-01-01,1,completed", "O4,C4,2024-01-01,1,completed"]))
    for minimum, status, failing in [(3, "pass", 0), (4, "pass", 0), (6, "fail", 2)]:
        config = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"], expectations={"min_rows": minimum},
                                      name=f"min{minimum}.yaml")
        code, report = validate(config, db_url)
        check = checks(report)["min_rows"]
        assert (check["status"], check["failing_count"], check["row_count"]) == (status, failing, 4), minimum
        assert code == (EXIT_PASSED if status == "pass" else EXIT_VALIDATION_FAILED), minimum
        assert report["errors"] == ([] if status == "pass" else [f"fewer than {minimum} rows"])


def test_a_file_lacking_a_required_column_fails_validation_naming_it(project, db_url):
    """A file without a required column is a validation failure that names the column, with
    every record of that file as an offender, not a crash; other rules on that column (here
    non_null.amount) count its records as missing too, and nothing is staged."""
    project.write_csv("a.csv", lines(["O1,C1,2024-01-01,1.00,completed"]))
    project.write_csv("b.csv", "order_id,customer_id,order_ts,status\nO2,C2,2024-01-01,completed\n"
                               "O3,C3,2024-01-01,completed\n")
    config = project.write_config(paths=["data/raw/a.csv", "data/raw/b.csv"],
                                  expectations={"required_columns": ["order_id", "amount"], "non_null": ["amount"]})
    code, report = validate(config, db_url, through="stage")
    assert code == EXIT_VALIDATION_FAILED
    assert report["validation_passed"] is False
    by_id = checks(report)
    required = by_id["required_columns.amount"]
    assert (required["status"], required["failing_count"]) == ("fail", 2)
    assert [(s["file_path"], s["line_number"]) for s in required["samples"]] == [
        ("data/raw/b.csv", 2), ("data/raw/b.csv", 3)]
    assert by_id["non_null.amount"]["failing_count"] == 2
    assert by_id["required_columns.order_id"]["status"] == "pass"
    assert "amount is missing from the source" in report["errors"]
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(0,)]


# --- 2. samples: file path, physical line, value ------------------------------------------


def test_samples_name_the_file_and_physical_line_and_respect_the_sample_size(project, db_url):
    """Samples carry the file as named in the config and the physical line where the record
    starts (quoted line breaks push later records down); at most failure_sample_size of them
    are reported while the history keeps every offender."""
    project.write_csv("first.csv", lines([
        "O1,C1,2024-01-01,-1.00,completed",                 # line 2: offends
        'O2,C2,2024-01-01,1.00,"multi\nline\nstatus"',      # lines 3-5
        "O3,C3,2024-01-01,-2.50,completed",                 # line 6: offends
    ]))
    project.write_csv("second.csv", lines([
        "O4,C4,2024-01-01,4.00,completed",                  # line 2
        "O5,C5,2024-01-01,-3,completed",                    # line 3: offends
    ]))
    config = project.write_config(paths=["data/raw/first.csv", "data/raw/second.csv"],
                                  expectations={"ranges": {"amount": {"min": 0}}},
                                  validation={"failure_sample_size": 2, "failure_history_cap": 1000})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["ranges.amount"]
    assert check["failing_count"] == 3
    assert samples(check) == [("data/raw/first.csv", 2, "-1.00"), ("data/raw/first.csv", 6, "-2.50")]
    history = query(db_url, "SELECT file_path, line_number, failing_value, payload ->> 'order_id'"
                            " FROM meta.validation_failures WHERE run_id = %s AND check_id = 'ranges.amount'"
                            " ORDER BY failure_id", (report["run_id"],))
    assert history == [("data/raw/first.csv", 2, "-1.00", "O1"), ("data/raw/first.csv", 6, "-2.50", "O3"),
                       ("data/raw/second.csv", 3, "-3", "O5")]
    # the history's event_id is the raw event of that line
    assert query(db_url, "SELECT count(*) FROM meta.validation_failures AS f"
                         " JOIN raw.raw_events AS e USING (event_id)"
                         " WHERE f.run_id = %s AND (e.file_path, e.line_number) = (f.file_path, f.line_number)",
                 (report["run_id"],)) == [(3,)]


# --- 3. severity and thresholds -------------------------------------------------------------

TWO_NULL_CUSTOMERS = [f"O{i},{'' if i <= 2 else f'C{i}'},2024-01-01,1.00,completed" for i in range(1, 11)]


def test_warn_severity_reports_but_passes_and_stages(project, db_url):
    """A failing warn-severity rule: the run passes, the data is staged, the check's status is
    warn and its message is in report['warnings'], not in report['errors']."""
    project.write_csv("orders.csv", lines(TWO_NULL_CUSTOMERS))
    config = project.write_config(expectations={"non_null": [{"column": "customer_id", "severity": "warn"}]})
    code, report = validate(config, db_url, through="stage")
    assert code == EXIT_PASSED
    assert report["validation_passed"] is True and report["errors"] == []
    assert report["warnings"] == ["customer_id has null values"]
    check = checks(report)["non_null.customer_id"]
    assert (check["severity"], check["status"], check["failing_count"]) == ("warn", "warn", 2)
    assert [s["line_number"] for s in check["samples"]] == [2, 3]
    assert query(db_url, "SELECT count(*), count(customer_id) FROM stg.orders") == [(10, 8)]
    assert query(db_url, "SELECT status FROM meta.validation_results WHERE check_id = 'non_null.customer_id'") == [
        ("warn",)]


@pytest.mark.parametrize(("rule", "nulls", "code", "status"), [
    # 2 failures, error_if '>2': no error; the default warn_if '>0' makes it a warning
    pytest.param({"error_if": ">2"}, 2, EXIT_PASSED, "warn", id="error_if>2-2-nulls-warn"),
    # ... and with warn_if '>5' it is not even a warning
    pytest.param({"error_if": ">2", "warn_if": ">5"}, 2, EXIT_PASSED, "pass", id="error_if>2,warn_if>5-2-nulls-pass"),
    pytest.param({"error_if": ">2"}, 3, EXIT_VALIDATION_FAILED, "fail", id="error_if>2-3-nulls-fail"),
    pytest.param({"error_if": ">=2"}, 2, EXIT_VALIDATION_FAILED, "fail", id="error_if>=2-2-nulls-fail"),
    # percent of the batch's 10 rows: 1 row is 10%, not more than 10%
    pytest.param({"error_if": ">10%"}, 1, EXIT_PASSED, "warn", id="error_if>10%-1-nulls-warn"),
    pytest.param({"error_if": ">10%"}, 2, EXIT_VALIDATION_FAILED, "fail", id="error_if>10%-2-nulls-fail"),
    pytest.param({"error_if": ">10%", "warn_if": ">=10%"}, 1, EXIT_PASSED, "warn",
                 id="error_if>10%,warn_if>=10%-1-nulls-warn"),
    pytest.param({"error_if": ">10%", "warn_if": ">10%"}, 1, EXIT_PASSED, "pass",
                 id="error_if>10%,warn_if>10%-1-nulls-pass"),
])
def test_thresholds_decide_between_fail_warn_and_pass(project, db_url, rule, nulls, code, status):
    """error_if / warn_if compare the failing count, or its percent of the batch when written
    with %, and decide the check's status and the run's exit code."""
    rows = [f"O{i},{'' if i <= nulls else f'C{i}'},2024-01-01,1.00,completed" for i in range(1, 11)]
    project.write_csv("orders.csv", lines(rows))
    config = project.write_config(expectations={"non_null": [{"column": "customer_id", **rule}]})
    got_code, report = validate(config, db_url, through="stage")
    check = checks(report)["non_null.customer_id"]
    assert (check["status"], check["failing_count"], check["failing_percent"]) == (status, nulls, nulls * 10.0)
    assert got_code == code
    message = "customer_id has null values"
    assert (message in report["errors"]) == (status == "fail")
    assert (message in report["warnings"]) == (status == "warn")
    staged = query(db_url, "SELECT count(*) FROM stg.orders")[0][0]
    assert staged == (0 if status == "fail" else 10)


# --- 4. fail fast ---------------------------------------------------------------------------


def test_a_failing_error_rule_stops_the_run_before_staging(project, db_url):
    """An error-severity failure: exit 1, nothing in stg.orders, the raw events kept, and the
    report (written to artifacts/reports) says validation_passed false with the message."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1.00,completed",
        "O2,C2,2024-01-01,-5.00,completed",
        "O3,C3,2024-01-01,3.00,completed",
    ]))
    config = project.write_config(expectations={"ranges": {"amount": {"min": 0}}})
    code, report = run_pipeline(config, db_url)  # every stage requested
    assert code == EXIT_VALIDATION_FAILED
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(3,)]
    saved = json.loads((project.root / "artifacts" / "reports" / f"{report['run_id']}.json").read_text())
    assert saved["validation_passed"] is False and saved["status"] == "failed"
    assert saved["errors"] == ["amount has negative values"]
    assert [s["stage"] for s in saved["stages"]] == ["migrate", "ingest", "validate"]
    assert query(db_url, "SELECT status, exit_code FROM meta.runs WHERE run_id = %s", (report["run_id"],)) == [
        ("failed", EXIT_VALIDATION_FAILED)]


# --- 5. the bundled dirty sample ------------------------------------------------------------


def test_bundled_dirty_sample_reports_the_seed_messages(project, db_url):
    """configs/pipeline_dirty.yaml with configs/expectations.yaml on data/raw/orders_dirty.csv
    fails with the original from-raw-to-ready project's three sentences, word for word; the counts behind them agree with
    an independent count made here with Python's csv module."""
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders_dirty.csv", project.root / "data" / "raw" / "orders_dirty.csv")
    shutil.copy(REPO_ROOT / "configs" / "expectations.yaml", project.root / "configs" / "expectations.yaml")
    shutil.copy(REPO_ROOT / "configs" / "pipeline_dirty.yaml", project.root / "configs" / "pipeline_dirty.yaml")
    code, report = run_pipeline("configs/pipeline_dirty.yaml", db_url)
    assert code == EXIT_VALIDATION_FAILED and report["validation_passed"] is False
    for message in ("order_id has duplicate values", "amount has negative values", "order_ts has invalid timestamps"):
        assert message in report["errors"]
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(0,)]

    with open(project.root / "data" / "raw" / "orders_dirty.csv", newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    negative = 0
    for r in records:
        try:
            negative += float(r["amount"]) < 0
        except ValueError:
            pass
    by_key: dict[str, set[tuple]] = {}
    copies: dict[str, int] = {}
    for r in records:
        key = r["order_id"].strip()
        by_key.setdefault(key, set()).add(tuple(r.values()))
        copies[key] = copies.get(key, 0) + 1
    conflicting = sum(copies[k] for k, contents in by_key.items() if len(contents) > 1)
    by_id = checks(report)
    assert by_id["ranges.amount"]["failing_count"] == negative
    assert by_id["unique.order_id"]["failing_count"] == conflicting


# --- 6. failure history -----------------------------------------------------------------------


def test_failure_history_keeps_every_run(project, db_url):
    """Running a failing config twice re-validates the same batch: meta.validation_failures
    then holds the offenders of both runs, and the first run's rows are untouched."""
    project.write_csv("orders.csv", lines([
        "O1,,2024-01-01,1.00,completed",       # line 2
        "O2,C2,2024-01-01,1.00,completed",
        "O3,,2024-01-01,1.00,completed",       # line 4
    ]))
    config = project.write_config(expectations={"non_null": ["customer_id"]})
    code1, report1 = validate(config, db_url)
    first = query(db_url, "SELECT * FROM meta.validation_failures ORDER BY failure_id")
    code2, report2 = validate(config, db_url)
    assert code1 == code2 == EXIT_VALIDATION_FAILED and report1["run_id"] != report2["run_id"]
    rows = query(db_url, "SELECT run_id, check_id, line_number FROM meta.validation_failures"
                         " ORDER BY failure_id")
    assert rows == [(report1["run_id"], "non_null.customer_id", 2), (report1["run_id"], "non_null.customer_id", 4),
                    (report2["run_id"], "non_null.customer_id", 2), (report2["run_id"], "non_null.customer_id", 4)]
    assert query(db_url, "SELECT * FROM meta.validation_failures WHERE run_id = %s ORDER BY failure_id",
                 (report1["run_id"],)) == first
    assert query(db_url, "SELECT run_id, failing_count FROM meta.validation_results"
                         " WHERE check_id = 'non_null.customer_id' ORDER BY run_id") == sorted(
        [(report1["run_id"], 2), (report2["run_id"], 2)])
    # the file was ingested once: the second run added no raw events
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(3,)]


def test_failure_history_is_capped_per_check_but_the_count_is_exact(project, db_url):
    """With failure_history_cap 3 and 10 offending rows, 3 rows (the first three lines) are
    stored for the check while failing_count stays 10."""
    project.write_csv("orders.csv", lines([f"O{i},C{i},2024-01-01,-{i}.00,completed" for i in range(1, 11)]
                                          + ["O11,C11,2024-01-01,1.00,completed"]))
    config = project.write_config(expectations={"ranges": {"amount": {"min": 0}}},
                                  validation={"failure_sample_size": 20, "failure_history_cap": 3})
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["ranges.amount"]
    assert check["failing_count"] == 10
    assert samples(check) == [(ORDERS, 2, "-1.00"), (ORDERS, 3, "-2.00"), (ORDERS, 4, "-3.00")]
    assert query(db_url, "SELECT count(*) FROM meta.validation_failures WHERE check_id = 'ranges.amount'") == [(3,)]
    assert query(db_url, "SELECT failing_count FROM meta.validation_results WHERE check_id = 'ranges.amount'") == [
        (10,)]


# --- 7. broken expectations are refused before any data work --------------------------------


@pytest.mark.parametrize(("expectations", "key"), [
    pytest.param({"uniq": ["order_id"]}, "uniq", id="unknown-rule"),
    pytest.param({"non_null": ["email"]}, "non_null.email", id="column-the-source-lacks"),
    pytest.param({"ranges": {"amount": {"min": 10, "max": 1}}}, "ranges.amount", id="range-min-above-max"),
    pytest.param({"non_null": [{"column": "customer_id", "error_if": "lots"}]}, "non_null.customer_id.error_if",
                 id="bad-threshold"),
    pytest.param({"ranges": {"amount": {"min": 0, "warn_if": "> -1"}}}, "ranges.amount.warn_if",
                 id="negative-threshold"),
    pytest.param({"types": {"order_ts": {"type": "timestamptz", "severity": "warn"}}}, "types.order_ts",
                 id="warn-on-staging-critical-type"),
    pytest.param({"non_null": [{"column": "order_id", "error_if": ">5"}]}, "non_null.order_id",
                 id="relaxed-threshold-on-staging-critical-non-null"),
    pytest.param({"types": {"amount": "text"}}, "types.amount", id="staging-critical-type-not-castable"),
    pytest.param({"types": {"amount": {"type": "numeric", "sevrity": "warn"}}}, "types.amount.sevrity",
                 id="unknown-option"),
    # Python's re accepts named groups; PostgreSQL's regular expressions do not
    pytest.param({"matches": {"order_id": "^(?P<id>O[0-9]+)$"}}, "matches.order_id",
                 id="regex-postgresql-cannot-compile"),
])
def test_broken_expectations_are_refused_before_any_data_work(project, db_url, capsys, expectations, key):
    """A broken expectations file stops the run with exit 2 and a message naming the file and
    key, before any data work: the database is not even migrated."""
    assert_refused_before_data_work(project, db_url, capsys, expectations, key)


# --- 8. the real UCI invoice lines ----------------------------------------------------------


def _python_csv_offenders(files: list[Path]) -> dict[str, list[tuple[str, int]]]:
    """(file, start line) of the first offenders per check, found with Python's csv module."""
    found: dict[str, list[tuple[str, int]]] = {"non_null.CustomerID": [], "exact_duplicates": [],
                                               "ranges.Quantity": []}
    seen: set[tuple[str, ...]] = set()
    for path in files:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            start = reader.line_num + 1
            for row in reader:
                record = dict(zip(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                                   "UnitPrice", "CustomerID", "Country"], row))
                if not record["CustomerID"].strip():
                    found["non_null.CustomerID"].append((str(path), start))
                if tuple(row) in seen:
                    found["exact_duplicates"].append((str(path), start))
                seen.add(tuple(row))
                if float(record["Quantity"]) < 0:
                    found["ranges.Quantity"].append((str(path), start))
                start = reader.line_num + 1
        if all(len(v) >= 20 for v in found.values()):
            break
    return {k: v[:20] for k, v in found.items()}


def test_real_uci_failing_counts_match_source_md(project, db_url):
    """68 real daily files of UCI Online Retail, mapped onto the pipeline's columns without a
    status: the failing counts equal SOURCE.md's independent counts (empty CustomerID 36,210;
    extra copies of exact duplicate rows 975; Quantity < 0 2,118), and the samples point at
    the same file lines Python's csv module finds."""
    files = sorted((UCI_DIR / "by-day").glob("*.csv"))
    assert len(files) == 68
    config = project.write_config(
        paths=str(UCI_DIR / "by-day" / "*.csv"),
        columns={"order_id": "InvoiceNo", "customer_id": "CustomerID", "order_ts": "InvoiceDate",
                 "amount": "UnitPrice", "status": None},
        expectations={"non_null": ["CustomerID"], "exact_duplicates": None, "ranges": {"Quantity": {"min": 0}}},
    )
    code, report = validate(config, db_url)
    assert code == EXIT_VALIDATION_FAILED, report["errors"]
    by_id = checks(report)
    assert by_id["non_null.CustomerID"]["failing_count"] == 36_210
    assert by_id["exact_duplicates"]["failing_count"] == 975
    assert by_id["ranges.Quantity"]["failing_count"] == 2_118
    assert all(c["row_count"] == 105_335 for c in report["checks"])
    # the implicit staging checks on the mapped columns pass on the real data
    for check_id in ("types.InvoiceDate", "types.UnitPrice", "non_null.InvoiceNo", "non_null.InvoiceDate",
                     "required_columns.InvoiceNo", "required_columns.CustomerID"):
        assert by_id[check_id]["status"] == "pass", check_id
    assert "required_columns.status" not in by_id
    # InvoiceNo is the order key but the grain is one row per invoice line, so the
    # implicit unique rule on the order key fails: every row of an invoice with two or
    # more different lines, counted here with Python's csv module
    variants: dict[str, set[tuple[str, ...]]] = {}
    rows_per_key: dict[str, int] = {}
    for path in files:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                variants.setdefault(row[0].strip(), set()).add(tuple(row))
                rows_per_key[row[0].strip()] = rows_per_key.get(row[0].strip(), 0) + 1
    conflicting = sum(n for key, n in rows_per_key.items() if key and len(variants[key]) > 1)
    assert by_id["unique.InvoiceNo"]["failing_count"] == conflicting
    assert sorted(report["errors"]) == ["CustomerID has null values", "InvoiceNo has duplicate values",
                                        "Quantity has negative values",
                                        "some records are exact repeats of another record"]
    expected = _python_csv_offenders(files)
    for check_id, offenders in expected.items():
        assert [(s["file_path"], s["line_number"]) for s in by_id[check_id]["samples"]] == offenders, check_id


def test_allowed_values_refuse_an_allowed_value_that_the_map_sends_elsewhere(project, db_url):
    """With allowed [completed] and status_map {completed: done}, 'completed' would be
    stored as 'done', which is not allowed: it offends."""
    project.write_csv("orders.csv", lines([
        "O1,C1,2024-01-01,1,completed",        # line 2: staged as 'done'
        "O2,C2,2024-01-01,1,finished",         # line 3: staged as 'completed': ok
    ]))
    config = project.write_config(expectations={"allowed_values": {"status": ["completed"]}},
                                  staging={"status_map": {"completed": "done", "finished": "completed"}})
    code, report = validate(config, db_url, through="stage")
    check = checks(report)["allowed_values.status"]
    assert (check["status"], check["failing_count"], samples(check)) == ("fail", 1, [(ORDERS, 2, "completed")])
    assert code == EXIT_VALIDATION_FAILED


def test_min_rows_beyond_the_batch_fails_the_gate_without_overflow(project, db_url):
    """min_rows 2000 on a one-row batch fails validation (exit 1), percent capped at 100."""
    project.write_csv("orders.csv", lines(["O1,C1,2024-01-01,1,completed"]))
    code, report = validate(project.write_config(expectations={"min_rows": 2000}), db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = checks(report)["min_rows"]
    assert (check["status"], check["failing_count"], check["failing_percent"]) == ("fail", 1999, 100.0)


def test_columns_differing_only_in_case_and_long_names_are_distinct_checks(project, db_url):
    """Header names are case-sensitive and may be longer than PostgreSQL's 63-byte
    identifiers: each check still counts its own column."""
    long_a = "a" * 60 + "_one"
    long_b = "a" * 60 + "_two"
    project.write_csv("orders.csv", "order_id,ORDER_ID,customer_id,order_ts,amount,status,"
                      f"{long_a},{long_b}\n"
                      "O1,X,C1,2024-01-01,1,completed,1,x\n"
                      "O2,X,C2,2024-01-01,1,completed,y,2\n")
    config = project.write_config(expectations={
        "unique": ["ORDER_ID"], "types": {long_a: "integer", long_b: "integer"}})
    code, report = validate(config, db_url)
    by_id = checks(report)
    assert (by_id["unique.ORDER_ID"]["failing_count"], by_id["unique.order_id"]["failing_count"]) == (2, 0)
    assert by_id[f"types.{long_a}"]["failing_count"] == 1 and by_id[f"types.{long_b}"]["failing_count"] == 1
    assert code == EXIT_VALIDATION_FAILED
