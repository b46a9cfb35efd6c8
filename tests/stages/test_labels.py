"""Labels, censoring, the purge and the training set, against brute force and a hand-worked example."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from scripts.run import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, run_pipeline
from tests.helpers import HEADER, query

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
H = 30


def generated_orders(seed: int = 7) -> list[tuple[str, str, dt.datetime, Decimal, str]]:
    """Orders rich in edge cases: same-instant ties, orders exactly H days after another and a
    microsecond either side, cancellations, customers with one order."""
    rng = random.Random(seed)
    orders = []
    n = 0

    def add(customer: str, at: dt.datetime, amount: str, status: str = "completed") -> None:
        nonlocal n
        n += 1
        orders.append((f"O{n:05d}", customer, at, Decimal(amount), status))

    for c in range(40):
        customer = f"C{c:03d}"
        base = T0 + dt.timedelta(days=rng.randrange(0, 200), minutes=rng.randrange(0, 1440))
        for _ in range(rng.randrange(1, 8)):
            at = base + dt.timedelta(days=rng.randrange(0, 120), seconds=rng.randrange(0, 86400))
            add(customer, at, f"{rng.randrange(1, 20000) / 100:.2f}", rng.choice(["completed"] * 5 + ["cancelled"]))
        add(customer, base, "5.00")  # an anchor order
        add(customer, base, "1.00")  # a same-instant tie
        edge = rng.choice([dt.timedelta(0), dt.timedelta(microseconds=1), -dt.timedelta(microseconds=1)])
        add(customer, base + dt.timedelta(days=H) + edge, "2.50")  # on, just after, just before t + H
    return orders


def write_orders(project, orders) -> None:
    lines = [f"{o},{c},{at.isoformat()},{amount},{status}" for o, c, at, amount, status in orders]
    project.write_csv("orders.csv", HEADER + "\n".join(lines) + "\n")


def brute_force_labels(orders, horizon: int, excluded: set[str], observed_until=None):
    """{(customer, t): (is_censored, repeat, revenue)} for every feature row, by definition."""
    counted = [(c, at, amount) for _, c, at, amount, status in orders if status not in excluded]
    observed_end = observed_until or max(at for _, _, at, _, _ in orders)
    by_customer = defaultdict(list)
    for c, at, amount in counted:
        by_customer[c].append((at, amount))
    labels = {}
    for c, rows in by_customer.items():
        for t in {at for at, _ in rows}:
            end = t + dt.timedelta(days=horizon)
            nxt = [amount for at, amount in rows if t < at <= end]
            if end > observed_end:
                labels[(c, t)] = (True, None, None)
            else:
                labels[(c, t)] = (False, bool(nxt), sum(nxt, Decimal(0)))
    return labels


def stored_labels(db_url, horizon: int):
    rows = query(db_url, f"SELECT customer_id, feature_time, is_censored, repeat_{horizon}d, revenue_next_{horizon}d"
                         " FROM feats.customer_labels")
    return {(c, t): (censored, repeat, revenue) for c, t, censored, repeat, revenue in rows}


@pytest.mark.parametrize(("horizon", "excluded"), [(30, set()), (30, {"cancelled"}), (7, {"cancelled"})])
def test_every_label_equals_brute_force(project, db_url, horizon, excluded):
    orders = generated_orders()
    write_orders(project, orders)
    config = project.write_config(labels={"horizon_days": horizon},
                                  features={"exclude_statuses": sorted(excluded)})
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    expected = brute_force_labels(orders, horizon, excluded)
    assert len(expected) > 100 and any(v[0] for v in expected.values()) and any(v[1] for v in expected.values())
    assert any(v[1] is False for v in expected.values())
    assert stored_labels(db_url, horizon) == expected
    # one label row per feature row
    assert query(db_url, "SELECT count(*) FROM feats.customer_features") == [(len(expected),)]


def test_observed_until_censors_from_the_given_instant(project, db_url):
    orders = generated_orders(seed=11)
    write_orders(project, orders)
    until = T0 + dt.timedelta(days=150)
    config = project.write_config(labels={"horizon_days": H, "observed_until": until.isoformat()})
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    assert stored_labels(db_url, H) == brute_force_labels(orders, H, set(), observed_until=until)


def test_the_readme_worked_example(project, db_url):
    """README, "Labels": customer C001's orders, horizon 30 days."""
    project.write_csv("orders.csv", HEADER + (
        "A,C001,2025-12-01T10:00:00Z,24.99,completed\n"
        "B,C001,2025-12-05T10:00:00Z,24.99,completed\n"
        "C,C001,2025-12-08T10:00:00Z,10.00,completed\n"
        "D,C001,2025-12-08T10:00:00Z,5.00,completed\n"
        "E,C001,2026-01-07T10:00:00Z,20.00,completed\n"
    ))
    assert run_pipeline(project.write_config(labels={"horizon_days": 30}), db_url, through="labels")[0] == EXIT_PASSED
    # a run that stops before the registry publishes nothing: its rows are the current ones
    # of the history table (valid_to IS NULL), not yet in the feats.customer_labels view
    # (censoring is by version, so the stored row holds what the staged orders say so far)
    assert query(db_url, "SELECT feature_time::text, repeat_30d, revenue_next_30d"
                         " FROM feats.customer_label_history WHERE valid_to IS NULL ORDER BY feature_time") == [
        ("2025-12-01 10:00:00+00", True, Decimal("39.99")),  # B, C and D in (12-01, 12-31]
        ("2025-12-05 10:00:00+00", True, Decimal("15.00")),  # C and D
        ("2025-12-08 10:00:00+00", True, Decimal("20.00")),  # E, exactly 30 days later, counts
        ("2026-01-07 10:00:00+00", False, Decimal("0")),  # nothing after E yet
    ]
    # published, the version's observed end (E's instant) censors E's row: NULL, not "no repeat"
    assert run_pipeline(project.write_config(labels={"horizon_days": 30}), db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT feature_time::text, repeat_30d, revenue_next_30d, is_censored"
                         " FROM feats.customer_labels ORDER BY feature_time") == [
        ("2025-12-01 10:00:00+00", True, Decimal("39.99"), False),
        ("2025-12-05 10:00:00+00", True, Decimal("15.00"), False),
        ("2025-12-08 10:00:00+00", True, Decimal("20.00"), False),
        ("2026-01-07 10:00:00+00", None, None, True),  # its window ends after the last order: censored
    ]


def expected_assignment(db_url, horizon: int, gap_days: float = 0):
    """Each feature row's split from the run's cut-offs, by the rules of the README."""
    cuts = dict(query(db_url, "SELECT split, starts_at FROM meta.split_cutoffs"))
    val_start, test_start = cuts["val"], cuts["test"]
    gap = dt.timedelta(days=gap_days)
    rows = query(db_url, "SELECT customer_id, feature_time FROM feats.customer_features")
    assignment = {}
    for c, t in rows:
        by_time = "test" if t >= test_start else "gap" if t >= test_start - gap else "val" if t >= val_start \
            else "gap" if t >= val_start - gap else "train"
        end = t + dt.timedelta(days=horizon)
        purged = (by_time == "train" and end >= val_start) or (by_time == "val" and end >= test_start)
        assignment[(c, t)] = (by_time, "purged" if purged else by_time)
    return assignment


@pytest.mark.parametrize("gap_days", [0, 4])
def test_purge_leaves_out_every_row_whose_label_window_reaches_a_later_split(project, db_url, gap_days):
    """With gap_days the embargo works beside the purge: gap rows are left out as gap."""
    orders = generated_orders(seed=3)
    write_orders(project, orders)
    config = project.write_config(labels={"horizon_days": H}, splits={"gap_days": gap_days})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    expected = expected_assignment(db_url, H, gap_days)
    gap_rows = sum(1 for by_time, _ in expected.values() if by_time == "gap")
    assert (gap_rows > 0) == (gap_days > 0)
    assert sum(s["gap_row_count"] for s in report["splits"]) == gap_rows
    kept = {k: final for k, (_, final) in expected.items() if final not in ("purged", "gap")}
    assert dict(((c, t), s) for c, t, s in query(db_url, "SELECT customer_id, feature_time, split"
                                                           " FROM meta.dataset_splits")) == kept
    purged = {split: sum(1 for by_time, final in expected.values() if by_time == split and final == "purged")
              for split in ("train", "val")}
    assert purged["train"] > 0 and purged["val"] > 0
    labels = brute_force_labels(orders, H, set())
    counts = {s: (p, c) for s, p, c in query(db_url, "SELECT split, purged_row_count, censored_row_count"
                                                     " FROM meta.split_cutoffs")}
    for split in ("train", "val", "test"):
        censored = sum(1 for k, v in kept.items() if v == split and labels[k][0])
        assert counts[split] == (purged.get(split, 0), censored), split
    assert [s["purged_row_count"] for s in report["splits"]] == [purged["train"], purged["val"], 0]
    # no kept train row's label window reaches val, no val row's reaches test
    cuts = dict(query(db_url, "SELECT split, starts_at FROM meta.split_cutoffs"))
    for (c, t), split in kept.items():
        if split == "train":
            assert t + dt.timedelta(days=H) < cuts["val"]
        if split == "val":
            assert t + dt.timedelta(days=H) < cuts["test"]


def test_the_training_set_holds_every_labelled_kept_row(project, db_url):
    orders = generated_orders(seed=5)
    write_orders(project, orders)
    code, report = run_pipeline(project.write_config(labels={"horizon_days": H}), db_url)
    assert code == EXIT_PASSED
    labels = brute_force_labels(orders, H, set())
    kept = dict(((c, t), s) for c, t, s in query(db_url, "SELECT customer_id, feature_time, split"
                                                           " FROM meta.dataset_splits"))
    expected = {(c, t, s, labels[(c, t)][1], labels[(c, t)][2]) for (c, t), s in kept.items() if not labels[(c, t)][0]}
    rows = query(db_url, "SELECT customer_id, feature_time, split, repeat_30d, revenue_next_30d, feature_version"
                         " FROM feats.training_set")
    assert {r[:5] for r in rows} == expected and len(rows) == len(expected) > 100
    assert {r[5] for r in rows} == {report["feature_version"]}
    columns = [r[0] for r in query(db_url, "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                                           " 'feats' AND table_name = 'training_set' ORDER BY ordinal_position")]
    assert columns == ["customer_id", "feature_time", "orders_7d", "revenue_7d", "orders_30d", "revenue_30d",
                       "days_since_last_order", "repeat_30d", "revenue_next_30d", "split", "feature_version"]


def test_a_split_that_purging_empties_is_refused(project, db_url, capsys):
    write_orders(project, generated_orders(seed=3))
    assert run_pipeline(project.write_config(), db_url)[0] == EXIT_PASSED  # a complete run first
    # val spans about 33 days (the cut-offs are the same as above): a 40-day window from any
    # val row reaches test, while the rows are not censored
    code, report = run_pipeline(project.write_config(labels={"horizon_days": 40}), db_url)
    assert code == EXIT_RUNTIME
    err = capsys.readouterr().err
    assert "purging left no labelled row in val" in err and "lower labels.horizon_days" in err
    # nothing of the failed splits stage was kept: the earlier run's splits are still there
    assert query(db_url, "SELECT count(DISTINCT run_id) FROM meta.dataset_splits")[0][0] == 1
    assert query(db_url, "SELECT count(*) FROM meta.split_cutoffs WHERE run_id = %s", (report["run_id"],)) == [(0,)]


@pytest.mark.parametrize(("labels", "message"), [
    ({"horizon_days": 0}, "labels.horizon_days: must be a whole number of days > 0, got 0"),
    ({"horizon_days": -3}, "got -3"),
    ({"horizon_days": 1.5}, "got 1.5"),
    ({"horizon_days": "30"}, "got '30'"),
    ({"observed_until": "next tuesday"}, "labels.observed_until: must be an ISO timestamp"),
    ({"horizon": 30}, "labels.horizon: unknown key"),
])
def test_bad_label_settings_are_refused(project, db_url, capsys, labels, message):
    write_orders(project, generated_orders())
    assert run_pipeline(project.write_config(labels=labels), db_url)[0] == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]


def test_without_labels_nothing_is_purged_and_there_is_no_training_set(project, db_url):
    write_orders(project, generated_orders())
    assert run_pipeline(project.write_config(), db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT to_regclass('feats.training_set'), to_regclass('feats.customer_labels')") == [
        (None, None)]
    assert query(db_url, "SELECT sum(purged_row_count) FROM meta.split_cutoffs") == [(0,)]
