"""How the model-ready commands (export, train) end on an error: one message, an exit code,
never a traceback. Exit codes as the runner's: 2 bad config or usage, 3 runtime or database."""

from __future__ import annotations

import sys

import psycopg

from scripts import migrate, pgembed
from scripts.config import ConfigError

EXIT_USAGE, EXIT_RUNTIME, EXIT_INTERRUPTED = 2, 3, 130


def failure(exc: BaseException) -> int:
    """Print what went wrong and return the exit code. An error that knows its own exit
    code carries it as ``code``; KeyboardInterrupt says nothing was written."""
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(getattr(exc, "code", None), int):
        print(f"error: {exc}", file=sys.stderr)
        return exc.code  # type: ignore[attr-defined]
    if isinstance(exc, (pgembed.EmbeddedServerError, migrate.MigrationError)):
        print(f"error: {exc}", file=sys.stderr)
    elif isinstance(exc, psycopg.Error):
        print(f"error: database error: {str(exc).strip()}", file=sys.stderr)
    elif isinstance(exc, OSError):
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}".replace("error: : ", "error: "), file=sys.stderr)
    else:  # a bug of ours or a library's (pyarrow, scikit-learn): a message, exit 3
        print(f"error: internal error: {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
    return EXIT_RUNTIME
