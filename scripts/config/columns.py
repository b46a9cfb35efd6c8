"""The columns of the versioned feature and label rows, named once from the config.

Every SQL template (as ``feature_columns`` and ``label_columns``) and every reader of the
published rows (retrieve, export, train, profiles, reports) takes its names and types from
here. A feature row is (customer_id, feature_time, <feature columns>); a label row is
(customer_id, feature_time, <label columns>).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.config.defined import Definition
from scripts.config.sections import Features, Labels
from scripts.errors import ConfigError


@dataclass(frozen=True)
class Column:
    """A value column of the feature or label rows: its name, PostgreSQL type and role."""

    name: str
    pg_type: str
    role: str  # feature | label | label_meta (the label window's end and censoring)


def window_feature_columns(days: int) -> list[Column]:
    """orders_<N>d (counted orders in the N days up to and including t) and revenue_<N>d."""
    return [Column(f"orders_{days}d", "bigint", "feature"), Column(f"revenue_{days}d", "numeric", "feature")]


DAYS_SINCE_LAST_ORDER = "days_since_last_order"
# names a feature may not take: the rows' keys, the split, the retrieval's own columns
KEY_COLUMNS = ("customer_id", "feature_time", "entity_number", "as_of", "split", "valid_from", "valid_to")


def builtin_feature_columns(features: Features) -> list[Column]:
    """The built-in feature columns, in table order."""
    columns = [column for days in features.windows_days for column in window_feature_columns(days)]
    return columns + [Column(DAYS_SINCE_LAST_ORDER, "integer", "feature")]


def defined_columns(definition: Definition) -> list[Column]:
    """The columns one features.define entry makes."""
    return [Column(name, pg_type, "feature") for name, pg_type in definition.columns]


def feature_columns(features: Features) -> list[Column]:
    """The feature columns, in table order: the built-ins, then features.define's in order."""
    return builtin_feature_columns(features) + [column for definition in features.define
                                                for column in defined_columns(definition)]


def check_names(path: Path, features: Features, labels: Labels | None) -> None:
    """Refuse a defined name that collides with another column, and a ratio whose operands
    are not feature columns made before it (or are ratios themselves): ConfigError, exit 2."""
    made = {column.name: "a built-in feature" for column in builtin_feature_columns(features)}
    made.update({name: "a reserved column" for name in KEY_COLUMNS})
    made.update({column.name: "a label column" for column in label_columns(labels)})
    ratios: set[str] = set()
    for index, definition in enumerate(features.define):
        key = f"features.define[{index}] ({definition.name})"
        if definition.ratio:
            operands = sorted(n for n, what in made.items() if what not in ("a reserved column", "a label column"))
            for part, operand in zip(("numerator", "denominator"), definition.ratio):
                if made.get(operand, "a reserved column") in ("a reserved column", "a label column"):
                    raise ConfigError(path, f"{key}.ratio", f"the {part} {operand!r} is not a feature column made "
                                                            f"before it (known: {', '.join(operands)})")
                if operand in ratios:
                    raise ConfigError(path, f"{key}.ratio", f"the {part} {operand!r} is itself a ratio")
            ratios.add(definition.name)
        for column in defined_columns(definition):
            if column.name in made:
                raise ConfigError(path, f"{key}.name", f"makes the column {column.name}, which is already "
                                                       f"{made[column.name]}")
            made[column.name] = f"made by features.define[{index}]"


def target_name(horizon_days: int) -> str:
    """The binary label: the customer orders again within the horizon."""
    return f"repeat_{horizon_days}d"


def revenue_label_name(horizon_days: int) -> str:
    """The regression label: what the customer spends within the horizon."""
    return f"revenue_next_{horizon_days}d"


def label_columns(labels: Labels | None) -> list[Column]:
    """The label row's columns, in table order (none when the config has no labels)."""
    if not labels:
        return []
    horizon = labels.horizon_days
    return [Column("label_window_end", "timestamptz", "label_meta"),
            Column(target_name(horizon), "boolean", "label"),
            Column(revenue_label_name(horizon), "numeric", "label")]


LABEL_NAME_RE = re.compile(r"^(repeat|revenue_next)_(\d+)d$")  # a label column of any horizon
ORDERS_WINDOW_RE = re.compile(r"^orders_(\d+)d$")  # the order count of a window of any length


def orders_window_days(name: str) -> int | None:
    """N of an orders_<N>d column (a window's order count), else None."""
    match = ORDERS_WINDOW_RE.match(name)
    return int(match.group(1)) if match else None


def as_pairs(columns: list[Column]) -> list[tuple[str, str]]:
    """(name, type) pairs, as the SQL templates loop over them."""
    return [(column.name, column.pg_type) for column in columns]
