"""The run page's view model: one function per section, from the report dict to plain dicts of
text (numbers and times already formatted) that templates/sections/<name>.html.j2 lay out.

No markup here: every string is text, escaped by the templates. A value that is shown in a
particular way (a path that breaks after its slashes, a shortened hash, a sample) is a small
dict or list a macro in templates/_macros.html.j2 draws. A section raises on a report it cannot
read; html.render_html catches that and puts a notice in the section's place.
"""

from __future__ import annotations

from typing import Any

from scripts.reports import html_svg as svg
from scripts.reports.html_format import (breakable, fmt_duration, fmt_fraction, fmt_int, fmt_number, fmt_percent,
                                         fmt_seconds, fmt_time, path_pieces, plural, sample_value, short_hash,
                                         short_path, slug, text)

# check status -> (order in the checks table, CSS class, label)
CHECK_STATUS = {
    "fail": (0, "bad", "fail"),
    "quarantine": (1, "quar", "quarantine"),
    "warn": (2, "warn", "warn"),
    "pass": (3, "ok", "pass"),
}
RUN_STATUS = {"passed": "ok", "failed": "bad", "error": "err"}
LEVEL_ORDER = {"records": 0, "orders": 1, "drift": 2}
SOURCES_SHOWN = 12
SAMPLES_SHOWN = 5


def badge(label: Any, css: str, big: bool = False) -> dict[str, Any]:
    return {"label": text(label), "css": css, "big": big}


def check_badge(status: str) -> tuple[str, dict[str, Any]]:
    """A check's (CSS class, badge) by its status."""
    _, css, label = CHECK_STATUS.get(status, (4, "none", status))
    return css, badge(label, css)


def check_sort_key(check: dict[str, Any]) -> tuple[int, int, str]:
    order = CHECK_STATUS.get(str(check.get("status")), (4, "", ""))[0]
    return order, LEVEL_ORDER.get(str(check.get("level")), 9), str(check.get("id"))


def meta(key: str, value: Any, kind: str = "text") -> dict[str, Any]:
    """One line of the header's list: text, a path (kind path), a hash (kind hash) or a
    warning (kind warn)."""
    return {"key": key, "kind": kind, "value": value}


# --- the header, the summary cards, errors and warnings -----------------------------------


def header(report: dict[str, Any]) -> dict[str, Any]:
    status = str(report.get("status") or "unknown")
    exit_code = report.get("exit_code")
    warnings = report.get("warnings") or []
    label = status.upper()
    css = RUN_STATUS.get(status, "none")
    if warnings and status == "passed":
        label += f" · {len(warnings)} {plural(len(warnings), 'warning')}"
        css = "warn"
    refresh = report.get("refresh") or {}
    refresh_text = "—"
    if refresh:
        parts = ["full refresh" if refresh.get("full") else "incremental"]
        if refresh.get("version_number") is not None:
            published = next((s.get("rows") for s in report.get("stages") or [] if s.get("stage") == "registry"), None)
            parts.append(f"version {refresh['version_number']}" if published != 0
                         else f"nothing changed: version {refresh.get('published_version')} stays published")
        if refresh.get("reason"):
            parts.append(str(refresh["reason"]))
        refresh_text = " · ".join(parts)
    peak = report.get("runner_peak_rss_mib")
    return {
        "status": status,
        "exit_code": exit_code,
        "exit_text": f"exit code {exit_code}" if exit_code is not None else "exit code —",
        "badge": badge(label, css, big=True),
        "run_id": report.get("run_id"),
        "meta": [
            meta("started", fmt_time(report.get("started_at"))),
            meta("finished", fmt_time(report.get("finished_at"))),
            meta("duration", fmt_duration(report)),
            meta("pipeline", str(report.get("pipeline") or "—")),
            meta("config", path_pieces(report.get("config")), "path"),
            meta("feature_version", short_hash(report.get("feature_version"), 16), "hash"),
            meta("refresh", refresh_text),
            meta("validation", {True: "passed", False: "failed"}.get(report.get("validation_passed"), "not reached")),
            meta("peak memory (runner)", f"{peak} MiB" if peak is not None else "—"),
            alert(report.get("alerts")),
        ],
    }


def alert(alerts: Any) -> dict[str, Any]:
    """The webhook alert's outcome (scripts/reports/alerts.py): not configured, skipped, sent or
    not delivered (a warning)."""
    if not alerts:
        return meta("alert", "—")
    if not isinstance(alerts, dict):
        return meta("alert", str(alerts))
    if alerts.get("configured") is False:
        return meta("alert", "not configured")
    where = alerts.get("webhook") or "the webhook"
    if alerts.get("skipped"):
        return meta("alert", f"not sent: {alerts['skipped']}")
    if alerts.get("sent"):
        details = ", ".join(p for p in (
            f"HTTP {alerts['http_status']}" if alerts.get("http_status") is not None else "",
            f"attempt {alerts['attempts']}" if alerts.get("attempts") is not None else "") if p)
        return meta("alert", f"{alerts.get('reason') or 'sent'}: posted to {where}"
                    + (f" ({details})" if details else ""))
    if "sent" in alerts or alerts.get("error"):
        return meta("alert", f"not delivered to {where}: {alerts.get('error') or 'unknown error'}", "warn")
    return meta("alert", ", ".join(f"{k}: {v}" for k, v in alerts.items() if k != "configured") or "configured")


def summary(report: dict[str, Any]) -> dict[str, Any]:
    checks = report.get("checks") or []
    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in CHECK_STATUS}
    stages = {s.get("stage"): s for s in report.get("stages") or []}
    quarantined = (report.get("quarantine") or {}).get("records") or 0
    reached = "checks" in report  # a run that stopped before validation has no results, not zero

    def card(key: str, value: str, css: str = "") -> dict[str, str]:
        return {"key": key, "value": value, "css": css}

    return {"cards": [
        card("rows ingested", fmt_int((stages.get("ingest") or {}).get("rows"))),
        card("records validated", fmt_int((stages.get("validate") or {}).get("read"))),
        card("checks", fmt_int(len(checks)) if reached else "—"),
        card("failing", fmt_int(counts["fail"]) if reached else "—", "bad" if counts["fail"] else ""),
        card("warnings", fmt_int(counts["warn"]) if reached else "—", "warn" if counts["warn"] else ""),
        card("quarantined records", fmt_int(quarantined) if reached else "—", "quar" if quarantined else ""),
        card("rows in splits", fmt_int((stages.get("splits") or {}).get("read"))),
    ]}


def errors(report: dict[str, Any]) -> dict[str, Any]:
    """The run's errors and warnings, each linked to its check's row when it is a check's."""
    status = report.get("status")
    anchors = check_anchors(report)

    def items(messages: list[Any]) -> list[dict[str, Any]]:
        found = []
        for message in messages:
            anchor, check = anchors.get(str(message), (None, None))
            found.append({"text": text(message), "anchor": anchor, "check": check})
        return found

    boxes = []
    if report.get("errors"):
        boxes.append({"id": "errors", "css": "err" if status == "error" else "bad", "pre": True,
                      "title": "Why the run stopped" if status == "error" else "Errors",
                      "messages": items(report["errors"])})
    if report.get("warnings"):
        boxes.append({"id": "warnings", "css": "warn", "pre": False, "title": "Warnings",
                      "messages": items(report["warnings"])})
    return {"boxes": boxes}


def check_anchors(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """message -> (anchor of its row in the checks table, check id), for the failing checks."""
    anchors: dict[str, tuple[str, str]] = {}
    for index, check in enumerate(sorted(report.get("checks") or [], key=check_sort_key)):
        if check.get("status") in ("fail", "warn") and check.get("message") not in anchors:
            anchors[str(check.get("message"))] = (slug(check.get("id"), index), str(check.get("id")))
    return anchors


# --- sources and stages -------------------------------------------------------------------


def sources(report: dict[str, Any]) -> dict[str, Any]:
    files = report.get("sources")
    if not files:
        return {"note": "No sources recorded: the run stopped before it read its files."}

    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"source": s.get("source"), "path": path_pieces(s.get("path")), "sha256": short_hash(s.get("sha256")),
                 "bytes": fmt_int(s.get("bytes")), "rows": fmt_int(s.get("ingested_rows"))} for s in items]

    shown, rest = rows(files[:SOURCES_SHOWN]), rows(files[SOURCES_SHOWN:])
    total_bytes = sum(int(s.get("bytes") or 0) for s in files)
    total_rows = sum(int(s.get("ingested_rows") or 0) for s in files)
    earlier = (" (0: a file ingested by an earlier run)" if any(s.get("ingested_rows") == 0 for s in files) else "")
    return {"note": None, "rows": shown, "rest": rest, "rest_label": f"{len(rest):,} more files",
            "subtitle": f"{len(files):,} file(s), {total_bytes:,} bytes, {total_rows:,} rows ingested this run"
                        f"{earlier}"}


def stages(report: dict[str, Any]) -> dict[str, Any]:
    ran = report.get("stages") or []
    if not ran:
        return {"note": "No stage ran: the run stopped before its first stage."}
    total = sum(float(s.get("seconds") or 0) for s in ran)
    failures = [{"css": "err" if s.get("status") == "error" else "bad", "stage": s.get("stage"),
                 "status": s.get("status"), "message": s.get("message")}
                for s in ran if s.get("status") not in ("ok", None) and s.get("message")]
    return {"note": None, "subtitle": f"{len(ran)} ran, {fmt_seconds(total)} in all",
            "chart": svg.stage_chart(ran), "failures": failures}


# --- checks and quarantine ----------------------------------------------------------------


def thresholds(check: dict[str, Any]) -> list[str]:
    """The thresholds the check has, one a line: a warn-severity check never errs, so it shows
    its warn_if only; an error-severity one its error_if, and its warn_if where that warns
    below it (a warn_if equal to error_if never warns on its own)."""
    error_if, warn_if, severity = check.get("error_if"), check.get("warn_if"), check.get("severity")
    lines = []
    if severity == "error" and error_if:
        lines.append(f"error if {error_if}")
    if warn_if and (severity == "warn" or warn_if != error_if):
        lines.append(f"warn if {warn_if}")
    return lines or ["—"]


def samples(check: dict[str, Any]) -> dict[str, Any] | None:
    """The first samples in view (file:line and the value as read), the rest folded."""
    kept = check.get("samples") or []
    if not kept:
        return None
    whole_record = check.get("column") is None
    rows = [{"path": short_path(s.get("file_path")), "line": s.get("line_number"),
             "value": sample_value(s.get("value"), whole_record)} for s in kept]
    failing = check.get("failing_count")
    rest = len(rows) - SAMPLES_SHOWN
    return {
        "shown": rows[:SAMPLES_SHOWN],
        "rest": rows[SAMPLES_SHOWN:],
        "rest_label": f"{rest} more {plural(rest, 'sample')}",
        "kept": (f"{len(kept):,} {plural(len(kept), 'sample')} of {fmt_int(failing)} kept in the report"
                 if isinstance(failing, int) and failing > len(kept) else None),
    }


def checks(report: dict[str, Any]) -> dict[str, Any]:
    ordered = sorted(report.get("checks") or [], key=check_sort_key)
    if not ordered:
        return {"note": "No check results: the run stopped before validation."}
    counts = {s: sum(1 for c in ordered if c.get("status") == s) for s in CHECK_STATUS}
    rows = []
    for index, check in enumerate(ordered):
        status = str(check.get("status"))
        css, status_badge = check_badge(status)
        measured = None
        if check.get("level") == "drift" or "measured" in check:
            measured = f"measured {fmt_number(check.get('measured'))}, baseline {fmt_number(check.get('baseline'))}"
        rows.append({
            "css": css, "anchor": slug(check.get("id"), index), "status": status, "badge": status_badge,
            "id": breakable(check.get("id")),
            "what": " · ".join(str(p) for p in (check.get("rule"), check.get("column")) if p),
            "level": check.get("level"),
            "policy": " · ".join(str(p) for p in (
                check.get("severity"), check.get("action") if check.get("action") != "fail" else None,
                "implicit" if check.get("implicit") else None) if p),
            "failing": fmt_int(check.get("failing_count")),
            "percent": fmt_percent(check.get("failing_percent")),
            "of_rows": fmt_int(check.get("row_count")) if check.get("row_count") else None,
            "thresholds": thresholds(check),
            "message_css": "wrap muted" if status == "pass" else "wrap",
            "message": check.get("message"),
            "measured": measured,
            "samples": samples(check),
        })
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return {"note": None, "subtitle": f"{len(ordered)}: {tally}; failures first", "rows": rows}


def quarantine(report: dict[str, Any]) -> dict[str, Any]:
    held = report.get("quarantine")
    if held is None:
        return {"note": "Not reached: the run stopped before validation."}
    records = held.get("records") or 0
    if not records:
        return {"note": "No record was quarantined in this run."}
    by_check = sorted((held.get("by_check") or {}).items(), key=lambda kv: -int(kv[1] or 0))
    return {"note": None,
            "subtitle": f"{fmt_int(records)} {plural(records, 'record')} set aside in meta.quarantine (with their "
                        "file, line and payload as received); the run went on without them",
            "rows": [{"check": check, "records": fmt_int(count)} for check, count in by_check]}


# --- splits, profile, labels, drift -------------------------------------------------------


def swatch(name: str) -> str:
    """The CSS class of a split's colour swatch (templates/report.css)."""
    return f"split-{name}" if name in svg.SPLIT_COLOUR else "split-other"


def splits(report: dict[str, Any]) -> dict[str, Any]:
    made = report.get("splits") or []
    if not made:
        reached = any(s.get("stage") == "splits" for s in report.get("stages") or [])
        why = "the splits stage wrote no rows" if reached else "the run stopped before the splits stage"
        return {"note": f"No splits: {why}."}
    rows = []
    for split in made:
        name = str(split.get("split"))
        fraction, target = split.get("fraction"), split.get("target_fraction")
        rows.append({
            "name": name, "swatch": swatch(name),
            "from": fmt_time(split.get("starts_at")) if split.get("starts_at") else "the start",
            "to": fmt_time(split.get("ends_before")) if split.get("ends_before") else "the end",
            "rows": fmt_int(split.get("row_count")),
            "fraction": fmt_fraction(fraction),
            "delta": (f" ({(float(fraction) - float(target)) * 100:+.1f} pts)"
                      if fraction is not None and target is not None else None),
            "target": fmt_fraction(target),
            "gap": fmt_int(split.get("gap_row_count")),
            "purged": fmt_int(split.get("purged_row_count")),
            "censored": fmt_int(split.get("censored_row_count")),
        })
    return {"note": None, "timeline": svg.split_timeline(made), "rows": rows}


def quantile_text(quantiles: Any) -> str:
    if not isinstance(quantiles, list) or len(quantiles) < 3:
        return ""
    middle = quantiles[len(quantiles) // 2]
    return f"min {fmt_number(quantiles[0])} · median {fmt_number(middle)} · max {fmt_number(quantiles[-1])}"


def batch_profile(batch: dict[str, Any]) -> dict[str, Any]:
    """This run's batch: per column nulls, distinct values and quantiles (min, p10, median, p90, max)."""
    rows = []
    for column, stats in (batch.get("columns") or {}).items():
        stats = stats or {}
        q = stats.get("quantiles") if isinstance(stats.get("quantiles"), list) else None
        rows.append({"column": column, "nulls": fmt_int(stats.get("null_count")),
                     "null_rate": fmt_fraction(stats.get("null_rate"), 2),
                     "distinct": fmt_int(stats.get("distinct_count")),
                     "quantiles": [fmt_number(q[i]) for i in (0, 1, 5, 9, 10)] if q and len(q) == 11 else None})
    status_counts = sorted((batch.get("status_counts") or {}).items(), key=lambda kv: -int(kv[1] or 0))
    return {"row_count": fmt_int(batch.get("row_count")), "rows": rows,
            "statuses": ("status: " + ", ".join(f"{k} {fmt_int(v)}" for k, v in status_counts)
                         if status_counts else None)}


def feature_profile(features: dict[str, Any]) -> dict[str, Any]:
    """Each feature's nulls, quantiles and histogram by split."""
    row_count, sampled = features.get("row_count"), features.get("sampled_rows")
    sample_note = ""
    if isinstance(row_count, int) and isinstance(sampled, int) and sampled < row_count:
        sample_note = f"; profiled on a sample of {sampled:,} of {row_count:,} rows"
    figures = []
    for name, stats in (features.get("columns") or {}).items():
        stats = stats or {}
        figures.append({"name": name, "null": fmt_fraction(stats.get("null_rate"), 2),
                        "quantiles": quantile_text(stats.get("quantiles")),
                        "chart": svg.histogram(str(name), stats.get("histogram") or {})})
    return {"subtitle": f"{fmt_int(row_count)} feature rows{sample_note}", "figures": figures}


def profile(report: dict[str, Any]) -> dict[str, Any]:
    profiled = report.get("profile")
    if not profiled:
        return {"note": "Not profiled: this run's report has no profile (the run stopped before it, or the "
                        "pipeline does not profile)."}
    labels = profiled.get("labels")
    return {"note": None,
            "batch": batch_profile(profiled["batch"]) if profiled.get("batch") else None,
            "features": feature_profile(profiled["features"]) if profiled.get("features") else None,
            "labels": ({"column": labels.get("column"), "chart": svg.label_balance(labels.get("by_split") or {})}
                       if labels else None)}


def drift(report: dict[str, Any]) -> dict[str, Any]:
    """The drift checks against the previous successful run's profile, or why there are none."""
    found = sorted((c for c in report.get("checks") or [] if c.get("level") == "drift"), key=check_sort_key)
    profiled = report.get("profile") or {}
    baseline = profiled.get("baseline_run_id")
    first_run = bool(profiled) and not baseline and all(c.get("baseline") is None for c in found)
    if not found and not first_run:
        return {"note": f"No drift results: {'not profiled' if not profiled else 'no drift check in this run'}."}
    rows = []
    for check in found:
        css, status_badge = check_badge(str(check.get("status")))
        rows.append({"css": css, "badge": status_badge, "id": breakable(check.get("id")),
                     "measured": fmt_number(check.get("measured")), "baseline": fmt_number(check.get("baseline")),
                     "thresholds": thresholds(check), "message": check.get("message")})
    return {"note": None, "first_run": first_run, "baseline": None if first_run else baseline, "rows": rows}
