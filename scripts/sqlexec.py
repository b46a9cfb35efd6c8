"""Execute rendered SQL files and turn server errors into file:line:column messages."""

from __future__ import annotations

from pathlib import Path

import psycopg


class StageError(Exception):
    """A stage failed at run time; the message is what the user needs to act."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate  # the server's SQLSTATE, when the server raised it


def execute_sql(
    conn: psycopg.Connection, name: str, text: str, saved_path: Path | None
) -> list[tuple[str, int]]:
    """Execute one rendered file (all its statements); return (command, rows) per statement."""
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
