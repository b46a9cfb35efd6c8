"""Load and check configs/pipeline.yaml and its expectations file, before any data work.

Everything a user can get wrong in a config is refused with the file, the key and what to
do (ConfigError, exit 2). The result is one frozen PipelineConfig: a typed structure per
section (sections.py, source_files.py) and the checks the expectations give
(expectations.py, drift.py). The original from-raw-to-ready project's own keys are read too
(sources[].path and type, splits.method and *_ratio, validation.fail_on_error; db is
ignored with a note). configs/schemas/*.json describe the same keys for editors (schema.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.config import drift, expectations
from scripts.config.columns import check_names
from scripts.config.fields import load_yaml, unknown_key
from scripts.config.sections import (Alerts, Distribution, Features, Labels, Retention, Splits, Staging, Validation,
                                     parse_alerts, parse_distribution, parse_features, parse_labels, parse_retention,
                                     parse_splits, parse_staging, parse_validation)
from scripts.config.source_files import SourceFile, missing, parse_columns, parse_sources, project_root, resolve
from scripts.errors import ConfigError
from scripts.paths import REPO_ROOT

# The top-level keys of configs/pipeline.yaml (db: the original project's connection, ignored).
PIPELINE_KEYS = {"name", "sources", "columns", "expectations", "staging", "features", "labels", "splits", "validation",
                 "retention", "alerts", "distribution", "db"}
DEFAULT_EXPECTATIONS = "configs/expectations.yaml"
REPO_EXPECTATIONS = REPO_ROOT / DEFAULT_EXPECTATIONS  # the bundled rules
# A pipeline's name: its database on the embedded server, and what owns a database elsewhere.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
RESERVED_NAMES = ("postgres", "template0", "template1")


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    name: str  # `name:`, else the config file's stem (pipeline_name)
    expectations_path: Path
    files: list[SourceFile]
    columns: dict[str, str | None]  # canonical column -> source column (None: not mapped)
    staging: Staging
    features: Features
    splits: Splits
    validation: Validation
    checks: list[dict[str, Any]] = field(default_factory=list)  # every level's, in order
    labels: Labels | None = None  # None: no labels stage output, no purge
    retention: Retention = field(default_factory=Retention)
    alerts: Alerts = field(default_factory=Alerts)
    distribution: Distribution | None = None  # None: one server
    notes: list[str] = field(default_factory=list)  # printed at the start of a run

    @property
    def record_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["level"] == "records"]

    @property
    def order_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["level"] == "orders"]


def load(config_path: str | Path) -> PipelineConfig:
    path = Path(config_path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - PIPELINE_KEYS)
    if unknown:
        raise unknown_key(path, unknown[0], PIPELINE_KEYS)
    root = project_root(path)
    name = pipeline_name(path, raw.get("name"))
    notes = []
    if "db" in raw:
        # the original project kept its connection here; credentials never live in a committed file
        notes.append(f"{path}: db is ignored: DATABASE_URL (or the embedded server) decides the database")

    files = parse_sources(path, root, raw.get("sources"))
    staging = parse_staging(path, raw)
    columns = parse_columns(path, raw.get("columns"), staging.attributes)
    features = parse_features(path, raw, staging.attributes)
    lines_definition = next((i for i, d in enumerate(features.define) if d.source == "lines"), None)
    if lines_definition is not None and not any(f.lines_model for f in files):
        raise ConfigError(path, f"features.define[{lines_definition}].source",
                          "reads lines, but no source has a lines_model (the SELECT that returns its order lines)")
    splits = parse_splits(path, raw)
    labels = parse_labels(path, raw)
    check_names(path, features, labels)
    retention = parse_retention(path, raw)
    validation = parse_validation(path, raw)
    alerts = parse_alerts(path, raw)
    distribution = parse_distribution(path, raw)

    exp_name = raw.get("expectations", DEFAULT_EXPECTATIONS)
    if not isinstance(exp_name, str):
        raise ConfigError(path, "expectations", "must be the path of the expectations file")
    exp_path = Path(resolve(root, exp_name))
    if not exp_path.is_file():
        if "expectations" in raw:
            raise ConfigError(path, "expectations", missing(path, exp_name, "expectations file"))
        raise ConfigError(path, "expectations", f"not set, so the default {DEFAULT_EXPECTATIONS} is read, and "
                          f"{missing(path, exp_name)}; set expectations: to your rules file (a copy of "
                          f"{REPO_EXPECTATIONS} to start from), as an absolute path or one relative to {root}")
    expectations_raw = load_yaml(exp_path)
    models = {f.source_name: f.model for f in files}
    rules = {key: value for key, value in expectations_raw.items() if key != "drift"}
    checks = expectations.build_checks(
        exp_path, rules, columns, staging, models, validation.fail_on_error, features.exclude_statuses
    ) + drift.build_drift_checks(exp_path, expectations_raw.get("drift"), features)
    return PipelineConfig(
        path=path,
        name=name,
        expectations_path=exp_path,
        files=files,
        columns=columns,
        staging=staging,
        features=features,
        splits=splits,
        validation=validation,
        checks=checks,
        labels=labels,
        retention=retention,
        alerts=alerts,
        distribution=distribution,
        notes=notes,
    )


def name_of(config_path: str | Path) -> str:
    """The pipeline name of a config, without checking the rest of it (for the commands
    that only need to find the pipeline's database)."""
    path = Path(config_path)
    return pipeline_name(path, load_yaml(path).get("name"))


def pipeline_name(path: Path, given: Any) -> str:
    """The pipeline's name: ``name:`` as written, else the config file's stem made into one
    (lower case, other characters as underscores: ``my-orders.yaml`` -> ``my_orders``)."""
    if given is None:
        derived = re.sub(r"[^a-z0-9_]", "_", path.stem.lower())[:63]
        derived = derived if derived[:1].isalpha() else f"p_{derived}"[:63]
        return derived if derived not in RESERVED_NAMES else f"{derived}_pipeline"
    if not isinstance(given, str) or not NAME_PATTERN.fullmatch(given):
        raise ConfigError(path, "name", f"{given!r} is not a pipeline name: a lower-case letter, then up to 62 "
                          "lower-case letters, digits or underscores (it names the pipeline's database)")
    if given in RESERVED_NAMES:
        raise ConfigError(path, "name", f"{given!r} is PostgreSQL's own database: choose another name")
    return given
