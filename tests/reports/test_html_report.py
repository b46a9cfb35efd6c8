"""The HTML run report: artifacts/reports/<run_id>.html beside the JSON, and index.html.

The tests marked ``browser`` load the pages the real pipeline wrote in headless Chromium
(Debian's ``chromium`` package; ``make chromium`` installs it) and look at what a person would
see: no console or page errors, one checks-table row per check, the charts drawn with a size,
a screenshot that is not blank. ``-m 'not browser'`` leaves them out; without Chromium they fail
and say how to install it. The other tests read the HTML text.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pytest

from scripts.reports import html as html_report
from scripts.reports import html_format, html_svg, html_view
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import HEADER, REPO_ROOT

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# 30 orders of 5 customers, one a day from 2024-01-01 (lines 2..31 of the file), then:
HOSTILE_STATUS = "<script>alert('x')</script> & \"quoted\""
ORDERS = HEADER + "".join(
    f"O{i:02d},C{i % 5},2024-01-{i:02d} 10:00:00,{10 + i}.50,completed\n" for i in range(1, 31)
) + (
    # line 32: a status outside the allowed values (a warning) that would be markup if not escaped
    '"O31",C1,2024-01-30 12:00:00,5.00,"' + HOSTILE_STATUS.replace('"', '""') + '"\n'
    # line 33: no customer: quarantined, the run goes on
    "O32,,2024-01-30 13:00:00,6.00,completed\n"
)
EXPECTATIONS = {
    "non_null": [{"column": "customer_id", "action": "quarantine"}],
    "allowed_values": {"status": {"values": ["completed", "cancelled"], "severity": "warn"}},
}
# The checks this input and these expectations make, counted by hand: the two configured above,
# and the ones added because staging cannot run without them (the five required columns, the
# types of order_ts and amount, non_null of order_id and order_ts, unique order_id).
HAND_COUNTED_CHECKS = {
    "non_null.customer_id", "allowed_values.status",
    "required_columns.order_id", "required_columns.customer_id", "required_columns.order_ts",
    "required_columns.amount", "required_columns.status",
    "types.order_ts", "types.amount", "non_null.order_id", "non_null.order_ts", "unique.order_id",
}


# --- Chromium -----------------------------------------------------------------------------


def chromium_executable() -> str:
    """CHROMIUM, else Debian's chromium on PATH; a failure that says how to install it."""
    wanted = os.environ.get("CHROMIUM", "").strip() or "chromium"
    found = shutil.which(wanted) or (wanted if os.access(wanted, os.X_OK) else None)
    if not found:
        pytest.fail(f"Chromium not found ({wanted!r}): the browser test needs it. Install Debian's package with "
                    "`make chromium` (as root: apt-get install -y chromium), or set CHROMIUM=/path/to/chromium; "
                    "PYTEST_ARGS=\"-m 'not browser'\" leaves the browser tests out.", pytrace=False)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: `make install` installs requirements.txt",
                    pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class LoadedPage:
    """A page opened from a file, with every console message, page error, dialog and request."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1366, "height": 768})
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def boxes(self, selector: str) -> list[dict[str, float]]:
        return [handle.bounding_box() for handle in self.page.query_selector_all(selector)]

    def close(self) -> None:
        self.page.close()


def assert_clean(loaded: LoadedPage, path: Path) -> None:
    """No console message, no script error, no dialog, and no request but for the page itself."""
    assert loaded.console == [], "the page logged to the console"
    assert loaded.errors == [], "a script error on the page"
    assert loaded.dialogs == [], "a dialog opened: markup from the data ran"
    assert loaded.requests == [path.resolve().as_uri()], "the page asked for something besides itself"


def assert_drawn(boxes: list[dict[str, float] | None], what: str) -> None:
    assert boxes, f"no {what} on the page"
    for box in boxes:
        assert box and box["width"] > 50 and box["height"] > 20, f"{what} drawn without a size: {box}"


# --- PNG, decoded with zlib (the screenshot's pixels, independently of the browser) ---------


def png_pixels(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) as height x width x channels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, compressed, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunk = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed.append(chunk)
        elif kind == b"IEND":
            break
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(compressed)), dtype=np.uint8).reshape(height, stride + 1)
    pixels = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:  # None
            row = line.copy()
        elif kind == 1:  # Sub: a running sum along the row, per channel, modulo 256
            row = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:  # Up
            row = line + previous
        else:  # Average (3) and Paeth (4) depend on the pixel to the left: byte by byte
            above = previous.tolist()
            out = [0] * stride
            for i, value in enumerate(line.tolist()):
                left = out[i - channels] if i >= channels else 0
                up = above[i]
                if kind == 3:
                    out[i] = (value + (left + up) // 2) & 255
                else:
                    up_left = above[i - channels] if i >= channels else 0
                    guess = left + up - up_left
                    da, db, dc = abs(guess - left), abs(guess - up), abs(guess - up_left)
                    out[i] = (value + (left if da <= db and da <= dc else up if db <= dc else up_left)) & 255
            row = np.array(out, dtype=np.uint8)
        pixels[y] = row
        previous = row
    return pixels.reshape(height, width, channels)[..., :3]


def assert_not_blank(png: Path) -> np.ndarray:
    pixels = png_pixels(png.read_bytes())
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    background = (pixels == 255).all(axis=2).mean()
    # a white page with a few words has tens of colours; this one has text, badges and charts
    assert colours > 200, f"{png}: only {colours} distinct colours"
    assert background < 0.97, f"{png}: {background:.1%} of the pixels are white"
    return pixels


def screenshot(loaded: LoadedPage, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    loaded.page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # kept for a person to look at
    shutil.copyfile(path, SCREENSHOTS / path.name)
    return path


# --- a real run ---------------------------------------------------------------------------


def report_files(project, run_id: str) -> tuple[dict[str, Any], Path]:
    folder = project.root / "artifacts" / "reports"
    return json.loads((folder / f"{run_id}.json").read_text(encoding="utf-8")), folder / f"{run_id}.html"


@pytest.fixture
def warning_run(project, db_url) -> tuple[dict[str, Any], Path]:
    """A passing run with a warning (the hostile status) and a quarantined record."""
    project.write_csv("orders.csv", ORDERS)
    code, report = run_pipeline(project.write_config(expectations=EXPECTATIONS), db_url)
    assert code == EXIT_PASSED, report["errors"]
    return report_files(project, report["run_id"])


@pytest.mark.browser
def test_the_run_page_in_chromium(warning_run, browser, tmp_path):
    """The page the pipeline wrote, as Chromium shows it: clean, complete, drawn."""
    saved, page_path = warning_run
    loaded = LoadedPage(browser, page_path)
    try:
        assert_clean(loaded, page_path)
        page = loaded.page
        assert page.locator("#run").get_attribute("data-status") == "passed"
        # one row per check: the JSON's count, and the count by hand of what the input makes
        non_drift = {c["id"] for c in saved["checks"] if c["level"] != "drift"}
        assert non_drift == HAND_COUNTED_CHECKS
        assert page.locator("#checks tbody tr.check").count() == len(saved["checks"])
        # failures first: the quarantine and the warning head the table, the passes follow
        statuses = page.eval_on_selector_all("#checks tbody tr.check", "rows => rows.map(r => r.dataset.status)")
        assert statuses[:2] == ["quarantine", "warn"] and set(statuses[2:]) <= {"pass"}
        # the hostile status shows as text with its file and line (32), and ran as nothing
        warn_row = page.locator("#checks tr.check[data-status=warn]")
        assert "data/raw/orders.csv:32" in warn_row.inner_text()
        assert warn_row.locator(".value").first.inner_text() == HOSTILE_STATUS
        assert page.locator("script").count() == 0
        quarantined = page.locator("#checks tr.check[data-status=quarantine]").text_content()  # samples folded
        assert "data/raw/orders.csv:33" in quarantined
        assert page.locator("#quarantine-table tbody tr").count() == 1
        # the charts: drawn, with a size
        assert_drawn(loaded.boxes("#stage-chart"), "stage chart")
        assert page.locator("#stage-chart .stage-bar").count() == len(saved["stages"])
        assert_drawn(loaded.boxes("#split-timeline"), "split time line")
        assert page.locator("#split-timeline .split-span").count() == 3
        assert page.locator("#split-timeline .cutoff").count() == 2  # where val and test start
        profile = saved.get("profile")
        if profile and profile.get("features"):
            assert_drawn(loaded.boxes("svg.histogram"), "histogram")
        if profile:  # the database is new: nothing to compare with
            assert page.locator("#no-baseline").inner_text().startswith("no baseline: first run")
        assert page.locator(".render-error").count() == 0
        # at a laptop's width nothing runs off the side
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert_not_blank(screenshot(loaded, tmp_path, "run-with-warning"))
    finally:
        loaded.close()


@pytest.mark.browser
def test_the_index_lists_runs_newest_first_in_chromium(project, db_url, browser, tmp_path):
    project.write_csv("orders.csv", ORDERS)
    config = project.write_config(expectations=EXPECTATIONS)
    first = run_pipeline(config, db_url, run_id="20240101T000000Z-first0")[1]
    second = run_pipeline(config, db_url, run_id="20240101T000001Z-secnd0")[1]
    index = project.root / "artifacts" / "reports" / "index.html"
    loaded = LoadedPage(browser, index)
    try:
        assert_clean(loaded, index)
        rows = loaded.page.eval_on_selector_all("#runs tbody tr.run", "rows => rows.map(r => r.dataset.runId)")
        assert rows == [second["run_id"], first["run_id"]]
        links = loaded.page.eval_on_selector_all("#runs tbody a", "links => links.map(a => a.getAttribute('href'))")
        assert links == [f"{second['run_id']}.html", f"{first['run_id']}.html"]
        assert all((index.parent / link).is_file() for link in links)
        assert_not_blank(screenshot(loaded, tmp_path, "index"))
    finally:
        loaded.close()


def synthetic_profile(report: dict[str, Any]) -> dict[str, Any]:
    """A run's report with a profile, drift checks and labels in the shape the profiling stage
    writes (drawn here before a real run has them)."""
    report = copy.deepcopy(report)
    edges = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    report["profile"] = {
        "baseline_run_id": "20240101T000000Z-base00",
        "batch": {"row_count": 32, "status_counts": {"completed": 31, "other": 1},
                  "columns": {"amount": {"null_count": 0, "null_rate": 0.0, "distinct_count": 32,
                                         "quantiles": [5, 12, 15, 18, 21, 24, 27, 30, 33, 36, 40.5]},
                              "status": {"null_count": 0, "null_rate": 0.0, "distinct_count": 2}}},
        "features": {"row_count": 32, "sampled_rows": 32, "columns": {
            name: {"null_rate": 0.0, "quantiles": [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 8],
                   "histogram": {"edges": edges, "counts": {"all": [4, 6, 8, 6, 4, 2, 1, 1],
                                                            "train": [3, 4, 6, 4, 2, 1, 1, 0],
                                                            "val": [1, 1, 1, 1, 1, 0, 0, 0],
                                                            "test": [0, 1, 1, 1, 1, 1, 0, 1]}}}
            for name in ("orders_7d", "orders_30d", "revenue_7d", "revenue_30d")}},
        "labels": {"column": "repeat_30d", "by_split": {"train": {"rows": 20, "positive": 12, "censored": 0},
                                                        "val": {"rows": 5, "positive": 2, "censored": 0},
                                                        "test": {"rows": 5, "positive": 1, "censored": 3}}},
    }
    report["checks"] = [c for c in report["checks"] if c["level"] != "drift"] + [
        {"id": "drift.psi.orders_30d", "level": "drift", "column": "orders_30d", "rule": "psi", "severity": "warn",
         "action": "fail", "status": "warn", "failing_count": None, "failing_percent": None, "row_count": 32,
         "message": "orders_30d moved: PSI 0.31 > 0.2", "implicit": False, "samples": [], "error_if": None,
         "warn_if": ">0.2", "measured": 0.31, "baseline": None},
        {"id": "drift.row_count", "level": "drift", "column": None, "rule": "row_count", "severity": "warn",
         "action": "fail", "status": "pass", "failing_count": None, "failing_percent": None, "row_count": 32,
         "message": "batch rows within 50% of the baseline", "implicit": False, "samples": [], "error_if": None,
         "warn_if": ">50%", "measured": 32, "baseline": 30},
    ]
    return report


@pytest.mark.browser
def test_histograms_labels_and_drift_in_chromium(warning_run, browser, tmp_path):
    saved, page_path = warning_run
    report = synthetic_profile(saved)
    path = html_report.write_html(report, tmp_path / "profiled.html")
    loaded = LoadedPage(browser, path)
    try:
        assert_clean(loaded, path)
        assert_drawn(loaded.boxes("svg.histogram"), "histogram")
        assert loaded.page.locator("svg.histogram").count() == 4
        # 8 bins, three splits with rows in them: 24 bars in each histogram
        assert loaded.page.locator("svg.histogram[data-feature=orders_7d] rect").count() == 24
        assert_drawn(loaded.boxes("#label-balance"), "label balance")
        assert loaded.page.locator("#drift-table tbody tr").count() == 2
        assert loaded.page.locator("#checks tbody tr.check").count() == len(report["checks"])
        assert loaded.page.locator(".render-error").count() == 0
        assert_not_blank(screenshot(loaded, tmp_path, "profiled"))
    finally:
        loaded.close()


# --- the HTML text ------------------------------------------------------------------------

RESOURCE = re.compile(r"""(?:\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*(?:https?:)?//)"""
                      r"""|url\(\s*["']?\s*(?:https?:)?//|@import|<(?:script|link|img|iframe|object|embed)\b""",
                      re.IGNORECASE)


def test_the_page_is_self_contained(warning_run):
    saved, page_path = warning_run
    text = page_path.read_text(encoding="utf-8")
    assert RESOURCE.search(text) is None, "the page refers to something outside itself"
    assert re.search(r"https?://", text) is None
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_values_from_the_input_are_escaped(warning_run):
    saved, page_path = warning_run
    text = page_path.read_text(encoding="utf-8")
    sample = next(c for c in saved["checks"] if c["id"] == "allowed_values.status")["samples"][0]
    assert sample["value"] == HOSTILE_STATUS  # what the file held, as the JSON report carries it
    assert "<script>" not in text
    assert html_report.esc(HOSTILE_STATUS) in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in text


def test_every_field_is_escaped_in_a_hostile_report(tmp_path):
    """Markup anywhere in a report (paths, messages, config, errors, keys) stays text."""
    evil = '<img src=x onerror=alert(1)>"\'&'
    report = {
        "run_id": evil, "status": evil, "exit_code": evil, "errors": [evil], "warnings": [evil], "config": evil,
        "started_at": evil, "finished_at": evil, "feature_version": evil, "refresh": {"full": True, "reason": evil},
        "stages": [{"stage": evil, "status": evil, "rows": 1, "seconds": 0.1, "message": evil}],
        "sources": [{"source": evil, "path": evil, "sha256": evil, "bytes": 1, "ingested_rows": 1}],
        "checks": [{"id": evil, "level": evil, "column": evil, "rule": evil, "severity": evil, "action": evil,
                    "status": evil, "failing_count": 1, "failing_percent": 1.0, "row_count": 1, "message": evil,
                    "implicit": False, "error_if": evil, "warn_if": evil,
                    "samples": [{"file_path": evil, "line_number": 1, "value": evil}]}],
        "quarantine": {"records": 1, "by_check": {evil: 1}},
        "splits": [{"split": evil, "starts_at": evil, "ends_before": evil, "row_count": 1, "gap_row_count": 0,
                    "purged_row_count": 0, "censored_row_count": 0, "fraction": 1.0, "target_fraction": 1.0}],
        "alerts": {"configured": True, evil: evil},
    }
    text = html_report.write_html(report, tmp_path / "evil.html").read_text(encoding="utf-8")
    assert "<img" not in text and "onerror=alert(1)>" not in text
    assert 'class="render-error"' not in text


def test_an_errored_run_still_gets_a_page(tmp_path):
    """What a run that could not connect writes: the few keys it has, and the error, up front."""
    report = {"run_id": "20240101T000000Z-err000", "status": "error", "exit_code": 3, "validation_passed": None,
              "errors": ["could not connect to the database\n  is PostgreSQL running?"], "warnings": [],
              "config": "configs/pipeline.yaml", "started_at": "2024-01-01T00:00:00+00:00",
              "finished_at": "2024-01-01T00:00:01+00:00"}
    text = html_report.write_html(report, tmp_path / "error.html").read_text(encoding="utf-8")
    assert 'data-status="error"' in text and "exit code 3" in text
    assert "Why the run stopped" in text and "could not connect to the database" in text
    assert "Not profiled" in text and "No splits: the run stopped before the splits stage" in text
    assert 'class="render-error"' not in text


@pytest.mark.parametrize("drift_checks", [0, 1], ids=["no-drift-checks", "drift-checks-without-baseline"])
def test_drift_without_a_baseline_says_first_run(tmp_path, drift_checks):
    checks = [{"id": "drift.psi.orders_7d", "level": "drift", "status": "pass", "measured": None,
               "baseline": None, "message": "no baseline: first run", "samples": []}][:drift_checks]
    report = {"run_id": "r", "status": "passed", "exit_code": 0, "profile": {"baseline_run_id": None},
              "checks": checks}
    text = html_report.write_html(report, tmp_path / "first.html").read_text(encoding="utf-8")
    assert '<strong>no baseline: first run</strong>' in text
    assert ('id="drift-table"' in text) == bool(drift_checks)


def test_drift_against_a_baseline_names_it(tmp_path):
    report = {"run_id": "r", "status": "passed", "exit_code": 0, "profile": {"baseline_run_id": "20240101T0-abc"},
              "checks": [{"id": "drift.row_count", "level": "drift", "status": "warn", "measured": 100,
                          "baseline": 40, "warn_if": ">40%", "message": "order count changed", "samples": []}]}
    text = html_report.write_html(report, tmp_path / "drift.html").read_text(encoding="utf-8")
    assert "no baseline" not in text and "<code>20240101T0-abc</code>" in text
    row = re.search(r'<table id="drift-table">.*?</table>', text).group(0)
    assert ">100<" in row and ">40<" in row and "warn if &gt;40%" in row


def test_the_index_skips_a_malformed_report_with_a_note(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    for run_id, started in (("20240101T000000Z-aaaaaa", "2024-01-01T00:00:00+00:00"),
                            ("20240102T000000Z-bbbbbb", "2024-01-02T00:00:00+00:00")):
        (folder / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "status": "passed", "exit_code": 0,
                                                           "started_at": started}), encoding="utf-8")
    (folder / "20240103T000000Z-cccccc.json").write_text('{"run_id": "20240103T0', encoding="utf-8")  # cut short
    (folder / "notes.json").write_text("[1, 2]", encoding="utf-8")
    text = html_report.write_index(folder).read_text(encoding="utf-8")
    run_ids = re.findall(r'data-run-id="([^"]+)"', text)
    assert run_ids == ["20240102T000000Z-bbbbbb", "20240101T000000Z-aaaaaa"]  # newest first
    assert "20240103T000000Z-cccccc.json" in text and "notes.json" in text and 'id="skipped"' in text


# --- the templates and the view model (no database) -----------------------------------------

SCRIPT = "<script>alert('x')</script>"


def full_report() -> dict[str, Any]:
    """A report with something in every section: 14 files, a check with 9 samples (one too long to
    show whole), quarantine, three splits, a profile with histograms and labels, drift checks."""
    samples = [{"file_path": "data/raw/orders.csv", "line_number": line, "value": "x" * (400 if line == 2 else 3)}
               for line in range(2, 11)]
    checks = [{"id": f"rule.{i}", "level": "records", "column": "status", "rule": "rule", "severity": "error",
               "action": "fail", "status": status, "failing_count": 40 if status == "fail" else 0,
               "failing_percent": 4.0 if status == "fail" else 0.0, "row_count": 1000, "message": f"message {i}",
               "implicit": i == 1, "error_if": None, "warn_if": None,
               "samples": copy.deepcopy(samples) if status == "fail" else []}
              for i, status in enumerate(("fail", "quarantine", "warn", "pass"))]
    splits = [("train", None, 690, 0.7), ("val", "2024-03-01T00:00:00", 150, 0.15),
              ("test", "2024-04-01T00:00:00", 140, 0.15)]
    report = {
        "run_id": "20240101T000000Z-full00", "status": "failed", "exit_code": 1, "validation_passed": False,
        "errors": ["message 0"], "warnings": ["message 2"], "config": "configs/pipeline.yaml",
        "started_at": "2024-01-01T00:00:00+00:00", "finished_at": "2024-01-01T00:02:30+00:00",
        "feature_version": "ab" * 32, "refresh": {"full": False, "version_number": 2, "reason": "new files"},
        "runner_peak_rss_mib": 50.5, "alerts": {"configured": True, "sent": True, "http_status": 200, "attempts": 1},
        "stages": [{"stage": name, "status": "ok", "rows": 1000, "seconds": 0.5 + i}
                   for i, name in enumerate(("ingest", "validate", "splits"))],
        "sources": [{"source": "orders", "path": f"data/raw/orders_{i}.csv", "sha256": "cd" * 32, "bytes": 100,
                     "ingested_rows": 10} for i in range(14)],
        "checks": checks,
        "quarantine": {"records": 3, "by_check": {"rule.1": 3}},
        "splits": [{"split": name, "starts_at": starts, "ends_before": None, "row_count": rows, "gap_row_count": 5,
                    "purged_row_count": 7, "censored_row_count": 3 if name == "test" else 0,
                    "fraction": rows / 1000, "target_fraction": target} for name, starts, rows, target in splits],
    }
    return synthetic_profile(report)


def test_every_section_renders_from_a_full_report(tmp_path):
    report = full_report()
    text = html_report.write_html(report, tmp_path / "full.html").read_text(encoding="utf-8")
    assert 'class="render-error"' not in text
    for anchor in ("run", "errors", "warnings", "sources-table", "stage-chart", "checks", "quarantine-table",
                   "split-timeline", "splits-table", "batch-profile", "histograms", "label-balance", "drift-table"):
        assert f'id="{anchor}"' in text, anchor
    assert "2 more files" in text and "4 more samples" in text and "(400 characters)" in text
    assert text.count('class="histogram"') == 4 and text.count('class="cutoff"') == 2
    assert "2 min 30 s" in text and "200: posted" not in text and "sent: posted to the webhook" in text


def test_a_check_message_and_file_path_with_markup_are_escaped(tmp_path):
    """Autoescape: markup in a check's message, a sample's file path and value, a source path and
    a feature's name is text on the page, escaped once."""
    report = full_report()
    report["checks"][0]["message"] = SCRIPT
    report["checks"][0]["samples"][1].update(file_path=f"data/{SCRIPT}/{'deep/' * 10}orders.csv", value=SCRIPT)
    report["sources"][0]["path"] = f"data/{SCRIPT}.csv"
    report["profile"]["features"]["columns"][SCRIPT] = report["profile"]["features"]["columns"]["orders_7d"]
    report["started_at"] = SCRIPT  # not a time: shown as it is
    text = html_report.render_html(report)
    assert "<script" not in text
    assert html_report.esc(SCRIPT) in text and "&amp;lt;" not in text  # escaped, and only once
    assert f"<dd>{html_report.esc(SCRIPT)}</dd>" in text
    assert f'data-feature="{html_report.esc(SCRIPT)}"' in text
    assert 'class="render-error"' not in text


def test_no_template_writes_a_style_attribute_or_an_external_url(tmp_path):
    templates = sorted(html_report.TEMPLATES.rglob("*.j2"))
    assert len(templates) >= 12
    for path in templates + [html_report.TEMPLATES / "report.css"]:
        source = path.read_text(encoding="utf-8")
        assert re.search(r"\sstyle\s*=", source) is None, f"{path.name}: a style attribute"
        assert re.search(r"https?://|@import|url\(\s*['\"]?(?!#)", source) is None, f"{path.name}: an external URL"
    folder = tmp_path / "reports"
    html_report.write_html(full_report(), folder / "20240101T000000Z-full00.html")
    (folder / "20240101T000000Z-full00.json").write_text(json.dumps(full_report()), encoding="utf-8")
    for page in (folder / "20240101T000000Z-full00.html", html_report.write_index(folder)):
        text = page.read_text(encoding="utf-8")
        assert re.search(r"<[a-z]+[^>]*\sstyle\s*=", text) is None, f"{page.name}: a style attribute"
        assert RESOURCE.search(text) is None and re.search(r"https?://", text) is None, page.name
        assert text.count("<style>") == 1 and "Content-Security-Policy" in text and "default-src 'none'" in text


def test_no_markup_in_the_python_modules():
    """The view model is text: the markup lives in the templates only."""
    for module in (html_report, html_view, html_svg, html_format):
        source = Path(module.__file__).read_text(encoding="utf-8")
        tags = re.findall(r"<(?:/?(?:div|span|table|t[rdh]|code|svg|rect|text|line|section|h[1-3]|p|a|li|ul|br|wbr)"
                          r"\b)", source)
        assert not tags, f"{Path(module.__file__).name}: markup {tags[:3]}"
        assert "esc(" not in source.replace("def esc(", "").replace("Escaped(esc(", ""), module.__name__


def test_the_environment_escapes_and_refuses_undefined_values():
    env = html_report.environment()
    assert env is html_report.environment()  # created once
    assert env.autoescape is True and env.undefined is jinja2.StrictUndefined
    assert env.from_string("{{ v }}").render(v=SCRIPT) == html_report.esc(SCRIPT)
    assert env.from_string("<a title=\"{{ v }}\">").render(v='"><b>') == '<a title="&quot;&gt;&lt;b&gt;">'
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()


def test_the_view_model_is_plain_data():
    """Text, numbers and lists of them: what the templates draw is decided in Python."""
    report = full_report()

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    for build, name, _, _ in html_report.SECTIONS:
        model = build(report)
        assert plain(model), name
    checks = html_view.checks(report)["rows"]
    assert [r["status"] for r in checks] == ["fail", "quarantine", "warn", "warn", "pass", "pass"]  # failures first
    assert checks[0]["percent"] == "4%" and checks[0]["of_rows"] == "1,000" and checks[0]["failing"] == "40"
    assert checks[0]["samples"]["shown"][0]["value"] == {"kind": "long", "text": "x" * 300, "title": "x" * 400,
                                                         "length": "400"}


def test_histogram_geometry():
    chart = html_svg.histogram("f", {"edges": [0, 1, 2, 3, 4], "counts": {"train": [1, 3, 0, 0], "val": [2, 2, 0, 0],
                                                                             "test": [0, 0, 0, 0]}})
    assert len(chart["bars"]) == 8  # 4 bins x the 2 splits with rows (test has none)
    plot_h = chart["height"] - 8 - 18
    tallest = max(chart["bars"], key=lambda bar: float(bar["height"]))
    assert float(tallest["height"]) == plot_h and tallest["fill"] == html_svg.SPLIT_COLOUR["train"]
    assert [t["text"] for t in chart["texts"]] == ["75%", "0", "0", "4", "2"]  # peak share, zero, edges
    empty = html_svg.histogram("f", {})
    assert empty["bars"] == [] and [t["text"] for t in empty["texts"]] == ["no values"]


def test_a_malformed_section_says_so_and_the_rest_is_drawn(tmp_path):
    report = full_report()
    report["stages"] = [{"stage": "ingest", "seconds": "not a number"}]
    report["profile"]["features"]["columns"] = {"f": {"histogram": {"edges": ["a", 1]}}}
    text = html_report.write_html(report, tmp_path / "broken.html").read_text(encoding="utf-8")
    notices = re.findall(r'<section><h2>(\w+)</h2><p class="render-error">This section could not be drawn from the '
                         r'report: (\w+): ', text)
    assert notices == [("Stages", "ValueError"), ("Profile", "ValueError")]
    assert 'id="checks"' in text and 'id="split-timeline"' in text and 'id="drift-table"' in text


def test_make_report_prints_the_latest_page(tmp_path, capsys):
    folder = tmp_path / "reports"
    assert html_report.main(["--folder", str(folder)]) == 1
    report = full_report()
    (folder / f"{report['run_id']}.json").parent.mkdir()
    (folder / f"{report['run_id']}.json").write_text(json.dumps(report), encoding="utf-8")
    html_report.write_html(report, folder / f"{report['run_id']}.html")
    assert html_report.main(["--folder", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / f"{report['run_id']}.html")


@pytest.mark.parametrize(("check", "shown"), [
    ({"severity": "error", "error_if": ">0", "warn_if": ">0"}, ["error if >0"]),
    ({"severity": "warn", "error_if": ">0", "warn_if": ">0"}, ["warn if >0"]),
    ({"severity": "error", "error_if": ">5%", "warn_if": ">1%"}, ["error if >5%", "warn if >1%"]),
    ({"severity": "warn", "error_if": ">5%", "warn_if": ">2%"}, ["warn if >2%"]),
    ({"severity": "error", "error_if": None, "warn_if": None}, ["—"]),  # a quarantine check with no gate
])
def test_a_check_shows_only_the_thresholds_it_has(check, shown):
    """An error-severity check errs past error_if and warns past a lower warn_if only; a
    warn-severity check never errs (scripts/config/expectations.py, sql/macros/results.sql)."""
    assert html_view.thresholds(check) == shown
