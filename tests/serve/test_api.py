"""scripts/api.py: the pipeline's results as pandas DataFrames, for ML code.

Contract under test: from a plain `python -c` in a folder outside the repository (no
PYTHONPATH: the venv's .pth file puts the repository on the path), training_set() returns
every row of feats.training_set with a split column, money as float64 (the float nearest to
each stored value) or, asked, as exact decimals; it equals what pandas.read_parquet reads
from an exported folder; features_as_of() returns what feats.customer_features holds at
those instants; latest_report() is the latest finished run's report. The pipeline's database
is found by name on the embedded server; no database, nothing published, a wrong version or
another pipeline's database are ApiErrors with one message, never a psycopg traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from scripts import api
from scripts.db import server
from scripts.run import EXIT_PASSED, run_pipeline
from scripts.serve import export
from tests.helpers import REPO_ROOT, query

LABELS = {"horizon_days": 30}
SPLITS = ("train", "val", "test")
COLUMNS = ["customer_id", "feature_time", "orders_7d", "revenue_7d", "orders_30d", "revenue_30d",
           "days_since_last_order", "repeat_30d", "revenue_next_30d"]
MONEY = ["revenue_7d", "revenue_30d", "revenue_next_30d"]
FEATURES = ["orders_7d", "revenue_7d", "orders_30d", "revenue_30d", "days_since_last_order"]

# What the child process runs: the three functions, their results printed as JSON (floats in
# full, timestamps in ISO form, decimals as text), and the errors' types and messages.
CHILD = r"""
import json, sys
import pandas as pd
from scripts import api

args = json.loads(sys.argv[1])
out = {}

def records(frame):
    frame = frame.copy()
    for name, dtype in frame.dtypes.items():
        if str(dtype).startswith("datetime64"):
            frame[name] = [t.isoformat() for t in frame[name]]
        elif dtype == object:
            frame[name] = [v if v is None or isinstance(v, str) else str(v) for v in frame[name]]
        elif str(dtype) == "category":
            frame[name] = frame[name].astype(str)
    return [[None if isinstance(v, float) and v != v else v for v in row] for row in frame.itertuples(index=False)]

def describe(frame):
    return {"columns": list(frame.columns), "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            "attrs": frame.attrs, "records": records(frame), "index": [str(i) for i in frame.index]}

def error(call):
    try:
        call()
    except api.ApiError as exc:
        return [type(exc).__name__, str(exc)]
    return None

everything = api.training_set("project")
out["all"] = describe(everything)
out["val"] = describe(api.training_set("project", split="val"))
out["exact"] = describe(api.training_set("project", version=everything.attrs["feature_version"][:10],
                                         split="train", exact_decimals=True))
files = pd.read_parquet(args["dataset"])
out["read_parquet"] = {"dtypes": {c: str(t) for c, t in files.dtypes.items()}}
key = ["split", "customer_id", "feature_time"]
ours = everything.assign(split=everything["split"].astype(str)).sort_values(key).reset_index(drop=True)
theirs = files.assign(split=files["split"].astype(str)).sort_values(key).reset_index(drop=True)[list(ours.columns)]
out["read_parquet"]["equal"] = bool(ours.equals(theirs))
out["read_parquet"]["rows"] = len(files)

entities = pd.DataFrame(args["entities"], columns=["customer_id", "as_of"], index=args["index"])
entities["as_of"] = pd.to_datetime(entities["as_of"], format="ISO8601")
out["features"] = describe(api.features_as_of(entities, pipeline="project"))
out["features_text"] = describe(api.features_as_of(pd.DataFrame(args["entities"], columns=["customer_id", "as_of"]),
                                                   pipeline="project"))
report = api.latest_report("project")
out["report"] = {k: report.get(k) for k in ("run_id", "status", "exit_code", "feature_version", "pipeline")}
out["report"]["stages"] = [s["stage"] for s in report["stages"]]

out["errors"] = {
    "version": error(lambda: api.training_set("project", version="0" * 64)),
    "other_pipeline": error(lambda: api.training_set()),
    "other_pipeline_report": error(lambda: api.latest_report("raw_to_ready")),
}
print(json.dumps(out))
"""


def sample_project(project, **sections) -> str:
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    return project.write_config(labels=LABELS, **sections)


def run(config: str, db_url: str) -> dict:
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED, report.get("errors")
    return report


def child(db_url: str, cwd: Path, args: dict) -> dict:
    """The child process: the venv's Python, no PYTHONPATH, in a folder outside the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DATABASE_URL"] = db_url
    assert not cwd.resolve().is_relative_to(REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sql_training_set(db_url: str) -> list[dict]:
    names = [r[0] for r in query(db_url, "SELECT attname FROM pg_attribute WHERE attrelid ="
                                         " 'feats.training_set'::regclass AND attnum > 0 ORDER BY attnum")]
    rows = query(db_url, "SELECT * FROM feats.training_set ORDER BY array_position(ARRAY['train', 'val', 'test'],"
                         " split), customer_id COLLATE \"C\", feature_time")
    return [dict(zip(names, row)) for row in rows]


def as_float(value):
    return None if value is None else float(value)


def test_the_three_functions_from_a_plain_python_outside_the_repository(project, db_url, tmp_path_factory):
    config = sample_project(project)
    report = run(config, db_url)
    manifest = export.export(config, database_url=db_url)
    stored = sql_training_set(db_url)
    assert {r["split"] for r in stored} == set(SPLITS)
    # entities: feature rows of feats.customer_features (retrieval at a row's feature_time is
    # that row), one asked with another offset and padded spaces, one unknown customer
    feature_rows = query(db_url, f"SELECT customer_id, feature_time, {', '.join(FEATURES)}"
                                 " FROM feats.customer_features ORDER BY customer_id, feature_time LIMIT 40")
    picked = [feature_rows[0], feature_rows[7], feature_rows[-1]]
    assert any(r[-1] is None for r in feature_rows)
    first = next(r for r in feature_rows if r[-1] is None)  # a first order: days_since_last_order NULL
    entities = [[r[0], r[1].astimezone(dt.timezone.utc).isoformat()] for r in picked]
    entities.append([f"  {first[0]} ", first[1].astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()])
    entities.append(["nobody-at-all", "2030-01-01T00:00:00+00:00"])
    expected_features = [[r[0], r[1], *r[2:]] for r in [*picked, first]]
    expected_features.append(["nobody-at-all", dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), 0, Decimal(0), 0,
                              Decimal(0), None])

    out = child(db_url, tmp_path_factory.mktemp("outside"),
                {"dataset": str(Path(manifest["path"]).resolve()), "entities": entities,
                 "index": ["a", "b", "c", "d", "e"]})

    # training_set(): every row, in order, money the nearest float64, with a split column
    everything = out["all"]
    assert everything["columns"] == [*COLUMNS, "split"]
    assert everything["dtypes"] == {
        "customer_id": "object", "feature_time": "datetime64[us, UTC]", "orders_7d": "int64", "revenue_7d": "float64",
        "orders_30d": "int64", "revenue_30d": "float64", "days_since_last_order": "float64", "repeat_30d": "bool",
        "revenue_next_30d": "float64", "split": "category"}
    assert everything["attrs"] == {"pipeline": "project", "feature_version": report["feature_version"]}
    assert len(everything["records"]) == len(stored)
    for got, want in zip(everything["records"], stored):
        row = dict(zip(everything["columns"], got))
        assert row["split"] == want["split"] and row["customer_id"] == want["customer_id"]
        assert dt.datetime.fromisoformat(row["feature_time"]) == want["feature_time"]
        for name in MONEY + ["days_since_last_order"]:
            assert row[name] == as_float(want[name]), name  # exactly the float nearest the decimal
        assert (row["orders_7d"], row["orders_30d"], row["repeat_30d"]) == \
            (want["orders_7d"], want["orders_30d"], want["repeat_30d"])
    assert any(isinstance(r["revenue_30d"], Decimal) and r["revenue_30d"] != r["revenue_30d"].to_integral()
               for r in stored)  # cents: the float comparison above is not trivial
    val = [r for r in stored if r["split"] == "val"]
    assert len(out["val"]["records"]) == len(val) > 0 and {r[-1] for r in out["val"]["records"]} == {"val"}

    # exact decimals: the very digits; a version prefix names the held version
    exact = out["exact"]
    assert exact["dtypes"]["revenue_30d"] == "object" and exact["dtypes"]["orders_30d"] == "int64"
    train = [r for r in stored if r["split"] == "train"]
    got = [[Decimal(r[exact["columns"].index(n)]) for n in MONEY] for r in exact["records"]]
    assert got == [[r[n] for n in MONEY] for r in train]  # Decimal equality: exact, whatever the scale
    assert {str(d.as_tuple().exponent) for row in got for d in row} == {"-2"}  # the widest scale of the values

    # the exported folder, read by pandas in one call, is the same DataFrame
    assert out["read_parquet"] == {"dtypes": {**everything["dtypes"], "split": "category"}, "equal": True,
                                   "rows": len(stored)}

    # features_as_of(): what the pipeline computed at those instants, in the entities' order
    for name in ("features", "features_text"):
        features = out[name]
        assert features["columns"] == ["customer_id", "as_of", *FEATURES]
        assert features["dtypes"]["as_of"] == "datetime64[us, UTC]" and features["dtypes"]["revenue_30d"] == "float64"
        assert features["dtypes"]["orders_30d"] == "int64"
        got = [[r[0], dt.datetime.fromisoformat(r[1]), *r[2:]] for r in features["records"]]
        assert got == [[r[0], r[1], r[2], as_float(r[3]), r[4], as_float(r[5]), as_float(r[6])]
                       for r in expected_features]
    assert out["features"]["index"] == ["a", "b", "c", "d", "e"]

    # latest_report(): the run's report, as meta.runs holds it
    (run_id, status), = query(db_url, "SELECT run_id, status FROM meta.runs WHERE finished_at IS NOT NULL"
                                      " ORDER BY finished_at DESC LIMIT 1")
    assert out["report"]["run_id"] == run_id == report["run_id"]
    assert (out["report"]["status"], out["report"]["exit_code"], out["report"]["pipeline"]) == (status, 0, "project")
    assert out["report"]["feature_version"] == report["feature_version"]
    assert out["report"]["stages"] == [s["stage"] for s in report["stages"]]

    # errors: one message each, the held version named, the owner named
    kind, message = out["errors"]["version"]
    assert kind == "VersionError" and report["feature_version"] in message and "0" * 64 in message
    for key in ("other_pipeline", "other_pipeline_report"):
        kind, message = out["errors"][key]
        assert kind == "NoDatabaseError" and "belongs to pipeline project" in message
        assert "not to pipeline raw_to_ready" in message and "pipeline='project'" in message


def test_the_database_is_found_by_name_and_errors_say_what_to_do(project, db_factory, pg_admin_url, monkeypatch):
    # the test server stands in for the embedded one: a pipeline's database is the one of its name
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(server, "start_server", lambda *args, **kwargs: pg_admin_url)
    db_url = db_factory()
    name = query(db_url, "SELECT current_database()")[0][0]
    empty_url = db_factory()
    empty = query(empty_url, "SELECT current_database()")[0][0]

    with pytest.raises(api.NoDatabaseError, match="pipeline no_such_pipeline has no database yet"):
        api.training_set("no_such_pipeline")
    with pytest.raises(api.NothingPublishedError, match=f"pipeline {empty} has published no training set yet"):
        api.training_set(empty)
    with pytest.raises(api.NothingPublishedError, match=f"pipeline {empty} has no finished run"):
        api.latest_report(empty)
    entities = pd.DataFrame({"customer_id": ["C1"], "as_of": [pd.Timestamp("2024-06-01", tz="UTC")]})
    with pytest.raises(api.NothingPublishedError, match="feats.features_as_of"):
        api.features_as_of(entities, pipeline=empty)

    run(sample_project(project, pipeline=name), db_url)
    frame = api.training_set(name, split="test")  # found by name, DATABASE_URL unset
    assert len(frame) == query(db_url, "SELECT count(*) FROM feats.training_set WHERE split = 'test'")[0][0] > 0
    assert api.latest_report(name)["status"] == "passed"
    assert len(api.features_as_of(entities, pipeline=name)) == 1

    with pytest.raises(ValueError, match="split='validation'"):
        api.training_set(name, split="validation")
    with pytest.raises(ValueError, match="lower-case hex"):
        api.training_set(name, version="XYZ")
    with pytest.raises(ValueError, match="not a pipeline name"):
        api.latest_report("Bad Name")
    with pytest.raises(ValueError, match="no time zone"):
        api.features_as_of(pd.DataFrame({"customer_id": ["C1"], "as_of": [pd.Timestamp("2024-06-01")]}), name)
    with pytest.raises(ValueError, match="no column as_of"):
        api.features_as_of(pd.DataFrame({"customer_id": ["C1"]}), name)
    bad = pd.DataFrame({"customer_id": ["C1", "  ", None],
                        "as_of": ["2024-06-01T00:00:00Z", None, "2024-06-01T00:00:00Z"]}, index=[10, 11, 12])
    with pytest.raises(ValueError) as caught:
        api.features_as_of(bad, name)
    assert str(caught.value) == ("entities: 2 row(s) cannot be retrieved:\n  index 11: customer_id is empty\n"
                                 "  index 12: customer_id is empty")
    nothing = api.features_as_of(entities.iloc[:0], name)
    assert len(nothing) == 0 and list(nothing.columns) == ["customer_id", "as_of", *FEATURES]


def test_no_reachable_server_is_an_api_error_not_a_psycopg_traceback(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(api.NoDatabaseError, match="could not connect") as caught:
        api.latest_report()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
