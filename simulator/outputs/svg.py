"""Inline SVG charts for report.html, generated in Python: no CDN, no JavaScript, no plotting dependency.

Three kinds: a time line chart (values per second), the HdrHistogram percentile plot (x = percentile on a
1/(1-p) log axis, as HistogramLogAnalyzer draws it) and a horizontal bar chart (funnel, status codes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["PALETTE", "Series", "bar_chart", "line_chart", "nice_ticks", "percentile_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
# (label, points); a None y breaks the line (no value that second).
Series = tuple[str, Sequence[tuple[float, float | None]]]

_W, _H = 880, 280
_GLYPH_PX = 7.0  # width of one tick-label glyph: 11 px DejaVu Sans runs ~7 px a glyph
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 30, 44


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    # Up to the first tick at or past `hi`: the last tick is the axis end, so no point is drawn beyond the
    # frame (stopping within half a step of `hi` cut a 32 s run's axis at 30 with curves running past it).
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 10))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(title: str, body: list[str], x_label: str, y_label: str, height: int) -> str:
    return "\n".join(
        [
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" '
            f'width="{_W}" height="{height}" role="img" aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>",
            f'<text x="{_W / 2}" y="18" text-anchor="middle" class="t">{escape(title)}</text>',
            *body,
            f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{height - 6}" text-anchor="middle" class="a">'
            f"{escape(x_label)}</text>",
            f'<text x="14" y="{height / 2}" text-anchor="middle" class="a" '
            f'transform="rotate(-90 14 {height / 2})">{escape(y_label)}</text>',
            "</svg>",
        ]
    )


def _axes(xt: Sequence[tuple[float, str]], yt: Sequence[tuple[float, str]], height: int) -> list[str]:
    """Grid lines and labels; tick positions are already in pixels."""
    out = []
    bottom = height - _BOTTOM
    for px, label in yt:
        out.append(f'<line x1="{_LEFT}" y1="{px:.1f}" x2="{_W - _RIGHT}" y2="{px:.1f}" class="g"/>')
        out.append(
            f'<text x="{_LEFT - 6}" y="{px + 4:.1f}" text-anchor="end" class="k">{escape(label)}</text>'
        )
    for px, label in xt:
        out.append(f'<line x1="{px:.1f}" y1="{_TOP}" x2="{px:.1f}" y2="{bottom}" class="g"/>')
        # A label centred on the last tick ran past the chart's right edge ("1,200", "99.999%" were cut):
        # one that would not fit ends at its tick instead.
        anchor = "end" if px + _GLYPH_PX * len(label) / 2 > _W - 2 else "middle"
        out.append(
            f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="{anchor}" class="k">{escape(label)}</text>'
        )
    out.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" height="{bottom - _TOP}" class="f"/>'
    )
    return out


def _stroke(n: int, count: int) -> str:
    """Line style of series n of count: earlier series wider and solid, later ones thinner and dashed, so that
    equal series (offered = acked = delivered in a healthy run) stay visible on top of each other instead of
    the last one hiding the rest."""
    width = 1.6 + min(1.4 * (count - 1 - n), 2.8)  # px: 4.4, 3.0, 1.6 for three series
    dash = ("", ' stroke-dasharray="7 4"', ' stroke-dasharray="2 3"', ' stroke-dasharray="9 3 2 3"')[min(n, 3)]
    return f'stroke-width="{width:.1f}"{dash}'


def _polylines(
    series: Sequence[Series], sx: Callable[[float], float], sy: Callable[[float], float]
) -> list[str]:
    out = []
    for n, (label, points) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        stroke = _stroke(n, len(series))
        runs: list[list[str]] = [[]]
        for x, y in points:
            if y is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{sx(x):.1f},{sy(y):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            elif run:
                out.append(
                    f'<polyline fill="none" stroke="{color}" {stroke} '
                    f'points="{" ".join(run)}"><title>{escape(label)}</title></polyline>'
                )
    return out


def _legend(series: Sequence[Series]) -> list[str]:
    out = []
    x = _LEFT + 8.0
    for n, (label, _) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        out.append(f'<line x1="{x}" y1="{_TOP + 8}" x2="{x + 14}" y2="{_TOP + 8}" stroke="{color}" '
                   f'{_stroke(n, len(series))}/>')
        out.append(f'<text x="{x + 16}" y="{_TOP + 12}" class="l">{escape(label)}</text>')
        x += 24 + 7.4 * len(label)  # 11 px DejaVu Sans runs ~7 px a glyph (wider for `_`); 6.2 overlapped
    return out


def line_chart(title: str, series: Sequence[Series], *, x_label: str, y_label: str, height: int = _H) -> str:
    """Values over time (x in seconds since start); y from 0."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts if y is not None]
    x_ticks = nice_ticks(min(xs, default=0.0), max(xs, default=1.0), 8)
    y_ticks = nice_ticks(0.0, max(ys, default=1.0) or 1.0, 5)
    x0, x1, y1 = x_ticks[0], x_ticks[-1], y_ticks[-1]
    bottom = height - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / ((x1 - x0) or 1.0) * (_W - _LEFT - _RIGHT)

    def sy(y: float) -> float:
        return bottom - y / (y1 or 1.0) * (bottom - _TOP - 18)

    body = _axes([(sx(t), _fmt(t)) for t in x_ticks], [(sy(t), _fmt(t)) for t in y_ticks], height)
    if not ys:
        body.append(f'<text x="{_W / 2}" y="{height / 2}" text-anchor="middle" class="a">no data</text>')
    body += _polylines(series, sx, sy) + _legend(series)
    return _frame(title, body, x_label, y_label, height)


def percentile_chart(
    title: str, curves: Sequence[Series], *, y_label: str = "latency (ms)", height: int = 300
) -> str:
    """Latency by percentile; x = -log10(1 - p/100), so 90, 99, 99.9... are evenly spaced."""
    nines_max = 5.0

    def nines(p: float) -> float:
        return min(nines_max, -math.log10(max(1.0 - p / 100.0, 10**-nines_max)))

    ys = [y for _, pts in curves for _, y in pts if y is not None]
    y_ticks = nice_ticks(0.0, max(ys, default=1.0) or 1.0, 5)
    bottom = height - _BOTTOM

    def sx(p: float) -> float:
        return _LEFT + nines(p) / nines_max * (_W - _LEFT - _RIGHT)

    def sy(y: float) -> float:
        return bottom - y / (y_ticks[-1] or 1.0) * (bottom - _TOP - 18)

    x_ticks = [
        (sx(p), label)
        for p, label in (
            (0.0, "0%"),
            (90.0, "90%"),
            (99.0, "99%"),
            (99.9, "99.9%"),
            (99.99, "99.99%"),
            (99.999, "99.999%"),
        )
    ]
    body = _axes(x_ticks, [(sy(t), _fmt(t)) for t in y_ticks], height)
    if not ys:
        body.append(f'<text x="{_W / 2}" y="{height / 2}" text-anchor="middle" class="a">no data</text>')
    body += _polylines(curves, sx, sy) + _legend(curves)
    return _frame(title, body, "percentile", y_label, height)


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, unit: str, color: str = PALETTE[0]) -> str:
    """Horizontal bars with their values written at the end."""
    row = 24
    height = _TOP + 10 + row * max(len(items), 1) + 30
    label_w = 190
    top = max((v for _, v in items), default=0.0) or 1.0
    width = _W - label_w - 90
    body = []
    for n, (label, value) in enumerate(items):
        y = _TOP + 10 + n * row
        w = max(value / top * width, 0.0)
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="k">{escape(label)}</text>'
        )
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(label)}: {_fmt(value)} {escape(unit)}</title></rect>"
        )
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="k">{_fmt(value)}</text>')
    if not items:
        body.append(f'<text x="{_W / 2}" y="{_TOP + 24}" text-anchor="middle" class="a">none</text>')
    return "\n".join(
        [
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" '
            f'height="{height}" role="img" aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>",
            f'<text x="{_W / 2}" y="18" text-anchor="middle" class="t">'
            f"{escape(title)} ({escape(unit)})</text>",
            *body,
            "</svg>",
        ]
    )
