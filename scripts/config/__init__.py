"""The configs a user writes, read and checked before any data work.

    pipeline.py      configs/pipeline.yaml: sources, columns, staging, features, labels, splits, ...
    expectations.py  configs/expectations.yaml: the validation rules, as checks at two levels
    rules.py         what each rule is (the rule table), its message and thresholds
    drift.py         the drift: section of the expectations
    columns.py       the feature and label columns a config gives, named once
    fields.py        constants and small readers every section uses (the package's leaf)
"""

from scripts.config.pipeline import PipelineConfig, load, name_of
from scripts.config.source_files import SourceFile, project_root, resolve
from scripts.errors import ConfigError

__all__ = ["ConfigError", "PipelineConfig", "SourceFile", "load", "name_of", "project_root", "resolve"]
