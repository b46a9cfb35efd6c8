"""The JSON Schemas of the configs (configs/schemas/, for editors): up to date with the
definitions they are built from, valid schemas, met by every shipped config, and in
agreement with the loader on what is refused (no database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scripts.config import ConfigError, load
from scripts.config import schema as schema_mod
from tests.helpers import HEADER, REPO_ROOT

SHIPPED = sorted((REPO_ROOT / "configs").glob("*.yaml"))
ORIGINAL = sorted((REPO_ROOT.parent / "shared" / "seed" / "original" / "configs").glob("*.yaml"))


def schema_of(kind: str) -> dict[str, Any]:
    return json.loads((schema_mod.SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))


def violations(kind: str, data: Any) -> list[str]:
    plain = json.loads(json.dumps(data, default=lambda value: value.isoformat()))  # YAML reads dates itself
    return [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema_of(kind)).iter_errors(plain)]


def test_the_committed_schemas_are_what_the_definitions_give():
    assert schema_mod.main(["--check"]) == 0, "run python -m scripts.config.schema"


@pytest.mark.parametrize("kind", ["pipeline", "expectations"])
def test_each_schema_is_a_valid_json_schema(kind):
    jsonschema.Draft202012Validator.check_schema(schema_of(kind))


@pytest.mark.parametrize("path", SHIPPED + ORIGINAL, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_shipped_config_meets_its_schema(path):
    kind = "expectations" if "expectations" in path.name else "pipeline"
    assert violations(kind, yaml.safe_load(path.read_text(encoding="utf-8")) or {}) == []


@pytest.mark.parametrize("path", [p for p in SHIPPED if "expectations" not in p.name], ids=lambda p: p.name)
def test_every_shipped_pipeline_config_names_its_schema(path):
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=schemas/pipeline.schema.json")


REFUSED = [
    ({"splitz": {}}, "splitz"),
    ({"features": {"windows_days": [7, 7]}}, "features.windows_days"),
    ({"features": {"windows_days": []}}, "features.windows_days"),
    ({"staging": {"date_order": "DDD"}}, "staging.date_order"),
    ({"alerts": {"attempts": 9}}, "alerts.attempts"),
    ({"distribution": {"kind": "citus", "shard_count": 0}}, "distribution.shard_count"),
    ({"labels": {"horizon_days": 0}}, "labels.horizon_days"),
    ({"retention": {"versions": 0}}, "retention.versions"),
]


@pytest.mark.parametrize(("section", "key"), REFUSED, ids=[key for _, key in REFUSED])
def test_the_schema_and_the_loader_refuse_alike(project, section, key):
    """What the schema refuses, the loader refuses too, naming the same key."""
    project.write_csv("orders.csv", HEADER)
    config = project.write_config(**section)
    data = yaml.safe_load((project.root / config).read_text())
    assert violations("pipeline", data), f"the schema accepts {section}"
    with pytest.raises(ConfigError) as refused:
        load(config)
    assert f"{config}: {key}" in str(refused.value)


@pytest.mark.parametrize(("rules", "key"), [
    ({"unique": ["order_id"], "uniq": ["x"]}, "uniq"),
    ({"types": {"amount": "money"}}, "types.amount"),
    ({"orders": {"types": {"amount": "numeric"}}}, "orders.types"),
    ({"ranges": {"amount": {"min": 0, "minimum": 1}}}, "ranges.amount.minimum"),
    ({"drift": {"psi": {"warn_if": ">0.1", "colums": ["amount"]}}}, "drift.psi.colums"),
])
def test_the_expectations_schema_and_the_loader_refuse_alike(project, rules, key):
    project.write_csv("orders.csv", HEADER)
    config = project.write_config(expectations=rules)
    assert violations("expectations", rules), f"the schema accepts {rules}"
    with pytest.raises(ConfigError) as refused:
        load(config)
    assert f"configs/pipeline_expectations.yaml: {key}" in str(refused.value)


def test_a_schema_default_is_the_loaders_default(project):
    """The defaults the schema shows an editor are what a config without the key gets."""
    project.write_csv("orders.csv", HEADER)
    config = load(project.write_config(labels={}))
    properties = schema_of("pipeline")["properties"]
    for section in ("staging", "features", "splits", "validation", "retention", "alerts", "labels"):
        loaded = getattr(config, section)
        for name, spec in properties[section]["properties"].items():
            if "default" in spec:
                assert getattr(loaded, name) == spec["default"], f"{section}.{name}"


def test_the_schema_files_live_beside_the_configs():
    assert {p.name for p in schema_mod.SCHEMA_DIR.glob("*.json")} == set(schema_mod.SCHEMAS)
    assert Path(schema_mod.SCHEMA_DIR).parent == REPO_ROOT / "configs"
