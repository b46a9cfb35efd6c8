"""make bench's profile (scripts/db/execute.py, RAW_TO_READY_PROFILE): each statement runs on
its own, the ones EXPLAIN can run under EXPLAIN (ANALYZE, BUFFERS), with the same effects and
the same row counts as the file run whole; an error still names the file's line and column."""

from __future__ import annotations

import json

import pytest

from scripts.db.execute import PROFILE_ENV, execute_sql
from scripts.errors import StageError

TEXT = """-- a scratch table
CREATE TEMPORARY TABLE t AS SELECT g AS n FROM generate_series(1, 50) AS g;

-- rows: rows added
INSERT INTO t SELECT n + 100 FROM t WHERE n <= 20;

-- rows: rows changed
UPDATE t SET n = n * 2 WHERE n > 100;

ANALYZE t;
"""


def run(conn, text, monkeypatch, sink=None):
    if sink is not None:
        monkeypatch.setenv(PROFILE_ENV, str(sink))
    with conn.transaction():
        results = execute_sql(conn, "test.sql", text, None)
        total = conn.execute("SELECT count(*), sum(n) FROM t").fetchone()
        conn.execute("DROP TABLE t")
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    return [(r.command, r.rows, r.counted) for r in results], total


def test_a_profiled_file_does_and_counts_what_the_whole_file_does(conn, tmp_path, monkeypatch):
    whole = run(conn, TEXT, monkeypatch)
    sink = tmp_path / "statements.jsonl"
    profiled = run(conn, TEXT, monkeypatch, sink)
    # by hand: 50 rows, 20 added (101..120), those 20 doubled
    assert whole[1] == (70, sum(range(1, 51)) + 2 * sum(range(101, 121)))
    assert profiled == whole
    assert [r[1] for r in whole[0] if r[2]] == [20, 20]
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [line["line"] for line in lines] == [2, 5, 8, 10]
    assert [line["plan"] is not None for line in lines] == [True, True, True, False]
    assert lines[1]["plan"]["Plan"]["Node Type"] == "ModifyTable"
    assert all(line["seconds"] >= 0 for line in lines)


def test_a_profiled_error_names_the_line_and_column_of_the_file(conn, tmp_path, monkeypatch):
    text = "SELECT 1;\n\n-- rows: x\nINSERT INTO t SELECT no_such_column FROM t;\n"
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "s.jsonl"))
    with pytest.raises(StageError) as raised, conn.transaction():
        conn.execute("CREATE TEMPORARY TABLE t (n int)")
        execute_sql(conn, "x.sql", text, None)
    assert "sql/x.sql:4:22: ERROR: column \"no_such_column\" does not exist" in str(raised.value)
