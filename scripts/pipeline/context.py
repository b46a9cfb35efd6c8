"""What the SQL templates see, and the rendered text of every stage.

The context comes from the configs and from the content of the named files, never from
runs, so the rendered text (what runs, what is hashed into the version, what a DBA runs
with psql -f) is known before any data work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from scripts.config import PipelineConfig, defined
from scripts.config.columns import (as_pairs, builtin_feature_columns, feature_columns, label_columns, revenue_label_name, target_name,
                                    window_feature_columns)
from scripts.config.sections import Features, Labels
from scripts.db import migrate, render
from scripts.ingest import copy
from scripts.pipeline import models, versions
from scripts.pipeline.stages import STAGES

PROFILED_FEATURE_ROWS = 20_000  # feature rows profiled (a sample when more)


def template_context(config: PipelineConfig, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the post-ingest templates may use."""
    context = {
        "batch_file_sha256s": [s["sha256"] for s in sources],
        "checks": config.record_checks,
        "drift_checks": [c for c in config.checks if c["level"] == "drift"],
        "profile": {"sample_rows": PROFILED_FEATURE_ROWS},
        "order_checks": config.order_checks,
        "failure_history_cap": config.validation.failure_history_cap,
        "columns": config.columns,
        "staging": config.staging,
        "status_map_json": json.dumps(config.staging.status_map, sort_keys=True),
        "features": config.features,
        "labels": config.labels,
        "splits": config.splits,
        "retention": config.retention,
        "distribution": config.distribution,
        # the value columns of the versioned feature and label rows, with their types
        "feature_columns": as_pairs(feature_columns(config.features)),
        "label_columns": as_pairs(label_columns(config.labels)),
        # the same names where the SQL needs one in particular (scripts/config/columns.py)
        "feature_windows": feature_windows(config.features),
        "days_since_column": days_since_column(config.features),
        "label_names": label_names(config.labels),
        # features.define: every defined column with its definition, window and frame
        "defined": defined.plan(config.features.define, config.features.window_end, config.features.windows_days),
    }
    context["models"] = models.render_models(config, sources, context) if sources else []
    return context


def feature_windows(features: Features) -> list[dict[str, Any]]:
    """Per window of features.windows_days, in order: its days and its two columns' names."""
    windows = []
    for days in features.windows_days:
        orders, revenue = window_feature_columns(days)
        windows.append({"days": days, "orders": orders.name, "revenue": revenue.name})
    return windows


def days_since_column(features: Features) -> str:
    """The one feature column that no window makes: the days since the previous order."""
    made_by_windows = {column.name for days in features.windows_days for column in window_feature_columns(days)}
    [column] = [column.name for column in builtin_feature_columns(features) if column.name not in made_by_windows]
    return column


def label_names(labels: Labels | None) -> dict[str, str] | None:
    """The label columns by what they are (None without labels)."""
    if not labels:
        return None
    [window_end] = [column.name for column in label_columns(labels) if column.role == "label_meta"]
    return {"window_end": window_end, "target": target_name(labels.horizon_days),
            "revenue": revenue_label_name(labels.horizon_days)}


def render_stage(stage: str, context: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, rendered text) of each of a stage's files, in run order."""
    return [(Path(template).name, render.render(template, context)) for template in render.stage_files(stage)]


def render_stages(config: PipelineConfig, sources: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Every stage's rendered files but ingest's (rendered per source file: scripts/ingest/copy.py)."""
    context = template_context(config, sources)
    return {stage.name: render_stage(stage.name, context) for stage in STAGES if stage.kind != "ingest"}


def content_hashes(config: PipelineConfig, sources: list[dict[str, Any]],
                   rendered: dict[str, list[tuple[str, str]]]) -> dict[str, dict[str, str]]:
    """What the run's feature_version is derived from (scripts/pipeline/versions.py)."""
    return versions.content_hashes(config, sources, render.stage_files("ingest"),
                                   (pair for files in rendered.values() for pair in files))


def render_all(config: PipelineConfig, sources: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write every stage's rendered SQL (ingest per source file) for DBAs; no database needed."""
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in [migrate.HISTORY_FILE, *migrate.migration_files()]:
        target = out_dir / "migrations" / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(path.read_bytes())
        written.append(target)
    target = out_dir / "migrate.psql"  # each pending migration, applied and recorded
    target.write_text(migrate.psql_script(migrate.migration_files()), encoding="utf-8")
    written.append(target)
    for index, source in enumerate(sources, start=1):
        parts = []
        for name, text in copy.render_ingest(source):
            stem, ext = os.path.splitext(name)
            target = out_dir / f"{stem}.file{index}{ext}"
            target.write_text(text, encoding="utf-8")
            written.append(target)
            parts.append(target.name)
        target = out_dir / f"ingest.file{index}.psql"
        target.write_text(copy.psql_ingest_script(source, parts), encoding="utf-8")
        written.append(target)
    rendered = render_stages(config, sources)
    for stage, files in rendered.items():
        for name, text in files:
            target = out_dir / name
            target.write_text(text, encoding="utf-8")
            written.append(target)
        # the stage's files in order, for one psql session: psql -1 -f settings.sql -f <stage>.psql
        script = out_dir / f"{render.stage_folder(stage)}.psql"
        script.write_text(f"-- the {stage} stage: its files in order, in one transaction (psql -1)\n"
                          + "".join(f"\\ir {name}\n" for name, _ in files), encoding="utf-8")
        written.append(script)
    hashes = content_hashes(config, sources, rendered)
    written.append(versions.write_psql_settings(config, sources, hashes, out_dir / "settings.sql"))
    return written
