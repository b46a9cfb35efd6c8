"""The sections of configs/pipeline.yaml, each a typed, frozen structure, and the parser
that reads and checks it. A parser refuses anything wrong with the file, the key and what
to do (ConfigError, exit 2); what it returns is what every other module reads.

The SQL templates read the same structures (``features.windows_days``), and a section's
fields, in order, are the keys its dict form has in the version's definition hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.config.defined import WINDOW_ENDS, Definition, parse_define
from scripts.config.fields import (ALERT_MAX_ATTEMPTS, ALERT_MAX_TIMEOUT_SECONDS, ATTRIBUTE_TYPES, IDENTIFIER_RE,
                                  STAGED_ORDER_COLUMNS, mapping, whole_number)
from scripts.errors import ConfigError


@dataclass(frozen=True)
class Staging:
    """staging: how source values become typed orders."""

    source_timezone: str = "UTC"  # the zone of naive timestamps
    amount_scale: int = 2  # decimal places an amount is rounded to
    status_map: dict[str, str] = field(default_factory=dict)  # variant -> standard status (lower-cased)
    date_order: str = "MDY"  # how an ambiguous date reads: MDY, DMY or YMD
    # typed columns the source models return beside the order contract (name -> type)
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Features:
    """features: the built-in feature columns."""

    windows_days: list[int] = field(default_factory=lambda: [7, 30])  # orders_<N>d, revenue_<N>d
    days_since_last_order_if_none: int | None = None  # for a customer's first order
    exclude_statuses: list[str] = field(default_factory=list)  # orders that never count
    window_end: str = "inclusive"  # inclusive: [t - W, t]; exclusive: [t - W, t)
    define: tuple[Definition, ...] = ()  # the user's own features (defined.py)


@dataclass(frozen=True)
class Labels:
    """labels: the targets; absent, there are none (and no purge)."""

    horizon_days: int = 30  # repeat_<H>d, revenue_next_<H>d
    observed_until: str | None = None  # ISO instant the data is known up to (None: the latest order)


@dataclass(frozen=True)
class Splits:
    """splits: the time split's fractions and the gap before val and test."""

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    gap_days: float = 0


@dataclass(frozen=True)
class Validation:
    """validation: how much of each failure is kept and reported."""

    failure_sample_size: int = 20
    failure_history_cap: int = 1000
    fail_on_error: bool = True  # false: error-severity rules warn


@dataclass(frozen=True)
class Retention:
    """retention: how many published versions stay queryable (the current one included)."""

    versions: int = 3


@dataclass(frozen=True)
class Alerts:
    """alerts: where and when a run posts its summary (ALERTS_WEBHOOK_URL wins over the file)."""

    webhook_url: str | None = None  # a secret: ALERTS_WEBHOOK_URL in the environment is its place
    on_warning: bool = False
    timeout_seconds: float = 3
    attempts: int = 3


@dataclass(frozen=True)
class Distribution:
    """distribution: the derived tables sharded by customer over Citus workers."""

    kind: str = "citus"
    shard_count: int = 8


def as_dict(section: Any) -> Any:
    """A section as plain data (for hashing and JSON); None stays None."""
    return None if section is None else dataclasses.asdict(section)


def parse_retention(path: Path, raw: dict[str, Any]) -> Retention:
    retention = mapping(path, raw, "retention", {"versions"})
    return Retention(versions=whole_number(path, "retention.versions", retention.get("versions", 3), 1))


def parse_validation(path: Path, raw: dict[str, Any]) -> Validation:
    validation = mapping(path, raw, "validation", {"failure_sample_size", "failure_history_cap", "fail_on_error"})
    fail_on_error = validation.get("fail_on_error", True)
    if not isinstance(fail_on_error, bool):
        raise ConfigError(path, "validation.fail_on_error", f"must be true or false, got {fail_on_error!r}")
    return Validation(
        failure_sample_size=whole_number(path, "validation.failure_sample_size",
                                         validation.get("failure_sample_size", 20), 0),
        failure_history_cap=whole_number(path, "validation.failure_history_cap",
                                         validation.get("failure_history_cap", 1000), 0),
        fail_on_error=fail_on_error,
    )


def parse_staging(path: Path, raw: dict[str, Any]) -> Staging:
    staging = mapping(path, raw, "staging", {"source_timezone", "amount_scale", "status_map", "date_order",
                                             "attributes"})
    date_order = str(staging.get("date_order", "MDY")).upper()
    if date_order not in ("MDY", "DMY", "YMD"):
        raise ConfigError(path, "staging.date_order", f"must be MDY, DMY or YMD, got {staging.get('date_order')!r}")
    tz = staging.get("source_timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(path, "staging.source_timezone", f"unknown time zone {tz!r} (e.g. UTC, Europe/London)") from None
    scale = whole_number(path, "staging.amount_scale", staging.get("amount_scale", 2), 0)
    status_map = staging.get("status_map") or {}
    if not isinstance(status_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in status_map.items()):
        raise ConfigError(path, "staging.status_map", "must map status variants (strings) to standard statuses")
    # Variants are matched after trimming and lower-casing, like every status.
    status_map = {k.strip().lower(): v.strip().lower() for k, v in status_map.items()}
    return Staging(source_timezone=str(tz), amount_scale=scale, status_map=status_map, date_order=date_order,
                   attributes=parse_attributes(path, staging.get("attributes")))


def parse_attributes(path: Path, raw: Any) -> dict[str, str]:
    """staging.attributes: {name: type}, the typed columns staged beside the order contract."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "staging.attributes", "must map attribute names to types (e.g. {country: text})")
    attributes = {}
    for name, pg_type in raw.items():
        key = f"staging.attributes.{name}"
        if not isinstance(name, str) or not IDENTIFIER_RE.match(name) or "__" in name:
            raise ConfigError(path, key, "an attribute's name is lower case letters, digits and single _ (starting "
                                         "with a letter, at most 48 characters)")
        if name in STAGED_ORDER_COLUMNS:
            raise ConfigError(path, key, f"{name} is a column the staged orders or lines have already: name the "
                                         "attribute otherwise")
        if pg_type not in ATTRIBUTE_TYPES:
            raise ConfigError(path, key, f"must be one of {', '.join(ATTRIBUTE_TYPES)}, got {pg_type!r}")
        attributes[name] = pg_type
    return attributes


def parse_features(path: Path, raw: dict[str, Any], attributes: dict[str, str]) -> Features:
    features = mapping(path, raw, "features", {"windows_days", "days_since_last_order_if_none", "exclude_statuses",
                                               "window_end", "define"})
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
    window_end = features.get("window_end", "inclusive")
    if window_end not in WINDOW_ENDS:
        raise ConfigError(path, "features.window_end", f"must be inclusive (orders at t count) or exclusive "
                                                       f"(t - W <= order time < t), got {window_end!r}")
    # each definition alone here; their names against every other column: columns.check_names
    return Features(windows_days=sorted(windows), days_since_last_order_if_none=if_none, exclude_statuses=excluded,
                    window_end=window_end, define=parse_define(path, features.get("define"), attributes))


def parse_labels(path: Path, raw: dict[str, Any]) -> Labels | None:
    """labels: {horizon_days, observed_until}; absent means no labels (and no purge)."""
    if "labels" not in raw:
        return None
    labels = mapping(path, raw, "labels", {"horizon_days", "observed_until"})
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
    return Labels(horizon_days=horizon, observed_until=None if until is None else str(until))


def parse_alerts(path: Path, raw: dict[str, Any]) -> Alerts:
    """alerts: {webhook_url, on_warning, timeout_seconds, attempts}; every key optional.
    An error never repeats the URL: it may hold a token."""
    defaults = Alerts()
    alerts = mapping(path, raw, "alerts", {f.name for f in dataclasses.fields(Alerts)})
    url = alerts.get("webhook_url")
    if url is not None:
        try:
            parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        except ValueError:  # e.g. an unclosed [ of an IPv6 address
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(path, "alerts.webhook_url", "must be an http:// or https:// URL (better: leave it out "
                                                          "and set ALERTS_WEBHOOK_URL in the environment)")
    on_warning = alerts.get("on_warning", defaults.on_warning)
    if not isinstance(on_warning, bool):
        raise ConfigError(path, "alerts.on_warning", f"must be true or false, got {on_warning!r}")
    timeout = alerts.get("timeout_seconds", defaults.timeout_seconds)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= ALERT_MAX_TIMEOUT_SECONDS:
        raise ConfigError(path, "alerts.timeout_seconds",
                          f"must be a number of seconds > 0 and <= {ALERT_MAX_TIMEOUT_SECONDS}, got {timeout!r}")
    attempts = whole_number(path, "alerts.attempts", alerts.get("attempts", defaults.attempts), 1)
    if attempts > ALERT_MAX_ATTEMPTS:
        raise ConfigError(path, "alerts.attempts", f"must be at most {ALERT_MAX_ATTEMPTS}, got {attempts}")
    return Alerts(webhook_url=url, on_warning=on_warning, timeout_seconds=timeout, attempts=attempts)


def parse_distribution(path: Path, raw: dict[str, Any]) -> Distribution | None:
    """distribution: {kind: citus, shard_count: N}: the derived tables sharded by customer over
    Citus workers (docs/scale-out.md); absent or kind: none, one server."""
    if raw.get("distribution") is None:
        return None
    distribution = mapping(path, raw, "distribution", {"kind", "shard_count"})
    kind = distribution.get("kind", "none")
    if kind not in ("none", "citus"):
        raise ConfigError(path, "distribution.kind", f"must be citus or none, got {kind!r}")
    if kind == "none":
        return None
    return Distribution(kind=kind, shard_count=whole_number(path, "distribution.shard_count",
                                                           distribution.get("shard_count", 8), 1))


LEGACY_SPLIT_NAMES = {"train_ratio": "train", "val_ratio": "val", "test_ratio": "test"}


def parse_splits(path: Path, raw: dict[str, Any]) -> Splits:
    splits = mapping(path, raw, "splits", {"train", "val", "test", "gap_days", "method", *LEGACY_SPLIT_NAMES})
    method = splits.get("method", "time")
    if method != "time":
        raise ConfigError(path, "splits.method", f"only time splits exist (method: time), got {method!r}")
    for legacy_name, name in LEGACY_SPLIT_NAMES.items():  # the original from-raw-to-ready project's spelling
        if legacy_name in splits:
            if name in splits:
                raise ConfigError(path, f"splits.{legacy_name}", f"give {name} or {legacy_name}, not both")
            splits[name] = splits[legacy_name]
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
    return Splits(**{k: float(v) for k, v in ratios.items()}, gap_days=gap)
