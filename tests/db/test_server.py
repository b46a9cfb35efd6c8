"""The server the suites run on is one the project supports (PostgreSQL 16 or newer)."""

from __future__ import annotations

import os

from tests.helpers import query


def test_server_is_postgresql_16_or_newer(conn):
    (version_num,), = query(conn, "SELECT current_setting('server_version_num')::integer")
    assert version_num >= 160000
    wanted = os.environ.get("PGSERVER_POSTGRES_VERSION")
    if wanted and not os.environ.get("TEST_DATABASE_URL"):
        # the embedded server really is the major version CI asked for
        assert version_num // 10000 == int(wanted)
