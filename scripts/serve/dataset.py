"""The training set a training run reads (scripts/serve/train.py): the version's exported
dataset when `make export` wrote it, checked against the manifest beside its folder, else
feats.training_set in PostgreSQL through the export's COPY stream.

An export is artifacts/datasets/<pipeline>/<feature_version>/split=<split>/part-0.parquet
with <feature_version>.manifest.json beside the folder (scripts/serve/export.py). It is read
only when the manifest is there (the export writes it last), the folder holds exactly the
files it lists, and each file has the sha256 it records; a folder without its manifest is
no export (PostgreSQL is read instead), any other mismatch stops the training (exit 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from scripts import config as config_mod
from scripts.config.columns import target_name
from scripts.errors import EXIT_RUNTIME, EXIT_USAGE, CommandError
from scripts.serve import export as export_mod
from scripts.serve import training_set
from scripts.serve.training_set import SPLITS


class TrainError(CommandError):
    """Training cannot go on; ``code`` is the exit code (2 unless said)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message, code)


@dataclass
class Dataset:
    feature_version: str
    label: str  # repeat_<H>d
    features: list[str]
    source: str  # 'parquet' or 'postgresql'
    where: str
    tables: dict[str, Any] = field(default_factory=dict)  # split -> pyarrow.Table

    def xy(self, split: str) -> tuple[Any, Any]:
        import numpy as np

        table = self.tables[split]
        columns = [as_float64(table.column(name)).to_numpy(zero_copy_only=False) for name in self.features]
        x = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
        labels = table.column(self.label)
        if labels.null_count:
            raise TrainError(f"{split}: {labels.null_count:,} rows have no {self.label}: the training set holds only "
                             "labelled rows; re-run `make all`")
        return x, labels.to_numpy(zero_copy_only=False).astype(np.int8)


def as_float64(column: Any) -> Any:
    """A column as float64, NULL as NaN. A decimal (an export made with exact decimals) goes
    through its text: pyarrow's direct decimal-to-float cast is not correctly rounded (off by
    one unit in the last place for about one value in eight), the text-to-float parse is, so
    each value is the float nearest to the exact decimal, as float(Decimal) gives, and the
    same float a float64 export holds."""
    import pyarrow as pa

    if pa.types.is_decimal(column.type):
        column = column.cast(pa.string())
    return column.cast(pa.float64()).fill_null(float("nan"))


def read_export(folder: Path, manifest_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the manifest, split -> pyarrow.Table) of an export, every file checked against it."""
    import pyarrow.parquet as pq

    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    again = f"run `make export` again, or delete {folder} and {manifest_path}"
    listed = {manifest["splits"][split]["file"] for split in SPLITS}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
    if present - listed:
        extra = sorted(present - listed)
        raise TrainError(f"{folder}: holds {len(extra)} file(s) its manifest does not list ({', '.join(extra[:3])}), "
                         f"which readers of the folder would read too: {again}", EXIT_RUNTIME)
    tables = {}
    for split in SPLITS:
        entry = manifest["splits"][split]
        path = folder / entry["file"]
        digest = training_set.sha256_file(path) if path.is_file() else "missing"
        if digest != entry["sha256"]:
            raise TrainError(f"{path}: does not match its manifest {manifest_path.name} (sha256 {digest[:12]}, "
                             f"manifest {entry['sha256'][:12]}): {again}", EXIT_RUNTIME)
        tables[split] = pq.read_table(path, partitioning=None)
    return manifest, tables


def load_dataset(conn: psycopg.Connection, config: config_mod.PipelineConfig, requested: str | None,
                 datasets_root: Path) -> Dataset:
    """The version's training set: exported Parquet when present, else PostgreSQL."""
    import pyarrow as pa

    registry = export_mod.resolve_version(conn, requested)
    export_mod.check_config(config, registry)
    version = registry["feature_version"]
    label = target_name(config.labels.horizon_days)
    folder, manifest_path = training_set.export_paths(datasets_root, config.name, version)
    if manifest_path.is_file():
        manifest, tables = read_export(folder, manifest_path)
        features = [c["name"] for c in manifest["columns"] if c["role"] == "feature"]
        label_columns = [c["name"] for c in manifest["columns"] if c["role"] == "label"]
        source, where = "parquet", str(folder)
    else:
        info = export_mod.describe(conn, config, version)  # numerics as float64, as a default export has them
        columns, types = info["columns"], info["types"]
        tables = {}
        for split in SPLITS:
            groups = list(training_set.iter_row_groups(conn, columns, types, split, version))
            schema = training_set.arrow_schema(columns, types)
            tables[split] = pa.concat_tables(groups) if groups else schema.empty_table()
        features = [c.name for c in columns if c.role == "feature"]
        label_columns = [c.name for c in columns if c.role == "label"]
        source, where = "postgresql", training_set.TABLE
    if label not in label_columns:
        raise TrainError(f"the training set of {version[:12]} has labels {label_columns}, not {label} "
                         f"(labels.horizon_days in {config.path}): run `make all` with this config first")
    if not features:
        raise TrainError(f"the training set of {version[:12]} has no feature column")
    return Dataset(version, label, features, source, where, tables)
