"""A run's profile (meta.profiles, written by sql/065_meta_profiles.sql) as the report
carries it: the batch's columns, the features' quantiles and histograms by split, and the
label balance. The drift checks themselves are validation results (level 'drift')."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

# The run 066 compares with: the latest earlier run that passed and left a profile.
BASELINE_SQL = """
SELECT r.run_id FROM meta.runs AS r
WHERE r.status = 'passed' AND r.run_id != %(run)s
  AND EXISTS (SELECT 1 FROM meta.profiles AS p WHERE p.run_id = r.run_id)
ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1
"""


def _floats(values: list[Any] | None) -> list[float] | None:
    return None if values is None else [None if v is None else float(v) for v in values]


def fetch_profile(conn: psycopg.Connection, run_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT subject, column_name, split, row_count, profiled_row_count, null_count, distinct_count,"
            " quantiles, histogram_edges, histogram_counts, value_counts"
            " FROM meta.profiles WHERE run_id = %s ORDER BY subject, column_name, split",
            (run_id,),
        )
        rows = cur.fetchall()
        baseline = cur.execute(BASELINE_SQL, {"run": run_id}).fetchone()
    batch: dict[str, Any] = {"row_count": 0, "columns": {}, "status_counts": {}}
    features: dict[str, Any] = {"row_count": 0, "sampled_rows": 0, "columns": {}}
    labels: dict[str, Any] | None = None
    for row in rows:
        if row["subject"] == "batch":
            batch["row_count"] = row["row_count"]
            column = {"null_count": row["null_count"],
                      "null_rate": row["null_count"] / row["row_count"] if row["row_count"] else 0.0,
                      "distinct_count": row["distinct_count"]}
            if row["quantiles"] is not None:  # the amount: quantiles of a sample when the batch is large
                column["quantiles"] = _floats(row["quantiles"])
                column["profiled_rows"] = row["profiled_row_count"]
            batch["columns"][row["column_name"]] = column
            if row["column_name"] == "status":
                batch["status_counts"] = row["value_counts"] or {}
        elif row["subject"] == "features":
            column = features["columns"].setdefault(row["column_name"], {"histogram": {"counts": {}}})
            if row["split"] == "all":
                features["row_count"] = row["row_count"]
                features["sampled_rows"] = row["profiled_row_count"]
                column["null_rate"] = row["null_count"] / row["profiled_row_count"] if row["profiled_row_count"] else 0.0
                column["quantiles"] = _floats(row["quantiles"])
                column["histogram"]["edges"] = _floats(row["histogram_edges"])
            column["histogram"]["counts"][row["split"]] = row["histogram_counts"] or []
        else:
            labels = labels or {"column": row["column_name"], "by_split": {}}
            counts = row["value_counts"] or {}
            labels["by_split"][row["split"]] = {"rows": row["row_count"], "positive": counts.get("positive", 0),
                                                "negative": counts.get("negative", 0),
                                                "censored": counts.get("censored", 0)}
    return {"baseline_run_id": baseline["run_id"] if baseline else None, "batch": batch, "features": features,
            "labels": labels}
