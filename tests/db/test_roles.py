"""Least privilege: the owner, the loader and the reader (sql/migrations/V011, scripts/db/roles.py).

The loader (what the data stages run as) cannot change the raw layer in any way, the reader
cannot write anything, a role that may not create roles is told what a DBA runs, and a
password in DATABASE_URL is never shown or stored.

Most tests use the suite's server. The roles are cluster-wide, so the tests that need a
cluster without them (or an authentication method of their own) start a throwaway embedded
server of their own, even when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from scripts.db import migrate, roles
from scripts.db import server as embedded
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

ORDERS = HEADER + "".join(
    f"O{i},C{i % 7},2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00:00,{i}.00,completed\n" for i in range(1, 120))
LAYERS = ("raw", "stg", "feats", "meta", "work")
DERIVED = ("stg", "feats", "meta", "work")
PUBLISHED = ("stg", "feats", "meta")
# What the owner keeps in the derived layers: the history and the tables a trigger guards.
KEPT_BY_OWNER_SQL = """
    c.oid = to_regclass('meta.schema_migrations')
    OR EXISTS (SELECT FROM pg_trigger AS t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
"""


def quiet(_: str) -> None:
    pass


def refused(conn: psycopg.Connection, statement: str, message: str = r"permission denied|must be owner") -> str:
    """Run ``statement``; assert that PostgreSQL refuses it for lack of privilege; return the message."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
        conn.execute(statement)
    assert re.search(message, error.value.diag.message_primary), (statement, error.value.diag.message_primary)
    return error.value.diag.message_primary


def relations(conn: psycopg.Connection, schemas: tuple[str, ...], kinds: str = "rpvm") -> list[tuple[str, str, str]]:
    """(qualified name, owner, relkind) of each table and view in ``schemas``."""
    return query(conn, "SELECT format('%%I.%%I', n.nspname, c.relname), c.relowner::regrole::text, c.relkind::text"
                       " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                       " WHERE n.nspname = ANY(%s) AND c.relkind = ANY(%s) ORDER BY 1",
                 (list(schemas), list(kinds)))


def misplaced_owners(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Relations and schemas whose owner is not the one V011 gives them."""
    return query(conn, f"""
        SELECT n.nspname, n.nspowner::regrole::text FROM pg_namespace AS n
        WHERE n.nspname = ANY(%(layers)s) AND n.nspowner <> 'raw_to_ready_owner'::regrole
        UNION ALL
        SELECT format('%%I.%%I', n.nspname, c.relname), c.relowner::regrole::text
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(layers)s) AND c.relkind IN ('r', 'p', 'v', 'm')
          AND c.relowner <> CASE WHEN n.nspname = 'raw' OR {KEPT_BY_OWNER_SQL}
                                 THEN 'raw_to_ready_owner' ELSE 'raw_to_ready_loader' END::regrole
        UNION ALL
        SELECT p.oid::regprocedure::text, p.proowner::regrole::text
        FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(layers)s)
          AND p.proowner <> CASE WHEN n.nspname = 'raw' OR p.prorettype = 'trigger'::regtype
                                 THEN 'raw_to_ready_owner' ELSE 'raw_to_ready_loader' END::regrole
        ORDER BY 1""", {"layers": list(LAYERS)})


@pytest.fixture
def migrated(conn: psycopg.Connection) -> psycopg.Connection:
    migrate.apply_pending(conn, log=quiet)
    return conn


@contextmanager
def login_role(admin_url: str, *member_of: str, attributes: str = "") -> Iterator[tuple[str, str]]:
    """A LOGIN role with a password (so it connects under any authentication method), a
    member of ``member_of``; yields (name, password) and drops it afterwards."""
    name, password = f"r2r_test_{uuid.uuid4().hex[:10]}", secrets.token_hex(16)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + attributes).format(
            sql.Identifier(name), sql.Literal(password)))
        for role in member_of:
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(name)))
    try:
        yield name, password
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def url_as(url: str, user: str, password: str | None) -> str:
    params = conninfo.conninfo_to_dict(url)
    params.update(user=user, password=password)
    return conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


@pytest.fixture(params=["set_role", "login"])
def loader(request, pg_admin_url: str, db_url: str, migrated: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A session running as the loader: the runner's way (the connecting role, here a
    superuser, and become_loader), and a LOGIN role that is a member of the loader only."""
    if request.param == "set_role":
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert roles.become_loader(conn) == roles.LOADER
            yield conn
        return
    with login_role(pg_admin_url, roles.LOADER) as (name, password):
        with psycopg.connect(url_as(db_url, name, password), autocommit=True) as conn:
            assert roles.become_loader(conn) == roles.LOADER
            yield conn


@pytest.fixture
def reader(pg_admin_url: str, db_url: str, migrated: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A LOGIN role that is a member of the reader only."""
    with login_role(pg_admin_url, roles.READER) as (name, password):
        with psycopg.connect(url_as(db_url, name, password), autocommit=True) as conn:
            yield conn


def add_raw_event(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO raw.raw_events (file_sha256, source_name, file_path, line_number, record_number,"
                 " run_id, ingested_at, payload) VALUES ('f', 'orders', 'x.csv', 2, 1, 'r', now(), '{}')")


# --- the roles and who owns what ------------------------------------------------------------


def test_migration_creates_three_nologin_roles_that_grant_no_more(migrated):
    rows = query(migrated, "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                           " FROM pg_roles WHERE rolname LIKE 'raw\\_to\\_ready\\_%%' ORDER BY rolname")
    assert rows == [(role, False, False, False, False, False) for role in sorted(roles.ROLES)]
    memberships = {(member, role): query(migrated, "SELECT pg_has_role(%s, %s, 'MEMBER')", (member, role))[0][0]
                   for member in roles.ROLES for role in roles.ROLES if member != role}
    # the owner may alter and drop the loader's tables (a migration); no other membership
    assert {pair for pair, member in memberships.items() if member} == {(roles.OWNER, roles.LOADER)}


def test_every_object_has_the_owner_v011_gives_it(migrated):
    """The owner keeps the schemas, raw, the history and guarded tables; the loader the rest.

    A later migration that creates a table in stg, feats, meta or work fails here: hand it to
    the loader (ALTER TABLE ... OWNER TO raw_to_ready_loader) so that the stages may replace
    it, or guard it with a trigger if it is append-only."""
    assert misplaced_owners(migrated) == []
    kept = {name for name, owner, _ in relations(migrated, DERIVED) if owner == roles.OWNER}
    assert kept >= {"meta.schema_migrations", "meta.quarantine"}
    assert {owner for _, owner, _ in relations(migrated, ("raw",))} == {roles.OWNER}
    # the append-only guards are in place
    triggers = query(migrated, "SELECT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
                               " AND tgenabled = 'O' ORDER BY 1")
    assert [t for (t,) in triggers] == ["meta.quarantine", "raw.ingested_files", "raw.raw_events"]


def test_v011_is_idempotent_as_make_roles_runs_it_again(migrated):
    before = misplaced_owners(migrated), query(migrated, "SELECT count(*) FROM pg_default_acl")
    roles.set_up(migrated, log=quiet)
    roles.set_up(migrated, log=quiet)
    assert (misplaced_owners(migrated), query(migrated, "SELECT count(*) FROM pg_default_acl")) == before


# --- the loader -----------------------------------------------------------------------------

RAW_REFUSED = [
    ("UPDATE raw.raw_events SET run_id = run_id", "permission denied for table raw_events"),
    ("DELETE FROM raw.raw_events", "permission denied for table raw_events"),
    ("TRUNCATE raw.raw_events", "permission denied for table raw_events"),
    ("UPDATE raw.ingested_files SET run_id = run_id", "permission denied for table ingested_files"),
    ("DELETE FROM raw.ingested_files", "permission denied for table ingested_files"),
    ("TRUNCATE raw.ingested_files", "permission denied for table ingested_files"),
    ("ALTER TABLE raw.raw_events DISABLE TRIGGER ALL", "must be owner of table raw_events"),
    ("ALTER TABLE raw.raw_events DISABLE TRIGGER raw_events_refuse_modification", "must be owner of table raw_events"),
    ("ALTER TABLE raw.ingested_files DISABLE TRIGGER USER", "must be owner of table ingested_files"),
    ("DROP TRIGGER raw_events_refuse_modification ON raw.raw_events", "must be owner of (table|relation) raw_events"),
    ("ALTER TABLE raw.raw_events ADD COLUMN note text", "must be owner of table raw_events"),
    ("ALTER TABLE raw.raw_events ALTER COLUMN payload DROP NOT NULL", "must be owner of table raw_events"),
    ("ALTER TABLE raw.raw_events OWNER TO raw_to_ready_loader", "must be owner of table raw_events"),
    ("DROP TABLE raw.raw_events", "must be owner of table raw_events"),
    ("CREATE TABLE raw.mine (id int)", "permission denied for schema raw"),
    ("CREATE OR REPLACE FUNCTION raw.refuse_modification() RETURNS trigger LANGUAGE plpgsql"
     " AS 'BEGIN RETURN NULL; END'", "permission denied for schema raw|must be owner of function"),
    ("ALTER FUNCTION raw.refuse_modification() RENAME TO gone", "permission denied|must be owner of function"),
    ("SET session_replication_role = replica", 'permission denied to set parameter "session_replication_role"'),
    # the append-only meta table is the owner's too
    ("UPDATE meta.quarantine SET check_id = check_id", "permission denied for table quarantine"),
    ("DELETE FROM meta.quarantine", "permission denied for table quarantine"),
    ("TRUNCATE meta.quarantine", "permission denied for table quarantine"),
    ("ALTER TABLE meta.quarantine DISABLE TRIGGER ALL", "must be owner of table quarantine"),
    ("CREATE OR REPLACE FUNCTION meta.refuse_modification() RETURNS trigger LANGUAGE plpgsql"
     " AS 'BEGIN RETURN NULL; END'", "must be owner of function refuse_modification"),
    ("INSERT INTO meta.schema_migrations (version, description, script, checksum_sha256, execution_ms,"
     " is_success) VALUES ('999', 'x', 'x', 'x', 0, true)", "permission denied for table schema_migrations"),
    ("DELETE FROM meta.schema_migrations", "permission denied for table schema_migrations"),
]


@pytest.mark.parametrize("statement, message", RAW_REFUSED, ids=[s for s, _ in RAW_REFUSED])
def test_loader_cannot_change_the_raw_layer(loader, statement, message):
    """Refused by the privilege system, before any trigger could: the message is PostgreSQL's
    own, not the append-only trigger's (which raises the same SQLSTATE)."""
    add_raw_event(loader)
    refused(loader, statement, message)
    assert loader.execute("SELECT current_user").fetchone()[0] == roles.LOADER
    assert query(loader, "SELECT count(*), min(run_id) FROM raw.raw_events") == [(1, "r")]


def test_loader_logged_in_as_itself_cannot_become_anyone_else(pg_admin_url, db_url, migrated):
    """SET ROLE on a superuser's session guards against mistakes in the stages' SQL; a LOGIN
    role that is a member of the loader only cannot get more even by asking."""
    with login_role(pg_admin_url, roles.LOADER) as (name, password):
        with psycopg.connect(url_as(db_url, name, password), autocommit=True) as conn:
            refused(conn, f"SET ROLE {roles.OWNER}", 'permission denied to set role "raw_to_ready_owner"')
            refused(conn, f"SET SESSION AUTHORIZATION {roles.OWNER}", "permission denied to set session authorization")
            conn.execute("RESET ROLE")
            refused(conn, "UPDATE raw.raw_events SET run_id = run_id", "permission denied for table raw_events")
            refused(conn, "ALTER TABLE raw.raw_events DISABLE TRIGGER ALL", "must be owner of table raw_events")
            conn.execute("GRANT UPDATE, DELETE, TRUNCATE ON raw.raw_events TO PUBLIC")  # a warning: nothing granted
            assert query(conn, "SELECT has_table_privilege(%s, 'raw.raw_events', 'UPDATE, DELETE, TRUNCATE')",
                         (name,)) == [(False,)]


def test_loader_may_do_what_the_data_stages_do(loader):
    # ingest: temporary landing tables, then append to raw and read it back
    loader.execute("CREATE TEMPORARY TABLE raw_landing (order_id text) ON COMMIT DROP")
    add_raw_event(loader)
    loader.execute("INSERT INTO raw.ingested_files (file_sha256, source_name, file_path, file_bytes, record_count,"
                   " run_id, ingested_at) VALUES ('f', 'orders', 'x.csv', 1, 1, 'r', now())")
    assert query(loader, "SELECT count(*) FROM raw.raw_events JOIN raw.ingested_files USING (file_sha256)") == [(1,)]
    notices: list[str] = []
    loader.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    loader.execute("ANALYZE raw.raw_events")
    if loader.info.server_version >= 170000:  # MAINTAIN; on 16 the loader's ANALYZE is skipped
        assert notices == []
    # the derived layers: create, fill, replace and drop tables of its own, also ones a migration made
    for schema in DERIVED:
        loader.execute(f"CREATE TABLE {schema}.scratch AS SELECT 1 AS n")
        loader.execute(f"CREATE INDEX ON {schema}.scratch (n)")
        loader.execute(f"UPDATE {schema}.scratch SET n = 2")
        loader.execute(f"TRUNCATE {schema}.scratch")
        loader.execute(f"DROP TABLE {schema}.scratch")
    loader.execute("CREATE FUNCTION feats.one() RETURNS integer LANGUAGE sql RETURN 1")
    loader.execute("DROP FUNCTION feats.one()")
    with loader.transaction(force_rollback=True):
        loader.execute("DROP TABLE stg.orders CASCADE")
        loader.execute("DROP TABLE meta.validation_failures")
    loader.execute("ALTER TABLE stg.orders ADD COLUMN note text")
    # the run log and the append-only quarantine: it appends and updates its own run
    loader.execute("INSERT INTO meta.runs (run_id, config_path) VALUES ('r', 'c.yaml')")
    loader.execute("UPDATE meta.runs SET status = 'passed' WHERE run_id = 'r'")
    loader.execute("INSERT INTO meta.quarantine (run_id, check_id, event_id, file_sha256, file_path, line_number,"
                   " payload) SELECT 'r', 'c', event_id, file_sha256, file_path, line_number, payload"
                   " FROM raw.raw_events")
    assert query(loader, "SELECT count(*) FROM meta.quarantine") == [(1,)]
    assert query(loader, "SELECT is_success FROM meta.schema_migrations WHERE version = '011'") == [(True,)]


def test_become_loader_changes_nothing_where_it_may_not(pg_admin_url, db_factory):
    # a database not migrated yet (the roles exist in the cluster): the connecting role stays
    with psycopg.connect(db_factory(), autocommit=True) as conn:
        user = conn.execute("SELECT session_user").fetchone()[0]
        assert roles.become_loader(conn) == user
    # a role that is no member of the loader: itself
    url = db_factory()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.apply_pending(conn, log=quiet)
    with login_role(pg_admin_url) as (name, password):
        with psycopg.connect(url_as(url, name, password), autocommit=True) as conn:
            assert roles.become_loader(conn) == name
    # the runner's session: the loader from then on, the connecting role unchanged
    with psycopg.connect(url, autocommit=True) as conn:
        assert roles.become_loader(conn) == roles.LOADER
        assert conn.execute("SELECT current_user, session_user").fetchone() == (roles.LOADER, user)
        assert roles.become_loader(conn) == roles.LOADER  # again: no change


# --- the reader -----------------------------------------------------------------------------


def write_statements(conn: psycopg.Connection, name: str, kind: str) -> list[str]:
    column = query(conn, "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass"
                         " AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = ''"
                         " ORDER BY attnum LIMIT 1", (name,))[0][0]
    statements = [f"INSERT INTO {name} DEFAULT VALUES", f"UPDATE {name} SET {column} = {column}",
                  f"DELETE FROM {name}"]
    return statements + ([f"TRUNCATE {name}"] if kind in "rp" else [])


def test_reader_reads_what_is_published_and_writes_nothing(reader, migrated):
    # a table a stage creates later (as the loader) is published to the reader too
    migrated.execute("SET ROLE raw_to_ready_loader")
    migrated.execute("CREATE TABLE feats.later AS SELECT 1 AS n")
    migrated.execute("CREATE VIEW meta.later_view AS SELECT n FROM feats.later")
    migrated.execute("RESET ROLE")
    published = relations(migrated, PUBLISHED, "rpv")
    assert {"feats.later", "meta.later_view", "stg.orders", "meta.runs", "meta.quarantine"} <= {n for n, _, _ in published}
    for name, _, _ in published:
        reader.execute(f"SELECT * FROM {name} LIMIT 0")
    refused(reader, "SELECT * FROM raw.raw_events", "permission denied for schema raw")
    everything = relations(migrated, LAYERS, "rpv")
    statements = [s for name, _, kind in everything for s in write_statements(migrated, name, kind)]
    assert len(statements) > 40
    for statement in statements:
        refused(reader, statement, "permission denied for (table|view|schema)")
    for schema in (*LAYERS, "public"):
        refused(reader, f"CREATE TABLE {schema}.mine (id int)", f"permission denied for schema {schema}")
    refused(reader, "CREATE FUNCTION feats.mine() RETURNS integer LANGUAGE sql RETURN 1",
            "permission denied for schema feats")
    refused(reader, "CREATE SCHEMA mine", "permission denied for database")
    refused(reader, "ALTER TABLE feats.later ADD COLUMN m int", "must be owner of table later")
    refused(reader, "DROP VIEW meta.later_view", "must be owner of view later_view")
    refused(reader, f"SET ROLE {roles.LOADER}", "permission denied to set role")


# --- existing databases and later migrations ------------------------------------------------


def migrations_without(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    for name in names:
        (directory / name).unlink()
    return directory


def test_a_database_migrated_before_v011_is_handed_over(conn, tmp_path):
    # the database as it was before V011: the migrations numbered from V011 on are not there
    later = sorted(p.name for p in migrate.MIGRATIONS_DIR.glob("V*.sql")
                   if p.name > roles.ROLES_MIGRATION.name)
    directory = migrations_without(tmp_path, roles.ROLES_MIGRATION.name, *later)
    migrate.apply_pending(conn, directory=directory, log=quiet)
    # what runs as a superuser left: data, and tables and a function the stages created
    add_raw_event(conn)
    conn.execute("CREATE TABLE feats.old_features AS SELECT 1 AS n")
    conn.execute("CREATE TABLE work.old_scratch (n int)")
    conn.execute("CREATE FUNCTION feats.old_function() RETURNS integer LANGUAGE sql RETURN 1")
    shutil.copy(roles.ROLES_MIGRATION, directory)
    for name in later:
        shutil.copy(migrate.MIGRATIONS_DIR / name, directory)
    applied = migrate.apply_pending(conn, directory=directory, log=quiet)
    assert applied[0] == "011" and len(applied) == 1 + len(later)
    assert misplaced_owners(conn) == []
    assert roles.become_loader(conn) == roles.LOADER
    conn.execute("DROP TABLE feats.old_features")
    conn.execute("DROP TABLE work.old_scratch")
    conn.execute("DROP FUNCTION feats.old_function()")
    refused(conn, "DELETE FROM raw.raw_events", "permission denied for table raw_events")
    assert query(conn, "SELECT count(*) FROM raw.raw_events") == [(1,)]


def test_later_migrations_run_as_the_owner(conn, tmp_path):
    directory = migrations_without(tmp_path)
    (directory / "V900__later.sql").write_text(
        "CREATE TABLE stg.later (id int);\nCREATE TABLE raw.later_raw (id int);\n"
        "ALTER TABLE stg.orders ADD COLUMN later text;\n")
    (directory / "V901__as_the_connecting_role.sql").write_text("RESET ROLE;\nCREATE TABLE stg.by_session (id int);\n")
    migrate.apply_pending(conn, directory=directory, log=quiet)
    user = conn.execute("SELECT session_user").fetchone()[0]
    owners = dict(query(conn, "SELECT c.oid::regclass::text, c.relowner::regrole::text FROM pg_class AS c"
                              " WHERE c.oid IN ('stg.later'::regclass, 'raw.later_raw'::regclass,"
                              " 'stg.by_session'::regclass)"))
    assert owners == {"stg.later": roles.OWNER, "raw.later_raw": roles.OWNER, "stg.by_session": user}
    # the history names the role that connected
    assert query(conn, "SELECT DISTINCT applied_by FROM meta.schema_migrations") == [(user,)]
    # default privileges: the loader reads and writes the owner's new derived table, appends to raw
    assert conn.execute("SELECT current_user").fetchone()[0] == user  # the migrator left no role behind
    assert roles.become_loader(conn) == roles.LOADER
    conn.execute("INSERT INTO stg.later VALUES (1)")
    conn.execute("UPDATE stg.later SET id = 2")
    conn.execute("INSERT INTO raw.later_raw VALUES (1)")
    refused(conn, "UPDATE raw.later_raw SET id = 2", "permission denied for table later_raw")
    refused(conn, "DROP TABLE stg.later", "must be owner of table later")  # hand it over to let stages drop it
    conn.execute("RESET ROLE")
    conn.execute("SET ROLE raw_to_ready_reader")
    assert query(conn, "SELECT id FROM stg.later") == [(2,)]


# --- the whole pipeline as the loader -------------------------------------------------------


def run_as_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring run.py needs, applied by hand: become the loader once the migrations are done."""
    apply_pending = migrate.apply_pending

    def then_become_loader(conn: psycopg.Connection, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        applied = apply_pending(conn, *args, **kwargs)
        roles.become_loader(conn)
        return applied

    monkeypatch.setattr(migrate, "apply_pending", then_become_loader)


def check_the_stages_ran_as_the_loader(db_url: str) -> None:
    """What the stages created (stg.model_orders, the features) is the loader's, as is every
    table of the derived layers but the owner's few."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert misplaced_owners(conn) == []
        loaders = {name for name, owner, _ in relations(conn, DERIVED) if owner == roles.LOADER}
        assert {"stg.model_orders", "feats.customer_features"} <= loaders
        assert query(conn, "SELECT count(*) > 0 FROM raw.raw_events") == [(True,)]


def test_pipeline_runs_as_the_loader(project, db_url, monkeypatch, pg_admin_url):
    """The whole pipeline with the data stages as the loader (the run.py wiring applied by
    hand); the reader then reads every published table and view."""
    run_as_loader(monkeypatch)
    project.write_csv("orders.csv", ORDERS)
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_PASSED, report["errors"]
    check_the_stages_ran_as_the_loader(db_url)
    code, report = run_pipeline(project.write_config(), db_url)  # a second run replaces its own tables
    assert code == EXIT_PASSED, report["errors"]
    with login_role(pg_admin_url, roles.READER) as (name, password):
        with psycopg.connect(url_as(db_url, name, password), autocommit=True) as reader:
            published = relations(reader, PUBLISHED, "rpvm")
            assert len(published) > 10
            for relation, _, _ in published:
                reader.execute(f"SELECT * FROM {relation} LIMIT 1")
            features_as_of = query(reader, "SELECT to_regprocedure('feats.features_as_of(text[], timestamptz[])')")
            if features_as_of[0][0]:  # reads stg.orders as its caller
                reader.execute("SELECT * FROM feats.features_as_of(ARRAY['C1'], ARRAY[now()])").fetchall()


def test_runner_runs_the_data_stages_as_the_loader(project, db_url):
    project.write_csv("orders.csv", ORDERS)
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_PASSED, report["errors"]
    check_the_stages_ran_as_the_loader(db_url)


# --- clusters of their own: no roles yet, a restricted role, a password -----------------------


class Cluster:
    """A throwaway embedded server; each test starts with no raw-to-ready role in it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.url = embedded.start_server(base / "pgdata", cleanup_mode="delete")
        self.databases: list[str] = []
        self.logins: list[str] = []

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def login(self, attributes: str = "", password: str | None = None) -> str:
        name = f"r2r_app_{len(self.logins)}_{uuid.uuid4().hex[:6]}"
        with self.admin() as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN " + attributes).format(sql.Identifier(name)))
            if password:
                admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        self.logins.append(name)
        return name

    def database(self, owner: str) -> str:
        name = f"r2r_{uuid.uuid4().hex[:10]}"
        with self.admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        self.databases.append(name)
        return name

    def url_for(self, database: str, user: str | None = None, password: str | None = None) -> str:
        return url_as(embedded.with_database(self.url, database), user or "postgres", password)

    def reset(self) -> None:
        with self.admin() as admin:
            for name in self.databases:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for name in [*roles.ROLES, *self.logins]:  # the roles first: the logins granted them
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        self.databases, self.logins = [], []


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="r2r-roles-"))
    try:
        yield Cluster(base)
    finally:
        try:
            embedded.stop_server(base / "pgdata")
        except Exception:  # noqa: BLE001 - the package may have stopped it already
            pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(own_cluster: Cluster) -> Iterator[Cluster]:
    own_cluster.reset()
    with own_cluster.admin() as admin:
        assert query(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'raw\\_to\\_ready\\_%%'") == [(0,)]
    yield own_cluster
    own_cluster.reset()


def test_role_that_may_not_create_roles_is_told_what_a_dba_runs(cluster):
    app = cluster.login()
    database = cluster.database(owner=app)
    with psycopg.connect(cluster.url_for(database, app), autocommit=True) as conn:
        with pytest.raises(migrate.MigrationError) as error:
            migrate.apply_pending(conn, log=quiet)
        message = str(error.value)
        assert "V011__create_roles.sql: migration V011 failed" in message
        assert f"role raw_to_ready_owner does not exist, and {app} may not create roles" in message
        assert "`make roles`" in message and "GRANT raw_to_ready_owner TO <role>" in message
        assert query(conn, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'raw\\_to\\_ready\\_%%'") == [(0,)]
        assert query(conn, "SELECT version, is_success FROM meta.schema_migrations ORDER BY installed_rank DESC"
                           " LIMIT 1") == [("011", False)]
    # the DBA runs `make roles` and lets the app's role migrate as the owner: V011 then applies
    result = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "roles"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "DATABASE_URL": cluster.url_for(database)})
    assert result.returncode == 0, result.stderr
    assert f"roles {', '.join(roles.ROLES)} set up in database {database}" in result.stdout
    with cluster.admin() as admin:
        admin.execute(sql.SQL("GRANT raw_to_ready_owner TO {}").format(sql.Identifier(app)))
    with psycopg.connect(cluster.url_for(database, app), autocommit=True) as conn:
        # V011, then the migrations after it, as the owner
        assert migrate.apply_pending(conn, log=quiet)[0] == "011"
        assert query(conn, "SELECT bool_and(is_success) FROM meta.schema_migrations WHERE version >= '011'"
                           " AND installed_rank > (SELECT max(installed_rank) FROM meta.schema_migrations"
                           " WHERE NOT is_success)") == [(True,)]
        assert misplaced_owners(conn) == []
        assert roles.migrator_role(conn) == roles.OWNER
        assert roles.become_loader(conn) == roles.LOADER
        refused(conn, "TRUNCATE raw.raw_events", "permission denied for table raw_events")


def test_role_that_may_not_create_roles_and_is_no_owner_member_is_told_too(cluster):
    app = cluster.login()
    database = cluster.database(owner=app)
    with cluster.admin() as admin:  # roles created by hand, but the app's role is no member of the owner
        for role in roles.ROLES:
            admin.execute(f"CREATE ROLE {role} NOLOGIN")
        admin.execute(f"GRANT {roles.LOADER} TO {roles.OWNER}")
    with psycopg.connect(cluster.url_for(database, app), autocommit=True) as conn:
        with pytest.raises(migrate.MigrationError) as error:
            migrate.apply_pending(conn, log=quiet)
    message = str(error.value)
    assert f"raw-to-ready roles: {app} may not make {app} a member of raw_to_ready_owner" in message
    assert "`make roles`" in message


def test_make_roles_before_the_first_migration(cluster):
    """A DBA sets the roles up on an empty database; a role that is no superuser and only a
    member of the owner then runs every migration, all of them as the owner."""
    app = cluster.login()
    database = cluster.database(owner=app)
    with cluster.admin() as admin, psycopg.connect(cluster.url_for(database), autocommit=True) as dba:
        notices: list[str] = []
        roles.set_up(dba, log=notices.append)
        assert any("has no pipeline schemas yet" in n for n in notices)
        admin.execute(sql.SQL("GRANT raw_to_ready_owner TO {}").format(sql.Identifier(app)))
    with psycopg.connect(cluster.url_for(database, app), autocommit=True) as conn:
        applied = migrate.apply_pending(conn, log=quiet)
        assert applied[0] == "001" and "011" in applied
        assert misplaced_owners(conn) == []
        assert query(conn, "SELECT DISTINCT applied_by FROM meta.schema_migrations") == [(app,)]


def test_role_with_createrole_sets_the_roles_up_itself(cluster):
    """A managed server's administrator is often no superuser but has CREATEROLE."""
    dba = cluster.login("CREATEROLE CREATEDB")
    database = cluster.database(owner=dba)
    with psycopg.connect(cluster.url_for(database, dba), autocommit=True) as conn:
        migrate.apply_pending(conn, log=quiet)
        assert misplaced_owners(conn) == []
        assert query(conn, "SELECT pg_has_role(%s, 'raw_to_ready_owner', 'SET')", (dba,)) == [(True,)]
        assert roles.become_loader(conn) == roles.LOADER
        refused(conn, "ALTER TABLE raw.raw_events DISABLE TRIGGER ALL", "must be owner of table raw_events")


# What "Roles and least privilege" in the README gives a DBA: once per cluster, then per
# database (here the database belongs to the DBA, and app is the role that migrates).
DBA_STATEMENTS = """
CREATE ROLE raw_to_ready_owner NOLOGIN;
CREATE ROLE raw_to_ready_loader NOLOGIN;
CREATE ROLE raw_to_ready_reader NOLOGIN;
GRANT raw_to_ready_loader TO raw_to_ready_owner;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {database} TO raw_to_ready_owner;
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO raw_to_ready_loader, raw_to_ready_reader;
GRANT raw_to_ready_owner TO {app};
CREATE ROLE {pipeline} LOGIN IN ROLE raw_to_ready_loader;
CREATE ROLE {analyst} LOGIN IN ROLE raw_to_ready_reader;
"""


def test_dba_statements_then_migrations_then_a_pipeline_role(cluster, project, monkeypatch):
    """The README's statements on a database of the DBA's; a role that is only the owner's
    member migrates; a LOGIN role that is only the loader's member runs the pipeline; one
    that is only the reader's member reads the features."""
    app = cluster.login()
    database = cluster.database(owner="postgres")
    pipeline, analyst = f"{app}_pipeline", f"{app}_analyst"
    cluster.logins += [pipeline, analyst]
    with psycopg.connect(cluster.url_for(database), autocommit=True) as dba:
        dba.execute(DBA_STATEMENTS.format(database=database, app=app, pipeline=pipeline, analyst=analyst))
    with psycopg.connect(cluster.url_for(database, app), autocommit=True) as conn:
        assert roles.migrator_role(conn) == roles.OWNER
        migrate.apply_pending(conn, log=quiet)
        assert misplaced_owners(conn) == []
    run_as_loader(monkeypatch)
    project.write_csv("orders.csv", ORDERS)
    code, report = run_pipeline(project.write_config(), cluster.url_for(database, pipeline))
    assert code == EXIT_PASSED, report["errors"]
    check_the_stages_ran_as_the_loader(cluster.url_for(database))
    with psycopg.connect(cluster.url_for(database, analyst), autocommit=True) as reader:
        assert query(reader, "SELECT count(*) FROM stg.orders") == [(119,)]
        assert query(reader, "SELECT count(DISTINCT customer_id) FROM feats.customer_features") == [(7,)]
        refused(reader, "DELETE FROM feats.customer_features", "permission denied for (table|view)")


def require_password(cluster: Cluster, role: str) -> None:
    """pg_hba.conf: ``role`` must give its password over the socket (the rest keep trust)."""
    with cluster.admin() as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
        hba.write_text(f"local all {role} scram-sha-256\n" + hba.read_text())
        admin.execute("SELECT pg_reload_conf()")


def test_password_in_database_url_never_shows(cluster, project):
    """Runs of the pipeline (passing, and failing on a wrong password), `make roles`, migrate and
    embedded, all given DATABASE_URL with a password: the password is in no output, report,
    rendered SQL, nor any row of the database."""
    password = "Pw" + secrets.token_hex(12)
    wrong = "Wrong" + secrets.token_hex(12)
    app = cluster.login(password=password)
    database = cluster.database(owner=app)
    with cluster.admin() as admin:
        admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(app)))
    require_password(cluster, app)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.url_for(database, app, wrong)).close()
    url = cluster.url_for(database, app, password)
    assert password in url
    # a DBA sets the roles up; the app's role migrates as the owner, runs the stages as the loader
    assert subprocess.run([sys.executable, "-m", "scripts.db.roles"], cwd=REPO_ROOT, capture_output=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": cluster.url_for(database)}).returncode == 0
    with cluster.admin() as admin:
        admin.execute(sql.SQL("GRANT raw_to_ready_owner TO {}").format(sql.Identifier(app)))

    project.write_csv("orders.csv", ORDERS)
    config = project.write_config()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    runs = [
        ([sys.executable, "-m", "scripts.run", "--config", config], url, EXIT_PASSED),
        ([sys.executable, "-m", "scripts.run", "--config", config], url, EXIT_PASSED),
        ([sys.executable, "-m", "scripts.run", "--config", config], cluster.url_for(database, app, wrong),
         EXIT_RUNTIME),
        ([sys.executable, "-m", "scripts.db.migrate"], url, 0),
        ([sys.executable, "-m", "scripts.db.roles"], url, 0),
        ([sys.executable, "-m", "scripts.db.server", "up"], url, 0),
        ([sys.executable, "-m", "scripts.db.server", "up"], cluster.url_for(database, app, wrong), 3),
        ([sys.executable, "-m", "scripts.db.migrate"], cluster.url_for(database, app, wrong), 3),
        ([sys.executable, "-m", "scripts.db.roles"], cluster.url_for(database, app, wrong), 3),
    ]
    shown = []
    for argv, database_url, expected in runs:
        result = subprocess.run(argv, cwd=project.root, env={**env, "DATABASE_URL": database_url},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == expected, (argv, result.stdout, result.stderr)
        shown += [result.stdout, result.stderr]
    assert "password authentication failed" in "".join(shown)  # the failing runs said why
    assert "password=***" in "".join(shown)  # and showed the URL masked

    # the passing runs wrote reports and rendered SQL; the failing one a report
    reports = sorted((project.root / "artifacts" / "reports").glob("*.json"))
    assert len(reports) == 3
    assert [json.loads(p.read_text())["exit_code"] for p in reports].count(EXIT_PASSED) == 2
    files = [p for p in (project.root / "artifacts").rglob("*") if p.is_file()]
    assert any(p.suffix == ".sql" and "runs" in p.parts for p in files)

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [name for name, _, _ in relations(conn, LAYERS, "rpvm")]
        assert query(conn, "SELECT count(*) FROM stg.orders") == [(119,)]
        leaks = {name: query(conn, f"SELECT count(*) FROM {name} AS t WHERE strpos(t::text, %s) > 0"
                                   " OR strpos(t::text, %s) > 0", (password, wrong))[0][0] for name in tables}
        activity = query(conn, "SELECT count(*) FROM pg_stat_activity AS a"
                               " WHERE strpos(a::text, %s) > 0 OR strpos(a::text, %s) > 0", (password, wrong))
    for text in shown + [p.read_text(errors="replace") for p in files]:
        assert password not in text and wrong not in text
    assert {name: n for name, n in leaks.items() if n} == {}
    assert activity == [(0,)]
