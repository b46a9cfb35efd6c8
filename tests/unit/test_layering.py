"""The structure of scripts/, read from the source (no database): imports run one way, no
project import hides inside a function, no import cycle, no file grows past its limit."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.helpers import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"
# The layers, lowest first: a module may import its own layer and the layers below it.
LAYERS = [
    {"errors", "console", "paths", "objectstore"},  # the leaves
    {"config"},
    {"db"},
    {"ingest"},
    {"reports"},
    {"pipeline"},
    {"serve", "bench"},
    {"run", "api", "sqlfluff_library"},  # api: the Python API over serve, for ML code
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MAX_PYTHON_LINES = 500


@functools.cache
def modules() -> dict[str, Path]:
    """scripts.x.y -> its file, for every module of the package."""
    found = {}
    for path in sorted(SCRIPTS.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def project_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, whether at module level) for each import of scripts.*:
    ``from scripts.x import y`` imports the module scripts.x.y when there is one, else scripts.x."""
    known = modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        for name in names:
            if name == "scripts" or name.startswith("scripts."):
                found.append((name, node.lineno, id(node) in top))
    return found


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "scripts"


def test_every_top_level_name_of_scripts_has_a_layer():
    names = {layer(module) for module in modules() if module != "scripts"}
    assert names <= set(RANK), f"give these a layer in LAYERS: {sorted(names - set(RANK))}"


def test_imports_run_one_way():
    """leaves -> config -> db -> ingest -> reports -> pipeline -> serve, bench -> run: nothing
    imports a layer above its own."""
    known = modules()
    upward = []
    for module, path in known.items():
        if module == "scripts":
            continue
        for name, line, _ in project_imports(path):
            if name not in known or name == "scripts":
                continue  # an imported name (a function, a class), or the package itself
            if RANK[layer(name)] > RANK[layer(module)]:
                upward.append(f"{path.relative_to(REPO_ROOT)}:{line}: {module} imports {name}")
    assert not upward, "\n".join(upward)


def test_no_project_import_inside_a_function():
    """An import made inside a function to dodge a cycle hides the cycle; none is left."""
    hidden = [f"{path.relative_to(REPO_ROOT)}:{line}: {name}"
              for path in modules().values() for name, line, top in project_imports(path) if not top]
    assert not hidden, "\n".join(hidden)


def test_no_import_cycle():
    known = modules()
    graph = {module: {name for name, _, _ in project_imports(path) if name in known and name != module}
             for module, path in known.items()}
    # a package's __init__ may re-export its own modules; a module importing its package is the cycle
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph[module]):
            if state.get(name) == "open":
                cycles.append(" -> ".join(trail[trail.index(name):] + [name]) if name in trail else name)
            elif name not in state:
                visit(name, trail + [name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_python_file_over_the_limit():
    long = [f"{path.relative_to(REPO_ROOT)}: {lines} lines" for path in modules().values()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_PYTHON_LINES]
    assert not long, f"split these (at most {MAX_PYTHON_LINES} lines):\n" + "\n".join(long)


def test_the_layering_test_sees_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: a config module importing the pipeline is reported."""
    package = tmp_path / "scripts"
    (package / "config").mkdir(parents=True)
    (package / "pipeline").mkdir()
    for path in (package / "__init__.py", package / "config" / "__init__.py", package / "pipeline" / "__init__.py",
                 package / "pipeline" / "runner.py"):
        path.write_text("")
    (package / "config" / "bad.py").write_text("from scripts.pipeline import runner\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "SCRIPTS", package)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "REPO_ROOT", tmp_path)
    modules.cache_clear()
    try:
        test_imports_run_one_way()
    except AssertionError as exc:
        assert "scripts/config/bad.py:1: scripts.config.bad imports scripts.pipeline.runner" in str(exc)
    else:
        raise AssertionError("an upward import went unnoticed")
    finally:
        modules.cache_clear()
