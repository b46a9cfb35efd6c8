"""Make docs/report.png, the README's picture of a run's HTML report, in headless Chromium.

    .venv/bin/python docs/screenshot.py artifacts/reports/<run_id>.html docs/report.png

The page at a laptop's width (1366 px): its top (header, sources, stage chart, the first six
checks) and, below a dashed cut, its splits time line and profile (batch table, histograms).
The README's picture comes from the bundled sample's first run (`make all` on a fresh database).
"""

from __future__ import annotations

import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_html_report import CHROMIUM_ARGS, chromium_executable, png_pixels  # noqa: E402


def png_bytes(pixels: np.ndarray) -> bytes:
    """An RGB image as a PNG (no filter; zlib does the work)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main(page: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1366, "height": 768})
        tab.goto(page.resolve().as_uri())

        def span(selector: str) -> tuple[int, int]:
            top, bottom = tab.eval_on_selector(
                selector, "e => { const r = e.getBoundingClientRect(); return [r.top + scrollY, r.bottom + scrollY]; }")
            return int(top), int(bottom)

        top_end = span("#checks tbody tr:nth-child(6)")[1] + 2
        lower_start, lower_end = span("#splits")[0] - 6, span("#labels")[0] - 8
        full = Path(scratch) / "full.png"
        tab.screenshot(path=str(full), full_page=True)
        browser.close()
        pixels = png_pixels(full.read_bytes())
    cut = np.full((18, pixels.shape[1], 3), 255, dtype=np.uint8)
    cut[8:10, 40:-40] = 200
    cut[8:10, 40:-40][:, ::12] = 255
    out.write_bytes(png_bytes(np.concatenate([pixels[:top_end], cut, pixels[lower_start:lower_end]])))
    print(f"{out}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
