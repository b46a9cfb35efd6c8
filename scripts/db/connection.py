"""Opening a connection to the pipeline's database, with one message when it fails."""

from __future__ import annotations

from typing import Any

import psycopg

from scripts.console import mask_database_url
from scripts.errors import ConnectError


def connect(database_url: str, **options: Any) -> psycopg.Connection:
    """psycopg.connect with ``options``; ConnectError (exit 3) naming the masked URL on failure."""
    try:
        return psycopg.connect(database_url, **options)
    except psycopg.Error as exc:
        raise ConnectError(
            f"could not connect to {mask_database_url(database_url)}: {str(exc).strip()}\n"
            "  is PostgreSQL running? set DATABASE_URL, or unset it to use the embedded server"
        ) from None
