"""What a full refresh does to go faster keeps everything else as it was, on a real PostgreSQL.

- A first load empties stg.orders and the history tables anew, drops their keys and indexes and
  builds them after the rows (sql/macros/bulk_load.sql): afterwards every table has exactly the
  keys, indexes and constraints a freshly migrated database gives it. A load ten times what the
  tables hold (a big file after the sample) rebuilds them too, and keeps the older versions.
- The labels run beside the features on a full refresh (scripts/pipeline/runner.py,
  run_beside): the report says so, and the labels are those a daily run, which runs them one
  after the other, computes for the same orders (checked against a brute-force count in Python).
- The embedded server's tuning block gains the settings a newer version adds, once.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from scripts.bench import generate_orders
from scripts.db import server
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import query

TABLES = ("stg.orders", "feats.customer_feature_history", "feats.customer_label_history", "meta.dataset_split_history")
SCHEMA = """
SELECT c.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid
WHERE i.indrelid = ANY(%s::regclass[])
UNION ALL
SELECT c.relname, k.conname, k.contype::text || ' ' || pg_get_constraintdef(k.oid)
FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
WHERE k.conrelid = ANY(%s::regclass[])
ORDER BY 1, 2, 3
"""


def schema(url: str) -> list[tuple]:
    return query(url, SCHEMA, (list(TABLES), list(TABLES)))


def test_a_first_load_leaves_every_key_index_and_constraint_as_migrated(project, db_factory):
    generate_orders.generate(project.root / "data" / "raw" / "orders.csv", rows=3_000, seed=5, days=400)
    config = project.write_config(labels={"horizon_days": 30})
    migrated, loaded = db_factory(), db_factory()
    assert run_pipeline(config, migrated, through="migrate")[0] == EXIT_PASSED
    code, report = run_pipeline(config, loaded)
    assert code == EXIT_PASSED, report.get("errors")
    assert query(loaded, "SELECT count(*) FROM stg.orders")[0][0] == 3_000
    assert schema(loaded) == schema(migrated)
    # the primary key still refuses a second row with the same order id
    assert any(kind.startswith("p PRIMARY KEY") for table, _, kind in schema(loaded) if table == "orders")


def brute_force_labels(path: Path, horizon_days: int) -> dict[tuple[str, dt.datetime], int]:
    """repeat within H days after each (customer, instant), counted in Python."""
    with path.open(encoding="utf-8") as handle:
        # every status counts (no features.exclude_statuses); the times are UTC
        rows = [(r["customer_id"], dt.datetime.fromisoformat(r["order_ts"]).replace(tzinfo=dt.timezone.utc))
                for r in csv.DictReader(handle)]
    by_customer: dict[str, list[dt.datetime]] = {}
    for customer, at in rows:
        by_customer.setdefault(customer, []).append(at)
    horizon = dt.timedelta(days=horizon_days)
    return {(customer, t): int(any(t < u <= t + horizon for u in times))
            for customer, times in by_customer.items() for t in set(times)}


def test_a_full_refresh_runs_the_labels_beside_the_features_with_the_same_labels(project, db_url):
    path = project.root / "data" / "raw" / "orders.csv"
    generate_orders.generate(path, rows=2_000, seed=9, days=400)
    config = project.write_config(labels={"horizon_days": 30})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["labels"].get("beside") == "features"
    assert stages["features"].get("beside") is None
    assert [s["stage"] for s in report["stages"]].index("labels") == [s["stage"] for s in report["stages"]].index(
        "features") + 1
    both = query(db_url, "SELECT stage, status FROM meta.run_stages WHERE run_id = %s AND stage IN ('features', 'labels')"
                         " ORDER BY stage", (report["run_id"],))
    assert both == [("features", "ok"), ("labels", "ok")]
    # censored rows (their window reaches past the data) show NULL: only the others are labelled
    found = {(c, t): int(repeat) for c, t, repeat in
             query(db_url, "SELECT customer_id, feature_time, repeat_30d FROM feats.customer_labels"
                           " WHERE repeat_30d IS NOT NULL")}
    expected = brute_force_labels(path, 30)
    assert found.keys() <= expected.keys() and len(found) > 1_000
    assert {key: found[key] for key in found} == {key: expected[key] for key in found}


def test_the_tuning_block_gains_only_the_missing_settings(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("port = 5432\n" + server.TUNING_MARKER + "\nshared_buffers = '1GB'\n", encoding="utf-8")
    server._tune(tmp_path)
    text = conf.read_text(encoding="utf-8")
    assert text.count("shared_buffers = ") == 1
    assert "wal_level = 'minimal'" in text and "max_wal_senders = '0'" in text
    server._tune(tmp_path)
    assert conf.read_text(encoding="utf-8") == text


VERSION_ROWS = """
SELECT to_jsonb(h) - 'valid_to' FROM {table} AS h
WHERE h.valid_from <= %(v)s AND (h.valid_to IS NULL OR h.valid_to > %(v)s)
ORDER BY h.customer_id, h.feature_time
"""


def index_oids(url: str) -> set[int]:
    return {row[0] for row in query(url, "SELECT indexrelid::oid::bigint FROM pg_index WHERE indrelid = ANY(%s::regclass[])",
                                    (list(TABLES),))}


def version_rows(url: str, version: int) -> dict[str, list]:
    return {table: query(url, VERSION_ROWS.format(table=table), {"v": version}) for table in TABLES[1:]}


def test_a_first_big_load_after_a_sample_builds_the_keys_after_the_rows_and_keeps_the_sample(project, db_factory):
    """A load ten times what is staged (the sample, then a big file in its place) drops and
    rebuilds the tables' keys and indexes around its rows, as a first load does: afterwards
    every key and index is as migrated, the new version equals a full run of the big file on
    an empty database, and the sample's version still reads as it did."""
    generate_orders.generate(project.root / "data" / "raw" / "sample.csv", rows=200, seed=3, days=400)
    generate_orders.generate(project.root / "data" / "raw" / "big.csv", rows=4_000, seed=4, days=400)
    sections = {"labels": {"horizon_days": 30}}
    url, migrated, fresh = db_factory(), db_factory(), db_factory()
    assert run_pipeline(project.write_config("data/raw/sample.csv", **sections), url)[0] == EXIT_PASSED
    sample_version, sample_indexes = version_rows(url, 1), index_oids(url)
    big = project.write_config("data/raw/big.csv", **sections)
    code, report = run_pipeline(big, url)
    assert code == EXIT_PASSED, report.get("errors")
    assert report["refresh"]["full"] is True
    assert not index_oids(url) & sample_indexes  # every index built anew after the rows
    assert run_pipeline(big, migrated, through="migrate")[0] == EXIT_PASSED
    assert schema(url) == schema(migrated)
    assert version_rows(url, 1) == sample_version and sample_version["feats.customer_feature_history"]
    assert run_pipeline(big, fresh)[0] == EXIT_PASSED
    strip = {"valid_from"}  # the big load is version 2 here, 1 on the empty database
    assert ({t: [{k: v for k, v in r[0].items() if k not in strip} for r in rows] for t, rows in version_rows(url, 2).items()}
            == {t: [{k: v for k, v in r[0].items() if k not in strip} for r in rows] for t, rows in version_rows(fresh, 1).items()})
    # a small day after it keeps every index
    built = index_oids(url)
    with (project.root / "data" / "raw" / "big.csv").open(encoding="utf-8") as handle:
        customers = sorted({row["customer_id"] for row in csv.DictReader(handle)})[:20]
    project.write_csv("day.csv", "order_id,customer_id,order_ts,amount,status\n" + "".join(
        f"D{i},{customer},2025-02-05 10:{i:02d}:00,12.50,completed\n" for i, customer in enumerate(customers)))
    assert run_pipeline(project.write_config(["data/raw/big.csv", "data/raw/day.csv"], **sections), url)[0] == EXIT_PASSED
    assert index_oids(url) == built
