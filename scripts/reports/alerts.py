"""Alerts: when a run fails or errors (and, with ``alerts.on_warning``, when it warns or
quarantines records), POST a JSON summary of it to a webhook.

The URL comes from ALERTS_WEBHOOK_URL, else from ``alerts.webhook_url`` in the config. The
body carries a ``text`` field, so a Slack-style incoming webhook shows it as a message, and
the run's id, status, exit code, failed checks with their counts, errors and report path as
fields for anything else. No sample values are sent: they are data, and they stay in the
reports and the database.

Delivery is bounded: each attempt gets ``alerts.timeout_seconds`` (default 3) in all, DNS
and connecting included, and at most ``alerts.attempts`` (default 3) are made; connection
errors, timeouts, 429 and 5xx are retried after a short backoff, other answers are not. An
alert that cannot be delivered is a ``warning:`` line on the console and an ``error`` in the
outcome the report stores; it never changes the run's exit code and never raises.

The URL is a secret (a Slack URL holds a token): it is printed and stored only as
``scheme://host/…``, and scrubbed from any error text.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.config.sections import Alerts
from scripts.console import mask_webhook_url as masked_url
from scripts.console import scrub_webhook_url as scrub

ENV_VAR = "ALERTS_WEBHOOK_URL"
BACKOFF_SECONDS = 0.5  # before the second attempt; doubled before each next one
MAX_BACKOFF_SECONDS = 4.0  # a Retry-After header is honoured up to this
TEXT_CHECKS = 10  # checks named in the text field; the JSON fields list them all
MAX_MESSAGE_CHARS = 500  # an error message in the payload is cut here
RETRIED_STATUSES = {429} | set(range(500, 600))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: urllib would re-send a POST as a bodiless GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def notify(report: dict[str, Any], settings: Alerts | None, report_path: Path,
           log: Callable[[str], None]) -> dict[str, Any]:
    """Post the run's summary when it calls for an alert; return what happened (the report
    keeps it as ``alerts``). Never raises, never waits longer than attempts × timeout plus
    the backoffs."""
    settings = settings or Alerts()
    url = webhook_url(settings)
    if not url:
        return {"configured": False}
    outcome: dict[str, Any] = {"configured": True, "webhook": masked_url(url)}
    reason = None
    try:
        reason, skipped = alert_reason(report, settings.on_warning)
        if skipped:
            outcome["skipped"] = skipped
            return outcome
        outcome["reason"] = reason
        body = json.dumps(payload(report, report_path), default=str).encode("utf-8")
        outcome.update(deliver(url, body, float(settings.timeout_seconds), max(int(settings.attempts), 1)))
    except Exception as exc:  # noqa: BLE001 - a bug of ours must not fail or hide the run
        outcome.update(sent=False, error=scrub(f"internal error: {type(exc).__name__}: {exc}", url))
    if outcome.get("sent"):
        log(f"alert: {reason}: posted to {outcome['webhook']} (HTTP {outcome['http_status']}, "
            f"attempt {outcome['attempts']} of {settings.attempts})")
    else:
        log(f"warning: alert not delivered to {outcome['webhook']}: {outcome.get('error')}; "
            "the run's outcome is unchanged")
    return outcome


def webhook_url(settings: Alerts) -> str | None:
    """ALERTS_WEBHOOK_URL when set and not empty, else the config's ``alerts.webhook_url``."""
    return (os.environ.get(ENV_VAR) or "").strip() or settings.webhook_url or None


def alert_reason(report: dict[str, Any], on_warning: bool) -> tuple[str | None, str | None]:
    """(why the run is alerted, None) or (None, why it is not)."""
    status = report.get("status")
    if status == "failed":
        return "run failed", None
    if status != "passed":
        return "run errored", None
    checks = report.get("checks") or []
    warned = sum(c.get("status") == "warn" for c in checks)
    quarantined = sum(c.get("status") == "quarantine" for c in checks)
    if not warned and not quarantined:
        return None, "run passed"
    if not on_warning:
        return None, "run passed with warnings or quarantined records; alerts.on_warning is false"
    return "run warned", None


def check_summary(check: dict[str, Any]) -> dict[str, Any]:
    """A check as the payload carries it: counts, no sample values."""
    keys = ("id", "level", "column", "rule", "severity", "action", "status", "failing_count", "row_count",
            "failing_percent", "message")
    return {key: check.get(key) for key in keys}


def payload(report: dict[str, Any], report_path: Path) -> dict[str, Any]:
    checks = report.get("checks") or []
    failed = [check_summary(c) for c in checks if c.get("status") == "fail"]
    warned = [check_summary(c) for c in checks if c.get("status") == "warn"]
    quarantined = [check_summary(c) for c in checks if c.get("status") == "quarantine"]
    errors = [_cut(str(e)) for e in report.get("errors") or []]
    body = {
        "run_id": report.get("run_id"),
        "status": report.get("status"),
        "exit_code": report.get("exit_code"),
        "config": report.get("config"),
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "failed_checks": failed,
        "warned_checks": warned,
        "quarantined_checks": quarantined,
        "errors": errors,
        "report_path": str(Path(report_path).resolve()),
    }
    body["text"] = summary_text(body)
    return body


def summary_text(body: dict[str, Any]) -> str:
    """The message a chat webhook shows: the verdict, then a line per check or error."""
    lines = [f"raw-to-ready run {body['run_id']} {body['status']} (exit {body['exit_code']})"]
    for title, checks in (("failed", body["failed_checks"]), ("warned", body["warned_checks"]),
                          ("quarantined records", body["quarantined_checks"])):
        if not checks:
            continue
        lines.append(f"{len(checks)} check(s) {title}:")
        for check in checks[:TEXT_CHECKS]:
            unit = check["level"] if check["level"] in ("records", "orders") else "rows"
            percent = "" if check["failing_percent"] is None else f", {check['failing_percent']} %"
            lines.append(f"• {check['id']}: {check['message']} ({check['failing_count'] or 0:,} of "
                         f"{check['row_count'] or 0:,} {unit}{percent})")
        if len(checks) > TEXT_CHECKS:
            lines.append(f"• … and {len(checks) - TEXT_CHECKS} more (in the report)")
    if body["status"] == "error":
        lines += [f"error: {error}" for error in body["errors"]]
    lines.append(f"report: {body['report_path']}")
    return "\n".join(lines)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def deliver(url: str, body: bytes, timeout: float, attempts: int) -> dict[str, Any]:
    """POST ``body`` up to ``attempts`` times; {"sent", "attempts", "http_status"?, "error"?}."""
    outcome: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        status, error, retry_after = post_once(url, body, timeout)
        outcome = {"sent": status is not None and 200 <= status < 300, "attempts": attempt}
        if status is not None:
            outcome["http_status"] = status
        if outcome["sent"]:
            return outcome
        outcome["error"] = scrub(error, url) + (f" after {attempt} attempts" if attempt > 1 else "")
        if retry_after is None or attempt == attempts:
            break
        time.sleep(min(max(BACKOFF_SECONDS * 2 ** (attempt - 1), retry_after), MAX_BACKOFF_SECONDS))
    return outcome


def post_once(url: str, body: bytes, timeout: float) -> tuple[int | None, str, float | None]:
    """One POST: (HTTP status or None, what went wrong, seconds to wait before a retry or
    None when retrying cannot help). It ends within ``timeout``: the request runs in a
    daemon thread, since a socket timeout bounds each read but not DNS or a trickling server."""
    result: dict[str, Any] = {}

    def attempt() -> None:
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "raw-to-ready-alerts"})
        try:
            # built per request: the proxy settings are read from the environment as it is now
            with urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout) as response:
                result["status"] = response.status
        except urllib.error.HTTPError as exc:
            result["status"] = exc.code
            result["retry_after"] = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
        except Exception as exc:  # noqa: BLE001 - URLError, OSError, HTTPException, ValueError (a bad URL), ...
            result["exception"] = exc

    worker = threading.Thread(target=attempt, name="alert-webhook", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, f"no answer within {timeout:g} s", 0.0
    status = result.get("status")
    if status is not None:
        if 200 <= status < 300:
            return status, "", None
        if status in RETRIED_STATUSES:
            return status, f"HTTP {status}", _seconds(result.get("retry_after"))
        if 300 <= status < 400:
            return status, f"HTTP {status}: a redirect (not followed; give the final URL)", None
        return status, f"HTTP {status}", None
    exc = result.get("exception")
    if isinstance(exc, ValueError):  # not a URL urllib can post to
        return None, f"invalid webhook URL: {exc}", None
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return None, f"no answer within {timeout:g} s", 0.0
    if isinstance(reason, ConnectionRefusedError):
        return None, "connection refused", 0.0
    return None, str(reason).strip() or type(reason).__name__, 0.0


def _seconds(retry_after: str | None) -> float:
    """A Retry-After given in seconds; 0 (the usual backoff) for none or an HTTP date."""
    try:
        return max(float(retry_after), 0.0) if retry_after else 0.0
    except ValueError:
        return 0.0
