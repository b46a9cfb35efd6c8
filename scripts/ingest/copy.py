"""Stream source files into raw.raw_events with COPY.

Python reads each file's bytes twice and never parses a data row: once to hash it (sha256,
plus a count of line breaks) and once to stream it to PostgreSQL's COPY. Only the header is
parsed here, to name the landing table's columns. PostgreSQL parses the CSV, checks the
encoding and writes the JSONB rows (sql/10_ingest/010, 011, 015, 020).

A file may be local or an S3 object, gzip-compressed, or UTF-16: scripts/objectstore.py
turns the stored bytes into the text COPY reads, the same way on both passes, and the
second pass must see the bytes the first one hashed. A source that lists ``columns:``
lands each physical line whole and SQL splits it into fields, keeping the listed ones
(sql/10_ingest/012, 013): how a file wider than a PostgreSQL table (1,600 columns) is ingested.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts import objectstore
from scripts.db import render
from scripts.db.execute import describe_sql_error, execute_sql
from scripts.errors import IngestError, SourceError, StageError

CHUNK = objectstore.CHUNK
# A file alone, as the DBA's psql script ingests it: the landing (010), the file named (011),
# its records landed (COPY; 012 and 013 when kept columns are split out of whole lines; 015
# when quoted fields hold line breaks), then the INSERT into raw.raw_events (020). The runner
# lands every file of one header into one landing and runs 010 and 020 once for them all.
EVERY_COLUMN_FILES = ("010_raw_landing.sql", "011_raw_landing_file.sql", "015_raw_landing_line_numbers.sql",
                      "020_raw_events.sql")
KEPT_COLUMN_FILES = ("010_raw_landing.sql", "011_raw_landing_file.sql", "012_raw_landing_lines.sql",
                     "013_raw_landing_records.sql", "020_raw_events.sql")
LANDING_FILES = ("010_raw_landing.sql", "020_raw_events.sql")  # once per landing


def require_ingested(conn: psycopg.Connection, sources: list[dict[str, Any]]) -> None:
    stored = {
        row[0]
        for row in conn.execute(
            "SELECT file_sha256 FROM raw.ingested_files WHERE file_sha256 = ANY(%s)",
            ([s["sha256"] for s in sources],),
        )
    }
    for source in sources:
        if source["sha256"] not in stored:
            raise IngestError(f"{source['path']} (sha256 {source['sha256'][:12]}) is not ingested: run the ingest stage")


def ingest_files(source: dict[str, Any]) -> tuple[str, ...]:
    """The templates that ingest ``source`` alone, in order: every column lands through CSV
    COPY; kept columns land as whole lines that SQL splits (012, 013)."""
    return KEPT_COLUMN_FILES if source["keep_positions"] else EVERY_COLUMN_FILES


ANALYZE_FILE = "025_raw_events_analyze.sql"  # after the last file: fresh statistics for what was added


def render_analyze() -> list[tuple[str, str]]:
    return [(ANALYZE_FILE, render.render(f"{render.stage_folder('ingest')}/{ANALYZE_FILE}", {}))]


def render_ingest(source: dict[str, Any], file_number: int = 1,
                  names: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """``source``'s ingest templates (``names``, by default all of ``ingest_files(source)``),
    rendered for it as file ``file_number`` of its landing."""
    context = {
        "landing_columns": source["columns"],
        "file_number": file_number,
        "file_sha256": source["sha256"],
        "source_name": source["source_name"],
        "file_path": source["path"],
        "file_bytes": source["bytes"],
        "header_lines": source["header_lines"],
    }
    folder = render.stage_folder("ingest")
    return [(name, render.render(f"{folder}/{name}", context)) for name in names or ingest_files(source)]


def csv_settings(source: dict[str, Any]) -> dict[str, str]:
    """The session settings sql/013 reads (raw_to_ready.csv_*): the source's dialect and header.

    The patterns are PostgreSQL regular expressions for the CSV grammar COPY reads, over a
    record with a delimiter put in front: each match is a delimiter and one field, quoted (a
    doubled quote inside is one quote character) or not; a record is well formed when the
    matches cover it.
    """
    d, q = (c if c.isalnum() else "\\" + c for c in (source["delimiter"], source["quote"]))
    field = f"{q}(?:[^{q}]|{q}{q})*{q}|[^{d}{q}]*"
    return {
        "raw_to_ready.csv_delimiter": source["delimiter"],
        "raw_to_ready.csv_quote": source["quote"],
        "raw_to_ready.csv_field_pattern": f"{d}({field})",
        "raw_to_ready.csv_record_pattern": f"^(?:{d}(?:{field}))+$",
        "raw_to_ready.csv_header_width": str(source["header_width"]),
        "raw_to_ready.csv_keep_positions": "{" + ",".join(map(str, source["keep_positions"])) + "}",
    }


def copy_statement(source: dict[str, Any]) -> sql.Composed:
    """COPY of every column: PostgreSQL parses the CSV."""
    return sql.SQL(
        "COPY raw_landing ({columns}) FROM STDIN WITH "
        "(FORMAT csv, HEADER true, DELIMITER {delimiter}, QUOTE {quote}, ENCODING {encoding})"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in source["columns"]),
        delimiter=sql.Literal(source["delimiter"]),
        quote=sql.Literal(source["quote"]),
        encoding=sql.Literal(source["copy_encoding"]),
    )


def lines_copy_statement(source: dict[str, Any]) -> sql.Composed:
    """COPY of whole lines (the content escaped by objectstore.Content(escape_text=True))."""
    return sql.SQL("COPY raw_landing_lines (line_text) FROM STDIN WITH (FORMAT text, ENCODING {encoding})").format(
        encoding=sql.Literal(source["copy_encoding"]))


def psql_ingest_script(source: dict[str, Any], rendered: list[str]) -> str:
    """A psql script that ingests ``source`` the way the runner does, with \\copy.

    ``rendered`` names the rendered files of ``ingest_files(source)``, in order. A file
    that is compressed, UTF-16, kept in S3 or landed line by line is read through a shell
    pipeline (``\\copy ... FROM PROGRAM``) that does what the runner does in Python.
    """
    files = dict(zip(ingest_files(source), rendered))
    kept = bool(source["keep_positions"])
    statement = lines_copy_statement(source) if kept else copy_statement(source)
    copy = statement.as_string(None).replace("COPY ", "\\copy ", 1)
    copy = copy.replace("FROM STDIN", "FROM " + psql_input(source, escape_text=kept), 1)
    include = {name: f"\\ir {rendered_name}" for name, rendered_name in files.items()}
    if kept:  # the settings sql/013 reads
        settings = [f"SET {name} = {sql.Literal(value).as_string(None)};" for name, value in csv_settings(source).items()]
        steps = [include["010_raw_landing.sql"], include["011_raw_landing_file.sql"],
                 include["012_raw_landing_lines.sql"], copy, *settings,
                 include["013_raw_landing_records.sql"], include["020_raw_events.sql"]]
    else:
        steps = [include["010_raw_landing.sql"], include["011_raw_landing_file.sql"], copy,
                 include["015_raw_landing_line_numbers.sql"], include["020_raw_events.sql"]]
    program = "PROGRAM" in copy
    return (
        f"-- Ingests {source['path']} (sha256 {source['sha256']}) with psql, as the runner does.\n"
        "-- From the directory the config's paths are relative to (the repository root):\n"
        f"--   psql -v ON_ERROR_STOP=1 -v run_id=manual-1 --single-transaction -f <this file>\n"
        "-- A file whose sha256 raw.ingested_files holds is skipped, as the runner skips it.\n"
        + ("-- The file is read through a program run by psql on this machine (it needs "
           f"{', '.join(program_tools(source, kept))}); unlike the runner it does not check\n"
           "-- that the bytes it reads still have the sha256 above.\n" if program else "")
        + "SET raw_to_ready.run_id = :'run_id';\n"
        + f"SELECT EXISTS (SELECT 1 FROM raw.ingested_files WHERE file_sha256 = {sql.Literal(source['sha256']).as_string(None)})"
        + " AS already_ingested \\gset\n"
        + "\\if :already_ingested\n"
        + f"\\echo {source['path']}: already ingested (sha256 {source['sha256'][:12]}); skipped\n"
        + "\\else\n"
        + "\n".join(steps) + "\n"
        + "\\endif\n"
    )


def program_tools(source: dict[str, Any], escape_text: bool) -> list[str]:
    tools = ["aws (the AWS CLI, credentials from the same AWS_* variables)"] if objectstore.is_s3(source["path"]) else []
    tools += ["gzip"] if source["compression"] else []
    tools += ["iconv"] if source["transcoded_from"] else []
    return tools + (["sed"] if escape_text else [])


def psql_input(source: dict[str, Any], escape_text: bool) -> str:
    """What \\copy reads: the file itself, or ``PROGRAM '<pipeline>'`` doing what
    objectstore.Content does: fetch, gunzip, UTF-16 to UTF-8, escape for the text format."""
    path = source["path"]
    steps = [f"aws s3 cp {shlex.quote(path)} -" if objectstore.is_s3(path) else f"cat {shlex.quote(path)}"]
    if source["compression"] == "gzip":
        steps.append("gzip -dc")
    if source["transcoded_from"]:
        steps.append("iconv -f UTF-16 -t UTF-8")  # reads the byte-order mark, drops it
    if escape_text:
        steps.append(r"LC_ALL=C sed -e 's/\\/\\\\/g' -e 's/\t/\\t/g' -e 's/\r/\\r/g'")
    if len(steps) == 1 and not objectstore.is_s3(path):
        return sql.Literal(path).as_string(None)
    # psql reads the command as a quoted string: a quote is doubled, nothing else is special
    return "PROGRAM '" + " | ".join(steps).replace("'", "''") + "'"


def ingest(conn: psycopg.Connection, sources: list[dict[str, Any]],
           save: Callable[[str, str, str], Path], log: Callable[[str], None]) -> int:
    """COPY the run's new files into raw.raw_events inside the caller's transaction; return
    the records added (and set each source's ``ingested_rows``). Files whose headers name
    the same columns land in one landing table and reach raw.raw_events in one INSERT, so a
    backfill of hundreds of daily files costs a few statements per file, not a table each."""
    stored = {sha: (run_id, count) for sha, run_id, count in conn.execute(
        "SELECT file_sha256, run_id, record_count FROM raw.ingested_files WHERE file_sha256 = ANY(%s)",
        ([s["sha256"] for s in sources],))}
    landings: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    landing_now: set[str] = set()
    for index, source in enumerate(sources, start=1):
        source["ingested_rows"] = 0
        if source["sha256"] in stored:
            run_id, count = stored[source["sha256"]]
            log(f"  {source['path']}: already ingested (sha256 {source['sha256'][:12]}, "
                f"{count:,} records, run {run_id}); 0 rows added")
        elif source["sha256"] in landing_now:
            log(f"  {source['path']}: the same content as a file before it (sha256 {source['sha256'][:12]}); "
                "0 rows added")
        else:
            landing_now.add(source["sha256"])
            landings.setdefault(tuple(source["columns"]), []).append((index, source))
    return sum(ingest_landing(conn, files, save, log) for files in landings.values())


def ingest_landing(conn: psycopg.Connection, files: list[tuple[int, dict[str, Any]]],
                   save: Callable[[str, str, str], Path], log: Callable[[str], None]) -> int:
    """Files of one header: one landing (010), each file named (011) and landed, one INSERT
    (020); return the records added."""
    (first_index, first), last_index = files[0], files[-1][0]
    landing = dict(render_ingest(first, first_index, LANDING_FILES))
    suffix = f".file{first_index}" if len(files) == 1 else f".files{first_index}-{last_index}"
    execute_sql(conn, "010_raw_landing.sql", landing["010_raw_landing.sql"],
                save("010_raw_landing.sql", landing["010_raw_landing.sql"], suffix))
    total = 0
    for index, source in files:
        total += land_file(conn, source, index, save, log)
    name = "020_raw_events.sql"
    try:
        execute_sql(conn, name, landing[name], save(name, landing[name], suffix))
    except StageError as exc:
        also = f" (and {len(files) - 1} other file(s) landed with it)" if len(files) > 1 else ""
        raise IngestError(f"{first['path']}{also}: {exc}") from None
    return total


def land_file(conn: psycopg.Connection, source: dict[str, Any], index: int,
              save: Callable[[str, str, str], Path], log: Callable[[str], None]) -> int:
    """Name one file in the landing (011) and land its records; return them."""
    names = ingest_files(source)
    rendered = dict(render_ingest(source, index, tuple(n for n in names if n not in LANDING_FILES)))
    suffix = f".file{index}"

    def saved(name: str) -> Path:  # each rendered file is kept beside the run's other SQL
        return save(name, rendered[name], suffix)

    def run(name: str) -> None:
        execute_sql(conn, name, rendered[name], saved(name))

    run("011_raw_landing_file.sql")
    if source["keep_positions"]:
        records = land_kept_columns(conn, source, index, rendered, saved, run)
    else:
        records = land_every_column(conn, source, run)
    source["ingested_rows"] = records
    log(f"  {source['path']}: {records:,} records ingested (sha256 {source['sha256'][:12]})")
    return records


def land_every_column(conn: psycopg.Connection, source: dict[str, Any], run: Callable[[str], None]) -> int:
    """PostgreSQL's CSV COPY into raw_landing, one column per header name; return records."""
    with conn.cursor() as cur:
        copy_content(cur, copy_statement(source), source)
        records = cur.rowcount
    # More line breaks than the header's and one per record means quoted fields span lines.
    expected_breaks = records + source["header_lines"] - (0 if source["ends_with_newline"] else 1)
    if source["newlines"] > expected_breaks:
        run("015_raw_landing_line_numbers.sql")
    return records


def land_kept_columns(conn: psycopg.Connection, source: dict[str, Any], index: int, rendered: dict[str, str],
                      saved: Callable[[str], Path], run: Callable[[str], None]) -> int:
    """Each physical line lands whole (012, COPY's text format); 013 joins the lines of a
    record, splits it into fields and keeps the listed columns. No table is ever wider than
    the kept columns, and Python still never looks at a row."""
    run("012_raw_landing_lines.sql")
    for name, value in csv_settings(source).items():  # until the transaction ends
        conn.execute("SELECT meta.set_run_setting(%s, %s)", (name, value))
    with conn.cursor() as cur:
        copy_content(cur, lines_copy_statement(source), source, escape_text=True)
    name = "013_raw_landing_records.sql"
    path = saved(name)
    try:
        with conn.cursor() as cur:
            cur.execute(rendered[name].encode("utf-8"))
    except psycopg.errors.BadCopyFileFormat as exc:  # 013's own check names file and line
        raise IngestError(f"{exc.diag.message_primary}; nothing of this file was kept") from None
    except psycopg.Error as exc:
        raise IngestError(f"{source['path']}: {describe_sql_error(exc, name, rendered[name], path)}") from None
    return conn.execute("SELECT count(*) FROM raw_landing WHERE landing_file = %s", (index,)).fetchone()[0]


def copy_content(cur: psycopg.Cursor, statement: sql.Composed, source: dict[str, Any], escape_text: bool = False) -> None:
    """Stream the file's content into COPY, and refuse it unless it is the content that was
    described: the S3 object must keep its ETag (If-Match) and the bytes their sha256."""
    try:
        with objectstore.open_stored(source["path"], etag=source["etag"]) as stored:
            content = objectstore.Content(stored, escape_text=escape_text)
            with cur.copy(statement) as copy:
                for chunk in content.chunks():
                    copy.write(chunk)
    except SourceError as exc:
        raise IngestError(f"{exc}; nothing of this file was kept") from None
    except psycopg.Error as exc:
        raise IngestError(describe_copy_error(exc, source)) from None
    if content.sha256 != source["sha256"]:
        raise IngestError(f"{source['path']}: the file changed while it was being read (sha256 "
                          f"{source['sha256'][:12]} when described, {content.sha256[:12]} when copied): run again; "
                          "nothing of this file was kept")


def describe_copy_error(exc: psycopg.Error, source: dict[str, Any]) -> str:
    context = exc.diag.context or ""
    match = re.search(r"line (\d+)", context)
    where = f"{source['path']}:{match.group(1)}" if match else source["path"]
    message = exc.diag.message_primary or str(exc).strip()
    hint = ""
    if isinstance(exc, (psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter)):
        hint = f" (the config says the file is {source['encoding']}; set sources[].encoding if it is not)"
    elif isinstance(exc, psycopg.errors.BadCopyFileFormat):
        hint = f" (the header has {source['header_width']} columns; every record needs as many fields)"
    elif isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        hint = " (a record too wide for one table row: list the columns to keep in sources[].columns)"
    return f"{where}: {message}{hint}; nothing of this file was kept"
