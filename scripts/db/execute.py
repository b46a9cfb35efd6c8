"""Execute rendered SQL files and turn server errors into file:line:column messages.

A file runs as one multi-statement query. A statement reports the rows it wrote as the
stage's count when a line of its leading comment says so: ``-- rows: <what they are>``, and
the rows it made aside (a scratch table: what the stage computed, before it writes only what
changed) as what the stage read with ``-- read: <what they are>`` (``statements()`` finds the statements and their leading comments as PostgreSQL splits
them: strings, quoted names, dollar quotes and comments are not split).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from scripts.errors import StageError

ROWS_TAG = re.compile(r"^--\s*rows:\s*(.+)$", re.MULTILINE)
READ_TAG = re.compile(r"^--\s*read:\s*(.+)$", re.MULTILINE)
WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")
DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
# make bench's profile: with this set to a file, every statement runs on its own, timed, the
# ones EXPLAIN can run under EXPLAIN (ANALYZE, BUFFERS) (which runs them: same effects), and
# one JSON line per statement is appended to the file (scripts/bench/plans.py reads them)
PROFILE_ENV = "RAW_TO_READY_PROFILE"
EXPLAINABLE = re.compile(r"(?:SELECT|INSERT|UPDATE|DELETE|MERGE|WITH)\b"
                         r"|CREATE\s+(?:TEMP\s+|TEMPORARY\s+|UNLOGGED\s+)?TABLE\s[^(;]*?\bAS\b", re.IGNORECASE)
EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) "


@dataclass(frozen=True)
class Result:
    """What one statement did: its command tag, the rows it wrote, whether they count."""

    command: str
    rows: int
    counted: str | None  # the statement's ``-- rows:`` text: its rows are the stage's count
    read: str | None = None  # the statement's ``-- read:`` text: its rows are what the stage read


def statements(text: str) -> list[tuple[str, str]]:
    """(leading comments, statement) for each non-empty statement of ``text``, in order."""
    return [(comments, statement) for _, comments, statement in _pieces(text)]


def _pieces(text: str) -> list[tuple[int, str, str]]:
    """(where the piece starts in ``text``, leading comments, statement) for each statement."""
    pieces: list[tuple[int, str, str]] = []
    start, i, n = 0, 0, len(text)
    atomic, previous = 0, ""  # inside BEGIN ATOMIC ... END (a SQL-standard function body): its depth
    while i < n:
        char = text[i]
        if char.isalpha() or char == "_":
            word = WORD.match(text, i).group(0).upper()
            if word == "ATOMIC" and previous == "BEGIN":
                atomic = 1
            elif atomic and word == "CASE":
                atomic += 1
            elif atomic and word == "END":
                atomic -= 1
            previous, i = word, i + len(word)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                depth += text.startswith("/*", i) - text.startswith("*/", i)
                i += 2 if text.startswith(("/*", "*/"), i) else 1
        elif char in "'\"":
            escapes = char == "'" and i > 0 and text[i - 1] in "eE"
            i += 1
            while i < n:
                if escapes and text[i] == "\\":
                    i += 2
                elif text[i] == char:
                    if text.startswith(char * 2, i):
                        i += 2
                    else:
                        break
                else:
                    i += 1
            i += 1
        elif char == "$" and (match := DOLLAR_TAG.match(text, i)) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(match.group(0), match.end())
            i = n if end < 0 else end + len(match.group(0))
        elif char == ";" and not atomic:
            _add(pieces, text, start, i)
            start = i = i + 1
        else:
            i += 1
    _add(pieces, text, start, n)
    return pieces


def _add(pieces: list[tuple[int, str, str]], text: str, start: int, end: int) -> None:
    lines = text[start:end].strip().splitlines()
    comments = []
    while lines and (lines[0].strip().startswith("--") or not lines[0].strip()):
        comments.append(lines.pop(0).strip())
    if lines:
        pieces.append((start, "\n".join(comments), "\n".join(lines)))


def execute_sql(conn: psycopg.Connection, name: str, text: str, saved_path: Path | None) -> list[Result]:
    """Execute one rendered file (all its statements); return what each statement did."""
    results: list[tuple[str, int]] = []
    if os.environ.get(PROFILE_ENV):
        results = _execute_profiled(conn, name, text, saved_path, Path(os.environ[PROFILE_ENV]))
    else:
        results = _execute_file(conn, name, text, saved_path)
    if not any(command for command, _ in results) and len(results) == 1:
        results = []  # a file of comments only: PostgreSQL answers with an empty query
    found = statements(text)
    tags = [match.group(1).strip() if (match := ROWS_TAG.search(comments)) else None for comments, _ in found]
    reads = [match.group(1).strip() if (match := READ_TAG.search(comments)) else None for comments, _ in found]
    if len(tags) != len(results):  # only a bug in statements() could do this: say so, not miscount
        raise StageError(f"{saved_path or name}: found {len(tags)} statements but PostgreSQL ran {len(results)}; "
                         "the -- rows: counts cannot be matched (please report it)")
    return [Result(command, rows, tag, read) for (command, rows), tag, read in zip(results, tags, reads)]


def _execute_file(conn: psycopg.Connection, name: str, text: str, saved_path: Path | None) -> list[tuple[str, int]]:
    """All the file's statements as one query: (command, rows written) for each."""
    results: list[tuple[str, int]] = []
    try:
        with conn.cursor() as cur:
            cur.execute(text.encode("utf-8"))
            while True:
                command = (cur.statusmessage or "").split(" ")[0]
                # a statement that returns rows (a plain SELECT: meta.set_run_setting's) wrote none
                written = 0 if cur.description is not None else max(cur.rowcount or 0, 0)
                results.append((command, written))
                if not cur.nextset():
                    break
    except psycopg.Error as exc:
        raise StageError(describe_sql_error(exc, name, text, saved_path), exc.diag.sqlstate) from None
    return results


def _execute_profiled(conn: psycopg.Connection, name: str, text: str, saved_path: Path | None,
                      sink: Path) -> list[tuple[str, int]]:
    """The file's statements one at a time, each timed and (where EXPLAIN can run it) explained;
    one JSON line per statement appended to ``sink``: (command, rows written) for each."""
    results: list[tuple[str, int]] = []
    with sink.open("a", encoding="utf-8") as out:
        for start, _, statement in _pieces(text):
            at = text.find(statement, start)
            explained = bool(EXPLAINABLE.match(statement))
            query = EXPLAIN + statement if explained else statement
            began = time.perf_counter()
            try:
                with conn.cursor() as cur:
                    cur.execute(query.encode("utf-8"))
                    plan = cur.fetchone()[0][0] if explained else None
                    command = (cur.statusmessage or "").split(" ")[0]
                    written = 0 if cur.description is not None else max(cur.rowcount or 0, 0)
            except psycopg.Error as exc:
                shift = at - (len(EXPLAIN) if explained else 0)
                raise StageError(describe_sql_error(exc, name, text, saved_path, shift), exc.diag.sqlstate) from None
            seconds = time.perf_counter() - began
            if plan is not None:
                command = statement.split(None, 1)[0].upper()
                written = plan_rows(plan, created=command == "CREATE")
                command = "SELECT" if command == "CREATE" else command  # PostgreSQL's tag for CREATE TABLE AS
            results.append((command, written))
            out.write(json.dumps({"file": name, "line": text.count("\n", 0, at) + 1, "seconds": round(seconds, 4),
                                  "statement": statement, "plan": plan}) + "\n")
    return results


def plan_rows(plan: dict, created: bool) -> int:
    """The rows a statement run under EXPLAIN ANALYZE wrote, from its plan: a CREATE TABLE AS
    its query's rows, an INSERT, UPDATE, DELETE or MERGE its tuples, a SELECT none."""
    top = plan["Plan"]
    if top["Node Type"] != "ModifyTable":
        return int(top["Actual Rows"] * top.get("Actual Loops", 1)) if created else 0
    if any(key in top for key in ("Tuples Inserted", "Tuples Updated", "Tuples Deleted")):
        return sum(int(top.get(key, 0)) for key in ("Tuples Inserted", "Tuples Updated", "Tuples Deleted"))
    child = [p for p in top.get("Plans", []) if p.get("Parent Relationship") in (None, "Outer", "Member")]
    return int(child[0]["Actual Rows"] * child[0].get("Actual Loops", 1)) if child else 0


def counted_rows(results: list[Result]) -> int | None:
    """The rows the ``-- rows:`` statements wrote, or None when no statement counts."""
    counted = [result.rows for result in results if result.counted is not None]
    return sum(counted) if counted else None


def read_rows(results: list[Result]) -> tuple[int, str] | None:
    """The rows the ``-- read:`` statements made and what they are, or None."""
    read = [result for result in results if result.read is not None]
    return (sum(result.rows for result in read), read[0].read) if read else None


def describe_sql_error(exc: psycopg.Error, name: str, text: str, saved_path: Path | None, shift: int = 0) -> str:
    """``file:line:column: ERROR message`` for an error raised by a rendered file (run from
    ``shift`` characters on: a statement of it run alone)."""
    diag = exc.diag
    where = str(saved_path or f"sql/{name}")
    position = diag.statement_position
    if position and position.isdigit():
        # PostgreSQL counts the position in characters, from 1
        before = text[: max(int(position) - 1 + shift, 0)]
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        where += f":{line}:{column}"
    message = f"{where}: {diag.severity or 'ERROR'}: {diag.message_primary or str(exc).strip()}"
    if diag.message_detail:
        message += f"\n  detail: {diag.message_detail}"
    if diag.message_hint:
        message += f"\n  hint: {diag.message_hint}"
    if diag.sqlstate:
        message += f"\n  sqlstate: {diag.sqlstate}"
    return message
