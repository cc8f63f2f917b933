"""Hand-written SVG charts of rates: grouped bars per category and daily lines, with dashed target lines
(pure: values in, SVG text out; no plotting library, no JavaScript).

Values are fractions (0.95 is 95 %). The axis runs from a floor to 100 %: rates cluster near their
targets, so a floor at the lowest value rounded down to 10 % (at most 90 %) keeps differences visible;
the axis is labelled, so nobody reads a bar's height as the whole. Every bar and point carries a
``<title>`` with its exact value (a tooltip in a browser).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

_LEFT, _TOP, _BOTTOM = 52, 48, 40
_CHAR_W = 6.5  # a generous width of one character at font size 11, for the target labels
_PLOT_H = 240
_FONT = 'font-family="sans-serif" font-size="11"'
_NICE_STEPS = (1, 2, 5, 10, 20, 25)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float | None, ...]
    color: str
    target: float | None = None


def percent(value: float | None, decimals: int = 2) -> str:
    return "—" if value is None else f"{100.0 * value:.{decimals}f} %"


def _known(series: Iterable[Series]) -> list[float]:
    found: list[float] = []
    for s in series:
        found.extend(v for v in s.values if v is not None and math.isfinite(v))
        if s.target is not None:
            found.append(s.target)
    return found


def axis_floor(values: Sequence[float]) -> int:
    """The axis floor in percent: below the lowest value, a multiple of 10, at most 90."""
    if not values:
        return 0
    lowest = min(values) * 100.0
    return max(0, min(90, 10 * math.floor((lowest - 1e-6) / 10)))


def _step(span: int) -> int:
    return next((s for s in _NICE_STEPS if span / s <= 6), 50)


class _Frame:
    """The plot area (``plot_w`` wide, the target labels to its right) and the y scale (percent)."""

    def __init__(self, plot_w: float, series: Sequence[Series]) -> None:
        self.floor = axis_floor(_known(series))
        self.right = _LEFT + plot_w
        self.labels = _target_labels(series)
        longest = max((len(text) for _, _, text in self.labels), default=0)
        self.width = self.right + 12 + _CHAR_W * longest

    def y(self, value: float) -> float:
        frac = (100.0 * value - self.floor) / (100 - self.floor)
        return _TOP + _PLOT_H * (1.0 - min(max(frac, 0.0), 1.0))

    def axis(self) -> list[str]:
        parts = []
        base = _TOP + _PLOT_H
        step = _step(100 - self.floor)
        for tick in range(self.floor, 101, step):
            y = self.y(tick / 100)
            parts.append(
                f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{self.right:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{tick} %</text>'
            )
        parts.append(
            f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" stroke="#555"/>'
            f'<line x1="{_LEFT}" y1="{base}" x2="{self.right:.1f}" y2="{base}" stroke="#555"/>'
        )
        return parts

    def targets(self) -> list[str]:
        """One dashed line per target value, labelled at the right (labels pushed apart where targets
        lie close)."""
        parts, label_y = [], -math.inf
        for value, color, text in self.labels:
            y = self.y(value)
            label_y = max(y + 4, label_y + 13)
            label = escape(text)
            parts.append(
                f'<line class="target" x1="{_LEFT}" y1="{y:.1f}" x2="{self.right:.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"><title>{label}</title></line>'
                f'<text x="{self.right + 4:.1f}" y="{label_y:.1f}" fill="{color}" {_FONT}>{label}</text>'
            )
        return parts

    def legend(self, series: Sequence[Series]) -> list[str]:
        parts, x = [], float(_LEFT)
        for s in series:
            parts.append(
                f'<rect x="{x:.1f}" y="24" width="10" height="10" fill="{s.color}"/>'
                f'<text x="{x + 14:.1f}" y="33" {_FONT}>{escape(s.name)}</text>'
            )
            x += 24 + 7 * len(s.name)
        return parts


def _target_labels(series: Sequence[Series]) -> list[tuple[float, str, str]]:
    """(value, colour, label) per distinct target, highest first; a target shared by several series is
    drawn once, in grey, naming them all."""
    by_value: dict[float, list[Series]] = {}
    for s in series:
        if s.target is not None:
            by_value.setdefault(round(s.target, 6), []).append(s)
    return [
        (
            value,
            owners[0].color if len(owners) == 1 else "#333",
            f"{100.0 * value:.4g} % target: {', '.join(s.name for s in owners)}",
        )
        for value, owners in sorted(by_value.items(), reverse=True)
    ]


def _svg(width: float, title: str, body: Iterable[str], css_class: str) -> str:
    height = _TOP + _PLOT_H + _BOTTOM
    return (
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
        f'height="{height}" viewBox="0 0 {width:.0f} {height}"><title>{escape(title)}</title>'
        f'<text x="{_LEFT}" y="16" font-family="sans-serif" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>{''.join(body)}</svg>"
    )


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series]) -> str:
    """Grouped bars: for each category one bar per series, against each series' target."""
    longest = max((len(c) for c in categories), default=0)
    group_w = max(18.0 * len(series) + 20.0, 7.0 * longest + 12.0)
    frame = _Frame(max(len(categories), 1) * group_w, series)
    parts = frame.axis()
    bar_w = (group_w - 20.0) / max(len(series), 1)
    base = _TOP + _PLOT_H
    for i, category in enumerate(categories):
        x0 = _LEFT + i * group_w + 10.0
        for j, s in enumerate(series):
            value = s.values[i]
            x = x0 + j * bar_w
            tip = f"{escape(category)} {escape(s.name)}: {percent(value)}"
            if value is None:
                parts.append(
                    f'<text class="missing" x="{x + bar_w / 2:.1f}" y="{base - 4:.1f}" text-anchor="middle" '
                    f'font-family="sans-serif" font-size="9" fill="#888">n/a<title>{tip}</title></text>'
                )
                continue
            y = frame.y(value)
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{base - y:.1f}" '
                f'fill="{s.color}"><title>{tip}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + (group_w - 20.0) / 2:.1f}" y="{base + 16}" text-anchor="middle" {_FONT}>'
            f"{escape(category)}</text>"
        )
    if not categories:
        parts.append(f'<text x="{_LEFT + 10}" y="{_TOP + _PLOT_H / 2}" {_FONT}>no data</text>')
    parts += frame.targets() + frame.legend(series)
    return _svg(frame.width, title, parts, "bar-chart")


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """One line per series over evenly spaced labels (days); a missing value breaks the line."""
    step_x = 28.0
    frame = _Frame(max(len(labels), 2) * step_x, series)
    parts = frame.axis()
    base = _TOP + _PLOT_H

    def x(i: int) -> float:
        return _LEFT + step_x / 2 + i * step_x

    every = max(1, math.ceil(len(labels) / 16))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{base + 16}" text-anchor="middle" {_FONT}>{escape(label)}</text>'
            )
    for s in series:
        path, pen_down = [], False
        for i, value in enumerate(s.values):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x(i):.1f} {frame.y(value):.1f}")
            pen_down = True
        if path:
            parts.append(
                f'<path class="line" d="{" ".join(path)}" fill="none" stroke="{s.color}" stroke-width="2"/>'
            )
        for i, value in enumerate(s.values):
            if value is not None:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{frame.y(value):.1f}" r="3" fill="{s.color}">'
                    f"<title>{escape(labels[i])} {escape(s.name)}: {percent(value)}</title></circle>"
                )
    if not labels:
        parts.append(f'<text x="{_LEFT + 10}" y="{_TOP + _PLOT_H / 2}" {_FONT}>no data</text>')
    parts += frame.targets() + frame.legend(series)
    return _svg(frame.width, title, parts, "line-chart")
