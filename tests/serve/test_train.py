"""make train: baseline models on the training set, against brute-force metrics.

Contract under test: the metrics recorded (metrics.json, meta.model_runs) are the ROC AUC,
average precision, log loss and Brier score of each model's test predictions, computed here
again from first principles in plain Python on the rows read straight from PostgreSQL; the
naive baselines are what their definitions say; the saved model files are the models that
were scored; each fitted model's hyperparameters are the val-best of its grid; the same
feature_version gives the same metrics and model bytes, from Parquet or from PostgreSQL, and
the same model inputs from a float64 export, an exact-decimal one or PostgreSQL; an export is
read from artifacts/datasets/<pipeline>/<feature_version>/ only when its manifest beside the
folder matches every file; training before any labelled data, or on a split with one class,
exits 2 and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import joblib
import numpy as np
import psycopg
import pyarrow as pa
import pytest

from scripts import config as config_mod
from scripts import errors
from scripts.serve import dataset, export, train
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import REPO_ROOT, query

LABELS = {"horizon_days": 30}
SPLITS = ("train", "val", "test")
FEATURES = ["orders_7d", "revenue_7d", "orders_30d", "revenue_30d", "days_since_last_order"]


@pytest.fixture
def small_grids(monkeypatch):
    """One or two grid points per model: the metric checks do not need the full grids."""
    monkeypatch.setattr(train, "LOGISTIC_GRID", [{"C": 0.1}, {"C": 1.0}])
    monkeypatch.setattr(train, "BOOSTING_GRID", [{"learning_rate": 0.1, "max_leaf_nodes": 15,
                                                  "l2_regularization": 0.0}])


def sample_project(project, db_url, labels=LABELS) -> str:
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config(labels=labels) if labels else project.write_config()
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    return config


def rows(db_url: str, split: str) -> list[tuple]:
    """(features..., label) of a split, straight from PostgreSQL, in the export's order."""
    return query(db_url, f"SELECT {', '.join(FEATURES)}, repeat_30d FROM feats.training_set WHERE split = %s"
                         " ORDER BY customer_id COLLATE \"C\", feature_time", (split,))


# --- metrics from first principles ------------------------------------------------------------


def auc(y: list[int], p: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting one half: every pair."""
    pos = [s for s, t in zip(p, y) if t]
    neg = [s for s, t in zip(p, y) if not t]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def average_precision(y: list[int], p: list[float]) -> float:
    """Σ (recall_k - recall_{k-1}) × precision_k over the distinct scores, highest first."""
    total_pos = sum(y)
    ap, last_recall = 0.0, 0.0
    for threshold in sorted(set(p), reverse=True):
        tp = sum(1 for s, t in zip(p, y) if s >= threshold and t)
        fp = sum(1 for s, t in zip(p, y) if s >= threshold and not t)
        recall = tp / total_pos
        ap += (recall - last_recall) * (tp / (tp + fp))
        last_recall = recall
    return ap


def log_loss(y: list[int], p: list[float]) -> float:
    eps = 2.0 ** -52  # float64's machine epsilon: sklearn clips probabilities to [eps, 1 - eps]
    p = [min(max(q, eps), 1 - eps) for q in p]
    return -sum(math.log(q) if t else math.log(1 - q) for q, t in zip(p, y)) / len(y)


def brier(y: list[int], p: list[float]) -> float:
    return sum((q - t) ** 2 for q, t in zip(p, y)) / len(y)


def assert_metrics(recorded: dict, y: list[int], p: list[float]) -> None:
    assert recorded["rows"] == len(y) and recorded["positives"] == sum(y)
    assert recorded["roc_auc"] == pytest.approx(auc(y, p), abs=1e-12)
    assert recorded["average_precision"] == pytest.approx(average_precision(y, p), abs=1e-12)
    assert recorded["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-9)
    assert recorded["brier"] == pytest.approx(brier(y, p), rel=1e-9)


# --- tests ------------------------------------------------------------------------------------


def test_baseline_metrics_equal_a_brute_force_computation(project, db_url, small_grids):
    config = sample_project(project, db_url)
    result = train.train(config, database_url=db_url)
    assert result["data_source"] == "postgresql"
    data = {split: rows(db_url, split) for split in SPLITS}
    y = {split: [int(r[-1]) for r in data[split]] for split in SPLITS}
    models = result["models"]

    # base rate: train's share of positives, for everyone
    base = Fraction(sum(y["train"]), len(y["train"]))
    assert models["base_rate"]["params"]["p"] == pytest.approx(float(base), abs=1e-15)
    for split in ("val", "test"):
        assert_metrics(models["base_rate"][split], y[split], [float(base)] * len(y[split]))
    assert models["base_rate"]["test"]["roc_auc"] == 0.5

    # ordered in the last 30 days: orders_30d > 1 (the row's own order counts), each side
    # scored with train's rate on that side
    recent = FEATURES.index("orders_30d")
    rule = {split: [r[recent] > 1 for r in data[split]] for split in SPLITS}
    side = {flag: Fraction(sum(t for t, f in zip(y["train"], rule["train"]) if f == flag),
                           sum(1 for f in rule["train"] if f == flag)) for flag in (True, False)}
    params = models["recent_order"]["params"]
    assert (params["column"], params["rule"]) == ("orders_30d", "orders_30d > 1")
    assert params["p_if_true"] == pytest.approx(float(side[True]), abs=1e-15)
    assert params["p_if_false"] == pytest.approx(float(side[False]), abs=1e-15)
    for split in ("val", "test"):
        assert_metrics(models["recent_order"][split], y[split], [float(side[f]) for f in rule[split]])
    # its calibration table: the two sides, each with its observed rate on test
    table = models["recent_order"]["test"]["calibration"]
    assert sorted((row["rows"], row["mean_predicted"], row["observed_rate"]) for row in table) == sorted(
        (sum(1 for f in rule["test"] if f == flag), pytest.approx(float(side[flag])),
         pytest.approx(sum(t for t, f in zip(y["test"], rule["test"]) if f == flag)
                       / sum(1 for f in rule["test"] if f == flag)))
        for flag in (True, False))

    # the fitted models: the saved file is the model scored; its metrics recomputed here
    for kind in ("logistic_regression", "hist_gradient_boosting"):
        path = Path(result["path"]) / models[kind]["model_file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == models[kind]["model_sha256"]
        model = joblib.load(path)
        for split in ("val", "test"):
            x = np.array([[np.nan if v is None else float(v) for v in r[:-1]] for r in data[split]])
            assert_metrics(models[kind][split], y[split], [float(q) for q in model.predict_proba(x)[:, 1]])
        table = models[kind]["test"]["calibration"]
        assert sum(row["rows"] for row in table) == len(y["test"])
        assert [row["decile"] for row in table] == sorted({row["decile"] for row in table})


def test_hyperparameters_are_the_val_best_of_each_grid(project, db_url):
    config = sample_project(project, db_url)
    result = train.train(config, database_url=db_url)
    for kind, grid in (("logistic_regression", train.LOGISTIC_GRID), ("hist_gradient_boosting", train.BOOSTING_GRID)):
        params = result["models"][kind]["params"]
        tried = params["grid"]
        assert [{k: t["params"][k] for k in grid[0]} for t in tried] == grid
        best = min(tried, key=lambda t: t["val_log_loss"])
        assert {k: params[k] for k in best["params"]} == best["params"]
        # the refitted model scores on val what the search saw (for the boosting: its first
        # max_iter rounds, read from the staged predictions of the longest fit)
        assert result["models"][kind]["val"]["log_loss"] == pytest.approx(best["val_log_loss"], abs=1e-12)
        if kind == "hist_gradient_boosting":
            assert all(1 <= t["params"]["max_iter"] <= train.BOOSTING_MAX_ITER for t in tried)
        assert params["features"] == FEATURES  # revenue_next_30d, a label, is no feature


def test_same_version_same_metrics_and_model_bytes_from_postgresql_or_parquet(project, db_url):
    config = sample_project(project, db_url)
    first = train.train(config, database_url=db_url)  # no export yet: read from PostgreSQL
    folder = Path(first["path"])
    first_files = {p.name: p.read_bytes() for p in folder.iterdir()}
    manifest = export.export(config, database_url=db_url)
    assert Path(manifest["path"]) == Path("artifacts/datasets/project") / first["feature_version"]
    second = train.train(config, database_url=db_url)  # now from the exported Parquet
    assert (first["data_source"], second["data_source"]) == ("postgresql", "parquet")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first_files  # metrics.json too
    assert set(first_files) == {"metrics.json", "logistic_regression.joblib", "hist_gradient_boosting.joblib"}

    runs = query(db_url, "SELECT training_id, feature_version, label_column, model_kind, params, metrics,"
                         " model_path, model_sha256, data_source FROM meta.model_runs ORDER BY model_run_id")
    assert len(runs) == 8
    assert [r[0] for r in runs] == [first["training_id"]] * 4 + [second["training_id"]] * 4
    assert {r[1] for r in runs} == {first["feature_version"]} and {r[2] for r in runs} == {"repeat_30d"}
    assert [r[3] for r in runs[:4]] == ["base_rate", "recent_order", "logistic_regression",
                                        "hist_gradient_boosting"]
    assert [r[8] for r in runs] == ["postgresql"] * 4 + ["parquet"] * 4
    for a, b in zip(runs[:4], runs[4:]):
        assert a[4] == b[4] and a[5] == b[5] and a[7] == b[7]  # params, metrics, sha256
    metrics = json.loads(first_files["metrics.json"])
    for run in runs[:4]:
        kind = run[3]
        assert run[5]["test"] == metrics["models"][kind]["test"]
        if kind in ("base_rate", "recent_order"):
            assert run[6] is None and run[7] is None
        else:
            assert run[7] == hashlib.sha256(first_files[f"{kind}.joblib"]).hexdigest()
            assert Path(run[6]) == folder / f"{kind}.joblib"


def test_before_any_labelled_data_it_exits_2_and_writes_nothing(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    labelled = project.write_config(labels=LABELS)
    assert train.main(["--config", labelled]) == errors.EXIT_USAGE  # an empty database
    assert "run `make all` first" in capsys.readouterr().err
    unlabelled = project.write_config(name="plain.yaml")
    assert run_pipeline(unlabelled, db_url)[0] == EXIT_PASSED
    assert train.main(["--config", unlabelled]) == errors.EXIT_USAGE  # a config without labels
    assert "no label is configured" in capsys.readouterr().err
    assert train.main(["--config", labelled]) == errors.EXIT_USAGE  # the database's latest run had none
    err = capsys.readouterr().err
    assert "run `make all" in err and "Traceback" not in err
    assert not Path("artifacts/models").exists() or not any(Path("artifacts/models").iterdir())
    assert query(db_url, "SELECT count(*) FROM meta.model_runs") == [(0,)]


def test_a_split_with_one_class_is_refused(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    config = sample_project(project, db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # (feats.training_set is a view: the label goes into the published label rows)
        conn.execute("UPDATE feats.customer_label_history SET repeat_30d = TRUE WHERE valid_to IS NULL"
                     " AND (customer_id, feature_time) IN"
                     " (SELECT customer_id, feature_time FROM feats.training_set WHERE split = 'val')")
    assert train.main(["--config", config]) == errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert "error: val: all" in err and "repeat_30d = true, none false" in err and "Traceback" not in err
    assert not Path("artifacts/models").exists() or not any(Path("artifacts/models").iterdir())
    assert query(db_url, "SELECT count(*) FROM meta.model_runs") == [(0,)]


def load(config: str, db_url: str) -> dataset.Dataset:
    loaded = config_mod.load(config)
    conn = export.open_snapshot(loaded, db_url)
    try:
        return dataset.load_dataset(conn, loaded, None, export.DATASETS)
    finally:
        conn.close()


def test_float64_and_exact_decimal_exports_and_postgresql_give_the_same_inputs(project, db_url):
    config = sample_project(project, db_url)
    expected = {split: rows(db_url, split) for split in SPLITS}
    loaded = {"postgresql": load(config, db_url)}
    export.export(config, database_url=db_url)
    loaded["float64"] = load(config, db_url)
    export.export(config, database_url=db_url, exact_decimals=True)
    loaded["exact"] = load(config, db_url)
    assert [d.source for d in loaded.values()] == ["postgresql", "parquet", "parquet"]
    assert loaded["exact"].tables["train"].schema.field("revenue_30d").type == pa.decimal128(38, 2)
    assert loaded["float64"].tables["train"].schema.field("revenue_30d").type == pa.float64()
    for split in SPLITS:
        # each value the float nearest to PostgreSQL's, NULL as NaN; the label as 0/1
        want_x = np.array([[np.nan if v is None else float(v) for v in r[:-1]] for r in expected[split]])
        want_y = np.array([int(r[-1]) for r in expected[split]])
        assert any(isinstance(v, Decimal) for r in expected[split] for v in r)
        for name, data in loaded.items():
            x, y = data.xy(split)
            assert x.dtype == np.float64 and np.array_equal(x, want_x, equal_nan=True), (name, split)
            assert np.array_equal(y, want_y), (name, split)


def test_an_export_that_no_longer_matches_its_manifest_is_refused(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    config = sample_project(project, db_url)
    manifest = export.export(config, database_url=db_url)
    folder, manifest_path = Path(manifest["path"]), Path(manifest["manifest_path"])
    assert manifest_path == folder.parent / f"{folder.name}.manifest.json"
    val = folder / "split=val" / "part-0.parquet"
    original = val.read_bytes()
    val.write_bytes(original + b"\0")
    assert train.main(["--config", config]) == errors.EXIT_RUNTIME
    assert "split=val/part-0.parquet: does not match its manifest" in capsys.readouterr().err
    val.write_bytes(original)
    # a file the manifest does not list: pandas.read_parquet(folder) would read it too
    (folder / "split=train" / "part-1.parquet").write_bytes((folder / "split=train" / "part-0.parquet").read_bytes())
    assert train.main(["--config", config]) == errors.EXIT_RUNTIME
    assert "holds 1 file(s) its manifest does not list (split=train/part-1.parquet)" in capsys.readouterr().err
    assert query(db_url, "SELECT count(*) FROM meta.model_runs") == [(0,)]
    # a folder without its manifest (the export writes it last) is no export: PostgreSQL is read
    manifest_path.unlink()
    assert load(config, db_url).source == "postgresql"


def test_an_empty_split_is_refused(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config(labels=LABELS, splits={"train": 0.85, "val": 0.0, "test": 0.15})
    assert run_pipeline(config, db_url)[0] == EXIT_PASSED
    assert train.main(["--config", config]) == errors.EXIT_USAGE
    assert "val has no labelled rows" in capsys.readouterr().err
    assert not Path("artifacts/models").exists() or not any(Path("artifacts/models").iterdir())
