"""features.define beyond the features stage: the defined columns are exported with their
types and values, used by make train as model inputs, profiled (and so drift-checked), and
returned by make retrieve."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from scripts.run import EXIT_PASSED, run_pipeline
from scripts.serve import export, retrieve, train
from tests.helpers import REPO_ROOT, query

DEFINE = [
    {"name": "basket", "agg": "avg", "column": "amount", "windows": ["30d", "lifetime"]},
    {"name": "amounts", "agg": "count_distinct", "column": "amount", "windows": ["30d"]},
    {"name": "since_first", "agg": "time_since_first"},
    {"name": "share", "ratio": ["amounts_30d", "orders_30d"]},
]
DEFINED = ["basket_30d", "basket_lifetime", "amounts_30d", "since_first", "share"]


@pytest.fixture
def defined_run(project, db_url, monkeypatch):
    monkeypatch.setattr(train, "LOGISTIC_GRID", [{"C": 1.0}])
    monkeypatch.setattr(train, "BOOSTING_GRID", [{"learning_rate": 0.1, "max_leaf_nodes": 15,
                                                  "l2_regularization": 0.0}])
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config(labels={"horizon_days": 30}, features={"windows_days": [7, 30], "define": DEFINE})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    return config


def test_export_writes_the_defined_columns_with_their_types_and_values(defined_run, db_url):
    manifest = export.export(defined_run, database_url=db_url)
    columns = {c["name"]: c for c in manifest["columns"]}
    assert [name for name in columns if name in DEFINED] == DEFINED
    assert {name: (columns[name]["postgres_type"], columns[name]["role"]) for name in DEFINED} == {
        "basket_30d": ("numeric", "feature"), "basket_lifetime": ("numeric", "feature"),
        "amounts_30d": ("bigint", "feature"), "since_first": ("integer", "feature"), "share": ("numeric", "feature")}
    table = pq.read_table(manifest["path"] + "/split=train/part-0.parquet", partitioning=None)
    exported = list(zip(*(table.column(name).to_pylist() for name in ["customer_id", *DEFINED])))
    stored = query(db_url, f"SELECT customer_id, {', '.join(DEFINED)} FROM feats.training_set WHERE split = 'train'"
                           " ORDER BY customer_id COLLATE \"C\", feature_time")
    assert len(exported) == len(stored) > 1000
    for got, want in zip(exported, stored):
        assert got[0] == want[0] and got[3:5] == want[3:5]
        for g, w in zip(got[1:3] + got[5:], want[1:3] + want[5:]):  # numerics: the float64 nearest to each
            assert (g is None) == (w is None) and (w is None or g == float(w))


def test_train_uses_the_defined_columns_as_inputs(defined_run, db_url):
    export.export(defined_run, database_url=db_url)
    metrics = train.train(defined_run, database_url=db_url)
    assert [name for name in metrics["features"] if name in DEFINED] == DEFINED


def test_the_profile_and_retrieval_carry_the_defined_columns(defined_run, db_url, project):
    profiled = {row[0] for row in query(db_url, "SELECT DISTINCT column_name FROM meta.profiles"
                                                " WHERE subject = 'features'")}
    assert set(DEFINED) <= profiled
    entities = project.root / "entities.csv"
    entities.write_text("customer_id,as_of\nC0000006,2024-06-01T00:00:00Z\n", encoding="utf-8")
    out = project.root / "out.csv"
    assert retrieve.retrieve(defined_run, entities, out, database_url=db_url) == 1
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[-len(DEFINED):] == DEFINED
