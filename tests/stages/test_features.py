"""Features: feats.customer_features against hand-worked tables and a brute-force oracle.

Definitions under test (customer c, feature_time t = an instant at which c ordered):
  orders_<N>d  = count of c's orders with t - N*24h <= order_at <= t
  revenue_<N>d = sum of amount over the same orders (0 when none has an amount)
  days_since_last_order = floor((t - latest order strictly before t) / 24h),
                          NULL (or features.days_since_last_order_if_none) when none
One row per distinct (customer_id, order instant); orders without a customer are left out.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, query

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
SEC = dt.timedelta(seconds=1)
USEC = dt.timedelta(microseconds=1)
BASE = dt.datetime(2024, 1, 1, tzinfo=UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def feature_rows(db_url: str, where: str = "", params: Any = None) -> tuple[list[str], list[tuple]]:
    """Every row of feats.customer_features (column names too), timestamps as UTC."""
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            f"SELECT * FROM feats.customer_features {where} ORDER BY customer_id, feature_time", params
        )
        names = [d.name for d in cur.description]
        rows = [tuple(v.astimezone(UTC) if isinstance(v, dt.datetime) else v for v in r) for r in cur.fetchall()]
    return names, rows


def feature_columns(windows: Sequence[int]) -> list[str]:
    names = ["customer_id", "feature_time"]
    for days in sorted(windows):
        names += [f"orders_{days}d", f"revenue_{days}d"]
    return names + ["days_since_last_order"]


def run_ok(config: str, db_url: str) -> dict[str, Any]:
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, f"pipeline did not pass: {report.get('errors')}"
    return report


# --- 1. hand-worked example -----------------------------------------------------------------


def test_hand_worked_example_every_column(project, db_url):
    """A small history worked out by hand: inclusive 7/30-day boundaries, same-instant peers,
    24h-floored day gaps, NULL amounts counting as orders but not revenue, NULL customers
    excluded, and CSV rows out of time order."""
    project.write_csv("orders.csv", (
        HEADER
        # written out of time order on purpose
        + "A6,A,2024-01-31 00:00:00,100.00,completed\n"   # day 30, exactly 30 x 24h after A1
        + "A2,A,2024-01-05 10:00:00,20.50,completed\n"    # day 4, 10:00
        + "A5,A,2024-01-10 12:00:00,2.00,completed\n"     # same instant as A4
        + "A1,A,2024-01-01 00:00:00,10.00,completed\n"    # day 0
        + "A4,A,2024-01-10 12:00:00,1.00,completed\n"
        + "A3,A,2024-01-08 00:00:00,5.25,completed\n"     # exactly 7 x 24h after A1
        + "B1,B,2024-01-03 08:00:00,,completed\n"         # one order, no amount
        + "N1,,2024-01-05 10:00:00,999.99,completed\n"    # no customer: no row, counted nowhere
    ).encode())
    run_ok(project.write_config(), db_url)
    names, rows = feature_rows(db_url)
    assert names == feature_columns([7, 30])
    # Worked by hand (A's orders: A1 01-01 00:00 10.00, A2 01-05 10:00 20.50, A3 01-08 00:00 5.25,
    # A4+A5 01-10 12:00 1.00+2.00, A6 01-31 00:00 100.00):
    #  t=01-01 00:00  7d/30d: {A1}                      -> 1, 10.00 ; no earlier order -> NULL
    #  t=01-05 10:00  7d from 12-29 10:00: {A1,A2}      -> 2, 30.50 ; 30d same       ; 4d10h -> 4
    #  t=01-08 00:00  7d from 01-01 00:00 (A1 on the boundary, included): {A1,A2,A3} -> 3, 35.75
    #                 30d same                                                        ; 2d14h -> 2
    #  t=01-10 12:00  7d from 01-03 12:00: {A2,A3,A4,A5} -> 4, 20.50+5.25+1+2 = 28.75
    #                 30d from 12-11 12:00: {A1..A5}     -> 5, 38.75              ; 2d12h -> 2
    #  t=01-31 00:00  7d from 01-24 00:00: {A6}         -> 1, 100.00
    #                 30d from 01-01 00:00 (A1 on the boundary): {A1..A6} -> 6, 138.75 ; 20d12h -> 20
    #  B at 01-03 08:00: 1 order without amount -> orders 1, revenue 0; NULL
    D = Decimal
    expected = [
        ("A", utc(2024, 1, 1, 0, 0), 1, D("10.00"), 1, D("10.00"), None),
        ("A", utc(2024, 1, 5, 10, 0), 2, D("30.50"), 2, D("30.50"), 4),
        ("A", utc(2024, 1, 8, 0, 0), 3, D("35.75"), 3, D("35.75"), 2),
        ("A", utc(2024, 1, 10, 12, 0), 4, D("28.75"), 5, D("38.75"), 2),
        ("A", utc(2024, 1, 31, 0, 0), 1, D("100.00"), 6, D("138.75"), 20),
        ("B", utc(2024, 1, 3, 8, 0), 1, D("0"), 1, D("0"), None),
    ]
    assert rows == expected
    # the revenue columns are exact numerics, the counts whole numbers
    types = dict(query(db_url, "SELECT column_name, data_type FROM information_schema.columns"
                               " WHERE table_schema = 'feats' AND table_name = 'customer_features'"))
    assert types == {
        "customer_id": "text", "feature_time": "timestamp with time zone",
        "orders_7d": "bigint", "revenue_7d": "numeric", "orders_30d": "bigint", "revenue_30d": "numeric",
        "days_since_last_order": "integer",
    }, "orders_* must be bigint, revenue_* numeric, days_since_last_order integer"


# --- 2. brute-force oracle ------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str | None
    at: dt.datetime  # the absolute instant
    amount: Decimal | None
    ts_text: str  # how the instant is written in the CSV


# offsets that land exactly on, just inside and just outside the window edges, plus peers (0)
EDGE_OFFSETS = [
    dt.timedelta(0), dt.timedelta(0),
    7 * DAY, 7 * DAY - SEC, 7 * DAY + SEC,
    30 * DAY, 30 * DAY - SEC, 30 * DAY + SEC,
    DAY, DAY - SEC, DAY + SEC, 3 * DAY, 3 * DAY + SEC,
    90 * DAY, 90 * DAY - SEC, 90 * DAY + SEC,
    7 * DAY - USEC, 7 * DAY + USEC, DAY - USEC,  # a microsecond either side of an edge
    dt.timedelta(hours=5), dt.timedelta(minutes=1),
]
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
MINUS_FIVE_THIRTY = dt.timezone(-dt.timedelta(hours=5, minutes=30))


def write_ts(rng: random.Random, at: dt.datetime) -> str:
    """The same instant in one of several spellings (naive means UTC here)."""
    style = rng.randrange(4)
    if style == 0:
        return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if style == 1:
        return at.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    if style == 2:
        return at.astimezone(PLUS_TWO).isoformat()
    return at.astimezone(MINUS_FIVE_THIRTY).isoformat()


def generate_orders(seed: int, n_customers: int = 25, start: dt.datetime = BASE,
                    span_days: int = 150, id_prefix: str = "O") -> list[Order]:
    """~300-800 orders rich in edge cases, in random (not time) order: ties, instants exactly
    on, a second or a microsecond either side of the 1/3/7/30/90-day edges of other orders."""
    rng = random.Random(seed)
    customers = [f"C{i:02d}" for i in range(1, n_customers + 1)]
    single = set(rng.sample(customers, 4))
    instants: list[tuple[str | None, dt.datetime]] = []
    for customer in customers:
        if customer in single:
            instants.append((customer, start + dt.timedelta(seconds=rng.randrange(span_days * 86400))))
            continue
        mine: list[dt.datetime] = []
        for _ in range(rng.randint(6, 40)):
            if mine and rng.random() < 0.7:
                # relative to an existing order: a tie, or exactly on / around a window edge
                offset = rng.choice(EDGE_OFFSETS) * rng.choice([1, -1])
                at = rng.choice(mine) + offset
            else:
                at = start + dt.timedelta(seconds=60 * rng.randrange(span_days * 1440))
            mine.append(at)
        instants += [(customer, at) for at in mine]
    # orders without a customer, some at the same instants as real customers' orders
    for _ in range(12):
        if rng.random() < 0.5:
            at = rng.choice(instants)[1]
        else:
            at = start + dt.timedelta(hours=rng.randrange(span_days * 24))
        instants.append((None, at))
    orders = []
    for n, (customer, at) in enumerate(instants, start=1):
        amount = None if rng.random() < 0.04 else Decimal(rng.randrange(0, 50_000)) / 100
        orders.append(Order(f"{id_prefix}{n:05d}", customer, at, amount, write_ts(rng, at)))
    rng.shuffle(orders)
    return orders


def to_csv(orders: Sequence[Order], rng: random.Random | None = None) -> bytes:
    rng = rng or random.Random(0)
    lines = [HEADER]
    for o in orders:
        # a missing customer is an unquoted empty field or a quoted empty string: both NULL
        customer = o.customer_id if o.customer_id is not None else rng.choice(["", '""'])
        amount = "" if o.amount is None else f"{o.amount:.2f}"
        lines.append(f"{o.order_id},{customer},{o.ts_text},{amount},completed\n")
    return "".join(lines).encode()


def brute_force_features(orders: Sequence[Order], windows: Sequence[int], if_none: int | None) -> list[tuple]:
    """The definitions, applied literally: for every (customer, distinct instant) look at
    every one of that customer's orders."""
    by_customer: dict[str, list[Order]] = {}
    for o in orders:
        if o.customer_id is not None:
            by_customer.setdefault(o.customer_id, []).append(o)
    rows = []
    for customer in sorted(by_customer):
        mine = by_customer[customer]
        for t in sorted({o.at for o in mine}):
            row: list[Any] = [customer, t]
            for days in sorted(windows):
                inside = [o for o in mine if t - days * DAY <= o.at <= t]
                row.append(len(inside))
                row.append(sum((o.amount for o in inside if o.amount is not None), Decimal(0)))
            earlier = [o.at for o in mine if o.at < t]
            row.append((t - max(earlier)) // DAY if earlier else if_none)
            rows.append(tuple(row))
    return rows


def assert_same_rows(actual: list[tuple], expected: list[tuple], names: list[str]) -> None:
    assert len(actual) == len(expected), f"{len(actual)} feature rows, expected {len(expected)}"
    for got, want in zip(actual, expected):
        if got != want:
            diff = {n: (g, w) for n, g, w in zip(names, got, want) if g != w}
            pytest.fail(f"row {want[:2]} differs (column: (actual, expected)): {diff}")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_features_equal_brute_force(project, db_url, seed):
    """Every column of every row equals a brute-force evaluation of the definitions over the
    generated orders (ties, exact/±1s/±1µs window edges, one-order customers, NULL customers and
    amounts, mixed timestamp spellings, rows out of time order)."""
    orders = generate_orders(seed)
    assert 300 <= len(orders) <= 800
    project.write_csv("orders.csv", to_csv(orders, random.Random(seed)))
    run_ok(project.write_config(), db_url)
    names, rows = feature_rows(db_url)
    assert names == feature_columns([7, 30])
    expected = brute_force_features(orders, [7, 30], None)
    # the data really has the edge cases the test claims
    pairs = [(o.customer_id, o.at) for o in orders if o.customer_id]
    assert len(pairs) > len(set(pairs)), "no same-instant ties were generated"
    assert sum(1 for r in expected if r[-1] is None) == 25, "one NULL days_since per customer"
    assert_same_rows(rows, expected, names)


def test_custom_windows_and_if_none_equal_brute_force(project, db_url):
    """features.windows_days [90, 1, 3] (given unsorted) gives orders_/revenue_ columns for
    1, 3 and 90 days in that order; days_since_last_order_if_none 9999 replaces NULL."""
    orders = generate_orders(11)
    project.write_csv("orders.csv", to_csv(orders))
    run_ok(project.write_config(features={"windows_days": [90, 1, 3], "days_since_last_order_if_none": 9999}),
           db_url)
    names, rows = feature_rows(db_url)
    assert names == feature_columns([1, 3, 90])
    expected = brute_force_features(orders, [1, 3, 90], 9999)
    assert 9999 in {r[-1] for r in expected}
    assert_same_rows(rows, expected, names)
    assert query(db_url, "SELECT count(*) FROM feats.customer_features WHERE days_since_last_order IS NULL") == [(0,)]


# --- 3. no leakage from later orders ---------------------------------------------------------


def test_later_orders_do_not_change_earlier_rows(project, db_url):
    """Adding a second file of orders strictly after T (from T + 1 s on, for the same and for
    new customers) changes no feature row with feature_time <= T: nothing later leaks in."""
    cutoff = BASE + 60 * DAY
    early = [o for o in generate_orders(21, span_days=60) if o.at <= cutoff]
    # some orders exactly at T, so the boundary row is checked too
    rng = random.Random(21)
    early += [Order(f"T{i}", f"C{i:02d}", cutoff, Decimal("1.00"), write_ts(rng, cutoff)) for i in range(1, 6)]
    first = project.write_csv("early.csv", to_csv(early))
    run_ok(project.write_config(paths=[first]), db_url)
    names, before = feature_rows(db_url)
    assert before and max(r[1] for r in before) == cutoff

    # same customers C01-C25 and new ones C26-C30, from T + 1 s on
    later = [o for o in generate_orders(22, n_customers=30, start=cutoff + SEC, span_days=40, id_prefix="L")
             if o.at > cutoff]
    # right after T, and exactly 7 / 30 days after T, for customers that ordered at T
    later += [Order(f"M{i}{n}", f"C{i:02d}", cutoff + d, Decimal("5.00"), write_ts(rng, cutoff + d))
              for i in range(1, 6) for n, d in enumerate((SEC, 7 * DAY, 30 * DAY))]
    assert min(o.at for o in later) > cutoff
    second = project.write_csv("later.csv", to_csv(later))
    run_ok(project.write_config(paths=[first, second]), db_url)
    _, after_all = feature_rows(db_url)
    after = [r for r in after_all if r[1] <= cutoff]
    assert len(after_all) > len(after), "the later file added no later feature rows"
    assert_same_rows(after, before, names)
    # and the combined result is still the brute-force one
    assert_same_rows(after_all, brute_force_features(early + later, [7, 30], None), names)


# --- 4. time zones and DST --------------------------------------------------------------------


def test_windows_are_24h_days_across_dst(project, db_url):
    """With staging.source_timezone America/New_York, naive timestamps are New York wall
    time, but windows and day gaps are 24-hour days on UTC instants, across both DST changes
    (2024-03-10 spring forward, 2024-11-03 fall back). A calendar-day window in New York time
    would give different answers for S3, F3 and F2."""
    project.write_csv("orders.csv", (
        HEADER
        + "S1,S,2024-03-05 12:00:00,10.00,completed\n"   # EST (-5): 2024-03-05 17:00Z
        + "S2,S,2024-03-12 12:00:00,20.00,completed\n"   # EDT (-4): 2024-03-12 16:00Z = S1 + 6d23h
        + "S3,S,2024-03-12 13:00:00,30.00,completed\n"   # EDT: 2024-03-12 17:00Z = S1 + 7 x 24h exactly
        + "F1,F,2024-10-30 12:00:00,5.00,completed\n"    # EDT (-4): 2024-10-30 16:00Z
        + "F2,F,2024-11-06 11:30:00,7.00,completed\n"    # EST (-5): 2024-11-06 16:30Z = F1 + 7d 30min
        + "F3,F,2024-11-06 11:00:00,1.00,completed\n"    # EST: 2024-11-06 16:00Z = F1 + 7 x 24h exactly
        + "Z1,Z,2024-03-09T12:00:00+00:00,2.00,completed\n"  # explicit offset: kept as is
        + "Z2,Z,2024-03-10 03:30:00,3.00,completed\n"    # EDT: 2024-03-10 07:30Z (wall 03:30 is after the jump)
    ).encode())
    run_ok(project.write_config(staging={"source_timezone": "America/New_York"}), db_url)
    _, rows = feature_rows(db_url)
    D = Decimal
    # Worked by hand on UTC instants:
    #  S1 17:00Z 03-05: alone                                            -> 1/10, 1/10, NULL
    #  S2 16:00Z 03-12: S1 is 6d23h earlier (in the 7d window)           -> 2/30, 2/30, floor(6.96) = 6
    #                   (New York calendar days would say 7 days since S1)
    #  S3 17:00Z 03-12: S1 exactly 7x24h earlier, on the inclusive edge   -> 3/60, 3/60, 1 h since S2 = 0
    #                   (a New York calendar week from 03-05 13:00 wall time would leave S1 out)
    #  F1 16:00Z 10-30: alone                                            -> 1/5, 1/5, NULL
    #  F3 16:00Z 11-06: F1 exactly 7x24h earlier (wall clock: 6d23h)     -> 2/6, 2/6, 7
    #  F2 16:30Z 11-06: F1 7d 30min earlier, out of 7d, in 30d           -> 2/8 (F3,F2), 3/13, 30 min -> 0
    #                   (wall clock 11:30 vs 12:00 would keep F1 in a calendar week)
    #  Z1 12:00Z 03-09, Z2 07:30Z 03-10: 19h30 apart                       -> Z2: 2/5, 2/5, 0
    expected = [
        ("F", utc(2024, 10, 30, 16, 0), 1, D("5.00"), 1, D("5.00"), None),
        ("F", utc(2024, 11, 6, 16, 0), 2, D("6.00"), 2, D("6.00"), 7),
        ("F", utc(2024, 11, 6, 16, 30), 2, D("8.00"), 3, D("13.00"), 0),
        ("S", utc(2024, 3, 5, 17, 0), 1, D("10.00"), 1, D("10.00"), None),
        ("S", utc(2024, 3, 12, 16, 0), 2, D("30.00"), 2, D("30.00"), 6),
        ("S", utc(2024, 3, 12, 17, 0), 3, D("60.00"), 3, D("60.00"), 0),
        ("Z", utc(2024, 3, 9, 12, 0), 1, D("2.00"), 1, D("2.00"), None),
        ("Z", utc(2024, 3, 10, 7, 30), 2, D("5.00"), 2, D("5.00"), 0),
    ]
    assert rows == expected


def test_session_time_zone_does_not_change_features(project, db_url):
    """The features stage pins UTC itself: a database whose default time zone has DST
    (America/New_York) still counts 24-hour days (same rows as the UTC oracle)."""
    orders = [o for o in generate_orders(31, start=dt.datetime(2024, 2, 20, tzinfo=UTC), span_days=40)]
    project.write_csv("orders.csv", to_csv(orders))
    dbname = query(db_url, "SELECT current_database()")[0][0]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" SET timezone = \'America/New_York\'')
    run_ok(project.write_config(), db_url)
    names, rows = feature_rows(db_url)
    assert_same_rows(rows, brute_force_features(orders, [7, 30], None), names)
