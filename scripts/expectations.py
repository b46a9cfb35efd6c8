"""Read configs/expectations.yaml into a flat list of checks, at two levels.

- **records**: rules over the source's raw records (fields as received), checked before any
  source model runs. Top-level rules, or rules under ``records:``.
- **orders**: rules over the orders the source models produce (one row per order, typed,
  canonical columns), checked before anything is staged. Rules under ``orders:`` (the
  seed's own file nests its rules there, under its dataset name).

A record-level check may ``action: quarantine``: its offending records are set aside in
meta.quarantine and left out of staging, and the run goes on unless ``error_if`` is breached.
Everything a user can get wrong is refused here with the file, the key and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.config import NUMERIC_TYPES, STAGING_CRITICAL, SUPPORTED_TYPES, THRESHOLD_RE, ConfigError, _int

RULE_KEYS = {
    "required_columns", "min_rows", "non_null", "unique", "types", "ranges",
    "allowed_values", "max_decimal_places", "matches", "exact_duplicates",
}
LEVEL_KEYS = {"records", "orders"}
COMMON_OPTIONS = {"severity", "error_if", "warn_if", "action"}
# Options an order-level rule may take besides the common ones.
ORDER_OPTIONS = {"counted_only"}
# Record rules whose offending records can be told apart, one by one, and set aside.
QUARANTINE_RULES = {"required_columns", "non_null", "unique", "types", "ranges", "allowed_values",
                    "max_decimal_places", "matches"}
# The canonical order columns an order-level rule may address (the seed's name for order_at too).
ORDER_COLUMNS = {"order_id": "order_id", "customer_id": "customer_id", "order_at": "order_at",
                 "order_ts": "order_at", "amount": "amount", "status": "status"}
ORDER_RULES = {"required_columns", "min_rows", "non_null", "unique", "ranges", "allowed_values",
               "max_decimal_places", "matches"}
NEVER = None  # a threshold that is never breached (a quarantine check without error_if)


def parse_threshold(path: Path, key: str, value: Any) -> dict[str, Any] | None:
    """'>0', '>=10', '>0.5%' or a bare count (meaning '>count') -> {op, value, percent}.

    Only '>' and '>=' exist: a threshold says how many offending records are too many.
    """
    if value is NEVER:
        return NEVER
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


def _check(path: Path, key: str, rule: str, column: str | None, spec: dict[str, Any], params: dict[str, Any],
           level: str = "records") -> dict[str, Any]:
    severity = spec.get("severity", "error")
    if severity not in ("error", "warn"):
        raise ConfigError(path, f"{key}.severity", f"must be error or warn, got {severity!r}")
    action = spec.get("action", "fail")
    if action not in ("fail", "quarantine"):
        raise ConfigError(path, f"{key}.action", f"must be fail or quarantine, got {action!r}")
    if action == "quarantine" and level == "orders":
        raise ConfigError(path, f"{key}.action", "quarantine sets source records aside: use it on a "
                                                  "record-level rule (an order-level check fails or warns)")
    if action == "quarantine" and rule not in QUARANTINE_RULES:
        raise ConfigError(path, f"{key}.action", f"{rule} cannot quarantine records "
                                                  f"(rules that can: {', '.join(sorted(QUARANTINE_RULES))})")
    quarantine = action == "quarantine"
    # a quarantine check sets records aside and goes on: it gates only on an explicit threshold
    default_threshold = NEVER if quarantine else ">0"
    name = rule if column is None else f"{rule}.{column}"
    return {
        "id": f"orders.{name}" if level == "orders" else name,
        "key": key,
        "level": level,
        "rule": rule,
        "column": column,
        "severity": severity,
        "action": action,
        "error_if": parse_threshold(path, f"{key}.error_if", spec.get("error_if", default_threshold)),
        "warn_if": parse_threshold(path, f"{key}.warn_if", spec.get("warn_if", default_threshold)),
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


def _column_list(path: Path, key: str, value: Any, extra: set[str]) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, list):
        raise ConfigError(path, key, "must be a list of column names (or {column: ..., severity: ...})")
    items = []
    for i, item in enumerate(value):
        spec = _as_spec(path, f"{key}[{i}]", item, "column", {"column"} | extra)
        column = spec.get("column")
        if not isinstance(column, str) or not column:
            raise ConfigError(path, f"{key}[{i}]", "must name a column")
        items.append((column, spec))
    return items


def split_levels(path: Path, raw: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """{level: (key prefix, rules)}: top-level rules and ``records:`` are record rules."""
    unknown = sorted(set(raw) - RULE_KEYS - LEVEL_KEYS)
    if unknown:
        raise ConfigError(path, unknown[0], f"unknown rule or level (rules: {', '.join(sorted(RULE_KEYS))}; "
                                            "levels: records, orders)")
    levels: dict[str, tuple[str, dict[str, Any]]] = {}
    for level in ("records", "orders"):
        section = raw.get(level) or {}
        if not isinstance(section, dict):
            raise ConfigError(path, level, "must map rule names to their settings")
        bad = sorted(set(section) - RULE_KEYS)
        if bad:
            raise ConfigError(path, f"{level}.{bad[0]}", f"unknown rule (known: {', '.join(sorted(RULE_KEYS))})")
        levels[level] = (f"{level}.", section)
    top = {k: v for k, v in raw.items() if k in RULE_KEYS}
    if top and levels["records"][1]:
        twice = sorted(set(top) & set(levels["records"][1]))
        if twice:
            raise ConfigError(path, twice[0], "is given at the top level and under records: give it once")
    levels["records"] = ("records." if levels["records"][1] else "", {**top, **levels["records"][1]})
    return levels


def _level_checks(path: Path, prefix: str, raw: dict[str, Any], level: str) -> list[dict[str, Any]]:
    """The checks one level's rules declare, in a stable order."""
    extra = ORDER_OPTIONS if level == "orders" else set()
    checks: list[dict[str, Any]] = []

    def column_name(key: str, column: str) -> str:
        if level == "records":
            return column
        if column not in ORDER_COLUMNS:
            raise ConfigError(path, key, f"an order-level rule addresses the model's columns "
                                         f"({', '.join(sorted(ORDER_COLUMNS))}), not {column!r}")
        return ORDER_COLUMNS[column]

    def option_params(key: str, spec: dict[str, Any]) -> dict[str, Any]:
        counted = spec.get("counted_only", False)
        if not isinstance(counted, bool):
            raise ConfigError(path, f"{key}.counted_only", "must be true or false")
        return {"counted_only": True} if counted else {}

    for rule in ("required_columns", "non_null", "unique"):
        if level == "orders" and rule not in ORDER_RULES:
            continue
        for column, spec in _column_list(path, f"{prefix}{rule}", raw.get(rule, []), extra):
            key = f"{prefix}{rule}.{column}"
            name = column_name(key, column)
            if level == "orders" and rule == "required_columns":
                continue  # every model produces the canonical columns (checked before any data work)
            checks.append(_check(path, key, rule, name, spec, option_params(key, spec), level))
    if "min_rows" in raw:
        key = f"{prefix}min_rows"
        spec = _as_spec(path, key, raw["min_rows"], "min", {"min"})
        checks.append(_check(path, key, "min_rows", None, spec, {"min": _int(path, key, spec.get("min"), 0)}, level))
    if "exact_duplicates" in raw:
        key = f"{prefix}exact_duplicates"
        if level == "orders":
            raise ConfigError(path, key, "orders are one row per order_id: use unique on order_id")
        spec = _as_spec(path, key, raw["exact_duplicates"] or {}, "severity", set())
        checks.append(_check(path, key, "exact_duplicates", None, spec, {}))

    for rule, main, allowed in (
        ("types", "type", {"type"}),
        ("ranges", "min", {"min", "max"}),
        ("allowed_values", "values", {"values"}),
        ("max_decimal_places", "places", {"places"}),
        ("matches", "pattern", {"pattern"}),
    ):
        section = raw.get(rule) or {}
        if not isinstance(section, dict):
            raise ConfigError(path, f"{prefix}{rule}", "must map column names to the rule's settings")
        if section and level == "orders" and rule not in ORDER_RULES:
            raise ConfigError(path, f"{prefix}{rule}", "the model's orders are typed already: check the "
                                                       "source's fields with a record-level types rule")
        for column, value in section.items():
            key = f"{prefix}{rule}.{column}"
            if rule == "ranges" and not isinstance(value, dict):
                raise ConfigError(path, key, "must be a mapping with min and/or max")
            spec = _as_spec(path, key, value, main, allowed | extra)
            params = {k: spec[k] for k in allowed if k in spec}
            _check_params(path, key, rule, params)
            params.update(option_params(key, spec))
            checks.append(_check(path, key, rule, column_name(key, str(column)), spec, params, level))
    return checks


def build_checks(
    path: Path,
    raw: dict[str, Any],
    columns: dict[str, str | None],
    staging: dict[str, Any],
    models: dict[str, str | None],
    fail_on_error: bool = True,
    exclude_statuses: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Turn expectations.yaml into a flat list of checks, adding the ones staging needs."""
    levels = split_levels(path, raw)
    checks = _level_checks(path, *levels["records"], "records")
    order_checks = _level_checks(path, *levels["orders"], "orders")
    default_model = [name for name, model in models.items() if model is None]
    own_model = [name for name, model in models.items() if model is not None]
    if default_model and own_model:
        raise ConfigError(path, "", f"sources {default_model[0]!r} (default model) and {own_model[0]!r} "
                                    f"(own model) cannot share one expectations file yet: record rules "
                                    "apply to every source's records; run them as two configs")
    if default_model:
        _add_staging_checks(path, checks, columns, staging)
    else:
        # the default model's orders meet the contract by construction (DISTINCT ON the id,
        # record checks on the id and the instant); another model's orders must prove it
        _add_order_contract(path, order_checks)
    checks += order_checks
    ids = [c["id"] for c in checks]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(path, duplicated[0], "this check is declared twice")
    for check in checks:
        check["params"].setdefault("exclude_statuses", exclude_statuses or [])
        if not fail_on_error and not check.get("critical") and check["severity"] == "error":
            # validation.fail_on_error: false (the seed's switch): failures are reported as
            # warnings, except where staging cannot run past them
            check["severity"] = "warn"
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


STRICT = {"op": ">", "value": 0.0, "percent": False}


def _require(path: Path, checks: list[dict[str, Any]], rule: str, column: str, params: dict[str, Any],
             level: str = "records", allowed_types: tuple[str, ...] = ()) -> None:
    """Add a check a later stage cannot run without, or insist an existing one stays strict.

    A quarantine check may keep any threshold: its offending records never reach staging.
    """
    by_id = {c["id"]: c for c in checks}
    check_id = f"{rule}.{column}" if level == "records" else f"orders.{rule}.{column}"
    existing = by_id.get(check_id)
    if existing is None:
        check = _check(path, check_id, rule, column, {}, params, level)
        check["implicit"] = True
        check["critical"] = True
        checks.append(check)
        return
    existing["critical"] = True
    if existing["action"] != "quarantine" and (existing["severity"] != "error" or existing["error_if"] != STRICT):
        raise ConfigError(
            path, existing["key"],
            f"staging cannot run past this rule, so it must keep severity error and error_if '>0', or "
            f"set the offending records aside with action: quarantine "
            f"(the rules that cannot be relaxed: {STAGING_CRITICAL})",
        )
    if allowed_types and existing["params"].get("type") not in allowed_types:
        raise ConfigError(path, existing["key"], f"must be one of {', '.join(allowed_types)} for staging to cast it")


def _add_order_contract(path: Path, checks: list[dict[str, Any]]) -> None:
    """What stg.orders needs of every model: one row per order id, an id and an instant."""
    _require(path, checks, "unique", "order_id", {}, "orders")
    _require(path, checks, "non_null", "order_id", {}, "orders")
    _require(path, checks, "non_null", "order_at", {}, "orders")


def _add_staging_checks(
    path: Path, checks: list[dict[str, Any]], columns: dict[str, str | None], staging: dict[str, Any]
) -> None:
    """Add (or insist on `error` for) the checks the default model cannot survive without."""
    from scripts.config import TIMESTAMP_TYPES

    for canonical, source in columns.items():
        if source is not None:
            _require(path, checks, "required_columns", source, {})
    _require(path, checks, "non_null", columns["order_id"], {})
    _require(path, checks, "non_null", columns["order_ts"], {})
    _require(path, checks, "types", columns["order_ts"], {"type": "timestamptz"}, allowed_types=TIMESTAMP_TYPES)
    _require(path, checks, "types", columns["amount"], {"type": "numeric"}, allowed_types=NUMERIC_TYPES)
    # The same order id with different content is always a unique failure (staging keeps
    # one row per order); its severity may be relaxed, and staging then keeps the latest.
    by_id = {c["id"]: c for c in checks}
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
            accepted = {v for v in allowed | set(status_map) if status_map.get(v, v) in allowed}
            check["params"]["normalize"] = True
            check["params"]["values"] = sorted(accepted)
