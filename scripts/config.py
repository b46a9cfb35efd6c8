"""Load and check configs/pipeline.yaml (its expectations file: scripts/expectations.py).

Everything a user can get wrong in a config is refused here, before any data work, with the
file, the key and what to do. The result is plain data (dicts and lists) that the SQL
templates loop over. The seed's own keys are read too (sources[].path and type,
splits.method and *_ratio, validation.fail_on_error; db is ignored with a note).
"""

from __future__ import annotations

import datetime as dt
import glob
import re
import urllib.parse
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Canonical columns of stg.orders and whether a source must map them (each defaults to
# a source column of the same name; `status: null` stages orders without a status).
CANONICAL_COLUMNS = {"order_id": True, "customer_id": True, "order_ts": True, "amount": True, "status": False}

TIMESTAMP_TYPES = ("timestamptz", "timestamp", "date")
NUMERIC_TYPES = ("numeric", "integer", "bigint")
SUPPORTED_TYPES = TIMESTAMP_TYPES + NUMERIC_TYPES + ("boolean", "text")

# Rules a stage after validation cannot survive; their severity is always `error`.
STAGING_CRITICAL = "required columns, types of the order_ts and amount columns, non_null of order_id and order_ts"

THRESHOLD_RE = re.compile(r"^\s*(>=|>)?\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")

# alerts: where and when a run posts its summary (scripts/alerts.py). The webhook URL is a
# secret: ALERTS_WEBHOOK_URL in the environment is the place for it, and wins over the file.
ALERT_DEFAULTS: dict[str, Any] = {"webhook_url": None, "on_warning": False, "timeout_seconds": 3, "attempts": 3}
# an unreachable webhook delays a run by attempts x timeout (+ a few seconds of backoff) at most
ALERT_MAX_TIMEOUT_SECONDS, ALERT_MAX_ATTEMPTS = 30, 5


class ConfigError(Exception):
    """A config file is invalid. ``str()`` names the file and key."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path, self.key = str(path), key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass
class SourceFile:
    source_name: str
    path: str  # relative to the working directory when under it (else absolute), or an s3:// URI
    encoding: str
    delimiter: str
    quote: str
    model: str | None = None  # the source model's SQL file (None: the default model)
    columns: list[str] | None = None  # the header names to land (None: every column)


def project_root(config_path: Path) -> Path:
    """The folder a config's relative paths are relative to.

    A config kept in a folder named ``configs`` belongs to the project around that folder
    (``configs/pipeline.yaml`` -> the repository root), so a project copied elsewhere, like
    the seed's, runs from anywhere; any other config is read relative to its own folder.
    """
    folder = config_path.resolve().parent
    return folder.parent if folder.name == "configs" else folder


def resolve(root: Path, name: str) -> str:
    """``name`` from a config, as the runner shows and stores it: relative to the working
    directory when it lies under it, else absolute; URIs (s3://...) as they are."""
    if "://" in name:
        return name
    path = Path(name).expanduser()
    path = path if path.is_absolute() else root / path
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


@dataclass
class PipelineConfig:
    path: Path
    expectations_path: Path
    files: list[SourceFile]
    columns: dict[str, str | None]
    staging: dict[str, Any]
    features: dict[str, Any]
    splits: dict[str, Any]
    validation: dict[str, Any]
    checks: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, Any] | None = None  # None: no labels stage output, no purge
    retention: dict[str, Any] = field(default_factory=lambda: {"versions": 3})
    alerts: dict[str, Any] = field(default_factory=lambda: dict(ALERT_DEFAULTS))
    # None: one server; {"kind": "citus", "shard_count": N}: tables distributed (issue 11)
    distribution: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # printed at the start of a run

    @property
    def record_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["level"] == "records"]

    @property
    def order_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["level"] == "orders"]


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"byte {exc.start}", "a config file must be UTF-8") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(path, where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError)
        raise ConfigError(path, "", f"invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, "", "the top level must be a mapping of keys")
    return data


def _mapping(path: Path, data: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(path, key, "must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(path, f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def load(config_path: str | Path) -> PipelineConfig:
    path = Path(config_path)
    raw = _load_yaml(path)
    known = {"sources", "columns", "expectations", "staging", "features", "labels", "splits", "validation",
             "retention", "alerts", "distribution", "db"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown key (known: {', '.join(sorted(known))})")
    root = project_root(path)
    notes = []
    if "db" in raw:
        # the seed kept its connection here; credentials never live in a committed file
        notes.append(f"{path}: db is ignored: DATABASE_URL (or the embedded server) decides the database")

    files = _source_files(path, root, raw.get("sources"))
    columns = _columns(path, raw.get("columns"))
    staging = _staging(path, raw)
    features = _features(path, raw)
    splits = _splits(path, raw)
    labels = _labels(path, raw)
    retention = _mapping(path, raw, "retention", {"versions"})
    # how many published versions stay queryable (the current one included)
    retention = {"versions": _int(path, "retention.versions", retention.get("versions", 3), 1)}
    validation = _mapping(path, raw, "validation", {"failure_sample_size", "failure_history_cap", "fail_on_error"})
    fail_on_error = validation.get("fail_on_error", True)
    if not isinstance(fail_on_error, bool):
        raise ConfigError(path, "validation.fail_on_error", f"must be true or false, got {fail_on_error!r}")
    validation = {
        "failure_sample_size": _int(path, "validation.failure_sample_size", validation.get("failure_sample_size", 20), 0),
        "failure_history_cap": _int(path, "validation.failure_history_cap", validation.get("failure_history_cap", 1000), 0),
        "fail_on_error": fail_on_error,
    }

    alerts = _alerts(path, raw)
    distribution = _distribution(path, raw)

    exp_name = raw.get("expectations", "configs/expectations.yaml")
    if not isinstance(exp_name, str):
        raise ConfigError(path, "expectations", "must be the path of the expectations file")
    exp_path = Path(resolve(root, exp_name))
    expectations_raw = _load_yaml(exp_path)
    config = PipelineConfig(
        path=path,
        expectations_path=exp_path,
        files=files,
        columns=columns,
        staging=staging,
        features=features,
        splits=splits,
        validation=validation,
        labels=labels,
        retention=retention,
        alerts=alerts,
        distribution=distribution,
        notes=notes,
    )
    models = {f.source_name: f.model for f in files}
    from scripts import drift, expectations  # they use this module's ConfigError

    rules = {key: value for key, value in expectations_raw.items() if key != "drift"}
    config.checks = expectations.build_checks(
        exp_path, rules, columns, staging, models, fail_on_error, features["exclude_statuses"]
    ) + drift.build_drift_checks(exp_path, expectations_raw.get("drift"), features)
    return config


def _int(path: Path, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(path, key, f"must be a whole number >= {minimum}, got {value!r}")
    return value


SOURCE_KEYS = {"name", "paths", "path", "type", "model", "encoding", "delimiter", "quote", "columns"}


def expand_paths(root: Path, pattern: str) -> list[str]:
    """The files one ``paths`` entry names, sorted: a path, a glob over paths, or the
    objects an ``s3://bucket/key`` names (a key, or a glob over keys)."""
    from scripts import objectstore  # S3 listing; boto3 is imported only for s3:// paths

    if objectstore.is_s3(pattern):
        try:
            return objectstore.expand_s3(pattern)
        except objectstore.BadLocation as exc:  # a missing bucket: the config is wrong (exit 2)
            raise ConfigError(exc.uri, "", exc.problem) from None  # the caller adds the config's file and key
    full = pattern if Path(pattern).expanduser().is_absolute() else str(root / pattern)
    full = str(Path(full).expanduser())
    matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
    return [resolve(root, match) for match in matches if Path(match).is_file()]


def _source_files(path: Path, root: Path, sources: Any) -> list[SourceFile]:
    if not isinstance(sources, list) or not sources:
        raise ConfigError(path, "sources", "must be a non-empty list of {name, paths}")
    files: list[SourceFile] = []
    seen: set[str] = set()
    names: set[str] = set()
    for i, source in enumerate(sources):
        key = f"sources[{i}]"
        if not isinstance(source, dict):
            raise ConfigError(path, key, "must be a mapping with name and paths")
        unknown = sorted(set(source) - SOURCE_KEYS)
        if unknown:
            raise ConfigError(path, f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(SOURCE_KEYS))})")
        name = source.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(path, f"{key}.name", "must be a non-empty string")
        if name in names:
            raise ConfigError(path, f"{key}.name", f"another source is named {name!r} too")
        names.add(name)
        if str(source.get("type", "csv")).lower() != "csv":
            raise ConfigError(path, f"{key}.type", f"only csv sources exist, got {source.get('type')!r}")
        if "paths" in source and "path" in source:
            raise ConfigError(path, f"{key}.path", "give paths or path (the seed's name), not both")
        patterns = source.get("paths", source.get("path"))
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ConfigError(path, f"{key}.paths", "must be a file path, a glob, or a list of them")
        encoding = source.get("encoding", "UTF8")
        delimiter = source.get("delimiter", ",")
        quote = source.get("quote", '"')
        for option, value in (("delimiter", delimiter), ("quote", quote)):
            if not isinstance(value, str) or len(value) != 1:
                raise ConfigError(path, f"{key}.{option}", "must be a single character")
        if not isinstance(encoding, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", encoding):
            raise ConfigError(path, f"{key}.encoding", "must be a PostgreSQL encoding name such as UTF8 or LATIN1")
        model = source.get("model")
        if model is not None:
            if not isinstance(model, str) or not model.endswith(".sql"):
                raise ConfigError(path, f"{key}.model", "must be the path of a source model's .sql file")
            model = resolve(root, model)
            if not Path(model).is_file():
                raise ConfigError(path, f"{key}.model", f"no such file: {model}")
        keep = source.get("columns")  # land only these header columns (a file wider than a table may be)
        if keep is not None:
            from scripts import objectstore

            if not isinstance(keep, list) or not keep or not all(isinstance(c, str) and c for c in keep) \
                    or len(set(keep)) != len(keep):
                raise ConfigError(path, f"{key}.columns", "must be a non-empty list of distinct header names to land")
            if not objectstore.text_escape_safe(encoding):
                raise ConfigError(path, f"{key}.columns", f"cannot be used with encoding {encoding}, whose characters "
                                  "may hold ASCII bytes: convert the file to UTF-8, or land every column")
        for pattern in patterns:
            try:
                matches = expand_paths(root, pattern)
            except ConfigError as exc:  # an S3 location that holds nothing: say which config names it
                raise ConfigError(path, f"{key}.paths", str(exc)) from None
            if not matches:
                raise ConfigError(path, f"{key}.paths", f"no such file: {pattern}")
            for match in matches:
                if match not in seen:
                    seen.add(match)
                    files.append(SourceFile(name, match, encoding, delimiter, quote, model, keep))
    return files


def _columns(path: Path, columns: Any) -> dict[str, str | None]:
    columns = columns or {}
    if not isinstance(columns, dict):
        raise ConfigError(path, "columns", "must map canonical columns to source columns")
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise ConfigError(path, f"columns.{unknown[0]}", f"unknown canonical column (known: {', '.join(CANONICAL_COLUMNS)})")
    mapped: dict[str, str | None] = {}
    for canonical, required in CANONICAL_COLUMNS.items():
        source = columns.get(canonical, canonical)
        if source is None and required:
            raise ConfigError(path, f"columns.{canonical}", "is required: name the source column")
        if source is not None and (not isinstance(source, str) or not source):
            raise ConfigError(path, f"columns.{canonical}", "must be the source column's name (or null for status)")
        mapped[canonical] = source
    return mapped


def _staging(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    staging = _mapping(path, raw, "staging", {"source_timezone", "amount_scale", "status_map", "date_order"})
    date_order = str(staging.get("date_order", "MDY")).upper()
    if date_order not in ("MDY", "DMY", "YMD"):
        raise ConfigError(path, "staging.date_order", f"must be MDY, DMY or YMD, got {staging.get('date_order')!r}")
    tz = staging.get("source_timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(path, "staging.source_timezone", f"unknown time zone {tz!r} (e.g. UTC, Europe/London)") from None
    scale = _int(path, "staging.amount_scale", staging.get("amount_scale", 2), 0)
    status_map = staging.get("status_map") or {}
    if not isinstance(status_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in status_map.items()):
        raise ConfigError(path, "staging.status_map", "must map status variants (strings) to standard statuses")
    # Variants are matched after trimming and lower-casing, like every status.
    status_map = {k.strip().lower(): v.strip().lower() for k, v in status_map.items()}
    return {"source_timezone": str(tz), "amount_scale": scale, "status_map": status_map, "date_order": date_order}


def _features(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    features = _mapping(path, raw, "features", {"windows_days", "days_since_last_order_if_none", "exclude_statuses"})
    windows = features.get("windows_days", [7, 30])
    if not isinstance(windows, list) or not windows or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in windows
    ):
        raise ConfigError(path, "features.windows_days", "must be a non-empty list of whole numbers of days > 0")
    if len(set(windows)) != len(windows):
        raise ConfigError(path, "features.windows_days", "lists a window twice")
    if_none = features.get("days_since_last_order_if_none")
    if if_none is not None and (isinstance(if_none, bool) or not isinstance(if_none, int)):
        raise ConfigError(path, "features.days_since_last_order_if_none", "must be a whole number or null")
    excluded = features.get("exclude_statuses") or []
    if not isinstance(excluded, list) or not all(isinstance(v, str) and v.strip() for v in excluded):
        raise ConfigError(path, "features.exclude_statuses", "must be a list of statuses (e.g. [cancelled])")
    # compared with the status as staged: trimmed and lower-cased
    excluded = sorted({v.strip().lower() for v in excluded})
    return {"windows_days": sorted(windows), "days_since_last_order_if_none": if_none, "exclude_statuses": excluded}


def _labels(path: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    """labels: {horizon_days, observed_until}; absent means no labels (and no purge)."""
    if "labels" not in raw:
        return None
    labels = _mapping(path, raw, "labels", {"horizon_days", "observed_until"})
    horizon = labels.get("horizon_days", 30)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
        raise ConfigError(path, "labels.horizon_days", f"must be a whole number of days > 0, got {horizon!r}")
    until = labels.get("observed_until")
    if isinstance(until, (dt.date, dt.datetime)):  # YAML reads an unquoted date itself
        until = until.isoformat()
    if until is not None:
        try:
            dt.datetime.fromisoformat(str(until))
        except ValueError:
            raise ConfigError(path, "labels.observed_until", f"must be an ISO timestamp such as "
                                                             f"'2011-02-28 23:59:59' or null, got {until!r}") from None
    return {"horizon_days": horizon, "observed_until": None if until is None else str(until)}


def _alerts(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """alerts: {webhook_url, on_warning, timeout_seconds, attempts}; every key optional.
    An error never repeats the URL: it may hold a token."""
    alerts = _mapping(path, raw, "alerts", set(ALERT_DEFAULTS))
    url = alerts.get("webhook_url")
    if url is not None:
        try:
            parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        except ValueError:  # e.g. an unclosed [ of an IPv6 address
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(path, "alerts.webhook_url", "must be an http:// or https:// URL (better: leave it out "
                                                          "and set ALERTS_WEBHOOK_URL in the environment)")
    on_warning = alerts.get("on_warning", ALERT_DEFAULTS["on_warning"])
    if not isinstance(on_warning, bool):
        raise ConfigError(path, "alerts.on_warning", f"must be true or false, got {on_warning!r}")
    timeout = alerts.get("timeout_seconds", ALERT_DEFAULTS["timeout_seconds"])
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= ALERT_MAX_TIMEOUT_SECONDS:
        raise ConfigError(path, "alerts.timeout_seconds",
                          f"must be a number of seconds > 0 and <= {ALERT_MAX_TIMEOUT_SECONDS}, got {timeout!r}")
    attempts = _int(path, "alerts.attempts", alerts.get("attempts", ALERT_DEFAULTS["attempts"]), 1)
    if attempts > ALERT_MAX_ATTEMPTS:
        raise ConfigError(path, "alerts.attempts", f"must be at most {ALERT_MAX_ATTEMPTS}, got {attempts}")
    return {"webhook_url": url, "on_warning": on_warning, "timeout_seconds": timeout, "attempts": attempts}


def _distribution(path: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    """distribution: {kind: citus, shard_count: N}: the derived tables sharded by customer over
    Citus workers (README: Scale-out); absent or kind: none, one server."""
    if raw.get("distribution") is None:
        return None
    distribution = _mapping(path, raw, "distribution", {"kind", "shard_count"})
    kind = distribution.get("kind", "none")
    if kind not in ("none", "citus"):
        raise ConfigError(path, "distribution.kind", f"must be citus or none, got {kind!r}")
    if kind == "none":
        return None
    return {"kind": kind, "shard_count": _int(path, "distribution.shard_count", distribution.get("shard_count", 8), 1)}


SEED_SPLIT_NAMES = {"train_ratio": "train", "val_ratio": "val", "test_ratio": "test"}


def _splits(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    splits = _mapping(path, raw, "splits", {"train", "val", "test", "gap_days", "method", *SEED_SPLIT_NAMES})
    method = splits.get("method", "time")
    if method != "time":
        raise ConfigError(path, "splits.method", f"only time splits exist (method: time), got {method!r}")
    for seed_name, name in SEED_SPLIT_NAMES.items():  # the seed's spelling
        if seed_name in splits:
            if name in splits:
                raise ConfigError(path, f"splits.{seed_name}", f"give {name} or {seed_name}, not both")
            splits[name] = splits[seed_name]
    ratios = {name: splits.get(name, default) for name, default in (("train", 0.70), ("val", 0.15), ("test", 0.15))}
    for name, value in ratios.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(path, f"splits.{name}", f"must be a fraction >= 0, got {value!r}")
    if ratios["train"] <= 0:
        raise ConfigError(path, "splits.train", "must be > 0")
    if abs(sum(ratios.values()) - 1.0) > 1e-9:
        raise ConfigError(path, "splits", f"train + val + test must be 1, got {sum(ratios.values())}")
    gap = splits.get("gap_days", 0)
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or gap < 0:
        raise ConfigError(path, "splits.gap_days", f"must be a number of days >= 0, got {gap!r}")
    return {**{k: float(v) for k, v in ratios.items()}, "gap_days": gap}
