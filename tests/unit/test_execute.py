"""How a rendered file is cut into statements (scripts/db/execute.py), against hand-worked
examples: the cut must fall where PostgreSQL's does, or a stage's -- rows: count would be
read from the wrong statement (no database)."""

from __future__ import annotations

from scripts.db.execute import Result, counted_rows, statements


def test_semicolons_inside_strings_names_comments_and_dollar_quotes_do_not_cut():
    text = (
        "-- rows: the first\n"
        "INSERT INTO t VALUES ('a;b', E'it\\'s;', \"odd;name\");\n"
        "/* a; comment /* nested; */ still; */ SELECT 1;\n"
        "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$;\n"
        "SELECT $$;$$, $1;\n"
    )
    found = statements(text)
    assert [comments for comments, _ in found] == ["-- rows: the first", "", "", ""]
    assert [statement.split()[0] for _, statement in found] == ["INSERT", "/*", "DO", "SELECT"]
    assert len(found) == 4


def test_a_sql_standard_function_body_is_one_statement():
    """BEGIN ATOMIC ... END holds semicolons, and a CASE ... END inside it does not close it."""
    text = (
        "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
        "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n"
        "  SELECT 2;\n"
        "END;\n"
        "COMMENT ON FUNCTION f(int) IS 'x';\n"
    )
    assert [statement.split()[0] for _, statement in statements(text)] == ["CREATE", "COMMENT"]


def test_comments_only_and_empty_statements_are_not_statements():
    assert statements("-- nothing here\n\n") == []
    assert [s for _, s in statements("SELECT 1;;\n;SELECT 2;")] == ["SELECT 1", "SELECT 2"]


def test_only_a_leading_rows_line_counts():
    """A -- rows: line belongs to the statement it heads; one inside a statement does not count."""
    found = statements("-- why\n-- rows: orders added\nINSERT INTO t SELECT 1;\nSELECT 1 -- rows: no\n;\n")
    assert found[0][0] == "-- why\n-- rows: orders added"
    assert found[1][0] == ""
    results = [Result("INSERT", 7, "orders added"), Result("SELECT", 0, None), Result("DELETE", 2, "gone")]
    assert counted_rows(results) == 9
    assert counted_rows([Result("SELECT", 0, None)]) is None
