"""A pipeline's results for Python and ML code, as pandas DataFrames.

    from scripts import api

    df = api.training_set()                        # pipeline raw_to_ready's published training set
    train = api.training_set(split="train")        # one split
    X = api.features_as_of(entities)               # point-in-time features (customer_id, as_of)
    report = api.latest_report()                   # the latest finished run's report, a dict

Each function takes ``pipeline`` (a config's ``name:``, default raw_to_ready, the bundled
configs/pipeline.yaml) and reads that pipeline's database: on the embedded server under the
repository the database of that name, or DATABASE_URL when it is set; a database another
pipeline owns is refused. `make install` puts the repository on .venv's path, so
``.venv/bin/python -c "from scripts import api"`` works from any folder. Nothing is written
anywhere: the entities travel to PostgreSQL with COPY and the rows come back the same way.

Types: money (PostgreSQL numeric: revenue_*, revenue labels, defined numeric features) is
float64, the float nearest to each stored value; ``exact_decimals=True`` gives
decimal.Decimal objects instead, every digit kept. Integers are int64/int32 and booleans bool,
except that a column holding NULLs comes as float64 with NaN (days_since_last_order for a
first order), as pandas.read_parquet gives them. Timestamps are datetime64[us, UTC]. Text is
object (str). docs/python-api.md has examples.

Errors are ApiError subclasses with one message saying what to do (NoDatabaseError,
NothingPublishedError, VersionError); bad arguments are ValueError or TypeError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from scripts.config.pipeline import NAME_PATTERN
from scripts.db import connection, pipelines
from scripts.errors import CommandError, ConnectError, EmbeddedServerError
from scripts.serve import export, retrieve
from scripts.serve import training_set as rows_mod
from scripts.serve.training_set import SPLITS, TABLE, Column

__all__ = ["training_set", "features_as_of", "latest_report", "ApiError", "NoDatabaseError",
           "NothingPublishedError", "VersionError"]

PIPELINE = "raw_to_ready"  # configs/pipeline.yaml's name
WHO = "the Python API"  # how a refusal names this reader
SHOWN_PROBLEMS = 5  # bad entities named in the message


class ApiError(Exception):
    """The pipeline's data cannot be read; the message says why and what to do."""


class NoDatabaseError(ApiError):
    """No database of that pipeline: not made yet, not reachable, or another pipeline's."""


class NothingPublishedError(ApiError):
    """The pipeline's database holds no result of that kind yet (no run, no labelled run)."""


class VersionError(ApiError):
    """The version asked for is not the one the database holds."""


# --- the pipeline's database ---------------------------------------------------------------


@contextmanager
def _connect(pipeline: str, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """The pipeline's database, checked to be its own; database errors become ApiError."""
    if not isinstance(pipeline, str) or not NAME_PATTERN.fullmatch(pipeline):
        raise ValueError(f"pipeline={pipeline!r} is not a pipeline name (a config's `name:`: a lower-case letter, "
                         "then lower-case letters, digits or underscores)")
    try:
        url = pipelines.database_url(pipeline, create=False)
        conn = connection.connect(url, autocommit=autocommit)
    except (CommandError, ConnectError, EmbeddedServerError) as exc:
        raise NoDatabaseError(str(exc)) from None
    try:
        try:
            pipelines.check_reader(conn, pipeline, WHO)
        except pipelines.PipelineOwnerError:
            found = pipelines.owner(conn)
            raise NoDatabaseError(
                f"database {pipelines.database_name(conn)} belongs to pipeline {found['name']} "
                f"({found['config_path']}), not to pipeline {pipeline}: pass pipeline={found['name']!r}, or point "
                f"DATABASE_URL at pipeline {pipeline}'s database (unset, the embedded server has one per pipeline)"
            ) from None
        yield conn
    except psycopg.Error as exc:  # e.g. the server stopped in mid-read
        raise ApiError(f"pipeline {pipeline}: database error: {str(exc).strip()}") from None
    except pa.ArrowInvalid as exc:  # a stored value the column's type cannot hold
        raise ApiError(f"pipeline {pipeline}: {exc}") from None
    finally:
        conn.close()


def _run_first(pipeline: str) -> str:
    return f"run the pipeline first: make all CONFIG=<the config whose name: is {pipeline}>"


# --- the training set ------------------------------------------------------------------------


def training_set(pipeline: str = PIPELINE, version: str | None = None, split: str | None = None,
                 exact_decimals: bool = False) -> pd.DataFrame:
    """The published training set of ``pipeline`` (feats.training_set), one row per
    (customer_id, feature_time): the keys, the features, the labels, and ``split``
    (categorical: train, val, test), ordered by split, then customer_id (byte order) and
    feature_time, as the export's files are.

    version: None for the version the database holds, or that feature_version (or a unique
        prefix of it), which must be the one held (VersionError names the held one: the
        database keeps the latest published version only).
    split: "train", "val" or "test" for that split's rows only; None for all three.
    exact_decimals: money as decimal.Decimal (exact) instead of float64.

    ``df.attrs`` holds ``pipeline`` and ``feature_version``.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r}: one of {', '.join(SPLITS)}, or None for all three")
    if version is not None and (not isinstance(version, str) or not re.fullmatch(r"[0-9a-f]{1,64}", version)):
        raise ValueError(f"version={version!r}: a feature_version is lower-case hex (a unique prefix will do)")
    with _connect(pipeline) as conn:
        export.snapshot(conn)  # the three splits from one snapshot
        held, columns, counts = _published(conn, pipeline, version, exact_decimals)
        types = rows_mod.arrow_types(columns, counts["scales"], 0, exact_decimals)
        tables = [_split_table(conn, columns, types, name, held, counts["rows"][name])
                  for name in ([split] if split else SPLITS)]
    frame = pa.concat_tables(tables).to_pandas()
    frame.attrs.update(pipeline=pipeline, feature_version=held)
    return frame


def _published(conn: psycopg.Connection, pipeline: str, version: str | None,
               exact_decimals: bool) -> tuple[str, list[Column], dict[str, Any]]:
    """(the feature_version feats.training_set holds, its columns, its split counts)."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        raise NothingPublishedError(f"pipeline {pipeline} has published no training set yet ({TABLE} does not "
                                    f"exist): {_run_first(pipeline)}, with a labels: section")
    try:
        columns = export.training_set_columns(conn)
    except export.ExportError as exc:
        raise ApiError(f"pipeline {pipeline}: {exc}") from None
    row = conn.execute(sql.SQL("SELECT feature_version FROM {} LIMIT 1").format(sql.SQL(TABLE))).fetchone()
    if row is None:
        raise NothingPublishedError(f"pipeline {pipeline}'s {TABLE} is empty: no published labelled run, or no row "
                                    f"has a known label yet; {_run_first(pipeline)}, with a labels: section")
    held = row[0]
    if version is not None and not held.startswith(version):
        raise VersionError(f"pipeline {pipeline} holds feature_version {held}, not {version}: its database keeps "
                           f"the latest published version only; an export of {version} "
                           f"(artifacts/datasets/{pipeline}/{version}*/, if `make export` wrote one) has its rows, "
                           "or run the pipeline again on that version's config and data")
    return held, columns, export.split_counts(conn, columns, held, with_scales=exact_decimals)


def _split_table(conn: psycopg.Connection, columns: list[Column], types: dict[str, Any], split: str,
                 version: str, expected: int) -> pa.Table:
    groups = list(rows_mod.iter_row_groups(conn, columns, types, split, version))
    table = pa.concat_tables(groups) if groups else rows_mod.arrow_schema(columns, types).empty_table()
    if table.num_rows != expected:
        raise ApiError(f"{split}: read {table.num_rows:,} rows but {TABLE} holds {expected:,}")
    codes = pa.array(np.full(table.num_rows, SPLITS.index(split), dtype=np.int8))
    return table.append_column("split", pa.DictionaryArray.from_arrays(codes, pa.array(SPLITS)))


# --- point-in-time features ----------------------------------------------------------------


def features_as_of(entities: pd.DataFrame, pipeline: str = PIPELINE) -> pd.DataFrame:
    """The features of each entity as of its instant, from the orders at or before it only
    (feats.features_as_of, as `make retrieve` computes them).

    entities: a DataFrame with the columns customer_id (text; integers are taken as their
        digits) and as_of (time-zone-aware timestamps, or text with an offset such as
        2025-12-08T10:00:00+01:00 or ...Z; a naive time is refused: localize it, e.g.
        ``as_of.dt.tz_localize("UTC")``). Other columns are ignored. customer_id is trimmed
        as staging trims it; an unknown customer gets the empty values (orders 0, revenue 0,
        days_since_last_order NULL). An empty customer_id or as_of is a ValueError naming
        the rows' index labels.

    Returns one row per entity, in the entities' order and with their index: customer_id,
    as_of (UTC), then the feature columns of feats.customer_features. Money is float64.
    """
    if not isinstance(entities, pd.DataFrame):
        raise TypeError(f"entities must be a pandas DataFrame with columns customer_id and as_of, "
                        f"not {type(entities).__name__}")
    missing = [name for name in retrieve.COLUMNS if name not in entities.columns]
    if missing:
        raise ValueError(f"entities has no column {', '.join(missing)}: it needs customer_id and as_of")
    rows = list(zip(_customer_ids(entities["customer_id"]), _as_of_text(entities["as_of"])))
    with _connect(pipeline, autocommit=True) as conn:
        columns = _function_columns(conn, pipeline)
        types = rows_mod.arrow_types(columns, {})
        with conn.transaction():
            conn.execute("SET LOCAL timezone = 'UTC'")
            conn.execute("CREATE TEMPORARY TABLE retrieve_entities (entity_number bigint GENERATED ALWAYS AS"
                         " IDENTITY, customer_id text, as_of text) ON COMMIT DROP")
            with conn.cursor() as cur, cur.copy("COPY retrieve_entities (customer_id, as_of) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # the CLI's checks and typing: customer_id trimmed as staging trims it
            conn.execute(sql.SQL(retrieve.TYPED_SQL).format(trim=sql.Literal(retrieve.TRIM_CHARACTERS),
                                                            not_data=sql.Literal(retrieve.NOT_DATA_PATTERN)))
            _check_entities(conn, entities.index)
            groups = list(rows_mod.iter_copy(conn, _features_statement(columns), columns, types)) if rows else []
    table = pa.concat_tables(groups) if groups else rows_mod.arrow_schema(columns, types).empty_table()
    if table.num_rows != len(rows):
        raise ApiError(f"feats.features_as_of returned {table.num_rows:,} rows for {len(rows):,} entities")
    frame = table.to_pandas()
    frame.index = entities.index
    frame.attrs.update(pipeline=pipeline)
    return frame


def _customer_ids(values: pd.Series) -> list[str | None]:
    if pd.api.types.is_integer_dtype(values.dtype) and not isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return values.astype(str).tolist()
    ids: list[str | None] = []
    for label, value in zip(values.index, values.tolist()):
        if isinstance(value, str):
            ids.append(value)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            ids.append(str(value))
        elif value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
            ids.append(None)  # reported by the checks: customer_id is empty
        else:
            raise ValueError(f"entities customer_id at index {label!r} is {value!r} ({type(value).__name__}): "
                             "customer ids are text (integers are taken as their digits); convert the column, "
                             "e.g. .astype('Int64').astype(str) for float ids")
    return ids


def _as_of_text(values: pd.Series) -> list[str | None]:
    """as_of as UTC text PostgreSQL reads exactly, whatever its settings; NaT as None."""
    naive = ("entities as_of{where} has no time zone: a naive time is ambiguous; localize it, e.g. "
             "entities.as_of.dt.tz_localize('UTC') (or the zone the times are in)")
    utc = "%Y-%m-%d %H:%M:%S.%f+00"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        text = values.dt.tz_convert("UTC").dt.strftime(utc)
        return [None if pd.isna(value) else value for value in text.tolist()]
    if pd.api.types.is_datetime64_dtype(values.dtype):
        raise ValueError(naive.format(where=""))
    stamps: list[str | None] = []  # text or datetime objects, each with its own offset
    for label, value in zip(values.index, values.tolist()):
        if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
            stamps.append(None)  # reported by the checks: as_of is empty
            continue
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"entities as_of at index {label!r} is not a timestamp: {value!r}") from None
        if stamp is pd.NaT:
            stamps.append(None)
        elif stamp.tzinfo is None:
            raise ValueError(naive.format(where=f" at index {label!r} ({value!r})"))
        else:
            stamps.append(stamp.tz_convert("UTC").strftime(utc))
    return stamps


def _function_columns(conn: psycopg.Connection, pipeline: str) -> list[Column]:
    """The columns feats.features_as_of returns (after entity_number), with their types."""
    rows = conn.execute(
        "SELECT a.name, format_type(a.type, NULL), t.typname"
        " FROM pg_proc AS p"
        " CROSS JOIN LATERAL unnest(p.proargnames, p.proargmodes, p.proallargtypes)"
        "     WITH ORDINALITY AS a (name, mode, type, position)"
        " INNER JOIN pg_type AS t ON t.oid = a.type"
        " WHERE p.oid = to_regprocedure(%s) AND a.mode = 't' ORDER BY a.position",
        (retrieve.FUNCTION,),
    ).fetchall()
    if not rows:
        raise NothingPublishedError(f"pipeline {pipeline}'s database has no function {retrieve.FUNCTION} (the "
                                    f"features stage creates it): {_run_first(pipeline)}")
    return [Column(name, pg_type, type_name, -1, False) for name, pg_type, type_name in rows
            if name != "entity_number"]


def _check_entities(conn: psycopg.Connection, index: pd.Index) -> None:
    rows = conn.execute(
        "SELECT entity_number, problem, count(*) OVER () FROM retrieve_typed WHERE problem IS NOT NULL"
        " ORDER BY entity_number LIMIT %s", (SHOWN_PROBLEMS,)).fetchall()
    if not rows:
        return
    labels = [index[number - 1] for number, _, _ in rows]
    labels = [label.item() if isinstance(label, np.generic) else label for label in labels]
    lines = [f"index {label!r}: {problem}" for label, (_, problem, _) in zip(labels, rows)]
    total = rows[0][2]
    more = f"\n  ... and {total - len(rows):,} more" if total > len(rows) else ""
    raise ValueError(f"entities: {total:,} row(s) cannot be retrieved:\n  " + "\n  ".join(lines) + more)


def _features_statement(columns: list[Column]) -> sql.Composed:
    return retrieve.features_statement(rows_mod.select_list(columns), header=False)


# --- the run report --------------------------------------------------------------------------


def latest_report(pipeline: str = PIPELINE) -> dict[str, Any]:
    """The report of the pipeline's latest finished run, passed or not (meta.runs.report: what
    the runner writes to artifacts/reports/<run_id>.json): run_id, status, exit_code,
    feature_version, stages, checks, errors, warnings, splits, profile, ..."""
    with _connect(pipeline, autocommit=True) as conn:
        present = conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('meta.runs')"
            " AND attname IN ('pipeline', 'report') AND NOT attisdropped").fetchone()[0]
        row = None
        if present == 2:
            row = conn.execute(
                "SELECT report FROM meta.runs WHERE pipeline = %s AND finished_at IS NOT NULL"
                " AND report IS NOT NULL ORDER BY finished_at DESC, run_id DESC LIMIT 1", (pipeline,)).fetchone()
    if row is None:
        raise NothingPublishedError(f"pipeline {pipeline} has no finished run in its database yet: "
                                    f"{_run_first(pipeline)}")
    return row[0]
