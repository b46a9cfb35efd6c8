"""Source models: a source's own SELECT turns its raw records into orders; order-level checks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from scripts.run import EXIT_PASSED, EXIT_USAGE, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query

# a line-grain export: invoice, product, quantity, unit price; the ids come as floats
LINES = (
    "invoice,product,qty,price,customer,at\n"
    "1001,A,2,1.25,7.0,2024-03-01 09:00:00\n"
    "1001,B,1,10.00,7.0,2024-03-01 09:00:00\n"
    "1002,A,3,0.335,8.0,2024-03-02 12:30:00\n"
    "1002,C,1,0.01,8.0,2024-03-02 12:31:00\n"
    "R1001,A,-2,1.25,7.0,2024-03-03 08:00:00\n"
)
MODEL = """\
-- test model: one order per invoice
SELECT
    e.payload ->> 'invoice' AS order_id,
    min(regexp_replace(e.payload ->> 'customer', '\\.0$', '')) AS customer_id,
    min((e.payload ->> 'at')::timestamptz) AS order_at,
    round(sum((e.payload ->> 'qty')::numeric * (e.payload ->> 'price')::numeric), {{ staging.amount_scale | literal }})
        AS amount,
    CASE WHEN e.payload ->> 'invoice' LIKE 'R%' THEN 'cancelled' ELSE 'completed' END AS status,
    min(e.event_id) AS source_event_id,
    min(e.file_sha256) AS file_sha256,
    min(e.line_number) AS line_number
FROM {{ source_events }} AS e
GROUP BY e.payload ->> 'invoice'
"""


def write_model(project, text: str = MODEL, name: str = "lines.sql") -> str:
    path = project.root / "sql" / "sources" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return f"sql/sources/{name}"


def line_config(project, model: str, expectations=None, **sections) -> str:
    project.write_csv("lines.csv", LINES)
    return project.write_config(
        sources=[{"name": "lines", "paths": "data/raw/lines.csv", "model": model}],
        expectations=expectations or {"types": {"qty": "integer", "price": "numeric", "at": "timestamp"}},
        **sections,
    )


def test_a_line_grain_model_stages_one_order_per_invoice(project, db_url):
    config = line_config(project, write_model(project), staging={"source_timezone": "Europe/Paris"})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    paris = dt.timezone(dt.timedelta(hours=1))  # CET in March 2024 (summer time starts 31 March)
    # worked by hand: 2*1.25 + 10.00 = 12.50; 3*0.335 + 0.01 = 1.015 -> 1.02 (half away from zero)
    assert query(db_url, "SELECT order_id, customer_id, order_at, amount, status, line_number FROM stg.orders"
                         " ORDER BY order_id") == [
        ("1001", "7", dt.datetime(2024, 3, 1, 9, tzinfo=paris), Decimal("12.50"), "completed", 2),
        ("1002", "8", dt.datetime(2024, 3, 2, 12, 30, tzinfo=paris), Decimal("1.02"), "completed", 4),
        ("R1001", "7", dt.datetime(2024, 3, 3, 8, tzinfo=paris), Decimal("-2.50"), "cancelled", 6),
    ]
    # lineage points at a raw event of that invoice
    assert query(db_url, "SELECT o.order_id, e.payload ->> 'invoice' FROM stg.orders AS o"
                         " JOIN raw.raw_events AS e ON e.event_id = o.source_event_id ORDER BY 1") == [
        ("1001", "1001"), ("1002", "1002"), ("R1001", "R1001")]
    assert {c["id"] for c in report["checks"] if c["level"] == "orders"} == {
        "orders.unique.order_id", "orders.non_null.order_id", "orders.non_null.order_at"}
    # the rendered model is part of what the run executed and saved
    saved = (project.root / "artifacts" / "runs" / report["run_id"] / "sql" / "037_model_orders.sql").read_text()
    assert "-- source lines: the model sql/sources/lines.sql" in saved and "GROUP BY e.payload ->> 'invoice'" in saved


def test_features_count_only_the_statuses_that_count(project, db_url):
    config = line_config(project, write_model(project), features={"exclude_statuses": ["Cancelled"]})
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    # customer 7: the cancellation of 03-03 is no feature row and is not counted
    assert query(db_url, "SELECT customer_id, feature_time::date, orders_7d, revenue_7d FROM feats.customer_features"
                         " ORDER BY 1, 2") == [
        ("7", dt.date(2024, 3, 1), 1, Decimal("12.50")),
        ("8", dt.date(2024, 3, 2), 1, Decimal("1.02")),
    ]


@pytest.mark.parametrize(("edit", "column", "message"), [
    (("    min(e.line_number) AS line_number\n", "    1 AS line_no\n"), "line_number",
     "the source model returns no line_number column"),
    (("        AS amount,", "        ::text AS amount,"), "amount", "is text; a source model must return numeric"),
    (("min((e.payload ->> 'at')::timestamptz)", "min(e.payload ->> 'at')"), "order_at",
     "is text; a source model must return timestamp with time zone"),
])
def test_a_model_that_breaks_the_contract_is_refused_before_any_data_work(project, db_url, capsys, edit, column,
                                                                           message):
    model = MODEL.replace(*edit)
    assert model != MODEL
    code, _ = run_pipeline(line_config(project, write_model(project, model)), db_url)
    assert code == EXIT_USAGE
    assert f"sql/sources/lines.sql: {column}: {message}" in capsys.readouterr().err
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]


def test_a_model_sql_error_names_the_model_file(project, db_url, capsys):
    code, _ = run_pipeline(line_config(project, write_model(project, MODEL.replace("e.payload", "e.no_such"))), db_url)
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "sql/sources/lines.sql: PostgreSQL cannot run this source model" in err and "no_such" in err


def test_a_model_with_two_rows_per_order_fails_the_order_contract(project, db_url):
    model = MODEL.replace("GROUP BY e.payload ->> 'invoice'", "GROUP BY e.payload ->> 'invoice', e.payload ->> 'at'")
    code, report = run_pipeline(line_config(project, write_model(project, model)), db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = next(c for c in report["checks"] if c["id"] == "orders.unique.order_id")
    # invoice 1002 has lines at two instants: two rows for one order
    assert (check["status"], check["failing_count"]) == ("fail", 2)
    assert sorted(s["line_number"] for s in check["samples"]) == [4, 5]
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(0,)]


def test_order_level_rules_check_the_models_orders(project, db_url):
    rules = {"types": {"qty": "integer"},
             "orders": {"ranges": {"amount": {"min": 0, "counted_only": True}},
                        "allowed_values": {"status": ["completed", "cancelled"]}}}
    config = line_config(project, write_model(project), rules, features={"exclude_statuses": ["cancelled"]})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED  # the negative amount is a cancellation, which does not count
    # without counted_only the cancellation's negative amount fails the rule
    rules["orders"]["ranges"]["amount"] = {"min": 0}
    code, report = run_pipeline(line_config(project, write_model(project), rules), db_url)
    assert code == EXIT_VALIDATION_FAILED
    check = next(c for c in report["checks"] if c["id"] == "orders.ranges.amount")
    assert (check["failing_count"], check["samples"][0]["value"], check["samples"][0]["line_number"]) == (
        1, "-2.50", 6)


def test_order_level_rules_name_canonical_columns(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    code, _ = run_pipeline(project.write_config(expectations={"orders": {"non_null": ["cust"]}}), db_url)
    assert code == EXIT_USAGE
    assert "orders.non_null.cust: an order-level rule addresses the model's columns" in capsys.readouterr().err


def test_relative_paths_resolve_against_the_project_around_configs(project, db_url, monkeypatch):
    """A project copied elsewhere runs from any working directory, like the original from-raw-to-ready project's."""
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    config = project.root / project.write_config(expectations={"min_rows": 1})
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, report = run_pipeline(str(config), db_url)
    assert code == EXIT_PASSED
    assert report["sources"][0]["path"] == str((project.root / "data" / "raw" / "orders.csv").resolve())
    assert "min_rows" in {c["id"] for c in report["checks"]}


def test_a_model_with_no_record_level_rule_runs(project, db_url):
    """A source model needs no record-level rule (the default model's mapped columns bring
    some; a model brings none): validation then records the order-level checks only."""
    project.write_csv("lines.csv", LINES)
    config = project.write_config(sources=[{"name": "lines", "paths": "data/raw/lines.csv",
                                            "model": write_model(project)}], expectations={"unique": {}})
    (project.root / "configs" / "pipeline_expectations.yaml").write_text("{}\n", encoding="utf-8")
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(3,)]
    assert {c["level"] for c in report["checks"]} == {"orders"}
