"""Generate deterministic, seeded synthetic order CSVs for the benchmark and the bundled samples.

Output is one UTF-8 CSV with LF line endings, written by the ``csv`` module (RFC 4180 quoting)
and streamed in batches, so memory stays flat even for 10,000,000 rows. Header::

    order_id,customer_id,order_ts,amount,status

Columns in clean mode:

* ``order_id``    ``O`` + 10-digit zero-padded sequence (``O0000000001``), unique.
* ``customer_id`` ``C`` + 7-digit zero-padded index, skewed: index = int(customers * u**3), so a
  few customers place thousands of orders and most place only a handful (or one).
* ``order_ts``    naive ISO ``YYYY-MM-DD HH:MM:SS``, spread over ``days`` days from ``start`` and
  non-decreasing over the file. About 0.2 % of rows repeat the previous row's instant exactly
  (ties); about a quarter of those ties are also for the previous row's customer.
* ``amount``      positive, exactly two decimals (``23.50``), lognormal between 1.00 and 500.00.
* ``status``      ``completed`` / ``cancelled`` / ``refunded`` / ``pending`` at 88 / 6 / 3 / 3 %.

With ``--dirty`` a small share of rows (each kind about 0.2-0.4 %, and at least one of each kind
when rows >= 200) carries exactly one real-world fault; the summary counts each kind exactly:

* ``exact_duplicate``       an earlier clean row repeated verbatim.
* ``conflicting_duplicate`` an earlier clean row repeated with a different (valid) amount.
* ``negative_amount``       e.g. ``-12.50``.
* ``invalid_timestamp``     ``not a date``, ``2024-02-30 10:00:00``, ... and the PostgreSQL
  special values ``now``, ``today``, ``epoch``, ``infinity``, ``-infinity``, which PostgreSQL
  accepts as timestamps but the pipeline must reject as data.
* ``invalid_amount``        e.g. ``12,50``, ``abc``, ``$12.50``, and ``NaN`` / ``Infinity``
  (accepted by PostgreSQL's numeric type, invalid as data).
* ``null_customer``         empty customer_id.
* ``padded_id``             order_id and/or customer_id with leading/trailing spaces.
* ``status_variant``        e.g. ``Completed``, `` COMPLETED ``, ``pending ``.
* ``too_many_decimals``     e.g. ``12.345``.

The ``rows`` count includes the faulty rows (it is the number of data lines written). Dirty
rows break the clean-mode guarantees on purpose (duplicates repeat earlier order_ids and
timestamps). Output is byte-for-byte deterministic for a given
(rows, seed, customers, dirty, start, days).

Usage::

    python -m scripts.bench.generate_orders --rows 1000000 --out data/bench/orders_1m.csv
    python -m scripts.bench.generate_orders --rows 2000 --dirty --seed 7 --out data/raw/orders_dirty.csv

or from Python::

    from pathlib import Path
    from scripts.bench.generate_orders import generate
    summary = generate(Path("orders.csv"), rows=2000, dirty=True)
    summary["faults"]["negative_amount"]  # exact count of that fault kind in the file
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HEADER: tuple[str, ...] = ("order_id", "customer_id", "order_ts", "amount", "status")

BATCH_ROWS = 10_000
WRITE_BUFFER = 1 << 20

MAX_ORDER_ID = 9_999_999_999  # 10 digits
MAX_CUSTOMERS = 10_000_000  # indices 0..9,999,999 fit in 7 digits

TIE_RATE = 0.002  # share of rows that repeat the previous row's instant
TIE_SAME_CUSTOMER = 0.25  # share of those ties that also repeat the previous customer
JITTER = 0.5  # each row lies in the first half of its own time slot, see generate()

AMOUNT_TABLE_SIZE = 16_384
AMOUNT_MEDIAN = 30.0  # lognormal median, in currency units
AMOUNT_SIGMA = 0.9
AMOUNT_MIN_CENTS = 100
AMOUNT_MAX_CENTS = 50_000

STATUS_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("completed", 88),
    ("cancelled", 6),
    ("refunded", 3),
    ("pending", 3),
)

# Fault kind -> share of rows. Order matters only for determinism.
FAULT_RATES: dict[str, float] = {
    "exact_duplicate": 0.004,
    "conflicting_duplicate": 0.002,
    "negative_amount": 0.003,
    "invalid_timestamp": 0.003,
    "invalid_amount": 0.003,
    "null_customer": 0.003,
    "padded_id": 0.003,
    "status_variant": 0.004,
    "too_many_decimals": 0.002,
}
FAULT_KINDS: tuple[str, ...] = tuple(FAULT_RATES)
DUPLICATE_KINDS = frozenset({"exact_duplicate", "conflicting_duplicate"})
MIN_ROWS_FOR_EVERY_FAULT = 200
DUPLICATE_POOL = 4_096  # how many recent clean rows duplicates are drawn from

INVALID_TIMESTAMPS: tuple[str, ...] = (
    "not a date",
    "2024-02-30 10:00:00",
    "2023-02-29 08:15:00",
    "2024-13-01 09:00:00",
    "2024-06-31 12:00:00",
    "2024-05-05 24:30:00",
    "2024-05-05 12:61:00",
    "31/12/2024 10:00",
    "now",
    "today",
    "epoch",
    "infinity",
    "-infinity",
)
INVALID_AMOUNT_LITERALS: tuple[str, ...] = ("abc", "NaN", "Infinity", "1.2.3", "twelve")

Row = tuple[str, str, str, str, str]


def _amount_table() -> list[str]:
    """Amount strings at evenly spaced quantiles of a clamped lognormal distribution."""
    normal = statistics.NormalDist()
    mu = math.log(AMOUNT_MEDIAN)
    table: list[str] = []
    for k in range(AMOUNT_TABLE_SIZE):
        z = normal.inv_cdf((k + 0.5) / AMOUNT_TABLE_SIZE)
        cents = round(math.exp(mu + AMOUNT_SIGMA * z) * 100)
        cents = min(max(cents, AMOUNT_MIN_CENTS), AMOUNT_MAX_CENTS)
        table.append(f"{cents // 100}.{cents % 100:02d}")
    return table


def _status_table() -> list[str]:
    """100 entries, one per percent, so a status is table[int(u * 100)]."""
    table: list[str] = []
    for status, weight in STATUS_WEIGHTS:
        table.extend([status] * weight)
    assert len(table) == 100
    return table


def _day_prefixes(start: dt.date, days: int) -> list[str]:
    return [(start + dt.timedelta(days=d)).isoformat() + " " for d in range(days)]


def _time_of_day_table() -> list[str]:
    return [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def _validate(rows: int, customers: int, days: int) -> None:
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if rows > MAX_ORDER_ID:
        raise ValueError(f"rows must be <= {MAX_ORDER_ID} (10-digit order_id), got {rows}")
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS}, got {customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")


def _plan_forced_faults(rng: random.Random, rows: int) -> dict[int, str]:
    """One guaranteed row position per fault kind (never row 0, which seeds the duplicate pool)."""
    if rows < MIN_ROWS_FOR_EVERY_FAULT:
        return {}
    positions = rng.sample(range(1, rows), len(FAULT_KINDS))
    return dict(zip(positions, FAULT_KINDS))


def _pad(value: str, rng: random.Random) -> str:
    return " " * rng.randint(0, 2) + value + " " * rng.randint(1, 2)


def _status_variant(status: str, rng: random.Random) -> str:
    variants = (
        status.capitalize(),
        status.upper(),
        f" {status.upper()} ",
        f"{status} ",
        f" {status}",
        f"{status.capitalize()} ",
    )
    return variants[rng.randrange(len(variants))]


def _duplicate_row(kind: str, pool: list[Row], amounts: list[str], rng: random.Random) -> Row:
    """Repeat an earlier clean row: verbatim, or with a different valid amount.

    A row used for a conflicting duplicate leaves the pool, so no two conflicting duplicates
    share a source (they could otherwise coincide and form an uncounted exact duplicate).
    """
    index = rng.randrange(len(pool))
    source = pool[index]
    if kind == "exact_duplicate":
        return source
    if kind != "conflicting_duplicate":
        raise ValueError(f"not a duplicate fault kind: {kind!r}")
    if len(pool) > 1:
        pool[index] = pool[-1]
        pool.pop()
    new_amount = source[3]
    while new_amount == source[3]:
        new_amount = amounts[rng.randrange(len(amounts))]
    return (source[0], source[1], source[2], new_amount, source[4])


def _faulty_row(kind: str, fresh: Row, rng: random.Random) -> Row:
    """Return ``fresh`` (a clean new row) carrying exactly one fault of ``kind``."""
    order_id, customer_id, order_ts, amount, status = fresh
    if kind == "negative_amount":
        return (order_id, customer_id, order_ts, "-" + amount, status)
    if kind == "invalid_timestamp":
        bad_ts = INVALID_TIMESTAMPS[rng.randrange(len(INVALID_TIMESTAMPS))]
        return (order_id, customer_id, bad_ts, amount, status)
    if kind == "invalid_amount":
        choice = rng.randrange(len(INVALID_AMOUNT_LITERALS) + 2)
        if choice == 0:
            bad_amount = amount.replace(".", ",")
        elif choice == 1:
            bad_amount = "$" + amount
        else:
            bad_amount = INVALID_AMOUNT_LITERALS[choice - 2]
        return (order_id, customer_id, order_ts, bad_amount, status)
    if kind == "null_customer":
        return (order_id, "", order_ts, amount, status)
    if kind == "padded_id":
        which = rng.randrange(3)  # 0: order_id, 1: customer_id, 2: both
        if which != 1:
            order_id = _pad(order_id, rng)
        if which != 0:
            customer_id = _pad(customer_id, rng)
        return (order_id, customer_id, order_ts, amount, status)
    if kind == "status_variant":
        return (order_id, customer_id, order_ts, amount, _status_variant(status, rng))
    if kind == "too_many_decimals":
        return (order_id, customer_id, order_ts, amount + str(rng.randint(1, 9)), status)
    raise ValueError(f"unknown fault kind {kind!r}")


def generate(
    path: Path,
    rows: int,
    seed: int = 42,
    customers: int | None = None,
    dirty: bool = False,
    start: str = "2024-01-01",
    days: int = 730,
) -> dict[str, Any]:
    """Write ``rows`` order rows (plus header) to ``path`` and return a summary.

    The summary holds ``path``, ``rows`` (data lines written), ``seed``, ``customers``,
    ``dirty``, ``ties`` (new rows given the previous new row's instant; in clean mode, and while
    days * 86400 / rows >= 2, exactly the rows whose order_ts equals the previous row's),
    ``faults`` (the exact count of every fault kind, all zero unless ``dirty``) and ``seconds``.
    """
    started = time.perf_counter()
    if customers is None:
        customers = max(50, rows // 12)
    _validate(rows, customers, days)
    start_date = dt.date.fromisoformat(start)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    rng = random.Random(seed)
    rnd = rng.random
    amounts = _amount_table()
    n_amounts = len(amounts)
    statuses = _status_table()
    day_prefix = _day_prefixes(start_date, days)
    time_of_day = _time_of_day_table()

    # Row i's instant lies in [i * slot, (i + JITTER) * slot), so instants are non-decreasing and
    # consecutive rows are at least (1 - JITTER) * slot seconds apart: no accidental ties while
    # slot >= 2 s (up to ~31 million rows over 730 days). Ties are then injected at TIE_RATE.
    span_seconds = days * 86_400
    slot = span_seconds / rows if rows else 0.0
    jitter_span = JITTER * slot

    fault_counts = dict.fromkeys(FAULT_KINDS, 0)
    forced = _plan_forced_faults(rng, rows) if dirty else {}
    fault_total_rate = sum(FAULT_RATES.values())
    fault_thresholds: list[tuple[float, str]] = []
    acc = 0.0
    for kind in FAULT_KINDS:
        acc += FAULT_RATES[kind]
        fault_thresholds.append((acc, kind))
    pool: list[Row] = []

    prev_t = 0
    prev_customer = ""
    ties = 0
    seq = 0

    with path.open("w", encoding="utf-8", newline="", buffering=WRITE_BUFFER) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for lo in range(0, rows, BATCH_ROWS):
            hi = min(lo + BATCH_ROWS, rows)
            batch: list[Row] = []
            append = batch.append
            for i in range(lo, hi):
                kind = None
                if dirty and i:
                    kind = forced.get(i)
                    if kind is None:
                        f = rnd()
                        if f < fault_total_rate:
                            kind = FAULT_KINDS[-1]  # fallback for float rounding at the edge
                            for threshold, candidate in fault_thresholds:
                                if f < threshold:
                                    kind = candidate
                                    break
                    if kind in DUPLICATE_KINDS:
                        fault_counts[kind] += 1
                        append(_duplicate_row(kind, pool, amounts, rng))
                        continue

                seq += 1
                u = rnd()
                if u < TIE_RATE and i:
                    t = prev_t
                    ties += 1
                    if u < TIE_RATE * TIE_SAME_CUSTOMER:
                        customer_id = prev_customer
                    else:
                        c = rnd()
                        customer_id = f"C{int(customers * c * c * c):07d}"
                else:
                    t = int(i * slot + rnd() * jitter_span)
                    if t < prev_t:  # float rounding guard
                        t = prev_t
                    c = rnd()
                    customer_id = f"C{int(customers * c * c * c):07d}"
                day, second = divmod(t, 86_400)
                row = (
                    f"O{seq:010d}",
                    customer_id,
                    day_prefix[day] + time_of_day[second],
                    amounts[int(rnd() * n_amounts)],
                    statuses[int(rnd() * 100)],
                )
                prev_t = t
                prev_customer = customer_id

                if kind is not None:
                    fault_counts[kind] += 1
                    append(_faulty_row(kind, row, rng))
                    continue
                if dirty:
                    if len(pool) < DUPLICATE_POOL:
                        pool.append(row)
                    else:
                        pool[int(rnd() * DUPLICATE_POOL)] = row
                append(row)
            writer.writerows(batch)

    return {
        "path": str(path),
        "rows": rows,
        "seed": seed,
        "customers": customers,
        "dirty": dirty,
        "ties": ties,
        "faults": fault_counts,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.generate_orders",
        description="Write a deterministic synthetic orders CSV "
        "(order_id,customer_id,order_ts,amount,status).",
    )
    parser.add_argument("--rows", type=int, required=True, help="data rows to write")
    parser.add_argument("--out", type=Path, required=True, help="output CSV path")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--customers",
        type=int,
        default=None,
        help="distinct customers (default max(50, rows // 12))",
    )
    parser.add_argument("--dirty", action="store_true", help="inject real-world faults")
    parser.add_argument(
        "--start", default="2024-01-01", help="first day, YYYY-MM-DD (default 2024-01-01)"
    )
    parser.add_argument("--days", type=int, default=730, help="days spanned (default 730)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        summary = generate(
            args.out,
            args.rows,
            seed=args.seed,
            customers=args.customers,
            dirty=args.dirty,
            start=args.start,
            days=args.days,
        )
    except ValueError as exc:
        print(f"generate_orders: {exc}", file=sys.stderr)
        return 2
    line = f"wrote {summary['rows']} rows to {summary['path']} in {summary['seconds']:.2f} s"
    if args.dirty:
        faults = ", ".join(f"{kind}={count}" for kind, count in summary["faults"].items())
        line += f" (faults: {faults})"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
