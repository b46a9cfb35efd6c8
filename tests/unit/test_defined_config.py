"""features.define refused before any data work: each mistake names the file and the key
(ConfigError, exit 2), and the names a definition makes are predictable (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.config import ConfigError, load
from scripts.config.columns import feature_columns
from tests.helpers import HEADER

AVG = {"name": "basket", "agg": "avg", "column": "amount", "windows": ["30d"]}

REFUSED: list[tuple[Any, str, str]] = [
    ({"name": "basket", "agg": "median", "column": "amount", "windows": ["30d"]}, "define[0] (basket).agg",
     "must be one of count, sum"),
    ({"name": "basket", "agg": "avg", "column": "price", "windows": ["30d"]}, "define[0] (basket).column",
     "unknown column 'price'"),
    ({"name": "basket", "agg": "sum", "column": "status", "windows": ["30d"]}, "define[0] (basket).column",
     "sum needs a number column (amount); status is text"),
    ({"name": "basket", "agg": "avg", "column": "amount", "windows": ["30"]}, "define[0] (basket).windows[0]",
     "<N>d, <N>h or lifetime"),
    ({"name": "basket", "agg": "avg", "column": "amount", "windows": ["1d", "24h"]}, "define[0] (basket).windows",
     "the same span twice"),
    ({"name": "basket", "agg": "avg", "column": "amount"}, "define[0] (basket).windows", "give the windows"),
    ({"name": "basket", "agg": "avg", "column": "amount", "windows": ["7d"], "window": "7d"}, "define[0].window",
     "unknown key"),
    ({"name": "Basket", "agg": "count", "windows": ["7d"]}, "define[0].name", "lower case"),
    ({"name": "a__b", "agg": "count", "windows": ["7d"]}, "define[0].name", "single _"),
    ({"name": "orders", "agg": "count", "windows": ["7d"]}, "define[0] (orders).name",
     "makes the column orders_7d, which is already a built-in feature"),
    ({"name": "split", "ratio": ["orders_7d", "orders_30d"]}, "define[0] (split).name", "already a reserved column"),
    ({"name": "share", "ratio": ["orders_7d", "orders_9d"]}, "define[0] (share).ratio",
     "the denominator 'orders_9d' is not a feature column made before it"),
    ({"name": "share", "ratio": ["orders_7d"]}, "define[0] (share).ratio", "[numerator, denominator]"),
    ({"name": "share", "ratio": ["orders_7d", "orders_30d"], "windows": ["7d"]}, "define[0] (share).windows",
     "a ratio takes only name and ratio"),
    ({"name": "c", "agg": "count", "where": {"status": "cancelled"}, "windows": ["7d"]}, "define[0] (c).where.status",
     "non-empty list"),
    ({"name": "c", "agg": "count", "where": {"column": "amount", "op": "~", "value": 1}, "windows": ["7d"]},
     "define[0] (c).where.op", "must be one of <"),
    ({"name": "c", "agg": "count", "where": {"column": "amount", "op": "<", "value": "ten"}, "windows": ["7d"]},
     "define[0] (c).where.value", "amount is a number"),
    ({"name": "c", "agg": "count", "orders": "some", "windows": ["7d"]}, "define[0] (c).orders", "counted"),
    ({"name": "c", "agg": "count", "entity": "shop", "windows": ["7d"]}, "define[0] (c).entity",
     "must be customer or a text attribute of staging.attributes (country), got 'shop'"),
    ({"name": "c", "agg": "count", "entity": "vip", "windows": ["7d"]}, "define[0] (c).entity",
     "a text attribute of staging.attributes (country), got 'vip'"),
    ({"name": "c", "agg": "count", "source": "invoices", "windows": ["7d"]}, "define[0] (c).source",
     "must be orders or lines"),
    ({"name": "c", "agg": "count_distinct", "column": "item", "windows": ["7d"]}, "define[0] (c).column",
     "unknown column 'item' (the staged orders have: order_id, customer_id, order_at, amount, status, country, vip)"),
    ({"name": "c", "agg": "sum", "column": "country", "windows": ["7d"]}, "define[0] (c).column",
     "sum needs a number column (amount); country is text"),
    ({"name": "c", "agg": "count", "where": {"vip": ["yes"]}, "windows": ["7d"]}, "define[0] (c).where.vip",
     "vip is true or false"),
    ({"name": "c", "agg": "count", "source": "lines", "where": {"column": "quantity", "op": ">", "value": "x"},
      "windows": ["7d"]}, "define[0] (c).where.value", "quantity is a number"),
    ({"name": "c", "agg": "count_distinct", "source": "lines", "column": "sku", "windows": ["7d"]},
     "define[0] (c).column", "unknown column 'sku' (the staged lines have: order_id, customer_id, status, "
                             "line_number, item, quantity, unit_price, amount, country, vip)"),
    ({"name": "c", "agg": "time_since_last", "column": "amount"}, "define[0] (c).column", "takes no column"),
]


def load_with(project, features: dict[str, Any], **config: Any):
    project.write_csv("orders.csv", HEADER)
    staging = config.pop("staging", {"attributes": {"country": "text", "vip": "boolean"}})
    return load(project.write_config(features=features, staging=staging, **config))


@pytest.mark.parametrize(("definition", "key", "message"), REFUSED, ids=[key for _, key, _ in REFUSED])
def test_a_bad_definition_is_refused_naming_the_file_and_key(project, definition, key, message):
    with pytest.raises(ConfigError) as refused:
        load_with(project, {"define": [definition]})
    assert f"configs/pipeline.yaml: features.{key}: " in str(refused.value)
    assert message in str(refused.value)


def test_two_definitions_making_one_column_are_refused(project):
    with pytest.raises(ConfigError) as refused:
        load_with(project, {"define": [AVG, {**AVG, "windows": ["30d", "lifetime"]}]})
    assert "features.define[1] (basket).name: makes the column basket_30d, which is already made by " \
           "features.define[0]" in str(refused.value)


def test_a_ratio_of_a_ratio_is_refused(project):
    share = {"name": "share", "ratio": ["orders_7d", "orders_30d"]}
    with pytest.raises(ConfigError) as refused:
        load_with(project, {"define": [share, {"name": "again", "ratio": ["share", "orders_7d"]}]})
    assert "features.define[1] (again).ratio: the numerator 'share' is itself a ratio" in str(refused.value)


def test_window_end_must_be_inclusive_or_exclusive(project):
    with pytest.raises(ConfigError) as refused:
        load_with(project, {"window_end": "open"})
    assert "features.window_end: must be inclusive" in str(refused.value)


def test_the_names_are_predictable(project):
    config = load_with(project, {"windows_days": [7], "define": [
        {"name": "basket", "agg": "avg", "column": "amount", "windows": ["30d", "12h", "lifetime"]},
        {"name": "since_first", "agg": "time_since_first"},
        {"name": "recent_first", "agg": "time_since_first", "windows": ["7d"]},
        {"name": "products", "agg": "count_distinct", "column": "status", "windows": ["7d"]},
        {"name": "share", "ratio": ["products_7d", "orders_7d"]},
    ]})
    assert [(c.name, c.pg_type) for c in feature_columns(config.features)] == [
        ("orders_7d", "bigint"), ("revenue_7d", "numeric"), ("days_since_last_order", "integer"),
        ("basket_30d", "numeric"), ("basket_12h", "numeric"), ("basket_lifetime", "numeric"),
        ("since_first", "integer"), ("recent_first_7d", "integer"), ("products_7d", "bigint"), ("share", "numeric")]


def test_a_status_value_is_compared_as_staged(project):
    """Statuses are staged trimmed and lower-cased, and so are a where's status values."""
    config = load_with(project, {"define": [{"name": "c", "agg": "count", "where": {"status": [" Cancelled "]},
                                             "orders": "all", "windows": ["7d"]}]})
    assert config.features.define[0].where[0].constants == ("cancelled",)


@pytest.mark.parametrize(("attributes", "key", "message"), [
    ({"country": "varchar"}, "staging.attributes.country", "must be one of text, numeric, bigint, boolean"),
    ({"status": "text"}, "staging.attributes.status", "the staged orders or lines have already"),
    ({"Country": "text"}, "staging.attributes.Country", "lower case letters"),
    (["country"], "staging.attributes", "must map attribute names to types"),
])
def test_a_bad_attribute_is_refused(project, attributes, key, message):
    with pytest.raises(ConfigError) as refused:
        load_with(project, {}, staging={"attributes": attributes})
    assert f"configs/pipeline.yaml: {key}: " in str(refused.value) and message in str(refused.value)


def test_lines_need_a_lines_model_and_attributes_map_like_columns(project):
    with pytest.raises(ConfigError) as refused:
        load_with(project, {"define": [{"name": "n", "source": "lines", "agg": "count", "windows": ["7d"]}]})
    assert "features.define[0].source: reads lines, but no source has a lines_model" in str(refused.value)
    config = load_with(project, {}, columns={"country": "Land"})
    assert config.columns["country"] == "Land" and config.columns["vip"] == "vip"
    with pytest.raises(ConfigError) as refused:
        load_with(project, {}, columns={"region": "Region"})
    assert "columns.region: unknown canonical column" in str(refused.value)


def test_the_plan_has_one_pass_per_entity_and_groups_the_retrieval(project):
    """Columns of one entity share a pass with its own frames and lookback; the retrieval
    aggregates per (entity, source)."""
    config = load_with(project, {"define": [
        {"name": "land", "entity": "country", "agg": "sum", "column": "amount", "windows": ["7d"]},
        {"name": "basket", "agg": "avg", "column": "amount", "windows": ["30d"]},
        {"name": "land_ever", "entity": "country", "agg": "count", "windows": ["lifetime"]},
    ]})
    from scripts.config.defined import plan
    p = plan(config.features.define, "inclusive", [7, 30])
    assert [c["name"] for c in p["columns"]] == ["land_7d", "basket_30d", "land_ever_lifetime"]
    assert [c["name"] for c in p["pass_columns"]] == ["basket_30d"] and p["lookback_hours"] == 720
    [country] = p["entities"]
    assert country["entity"] == "country" and [c["name"] for c in country["pass_columns"]] == ["land_7d",
                                                                                                  "land_ever_lifetime"]
    assert country["lookback_hours"] is None  # a lifetime column reads the whole history
    assert [(g["entity"], g["source"], [c["name"] for c in g["columns"]]) for g in p["as_of_groups"]] == [
        ("country", "orders", ["land_7d", "land_ever_lifetime"]), (None, "orders", ["basket_30d"])]
