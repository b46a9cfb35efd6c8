"""Numbers, times and names as the run report shows them: plain text, never markup.

The templates escape what these return (autoescape); a value that cannot be read as what it
should be (a number, a time) comes back as its text, to be shown as it is.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

SAMPLE_VALUE_CHARS = 300
SAMPLE_TITLE_CHARS = 2000


def text(value: Any) -> str:
    """A value as text; None as nothing."""
    return "" if value is None else str(value)


def plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def fmt_int(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return text(value)


def fmt_percent(value: Any, digits: int = 2) -> str:
    """A value already in percent (failing_percent: 0..100)."""
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return text(value)
    if 0 < abs(number) < 10 ** -digits:  # a few rows of many: not 0%
        return f"under {10 ** -digits:g}%"
    shown = f"{number:.{digits}f}"
    if "." in shown:
        shown = shown.rstrip("0").rstrip(".")
    return f"{shown}%"


def fmt_fraction(value: Any, digits: int = 1) -> str:
    """A fraction (0..1) as a percent."""
    if value is None:
        return "—"
    try:
        return fmt_percent(float(value) * 100, digits)
    except (TypeError, ValueError):
        return text(value)


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
        return text(value)
    if math.isnan(number) or math.isinf(number):
        return text(value)
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


def fmt_coord(value: float) -> str:
    """An SVG coordinate or length: one decimal."""
    return f"{value:.1f}"


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
        return str(value) if value else "—"
    utc = parsed.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def duration_seconds(report: dict[str, Any]) -> float | None:
    started, finished = parse_time(report.get("started_at")), parse_time(report.get("finished_at"))
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()


def fmt_duration(report: dict[str, Any]) -> str:
    duration = duration_seconds(report)
    return fmt_seconds(duration) if duration is not None else "—"


def slug(value: Any, index: int) -> str:
    """An id for an anchor: ASCII letters, digits and dashes, unique by its index."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', str(value)).strip('-').lower() or 'item'}-{index}"


def breakable(value: Any, after: str = "._/") -> list[str]:
    """An identifier in pieces, each ending in one of ``after``: the page may break the line
    between them (a line-break opportunity each), not inside a word."""
    return re.split(f"(?<=[{re.escape(after)}])", text(value))


def path_pieces(value: Any) -> list[str] | None:
    """A file path in pieces that end in a slash (None: no path, shown as a dash)."""
    return breakable(value, "/") if value else None


def short_hash(value: Any, length: int = 12) -> dict[str, str] | None:
    """The first characters of a hash, the whole of it on hover (None: no hash)."""
    if not value:
        return None
    full = str(value)
    return {"full": full, "shown": full if len(full) <= length + 1 else full[:length] + "…"}


def short_path(value: Any, keep: int = 2) -> dict[str, str | None]:
    """A long path as its last ``keep`` parts, the whole of it on hover (title)."""
    full = str(value or "?")
    parts = full.split("/")
    if len(full) <= 40 or len(parts) <= keep:
        return {"text": full, "title": None}
    return {"text": "…/" + "/".join(parts[-keep:]), "title": full}


def sample_value(value: Any, whole_record: bool = False) -> dict[str, Any]:
    """A sample's value as read from the file (a rule over the whole record has none):
    kind null (its text in place of a value), value, or long (cut, its length after it)."""
    if value is None:
        return {"kind": "null", "text": "the whole record" if whole_record else "null"}
    full = str(value)
    if full == "":
        return {"kind": "null", "text": "empty"}
    if len(full) > SAMPLE_VALUE_CHARS:
        return {"kind": "long", "text": full[:SAMPLE_VALUE_CHARS], "title": full[:SAMPLE_TITLE_CHARS],
                "length": f"{len(full):,}"}
    return {"kind": "value", "text": full}
