"""Inline SVG drawn in Python: a check's series in one region, and the rollout timeline.

No plotting library: the report must open anywhere with nothing installed and no
network, and the two figures it needs are simple. Plots take the buckets of
``guardrail.report.data`` (min and max per horizontal pixel), so a 200k-sample
series costs the same few kilobytes as a short one, and a one-sample spike still
shows. Every text that reaches the SVG goes through ``html.escape``.

Classes the page's CSS (and the browser tests) rely on: ``plot``, ``series``,
``threshold``, ``reference``, ``band``, ``breach``, ``status-strip``; ``timeline``,
``span-<kind>``, ``mark-<tone>``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape
from typing import Iterable

from guardrail.report.data import PLOT_BUCKETS, Bucket, fmt
from guardrail.report.timeline import INCIDENT_STATUSES, WAVES_ROW, Mark, Span

STATUS_COLOURS = {0: "#2e7d32", 1: "#e0a100", 2: "#8d8d8d", 3: "#c62828"}
_TIME_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def clock(at: float, seconds: bool = False) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S" if seconds else "%H:%M")


def time_ticks(start: float, end: float, most: int) -> list[tuple[float, str]]:
    """(time, label) of at most ``most`` round times; labels show seconds when ticks do."""
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    times = [first + i * step for i in range(int((end - first) // step) + 1)]
    return [(t, clock(t, seconds=step < 60)) for t in times]


def value_ticks(low: float, high: float, most: int = 4) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


class _Scale:
    def __init__(self, start: float, end: float, left: float, width: float, low: float, high: float,
                 top: float, height: float):
        self.start, self.span = start, max(end - start, 1e-9)
        self.left, self.width, self.low, self.high = left, width, low, max(high, low + 1e-12)
        self.top, self.height = top, height

    def x(self, t: float) -> float:
        return self.left + (t - self.start) / self.span * self.width

    def y(self, v: float) -> float:
        v = min(max(v, self.low), self.high)  # off-scale values (inf) sit on the edge
        return self.top + (self.high - v) / (self.high - self.low) * self.height


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _y_range(buckets: list[Bucket]) -> tuple[float, float]:
    values = _finite(v for b in buckets for v in (b.low, b.high, b.threshold, b.reference))
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if low >= 0:
        low = 0.0  # counts, rates and ratios read best from zero
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    return (low - pad if low < 0 else low), high + pad


def _series_path(buckets: list[Bucket], scale: _Scale) -> str:
    """One sub-path per run of valued buckets; within a bucket min and max, ordered to
    continue from the previous point (no needless zig-zag)."""
    parts: list[str] = []
    previous: float | None = None
    command = "M"
    for b in buckets:
        if b.low is None or b.high is None:
            command, previous = "M", None
            continue
        x = _n(scale.x((b.start + b.end) / 2))
        pair = [b.low, b.high] if b.low == b.high or previous is None or abs(previous - b.low) <= abs(
            previous - b.high) else [b.high, b.low]
        for value in (pair[:1] if b.low == b.high else pair):
            parts.append(f"{command}{x},{_n(scale.y(value))}")
            command = "L"
        previous = pair[-1]
    return " ".join(parts)


def _line_path(points: list[tuple[float, float | None]], scale: _Scale) -> str:
    """A step line through (time, value) points; None breaks it."""
    parts, command, last_y = [], "M", None
    for t, v in points:
        if v is None or not math.isfinite(v):
            command, last_y = "M", None
            continue
        x, y = _n(scale.x(t)), _n(scale.y(v))
        if last_y is not None and last_y != y:
            parts.append(f"L{x},{last_y}")
        parts.append(f"{command}{x},{y}")
        command, last_y = "L", y
    return " ".join(parts)


def _band_path(buckets: list[Bucket], scale: _Scale) -> str:
    """The area between reference and threshold: where a value may move and still pass."""
    out, run = [], []
    for b in buckets + [None]:
        if b is not None and b.reference is not None and b.threshold is not None and math.isfinite(
                b.reference) and math.isfinite(b.threshold):
            run.append(b)
            continue
        if run:
            xs = [scale.x(run[0].start)] + [scale.x((r.start + r.end) / 2) for r in run] + [scale.x(run[-1].end)]
            top = [run[0].threshold] + [r.threshold for r in run] + [run[-1].threshold]
            bottom = [run[0].reference] + [r.reference for r in run] + [run[-1].reference]
            forward = " L".join(f"{_n(x)},{_n(scale.y(v))}" for x, v in zip(xs, top))
            back = " L".join(f"{_n(x)},{_n(scale.y(v))}" for x, v in zip(reversed(xs), reversed(bottom)))
            out.append(f"M{forward} L{back} Z")
            run = []
    return " ".join(out)


def check_plot(buckets: list[Bucket], *, start: float, end: float, check: str, region: str, status: str,
               spans: list[Span], breach_at: float | None, failed_at: float | None, failed_value: float | None,
               reference_label: str | None, height: int = 170) -> str:
    """One check in one region: series, threshold, reference band, phases, breach, status strip.
    The drawing area is ``PLOT_BUCKETS`` units wide: one data bucket per unit."""
    left, right, top, bottom = 52, 12, 10, 36
    pw, ph = PLOT_BUCKETS, height - top - bottom
    width = left + pw + right
    low, high = _y_range(buckets)
    s = _Scale(start, end, left, pw, low, high, top, ph)
    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" role="img" data-check="{_a(check)}" '
           f'data-region="{_a(region)}" data-status="{_a(status)}" '
           f'aria-label="{_a(f"{check} in {region}: {status}")}" xmlns="http://www.w3.org/2000/svg">']
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>')
    for span in spans:  # phases behind everything
        if span.kind in ("bake", "recovery", "rollback"):
            x0, x1 = s.x(span.start), max(s.x(span.end), s.x(span.start) + 1.5)
            out.append(f'<rect class="phase phase-{span.kind}" x="{_n(x0)}" y="{top}" width="{_n(x1 - x0)}" '
                       f'height="{ph}"><title>{escape(span.label)}</title></rect>')
    for v in value_ticks(low, high):
        y = _n(s.y(v))
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y}" y2="{y}"/>'
                   f'<text class="axis" x="{left - 4}" y="{y}" text-anchor="end" dy="3">{escape(fmt(v))}</text>')
    for t, label in time_ticks(start, end, 5):
        x = _n(s.x(t))
        out.append(f'<text class="axis" x="{x}" y="{top + ph + 20}" text-anchor="middle">{label}</text>')
    band = _band_path(buckets, s)
    if band:
        out.append(f'<path class="band" d="{band}"><title>allowed: between {escape(reference_label or "reference")}'
                   f' and the threshold</title></path>')
    reference = _line_path([(b.start, b.reference) for b in buckets] + [(buckets[-1].end, buckets[-1].reference)]
                           if buckets else [], s)
    if reference:
        out.append(f'<path class="reference" d="{reference}"><title>{escape(reference_label or "reference")}'
                   f'</title></path>')
    threshold = _line_path([(b.start, b.threshold) for b in buckets] + [(buckets[-1].end, buckets[-1].threshold)]
                           if buckets else [], s)
    if threshold:
        out.append(f'<path class="threshold" d="{threshold}"><title>threshold</title></path>')
    series = _series_path(buckets, s)
    if series:
        values = _finite(v for b in buckets for v in (b.low, b.high))
        out.append(f'<path class="series" d="{series}"><title>{escape(region)}: {escape(fmt(min(values)))} … '
                   f'{escape(fmt(max(values)))}</title></path>')
    else:
        out.append(f'<text class="nodata" x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">'
                   f'no values: every evaluation was without data</text>')
    if breach_at is not None:
        x = _n(s.x(breach_at))
        out.append(f'<line class="breach" x1="{x}" x2="{x}" y1="{top}" y2="{top + ph}">'
                   f'<title>breach from {clock(breach_at, True)}</title></line>')
    if failed_at is not None:
        y = s.y(failed_value) if failed_value is not None and math.isfinite(failed_value) else top + ph / 2
        out.append(f'<circle class="breach fail-point" cx="{_n(s.x(failed_at))}" cy="{_n(y)}" r="4.5">'
                   f'<title>failed at {clock(failed_at, True)}: {escape(fmt(failed_value))}</title></circle>')
    out.append(_status_strip(buckets, s, top + ph + 2))
    out.append("</svg>")
    return "".join(out)


def _status_strip(buckets: list[Bucket], s: _Scale, y: float) -> str:
    """A 5-unit strip under the plot: each evaluation's verdict (the worst per pixel) holds
    until the next one, unless the next is far away (a halt, a gap between phases)."""
    gaps = sorted(b.start - a.start for a, b in zip(buckets, buckets[1:]))
    longest = 5 * gaps[len(gaps) // 2] if gaps else 0.0
    out, run = ['<g class="status-strip">'], None
    for b, following in zip(buckets, buckets[1:] + [None]):
        x0 = s.x(b.start)
        reach = following.start if following is not None and following.start - b.start <= longest else b.end
        x1 = max(s.x(reach), x0 + 1)
        if run and run[2] == b.worst and x0 - run[1] < 0.5:
            run[1] = x1
        else:
            if run:
                out.append(_strip_rect(run, y))
            run = [x0, x1, b.worst]
    if run:
        out.append(_strip_rect(run, y))
    out.append("</g>")
    return "".join(out)


def _strip_rect(run: list, y: float) -> str:
    return (f'<rect x="{_n(run[0])}" y="{_n(y)}" width="{_n(max(run[1] - run[0], 1))}" height="5" '
            f'fill="{STATUS_COLOURS[run[2]]}"/>')


def timeline(rows: list[tuple[str, str]], spans: list[Span], marks: list[Mark], *, start: float, end: float,
             width: int = 1100) -> str:
    """The rollout: one row per region (labelled with its wave) under a row of wave bakes,
    spans for deploy, bake, rollback and recovery, and decisions as vertical lines."""
    left, right, row_h, top = 130, 16, 26, 52
    all_rows = [(WAVES_ROW, "waves")] + rows
    height = top + row_h * len(all_rows) + 26
    s = _Scale(start, end, left, width - left - right, 0, 1, top, row_h * len(all_rows))
    y_of = {name: top + i * row_h for i, (name, _) in enumerate(all_rows)}
    out = [f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" aria-label="rollout timeline" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for i, (name, label) in enumerate(all_rows):
        y = y_of[name]
        out.append(f'<rect class="row{" odd" if i % 2 else ""}" x="{left}" y="{y}" width="{width - left - right}" '
                   f'height="{row_h}"/><text class="row-label" x="{left - 8}" y="{y + row_h / 2 + 4}" '
                   f'text-anchor="end">{escape(label)}</text>')
    for t, label in time_ticks(start, end, 10):
        x = _n(s.x(t))
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top}" y2="{top + row_h * len(all_rows)}"/>'
                   f'<text class="axis" x="{x}" y="{height - 8}" text-anchor="middle">{label}</text>')
    inset = {"version": (16, 5), "bake": (4, 10), "recovery": (4, 10), "deploy": (2, 14), "rollback": (2, 14)}
    order = ("version", "bake", "recovery", "deploy", "rollback")
    for span in sorted((sp for sp in spans if sp.row in y_of), key=lambda sp: order.index(sp.kind)):
        offset, h = inset[span.kind]
        x0 = s.x(span.start)
        w = max(s.x(span.end) - x0, 5 if span.kind in ("deploy", "rollback") else 2)
        cls = f"span span-{span.kind}" + ("" if span.ok else " span-failed")
        out.append(f'<rect class="{cls}" x="{_n(x0)}" y="{y_of[span.row] + offset}" width="{_n(w)}" height="{h}" '
                   f'rx="2"><title>{escape(span.label)}: {clock(span.start, True)}–{clock(span.end, True)}'
                   f'</title></rect>')
        if span.row == WAVES_ROW and w > 60:
            out.append(f'<text class="span-label" x="{_n(x0 + 5)}" y="{y_of[span.row] + 17}">'
                       f'{escape(span.label)}</text>')
    busy = {sp.row for sp in spans}
    for name, _ in rows:
        if name not in busy:
            out.append(f'<text class="idle" x="{left + 6}" y="{y_of[name] + row_h / 2 + 4}">not deployed</text>')
    out += _marks(marks, s, y_of, top, row_h * len(all_rows))
    out.append("</svg>")
    return "".join(out)


def _marks(marks: list[Mark], s: _Scale, y_of: dict[str, float], top: float, rows_h: float) -> list[str]:
    out, lanes = [], [-1e9, -1e9, -1e9]
    for mark in sorted(marks, key=lambda m: m.at):
        x = s.x(mark.at)
        if mark.row is not None:
            if mark.row in y_of:
                y = y_of[mark.row] + 13
                out.append(f'<path class="mark mark-{mark.tone} action" d="M{_n(x)},{_n(y - 5)} l5,5 l-5,5 l-5,-5 Z">'
                           f'<title>{clock(mark.at, True)} {escape(mark.label)}</title></path>')
            continue
        out.append(f'<line class="mark mark-{mark.tone}" x1="{_n(x)}" x2="{_n(x)}" y1="{top - 4}" '
                   f'y2="{_n(top + rows_h)}"><title>{clock(mark.at, True)} {escape(mark.label)}</title></line>')
        text = "incident " + mark.kind.split(".", 1)[1] if mark.kind in INCIDENT_STATUSES else mark.short
        length = 6.5 * len(text)
        flip = x + length > s.left + s.width  # near the right edge the label ends at its line
        x0 = x - 3 - length if flip else x + 3
        lane = next((i for i, free in enumerate(lanes) if x0 > free), None)
        if lane is None:
            continue  # three labels already crowd this instant; the line and its tooltip remain
        lanes[lane] = x0 + length + 8
        anchor = ' text-anchor="end"' if flip else ""
        out.append(f'<text class="mark-label mark-{mark.tone}" x="{_n(x - 3 if flip else x + 3)}" '
                   f'y="{_n(top - 8 - 13 * lane)}"{anchor}>{escape(text)}<title>{escape(mark.label)}</title></text>')
    return out
