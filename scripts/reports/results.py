"""What a run's report carries, read back from the database after the stages that wrote it:
the checks (with samples) and quarantined records, the splits (meta.split_cutoffs), and
the profile (meta.profiles, written by sql/65_profile/067_profiles.sql: the batch's
columns, the features' quantiles and histograms by split, the label balance). The drift
checks themselves are validation results (level 'drift')."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row

def outcome(result: dict[str, Any], check: dict[str, Any]) -> str:
    """A check's sentence in the report: what it found when it did not pass; a pass reads as
    one (no offender, or some within its thresholds). A drift check's carries its figures."""
    if result["status"] != "pass" or result["level"] == "drift" or not check.get("passed"):
        return result["message"]
    if not result["failing_count"]:
        return check["passed"]
    return (f"{check.get('found', result['message'])}: {result['failing_count']:,} of {result['row_count']:,} "
            f"({result['failing_percent']}%), within its thresholds")


def fetch_checks(conn: psycopg.Connection, run_id: str, checks_config: list[dict[str, Any]], level: str,
                 sample_size: int) -> list[dict[str, Any]]:
    """This run's results of one level's checks, each with up to ``sample_size`` samples
    (quarantined records for a quarantine check, the failure history otherwise)."""
    by_id = {c["id"]: c for c in checks_config}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT check_id, rule, column_name, severity, status, failing_count, row_count,"
            " failing_percent::float AS failing_percent, message, level, action,"
            " measured::float AS measured, baseline::float AS baseline"
            " FROM meta.validation_results WHERE run_id = %s AND level = %s ORDER BY check_id",
            (run_id, level),
        )
        results = cur.fetchall()
        cur.execute(
            "SELECT check_id, file_path, line_number, value FROM ("
            "  SELECT check_id, file_path, line_number, failing_value AS value,"
            "    row_number() OVER (PARTITION BY check_id ORDER BY failure_id) AS n"
            "  FROM meta.validation_failures WHERE run_id = %(run)s"
            "  UNION ALL"
            "  SELECT check_id, file_path, line_number, failing_value,"
            "    row_number() OVER (PARTITION BY check_id ORDER BY quarantine_id)"
            "  FROM meta.quarantine WHERE run_id = %(run)s) AS ranked"
            " WHERE n <= %(n)s ORDER BY check_id, n",
            {"run": run_id, "n": sample_size},
        )
        samples: dict[str, list[dict[str, Any]]] = {}
        for row in cur.fetchall():
            samples.setdefault(row.pop("check_id"), []).append(row)
    return [
        {
            "id": r["check_id"],
            "level": r["level"],
            "column": r["column_name"],
            "rule": r["rule"],
            "severity": r["severity"],
            "action": r["action"],
            "status": r["status"],
            "failing_count": r["failing_count"],
            "failing_percent": r["failing_percent"],
            "row_count": r["row_count"],
            "message": outcome(r, by_id.get(r["check_id"], {})),
            # a drift check's measured value and the baseline run's (meta.profiles)
            **({"measured": r["measured"], "baseline": r["baseline"]} if r["level"] == "drift" else {}),
            "implicit": bool(by_id.get(r["check_id"], {}).get("implicit")),
            "error_if": threshold_text(by_id.get(r["check_id"], {}).get("error_if")),
            "warn_if": threshold_text(by_id.get(r["check_id"], {}).get("warn_if")),
            "samples": samples.get(r["check_id"], []),
        }
        for r in results
    ]


def fetch_splits(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    """This run's splits (meta.split_cutoffs), train, val, test, with ISO times."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT split, starts_at, ends_before, row_count, gap_row_count, purged_row_count, censored_row_count,"
            " fraction::float AS fraction, target_fraction::float AS target_fraction"
            " FROM meta.split_cutoffs WHERE run_id = %s"
            " ORDER BY array_position(ARRAY['train', 'val', 'test'], split)",
            (run_id,),
        )
        return [{**row, "starts_at": _iso(row["starts_at"]), "ends_before": _iso(row["ends_before"])}
                for row in cur.fetchall()]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def threshold_text(threshold: dict[str, Any] | None) -> str | None:
    """A parsed threshold as the config writes it ('>0', '>=10', '>0.5%'); None: never breached."""
    if not threshold:
        return None
    value = threshold["value"]
    number = int(value) if float(value).is_integer() else value
    return f"{threshold['op']}{number}{'%' if threshold['percent'] else ''}"


def quarantine_summary(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Records set aside in this run, per check (the query to list them: docs/validation.md)."""
    per_check = {c["id"]: c["failing_count"] for c in checks if c["action"] == "quarantine" and c["failing_count"]}
    return {"records": sum(per_check.values()), "by_check": per_check}


# The run 069 compares with (its drift_baseline_run, as it chose it): the latest earlier run
# of the same pipeline that passed and left a profile.
BASELINE_SQL = """
SELECT r.run_id FROM meta.runs AS r
WHERE r.status = 'passed' AND r.run_id != %(run)s
  AND r.pipeline = (SELECT t.pipeline FROM meta.runs AS t WHERE t.run_id = %(run)s)
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
