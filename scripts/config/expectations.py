"""Read configs/expectations.yaml into a flat list of checks, at two levels.

- **records**: rules over the source's raw records (fields as received), checked before any
  source model runs. Top-level rules, or rules under ``records:``.
- **orders**: rules over the orders the source models produce (one row per order, typed,
  canonical columns), checked before anything is staged. Rules under ``orders:`` (the
  original from-raw-to-ready project's file nests its rules there, under its dataset name).

A record-level check may ``action: quarantine``: its offending records are set aside in
meta.quarantine and left out of staging, and the run goes on unless ``error_if`` is breached.

A rule that judges one value at a time may look at some rows only (``where``: a small
structured condition on other columns, never SQL) and may pass on a share of its non-null
values (``mostly``, Great Expectations' option); such a check counts its own rows, its
*domain*, and its percentages are shares of that domain. non_null's ``mostly`` is, as in
Great Expectations, the share of all its rows (of its ``where``'s, if any) that must be
non-null: it narrows no domain and is exactly ``error_if: '>(1 - mostly) * 100%'``. A check
takes ``mostly`` or ``error_if``, not both. A range implies its column's type.
Everything a user can get wrong is refused here with the file, the key and what to do.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from scripts.config.fields import (NUMERIC_TYPES, STAGING_CRITICAL, SUPPORTED_TYPES, TIMESTAMP_TYPES,
                                   whole_number)
from scripts.config.rules import (COMMON_OPTIONS, LEVEL_KEYS, MOSTLY_OF_ALL_ROWS, MOSTLY_RULES, NEVER, ORDER_COLUMNS,
                                  ORDER_OPTIONS, ORDER_RULES, QUARANTINE_RULES, RANGE_OPTIONS, RULE_KEYS, WHERE_RULES,
                                  WHERE_TESTS, parse_threshold, range_params)
from scripts.config.rules import message as rule_message
from scripts.config.rules import passed_message
from scripts.errors import ConfigError



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
    params = {**params, **_row_options(path, key, rule, spec, level)}
    # a quarantine check sets records aside and goes on: it gates only on an explicit threshold
    default_threshold = NEVER if quarantine else ">0"
    error_if = parse_threshold(path, f"{key}.error_if", spec.get("error_if", default_threshold))
    warn_if = parse_threshold(path, f"{key}.warn_if", spec.get("warn_if", default_threshold))
    text = rule_message(rule, column, params)
    passed = passed_message(rule, column, params)
    if "where" in params:
        text += f" where {_where_text(params['where'])}"
        passed += f" where {_where_text(params['where'])}"
    found = text  # what it found, before its threshold: "customer_id has null values"
    if "mostly" in params:
        # mostly: 0.95 -> more than 5 % of the non-null values failing breaches (exactly: the
        # share is a decimal, never a binary fraction); warn_if, unless given, is the same.
        # non_null: more than 5 % of all its rows null (Great Expectations' mostly there)
        failing_share = (1 - Decimal(str(params["mostly"]))) * 100
        base = ("of those rows" if "where" in params else "of its rows") if rule in MOSTLY_OF_ALL_ROWS \
            else "of its non-null values"
        if "error_if" in spec:
            raise ConfigError(path, f"{key}.mostly", f"mostly is this check's error threshold (mostly: "
                                                     f"{params['mostly']} fails on more than "
                                                     f"{failing_share.normalize():f}% {base}): give mostly or "
                                                     "error_if, not both")
        error_if = {"op": ">", "value": float(failing_share), "percent": True}
        if "warn_if" not in spec:
            warn_if = dict(error_if)
        text += f" in more than {failing_share.normalize():f}% {base}"
    name = rule if column is None else f"{rule}.{column}"
    return {
        "id": f"orders.{name}" if level == "orders" else name,
        "key": key,
        "level": level,
        "rule": rule,
        "column": column,
        "severity": severity,
        "action": action,
        "error_if": error_if,
        "warn_if": warn_if,
        "params": params,
        "message": text,
        "passed": passed,  # what the report says of it when it found no offender
        "found": found,  # ... and, with its counts, when its offenders are within its thresholds
        # the check counts its own rows (where, or the non-null values for mostly; non_null's
        # mostly is a share of all its rows)
        "has_domain": "where" in params or ("mostly" in params and rule not in MOSTLY_OF_ALL_ROWS),
        # mostly counts a share of the non-null values only (non_null's: of all its rows):
        # the SQL's domain leaves the nulls out then (sql/macros/rules.sql, order_rules.sql)
        "mostly_of_values": "mostly" in params and rule not in MOSTLY_OF_ALL_ROWS,
    }


def _row_options(path: Path, key: str, rule: str, spec: dict[str, Any], level: str) -> dict[str, Any]:
    """where (a condition on other columns) and mostly (a share of non-null values; non_null's:
    of all its rows), checked."""
    options: dict[str, Any] = {}
    if "where" in spec:
        if rule not in WHERE_RULES:
            raise ConfigError(path, f"{key}.where", f"{rule} cannot be conditional (rules that can: "
                                                    f"{', '.join(sorted(WHERE_RULES))})")
        options["where"] = _where(path, f"{key}.where", spec["where"], level)
    if "mostly" in spec:
        if rule not in MOSTLY_RULES:
            raise ConfigError(path, f"{key}.mostly", f"{rule} has no values to pass a share of (rules that take "
                                                     f"mostly: {', '.join(sorted(MOSTLY_RULES))})")
        mostly = spec["mostly"]
        what = "rows that must be non-null" if rule in MOSTLY_OF_ALL_ROWS else "non-null values that must pass"
        if isinstance(mostly, bool) or not isinstance(mostly, (int, float)) or not 0 <= mostly <= 1:
            raise ConfigError(path, f"{key}.mostly", f"must be the share of {what}, "
                                                     f"from 0 to 1 (0.95: 95 %), got {mostly!r}")
        options["mostly"] = mostly
    return options


def _where(path: Path, key: str, value: Any, level: str) -> list[dict[str, Any]]:
    """``{column: {test: argument}}`` -> conditions, all of which must hold. Never SQL: a
    column is quoted as an identifier or a JSON key, values as literals."""
    shape = "{status: {not_in: [refunded]}} (tests: in, not_in, is_null)"
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, key, f"must map columns to a test, e.g. {shape}")
    conditions = []
    for column, tests in value.items():
        column_key = f"{key}.{column}"
        if not isinstance(column, str) or not column:
            raise ConfigError(path, column_key, f"must name a column, e.g. {shape}")
        name = _order_column(path, column_key, column) if level == "orders" else column
        if not isinstance(tests, dict) or not tests:
            raise ConfigError(path, column_key, "must be a test: {in: [values]}, {not_in: [values]} or "
                                                "{is_null: true or false}")
        for test, argument in tests.items():
            test_key = f"{column_key}.{test}"
            if test not in WHERE_TESTS:
                raise ConfigError(path, test_key, f"unknown test (known: {', '.join(WHERE_TESTS)})")
            condition = {"column": name, "test": test, "is_null": None, "values": [], "listed": [],
                         "normalize": False}
            if test == "is_null":
                if not isinstance(argument, bool):
                    raise ConfigError(path, test_key, f"must be true or false, got {argument!r}")
                condition["is_null"] = argument
            else:
                if not isinstance(argument, list) or not argument or not all(
                        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in argument):
                    raise ConfigError(path, test_key, "must be a non-empty list of values (strings or numbers)")
                condition["listed"] = [str(v) for v in argument]
                # an order's status is compared as features.exclude_statuses is: trimmed, lower-cased
                condition["values"] = (sorted({v.strip().lower() for v in condition["listed"]})
                                       if level == "orders" and name == "status" else condition["listed"])
            conditions.append(condition)
    return conditions


def _where_text(conditions: list[dict[str, Any]]) -> str:
    parts = []
    for c in conditions:
        if c["test"] == "is_null":
            parts.append(f"{c['column']} is {'' if c['is_null'] else 'not '}empty")
        elif len(c["listed"]) == 1:
            parts.append(f"{c['column']} is {'' if c['test'] == 'in' else 'not '}{c['listed'][0]}")
        else:
            parts.append(f"{c['column']} is {'one' if c['test'] == 'in' else 'none'} of {', '.join(c['listed'])}")
    return " and ".join(parts)


def _order_column(path: Path, key: str, column: str) -> str:
    if column not in ORDER_COLUMNS:
        raise ConfigError(path, key, f"an order-level rule addresses the model's columns "
                                     f"({', '.join(sorted(ORDER_COLUMNS))}), not {column!r}")
    return ORDER_COLUMNS[column]


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
        return column if level == "records" else _order_column(path, key, column)

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
        checks.append(_check(path, key, "min_rows", None, spec, {"min": whole_number(path, key, spec.get("min"), 0)}, level))
    if "max_rows" in raw:
        key = f"{prefix}max_rows"
        spec = _as_spec(path, key, raw["max_rows"], "max", {"max"})
        most = whole_number(path, key, spec.get("max"), 0)
        least = next((c["params"]["min"] for c in checks if c["rule"] == "min_rows"), 0)
        if least > most:
            raise ConfigError(path, key, f"is below min_rows ({least}): no batch could pass both")
        checks.append(_check(path, key, "max_rows", None, spec, {"max": most}, level))
    if "exact_duplicates" in raw:
        key = f"{prefix}exact_duplicates"
        if level == "orders":
            raise ConfigError(path, key, "orders are one row per order_id: use unique on order_id")
        spec = _as_spec(path, key, raw["exact_duplicates"] or {}, "severity", set())
        checks.append(_check(path, key, "exact_duplicates", None, spec, {}))

    for rule, main, allowed in (
        ("types", "type", {"type"}),
        ("ranges", "min", RANGE_OPTIONS),
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
            name = column_name(key, str(column))
            if rule == "ranges":
                params = range_params(path, key, spec, level, name)
            else:
                params = {k: spec[k] for k in allowed if k in spec}
                _check_params(path, key, rule, params)
            params.update(option_params(key, spec))
            checks.append(_check(path, key, rule, name, spec, params, level))
            if rule == "ranges" and level == "records":
                checks.append(_implied_type(path, key, name, spec, params))
    return checks


def _implied_type(path: Path, key: str, column: str, spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The type check a record-level range implies: a value that is not a number (or not a
    timestamp) cannot be compared, and is a type error instead of passing unseen. It takes
    the range's options; build_checks keeps it only when no types rule names the column."""
    options = {k: v for k, v in spec.items() if k not in RANGE_OPTIONS}
    check = _check(path, key, "types", column, options,
                   {"type": "numeric" if params["kind"] == "number" else "timestamptz"})
    check["implicit"] = True
    check["implied_by"] = f"ranges.{column}"
    return check




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
    # the type checks ranges imply join once staging's own checks are in (below)
    implied = [c for c in checks if c.get("implied_by")]
    checks = [c for c in checks if not c.get("implied_by")]
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
    _add_implied_types(path, checks, implied)
    if default_model:
        _compare_status_as_staged(checks, columns, staging)
    checks += order_checks
    for check in checks:
        if check["rule"] == "ranges" and check["params"]["kind"] == "timestamp":
            # a naive bound is read where the data's naive timestamps are: in the source's zone
            for bound in (check["params"]["min"], check["params"]["max"]):
                if bound and bound["at"] and dt.datetime.fromisoformat(bound["at"]).tzinfo is None:
                    bound["zone"] = staging.source_timezone
    ids = [c["id"] for c in checks]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(path, duplicated[0], "this check is declared twice")
    for check in checks:
        check["params"].setdefault("exclude_statuses", exclude_statuses or [])
        if not fail_on_error and not check.get("critical") and check["severity"] == "error":
            # validation.fail_on_error: false (the original project's switch): failures are reported as
            # warnings, except where staging cannot run past them
            check["severity"] = "warn"
    return checks


def _check_params(path: Path, key: str, rule: str, params: dict[str, Any]) -> None:
    if rule == "types" and params.get("type") not in SUPPORTED_TYPES:
        raise ConfigError(path, key, f"unknown type {params.get('type')!r} (known: {', '.join(SUPPORTED_TYPES)})")
    if rule == "allowed_values":
        values = params.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float)) for v in values):
            raise ConfigError(path, key, "must be a non-empty list of accepted values")
        params["values"] = [str(v) for v in values]
    if rule == "max_decimal_places":
        params["places"] = whole_number(path, key, params.get("places"), 0)
    if rule == "matches" and not isinstance(params.get("pattern"), str):
        # PostgreSQL (not Python) runs the pattern; the runner has the server compile it
        # before any data work (scripts/pipeline/runner.py: check_patterns).
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
    if existing["has_domain"] or "mostly" in existing["params"]:
        option = "where" if "where" in existing["params"] else "mostly"
        raise ConfigError(path, f"{existing['key']}.{option}",
                          f"staging reads every record of this column, so this rule cannot look at some "
                          f"records only (where) or pass on a share of them (mostly) "
                          f"(the rules that cannot be relaxed: {STAGING_CRITICAL})")
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


def _compare_status_as_staged(checks: list[dict[str, Any]], columns: dict[str, str | None],
                              staging: dict[str, Any]) -> None:
    """The default model's record rules see the status as staging will store it."""
    for check in checks:
        # The status is compared as staging stores it: trimmed, lower-cased, and mapped.
        # A variant is accepted when what it maps to is accepted.
        if check["rule"] == "allowed_values" and check["column"] == columns.get("status"):
            check["params"]["normalize"] = True
            check["params"]["values"] = _staged_variants(check["params"]["values"], staging.status_map)
        # a condition on the status likewise: where: {status: {not_in: [refunded]}} holds for
        # ' Refunded' and for a variant the map sends to refunded
        for condition in check["params"].get("where", []):
            if condition["column"] == columns.get("status") and condition["test"] != "is_null":
                condition["normalize"] = True
                condition["values"] = _staged_variants(condition["values"], staging.status_map)


def _staged_variants(values: list[str], status_map: dict[str, str]) -> list[str]:
    """The trimmed, lower-cased statuses that staging stores as one of ``values``."""
    wanted = {v.strip().lower() for v in values}
    return sorted(v for v in wanted | set(status_map) if status_map.get(v, v) in wanted)


def _add_implied_types(path: Path, checks: list[dict[str, Any]], implied: list[dict[str, Any]]) -> None:
    """A record-level range implies its column's type (numeric for number bounds, timestamptz
    for timestamp bounds): the implied check is added when no types rule (the user's, or one
    staging adds) names the column, and a declared type that disagrees is refused."""
    by_id = {c["id"]: c for c in checks}
    for check in implied:
        declared = by_id.get(check["id"])
        if declared is None:
            checks.append(check)
            continue
        numbers = check["params"]["type"] == "numeric"
        kind, types = ("number", NUMERIC_TYPES) if numbers else ("timestamp", TIMESTAMP_TYPES)
        if declared["params"]["type"] not in types:
            where = "a types rule" if not declared.get("implicit") else "staging (a mapped column)"
            raise ConfigError(path, check["key"], f"{kind} bounds on a column that {where} types as "
                                                  f"{declared['params']['type']}: give bounds of its type, or a "
                                                  f"type of {', '.join(types)}")
