"""Line charts: points and/or lines per series with vertical and horizontal error bars, reference lines.

Its own module because drawing a series (runs broken at missing values, intervals to the plot's edge) is
the one intricate part of the charts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from backend.admin.plots.frame import (
    LEGEND_ROW,
    PALETTE,
    Canvas,
    Margins,
    Number,
    RefLine,
    Scale,
    Series,
    attr,
    data_range,
    draw_axes,
    draw_legend,
    fmt,
    legend_layout,
    svg_line,
    svg_text,
)
from backend.admin.plots.ticks import format_tick, log_ticks, nice_ticks


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
    xr = x_range or data_range(all_x, log=x_log)
    yr = y_range or data_range(all_y, log=False)
    colors = [s.color or PALETTE[k % len(PALETTE)] for k, s in enumerate(series)]
    legend = [(s.label, c, s.dashed) for s, c in zip(series, colors, strict=True) if s.label]
    rows = legend_layout(legend, margins.left, width - margins.right)
    top = margins.top + LEGEND_ROW * len(rows)
    xs = Scale(xr[0], xr[1], margins.left, width - margins.right, log=x_log)
    ys = Scale(yr[0], yr[1], height - margins.bottom, top)
    canvas = Canvas(width, height, title)
    xt = list(x_ticks) if x_ticks is not None else (log_ticks(*xr) if x_log else nice_ticks(*xr))
    yt = list(y_ticks) if y_ticks is not None else nice_ticks(*yr)
    draw_axes(
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
            canvas.add(svg_line(xs.px0, y, xs.px1, y, "ref-line"))
            at_end = ref.anchor == "end"
            canvas.add(svg_text(xs.px1 - 4 if at_end else xs.px0 + 4, y - 5, ref.label, "ref-label", anchor=ref.anchor))
        elif ref.axis == "x" and xs.contains(ref.value):
            x = xs(ref.value)
            canvas.add(svg_line(x, ys.px0, x, ys.px1, "ref-line"))
            canvas.add(svg_text(x + 4, ys.px1 + 12, ref.label, "ref-label", anchor="start"))
    for s, color in zip(series, colors, strict=True):
        canvas.add(f'<g class="series" data-label="{attr(s.label)}">')
        _draw_series(canvas, s, xs, ys, color)
        canvas.add("</g>")
    draw_legend(canvas, legend, rows, margins.top - 4)
    return canvas.svg()


def _draw_series(canvas: Canvas, s: Series, xs: Scale, ys: Scale, color: str) -> None:
    stroke = f' stroke="{attr(color)}"'
    if s.line:
        run: list[str] = []
        runs: list[list[str]] = []
        for x, y in zip(s.x, s.y, strict=True):
            if xs.contains(x) and ys.contains(y):
                run.append(f"{fmt(xs(x))},{fmt(ys(y))}")  # type: ignore[arg-type]
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
            canvas.add(svg_line(px, y0, px, y1, "errorbar", stroke))
            for yy in (y0, y1):
                canvas.add(svg_line(px - 4, yy, px + 4, yy, "errorbar", stroke))
        xlo = s.x_low[i] if s.x_low is not None else None
        xhi = s.x_high[i] if s.x_high is not None else None
        if xlo is not None or xhi is not None:
            x0, x1 = _interval(xs, xlo, xhi, x)  # type: ignore[arg-type]
            canvas.add(svg_line(x0, py, x1, py, "errorbar", stroke))
            for xx in (x0, x1):
                canvas.add(svg_line(xx, py - 4, xx, py + 4, "errorbar", stroke))
        if s.markers:
            canvas.add(f'<circle cx="{fmt(px)}" cy="{fmt(py)}" r="4" class="marker" fill="{attr(color)}"/>')


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
