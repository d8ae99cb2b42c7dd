"""Charts drawn on the server as inline SVG: no script, no external asset, readable offline.

Each chart is an `<svg role="img">` with a `<title>` and a `<desc>` that says what it
shows in words; every bar has its own `<title>` (the value, shown on hover). Colours come
from the stylesheet's classes, so the page's contrast rules apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from itertools import count

from markupsafe import Markup, escape

__all__ = ["breach_scale", "daily_bars", "horizontal_bars"]

_ids = count(1)


def _frame(width: int, height: int, title: str, desc: str, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="chart-{n}-t chart-{n}-d">'
        f'<title id="chart-{n}-t">{escape(title)}</title>'
        f'<desc id="chart-{n}-d">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    """The smallest of 1, 2 or 5 times 10**k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= value))


def daily_bars(
    days: Sequence[date], values: Sequence[int], *, title: str, width: int = 560
) -> Markup:
    """One bar per day, the first, middle and last dates under the axis."""
    height, left, bottom, top = 140, 34, 22, 8
    top_value = _nice_max(max(values, default=0))
    plot_w, plot_h = width - left - 6, height - bottom - top
    step = plot_w / max(len(values), 1)
    body = [
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 6}" '
        f'y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 8}" text-anchor="end">{top_value:g}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = plot_h * value / top_value
        x = left + i * step + step * 0.15
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{day.isoformat()}: '
            f"{value}</title></rect>"
        )
    last = len(days) - 1
    for i in sorted({0, len(days) // 2, last}) if days else []:
        x = left + i * step + step / 2
        anchor = "start" if i == 0 else "end" if i == last else "middle"
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}">'
            f"{days[i].strftime('%b %d')}</text>"
        )
    busiest = max(range(len(values)), key=lambda i: values[i]) if values else None
    desc = (
        f"{sum(values)} in {len(days)} days"
        + (f", most on {days[busiest].isoformat()} ({values[busiest]})" if busiest else "")
        + "."
    )
    return _frame(width, height, title, desc, body)


def horizontal_bars(
    rows: Sequence[tuple[str, float]], *, title: str, unit: str, width: int = 560
) -> Markup:
    """One labelled horizontal bar per row (label, value)."""
    label_w, row_h, pad = 170, 22, 6
    height = pad * 2 + row_h * max(len(rows), 1)
    top_value = _nice_max(max((v for _, v in rows), default=0.0))
    plot_w = width - label_w - 70
    body = []
    for i, (label, value) in enumerate(rows):
        y = pad + i * row_h
        w = plot_w * value / top_value
        body.append(
            f'<text class="label" x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(label[:28])}</text>"
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}">'
            f"<title>{escape(label)}: {value:.1f} {unit}</title></rect>"
            f'<text class="tick" x="{label_w + w + 4:.1f}" y="{y + 15}">{value:.1f} {unit}</text>'
        )
    desc = "; ".join(f"{label}: {value:.1f} {unit}" for label, value in rows) or "No data."
    return _frame(width, height, title, desc, body)


def breach_scale(
    *, observed: float, limit: float, pre_trade: float, passive: bool, title: str
) -> Markup:
    """Before the trade, as proposed, and the limit on one scale; breached bars marked."""
    width, label_w = 560, 120
    values = [("before the trade", pre_trade, passive), ("as proposed", observed, True)]
    low = min(0.0, limit, *(v for _, v, _ in values))
    high = max(limit, *(v for _, v, _ in values))
    span = (high - low) * 1.15 or 1.0
    plot_w = width - label_w - 80

    def x(value: float) -> float:
        return label_w + plot_w * (value - low) / span

    body = []
    for i, (label, value, breached) in enumerate(values):
        y = 8 + i * 26
        cls = "bar over" if breached else "bar"
        body.append(
            f'<text class="label" x="{label_w - 6}" y="{y + 14}" text-anchor="end">{label}</text>'
            f'<rect class="{cls}" x="{x(min(0.0, value)):.1f}" y="{y + 3}" '
            f'width="{abs(x(value) - x(0.0)):.1f}" height="16"><title>{label}: {value:.6g}'
            f'</title></rect><text class="tick" x="{x(max(0.0, value)) + 4:.1f}" '
            f'y="{y + 15}">{value:.4g}</text>'
        )
    body.append(
        f'<line class="limit" x1="{x(limit):.1f}" y1="2" x2="{x(limit):.1f}" y2="62"/>'
        f'<text class="tick" x="{x(limit):.1f}" y="76" text-anchor="middle">'
        f"limit {limit:.4g}</text>"
    )
    desc = f"Before the trade {pre_trade:.6g}, as proposed {observed:.6g}, limit {limit:.6g}."
    return _frame(width, 82, title, desc, body)
