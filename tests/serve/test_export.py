"""make export: feats.training_set to artifacts/datasets/<pipeline>/<feature_version>/, against SQL.

Contract under test: one Parquet file per split, in hive folders split=train/, split=val/,
split=test/, with exactly the training set's rows of that split, ordered by (customer_id,
feature_time), every value as PostgreSQL holds it (numerics as the nearest float64, or
exactly with exact decimals; timestamps, NULLs, awkward text); pandas, pyarrow.dataset and
DuckDB read the folder whole, the split as a column; a manifest beside the folder that
describes the files, the label and the cut-offs; the same feature_version exported twice, or
from another database, gives the same bytes; a failed export leaves nothing; usage errors
exit 2 and tell what to run. (Memory stays flat with the row count: measured by
scripts/bench/export.py, not here.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from scripts import errors
from scripts.serve import export
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

LABELS = {"horizon_days": 30}
SPLITS = ("train", "val", "test")
PIPELINE = "project"  # tests.helpers' configs are pipeline project


def sample_project(project, labels=LABELS) -> str:
    """The bundled 5,000-order sample with labels: about 4,400 labelled rows."""
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    return project.write_config(labels=labels) if labels else project.write_config()


def run(config: str, db_url: str) -> str:
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    return report["feature_version"]


def folder(version: str) -> Path:
    return Path("artifacts") / "datasets" / PIPELINE / version


def manifest_path(version: str) -> Path:
    return Path("artifacts") / "datasets" / PIPELINE / f"{version}.manifest.json"


def split_path(version: str, split: str) -> Path:
    return folder(version) / f"split={split}" / "part-0.parquet"


def read_split(version: str, split: str, **options) -> pa.Table:
    return pq.read_table(split_path(version, split), partitioning=None, **options)


def file_bytes(version: str) -> dict[str, bytes]:
    """Every file of the export: the folder's, and the manifest beside it."""
    files = {p.relative_to(folder(version)).as_posix(): p.read_bytes()
             for p in sorted(folder(version).rglob("*")) if p.is_file()}
    return {**files, "../manifest": manifest_path(version).read_bytes()}


def sql_rows(db_url: str, split: str) -> list[tuple]:
    return query(db_url, "SELECT * FROM feats.training_set WHERE split = %s"
                         " ORDER BY customer_id COLLATE \"C\", feature_time", (split,))


def test_each_file_holds_exactly_its_splits_rows(project, db_url):
    version = run(sample_project(project), db_url)
    manifest = export.export(project.write_config(labels=LABELS), database_url=db_url)
    counts = dict(query(db_url, "SELECT split, count(*) FROM feats.training_set GROUP BY split"))
    assert set(counts) == set(SPLITS) and all(counts.values())
    for split in SPLITS:
        path = split_path(version, split)
        assert pq.read_metadata(path).num_rows == counts[split] == manifest["splits"][split]["rows"]
        keys = read_split(version, split, columns=["customer_id", "feature_time"]).to_pylist()
        assert [(k["customer_id"], k["feature_time"]) for k in keys] == \
            [(r[0], r[1]) for r in sql_rows(db_url, split)]
    assert manifest["row_count"] == sum(counts.values())
    assert manifest["path"] == str(folder(version)) and manifest["manifest_path"] == str(manifest_path(version))
    # nothing but Parquet in the folder; the manifest beside it; no temporary file or folder left
    assert sorted(p.relative_to(folder(version)).as_posix() for p in folder(version).rglob("*")) == [
        "split=test", "split=test/part-0.parquet", "split=train", "split=train/part-0.parquet",
        "split=val", "split=val/part-0.parquet"]
    assert sorted(p.name for p in folder(version).parent.iterdir()) == [version, f"{version}.manifest.json"]
    assert [p.name for p in Path("artifacts/datasets").iterdir()] == [PIPELINE]


def test_pandas_pyarrow_and_duckdb_read_the_folder_whole_with_the_split(project, db_url):
    version = run(sample_project(project), db_url)
    export.export(project.write_config(labels=LABELS), database_url=db_url)
    names = [c[0] for c in query(db_url, "SELECT attname FROM pg_attribute WHERE attrelid ="
                                         " 'feats.training_set'::regclass AND attnum > 0 ORDER BY attnum")]
    rows = query(db_url, "SELECT * FROM feats.training_set")
    expected = sorted((r[names.index("split")], r[names.index("customer_id")], r[names.index("feature_time")],
                       r[names.index("orders_30d")], float(r[names.index("revenue_30d")])) for r in rows)
    assert {e[0] for e in expected} == set(SPLITS)

    frame = pd.read_parquet(folder(version))  # one call: every row, the split from the folders
    assert len(frame) == len(rows)
    assert frame["revenue_30d"].dtype == "float64" and frame["orders_30d"].dtype == "int64"
    assert str(frame["feature_time"].dtype) == "datetime64[us, UTC]"
    times = [t.to_pydatetime() for t in frame["feature_time"]]
    got = sorted(zip(frame["split"].astype(str), frame["customer_id"], times, frame["orders_30d"].tolist(),
                     frame["revenue_30d"].tolist()))
    assert got == expected

    table = ds.dataset(folder(version), partitioning="hive", format="parquet").to_table()
    assert table.num_rows == len(rows)
    got = sorted(zip(table["split"].to_pylist(), table["customer_id"].to_pylist(), table["feature_time"].to_pylist(),
                     table["orders_30d"].to_pylist(), table["revenue_30d"].to_pylist()))
    assert got == expected

    duckdb = pytest.importorskip("duckdb")
    got = duckdb.sql(f"SELECT split, customer_id, feature_time, orders_30d, revenue_30d FROM "
                     f"read_parquet('{folder(version).as_posix()}/**/*.parquet', hive_partitioning = true)").fetchall()
    assert len(got) == len(rows)
    assert sorted((s, c, t.astimezone(dt.timezone.utc), o, r) for s, c, t, o, r in got) == expected


# customer ids that COPY's CSV must quote or that look like something else; amounts at the
# edges of numeric(…, 2); timestamps with microseconds and offsets; same-instant orders
AWKWARD_IDS = ["C,comma", 'C"quote', "Çüstomer✓", "line\nbreak", "1e5", "null", "C7"]
AWKWARD_AMOUNTS = ["0.01", "99999999999999.99", "0.10", "12.30", "7", "0.00", "1.00"]


def awkward_orders() -> str:
    lines, n = [HEADER], 0
    for i, customer in enumerate(AWKWARD_IDS):
        quoted = '"' + customer.replace('"', '""') + '"'
        for k in range(10):
            at = dt.datetime(2024, 1, 1) + dt.timedelta(days=35 * k + 3 * i, hours=i, microseconds=7 * k + i)
            stamp = at.isoformat(sep=" ") + ("+05:30" if k == 3 else "")
            for _ in range(2 if k == 5 else 1):  # two orders at one instant: one row counting both
                n += 1
                lines.append(f"O{n:04d},{quoted},{stamp},{AWKWARD_AMOUNTS[(n + i) % len(AWKWARD_AMOUNTS)]},x\n")
    return "".join(lines)


def test_every_value_round_trips_exactly(project, db_url):
    project.write_csv("orders.csv", awkward_orders())
    config = project.write_config(labels=LABELS)
    version = run(config, db_url)
    names = [c[0] for c in query(db_url, "SELECT attname FROM pg_attribute WHERE attrelid ="
                                         " 'feats.training_set'::regclass AND attnum > 0 ORDER BY attnum")]
    for exact in (False, True):
        manifest = export.export(config, database_url=db_url, exact_decimals=exact)
        assert manifest["format"]["numeric"] == ("decimal128" if exact else "float64")
        seen: dict[str, set] = {"ids": set(), "nulls": set(), "microseconds": set(), "decimals": set()}
        total = 0
        for split in SPLITS:
            expected = [dict(zip(names, row)) for row in sql_rows(db_url, split)]
            for row in expected:
                assert row.pop("split") == split and row.pop("feature_version") == version
            got = read_split(version, split).to_pylist()
            assert len(got) == len(expected) and all(list(g) == list(e) for g, e in zip(got, expected))  # columns
            for g, e in zip(got, expected):  # exactly: the same digits, the same microsecond, in UTC
                for name, value in e.items():
                    if isinstance(value, Decimal) and exact:
                        assert isinstance(g[name], Decimal) and str(g[name]) == str(value.quantize(Decimal("0.01")))
                        seen["decimals"].add(g[name])
                    elif isinstance(value, Decimal):  # the float nearest to the stored value
                        assert type(g[name]) is float and g[name] == float(value), (name, value, g[name])
                        seen["decimals"].add(value)
                    elif isinstance(value, dt.datetime):
                        assert g[name].utcoffset() == dt.timedelta(0) and g[name].microsecond == value.microsecond
                        assert g[name] == value
                        seen["microseconds"].add(value.microsecond)
                    elif value is None:
                        assert g[name] is None
                        seen["nulls"].add(name)
                    else:  # text, integers, booleans: equal and of the same kind
                        assert g[name] == value and type(g[name]) is type(value), (name, value, g[name])
                seen["ids"].add(g["customer_id"])
            total += len(got)
        assert total == manifest["row_count"] > 0
        assert seen["ids"] == set(AWKWARD_IDS)  # every awkward id made it into some split
        assert "days_since_last_order" in seen["nulls"]  # a NULL stays NULL; the text 'null' stays text
        assert len(seen["microseconds"]) > 10
        assert any(d >= Decimal("99999999999999.99") for d in seen["decimals"])
        assert Decimal("0.01") in seen["decimals"] or Decimal("0.10") in seen["decimals"]


def test_schema_is_explicit_and_typed(project, db_url):
    version = run(sample_project(project), db_url)
    config = project.write_config(labels=LABELS)
    for exact, money in ((False, pa.float64()), (True, pa.decimal128(38, 2))):
        manifest = export.export(config, database_url=db_url, exact_decimals=exact)
        for split in SPLITS:  # no split column in the files: the folder names it
            schema = pq.read_schema(split_path(version, split))
            assert schema.names == ["customer_id", "feature_time", "orders_7d", "revenue_7d", "orders_30d",
                                    "revenue_30d", "days_since_last_order", "repeat_30d", "revenue_next_30d"]
            assert [schema.field(n).type for n in schema.names] == [
                pa.string(), pa.timestamp("us", tz="UTC"), pa.int64(), money, pa.int64(),
                money, pa.int32(), pa.bool_(), money]
            assert schema.metadata[b"raw_to_ready.feature_version"] == version.encode()
            meta = pq.read_metadata(split_path(version, split))
            assert meta.num_row_groups == -(-meta.num_rows // export.BATCH_ROWS)
        types = {c["name"]: (c["type"], c["postgres_type"]) for c in manifest["columns"]}
        assert types["revenue_7d"] == (str(money), "numeric") and types["orders_7d"] == ("int64", "bigint")


def test_the_same_version_exported_twice_or_elsewhere_is_byte_identical(project, db_factory):
    config = sample_project(project)
    first_db, second_db = db_factory(), db_factory()
    version = run(config, first_db)
    export.export(config, database_url=first_db)
    first = file_bytes(version)
    # another run (a new run_id, same inputs, same version), exported over the first export
    assert run(config, first_db) == version
    export.export(config, database_url=first_db)
    assert file_bytes(version) == first
    # another database, built from the same inputs
    shutil.rmtree(folder(version))
    manifest_path(version).unlink()
    assert run(config, second_db) == version
    export.export(config, database_url=second_db)
    assert file_bytes(version) == first
    assert set(first) == {"../manifest", "split=train/part-0.parquet", "split=val/part-0.parquet",
                          "split=test/part-0.parquet"}
    # with exact decimals: other bytes (other types), the same bytes each time
    export.export(config, database_url=second_db, exact_decimals=True)
    exact = file_bytes(version)
    assert exact["split=train/part-0.parquet"] != first["split=train/part-0.parquet"]
    export.export(config, database_url=first_db, exact_decimals=True)
    assert file_bytes(version) == exact


def test_manifest_describes_files_label_and_cutoffs(project, db_url):
    version = run(sample_project(project), db_url)
    export.export(project.write_config(labels=LABELS), database_url=db_url)
    manifest = json.loads(manifest_path(version).read_text())
    assert manifest["feature_version"] == version
    for split in SPLITS:
        entry = manifest["splits"][split]
        assert entry["file"] == f"split={split}/part-0.parquet"
        data = (folder(version) / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert entry["rows"] == query(db_url, "SELECT count(*) FROM feats.training_set WHERE split = %s",
                                      (split,))[0][0]
    assert manifest["format"]["numeric"] == "float64"
    assert manifest["dataset"]["folder"] == f"{version}/" and manifest["dataset"]["partitioning"] == "hive"
    roles = {c["name"]: c["role"] for c in manifest["columns"]}
    assert roles == {"customer_id": "key", "feature_time": "key", "orders_7d": "feature", "revenue_7d": "feature",
                     "orders_30d": "feature", "revenue_30d": "feature", "days_since_last_order": "feature",
                     "repeat_30d": "label", "revenue_next_30d": "label"}
    assert {c["name"]: c["postgres_type"] for c in manifest["columns"]}["revenue_7d"] == "numeric"
    assert manifest["label"]["target"] == "repeat_30d" and manifest["label"]["horizon_days"] == 30
    assert manifest["label"]["observed_until"] is None
    (run_id,), = query(db_url, "SELECT run_id FROM meta.feature_registry")
    cutoffs = query(db_url, "SELECT split, starts_at, ends_before, row_count, gap_row_count, purged_row_count,"
                            " censored_row_count, fraction, target_fraction FROM meta.split_cutoffs"
                            " WHERE run_id = %s ORDER BY array_position(ARRAY['train', 'val', 'test'], split)",
                    (run_id,))
    assert [c["split"] for c in manifest["cutoffs"]] == list(SPLITS)
    for got, (split, starts, ends, rows, gap, purged, censored, fraction, target) in zip(manifest["cutoffs"], cutoffs):
        assert (got["row_count"], got["gap_row_count"], got["purged_row_count"], got["censored_row_count"]) == \
            (rows, gap, purged, censored)
        assert Decimal(str(got["fraction"])) == fraction and Decimal(str(got["target_fraction"])) == target
        for key, value in (("starts_at", starts), ("ends_before", ends)):
            assert (got[key] is None) if value is None else dt.datetime.fromisoformat(got[key]) == value
    assert manifest["purged_rows"] == sum(c[5] for c in cutoffs) > 0
    assert manifest["censored_rows"] == sum(c[6] for c in cutoffs) > 0
    # nothing that differs between two runs of the same version
    assert run_id not in json.dumps(manifest)


def test_a_failed_export_leaves_the_previous_one_and_nothing_else(project, db_url, monkeypatch, capsys):
    import psycopg

    config = sample_project(project)
    version = run(config, db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert export.main(["--config", config]) == errors.EXIT_PASSED
    before = file_bytes(version)

    def set_last_test_row(value: str) -> None:
        # a value in the last split written: train and val are done by then
        # (feats.training_set is a view: the value goes into the published feature row)
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert conn.execute(
                "UPDATE feats.customer_feature_history SET revenue_7d = %s::numeric WHERE valid_to IS NULL"
                " AND (customer_id, feature_time) = (SELECT customer_id, feature_time FROM feats.training_set"
                " WHERE split = 'test' ORDER BY 1, 2 LIMIT 1)", (value,)).rowcount == 1

    # 1e40: a float64, but no decimal128(38, 2); 1e400: beyond float64 too (and any decimal128)
    for value, args in (("1e40", ["--exact-decimals"]), ("1e400", []), ("1e400", ["--exact-decimals"])):
        set_last_test_row(value)
        capsys.readouterr()
        assert export.main(["--config", config, *args]) == errors.EXIT_RUNTIME
        err = capsys.readouterr().err
        assert err.startswith("error: test: ") and "revenue_7d" in err and "Traceback" not in err, err
        assert "nothing was written" in err
        assert file_bytes(version) == before
        assert sorted(p.name for p in folder(version).parent.iterdir()) == [version, f"{version}.manifest.json"]
    set_last_test_row("1e40")
    assert export.main(["--config", config]) == errors.EXIT_PASSED  # as a float64 it is a value like another
    assert 1e40 in read_split(version, "test").column("revenue_7d").to_pylist()
    set_last_test_row("1e400")
    shutil.rmtree(folder(version))
    manifest_path(version).unlink()
    assert export.main(["--config", config]) == errors.EXIT_RUNTIME
    assert list(folder(version).parent.iterdir()) == []


def test_before_any_training_set_it_says_run_make_all(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    config = sample_project(project)
    assert export.main(["--config", config]) == errors.EXIT_USAGE  # an empty database
    assert "run `make all` first" in capsys.readouterr().err
    no_labels = sample_project(project, labels=None)  # a run without labels builds no training set
    assert run_pipeline(no_labels, db_url)[0] == EXIT_PASSED
    assert export.main(["--config", no_labels]) == errors.EXIT_USAGE
    assert "run `make all` first" in capsys.readouterr().err
    assert not Path("artifacts/datasets").exists() or not any(Path("artifacts/datasets").iterdir())


def test_wrong_config_or_version_is_refused(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    config = sample_project(project)
    version = run(config, db_url)
    other = project.write_config(labels={"horizon_days": 14}, name="other.yaml")
    assert export.main(["--config", other]) == errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not the config feature_version" in err and config in err
    assert export.main(["--config", config, "--feature-version", "0" * 64]) == errors.EXIT_USAGE
    assert f"the latest is {version}" in capsys.readouterr().err
    assert export.main(["--config", config, "--feature-version", "XYZ"]) == errors.EXIT_USAGE
    assert export.main(["--config", config, "--feature-version", version[:10]]) == errors.EXIT_PASSED
    assert manifest_path(version).is_file()
    assert export.main(["--config", "configs/missing.yaml"]) == errors.EXIT_USAGE


def test_a_version_no_longer_in_the_training_set_is_refused(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    config = sample_project(project)
    old = run(config, db_url)
    other = project.write_config(labels={"horizon_days": 14}, name="other.yaml")
    assert run(other, db_url) != old
    assert export.main(["--config", config, "--feature-version", old]) == errors.EXIT_USAGE
    assert "feats.training_set holds feature_version" in capsys.readouterr().err


def test_no_database_exits_3_without_a_traceback(project, monkeypatch, capsys):
    config = sample_project(project)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    assert export.main(["--config", config]) == errors.EXIT_RUNTIME
    err = capsys.readouterr().err
    assert "could not connect" in err and "Traceback" not in err


def test_an_empty_split_gives_an_empty_file_with_the_schema(project, db_url):
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    config = project.write_config(labels=LABELS, splits={"train": 0.85, "val": 0.0, "test": 0.15})
    version = run(config, db_url)
    manifest = export.export(config, database_url=db_url)
    assert manifest["splits"]["val"]["rows"] == 0 < manifest["splits"]["train"]["rows"]
    empty = read_split(version, "val")
    assert empty.num_rows == 0 and empty.schema == pq.read_schema(split_path(version, "train"))
    frame = pd.read_parquet(folder(version))  # an empty split's folder reads as no rows
    assert len(frame) == manifest["row_count"] and set(frame["split"].astype(str)) == {"train", "test"}
