"""Render the Jinja-templated SQL in sql/.

Jinja is for names and for loops over configuration lists only. Identifiers pass through the
``ident`` filter and values through the ``literal`` filter, both of which quote with psycopg's
own rules, so nothing from a config or a CSV header is pasted into SQL unquoted. Undefined
variables are errors (StrictUndefined) that name the template file and line.
"""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Any

import jinja2
from psycopg import sql

from scripts.errors import TemplateError
from scripts.paths import REPO_ROOT, SQL_DIR


def ident(name: Any) -> str:
    """Quote an identifier (column or table name), always, whatever its spelling."""
    return sql.Identifier(str(name)).as_string(None)


def literal(value: Any) -> str:
    """Quote a value as an SQL literal; lists become ARRAY[...] of literals."""
    if isinstance(value, (list, tuple)):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]"
    return sql.Literal(value).as_string(None)


FILTERS = {"ident": ident, "literal": literal}


BYTECODE_DIR = REPO_ROOT / "artifacts" / "cache" / "jinja"


class BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between processes, each under its name and its source's
    checksum (Jinja's own check): a run compiles some 65 templates, about 1 s, which was a
    daily run's largest fixed cost. A cache that cannot be written is skipped."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def bytecode_cache() -> BytecodeCache | None:
    try:
        BYTECODE_DIR.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return BytecodeCache(str(BYTECODE_DIR))


@functools.lru_cache(maxsize=8)
def environment(sql_dir: Path | None = None) -> jinja2.Environment:
    """One environment per folder and process, so each template is compiled once (a run
    renders the macros' templates over a hundred times: 2 s of a daily run when compiled
    each time), and compiled at most once between processes (BytecodeCache). Jinja reloads a
    template whose file changed."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(sql_dir or SQL_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=bytecode_cache(),
    )
    env.filters.update(FILTERS)
    return env


def stage_folder(stage: str, sql_dir: Path | None = None) -> str:
    """``NN_<stage>``: the folder of sql/ that holds a stage's files (NN is its place in the run)."""
    matches = sorted(path.name for path in (sql_dir or SQL_DIR).glob(f"[0-9][0-9]_{stage}") if path.is_dir())
    if len(matches) != 1:
        raise TemplateError(f"sql/: expected one folder NN_{stage} for the {stage} stage, found "
                            f"{', '.join(matches) or 'none'}")
    return matches[0]


def stage_files(stage: str, sql_dir: Path | None = None) -> list[str]:
    """The templates a stage runs, in order: every ``*.sql`` of its folder, sorted by name."""
    folder = stage_folder(stage, sql_dir)
    return [f"{folder}/{path.name}" for path in sorted(((sql_dir or SQL_DIR) / folder).glob("*.sql"))]


def _template_location(exc: BaseException, fallback: Path) -> str:
    """``file:line`` of the innermost template frame (the file itself or a macro it imports)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".sql") and frame.lineno:
            return f"{_rel(frame.filename)}:{frame.lineno}"
    return _rel(fallback)


def render(relative_path: str, context: dict[str, Any], sql_dir: Path | None = None) -> str:
    """Render ``sql/<relative_path>`` with ``context``; raise TemplateError naming the line."""
    sql_dir = sql_dir or SQL_DIR
    env = environment(sql_dir)
    try:
        template = env.get_template(relative_path)
        return template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or str(sql_dir / relative_path)
        raise TemplateError(f"{_rel(where)}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        where = _template_location(exc, sql_dir / relative_path)
        raise TemplateError(
            f"{where}: undefined template variable: {exc.message} "
            "(every variable a template uses must come from the runner's context)"
        ) from None


def _rel(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
