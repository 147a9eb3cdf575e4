"""The frame every chart shares: colours, scales from data to pixels, the series and reference-line types,
the SVG canvas with escaped text and lines, axes with ticks, and the legend band.

Its own module because the line charts (`lines`) and the histograms (`histograms`) draw onto the same frame;
each of them keeps only what it draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TypeGuard

from backend.admin.plots.ticks import nice_range

#: Okabe–Ito colours: distinguishable with the common colour-vision deficiencies, readable on a dark ground.
PALETTE = ("#56b4e9", "#e69f00", "#009e73", "#f0e442", "#cc79a7", "#0072b2", "#d55e00", "#bbbbbb")

Number = float | int | None


def is_finite(v: Number) -> TypeGuard[float]:
    return v is not None and math.isfinite(v)


def fmt(v: float) -> str:
    """A pixel coordinate with two decimals at most (compact and stable output)."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def attr(value: str) -> str:
    return escape(value, quote=True)


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] onto pixels [px0, px1] (linear, or linear in log10 when `log`)."""

    lo: float
    hi: float
    px0: float
    px1: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.log and (self.lo <= 0 or self.hi <= 0):
            raise ValueError(f"a log scale needs positive limits; got [{self.lo}, {self.hi}]")
        if self.hi == self.lo:
            raise ValueError(f"a scale needs two different limits; got [{self.lo}, {self.hi}]")

    def _t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def __call__(self, v: float) -> float:
        t0, t1 = self._t(self.lo), self._t(self.hi)
        return self.px0 + (self._t(v) - t0) / (t1 - t0) * (self.px1 - self.px0)

    def contains(self, v: Number) -> bool:
        if not is_finite(v):
            return False
        a, b = min(self.lo, self.hi), max(self.lo, self.hi)
        return a - 1e-12 <= v <= b + 1e-12 and (not self.log or v > 0)

    def clamp(self, v: float) -> float:
        """`v` moved into [lo, hi] (infinite bounds of an interval end at the plot's edge)."""
        a, b = min(self.lo, self.hi), max(self.lo, self.hi)
        return min(max(v, a), b)


@dataclass(frozen=True)
class Margins:
    left: float = 64
    right: float = 20
    top: float = 40
    bottom: float = 56


@dataclass
class Series:
    """One data series: points `(x[i], y[i])`, optionally joined by a line, with optional error bars.

    `y_low`/`y_high` draw vertical bars (e.g. a Wilson interval), `x_low`/`x_high` horizontal ones (e.g. the
    interval of a threshold); an infinite or missing end is drawn to the plot's edge or left out.
    """

    label: str
    x: Sequence[Number]
    y: Sequence[Number]
    y_low: Sequence[Number] | None = None
    y_high: Sequence[Number] | None = None
    x_low: Sequence[Number] | None = None
    x_high: Sequence[Number] | None = None
    line: bool = True
    markers: bool = True
    dashed: bool = False
    color: str | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("y", "y_low", "y_high", "x_low", "x_high"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"series {self.label!r}: {name} has {len(values)} values, x has {n}")


@dataclass(frozen=True)
class RefLine:
    """A dashed horizontal (`axis='y'`) or vertical (`axis='x'`) reference line with a label (of a horizontal
    line: at its right end, or with `anchor='start'` at its left)."""

    value: float
    label: str = ""
    axis: str = "y"
    anchor: str = "end"


@dataclass
class Canvas:
    width: int
    height: int
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def svg(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{attr(self.title)}">'
            f"<title>{escape(self.title)}</title>"
        )
        return head + "".join(self.parts) + "</svg>"


def svg_text(x: float, y: float, text: str, cls: str, anchor: str = "middle", rotate: bool = False) -> str:
    transform = f' transform="rotate(-90 {fmt(x)} {fmt(y)})"' if rotate else ""
    return f'<text x="{fmt(x)}" y="{fmt(y)}" class="{cls}" text-anchor="{anchor}"{transform}>{escape(text)}</text>'


def svg_line(x1: float, y1: float, x2: float, y2: float, cls: str, extra: str = "") -> str:
    return f'<line x1="{fmt(x1)}" y1="{fmt(y1)}" x2="{fmt(x2)}" y2="{fmt(y2)}" class="{cls}"{extra}/>'


def draw_axes(
    canvas: Canvas,
    xs: Scale,
    ys: Scale,
    *,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str],
    y_format: Callable[[float], str],
) -> None:
    left, right = xs.px0, xs.px1
    bottom, top = ys.px0, ys.px1
    canvas.add(svg_text(canvas.width / 2, 22, canvas.title, "chart-title"))
    for t in y_ticks:
        y = ys(t)
        canvas.add(svg_line(left, y, right, y, "grid"))
        canvas.add(svg_text(left - 8, y + 4, y_format(t), "tick-label", anchor="end"))
    for t in x_ticks:
        x = xs(t)
        canvas.add(svg_line(x, bottom, x, bottom + 5, "tick"))
        canvas.add(svg_text(x, bottom + 20, x_format(t), "tick-label"))
    canvas.add(svg_line(left, bottom, right, bottom, "axis"))
    canvas.add(svg_line(left, bottom, left, top, "axis"))
    canvas.add(svg_text((left + right) / 2, canvas.height - 12, x_label, "axis-label"))
    canvas.add(svg_text(16, (top + bottom) / 2, y_label, "axis-label", rotate=True))


#: Legend rows: their height, and an estimate of the text width per character (11.5 px sans-serif).
LEGEND_ROW = 16
_CHAR_PX = 6.6
_SWATCH_PX = 24


def legend_layout(entries: Sequence[tuple[str, str, bool]], left: float, right: float) -> list[list[tuple[float, int]]]:
    """Entries placed left to right in rows that fit between `left` and `right`: rows of (x, entry index)."""
    rows: list[list[tuple[float, int]]] = []
    x = right + 1  # start a new row at the first entry
    for k, (label, _, _) in enumerate(entries):
        width = _SWATCH_PX + _CHAR_PX * len(label) + 18
        if x + width > right and (not rows or rows[-1]):
            rows.append([])
            x = left
        rows[-1].append((x, k))
        x += width
    return rows


def draw_legend(
    canvas: Canvas, entries: Sequence[tuple[str, str, bool]], rows: list[list[tuple[float, int]]], y0: float
) -> None:
    """The legend band under the title: per entry a short line in the series' colour (dashed if it is) and
    its label."""
    canvas.add('<g class="legend">')
    for r, row in enumerate(rows):
        y = y0 + LEGEND_ROW * r
        for x, k in row:
            label, color, dashed = entries[k]
            dash = ' stroke-dasharray="5 4"' if dashed else ""
            canvas.add(svg_line(x, y, x + 18, y, "legend-swatch", f' stroke="{attr(color)}" stroke-width="3"{dash}'))
            canvas.add(svg_text(x + _SWATCH_PX, y + 4, label, "legend-label", anchor="start"))
    canvas.add("</g>")


def data_range(values: Sequence[Number], *, log: bool) -> tuple[float, float]:
    finite = [v for v in values if is_finite(v) and (not log or v > 0)]
    if not finite:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        if lo == hi:
            return lo / 2, hi * 2
        return lo / 1.25, hi * 1.25
    return nice_range(lo, hi)
