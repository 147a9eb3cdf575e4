"""Histograms: round bin edges, counts per bin, and grouped bars.

Its own module because binning is computed apart from drawing (the figures count once and draw the counts).
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
    Scale,
    attr,
    draw_axes,
    draw_legend,
    fmt,
    is_finite,
    legend_layout,
)
from backend.admin.plots.ticks import format_tick, nice_range, nice_step, nice_ticks


def bin_edges(values: Sequence[Number], *, n_bins: int = 20, lo: float | None = None) -> list[float]:
    """Round, equal-width bin edges covering the finite `values` (about `n_bins` bins; [0, 1] when empty)."""
    finite = [float(v) for v in values if is_finite(v)]
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
        if not is_finite(v) or v < edges[0] or v > edges[-1]:
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
    rows = legend_layout(legend, margins.left, width - margins.right) if len(groups) > 1 else []
    xs = Scale(edges[0], edges[-1], margins.left, width - margins.right)
    ys = Scale(0, nice_range(0, top)[1], height - margins.bottom, margins.top + LEGEND_ROW * len(rows))
    canvas = Canvas(width, height, title)
    y_ticks = [t for t in nice_ticks(0, ys.hi) if float(t).is_integer()]
    stride = max(1, math.ceil((len(edges) - 1) / 10))
    draw_axes(
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
        canvas.add(f'<g class="series" data-label="{attr(label)}">')
        for i, c in enumerate(counts):
            if c <= 0:
                continue
            x0, x1 = xs(edges[i]), xs(edges[i + 1])
            w = (x1 - x0) / n
            y = ys(c)
            canvas.add(
                f'<rect x="{fmt(x0 + k * w + 0.5)}" y="{fmt(y)}" width="{fmt(max(w - 1, 0.5))}" '
                f'height="{fmt(ys.px0 - y)}" class="bar" fill="{attr(color)}" data-count="{c}"/>'
            )
        canvas.add("</g>")
    draw_legend(canvas, legend, rows, margins.top - 4)
    return canvas.svg()
