"""Stream source files into raw.raw_events with COPY.

Python reads each file's bytes twice and never parses a data row: once to hash it (sha256,
plus a count of line breaks) and once to stream it to PostgreSQL's COPY. Only the header is
parsed here, to name the landing table's columns. PostgreSQL parses the CSV, checks the
encoding and writes the JSONB rows (sql/010, 015, 020).

A file may be local or an S3 object, gzip-compressed, or UTF-16: scripts/objectstore.py
turns the stored bytes into the text COPY reads, the same way on both passes, and the
second pass must see the bytes the first one hashed. A source that lists ``columns:``
lands each physical line whole and SQL splits it into fields, keeping the listed ones
(sql/011, 012): how a file wider than a PostgreSQL table (1,600 columns) is ingested.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts import objectstore, sqltemplate
from scripts.config import ConfigError, PipelineConfig, SourceFile
from scripts.objectstore import SourceError  # re-exported: the runner catches ingest.SourceError
from scripts.sqlexec import StageError, describe_sql_error, execute_sql

CHUNK = objectstore.CHUNK
RESERVED_COLUMNS = {"landing_record_number", "landing_line_number"}
# A PostgreSQL table has at most 1,600 columns; the landing table adds its own two.
MAX_TABLE_COLUMNS = 1600
MAX_HEADER_COLUMNS = MAX_TABLE_COLUMNS - len(RESERVED_COLUMNS)
EVERY_COLUMN_FILES = ("010_raw_landing.sql", "015_raw_landing_line_numbers.sql", "020_raw_events.sql")
KEPT_COLUMN_FILES = ("010_raw_landing.sql", "011_raw_landing_lines.sql", "012_raw_landing_records.sql",
                     "020_raw_events.sql")
RUN_LOCK_KEY = 7_342_002  # one pipeline run per database at a time

# PostgreSQL encoding names -> Python codecs, for reading the header line only
# (PostgreSQL decodes the data). LATINn are ISO 8859 parts, not numbered alike.
LATIN_PARTS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 9, 6: 10, 7: 13, 8: 14, 9: 15, 10: 16}
NAMED_CODECS = {
    "UTF8": "utf-8", "UNICODE": "utf-8", "SQLASCII": "latin-1", "KOI8R": "koi8_r", "KOI8U": "koi8_u",
    "EUCJP": "euc_jp", "EUCKR": "euc_kr", "SJIS": "shift_jis", "BIG5": "big5", "GBK": "gbk",
    "GB18030": "gb18030", "UHC": "cp949", "JOHAB": "johab",
}


def python_codec(encoding: str) -> str:
    """The Python codec that reads what PostgreSQL calls ``encoding``."""
    name = re.sub(r"[-_ ]", "", encoding.upper())
    if name in NAMED_CODECS:
        return NAMED_CODECS[name]
    if match := re.fullmatch(r"WIN(\d+)", name):
        return f"cp{match.group(1)}"
    if (match := re.fullmatch(r"LATIN(\d+)", name)) and int(match.group(1)) in LATIN_PARTS:
        return f"iso8859_{LATIN_PARTS[int(match.group(1))]}"
    if match := re.fullmatch(r"ISO8859(\d+)", name):
        return f"iso8859_{match.group(1)}"
    return encoding


class IngestError(Exception):
    """COPY refused a file; nothing of it was kept. The message names file and line."""


def describe_source(source: SourceFile) -> dict[str, Any]:
    """Read the file once, as COPY will, before any data work: hash the bytes as stored,
    count the line breaks of its content (decompressed, in UTF-8) and parse its header."""
    with objectstore.open_stored(source.path) as stored:
        content = objectstore.Content(stored)
        head, last = bytearray(), b""
        for chunk in content.chunks():
            if len(head) < CHUNK:
                head += chunk[: CHUNK - len(head)]
            last = chunk[-1:] or last
    # PostgreSQL reads a transcoded UTF-16 file as the UTF-8 it became
    copy_encoding = "UTF8" if content.transcoded_from else source.encoding
    return {
        "source_name": source.source_name,
        "path": source.path,
        "encoding": source.encoding,
        "copy_encoding": copy_encoding,
        "delimiter": source.delimiter,
        "quote": source.quote,
        "sha256": content.sha256,
        "bytes": content.stored_bytes,
        "etag": stored.etag,  # an S3 object's version as read: the COPY pass asks for the same
        "compression": content.compression,
        "transcoded_from": content.transcoded_from,
        "newlines": content.lines_done,
        "has_bom": content.has_bom,
        "ends_with_newline": last == b"\n",
        **read_header(source, bytes(head), copy_encoding),
    }


def read_header(source: SourceFile, head: bytes, encoding: str) -> dict[str, Any]:
    """Parse the header record only: the content up to the first line break outside quotes.

    ``head`` is the start of the content (decompressed, UTF-8 if it was UTF-16, without a
    byte-order mark). Returns the columns to land, how many physical lines the header spans
    (a quoted header name may hold a line break: the first record's line numbers start
    after it), the header's width and, when the source keeps some columns only, their
    positions in the header.
    """
    path = source.path
    end = -1
    while True:
        end = head.find(b"\n", end + 1)
        # a line break inside a quoted header field does not end the record
        if end == -1 or head[:end].count(source.quote.encode()) % 2 == 0:
            break
    if end == -1 and len(head) >= CHUNK:
        raise SourceError(f"{path}:1: no line break in the first {CHUNK:,} bytes: the header is longer than "
                          "1 MiB, or the delimiter or quote is not the file's")
    raw_header = head if end == -1 else head[: end + 1]
    try:
        text = raw_header.decode(python_codec(encoding))
    except (UnicodeDecodeError, LookupError) as exc:
        raise SourceError(f"{path}:1: cannot read the header as {encoding}: {exc}") from None
    header = next(csv.reader(io.StringIO(text, newline=""), delimiter=source.delimiter, quotechar=source.quote), None)
    if not header:
        raise SourceError(f"{path}:1: the file is empty; a CSV source needs a header line")
    shape = {"header_lines": max(1, raw_header.count(b"\n")), "header_width": len(header), "header": header}
    if source.columns is not None:
        return {**shape, "columns": list(source.columns), "keep_positions": kept_positions(path, header, source.columns)}
    if len(header) > MAX_HEADER_COLUMNS:
        raise SourceError(
            f"{path}:1: the header has {len(header):,} columns; PostgreSQL tables hold at most "
            f"{MAX_TABLE_COLUMNS:,} and landing needs {len(RESERVED_COLUMNS)} of them, so at most "
            f"{MAX_HEADER_COLUMNS:,} can land: list the columns to keep in sources[].columns"
        )
    for position, name in enumerate(header, start=1):
        check_column_name(path, position, name)
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise SourceError(f"{path}:1: header names column {duplicated[0]!r} more than once")
    return {**shape, "columns": header, "keep_positions": None}


def check_column_name(path: str, position: int, name: str) -> None:
    if not name.strip():
        raise SourceError(f"{path}:1: header column {position} has no name")
    if name in RESERVED_COLUMNS:
        raise SourceError(f"{path}:1: header column {position} uses the reserved name {name!r}")


def kept_positions(path: str, header: list[str], keep: list[str]) -> list[int]:
    """The 1-based header positions of the columns a source keeps (sources[].columns).

    Only the kept names must be usable: the other columns are never landed, so an empty or
    repeated name among them does not matter.
    """
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(position)
    kept = []
    for name in keep:
        found = positions.get(name, [])
        if not found:
            raise SourceError(f"{path}:1: sources[].columns lists {name!r}, which the header does not have"
                              f"{did_you_mean(name, header)}")
        if len(found) > 1:
            raise SourceError(f"{path}:1: header names column {name!r} more than once "
                              f"(columns {', '.join(map(str, found))}); sources[].columns cannot choose one")
        check_column_name(path, found[0], name)
        kept.append(found[0])
    return kept


def near_matches(name: str, names: Iterable[str]) -> list[str]:
    """Names that differ from ``name`` only in case or surrounding spaces (AMOUNT for amount)."""
    folded = name.strip().casefold()
    return sorted({n for n in names if n != name and n.strip().casefold() == folded})


def did_you_mean(name: str, names: Iterable[str]) -> str:
    near = near_matches(name, names)
    if not near:
        return ""
    return f"; the header has {' and '.join(map(repr, near))}, which differs only in case or spaces " \
           "(names must match exactly)"


def check_rule_columns(config: PipelineConfig, sources: list[dict[str, Any]]) -> None:
    """Refuse a rule on a column that no source file has (a typo, most likely).

    A column that some files have and others lack is data: in the records of the files
    that lack it the value is missing, and the rules say what that means (a
    required_columns rule fails on them, a non_null rule counts them). But a name that no
    file has while one differs from it only in case (``amount`` and ``AMOUNT``) is a typo
    wherever it is, and a header column the source does not keep can never be checked.
    """
    record_checks = getattr(config, "record_checks", config.checks)  # order-level checks address the model's columns
    required = {c["column"] for c in record_checks if c["rule"] == "required_columns"}
    known = {column for source in sources for column in source["columns"]}
    not_kept = {name for s in sources if s["keep_positions"] for name in s["header"]} - known
    for check in record_checks:
        column = check["column"]
        if column is None or column in known:
            continue
        where = rule_location(config, check)
        if near_matches(column, known | not_kept):
            raise ConfigError(*where, f"no source file has a column {column!r}{did_you_mean(column, known | not_kept)}")
        if column in not_kept:
            raise ConfigError(*where, f"{column!r} is in a header but not in its source's columns: list, "
                                      "so it is not landed: add it there")
        if column in required:
            continue
        raise ConfigError(*where, f"no source file has a column {column!r} (columns: {', '.join(sorted(known))})")
    # a condition on a column no file has would hold for no record (in) or every one (not_in)
    for check in record_checks:
        for condition in check["params"].get("where", []):
            if condition["column"] not in known:
                raise ConfigError(config.expectations_path, f"{check['key']}.where.{condition['column']}",
                                  f"no source file has a column {condition['column']!r}"
                                  f"{did_you_mean(condition['column'], known | not_kept)}")


def rule_location(config: PipelineConfig, check: dict[str, Any]) -> tuple[Path | str, str]:
    """Where the user wrote the column a check addresses: a rule's key, or for a check the
    runner added for a mapped column, the mapping in the pipeline config."""
    if check.get("implicit"):
        for canonical, column in config.columns.items():
            if column == check["column"]:
                return config.path, f"columns.{canonical}"
    return config.expectations_path, check["key"]


def lock_pipeline(conn: psycopg.Connection, timeout: float = 600.0, log: Callable[[str], None] = print) -> None:
    """One run per database at a time: the lock ends with the session that holds it.

    A run that finds the lock held says who holds it and waits, up to ``timeout`` seconds
    (0: not at all). A killed runner's session ends within a second even in mid-statement,
    because the runner's sessions set client_connection_check_interval (scripts/run.py).
    """
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:
        return
    holder = conn.execute(
        "SELECT a.pid, a.application_name, a.state FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (RUN_LOCK_KEY,),
    ).fetchone()
    who = f"pid {holder[0]} ({holder[1] or 'no application name'}, {holder[2]})" if holder else "another session"
    if timeout <= 0:
        raise IngestError(f"another pipeline run holds the lock on this database ({who}); "
                          "wait for it to finish, or give --lock-timeout to wait for it")
    log(f"waiting up to {timeout:g} s for the pipeline lock, held by {who} ...")
    started = time.monotonic()
    try:
        with conn.transaction():  # the wait's limit is local; the lock itself is the session's
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout * 1000)}ms",))
            conn.execute("SELECT pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        raise IngestError(f"gave up after {timeout:g} s waiting for the pipeline lock, held by {who}; "
                          "give --lock-timeout to wait longer") from None
    log(f"  got the pipeline lock after {time.monotonic() - started:.1f} s")


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
    """The templates that ingest ``source``, in order: every column lands through CSV COPY;
    kept columns land as whole lines that SQL splits (011, 012)."""
    return KEPT_COLUMN_FILES if source["keep_positions"] else EVERY_COLUMN_FILES


def render_ingest(source: dict[str, Any]) -> list[tuple[str, str]]:
    context = {
        "landing_columns": source["columns"],
        "file_sha256": source["sha256"],
        "source_name": source["source_name"],
        "file_path": source["path"],
        "file_bytes": source["bytes"],
        "header_lines": source["header_lines"],
    }
    return [(name, sqltemplate.render(name, context)) for name in ingest_files(source)]


def csv_settings(source: dict[str, Any]) -> dict[str, str]:
    """The session settings sql/012 reads (raw_to_ready.csv_*): the source's dialect and header.

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
    if kept:  # the settings sql/012 reads
        settings = [f"SET {name} = {sql.Literal(value).as_string(None)};" for name, value in csv_settings(source).items()]
        steps = [include["010_raw_landing.sql"], include["011_raw_landing_lines.sql"], copy, *settings,
                 include["012_raw_landing_records.sql"], include["020_raw_events.sql"]]
    else:
        steps = [include["010_raw_landing.sql"], copy, include["015_raw_landing_line_numbers.sql"],
                 include["020_raw_events.sql"]]
    program = "PROGRAM" in copy
    return (
        f"-- Ingests {source['path']} (sha256 {source['sha256']}) with psql, as the runner does.\n"
        "-- From the directory the config's paths are relative to (the repository root):\n"
        f"--   psql -v ON_ERROR_STOP=1 -v run_id=manual-1 --single-transaction -f <this file>\n"
        "-- Re-ingesting a file whose sha256 is stored fails on raw.ingested_files' primary key.\n"
        + ("-- The file is read through a program run by psql on this machine (it needs "
           f"{', '.join(program_tools(source, kept))}); unlike the runner it does not check\n"
           "-- that the bytes it reads still have the sha256 above.\n" if program else "")
        + "SET raw_to_ready.run_id = :'run_id';\n"
        + "\n".join(steps) + "\n"
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


def ingest_file(
    conn: psycopg.Connection,
    source: dict[str, Any],
    index: int,
    save: Callable[[str, str, str], Path],
    log: Callable[[str], None],
) -> int:
    """COPY one file into raw.raw_events inside the caller's transaction; return rows added."""
    already = conn.execute(
        "SELECT run_id, record_count FROM raw.ingested_files WHERE file_sha256 = %s", (source["sha256"],)
    ).fetchone()
    if already:
        log(f"  {source['path']}: already ingested (sha256 {source['sha256'][:12]}, "
            f"{already[1]:,} records, run {already[0]}); 0 rows added")
        return 0
    rendered = dict(render_ingest(source))
    suffix = f".file{index}"

    def saved(name: str) -> Path:  # each rendered file is kept beside the run's other SQL
        return save(name, rendered[name], suffix)

    def run(name: str) -> None:
        execute_sql(conn, name, rendered[name], saved(name))

    run("010_raw_landing.sql")
    if source["keep_positions"]:
        records = land_kept_columns(conn, source, rendered, saved, run)
    else:
        records = land_every_column(conn, source, run)
    try:
        run("020_raw_events.sql")
    except StageError as exc:
        raise IngestError(f"{source['path']}: {exc}") from None
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


def land_kept_columns(conn: psycopg.Connection, source: dict[str, Any], rendered: dict[str, str],
                      saved: Callable[[str], Path], run: Callable[[str], None]) -> int:
    """Each physical line lands whole (011, COPY's text format); 012 joins the lines of a
    record, splits it into fields and keeps the listed columns. No table is ever wider than
    the kept columns, and Python still never looks at a row."""
    run("011_raw_landing_lines.sql")
    for name, value in csv_settings(source).items():  # until the transaction ends
        conn.execute("SELECT meta.set_run_setting(%s, %s)", (name, value))
    with conn.cursor() as cur:
        copy_content(cur, lines_copy_statement(source), source, escape_text=True)
    name = "012_raw_landing_records.sql"
    path = saved(name)
    try:
        with conn.cursor() as cur:
            cur.execute(rendered[name].encode("utf-8"))
    except psycopg.errors.BadCopyFileFormat as exc:  # 012's own check names file and line
        raise IngestError(f"{exc.diag.message_primary}; nothing of this file was kept") from None
    except psycopg.Error as exc:
        raise IngestError(f"{source['path']}: {describe_sql_error(exc, name, rendered[name], path)}") from None
    return conn.execute("SELECT count(*) FROM raw_landing").fetchone()[0]


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
