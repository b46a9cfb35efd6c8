"""What a run reports: its checks (with samples) and quarantined records, read back from the
database after the validation stages, and the JSON report under artifacts/reports/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

ARTIFACTS = Path("artifacts")


def fetch_checks(conn: psycopg.Connection, run_id: str, checks_config: list[dict[str, Any]], level: str,
                 sample_size: int) -> list[dict[str, Any]]:
    """This run's results of one level's checks, each with up to ``sample_size`` samples
    (quarantined records for a quarantine check, the failure history otherwise)."""
    by_id = {c["id"]: c for c in checks_config}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT check_id, rule, column_name, severity, status, failing_count, row_count,"
            " failing_percent::float AS failing_percent, message, level, action"
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
            "message": r["message"],
            "implicit": bool(by_id.get(r["check_id"], {}).get("implicit")),
            "samples": samples.get(r["check_id"], []),
        }
        for r in results
    ]


def quarantine_summary(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Records set aside in this run, per check (the query to list them is in the README)."""
    per_check = {c["id"]: c["failing_count"] for c in checks if c["action"] == "quarantine" and c["failing_count"]}
    return {"records": sum(per_check.values()), "by_check": per_check}


def write_report(run_id: str, report: dict[str, Any]) -> Path:
    path = ARTIFACTS / "reports" / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
