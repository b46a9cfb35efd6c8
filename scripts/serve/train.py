"""Fit baseline models on the training set; choose on val, score once on test.

    python -m scripts.serve.train --config configs/pipeline.yaml [--feature-version V]   # make train

Target: repeat_<H>d (H = labels.horizon_days), a customer's next order within H days of a
feature row. Four models, all seeded, so the same feature_version gives the same metrics
and the same model files, byte for byte:

- base_rate: every row gets train's positive rate (a constant: ROC AUC 0.5).
- recent_order: "ordered in the last 30 days": orders_30d > 1 (the window closest to 30
  days when 30 is not configured). orders_<N>d counts the orders at feature_time too, so
  > 1 means another order within the window. Each side of the rule gets train's positive
  rate on that side as its probability.
- logistic_regression: median imputation (with a missing-value indicator), standardised
  features, L2 logistic regression; C from a small grid.
- hist_gradient_boosting: HistGradientBoostingClassifier (missing values native), a small
  grid of learning rate, leaf count and L2; each grid point's number of rounds (up to 300)
  is chosen on val as well, from its staged predictions. sklearn's own early stopping is
  off: it would hold out a random part of train.

Each fitted model is fitted on train; its hyperparameters are the grid point with the lowest
log loss on val (the first in grid order on a tie); then it is evaluated once on test.
Training runs on one thread (OpenMP and BLAS, through threadpoolctl): the boosting's model
file records its thread count, so only a fixed count gives the same bytes on any machine. The
features are the training set's feature columns (orders_<N>d, revenue_<N>d,
days_since_last_order); revenue_next_<H>d is a label and never a feature.

The data: artifacts/datasets/<pipeline>/<feature_version>/ when `make export` wrote it
(each file checked against the manifest beside the folder: scripts/serve/dataset.py), else
feats.training_set in PostgreSQL, read with the same COPY stream the export uses; both give
the same rows in the same order, and the same float64 values (exact decimals too are read
into the nearest float64), so the same metrics. Results: one row per model in
meta.model_runs, the model files and metrics.json in artifacts/models/<feature_version>/
(written to a temporary folder and renamed into place), and a table on the console.

Exit codes: 0 trained, 2 bad config or usage (no labelled training set yet: run `make all`
with `labels:` first; a split with no rows of one class), 3 runtime or database error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from scripts import config as config_mod
from scripts.config.columns import orders_window_days, window_feature_columns
from scripts.console import log
from scripts.db import migrate
from scripts.errors import EXIT_PASSED, failure
from scripts.paths import ARTIFACTS
from scripts.serve import export as export_mod
from scripts.serve import training_set
from scripts.serve.dataset import Dataset, TrainError, load_dataset
from scripts.serve.export import SPLITS

MODELS = ARTIFACTS / "models"
SEED = 20_261_127
RECENT_DAYS = 30  # the "ordered in the last 30 days" baseline's window
# Grids: small on purpose (a baseline, not a search); evaluated on val in this order.
LOGISTIC_GRID = [{"C": c} for c in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)]
BOOSTING_GRID = [
    {"learning_rate": lr, "max_leaf_nodes": leaves, "l2_regularization": l2}
    for lr in (0.05, 0.1) for leaves in (15, 31) for l2 in (0.0, 1.0)
]
BOOSTING_FIXED = {"early_stopping": False, "random_state": SEED}
# boosting rounds: each grid point is fitted with the most, and its number of rounds is
# chosen on val too, from the staged predictions (the first k trees do not depend on how
# many follow); the chosen point is then refitted with that many
BOOSTING_MAX_ITER = 300
LOGISTIC_FIXED = {"max_iter": 1000, "random_state": SEED}
KIND_TITLES = {
    "base_rate": "base rate of train",
    "recent_order": "ordered in the last {days} days",
    "logistic_regression": "logistic regression",
    "hist_gradient_boosting": "gradient-boosted trees",
}
# sklearn's log_loss clips probabilities to [eps, 1 - eps] of float64
EPS = float.fromhex("0x1.0p-52")


def check_classes(dataset: Dataset, ys: dict[str, Any]) -> None:
    """Both classes in every split: fitting needs them in train, choosing in val, scoring in test."""
    needs = {"train": "models are fitted on it", "val": "hyperparameters are chosen on it",
             "test": "models are evaluated on it"}
    for split in SPLITS:
        y = ys[split]
        if len(y) == 0:
            raise TrainError(f"{split} has no labelled rows (meta.split_cutoffs counts its purged and censored "
                             f"ones), and {needs[split]}: give it a larger share (splits.*), a shorter "
                             "labels.horizon_days, or more data")
        positives = int(y.sum())
        if positives in (0, len(y)):
            only, never = ("true", "false") if positives else ("false", "true")
            raise TrainError(f"{split}: all {len(y):,} rows have {dataset.label} = {only}, none {never}, and "
                             f"{needs[split]}: a classifier needs both classes in train, val and test; "
                             "use more data or another labels.horizon_days")


# --- metrics -------------------------------------------------------------------------------


def calibration_table(y: Any, p: Any, bins: int = 10) -> list[dict[str, Any]]:
    """Deciles of the predicted probability: each distinct prediction goes, with all its
    rows, to the decile of its middle rank, so ties are never split and distinct
    predictions merge only when they share a decile (a constant model has one bin, a
    two-valued one two). Per decile: rows, predicted (min, max, mean), observed rate."""
    import numpy as np

    values, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    middle = np.cumsum(counts) - counts / 2  # middle rank of each distinct value, in (0, n)
    deciles = np.minimum((middle * bins // len(p)).astype(np.int64), bins - 1)[inverse.ravel()]
    table = []
    for decile in np.unique(deciles):
        mask = deciles == decile
        table.append({
            "decile": int(decile) + 1,
            "rows": int(mask.sum()),
            "min_predicted": float(p[mask].min()),
            "max_predicted": float(p[mask].max()),
            "mean_predicted": float(p[mask].mean()),
            "observed_rate": float(y[mask].mean()),
        })
    return table


def evaluate(y: Any, p: Any) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


# --- models --------------------------------------------------------------------------------


def recent_order_column(features: list[str]) -> str:
    windows = sorted(days for name in features if (days := orders_window_days(name)) is not None)
    if not windows:
        raise TrainError("the training set has no orders_<N>d feature for the recent-order baseline")
    days = min(windows, key=lambda w: (abs(w - RECENT_DAYS), w))
    return window_feature_columns(days)[0].name


def fit_base_rate(x: Any, y: Any) -> dict[str, Any]:
    return {"p": float(y.mean())}


def predict_base_rate(params: dict[str, Any], x: Any) -> Any:
    import numpy as np

    return np.full(len(x), params["p"], dtype=np.float64)


def fit_recent_order(x: Any, y: Any, column: int, name: str) -> dict[str, Any]:
    rule = x[:, column] > 1
    base = float(y.mean())
    return {
        "column": name, "rule": f"{name} > 1",
        "p_if_true": float(y[rule].mean()) if rule.any() else base,
        "p_if_false": float(y[~rule].mean()) if (~rule).any() else base,
    }


def predict_recent_order(params: dict[str, Any], x: Any, column: int) -> Any:
    import numpy as np

    return np.where(x[:, column] > 1, params["p_if_true"], params["p_if_false"]).astype(np.float64)


def make_model(kind: str, params: dict[str, Any]) -> Any:
    if kind == "logistic_regression":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(**params, **LOGISTIC_FIXED)),
        ])
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**params, **BOOSTING_FIXED)


def fit_on_grid(kind: str, grid: list[dict[str, Any]], data: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Fit every grid point on train, keep the one with the lowest val log loss (for the
    boosting, each point's number of rounds too)."""
    from sklearn.metrics import log_loss

    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    tried: list[dict[str, Any]] = []
    for point in grid:
        if kind == "hist_gradient_boosting":
            model = make_model(kind, {**point, "max_iter": BOOSTING_MAX_ITER}).fit(x_train, y_train)
            losses = [float(log_loss(y_val, p[:, 1], labels=[0, 1])) for p in model.staged_predict_proba(x_val)]
            rounds = min(range(len(losses)), key=lambda i: (losses[i], i)) + 1
            tried.append({"params": {**point, "max_iter": rounds}, "val_log_loss": losses[rounds - 1]})
        else:
            model = make_model(kind, point).fit(x_train, y_train)
            tried.append({"params": point, "val_log_loss": float(log_loss(y_val, model.predict_proba(x_val)[:, 1],
                                                                          labels=[0, 1]))})
    best = min(tried, key=lambda t: t["val_log_loss"])  # the first in grid order on a tie
    model = make_model(kind, best["params"]).fit(x_train, y_train)
    log(f"  {kind}: {len(grid)} grid points fitted on train; chosen on val: {format_params(best['params'])}")
    return {"params": best["params"], "model": model, "grid": tried}


SHORT_NAMES = {"learning_rate": "rate", "max_leaf_nodes": "leaves", "l2_regularization": "l2", "max_iter": "rounds"}


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{SHORT_NAMES.get(k, k)}={v}" for k, v in params.items())


def train_all(dataset: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every model: its params, val and test metrics and, for fitted ones, the estimator."""
    data = {split: dataset.xy(split) for split in SPLITS}
    check_classes(dataset, {split: data[split][1] for split in SPLITS})
    x_train, y_train = data["train"]
    recent = recent_order_column(dataset.features)
    recent_index = dataset.features.index(recent)
    results: dict[str, dict[str, Any]] = {}

    base = fit_base_rate(x_train, y_train)
    results["base_rate"] = {"params": base, "predict": lambda x: predict_base_rate(base, x)}
    rule = fit_recent_order(x_train, y_train, recent_index, recent)
    results["recent_order"] = {"params": rule, "predict": lambda x: predict_recent_order(rule, x, recent_index)}
    for kind, grid, fixed in (("logistic_regression", LOGISTIC_GRID, LOGISTIC_FIXED),
                              ("hist_gradient_boosting", BOOSTING_GRID, BOOSTING_FIXED)):
        fitted = fit_on_grid(kind, grid, data)
        model = fitted["model"]
        results[kind] = {
            "params": {**fitted["params"], **fixed, "grid": fitted["grid"], "features": dataset.features},
            "estimator": model,
            "predict": lambda x, model=model: model.predict_proba(x)[:, 1],
        }
    for kind, result in results.items():
        val_p = result["predict"](data["val"][0])
        result["val"] = evaluate(data["val"][1], val_p)
        test_p = result["predict"](data["test"][0])  # the one look at test
        result["test"] = {**evaluate(data["test"][1], test_p),
                          "calibration": calibration_table(data["test"][1], test_p)}
    counts = {split: {"rows": int(len(data[split][1])), "positives": int(data[split][1].sum())} for split in SPLITS}
    return results, counts


# --- outputs -------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    import numpy
    import pyarrow
    import scipy
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "pyarrow": pyarrow.__version__, "python": ".".join(map(str, sys.version_info[:3]))}


def write_models(dataset: Dataset, results: dict[str, Any], counts: dict[str, Any], temp: Path) -> dict[str, Any]:
    """Model files and metrics.json into ``temp``; returns metrics.json's content."""
    import joblib

    temp.mkdir(parents=True)
    models: dict[str, Any] = {}
    for kind, result in results.items():
        entry: dict[str, Any] = {"params": result["params"], "val": result["val"], "test": result["test"],
                                 "model_file": None, "model_sha256": None}
        if "estimator" in result:
            path = temp / f"{kind}.joblib"
            joblib.dump(result["estimator"], path)
            entry["model_file"] = path.name
            entry["model_sha256"] = training_set.sha256_file(path)
        models[kind] = entry
    metrics = {
        "feature_version": dataset.feature_version,
        "label": dataset.label,
        "features": dataset.features,
        "seed": SEED,
        "selection": "each fitted model's hyperparameters: the lowest log loss on val; test evaluated once",
        "splits": counts,
        "models": models,
        "libraries": library_versions(),
    }
    (temp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metrics


def record_runs(conn: psycopg.Connection, training_id: str, dataset: Dataset, metrics: dict[str, Any],
                target: Path) -> None:
    for kind, entry in metrics["models"].items():
        conn.execute(
            "INSERT INTO meta.model_runs (training_id, feature_version, label_column, model_kind, params, metrics,"
            " model_path, model_sha256, data_source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (training_id, dataset.feature_version, dataset.label, kind,
             json.dumps(entry["params"], sort_keys=True),
             json.dumps({"val": entry["val"], "test": entry["test"], "splits": metrics["splits"],
                         "libraries": metrics["libraries"]}, sort_keys=True),
             str(target / entry["model_file"]) if entry["model_file"] else None, entry["model_sha256"],
             dataset.source),
        )


def print_table(metrics: dict[str, Any], results: dict[str, Any]) -> None:
    recent = metrics["models"]["recent_order"]["params"]["column"]
    days = orders_window_days(recent)
    header = (f"{'model':<32} {'chosen on val / fitted on train':<44} {'val loss':>8}  "
              f"{'test AUC':>8} {'test AP':>8} {'test loss':>9} {'Brier':>7}")
    lines = [header, "-" * len(header)]
    for kind, entry in metrics["models"].items():
        params = entry["params"]
        if kind == "base_rate":
            shown = f"p = {params['p']:.4f}"
        elif kind == "recent_order":
            shown = f"{params['rule']}: p = {params['p_if_true']:.4f} / {params['p_if_false']:.4f}"
        else:
            shown = format_params({k: params[k] for k in params["grid"][0]["params"]})
        title = KIND_TITLES[kind].format(days=days)
        test, val = entry["test"], entry["val"]
        lines.append(f"{title:<32} {shown:<44} {val['log_loss']:>8.4f}  {test['roc_auc']:>8.4f} "
                     f"{test['average_precision']:>8.4f} {test['log_loss']:>9.4f} {test['brier']:>7.4f}")
    log("\n".join(lines))
    for kind in ("logistic_regression", "hist_gradient_boosting"):
        log(f"calibration on test, {KIND_TITLES[kind]} (deciles of the predicted probability):")
        log(f"  {'decile':>6} {'rows':>9} {'predicted':>9} {'observed':>9}")
        for row in metrics["models"][kind]["test"]["calibration"]:
            log(f"  {row['decile']:>6} {row['rows']:>9,} {row['mean_predicted']:>9.4f} {row['observed_rate']:>9.4f}")


def train(config_path: str | Path, feature_version: str | None = None, database_url: str | None = None,
          datasets_root: Path = export_mod.DATASETS, models_root: Path = MODELS) -> dict[str, Any]:
    """Train every model of one feature_version; return metrics.json's content (with path)."""
    config = config_mod.load(config_path)
    if config.labels is None:
        raise TrainError(f"{config.path}: labels: no label is configured; add `labels: {{horizon_days: 30}}` "
                         "and run `make all` first")
    conn = export_mod.open_snapshot(config, database_url)
    try:
        started = time.perf_counter()
        dataset = load_dataset(conn, config, feature_version, datasets_root)
        conn.rollback()  # the snapshot's work is done
        sizes = ", ".join(f"{s} {t.num_rows:,}" for s, t in dataset.tables.items())
        log(f"train feature_version {dataset.feature_version}: label {dataset.label}; "
            f"from {dataset.where} ({dataset.source}): {sizes} rows")
        from threadpoolctl import threadpool_limits

        # one thread (OpenMP and BLAS): a model file then has the same bytes on any machine
        # (the boosting's pickle records its thread count), and small fits run faster
        with threadpool_limits(limits=1):
            results, counts = train_all(dataset)
        target = models_root / dataset.feature_version
        models_root.mkdir(parents=True, exist_ok=True)
        temp = models_root / f".{dataset.feature_version}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        training_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        try:
            metrics = write_models(dataset, results, counts, temp)
            conn.read_only = False
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            conn.autocommit = True
            migrate.apply_pending(conn, log=log)  # meta.model_runs (V008) on a database made before it
            with conn.transaction():
                record_runs(conn, training_id, dataset, metrics, target)
                export_mod.replace_dir(temp, target)  # the rows commit only once the files are in place
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    finally:
        conn.close()
    print_table(metrics, results)
    log(f"models and metrics: {target}/ ; meta.model_runs training_id {training_id} "
        f"({time.perf_counter() - started:.1f} s)")
    return {**metrics, "path": str(target), "training_id": training_id, "data_source": dataset.source}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.serve.train", description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 trained, 2 bad config or usage, 3 runtime or database error.",
    )
    config_mod.add_config_argument(parser)
    parser.add_argument("--feature-version", help="the version to train on (default: the latest registered)")
    parser.add_argument("--datasets", default=str(export_mod.DATASETS),
                        help="where make export wrote <pipeline>/<feature_version>/ (default: %(default)s)")
    parser.add_argument("--models", default=str(MODELS), help="where the version's models go (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        train(args.config, args.feature_version, datasets_root=Path(args.datasets), models_root=Path(args.models))
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one message, an exit code
        return failure(exc)
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
