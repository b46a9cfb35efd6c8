"""features.define: the features a user declares, parsed and checked once.

A definition is an aggregate of a column of the staged orders (or a count of them) over
time windows ending at each feature instant, a ratio of two feature columns, or the time
since the first or last order. What a definition means is written here (the structures and
their column names) and in sql/macros/defined.sql (the SQL that computes it, in the window
pass of 50_features and in the point-in-time retrieval); docs/features.md gives the
semantics with examples. Every value a definition holds reaches SQL through the templates'
quoting (``ident`` and ``literal``), never as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.config.fields import unknown_key
from scripts.errors import ConfigError

AGGREGATES = ("count", "sum", "avg", "min", "max", "count_distinct", "first", "last",
              "time_since_first", "time_since_last")
NUMERIC_AGGREGATES = ("sum", "avg", "min", "max", "first", "last")  # need a numeric column
TIME_SINCE = ("time_since_first", "time_since_last")
OPERATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "!=": "<>"}  # written -> SQL
WINDOW_ENDS = ("inclusive", "exclusive")
DEFINITION_KEYS = {"name", "agg", "column", "windows", "where", "orders", "ratio", "source", "entity"}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
WINDOW_RE = re.compile(r"^([1-9][0-9]{0,5})([dh])$")

# The staged columns a definition may read, with their PostgreSQL types: an order's (source:
# orders), or a line's with its order's status, customer and ids (source: lines); both
# with the order's attributes (staging.attributes).
ORDER_COLUMNS = {"order_id": "text", "customer_id": "text", "order_at": "timestamptz", "amount": "numeric",
                 "status": "text"}
LINE_COLUMNS = {"order_id": "text", "customer_id": "text", "status": "text", "line_number": "bigint", "item": "text",
                "quantity": "numeric", "unit_price": "numeric", "amount": "numeric"}
SOURCES = ("orders", "lines")
NUMERIC = ("numeric", "integer", "bigint")


@dataclass(frozen=True)
class Window:
    """A window ending at the feature instant: `hours` long, or the whole history (None)."""

    label: str  # 30d, 12h, lifetime: the column name's suffix
    hours: int | None

    @property
    def interval(self) -> str:
        """The span as exact hours (a day is 24 h whatever the zone)."""
        return f"{self.hours} hours"


@dataclass(frozen=True)
class Condition:
    """One test of a where: `column op value`, or `column IN values` (op 'in')."""

    column: str
    pg_type: str
    op: str  # SQL operator from OPERATORS' values, or 'in'
    constants: tuple[Any, ...]  # the value(s) compared with


@dataclass(frozen=True)
class Definition:
    """One entry of features.define."""

    name: str
    agg: str | None  # None for a ratio
    column: str | None = None
    pg_type: str | None = None  # the column's type
    windows: tuple[Window, ...] = ()
    where: tuple[Condition, ...] = ()
    counted_only: bool = True  # orders: counted (features.exclude_statuses apply) or all
    ratio: tuple[str, str] | None = None  # numerator and denominator column names
    source: str = "orders"  # orders, or lines (the lines of the orders it reads)
    entity: str | None = None  # None: per customer; else a text attribute of the orders

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(name, PostgreSQL type) of each column this definition makes, in order."""
        if self.ratio:
            return [(self.name, "numeric")]
        if not self.windows:  # a time_since_* over the whole history
            return [(self.name, "integer")]
        return [(self.column_name(window), self.result_type) for window in self.windows]

    def column_name(self, window: Window) -> str:
        return f"{self.name}_{window.label}"

    @property
    def result_type(self) -> str:
        if self.agg in ("count", "count_distinct"):
            return "bigint"
        if self.agg in TIME_SINCE:
            return "integer"
        return "numeric"


def parse_window(path: Path, key: str, value: Any) -> Window:
    if value == "lifetime":
        return Window("lifetime", None)
    match = WINDOW_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(path, key, f"a window is <N>d, <N>h or lifetime (e.g. 30d, 12h), got {value!r}")
    number, unit = int(match.group(1)), match.group(2)
    return Window(f"{number}{unit}", number * 24 if unit == "d" else number)


def readable_columns(source: str, attributes: dict[str, str]) -> dict[str, str]:
    """The columns (and types) a definition of `source` may name."""
    return {**(LINE_COLUMNS if source == "lines" else ORDER_COLUMNS), **attributes}


def parse_where(path: Path, key: str, value: Any, readable: dict[str, str]) -> tuple[Condition, ...]:
    """{column: [values]} (any of them, several columns all hold), or {column, op, value}."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, key, "must be {column: [values]} or {column: c, op: '<', value: v}")
    if set(value) == {"column", "op", "value"}:
        column = known_column(path, f"{key}.column", value["column"], readable)
        if value["op"] not in OPERATORS:
            raise ConfigError(path, f"{key}.op", f"must be one of {', '.join(OPERATORS)}, got {value['op']!r}")
        return (Condition(column, readable[column], OPERATORS[value["op"]],
                          (checked_value(path, f"{key}.value", value["value"], column, readable[column]),)),)
    conditions = []
    for column, values in value.items():
        column = known_column(path, f"{key}.{column}", column, readable)
        if not isinstance(values, list) or not values:
            raise ConfigError(path, f"{key}.{column}", "must be a non-empty list of values (e.g. [cancelled])")
        checked = tuple(checked_value(path, f"{key}.{column}", v, column, readable[column]) for v in values)
        conditions.append(Condition(column, readable[column], "in", checked))
    return tuple(conditions)


def checked_value(path: Path, key: str, value: Any, column: str, pg_type: str) -> Any:
    if pg_type in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, f"{column} is a number: give a number, got {value!r}")
        return value
    if pg_type == "boolean":
        if not isinstance(value, bool):
            raise ConfigError(path, key, f"{column} is true or false: give true or false, got {value!r}")
        return value
    if pg_type == "timestamptz":
        raise ConfigError(path, key, f"{column} is a time: a where cannot test it (use windows)")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(path, key, f"{column} is text: give a text value, got {value!r}")
    # statuses are staged trimmed and lower-cased, so they are compared so
    return str(value).strip().lower() if column == "status" else str(value)


def known_column(path: Path, key: str, column: Any, readable: dict[str, str]) -> str:
    if column not in readable:
        what = "lines" if "item" in readable else "orders"
        raise ConfigError(path, key, f"unknown column {column!r} (the staged {what} have: {', '.join(readable)})")
    return column


def parse_definition(path: Path, index: int, entry: Any, attributes: dict[str, str]) -> Definition:
    where = f"features.define[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(path, where, "must be a mapping with name and agg (or ratio)")
    unknown = sorted(set(entry) - DEFINITION_KEYS)
    if unknown:
        raise unknown_key(path, f"{where}.{unknown[0]}", DEFINITION_KEYS)
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name) or "__" in name:
        raise ConfigError(path, f"{where}.name", "must be lower case letters, digits and single _ (starting with a "
                                                 f"letter, at most 48 characters), got {name!r}")
    where = f"features.define[{index}] ({name})"
    if "ratio" in entry:
        extra = sorted(set(entry) & {"agg", "column", "windows", "where", "orders", "source", "entity"})
        if extra:
            raise ConfigError(path, f"{where}.{extra[0]}", "a ratio takes only name and ratio: [numerator, denominator]")
        ratio = entry["ratio"]
        if not isinstance(ratio, list) or len(ratio) != 2 or not all(isinstance(r, str) for r in ratio):
            raise ConfigError(path, f"{where}.ratio", "must be [numerator, denominator]: two feature column names")
        return Definition(name, None, ratio=(ratio[0], ratio[1]))
    source = entry.get("source", "orders")
    if source not in SOURCES:
        raise ConfigError(path, f"{where}.source", f"must be orders or lines (the lines of those orders), got {source!r}")
    entity = entry.get("entity", "customer")
    if entity != "customer" and attributes.get(entity) != "text":
        text = [name for name, pg_type in attributes.items() if pg_type == "text"]
        raise ConfigError(path, f"{where}.entity", f"must be customer or a text attribute of staging.attributes "
                                                   f"({', '.join(text) or 'none declared'}), got {entity!r}")
    readable = readable_columns(source, attributes)
    agg = entry.get("agg")
    if agg not in AGGREGATES:
        raise ConfigError(path, f"{where}.agg", f"must be one of {', '.join(AGGREGATES)} (or give ratio), got {agg!r}")
    column = entry.get("column")
    pg_type = None
    if column is not None:
        column = known_column(path, f"{where}.column", column, readable)
        pg_type = readable[column]
    if agg in NUMERIC_AGGREGATES or agg == "count_distinct":
        if column is None:
            raise ConfigError(path, f"{where}.column", f"{agg} needs a column (e.g. column: amount)")
        if agg in NUMERIC_AGGREGATES and pg_type not in NUMERIC:
            numeric = [c for c, t in readable.items() if t in NUMERIC]
            raise ConfigError(path, f"{where}.column", f"{agg} needs a number column ({', '.join(numeric)}); "
                                                       f"{column} is {pg_type}")
    elif agg in TIME_SINCE and column is not None:
        raise ConfigError(path, f"{where}.column", f"{agg} takes no column: it measures days since an order")
    windows_raw = entry.get("windows")
    if windows_raw is None and agg not in TIME_SINCE:
        raise ConfigError(path, f"{where}.windows", "give the windows (e.g. windows: [30d, 90d, lifetime])")
    if windows_raw is not None and (not isinstance(windows_raw, list) or not windows_raw):
        raise ConfigError(path, f"{where}.windows", "must be a non-empty list (e.g. [30d, 90d, lifetime])")
    windows = tuple(parse_window(path, f"{where}.windows[{i}]", w) for i, w in enumerate(windows_raw or []))
    if len({w.label for w in windows}) != len(windows):
        raise ConfigError(path, f"{where}.windows", "lists a window twice")
    if len({w.hours for w in windows}) != len(windows):
        raise ConfigError(path, f"{where}.windows", "lists the same span twice (e.g. 1d and 24h)")
    orders = entry.get("orders", "counted")
    if orders not in ("counted", "all"):
        raise ConfigError(path, f"{where}.orders", f"must be counted (features.exclude_statuses apply) or all, "
                                                   f"got {orders!r}")
    conditions = parse_where(path, f"{where}.where", entry["where"], readable) if "where" in entry else ()
    return Definition(name, agg, column, pg_type, windows, conditions, orders == "counted", source=source,
                      entity=None if entity == "customer" else entity)


def parse_define(path: Path, raw: Any, attributes: dict[str, str] | None = None) -> tuple[Definition, ...]:
    """features.define: the list of definitions, each checked alone (their names against
    each other and every other column: scripts/config/columns.py check_names)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(path, "features.define", "must be a list of definitions (- name: ..., agg: ...)")
    return tuple(parse_definition(path, i, entry, attributes or {}) for i, entry in enumerate(raw))


def frame_name(window: Window | None, end: str) -> str:
    """The name of a window pass's frame: its span and whether t itself is in it."""
    return f"{'lifetime' if window is None or window.hours is None else f'h{window.hours}'}_{end}"


# the partial aggregates of an instant each aggregate reads (count_distinct: island flags)
PARTS = {"count": ("n",), "sum": ("sum",), "avg": ("sum", "n"), "min": ("min",), "max": ("max",),
         "first": ("first",), "last": ("last",), "time_since_first": ("any",), "time_since_last": ("any",)}


def partial_key(definition: Definition, part: str) -> tuple[Any, ...]:
    """What a partial computes: equal keys are one column of the pass (the average basket's
    sum of amounts is the built-ins' revenue sum, say), so each is aggregated once."""
    rows = (definition.source, definition.counted_only, definition.where)
    return (part, rows) if part == "any" else (part, rows, definition.column)


# the built-ins' partials, in the customer's pass: the counted orders and their amounts
BUILTIN_PARTIALS = {partial_key(Definition("builtin", "count"), "n"): "builtin__n",
                    partial_key(Definition("builtin", "sum", "amount"), "sum"): "builtin__sum"}


def partials(define: list[Definition], builtins: bool) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The pass's partial columns, each once (name, part, source and the definition that
    gives its rows and column), and per definition the column of each part it reads."""
    names = dict(BUILTIN_PARTIALS) if builtins else {}
    columns, parts_of = [], {}
    for definition in define:
        if definition.agg == "count_distinct":
            continue
        parts_of[definition.name] = {}
        for part in PARTS[definition.agg]:
            key = partial_key(definition, part)
            if key not in names:
                names[key] = f"{definition.name}__{part}"
                columns.append({"name": names[key], "part": part, "source": definition.source, "d": definition})
            parts_of[definition.name][part] = names[key]
    return columns, parts_of


def pass_plan(define: list[Definition], window_end: str, builtins: bool = False) -> dict[str, Any]:
    """One window pass (per customer, or per value of one entity): its columns in order with
    their definition, window and frame; its frames; its distinct counts; whether it reads
    lines; how far back a daily run reads (hours; None: the whole history, for a lifetime
    window or a time since without one)."""
    columns, frames, distinct = [], {}, []
    lifetime_before = frame_name(None, "exclusive")
    for definition in define:
        # time_since_* look strictly before t, as days_since_last_order does
        end = "exclusive" if definition.agg in TIME_SINCE else window_end
        for window in definition.windows or (None,):
            lifetime = window is None or window.hours is None
            # the whole history up to t is the running frame before t plus t's own row: one
            # frame, and no re-aggregation, for every lifetime column
            plus_current, ends_frame = False, None
            if definition.agg == "time_since_last":
                frame = lifetime_before  # the latest instant before t, inside W or not
            elif definition.agg == "last":
                # the latest value up to t (a running maximum: no frame to re-aggregate), kept
                # when its instant is inside the window (window_value tests it)
                frame, plus_current = lifetime_before, end == "inclusive"
            elif definition.agg == "count_distinct":
                # islands started by t less those whose last occurrence is before t - W: every
                # last occurrence up to t less those in the frame [t - W, t]
                frame, plus_current = lifetime_before, window_end == "inclusive"
                if not lifetime:
                    ends_frame = frame_name(window, "inclusive")
                    frames[ends_frame] = {"hours": window.hours, "end": "inclusive"}
            elif lifetime:
                frame, plus_current = lifetime_before, end == "inclusive"
            else:
                frame = frame_name(window, end)
            frames[frame] = {"hours": None, "end": "exclusive"} if frame == lifetime_before else \
                {"hours": window.hours, "end": end}
            name = definition.name if window is None else definition.column_name(window)
            columns.append({"name": name, "d": definition, "window": window, "frame": frame,
                            "plus_current": plus_current, "ends_frame": ends_frame})
            if definition.agg == "count_distinct":
                distinct.append({"name": name, "d": definition, "window": window})
    spans = [c["window"].hours if c["window"] else None for c in columns]
    partial_columns, parts_of = partials(define, builtins)
    return {"entity": define[0].entity if define else None, "columns": columns, "pass_columns": columns,
            "partials": partial_columns, "parts_of": parts_of, "frames": frames,
            "distinct": distinct, "distinct_definitions": list({c["d"].name: c["d"] for c in distinct}.values()),
            "lines": any(definition.source == "lines" for definition in define),
            "lookback_hours": None if None in spans or not spans else max(spans)}


def plan(define: tuple[Definition, ...], window_end: str, windows_days: list[int]) -> dict[str, Any]:
    """What the templates loop over (sql/macros/defined.sql): every defined column in order
    (`columns`, ratios included, each with its definition), and the window passes that make
    them: the customer's (its keys at the top level, as pass_plan gives them) and one per
    entity (`entities`). With any definition, the built-ins are computed in the customer's
    pass: `builtin_frames` names the frame of each of features.windows_days, and the days
    since the last order read the lifetime frame before t (so a daily run reads every window
    of the built-ins too, and the previous counted order: 50_features/050)."""
    customer = pass_plan([d for d in define if not d.ratio and d.entity is None], window_end, builtins=True)
    entity_names = list(dict.fromkeys(d.entity for d in define if not d.ratio and d.entity))
    entities = [pass_plan([d for d in define if not d.ratio and d.entity == name], window_end)
                for name in entity_names]
    made = {c["name"]: c for p in [customer, *entities] for c in p["columns"]}
    columns = []
    for definition in define:
        if definition.ratio:
            columns.append({"name": definition.name, "d": definition, "window": None, "frame": None,
                            "plus_current": False, "ends_frame": None})
        else:
            columns.extend(made[name] for name, _ in definition.columns)
    builtin_frames = {}
    if define:
        for days in windows_days:
            window = Window(f"{days}d", days * 24)
            builtin_frames[days] = frame_name(window, window_end)
            customer["frames"][builtin_frames[days]] = {"hours": window.hours, "end": window_end}
        customer["frames"][frame_name(None, "exclusive")] = {"hours": None, "end": "exclusive"}
        own = customer["lookback_hours"]  # None: a lifetime column reads the whole history
        customer["lookback_hours"] = None if customer["columns"] and own is None else \
            max([days * 24 for days in windows_days] + [own or 0])
    # the retrieval's groups: one aggregate per (entity, source) over its rows (defined_as_of.sql)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for column in columns:
        if not column["d"].ratio:
            groups.setdefault((column["d"].entity or "", column["d"].source), []).append(column)
    lookback = {p["entity"]: p["lookback_hours"] for p in entities} | {None: customer["lookback_hours"]}
    as_of_groups = [{"alias": f"d{i}", "entity": entity or None, "source": source, "columns": group,
                     "lookback_hours": lookback[entity or None]}
                    for i, ((entity, source), group) in enumerate(groups.items(), start=1)]
    return {**customer, "columns": columns, "pass_columns": customer["columns"], "entities": entities,
            "as_of_groups": as_of_groups,
            "any": bool(define), "builtin_frames": builtin_frames,
            "ratios": {d.name: d for d in define if d.ratio}}
