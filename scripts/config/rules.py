"""What a rule is, written once: the rule table (where each rule may be written and which
options it takes), its message, its threshold and range bounds. expectations.py reads a
file of rules with it; sql/macros/rules.sql evaluates each rule (order_rules.sql over typed
orders); docs/validation.md describes each; schema.py gives editors its setting. Adding a
rule: a row in RULES, a branch in message(), its SQL in rules.sql, its setting in schema.py.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.config.fields import NUMERIC_TYPES, THRESHOLD_RE
from scripts.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A validation rule and where it may be used."""

    name: str
    orders: bool  # may be written at the orders level (over what the source models produce)
    quarantine: bool  # at the records level, its offending records can be told apart and set aside
    where: bool  # judges one value at a time, so it may look at some rows only (where:)
    mostly: bool  # may pass on a share (mostly:): of its non-null values; non_null's, of all its rows


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("required_columns", orders=True, quarantine=True, where=False, mostly=False),
    Rule("min_rows", orders=True, quarantine=False, where=False, mostly=False),
    Rule("max_rows", orders=True, quarantine=False, where=False, mostly=False),
    # non_null's mostly is the share of all its rows that must be non-null (MOSTLY_OF_ALL_ROWS)
    Rule("non_null", orders=True, quarantine=True, where=True, mostly=True),
    # unique judges a key against the others: mostly, but no where
    Rule("unique", orders=True, quarantine=True, where=False, mostly=True),
    Rule("types", orders=False, quarantine=True, where=True, mostly=True),
    Rule("ranges", orders=True, quarantine=True, where=True, mostly=True),
    Rule("allowed_values", orders=True, quarantine=True, where=True, mostly=True),
    Rule("max_decimal_places", orders=True, quarantine=True, where=True, mostly=True),
    Rule("matches", orders=True, quarantine=True, where=True, mostly=True),
    Rule("exact_duplicates", orders=False, quarantine=False, where=False, mostly=False),
)}
RULE_KEYS = set(RULES)
QUARANTINE_RULES = {name for name, rule in RULES.items() if rule.quarantine}
ORDER_RULES = {name for name, rule in RULES.items() if rule.orders}
WHERE_RULES = {name for name, rule in RULES.items() if rule.where}
MOSTLY_RULES = {name for name, rule in RULES.items() if rule.mostly}
# As in Great Expectations (expect_column_values_to_not_be_null), non_null's mostly is a share
# of every row it looks at: its nulls are what it counts, so they cannot be left out of its
# base as the other rules leave them out (sql/macros/rules.sql, order_rules.sql: in_domain).
MOSTLY_OF_ALL_ROWS = {"non_null"}
LEVEL_KEYS = {"records", "orders"}
# where and mostly are refused, naming the rules that take them, on any other rule
COMMON_OPTIONS = {"severity", "error_if", "warn_if", "action", "where", "mostly"}
# Options an order-level rule may take besides the common ones.
ORDER_OPTIONS = {"counted_only"}
# The canonical order columns an order-level rule may address (order_ts, the original from-raw-to-ready project's name, for order_at too).
ORDER_COLUMNS = {"order_id": "order_id", "customer_id": "customer_id", "order_at": "order_at",
                 "order_ts": "order_at", "amount": "amount", "status": "status"}
NEVER = None  # a threshold that is never breached (a quarantine check without error_if)
WHERE_TESTS = ("in", "not_in", "is_null")
RANGE_OPTIONS = {"min", "max", "strict_min", "strict_max"}
# A bound relative to the run: now (meta.runs.started_at), plus or minus a whole number of units.
NOW_RE = re.compile(r"^\s*now\s*(?:([+-])\s*(\d+)\s*(second|minute|hour|day|week|month|year)s?)?\s*$",
                    re.IGNORECASE)
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}
UNIT_MONTHS = {"month": 1, "year": 12}
MAX_OFFSET_DAYS = 366_000  # about 1000 years: further than that is a typo (and out of timestamp range)


SHARE_CEILING = "a check's share of the rows it looks at cannot exceed 100 %; at most '>=100%' (every row)"


def parse_threshold(path: Path, key: str, value: Any, ceiling: str | None = SHARE_CEILING) -> dict[str, Any] | None:
    """'>0', '>=10', '>0.5%' or a bare count (meaning '>count') -> {op, value, percent}.

    Only '>' and '>=' exist: a threshold says how many offending records are too many. A
    percentage that can never be breached ('>150%', '>100%') is refused, ``ceiling`` saying
    why, unless ``ceiling`` is None (a percentage change, which may exceed 100 %).
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
    threshold = {"op": op or ">", "value": float(number), "percent": bool(percent)}
    if ceiling and percent and (threshold["value"] > 100 or (threshold["value"] == 100 and threshold["op"] == ">")):
        raise ConfigError(path, key, f"{str(value).strip()!r} can never be breached: {ceiling}; "
                                     "write a smaller share, e.g. '>5%'")
    return threshold


def message(rule: str, column: str | None, params: dict[str, Any]) -> str:
    if rule == "unique":
        return f"{column} has duplicate values"
    if rule == "non_null":
        return f"{column} has null values"
    if rule == "required_columns":
        return f"{column} is missing from the source"
    if rule == "min_rows":
        return f"fewer than {params['min']} rows"
    if rule == "max_rows":
        return f"more than {params['max']} rows"
    if rule == "exact_duplicates":
        return "some records are exact repeats of another record"
    if rule == "types":
        kind = params["type"]
        word = {"timestamptz": "timestamps", "timestamp": "timestamps", "date": "dates"}.get(kind)
        word = word or ("numbers" if kind in NUMERIC_TYPES else f"{kind} values")
        return f"{column} has invalid {word}"
    if rule == "ranges":
        low, high = params.get("min"), params.get("max")
        strict_low, strict_high = params.get("strict_min"), params.get("strict_max")
        parts = []
        if params.get("kind") == "timestamp":
            if low is not None:
                parts.append(f"values {'at or before' if strict_low else 'before'} {low['describe']}")
            if high is not None:
                parts.append(f"values {'at or after' if strict_high else 'after'} {high['describe']}")
        else:
            if low is not None:
                parts.append("negative values" if low == 0 and not strict_low
                             else f"values {'at or below' if strict_low else 'below'} {low}")
            if high is not None:
                parts.append(f"values {'at or above' if strict_high else 'above'} {high}")
        return f"{column} has {' or '.join(parts)}"
    if rule == "allowed_values":
        return f"{column} has values outside {', '.join(map(str, params['values']))}"
    if rule == "max_decimal_places":
        return f"{column} has more than {params['places']} decimal places"
    if rule == "matches":
        return f"{column} has values not matching {params['pattern']}"
    raise AssertionError(rule)



def passed_message(rule: str, column: str | None, params: dict[str, Any]) -> str:
    """What a check that found no offender says: message()'s sentence, the other way round."""
    if rule == "required_columns":
        return f"{column} is in the source"
    if rule == "min_rows":
        return f"at least {params['min']} rows"
    if rule == "max_rows":
        return f"at most {params['max']} rows"
    if rule == "exact_duplicates":
        return "no record is an exact repeat of another"
    if rule == "max_decimal_places":
        return f"{column} has at most {params['places']} decimal places"
    if rule == "matches":
        return f"{column} has only values matching {params['pattern']}"
    found = message(rule, column, params)  # "<column> has <what it looks for>"
    return found.replace(" has ", " has no ", 1)


def range_params(path: Path, key: str, spec: dict[str, Any], level: str, column: str) -> dict[str, Any]:
    """min / max (numbers, or timestamps: ISO or relative to the run), strict_min / strict_max."""
    bounds = {which: range_bound(path, f"{key}.{which}", spec[which])
              for which in ("min", "max") if spec.get(which) is not None}
    if not bounds:
        raise ConfigError(path, key, "needs min, max or both")
    kinds = {bound["kind"] for bound in bounds.values()}
    if len(kinds) > 1:
        raise ConfigError(path, key, "min and max must both be numbers or both be dates or timestamps")
    kind = kinds.pop()
    params: dict[str, Any] = {"kind": kind, "min": None, "max": None}
    for which, bound in bounds.items():
        params[which] = bound["value"] if kind == "number" else bound
    for which in ("min", "max"):
        strict = spec.get(f"strict_{which}", False)
        if not isinstance(strict, bool):
            raise ConfigError(path, f"{key}.strict_{which}", f"must be true or false, got {strict!r}")
        if strict and which not in bounds:
            raise ConfigError(path, f"{key}.strict_{which}", f"needs {which}: there is no bound to make strict")
        params[f"strict_{which}"] = strict
    if len(bounds) == 2:
        order = bound_order(bounds["min"], bounds["max"])
        if order is not None and order > 0:
            raise ConfigError(path, key, f"min ({bounds['min']['text']}) is greater than max ({bounds['max']['text']})")
        if order == 0 and (params["strict_min"] or params["strict_max"]):
            raise ConfigError(path, key, f"min and max are both {bounds['min']['text']} and a bound is strict: "
                                         "no value could pass")
    if level == "orders" and kind == "timestamp" and column != "order_at":
        raise ConfigError(path, key, f"{column} is not a timestamp: of an order's columns only order_at takes "
                                     "date or timestamp bounds")
    if level == "orders" and kind == "number" and column == "order_at":
        raise ConfigError(path, key, "order_at is a timestamp: give its bounds as dates or timestamps "
                                     "('2020-01-01', 'now', 'now - 400 days')")
    return params


def range_bound(path: Path, key: str, value: Any) -> dict[str, Any]:
    """A bound as the SQL compares it: a number, a fixed instant (ISO; a naive one is read in
    staging.source_timezone, filled in by build_checks) or the run's start plus an offset."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(path, key, f"must be a finite number, got {value!r}")
        return {"kind": "number", "value": value, "text": str(value)}
    if isinstance(value, dt.date):  # YAML reads an unquoted date or timestamp itself
        instant = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
        return fixed_bound(instant, value.isoformat())
    if isinstance(value, str):
        now = NOW_RE.match(value)
        if now:
            sign, number, unit = now.groups()
            bound = {"kind": "timestamp", "relative": True, "offset": None, "at": None, "zone": None,
                     "text": "now", "describe": "the run's start"}
            if number is not None:
                count, unit = int(number), unit.lower()
                days = count * UNIT_SECONDS.get(unit, 0) / 86_400 + count * UNIT_MONTHS.get(unit, 0) * 31
                if days > MAX_OFFSET_DAYS:
                    raise ConfigError(path, key, f"{value.strip()!r} is more than 1000 years from now")
                words = f"{count} {unit}{'' if count == 1 else 's'}"
                bound.update(offset=f"{'-' if sign == '-' else ''}{count} {unit}s", text=f"now {sign} {words}",
                             describe=f"the run's start {sign} {words}")
            return bound
        try:
            instant = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return fixed_bound(instant, value.strip())
    raise ConfigError(path, key, "must be a number, an ISO date or timestamp ('2020-01-01', "
                                 "'2020-01-01 00:00:00+00:00') or now with an optional offset ('now', "
                                 f"'now + 1 day', 'now - 400 days'), got {value!r}")


def fixed_bound(instant: dt.datetime, text: str) -> dict[str, Any]:
    return {"kind": "timestamp", "relative": False, "offset": None, "at": instant.isoformat(), "zone": None,
            "text": text, "describe": text}


def bound_order(low: dict[str, Any], high: dict[str, Any]) -> int | None:
    """Whether low is below (-1), at (0) or above (1) high; None when only the run can tell
    (a fixed instant against now, months against days, a naive instant against an aware one)."""
    def position(bound: dict[str, Any]) -> tuple[str, Any]:
        if bound["kind"] == "number":
            return "number", bound["value"]
        if not bound["relative"]:
            instant = dt.datetime.fromisoformat(bound["at"])
            return ("naive" if instant.tzinfo is None else "aware"), instant
        if bound["offset"] is None:
            return "now", 0
        count, unit = bound["offset"].split()
        unit = unit.rstrip("s")
        if unit in UNIT_MONTHS:
            return "now+months", int(count) * UNIT_MONTHS[unit]
        return "now+seconds", int(count) * UNIT_SECONDS[unit]

    (low_kind, low_at), (high_kind, high_at) = position(low), position(high)
    if low_kind == "now" and high_kind.startswith("now"):
        low_kind = high_kind
    if high_kind == "now" and low_kind.startswith("now"):
        high_kind = low_kind
    if low_kind != high_kind:
        return None
    return (low_at > high_at) - (low_at < high_at)
