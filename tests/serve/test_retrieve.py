"""Point-in-time retrieval: feats.features_as_of (sql/052) and scripts/serve/retrieve.py.

Definitions under test (customer c, instant t = as_of, over c's staged orders that count:
a customer, and a status not in features.exclude_statuses):
  orders_<N>d  = count of c's orders with t - N*24h <= order_at <= t
  revenue_<N>d = sum of amount over the same orders (0 when none has an amount)
  days_since_last_order = floor((t - latest order strictly before t) / 24h),
                          NULL (or features.days_since_last_order_if_none) when none
for any t, not only the instants at which c ordered: at those, the row of
feats.customer_features; before c's first order, or for an unknown c, the empty values.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from scripts.serve import retrieve as retrieve_mod
from scripts.db import render
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
SEC = dt.timedelta(seconds=1)
USEC = dt.timedelta(microseconds=1)
NEW_YORK = ZoneInfo("America/New_York")
EXCLUDED = ["cancelled", "refunded"]
FUNCTION_FILE = "052_features_as_of.sql"
OUT_HEADER = "customer_id,as_of,orders_7d,revenue_7d,orders_30d,revenue_30d,days_since_last_order"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def run_features(config: str, db_url: str) -> None:
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, f"pipeline did not pass: {report.get('errors')}"


# --- generated orders and entities, and the definitions applied literally ---------------------


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str | None
    at: dt.datetime  # the absolute instant
    amount: Decimal | None
    status: str | None  # as staged: lower-case, None for an empty field


PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
MINUS_FIVE_THIRTY = dt.timezone(-dt.timedelta(hours=5, minutes=30))
ORDER_EDGES = [dt.timedelta(0), dt.timedelta(0), 7 * DAY, 7 * DAY - SEC, 7 * DAY + SEC, 30 * DAY, 30 * DAY + USEC,
               DAY, DAY - USEC, dt.timedelta(hours=5), 45 * DAY]
# as_of relative to an order: on it, a microsecond either side, on and either side of the
# 7- and 30-day edges, and of the first whole day
AS_OF_EDGES = [dt.timedelta(0), USEC, -USEC, 7 * DAY, 7 * DAY - USEC, 7 * DAY + USEC,
               30 * DAY, 30 * DAY - USEC, 30 * DAY + USEC, DAY, DAY - USEC]


def spell(rng: random.Random, at: dt.datetime, zone: dt.tzinfo) -> str:
    """The instant in one of several spellings; a naive one is wall time in ``zone`` (the
    config's source_timezone), used only where that wall time names one instant."""
    style = rng.randrange(4)
    if style == 0:
        wall = at.astimezone(zone).replace(tzinfo=None)
        if all(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) == at for fold in (0, 1)):
            return wall.isoformat(sep=" ")
        style = 1  # an ambiguous wall-clock time (the hour DST repeats): spell the offset
    if style == 1:
        return at.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    if style == 2:
        return at.astimezone(PLUS_TWO).isoformat()
    return at.astimezone(MINUS_FIVE_THIRTY).isoformat()


def generate_orders(seed: int, start: dt.datetime, span_days: int = 300) -> list[Order]:
    """Orders rich in edge cases, in random order: same-instant ties, orders exactly on and
    just around other orders' window edges, excluded and NULL statuses (a customer whose
    every order is cancelled), NULL amounts, orders without a customer."""
    rng = random.Random(seed)
    orders: list[Order] = []

    def add(customer: str | None, at: dt.datetime, status: str | None = None) -> None:
        if status is None and customer is not None:
            status = rng.choices(["completed", *EXCLUDED, None], weights=[80, 8, 5, 7])[0]
        amount = None if rng.random() < 0.04 else Decimal(rng.randrange(0, 50_000)) / 100
        orders.append(Order(f"O{len(orders) + 1:05d}", customer, at, amount, status or None))

    for n in range(1, 21):
        customer = f"C{n:02d}"
        mine: list[dt.datetime] = []
        for _ in range(1 if n <= 3 else rng.randint(5, 30)):
            if mine and rng.random() < 0.6:
                at = rng.choice(mine) + rng.choice(ORDER_EDGES) * rng.choice([1, -1])
            else:
                at = start + dt.timedelta(seconds=rng.randrange(span_days * 86400))
            mine.append(at)
            add(customer, at)
    for _ in range(4):  # a customer whose every order is cancelled has no counted order
        add("CX", start + dt.timedelta(seconds=rng.randrange(span_days * 86400)), "cancelled")
    for _ in range(8):  # orders without a customer, some at the instants of others' orders
        at = rng.choice(orders).at if rng.random() < 0.5 else start + dt.timedelta(hours=rng.randrange(span_days * 24))
        add(None, at, "completed")
    rng.shuffle(orders)
    return orders


def orders_csv(orders: Sequence[Order], seed: int, zone: dt.tzinfo) -> bytes:
    rng = random.Random(seed)
    lines = [HEADER]
    for o in orders:
        customer = o.customer_id if o.customer_id is not None else rng.choice(["", '""'])
        amount = "" if o.amount is None else f"{o.amount:.2f}"
        # staging trims and lower-cases statuses: 'Cancelled ' is excluded too
        status = "" if o.status is None else rng.choice([o.status, o.status.upper(), f" {o.status.title()} "])
        lines.append(f"{o.order_id},{customer},{spell(rng, o.at, zone)},{amount},{status}\n")
    return "".join(lines).encode()


def generate_entities(seed: int, orders: Sequence[Order]) -> list[tuple[str, dt.datetime]]:
    """(customer_id, as_of) pairs in random order: every order's instant and the instants
    on and around its window edges, before the first and long after the last order,
    unknown customers, the all-cancelled customer, random instants, repeated pairs."""
    rng = random.Random(seed)
    by_customer: dict[str, list[dt.datetime]] = {}
    for o in orders:
        if o.customer_id is not None:
            by_customer.setdefault(o.customer_id, []).append(o.at)
    entities = []
    for customer, instants in by_customer.items():
        first, last = min(instants), max(instants)
        entities += [(customer, at + edge) for at in instants for edge in AS_OF_EDGES]
        entities += [(customer, first - USEC), (customer, first - 400 * DAY), (customer, last + 365 * DAY)]
        entities += [(customer, first + (last - first) * rng.random()) for _ in range(5)]
    entities += [("NOBODY", rng.choice(orders).at), ("C999", rng.choice(orders).at)]
    entities += rng.sample(entities, 20)  # the same entity twice: two rows, each in its place
    rng.shuffle(entities)
    return entities


def entities_csv(entities: Sequence[tuple[str, dt.datetime]], seed: int, zone: dt.tzinfo,
                 header: str = "customer_id,as_of") -> bytes:
    rng = random.Random(seed)
    lines = [header + "\n"]
    for customer, at in entities:
        shown = rng.choice([customer, customer, f" {customer}\t"])  # trimmed, as staging trims ids
        fields = {"customer_id": shown, "as_of": spell(rng, at, zone)}
        lines.append(",".join(fields[name] for name in header.split(",")) + "\n")
    return "".join(lines).encode()


def brute_force_as_of(orders: Sequence[Order], entities: Sequence[tuple[str, dt.datetime]],
                      windows: Sequence[int], if_none: int | None, excluded: Sequence[str]) -> list[tuple]:
    """The definitions, applied literally: for each entity, look at every order."""
    counted: dict[str, list[Order]] = {}
    for o in orders:
        if o.customer_id is not None and o.status not in excluded:
            counted.setdefault(o.customer_id, []).append(o)
    rows = []
    for customer, t in entities:
        mine = counted.get(customer, [])
        row: list[Any] = [customer, t]
        for days in sorted(windows):
            inside = [o for o in mine if t - days * DAY <= o.at <= t]
            row.append(len(inside))
            row.append(sum((o.amount for o in inside if o.amount is not None), Decimal(0)))
        earlier = [o.at for o in mine if o.at < t]
        row.append((t - max(earlier)) // DAY if earlier else if_none)
        rows.append(tuple(row))
    return rows


def read_out(path: Path) -> tuple[list[str], list[tuple]]:
    """OUT's header and rows, typed: as_of an aware datetime, counts int, revenue Decimal."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = []
        for record in reader:
            typed: list[Any] = [record[0], dt.datetime.fromisoformat(record[1])]
            for name, value in zip(header[2:], record[2:]):
                if name.startswith("revenue_"):
                    typed.append(Decimal(value))
                else:
                    typed.append(int(value) if value != "" else None)
            rows.append(tuple(typed))
    return header, rows


def out_columns(windows: Sequence[int]) -> list[str]:
    names = ["customer_id", "as_of"]
    for days in sorted(windows):
        names += [f"orders_{days}d", f"revenue_{days}d"]
    return names + ["days_since_last_order"]


def assert_same_rows(actual: list[tuple], expected: list[tuple], names: list[str]) -> None:
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    for number, (got, want) in enumerate(zip(actual, expected), start=1):
        if got != want:
            diff = {n: (g, w) for n, g, w in zip(names, got, want) if g != w}
            pytest.fail(f"entity {number} {want[:2]} differs (column: (actual, expected)): {diff}")


# --- 1. every value of every entity against the definitions ------------------------------------


@pytest.mark.parametrize("seed, source_timezone", [(1, "UTC"), (2, "UTC"), (3, "America/New_York")])
def test_retrieval_equals_brute_force(project, db_url, seed, source_timezone):
    """OUT has one row per entity, in the entities' order, and every value equals the
    definitions applied to the generated orders: ties, as_of on an order and a microsecond
    either side, exactly 7 and 30 days (and 1 day) after an order and a microsecond either
    side, before the first order, long after the last, unknown customers, a customer with
    only cancelled orders, excluded statuses in any case, NULL amounts and customers, naive
    (source_timezone; New York across both 2024 DST changes) and offset timestamps, padded
    customer ids, repeated entities, the columns in the header in either order."""
    zone = ZoneInfo(source_timezone)
    orders = generate_orders(seed, start=utc(2024, 1, 15))
    project.write_csv("orders.csv", orders_csv(orders, seed, zone))
    config = project.write_config(staging={"source_timezone": source_timezone},
                                  features={"exclude_statuses": ["Cancelled", "refunded"]})
    run_features(config, db_url)

    entities = generate_entities(seed, orders)
    header = "customer_id,as_of" if seed % 2 else "as_of,customer_id"
    (project.root / "entities.csv").write_bytes(entities_csv(entities, seed, zone, header))
    rows = retrieve_mod.retrieve(config, "entities.csv", "out.csv", db_url)
    assert rows == len(entities)
    names, actual = read_out(project.root / "out.csv")
    assert names == out_columns([7, 30])
    expected = brute_force_as_of(orders, entities, [7, 30], None, EXCLUDED)
    # the data really has the cases the test claims
    assert {r[0] for r in expected if r[2:] == (0, 0, 0, 0, None)} >= {"NOBODY", "C999", "CX"}
    assert any(r[2] == 0 and r[4] > 0 for r in expected), "no entity with orders in 30 days but not in 7"
    assert any(o.status in EXCLUDED for o in orders) and any(o.status is None for o in orders)
    pairs = [(o.customer_id, o.at) for o in orders if o.customer_id]
    assert len(pairs) > len(set(pairs)), "no same-instant ties were generated"
    as_of_texts = [line.split(",")[header.split(",").index("as_of")]
                   for line in (project.root / "entities.csv").read_text().splitlines()[1:]]
    assert any(t[-1] != "Z" and t[-6] not in "+-" for t in as_of_texts), "no naive as_of"
    assert any(t[-6] in "+-" for t in as_of_texts) and any(t[-1] == "Z" for t in as_of_texts)
    if source_timezone != "UTC":
        assert {o.at.astimezone(zone).utcoffset() for o in orders} == {dt.timedelta(hours=-5), dt.timedelta(hours=-4)}
    assert_same_rows(actual, expected, names)


def test_function_with_other_windows_equals_brute_force_in_any_session_zone(project, db_url):
    """The SQL function, called by a DBA whose session is in New York time (DST), with
    features.windows_days [90, 1, 3] and days_since_last_order_if_none 9999: the columns
    follow the windows (sorted), their types are feats.customer_features' types, every
    value equals the definitions (24-hour days, not New York calendar days), and the
    entities come back numbered in array order."""
    orders = generate_orders(5, start=utc(2024, 2, 1))
    project.write_csv("orders.csv", orders_csv(orders, 5, UTC))
    config = project.write_config(features={"windows_days": [90, 1, 3], "days_since_last_order_if_none": 9999,
                                            "exclude_statuses": EXCLUDED})
    run_features(config, db_url)
    entities = generate_entities(5, orders)
    with psycopg.connect(db_url) as conn:
        conn.execute("SET timezone = 'America/New_York'")
        cur = conn.execute("SELECT * FROM feats.features_as_of(%s::text[], %s::timestamptz[])",
                           ([c for c, _ in entities], [t for _, t in entities]))
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        types = dict(conn.execute(
            "SELECT a.name, format_type(t, NULL) FROM pg_proc AS p,"
            " unnest(p.proargnames, p.proargmodes, p.proallargtypes) AS a (name, mode, t)"
            " WHERE p.oid = 'feats.features_as_of(text[], timestamptz[])'::regprocedure AND a.mode = 't'"
        ).fetchall())
    assert names == ["entity_number", *out_columns([1, 3, 90])]
    assert [r[0] for r in rows] == list(range(1, len(entities) + 1))
    actual = [(r[1], r[2].astimezone(UTC), *r[3:]) for r in rows]
    expected = brute_force_as_of(orders, entities, [1, 3, 90], 9999, EXCLUDED)
    assert 9999 in {r[-1] for r in expected}
    assert_same_rows(actual, expected, names[1:])
    assert types == {
        "entity_number": "bigint", "customer_id": "text", "as_of": "timestamp with time zone",
        "orders_1d": "bigint", "revenue_1d": "numeric", "orders_3d": "bigint", "revenue_3d": "numeric",
        "orders_90d": "bigint", "revenue_90d": "numeric", "days_since_last_order": "integer",
    }


# --- 2. at a feature row's own instant, that feature row ---------------------------------------


@pytest.mark.parametrize("data", ["generated", "sample"])
def test_retrieval_at_feature_times_equals_the_feature_rows(project, db_url, data):
    """Retrieval at every (customer_id, feature_time) of feats.customer_features, asked in
    random order and spelled with offsets, returns that feature row, row for row and value
    for value: on generated data with excluded statuses, and on the bundled
    data/raw/orders.csv. The same holds for the SQL function over the whole table."""
    if data == "generated":
        orders = generate_orders(7, start=utc(2024, 1, 15))
        project.write_csv("orders.csv", orders_csv(orders, 7, UTC))
    else:
        shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config(features={"exclude_statuses": EXCLUDED})
    run_features(config, db_url)
    with psycopg.connect(db_url) as conn:
        features = [(r[0], r[1].astimezone(UTC), *r[2:])
                    for r in conn.execute("SELECT * FROM feats.customer_features").fetchall()]
        # in SQL: the function at every feature row's instant gives the row itself
        differing = conn.execute(
            "SELECT count(*) FROM feats.customer_features AS c"
            " FULL JOIN feats.features_as_of("
            "   (SELECT array_agg(customer_id) FROM feats.customer_features),"
            "   (SELECT array_agg(feature_time) FROM feats.customer_features)) AS f"
            " ON (f.customer_id, f.as_of) = (c.customer_id, c.feature_time)"
            " WHERE (c.customer_id, c.feature_time, c.orders_7d, c.revenue_7d, c.orders_30d, c.revenue_30d,"
            "        c.days_since_last_order)"
            "   IS DISTINCT FROM (f.customer_id, f.as_of, f.orders_7d, f.revenue_7d, f.orders_30d, f.revenue_30d,"
            "                     f.days_since_last_order)"
        ).fetchone()[0]
    assert len(features) > 1000 if data == "sample" else len(features) > 200
    assert differing == 0
    random.Random(7).shuffle(features)
    rng = random.Random(8)
    lines = ["customer_id,as_of\n"] + [f"{r[0]},{spell(rng, r[1], UTC)}\n" for r in features]
    (project.root / "entities.csv").write_text("".join(lines), encoding="utf-8")
    assert retrieve_mod.retrieve(config, "entities.csv", "out.csv", db_url) == len(features)
    names, actual = read_out(project.root / "out.csv")
    assert_same_rows(actual, features, names)


# --- 3. the command line, end to end -------------------------------------------------------------


def cli(project, db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "scripts.serve.retrieve", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)


# The README's worked example (customer C001), plus a cancelled order that must count
# nowhere and an order without a customer.
WORKED_ORDERS = (
    HEADER
    + "A,C001,2025-12-01 10:00:00,24.99,completed\n"
    + "B,C001,2025-12-05 10:00:00,24.99,completed\n"
    + "C,C001,2025-12-08 10:00:00,10.00,completed\n"
    + "D,C001,2025-12-08 10:00:00,5.00,completed\n"
    + "E,C001,2026-01-07 10:00:00,20.00,completed\n"
    + "F,C001,2025-12-14 10:00:00,100.00,cancelled\n"
    + "G,,2025-12-08 10:00:00,7.00,completed\n"
)


def test_cli_writes_out_in_entity_order(project, db_url):
    """python -m scripts.serve.retrieve, as make retrieve runs it (DATABASE_URL, the project as
    cwd), on the README's worked example: OUT is exactly these lines, in the entities'
    order (header as_of,customer_id), as_of in UTC, the database session's own time zone
    notwithstanding; stdout says how many rows and how long; exit 0."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config(features={"exclude_statuses": ["cancelled"]})
    run_features(config, db_url)
    dbname = query(db_url, "SELECT current_database()")[0][0]
    with psycopg.connect(db_url, autocommit=True) as conn:  # +05:45: no session zone may matter
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET timezone = 'Asia/Kathmandu'")
    (project.root / "entities.csv").write_text(
        "as_of,customer_id\n"
        "2025-12-08 10:00:00,C001\n"           # C and D's instant: the feature row
        "2025-12-08T11:00:00+01:00,C001\n"     # the same instant, with an offset
        "2025-12-08 09:59:59.999999,C001\n"    # a microsecond before: A and B only; 2d23h.. since B
        "2025-12-15 10:00:00,C001\n"           # C and D exactly 7 days back count; F (cancelled) does not
        "2025-12-15 10:00:00.000001,C001\n"    # a microsecond later they are out of 7 days
        "2025-11-30 00:00:00,C001\n"           # before the first order
        "2026-01-07 10:00:00,C001\n"           # E's instant: the feature row (C and D exactly 30 days back)
        "2026-03-01 00:00:00,C001\n"           # nothing in 30 days; E 52d14h before
        "2026-01-01 00:00:00,NOBODY\n",        # unknown customer
        encoding="utf-8")
    (project.root / "out").mkdir()
    result = cli(project, db_url, "--config", config, "--entities", "entities.csv", "--out", "out/features.csv")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("retrieved 9 rows in ") and "entities.csv -> out/features.csv" in result.stdout
    assert (project.root / "out" / "features.csv").read_text(encoding="utf-8") == (
        OUT_HEADER + "\n"
        "C001,2025-12-08 10:00:00+00,4,64.98,4,64.98,3\n"
        "C001,2025-12-08 10:00:00+00,4,64.98,4,64.98,3\n"
        "C001,2025-12-08 09:59:59.999999+00,2,49.98,2,49.98,2\n"
        "C001,2025-12-15 10:00:00+00,2,15.00,4,64.98,7\n"
        "C001,2025-12-15 10:00:00.000001+00,0,0,4,64.98,7\n"
        "C001,2025-11-30 00:00:00+00,0,0,0,0,\n"
        "C001,2026-01-07 10:00:00+00,1,20.00,3,35.00,30\n"
        "C001,2026-03-01 00:00:00+00,0,0,0,0,52\n"
        "NOBODY,2026-01-01 00:00:00+00,0,0,0,0,\n"
    )
    # the two feature rows asked for, as the features stage wrote them
    assert query(db_url, "SELECT feature_time AT TIME ZONE 'UTC', orders_7d, revenue_7d, days_since_last_order"
                         " FROM feats.customer_features ORDER BY feature_time")[2:] == [
        (dt.datetime(2025, 12, 8, 10), 4, Decimal("64.98"), 3), (dt.datetime(2026, 1, 7, 10), 1, Decimal("20.00"), 30)]
    assert not list((project.root / "out").glob(".*")), "a temporary file was left beside OUT"


def test_naive_as_of_is_read_in_source_timezone_with_24h_days_across_dst(project, db_url):
    """staging.source_timezone America/New_York: a naive as_of is New York wall time, like a
    naive order timestamp, but windows and day counts are 24-hour days on UTC instants. At
    both DST changes a New York calendar week would give other answers (marked *)."""
    project.write_csv("orders.csv", (
        HEADER
        + "S1,S,2024-03-05 12:00:00,10.00,completed\n"   # EST: 17:00Z
        + "F1,F,2024-10-30 12:00:00,5.00,completed\n"    # EDT: 16:00Z
    ).encode())
    config = project.write_config(staging={"source_timezone": "America/New_York"})
    run_features(config, db_url)
    (project.root / "entities.csv").write_text(
        "customer_id,as_of\n"
        "S,2024-03-12 13:00:00\n"            # EDT 17:00Z = S1 + 168 h: in 7 days, 7 days since
        "S,2024-03-12 12:59:59.999999\n"     # S1 + 168 h - 1 us: in, 6 days since
        "S,2024-03-12 13:00:00.000001\n"     # S1 + 168 h + 1 us: out of 7 days
        "S,2024-03-12 12:00:00\n"            # 16:00Z = S1 + 167 h: 6 days since (* 7 calendar days)
        "S,2024-03-12T17:00:00Z\n"           # the first line's instant, with an offset
        "F,2024-11-06 11:00:00\n"            # EST 16:00Z = F1 + 168 h: in 7 days
        "F,2024-11-06 12:00:00\n"            # 17:00Z = F1 + 169 h: out of 7 days (* in a calendar week)
        "F,2024-10-30 11:59:59\n",           # before F1: nothing
        encoding="utf-8")
    assert retrieve_mod.retrieve(config, "entities.csv", "out.csv", db_url) == 8
    D = Decimal
    assert read_out(project.root / "out.csv")[1] == [
        ("S", utc(2024, 3, 12, 17), 1, D("10.00"), 1, D("10.00"), 7),
        ("S", utc(2024, 3, 12, 16, 59, 59, 999999), 1, D("10.00"), 1, D("10.00"), 6),
        ("S", utc(2024, 3, 12, 17, 0, 0, 1), 0, D(0), 1, D("10.00"), 7),
        ("S", utc(2024, 3, 12, 16), 1, D("10.00"), 1, D("10.00"), 6),
        ("S", utc(2024, 3, 12, 17), 1, D("10.00"), 1, D("10.00"), 7),
        ("F", utc(2024, 11, 6, 16), 1, D("5.00"), 1, D("5.00"), 7),
        ("F", utc(2024, 11, 6, 17), 0, D(0), 1, D("5.00"), 7),
        ("F", utc(2024, 10, 30, 15, 59, 59), 0, D(0), 0, D(0), None),
    ]


# --- 4. bad input: exit 2, the file and line, nothing written --------------------------------------

BAD_INPUTS = {
    # name: (entities file content, message expected on stderr)
    "bad timestamp": (
        'customer_id,as_of\nC001,2025-12-08 10:00:00\n"C0\n01",2025-12-08\nC001,2025-13-01 10:00\n',
        "entities.csv:5: as_of is not a timestamp: '2025-13-01 10:00' (customer_id 'C001')"),
    "a word, not a time": ("customer_id,as_of\nC001,now\n", "entities.csv:2: as_of is not a timestamp: 'now'"),
    "infinity": ("customer_id,as_of\nC001,-infinity\n", "entities.csv:2: as_of is not a timestamp: '-infinity'"),
    "empty as_of": ("customer_id,as_of\nC001,\n", "entities.csv:2: as_of is empty (customer_id 'C001')"),
    "empty customer_id": ("customer_id,as_of\nC001,2025-12-08\n,2025-12-08\n", "entities.csv:3: customer_id is empty"),
    "blank customer_id": ('customer_id,as_of\n" ",2025-12-08\n', "entities.csv:2: customer_id is empty"),
    "unknown column": ("customer_id,as_of,score\nC001,2025-12-08,1\n",
                       "entities.csv:1: unknown column(s) 'score': the header must be exactly customer_id,as_of"),
    "missing column": ("customer,as_of\nC001,2025-12-08\n",
                       "entities.csv:1: unknown column(s) 'customer'; missing column(s) 'customer_id'"),
    "column twice": ("customer_id,as_of,as_of\n", "entities.csv:1: column(s) named twice 'as_of'"),
    "no header": ("", "entities.csv: the file is empty: it needs the header customer_id,as_of"),
    "too few fields": ("customer_id,as_of\nC001,2025-12-08\nC001\n", 'entities.csv:3: missing data for column "as_of"'),
    "too many fields": ("customer_id,as_of\nC001,2025-12-08,x\n",
                        "entities.csv:2: extra data after last expected column"),
    "not UTF-8": (b"customer_id,as_of\nC\xff,2025-12-08\n",
                  'entities.csv:2: invalid byte sequence for encoding "UTF8"'),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_entities_exit_2_name_the_line_and_write_nothing(project, db_url, monkeypatch, capsys, case):
    """Each bad entities file stops retrieval with exit 2 and a message naming the file,
    the line and the value; OUT is not created and no temporary file is left."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config()
    run_features(config, db_url)
    content, message = BAD_INPUTS[case]
    (project.root / "entities.csv").write_bytes(content.encode() if isinstance(content, str) else content)
    capsys.readouterr()
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = retrieve_mod.main(["--config", config, "--entities", "entities.csv", "--out", "out.csv"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "nothing was written to out.csv" in err and "Traceback" not in err
    assert sorted(p.name for p in project.root.iterdir()) == ["artifacts", "configs", "data", "entities.csv"]


def test_bad_timestamp_through_the_cli_leaves_an_existing_out_untouched(project, db_url):
    """The command line exits 2 on a bad timestamp, names file, line and value, prints no
    traceback, and an OUT from before keeps its content."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config()
    run_features(config, db_url)
    (project.root / "entities.csv").write_text("customer_id,as_of\nC001,2025-12-08\nC001,12/45/2025\n")
    (project.root / "out.csv").write_text("earlier result\n")
    result = cli(project, db_url, "--config", config, "--entities", "entities.csv", "--out", "out.csv")
    assert result.returncode == 2
    assert "entities.csv:3: as_of is not a timestamp: '12/45/2025'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert (project.root / "out.csv").read_text() == "earlier result\n"


def test_usage_errors_exit_2(project, db_url, monkeypatch, capsys):
    """A missing entities file, a missing OUT folder, a bad config: exit 2, nothing written."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config()
    (project.root / "entities.csv").write_text("customer_id,as_of\nC001,2025-12-08\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    cases = [
        (["--config", config, "--entities", "missing.csv", "--out", "out.csv"], "missing.csv: no such file"),
        (["--config", config, "--entities", "entities.csv", "--out", "no/such/out.csv"],
         "no/such/out.csv: the folder no/such does not exist"),
        (["--config", "configs/none.yaml", "--entities", "entities.csv", "--out", "out.csv"], "configs/none.yaml"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert retrieve_mod.main(argv) == 2
        assert message in capsys.readouterr().err
    assert not (project.root / "out.csv").exists()


# --- 5. the database not ready: exit 3 ---------------------------------------------------------------


def test_before_the_features_stage_exit_3_says_run_make_all(project, db_url, monkeypatch, capsys):
    """Staged orders but no features stage yet: exit 3, "run make all (or make features)
    first". Features built for other windows than the config's: exit 3, naming both."""
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config()
    code, _ = run_pipeline(config, db_url, through="stage")
    assert code == EXIT_PASSED
    (project.root / "entities.csv").write_text("customer_id,as_of\nC001,2025-12-08\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    capsys.readouterr()
    assert retrieve_mod.main(["--config", config, "--entities", "entities.csv", "--out", "out.csv"]) == 3
    err = capsys.readouterr().err
    assert "feats.features_as_of(text[], timestamptz[])" in err and "run make all (or make features) first" in err
    assert not (project.root / "out.csv").exists()

    run_features(config, db_url)
    other = project.write_config(name="weekly.yaml", features={"windows_days": [14]})
    capsys.readouterr()
    assert retrieve_mod.main(["--config", other, "--entities", "entities.csv", "--out", "out.csv"]) == 3
    err = capsys.readouterr().err
    assert "returns orders_7d, revenue_7d, orders_30d, revenue_30d, days_since_last_order" in err
    assert "asks for orders_14d, revenue_14d, days_since_last_order" in err and "run make all" in err
    assert not (project.root / "out.csv").exists()


def test_unreachable_database_exits_3(project, monkeypatch, capsys):
    project.write_csv("orders.csv", WORKED_ORDERS)
    config = project.write_config()
    (project.root / "entities.csv").write_text("customer_id,as_of\nC001,2025-12-08\n")
    monkeypatch.setenv("DATABASE_URL", f"host={project.root} port=1 dbname=none connect_timeout=2")
    assert retrieve_mod.main(["--config", config, "--entities", "entities.csv", "--out", "out.csv"]) == 3
    err = capsys.readouterr().err
    assert "could not connect to" in err and "Traceback" not in err


# --- 6. what the features stage creates ----------------------------------------------------------------


def test_the_runner_lists_052_in_the_features_stage():
    """The features stage runs sql/50_features/052 after 050 (so make features, make all and
    the DBA route create the function)."""
    assert render.stage_files("features") == ["50_features/050_customer_feature_history.sql",
                                              f"50_features/{FUNCTION_FILE}"]

def test_the_function_is_one_set_based_sql_statement_using_the_index(project, db_url):
    """feats.features_as_of is LANGUAGE sql with a SQL-standard body (no PL/pgSQL, no loop),
    STABLE, created again by every features run; V009 indexes stg.orders (customer_id,
    order_at), and a call is planned as index scans under a nested loop, not a scan of
    every order per entity."""
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config()
    run_features(config, db_url)
    first_oid = query(db_url, "SELECT 'feats.features_as_of(text[], timestamptz[])'::regprocedure::oid")[0][0]
    run_features(config, db_url)  # dropped and created again: a run never fails on the old one
    (language, volatility, has_sql_body, oid), = query(
        db_url, "SELECT l.lanname, p.provolatile, p.prosqlbody IS NOT NULL, p.oid FROM pg_proc AS p"
                " INNER JOIN pg_language AS l ON p.prolang = l.oid WHERE p.proname = 'features_as_of'")
    assert (language, volatility, has_sql_body) == ("sql", "s", True)
    assert oid != first_oid
    assert query(db_url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer_id_order_at_idx'") == [
        ("CREATE INDEX orders_customer_id_order_at_idx ON stg.orders USING btree (customer_id, order_at)",)]
    assert query(db_url, "SELECT description, is_success FROM meta.schema_migrations WHERE script LIKE 'V009%'") == [
        ("index stg orders by customer", True)]
    # as scripts/serve/retrieve.py calls it: the arrays from FROM, so the function is inlined
    plan = "\n".join(r[0] for r in query(
        db_url, "EXPLAIN SELECT f.* FROM (SELECT array_agg(customer_id) AS c, array_agg(feature_time) AS t"
                " FROM feats.customer_features) AS e CROSS JOIN LATERAL feats.features_as_of(e.c, e.t) AS f"))
    assert "Index Scan using orders_customer_id_order_at_idx on orders" in plan, plan
    assert "Seq Scan on orders" not in plan, plan
