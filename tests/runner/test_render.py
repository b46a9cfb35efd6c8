"""Rendering: strict variables with file and line, quoting of identifiers and values."""

from __future__ import annotations

import pytest

from scripts.db import render as sqltemplate
from scripts.run import render_all
from tests.helpers import HEADER


def test_undefined_variable_names_the_file_and_line(tmp_path):
    (tmp_path / "100_example.sql").write_text("-- header\nSELECT 1\nFROM {{ missing_table | ident }};\n")
    with pytest.raises(sqltemplate.TemplateError) as error:
        sqltemplate.render("100_example.sql", {}, sql_dir=tmp_path)
    message = str(error.value)
    assert "100_example.sql:3" in message and "missing_table" in message and "undefined" in message


def test_undefined_variable_inside_a_macro_names_the_macro_file(tmp_path):
    (tmp_path / "macros.sql").write_text("{% macro m() %}\n{{ nope }}\n{% endmacro %}")
    (tmp_path / "100_uses.sql").write_text("{% import 'macros.sql' as mm %}\nSELECT {{ mm.m() }};\n")
    with pytest.raises(sqltemplate.TemplateError, match=r"macros\.sql:2"):
        sqltemplate.render("100_uses.sql", {}, sql_dir=tmp_path)


def test_syntax_error_names_the_line(tmp_path):
    (tmp_path / "100_bad.sql").write_text("SELECT 1;\n{% for x in %}\n")
    with pytest.raises(sqltemplate.TemplateError, match=r"100_bad.sql:2: template syntax error"):
        sqltemplate.render("100_bad.sql", {}, sql_dir=tmp_path)


@pytest.mark.parametrize(("name", "quoted"), [
    ("order_id", '"order_id"'),
    ('a"b', '"a""b"'),
    ("select", '"select"'),
    ("Mixed Case", '"Mixed Case"'),
])
def test_ident_always_quotes(name, quoted):
    assert sqltemplate.ident(name) == quoted


@pytest.mark.parametrize("value", ["it's", "back\\slash", "semi; DROP TABLE x; --", "£ ünïcode", "", None, 7, 2.5])
def test_literal_round_trips_through_postgresql(conn, value):
    """Whatever the value, the server reads back exactly that value: nothing is injected."""
    assert conn.execute(f"SELECT {sqltemplate.literal(value)}").fetchone()[0] == value


def test_literal_arrays_round_trip(conn):
    values = ["a", "b'c", "d\\e"]
    assert conn.execute(f"SELECT {sqltemplate.literal(values)}::text[]").fetchone()[0] == values


def test_render_writes_every_stage_for_psql(project):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    config = project.write_config()
    written = render_all(config, project.root / "out")
    names = sorted(p.name for p in written)
    assert "030_validate_expectations.sql" in names and "070_publish_version.sql" in names
    assert "010_raw_landing.file1.sql" in names and "V002__create_raw_events.sql" in names
    text = (project.root / "out" / "040_stg_orders.sql").read_text()
    assert "{{" not in text and "{%" not in text
