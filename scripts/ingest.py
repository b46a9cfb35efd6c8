"""Stream source files into raw.raw_events with COPY.

Python reads each file's bytes twice and never parses a data row: once to hash it (sha256,
plus a count of line breaks) and once to stream it to PostgreSQL's COPY. Only the header is
parsed here, to name the landing table's columns. PostgreSQL parses the CSV, checks the
encoding and writes the JSONB rows (sql/010, 015, 020).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts import sqltemplate
from scripts.config import ConfigError, PipelineConfig, SourceFile
from scripts.sqlexec import StageError, execute_sql

CHUNK = 1 << 20
BOM = codecs.BOM_UTF8
RESERVED_COLUMNS = {"landing_record_number", "landing_line_number"}
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


class SourceError(Exception):
    """A source file cannot be read (missing, empty, bad header)."""


class IngestError(Exception):
    """COPY refused a file; nothing of it was kept. The message names file and line."""


def describe_source(source: SourceFile) -> dict[str, Any]:
    """Hash the file and read its header: everything known before any data work."""
    path = Path(source.path)
    digest = hashlib.sha256()
    newlines = size = 0
    try:
        with path.open("rb") as handle:
            first = handle.read(CHUNK)
            chunk = first
            while chunk:
                digest.update(chunk)
                newlines += chunk.count(b"\n")
                size += len(chunk)
                chunk = handle.read(CHUNK)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    has_bom = first.startswith(BOM)
    return {
        "source_name": source.source_name,
        "path": source.path,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
        "quote": source.quote,
        "sha256": digest.hexdigest(),
        "bytes": size,
        "newlines": newlines,
        "has_bom": has_bom,
        "ends_with_newline": size > 0 and _last_byte(path) == b"\n",
        **read_header(path, source, has_bom),
    }


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, io.SEEK_END)
        return handle.read(1)


def read_header(path: Path, source: SourceFile, has_bom: bool) -> dict[str, Any]:
    """Parse the header record only: the bytes up to the first line break outside quotes.

    Returns its column names and how many physical lines it spans (a quoted header name
    may hold a line break), which is where the first record's line numbers start.
    """
    encoding = python_codec(source.encoding)
    with path.open("rb") as handle:
        head = handle.read(CHUNK)
    if has_bom:
        head = head[len(BOM):]
    end = -1
    while True:
        end = head.find(b"\n", end + 1)
        # a line break inside a quoted header field does not end the record
        if end == -1 or head[:end].count(source.quote.encode()) % 2 == 0:
            break
    raw_header = head if end == -1 else head[: end + 1]
    try:
        text = raw_header.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise SourceError(f"{path}:1: cannot read the header as {source.encoding}: {exc}") from None
    header = next(csv.reader(io.StringIO(text, newline=""), delimiter=source.delimiter, quotechar=source.quote), None)
    if not header:
        raise SourceError(f"{path}:1: the file is empty; a CSV source needs a header line")
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise SourceError(f"{path}:1: header column {position} has no name")
        if name in RESERVED_COLUMNS:
            raise SourceError(f"{path}:1: header column {position} uses the reserved name {name!r}")
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise SourceError(f"{path}:1: header names column {duplicated[0]!r} more than once")
    return {"columns": header, "header_lines": max(1, raw_header.count(b"\n"))}


def check_rule_columns(config: PipelineConfig, sources: list[dict[str, Any]]) -> None:
    """Refuse a rule on a column that no source file has (a typo, most likely).

    A column that some files have and others lack is data: in the records of the files
    that lack it the value is missing, and the rules say what that means (a
    required_columns rule fails on them, a non_null rule counts them).
    """
    required = {c["column"] for c in config.checks if c["rule"] == "required_columns"}
    known = {column for source in sources for column in source["columns"]}
    for check in config.checks:
        column = check["column"]
        if column is None or column in required or column in known:
            continue
        raise ConfigError(
            config.expectations_path, check["key"],
            f"no source file has a column {column!r} (columns: {', '.join(sorted(known))})",
        )


def lock_pipeline(conn: psycopg.Connection) -> None:
    """One run per database at a time; the lock ends with the connection."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:
        raise IngestError("another pipeline run holds the lock on this database; wait for it to finish")


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


def render_ingest(source: dict[str, Any]) -> list[tuple[str, str]]:
    context = {
        "landing_columns": source["columns"],
        "file_sha256": source["sha256"],
        "source_name": source["source_name"],
        "file_path": source["path"],
        "file_bytes": source["bytes"],
        "header_lines": source["header_lines"],
    }
    return [(name, sqltemplate.render(name, context)) for name in
            ("010_raw_landing.sql", "015_raw_landing_line_numbers.sql", "020_raw_events.sql")]


def copy_statement(source: dict[str, Any]) -> sql.Composed:
    return sql.SQL(
        "COPY raw_landing ({columns}) FROM STDIN WITH "
        "(FORMAT csv, HEADER true, DELIMITER {delimiter}, QUOTE {quote}, ENCODING {encoding})"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in source["columns"]),
        delimiter=sql.Literal(source["delimiter"]),
        quote=sql.Literal(source["quote"]),
        encoding=sql.Literal(source["encoding"]),
    )


def psql_ingest_script(source: dict[str, Any], rendered: list[str]) -> str:
    """A psql script that ingests ``source`` the way the runner does, with \\copy."""
    landing, line_numbers, events = rendered
    copy = copy_statement(source).as_string(None).replace("COPY raw_landing", "\\copy raw_landing", 1)
    copy = copy.replace("FROM STDIN", "FROM " + sql.Literal(source["path"]).as_string(None), 1)
    return (
        f"-- Ingests {source['path']} (sha256 {source['sha256']}) with psql, as the runner does.\n"
        "-- From the directory the config's paths are relative to (the repository root):\n"
        f"--   psql -v ON_ERROR_STOP=1 -v run_id=manual-1 --single-transaction -f <this file>\n"
        "-- Re-ingesting a file whose sha256 is stored fails on raw.ingested_files' primary key.\n"
        "SET raw_to_ready.run_id = :'run_id';\n"
        f"\\ir {landing}\n"
        f"{copy}\n"
        f"\\ir {line_numbers}\n"
        f"\\ir {events}\n"
    )


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
    landing = rendered["010_raw_landing.sql"]
    execute_sql(conn, "010_raw_landing.sql", landing, save("010_raw_landing.sql", landing, suffix))
    try:
        with conn.cursor() as cur, Path(source["path"]).open("rb") as fh:
            with cur.copy(copy_statement(source)) as copy:
                if source["has_bom"]:
                    fh.read(len(BOM))
                while chunk := fh.read(CHUNK):
                    copy.write(chunk)
            records = cur.rowcount
    except psycopg.Error as exc:
        raise IngestError(describe_copy_error(exc, source)) from None
    # More line breaks than the header's and one per record means quoted fields span lines.
    expected_breaks = records + source["header_lines"] - (0 if source["ends_with_newline"] else 1)
    if source["newlines"] > expected_breaks:
        text = rendered["015_raw_landing_line_numbers.sql"]
        execute_sql(conn, "015_raw_landing_line_numbers.sql", text,
                    save("015_raw_landing_line_numbers.sql", text, suffix))
    text = rendered["020_raw_events.sql"]
    try:
        execute_sql(conn, "020_raw_events.sql", text, save("020_raw_events.sql", text, suffix))
    except StageError as exc:
        raise IngestError(f"{source['path']}: {exc}") from None
    log(f"  {source['path']}: {records:,} records ingested (sha256 {source['sha256'][:12]})")
    return records


def describe_copy_error(exc: psycopg.Error, source: dict[str, Any]) -> str:
    context = exc.diag.context or ""
    match = re.search(r"line (\d+)", context)
    where = f"{source['path']}:{match.group(1)}" if match else source["path"]
    message = exc.diag.message_primary or str(exc).strip()
    hint = ""
    if isinstance(exc, (psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter)):
        hint = f" (the config says the file is {source['encoding']}; set sources[].encoding if it is not)"
    elif isinstance(exc, psycopg.errors.BadCopyFileFormat):
        hint = f" (the header has {len(source['columns'])} columns; every record needs as many fields)"
    return f"{where}: {message}{hint}; nothing of this file was kept"
