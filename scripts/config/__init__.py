"""The configs a user writes, read and checked before any data work.

    pipeline.py      configs/pipeline.yaml: sources, columns, staging, features, labels, splits, ...
    expectations.py  configs/expectations.yaml: the validation rules, as checks at two levels
    rules.py         what each rule is (the rule table), its message and thresholds
    drift.py         the drift: section of the expectations
    columns.py       the feature and label columns a config gives, named once
    fields.py        constants and small readers every section uses (the package's leaf)
"""

import argparse

from scripts.config.pipeline import PipelineConfig, load, name_of
from scripts.config.source_files import SourceFile, project_root, resolve
from scripts.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "ConfigError", "PipelineConfig", "SourceFile", "add_config_argument", "load", "name_of",
           "project_root", "resolve"]

DEFAULT_CONFIG = "configs/pipeline.yaml"  # what every command reads without --config (make's CONFIG)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Every command's --config: the pipeline config, whose pipeline it acts on."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config (default: %(default)s)")
