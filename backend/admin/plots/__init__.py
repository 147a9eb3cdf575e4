"""Small server-side SVG charts for the dashboard: points/lines with error bars, histograms, axes with ticks.

No chart library and no script: each function returns one `<svg>` element as a string, to be placed inline in
a page (the admin pages' CSP allows no inline script or style, and none is used; colours of the series are SVG
presentation attributes, axes and text take their colours from the page's stylesheet through classes).
Every text is XML-escaped here, so the output is safe to insert unescaped.

Coordinates: data values map linearly (or logarithmically with `x_log`) onto the plot area, which is the
figure minus `Margins`; y grows upwards. Missing values (None, NaN) are skipped: a line breaks there.

The package: `ticks` (round ticks), `frame` (scales, canvas, axes, legend), `lines` (`line_chart`) and
`histograms`; the names below are its public surface, imported by the dashboard's figures.
"""

from backend.admin.plots.frame import PALETTE, Margins, RefLine, Scale, Series
from backend.admin.plots.histograms import bin_edges, histogram, histogram_counts
from backend.admin.plots.lines import line_chart
from backend.admin.plots.ticks import format_tick, log_ticks, nice_range, nice_step, nice_ticks

__all__ = [
    "PALETTE",
    "Margins",
    "RefLine",
    "Scale",
    "Series",
    "bin_edges",
    "format_tick",
    "histogram",
    "histogram_counts",
    "line_chart",
    "log_ticks",
    "nice_range",
    "nice_step",
    "nice_ticks",
]
