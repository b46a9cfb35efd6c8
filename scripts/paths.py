"""Where the project's own files are, derived once from this package's location."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
ARTIFACTS = Path("artifacts")  # relative to the working directory, like the configs' paths
