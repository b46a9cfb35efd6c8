"""The leaf of the config package: constants, ConfigError, and the small readers every
section's parser uses (YAML, a mapping with known keys, a whole number). Imports nothing
of the project's but scripts.errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from scripts.errors import ConfigError

# Canonical columns of stg.orders and whether a source must map them (each defaults to
# a source column of the same name; `status: null` stages orders without a status).
CANONICAL_COLUMNS = {"order_id": True, "customer_id": True, "order_ts": True, "amount": True, "status": False}

# staging.attributes: the types an attribute column of the staged orders may have, and the
# names it may not take (the columns of stg.orders and stg.model_orders, and those a
# definition over lines reads from stg.order_lines)
ATTRIBUTE_TYPES = ("text", "numeric", "bigint", "boolean")
STAGED_ORDER_COLUMNS = ("order_id", "customer_id", "customer_key", "order_at", "amount", "status", "source_event_id",
                        "file_sha256", "line_number", "staged_run_id", "staged_at", "source_name", "run_id",
                        "item", "quantity", "unit_price")
IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

TIMESTAMP_TYPES = ("timestamptz", "timestamp", "date")
NUMERIC_TYPES = ("numeric", "integer", "bigint")
SUPPORTED_TYPES = TIMESTAMP_TYPES + NUMERIC_TYPES + ("boolean", "text")

# Rules a stage after validation cannot survive; their severity is always `error`.
STAGING_CRITICAL = "required columns, types of the order_ts and amount columns, non_null of order_id and order_ts"

THRESHOLD_RE = re.compile(r"^\s*(>=|>)?\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")

# an unreachable webhook delays a run by attempts x timeout (+ a few seconds of backoff) at most
ALERT_MAX_TIMEOUT_SECONDS, ALERT_MAX_ATTEMPTS = 30, 5


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"byte {exc.start}", "a config file must be UTF-8") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(path, where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError)
        raise ConfigError(path, "", f"invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, "", "the top level must be a mapping of keys")
    return data


def mapping(path: Path, data: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(path, key, "must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise unknown_key(path, f"{key}.{unknown[0]}", allowed)
    return value


def whole_number(path: Path, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(path, key, f"must be a whole number >= {minimum}, got {value!r}")
    return value



def unknown_key(path: Path | str, key: str, known: set[str] | list[str]) -> ConfigError:
    """The refusal of a key the section does not know, listing the keys it does."""
    return ConfigError(path, key, f"unknown key (known: {', '.join(sorted(known))})")
