"""The run report as one HTML page, and the index of runs beside it.

    artifacts/reports/<run_id>.html   one run: status, sources, stage timings, checks with samples,
                                      quarantine, the splits on a time line, feature histograms,
                                      label balance, drift
    artifacts/reports/index.html      every run in the folder, newest first
    python -m scripts.reports.html [--open]   prints the latest page's path (make report)

Rendered the way Great Expectations renders its Data Docs: Python builds a view model (plain
dicts of text, numbers formatted, chart geometry computed: html_view.py, html_svg.py,
html_format.py) and Jinja2 templates (templates/) lay it out, with autoescape on: every value
from the report is text on the page, whatever markup it holds (check samples come from messy
input files). The page is one file: inline CSS (templates/report.css) and inline SVG, no
scripts, fonts, images or links to anything outside it (a Content-Security-Policy says so to
the browser). A section whose data cannot be read says so in place of itself; the page is still
written, for failed and errored runs too.
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import sys
import tempfile
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from scripts import config
from scripts.db.render import bytecode_cache
from scripts.errors import ConfigError, failure
from scripts.paths import ARTIFACTS
from scripts.reports import html_view as view
from scripts.reports.html_format import fmt_duration, fmt_int, fmt_time, path_pieces, short_hash

TEMPLATES = Path(__file__).resolve().parent / "templates"

# (view model, template under templates/sections/, title, anchor in the table of contents)
SECTIONS: tuple[tuple[Callable[[dict[str, Any]], dict[str, Any]], str, str, str | None], ...] = (
    (view.header, "header", "Run", None),
    (view.summary, "summary", "Summary", None),
    (view.errors, "errors", "Errors", None),
    (view.sources, "sources", "Sources", "sources"),
    (view.stages, "stages", "Stages", "stages"),
    (view.checks, "checks", "Checks", "checks-section"),
    (view.quarantine, "quarantine", "Quarantine", "quarantine"),
    (view.splits, "splits", "Splits", "splits"),
    (view.profile, "profile", "Profile", "features"),
    (view.drift, "drift", "Drift", "drift"),
)


# --- the templates ------------------------------------------------------------------------


def esc(value: Any) -> str:
    """Text for HTML (element content and quoted attributes alike), as the templates escape it."""
    return html.escape("" if value is None else str(value), quote=True)


class Escaped(str):
    """Text escaped for HTML already: autoescape takes it as it is (the __html__ protocol)."""

    def __html__(self) -> str:
        return self


def finalize(value: Any) -> Any:
    """What every {{ expression }} prints, before autoescape sees it: the value escaped by esc
    (None as nothing; quotes as &#x27; and &quot;, as the page always had them), or markup a
    macro made, as it is."""
    return value if hasattr(value, "__html__") else Escaped(esc(value))


@functools.cache
def environment() -> jinja2.Environment:
    """The templates, with autoescape on and no undefined value passing silently, compiled
    at most once between processes (the SQL's bytecode cache)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, finalize=finalize,
                              trim_blocks=True, lstrip_blocks=True, bytecode_cache=bytecode_cache())


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


# --- the run's page -----------------------------------------------------------------------


def guarded(build: Callable[[dict[str, Any]], dict[str, Any]], report: dict[str, Any], name: str,
            title: str) -> dict[str, Any]:
    """One section's view model, or the notice that takes its place when the report's data for
    it cannot be read: the rest of the page is still drawn."""
    try:
        return {"template": f"sections/{name}.html.j2", "title": title, "data": build(report), "error": None}
    except Exception as exc:  # noqa: BLE001 - the page is written whatever the report holds
        return {"template": "sections/render_error.html.j2", "title": title, "data": None,
                "error": f"{type(exc).__name__}: {exc}"}


def render_html(report: dict[str, Any]) -> str:
    """The run's page as text."""
    sections = [guarded(build, report, name, title) for build, name, title, _ in SECTIONS]
    toc = [(f"#{anchor}", title) for _, _, title, anchor in SECTIONS if anchor]
    if report.get("profile"):
        toc.insert(len(toc) - 1, ("#labels", "Labels"))  # inside the profile, before drift
    toc.append(("index.html", "All runs"))
    return render("run.html.j2", title=f"raw-to-ready run {report.get('run_id')} — {report.get('status')}",
                  header=sections[0], sections=sections[1:], toc=toc, run_id=report.get("run_id"))


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


def index_row(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """One run's row in the index: linked to its page (to its JSON when it has none)."""
    status = str(report.get("status") or "unknown")
    css = view.RUN_STATUS.get(status, "none")
    stages = {s.get("stage"): s for s in report.get("stages") or [] if isinstance(s, dict)}
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    failing = sum(1 for c in checks if c.get("status") == "fail")
    warned = sum(1 for c in checks if c.get("status") == "warn")
    quarantined = (report.get("quarantine") or {}).get("records") or 0
    page_path = path.with_suffix(".html")
    return {
        "css": css,
        "run_id": report.get("run_id"),
        "target": page_path.name if page_path.exists() else path.name,
        "badge": view.badge(status, css),
        "exit_code": report.get("exit_code"),
        "started": fmt_time(report.get("started_at")).removesuffix(" UTC"),
        "duration": fmt_duration(report),
        "ingested": fmt_int((stages.get("ingest") or {}).get("rows")),
        "in_splits": fmt_int((stages.get("splits") or {}).get("read")),
        "checks": (f"{failing} fail, {warned} warn" if checks else "—")
                  + (f", {quarantined:,} quarantined" if quarantined else ""),
        "feature_version": short_hash(report.get("feature_version")),
        "pipeline": report.get("pipeline") or "—",
        "config": path_pieces(report.get("config")),
    }


def render_index(folder: Path) -> str:
    reports, skipped = read_reports(folder)
    rows = []
    for path, report in reports:
        try:
            rows.append(index_row(path, report))
        except Exception as exc:  # noqa: BLE001 - one odd report never hides the others
            skipped.append((path.name, f"{type(exc).__name__}: {exc}"))
    return render("index.html.j2", title="raw-to-ready runs", count=f"{len(reports):,}", rows=rows,
                  skipped=[{"name": name, "reason": reason} for name, reason in skipped])


def write_index(folder: Path) -> Path:
    """Rewrite ``folder``/index.html: every <run_id>.json report in the folder, newest first."""
    folder = Path(folder)
    return write_text_atomically(folder / "index.html", render_index(folder))


# --- command line -------------------------------------------------------------------------


def latest_page(folder: Path, pipeline: str | None = None) -> Path | None:
    """The page of the newest run in ``folder`` that has one (of ``pipeline``'s runs, if given)."""
    reports, _ = read_reports(folder)
    for path, report in reports:
        if pipeline is not None and report.get("pipeline") != pipeline:
            continue
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
    parser = argparse.ArgumentParser(prog="python -m scripts.reports.html", description=(
        "Print the path of the latest run's HTML report (make report)."))
    parser.add_argument("--folder", type=Path, default=ARTIFACTS / "reports",
                        help="where the reports are (default: artifacts/reports)")
    parser.add_argument("--open", action="store_true", help="also open it in a browser, where one can show it")
    parser.add_argument("--config", help="only the runs of this config's pipeline (make report: CONFIG's)")
    args = parser.parse_args(argv)
    try:
        pipeline = config.name_of(args.config) if args.config else None
    except ConfigError as exc:
        return failure(exc)
    page_path = latest_page(args.folder, pipeline) if args.folder.is_dir() else None
    if page_path is None:
        whose = f" of pipeline {pipeline}" if pipeline else ""
        make = f"`make all CONFIG={args.config}`" if args.config else "`make all`"
        print(f"no HTML run report{whose} in {args.folder}/ yet: {make} runs the pipeline and writes one",
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
