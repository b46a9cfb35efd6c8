"""The run report as one HTML page, and the index of runs beside it.

    artifacts/reports/<run_id>.html   one run: status, sources, stage timings, checks with samples,
                                      quarantine, the splits on a time line, feature histograms,
                                      label balance, drift
    artifacts/reports/index.html      every run in the folder, newest first
    python -m scripts.html_report [--open]   prints the latest page's path (make report)

Pure rendering from the report dict (no database): inline CSS and inline SVG, no scripts, fonts,
images or links to anything outside the page (a Content-Security-Policy says so to the browser).
Every value is escaped: check samples come from messy input files. A section that cannot be drawn
says so in place of itself; the page is still written, for failed and errored runs too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import re
import sys
import tempfile
import webbrowser
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# check status -> (order in the checks table, CSS class, label)
CHECK_STATUS = {
    "fail": (0, "bad", "fail"),
    "quarantine": (1, "quar", "quarantine"),
    "warn": (2, "warn", "warn"),
    "pass": (3, "ok", "pass"),
}
RUN_STATUS = {"passed": "ok", "failed": "bad", "error": "err"}
STAGE_COLOUR = {"ok": "#2f7d4f", "failed": "#c62828", "error": "#6a1b9a", "running": "#8a8f98"}
SPLIT_COLOUR = {"train": "#3a64c8", "val": "#e07b1a", "test": "#8e3fb3", "all": "#6b7280"}
SPLITS = ("train", "val", "test")
LEVEL_ORDER = {"records": 0, "orders": 1, "drift": 2}
SAMPLE_VALUE_CHARS = 300

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --panel: #f6f8fa;
  --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --err: #6a1b9a; --quar: #b35900; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 0 20px 40px; }
header.run { border-bottom: 1px solid var(--line); padding: 16px 0 10px; }
h1 { font-size: 22px; margin: 0 0 6px; display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h2 { font-size: 17px; margin: 26px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 14px 0 6px; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; color: #fff; font-weight: 600;
  font-size: 13px; letter-spacing: .02em; white-space: nowrap; }
.badge.big { font-size: 16px; padding: 4px 14px; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.err { background: var(--err); }
.badge.warn { background: #d4a72c; color: #1f2328; } .badge.quar { background: var(--quar); }
.badge.none { background: #8a8f98; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 14px; margin: 8px 0 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
nav.toc { display: flex; gap: 14px; flex-wrap: wrap; padding: 8px 0; font-size: 13px;
  border-bottom: 1px solid var(--line); }
nav.toc a { color: #0550ae; text-decoration: none; } nav.toc a:hover { text-decoration: underline; }
.cards { display: flex; gap: 10px; flex-wrap: wrap; margin: 12px 0 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px;
  min-width: 150px; }
.card .v { font-size: 20px; font-weight: 600; } .card .k { color: var(--muted); font-size: 12px; }
.card.bad .v { color: var(--bad); } .card.warn .v { color: var(--warn); } .card.quar .v { color: var(--quar); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.row-bad td { background: #fff0f0; } tr.row-err td { background: #f8f0fc; }
tr.row-quar td { background: #fff6ec; } tr.row-warn td { background: #fffbe6; }
td.wrap { overflow-wrap: anywhere; } .nowrap { white-space: nowrap; }
table#checks td:nth-child(2) { min-width: 200px; }
details > summary { cursor: pointer; color: #0550ae; }
table.samples { margin: 4px 0 2px; font-size: 12px; }
table.samples td { border-bottom: 1px dotted var(--line); padding: 2px 6px; }
table.samples td.where { color: var(--muted); white-space: nowrap; width: 1%; }
.value { white-space: pre-wrap; overflow-wrap: anywhere; background: #eff1f3; border-radius: 3px; padding: 0 3px; }
.null { color: var(--muted); font-style: italic; }
.box { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 8px 0; }
.box.bad { border-color: #f0b4b4; background: #fff5f5; } .box.err { border-color: #d6b8e6; background: #fbf5ff; }
.box.warn { border-color: #ecd58a; background: #fffcf0; }
.box ul { margin: 4px 0; padding-left: 20px; }
.box pre { white-space: pre-wrap; margin: 2px 0; font: inherit; display: inline; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
.render-error { color: var(--bad); } .render-warn { color: var(--warn); }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: system-ui, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
figure.feature { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
figure.feature figcaption { font-size: 13px; margin-bottom: 4px; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin: 4px 0 8px; flex-wrap: wrap; }
.hatch-purged { background: repeating-linear-gradient(45deg, #9aa4b1 0 2px, #fff 2px 5px); }
.hatch-gap { background: repeating-linear-gradient(-45deg, #59636e 0 1.5px, #eceff3 1.5px 5px); }
.dots-censored { background: radial-gradient(circle, #fff 0 1.2px, transparent 1.5px) 0 0 / 4px 4px, #8e3fb3; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px;
  vertical-align: -1px; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
"""

# No script, font, image or frame from anywhere: the page carries everything it shows.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# --- formatting ---------------------------------------------------------------------------
# The fmt_* functions return text that is safe in HTML as it is (a value they cannot read as a
# number comes back escaped).


def esc(value: Any) -> str:
    """Text for HTML (element content and quoted attributes alike)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_int(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return esc(value)


def fmt_percent(value: Any, digits: int = 2) -> str:
    """A value already in percent (failing_percent: 0..100)."""
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if 0 < abs(number) < 10 ** -digits:  # a few rows of many: not 0%
        return f"under {10 ** -digits:g}%"
    text = f"{number:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def fmt_fraction(value: Any, digits: int = 1) -> str:
    """A fraction (0..1) as a percent."""
    if value is None:
        return "—"
    try:
        return fmt_percent(float(value) * 100, digits)
    except (TypeError, ValueError):
        return esc(value)


def fmt_seconds(value: Any) -> str:
    if value is None:
        return "—"
    seconds = float(value)
    if seconds >= 120:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def fmt_number(value: Any) -> str:
    """A short number for axes and quantiles: 3 significant digits, k/M for large ones."""
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if math.isnan(number) or math.isinf(number):
        return esc(value)
    size = abs(number)
    if size >= 1e9:
        return f"{number / 1e9:.3g}G"
    if size >= 1e6:
        return f"{number / 1e6:.3g}M"
    if size >= 1e4:
        return f"{number / 1e3:.3g}k"
    if number.is_integer() or size >= 100:
        return f"{number:,.0f}"
    return f"{number:.3g}"


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def fmt_time(value: Any, seconds: bool = True) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM[:SS] UTC' (the text as given when it is not one)."""
    parsed = parse_time(value)
    if parsed is None:
        return esc(value) if value else "—"
    utc = parsed.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def duration_seconds(report: dict[str, Any]) -> float | None:
    started, finished = parse_time(report.get("started_at")), parse_time(report.get("finished_at"))
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()


def short_hash(value: Any, length: int = 12) -> str:
    """The first characters of a hash; the whole of it on hover."""
    if not value:
        return "—"
    text = str(value)
    shown = text if len(text) <= length + 1 else text[:length] + "…"
    return f'<code title="{esc(text)}">{esc(shown)}</code>'


def slug(text: Any, index: int) -> str:
    """An id for an anchor: ASCII letters, digits and dashes, unique by its index."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', str(text)).strip('-').lower() or 'item'}-{index}"


def path_html(value: Any) -> str:
    """A file path in code type that breaks after its slashes, not inside a name."""
    if not value:
        return "—"
    return "<code>" + esc(value).replace("/", "/<wbr>") + "</code>"


def short_path(value: Any, keep: int = 2) -> str:
    """A long path as its last ``keep`` parts (the whole of it on hover)."""
    text = str(value or "?")
    parts = text.split("/")
    if len(text) <= 40 or len(parts) <= keep:
        return esc(text)
    return f'<span title="{esc(text)}">…/{esc("/".join(parts[-keep:]))}</span>'


def breakable(value: Any) -> str:
    """An identifier that may break after its dots and underscores, not inside a word."""
    return re.sub(r"([._/])", r"\1<wbr>", esc(value))


def badge(label: str, css: str, big: bool = False, title: str = "") -> str:
    title_attr = f' title="{esc(title)}"' if title else ""
    return f'<span class="badge {css}{" big" if big else ""}"{title_attr}>{esc(label)}</span>'


def sample_value(value: Any, whole_record: bool = False) -> str:
    """A sample's value as read from the file (a rule over the whole record has none)."""
    if value is None:
        return '<span class="null">' + ("the whole record" if whole_record else "null") + "</span>"
    text = str(value)
    if text == "":
        return '<span class="null">empty</span>'
    if len(text) > SAMPLE_VALUE_CHARS:
        return (f'<span class="value" title="{esc(text[:2000])}">{esc(text[:SAMPLE_VALUE_CHARS])}</span>'
                f'<span class="muted"> … ({len(text):,} characters)</span>')
    return f'<span class="value">{esc(text)}</span>'


def svg_text(x: float, y: float, text: str, anchor: str = "start", size: int = 12, extra: str = "") -> str:
    fill = "" if "fill=" in extra else ' fill="#1f2328"'
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{fill}{extra}>'
            f'{esc(text)}</text>')


# --- sections -----------------------------------------------------------------------------


def section_header(report: dict[str, Any]) -> str:
    status = str(report.get("status") or "unknown")
    exit_code = report.get("exit_code")
    warnings = report.get("warnings") or []
    label = status.upper() + (f" · {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
                              if warnings and status == "passed" else "")
    css = RUN_STATUS.get(status, "none")
    if status == "passed" and warnings:
        css = "warn"
    refresh = report.get("refresh") or {}
    refresh_text = "—"
    if refresh:
        kind = "full refresh" if refresh.get("full") else "incremental"
        parts = [kind]
        if refresh.get("version_number") is not None:
            parts.append(f"version {refresh['version_number']}")
        if refresh.get("reason"):
            parts.append(str(refresh["reason"]))
        refresh_text = esc(" · ".join(str(p) for p in parts))
    validation = report.get("validation_passed")
    validation_text = {True: "passed", False: "failed"}.get(validation, "not reached")
    duration = duration_seconds(report)
    rows = [
        ("started", esc(fmt_time(report.get("started_at")))),
        ("finished", esc(fmt_time(report.get("finished_at")))),
        ("duration", esc(fmt_seconds(duration)) if duration is not None else "—"),
        ("config", path_html(report.get("config"))),
        ("feature_version", short_hash(report.get("feature_version"), 16)),
        ("refresh", refresh_text),
        ("validation", esc(validation_text)),
        ("peak memory (runner)",
         f"{report['runner_peak_rss_mib']} MiB" if report.get("runner_peak_rss_mib") is not None else "—"),
        ("alert", alert_text(report.get("alerts"))),
    ]
    cells = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows)
    exit_text = f"exit code {exit_code}" if exit_code is not None else "exit code —"
    return (
        f'<header class="run" id="run" data-status="{esc(status)}" data-exit-code="{esc(exit_code)}">'
        f'<h1>{badge(label, css, big=True)}'
        f'<span>Run <code style="font-size:18px">{esc(report.get("run_id"))}</code></span>'
        f'<span class="muted" style="font-size:15px;font-weight:normal">{esc(exit_text)}</span></h1>'
        f'<dl class="meta">{cells}</dl></header>'
    )


def alert_text(alerts: Any) -> str:
    """The webhook alert's outcome (scripts/alerts.py): not configured, skipped, sent or not delivered."""
    if not alerts:
        return "—"
    if not isinstance(alerts, dict):
        return esc(alerts)
    if alerts.get("configured") is False:
        return "not configured"
    where = esc(alerts.get("webhook") or "the webhook")
    if alerts.get("skipped"):
        return f"not sent: {esc(alerts['skipped'])}"
    if alerts.get("sent"):
        details = ", ".join(p for p in (
            f"HTTP {esc(alerts['http_status'])}" if alerts.get("http_status") is not None else "",
            f"attempt {esc(alerts['attempts'])}" if alerts.get("attempts") is not None else "") if p)
        return f"{esc(alerts.get('reason') or 'sent')}: posted to {where}" + (f" ({details})" if details else "")
    if "sent" in alerts or alerts.get("error"):
        error = esc(alerts.get("error") or "unknown error")
        return f'<span class="render-warn">not delivered to {where}: {error}</span>'
    return esc(", ".join(f"{k}: {v}" for k, v in alerts.items() if k != "configured")) or "configured"


def section_toc(present: list[tuple[str, str]]) -> str:
    links = "".join(f'<a href="{esc(target)}">{esc(title)}</a>' for target, title in present)
    return f'<nav class="toc">{links}</nav>'


def section_summary(report: dict[str, Any]) -> str:
    checks = report.get("checks") or []
    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in CHECK_STATUS}
    stages = {s.get("stage"): s for s in report.get("stages") or []}
    quarantined = (report.get("quarantine") or {}).get("records") or 0
    reached = "checks" in report  # a run that stopped before validation has no results, not zero
    cards = [
        ("rows ingested", fmt_int((stages.get("ingest") or {}).get("rows")), ""),
        ("records validated", fmt_int((stages.get("validate") or {}).get("rows")), ""),
        ("checks", fmt_int(len(checks)) if reached else "—", ""),
        ("failing", fmt_int(counts["fail"]) if reached else "—", "bad" if counts["fail"] else ""),
        ("warnings", fmt_int(counts["warn"]) if reached else "—", "warn" if counts["warn"] else ""),
        ("quarantined records", fmt_int(quarantined) if reached else "—", "quar" if quarantined else ""),
        ("rows in splits", fmt_int((stages.get("splits") or {}).get("rows")), ""),
    ]
    body = "".join(f'<div class="card {css}"><div class="v">{value}</div><div class="k">{esc(key)}</div></div>'
                   for key, value, css in cards)
    return f'<section id="summary"><div class="cards">{body}</div></section>'


def section_errors(report: dict[str, Any]) -> str:
    errors = report.get("errors") or []
    warnings = report.get("warnings") or []
    status = report.get("status")
    anchors = check_anchors(report)

    def items(messages: list[str], wrap: str) -> str:
        """One list item per message, linked to its check's row when it is a check's."""
        return "".join(
            f"<li>{wrap.format(esc(m))}"
            + (f' <a class="small" href="#{anchors[m][0]}">check <code>{esc(anchors[m][1])}</code></a>'
               if m in anchors else "") + "</li>"
            for m in messages)

    parts = []
    if errors:
        css = "err" if status == "error" else "bad"
        title = "Why the run stopped" if status == "error" else "Errors"
        parts.append(f'<div class="box {css}" id="errors"><strong>{title}</strong><ul>{items(errors, "<pre>{}</pre>")}</ul></div>')
    if warnings:
        parts.append(f'<div class="box warn" id="warnings"><strong>Warnings</strong><ul>{items(warnings, "{}")}</ul></div>')
    return "".join(parts)


def check_anchors(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """message -> (anchor of its row in the checks table, check id), for the failing checks."""
    anchors: dict[str, tuple[str, str]] = {}
    for index, check in enumerate(sorted(report.get("checks") or [], key=check_sort_key)):
        if check.get("status") in ("fail", "warn") and check.get("message") not in anchors:
            anchors[str(check.get("message"))] = (slug(check.get("id"), index), str(check.get("id")))
    return anchors


def section_sources(report: dict[str, Any]) -> str:
    sources = report.get("sources")
    if not sources:
        return ('<section id="sources"><h2>Sources</h2><p class="note">No sources recorded: '
                'the run stopped before it read its files.</p></section>')
    shown, rest = sources[:12], sources[12:]

    def rows(items: Iterable[dict[str, Any]]) -> str:
        return "".join(
            f"<tr><td>{esc(s.get('source'))}</td><td>{path_html(s.get('path'))}</td>"
            f"<td>{short_hash(s.get('sha256'))}</td><td class=\"num\">{fmt_int(s.get('bytes'))}</td>"
            f"<td class=\"num\">{fmt_int(s.get('ingested_rows'))}</td></tr>"
            for s in items
        )

    head = ('<thead><tr><th>source</th><th>path</th><th>sha256</th><th class="num">bytes</th>'
            '<th class="num">rows ingested</th></tr></thead>')
    more = ""
    if rest:
        more = (f'<details><summary>{len(rest):,} more files</summary>'
                f'<table>{head}<tbody>{rows(rest)}</tbody></table></details>')
    total_bytes = sum(int(s.get("bytes") or 0) for s in sources)
    total_rows = sum(int(s.get("ingested_rows") or 0) for s in sources)
    earlier = (" (0: a file ingested by an earlier run)"
               if any(s.get("ingested_rows") == 0 for s in sources) else "")
    return (
        f'<section id="sources"><h2>Sources <span class="muted small">{len(sources):,} file(s), '
        f'{total_bytes:,} bytes, {total_rows:,} rows ingested this run{earlier}</span></h2>'
        f'<table id="sources-table">{head}<tbody>{rows(shown)}</tbody></table>{more}</section>'
    )


def stage_chart(stages: list[dict[str, Any]]) -> str:
    """Horizontal bars: one per stage, its length the stage's seconds."""
    width, label_w, value_w, bar_h, gap, top = 900, 90, 190, 18, 7, 6
    area = width - label_w - value_w
    longest = max((float(s.get("seconds") or 0) for s in stages), default=0) or 1.0
    height = top + len(stages) * (bar_h + gap) + 22
    parts = []
    for i, stage in enumerate(stages):
        seconds = float(stage.get("seconds") or 0)
        y = top + i * (bar_h + gap)
        bar_w = max(1.5, area * seconds / longest)
        colour = STAGE_COLOUR.get(str(stage.get("status")), "#8a8f98")
        rows = "" if stage.get("rows") is None else f" · {fmt_int(stage.get('rows'))} rows"
        status = "" if stage.get("status") == "ok" else f" · {stage.get('status')}"
        tip = f"{stage.get('stage')}: {fmt_seconds(seconds)}{rows}{status}"
        parts.append(
            f'<g class="stage-bar"><title>{esc(tip)}</title>'
            + svg_text(label_w - 8, y + bar_h - 4, str(stage.get("stage")), "end", 13)
            + f'<rect x="{label_w}" y="{y}" width="{bar_w:.1f}" height="{bar_h}" rx="2" fill="{colour}"/>'
            + svg_text(label_w + bar_w + 6, y + bar_h - 4, f"{fmt_seconds(seconds)}{rows}{status}", "start", 12)
            + "</g>"
        )
    axis_y = top + len(stages) * (bar_h + gap) + 2
    parts.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + area}" y2="{axis_y}" stroke="#8a8f98"/>')
    for fraction in (0, 0.5, 1):
        x = label_w + area * fraction
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#8a8f98"/>')
        anchor = "start" if fraction == 0 else "middle"
        parts.append(svg_text(x, axis_y + 16, fmt_seconds(longest * fraction) if fraction else "0",
                              anchor, 11, ' fill="#59636e"'))
    return (f'<svg id="stage-chart" class="chart" role="img" aria-label="seconds per stage" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(parts)}</svg>')


def section_stages(report: dict[str, Any]) -> str:
    stages = report.get("stages") or []
    if not stages:
        return ('<section id="stages"><h2>Stages</h2><p class="note">No stage ran: the run stopped before '
                'its first stage.</p></section>')
    total = sum(float(s.get("seconds") or 0) for s in stages)
    failed = [s for s in stages if s.get("status") not in ("ok", None)]
    messages = "".join(
        f'<div class="box {"err" if s.get("status") == "error" else "bad"}"><strong>{esc(s.get("stage"))} '
        f'{esc(s.get("status"))}:</strong> <pre>{esc(s.get("message"))}</pre></div>'
        for s in failed if s.get("message")
    )
    return (f'<section id="stages"><h2>Stages <span class="muted small">{len(stages)} ran, '
            f'{esc(fmt_seconds(total))} in all</span></h2>{stage_chart(stages)}{messages}</section>')


def check_sort_key(check: dict[str, Any]) -> tuple[int, int, str]:
    order = CHECK_STATUS.get(str(check.get("status")), (4, "", ""))[0]
    return order, LEVEL_ORDER.get(str(check.get("level")), 9), str(check.get("id"))


def threshold_cell(check: dict[str, Any]) -> str:
    lines = []
    if check.get("error_if"):
        lines.append(f"error if {esc(check['error_if'])}")
    if check.get("warn_if"):
        lines.append(f"warn if {esc(check['warn_if'])}")
    if not lines:
        lines.append("error if &gt;0" if check.get("severity") == "error" else
                     ("warn if &gt;0" if check.get("severity") == "warn" else "—"))
    return "<br>".join(lines)


def samples_cell(check: dict[str, Any], shown: int = 5) -> str:
    """The first samples in view (file:line and the value as read), the rest folded."""
    samples = check.get("samples") or []
    if not samples:
        return ""
    failing = check.get("failing_count")
    kept = (f'<div class="small muted">{len(samples):,} sample{"s" if len(samples) != 1 else ""} of '
            f'{fmt_int(failing)} kept in the report</div>' if isinstance(failing, int) and failing > len(samples)
            else "")

    def table(items: list[dict[str, Any]]) -> str:
        rows = []
        for sample in items:
            where = short_path(sample.get("file_path"))
            if sample.get("line_number") is not None:
                where += f":{esc(sample['line_number'])}"
            rows.append(f'<tr class="sample"><td class="where">{where}</td><td>'
                        f'{sample_value(sample.get("value"), whole_record=check.get("column") is None)}</td></tr>')
        return f'<table class="samples"><tbody>{"".join(rows)}</tbody></table>'

    more = ""
    if len(samples) > shown:
        rest = len(samples) - shown
        more = (f'<details class="samples"><summary>{rest} more sample{"s" if rest != 1 else ""}</summary>'
                f'{table(samples[shown:])}</details>')
    return f'<div class="samples">{table(samples[:shown])}{more}{kept}</div>'


def section_checks(report: dict[str, Any]) -> str:
    checks = sorted(report.get("checks") or [], key=check_sort_key)
    if not checks:
        return ('<section id="checks-section"><h2>Checks</h2><p class="note">No check results: the run stopped '
                'before validation.</p><table id="checks"><tbody></tbody></table></section>')
    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in CHECK_STATUS}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    rows = []
    for index, check in enumerate(checks):
        status = str(check.get("status"))
        _, css, label = CHECK_STATUS.get(status, (4, "none", status))
        what = " · ".join(str(p) for p in (check.get("rule"), check.get("column")) if p)
        policy = " · ".join(str(p) for p in (
            check.get("severity"), check.get("action") if check.get("action") != "fail" else None,
            "implicit" if check.get("implicit") else None) if p)
        failing = check.get("failing_count")
        percent = check.get("failing_percent")
        measured = ""
        if check.get("level") == "drift" or "measured" in check:
            measured = (f'<div class="small muted">measured {esc(fmt_number(check.get("measured")))}'
                        f', baseline {esc(fmt_number(check.get("baseline")))}</div>')
        of_rows = (f'<div class="small muted">of {fmt_int(check.get("row_count"))}</div>'
                   if check.get("row_count") else "")
        message_css = "wrap muted" if status == "pass" else "wrap"
        rows.append(
            f'<tr class="check row-{css}" id="{slug(check.get("id"), index)}" data-status="{esc(status)}">'
            f'<td>{badge(label, css)}</td>'
            f'<td><code>{breakable(check.get("id"))}</code><div class="small muted">{esc(what)}</div></td>'
            f'<td>{esc(check.get("level"))}<div class="small muted">{esc(policy)}</div></td>'
            f'<td class="num">{fmt_int(failing)}</td>'
            f'<td class="num">{fmt_percent(percent)}{of_rows}</td>'
            f'<td class="small nowrap">{threshold_cell(check)}</td>'
            f'<td class="{message_css}">{esc(check.get("message"))}{measured}{samples_cell(check)}</td></tr>'
        )
    head = ('<thead><tr><th>status</th><th>check</th><th>level</th><th class="num">failing</th>'
            '<th class="num">% of rows</th><th>threshold</th><th>message and samples (file:line, value)</th>'
            '</tr></thead>')
    return (f'<section id="checks-section"><h2>Checks <span class="muted small">{len(checks)}: {esc(summary)}; '
            f'failures first</span></h2><table id="checks">{head}<tbody>{"".join(rows)}</tbody></table></section>')


def section_quarantine(report: dict[str, Any]) -> str:
    quarantine = report.get("quarantine")
    if quarantine is None:
        return ('<section id="quarantine"><h2>Quarantine</h2><p class="note">Not reached: the run stopped before '
                'validation.</p></section>')
    records = quarantine.get("records") or 0
    if not records:
        return ('<section id="quarantine"><h2>Quarantine</h2><p class="note">No record was quarantined in this '
                'run.</p></section>')
    by_check = quarantine.get("by_check") or {}
    rows = "".join(f'<tr><td><code>{esc(k)}</code></td><td class="num">{fmt_int(v)}</td></tr>'
                   for k, v in sorted(by_check.items(), key=lambda kv: -int(kv[1] or 0)))
    return (f'<section id="quarantine"><h2>Quarantine <span class="muted small">{fmt_int(records)} '
            f'record{"s" if records != 1 else ""} set aside in meta.quarantine (with their file, line and payload as received); the run went on without '
            'them</span></h2><table id="quarantine-table" style="max-width:520px"><thead><tr><th>check</th>'
            f'<th class="num">records</th></tr></thead><tbody>{rows}</tbody></table>'
            '<p class="note">Their samples are in the checks table above.</p></section>')


def split_timeline(splits: list[dict[str, Any]]) -> str:
    """The splits in time order, each span as wide as its rows (kept, purged, gap); the cut-offs
    (where val and test start) labelled above the bar."""
    width, pad, bar_y, bar_h = 1240, 16, 62, 38
    area = width - 2 * pad
    spans = []
    for split in splits:
        kept = int(split.get("row_count") or 0)
        purged = int(split.get("purged_row_count") or 0)
        gap = int(split.get("gap_row_count") or 0)
        spans.append((split, kept, purged, gap))
    total = sum(k + p + g for _, k, p, g in spans) or 1
    parts = [
        '<defs>'
        '<pattern id="tl-purged" patternUnits="userSpaceOnUse" width="7" height="7" patternTransform="rotate(45)">'
        '<rect width="7" height="7" fill="#ffffff"/><rect width="3" height="7" fill="#9aa4b1"/></pattern>'
        '<pattern id="tl-gap" patternUnits="userSpaceOnUse" width="7" height="7" patternTransform="rotate(-45)">'
        '<rect width="7" height="7" fill="#eceff3"/><rect width="1.5" height="7" fill="#59636e"/></pattern>'
        '<pattern id="tl-censored" patternUnits="userSpaceOnUse" width="6" height="6">'
        '<rect width="6" height="6" fill="none"/><circle cx="3" cy="3" r="1.3" fill="#ffffff"/></pattern>'
        '</defs>'
    ]
    x = float(pad)
    cuts: list[tuple[float, str]] = []
    for index, (split, kept, purged, gap) in enumerate(spans):
        name = str(split.get("split"))
        colour = SPLIT_COLOUR.get(name, "#6b7280")
        if index > 0:
            cuts.append((x, f"{name} from {fmt_time(split.get('starts_at'), seconds=False)}"
                            if split.get("starts_at") else f"{name}: empty"))
        span_w = area * (kept + purged + gap) / total
        kept_w, purged_w, gap_w = (area * n / total for n in (kept, purged, gap))
        tip = (f"{name}: {kept:,} rows ({fmt_fraction(split.get('fraction'))}, target "
               f"{fmt_fraction(split.get('target_fraction'))}); purged {purged:,}; gap {gap:,}; "
               f"censored {int(split.get('censored_row_count') or 0):,}")
        group = [f'<g class="split-span" data-split="{esc(name)}"><title>{esc(tip)}</title>']
        if kept_w > 0:
            group.append(f'<rect x="{x:.1f}" y="{bar_y}" width="{kept_w:.1f}" height="{bar_h}" fill="{colour}"/>')
            censored = int(split.get("censored_row_count") or 0)
            if censored and kept:
                cw = kept_w * min(censored, kept) / kept
                group.append(f'<rect x="{x + kept_w - cw:.1f}" y="{bar_y}" width="{cw:.1f}" height="{bar_h}" '
                             f'fill="url(#tl-censored)"/>')
        if purged_w > 0:
            group.append(f'<rect x="{x + kept_w:.1f}" y="{bar_y}" width="{purged_w:.1f}" height="{bar_h}" '
                         f'fill="url(#tl-purged)" stroke="{colour}" stroke-width="1"/>')
        if gap_w > 0:
            group.append(f'<rect x="{x + kept_w + purged_w:.1f}" y="{bar_y}" width="{gap_w:.1f}" height="{bar_h}" '
                         f'fill="url(#tl-gap)"/>')
        if kept_w >= 34:
            centre = x + kept_w / 2
            group.append(svg_text(centre, bar_y + 16, name, "middle", 13,
                                  ' fill="#ffffff" font-weight="600"'))
            if kept_w >= 60:
                group.append(svg_text(centre, bar_y + 31, fmt_fraction(split.get("fraction")), "middle", 11,
                                      ' fill="#ffffff"'))
        group.append("</g>")
        parts.append("".join(group))
        x += span_w
    # cut-off markers: a line through the bar and its date above, on two rows when they crowd
    last_x, row = -1e9, 0
    for cut_x, label in cuts:
        row = 1 - row if cut_x - last_x < 230 else 0
        label_y = 20 + row * 17
        last_x = cut_x
        anchor = "middle"
        if cut_x < pad + 110:
            anchor = "start"
        elif cut_x > width - pad - 110:
            anchor = "end"
        parts.append(f'<line class="cutoff" x1="{cut_x:.1f}" y1="{label_y + 4}" x2="{cut_x:.1f}" '
                     f'y2="{bar_y + bar_h + 6}" stroke="#1f2328" stroke-width="1.5" stroke-dasharray="3 2"/>')
        parts.append(svg_text(cut_x, label_y, label, anchor, 12, ' font-weight="600"'))
    axis_y = bar_y + bar_h + 20
    parts.append(svg_text(pad, axis_y, "← earlier feature times", "start", 11, ' fill="#59636e"'))
    parts.append(svg_text(width - pad, axis_y, "later →", "end", 11, ' fill="#59636e"'))
    height = axis_y + 8
    return (f'<svg id="split-timeline" class="chart" role="img" aria-label="splits on a time line" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(parts)}</svg>')


def section_splits(report: dict[str, Any]) -> str:
    splits = report.get("splits") or []
    if not splits:
        reached = any(s.get("stage") == "splits" for s in report.get("stages") or [])
        why = "the splits stage wrote no rows" if reached else "the run stopped before the splits stage"
        return f'<section id="splits"><h2>Splits</h2><p class="note">No splits: {why}.</p></section>'
    rows = []
    for split in splits:
        name = str(split.get("split"))
        fraction, target = split.get("fraction"), split.get("target_fraction")
        delta = ""
        if fraction is not None and target is not None:
            delta = f'<span class="muted small"> ({(float(fraction) - float(target)) * 100:+.1f} pts)</span>'
        rows.append(
            f'<tr><td><span class="swatch" style="background:{SPLIT_COLOUR.get(name, "#6b7280")}"></span>'
            f'{esc(name)}</td><td>{esc(fmt_time(split.get("starts_at"))) if split.get("starts_at") else "the start"}'
            f'</td><td>{esc(fmt_time(split.get("ends_before"))) if split.get("ends_before") else "the end"}</td>'
            f'<td class="num">{fmt_int(split.get("row_count"))}</td>'
            f'<td class="num">{fmt_fraction(fraction)}{delta}</td><td class="num">{fmt_fraction(target)}</td>'
            f'<td class="num">{fmt_int(split.get("gap_row_count"))}</td>'
            f'<td class="num">{fmt_int(split.get("purged_row_count"))}</td>'
            f'<td class="num">{fmt_int(split.get("censored_row_count"))}</td></tr>'
        )
    legend = (
        '<div class="legend">'
        + "".join(f'<span><span class="swatch" style="background:{SPLIT_COLOUR[s]}"></span>{s}</span>'
                  for s in SPLITS)
        + '<span><span class="swatch hatch-purged"></span>purged: the label window reaches the next split '
        '(left out)</span><span><span class="swatch hatch-gap"></span>gap: the embargo before the next split '
        '(left out)</span><span><span class="swatch dots-censored"></span>censored: the label window passes the '
        'observed end (kept, label unknown)</span></div>'
    )
    head = ('<thead><tr><th>split</th><th>from</th><th>to before</th><th class="num">rows</th>'
            '<th class="num">fraction</th><th class="num">target</th><th class="num">gap (left out)</th>'
            '<th class="num">purged (left out)</th><th class="num">censored (kept)</th></tr></thead>')
    return (
        '<section id="splits"><h2>Splits <span class="muted small">in time order; each span as wide as its rows, '
        f'the cut-offs labelled</span></h2>{legend}{split_timeline(splits)}'
        f'<table id="splits-table" style="margin-top:10px">{head}<tbody>{"".join(rows)}</tbody></table></section>'
    )


def histogram_svg(name: str, histogram: dict[str, Any]) -> str:
    """Bars per bin, one per split side by side, each the share of its split's rows in the bin
    (so splits of different sizes compare); the bin edges on the axis."""
    edges = [float(e) for e in histogram.get("edges") or []]
    counts = histogram.get("counts") or {}
    series = [s for s in SPLITS if sum(counts.get(s) or []) > 0] or (["all"] if sum(counts.get("all") or []) else [])
    bins = len(edges) - 1
    width, height, left, right, top, bottom = 380, 150, 36, 10, 8, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = []
    if bins < 1 or not series:
        parts.append(svg_text(width / 2, height / 2, "no values", "middle", 12, ' fill="#59636e"'))
    else:
        shares = {s: [c / sum(counts[s]) for c in counts[s][:bins]] for s in series}
        peak = max(max(v) for v in shares.values()) or 1.0
        bin_w = plot_w / bins
        bar_w = max(1.0, (bin_w - 2) / len(series))
        for b in range(bins):
            for k, s in enumerate(series):
                share = shares[s][b] if b < len(shares[s]) else 0.0
                h = plot_h * share / peak
                bx = left + b * bin_w + 1 + k * bar_w
                tip = (f"{s}: {fmt_fraction(share)} of its rows in [{fmt_number(edges[b])}, "
                       f"{fmt_number(edges[b + 1])})")
                parts.append(f'<rect x="{bx:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                             f'fill="{SPLIT_COLOUR.get(s, "#6b7280")}"><title>{esc(tip)}</title></rect>')
        base = top + plot_h
        parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#8a8f98"/>')
        parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#8a8f98"/>')
        parts.append(svg_text(left - 4, top + 9, fmt_fraction(peak, 0), "end", 10, ' fill="#59636e"'))
        parts.append(svg_text(left - 4, base, "0", "end", 10, ' fill="#59636e"'))
        parts.append(svg_text(left, base + 14, fmt_number(edges[0]), "start", 10, ' fill="#59636e"'))
        parts.append(svg_text(left + plot_w, base + 14, fmt_number(edges[-1]), "end", 10, ' fill="#59636e"'))
        if bins >= 2:
            mid = bins // 2
            parts.append(svg_text(left + mid * bin_w, base + 14, fmt_number(edges[mid]), "middle", 10,
                                  ' fill="#59636e"'))
    return (f'<svg class="histogram" role="img" aria-label="{esc(name)} by split" data-feature="{esc(name)}" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(parts)}</svg>')


def quantile_text(quantiles: Any) -> str:
    if not isinstance(quantiles, list) or len(quantiles) < 3:
        return ""
    middle = quantiles[len(quantiles) // 2]
    return f"min {fmt_number(quantiles[0])} · median {fmt_number(middle)} · max {fmt_number(quantiles[-1])}"


def section_profile(report: dict[str, Any]) -> str:
    profile = report.get("profile")
    if not profile:
        return ('<section id="features"><h2>Batch and feature profile</h2><p class="note">Not profiled: this run\'s '
                'report has no profile (the run stopped before it, or the pipeline does not profile).</p></section>')
    out = ['<section id="features"><h2>Batch and feature profile</h2>']
    batch = profile.get("batch") or {}
    if batch:
        rows = []
        for column, stats in (batch.get("columns") or {}).items():
            stats = stats or {}
            q = stats.get("quantiles") if isinstance(stats.get("quantiles"), list) else None
            qcells = "".join(f'<td class="num">{esc(fmt_number(q[i]))}</td>' for i in (0, 1, 5, 9, 10)) \
                if q and len(q) == 11 else '<td class="muted" colspan="5">no quantiles (not a number)</td>'
            rows.append(f'<tr><td><code>{esc(column)}</code></td><td class="num">{fmt_int(stats.get("null_count"))}'
                        f'</td><td class="num">{fmt_fraction(stats.get("null_rate"), 2)}</td>'
                        f'<td class="num">{fmt_int(stats.get("distinct_count"))}</td>{qcells}</tr>')
        status_counts = batch.get("status_counts") or {}
        statuses = ""
        if status_counts:
            statuses = '<p class="small">status: ' + ", ".join(
                f"{esc(k)} {fmt_int(v)}" for k, v in sorted(status_counts.items(), key=lambda kv: -int(kv[1] or 0))
            ) + "</p>"
        out.append(
            f'<h3>This run\'s batch <span class="muted small">{fmt_int(batch.get("row_count"))} staged orders from '
            'its new files</span></h3><table id="batch-profile"><thead><tr><th>column</th><th class="num">nulls</th>'
            '<th class="num">null rate</th><th class="num">distinct</th><th class="num">min</th>'
            '<th class="num">p10</th><th class="num">median</th><th class="num">p90</th><th class="num">max</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>{statuses}'
        )
    features = profile.get("features") or {}
    if features:
        row_count, sampled = features.get("row_count"), features.get("sampled_rows")
        sample_note = ""
        if isinstance(row_count, int) and isinstance(sampled, int) and sampled < row_count:
            sample_note = f"; profiled on a sample of {sampled:,} of {row_count:,} rows"
        figures = []
        for name, stats in (features.get("columns") or {}).items():
            stats = stats or {}
            histogram = stats.get("histogram") or {}
            figures.append(
                f'<figure class="feature"><figcaption><code>{esc(name)}</code> <span class="muted small">'
                f'null {fmt_fraction(stats.get("null_rate"), 2)}</span><div class="small muted">'
                f'{esc(quantile_text(stats.get("quantiles")))}</div></figcaption>{histogram_svg(str(name), histogram)}'
                '</figure>'
            )
        legend = ('<div class="legend">' + "".join(
            f'<span><span class="swatch" style="background:{SPLIT_COLOUR[s]}"></span>{s}</span>' for s in SPLITS)
            + '<span>bar height: the share of that split\'s rows in the bin; the axis: the bin edges</span></div>')
        out.append(f'<h3>Feature distributions by split <span class="muted small">{fmt_int(row_count)} feature rows'
                   f'{esc(sample_note)}</span></h3>{legend}<div class="grid" id="histograms">{"".join(figures)}</div>')
    out.append(section_labels(profile.get("labels")))
    out.append("</section>")
    return "".join(out)


def section_labels(labels: Any) -> str:
    if not labels:
        return '<h3 id="labels">Label balance</h3><p class="note">No labels in this run.</p>'
    by_split = labels.get("by_split") or {}
    width, label_w, bar_h, gap = 1000, 70, 20, 8
    area = 560
    # the splits in time order, then whatever else the profile counts (purged rows, all rows)
    names = [s for s in SPLITS if s in by_split] + sorted(s for s in by_split if s not in SPLITS and s != "all")
    names += ["all"] if "all" in by_split else []
    height = len(names) * (bar_h + gap) + 4
    parts = ['<defs><pattern id="lb-censored" patternUnits="userSpaceOnUse" width="6" height="6" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
             '<rect width="2" height="6" fill="#9aa4b1"/></pattern></defs>']
    rows = []
    for i, name in enumerate(names):
        entry = by_split.get(name) or {}
        total = int(entry.get("rows") or 0)
        positive = int(entry.get("positive") or 0)
        censored = int(entry.get("censored") or 0)
        negative = (int(entry["negative"]) if entry.get("negative") is not None
                    else max(0, total - positive - censored))
        labelled = positive + negative
        rate = positive / labelled if labelled else None
        y = 2 + i * (bar_h + gap)
        x = float(label_w)
        parts.append(svg_text(label_w - 8, y + bar_h - 5, name, "end", 13))
        for count, fill, what in ((positive, "#2f7d4f", "positive"), (negative, "#c9d1d9", "negative"),
                                  (censored, "url(#lb-censored)", "censored")):
            w = area * count / total if total else 0
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{fill}" '
                             f'stroke="#ffffff" stroke-width="0.5"><title>{esc(f"{name}: {count:,} {what}")}'
                             '</title></rect>')
            x += w
        text = f"{fmt_fraction(rate)} positive of {labelled:,} labelled" if rate is not None else "no labelled rows"
        parts.append(svg_text(label_w + area + 8, y + bar_h - 5, text + (f" · {censored:,} censored" if censored
                                                                        else ""), "start", 12))
        rows.append((name, total, positive, negative, censored, rate))
    legend = ('<div class="legend"><span><span class="swatch" style="background:#2f7d4f"></span>positive</span>'
              '<span><span class="swatch" style="background:#c9d1d9"></span>negative</span>'
              '<span><span class="swatch hatch-purged"></span>censored (label unknown)</span></div>')
    return (f'<h3 id="labels">Label balance <span class="muted small">{esc(labels.get("column"))}</span></h3>{legend}'
            f'<svg id="label-balance" class="chart" role="img" aria-label="label balance by split" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">{"".join(parts)}</svg>')


def section_drift(report: dict[str, Any]) -> str:
    drift = sorted((c for c in report.get("checks") or [] if c.get("level") == "drift"), key=check_sort_key)
    profile = report.get("profile") or {}
    baseline = profile.get("baseline_run_id")
    first_run = bool(profile) and not baseline and all(c.get("baseline") is None for c in drift)
    if not drift and not first_run:
        why = "not profiled" if not profile else "no drift check in this run"
        return f'<section id="drift"><h2>Drift</h2><p class="note">No drift results: {why}.</p></section>'
    if first_run:
        note = ('<div class="box" id="no-baseline"><strong>no baseline: first run</strong> — no earlier successful '
                'run has a profile to compare this one with; the next run compares against this one.</div>')
    else:
        note = (f'<p class="note">Compared against the previous successful run <code>{esc(baseline)}</code>.</p>'
                if baseline else "")
    if not drift:
        return f'<section id="drift"><h2>Drift</h2>{note}</section>'
    rows = []
    for check in drift:
        status = str(check.get("status"))
        _, css, label = CHECK_STATUS.get(status, (4, "none", status))
        rows.append(
            f'<tr class="row-{css}"><td>{badge(label, css)}</td><td><code>{breakable(check.get("id"))}</code>'
            f'</td><td class="num">{esc(fmt_number(check.get("measured")))}</td>'
            f'<td class="num">{esc(fmt_number(check.get("baseline")))}</td>'
            f'<td class="small nowrap">{threshold_cell(check)}</td>'
            f'<td class="wrap">{esc(check.get("message"))}</td></tr>'
        )
    return (f'<section id="drift"><h2>Drift <span class="muted small">against the previous successful run</span>'
            f'</h2>{note}<table id="drift-table"><thead><tr><th>status</th><th>check</th><th class="num">measured'
            '</th><th class="num">baseline</th><th>threshold</th><th>message</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


# --- pages --------------------------------------------------------------------------------


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n'
    )


def guarded(render: Callable[[dict[str, Any]], str], report: dict[str, Any], title: str) -> str:
    """One section; a section that cannot be drawn says so instead of losing the whole page."""
    try:
        return render(report)
    except Exception as exc:  # noqa: BLE001 - the page is written whatever the report holds
        return (f'<section><h2>{esc(title)}</h2><p class="render-error">This section could not be drawn from the '
                f'report: {esc(type(exc).__name__)}: {esc(exc)}. The JSON report beside this page has the data.'
                '</p></section>')


def render_html(report: dict[str, Any]) -> str:
    """The run's page as text."""
    sections = [
        (section_header, "Run", None),
        (section_summary, "Summary", None),
        (section_errors, "Errors", None),
        (section_sources, "Sources", "sources"),
        (section_stages, "Stages", "stages"),
        (section_checks, "Checks", "checks-section"),
        (section_quarantine, "Quarantine", "quarantine"),
        (section_splits, "Splits", "splits"),
        (section_profile, "Profile", "features"),
        (section_drift, "Drift", "drift"),
    ]
    present = [(f"#{anchor}", title) for _, title, anchor in sections if anchor]
    if report.get("profile"):
        present.insert([a for a, _ in present].index("#drift"), ("#labels", "Labels"))
    toc = section_toc(present + [("index.html", "All runs")])
    rendered = [guarded(render, report, title) for render, title, _ in sections]
    body = (rendered[0] + toc + "".join(rendered[1:])
            + '<footer>Written by raw-to-ready from the JSON report beside this page '
            f'(<code>{esc(report.get("run_id"))}.json</code>). <a href="index.html">All runs</a>.</footer>')
    return page(f"raw-to-ready run {report.get('run_id')} — {report.get('status')}", body)


def write_text_atomically(path: Path, text: str) -> Path:
    """Write beside the target, then rename: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_html(report: dict[str, Any], path: Path) -> Path:
    """Write the run's page to ``path`` (artifacts/reports/<run_id>.html)."""
    return write_text_atomically(Path(path), render_html(report))


# --- index of runs ------------------------------------------------------------------------


def read_reports(folder: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[str, str]]]:
    """Every readable run report in ``folder``, and (file name, reason) for each one skipped."""
    reports, skipped = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append((path.name, f"{type(exc).__name__}: {exc}"))
            continue
        if not isinstance(data, dict) or not data.get("run_id"):
            skipped.append((path.name, "not a run report (no run_id)"))
            continue
        reports.append((path, data))
    reports.sort(key=lambda item: (str(item[1].get("started_at") or ""), str(item[1].get("run_id"))), reverse=True)
    return reports, skipped


def index_row(path: Path, report: dict[str, Any]) -> str:
    status = str(report.get("status") or "unknown")
    css = RUN_STATUS.get(status, "none")
    stages = {s.get("stage"): s for s in report.get("stages") or [] if isinstance(s, dict)}
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    failing = sum(1 for c in checks if c.get("status") == "fail")
    warned = sum(1 for c in checks if c.get("status") == "warn")
    quarantined = (report.get("quarantine") or {}).get("records") or 0
    page_path = path.with_suffix(".html")
    target = page_path.name if page_path.exists() else path.name
    duration = duration_seconds(report)
    checks_text = (f"{failing} fail, {warned} warn" if checks else "—") + (
        f", {quarantined:,} quarantined" if quarantined else "")
    return (
        f'<tr class="run row-{css}" data-run-id="{esc(report.get("run_id"))}">'
        f'<td class="nowrap"><a href="{esc(target)}"><code>{esc(report.get("run_id"))}</code></a></td>'
        f'<td>{badge(status, css)}</td><td class="num">{esc(report.get("exit_code"))}</td>'
        f'<td class="nowrap">{esc(fmt_time(report.get("started_at")).removesuffix(" UTC"))}</td>'
        f'<td class="num">{esc(fmt_seconds(duration)) if duration is not None else "—"}</td>'
        f'<td class="num">{fmt_int((stages.get("ingest") or {}).get("rows"))}</td>'
        f'<td class="num">{fmt_int((stages.get("splits") or {}).get("rows"))}</td>'
        f'<td>{esc(checks_text)}</td><td>{short_hash(report.get("feature_version"))}</td>'
        f'<td>{path_html(report.get("config"))}</td></tr>'
    )


def render_index(folder: Path) -> str:
    reports, skipped = read_reports(folder)
    rows = []
    for path, report in reports:
        try:
            rows.append(index_row(path, report))
        except Exception as exc:  # noqa: BLE001 - one odd report never hides the others
            skipped.append((path.name, f"{type(exc).__name__}: {exc}"))
    notes = ""
    if skipped:
        items = "".join(f"<li><code>{esc(name)}</code>: {esc(reason)}</li>" for name, reason in skipped)
        notes = (f'<div class="box warn" id="skipped"><strong>Skipped {len(skipped)} file(s) that are not readable '
                 f'run reports</strong><ul>{items}</ul></div>')
    head = ('<thead><tr><th>run</th><th>status</th><th class="num">exit</th><th>started (UTC)</th>'
            '<th class="num">duration</th><th class="num">rows ingested</th><th class="num">rows in splits</th>'
            '<th>checks</th><th>feature_version</th><th>config</th></tr></thead>')
    body = (f'<header class="run"><h1>raw-to-ready runs</h1><p class="muted">{len(reports):,} run report(s) in this '
            'folder, newest first. Each links to its page (or to its JSON when it has no page).</p></header>'
            f'{notes}<table id="runs">{head}<tbody>{"".join(rows)}</tbody></table>')
    return page("raw-to-ready runs", body)


def write_index(folder: Path) -> Path:
    """Rewrite ``folder``/index.html: every <run_id>.json report in the folder, newest first."""
    folder = Path(folder)
    return write_text_atomically(folder / "index.html", render_index(folder))


# --- command line -------------------------------------------------------------------------


def latest_page(folder: Path) -> Path | None:
    """The page of the newest run in ``folder`` that has one."""
    reports, _ = read_reports(folder)
    for path, _report in reports:
        if path.with_suffix(".html").is_file():
            return path.with_suffix(".html")
    return None


def can_show_a_browser() -> bool:
    """A graphical browser can open here: macOS, Windows, or a Linux/BSD desktop session (not a
    terminal browser that would take over the shell)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.html_report", description=(
        "Print the path of the latest run's HTML report (make report)."))
    parser.add_argument("--folder", type=Path, default=Path("artifacts") / "reports",
                        help="where the reports are (default: artifacts/reports)")
    parser.add_argument("--open", action="store_true", help="also open it in a browser, where one can show it")
    args = parser.parse_args(argv)
    page_path = latest_page(args.folder) if args.folder.is_dir() else None
    if page_path is None:
        print(f"no HTML run report in {args.folder}/ yet: `make all` runs the pipeline and writes one",
              file=sys.stderr)
        return 1
    print(page_path)
    if args.open:
        if can_show_a_browser() and webbrowser.open(page_path.resolve().as_uri()):
            print("opened in a browser", file=sys.stderr)
        else:
            print(f"no graphical browser here (DISPLAY is unset): open it, or {page_path.parent / 'index.html'}, "
                  "on a machine with one", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
