"""The geometry of the run report's charts: coordinates, bar sizes, ticks and labels, as plain
dicts the templates draw (templates/_macros.html.j2: svg_text, svg_rect, svg_line).

    stage_chart      one horizontal bar per stage, its length the stage's seconds
    split_timeline   the splits in time order, each span as wide as its rows, the cut-offs labelled
    histogram        one feature's bins, a bar per split in each (the share of that split's rows)
    label_balance    positive, negative and censored rows per split, as stacked bars

Every number that lands in an attribute is formatted here (one decimal for coordinates).
"""

from __future__ import annotations

from typing import Any

from scripts.reports.html_format import fmt_coord, fmt_fraction, fmt_int, fmt_number, fmt_seconds, fmt_time

STAGE_COLOUR = {"ok": "#2f7d4f", "failed": "#c62828", "error": "#6a1b9a", "running": "#8a8f98"}
SPLIT_COLOUR = {"train": "#3a64c8", "val": "#e07b1a", "test": "#8e3fb3", "all": "#6b7280"}
OTHER_COLOUR = "#6b7280"
SPLITS = ("train", "val", "test")
INK, MUTED, AXIS, WHITE = "#1f2328", "#59636e", "#8a8f98", "#ffffff"
POSITIVE, NEGATIVE = "#2f7d4f", "#c9d1d9"


def coord(value: Any) -> Any:
    """A computed coordinate (a float) with one decimal; a fixed one (an int) as it is."""
    return fmt_coord(value) if isinstance(value, float) else value


def svg_text(x: float, y: float, label: Any, anchor: str = "start", size: int = 12, fill: str = INK,
             weight: str | None = None) -> dict[str, Any]:
    return {"x": fmt_coord(x), "y": fmt_coord(y), "text": str(label), "anchor": anchor, "size": size,
            "fill": fill, "weight": weight}


def svg_rect(x: Any, y: Any, width: Any, height: Any, fill: str, tip: str | None = None, rx: int | None = None,
             stroke: str | None = None, stroke_width: str | None = None) -> dict[str, Any]:
    """A bar (a rectangle), with its tooltip when it has one."""
    return {"x": coord(x), "y": coord(y), "width": coord(width), "height": coord(height), "fill": fill,
            "tip": tip, "rx": rx, "stroke": stroke, "stroke_width": stroke_width}


def svg_line(x1: Any, y1: Any, x2: Any, y2: Any, stroke: str = AXIS, css: str | None = None,
             stroke_width: str | None = None, dasharray: str | None = None) -> dict[str, Any]:
    return {"x1": coord(x1), "y1": coord(y1), "x2": coord(x2), "y2": coord(y2), "stroke": stroke, "class": css,
            "stroke_width": stroke_width, "dasharray": dasharray}


def split_colour(name: str) -> str:
    return SPLIT_COLOUR.get(name, OTHER_COLOUR)


def stage_chart(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars: one per stage, its length the stage's seconds; an axis of seconds below."""
    width, label_w, value_w, bar_h, gap, top = 900, 90, 190, 18, 7, 6
    area = width - label_w - value_w
    longest = max((float(s.get("seconds") or 0) for s in stages), default=0) or 1.0
    height = top + len(stages) * (bar_h + gap) + 22
    bars = []
    for i, stage in enumerate(stages):
        seconds = float(stage.get("seconds") or 0)
        y = top + i * (bar_h + gap)
        bar_w = max(1.5, area * seconds / longest)
        rows = "" if stage.get("rows") is None else f" · {fmt_int(stage.get('rows'))} written"
        status = "" if stage.get("status") == "ok" else f" · {stage.get('status')}"
        value = f"{fmt_seconds(seconds)}{rows}{status}"
        # the tip says where the rows went and what the stage read
        where = f" to {stage['table']}" if stage.get("table") and stage.get("rows") is not None else ""
        read = f"; {fmt_int(stage['read'])} {stage.get('read_what', 'read')}" if stage.get("read") is not None else ""
        bars.append({
            "tip": f"{stage.get('stage')}: {value}{where}{read}",
            "label": svg_text(label_w - 8, y + bar_h - 4, stage.get("stage"), "end", 13),
            "bar": svg_rect(label_w, y, float(bar_w), bar_h, STAGE_COLOUR.get(str(stage.get("status")), AXIS),
                            rx=2),
            "value": svg_text(label_w + bar_w + 6, y + bar_h - 4, value, "start", 12),
        })
    axis_y = top + len(stages) * (bar_h + gap) + 2
    lines = [svg_line(label_w, axis_y, label_w + area, axis_y)]
    texts = []
    for fraction in (0, 0.5, 1):
        x = float(label_w + area * fraction)
        lines.append(svg_line(x, axis_y, x, axis_y + 4))
        texts.append(svg_text(x, axis_y + 16, fmt_seconds(longest * fraction) if fraction else "0",
                              "start" if fraction == 0 else "middle", 11, MUTED))
    return {"width": width, "height": height, "bars": bars, "lines": lines, "texts": texts}


def split_timeline(splits: list[dict[str, Any]]) -> dict[str, Any]:
    """The splits in time order, each span as wide as its rows (kept, purged, gap); the cut-offs
    (where val and test start) labelled above the bar, on two rows when they crowd."""
    width, pad, bar_y, bar_h = 1240, 16, 62, 38
    area = width - 2 * pad
    spans = [(split, int(split.get("row_count") or 0), int(split.get("purged_row_count") or 0),
              int(split.get("gap_row_count") or 0)) for split in splits]
    total = sum(k + p + g for _, k, p, g in spans) or 1
    x = float(pad)
    cuts: list[tuple[float, str]] = []
    groups = []
    for index, (split, kept, purged, gap) in enumerate(spans):
        name = str(split.get("split"))
        colour = split_colour(name)
        censored = int(split.get("censored_row_count") or 0)
        if index > 0:
            cuts.append((x, f"{name} from {fmt_time(split.get('starts_at'), seconds=False)}"
                            if split.get("starts_at") else f"{name}: empty"))
        kept_w, purged_w, gap_w = (area * n / total for n in (kept, purged, gap))
        tip = (f"{name}: {kept:,} rows ({fmt_fraction(split.get('fraction'))}, target "
               f"{fmt_fraction(split.get('target_fraction'))}); purged {purged:,}; gap {gap:,}; "
               f"censored {censored:,}")
        rects, texts = [], []
        if kept_w > 0:
            rects.append(svg_rect(x, bar_y, kept_w, bar_h, colour))
            if censored and kept:
                cw = kept_w * min(censored, kept) / kept
                rects.append(svg_rect(x + kept_w - cw, bar_y, cw, bar_h, "url(#tl-censored)"))
        if purged_w > 0:
            rects.append(svg_rect(x + kept_w, bar_y, purged_w, bar_h, "url(#tl-purged)", stroke=colour,
                                  stroke_width="1"))
        if gap_w > 0:
            rects.append(svg_rect(x + kept_w + purged_w, bar_y, gap_w, bar_h, "url(#tl-gap)"))
        if kept_w >= 34:
            centre = x + kept_w / 2
            texts.append(svg_text(centre, bar_y + 16, name, "middle", 13, WHITE, "600"))
            if kept_w >= 60:
                texts.append(svg_text(centre, bar_y + 31, fmt_fraction(split.get("fraction")), "middle", 11, WHITE))
        groups.append({"name": name, "tip": tip, "rects": rects, "texts": texts})
        x += area * (kept + purged + gap) / total
    markers = []
    last_x, row = -1e9, 0
    for cut_x, label in cuts:
        row = 1 - row if cut_x - last_x < 230 else 0
        label_y = 20 + row * 17
        last_x = cut_x
        anchor = "start" if cut_x < pad + 110 else "end" if cut_x > width - pad - 110 else "middle"
        markers.append({
            "line": svg_line(cut_x, label_y + 4, cut_x, bar_y + bar_h + 6, INK, css="cutoff",
                             stroke_width="1.5", dasharray="3 2"),
            "label": svg_text(cut_x, label_y, label, anchor, 12, INK, "600"),
        })
    axis_y = bar_y + bar_h + 20
    axis = [svg_text(pad, axis_y, "← earlier feature times", "start", 11, MUTED),
            svg_text(width - pad, axis_y, "later →", "end", 11, MUTED)]
    return {"width": width, "height": axis_y + 8, "groups": groups, "markers": markers, "axis": axis}


def histogram(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Bars per bin, one per split side by side, each the share of its split's rows in the bin
    (so splits of different sizes compare); the bin edges on the axis."""
    edges = [float(e) for e in data.get("edges") or []]
    counts = data.get("counts") or {}
    series = [s for s in SPLITS if sum(counts.get(s) or []) > 0] or (["all"] if sum(counts.get("all") or []) else [])
    bins = len(edges) - 1
    width, height, left, right, top, bottom = 380, 150, 36, 10, 8, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    chart: dict[str, Any] = {"name": name, "width": width, "height": height, "bars": [], "lines": [], "texts": []}
    if bins < 1 or not series:
        chart["texts"].append(svg_text(width / 2, height / 2, "no values", "middle", 12, MUTED))
        return chart
    shares = {s: [c / sum(counts[s]) for c in counts[s][:bins]] for s in series}
    peak = max(max(v) for v in shares.values()) or 1.0
    bin_w = plot_w / bins
    bar_w = max(1.0, (bin_w - 2) / len(series))
    for b in range(bins):
        for k, s in enumerate(series):
            share = shares[s][b] if b < len(shares[s]) else 0.0
            h = plot_h * share / peak
            tip = f"{s}: {fmt_fraction(share)} of its rows in [{fmt_number(edges[b])}, {fmt_number(edges[b + 1])})"
            chart["bars"].append(svg_rect(float(left + b * bin_w + 1 + k * bar_w), float(top + plot_h - h),
                                          float(bar_w), float(h), split_colour(s), tip=tip))
    base = top + plot_h
    chart["lines"] = [svg_line(left, base, left + plot_w, base), svg_line(left, top, left, base)]
    texts = [svg_text(left - 4, top + 9, fmt_fraction(peak, 0), "end", 10, MUTED),
             svg_text(left - 4, base, "0", "end", 10, MUTED),
             svg_text(left, base + 14, fmt_number(edges[0]), "start", 10, MUTED),
             svg_text(left + plot_w, base + 14, fmt_number(edges[-1]), "end", 10, MUTED)]
    if bins >= 2:
        mid = bins // 2
        texts.append(svg_text(left + mid * bin_w, base + 14, fmt_number(edges[mid]), "middle", 10, MUTED))
    chart["texts"] = texts
    return chart


def label_balance(by_split: dict[str, Any]) -> dict[str, Any]:
    """One stacked bar per split (positive, negative, censored), each as wide as the split's rows
    allow in the plot, with the positive rate beside it."""
    width, label_w, bar_h, gap, area = 1000, 70, 20, 8, 560
    # the splits in time order, then whatever else the profile counts (purged rows, all rows)
    names = [s for s in SPLITS if s in by_split] + sorted(s for s in by_split if s not in SPLITS and s != "all")
    names += ["all"] if "all" in by_split else []
    rows = []
    for i, name in enumerate(names):
        entry = by_split.get(name) or {}
        total = int(entry.get("rows") or 0)
        positive = int(entry.get("positive") or 0)
        censored = int(entry.get("censored") or 0)
        negative = (int(entry["negative"]) if entry.get("negative") is not None
                    else max(0, total - positive - censored))
        labelled = positive + negative
        y = 2 + i * (bar_h + gap)
        x = float(label_w)
        rects = []
        for count, fill, what in ((positive, POSITIVE, "positive"), (negative, NEGATIVE, "negative"),
                                  (censored, "url(#lb-censored)", "censored")):
            w = area * count / total if total else 0
            if w > 0:
                rects.append(svg_rect(x, y, float(w), bar_h, fill, tip=f"{name}: {count:,} {what}",
                                      stroke=WHITE, stroke_width="0.5"))
            x += w
        rate = (f"{fmt_fraction(positive / labelled)} positive of {labelled:,} labelled" if labelled
                else "no labelled rows")
        rows.append({"label": svg_text(label_w - 8, y + bar_h - 5, name, "end", 13), "rects": rects,
                     "rate": svg_text(label_w + area + 8, y + bar_h - 5,
                                      rate + (f" · {censored:,} censored" if censored else ""), "start", 12)})
    return {"width": width, "height": len(names) * (bar_h + gap) + 4, "rows": rows}
