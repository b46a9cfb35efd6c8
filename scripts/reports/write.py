"""Write a run's reports under artifacts/reports/: the JSON, the HTML page and the index of
runs, the JUnit XML for CI; and post the alert when the run calls for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.config.sections import Alerts
from scripts.paths import ARTIFACTS
from scripts.reports import alerts, html, junit


def report_paths(run_id: str) -> dict[str, Path]:
    """Where a run's reports go: the JSON, the HTML page beside it, the JUnit XML for CI."""
    folder = ARTIFACTS / "reports"
    return {"json": folder / f"{run_id}.json", "html": folder / f"{run_id}.html",
            "junit": folder / f"{run_id}.junit.xml", "index": folder / "index.html"}


def write_report(run_id: str, report: dict[str, Any], alert_settings: Alerts | None = None,
                 log: Callable[[str], None] = print) -> Path:
    """Alert (when the run calls for it), then write the JSON, HTML and JUnit reports and the
    index of runs. The alert's outcome is in all of them."""
    paths = report_paths(run_id)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    report["alerts"] = alerts.notify(report, alert_settings, paths["html"], log)
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    for write in (lambda: html.write_html(report, paths["html"]),
                  lambda: html.write_index(paths["index"].parent),
                  lambda: junit.write_junit(report, paths["junit"])):
        try:  # one report that cannot be written (a full disk) does not cost the others
            write()
        except OSError as exc:
            log(f"warning: {exc.filename or ''}: {exc.strerror or exc}")
    return paths["json"]
