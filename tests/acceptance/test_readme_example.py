"""The worked feature example in docs/features-labels-splits.md is what the pipeline computes,
table for table."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from scripts.errors import EXIT_PASSED
from scripts.pipeline.runner import run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

PAGE = REPO_ROOT / "docs" / "features-labels-splits.md"
SECTION = "### Worked example: features"


def worked_example_tables() -> tuple[list[list[str]], list[list[str]]]:
    """The orders table and the features table under SECTION in the page."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    tables = re.findall(r"((?:^\|.*\|\n)+)", section, flags=re.M)[:2]
    parsed = []
    for table in tables:
        rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()]
        parsed.append([row for row in rows[2:]])  # skip header and separator
    return parsed[0], parsed[1]


def test_worked_example_matches_the_pipeline(project, db_url):
    orders, features = worked_example_tables()
    assert [order for order, _, _ in orders] == ["A", "B", "C", "D", "E"]
    lines = [f"{order},C001,{at}:00,{amount},completed" for order, at, amount in orders]
    project.write_csv("orders.csv", HEADER + "\n".join(lines) + "\n")
    code, _ = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_PASSED
    expected = [
        (
            "C001",
            dt.datetime.strptime(row[0], "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc),
            int(row[1]), Decimal(row[2]), int(row[3]), Decimal(row[4]),
            None if row[5] == "NULL" else int(row[5]),
        )
        for row in features
    ]
    assert len(expected) == 4
    got = query(db_url, "SELECT customer_id, feature_time, orders_7d, revenue_7d, orders_30d, revenue_30d,"
                        " days_since_last_order FROM feats.customer_features ORDER BY feature_time")
    assert got == expected
