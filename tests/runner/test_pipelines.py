"""Pipelines side by side: a pipeline is named, has its own database on the embedded server,
owns the database it first ran on, and compares drift with its own runs only; the paths of a
config resolve by one rule, and a path error says what it was resolved to and against.

Every expectation is a fact about the database or the files checked directly (rows of
meta.pipeline, meta.runs, raw.raw_events, pg_database), not the runner's own account of them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from scripts import config as config_mod
from scripts.db import server
from scripts.errors import CommandError, ConfigError
from scripts.run import EXIT_PASSED, EXIT_USAGE, run_pipeline
from scripts.serve import export as export_mod
from tests.helpers import HEADER, REPO_ROOT, query

SAMPLE = REPO_ROOT / "data" / "raw" / "orders.csv"


def orders(rows: list[str]) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def two_pipelines(project) -> tuple[str, str]:
    """Configs of pipelines `alpha` (three orders of C1) and `beta` (two orders of C2) in one project."""
    project.write_csv("a.csv", orders(["A1,C1,2024-01-01,10.00,completed", "A2,C1,2024-01-05,20.00,completed",
                                       "A3,C1,2024-02-01,30.00,completed"]))
    project.write_csv("b.csv", orders(["B1,C2,2024-03-01,5.00,completed", "B2,C2,2024-03-02,7.00,completed"]))
    alpha = project.write_config(paths="data/raw/a.csv", name="alpha.yaml", pipeline="alpha")
    beta = project.write_config(paths="data/raw/b.csv", name="beta.yaml", pipeline="beta")
    return alpha, beta


def test_a_database_belongs_to_the_first_pipeline_that_runs_on_it(project, db_url, capsys):
    alpha, beta = two_pipelines(project)
    assert run_pipeline(alpha, db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT pipeline_name, config_path FROM meta.pipeline") == [("alpha", alpha)]
    raw_before = query(db_url, "SELECT count(*) FROM raw.raw_events")[0][0]
    runs_before = query(db_url, "SELECT count(*) FROM meta.runs")[0][0]
    capsys.readouterr()

    code, report = run_pipeline(beta, db_url)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    # the message names both pipelines and both configs, and says what to do
    for name in ("pipeline alpha", alpha, "pipeline beta", beta, "--take-over", "a database of its own"):
        assert name in err, name
    # nothing of beta's was written: no raw event, no run row, the owner unchanged
    assert query(db_url, "SELECT count(*) FROM raw.raw_events")[0][0] == raw_before == 3
    assert query(db_url, "SELECT count(*) FROM meta.runs")[0][0] == runs_before
    assert query(db_url, "SELECT pipeline_name FROM meta.pipeline") == [("alpha",)]
    assert report["pipeline"] == "beta"


def test_take_over_makes_the_database_the_other_pipelines(project, db_url, capsys):
    alpha, beta = two_pipelines(project)
    assert run_pipeline(alpha, db_url)[0] == EXIT_PASSED
    code, _ = run_pipeline(beta, db_url, take_over=True)
    assert code == EXIT_PASSED
    assert "it is now pipeline beta's" in capsys.readouterr().out
    assert query(db_url, "SELECT pipeline_name, config_path FROM meta.pipeline") == [("beta", beta)]
    assert query(db_url, "SELECT pipeline, count(*) FROM meta.runs GROUP BY 1 ORDER BY 1") == [("alpha", 1), ("beta", 1)]
    # the pipeline's own config stages its own file: the published orders are beta's two
    assert query(db_url, "SELECT order_id FROM stg.orders ORDER BY 1") == [("B1",), ("B2",)]
    # and alpha is now the one refused
    assert run_pipeline(alpha, db_url)[0] == EXIT_USAGE


def test_drift_compares_a_run_with_its_own_pipelines_runs_only(project, db_url):
    alpha, beta = two_pipelines(project)
    first_alpha = run_pipeline(alpha, db_url)[1]["run_id"]
    first_beta = run_pipeline(beta, db_url, take_over=True)[1]["run_id"]
    second_beta = run_pipeline(beta, db_url)[1]["run_id"]
    # each run's latest earlier passed run of the same pipeline, from meta.runs alone
    expected = dict(query(db_url, """
        SELECT v.run_id, (SELECT r.run_id FROM meta.runs AS r
                          WHERE r.pipeline = v.pipeline AND r.status = 'passed' AND r.started_at < v.started_at
                          ORDER BY r.started_at DESC LIMIT 1)
        FROM meta.runs AS v"""))
    assert expected == {first_alpha: None, first_beta: None, second_beta: first_beta}
    # what the drift stage compared with: the profile's baseline in each run's stored report
    used = {run_id: report["profile"]["baseline_run_id"] for run_id, report in
            query(db_url, "SELECT run_id, report FROM meta.runs")}
    assert used == expected  # alpha's passed run was never beta's baseline


def test_each_pipeline_has_its_own_database_on_the_embedded_server(project, pg_admin_url, monkeypatch):
    """DATABASE_URL unset: the embedded server (here the tests' own server) gets one database
    per pipeline, named after it; two pipelines run side by side and keep their own rows."""
    alpha, beta = two_pipelines(project)
    suffix = uuid.uuid4().hex[:8]
    for path, name in ((alpha, f"alpha_{suffix}"), (beta, f"beta_{suffix}")):
        text = (project.root / path).read_text(encoding="utf-8").replace(f"name: {Path(path).stem}\n", f"name: {name}\n")
        (project.root / path).write_text(text, encoding="utf-8")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(server, "start_server", lambda *a, **k: pg_admin_url)
    try:
        assert run_pipeline(alpha)[0] == EXIT_PASSED
        assert run_pipeline(beta)[0] == EXIT_PASSED
        assert run_pipeline(alpha)[0] == EXIT_PASSED  # nothing of beta's got in its way
        found = {r[0] for r in query(pg_admin_url, "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                     (f"%_{suffix}",))}
        assert found == {f"alpha_{suffix}", f"beta_{suffix}"}
        for name, expected in ((f"alpha_{suffix}", [("A1",), ("A2",), ("A3",)]), (f"beta_{suffix}", [("B1",), ("B2",)])):
            url = server.with_database(pg_admin_url, name)
            assert query(url, "SELECT order_id FROM stg.orders ORDER BY 1") == expected
            assert query(url, "SELECT pipeline_name FROM meta.pipeline") == [(name,)]
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for name in (f"alpha_{suffix}", f"beta_{suffix}"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_reader_of_another_pipelines_database_is_refused(project, db_url, capsys):
    """export (like train and retrieve) reads the pipeline of its config: a database another
    pipeline owns is refused, naming both, before anything is read or written."""
    alpha, beta = two_pipelines(project)
    assert run_pipeline(alpha, db_url)[0] == EXIT_PASSED
    capsys.readouterr()
    out = project.root / "datasets"
    with pytest.raises(CommandError) as refused:
        export_mod.export(beta, database_url=db_url, out_root=out)
    assert "belongs to pipeline alpha" in str(refused.value) and "not to pipeline beta" in str(refused.value)
    assert not out.exists()


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("file_name", "expected"), [
    ("pipeline.yaml", "pipeline"), ("My-Orders.v2.yaml", "my_orders_v2"), ("2024.yaml", "p_2024"),
    ("postgres.yaml", "postgres_pipeline"),
])
def test_without_a_name_the_pipeline_is_the_config_files_stem(tmp_path, file_name, expected):
    path = tmp_path / file_name
    path.write_text("sources: []\n", encoding="utf-8")
    assert config_mod.name_of(path) == expected


@pytest.mark.parametrize("bad", ["Orders", "my-orders", "1st", "", "postgres", "x" * 64, 7])
def test_a_bad_name_is_refused_naming_the_key(tmp_path, bad):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": bad}), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        config_mod.name_of(path)
    assert f"{path}: name:" in str(refused.value)


def test_the_shipped_configs_name_their_pipelines_apart():
    names = [config_mod.name_of(p) for p in sorted((REPO_ROOT / "configs").glob("*.yaml"))
             if "expectations" not in p.name]
    assert len(names) == len(set(names)) >= 4
    assert config_mod.name_of(REPO_ROOT / "configs" / "pipeline.yaml") == "raw_to_ready"


# --- paths -----------------------------------------------------------------------------------


def test_a_copied_config_outside_configs_reads_paths_against_its_own_folder(tmp_path, monkeypatch):
    """The one rule: against the folder around configs/ for a config kept in configs/, else the
    config's own folder; the error names the path as written, the absolute path and the folder."""
    copied = tmp_path / "elsewhere" / "mine.yaml"
    copied.parent.mkdir()
    shutil.copy(REPO_ROOT / "configs" / "pipeline.yaml", copied)
    monkeypatch.chdir(REPO_ROOT)  # where data/raw/orders.csv does exist: the cwd must not matter
    with pytest.raises(ConfigError) as refused:
        config_mod.load(copied)
    message = str(refused.value)
    assert "sources[0].paths: no such file: data/raw/orders.csv" in message
    assert f"resolved to {copied.parent / 'data' / 'raw' / 'orders.csv'}" in message
    assert f"against {copied.parent}, the config's own folder" in message


def test_a_config_in_a_configs_folder_reads_paths_against_the_folder_around_it(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "configs").mkdir(parents=True)
    (project / "data" / "raw").mkdir(parents=True)
    shutil.copy(SAMPLE, project / "data" / "raw" / "orders.csv")
    shutil.copy(REPO_ROOT / "configs" / "expectations.yaml", project / "configs" / "expectations.yaml")
    shutil.copy(REPO_ROOT / "configs" / "pipeline.yaml", project / "configs" / "pipeline.yaml")
    monkeypatch.chdir(tmp_path)  # not the project: relative paths still resolve
    loaded = config_mod.load(project / "configs" / "pipeline.yaml")
    assert [Path(f.path).resolve() for f in loaded.files] == [(project / "data" / "raw" / "orders.csv").resolve()]
    (project / "data" / "raw" / "orders.csv").unlink()
    with pytest.raises(ConfigError) as refused:
        config_mod.load(project / "configs" / "pipeline.yaml")
    assert f"against {project}, the folder around the configs/ folder the config lies in" in str(refused.value)


def test_a_missing_default_expectations_file_says_it_is_the_default_and_how_to_set_it(tmp_path):
    (tmp_path / "orders.csv").write_bytes(SAMPLE.read_bytes())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"sources": [{"name": "orders", "paths": "orders.csv"}]}), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        config_mod.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: expectations: not set, so the default configs/expectations.yaml is read")
    assert f"resolved to {tmp_path / 'configs' / 'expectations.yaml'}" in message
    assert "set expectations: to your rules file" in message
    assert str(REPO_ROOT / "configs" / "expectations.yaml") in message
    assert os.path.isfile(REPO_ROOT / "configs" / "expectations.yaml")
