"""The Makefile: help is the default target and docs/getting-started.md shows what it prints."""

from __future__ import annotations

import re
import subprocess

from tests.helpers import REPO_ROOT

PIPELINE_ORDER = ["all", "install", "db-up", "db-stop", "psql", "migrate", "ingest", "validate", "model", "stage",
                  "features", "splits", "retrieve", "export", "train", "render", "lint", "test", "bench", "clean"]


def make(*args: str) -> str:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True).stdout


def test_help_is_the_default_and_lists_targets_in_pipeline_order():
    default = make()
    assert default == make("help")
    listed = re.findall(r"^  ([a-z-]+) ", default, flags=re.M)
    assert [t for t in listed if t in PIPELINE_ORDER] == PIPELINE_ORDER
    assert all(line.split(None, 1)[1].strip() for line in default.splitlines()[1:])  # each has a description


def test_getting_started_shows_make_help_as_printed():
    page = (REPO_ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert make("help") in page


def test_ci_runs_make_test():
    assert re.search(r"^make test\b", (REPO_ROOT / ".ci" / "run").read_text(), flags=re.M)
