"""Small server-side SVG charts for the dashboard: points/lines with error bars, histograms, axes with ticks.

No chart library and no script: each function returns one `<svg>` element as a string, to be placed inline in
a page (the admin pages' CSP allows no inline script or style, and none is used; colours of the series are SVG
presentation attributes, axes and text take their colours from the page's stylesheet through classes).
Every text is XML-escaped here, so the output is safe to insert unescaped.

Coordinates: data values map linearly (or logarithmically with `x_log`) onto the plot area, which is the
figure minus `Margins`; y grows upwards. Missing values (None, NaN) are skipped: a line breaks there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TypeGuard

#: Okabe–Ito colours: distinguishable with the common colour-vision deficiencies, readable on a dark ground.
PALETTE = ("#56b4e9", "#e69f00", "#009e73", "#f0e442", "#cc79a7", "#0072b2", "#d55e00", "#bbbbbb")

Number = float | int | None


def _finite(v: Number) -> TypeGuard[float]:
    return v is not None and math.isfinite(v)


def _fmt(v: float) -> str:
    """A pixel coordinate with two decimals at most (compact and stable output)."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _attr(value: str) -> str:
    return escape(value, quote=True)


# --- ticks ----------------------------------------------------------------------------------------------------


def nice_step(span: float, n: int) -> float:
    """The 1-2-5 step (…, 0.1, 0.2, 0.5, 1, 2, 5, 10, …) that cuts `span` into about `n` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power * (1 + 1e-9):
            return m * power
    return 10 * power


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values from `lo` to `hi` (both inclusive when they fall on a step), about `n` intervals.

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [float(lo)]
    step = nice_step(hi - lo, n)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def nice_range(lo: float, hi: float, n: int = 5) -> tuple[float, float]:
    """[lo, hi] widened outwards to the nearest ticks (a flat range gets a unit around it)."""
    if hi == lo:
        return (lo - 1, hi + 1) if lo != 0 else (0.0, 1.0)
    step = nice_step(hi - lo, n)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade between `lo` and `hi` (> 0)."""
    if lo <= 0 or hi <= 0:
        raise ValueError(f"a log axis needs positive limits; got {lo}, {hi}")
    ticks = []
    for decade in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**decade
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                ticks.append(v)
    return ticks


def format_tick(v: float) -> str:
    """A tick label without float noise: 0.30000000000000004 -> '0.3', 2.0 -> '2'."""
    return f"{v:.6g}"


# --- scales and the frame -------------------------------------------------------------------------------------


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
        if not _finite(v):
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
class _Canvas:
    width: int
    height: int
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def svg(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{_attr(self.title)}">'
            f"<title>{escape(self.title)}</title>"
        )
        return head + "".join(self.parts) + "</svg>"


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle", rotate: bool = False) -> str:
    transform = f' transform="rotate(-90 {_fmt(x)} {_fmt(y)})"' if rotate else ""
    return f'<text x="{_fmt(x)}" y="{_fmt(y)}" class="{cls}" text-anchor="{anchor}"{transform}>{escape(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, cls: str, extra: str = "") -> str:
    return f'<line x1="{_fmt(x1)}" y1="{_fmt(y1)}" x2="{_fmt(x2)}" y2="{_fmt(y2)}" class="{cls}"{extra}/>'


def _axes(
    canvas: _Canvas,
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
    canvas.add(_text(canvas.width / 2, 22, canvas.title, "chart-title"))
    for t in y_ticks:
        y = ys(t)
        canvas.add(_line(left, y, right, y, "grid"))
        canvas.add(_text(left - 8, y + 4, y_format(t), "tick-label", anchor="end"))
    for t in x_ticks:
        x = xs(t)
        canvas.add(_line(x, bottom, x, bottom + 5, "tick"))
        canvas.add(_text(x, bottom + 20, x_format(t), "tick-label"))
    canvas.add(_line(left, bottom, right, bottom, "axis"))
    canvas.add(_line(left, bottom, left, top, "axis"))
    canvas.add(_text((left + right) / 2, canvas.height - 12, x_label, "axis-label"))
    canvas.add(_text(16, (top + bottom) / 2, y_label, "axis-label", rotate=True))


#: Legend rows: their height, and an estimate of the text width per character (11.5 px sans-serif).
LEGEND_ROW = 16
_CHAR_PX = 6.6
_SWATCH_PX = 24


def _legend_layout(
    entries: Sequence[tuple[str, str, bool]], left: float, right: float
) -> list[list[tuple[float, int]]]:
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


def _legend(
    canvas: _Canvas, entries: Sequence[tuple[str, str, bool]], rows: list[list[tuple[float, int]]], y0: float
) -> None:
    """The legend band under the title: per entry a short line in the series' colour (dashed if it is) and
    its label."""
    canvas.add('<g class="legend">')
    for r, row in enumerate(rows):
        y = y0 + LEGEND_ROW * r
        for x, k in row:
            label, color, dashed = entries[k]
            dash = ' stroke-dasharray="5 4"' if dashed else ""
            canvas.add(_line(x, y, x + 18, y, "legend-swatch", f' stroke="{_attr(color)}" stroke-width="3"{dash}'))
            canvas.add(_text(x + _SWATCH_PX, y + 4, label, "legend-label", anchor="start"))
    canvas.add("</g>")


def _data_range(values: Sequence[Number], *, log: bool) -> tuple[float, float]:
    finite = [v for v in values if _finite(v) and (not log or v > 0)]
    if not finite:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        if lo == hi:
            return lo / 2, hi * 2
        return lo / 1.25, hi * 1.25
    return nice_range(lo, hi)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    x_log: bool = False,
    x_ticks: Sequence[float] | None = None,
    y_ticks: Sequence[float] | None = None,
    x_format: Callable[[float], str] = format_tick,
    y_format: Callable[[float], str] = format_tick,
    ref_lines: Sequence[RefLine] = (),
    width: int = 640,
    height: int = 360,
    margins: Margins = Margins(),
) -> str:
    """Points and/or lines of each series with their error bars, axes, ticks, reference lines and a legend.

    Ranges default to the data's (widened to round ticks; on a log axis by a quarter on each side); points
    outside the ranges are left out, interval ends beyond them are drawn to the edge.
    """
    all_x = [v for s in series for v in (*s.x, *(s.x_low or ()), *(s.x_high or ()))]
    all_y = [v for s in series for v in (*s.y, *(s.y_low or ()), *(s.y_high or ()))]
    xr = x_range or _data_range(all_x, log=x_log)
    yr = y_range or _data_range(all_y, log=False)
    colors = [s.color or PALETTE[k % len(PALETTE)] for k, s in enumerate(series)]
    legend = [(s.label, c, s.dashed) for s, c in zip(series, colors, strict=True) if s.label]
    rows = _legend_layout(legend, margins.left, width - margins.right)
    top = margins.top + LEGEND_ROW * len(rows)
    xs = Scale(xr[0], xr[1], margins.left, width - margins.right, log=x_log)
    ys = Scale(yr[0], yr[1], height - margins.bottom, top)
    canvas = _Canvas(width, height, title)
    xt = list(x_ticks) if x_ticks is not None else (log_ticks(*xr) if x_log else nice_ticks(*xr))
    yt = list(y_ticks) if y_ticks is not None else nice_ticks(*yr)
    _axes(
        canvas,
        xs,
        ys,
        x_ticks=[t for t in xt if xs.contains(t)],
        y_ticks=[t for t in yt if ys.contains(t)],
        x_label=x_label,
        y_label=y_label,
        x_format=x_format,
        y_format=y_format,
    )
    for ref in ref_lines:
        if ref.axis == "y" and ys.contains(ref.value):
            y = ys(ref.value)
            canvas.add(_line(xs.px0, y, xs.px1, y, "ref-line"))
            at_end = ref.anchor == "end"
            canvas.add(_text(xs.px1 - 4 if at_end else xs.px0 + 4, y - 5, ref.label, "ref-label", anchor=ref.anchor))
        elif ref.axis == "x" and xs.contains(ref.value):
            x = xs(ref.value)
            canvas.add(_line(x, ys.px0, x, ys.px1, "ref-line"))
            canvas.add(_text(x + 4, ys.px1 + 12, ref.label, "ref-label", anchor="start"))
    for s, color in zip(series, colors, strict=True):
        canvas.add(f'<g class="series" data-label="{_attr(s.label)}">')
        _draw_series(canvas, s, xs, ys, color)
        canvas.add("</g>")
    _legend(canvas, legend, rows, margins.top - 4)
    return canvas.svg()


def _draw_series(canvas: _Canvas, s: Series, xs: Scale, ys: Scale, color: str) -> None:
    stroke = f' stroke="{_attr(color)}"'
    if s.line:
        run: list[str] = []
        runs: list[list[str]] = []
        for x, y in zip(s.x, s.y, strict=True):
            if xs.contains(x) and ys.contains(y):
                run.append(f"{_fmt(xs(x))},{_fmt(ys(y))}")  # type: ignore[arg-type]
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for r in runs:
            if len(r) > 1:
                canvas.add(f'<polyline points="{" ".join(r)}" class="series-line" fill="none"{stroke}{dash}/>')
    for i, (x, y) in enumerate(zip(s.x, s.y, strict=True)):
        if not (xs.contains(x) and ys.contains(y)):
            continue
        px, py = xs(x), ys(y)  # type: ignore[arg-type]
        lo = s.y_low[i] if s.y_low is not None else None
        hi = s.y_high[i] if s.y_high is not None else None
        if lo is not None or hi is not None:
            y0, y1 = _interval(ys, lo, hi, y)  # type: ignore[arg-type]
            canvas.add(_line(px, y0, px, y1, "errorbar", stroke))
            for yy in (y0, y1):
                canvas.add(_line(px - 4, yy, px + 4, yy, "errorbar", stroke))
        xlo = s.x_low[i] if s.x_low is not None else None
        xhi = s.x_high[i] if s.x_high is not None else None
        if xlo is not None or xhi is not None:
            x0, x1 = _interval(xs, xlo, xhi, x)  # type: ignore[arg-type]
            canvas.add(_line(x0, py, x1, py, "errorbar", stroke))
            for xx in (x0, x1):
                canvas.add(_line(xx, py - 4, xx, py + 4, "errorbar", stroke))
        if s.markers:
            canvas.add(f'<circle cx="{_fmt(px)}" cy="{_fmt(py)}" r="4" class="marker" fill="{_attr(color)}"/>')


def _interval(scale: Scale, low: Number, high: Number, centre: float) -> tuple[float, float]:
    """Pixel ends of an interval around `centre`: a missing end sits at the centre, an infinite (or, on a log
    axis, non-positive) end at the plot's edge, a finite one clamped into the range."""

    def end(v: Number, edge: float) -> float:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return scale(centre)
        if not math.isfinite(v) or (scale.log and v <= 0):
            return scale(edge)
        return scale(scale.clamp(v))

    lo_edge, hi_edge = min(scale.lo, scale.hi), max(scale.lo, scale.hi)
    return end(low, lo_edge), end(high, hi_edge)


# --- histograms -------------------------------------------------------------------------------------------------


def bin_edges(values: Sequence[Number], *, n_bins: int = 20, lo: float | None = None) -> list[float]:
    """Round, equal-width bin edges covering the finite `values` (about `n_bins` bins; [0, 1] when empty)."""
    finite = [float(v) for v in values if _finite(v)]
    if not finite:
        return [0.0, 1.0]
    a = min(finite) if lo is None else lo
    b = max(finite)
    if b <= a:
        b = a + 1
    step = nice_step(b - a, n_bins)
    start = math.floor(a / step + 1e-9) * step
    edges = [start]
    while edges[-1] <= b + 1e-12:
        edges.append(start + len(edges) * step)
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(e, digits) for e in edges]


def histogram_counts(values: Sequence[Number], edges: Sequence[float]) -> list[int]:
    """Counts of the finite `values` per bin `[edges[i], edges[i+1])`; the last bin also takes its right edge.
    Values outside the edges are not counted."""
    if len(edges) < 2:
        raise ValueError("histogram_counts needs at least two edges")
    counts = [0] * (len(edges) - 1)
    last = len(counts) - 1
    for v in values:
        if not _finite(v) or v < edges[0] or v > edges[-1]:
            continue
        lo, hi = 0, last
        while lo < hi:  # the last edge <= v, by bisection
            mid = (lo + hi + 1) // 2
            if edges[mid] <= v:
                lo = mid
            else:
                hi = mid - 1
        counts[lo] += 1
    return counts


def histogram(
    groups: Sequence[tuple[str, Sequence[int]]],
    edges: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str = "count",
    x_ticks: Sequence[float] | None = None,
    x_format: Callable[[float], str] = format_tick,
    width: int = 640,
    height: int = 320,
    margins: Margins = Margins(),
) -> str:
    """Bars of counts per bin (`groups`: label and counts per bin of `edges`), groups side by side in a bin.
    Ticks default to the edges (at most about ten of them)."""
    if any(len(counts) != len(edges) - 1 for _, counts in groups):
        raise ValueError("every group needs one count per bin (len(edges) - 1)")
    top = max([c for _, counts in groups for c in counts] + [1])
    legend = [(label, PALETTE[k % len(PALETTE)], False) for k, (label, _) in enumerate(groups)]
    rows = _legend_layout(legend, margins.left, width - margins.right) if len(groups) > 1 else []
    xs = Scale(edges[0], edges[-1], margins.left, width - margins.right)
    ys = Scale(0, nice_range(0, top)[1], height - margins.bottom, margins.top + LEGEND_ROW * len(rows))
    canvas = _Canvas(width, height, title)
    y_ticks = [t for t in nice_ticks(0, ys.hi) if float(t).is_integer()]
    stride = max(1, math.ceil((len(edges) - 1) / 10))
    _axes(
        canvas,
        xs,
        ys,
        x_ticks=list(x_ticks) if x_ticks is not None else list(edges[::stride]),
        y_ticks=y_ticks,
        x_label=x_label,
        y_label=y_label,
        x_format=x_format,
        y_format=lambda v: f"{v:.0f}",
    )
    n = max(len(groups), 1)
    for k, (label, counts) in enumerate(groups):
        color = PALETTE[k % len(PALETTE)]
        canvas.add(f'<g class="series" data-label="{_attr(label)}">')
        for i, c in enumerate(counts):
            if c <= 0:
                continue
            x0, x1 = xs(edges[i]), xs(edges[i + 1])
            w = (x1 - x0) / n
            y = ys(c)
            canvas.add(
                f'<rect x="{_fmt(x0 + k * w + 0.5)}" y="{_fmt(y)}" width="{_fmt(max(w - 1, 0.5))}" '
                f'height="{_fmt(ys.px0 - y)}" class="bar" fill="{_attr(color)}" data-count="{c}"/>'
            )
        canvas.add("</g>")
    _legend(canvas, legend, rows, margins.top - 4)
    return canvas.svg()
