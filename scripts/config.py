"""Load and check configs/pipeline.yaml and configs/expectations.yaml.

Everything a user can get wrong in a config is refused here, before any data work, with the
file, the key and what to do. The result is plain data (dicts and lists) that the SQL
templates loop over.
"""

from __future__ import annotations

import glob
import re
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


class ConfigError(Exception):
    """A config file is invalid. ``str()`` names the file and key."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path, self.key = str(path), key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass
class SourceFile:
    source_name: str
    path: str  # as named (relative to the working directory), stored in raw.raw_events
    encoding: str
    delimiter: str
    quote: str


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
    known = {"sources", "columns", "expectations", "staging", "features", "splits", "validation"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown key (known: {', '.join(sorted(known))})")

    files = _source_files(path, raw.get("sources"))
    columns = _columns(path, raw.get("columns"))
    staging = _staging(path, raw)
    features = _features(path, raw)
    splits = _splits(path, raw)
    validation = _mapping(path, raw, "validation", {"failure_sample_size", "failure_history_cap"})
    validation = {
        "failure_sample_size": _int(path, "validation.failure_sample_size", validation.get("failure_sample_size", 20), 0),
        "failure_history_cap": _int(path, "validation.failure_history_cap", validation.get("failure_history_cap", 1000), 0),
    }

    exp_name = raw.get("expectations", "configs/expectations.yaml")
    if not isinstance(exp_name, str):
        raise ConfigError(path, "expectations", "must be the path of the expectations file")
    exp_path = Path(exp_name)
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
    )
    config.checks = build_checks(exp_path, expectations_raw, columns, staging)
    return config


def _int(path: Path, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(path, key, f"must be a whole number >= {minimum}, got {value!r}")
    return value


def _source_files(path: Path, sources: Any) -> list[SourceFile]:
    if not isinstance(sources, list) or not sources:
        raise ConfigError(path, "sources", "must be a non-empty list of {name, paths}")
    files: list[SourceFile] = []
    seen: set[str] = set()
    for i, source in enumerate(sources):
        key = f"sources[{i}]"
        if not isinstance(source, dict):
            raise ConfigError(path, key, "must be a mapping with name and paths")
        unknown = sorted(set(source) - {"name", "paths", "encoding", "delimiter", "quote"})
        if unknown:
            raise ConfigError(path, f"{key}.{unknown[0]}", "unknown key (known: name, paths, encoding, delimiter, quote)")
        name = source.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(path, f"{key}.name", "must be a non-empty string")
        patterns = source.get("paths")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns:
            raise ConfigError(path, f"{key}.paths", "must be a file path, a glob, or a list of them")
        encoding = source.get("encoding", "UTF8")
        delimiter = source.get("delimiter", ",")
        quote = source.get("quote", '"')
        for option, value in (("delimiter", delimiter), ("quote", quote)):
            if not isinstance(value, str) or len(value) != 1:
                raise ConfigError(path, f"{key}.{option}", "must be a single character")
        if not isinstance(encoding, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", encoding):
            raise ConfigError(path, f"{key}.encoding", "must be a PostgreSQL encoding name such as UTF8 or LATIN1")
        for pattern in patterns:
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matches or not Path(matches[0]).is_file():
                raise ConfigError(path, f"{key}.paths", f"no such file: {pattern}")
            for match in matches:
                if match not in seen:
                    seen.add(match)
                    files.append(SourceFile(name, match, encoding, delimiter, quote))
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
    features = _mapping(path, raw, "features", {"windows_days", "days_since_last_order_if_none"})
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
    return {"windows_days": sorted(windows), "days_since_last_order_if_none": if_none}


def _splits(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    splits = _mapping(path, raw, "splits", {"train", "val", "test", "gap_days"})
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


# --- expectations -------------------------------------------------------------------------

RULE_KEYS = {
    "required_columns", "min_rows", "non_null", "unique", "types", "ranges",
    "allowed_values", "max_decimal_places", "matches", "exact_duplicates",
}
COMMON_OPTIONS = {"severity", "error_if", "warn_if"}


def parse_threshold(path: Path, key: str, value: Any) -> dict[str, Any]:
    """'>0', '>=10', '>0.5%' or a bare count (meaning '>count') -> {op, value, percent}.

    Only '>' and '>=' exist: a threshold says how many offending records are too many.
    """
    if isinstance(value, bool):
        raise ConfigError(path, key, "must be a count or a condition such as '>0' or '>0.5%'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(path, key, f"a count cannot be negative, got {value!r}")
        return {"op": ">", "value": float(value), "percent": False}
    match = THRESHOLD_RE.match(str(value))
    if not match:
        raise ConfigError(path, key, f"cannot read threshold {value!r}: write it as '>0', '>=10' or '>0.5%' "
                                     "(only > and >= compare a number of offending records)")
    op, number, percent = match.groups()
    return {"op": op or ">", "value": float(number), "percent": bool(percent)}


def _message(rule: str, column: str | None, params: dict[str, Any]) -> str:
    if rule == "unique":
        return f"{column} has duplicate values"
    if rule == "non_null":
        return f"{column} has null values"
    if rule == "required_columns":
        return f"{column} is missing from the source"
    if rule == "min_rows":
        return f"fewer than {params['min']} rows"
    if rule == "exact_duplicates":
        return "some records are exact repeats of another record"
    if rule == "types":
        kind = params["type"]
        word = {"timestamptz": "timestamps", "timestamp": "timestamps", "date": "dates"}.get(kind)
        word = word or ("numbers" if kind in NUMERIC_TYPES else f"{kind} values")
        return f"{column} has invalid {word}"
    if rule == "ranges":
        parts = []
        if params.get("min") is not None:
            parts.append("negative values" if params["min"] == 0 else f"values below {params['min']}")
        if params.get("max") is not None:
            parts.append(f"values above {params['max']}")
        return f"{column} has {' or '.join(parts)}"
    if rule == "allowed_values":
        return f"{column} has values outside {', '.join(map(str, params['values']))}"
    if rule == "max_decimal_places":
        return f"{column} has more than {params['places']} decimal places"
    if rule == "matches":
        return f"{column} has values not matching {params['pattern']}"
    raise AssertionError(rule)


def _check(path: Path, key: str, rule: str, column: str | None, spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    severity = spec.get("severity", "error")
    if severity not in ("error", "warn"):
        raise ConfigError(path, f"{key}.severity", f"must be error or warn, got {severity!r}")
    check_id = rule if column is None else f"{rule}.{column}"
    return {
        "id": check_id,
        "key": key,
        "rule": rule,
        "column": column,
        "severity": severity,
        "error_if": parse_threshold(path, f"{key}.error_if", spec.get("error_if", ">0")),
        "warn_if": parse_threshold(path, f"{key}.warn_if", spec.get("warn_if", ">0")),
        "params": params,
        "message": _message(rule, column, params),
    }


def _as_spec(path: Path, key: str, value: Any, main: str, allowed: set[str]) -> dict[str, Any]:
    """A rule's value is either its main parameter or a mapping with options."""
    spec = value if isinstance(value, dict) else {main: value}
    unknown = sorted(set(spec) - allowed - COMMON_OPTIONS)
    if unknown:
        raise ConfigError(path, f"{key}.{unknown[0]}", f"unknown option (known: {', '.join(sorted(allowed | COMMON_OPTIONS))})")
    return spec


def _column_list(path: Path, key: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, list):
        raise ConfigError(path, key, "must be a list of column names (or {column: ..., severity: ...})")
    items = []
    for i, item in enumerate(value):
        spec = _as_spec(path, f"{key}[{i}]", item, "column", {"column"})
        column = spec.get("column")
        if not isinstance(column, str) or not column:
            raise ConfigError(path, f"{key}[{i}]", "must name a column")
        items.append((column, spec))
    return items


def build_checks(
    path: Path, raw: dict[str, Any], columns: dict[str, str | None], staging: dict[str, Any]
) -> list[dict[str, Any]]:
    """Turn expectations.yaml into a flat list of checks, adding the ones staging needs."""
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown rule (known: {', '.join(sorted(RULE_KEYS))})")
    checks: list[dict[str, Any]] = []
    for column, spec in _column_list(path, "required_columns", raw.get("required_columns", [])):
        checks.append(_check(path, f"required_columns.{column}", "required_columns", column, spec, {}))
    for column, spec in _column_list(path, "non_null", raw.get("non_null", [])):
        checks.append(_check(path, f"non_null.{column}", "non_null", column, spec, {}))
    for column, spec in _column_list(path, "unique", raw.get("unique", [])):
        checks.append(_check(path, f"unique.{column}", "unique", column, spec, {}))
    if "min_rows" in raw:
        spec = _as_spec(path, "min_rows", raw["min_rows"], "min", {"min"})
        checks.append(_check(path, "min_rows", "min_rows", None, spec, {"min": _int(path, "min_rows", spec.get("min"), 0)}))
    if "exact_duplicates" in raw:
        spec = _as_spec(path, "exact_duplicates", raw["exact_duplicates"] or {}, "severity", set())
        checks.append(_check(path, "exact_duplicates", "exact_duplicates", None, spec, {}))

    for rule, main, allowed in (
        ("types", "type", {"type"}),
        ("ranges", "min", {"min", "max"}),
        ("allowed_values", "values", {"values"}),
        ("max_decimal_places", "places", {"places"}),
        ("matches", "pattern", {"pattern"}),
    ):
        section = raw.get(rule) or {}
        if not isinstance(section, dict):
            raise ConfigError(path, rule, "must map column names to the rule's settings")
        for column, value in section.items():
            key = f"{rule}.{column}"
            if rule == "ranges" and not isinstance(value, dict):
                raise ConfigError(path, key, "must be a mapping with min and/or max")
            spec = _as_spec(path, key, value, main, allowed)
            params = {k: spec[k] for k in allowed if k in spec}
            _check_params(path, key, rule, params)
            checks.append(_check(path, key, rule, str(column), spec, params))

    _add_staging_checks(path, checks, columns, staging)
    ids = [c["id"] for c in checks]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(path, duplicated[0], "this check is declared twice")
    return checks


def _check_params(path: Path, key: str, rule: str, params: dict[str, Any]) -> None:
    if rule == "types" and params.get("type") not in SUPPORTED_TYPES:
        raise ConfigError(path, key, f"unknown type {params.get('type')!r} (known: {', '.join(SUPPORTED_TYPES)})")
    if rule == "ranges":
        for bound in ("min", "max"):
            value = params.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(path, f"{key}.{bound}", f"must be a number, got {value!r}")
        if params.get("min") is None and params.get("max") is None:
            raise ConfigError(path, key, "needs min, max or both")
        if params.get("min") is not None and params.get("max") is not None and params["min"] > params["max"]:
            raise ConfigError(path, key, f"min ({params['min']}) is greater than max ({params['max']})")
    if rule == "allowed_values":
        values = params.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float)) for v in values):
            raise ConfigError(path, key, "must be a non-empty list of accepted values")
        params["values"] = [str(v) for v in values]
    if rule == "max_decimal_places":
        params["places"] = _int(path, key, params.get("places"), 0)
    if rule == "matches" and not isinstance(params.get("pattern"), str):
        # PostgreSQL (not Python) runs the pattern; the runner has the server compile it
        # before any data work (scripts/run.py: check_patterns).
        raise ConfigError(path, key, "must be a PostgreSQL regular expression (a string)")


def _add_staging_checks(
    path: Path, checks: list[dict[str, Any]], columns: dict[str, str | None], staging: dict[str, Any]
) -> None:
    """Add (or insist on `error` for) the checks staging cannot survive without."""
    by_id = {c["id"]: c for c in checks}

    def require(rule: str, column: str, params: dict[str, Any], allowed_types: tuple[str, ...] = ()) -> None:
        check_id = f"{rule}.{column}"
        existing = by_id.get(check_id)
        if existing is None:
            check = _check(path, f"{rule}.{column}", rule, column, {}, params)
            check["implicit"] = True
            checks.append(check)
            by_id[check_id] = check
            return
        if existing["severity"] != "error" or existing["error_if"] != {"op": ">", "value": 0.0, "percent": False}:
            raise ConfigError(
                path, existing["key"],
                f"staging cannot run past this rule, so it must keep severity error and error_if '>0' "
                f"(the rules that cannot be relaxed: {STAGING_CRITICAL})",
            )
        if allowed_types and existing["params"].get("type") not in allowed_types:
            raise ConfigError(path, existing["key"], f"must be one of {', '.join(allowed_types)} for staging to cast it")

    for canonical, source in columns.items():
        if source is not None:
            require("required_columns", source, {})
    require("non_null", columns["order_id"], {})
    require("non_null", columns["order_ts"], {})
    require("types", columns["order_ts"], {"type": "timestamptz"}, TIMESTAMP_TYPES)
    require("types", columns["amount"], {"type": "numeric"}, NUMERIC_TYPES)
    # The same order id with different content is always a unique failure (staging keeps
    # one row per order); its severity may be relaxed, and staging then keeps the latest.
    if f"unique.{columns['order_id']}" not in by_id:
        check = _check(path, f"unique.{columns['order_id']}", "unique", columns["order_id"], {}, {})
        check["implicit"] = True
        checks.append(check)
    for check in checks:
        # The status is compared as staging stores it: trimmed, lower-cased, and mapped.
        # A variant is accepted when what it maps to is accepted.
        if check["rule"] == "allowed_values" and check["column"] == columns.get("status"):
            allowed = {v.strip().lower() for v in check["params"]["values"]}
            status_map = staging["status_map"]
            # a value is accepted when what staging stores for it is accepted
            accepted = {v for v in allowed | set(status_map) if status_map.get(v, v) in allowed}
            check["params"]["normalize"] = True
            check["params"]["values"] = sorted(accepted)
