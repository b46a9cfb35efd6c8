"""Helpers shared by the test modules: a scratch project and a query shortcut."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# The real UCI Online Retail invoice lines (CC BY 4.0), kept beside the repository in
# shared/ (see its SOURCE.md); UCI_DATA_DIR points elsewhere. Tests that use it fail,
# not skip, when it is missing: CI has it.
UCI_DIR = Path(os.environ.get("UCI_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "real" / "uci_online_retail"))

HEADER = "order_id,customer_id,order_ts,amount,status\n"


class Project:
    """A scratch project: data/raw/*.csv and configs/*.yaml under a temporary cwd."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data" / "raw").mkdir(parents=True)
        (root / "configs").mkdir()

    def write_csv(self, name: str, text: str | bytes) -> str:
        path = self.root / "data" / "raw" / name
        if isinstance(text, str):
            text = textwrap.dedent(text).lstrip("\n").encode("utf-8")
        path.write_bytes(text)
        return f"data/raw/{name}"

    def write_config(
        self,
        paths: str | list[str] = "data/raw/orders.csv",
        expectations: dict[str, Any] | None = None,
        name: str = "pipeline.yaml",
        **sections: Any,
    ) -> str:
        exp_name = name.replace(".yaml", "_expectations.yaml")
        (self.root / "configs" / exp_name).write_text(yaml.safe_dump(expectations or {}), encoding="utf-8")
        # one pipeline per scratch project whatever the file's name (a test's variants of a
        # config are the same pipeline's), unless the test names another: pipeline=...
        config: dict[str, Any] = {
            "name": sections.pop("pipeline", "project"),
            "sources": [{"name": "orders", "paths": paths}],
            "expectations": f"configs/{exp_name}",
        }
        config.update(sections)
        (self.root / "configs" / name).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return f"configs/{name}"


def query(url_or_conn: str | psycopg.Connection, sql: str, params: Any = None) -> list[tuple]:
    if isinstance(url_or_conn, psycopg.Connection):
        return url_or_conn.execute(sql, params).fetchall()
    with psycopg.connect(url_or_conn) as connection:
        return connection.execute(sql, params).fetchall()


def assert_refused_before_data_work(project: Project, db_url: str, capsys: Any, expectations: dict[str, Any],
                                    key: str) -> None:
    """A broken expectations file stops the run with exit 2 and one message naming the file and
    the key, before any data work: the database is not even migrated."""
    from scripts.run import EXIT_USAGE, run_pipeline

    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    code, report = run_pipeline(project.write_config(expectations=expectations), db_url, through="validate")
    assert code == EXIT_USAGE, report["errors"]
    assert len(report["errors"]) == 1
    assert f"configs/pipeline_expectations.yaml: {key}:" in report["errors"][0]
    assert key in capsys.readouterr().err
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]
