"""Migrations: applied once, recorded with checksums, edits refused, failures recorded."""

from __future__ import annotations

import hashlib
import shutil

import psycopg
import pytest

from scripts.db import migrate
from tests.helpers import query


def test_history_records_every_migration_with_its_checksum(conn):
    applied = migrate.apply_pending(conn, log=lambda _: None)
    files = migrate.migration_files()
    assert applied == [migrate.NAME_RE.match(p.name).group(1) for p in files]
    rows = query(conn, "SELECT version, script, checksum_sha256, is_success, execution_ms >= 0, applied_at IS NOT NULL"
                       " FROM meta.schema_migrations ORDER BY installed_rank")
    expected = [
        (migrate.NAME_RE.match(p.name).group(1), p.name, hashlib.sha256(p.read_bytes()).hexdigest(), True, True, True)
        for p in files
    ]
    assert rows == expected
    # the layer schemas and tables exist
    tables = {r[0] for r in query(conn, "SELECT table_schema || '.' || table_name FROM information_schema.tables")}
    assert {"raw.raw_events", "raw.ingested_files", "stg.orders", "meta.feature_registry"} <= tables


def test_second_run_applies_nothing(conn):
    migrate.apply_pending(conn, log=lambda _: None)
    assert migrate.apply_pending(conn, log=lambda _: None) == []
    assert query(conn, "SELECT count(*) FROM meta.schema_migrations") == [(len(migrate.migration_files()),)]


def test_edited_migration_is_refused_naming_file_and_both_checksums(conn, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    edited = directory / "V002__create_raw_events.sql"
    before = hashlib.sha256(edited.read_bytes()).hexdigest()
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    after = hashlib.sha256(edited.read_bytes()).hexdigest()
    with pytest.raises(migrate.MigrationError) as error:
        migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    message = str(error.value)
    assert str(edited) in message and before in message and after in message


def test_failed_migration_is_rolled_back_and_recorded(conn, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    (directory / "V900__broken.sql").write_text(
        "CREATE TABLE stg.half_done (id int);\nSELECT 1 / 0;\n"
    )
    with pytest.raises(migrate.MigrationError, match="V900__broken.sql.*division by zero"):
        migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    # the migration's own statements were rolled back with it
    assert query(conn, "SELECT to_regclass('stg.half_done')") == [(None,)]
    assert query(conn, "SELECT version, is_success FROM meta.schema_migrations WHERE version = '900'") == [
        ("900", False)
    ]
    # once fixed, it applies and the failed attempt stays in the history
    (directory / "V900__broken.sql").write_text("CREATE TABLE stg.half_done (id int);\n")
    assert migrate.apply_pending(conn, directory=directory, log=lambda _: None) == ["900"]
    assert query(conn, "SELECT is_success FROM meta.schema_migrations WHERE version = '900'"
                       " ORDER BY installed_rank") == [(False,), (True,)]


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "add_table.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError, match="V<version>__<description>.sql"):
        migrate.migration_files(tmp_path)


def test_history_refuses_two_successes_for_one_version(conn):
    migrate.apply_pending(conn, log=lambda _: None)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO meta.schema_migrations (version, description, script, checksum_sha256,"
                     " execution_ms, is_success) VALUES ('001', 'x', 'x', 'x', 0, true)")


def test_deleted_migration_is_refused(conn, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    (directory / "V003__create_stg_orders.sql").unlink()
    with pytest.raises(migrate.MigrationError, match="V003 was applied to this database but its file is missing"):
        migrate.apply_pending(conn, directory=directory, log=lambda _: None)


def test_migration_numbered_below_the_latest_applied_is_refused(conn, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    (directory / "V900__later.sql").write_text("SELECT 1;\n")
    migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    (directory / "V800__forgotten.sql").write_text("CREATE TABLE stg.forgotten (id int);\n")
    with pytest.raises(migrate.MigrationError, match="V800__forgotten.sql: V800 is numbered below V900"):
        migrate.apply_pending(conn, directory=directory, log=lambda _: None)
    assert query(conn, "SELECT to_regclass('stg.forgotten')") == [(None,)]
