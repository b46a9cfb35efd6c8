"""Source models: the SQL that turns one source's raw records into canonical orders.

A source names its model file (``sources[].model``); without one it gets
``sql/sources/default.sql`` (one record per order, columns mapped by ``columns:``). A model
is a Jinja-templated ``SELECT`` over ``{{ source_events }}`` (the source's raw events in this
run, quarantined records left out) producing the columns in ``CONTRACT``, and the attribute
columns of ``staging.attributes``. A source may also name a lines model
(``sources[].lines_model``): a ``SELECT`` over the same events returning the lines of its
orders (``LINES_CONTRACT``). Before any data work the runner asks PostgreSQL what each model
returns and refuses one that does not produce its contract (exit 2, naming the file and the
column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import psycopg

from scripts.config import PipelineConfig
from scripts.db import render
from scripts.errors import ConfigError, TemplateError

DEFAULT_MODEL = "sources/default.sql"
# column -> the PostgreSQL types a model may return for it (the first is the one stored)
CONTRACT = {
    "order_id": ("text", "character varying"),
    "customer_id": ("text", "character varying"),
    "order_at": ("timestamp with time zone",),
    "amount": ("numeric",),
    "status": ("text", "character varying"),
    "source_event_id": ("bigint", "integer"),
    "file_sha256": ("text", "character varying"),
    "line_number": ("bigint", "integer"),
}
# a lines model's columns: the line's order and number in it, what was bought, how many at
# what price, and what the line comes to
LINES_CONTRACT = {
    "order_id": ("text", "character varying"),
    "line_number": ("bigint", "integer"),
    "item": ("text", "character varying"),
    "quantity": ("numeric", "integer", "bigint"),
    "unit_price": ("numeric", "integer", "bigint"),
    "amount": ("numeric", "integer", "bigint"),
}
# staging.attributes' types -> the types a model may return for them
ATTRIBUTE_CONTRACT = {"text": ("text", "character varying"), "numeric": ("numeric", "integer", "bigint"),
                      "bigint": ("bigint", "integer"), "boolean": ("boolean",)}


def contract(attributes: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """The columns (and types) an orders model returns: the order's, then the attributes."""
    return {**CONTRACT, **{name: ATTRIBUTE_CONTRACT[pg_type] for name, pg_type in attributes.items()}}


def source_batches(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per configured source, in config order: its name, models and file hashes."""
    batches: dict[str, dict[str, Any]] = {}
    for source in sources:
        entry = batches.setdefault(source["source_name"], {
            "source_name": source["source_name"], "model": source.get("model"),
            "lines_model": source.get("lines_model"), "file_sha256s": [],
        })
        entry["file_sha256s"].append(source["sha256"])
    return list(batches.values())


def model_path(model: str | None) -> str:
    """How a model is named in messages and saved SQL: its path (relative when under cwd)."""
    return model or f"sql/{DEFAULT_MODEL}"


def render_model(batch: dict[str, Any], context: dict[str, Any], model: str | None) -> str:
    """Render one of a source's models with the shared context plus its own ``source_events``."""
    env = render.environment()
    events = env.get_template("macros/sources.sql").make_module(context).source_events(batch["file_sha256s"])
    own = {**context, "source_events": str(events), "source_name": batch["source_name"],
           "batch_file_sha256s": batch["file_sha256s"]}
    if model is None:
        return render.render(DEFAULT_MODEL, own).rstrip().rstrip(";")
    path = Path(model)
    try:
        template = env.from_string(path.read_text(encoding="utf-8"))
        template.filename = str(path)
        return template.render(**own).rstrip().rstrip(";")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read the source model: {exc.strerror}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{path}: undefined template variable: {exc.message} (a model may use "
                                        f"{', '.join(sorted(own))})") from None


def render_models(config: PipelineConfig, sources: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"source_name": b["source_name"], "path": model_path(b["model"]), "sql": render_model(b, context, b["model"]),
         "lines": None if b["lines_model"] is None else
         {"path": b["lines_model"], "sql": render_model(b, context, b["lines_model"])}}
        for b in source_batches(sources)
    ]


def check_contract(conn: psycopg.Connection, models: list[dict[str, Any]], attributes: dict[str, str]) -> None:
    """Have PostgreSQL describe each model's result (no row is read) and compare it with
    its contract; ConfigError names the model file and the column."""
    for model in models:
        check_model(conn, model, contract(attributes), "source model")
        if model["lines"]:
            check_model(conn, model["lines"], LINES_CONTRACT, "lines model")


def check_model(conn: psycopg.Connection, model: dict[str, Any], columns: dict[str, tuple[str, ...]],
                what: str) -> None:
    """One model against its contract (``columns``)."""
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute("SELECT meta.set_run_setting('raw_to_ready.run_id', 'contract-check'),"
                        " meta.set_run_setting('raw_to_ready.work_files', '')")
            # planned and described, not run: LIMIT 0 reads no row
            cur.execute(f"SELECT * FROM (\n{model['sql']}\n) AS m LIMIT 0")  # noqa: S608 - rendered SQL
            returned = {
                column.name: _type_name(conn, column.type_code) for column in cur.description or []
            }
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc).strip()
        raise ConfigError(model["path"], "", f"PostgreSQL cannot run this {what}: {message}") from None
    for column, types in columns.items():
        if column not in returned:
            raise ConfigError(model["path"], column, f"the {what} returns no {column} column "
                                                     f"(a {what} returns {', '.join(columns)})")
        if returned[column] not in types:
            raise ConfigError(model["path"], column, f"is {returned[column]}; a {what} must return "
                                                     f"{' or '.join(types)} (cast it: ::{types[0].split()[0]})")


def _type_name(conn: psycopg.Connection, oid: int) -> str:
    row = conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
    return row[0] if row else str(oid)
