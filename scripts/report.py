"""What a run reports: its checks (with samples) and quarantined records, read back from the
database after the validation stages, and the JSON report under artifacts/reports/."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from scripts import alerts, html_report, junit

ARTIFACTS = Path("artifacts")


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
            "message": r["message"],
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
    """Records set aside in this run, per check (the query to list them is in the README)."""
    per_check = {c["id"]: c["failing_count"] for c in checks if c["action"] == "quarantine" and c["failing_count"]}
    return {"records": sum(per_check.values()), "by_check": per_check}


def report_paths(run_id: str) -> dict[str, Path]:
    """Where a run's reports go: the JSON, the HTML page beside it, the JUnit XML for CI."""
    folder = ARTIFACTS / "reports"
    return {"json": folder / f"{run_id}.json", "html": folder / f"{run_id}.html",
            "junit": folder / f"{run_id}.junit.xml", "index": folder / "index.html"}


def write_report(run_id: str, report: dict[str, Any], alert_settings: dict[str, Any] | None = None,
                 log: Callable[[str], None] = print) -> Path:
    """Alert (when the run calls for it), then write the JSON, HTML and JUnit reports and the
    index of runs. The alert's outcome is in all of them."""
    paths = report_paths(run_id)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    report["alerts"] = alerts.notify(report, alert_settings or {}, paths["html"], log)
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    for write in (lambda: html_report.write_html(report, paths["html"]),
                  lambda: html_report.write_index(paths["index"].parent),
                  lambda: junit.write_junit(report, paths["junit"])):
        try:  # one report that cannot be written (a full disk) does not cost the others
            write()
        except OSError as exc:
            log(f"warning: {exc.filename or ''}: {exc.strerror or exc}")
    return paths["json"]
