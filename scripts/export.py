"""Export the training set to Parquet: artifacts/datasets/<feature_version>/.

    python -m scripts.export --config configs/pipeline.yaml [--feature-version V]   # make export

Writes train.parquet, val.parquet, test.parquet and manifest.json (columns and types, row
counts, each file's sha256, the label definition, the split cut-offs with their gap, purge
and censoring counts) for the latest registered feature_version, or for V, which must be the
version feats.training_set holds now (it holds the latest run's rows only).

Rows stream from PostgreSQL with COPY ... TO STDOUT (FORMAT csv) into pyarrow's streaming
CSV reader, with an explicit schema, and on into a ParquetWriter in row groups of
65,536 rows: memory stays flat whatever the row count. Python only hands COPY's bytes on
(psycopg yields them a row at a time); pyarrow's C++ parses and converts them. Timestamps
travel as epoch microseconds and numerics as their text, into decimal128(38, s) with s the
widest scale of any value (at least staging.amount_scale): nothing is rounded on the way,
and a value a type cannot hold exactly stops the export.
Each file is ordered by (customer_id, feature_time) and holds no time or host in its
metadata, so exporting the same feature_version twice gives byte-identical files (the
manifest too: it depends on the feature_version alone). Everything is written into a
temporary folder beside the target and renamed into place at the end: a failed or
interrupted export leaves nothing half-written.

Exit codes: 0 exported, 2 bad config or usage (no training set yet: run `make all` with
`labels:` in the config first), 3 runtime or database error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import re
import resource
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts import config as config_mod
from scripts import cli, pgembed

EXIT_OK, EXIT_USAGE, EXIT_RUNTIME = 0, 2, 3
SPLITS = ("train", "val", "test")
TABLE = "feats.training_set"
DATASETS = Path("artifacts") / "datasets"
BATCH_ROWS = 65_536  # rows per Parquet row group (and per write)
COMPRESSION = "zstd"
# Columns of feats.training_set that the files leave out: the folder names the version and
# the file names the split.
OMITTED_COLUMNS = ("split", "feature_version")
KEY_COLUMNS = ("customer_id", "feature_time")
LABEL_RE = re.compile(r"^(repeat|revenue_next)_(\d+)d$")
DECIMAL_PRECISION = 38  # decimal128's widest; the scale is the widest any value needs


class ExportError(Exception):
    """An export cannot go on; ``code`` is the exit code (2 usage, 3 runtime)."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(message, flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- what to export -------------------------------------------------------------------------


@dataclass
class Column:
    name: str
    pg_type: str  # format_type(): 'numeric', 'numeric(12,2)', 'timestamp with time zone', ...
    type_name: str  # pg_type.typname: numeric, timestamptz, int8, ...
    typmod: int
    not_null: bool

    @property
    def role(self) -> str:
        if self.name in KEY_COLUMNS:
            return "key"
        return "label" if LABEL_RE.match(self.name) else "feature"


def training_set_columns(conn: psycopg.Connection) -> list[Column]:
    """The columns of feats.training_set in table order; ExportError(2) when it is missing."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        raise ExportError(f"{TABLE} does not exist: no labelled training set yet; run `make all` first "
                          "(with a `labels:` section in the config)", EXIT_USAGE)
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod, a.attnotnull"
        " FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (TABLE,),
    ).fetchall()
    columns = [Column(*row) for row in rows]
    names = {c.name for c in columns}
    missing = [c for c in (*KEY_COLUMNS, *OMITTED_COLUMNS) if c not in names]
    if missing:
        raise ExportError(f"{TABLE} has no column {missing[0]}: its migrations and SQL are older than this "
                          "exporter; run `make all` again")
    return [c for c in columns if c.name not in OMITTED_COLUMNS]


def resolve_version(conn: psycopg.Connection, requested: str | None) -> dict[str, Any]:
    """The registry row to export: the latest, or the one whose version starts with
    ``requested`` (a unique prefix will do)."""
    if conn.execute("SELECT to_regclass('meta.feature_registry')").fetchone()[0] is None:
        raise ExportError("no feature version is registered in this database: run `make all` first", EXIT_USAGE)
    latest = conn.execute(
        "SELECT r.run_id, r.feature_version, r.config_sha256, u.config_path FROM meta.feature_registry AS r"
        " LEFT JOIN meta.runs AS u ON u.run_id = r.run_id ORDER BY r.created_at DESC, r.run_id DESC LIMIT 1"
    ).fetchone()
    if latest is None:
        raise ExportError("no feature version is registered in this database: run `make all` first", EXIT_USAGE)
    if requested is None:
        row = latest
    else:
        if not re.fullmatch(r"[0-9a-f]{1,64}", requested):
            raise ExportError(f"--feature-version {requested!r}: a feature_version is lower-case hex", EXIT_USAGE)
        matches = conn.execute(
            "SELECT DISTINCT ON (r.feature_version) r.run_id, r.feature_version, r.config_sha256, u.config_path"
            " FROM meta.feature_registry AS r LEFT JOIN meta.runs AS u ON u.run_id = r.run_id"
            " WHERE starts_with(r.feature_version, %s)"
            " ORDER BY r.feature_version, r.created_at DESC, r.run_id DESC",
            (requested,),
        ).fetchall()
        if not matches:
            raise ExportError(f"--feature-version {requested}: no such version in meta.feature_registry "
                              f"(the latest is {latest[1]})", EXIT_USAGE)
        if len(matches) > 1:
            raise ExportError(f"--feature-version {requested}: matches {len(matches)} versions; give more digits",
                              EXIT_USAGE)
        row = matches[0]
    return {"run_id": row[0], "feature_version": row[1], "config_sha256": row[2], "config_path": row[3]}


def check_config(config: config_mod.PipelineConfig, registry: dict[str, Any]) -> None:
    """The config given must be the one the version was built with (its label definition
    is read from it)."""
    digest = hashlib.sha256(config.path.read_bytes()).hexdigest()
    if digest not in registry["config_sha256"].values():
        raise ExportError(
            f"{config.path} is not the config feature_version {registry['feature_version'][:12]} was built with "
            f"(its run used {registry['config_path'] or 'another config'}, or the file changed since): "
            f"pass that config, or run `make all CONFIG={config.path}` first", EXIT_USAGE)
    if config.labels is None:
        raise ExportError(f"{config.path}: labels: no label is configured, so there is no training set; add "
                          "`labels: {horizon_days: 30}` and run `make all` first", EXIT_USAGE)


def split_counts(conn: psycopg.Connection, columns: list[Column], version: str) -> dict[str, Any]:
    """One pass over the version's rows: the row count of each split, and the widest scale
    of each unconstrained numeric column (its Parquet decimal's scale)."""
    free_numerics = [c for c in columns if c.type_name == "numeric" and c.typmod < 0]
    scales = [sql.SQL("coalesce(max(scale({})), 0)").format(sql.Identifier(c.name)) for c in free_numerics]
    query = sql.SQL("SELECT split, count(*){} FROM {} WHERE feature_version = %s GROUP BY split").format(
        sql.SQL("").join(sql.SQL(", ") + s for s in scales), sql.SQL(TABLE))
    counts = {split: 0 for split in SPLITS}
    widest = {c.name: 0 for c in free_numerics}
    for row in conn.execute(query, (version,)):
        if row[0] not in counts:
            raise ExportError(f"{TABLE} holds rows of split {row[0]!r}; only train, val and test are exported")
        counts[row[0]] = row[1]
        for column, scale in zip(free_numerics, row[2:]):
            widest[column.name] = max(widest[column.name], scale)
    return {"rows": counts, "scales": widest}


def held_versions(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT DISTINCT feature_version FROM {TABLE} ORDER BY 1 LIMIT 3")]


# --- types ----------------------------------------------------------------------------------


def arrow_types(columns: list[Column], scales: dict[str, int], min_scale: int = 0) -> dict[str, tuple[Any, Any]]:
    """Per column: (the Arrow type of the file, the Arrow type the CSV text is read as)."""
    import pyarrow as pa

    types: dict[str, tuple[Any, Any]] = {}
    for c in columns:
        t = c.type_name
        if t in ("text", "varchar", "bpchar"):
            types[c.name] = (pa.string(), pa.string())
        elif t == "timestamptz":  # read as epoch microseconds: exact, whatever the session's zone
            types[c.name] = (pa.timestamp("us", tz="UTC"), pa.int64())
        elif t == "timestamp":
            types[c.name] = (pa.timestamp("us"), pa.int64())
        elif t == "date":
            types[c.name] = (pa.date32(), pa.int32())
        elif t in ("int8", "int4", "int2"):
            arrow = {"int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16()}[t]
            types[c.name] = (arrow, arrow)
        elif t == "bool":
            types[c.name] = (pa.bool_(), pa.bool_())
        elif t in ("float8", "float4"):
            arrow = pa.float64() if t == "float8" else pa.float32()
            types[c.name] = (arrow, arrow)
        elif t == "numeric":
            if c.typmod >= 0:  # numeric(p, s)
                precision, scale = ((c.typmod - 4) >> 16) & 0xFFFF, (c.typmod - 4) & 0xFFFF
                if precision > DECIMAL_PRECISION:
                    raise ExportError(f"{TABLE}.{c.name} is {c.pg_type}: wider than Parquet's decimal128")
                arrow = pa.decimal128(precision, scale)
            else:
                arrow = pa.decimal128(DECIMAL_PRECISION, max(scales.get(c.name, 0), min_scale))
            types[c.name] = (arrow, arrow)
        else:
            raise ExportError(f"{TABLE}.{c.name} is {c.pg_type}, which the exporter does not map to Parquet")
    return types


def arrow_schema(columns: list[Column], types: dict[str, tuple[Any, Any]],
                 metadata: dict[str, str] | None = None) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, types[c.name][0], nullable=not c.not_null) for c in columns],
                     metadata=metadata)


def select_list(columns: list[Column]) -> sql.Composable:
    parts = []
    for c in columns:
        name = sql.Identifier(c.name)
        if c.type_name in ("timestamptz", "timestamp"):
            # extract(epoch) is numeric (exact) since PostgreSQL 14
            parts.append(sql.SQL("(extract(EPOCH FROM {0}) * 1000000)::bigint AS {0}").format(name))
        elif c.type_name == "date":
            parts.append(sql.SQL("({0} - DATE '1970-01-01') AS {0}").format(name))
        else:
            parts.append(name)
    return sql.SQL(", ").join(parts)


# --- streaming ------------------------------------------------------------------------------


class CopyReader(io.RawIOBase):
    """A file-like view of a COPY ... TO STDOUT: psycopg yields one row per chunk; pyarrow
    reads large blocks."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        size, filled = len(view), 0
        pending = self._pending
        while filled < size:
            if not pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                pending = memoryview(chunk)
            take = min(size - filled, len(pending))
            view[filled:filled + take] = pending[:take]
            pending = pending[take:]
            filled += take
        self._pending = pending
        return filled


def iter_row_groups(conn: psycopg.Connection, columns: list[Column], types: dict[str, tuple[Any, Any]],
                    split: str, version: str, group_rows: int = BATCH_ROWS) -> Iterator[Any]:
    """The split's rows as Arrow tables of exactly ``group_rows`` rows (the last one fewer),
    ordered by (customer_id, feature_time) byte-wise (COLLATE "C", so on every server). Each
    table is a slice over the CSV reader's batches: nothing is copied to make it whole."""
    import pyarrow as pa
    from pyarrow import csv

    schema = arrow_schema(columns, types)
    query = sql.SQL(
        "COPY (SELECT {cols} FROM {table} WHERE split = {split} AND feature_version = {version}"
        " ORDER BY customer_id COLLATE \"C\", feature_time) TO STDOUT (FORMAT csv)"
    ).format(cols=select_list(columns), table=sql.SQL(TABLE), split=sql.Literal(split),
             version=sql.Literal(version))
    # 256 KiB blocks: peak memory about 20 MiB lower than with 1 MiB, at the same speed (measured)
    read_options = csv.ReadOptions(column_names=[c.name for c in columns], block_size=1 << 18, use_threads=True)
    # PostgreSQL's CSV: NULL is an unquoted empty field, '' is a quoted one; booleans are t/f
    convert_options = csv.ConvertOptions(
        column_types={c.name: types[c.name][1] for c in columns},
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
        true_values=["t"], false_values=["f"],
    )
    parse_options = csv.ParseOptions(newlines_in_values=True)  # a quoted id may hold a line break
    pending: list[Any] = []
    pending_rows = 0
    with conn.cursor() as cur, cur.copy(query) as copy:
        chunks = iter(copy)
        first = next(chunks, None)
        if first is None:  # an empty split (pyarrow refuses an empty CSV): no table at all
            return
        reader = csv.open_csv(io.BufferedReader(CopyReader(itertools.chain([first], chunks)), buffer_size=1 << 18),
                              read_options=read_options, parse_options=parse_options,
                              convert_options=convert_options)
        for batch in reader:
            arrays = [
                batch.column(i).cast(types[c.name][0]) if types[c.name][0] != types[c.name][1] else batch.column(i)
                for i, c in enumerate(columns)
            ]
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            pending_rows += batch.num_rows
            while pending_rows >= group_rows:
                table = pa.Table.from_batches(pending, schema=schema)
                yield table.slice(0, group_rows)
                rest = table.slice(group_rows)
                pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending, schema=schema)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet(path: Path, schema: Any, groups: Iterable[Any]) -> int:
    """Write the tables, one row group each; return the row count."""
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(path, schema, compression=COMPRESSION, use_dictionary=True, write_statistics=True) as writer:
        for group in groups:
            writer.write_table(group, row_group_size=BATCH_ROWS)
            rows += group.num_rows
    return rows


# --- manifest -------------------------------------------------------------------------------


def label_definition(config: config_mod.PipelineConfig, columns: list[Column]) -> dict[str, Any]:
    horizon = config.labels["horizon_days"]
    label_columns = {c.name for c in columns if c.role == "label"}
    expected = {f"repeat_{horizon}d", f"revenue_next_{horizon}d"}
    if not expected <= label_columns:
        raise ExportError(f"{TABLE} has labels {sorted(label_columns)}, not {sorted(expected)} for "
                          f"labels.horizon_days {horizon} in {config.path}: run `make all` with this config first",
                          EXIT_USAGE)
    return {
        "target": f"repeat_{horizon}d",
        "horizon_days": horizon,
        "observed_until": config.labels.get("observed_until"),
        "columns": {
            f"repeat_{horizon}d": f"the customer placed an order that counts in (feature_time, feature_time + "
                                  f"{horizon} days]",
            f"revenue_next_{horizon}d": f"sum of amount over those orders (0 when none)",
        },
        "censoring": f"rows whose (feature_time, feature_time + {horizon} days] window ends after the data's end "
                     "(labels.observed_until, or the latest order) are left out: their label is not known yet",
        "purging": f"train rows whose label window reaches into val, and val rows whose window reaches into "
                   f"test, are left out, so no split's labels see the next split's orders",
    }


def split_cutoffs(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    """meta.split_cutoffs of the run, every column but run_id, timestamps in UTC ISO form."""
    rows = conn.execute(
        "SELECT to_jsonb(s) - 'run_id' FROM meta.split_cutoffs AS s WHERE s.run_id = %s"
        " ORDER BY array_position(ARRAY['train', 'val', 'test'], s.split)",
        (run_id,),
    ).fetchall()
    return [row[0] for row in rows]


def manifest_for(version: str, columns: list[Column], types: dict[str, tuple[Any, Any]],
                 label: dict[str, Any], cutoffs: list[dict[str, Any]], files: dict[str, dict[str, Any]]) -> dict:
    import pyarrow as pa

    def total(key: str) -> int | None:
        values = [c.get(key) for c in cutoffs]
        return sum(values) if values and all(isinstance(v, int) for v in values) else None

    return {
        "feature_version": version,
        "source": f"{TABLE} (and meta.split_cutoffs, meta.feature_registry: look the version up there)",
        "format": {"file": "parquet", "compression": COMPRESSION, "row_group_rows": BATCH_ROWS,
                   "order_by": list(KEY_COLUMNS), "writer": f"pyarrow {pa.__version__}"},
        "columns": [{"name": c.name, "type": str(types[c.name][0]), "postgres_type": c.pg_type,
                     "nullable": not c.not_null, "role": c.role} for c in columns],
        "label": label,
        "splits": files,
        "row_count": sum(f["rows"] for f in files.values()),
        "cutoffs": cutoffs,
        "gap_rows": total("gap_row_count"),
        "purged_rows": total("purged_row_count"),
        "censored_rows": total("censored_row_count"),
    }


# --- export ---------------------------------------------------------------------------------


def open_snapshot(database_url: str) -> psycopg.Connection:
    """A read-only REPEATABLE READ transaction: the three files and the manifest come from one
    snapshot, even while another run rebuilds the tables."""
    try:
        conn = psycopg.connect(database_url)
    except psycopg.Error as exc:
        raise ExportError(f"could not connect to {pgembed.masked(database_url)}: {str(exc).strip()}\n"
                          "  is PostgreSQL running? set DATABASE_URL, or unset it to use the embedded server") from None
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.execute("SET LOCAL timezone = 'UTC'")  # the manifest's timestamps
    conn.execute("SET LOCAL work_mem = '256MB'")  # the sort by (customer_id, feature_time)
    return conn


def describe(conn: psycopg.Connection, config: config_mod.PipelineConfig | None,
             requested: str | None) -> dict[str, Any]:
    """What an export (or a training run reading PostgreSQL) needs to know, checked."""
    columns = training_set_columns(conn)
    registry = resolve_version(conn, requested)
    version = registry["feature_version"]
    if config is not None:
        check_config(config, registry)
    counts = split_counts(conn, columns, version)
    if not any(counts["rows"].values()):
        held = held_versions(conn)
        if held:
            raise ExportError(
                f"{TABLE} holds feature_version {held[0][:12]}, not {version[:12]} (a later run did not finish, "
                "or another config ran since): run `make all` with the config of the version to export", EXIT_USAGE)
        raise ExportError(f"{TABLE} is empty: no row has a known label yet (every row is censored?); "
                          "run `make all` on more data, or check labels.observed_until", EXIT_USAGE)
    min_scale = config.staging["amount_scale"] if config is not None else 0
    types = arrow_types(columns, counts["scales"], min_scale)
    return {"registry": registry, "version": version, "columns": columns, "counts": counts["rows"], "types": types}


def export(config_path: str | Path, feature_version: str | None = None, database_url: str | None = None,
           out_root: Path = DATASETS) -> dict[str, Any]:
    """Export one feature_version; return its manifest (with ``path``, the folder)."""
    import pyarrow as pa

    config = config_mod.load(config_path)
    conn = open_snapshot(database_url or pgembed.resolve_database_url())
    try:
        info = describe(conn, config, feature_version)
        version, columns, types = info["version"], info["columns"], info["types"]
        label = label_definition(config, columns)
        cutoffs = split_cutoffs(conn, info["registry"]["run_id"])
        schema = arrow_schema(columns, types, metadata={"raw_to_ready.feature_version": version})
        target = out_root / version
        out_root.mkdir(parents=True, exist_ok=True)
        temp = out_root / f".{version}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        temp.mkdir()
        try:
            log(f"export feature_version {version}: {TABLE} -> {target}/")
            files: dict[str, dict[str, Any]] = {}
            for split in SPLITS:
                started = time.perf_counter()
                path = temp / f"{split}.parquet"
                try:
                    rows = write_parquet(path, schema, iter_row_groups(conn, columns, types, split, version))
                except pa.ArrowInvalid as exc:  # a value the file's type cannot hold exactly
                    names = ", ".join(f"#{i} {c.name}" for i, c in enumerate(columns))
                    raise ExportError(f"{split}: {exc} (columns: {names}); nothing was written") from None
                seconds = time.perf_counter() - started
                if rows != info["counts"][split]:
                    raise ExportError(f"{split}: wrote {rows:,} rows but {TABLE} holds {info['counts'][split]:,}")
                files[split] = {"file": path.name, "rows": rows, "bytes": path.stat().st_size,
                                "sha256": sha256_file(path)}
                rate = f"{rows / seconds:>12,.0f} rows/s" if rows and seconds > 0 else ""
                log(f"  {split:<5} {rows:>12,} rows {seconds:>8.2f} s {rate}  "
                    f"{files[split]['bytes'] / 1e6:,.1f} MB sha256 {files[split]['sha256'][:12]}")
            manifest = manifest_for(version, columns, types, label, cutoffs, files)
            (temp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                                encoding="utf-8")
            replace_dir(temp, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    finally:
        conn.close()
    return {**manifest, "path": str(target)}


def replace_dir(temp: Path, target: Path) -> None:
    """Move the finished folder into place; a previous export of the version is replaced."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(3)}")
        target.rename(old)
        temp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        temp.rename(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.export", description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 exported, 2 bad config or usage, 3 runtime or database error.",
    )
    parser.add_argument("--config", default="configs/pipeline.yaml", help="pipeline config (default: %(default)s)")
    parser.add_argument("--feature-version", help="the version to export (default: the latest registered)")
    parser.add_argument("--out", default=str(DATASETS), help="where the version's folder goes (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        manifest = export(args.config, args.feature_version, out_root=Path(args.out))
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one message, an exit code
        return cli.failure(exc)
    log(f"manifest: {manifest['path']}/manifest.json ({manifest['row_count']:,} rows); "
        f"peak RSS {peak_rss_mib():.1f} MiB")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
