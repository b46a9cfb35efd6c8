"""Every ``python -m scripts.*`` entry parses its flags before it acts: ``--help`` prints the
usage and exits 0 having done nothing, and a flag it does not know is refused with exit 2.

The entries are found by scanning scripts/ (a module with ``if __name__ == "__main__"``, a
package with ``__main__.py``), so a new entry is checked without being listed here. Each runs
in a subprocess of the repository's venv (the repository is on its path through a .pth file),
in an empty temporary folder, with DATABASE_URL pointing at a port nothing listens on: an
entry that acted would fail or leave files behind.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
# The entries the project documents (the issue "Everyday use" lists them): the scan must find each.
DOCUMENTED = {
    "scripts.run", "scripts.db.server", "scripts.db.migrate", "scripts.db.roles", "scripts.db.citus",
    "scripts.config.schema", "scripts.reports.html", "scripts.serve.export", "scripts.serve.retrieve",
    "scripts.serve.train", "scripts.bench", "scripts.bench.incremental", "scripts.bench.export",
    "scripts.bench.generate_orders",
}


def is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` at module level."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    sides = [test.left, *test.comparators]
    return (len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def entries() -> list[str]:
    found = set()
    for path in sorted(SCRIPTS.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            found.add(".".join(parts[:-1]))
        elif any(is_main_guard(node) for node in ast.parse(path.read_text(encoding="utf-8")).body):
            found.add(".".join(parts))
    return sorted(found)


def module_file(entry: str) -> Path:
    base = REPO_ROOT.joinpath(*entry.split("."))
    return base / "__main__.py" if base.is_dir() else base.with_suffix(".py")


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses connections (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def run(entry: str, flag: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PGHOST", "PGPORT", "PGDATABASE")}
    env["DATABASE_URL"] = f"postgresql://nobody@127.0.0.1:{port}/nothing?connect_timeout=2"
    return subprocess.run([PYTHON, "-m", entry, flag], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_scan_finds_every_documented_entry():
    found = set(entries())
    assert DOCUMENTED <= found, f"not found by the scan: {sorted(DOCUMENTED - found)}"
    # and nothing that is not a module of scripts/
    assert all(module_file(entry).is_file() for entry in found)


def test_the_scan_sees_a_main_guard_and_nothing_else():
    """The scan can fail: it tells a __main__ guard from look-alikes."""
    guard, other = ast.parse('if __name__ == "__main__":\n    main()\n').body[0], \
        ast.parse('if __name__ == "scripts":\n    main()\n').body[0]
    assert is_main_guard(guard) and not is_main_guard(other)


@pytest.mark.parametrize("entry", entries())
def test_help_prints_the_usage_and_does_nothing(entry, tmp_path, closed_port):
    result = run(entry, "--help", tmp_path, closed_port)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("usage: "), result.stdout
    assert "-h, --help" in result.stdout
    assert files_under(tmp_path) == [], "--help left files behind"


@pytest.mark.parametrize("entry", entries())
def test_an_unknown_flag_is_refused(entry, tmp_path, closed_port):
    result = run(entry, "--no-such-flag", tmp_path, closed_port)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("usage: ") and "error: " in result.stderr, result.stderr
    # argparse names the unknown flag, or first the required arguments that are missing
    # (then the unknown flag would be refused next: no entry parses only the flags it knows)
    assert ("unrecognized arguments: --no-such-flag" in result.stderr
            or "the following arguments are required" in result.stderr), result.stderr
    assert result.stdout == ""
    assert files_under(tmp_path) == []


def test_no_entry_lets_unknown_flags_through():
    """parse_known_args (and its intermixed variant) would leave an unknown flag unrefused:
    nothing in scripts/ (an entry may parse in a module it imports) calls either."""
    calls = [f"{path.relative_to(REPO_ROOT)}:{node.lineno}" for path in sorted(SCRIPTS.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and node.attr in ("parse_known_args", "parse_known_intermixed_args")]
    assert calls == []
