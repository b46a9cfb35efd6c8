"""Incremental runs equal full rebuilds, and published versions stay reproducible.

The property test applies random sequences of file additions, removals and replacements
(a corrected file) to one database run incrementally, and after every step rebuilds the same
named files from scratch in a fresh database: staging, features, labels, splits (gap and
purged rows included), the training set, the split cut-offs, the registry's row counts and
the feature_version must be identical. The generated days hold ties (orders at the same
instant), cancelled orders (not counted) and late-arriving orders (dated days before the
file's day), so the recomputed rows reach back into history.

It also proves that an addition is processed incrementally (work proportional to the new
file), and that every retained version reads back, through the *_versions views, exactly as
it read when it was current, while older ones are dropped and marked so.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest

from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, Project, query

CUSTOMERS = [f"C{n:02d}" for n in range(1, 8)]
START = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
SECTIONS = {
    "features": {"windows_days": [1, 3], "exclude_statuses": ["cancelled"]},
    "labels": {"horizon_days": 1},
    "splits": {"train": 0.5, "val": 0.25, "test": 0.25, "gap_days": 0.5},
    "retention": {"versions": 3},
}


def day_file(rng: random.Random, day: int, tag: str) -> list[tuple[str, str, str, str, str]]:
    """One day's orders: some at shared instants (ties), some late (dated days earlier)."""
    rows = []
    shared = START + dt.timedelta(days=day, hours=rng.randrange(24))
    for k in range(rng.randrange(6, 12)):
        if k < 2:
            at = shared  # a tie: two orders at the same instant
        elif rng.random() < 0.2 and day > 2:
            at = START + dt.timedelta(days=day - rng.randrange(1, 4), minutes=rng.randrange(1440))  # late
        else:
            at = START + dt.timedelta(days=day, minutes=rng.randrange(1440))
        status = "cancelled" if rng.random() < 0.1 else "completed"
        rows.append((f"O{tag}-{k}", rng.choice(CUSTOMERS[: 3 + day % 5]), at.isoformat(),
                     f"{rng.randrange(100, 9000) / 100:.2f}", status))
    return rows


def corrected(rng: random.Random, rows: list[tuple[str, ...]], tag: str) -> list[tuple[str, ...]]:
    """The same day's file sent again: an amount fixed, an order dropped, one added."""
    fixed = [list(r) for r in rows]
    fixed[rng.randrange(len(fixed))][3] = f"{rng.randrange(100, 9000) / 100:.2f}"
    fixed.pop(rng.randrange(len(fixed)))
    extra = list(fixed[0])
    extra[0] = f"O{tag}-extra"
    extra[1] = rng.choice(CUSTOMERS)
    fixed.append(extra)
    return [tuple(r) for r in fixed]


def write(project: Project, name: str, rows: list[tuple[str, ...]]) -> str:
    return project.write_csv(name, HEADER + "".join(",".join(r) + "\n" for r in rows))


def outweighs(project: Project, before: list[str], after: list[str]) -> bool:
    """The size rule, from the files alone: the newly named files hold more bytes than the
    staged files that stay (such a batch goes the full way)."""
    size = lambda path: (project.root / path).stat().st_size  # noqa: E731
    return sum(size(p) for p in after if p not in before) > sum(size(p) for p in before if p in after)


def state(url: str, labels: bool = True) -> dict[str, Any]:
    """Everything a run publishes, as sorted rows (no run ids, no timestamps of runs)."""
    found = {
        "orders": query(url, "SELECT order_id, customer_id, order_at, amount, status, file_sha256, line_number"
                             " FROM stg.orders ORDER BY order_id"),
        "features": query(url, "SELECT * FROM feats.customer_features ORDER BY 1, 2"),
        "splits": query(url, "SELECT customer_id, feature_time, split FROM meta.dataset_splits ORDER BY 1, 2"),
        "registry": query(url, "SELECT feature_version, row_counts, split_cutoffs FROM meta.feature_registry"
                               " ORDER BY created_at DESC, run_id DESC LIMIT 1"),
    }
    if not labels:
        return found
    return {
        "orders": query(url, "SELECT order_id, customer_id, order_at, amount, status, file_sha256, line_number"
                             " FROM stg.orders ORDER BY order_id"),
        "features": query(url, "SELECT * FROM feats.customer_features ORDER BY 1, 2"),
        "labels": query(url, "SELECT * FROM feats.customer_labels ORDER BY 1, 2"),
        "splits": query(url, "SELECT customer_id, feature_time, split FROM meta.dataset_splits ORDER BY 1, 2"),
        "all_splits": query(url, "SELECT customer_id, feature_time, split"
                                 " FROM meta.dataset_split_history WHERE valid_to IS NULL ORDER BY 1, 2"),
        "training_set": query(url, "SELECT * FROM feats.training_set ORDER BY 1, 2"),
        "registry": query(url, "SELECT feature_version, row_counts, split_cutoffs FROM meta.feature_registry"
                               " ORDER BY created_at DESC, run_id DESC LIMIT 1"),
    }


def run(config: str, url: str, **kwargs: Any) -> dict[str, Any]:
    code, report = run_pipeline(config, url, **kwargs)
    assert code == EXIT_PASSED, report["errors"]
    return report


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_runs_equal_full_rebuilds(project: Project, db_factory: Callable[[], str], seed: int) -> None:
    rng = random.Random(seed)
    incremental_url = db_factory()
    named: dict[str, str] = {}  # file name -> path, in the order the config names them
    day = 0
    for day in range(6):  # a history of six days
        named[f"day{day:02d}.csv"] = write(project, f"day{day:02d}.csv", day_file(rng, day, f"{day}"))
    contents = {name: None for name in named}
    snapshots: dict[str, list[tuple]] = {}  # feature_version -> its training set when current
    published: list[str] = []
    alone: set[str] = set()  # files staged incrementally since the last full refresh
    for step in range(7):
        action = "add" if step == 0 else rng.choice(["add", "add", "remove", "replace"])
        # mostly a file an incremental run staged (removable incrementally), else any
        pick = (lambda: rng.choice(sorted(alone)) if alone and rng.random() < 0.7
                else rng.choice(list(named)))
        touched = None
        before = list(named.values())
        if action == "add" or len(named) < 3:
            action, day = "add", day + 1
            name = touched = f"day{day:02d}.csv"
            named[name] = write(project, name, day_file(rng, day, f"{day}"))
        elif action == "remove":
            name = pick()
            named.pop(name)
        else:
            name = pick()
            tag = f"{name}-fix{step}"
            rows = [tuple(line.split(",")) for line in
                    (project.root / named[name]).read_text().splitlines()[1:]]
            fixed_name = name.replace(".csv", f"-fix{step}.csv")
            named = {(fixed_name if n == name else n): (write(project, fixed_name, corrected(rng, rows, tag))
                                                         if n == name else p) for n, p in named.items()}
            touched = fixed_name
        config = project.write_config(list(named.values()), **SECTIONS)
        report = run(config, incremental_url)
        if step > 0 and (action == "add" or name in alone) and outweighs(project, before, list(named.values())):
            assert report["refresh"]["full"] is True and "outweigh" in report["refresh"]["reason"], report["refresh"]
        elif step > 0 and (action == "add" or name in alone):
            # incremental: only the new file (if any) was validated and modeled; a removed
            # or replaced file that an incremental run had staged holds only its orders
            assert report["refresh"]["full"] is False, (action, report["refresh"])
            validate = next(s for s in report["stages"] if s["stage"] == "validate")
            newest = (project.root / named[touched]).read_text().count("\n") - 1 if touched else 0
            assert validate["read"] == newest  # the records checked (it wrote none: none quarantined)
        if report["refresh"]["full"]:
            alone = set(named) if len(named) == 1 else set()
        else:
            alone = (alone - {name}) | ({touched} if touched else set())
        full_url = db_factory()
        run(config, full_url)
        incremental, rebuilt = state(incremental_url), state(full_url)
        for key in rebuilt:
            assert incremental[key] == rebuilt[key], f"seed {seed}, step {step} ({action}): {key} differs"
        # the registry's order count (kept per staged file, not counted) is the real one
        assert incremental["registry"][0][1]["stg_orders"] == len(incremental["orders"])
        version = incremental["registry"][0][0]
        snapshots.setdefault(version, incremental["training_set"])
        if not published or published[-1] != version:
            published.append(version)
        # every retained version reads back as it was; older ones are marked dropped
        retained = [v for (v,) in query(incremental_url, "SELECT feature_version FROM meta.feature_versions"
                                                         " WHERE dropped_at IS NULL ORDER BY version_number")]
        assert len(retained) == min(3, len(published))
        for kept in retained:
            rows = query(incremental_url, "SELECT customer_id, feature_time, orders_1d, revenue_1d, orders_3d,"
                                          " revenue_3d, days_since_last_order, repeat_1d, revenue_next_1d, split,"
                                          " feature_version FROM feats.training_set_versions"
                                          " WHERE feature_version = %s ORDER BY 1, 2", (kept,))
            assert rows == snapshots[kept], f"version {kept[:12]} changed after it was published"
        dropped = query(incremental_url, "SELECT count(*) FROM meta.feature_versions WHERE dropped_at IS NOT NULL")
        assert dropped == [(max(0, len(published) - 3),)]
    assert contents  # the history files were written


def test_a_file_with_an_order_staged_already_turns_the_run_into_a_full_refresh(
    project: Project, db_factory: Callable[[], str]
) -> None:
    """An order delivered again in a new file: the incremental run cannot add to a staged
    order, so it validates and stages everything, and equals a full rebuild."""
    first = write(project, "a.csv", [("O1", "C01", "2025-03-01T10:00:00+00:00", "10.00", "completed"),
                                     ("O2", "C02", "2025-03-02T10:00:00+00:00", "20.00", "completed")])
    again = write(project, "b.csv", [("O2", "C02", "2025-03-02T10:00:00+00:00", "20.00", "completed"),
                                     ("O3", "C01", "2025-03-05T10:00:00+00:00", "30.00", "completed")])
    url, full_url = db_factory(), db_factory()
    sections = {"features": SECTIONS["features"]}  # two orders: too few to purge splits
    run(project.write_config([first], **sections), url)
    config = project.write_config([first, again], **sections)
    report = run(config, url)
    assert report["refresh"]["full"] is True
    assert "O2" in report["refresh"]["reason"]
    run(config, full_url)
    assert state(url, labels=False) == state(full_url, labels=False)


def test_an_unchanged_rerun_publishes_nothing_new(project: Project, db_url: str) -> None:
    path = write(project, "a.csv", day_file(random.Random(7), 5, "a"))
    config = project.write_config([path], **SECTIONS)
    first = run(config, db_url)
    second = run(config, db_url)
    assert second["refresh"]["full"] is False
    assert first["feature_version"] == second["feature_version"]
    assert query(db_url, "SELECT count(*) FROM meta.feature_versions") == [(1,)]
    assert query(db_url, "SELECT version_number FROM meta.feature_registry ORDER BY created_at") == [(1,), (1,)]


def test_full_refresh_rebuilds_and_writes_only_what_changed(project: Project, db_url: str) -> None:
    path = write(project, "a.csv", day_file(random.Random(8), 5, "a"))
    config = project.write_config([path], **SECTIONS)
    run(config, db_url)
    rows_before = query(db_url, "SELECT count(*) FROM feats.customer_feature_history")
    report = run(config, db_url, full_refresh=True)
    assert report["refresh"] == {"full": True, "reason": "--full-refresh", "version_number": 2, "published_version": 1}
    # the same data: nothing written, nothing published
    assert query(db_url, "SELECT count(*) FROM feats.customer_feature_history") == rows_before
    assert query(db_url, "SELECT count(*) FROM meta.feature_versions") == [(1,)]


def test_a_corrected_or_removed_file_is_incremental_when_it_alone_held_its_orders(
    project: Project, db_factory: Callable[[], str]
) -> None:
    """The daily case: a history file, two days added, then yesterday's file corrected and
    sent again, then a day withdrawn, then the history itself replaced. Each file held
    only its own orders, so each run is incremental (only the new file validated), except
    the last: the corrected history outweighs the day that stays, so it goes the full way.
    After each the state equals a rebuild of the same named files from scratch."""
    rng = random.Random(11)
    history = [row for day in range(6) for row in day_file(rng, day, f"h{day}")]
    files = {"history.csv": write(project, "history.csv", history)}
    url = db_factory()
    run(project.write_config(list(files.values()), **SECTIONS), url)
    day6, day7 = day_file(rng, 6, "d6"), day_file(rng, 7, "d7")
    steps = [
        ("add day 6", lambda: files.update({"day06.csv": write(project, "day06.csv", day6)}), len(day6)),
        ("add day 7", lambda: files.update({"day07.csv": write(project, "day07.csv", day7)}), len(day7)),
        # yesterday's file again, corrected: an amount fixed, an order dropped, one added
        ("correct day 7", lambda: files.update({"day07.csv": write(project, "day07-fix.csv",
                                                                   corrected(rng, day7, "d7"))}), len(day7)),
        # the observed end moves back a day: labels and cut-offs follow
        ("withdraw day 7", lambda: files.pop("day07.csv"), 0),
        ("correct the history", lambda: files.update({"history.csv": write(project, "history-fix.csv",
                                                                           corrected(rng, history, "h"))}),
         len(history)),
    ]
    for what, change, validated in steps:
        before = list(files.values())
        change()
        config = project.write_config(list(files.values()), **SECTIONS)
        report = run(config, url)
        if outweighs(project, before, list(files.values())):  # the corrected history outweighs a day
            assert report["refresh"]["full"] is True and "outweigh" in report["refresh"]["reason"], what
            validated = len(history) + len(day6)  # every named file: day 7 was withdrawn
        else:
            assert report["refresh"]["full"] is False, (what, report["refresh"])
        assert next(s for s in report["stages"] if s["stage"] == "validate")["read"] == validated, what
        rebuilt_url = db_factory()
        run(config, rebuilt_url)
        incremental, rebuilt = state(url), state(rebuilt_url)
        for key in rebuilt:
            assert incremental[key] == rebuilt[key], f"{what}: {key} differs"
    # the withdrawn day's orders are gone, the corrected amount is in
    assert not query(url, "SELECT 1 FROM stg.orders WHERE order_id LIKE 'Od7-%'")


def test_a_batch_that_outweighs_the_history_goes_the_full_way(project: Project, db_factory: Callable[[], str]) -> None:
    """A first big load after a small sample: the new file holds more bytes than the staged
    one, so the run is a full refresh (every named file validated), with the reason, and its
    state equals a rebuild; a small day after it is incremental again."""
    rng = random.Random(5)
    small = write(project, "sample.csv", day_file(rng, 0, "s"))
    big_rows = [row for day in range(1, 9) for row in day_file(rng, day, f"b{day}")]
    big = write(project, "big.csv", big_rows)
    url = db_factory()
    run(project.write_config([small], **SECTIONS), url)
    config = project.write_config([small, big], **SECTIONS)
    report = run(config, url)
    sizes = [(project.root / p).stat().st_size for p in (small, big)]
    assert sizes[1] > sizes[0]  # the premise, from the files themselves
    assert report["refresh"]["full"] is True
    assert report["refresh"]["reason"].startswith(f"the 1 new file(s) ({sizes[1]:,} bytes) outweigh the {sizes[0]:,}")
    rows_in_both = (project.root / small).read_text().count("\n") - 1 + len(big_rows)
    assert next(s for s in report["stages"] if s["stage"] == "validate")["read"] == rows_in_both
    rebuilt = db_factory()
    run(config, rebuilt)
    assert state(url) == state(rebuilt)
    day = write(project, "day09.csv", day_file(rng, 9, "d9"))
    report = run(project.write_config([small, big, day], **SECTIONS), url)
    assert report["refresh"]["full"] is False, report["refresh"]
