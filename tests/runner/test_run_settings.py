"""meta.set_run_setting (V015): a run's transaction-local settings, as SET LOCAL statements
(which Citus forwards to its workers: tests/db/test_citus.py), the value quoted, the name
checked."""

from __future__ import annotations

import psycopg
import pytest

from scripts.db import migrate


def quiet(message: str) -> None:
    pass


@pytest.fixture
def migrated(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        migrate.apply_pending(conn, log=quiet)
    return db_url


@pytest.mark.parametrize("value", ["20261128T000000Z-abc", "", "O'Brien; DROP TABLE meta.runs; --", "a\\b $$ c"])
def test_a_value_reads_back_exactly_and_only_in_its_transaction(migrated, value):
    with psycopg.connect(migrated) as conn:
        assert conn.execute("SELECT meta.set_run_setting('raw_to_ready.run_id', %s)", (value,)).fetchone() == (value,)
        assert conn.execute("SELECT current_setting('raw_to_ready.run_id')").fetchone() == (value,)
        conn.rollback()
        assert conn.execute("SELECT current_setting('raw_to_ready.run_id', true)").fetchone()[0] in (None, "")
        assert conn.execute("SELECT to_regclass('meta.runs') IS NOT NULL").fetchone() == (True,)


def test_it_sets_a_servers_own_setting_too(migrated):
    with psycopg.connect(migrated) as conn:
        conn.execute("SELECT meta.set_run_setting('timezone', 'America/New_York')")
        assert conn.execute("SELECT '2024-07-01 12:00'::timestamptz = '2024-07-01 16:00Z'").fetchone() == (True,)


@pytest.mark.parametrize("name", ["raw_to_ready.run_id = 'x'; RESET ALL; --", "Raw.X", "a.b.c", ""])
def test_a_name_that_is_not_a_setting_name_is_refused(migrated, name):
    with psycopg.connect(migrated) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="is not a setting name"):
            conn.execute("SELECT meta.set_run_setting(%s, 'x')", (name,))


def test_a_null_value_is_refused(migrated):
    with psycopg.connect(migrated) as conn:
        with pytest.raises(psycopg.errors.NullValueNotAllowed, match="raw_to_ready.run_id has no value"):
            conn.execute("SELECT meta.set_run_setting('raw_to_ready.run_id', NULL)")
