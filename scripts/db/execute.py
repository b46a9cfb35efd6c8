"""Execute rendered SQL files and turn server errors into file:line:column messages.

A file runs as one multi-statement query. A statement reports the rows it wrote as the
stage's count when a line of its leading comment says so: ``-- rows: <what they are>``, and
the rows it made aside (a scratch table: what the stage computed, before it writes only what
changed) as what the stage read with ``-- read: <what they are>`` (``statements()`` finds the statements and their leading comments as PostgreSQL splits
them: strings, quoted names, dollar quotes and comments are not split).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from scripts.errors import StageError

ROWS_TAG = re.compile(r"^--\s*rows:\s*(.+)$", re.MULTILINE)
READ_TAG = re.compile(r"^--\s*read:\s*(.+)$", re.MULTILINE)
WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")
DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True)
class Result:
    """What one statement did: its command tag, the rows it wrote, whether they count."""

    command: str
    rows: int
    counted: str | None  # the statement's ``-- rows:`` text: its rows are the stage's count
    read: str | None = None  # the statement's ``-- read:`` text: its rows are what the stage read


def statements(text: str) -> list[tuple[str, str]]:
    """(leading comments, statement) for each non-empty statement of ``text``, in order."""
    pieces: list[tuple[str, str]] = []
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
            _add(pieces, text[start:i])
            start = i = i + 1
        else:
            i += 1
    _add(pieces, text[start:])
    return pieces


def _add(pieces: list[tuple[str, str]], piece: str) -> None:
    lines = piece.strip().splitlines()
    comments = []
    while lines and (lines[0].strip().startswith("--") or not lines[0].strip()):
        comments.append(lines.pop(0).strip())
    if lines:
        pieces.append(("\n".join(comments), "\n".join(lines)))


def execute_sql(conn: psycopg.Connection, name: str, text: str, saved_path: Path | None) -> list[Result]:
    """Execute one rendered file (all its statements); return what each statement did."""
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
    if not any(command for command, _ in results) and len(results) == 1:
        results = []  # a file of comments only: PostgreSQL answers with an empty query
    found = statements(text)
    tags = [match.group(1).strip() if (match := ROWS_TAG.search(comments)) else None for comments, _ in found]
    reads = [match.group(1).strip() if (match := READ_TAG.search(comments)) else None for comments, _ in found]
    if len(tags) != len(results):  # only a bug in statements() could do this: say so, not miscount
        raise StageError(f"{saved_path or name}: found {len(tags)} statements but PostgreSQL ran {len(results)}; "
                         "the -- rows: counts cannot be matched (please report it)")
    return [Result(command, rows, tag, read) for (command, rows), tag, read in zip(results, tags, reads)]


def counted_rows(results: list[Result]) -> int | None:
    """The rows the ``-- rows:`` statements wrote, or None when no statement counts."""
    counted = [result.rows for result in results if result.counted is not None]
    return sum(counted) if counted else None


def read_rows(results: list[Result]) -> tuple[int, str] | None:
    """The rows the ``-- read:`` statements made and what they are, or None."""
    read = [result for result in results if result.read is not None]
    return (sum(result.rows for result in read), read[0].read) if read else None


def describe_sql_error(exc: psycopg.Error, name: str, text: str, saved_path: Path | None) -> str:
    """``file:line:column: ERROR message`` for an error raised by a rendered file."""
    diag = exc.diag
    where = str(saved_path or f"sql/{name}")
    position = diag.statement_position
    if position and position.isdigit():
        before = text.encode("utf-8")[: int(position) - 1].decode("utf-8", "replace")
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
