"""The distribution: section of the config (docs/scale-out.md): what it accepts, and a
clear refusal naming the file and the key for anything else, before any database work."""

from __future__ import annotations

import pytest

from scripts import config as config_mod
from scripts.config.sections import as_dict
from scripts.run import EXIT_USAGE, run_pipeline
from tests.helpers import HEADER, REPO_ROOT


@pytest.mark.parametrize(("section", "expected"), [
    (None, None),
    ({"kind": "none"}, None),
    ({"kind": "citus"}, {"kind": "citus", "shard_count": 8}),
    ({"kind": "citus", "shard_count": 32}, {"kind": "citus", "shard_count": 32}),
])
def test_what_the_switch_accepts(project, section, expected):
    project.write_csv("orders.csv", HEADER)
    config = project.write_config(**({"distribution": section} if section is not None else {}))
    assert as_dict(config_mod.load(config).distribution) == expected


def test_the_shipped_citus_config_loads():
    assert as_dict(config_mod.load(REPO_ROOT / "configs" / "pipeline_citus.yaml").distribution) == \
        {"kind": "citus", "shard_count": 8}


@pytest.mark.parametrize(("section", "key", "problem"), [
    ({"kind": "spark"}, "distribution.kind", "must be citus or none, got 'spark'"),
    ({"kind": "citus", "shard_count": 0}, "distribution.shard_count", "must be a whole number >= 1, got 0"),
    ({"kind": "citus", "shard_count": "8"}, "distribution.shard_count", "must be a whole number >= 1, got '8'"),
    ({"kind": "citus", "shards": 8}, "distribution.shards", "unknown key"),
    ("citus", "distribution", "must be a mapping"),
])
def test_a_bad_distribution_section_is_refused_before_any_work(project, section, key, problem):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    config = project.write_config(distribution=section)
    code, report = run_pipeline(config, "postgresql://nowhere.invalid/none")  # never connected to
    assert code == EXIT_USAGE
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith(f"{config}: {key}: {problem}")
