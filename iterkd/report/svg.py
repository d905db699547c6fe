"""Small inline-SVG charts for the HTML reports: a line chart, horizontal bars and a histogram.

Written here rather than with a plotting library so that a report needs nothing beyond the
standard library and renders the same with or without matplotlib; each chart is one `<svg>`
element with a `<title>` (read by screen readers and shown as a tooltip) and no external
reference (not even an xmlns URL: inline SVG in HTML needs none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'

Point = tuple[float, float | None]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about `count` of them (1-2-5 steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) * 0.1 or 0.5), hi + (abs(hi) * 0.1 or 0.5)
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= step * m)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def fmt(value: float) -> str:
    return f"{value:.4g}"


def line_chart(
    series: dict[str, Sequence[Point]],
    *,
    title: str,
    x_labels: Sequence[str] | None = None,
    y_range: tuple[float, float] | None = None,
    width: int = 560,
    height: int = 260,
) -> str:
    """One polyline per series; a None value breaks its line. With `x_labels`, x values are
    indexes into them (rounds); otherwise they are numbers (training steps)."""
    points = [(x, y) for pts in series.values() for x, y in pts if y is not None]
    if not points:
        return empty_chart(title, width, "no data")
    xs = [x for x, _ in points] + ([0, len(x_labels) - 1] if x_labels else [])
    ys = [y for _, y in points]
    y_ticks = nice_ticks(*(y_range or (min(ys), max(ys))))
    frame = _Frame(width, height, (min(xs), max(xs)), (y_ticks[0], y_ticks[-1]))
    parts = [_open(width, height, title), *frame.y_axis(y_ticks), *frame.x_axis(xs, x_labels)]
    for i, (name, pts) in enumerate(series.items()):
        parts += _polyline(frame, pts, PALETTE[i % len(PALETTE)], name)
    parts += _legend(list(series), width)
    return "".join(parts) + "</svg>"


def bar_chart(
    items: Sequence[tuple[str, float]], *, title: str, width: int = 560, unit: str = ""
) -> str:
    """Horizontal bars, one per (label, value), in the given order, each labelled with its value."""
    if not items:
        return empty_chart(title, width, "no data")
    row, left, top = 20, 130, 28
    height = top + row * len(items) + 10
    peak = max((v for _, v in items), default=0) or 1
    span = width - left - 70
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(items):
        y = top + i * row
        length = max(span * value / peak, 0)
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" {FONT}>{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {fmt(value)}{unit}</title></rect>'
            f'<text x="{left + length + 4:.1f}" y="{y + 13}" {FONT}>{fmt(value)}{unit}</text>'
        )
    return "".join(parts) + "</svg>"


def histogram(
    counts: Sequence[int], *, title: str, lo: float = 0.0, hi: float = 1.0, width: int = 260
) -> str:
    """Vertical bars over equal bins of [lo, hi]; the count axis starts at 0."""
    height = 170
    ticks = nice_ticks(0, max(max(counts, default=0), 1), 4)
    frame = _Frame(width, height, (lo, hi), (0, ticks[-1]))
    parts = [_open(width, height, title), *frame.y_axis(ticks)]
    parts += frame.x_axis([lo, (lo + hi) / 2, hi], None)
    step = (hi - lo) / max(len(counts), 1)
    for i, count in enumerate(counts):
        x0, x1 = frame.x(lo + i * step), frame.x(lo + (i + 1) * step)
        y = frame.y(count)
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
            f'height="{frame.y(0) - y:.1f}" fill="{PALETTE[0]}"><title>'
            f"{fmt(lo + i * step)}-{fmt(lo + (i + 1) * step)}: {count}</title></rect>"
        )
    return "".join(parts) + "</svg>"


def empty_chart(title: str, width: int, message: str) -> str:
    return (
        _open(width, 60, title)
        + f'<text x="{width / 2}" y="42" text-anchor="middle" fill="#6b7280" {FONT}>'
        + f"{escape(message)}</text></svg>"
    )


# ------------------------------------------------------------------ pieces
class _Frame:
    """The plotting area of a chart and the data -> pixel mapping."""

    left, right, top, bottom = 48, 16, 40, 30

    def __init__(
        self, width: int, height: int, x_span: tuple[float, float], y_span: tuple[float, float]
    ) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = x_span if x_span[1] > x_span[0] else (x_span[0] - 1, x_span[0] + 1)
        self.y0, self.y1 = y_span if y_span[1] > y_span[0] else (y_span[0], y_span[0] + 1)

    def x(self, value: float) -> float:
        span = self.width - self.left - self.right
        return self.left + span * (value - self.x0) / (self.x1 - self.x0)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return self.height - self.bottom - span * (value - self.y0) / (self.y1 - self.y0)

    def y_axis(self, ticks: Sequence[float]) -> list[str]:
        out = []
        for tick in ticks:
            y = self.y(tick)
            out.append(
                f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="#e5e7eb"/><text x="{self.left - 6}" y="{y + 4:.1f}" '
                f'text-anchor="end" {FONT}>{fmt(tick)}</text>'
            )
        return out

    def x_axis(self, xs: Sequence[float], labels: Sequence[str] | None) -> list[str]:
        base = self.height - self.bottom
        out = [
            f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{base}" y2="{base}" '
            'stroke="#9ca3af"/>'
        ]
        ticks = range(len(labels)) if labels else sorted(set(_x_ticks(xs)))
        for tick in ticks:
            text = labels[int(tick)] if labels else fmt(tick)
            out.append(
                f'<text x="{self.x(tick):.1f}" y="{base + 16}" text-anchor="middle" {FONT}>'
                f"{escape(text)}</text>"
            )
        return out


def _x_ticks(xs: Sequence[float]) -> list[float]:
    lo, hi = min(xs), max(xs)
    return [t for t in nice_ticks(lo, hi, 6) if lo <= t <= hi] or [lo]


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="plot" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
        f'<text x="8" y="16" font-weight="600" {FONT}>{escape(title)}</text>'
    )


def _polyline(frame: _Frame, points: Sequence[Point], color: str, name: str) -> list[str]:
    out, run = [], []
    for x, y in [*points, (math.nan, None)]:  # the sentinel flushes the last segment
        if y is None:
            if len(run) > 1:
                out.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(run)}"/>'
                )
            run = []
            continue
        px, py = frame.x(x), frame.y(y)
        run.append(f"{px:.1f},{py:.1f}")
        out.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}">'
            f"<title>{escape(name)}: {fmt(y)}</title></circle>"
        )
    return out


def _legend(names: Sequence[str], width: int) -> list[str]:
    out, x = [], width - 8
    for i, name in reversed(list(enumerate(names))):
        x -= 7 * len(name) + 22
        out.append(
            f'<rect x="{x}" y="22" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="31" {FONT}>{escape(name)}</text>'
        )
    return out
