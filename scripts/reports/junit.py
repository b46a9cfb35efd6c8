"""A run as JUnit XML (artifacts/reports/<run_id>.junit.xml), so CI shows the gate as tests.

    <testsuites name="raw-to-ready">
      <testsuite name="raw-to-ready.run">      a test case per stage that ran (time: its seconds),
                                               and one named `run` when the run stopped outside a stage
      <testsuite name="raw-to-ready.records">  a test case per check of that level, named by its id
      <testsuite name="raw-to-ready.orders">   (and so on for each level that has checks)

How each outcome shows:
    check pass        passed
    check fail        <failure>: the message, the counts, the threshold, the samples (file:line value)
    check warn        passed, the warning in <system-out> (JUnit has no "warning"; <skipped> would
                      say the check did not run); with --warn-error a <failure>
    check quarantine  passed, the records set aside in <system-out>
    stage ok          passed
    stage failed      <failure>: the gate stopped the run (its checks say which failed)
    stage error       <error>: the stage and the message (exit 3)
    no stage to blame <error> in the test case `run`: a bad config (exit 2), an unreachable database

So a run that did not pass always has a failure or an error, and CI is never green on it.
The attributes are those the Jenkins xUnit JUnit schema allows: counts, time and name on
<testsuites>; skipped and timestamp (UTC, no offset) on each <testsuite> too. Characters
XML 1.0 cannot hold (control characters, lone surrogates) are written as \\xNN escapes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

PROJECT = "raw-to-ready"
MAX_ATTRIBUTE_CHARS = 1000  # a message attribute is a title; the whole text is in the element
# Everything outside XML 1.0's Char production.
ILLEGAL_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OUTCOMES = ("failure", "error", "skipped")


def write_junit(report: dict[str, Any], path: Path) -> Path:
    """Write ``report`` (the run's JSON report, as a dict) as JUnit XML to ``path``."""
    root = build(report)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def build(report: dict[str, Any]) -> ET.Element:
    timestamp = _timestamp(report.get("started_at"))
    suites = [run_suite(report, timestamp)]
    levels: dict[str, list[dict[str, Any]]] = {}
    for check in report.get("checks") or []:
        levels.setdefault(str(check.get("level") or "checks"), []).append(check)
    warn_error = bool(report.get("warn_error"))
    for level, checks in levels.items():
        suite = _suite(f"{PROJECT}.{level}", timestamp)
        for check in checks:
            suite.append(check_case(check, f"{PROJECT}.{level}", warn_error))
        suites.append(_count(suite))
    root = ET.Element("testsuites", {"name": PROJECT})
    root.extend(suites)
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", _seconds(_duration(report)))
    return root


# --- the run: stages, and errors outside them ---------------------------------------------


def run_suite(report: dict[str, Any], timestamp: str) -> ET.Element:
    classname = f"{PROJECT}.run"
    suite = _suite(classname, timestamp)
    properties = ET.SubElement(suite, "properties")
    for name in ("run_id", "status", "exit_code", "config", "feature_version"):
        if report.get(name) is not None:
            ET.SubElement(properties, "property", {"name": name, "value": _clean(str(report[name]))})
    alerts = report.get("alerts") or {}
    for name, value in alerts.items():  # what the alert did (scripts/reports/alerts.py), as JSON values
        value = value if isinstance(value, str) else json.dumps(value, default=str)
        ET.SubElement(properties, "property", {"name": f"alerts.{name}", "value": _clean(value)})

    last: dict[str, dict[str, Any]] = {}  # a stage started over (full refresh): its last try counts
    earlier: dict[str, list[str]] = {}
    for stage in report.get("stages") or []:
        if stage["stage"] in last:
            before = last[stage["stage"]]
            earlier.setdefault(stage["stage"], []).append(f"{before['status']}: {before.get('message') or ''}")
        last[stage["stage"]] = stage
    errors = "\n".join(str(e) for e in report.get("errors") or [])
    for name, stage in last.items():
        case = _case(classname, name, stage.get("seconds"))
        rows = "" if stage.get("rows") is None else f"{stage['rows']:,} rows written"
        if stage.get("table") and stage.get("rows") is not None:
            rows += f" to {stage['table']}"
        if stage.get("read") is not None:
            rows += f"; {stage['read']:,} {stage.get('read_what', 'read')}"
        out = [f"{name}: {stage['status']} {rows}".rstrip()]
        out += [f"started over after: {line}" for line in earlier.get(name, [])]
        message = str(stage.get("message") or "")
        if stage["status"] == "error":
            _outcome(case, "error", message or errors, "stage error", errors or message)
        elif stage["status"] == "failed":
            _outcome(case, "failure", message, "validation failed", message)
        elif stage["status"] != "ok":
            _outcome(case, "error", f"stage ended as {stage['status']}", "stage error", errors)
        _text(case, "system-out", "\n".join(out))
        suite.append(case)

    status = report.get("status")
    # a run that did not pass shows as one that did not, even when no stage is to blame
    if status == "failed" and not _any(suite, "failure"):
        case = _case(classname, "run", _duration(report))
        _outcome(case, "failure", errors or "validation failed", "validation failed", errors)
        suite.append(case)
    elif status not in ("passed", "failed") and not _any(suite, "error"):
        case = _case(classname, "run", _duration(report))
        _outcome(case, "error", errors or f"run ended as {status}", f"exit {report.get('exit_code')}", errors)
        suite.append(case)
    if alerts.get("error"):
        _text(suite, "system-err", f"warning: alert not delivered to {alerts.get('webhook')}: {alerts['error']}")
    return _count(suite)


# --- checks ---------------------------------------------------------------------------------


def check_case(check: dict[str, Any], classname: str, warn_error: bool) -> ET.Element:
    case = _case(classname, str(check.get("id")), 0)
    status = check.get("status")
    if status == "fail" or (status == "warn" and warn_error):
        _outcome(case, "failure", f"{check.get('message')}: {counts(check)}", str(check.get("rule") or "check"),
                 details(check))
    elif status in ("warn", "quarantine"):
        _text(case, "system-out", ("WARNING: " if status == "warn" else "QUARANTINED: ") + details(check))
    elif status != "pass":
        _outcome(case, "error", f"check ended as {status}", "check error", details(check))
    return case


def counts(check: dict[str, Any]) -> str:
    unit = check.get("level") if check.get("level") in ("records", "orders") else "rows"
    percent = "" if check.get("failing_percent") is None else f" ({check['failing_percent']} %)"
    return f"{check.get('failing_count') or 0:,} of {check.get('row_count') or 0:,} {unit}{percent}"


def details(check: dict[str, Any]) -> str:
    """The text of a failure or a warning: message, counts and threshold, then the samples."""
    on = f" on {check['column']}" if check.get("column") else ""
    thresholds = ", ".join(f"{key} {check[key]}" for key in ("error_if", "warn_if") if check.get(key))
    lines = [
        str(check.get("message")),
        f"offending: {counts(check)}; rule {check.get('rule')}{on}; severity {check.get('severity')}, "
        f"action {check.get('action')}" + (f"; {thresholds}" if thresholds else ""),
    ]
    samples = check.get("samples") or []
    if samples:
        lines.append(f"samples (the first {len(samples)} of {check.get('failing_count') or len(samples):,}):")
        lines += [f"  {_where(s)} {_value(s.get('value'))}" for s in samples]
    return "\n".join(lines)


def _where(sample: dict[str, Any]) -> str:
    file_path, line = sample.get("file_path"), sample.get("line_number")
    return f"{file_path or '?'}:{line}" if line is not None else str(file_path or "?")


def _value(value: Any) -> str:
    """NULL, or the value quoted so that blanks show (JSON escapes control characters)."""
    return "NULL" if value is None else json.dumps(value if isinstance(value, str) else str(value),
                                                   ensure_ascii=False)


# --- XML --------------------------------------------------------------------------------------


def _suite(name: str, timestamp: str) -> ET.Element:
    return ET.Element("testsuite", {"name": name, "timestamp": timestamp})


def _case(classname: str, name: str, seconds: float | None) -> ET.Element:
    return ET.Element("testcase", {"classname": classname, "name": _clean(name), "time": _seconds(seconds)})


def _outcome(case: ET.Element, kind: str, message: str, kind_type: str, text: str) -> None:
    title = _clean(" ".join(message.split()))  # an attribute is one line
    if len(title) > MAX_ATTRIBUTE_CHARS:
        title = title[: MAX_ATTRIBUTE_CHARS - 1] + "…"
    element = ET.SubElement(case, kind, {"message": title, "type": _clean(kind_type)})
    element.text = _clean(text) if text else None


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = _clean(text)


def _any(suite: ET.Element, kind: str) -> bool:
    return suite.find(f"testcase/{kind}") is not None


def _count(suite: ET.Element) -> ET.Element:
    """The counts and time of a suite, from its test cases (as CI tools check them)."""
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for kind, key in zip(OUTCOMES, ("failures", "errors", "skipped")):
        suite.set(key, str(sum(case.find(kind) is not None for case in cases)))
    suite.set("time", _seconds(sum(float(case.get("time", "0")) for case in cases)))
    return suite


def _clean(text: str) -> str:
    """``text`` with what XML 1.0 cannot hold written as a visible escape."""
    return ILLEGAL_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                           else f"\\u{ord(m.group()):04x}", text)


def _seconds(seconds: float | None) -> str:
    return f"{max(seconds or 0.0, 0.0):.3f}"


def _parse(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _timestamp(value: Any) -> str:
    """ISO 8601 in UTC without an offset, to the second: the JUnit schemas' form."""
    moment = _parse(value) or dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat()


def _duration(report: dict[str, Any]) -> float:
    started, finished = _parse(report.get("started_at")), _parse(report.get("finished_at"))
    return (finished - started).total_seconds() if started and finished else 0.0
