"""features.define: every defined column equals a brute-force evaluation of its definition
(plain Python over the staged orders, every order looked at for every row), on generated
edge cases: ties at t, orders exactly at t - W, t and a microsecond or second either side,
both window_end modes, DST weeks in the source zone, NULL amounts, empty windows, lifetime
windows, an item recurring exactly W apart, the same item twice in one order instant,
zero denominators, cancelled-only customers; a daily run equals the definitions too,
later orders change no earlier row, and the point-in-time retrieval agrees.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import psycopg
import pytest

from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, query

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
BASE = dt.datetime(2024, 3, 20, tzinfo=UTC)  # Europe/London goes to summer time on 31 March
EXCLUDED = {"cancelled"}  # features.exclude_statuses

# The definitions under test: at least one per aggregate, filters of both forms, orders:
# all, hour, day and lifetime windows, ratios of defined and built-in columns.
DEFINE = [
    {"name": "n_all", "agg": "count", "orders": "all", "windows": ["1d", "7d", "lifetime"]},
    {"name": "cancelled", "agg": "count", "where": {"status": ["Cancelled"]}, "orders": "all", "windows": ["7d"]},
    {"name": "priced", "agg": "count", "column": "amount", "windows": ["7d"]},
    {"name": "spend", "agg": "sum", "column": "amount", "windows": ["12h", "7d"]},
    {"name": "basket", "agg": "avg", "column": "amount", "windows": ["7d", "lifetime"]},
    {"name": "low", "agg": "min", "column": "amount", "windows": ["7d"]},
    {"name": "high", "agg": "max", "column": "amount", "windows": ["7d", "lifetime"]},
    {"name": "first_amount", "agg": "first", "column": "amount", "windows": ["1d", "lifetime"]},
    {"name": "last_amount", "agg": "last", "column": "amount", "orders": "all", "windows": ["1d", "lifetime"]},
    {"name": "amounts", "agg": "count_distinct", "column": "amount", "windows": ["1d", "7d", "lifetime"]},
    {"name": "statuses", "agg": "count_distinct", "column": "status", "orders": "all", "windows": ["7d"]},
    {"name": "big", "agg": "count", "where": {"column": "amount", "op": ">=", "value": 30}, "windows": ["7d"]},
    {"name": "not_done", "agg": "count", "where": {"column": "status", "op": "!=", "value": "completed"},
     "orders": "all", "windows": ["7d"]},
    {"name": "since_first", "agg": "time_since_first"},
    {"name": "since_cancel", "agg": "time_since_last", "where": {"status": ["cancelled"]}, "orders": "all"},
    {"name": "since_last", "agg": "time_since_last", "windows": ["7d"]},
    {"name": "since_any", "agg": "time_since_last", "orders": "all", "windows": ["lifetime", "1d"]},
    {"name": "recent_first", "agg": "time_since_first", "windows": ["1d"]},
    {"name": "cancel_share", "ratio": ["cancelled_7d", "n_all_7d"]},
    {"name": "big_share", "ratio": ["big_7d", "orders_7d"]},
    {"name": "big_per_cancel", "ratio": ["big_7d", "cancelled_7d"]},
]


@dataclass(frozen=True)
class Staged:
    order_id: str
    customer_id: str | None
    at: dt.datetime
    amount: Decimal | None
    status: str | None


# --- the definitions, applied literally --------------------------------------------------------


def selected(o: Staged, d: dict[str, Any]) -> bool:
    if o.customer_id is None:
        return False
    if d.get("orders", "counted") == "counted" and o.status in EXCLUDED:
        return False
    where = d.get("where") or {}
    if set(where) == {"column", "op", "value"}:
        value = getattr(o, "amount" if where["column"] == "amount" else where["column"])
        if value is None:
            return False
        ops = {">=": lambda a, b: a >= b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b}
        return ops[where["op"]](value, where["value"])
    for column, values in where.items():
        value = getattr(o, column)
        if value is None or value not in [str(v).lower() if column == "status" else v for v in values]:
            return False
    return True


def in_window(o: Staged, t: dt.datetime, window: str | None, end: str) -> bool:
    if window is not None and window != "lifetime":
        hours = int(window[:-1]) * (24 if window.endswith("d") else 1)
        if o.at < t - hours * HOUR:
            return False
    return o.at < t if end == "exclusive" else o.at <= t


def value_of(o: Staged, d: dict[str, Any]) -> Any:
    return getattr(o, d["column"]) if d.get("column") else None


def brute_force(d: dict[str, Any], window: str | None, mine: list[Staged], t: dt.datetime, window_end: str) -> Any:
    agg = d["agg"]
    end = "exclusive" if agg.startswith("time_since") else window_end
    rows = [o for o in mine if selected(o, d) and in_window(o, t, window, end)]
    if agg.startswith("time_since"):
        if not rows:
            return None
        at = min(o.at for o in rows) if agg == "time_since_first" else max(o.at for o in rows)
        return (t - at) // DAY
    if agg == "count":
        return len([o for o in rows if not d.get("column") or value_of(o, d) is not None])
    values = [(o, value_of(o, d)) for o in rows if value_of(o, d) is not None]
    if agg == "sum":
        return sum((v for _, v in values), Decimal(0))
    if agg == "avg":
        return sum(v for _, v in values) / len(values) if values else None
    if agg in ("min", "max"):
        return (min if agg == "min" else max)((v for _, v in values), default=None)
    if agg == "count_distinct":
        return len({v for _, v in values})
    if not values:
        return None
    # ties at an instant by order id, then (a definition over lines) by line number
    key = lambda pair: (pair[0].at, pair[0].order_id, getattr(pair[0], "line_number", None) or 0)  # noqa: E731
    return (min if agg == "first" else max)(values, key=key)[1]


def expected_rows(staged: list[Staged], window_end: str, windows_days: Sequence[int] = (7,)) -> dict[tuple, dict]:
    """Every feature row the definitions give: one per customer and instant of a counted order."""
    by_customer: dict[str, list[Staged]] = {}
    for o in staged:
        if o.customer_id is not None:
            by_customer.setdefault(o.customer_id, []).append(o)
    rows = {}
    for customer, mine in by_customer.items():
        for t in sorted({o.at for o in mine if o.status not in EXCLUDED}):
            row: dict[str, Any] = {}
            counted = [o for o in mine if o.status not in EXCLUDED]
            for days in windows_days:
                inside = [o for o in counted if in_window(o, t, f"{days}d", window_end)]
                row[f"orders_{days}d"] = len(inside)
                row[f"revenue_{days}d"] = sum((o.amount for o in inside if o.amount is not None), Decimal(0))
            earlier = [o.at for o in counted if o.at < t]
            row["days_since_last_order"] = (t - max(earlier)) // DAY if earlier else None
            for d in DEFINE:
                if "ratio" in d:
                    numerator, denominator = (row[name] for name in d["ratio"])
                    row[d["name"]] = None if numerator is None or not denominator else \
                        Decimal(numerator) / Decimal(denominator)
                elif not d.get("windows"):
                    row[d["name"]] = brute_force(d, None, mine, t, window_end)
                else:
                    for window in d["windows"]:
                        row[f"{d['name']}_{window}"] = brute_force(d, window, mine, t, window_end)
            rows[(customer, t)] = row
    return rows


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Decimal) and isinstance(actual, Decimal):
        with localcontext() as ctx:  # a quotient: PostgreSQL keeps at least 16 significant digits
            ctx.prec = 40
            return abs(actual - expected) <= Decimal("1e-15") * max(Decimal(1), abs(expected))
    return (actual is None) == (expected is None) and actual == expected


def assert_equal_rows(actual: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    assert sorted(actual) == sorted(expected), "the feature rows are not one per customer and counted instant"
    for key, want in expected.items():
        got = actual[key]
        diff = {name: (got[name], value) for name, value in want.items() if not same(got[name], value)}
        assert not diff, f"row {key} differs (column: (actual, expected)): {diff}"


# --- the data ----------------------------------------------------------------------------------


EDGES = [dt.timedelta(0), 12 * HOUR, DAY, 7 * DAY, dt.timedelta(microseconds=1), dt.timedelta(seconds=1)]
AMOUNTS = [None, Decimal("5.00"), Decimal("10.00"), Decimal("30.00"), Decimal("30.00"), Decimal("99.99"),
           Decimal("0.00")]


def generate(seed: int, customers: int = 12, orders_per_customer: tuple[int, int] = (4, 30)) -> list[tuple]:
    """(order_id, customer_id, instant, amount, status) rows rich in edge cases: ties, orders
    exactly 12 h, 1 d and 7 d apart and a second or a microsecond either side of those, amounts
    from a small set (items recurring exactly W apart, twice at one instant), NULL amounts,
    a cancelled-only customer, orders without a customer at other customers' instants."""
    rng = random.Random(seed)
    rows = []
    for c in range(customers):
        customer = f"C{c:02d}"
        mine: list[dt.datetime] = []
        for _ in range(rng.randint(*orders_per_customer)):
            if mine and rng.random() < 0.75:
                edge = rng.choice(EDGES)
                if edge < dt.timedelta(seconds=2) and edge:  # beside a window edge
                    edge = rng.choice(EDGES[1:4]) + edge * rng.choice([1, -1])
                at = rng.choice(mine) + edge * rng.choice([1, -1])
            else:
                at = BASE + dt.timedelta(minutes=rng.randrange(40 * 1440))
            mine.append(at)
        only_cancelled = c == 0
        for at in mine:
            status = "cancelled" if only_cancelled else rng.choice(["completed"] * 5 + ["cancelled", "returned"])
            rows.append((customer, at, rng.choice(AMOUNTS), status))
        if c == 1:  # the same amount twice at one instant, and a cancelled order beside it
            rows += [(customer, mine[0], Decimal("10.00"), "completed"), (customer, mine[0], None, "cancelled")]
    for _ in range(6):
        rows.append((None, rng.choice(rows)[1], rng.choice(AMOUNTS), "completed"))
    rng.shuffle(rows)
    return [(f"O{n:05d}", *row) for n, row in enumerate(rows, start=1)]


def to_csv(rows: list[tuple], zone: dt.tzinfo | None = None) -> bytes:
    """An ISO offset, or naive local time of `zone` (the source zone's wall clock)."""
    lines = [HEADER]
    for order_id, customer, at, amount, status in rows:
        ts = at.astimezone(zone).replace(tzinfo=None).isoformat(sep=" ") if zone else at.isoformat()
        amount_text = "" if amount is None else str(amount)
        # statuses in other cases: staging lower-cases them
        lines.append(f"{order_id},{customer or ''},{ts},{amount_text},{status.title() if status == 'cancelled' else status}\n")
    return "".join(lines).encode()


def staged_orders(db_url: str) -> list[Staged]:
    return [Staged(*row) for row in query(db_url, "SELECT order_id, customer_id, order_at, amount, status FROM stg.orders")]


def published(db_url: str) -> dict[tuple, dict]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute("SELECT * FROM feats.customer_features")
        names = [d.name for d in cur.description]
        return {(r[0], r[1]): dict(zip(names[2:], r[2:])) for r in cur.fetchall()}


def run(project, db_url: str, window_end: str = "inclusive", **staging: Any) -> None:
    config = project.write_config(
        paths="data/raw/*.csv",
        features={"windows_days": [7], "exclude_statuses": sorted(EXCLUDED), "window_end": window_end,
                  "define": DEFINE},
        **({"staging": staging} if staging else {}))
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")


# --- the proofs --------------------------------------------------------------------------------


@pytest.mark.parametrize("window_end", ["inclusive", "exclusive"])
@pytest.mark.parametrize("seed", [1, 2])
def test_defined_features_equal_brute_force(project, db_url, seed, window_end):
    rows = generate(seed)
    project.write_csv("orders.csv", to_csv(rows))
    run(project, db_url, window_end)
    staged = staged_orders(db_url)
    assert len(staged) == len(rows)
    expected = expected_rows(staged, window_end)
    # the data has the cases the test claims
    assert any(r["big_per_cancel"] is None for r in expected.values()), "no zero denominator"
    assert any(r["first_amount_1d"] is None for r in expected.values()), "no window without an amount"
    assert any(r["amounts_1d"] < r["priced_7d"] for r in expected.values()), "no item recurring in a window"
    assert "C00" not in {c for c, _ in expected}, "the cancelled-only customer has a feature row"
    assert_equal_rows(published(db_url), expected)


@pytest.mark.parametrize("seed", range(10, 16))
def test_randomised_streams_equal_brute_force(project, db_url, seed):
    """Larger random streams (about a thousand orders each), every aggregate, both modes."""
    window_end = "inclusive" if seed % 2 else "exclusive"
    rows = generate(seed, customers=40, orders_per_customer=(2, 45))
    project.write_csv("orders.csv", to_csv(rows))
    run(project, db_url, window_end)
    assert_equal_rows(published(db_url), expected_rows(staged_orders(db_url), window_end))


def test_dst_week_in_the_source_zone(project, db_url):
    """Naive times in Europe/London across the change to summer time: windows are exact
    hours of the staged (UTC) instants."""
    rows = generate(3)
    project.write_csv("orders.csv", to_csv(rows, zone=zoneinfo.ZoneInfo("Europe/London")))
    run(project, db_url, source_timezone="Europe/London")
    staged = staged_orders(db_url)
    assert {o.at for o in staged} == {row[2] for row in rows}, "the naive local times staged as the same instants"
    assert_equal_rows(published(db_url), expected_rows(staged, "inclusive"))


def test_a_daily_run_equals_the_definitions_and_changes_no_earlier_row(project, db_url):
    """A second file with later orders, and with orders between existing ones: the daily
    run's rows equal the definitions over every staged order, and rows before the earliest
    new order are unchanged (nothing after t reaches a row at t)."""
    rows = generate(4)
    cutoff = BASE + 25 * DAY
    early, late = [r for r in rows if r[2] < cutoff], [r for r in rows if r[2] >= cutoff]
    project.write_csv("orders_1.csv", to_csv(early))
    run(project, db_url)
    before = published(db_url)
    project.write_csv("orders_2.csv", to_csv(late))
    run(project, db_url)
    after = published(db_url)
    assert_equal_rows(after, expected_rows(staged_orders(db_url), "inclusive"))
    kept = {key: row for key, row in after.items() if key[1] < cutoff}
    assert kept == before


def test_retrieval_equals_the_rows_and_the_definitions_between_them(project, db_url):
    """features_as_of at every stored (customer, feature_time) returns the stored row; at
    random instants between orders (and before the first) it returns the definitions."""
    rows = generate(5)
    project.write_csv("orders.csv", to_csv(rows))
    run(project, db_url)
    stored = published(db_url)
    keys = sorted(stored)
    with psycopg.connect(db_url) as conn:
        cur = conn.execute("SELECT * FROM feats.features_as_of(%s, %s) ORDER BY entity_number",
                           ([c for c, _ in keys], [t for _, t in keys]))
        names = [d.name for d in cur.description]
        for (key, row) in zip(keys, cur.fetchall()):
            got = dict(zip(names[3:], row[3:]))
            assert got == stored[key], f"retrieval at {key} differs from the stored row"
        rng = random.Random(5)
        customers = sorted({c for c, _ in keys})
        probes = [(rng.choice(customers), BASE + dt.timedelta(seconds=rng.randrange(-3 * 86400, 45 * 86400)))
                  for _ in range(300)]
        cur = conn.execute("SELECT * FROM feats.features_as_of(%s, %s) ORDER BY entity_number",
                           ([c for c, _ in probes], [t for _, t in probes]))
        answers = cur.fetchall()
    staged = staged_orders(db_url)
    for (customer, t), row in zip(probes, answers):
        mine = [o for o in staged if o.customer_id == customer]
        got = dict(zip(names[3:], row[3:]))
        for d in DEFINE:
            if "ratio" in d:
                continue
            for window in d.get("windows") or [None]:
                name = d["name"] if window is None else f"{d['name']}_{window}"
                want = brute_force(d, window, mine, t, "inclusive")
                assert same(got[name], want), f"{name} of {customer} at {t}: {got[name]!r}, expected {want!r}"


def test_a_redefined_column_of_another_type_is_refused_and_nothing_is_lost(project, db_url):
    """basket_7d was a count (bigint) in the published version; the config now makes it an
    average (numeric): the run stops with the column, both types and what to do, and the
    published rows stay as they were."""
    project.write_csv("orders.csv", to_csv(generate(6)))
    count = {"name": "basket", "agg": "count", "windows": ["7d"]}
    config = project.write_config(features={"windows_days": [7], "define": [count]})
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    before = published(db_url)
    config = project.write_config(features={"windows_days": [7], "define": [
        {"name": "basket", "agg": "avg", "column": "amount", "windows": ["7d"]}]})
    code, report = run_pipeline(config, db_url)
    assert code != EXIT_PASSED
    message = " ".join(report["errors"])
    assert "feats.customer_feature_history.basket_7d holds bigint values of earlier versions; " \
           "the config now makes it numeric" in message
    assert "give the feature a new name" in message
    assert published(db_url) == before


WORKED_ORDERS = """\
order_id,customer_id,order_ts,amount,status
A,C001,2025-12-01T10:00:00Z,24.99,completed
B,C001,2025-12-05T10:00:00Z,24.99,completed
X,C001,2025-12-06T12:00:00Z,30.00,cancelled
C,C001,2025-12-08T10:00:00Z,10.00,completed
D,C001,2025-12-08T10:00:00Z,5.00,completed
E,C001,2026-01-07T10:00:00Z,20.00,completed
"""
WORKED_DEFINE = [
    {"name": "basket_avg", "agg": "avg", "column": "amount", "windows": ["7d", "lifetime"]},
    {"name": "cancelled", "agg": "count", "where": {"status": ["cancelled"]}, "orders": "all", "windows": ["7d"]},
    {"name": "cancel_share_7d", "ratio": ["cancelled_7d", "orders_7d"]},
    {"name": "amounts", "agg": "count_distinct", "column": "amount", "windows": ["30d"]},
    {"name": "last_amount", "agg": "last", "column": "amount", "windows": ["lifetime"]},
    {"name": "days_as_customer", "agg": "time_since_first"},
]
# docs/features.md's worked example, by hand: (basket_avg_7d, basket_avg_lifetime, cancelled_7d,
# cancel_share_7d, amounts_30d, last_amount_lifetime, days_as_customer)
WORKED_ROWS = {
    dt.datetime(2025, 12, 1, 10, tzinfo=UTC): ("24.99", "24.99", 0, "0", 1, "24.99", None),
    dt.datetime(2025, 12, 5, 10, tzinfo=UTC): ("24.99", "24.99", 0, "0", 1, "24.99", 4),
    dt.datetime(2025, 12, 8, 10, tzinfo=UTC): ("16.245", "16.245", 1, "0.25", 3, "5.00", 7),
    dt.datetime(2026, 1, 7, 10, tzinfo=UTC): ("20.00", "16.996", 0, "0", 3, "20.00", 37),
}


def test_the_worked_example_of_the_docs(project, db_url):
    """docs/features.md's table, cell for cell: X is cancelled (excluded from the counted
    orders, so it makes no row, yet counted by cancelled_7d, which reads orders: all); A is
    exactly 7 days before the third row and counts; C and D share an instant (last: D, the
    larger order id); A and B have one amount; C and D are exactly 30 days before E."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config(features={"windows_days": [7], "exclude_statuses": ["cancelled"],
                                            "define": WORKED_DEFINE})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    rows = query(db_url, "SELECT feature_time, basket_avg_7d, basket_avg_lifetime, cancelled_7d, cancel_share_7d,"
                         " amounts_30d, last_amount_lifetime, days_as_customer FROM feats.customer_features"
                         " ORDER BY feature_time")
    assert [r[0] for r in rows] == list(WORKED_ROWS)
    for row in rows:
        want = WORKED_ROWS[row[0]]
        got = row[1:]
        assert [Decimal(g) if isinstance(w, str) else g for g, w in zip(got, want)] == \
            [Decimal(w) if isinstance(w, str) else w for w in want], row[0]


def test_changing_or_adding_orders_after_t_changes_no_row_before_t(project, db_factory):
    """Metamorphic: the same orders up to a cut-off, and after it every order changed (amount,
    status, time within the future part), some dropped, others added: every row before the
    cut-off is identical in the two full builds."""
    rows = generate(7, customers=20)
    cutoff = BASE + 20 * DAY
    rng = random.Random(7)
    changed = []
    for order_id, customer, at, amount, status in rows:
        if at < cutoff:
            changed.append((order_id, customer, at, amount, status))
        elif rng.random() < 0.8:  # the rest dropped
            changed.append((order_id, customer, at + dt.timedelta(minutes=rng.randrange(600)),
                            rng.choice(AMOUNTS), rng.choice(["completed", "cancelled", "returned"])))
    changed += [(f"N{n:04d}", f"C{rng.randrange(20):02d}", cutoff + dt.timedelta(minutes=rng.randrange(20 * 1440)),
                 rng.choice(AMOUNTS), "completed") for n in range(60)]
    results = []
    for data in (rows, changed):
        url = db_factory()
        (project.root / "data" / "raw" / "orders.csv").write_bytes(to_csv(data))
        run(project, url)
        results.append({key: row for key, row in published(url).items() if key[1] < cutoff})
    assert len(results[0]) > 100
    assert results[1] == results[0]
