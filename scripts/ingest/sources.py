"""What a source file is, read before any data work: its bytes hashed, its line breaks
counted, its header parsed and checked, and the rule columns checked against it.

Python reads each file's bytes once here and never parses a data row: only the header is
parsed, to name the landing table's columns. A file may be local or an S3 object,
gzip-compressed, or UTF-16: scripts/objectstore.py turns the stored bytes into the text
COPY will read (scripts/ingest/copy.py reads it again the same way).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scripts import objectstore
from scripts.config import PipelineConfig, SourceFile
from scripts.errors import ConfigError, SourceError

CHUNK = objectstore.CHUNK
RESERVED_COLUMNS = {"landing_record_number", "landing_line_number", "landing_file"}
# A PostgreSQL table has at most 1,600 columns; the landing table adds its own three.
MAX_TABLE_COLUMNS = 1600
MAX_HEADER_COLUMNS = MAX_TABLE_COLUMNS - len(RESERVED_COLUMNS)

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
