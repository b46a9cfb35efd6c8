"""JSON Schemas of configs/pipeline.yaml and configs/expectations.yaml, for editors.

    python -m scripts.config.schema            # write configs/schemas/*.schema.json
    python -m scripts.config.schema --check    # exit 1 when the files are not what this writes

The schemas are built from the same definitions the loader reads: the section structures
(sections.py: their fields, defaults and docstrings), the source keys (source_files.py), the
rule table (rules.py) and the drift rules (drift.py). An editor with a YAML language server
completes and checks a config that names its schema on its first line:
``# yaml-language-server: $schema=schemas/pipeline.schema.json``. The loader stays the
judge: it checks what a schema cannot say (files exist, a time zone is known, min <= max)
and its messages name the file and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any

from scripts.config import defined, drift, sections
from scripts.config.fields import (ATTRIBUTE_TYPES, CANONICAL_COLUMNS, IDENTIFIER_RE, STAGED_ORDER_COLUMNS,
                                  SUPPORTED_TYPES)
from scripts.config.rules import COMMON_OPTIONS, ORDER_COLUMNS, RANGE_OPTIONS, RULES, WHERE_TESTS
from scripts.config.source_files import SOURCE_KEYS
from scripts.paths import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "configs" / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# What a field's type allows beyond its Python type (the loader checks the same).
LIMITS: dict[str, dict[str, Any]] = {
    "staging.amount_scale": {"minimum": 0},
    "staging.date_order": {"enum": ["MDY", "DMY", "YMD"]},
    "staging.attributes": {"propertyNames": {"pattern": IDENTIFIER_RE.pattern, "not": {"enum": list(STAGED_ORDER_COLUMNS)}},
                           "additionalProperties": {"enum": list(ATTRIBUTE_TYPES)}},
    "features.windows_days": {"minItems": 1, "uniqueItems": True, "items": {"type": "integer", "minimum": 1}},
    "labels.horizon_days": {"minimum": 1},
    "splits.train": {"exclusiveMinimum": 0},
    "splits.val": {"minimum": 0}, "splits.test": {"minimum": 0}, "splits.gap_days": {"minimum": 0},
    "validation.failure_sample_size": {"minimum": 0}, "validation.failure_history_cap": {"minimum": 0},
    "retention.versions": {"minimum": 1},
    "alerts.timeout_seconds": {"exclusiveMinimum": 0, "maximum": 30},
    "alerts.attempts": {"minimum": 1, "maximum": 5},
    "alerts.webhook_url": {"pattern": "^https?://"},
    "distribution.kind": {"enum": ["citus", "none"]},
    "features.window_end": {"enum": list(defined.WINDOW_ENDS)},
    "distribution.shard_count": {"minimum": 1},
}
JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def field_schema(section: str, field: dataclasses.Field, hints: dict[str, Any]) -> dict[str, Any]:
    hint = hints[field.name]
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    nullable = type(None) in typing.get_args(hint)
    base = typing.get_origin(hint) or hint
    if base in (list, tuple):
        schema: dict[str, Any] = {"type": "array", "items": {"type": JSON_TYPES.get(typing.get_args(hint)[0], "string")}}
    elif base is dict:
        schema = {"type": "object", "additionalProperties": {"type": "string"}}
    else:
        kinds = [JSON_TYPES[arg] for arg in (args or [base])]
        if kinds == ["number"]:
            kinds = ["number", "integer"]
        schema = {"type": kinds[0] if len(kinds) == 1 else kinds}
    if nullable:
        schema["type"] = [*([schema["type"]] if isinstance(schema["type"], str) else schema["type"]), "null"]
    schema.update(LIMITS.get(f"{section}.{field.name}", {}))
    if field.default is not dataclasses.MISSING:
        schema["default"] = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        schema["default"] = field.default_factory()  # type: ignore[misc]
    return schema


def section_schema(name: str, structure: type, nullable: bool = False) -> dict[str, Any]:
    hints = typing.get_type_hints(structure, vars(sections))
    schema = {
        "type": ["object", "null"] if nullable else "object",
        "description": (structure.__doc__ or "").strip(),
        "properties": {f.name: field_schema(name, f, hints) for f in dataclasses.fields(structure)},
        "additionalProperties": False,
    }
    return schema


def features_schema() -> dict[str, Any]:
    """features, with features.define's entries (defined.py: the same names and lists)."""
    features = section_schema("features", sections.Features)
    window = {"type": "string", "pattern": r"^([1-9][0-9]{0,5}[dh]|lifetime)$"}
    # an order's or a line's column, or an attribute of staging.attributes (the loader checks which)
    known = list(dict.fromkeys([*defined.ORDER_COLUMNS, *defined.LINE_COLUMNS]))
    column = {"type": "string", "pattern": IDENTIFIER_RE.pattern, "examples": known}
    condition = {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["column", "op", "value"],
         "properties": {"column": column, "op": {"enum": list(defined.OPERATORS)},
                        "value": {"type": ["string", "number", "boolean"]}}},
        {"type": "object", "minProperties": 1, "not": {"required": ["column", "op", "value"]},
         "propertyNames": {"pattern": IDENTIFIER_RE.pattern},
         "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": ["string", "number", "boolean"]}}},
    ]}
    entry = {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "anyOf": [{"required": ["agg"]}, {"required": ["ratio"]}],
        "properties": {
            "name": {"type": "string", "pattern": defined.NAME_RE.pattern},
            "agg": {"enum": list(defined.AGGREGATES)},
            "column": column,
            "windows": {"type": "array", "minItems": 1, "uniqueItems": True, "items": window},
            "where": condition,
            "orders": {"enum": ["counted", "all"]},
            "ratio": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}},
            "source": {"enum": list(defined.SOURCES)},
            "entity": {"type": "string", "pattern": IDENTIFIER_RE.pattern,
                       "description": "customer, or a text attribute of staging.attributes"},
        },
    }
    assert set(entry["properties"]) == defined.DEFINITION_KEYS, "every definition key has a schema"
    features["properties"]["define"] = {"type": "array", "items": entry,
                                        "description": "your own features (docs/features.md)"}
    return features


def pipeline_schema() -> dict[str, Any]:
    splits = section_schema("splits", sections.Splits)
    splits["properties"].update({"method": {"enum": ["time"]},  # the original project's keys
                                 **{f"{name}_ratio": {"type": "number", "minimum": 0} for name in ("train", "val", "test")}})
    one_character = {"type": "string", "minLength": 1, "maxLength": 1}
    source = {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "paths": {"oneOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
            "path": {"type": "string", "minLength": 1, "description": "the original project's name for paths"},
            "type": {"enum": ["csv", "CSV"]},
            "model": {"type": "string", "pattern": r"\.sql$"},
            "lines_model": {"type": "string", "pattern": r"\.sql$",
                            "description": "the SELECT that returns the source's order lines"},
            "encoding": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            "delimiter": one_character, "quote": one_character,
            "columns": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
        },
    }
    assert set(source["properties"]) == SOURCE_KEYS, "every source key has a schema"
    return {
        "$schema": DRAFT, "$id": "pipeline.schema.json", "title": "raw-to-ready pipeline config",
        "type": "object", "additionalProperties": False, "required": ["sources"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,62}$", "not": {"enum": ["postgres", "template0", "template1"]},
                     "description": "the pipeline's name (default: the config file's stem): its database on the "
                                    "embedded server; a database another pipeline owns is refused"},
            "sources": {"type": "array", "minItems": 1, "items": source},
            "columns": {"type": "object",
                        "properties": {name: {"type": "string" if required else ["string", "null"], "minLength": 1}
                                       for name, required in CANONICAL_COLUMNS.items()},
                        # and staging.attributes, each the source column it is read from
                        "additionalProperties": {"type": "string", "minLength": 1}},
            "expectations": {"type": "string", "default": "configs/expectations.yaml"},
            "staging": section_schema("staging", sections.Staging),
            "features": features_schema(),
            "labels": section_schema("labels", sections.Labels),
            "splits": splits,
            "validation": section_schema("validation", sections.Validation),
            "retention": section_schema("retention", sections.Retention),
            "alerts": section_schema("alerts", sections.Alerts),
            "distribution": section_schema("distribution", sections.Distribution, nullable=True),
            "db": {"description": "the original project's connection: ignored (DATABASE_URL decides)"},
        },
    }


def rule_schemas(level: str) -> dict[str, Any]:
    """A rule's value: its setting alone, or a mapping of the setting and its options."""
    threshold = {"type": ["string", "number"], "pattern": r"^\s*(>=|>)?\s*\d+(\.\d+)?\s*%?\s*$"}
    where = {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": False,
        "properties": {test: ({"type": "boolean"} if test == "is_null" else {"type": "array"}) for test in WHERE_TESTS}}}
    options = {"severity": {"enum": ["error", "warn"]}, "error_if": threshold, "warn_if": threshold,
               "action": {"enum": ["fail", "quarantine"]}, "where": where,
               "mostly": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}
    assert set(options) == COMMON_OPTIONS
    if level == "orders":
        options["counted_only"] = {"type": "boolean"}
    bound = {"type": ["number", "string"]}
    settings = {
        "types": {"enum": list(SUPPORTED_TYPES)},
        "ranges": None,
        "allowed_values": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
        "max_decimal_places": {"type": "integer", "minimum": 0},
        "matches": {"type": "string"},
    }
    setting_key = {"types": "type", "allowed_values": "values", "max_decimal_places": "places", "matches": "pattern"}
    column_names = {"type": "string"} if level == "records" else {"enum": sorted(ORDER_COLUMNS)}

    def per_column(rule: str) -> dict[str, Any]:
        if rule == "ranges":
            value = {"type": "object", "additionalProperties": False,
                     "properties": {**options, **{key: ({"type": "boolean"} if key.startswith("strict") else bound)
                                                  for key in RANGE_OPTIONS}}}
        else:
            value = {"oneOf": [settings[rule], {"type": "object", "additionalProperties": False,
                                                "properties": {setting_key[rule]: settings[rule], **options}}]}
        return {"type": "object", "propertyNames": column_names, "additionalProperties": value}

    # a column, or {column: <name>, <options>}
    column_list = {"type": "array", "items": {"oneOf": [
        column_names,
        {"type": "object", "required": ["column"], "additionalProperties": False,
         "properties": {"column": column_names, **options}}]}}

    def count(key: str) -> dict[str, Any]:  # a number of rows, or {<key>: <number>, <options>}
        number = {"type": "integer", "minimum": 0}
        return {"oneOf": [number, {"type": "object", "required": [key], "additionalProperties": False,
                                   "properties": {key: number, **options}}]}

    by_rule = {"required_columns": column_list, "non_null": column_list, "unique": column_list,
               "min_rows": count("min"), "max_rows": count("max"),
               "exact_duplicates": {"type": ["object", "null"], "additionalProperties": False, "properties": options},
               **{rule: per_column(rule) for rule in settings}}
    assert set(by_rule) == set(RULES), "every rule of the rule table has a schema"
    return {rule: schema for rule, schema in by_rule.items() if level == "records" or RULES[rule].orders}


def expectations_schema() -> dict[str, Any]:
    drift_rule = {"type": "object", "additionalProperties": False, "properties": {
        "severity": {"enum": ["error", "warn"]}, "warn_if": {"type": ["string", "number"]},
        "error_if": {"type": ["string", "number"]}, "columns": {"type": "array", "items": {"type": "string"}}}}
    assert set(drift_rule["properties"]) == drift.OPTIONS
    records = rule_schemas("records")
    return {
        "$schema": DRAFT, "$id": "expectations.schema.json", "title": "raw-to-ready expectations (validation rules)",
        "type": "object", "additionalProperties": False,
        "properties": {
            **records,
            "records": {"type": "object", "additionalProperties": False, "properties": records},
            "orders": {"type": "object", "additionalProperties": False, "properties": rule_schemas("orders")},
            "drift": {"type": "object", "additionalProperties": False,
                      "properties": {rule: drift_rule for rule in sorted(drift.RULES)}},
        },
    }


SCHEMAS = {"pipeline.schema.json": pipeline_schema, "expectations.schema.json": expectations_schema}


def rendered() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in SCHEMAS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.config.schema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed schemas are out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = SCHEMA_DIR / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(REPO_ROOT)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python -m scripts.config.schema", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
