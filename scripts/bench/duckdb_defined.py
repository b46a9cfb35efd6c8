"""The comparator of `make bench`'s twelve defined features: DuckDB, in-process, computing the
built-in features and the features.define columns (scripts/bench/twelve_features.yaml) on the
same CSV file, timed, and a checksum of each defined column. Bench-only
(requirements-bench.txt); nothing in the pipeline imports it.

Written from the semantics of a definition, not from sql/macros/defined.sql, so that the two
check each other. One row per order, every column a window aggregate over the customer's
orders in time order (RANGE frames: orders at one instant are peers, so every order of an
instant gets the same values), then one row per customer and instant of a counted order:
  window    Nd / Nh: [t - N*24 h (N h), t] (window_end inclusive) or [t - W, t) (exclusive);
            lifetime: everything up to t. time_since_* look strictly before t.
  orders    counted: features.exclude_statuses left out; all: every order with a customer;
            where: {column: [values]} (any of them) or {column, op, value}
  count     orders (with the column non-NULL, if one is given); 0 when none
  sum       of the non-NULL values, 0 when none; avg, min, max: NULL when none
  count_distinct  distinct non-NULL values, 0 when none
  first / last    the value at the earliest / latest instant with a non-NULL value, ties at
                  an instant by order_id (smallest / largest, byte order)
  time_since_*    floor(days) since the first / last such order strictly before t
  ratio     numerator / denominator of two finished columns, NULL where the denominator is 0
The orders are read as the pipeline stages them and as scripts/bench/duckdb_stages.py reads
them: every field as text, ids and statuses trimmed (statuses lower-cased), naive times in
UTC, amounts rounded to 2 places, the latest record of an order id kept.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

try:  # a bench-only dependency (requirements-bench.txt): without it there is no comparison
    import duckdb
except ImportError:  # pragma: no cover - the bench says so and goes on
    duckdb = None

WINDOW_RE = re.compile(r"^([1-9][0-9]*)([dh])$")
OPERATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "!=": "<>"}
NUMERIC_COLUMNS = ("amount",)
DAY_US = 86_400_000_000  # a day in microseconds

LOAD = """
CREATE TABLE orders AS
SELECT DISTINCT ON (order_id) order_id, customer_id, order_at, amount, status
FROM (
    SELECT trim(order_id) AS order_id,
           nullif(trim(customer_id), '') AS customer_id,
           CAST(order_ts AS TIMESTAMPTZ) AS order_at,
           CAST(round(CAST(amount AS DECIMAL(38, 10)), 2) AS DECIMAL(18, 2)) AS amount,
           nullif(lower(trim(status)), '') AS status,
           line_number
    FROM (SELECT row_number() OVER () AS line_number, *
          FROM read_csv($1, header = true, all_varchar = true))
)
ORDER BY order_id, line_number DESC
"""


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def window_hours(window: str) -> int | None:
    """A window's span in hours (a day is 24 h), None for lifetime."""
    if window == "lifetime":
        return None
    match = WINDOW_RE.match(window)
    if not match:
        raise ValueError(f"not a window: {window!r}")
    return int(match.group(1)) * (24 if match.group(2) == "d" else 1)


def columns(define: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each column the definitions make, in order: name, definition, window (None: a ratio or a
    time since without windows) and whether its value is exact (a quotient is not)."""
    found = []
    for d in define:
        if "ratio" in d:
            found.append({"name": d["name"], "d": d, "window": None, "exact": False})
            continue
        for window in d.get("windows") or [None]:
            name = d["name"] if window is None else f"{d['name']}_{window}"
            found.append({"name": name, "d": d, "window": window, "exact": d["agg"] != "avg"})
    return found


class Query:
    """The features query under construction: its named frames and its parameters."""

    def __init__(self, exclude_statuses: list[str], window_end: str) -> None:
        self.params: list[Any] = []
        self.frames: dict[str, str] = {}
        self.exclude = exclude_statuses
        self.window_end = window_end

    def param(self, value: Any, numeric: bool = False) -> str:
        self.params.append(str(value) if numeric else value)
        placeholder = f"${len(self.params)}"
        return f"CAST({placeholder} AS DECIMAL(38, 10))" if numeric else placeholder

    def frame(self, window: str | None, before_t: bool) -> str:
        """The name of the frame of `window` (None: the whole history) ending at t or before it."""
        hours = None if window is None else window_hours(window)
        end = "e" if before_t else "i"
        name = f"{'lifetime' if hours is None else f'h{hours}'}_{end}"
        start = "UNBOUNDED PRECEDING" if hours is None else f"INTERVAL {int(hours)} HOURS PRECEDING"
        stop = "INTERVAL 1 MICROSECOND PRECEDING" if before_t else "CURRENT ROW"
        self.frames[name] = f"PARTITION BY customer_id ORDER BY order_at RANGE BETWEEN {start} AND {stop}"
        return name

    def counted(self) -> list[str]:
        """The test of an order that counts (the rows all have a customer): none when no status
        is excluded."""
        if not self.exclude:
            return []
        listed = ", ".join(self.param(status) for status in self.exclude)
        return [f"NOT coalesce(status IN ({listed}), FALSE)"]

    def selects(self, d: dict[str, Any], *more: str) -> str:
        """The FILTER clause of the orders definition `d` reads, and `more` tests."""
        tests = self.counted() if d.get("orders", "counted") == "counted" else []
        where = d.get("where") or {}
        if set(where) == {"column", "op", "value"}:
            column = where["column"]
            tests.append(f"{quoted(column)} {OPERATORS[where['op']]} "
                         + self.param(where["value"], numeric=column in NUMERIC_COLUMNS))
        else:
            for column, values in where.items():
                numeric = column in NUMERIC_COLUMNS
                listed = ", ".join(self.param(str(v).strip().lower() if column == "status" else v, numeric)
                                   for v in values)
                tests.append(f"{quoted(column)} IN ({listed})")
        tests += more
        return f" FILTER (WHERE {' AND '.join(tests)})" if tests else ""

    def value(self, c: dict[str, Any]) -> str:
        """One defined column (not a ratio) as a window aggregate over the orders."""
        d = c["d"]
        agg = d["agg"]
        column = quoted(d["column"]) if d.get("column") else None
        window = None if c["window"] == "lifetime" else c["window"]
        if agg.startswith("time_since"):
            over = self.frame(window, before_t=True)
            pick = "min" if agg == "time_since_first" else "max"
            return f"(epoch_us(order_at) - epoch_us({pick}(order_at){self.selects(d)} OVER {over})) // {DAY_US}"
        over = self.frame(window, before_t=self.window_end == "exclusive")
        if agg == "count":
            return f"count(*){self.selects(d, *([f'{column} IS NOT NULL'] if column else []))} OVER {over}"
        if agg == "sum":
            return f"coalesce(sum({column}){self.selects(d)} OVER {over}, 0)"
        if agg in ("avg", "min", "max"):
            return f"{agg}({column}){self.selects(d)} OVER {over}"
        if agg == "count_distinct":
            return f"count(DISTINCT {column}){self.selects(d)} OVER {over}"
        if agg in ("first", "last"):
            # the earliest (latest) (instant, order_id) with a value
            pick = "arg_min" if agg == "first" else "arg_max"
            return (f"{pick}({column}, {{'at': order_at, 'id': order_id}})"
                    f"{self.selects(d, f'{column} IS NOT NULL')} OVER {over}")
        raise ValueError(f"unknown aggregate {agg!r}")

    def builtins(self, windows_days: list[int]) -> list[tuple[str, str]]:
        """The built-in columns (orders_<N>d, revenue_<N>d, days_since_last_order): a ratio may
        divide by them."""
        counted = {"orders": "counted"}  # a definition of the counted orders
        found = []
        for days in windows_days:
            over = self.frame(f"{days}d", before_t=self.window_end == "exclusive")
            found += [(f"orders_{days}d", f"count(*){self.selects(counted)} OVER {over}"),
                      (f"revenue_{days}d", f"coalesce(sum(amount){self.selects(counted)} OVER {over}, 0)")]
        over = self.frame(None, before_t=True)
        found.append(("days_since_last_order",
                      f"(epoch_us(order_at) - epoch_us(max(order_at){self.selects(counted)} OVER {over})) // {DAY_US}"))
        return found

    def features(self, define: list[dict[str, Any]], windows_days: list[int]) -> str:
        made = self.builtins(windows_days) + [(c["name"], self.value(c)) for c in columns(define)
                                              if "ratio" not in c["d"]]
        ratios = [c for c in columns(define) if "ratio" in c["d"]]
        plain = {name for name, _ in made}
        for c in ratios:
            missing = [name for name in c["d"]["ratio"] if name not in plain]
            if missing:
                raise ValueError(f"{c['name']}: the comparator divides only aggregate or built-in columns, "
                                 f"not {missing}")
        counted = " AND ".join(self.counted()) or "TRUE"
        windows = ",\n       ".join(f"{quoted(name)} AS ({frame})" for name, frame in self.frames.items())
        per_order = ",\n           ".join(f"{expression} AS {quoted(name)}" for name, expression in made)
        # peers share every value: any one of an instant's orders gives its row
        per_instant = ",\n       ".join(f"any_value({quoted(name)}) AS {quoted(name)}" for name, _ in made)
        divided = "".join(f",\n       CAST({quoted(c['d']['ratio'][0])} AS DOUBLE)"
                          f" / nullif({quoted(c['d']['ratio'][1])}, 0) AS {quoted(c['name'])}" for c in ratios)
        return f"""
CREATE TABLE features AS
WITH per_order AS (
    SELECT customer_id, order_at, {counted} AS counted__,
           {per_order}
    FROM orders
    WHERE customer_id IS NOT NULL
    WINDOW {windows}
),
per_instant AS (
    SELECT customer_id, order_at AS feature_time,
       {per_instant}
    FROM per_order
    GROUP BY customer_id, order_at
    HAVING bool_or(counted__)
)
SELECT *{divided}
FROM per_instant"""


def checksums(conn: Any, define: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per defined column: the non-NULL values and their sum rounded to 6 places (a quotient's
    sum, a DOUBLE, added exactly by fsum)."""
    cols = columns(define)
    parts = [f"count({quoted(c['name'])}), "
             + (f"sum({quoted(c['name'])})" if c["exact"] else f"fsum({quoted(c['name'])})") for c in cols]
    values = conn.execute(f"SELECT {', '.join(parts)} FROM features").fetchone()
    found = {}
    for i, c in enumerate(cols):
        count, total = values[2 * i], values[2 * i + 1]
        rounded = None if total is None else Decimal(repr(total) if isinstance(total, float) else total) \
            .quantize(Decimal("0.000001"))
        found[c["name"]] = {"count": int(count), "sum": None if rounded is None else str(rounded),
                            "exact": c["exact"]}
    return found


def run(path: Path, define: list[dict[str, Any]], windows_days: list[int] | None = None,
        exclude_statuses: list[str] | None = None, window_end: str = "inclusive") -> dict[str, Any]:
    """Stage the CSV at `path` (timed apart), then compute the built-in and defined features
    (timed); return both times, the feature rows and each defined column's checksum."""
    if duckdb is None:
        raise RuntimeError("DuckDB is not installed (pip install -r requirements-bench.txt)")
    query = Query(exclude_statuses or [], window_end)
    statement = query.features(define, windows_days or [7, 30])
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("SET TimeZone = 'UTC'")  # naive times are UTC, as staging.source_timezone
        started = time.perf_counter()
        conn.execute(LOAD, [str(path)])
        loaded = time.perf_counter()
        conn.execute(statement, query.params)
        computed = time.perf_counter()
        rows = conn.execute("SELECT count(*) FROM features").fetchone()[0]
        sums = checksums(conn, define)
        version = conn.execute("SELECT version()").fetchone()[0]
    finally:
        conn.close()
    return {"version": version, "load_seconds": round(loaded - started, 3),
            "features_seconds": round(computed - loaded, 3), "rows": rows, "checksums": sums}
