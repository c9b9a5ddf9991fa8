"""The report's charts as inline SVG: readable without hovering (values on
the bars, axes with ticks and labels, reference lines named where they are
drawn), and scaled to the width they get (a phone's too).

Pure drawing: the numbers come from reporting/report.py.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Callable, Sequence
from typing import Any

# Category names longer than this are cut with an ellipsis; the full name is
# in the label's tooltip and its data-full attribute.
LABEL_CHARS = 26
COLORS = {"candidate": "#1f6fb4", "baseline": "#e08a1e", "this span": "#1f6fb4"}


def e(text: Any) -> str:
    return html.escape(str(text))


def short_label(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclasses.dataclass
class Bar:
    """One row of a bar chart: a bar per series, or, when the row cannot be
    drawn as a value (a slice too small to score), the reason instead."""

    label: str
    values: dict[str, float]
    note: str = ""
    unscored: str = ""


@dataclasses.dataclass
class Rule:
    """A vertical reference line across a bar chart (a floor, a coin flip)."""

    value: float
    label: str
    color: str = "#b22"


def _svg(title: str, width: int, height: int, body: str) -> str:
    # Width 100% up to the drawn size: the viewBox scales it down on a phone.
    return (
        f'<svg class="chart" role="img" aria-label="{e(title)}" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto">{body}</svg>'
    )


def card(title: str, body: str, subtitle: str = "") -> str:
    note = f'<div class="muted">{e(subtitle)}</div>' if subtitle else ""
    return f'<div class="card"><h3>{e(title)}</h3>{note}{body}</div>'


def bar_chart(
    title: str,
    rows: Sequence[Bar],
    subtitle: str = "",
    scale_max: float | None = None,
    value_text: Callable[[float], str] = lambda v: f"{v:.3f}",
    rules: Sequence[Rule] = (),
    width: int = 480,
) -> str:
    """Horizontal bars: one group per row, one bar per series, its value
    written at its end; ticks along the bottom axis."""
    series = sorted(
        {s for row in rows for s in row.values}, key=lambda s: (s != "candidate", s != "this span")
    )
    top = scale_max or _round_up(max([v for row in rows for v in row.values.values()] + [1e-9]))
    bar, gap, label_w, note_w, value_w = 12, 7, 178, 86, 44
    plot_w = width - label_w - note_w - value_w
    legend_h, axis_h = 18, 30
    group = lambda row: bar * max(len(series), 1) if not row.unscored else bar  # noqa: E731
    height = legend_h + sum(group(row) + gap for row in rows) + axis_h + 8 + 12 * len(rules)
    x_of = lambda v: label_w + plot_w * min(max(v, 0), top) / top  # noqa: E731
    parts = []
    legend = " ".join(
        f'<tspan style="fill:{COLORS.get(s, "#999")}">&#9632;</tspan> {e(s)}' for s in series
    )
    parts.append(f'<text x="{label_w}" y="12">{legend}</text>')
    y = legend_h
    for row in rows:
        label = short_label(row.label)
        parts.append(
            f'<text class="label" x="{label_w - 6}" y="{y + bar - 2}" text-anchor="end" '
            f'data-full="{e(row.label)}"><title>{e(row.label)}</title>{e(label)}</text>'
        )
        if row.unscored:
            parts.append(
                f'<text class="unscored" x="{label_w + 4}" y="{y + bar - 2}" '
                f'style="fill:#777;font-style:italic">{e(row.unscored)}</text>'
            )
        else:
            for i, name in enumerate(series):
                value = row.values.get(name)
                if value is None or math.isnan(value):
                    continue
                top_y = y + i * bar
                end = max(x_of(value), label_w + 1)
                parts.append(
                    f'<rect class="bar" data-series="{e(name)}" data-value="{value:.4f}" '
                    f'x="{label_w}" y="{top_y}" width="{end - label_w:.1f}" height="{bar - 2}" '
                    f'fill="{COLORS.get(name, "#999")}"><title>{e(name)}: {value_text(value)}'
                    "</title></rect>"
                    f'<text class="value" x="{end + 3:.1f}" y="{top_y + bar - 3}">'
                    f"{e(value_text(value))}</text>"
                )
        if row.note:
            parts.append(
                f'<text class="note" x="{width - note_w + 4}" y="{y + bar - 2}" '
                f'style="fill:#777">{e(row.note)}</text>'
            )
        y += group(row) + gap
    axis_y = y
    # The grid goes under the bars, the axis and its ticks below them.
    grid = [
        f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" stroke="#999"/>'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = label_w + plot_w * tick
        grid.append(
            f'<line x1="{x:.1f}" y1="{legend_h - 4}" x2="{x:.1f}" y2="{axis_y + 4}" '
            'stroke="#eee"/>'
            f'<text class="tick" x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">'
            f"{e(value_text(top * tick))}</text>"
        )
    for n, rule in enumerate(rules):
        x = x_of(rule.value)
        parts.append(
            f'<line class="rule" data-value="{rule.value:g}" x1="{x:.1f}" y1="{legend_h - 4}" '
            f'x2="{x:.1f}" y2="{axis_y}" stroke="{rule.color}" stroke-dasharray="4 3"/>'
            f'<text class="rule-label" x="{x:.1f}" y="{axis_y + 28 + 12 * n}" text-anchor="middle" '
            f'style="fill:{rule.color}">{e(rule.label)}</text>'
        )
    return card(title, _svg(title, width, height, "".join(grid + parts)), subtitle)


def _round_up(value: float) -> float:
    """The axis end: the value rounded up to 1, 2 or 5 times a power of ten."""
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value * 0.9999)


@dataclasses.dataclass
class Line:
    name: str
    points: list[tuple[float, float]]
    marker: tuple[float, float] | None = None
    marker_label: str = ""


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    lines: Sequence[Line],
    diagonal: bool = False,
    level: tuple[float, str] | None = None,
    size: int = 320,
) -> str:
    """Curves on [0, 1] x [0, 1] with ticks, axis labels, a marked point per
    curve (the operating threshold) and an optional horizontal level (a
    base rate) or diagonal (chance, perfect calibration)."""
    left, bottom, pad = 46, 40, 12
    inner = size - left - pad
    height = inner + pad + bottom

    def xy(x: float, y: float) -> tuple[float, float]:
        return left + min(max(x, 0), 1) * inner, pad + inner - min(max(y, 0), 1) * inner

    parts = [
        f'<rect x="{left}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#bbb"/>'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x, y = xy(tick, tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{pad}" x2="{x:.1f}" y2="{pad + inner}" stroke="#f0f0f0"/>'
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + inner}" y2="{y:.1f}" stroke="#f0f0f0"/>'
            f'<text class="tick" x="{x:.1f}" y="{pad + inner + 14}" text-anchor="middle">{tick:g}</text>'
            f'<text class="tick" x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{left + inner / 2}" y="{height - 6}" '
        f'text-anchor="middle">{e(x_label)}</text>'
        f'<text class="axis-label" transform="translate(12 {pad + inner / 2}) rotate(-90)" '
        f'text-anchor="middle">{e(y_label)}</text>'
    )
    if diagonal:
        (x0, y0), (x1, y1) = xy(0, 0), xy(1, 1)
        parts.append(
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#ccc" stroke-dasharray="4 3"/>'
        )
    if level is not None:
        value, label = level
        (x0, y), (x1, _) = xy(0, value), xy(1, value)
        parts.append(
            f'<line class="level" data-value="{value:.4f}" x1="{x0}" y1="{y:.1f}" x2="{x1}" '
            f'y2="{y:.1f}" stroke="#b22" stroke-dasharray="4 3"/>'
            # Under the line at its left end: a precision-recall curve runs
            # high there and meets the base rate on the right, by its marker.
            f'<text class="level-label" x="{x0 + 4}" y="{y + 13:.1f}" style="fill:#b22">'
            f"{e(label)}</text>"
        )
    for n, line in enumerate(lines):
        if not line.points:
            continue
        color = COLORS.get(line.name, "#999")
        points = " ".join("{:.1f},{:.1f}".format(*xy(x, y)) for x, y in line.points)
        parts.append(
            f'<polyline class="curve" data-series="{e(line.name)}" points="{points}" '
            f'fill="none" stroke="{color}" stroke-width="2"/>'
            f'<text x="{left + 6}" y="{pad + 14 + 13 * n}" style="fill:{color}">{e(line.name)}</text>'
        )
        if line.marker is not None:
            x, y = xy(*line.marker)
            parts.append(
                f'<circle class="operating-point" data-series="{e(line.name)}" cx="{x:.1f}" '
                f'cy="{y:.1f}" r="4.5" fill="#fff" stroke="{color}" stroke-width="2">'
                f"<title>{e(line.marker_label)}</title></circle>"
                f'<text x="{x + 7:.1f}" y="{y + 13:.1f}" style="fill:{color}">'
                f"{e(line.marker_label)}</text>"
            )
    return card(title, _svg(title, size, height, "".join(parts)))


def table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], css: str = "") -> str:
    """A table in a box that scrolls sideways on a narrow screen; no header
    row when `header` is None (a list of facts)."""
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>"
        + (f"<th>{e(row[0])}</th>" if header is None else f"<td>{e(row[0])}</td>")
        + "".join(f"<td>{e(c)}</td>" for c in row[1:])
        + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table class="{css}">{head}{body}</table></div>'
