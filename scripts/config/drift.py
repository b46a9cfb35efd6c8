"""Drift rules: the ``drift:`` section of the expectations, checked by sql/65_profile/069_validate_drift.sql
against the previous successful run's profile (meta.profiles).

    drift:
      row_count: {warn_if: '>30%'}                  # |change| of the batch's orders, in %
      null_rate: {warn_if: '>5%', columns: [amount]} # |change| of a batch column's null rate, in points
      psi: {warn_if: '>0.1', error_if: '>0.25', severity: error, columns: [amount, orders_30d]}

A drift rule warns by default (severity warn); error_if fails the run only with severity
error (on a warn rule, breaching error_if warns). Thresholds compare the measured drift: a percentage (row_count, null_rate: written
with %) or a PSI (a plain number). A null rate changes by at most 100 points, so a null_rate
threshold that could never be breached ('>150%', '>100%') is refused; a row count may change by
more than 100 %. Everything wrong is refused with the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.errors import ConfigError
from scripts.config.columns import feature_columns
from scripts.config.rules import parse_threshold

# The batch's columns (stg.model_orders) a null-rate rule may watch.
BATCH_COLUMNS = ["order_id", "customer_id", "order_at", "amount", "status"]
RULES = {"row_count", "null_rate", "psi"}
OPTIONS = {"severity", "warn_if", "error_if", "columns"}
# What a check watches; 066 adds what it measured and against which run.
MESSAGES = {
    "row_count": "batch order count",
    "null_rate": "{column} null rate",
    "psi": "{column} distribution (PSI)",
}


def feature_names(features: dict[str, Any]) -> list[str]:
    """The feature columns, in table order."""
    return [column.name for column in feature_columns(features)]


def build_drift_checks(path: Path, raw: Any, features: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of the ``drift:`` section (none when it is absent)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(path, "drift", "must map drift rules (row_count, null_rate, psi) to their settings")
    unknown = sorted(set(raw) - RULES)
    if unknown:
        raise ConfigError(path, f"drift.{unknown[0]}", f"unknown drift rule (known: {', '.join(sorted(RULES))})")
    psi_columns = ["amount"] + feature_names(features)
    checks = []
    for rule in ("row_count", "null_rate", "psi"):
        if rule not in raw:
            continue
        key = f"drift.{rule}"
        spec = raw[rule] or {}
        if not isinstance(spec, dict):
            raise ConfigError(path, key, "must be a mapping such as {warn_if: '>30%'}")
        bad = sorted(set(spec) - OPTIONS) or (["columns"] if rule == "row_count" and "columns" in spec else [])
        if bad:
            raise ConfigError(path, f"{key}.{bad[0]}", "unknown option (known: severity, warn_if, error_if"
                                                       + (", columns)" if rule != "row_count" else ")"))
        severity = spec.get("severity", "warn")
        if severity not in ("error", "warn"):
            raise ConfigError(path, f"{key}.severity", f"must be error or warn, got {severity!r}")
        thresholds = {}
        # a row count may change by more than 100 %; a null rate by at most 100 points
        ceiling = "a null rate changes by at most 100 points; at most '>=100%'" if rule == "null_rate" else None
        for name in ("warn_if", "error_if"):
            threshold = parse_threshold(path, f"{key}.{name}", spec.get(name), ceiling)
            if threshold and threshold["percent"] != (rule != "psi"):
                raise ConfigError(path, f"{key}.{name}", "a PSI is a plain number ('>0.25')" if rule == "psi" else
                                  "a change is a percentage: write it with % ('>30%')")
            thresholds[name] = threshold
        if not thresholds["warn_if"] and not thresholds["error_if"]:
            raise ConfigError(path, key, "needs warn_if, error_if or both")
        allowed = {"null_rate": BATCH_COLUMNS, "psi": psi_columns}.get(rule, [None])
        columns = spec.get("columns", allowed)
        if rule != "row_count":
            if not isinstance(columns, list) or not columns:
                raise ConfigError(path, f"{key}.columns", f"must be a non-empty list of columns of {allowed}")
            for column in columns:
                if column not in allowed:
                    raise ConfigError(path, f"{key}.columns", f"{column!r} is not profiled (profiled: {', '.join(allowed)})")
        for column in columns:
            checks.append({
                "id": key if column is None else f"{key}.{column}",
                "key": key,
                "level": "drift",
                "rule": rule,
                "column": column,
                "severity": severity,
                "action": "fail",
                "error_if": thresholds["error_if"],
                "warn_if": thresholds["warn_if"],
                "params": {"subject": "features" if rule == "psi" and column != "amount" else "batch"},
                "message": MESSAGES[rule].format(column=column),
            })
    return checks
