"""Splits: meta.dataset_splits and meta.split_cutoffs against a brute-force oracle.

Contract under test: feature rows are split by feature_time into train < val < test. Each
cut sits on a distinct-instant boundary (so no instant is in two splits) and is chosen on
its own: the boundary whose share of rows before it is closest to the target cumulative
fraction (train, then train + val), the earliest on a tie. Rows in the gap_days before val
and before test are left out of every split and counted in meta.split_cutoffs.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from scripts.run import EXIT_PASSED, EXIT_USAGE, run_pipeline
from tests.helpers import HEADER, query

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
BASE = dt.datetime(2024, 1, 1, tzinfo=UTC)
SPLITS = ("train", "val", "test")

Pair = tuple[str, dt.datetime]  # one feature row: (customer_id, feature_time)


# --- data ---------------------------------------------------------------------------------------


def tied_orders(seed: int, n_instants: int = 14, n_customers: int = 60,
                min_hours: int = 6, max_hours: int = 36) -> tuple[bytes, set[Pair]]:
    """Orders at a few shared instants, many customers per instant (heavy ties on
    feature_time); returns the CSV and the feature rows it must produce."""
    rng = random.Random(seed)
    customers = [f"C{i:03d}" for i in range(n_customers)]
    lines = [HEADER]
    pairs: set[Pair] = set()
    at = BASE
    n = 0
    instants = []
    for _ in range(n_instants):
        at += dt.timedelta(hours=rng.randint(min_hours, max_hours), minutes=rng.choice([0, 0, 17, 30]))
        instants.append(at)
    for at in instants:
        for customer in rng.sample(customers, rng.choice([1, 3, 8, 15, 25, 40, 60])):
            # sometimes two orders of one customer at one instant: still one feature row
            for _ in range(2 if rng.random() < 0.15 else 1):
                n += 1
                lines.append(f"O{n:05d},{customer},{at:%Y-%m-%d %H:%M:%S},{rng.randint(1, 9999) / 100:.2f},x\n")
            pairs.add((customer, at))
        if rng.random() < 0.3:  # an order without a customer: no feature row
            n += 1
            lines.append(f"O{n:05d},,{at:%Y-%m-%d %H:%M:%S},1.00,x\n")
    body = lines[:1] + rng.sample(lines[1:], len(lines) - 1)  # out of time order
    return "".join(body).encode(), pairs


def csv_for_counts(counts: Sequence[int], start: dt.datetime = BASE,
                   step: dt.timedelta = DAY) -> tuple[bytes, set[Pair]]:
    """Instant k (start + k * step) gets counts[k] feature rows (distinct customers)."""
    lines = [HEADER]
    pairs: set[Pair] = set()
    for k, count in enumerate(counts):
        at = start + k * step
        for c in range(count):
            lines.append(f"O{k:03d}-{c:03d},C{c:03d},{at:%Y-%m-%d %H:%M:%S},1.00,x\n")
            pairs.add((f"C{c:03d}", at))
    return "".join(lines).encode(), pairs


# --- oracle -------------------------------------------------------------------------------------


INFINITY = dt.datetime.max.replace(tzinfo=UTC)  # the cut after the last instant


@dataclass(frozen=True)
class Cuts:
    val_starts_at: dt.datetime  # INFINITY: after the last instant
    test_starts_at: dt.datetime
    val_error: Fraction
    test_error: Fraction


def exact(ratio: float) -> Fraction:
    """A ratio as the SQL sees it: the decimal literal the config renders."""
    return Fraction(Decimal(repr(float(ratio))))


def brute_force_cuts(pairs: set[Pair], train: float, val: float) -> Cuts:
    """Try every pair of boundaries (val cut <= test cut) among: before each distinct instant,
    and after the last one. Keep the val cut closest to `train` (earliest on a tie), then the
    test cut closest to `train + val` (earliest on a tie)."""
    per_instant = Counter(t for _, t in pairs)
    total = len(pairs)
    boundaries: list[tuple[dt.datetime, int]] = []
    before = 0
    for t in sorted(per_instant):
        boundaries.append((t, before))
        before += per_instant[t]
    boundaries.append((INFINITY, total))
    target_val, target_test = exact(train), exact(train) + exact(val)
    best: tuple[Any, ...] | None = None
    for i, (_, before_i) in enumerate(boundaries):
        for j in range(i, len(boundaries)):
            before_j = boundaries[j][1]
            key = (abs(Fraction(before_i, total) - target_val), i,
                   abs(Fraction(before_j, total) - target_test), j)
            if best is None or key < best:
                best = key
    assert best is not None
    return Cuts(boundaries[best[1]][0], boundaries[best[3]][0], best[0], best[2])


def label(t: dt.datetime, cuts: Cuts, gap: dt.timedelta = dt.timedelta(0)) -> str | None:
    """Which split an instant belongs to (None: inside a gap)."""
    if t >= cuts.test_starts_at:
        return "test"
    if t >= cuts.test_starts_at - gap:
        return None
    if t >= cuts.val_starts_at:
        return "val"
    if t >= cuts.val_starts_at - gap:
        return None
    return "train"


def round5(count: int, total: int) -> Decimal:
    return (Decimal(count) / Decimal(max(total, 1))).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)


# --- database reads -----------------------------------------------------------------------------


def split_rows(db_url: str) -> dict[Pair, str]:
    rows = query(db_url, "SELECT customer_id, feature_time, split FROM meta.dataset_splits")
    return {(c, t.astimezone(UTC)): s for c, t, s in rows}


def feature_pairs(db_url: str) -> set[Pair]:
    rows = query(db_url, "SELECT customer_id, feature_time FROM feats.customer_features")
    return {(c, t.astimezone(UTC)) for c, t in rows}


def cutoffs(db_url: str, run_id: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT split, starts_at, ends_before, row_count, gap_row_count, fraction, target_fraction"
            " FROM meta.split_cutoffs WHERE run_id = %s", (run_id,))
        names = [d.name for d in cur.description]
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def run_splits(project, db_url: str, csv: bytes, **splits: Any) -> dict[str, Any]:
    project.write_csv("orders.csv", csv)
    code, report = run_pipeline(project.write_config(splits=splits) if splits else project.write_config(), db_url)
    assert code == EXIT_PASSED, f"pipeline did not pass: {report.get('errors')}"
    return report


def check_against_oracle(db_url: str, report: dict[str, Any], pairs: set[Pair],
                         train: float, val: float, test: float, gap_days: float = 0) -> Cuts:
    """Everything the oracle predicts: cut instants, labels, counts, fractions, the report."""
    assert feature_pairs(db_url) == pairs, "feats.customer_features is not the generated (customer, instant) set"
    cuts = brute_force_cuts(pairs, train, val)
    gap = dt.timedelta(days=gap_days)
    expected = {p: label(p[1], cuts, gap) for p in pairs}
    got = split_rows(db_url)
    assert got == {p: s for p, s in expected.items() if s is not None}, "rows are not labelled by the oracle's cuts"

    total = len(pairs)
    minus_infinity = dt.datetime.min.replace(tzinfo=UTC)
    spans = {  # [starts_at, ends_before) of each split
        "train": (minus_infinity, cuts.val_starts_at),
        "val": (cuts.val_starts_at, cuts.test_starts_at),
        "test": (cuts.test_starts_at, INFINITY),
    }
    shown = {minus_infinity: None, INFINITY: None}  # no boundary: NULL
    rows = cutoffs(db_url, report["run_id"])
    assert set(rows) == set(SPLITS)
    for name, ratio in zip(SPLITS, (train, val, test)):
        lo, hi = spans[name]
        in_split = sum(1 for s in expected.values() if s == name)
        # the rows between the split's own boundaries that a gap removed
        in_span_gap = sum(1 for (_, t), s in expected.items() if s is None and lo <= t < hi)
        want = {
            "split": name,
            "starts_at": shown.get(lo, lo),
            "ends_before": shown.get(hi, hi),
            "row_count": in_split,
            "gap_row_count": in_span_gap,
            "fraction": round5(in_split, total),
            "target_fraction": Decimal(repr(float(ratio))),
        }
        assert rows[name] == want, f"meta.split_cutoffs {name}: {rows[name]} != oracle {want}"
        reported = dict(next(s for s in report["splits"] if s["split"] == name))
        for key in ("starts_at", "ends_before"):
            reported[key] = dt.datetime.fromisoformat(reported[key]) if reported[key] else None
        assert reported == {
            **want, "fraction": float(want["fraction"]), "target_fraction": float(ratio),
            "purged_row_count": 0, "censored_row_count": 0,  # no labels: nothing purged or censored
        }, f"report['splits'] {name} does not carry the cut-offs"
    assert [s["split"] for s in report["splits"]] == list(SPLITS)
    return cuts


# --- 1. invariants ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_row_in_exactly_one_split_in_time_order(project, db_url, seed):
    """gap_days 0: every feature row is in exactly one split (same rows, same count as
    feats.customer_features), no feature_time is in two splits, and
    max(train) < min(val) <= max(val) < min(test)."""
    csv, pairs = tied_orders(seed)
    report = run_splits(project, db_url, csv)
    got = split_rows(db_url)
    assert set(got) == feature_pairs(db_url) == pairs
    assert query(db_url, "SELECT count(*) FROM meta.dataset_splits") == \
        query(db_url, "SELECT count(*) FROM feats.customer_features")
    assert query(db_url, "SELECT count(*) FROM (SELECT feature_time FROM meta.dataset_splits"
                         " GROUP BY feature_time HAVING count(DISTINCT split) > 1) AS x") == [(0,)], \
        "an instant is in two splits"
    times = {s: sorted(t for (_, t), x in got.items() if x == s) for s in SPLITS}
    assert all(times.values()), f"a split is empty with the default ratios: { {s: len(v) for s, v in times.items()} }"
    assert times["train"][-1] < times["val"][0] and times["val"][-1] < times["test"][0], "splits overlap in time"
    assert set(query(db_url, "SELECT DISTINCT run_id FROM meta.dataset_splits")) == {(report["run_id"],)}
    assert sum(s["row_count"] for s in report["splits"]) == len(pairs)
    assert all(s["gap_row_count"] == 0 for s in report["splits"])


# --- 2. cut points are the best whole-instant boundaries -----------------------------------------


def naive_index_cut_splits_an_instant(pairs: set[Pair], fraction: Fraction) -> bool:
    times = sorted(t for _, t in pairs)
    k = round(fraction * len(times))
    return 0 < k < len(times) and times[k - 1] == times[k]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_cuts_are_the_closest_instant_boundaries(project, db_url, seed):
    """With heavy ties (up to 60 rows per instant), the val and test cuts are exactly the
    instant boundaries a brute-force search over every pair of boundaries finds closest to
    0.70 and 0.85 (earliest on a tie); labels, counts, fractions and the report follow."""
    csv, pairs = tied_orders(seed)
    assert naive_index_cut_splits_an_instant(pairs, exact(0.7)) or \
        naive_index_cut_splits_an_instant(pairs, exact(0.85)), "data too easy: row-index cuts fall between instants"
    report = run_splits(project, db_url, csv)
    cuts = check_against_oracle(db_url, report, pairs, 0.70, 0.15, 0.15)
    # and no boundary is closer than the one chosen (stated directly)
    total = len(pairs)
    befores = sorted({sum(1 for _, t in pairs if t < u) for _, u in pairs} | {total})
    assert min(abs(Fraction(b, total) - exact(0.7)) for b in befores) == cuts.val_error
    assert min(abs(Fraction(b, total) - exact(0.85)) for b in befores) == cuts.test_error


def test_tie_between_two_boundaries_takes_the_earliest(project, db_url):
    """Instants with 13, 2 and 5 rows (20 in all): the boundaries before the 2nd instant (13/20)
    and before the 3rd (15/20) are equally far from 0.70, so the val cut is the earlier one;
    0.85 is closest to 15/20, so test starts at the 3rd instant. A row-index cut at 14 would
    have split the 2nd instant."""
    csv, pairs = csv_for_counts([13, 2, 5])
    report = run_splits(project, db_url, csv)
    cuts = check_against_oracle(db_url, report, pairs, 0.70, 0.15, 0.15)
    assert (cuts.val_starts_at, cuts.test_starts_at) == (BASE + DAY, BASE + 2 * DAY)
    assert [(s["split"], s["row_count"]) for s in report["splits"]] == [("train", 13), ("val", 2), ("test", 5)]


# --- 3. gap_days --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed, gap_days", [(1, 2), (2, 2), (3, 2), (4, 0.5)])
def test_gap_days_leaves_out_rows_before_val_and_test(project, db_url, db_factory, seed, gap_days):
    """gap_days 2 (and 0.5): rows with feature_time in [val_start - gap, val_start) and
    [test_start - gap, test_start) are in no split; the cuts are the same as without a gap;
    meta.split_cutoffs.gap_row_count and report['splits'] count them (independent count)."""
    # instants 4 to 30 hours apart (2 to 11 for the half-day gap): each gap holds some
    csv, pairs = tied_orders(seed, n_instants=30, min_hours=4 if gap_days >= 1 else 2,
                             max_hours=30 if gap_days >= 1 else 11)
    report = run_splits(project, db_url, csv, gap_days=gap_days)
    cuts = check_against_oracle(db_url, report, pairs, 0.70, 0.15, 0.15, gap_days=gap_days)
    assert cuts.test_starts_at < INFINITY
    gap = dt.timedelta(days=gap_days)
    in_val_gap = sum(1 for _, t in pairs if cuts.val_starts_at - gap <= t < cuts.val_starts_at)
    in_test_gap = sum(1 for _, t in pairs if cuts.test_starts_at - gap <= t < cuts.test_starts_at)
    assert in_val_gap > 0 and in_test_gap > 0, "data too easy: a gap holds no rows"
    left_out = len(pairs) - query(db_url, "SELECT count(*) FROM meta.dataset_splits")[0][0]
    # the two gaps overlap when val is shorter than the gap
    overlap = sum(1 for _, t in pairs if cuts.test_starts_at - gap <= t < cuts.val_starts_at)
    assert left_out == in_val_gap + in_test_gap - overlap
    assert sum(s["gap_row_count"] for s in report["splits"]) == left_out, "gap_row_count misses rows left out"
    # the gap does not move the cuts: a run of the same data without a gap, in another
    # database, starts val and test at the same instants
    no_gap_db = db_factory()
    no_gap = run_splits(project, no_gap_db, csv, gap_days=0)
    starts = "SELECT split, starts_at FROM meta.split_cutoffs WHERE run_id = %s ORDER BY split"
    assert query(no_gap_db, starts, (no_gap["run_id"],)) == query(db_url, starts, (report["run_id"],))


def test_gap_exact_boundaries(project, db_url):
    """Ten instants one day apart, 10 rows each (100 rows). 0.70 -> val starts at day 7 (70
    rows before it); 0.85 is as close to 80 as to 90 rows -> the earlier, test starts at day 8.
    gap_days 2 leaves out [day 5, day 7) and [day 6, day 8): days 5, 6 and 7, the instant
    exactly 2 days before a cut included (the gap is closed at its start). Val (day 7 only)
    is empty; gap_row_count is 20 for train's span and 10 for val's."""
    csv, pairs = csv_for_counts([10] * 10)
    report = run_splits(project, db_url, csv, gap_days=2)
    cuts = check_against_oracle(db_url, report, pairs, 0.70, 0.15, 0.15, gap_days=2)
    # 0.70 of 100 -> boundary before day 7; 0.85 -> 80 and 90 are equally close: the earlier, day 8
    assert (cuts.val_starts_at, cuts.test_starts_at) == (BASE + 7 * DAY, BASE + 8 * DAY)
    by_split = Counter(split_rows(db_url).values())
    # train days 0-4 (day 5, 6 in the val gap); val day 7 is in the test gap [day 6, day 8); test days 8, 9
    assert by_split == {"train": 50, "test": 20}
    assert [(s["split"], s["row_count"], s["gap_row_count"]) for s in report["splits"]] == [
        ("train", 50, 20), ("val", 0, 10), ("test", 20, 0)]


# --- 4. custom ratios ---------------------------------------------------------------------------


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25), (0.7, 0.0, 0.3)])
def test_custom_ratios(project, db_url, ratios):
    """Other ratios, including val 0.0: the cuts are still the oracle's; with val 0.0 the val
    split is empty (starts where test starts) and the rows go train then test."""
    train, val, test = ratios
    csv, pairs = tied_orders(7, n_instants=25)
    report = run_splits(project, db_url, csv, train=train, val=val, test=test)
    cuts = check_against_oracle(db_url, report, pairs, train, val, test)
    labels = split_rows(db_url)
    if val == 0.0:
        assert cuts.val_starts_at == cuts.test_starts_at
        assert set(labels.values()) == {"train", "test"}
        assert query(db_url, "SELECT count(*) FROM meta.dataset_splits WHERE split = 'val'") == [(0,)]
        train_max = max(t for (_, t), s in labels.items() if s == "train")
        test_min = min(t for (_, t), s in labels.items() if s == "test")
        assert train_max < test_min
    else:
        assert set(labels.values()) == set(SPLITS)


def test_train_only(project, db_url):
    """train 1.0, val 0.0, test 0.0: every row is train; val and test are empty."""
    csv, pairs = tied_orders(8)
    report = run_splits(project, db_url, csv, train=1.0, val=0.0, test=0.0)
    check_against_oracle(db_url, report, pairs, 1.0, 0.0, 0.0)
    assert [(s["split"], s["row_count"]) for s in report["splits"]] == [
        ("train", len(pairs)), ("val", 0), ("test", 0)]


# --- 5. invalid configs -------------------------------------------------------------------------


@pytest.mark.parametrize("splits, key", [
    ({"train": 0.7, "val": 0.2, "test": 0.2}, "splits"),
    ({"train": 0.5, "val": 0.1, "test": 0.1}, "splits"),
    ({"gap_days": -1}, "splits.gap_days"),
    ({"gap_days": "2"}, "splits.gap_days"),
    ({"train": 0.8, "val": -0.1, "test": 0.3}, "splits.val"),
    ({"train": 0.0, "val": 0.5, "test": 0.5}, "splits.train"),
    ({"train": "0.7"}, "splits.train"),
    ({"ratio": 0.5}, "splits.ratio"),
])
def test_invalid_split_config_is_a_usage_error(project, splits, key):
    """A bad splits section exits 2 (EXIT_USAGE) before any database work (the URL given
    points nowhere: a connection attempt would exit 3), and the error names the config file
    and the offending key."""
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n")
    config = project.write_config(splits=splits)
    code, report = run_pipeline(config, "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=1")
    assert code == EXIT_USAGE, report["errors"]
    assert report["errors"] and f"{config}: {key}:" in report["errors"][0], report["errors"]


def test_no_feature_rows(project, db_url):
    """Only orders without a customer: no feature rows, so every split is empty, with no
    boundary and fraction 0; the run still passes."""
    csv = (HEADER + "O1,,2024-01-01 00:00:00,1.00,x\nO2,,2024-01-02 00:00:00,2.00,x\n").encode()
    report = run_splits(project, db_url, csv)
    assert query(db_url, "SELECT count(*) FROM feats.customer_features") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM meta.dataset_splits") == [(0,)]
    assert [(s["split"], s["starts_at"], s["ends_before"], s["row_count"], s["gap_row_count"], s["fraction"])
            for s in report["splits"]] == [(name, None, None, 0, 0, 0.0) for name in SPLITS]
