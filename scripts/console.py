"""What the commands print, written once: log lines, memory, and secrets kept out of both.

Three kinds of secret reach messages: a database password (in DATABASE_URL), a webhook's
token (in its path and query), and S3 credentials from the environment. Each has one
function here; every message that may carry one goes through it.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import threading
import urllib.parse

import psycopg
from psycopg import conninfo



_LOG_LOCK = threading.Lock()


def log(message: str) -> None:
    """One line on stdout, flushed: a long stage shows it started before it ends. Written
    whole, so that two stages running at once never mix their lines."""
    with _LOG_LOCK:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def peak_rss_mib() -> float:
    """This process's peak resident memory, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mask_database_url(url: str) -> str:
    """The connection string with its password replaced by ***, for printing."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return re.sub(r"(password=)\S+|(://[^:/@]+:)[^@]+@", lambda m: (m.group(1) or m.group(2)) + "***"
                      + ("" if m.group(1) else "@"), url)
    if params.get("password"):
        params["password"] = "***"
    return conninfo.make_conninfo(**params)


def mask_webhook_url(url: str) -> str:
    """``scheme://host[:port]/…``: where alerts go, without the path and query that hold the token."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an unparsable webhook URL)"
    if not parts.scheme or not host:
        return "(an unparsable webhook URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/…"


def scrub_webhook_url(text: str, url: str) -> str:
    """``text`` with the URL and its secret parts (path, query, password) replaced by the masked URL."""
    text = text.replace(url, mask_webhook_url(url))
    try:
        parts = urllib.parse.urlsplit(url)
        secrets = [f"{parts.path}?{parts.query}", parts.path, parts.query, parts.password or ""]
    except ValueError:
        secrets = []
    for secret in secrets:
        if len(secret) >= 4:  # not a bare "/"
            text = text.replace(secret, "/…")
    return text


def scrub_environment(message: str, names: tuple[str, ...]) -> str:
    """The message without the values of these environment variables, however they got there."""
    for name in names:
        value = os.environ.get(name)
        if value:
            message = message.replace(value, "***")
    return message
