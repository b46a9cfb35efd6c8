"""The columns of the versioned feature and label rows, named once from the config.

Every SQL template (as ``feature_columns`` and ``label_columns``) and every reader of the
published rows (retrieve, export, train, profiles, reports) takes its names and types from
here. A feature row is (customer_id, feature_time, <feature columns>); a label row is
(customer_id, feature_time, <label columns>).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scripts.config.sections import Features, Labels


@dataclass(frozen=True)
class Column:
    """A value column of the feature or label rows: its name, PostgreSQL type and role."""

    name: str
    pg_type: str
    role: str  # feature | label | label_meta (the label window's end and censoring)


def window_feature_columns(days: int) -> list[Column]:
    """orders_<N>d (counted orders in the N days up to and including t) and revenue_<N>d."""
    return [Column(f"orders_{days}d", "bigint", "feature"), Column(f"revenue_{days}d", "numeric", "feature")]


def feature_columns(features: Features) -> list[Column]:
    """The feature columns, in table order."""
    columns = [column for days in features.windows_days for column in window_feature_columns(days)]
    return columns + [Column("days_since_last_order", "integer", "feature")]


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
