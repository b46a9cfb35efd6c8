"""Every error a user can meet, and the exit code each ends in: written once, here.

Exit codes (every command: run, retrieve, export, train, migrate, roles):
0 passed, 1 validation failed, 2 bad config or usage, 3 runtime or database error,
130 interrupted. An expected failure prints one message (file, key, line, what to do),
never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

EXIT_PASSED, EXIT_VALIDATION_FAILED, EXIT_USAGE, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES_HELP = "Exit codes: 0 passed, 1 validation failed, 2 bad config or usage, 3 runtime or database error."


class ConfigError(Exception):
    """A config file is invalid. ``str()`` names the file and key."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path, self.key = str(path), key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


class SourceError(Exception):
    """A source file cannot be read (missing, unreadable, refused, empty, bad header)."""


class IngestError(Exception):
    """COPY refused a file; nothing of it was kept. The message names file and line."""


class ConnectError(Exception):
    """The database cannot be reached; the message names it (password masked)."""


class LockError(Exception):
    """Another run holds the pipeline's lock, and this one would not (or no longer) wait."""


class TemplateError(Exception):
    """A SQL template could not be rendered; the message names file and line."""


class StageError(Exception):
    """A stage failed at run time; the message is what the user needs to act."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate  # the server's SQLSTATE, when the server raised it


class MigrationError(Exception):
    """A migration failed or the history does not match the files."""


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started or found."""


class ClusterError(RuntimeError):
    """The Citus cluster could not be built or started; the message says what to do."""


class ValidationFailed(Exception):
    """An error-severity expectation failed; the run stops at its gate."""


class NeedsFullRefresh(Exception):
    """An incremental run found something only a full refresh can do (SQLSTATE R2R01)."""


class CommandError(Exception):
    """A command (retrieve, export, train) cannot go on; ``code`` is its exit code."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


# The errors whose message is all the user needs, and the exit code each ends in.
KNOWN_ERRORS: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_USAGE),
    (ValidationFailed, EXIT_VALIDATION_FAILED),
    (SourceError, EXIT_RUNTIME),
    (IngestError, EXIT_RUNTIME),
    (LockError, EXIT_RUNTIME),
    (ConnectError, EXIT_RUNTIME),
    (TemplateError, EXIT_RUNTIME),
    (StageError, EXIT_RUNTIME),
    (MigrationError, EXIT_RUNTIME),
    (EmbeddedServerError, EXIT_RUNTIME),
    (ClusterError, EXIT_RUNTIME),
)


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message (without ``error: ``) for any exception."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted: nothing was written"
    if isinstance(exc, CommandError):
        return exc.code, str(exc)
    for kind, code in KNOWN_ERRORS:
        if isinstance(exc, kind):
            return code, str(exc)
    if isinstance(exc, psycopg.Error):  # e.g. the server stopped in mid-statement
        return EXIT_RUNTIME, f"database error: {str(exc).strip()}"
    if isinstance(exc, OSError):  # a file vanished or became unreadable
        return EXIT_RUNTIME, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    # a bug of ours or of a library's (pyarrow, scikit-learn): still a message, exit 3
    return EXIT_RUNTIME, f"internal error: {type(exc).__name__}: {exc} (please report it)"


def failure(exc: BaseException) -> int:
    """Print what went wrong on stderr and return the exit code."""
    code, message = describe(exc)
    print(message if code == EXIT_INTERRUPTED else f"error: {message}", file=sys.stderr)
    return code
