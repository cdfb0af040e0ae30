"""Server-rendered SVG charts for the monitoring dashboard (no JavaScript charting).

``quality_chart`` draws one scorer's buckets: its pass rate (0-100 %) or mean value as a line with
dots, the volume of results as light bars on their own scale, and buckets with errors marked by red
triangles under the axis. Every text is escaped before the markup is marked safe; the chart is an
``img`` for assistive technology, with a ``<title>`` and a ``<desc>`` summing it up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 250
LEFT, RIGHT, TOP, BOTTOM = 52, 44, 40, 46
VOLUME_SHARE = 0.4  # the volume bars use the lower 40 % of the plot: a backdrop to the line, not a rival
LINE, VOLUME, ERROR, GRID, TEXT = "#2456c9", "#dfe6f2", "#b42318", "#e6e9ee", "#5f6b7a"


@dataclass(frozen=True)
class ChartPoint:
    """One bucket: its start, its value (a 0-1 rate or a mean; None when nothing counted), volume and errors."""

    start: datetime
    value: float | None
    volume: int
    errors: int


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' if count != 1 else ''}"


def _text(
    x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11, fill: str = TEXT, **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{extra}>'
        f"{escape(text)}</text>"
    )


def nice_ticks(low: float, high: float, intervals: int = 5) -> list[float]:
    """Round tick values covering ``low``..``high`` in at most ``intervals`` steps of 1, 2, 2.5 or 5 × 10ⁿ."""
    if high <= low:
        high = low + 1
    raw = (high - low) / intervals
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        first, last = math.floor(low / step) * step, math.ceil(high / step) * step
        if (last - first) / step <= intervals + 1e-9:
            break
    return [round(first + i * step, 10) for i in range(round((last - first) / step) + 1)]


def format_value(value: float, *, rate: bool) -> str:
    if rate:
        return f"{value * 100:.0f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def _bucket_label(start: datetime, unit: str, *, long: bool = False) -> str:
    local = timezone.localtime(start)
    if unit == "hour":
        return f"{local:%b} {local.day}, {local:%H}:00" if long else f"{local:%H}:00"
    return f"{local:%a %b} {local.day}" if long else f"{local:%b} {local.day}"


def _label_every(count: int, unit: str) -> int:
    if unit == "hour":
        return 4 if count > 12 else 1
    return 1 if count <= 10 else 5


def quality_chart(
    points: Sequence[ChartPoint], *, title: str, unit: str, rate: bool = True, chart_id: str = "chart"
) -> SafeString:
    """The SVG markup of one scorer's chart. ``unit`` is "hour" or "day"; ``rate`` picks a 0-100 % axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    values = [p.value for p in points if p.value is not None]
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if rate else nice_ticks(min([0.0, *values]), max([1e-9, *values]))
    low, high = ticks[0], ticks[-1]

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low) * plot_h

    n = max(len(points), 1)
    slot = plot_w / n
    max_volume = max((p.volume for p in points), default=0)
    total = sum(p.volume for p in points)
    errors = sum(p.errors for p in points)
    what = "pass rate" if rate else "mean value"
    per = "hour" if unit == "hour" else "day"
    summary = f"{what.capitalize()} per {per}: {_plural(total, 'result')}, {_plural(errors, 'error')}"
    if values:
        summary += f"; {what} from {format_value(min(values), rate=rate)} to {format_value(max(values), rate=rate)}"
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="quality-chart" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" aria-label="{escape(title)}: {escape(summary)}" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(summary)}.</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        _text(8, 18, title, anchor="start", size=13, fill="#1d2330", font_weight="600"),
    ]
    # the legend, top right
    legend_x = WIDTH - RIGHT
    parts += [
        f'<rect x="{legend_x - 208}" y="10" width="10" height="10" fill="{VOLUME}"/>',
        _text(legend_x - 194, 19, "results", anchor="start", size=10),
        f'<line x1="{legend_x - 146}" y1="15" x2="{legend_x - 130}" y2="15" stroke="{LINE}" stroke-width="2.5"/>',
        _text(legend_x - 126, 19, what, anchor="start", size=10),
        f'<path d="M{legend_x - 50} 20 l5 -9 l5 9 z" fill="{ERROR}"/>',
        _text(legend_x - 36, 19, "errors", anchor="start", size=10),
    ]
    # grid and y axis (the rate or value)
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT}" y1="{_num(y)}" x2="{LEFT + plot_w}" y2="{_num(y)}" stroke="{GRID}"/>')
        parts.append(_text(LEFT - 6, y + 4, format_value(tick, rate=rate), anchor="end", size=10))
    # the volume scale on the right
    if max_volume:
        top_bar = bottom - plot_h * VOLUME_SHARE
        parts.append(
            f'<line x1="{LEFT + plot_w}" y1="{_num(top_bar)}" x2="{LEFT + plot_w + 3}" y2="{_num(top_bar)}" '
            'stroke="#9aa4b2"/>'
        )
        parts.append(_text(LEFT + plot_w + 5, top_bar + 4, f"{max_volume:,}", anchor="start", size=10))
        parts.append(_text(LEFT + plot_w + 4, bottom + 4, "0", anchor="start", size=10))
    # volume bars (behind), error marks and x labels
    every = _label_every(len(points), unit)
    for i, p in enumerate(points):
        x = LEFT + i * slot
        label = _bucket_label(p.start, unit, long=True)
        if p.volume and max_volume:
            h = p.volume / max_volume * plot_h * VOLUME_SHARE
            parts.append(
                f'<rect x="{_num(x + slot * 0.15)}" y="{_num(bottom - h)}" width="{_num(slot * 0.7)}" '
                f'height="{_num(h)}" fill="{VOLUME}">'
                f"<title>{escape(label)}: {_plural(p.volume, 'result')}</title></rect>"
            )
        if p.errors:
            cx = x + slot / 2
            parts.append(
                f'<path d="M{_num(cx - 5)} {bottom + 13} l5 -9 l5 9 z" fill="{ERROR}" class="error-mark">'
                f"<title>{escape(label)}: {_plural(p.errors, 'error')}</title></path>"
            )
        if i % every == 0:
            parts.append(_text(x + slot / 2, bottom + 30, _bucket_label(p.start, unit), size=10))
    parts.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + plot_w}" y2="{bottom}" stroke="#9aa4b2"/>')
    # the line: segments between buckets that have a value, a dot on each
    segment: list[str] = []
    segments: list[list[str]] = []
    dots = []
    for i, p in enumerate(points):
        if p.value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        cx, cy = LEFT + (i + 0.5) * slot, y_of(p.value)
        segment.append(f"{_num(cx)},{_num(cy)}")
        label = _bucket_label(p.start, unit, long=True)
        dots.append(
            f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="3.5" fill="#fff" stroke="{LINE}" stroke-width="2">'
            f"<title>{escape(label)}: {escape(format_value(p.value, rate=rate))} {escape(what)} of "
            f"{_plural(p.volume, 'result')}, {_plural(p.errors, 'error')}</title></circle>"
        )
    if segment:
        segments.append(segment)
    for points_text in segments:
        parts.append(
            f'<polyline points="{" ".join(points_text)}" fill="none" stroke="{LINE}" stroke-width="2.5" '
            'stroke-linejoin="round" stroke-linecap="round"/>'
        )
    parts += dots
    if not total:
        parts.append(_text(LEFT + plot_w / 2, TOP + plot_h / 2, "No results in this window", size=13))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above went through escape()
