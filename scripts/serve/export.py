"""Export the training set to Parquet: artifacts/datasets/<pipeline>/<feature_version>/.

    python -m scripts.serve.export --config configs/pipeline.yaml [--feature-version V] [--exact-decimals]

Writes one hive-partitioned dataset folder per version, split=train/, split=val/ and
split=test/ each holding one part-0.parquet, and beside the folder (not in it)
<feature_version>.manifest.json: columns and types, row counts, each file's sha256, the label
definition, the split cut-offs with their gap, purge and censoring counts. Nothing but
Parquet is inside the folder, so pandas.read_parquet(folder), pyarrow.dataset.dataset(folder,
partitioning="hive") and DuckDB's read_parquet('folder/**/*.parquet', hive_partitioning=true)
each read every row in one call, with the split as a column. The version is the latest
registered feature_version of the config's pipeline, or V, which must be the version
feats.training_set holds now (it holds the latest run's rows only).

Rows stream from PostgreSQL with COPY ... TO STDOUT (FORMAT csv) into pyarrow's streaming
CSV reader, with an explicit schema, and on into a ParquetWriter in row groups of
65,536 rows: memory stays flat whatever the row count. Python only hands COPY's bytes on
(psycopg yields them a row at a time); pyarrow's C++ parses and converts them. Timestamps
travel as epoch microseconds, exact. Numerics (the money columns) travel as their text and
become float64, each the float nearest to PostgreSQL's value; with --exact-decimals they
become decimal128(38, s) with s the widest scale of any value (at least
staging.amount_scale), every digit kept. Integers stay integers, timestamps timestamps. A
value the file's type cannot hold (beyond float64's range, or a decimal's) stops the export.
Each file is ordered by (customer_id, feature_time) and holds no time or host in its
metadata, so exporting the same feature_version twice gives byte-identical files (the
manifest too: it depends on the feature_version and the numeric option alone). Everything is
written into a temporary folder and file beside the target and renamed into place at the
end, the manifest last (and an earlier manifest removed first): a failed or interrupted
export leaves nothing half-written, and a manifest always describes the folder beside it.

Exit codes: 0 exported, 2 bad config or usage (no training set yet: run `make all` with
`labels:` in the config first), 3 runtime or database error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts import config as config_mod
from scripts.config.columns import revenue_label_name, target_name
from scripts.console import log, peak_rss_mib
from scripts.db import connection, pipelines
from scripts.errors import EXIT_PASSED, EXIT_USAGE, failure
from scripts.paths import ARTIFACTS
from scripts.serve.training_set import (BATCH_ROWS, COMPRESSION, KEY_COLUMNS, PARTITION_COLUMN, SPLITS, TABLE, Column,
                                       ExportError, arrow_schema, arrow_types, export_paths, iter_row_groups,
                                       sha256_file, split_file, write_parquet)

DATASETS = ARTIFACTS / "datasets"
# Columns of feats.training_set that the files leave out: the folder names the version and
# the hive folder (split=...) the split; readers of the folder get split back as a column.
OMITTED_COLUMNS = ("split", "feature_version")


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


def split_counts(conn: psycopg.Connection, columns: list[Column], version: str,
                 with_scales: bool = True) -> dict[str, Any]:
    """One pass over the version's rows: the row count of each split, and (``with_scales``)
    the widest scale of each unconstrained numeric column (its Parquet decimal's scale)."""
    free_numerics = [c for c in columns if c.type_name == "numeric" and c.typmod < 0] if with_scales else []
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


# --- manifest -------------------------------------------------------------------------------


def label_definition(config: config_mod.PipelineConfig, columns: list[Column]) -> dict[str, Any]:
    horizon = config.labels.horizon_days
    label_columns = {c.name for c in columns if c.role == "label"}
    target, revenue = target_name(horizon), revenue_label_name(horizon)
    expected = {target, revenue}
    if not expected <= label_columns:
        raise ExportError(f"{TABLE} has labels {sorted(label_columns)}, not {sorted(expected)} for "
                          f"labels.horizon_days {horizon} in {config.path}: run `make all` with this config first",
                          EXIT_USAGE)
    return {
        "target": target,
        "horizon_days": horizon,
        "observed_until": config.labels.observed_until,
        "columns": {
            target: f"the customer placed an order that counts in (feature_time, feature_time + "
                                  f"{horizon} days]",
            revenue: "sum of amount over those orders (0 when none)",
        },
        "censoring": f"rows whose (feature_time, feature_time + {horizon} days] window ends after the data's end "
                     "(labels.observed_until, or the latest order) are left out: their label is not known yet",
        "purging": "train rows whose label window reaches into val, and val rows whose window reaches into "
                   "test, are left out, so no split's labels see the next split's orders",
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
                 label: dict[str, Any], cutoffs: list[dict[str, Any]], files: dict[str, dict[str, Any]],
                 exact_decimals: bool = False) -> dict:
    import pyarrow as pa

    def total(key: str) -> int | None:
        values = [c.get(key) for c in cutoffs]
        return sum(values) if values and all(isinstance(v, int) for v in values) else None

    return {
        "feature_version": version,
        "source": f"{TABLE} (and meta.split_cutoffs, meta.feature_registry: look the version up there)",
        "format": {"file": "parquet", "compression": COMPRESSION, "row_group_rows": BATCH_ROWS,
                   "order_by": list(KEY_COLUMNS), "writer": f"pyarrow {pa.__version__}",
                   "numeric": "decimal128" if exact_decimals else "float64"},
        "dataset": {"folder": f"{version}/", "partitioning": "hive", "partition_column": PARTITION_COLUMN,
                    "partitions": [f"{PARTITION_COLUMN}={split}" for split in SPLITS],
                    "files": "relative to the folder; the folder holds these files and nothing else"},
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


def open_snapshot(config: config_mod.PipelineConfig, database_url: str | None = None) -> psycopg.Connection:
    """A read-only REPEATABLE READ transaction on the database of the config's pipeline (or
    ``database_url``), refused when another pipeline owns it: the three files and the
    manifest come from one snapshot, even while another run rebuilds the tables."""
    conn = connection.connect(database_url or pipelines.database_url(config.name, create=False))
    try:
        pipelines.check_reader(conn, config.name, config.path)
        snapshot(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def snapshot(conn: psycopg.Connection) -> None:
    """Make ``conn``'s next transaction a read-only REPEATABLE READ one, and start it."""
    conn.rollback()  # whatever ran before (the owner check) ends: the snapshot starts here
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.execute("SET LOCAL timezone = 'UTC'")  # the manifest's timestamps
    conn.execute("SET LOCAL work_mem = '256MB'")  # the sort by (customer_id, feature_time)


def describe(conn: psycopg.Connection, config: config_mod.PipelineConfig | None,
             requested: str | None, exact_decimals: bool = False) -> dict[str, Any]:
    """What an export (or a training run reading PostgreSQL) needs to know, checked."""
    columns = training_set_columns(conn)
    registry = resolve_version(conn, requested)
    version = registry["feature_version"]
    if config is not None:
        check_config(config, registry)
    counts = split_counts(conn, columns, version, with_scales=exact_decimals)
    if not any(counts["rows"].values()):
        held = held_versions(conn)
        if held:
            raise ExportError(
                f"{TABLE} holds feature_version {held[0][:12]}, not {version[:12]} (a later run did not finish, "
                "or another config ran since): run `make all` with the config of the version to export", EXIT_USAGE)
        raise ExportError(f"{TABLE} is empty: no row has a known label yet (every row is censored?); "
                          "run `make all` on more data, or check labels.observed_until", EXIT_USAGE)
    min_scale = config.staging.amount_scale if config is not None else 0
    types = arrow_types(columns, counts["scales"], min_scale, exact_decimals)
    return {"registry": registry, "version": version, "columns": columns, "counts": counts["rows"], "types": types}


def export(config_path: str | Path, feature_version: str | None = None, database_url: str | None = None,
           out_root: Path = DATASETS, exact_decimals: bool = False) -> dict[str, Any]:
    """Export one feature_version; return its manifest (with ``path``, the dataset folder, and
    ``manifest_path``). Numerics are float64, or decimal128 with ``exact_decimals``."""
    import pyarrow as pa

    config = config_mod.load(config_path)
    conn = open_snapshot(config, database_url)
    try:
        info = describe(conn, config, feature_version, exact_decimals)
        version, columns, types = info["version"], info["columns"], info["types"]
        label = label_definition(config, columns)
        cutoffs = split_cutoffs(conn, info["registry"]["run_id"])
        schema = arrow_schema(columns, types, metadata={"raw_to_ready.feature_version": version})
        target, manifest_path = export_paths(out_root, config.name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = f"tmp-{os.getpid()}-{secrets.token_hex(3)}"
        temp = target.with_name(f".{target.name}.{suffix}")
        temp_manifest = manifest_path.with_name(f".{manifest_path.name}.{suffix}")
        temp.mkdir()
        try:
            log(f"export feature_version {version}: {TABLE} -> {target}/ (numerics as "
                f"{'exact decimals' if exact_decimals else 'float64'})")
            files: dict[str, dict[str, Any]] = {}
            for split in SPLITS:
                started = time.perf_counter()
                path = temp / split_file(split)
                path.parent.mkdir()
                try:
                    rows = write_parquet(path, schema, iter_row_groups(conn, columns, types, split, version))
                except pa.ArrowInvalid as exc:  # a value the file's type cannot hold exactly
                    names = ", ".join(f"#{i} {c.name}" for i, c in enumerate(columns))
                    raise ExportError(f"{split}: {exc} (columns: {names}); nothing was written") from None
                seconds = time.perf_counter() - started
                if rows != info["counts"][split]:
                    raise ExportError(f"{split}: wrote {rows:,} rows but {TABLE} holds {info['counts'][split]:,}")
                files[split] = {"file": split_file(split), "rows": rows, "bytes": path.stat().st_size,
                                "sha256": sha256_file(path)}
                rate = f"{rows / seconds:>12,.0f} rows/s" if rows and seconds > 0 else ""
                log(f"  {split:<5} {rows:>12,} rows {seconds:>8.2f} s {rate}  "
                    f"{files[split]['bytes'] / 1e6:,.1f} MB sha256 {files[split]['sha256'][:12]}")
            manifest = manifest_for(version, columns, types, label, cutoffs, files, exact_decimals)
            temp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            publish(temp, temp_manifest, target, manifest_path)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
            temp_manifest.unlink(missing_ok=True)
    finally:
        conn.close()
    return {**manifest, "path": str(target), "manifest_path": str(manifest_path)}


def publish(temp: Path, temp_manifest: Path, target: Path, manifest_path: Path) -> None:
    """Put the finished folder and its manifest in place. The manifest comes off first and goes
    on last: whenever it is there, the folder beside it is complete and the one it describes."""
    manifest_path.unlink(missing_ok=True)
    replace_dir(temp, target)
    os.replace(temp_manifest, manifest_path)


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
        prog="python -m scripts.serve.export", description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 exported, 2 bad config or usage, 3 runtime or database error.",
    )
    config_mod.add_config_argument(parser)
    parser.add_argument("--feature-version", help="the version to export (default: the latest registered)")
    parser.add_argument("--out", default=str(DATASETS),
                        help="where the pipeline's folder of versions goes (default: %(default)s)")
    parser.add_argument("--exact-decimals", action="store_true",
                        help="numerics (money) as exact decimal128 instead of float64")
    args = parser.parse_args(argv)
    try:
        manifest = export(args.config, args.feature_version, out_root=Path(args.out),
                          exact_decimals=args.exact_decimals)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one message, an exit code
        return failure(exc)
    log(f"manifest: {manifest['manifest_path']} ({manifest['row_count']:,} rows); "
        f"peak RSS {peak_rss_mib():.1f} MiB")
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
