"""make export: feats.training_set to artifacts/datasets/<feature_version>/, against SQL.

Contract under test: one Parquet file per split with exactly the training set's rows of that
split, ordered by (customer_id, feature_time), every value as PostgreSQL holds it (numerics,
timestamps, NULLs, awkward text); a manifest that describes the files, the label and the
cut-offs; the same feature_version exported twice, or from another database, gives the
same bytes; a failed export leaves nothing; usage errors exit 2 and tell what to run.
(Memory stays flat with the row count: measured by scripts/bench/export.py, not here.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scripts import errors
from scripts.serve import export
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

LABELS = {"horizon_days": 30}
SPLITS = ("train", "val", "test")


def sample_project(project, labels=LABELS) -> str:
    """The bundled 5,000-order sample with labels: about 4,400 labelled rows."""
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", project.root / "data" / "raw" / "orders.csv")
    return project.write_config(labels=labels) if labels else project.write_config()


def run(config: str, db_url: str) -> str:
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_PASSED
    return report["feature_version"]


def folder(version: str) -> Path:
    return Path("artifacts") / "datasets" / version


def file_bytes(version: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder(version).iterdir())}


def sql_rows(db_url: str, split: str) -> list[tuple]:
    return query(db_url, "SELECT * FROM feats.training_set WHERE split = %s"
                         " ORDER BY customer_id COLLATE \"C\", feature_time", (split,))


def test_each_file_holds_exactly_its_splits_rows(project, db_url):
    version = run(sample_project(project), db_url)
    manifest = export.export(project.write_config(labels=LABELS), database_url=db_url)
    counts = dict(query(db_url, "SELECT split, count(*) FROM feats.training_set GROUP BY split"))
    assert set(counts) == set(SPLITS) and all(counts.values())
    for split in SPLITS:
        path = folder(version) / f"{split}.parquet"
        assert pq.read_metadata(path).num_rows == counts[split] == manifest["splits"][split]["rows"]
        keys = pq.read_table(path, columns=["customer_id", "feature_time"]).to_pylist()
        assert [(k["customer_id"], k["feature_time"]) for k in keys] == \
            [(r[0], r[1]) for r in sql_rows(db_url, split)]
    assert manifest["row_count"] == sum(counts.values())
    assert sorted(p.name for p in folder(version).iterdir()) == \
        ["manifest.json", "test.parquet", "train.parquet", "val.parquet"]
    assert [p.name for p in folder(version).parent.iterdir()] == [version]  # no temporary folder left


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
    manifest = export.export(config, database_url=db_url)
    names = [c[0] for c in query(db_url, "SELECT attname FROM pg_attribute WHERE attrelid ="
                                         " 'feats.training_set'::regclass AND attnum > 0 ORDER BY attnum")]
    seen: dict[str, set] = {"ids": set(), "nulls": set(), "microseconds": set(), "decimals": set()}
    total = 0
    for split in SPLITS:
        expected = [dict(zip(names, row)) for row in sql_rows(db_url, split)]
        for row in expected:
            assert row.pop("split") == split and row.pop("feature_version") == version
        got = pq.read_table(folder(version) / f"{split}.parquet").to_pylist()
        assert got == expected  # Decimal == Decimal, aware datetime == aware datetime, None == NULL
        for g, e in zip(got, expected):  # exactly: the same digits, the same microsecond, in UTC
            for name, value in e.items():
                if isinstance(value, Decimal):
                    assert str(g[name]) == str(value.quantize(Decimal("0.01")))
                    seen["decimals"].add(g[name])
                elif isinstance(value, dt.datetime):
                    assert g[name].utcoffset() == dt.timedelta(0) and g[name].microsecond == value.microsecond
                    seen["microseconds"].add(value.microsecond)
                elif value is None:
                    seen["nulls"].add(name)
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
    export.export(project.write_config(labels=LABELS), database_url=db_url)
    schema = pq.read_schema(folder(version) / "train.parquet")
    assert schema.names == ["customer_id", "feature_time", "orders_7d", "revenue_7d", "orders_30d", "revenue_30d",
                            "days_since_last_order", "repeat_30d", "revenue_next_30d"]
    assert [schema.field(n).type for n in schema.names] == [
        pa.string(), pa.timestamp("us", tz="UTC"), pa.int64(), pa.decimal128(38, 2), pa.int64(),
        pa.decimal128(38, 2), pa.int32(), pa.bool_(), pa.decimal128(38, 2)]
    assert schema.metadata[b"raw_to_ready.feature_version"] == version.encode()
    meta = pq.read_metadata(folder(version) / "train.parquet")
    assert meta.num_row_groups == -(-meta.num_rows // export.BATCH_ROWS)


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
    assert run(config, second_db) == version
    export.export(config, database_url=second_db)
    assert file_bytes(version) == first
    assert set(first) == {"manifest.json", "train.parquet", "val.parquet", "test.parquet"}


def test_manifest_describes_files_label_and_cutoffs(project, db_url):
    version = run(sample_project(project), db_url)
    export.export(project.write_config(labels=LABELS), database_url=db_url)
    manifest = json.loads((folder(version) / "manifest.json").read_text())
    assert manifest["feature_version"] == version
    for split in SPLITS:
        entry = manifest["splits"][split]
        data = (folder(version) / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
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
    config = sample_project(project)
    version = run(config, db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert export.main(["--config", config]) == errors.EXIT_PASSED
    before = file_bytes(version)
    # a value no decimal128(38, 2) holds, in the last split written: train and val are done by then
    # (feats.training_set is a view: the value goes into the published feature row)
    query_rows = ("UPDATE feats.customer_feature_history SET revenue_7d = 1e40 WHERE valid_to IS NULL"
                  " AND (customer_id, feature_time) = (SELECT customer_id, feature_time FROM feats.training_set"
                  " WHERE split = 'test' ORDER BY 1, 2 LIMIT 1)")
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(query_rows).rowcount == 1
    capsys.readouterr()
    assert export.main(["--config", config]) == errors.EXIT_RUNTIME
    err = capsys.readouterr().err
    assert err.startswith("error: test: ") and "revenue_7d" in err and "Traceback" not in err
    assert file_bytes(version) == before
    assert [p.name for p in folder(version).parent.iterdir()] == [version]
    shutil.rmtree(folder(version))
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
    assert (folder(version) / "manifest.json").is_file()
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
    empty = pq.read_table(folder(version) / "val.parquet")
    assert empty.num_rows == 0 and empty.schema == pq.read_schema(folder(version) / "train.parquet")
