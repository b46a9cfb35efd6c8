"""Point-in-time retrieval: the customer features as of arbitrary instants.

    python -m scripts.serve.retrieve --config configs/pipeline.yaml --entities entities.csv --out features.csv
    make retrieve ENTITIES=entities.csv OUT=features.csv

ENTITIES is a UTF-8 CSV file whose header names exactly the columns customer_id and as_of,
in either order; each further line is an entity. OUT gets one line per entity, in the
entities' order, with a header: customer_id, as_of, then the columns of
feats.customer_features (orders_<N>d and revenue_<N>d per features.windows_days,
days_since_last_order), computed by feats.features_as_of (sql/052) from the staged orders
at or before as_of only, with the definitions of sql/050.

- customer_id is trimmed as staging trims it; an unknown customer gets the empty values
  (orders 0, revenue 0, days_since_last_order NULL or features.days_since_last_order_if_none).
- as_of is any PostgreSQL timestamp: one with an offset (2025-12-08T10:00:00+01:00, ...Z)
  is that instant; a naive one (2025-12-08 10:00) is read in staging.source_timezone, and an
  ambiguous date (01/02/2025) in staging.date_order, as staging reads order timestamps. OUT
  writes as_of in UTC (2025-12-08 09:00:00+00).
- Python never parses a data row: the file streams into a temporary table with COPY, the
  checks and the retrieval are SQL, and the result streams back with COPY into a temporary
  file beside OUT, renamed to OUT at the end. On any error OUT is not touched.

Exit codes: 0 written; 2 bad input or usage (the config, the entities file: a wrong header,
a record with the wrong number of fields, an empty customer_id, an as_of that is not a
timestamp; each message names the file and line; OUT's folder missing); 3 runtime or
database error, including a database where the features stage has not run (or ran with
other features.windows_days): "run make all (or make features) first".
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from scripts import config as config_mod
from scripts.config import PipelineConfig
from scripts.config.columns import feature_columns as config_feature_columns
from scripts.console import log
from scripts.db import connection, pipelines
from scripts.errors import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, CommandError, ConfigError, EmbeddedServerError, failure

CHUNK = 1 << 20  # bytes per COPY write
COLUMNS = ("customer_id", "as_of")
FUNCTION = "feats.features_as_of(text[], timestamptz[])"
# Staging's trim (sql/macros/rules.sql, trimmed) and the words PostgreSQL's timestamp input
# accepts that are not data (rules.sql, not_data_pattern): now, today, epoch, infinity, ...
TRIM_CHARACTERS = " \t\n\r\f\x0b"
NOT_DATA_PATTERN = r"\m(now|today|tomorrow|yesterday|epoch|infinity|allballs)\M"
SHOWN_PROBLEMS = 5  # bad entities named in the message; the count says how many in all
FIRST_WORDS = "run make all (or make features) first"


class RetrieveError(CommandError):
    """Retrieval cannot go on; ``code`` is the exit code, the message says why."""


def usage_error(message: str) -> RetrieveError:
    return RetrieveError(message, EXIT_USAGE)


def runtime_error(message: str) -> RetrieveError:
    return RetrieveError(message, EXIT_RUNTIME)


# --- the entities file ----------------------------------------------------------------------


def read_header(path: Path) -> list[str]:
    """The header line's column names (the first line only; the rows are PostgreSQL's)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(CHUNK)
    except FileNotFoundError:
        raise usage_error(f"{path}: no such file (--entities)") from None
    except IsADirectoryError:
        raise usage_error(f"{path}: is a folder, not a CSV file (--entities)") from None
    except OSError as exc:
        raise usage_error(f"{path}: cannot read: {exc.strerror or exc} (--entities)") from None
    head = head.removeprefix(codecs.BOM_UTF8)
    if not head:
        raise usage_error(f"{path}: the file is empty: it needs the header customer_id,as_of")
    end = head.find(b"\n")
    if end == -1 and len(head) >= CHUNK:
        raise usage_error(f"{path}:1: no line break in the first {CHUNK:,} bytes: the header must be customer_id,as_of")
    line = head if end == -1 else head[:end]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise usage_error(f"{path}:1: the header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    header = next(csv.reader(io.StringIO(text.removesuffix("\r"), newline="")), [])
    if not header or header == [""]:
        raise usage_error(f"{path}:1: the first line is empty: it must be the header customer_id,as_of")
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in header]
    repeated = sorted({name for name in header if name in COLUMNS and header.count(name) > 1})
    problems = []
    if unknown:
        problems.append("unknown column(s) " + ", ".join(repr(name) for name in unknown))
    if missing:
        problems.append("missing column(s) " + ", ".join(repr(name) for name in missing))
    if repeated:
        problems.append("column(s) named twice " + ", ".join(repr(name) for name in repeated))
    if problems:
        raise usage_error(f"{path}:1: {'; '.join(problems)}: the header must be exactly customer_id,as_of "
                          "(in either order)")
    return header


def check_out(out: Path, entities: Path) -> None:
    if out.is_dir():
        raise usage_error(f"{out}: is a folder; --out names the CSV file to write")
    if not out.parent.is_dir():
        raise usage_error(f"{out}: the folder {out.parent} does not exist (--out)")
    if out.resolve() == entities.resolve():
        raise usage_error(f"{out}: --out must not be the entities file")


def copy_entities(conn: psycopg.Connection, path: Path, header: list[str]) -> int:
    """Stream the file, as stored, into retrieve_entities with COPY; return the records."""
    statement = sql.SQL(
        "COPY retrieve_entities ({}) FROM STDIN (FORMAT csv, HEADER true, ENCODING 'UTF8')"
    ).format(sql.SQL(", ").join(sql.Identifier(name) for name in header))
    try:
        with conn.cursor() as cur:
            with path.open("rb") as handle, cur.copy(statement) as copy:
                first = True
                while chunk := handle.read(CHUNK):
                    if first:  # COPY does not skip a byte-order mark
                        chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
                    copy.write(chunk)
            return cur.rowcount
    except (psycopg.errors.BadCopyFileFormat, psycopg.errors.CharacterNotInRepertoire,
            psycopg.errors.UntranslatableCharacter, psycopg.errors.InvalidTextRepresentation) as exc:
        context = exc.diag.context or ""
        match = re.search(r"line (\d+)", context)
        where = f"{path}:{match.group(1)}" if match else str(path)
        message = exc.diag.message_primary or str(exc).strip()
        hint = ""
        if isinstance(exc, psycopg.errors.BadCopyFileFormat):
            hint = " (every line needs exactly two fields, customer_id and as_of, like the header)"
        elif not isinstance(exc, psycopg.errors.InvalidTextRepresentation):
            hint = " (the entities file must be UTF-8)"
        raise usage_error(f"{where}: {message}{hint}") from None
    except OSError as exc:
        raise usage_error(f"{path}: cannot read: {exc.strerror or exc} (--entities)") from None


# The entities, checked and typed in one pass: customer_id trimmed as staging trims it,
# as_of read in the session's time zone and date order (the config's), one problem per bad
# entity. The line an entity starts on is computed only when there is a problem to report.
TYPED_SQL = """
CREATE TEMPORARY TABLE retrieve_typed ON COMMIT DROP AS
WITH entities AS (
    SELECT
        e.entity_number,
        nullif(btrim(e.customer_id, {trim}), '') AS customer_id,
        nullif(btrim(e.as_of, {trim}), '') AS as_of
    FROM retrieve_entities AS e
),

checked AS (
    SELECT
        entity_number,
        customer_id,
        as_of,
        as_of IS NOT NULL
        AND pg_input_is_valid(as_of, 'timestamptz')
        AND as_of !~* {not_data} AS as_of_valid
    FROM entities
)

SELECT
    entity_number,
    customer_id,
    CASE WHEN as_of_valid THEN as_of::timestamptz END AS as_of,
    CASE
        WHEN customer_id IS NULL THEN 'customer_id is empty'
        WHEN as_of IS NULL THEN 'as_of is empty'
        WHEN NOT as_of_valid THEN 'as_of is not a timestamp'
    END AS problem
FROM checked
"""

PROBLEMS_SQL = """
WITH record_breaks AS (
    SELECT
        e.entity_number,
        -- line breaks inside quoted fields: the records after it start that much lower
        length(e::text) - length(replace(e::text, E'\\n', '')) AS embedded_breaks
    FROM retrieve_entities AS e
),

record_lines AS (
    SELECT
        entity_number,
        entity_number + 1 + coalesce(sum(embedded_breaks) OVER (
            ORDER BY entity_number ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS line_number
    FROM record_breaks
)

SELECT l.line_number, t.problem, e.customer_id, e.as_of, count(*) OVER () AS problems
FROM retrieve_typed AS t
INNER JOIN retrieve_entities AS e ON t.entity_number = e.entity_number
INNER JOIN record_lines AS l ON t.entity_number = l.entity_number
WHERE t.problem IS NOT NULL
ORDER BY t.entity_number
LIMIT {shown}
"""


def shown(value: str | None) -> str:
    if value is None:
        return "(empty)"
    return repr(value if len(value) <= 60 else value[:57] + "...")


def check_entities(conn: psycopg.Connection, path: Path) -> None:
    conn.execute(sql.SQL(TYPED_SQL).format(trim=sql.Literal(TRIM_CHARACTERS), not_data=sql.Literal(NOT_DATA_PATTERN)))
    if conn.execute("SELECT NOT EXISTS (SELECT FROM retrieve_typed WHERE problem IS NOT NULL)").fetchone()[0]:
        return
    rows = conn.execute(sql.SQL(PROBLEMS_SQL).format(shown=sql.Literal(SHOWN_PROBLEMS))).fetchall()
    total = rows[0][4]
    lines = []
    for line_number, problem, customer_id, as_of, _ in rows:
        value = shown(as_of) if problem.startswith("as_of is not") else ""
        detail = f" (customer_id {shown(customer_id)})" if problem.startswith("as_of") and customer_id else ""
        lines.append(f"{path}:{line_number}: {problem}{': ' + value if value else ''}{detail}")
    more = f"\n  ... and {total - len(rows):,} more" if total > len(rows) else ""
    entities = "1 entity" if total == 1 else f"{total:,} entities"
    raise usage_error(f"{path}: {entities} cannot be retrieved:\n  " + "\n  ".join(lines) + more)


# --- the database -----------------------------------------------------------------------------


def feature_columns(config: PipelineConfig) -> list[str]:
    return [column.name for column in config_feature_columns(config.features)]


def check_function(conn: psycopg.Connection, config: PipelineConfig) -> None:
    """The features stage created feats.features_as_of, for this config's windows."""
    row = conn.execute(
        "SELECT array_agg(a.name ORDER BY a.position) FILTER (WHERE a.mode = 't')"
        " FROM pg_proc AS p, unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS a (name, mode, position)"
        " WHERE p.oid = to_regprocedure(%s)",
        (FUNCTION,),
    ).fetchone()
    if row is None or row[0] is None:
        raise runtime_error(f"the database has no function {FUNCTION}: the features stage creates it; {FIRST_WORDS}")
    returned = row[0][3:]  # after entity_number, customer_id, as_of
    wanted = feature_columns(config)
    if returned != wanted:
        raise runtime_error(
            f"feats.features_as_of returns {', '.join(returned)}, but {config.path} asks for {', '.join(wanted)} "
            f"(features.windows_days {config.features.windows_days}): the features stage last ran with "
            f"another config; {FIRST_WORDS} with --config {config.path}"
        )


def connect(database_url: str) -> psycopg.Connection:
    return connection.connect(database_url, autocommit=True)


def features_statement(columns: sql.Composable, header: bool) -> sql.Composed:
    """COPY of feats.features_as_of over the entities in retrieve_typed, in their order, as
    CSV: ``columns`` of the function's rows (alias f). Used here and by the Python API. The
    arrays come from a subquery in FROM (not ARRAY(SELECT ...) arguments), so that
    PostgreSQL inlines the function and plans its lookups with the real entity count."""
    return sql.SQL(
        "COPY (SELECT {columns}"
        " FROM (SELECT array_agg(t.customer_id ORDER BY t.entity_number) AS customer_ids,"
        "              array_agg(t.as_of ORDER BY t.entity_number) AS as_ofs"
        "       FROM retrieve_typed AS t) AS e"
        " CROSS JOIN LATERAL feats.features_as_of(e.customer_ids, e.as_ofs) AS f"
        " ORDER BY f.entity_number) TO STDOUT (FORMAT csv{header})"
    ).format(columns=columns, header=sql.SQL(", HEADER true" if header else ""))


def result_statement(config: PipelineConfig) -> sql.Composed:
    columns = ["customer_id", "as_of", *feature_columns(config)]
    return features_statement(sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in columns), True)


def write_result(conn: psycopg.Connection, config: PipelineConfig, out: Path) -> int:
    """COPY the features to a temporary file beside OUT; rename it to OUT once complete."""
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK) as handle, conn.cursor() as cur:
            with cur.copy(result_statement(config)) as copy:
                for data in copy:
                    handle.write(data)
            rows = cur.rowcount
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; OUT is an ordinary file
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rows


def retrieve(config_path: str | Path, entities: str | Path, out: str | Path,
             database_url: str | None = None) -> int:
    """Write OUT; return the number of entities. Raises RetrieveError (exit 2 or 3)."""
    started = time.perf_counter()
    entities, out = Path(entities), Path(out)
    try:
        config = config_mod.load(config_path)
    except ConfigError as exc:
        raise usage_error(str(exc)) from None
    header = read_header(entities)
    check_out(out, entities)
    try:
        url = database_url or pipelines.database_url(config.name, create=False)
    except EmbeddedServerError as exc:
        raise runtime_error(str(exc)) from None
    with connect(url) as conn:
        pipelines.check_reader(conn, config.name, config.path)
        check_function(conn, config)
        with conn.transaction():
            # naive as_of values are wall-clock times in the source's zone, like order timestamps
            conn.execute("SELECT set_config('timezone', %s, true), set_config('datestyle', %s, true)",
                         (config.staging.source_timezone, f"ISO, {config.staging.date_order}"))
            conn.execute("CREATE TEMPORARY TABLE retrieve_entities (entity_number bigint GENERATED ALWAYS AS"
                         " IDENTITY, customer_id text, as_of text) ON COMMIT DROP")
            copy_entities(conn, entities, header)
            check_entities(conn, entities)
            conn.execute("SET LOCAL timezone = 'UTC'")  # OUT's as_of, in UTC
            rows = write_result(conn, config, out)
    seconds = time.perf_counter() - started
    rate = f" ({rows / seconds:,.0f} rows/s)" if rows and seconds > 0 else ""
    log(f"retrieved {rows:,} rows in {seconds:.2f} s{rate}: {entities} -> {out}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.serve.retrieve", description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 written, 2 bad input or usage, 3 runtime or database error "
               "(the features stage has not run: run make all, or make features, first).",
    )
    config_mod.add_config_argument(parser)
    parser.add_argument("--entities", required=True, help="CSV file with the header customer_id,as_of")
    parser.add_argument("--out", required=True, help="CSV file to write (replaced only when complete)")
    args = parser.parse_args(argv)
    try:
        retrieve(args.config, args.entities, args.out)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one message, an exit code
        code = failure(exc)
        print(f"  nothing was written to {args.out}", file=sys.stderr)
        return code
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
