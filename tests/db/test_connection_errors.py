"""A connection that fails says why and what to do (scripts/db/connection.py).

Each cause is provoked for real and the message checked for the cause, its fix, and the
database named with its password masked: a port nothing listens on (refused), a listener
that never answers (timeout), a host name that cannot resolve, a database and a role that do
not exist, a role without LOGIN, a database the role may not CONNECT to, a wrong or missing
password, peer authentication, a pg_hba.conf line that rejects, and sslmode=require against
the test server (which has no SSL), reached over TCP through a relay to its socket.

The throwaway embedded server trusts every local connection (pg_hba.conf: ``local all all
trust``), so a password is never asked for there. The tests that need one add a line for
their own role to the server's pg_hba.conf (as tests/db/test_roles.py does) and reload; the
line is removed afterwards. Against a TEST_DATABASE_URL whose pg_hba.conf is not a local
file they skip, saying so, unless that server asks for the password anyway.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from scripts.db import connection
from scripts.errors import EXIT_RUNTIME, ConnectError
from tests.helpers import HEADER, REPO_ROOT

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv" / "bin" / "python").exists() \
    else sys.executable


def refusal(url: str, **options: object) -> str:
    """The message connection.connect raises for ``url``; the test fails if it connects."""
    with pytest.raises(ConnectError) as error:
        connection.connect(url, **options).close()
    return str(error.value)


def with_params(url: str, **params: object) -> str:
    merged = conninfo.conninfo_to_dict(url)
    merged.update(params)
    return conninfo.make_conninfo(**merged)


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def no_password_from_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No password reaches libpq but the one in the URL (no PGPASSWORD, no ~/.pgpass)."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.delenv("DATABASE_URL", raising=False)


@contextmanager
def login_role(admin_url: str, attributes: str = "LOGIN", password: str | None = None) -> Iterator[str]:
    name = f"r2r_conn_{uuid.uuid4().hex[:10]}"
    with admin(admin_url) as conn:
        statement = sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name))
        if password:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        conn.execute(statement)
    try:
        yield name
    finally:
        with admin(admin_url) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def hba_first(admin_url: str, *lines: str) -> Iterator[None]:
    """``lines`` at the top of the server's pg_hba.conf (reloaded), removed afterwards; skips
    when the file is not one this process can write (a server of TEST_DATABASE_URL elsewhere)."""
    with admin(admin_url) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        if not (hba.is_file() and os.access(hba, os.W_OK)):
            pytest.skip(f"the server's pg_hba.conf ({hba}) is not a file this test can change")
        original = hba.read_text()
        hba.write_text("".join(f"{line}\n" for line in lines) + original)
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(original)
        with admin(admin_url) as conn:
            conn.execute("SELECT pg_reload_conf()")


def asks_for(admin_url: str, role: str, method: str) -> AbstractContextManager[None]:
    """pg_hba.conf lines making ``role`` authenticate with ``method``, over the socket and TCP."""
    return hba_first(admin_url, f"local all {role} {method}", f"host all {role} 127.0.0.1/32 {method}",
                     f"host all {role} ::1/128 {method}")


@contextmanager
def listening(answer: bool) -> Iterator[int]:
    """A TCP port on 127.0.0.1: with ``answer`` false, bound but not listening (the kernel
    refuses connections); with it true, a listener whose connections complete and then hear
    nothing (the kernel accepts them into the backlog; nothing ever reads or writes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    if answer:
        sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def relay_to(admin_url: str) -> Iterator[int]:
    """A TCP port on 127.0.0.1 relaying every connection, byte for byte, to the test server
    (its Unix socket, or its host and port): the server speaks for itself, SSL negotiation
    included, to a client that connects over TCP."""
    params = conninfo.conninfo_to_dict(admin_url)
    host, port = params.get("host") or "localhost", int(params.get("port") or 5432)

    def upstream() -> socket.socket:
        if host.startswith("/"):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(f"{host}/.s.PGSQL.{port}")
            return server
        return socket.create_connection((host, port))

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            server = upstream()
            threading.Thread(target=pump, args=(client, server), daemon=True).start()
            threading.Thread(target=pump, args=(server, client), daemon=True).start()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


# --- each cause, provoked for real ----------------------------------------------------------


def test_refused_names_the_address_and_says_start_the_server(no_password_from_elsewhere):
    with listening(answer=False) as port:
        message = refusal(f"postgresql://someone:Secret123@127.0.0.1:{port}/anything")
    assert message.startswith(f"could not connect to user=someone password=*** dbname=anything host=127.0.0.1 "
                              f"port={port}: connection refused: no server is listening at that address\n")
    assert "Secret123" not in message
    assert f'port {port} failed: Connection refused' in message  # libpq's own words are kept
    assert "fix: is PostgreSQL running? set DATABASE_URL to the host and port it listens on" in message
    assert "`make db-up` starts it" in message


def test_a_socket_nothing_listens_on_is_refused_too(no_password_from_elsewhere, tmp_path):
    message = refusal(f"host={tmp_path} dbname=anything")
    assert "connection refused: no server is listening at that address" in message
    assert "No such file or directory" in message and "`make db-up` starts it" in message


def test_a_listener_that_never_answers_times_out(no_password_from_elsewhere):
    with listening(answer=True) as port:
        message = refusal(f"postgresql://someone@127.0.0.1:{port}/anything", connect_timeout=1)
    assert f"port={port}" in message
    assert "timed out: nothing answered within connect_timeout" in message
    assert "fix: check the host and port" in message and "connect_timeout=30" in message


def test_a_host_that_does_not_resolve(no_password_from_elsewhere):
    message = refusal("postgresql://someone@no-such-host.invalid:5432/anything")  # .invalid never resolves
    assert "the host name cannot be resolved" in message
    assert "fix: check the host in DATABASE_URL" in message


def test_missing_database_says_create_it_or_run_the_pipeline_first(pg_admin_url, no_password_from_elsewhere):
    name = f"r2r_missing_{uuid.uuid4().hex[:8]}"
    message = refusal(with_params(pg_admin_url, dbname=name))
    assert f"database {name} does not exist on this server" in message
    assert f"fix: create it (`createdb {name}`, or CREATE DATABASE {name})" in message
    assert "a pipeline's database is made by its first run" in message


def test_missing_role_says_create_it_or_name_another(pg_admin_url, no_password_from_elsewhere):
    name = f"r2r_nobody_{uuid.uuid4().hex[:8]}"
    url = with_params(pg_admin_url, user=name)
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError as exc:
        if "password authentication failed" in str(exc):
            pytest.skip("this server asks for a password before it says whether the role exists")
    message = refusal(url)
    assert f"role {name} does not exist on this server" in message
    assert f"fix: create it as a superuser (CREATE ROLE {name} LOGIN PASSWORD '...'" in message


def test_role_without_login(pg_admin_url, no_password_from_elsewhere):
    with login_role(pg_admin_url, "NOLOGIN") as name:
        message = refusal(with_params(pg_admin_url, user=name))
    assert f"role {name} exists but may not log in (NOLOGIN)" in message
    assert f"fix: ALTER ROLE {name} LOGIN" in message


def test_database_without_connect_privilege(pg_admin_url, db_url, no_password_from_elsewhere):
    database = conninfo.conninfo_to_dict(db_url)["dbname"]
    with admin(db_url) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    with login_role(pg_admin_url) as name:
        message = refusal(with_params(db_url, user=name))
    assert f"the user may not connect to database {database}" in message
    assert f"fix: GRANT CONNECT ON DATABASE {database} TO {name}" in message


def test_connection_limit_of_the_role(pg_admin_url, no_password_from_elsewhere):
    with login_role(pg_admin_url, "LOGIN CONNECTION LIMIT 0") as name:
        message = refusal(with_params(pg_admin_url, user=name))
    assert "the connection limit of the role or the database is reached" in message
    assert f'too many connections for role "{name}"' in message
    assert "fix: close its idle sessions (pg_stat_activity), or raise the limit" in message


def test_database_that_accepts_no_connections(pg_admin_url, db_url, no_password_from_elsewhere):
    database = conninfo.conninfo_to_dict(db_url)["dbname"]
    with admin(pg_admin_url) as conn:  # a database cannot disallow its own session's connections
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(database)))
    try:
        message = refusal(db_url)
    finally:  # the fixture drops it: it must accept the janitor's connection again
        with admin(pg_admin_url) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(database)))
    assert f"database {database} does not accept connections" in message
    assert f"fix: ALTER DATABASE {database} ALLOW_CONNECTIONS true" in message


def test_wrong_password(pg_admin_url, no_password_from_elsewhere):
    password, wrong = "Pw" + secrets.token_hex(8), "Wrong" + secrets.token_hex(8)
    with login_role(pg_admin_url, password=password) as name, asks_for(pg_admin_url, name, "scram-sha-256"):
        # the right password gets in: the server really checks it
        psycopg.connect(with_params(pg_admin_url, user=name, password=password)).close()
        message = refusal(with_params(pg_admin_url, user=name, password=wrong))
    assert "authentication failed: the server refused the password" in message
    assert f'password authentication failed for user "{name}"' in message
    assert f"fix: check the password of user {name} (in DATABASE_URL, ~/.pgpass or PGPASSWORD" in message
    assert "password=***" in message and wrong not in message and password not in message


def test_missing_password(pg_admin_url, no_password_from_elsewhere):
    with login_role(pg_admin_url, password="Pw" + secrets.token_hex(8)) as name, \
            asks_for(pg_admin_url, name, "scram-sha-256"):
        message = refusal(with_params(pg_admin_url, user=name))
    assert "the server asks for a password and none was given" in message
    assert "fix: give the password: in DATABASE_URL" in message


def test_peer_authentication_of_another_os_user(pg_admin_url, no_password_from_elsewhere):
    with login_role(pg_admin_url) as name, hba_first(pg_admin_url, f"local all {name} peer"):
        url = with_params(pg_admin_url, user=name)
        if not conninfo.conninfo_to_dict(url).get("host", "").startswith("/"):
            pytest.skip("peer authentication applies to Unix-socket connections only")
        message = refusal(url)
    assert "pg_hba.conf asks for peer/ident authentication" in message
    assert f"fix: connect as the operating-system user {name}" in message


def test_a_pg_hba_line_that_rejects(pg_admin_url, no_password_from_elsewhere):
    with login_role(pg_admin_url) as name, asks_for(pg_admin_url, name, "reject"):
        message = refusal(with_params(pg_admin_url, user=name))
    assert "no line of the server's pg_hba.conf lets this user reach this database from this host" in message
    assert "fix: ask the server's administrator for a pg_hba.conf line" in message


def test_sslmode_require_against_a_server_without_ssl(pg_admin_url, no_password_from_elsewhere):
    with admin(pg_admin_url) as conn:
        if conn.execute("SHOW ssl").fetchone()[0] == "on":
            pytest.skip("the test server offers SSL")
    with relay_to(pg_admin_url) as port:
        url = with_params(pg_admin_url, host="127.0.0.1", port=port)
        psycopg.connect(with_params(url, sslmode="disable")).close()  # the relay reaches the server
        message = refusal(with_params(url, sslmode="require"))
    assert "the server does not offer SSL/TLS, but sslmode requires it" in message
    assert "server does not support SSL, but SSL was required" in message
    assert "fix: on a trusted network set sslmode=prefer (or disable)" in message


def test_a_connection_string_libpq_cannot_read_keeps_the_password_out(no_password_from_elsewhere):
    message = refusal("mysql://someone:Secret123@db.example/orders")
    assert "the connection string is not one libpq can read" in message
    assert "fix: write DATABASE_URL as postgresql://user@host:5432/dbname" in message
    assert "Secret123" not in message


def test_a_failing_statement_is_no_connection_failure(conn):
    """The commands' except-blocks send only connection failures to the classifier: a
    statement's error (here 3D000, as a missing database at connect time would be) is not one."""
    with pytest.raises(psycopg.Error) as error:
        conn.execute("DROP DATABASE r2r_never_there")
    assert error.value.sqlstate == "3D000"
    assert not connection.is_connect_failure(error.value)


# --- every command says it --------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["scripts.run"], ["scripts.db.migrate"], ["scripts.db.roles"], ["scripts.db.server", "up"],
    ["scripts.serve.export"],
])
def test_every_command_names_the_cause_and_the_fix(pg_admin_url, project, no_password_from_elsewhere, command):
    """A command given DATABASE_URL with a password, for a database that does not exist:
    exit 3, the cause and its fix, the URL masked, no traceback."""
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01 10:00:00,1.00,completed\n")
    config = project.write_config()
    name = f"r2r_missing_{uuid.uuid4().hex[:8]}"
    url = with_params(pg_admin_url, dbname=name, password="Secret" + secrets.token_hex(6))
    result = subprocess.run([PYTHON, "-m", *command, "--config", config], check=False, cwd=project.root,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})
    assert result.returncode == EXIT_RUNTIME, (result.stdout, result.stderr)
    assert f"database {name} does not exist on this server" in result.stderr, result.stderr
    assert f"fix: create it (`createdb {name}`" in result.stderr
    assert "password=***" in result.stderr and conninfo.conninfo_to_dict(url)["password"] not in result.stderr
    assert "Traceback" not in result.stderr
