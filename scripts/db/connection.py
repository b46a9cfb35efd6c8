"""Opening a connection to the pipeline's database, and saying why it failed and what to do.

A failed connection is classified by its cause: connection refused (no server listening),
host not found, timeout, authentication failed (wrong or missing password, peer/ident, no
pg_hba.conf line), no such role, role without LOGIN, no such database, no CONNECT privilege,
no free connection slot, server starting or stopping, TLS/SSL, a connection string libpq
cannot read, a connection limit reached. Each cause has its fix; the message names the database (password masked) and
keeps libpq's own words.

The SQLSTATE decides when psycopg gives one (28P01 invalid_password, 28000
invalid_authorization_specification, 3D000 invalid_catalog_name, 53300, 57P03); for a
failure while connecting psycopg 3 gives none (libpq reports the server's FATAL as text), and
a refused connection or a timeout never has one, so the message decides: libpq's and the
server's English texts (a server whose lc_messages is another language gets the generic
message, with its own words).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo

from scripts.console import mask_database_url
from scripts.errors import ConnectError

EMBEDDED = "unset DATABASE_URL to use the embedded server (`make db-up` starts it)"


@dataclass(frozen=True)
class Cause:
    """Why a connection failed (``what``) and what to do about it (``fix``)."""

    name: str
    what: str
    fix: str


# psycopg's messages for a failure while connecting (psycopg/generators.py, _conninfo_attempts.py)
CONNECT_PREFIXES = ("connection failed:", "connection is bad:", "failed to resolve host")
# libpq's messages for a connection string it cannot parse (PQconninfoParse)
CONNINFO_WORDS = ("connection info string", "invalid connection option", "URI", "percent-encoded")


def is_connect_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg failing to open a connection (not a statement failing on one)."""
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return True
    text = str(exc).strip()
    if type(exc) is psycopg.OperationalError:  # a server error of a statement has a subclass
        return text.startswith(CONNECT_PREFIXES)
    return type(exc) is psycopg.ProgrammingError and any(word in text for word in CONNINFO_WORDS)


def _quoted(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def _name(value: str | None, placeholder: str) -> str:
    """A role or database name as SQL writes it (quoted unless plain), or the placeholder."""
    if not value:
        return placeholder
    return value if re.fullmatch(r"[a-z_][a-z0-9_$]*", value) else '"' + value.replace('"', '""') + '"'


def cause_of(exc: BaseException, user: str | None = None, database: str | None = None) -> Cause:
    """The cause of a failed connection and its fix (a generic one when nothing matches);
    ``user`` and ``database`` (those the connection asked for) name them where the server's
    message does not."""
    text = str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    user = _quoted(r'\b(?:user|role) "([^"]*)"', text) or user
    database = _quoted(r'database "([^"]*)"', text) or database
    role_sql, database_sql = _name(user, "<user>"), _name(database, "<database>")
    if isinstance(exc, psycopg.ProgrammingError) or (
            text.startswith("connection is bad: invalid") and "value" in text):
        return Cause("connection string", "the connection string is not one libpq can read",
                     "write DATABASE_URL as postgresql://user@host:5432/dbname (percent-encode @ : / % in the "
                     "password) or as key=value pairs (host=... port=5432 dbname=... user=...); valid sslmode "
                     "values: disable, allow, prefer, require, verify-ca, verify-full")
    if isinstance(exc, psycopg.errors.ConnectionTimeout) or "timeout expired" in text:
        return Cause("timeout", "timed out: nothing answered within connect_timeout",
                     "check the host and port (something that is not PostgreSQL, or a firewall that drops "
                     "packets, never answers), the network path (VPN, security group), and that the server "
                     "is not overloaded; a slow link needs a longer wait: ?connect_timeout=30 in DATABASE_URL")
    if text.startswith("failed to resolve host") or "could not translate host name" in text:
        return Cause("host not found", "the host name cannot be resolved",
                     "check the host in DATABASE_URL (a typo, or a name only another network knows)")
    if sqlstate == "28P01" or "password authentication failed" in text:
        return Cause("authentication failed", "authentication failed: the server refused the password",
                     f"check the password of user {role_sql} (in DATABASE_URL, ~/.pgpass or PGPASSWORD; in a "
                     "URL, percent-encode @ : / % in it), and the user name; the server's pg_hba.conf says "
                     "which authentication method (scram-sha-256, md5, peer, ...) applies to this user")
    if "no password supplied" in text:
        return Cause("authentication failed", "authentication failed: the server asks for a password and none "
                                              "was given",
                     "give the password: in DATABASE_URL (postgresql://user:password@host/db), in ~/.pgpass, "
                     "or in PGPASSWORD")
    if re.search(r"(Peer|Ident) authentication failed", text):
        return Cause("authentication failed", "authentication failed: pg_hba.conf asks for peer/ident "
                                              "authentication, so the operating-system user must be the user",
                     f"connect as the operating-system user {role_sql}, or over TCP (host=localhost) with a "
                     "password, or have the server's administrator give this user a password method in "
                     "pg_hba.conf")
    if "authentication failed" in text:
        return Cause("authentication failed", "authentication failed",
                     f"check the user {role_sql} and its credentials, and the method the server's pg_hba.conf "
                     "gives this user")
    if "no pg_hba.conf entry" in text or "pg_hba.conf rejects" in text:
        return Cause("authentication failed", "no line of the server's pg_hba.conf lets this user reach this "
                                              "database from this host",
                     "ask the server's administrator for a pg_hba.conf line for this user, database and address "
                     "(a hostssl line needs sslmode=require), then a reload; or connect as a user it lets in")
    if re.search(r'role "[^"]*" does not exist', text):
        return Cause("no such role", f"role {role_sql} does not exist on this server",
                     f"create it as a superuser (CREATE ROLE {role_sql} LOGIN PASSWORD '...', or `createuser "
                     f"--pwprompt {user or '<user>'}`), or put an existing user in DATABASE_URL (user=..., or "
                     "postgresql://user@host/db; without one libpq takes the operating-system user's name)")
    if "is not permitted to log in" in text:
        return Cause("no such role", f"role {role_sql} exists but may not log in (NOLOGIN)",
                     f"ALTER ROLE {role_sql} LOGIN as a superuser, or connect as a login role that is a member "
                     "of it (docs/database.md: Roles and least privilege)")
    if sqlstate == "3D000" or re.search(r'database "[^"]*" does not exist', text):
        return Cause("no such database", f"database {database_sql} does not exist on this server",
                     f"create it (`createdb {database or '<database>'}`, or CREATE DATABASE {database_sql}) or "
                     "correct the database name in DATABASE_URL; on the embedded server (DATABASE_URL unset) "
                     "a pipeline's database is made by its first run (`make all CONFIG=...`) or by `make db-up`")
    if "permission denied for database" in text:
        return Cause("no CONNECT privilege", f"the user may not connect to database {database_sql}",
                     f"GRANT CONNECT ON DATABASE {database_sql} TO {role_sql} (as its owner or a superuser)")
    if re.search(r'too many connections for (role|database) "', text):
        return Cause("no free connection", "the connection limit of the role or the database is reached",
                     "close its idle sessions (pg_stat_activity), or raise the limit (ALTER ROLE ... / ALTER "
                     "DATABASE ... CONNECTION LIMIT n; -1 is none)")
    if sqlstate == "53300" or "too many clients" in text or "remaining connection slots" in text:
        return Cause("no free connection", "the server has no free connection slot (max_connections)",
                     "close idle sessions (pg_stat_activity), use a pooler, or raise max_connections")
    if "is not currently accepting connections" in text:
        return Cause("server not ready", f"database {database_sql} does not accept connections",
                     f"ALTER DATABASE {database_sql} ALLOW_CONNECTIONS true (as its owner or a superuser), "
                     "or connect to another database")
    if sqlstate == "57P03" or re.search(r"the database system is (starting up|shutting down|in recovery|not yet)",
                                        text):
        return Cause("server not ready", "the server is starting up, shutting down or recovering",
                     "wait and try again; if it lasts, read the server's log")
    if "does not support SSL" in text:
        return Cause("TLS/SSL", "the server does not offer SSL/TLS, but sslmode requires it",
                     "on a trusted network set sslmode=prefer (or disable) in DATABASE_URL, or have the server's "
                     "administrator turn ssl on")
    if re.search(r"SSL|TLS|certificate|sslmode|sslrootcert", text):
        return Cause("TLS/SSL", "the TLS/SSL handshake failed",
                     "check sslmode and the certificates in DATABASE_URL: verify-ca and verify-full need the "
                     "server's CA in sslrootcert (and verify-full the host name the certificate names); "
                     "sslmode=require encrypts without verifying")
    if re.search(r"Connection refused|No such file or directory", text):
        return Cause("connection refused", "connection refused: no server is listening at that address",
                     "is PostgreSQL running? set DATABASE_URL to the host and port it listens on "
                     "(`pg_isready -h HOST -p PORT` says whether a server answers there), or " + EMBEDDED)
    return Cause("unknown", "the server could not be reached or refused the connection",
                 "is PostgreSQL running? set DATABASE_URL, or " + EMBEDDED)


def _libpq_words(exc: BaseException) -> str:
    """psycopg's and libpq's message on one line, without anything that could be a password."""
    text = str(exc).strip()
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    # an unparsable connection string is echoed in part: it may hold the password
    text = re.sub(r'(after|token:) "[^"]*"', r'\1 "…"', text)
    return " ".join(text.split())


def _tried(exc: BaseException) -> dict[str, str]:
    """host, port, dbname and user of the connection libpq tried (no password), when it says."""
    pgconn = getattr(exc, "pgconn", None)
    return {key: value.decode(errors="replace") for key, value in (
        ("host", getattr(pgconn, "host", b"")), ("port", getattr(pgconn, "port", b"")),
        ("dbname", getattr(pgconn, "db", b"")), ("user", getattr(pgconn, "user", b""))) if value}


def connect_error(exc: BaseException, database_url: str | None = None) -> ConnectError:
    """The ConnectError (exit 3) for a failed connection: the database (the URL given, else
    DATABASE_URL, else what libpq tried; password masked), the cause, libpq's words, the fix."""
    url = database_url or os.environ.get("DATABASE_URL", "").strip()
    tried = _tried(exc)
    try:
        asked = conninfo.conninfo_to_dict(url) if url else {}
    except psycopg.Error:
        asked = {}
    target = mask_database_url(url) if url else (conninfo.make_conninfo(**tried) if tried else "the database")
    cause = cause_of(exc, tried.get("user") or asked.get("user"), tried.get("dbname") or asked.get("dbname"))
    return ConnectError(f"could not connect to {target}: {cause.what}\n"
                        f"  libpq: {_libpq_words(exc)}\n"
                        f"  fix: {cause.fix}")


def connect(database_url: str, **options: Any) -> psycopg.Connection:
    """psycopg.connect with ``options``; ConnectError (exit 3) naming the cause on failure."""
    try:
        return psycopg.connect(database_url, **options)
    except psycopg.Error as exc:
        raise connect_error(exc, database_url) from None
