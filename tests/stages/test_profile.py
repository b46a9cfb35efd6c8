"""Profiles and drift: meta.profiles, and the drift checks against the
previous successful run. Expected values are hand-worked or recomputed here in Python from
the rows the pipeline published, never read back from the profile itself."""

from __future__ import annotations

import math

import pytest

from scripts.config import ConfigError, load
from scripts.run import EXIT_PASSED, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER, query


def orders(prefix: str, amounts: list[str], day: int = 1, customers: int = 4) -> str:
    """One order per amount, a customer each in turn, an hour apart from 2024-03-<day>."""
    lines = [f"{prefix}{i},C{i % customers},2024-03-{day:02d} {i % 24:02d}:00:00,{amount},completed"
             for i, amount in enumerate(amounts)]
    return HEADER + "\n".join(lines) + "\n"


def drift_checks(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"] if c["level"] == "drift"}


def percentile_disc(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_disc: the first value whose cumulative share reaches the fraction."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


DECILES = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]


def test_first_run_has_no_baseline_and_passes(project, db_url):
    project.write_csv("a.csv", orders("A", ["10.00"] * 20))
    config = project.write_config(["data/raw/a.csv"], expectations={"drift": {
        "row_count": {"warn_if": ">40%"}, "psi": {"warn_if": ">0.1", "columns": ["amount"]}}})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    checks = drift_checks(report)
    assert set(checks) == {"drift.row_count", "drift.psi.amount"}
    assert all(c["status"] == "pass" and "no baseline" in c["message"] for c in checks.values())
    assert report["profile"]["baseline_run_id"] is None


def test_half_size_file_warns_and_a_usual_one_passes(project, db_url):
    """20 orders, then a file of 10 (-50 %: beyond 40 %), then one of 19 (-5 %: within)."""
    project.write_csv("a.csv", orders("A", ["10.00"] * 20, day=1))
    project.write_csv("b.csv", orders("B", ["10.00"] * 10, day=2))
    project.write_csv("c.csv", orders("C", ["10.00"] * 19, day=3))
    expectations = {"drift": {"row_count": {"warn_if": ">40%"}}}
    first = run_pipeline(project.write_config(["data/raw/a.csv"], expectations=expectations), db_url)[1]

    code, report = run_pipeline(project.write_config(["data/raw/a.csv", "data/raw/b.csv"],
                                                     expectations=expectations), db_url)
    check = drift_checks(report)["drift.row_count"]
    assert code == EXIT_PASSED  # a warning: reported, the run goes on
    assert check["status"] == "warn" and check["measured"] == 10 and check["baseline"] == 20
    assert first["run_id"] in check["message"] and "-50.0%" in check["message"]
    assert check["message"] in report["warnings"]

    # the baseline is now the half-size run (the latest that passed): 19 against 10 is +90 %
    code, report = run_pipeline(project.write_config(["data/raw/a.csv", "data/raw/b.csv", "data/raw/c.csv"],
                                                     expectations=expectations), db_url)
    check = drift_checks(report)["drift.row_count"]
    assert check["status"] == "warn" and check["measured"] == 19 and check["baseline"] == 10


def test_warn_error_fails_on_drift_and_publishes_nothing(project, db_url):
    project.write_csv("a.csv", orders("A", ["10.00"] * 20, day=1))
    project.write_csv("b.csv", orders("B", ["10.00"] * 10, day=2))
    expectations = {"drift": {"row_count": {"warn_if": ">40%"}}}
    first = run_pipeline(project.write_config(["data/raw/a.csv"], expectations=expectations), db_url)[1]
    code, report = run_pipeline(project.write_config(["data/raw/a.csv", "data/raw/b.csv"],
                                                     expectations=expectations), db_url, warn_error=True)
    assert code == EXIT_VALIDATION_FAILED
    assert [s["stage"] for s in report["stages"]][-1] == "profile"
    # the published version is still the first run's
    assert query(db_url, "SELECT run_id FROM meta.feature_versions ORDER BY version_number DESC LIMIT 1") \
        == [(first["run_id"],)]


def test_psi_of_amount_hand_worked(project, db_url):
    """Baseline: 20 amounts of 10, so its deciles are all 10 and its bins are [< 10] and
    [>= 10] with 0 and 20 rows. Then 20 new amounts, 10 of 5 and 10 of 10: shares 0.5 and 0.5
    against 0 (counted as 0.0001) and 1:
    PSI = (0.5 - 0.0001) ln(0.5 / 0.0001) + (0.5 - 1) ln(0.5 / 1) = 4.257745 + 0.346574 = 4.604318."""
    project.write_csv("a.csv", orders("A", ["10.00"] * 20, day=1))
    project.write_csv("b.csv", orders("B", ["5.00", "10.00"] * 10, day=2))
    expectations = {"drift": {"psi": {"warn_if": ">0.1", "error_if": ">0.25", "severity": "error",
                                      "columns": ["amount"]}}}
    assert run_pipeline(project.write_config(["data/raw/a.csv"], expectations=expectations), db_url)[0] == EXIT_PASSED
    code, report = run_pipeline(project.write_config(["data/raw/a.csv", "data/raw/b.csv"],
                                                     expectations=expectations), db_url)
    check = drift_checks(report)["drift.psi.amount"]
    hand = (0.5 - 0.0001) * math.log(0.5 / 0.0001) + (0.5 - 1) * math.log(0.5 / 1)
    assert round(hand, 6) == 4.604318
    assert check["measured"] == pytest.approx(hand, abs=1e-6)
    assert check["status"] == "fail" and code == EXIT_VALIDATION_FAILED  # severity error, beyond 0.25


def brute_force_psi(baseline: list[float], current: list[float]) -> float:
    """The README's definition, computed here: the baseline's distinct deciles as edges, rows
    per bin (a value equal to an edge goes above it), shares floored at 0.0001."""
    edges = sorted({percentile_disc(baseline, f) for f in DECILES[1:10]})

    def shares(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for value in values:
            counts[sum(1 for edge in edges if value >= edge)] += 1
        return [max(c / len(values), 0.0001) for c in counts]

    return sum((a - e) * math.log(a / e) for a, e in zip(shares(current), shares(baseline)))


def test_psi_matches_a_brute_force_computation(project, db_url):
    base = [f"{1 + (i * 37) % 50}.{i % 10}0" for i in range(60)]
    new = [f"{5 + (i * 13) % 70}.{(i * 3) % 10}0" for i in range(45)]
    project.write_csv("a.csv", orders("A", base, day=1, customers=7))
    project.write_csv("b.csv", orders("B", new, day=2, customers=7))
    expectations = {"drift": {"psi": {"warn_if": ">0.1", "columns": ["amount"]}}}
    assert run_pipeline(project.write_config(["data/raw/a.csv"], expectations=expectations), db_url)[0] == EXIT_PASSED
    report = run_pipeline(project.write_config(["data/raw/a.csv", "data/raw/b.csv"], expectations=expectations),
                          db_url)[1]
    expected = brute_force_psi([float(v) for v in base], [float(v) for v in new])
    assert expected > 0.1  # the two samples differ enough to warn
    check = drift_checks(report)["drift.psi.amount"]
    assert check["measured"] == pytest.approx(expected, abs=1e-6)
    assert check["status"] == "warn"


def test_profile_counts_against_the_published_rows(project, db_url):
    """The batch's counts by hand; the features' quantiles and histograms recomputed in
    Python from feats.customer_features; the label balance from the published views."""
    project.write_csv("a.csv", HEADER + "\n".join([
        "O1,C1,2024-03-01 10:00:00,10.00,completed",
        "O2,C1,2024-03-05 10:00:00,20.00,completed",
        "O3,C2,2024-03-06 10:00:00,,completed",        # no amount: a null in the batch
        "O4,C2,2024-03-20 10:00:00,5.00,refunded",
        "O5,C3,2024-04-01 10:00:00,7.50,completed",
        "O6,C1,2024-04-02 10:00:00,1.00,pending",
    ]) + "\n")
    config = project.write_config(["data/raw/a.csv"], expectations={"non_null": ["order_id"]},
                                  labels={"horizon_days": 30})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    batch = report["profile"]["batch"]
    assert batch["row_count"] == 6
    assert batch["columns"]["amount"]["null_count"] == 1
    assert batch["columns"]["customer_id"]["distinct_count"] == 3
    assert batch["status_counts"] == {"completed": 4, "refunded": 1, "pending": 1}
    assert batch["columns"]["amount"]["quantiles"] == [
        percentile_disc([10, 20, 5, 7.5, 1], f) for f in DECILES]

    features = report["profile"]["features"]
    rows = query(db_url, "SELECT orders_30d, revenue_30d FROM feats.customer_features")
    assert features["row_count"] == features["sampled_rows"] == len(rows) == 6
    orders_30d = [float(r[0]) for r in rows]
    column = features["columns"]["orders_30d"]
    assert column["quantiles"] == [percentile_disc(orders_30d, f) for f in DECILES]
    histogram = column["histogram"]
    assert sum(histogram["counts"]["all"]) == 6
    # few whole numbers (here 1 and 2, with the refund counted): one bin each, centred on the value
    low, high = min(orders_30d), percentile_disc(orders_30d, 0.99)
    assert (low, high) == (1, 2)
    assert histogram["edges"] == [0.5, 1.5, 2.5]
    assert histogram["counts"]["all"] == [orders_30d.count(1), orders_30d.count(2)]
    by_split = query(db_url, "SELECT s.split, count(*) FROM meta.dataset_splits AS s GROUP BY s.split")
    for split, count in by_split:
        assert sum(histogram["counts"][split]) == count

    labels = report["profile"]["labels"]
    published = query(db_url, "SELECT s.split, l.repeat_30d, l.is_censored FROM feats.customer_labels AS l "
                               "JOIN meta.dataset_splits AS s USING (customer_id, feature_time)")
    for split in {r[0] for r in published}:
        mine = [r for r in published if r[0] == split]
        assert labels["by_split"][split] == {
            "rows": len(mine), "positive": sum(1 for r in mine if r[1] and not r[2]),
            "negative": sum(1 for r in mine if r[1] is False and not r[2]),
            "censored": sum(1 for r in mine if r[2])}


def test_profile_samples_a_large_feature_history(project, db_url, monkeypatch):
    """With more feature rows than profile.sample_rows, the features are profiled on a sample
    of the history's pages; the batch is always counted in full."""
    from scripts.pipeline import context

    monkeypatch.setattr(context, "PROFILED_FEATURE_ROWS", 500)
    lines = [f"O{i},C{i % 300},2024-0{1 + i % 6}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00,{i % 90}.00,completed"
             for i in range(6000)]
    project.write_csv("a.csv", HEADER + "\n".join(lines) + "\n")
    code, report = run_pipeline(project.write_config(["data/raw/a.csv"]), db_url)
    assert code == EXIT_PASSED
    features = report["profile"]["features"]
    (published,) = query(db_url, "SELECT count(*) FROM feats.customer_features")[0]
    assert features["row_count"] == published
    assert 0 < features["sampled_rows"] < published
    batch = report["profile"]["batch"]
    assert batch["row_count"] == 6000  # counted in full
    # the amount's quantiles come from a hash sample of the orders: about 500 of 6,000
    assert 200 < batch["columns"]["amount"]["profiled_rows"] < 1000
    assert batch["columns"]["amount"]["null_count"] == 0


@pytest.mark.parametrize(("drift", "key", "says"), [
    ({"psi": {"warn_if": ">10%"}}, "drift.psi.warn_if", "plain number"),
    ({"row_count": {"warn_if": ">0.3"}}, "drift.row_count.warn_if", "percentage"),
    ({"psi": {"warn_if": ">0.1", "columns": ["basket"]}}, "drift.psi.columns", "not profiled"),
    ({"row_count": {"severity": "warn"}}, "drift.row_count", "needs warn_if"),
    ({"rowcount": {"warn_if": ">5%"}}, "drift.rowcount", "unknown drift rule"),
    ({"row_count": {"warn_if": ">5%", "columns": ["amount"]}}, "drift.row_count.columns", "unknown option"),
])
def test_bad_drift_rules_are_refused(project, drift, key, says):
    project.write_csv("a.csv", orders("A", ["1.00"]))
    with pytest.raises(ConfigError) as refused:
        load(project.write_config(["data/raw/a.csv"], expectations={"drift": drift}))
    message = str(refused.value)
    assert "pipeline_expectations.yaml" in message and key in message and says in message


def test_a_share_between_whole_numbers_gets_equal_width_bins(project, db_url):
    """A ratio whose minimum and 99th percentile are whole (0 and 1) but whose values are not
    (0.5) is binned in 20 equal widths, not a bin per whole number (where 0.5 would fall in
    the bin centred on 1)."""
    project.write_csv("a.csv", HEADER + "\n".join([
        "O1,C1,2024-03-01 10:00:00,10.00,completed",
        "O2,C1,2024-03-02 10:00:00,20.00,cancelled",
        "O3,C2,2024-03-03 10:00:00,5.00,completed",
        "O4,C3,2024-03-04 10:00:00,5.00,cancelled",
    ]) + "\n")
    config = project.write_config(["data/raw/a.csv"], expectations={"non_null": ["order_id"]}, features={
        "windows_days": [7], "define": [
            {"name": "cancelled", "agg": "count", "where": {"status": ["cancelled"]}, "orders": "all",
             "windows": ["7d"]},
            {"name": "all_orders", "agg": "count", "orders": "all", "windows": ["7d"]},
            {"name": "cancel_share", "ratio": ["cancelled_7d", "all_orders_7d"]}]})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    shares = sorted(float(r[0]) for r in query(db_url, "SELECT cancel_share FROM feats.customer_features"))
    assert shares == [0.0, 0.0, 0.5, 1.0]  # by hand: C1 0/1 then 1/2, C2 0/1, C3 1/1
    histogram = report["profile"]["features"]["columns"]["cancel_share"]["histogram"]
    assert histogram["edges"] == [i / 20 for i in range(21)]
    counts = histogram["counts"]["all"]
    assert (counts[0], counts[10], counts[19], sum(counts)) == (2, 1, 1, 4)
