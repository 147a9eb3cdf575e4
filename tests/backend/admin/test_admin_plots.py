"""The SVG plotting module: ticks, scales, where points and error bars land, histograms, escaping.

Charts are parsed as XML; the frame `FRAME` puts the plot area at x 100..500, y 250 (bottom)..50 (top).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from backend.admin.plots import (
    Margins,
    RefLine,
    Scale,
    Series,
    bin_edges,
    histogram,
    histogram_counts,
    line_chart,
    log_ticks,
    nice_range,
    nice_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
FRAME = {"width": 520, "height": 300, "margins": Margins(left=100, right=20, top=50, bottom=50)}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or it raises


def series_group(root: ET.Element, label: str) -> ET.Element:
    for g in root.iter(f"{SVG}g"):
        if g.get("data-label") == label:
            return g
    raise AssertionError(f"no series {label!r}")


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 47) == [0, 10, 20, 30, 40]
    assert nice_ticks(0.013, 0.052, 4) == [0.02, 0.03, 0.04, 0.05]
    assert nice_ticks(3, 3) == [3.0]
    assert nice_range(0.3, 47) == (0, 50)
    assert log_ticks(1, 100) == [1, 2, 5, 10, 20, 50, 100]
    assert log_ticks(1.5, 40) == [2, 5, 10, 20]


def test_scales_map_linearly_and_logarithmically() -> None:
    assert Scale(0, 10, 100, 200)(5) == 150
    assert Scale(0, 1, 250, 50)(0.25) == 200  # y grows upwards
    log = Scale(1, 100, 0, 200, log=True)
    assert log(10) == pytest.approx(100)
    assert log(1) == 0 and log(100) == pytest.approx(200)
    assert not log.contains(0) and not log.contains(None) and log.contains(50)
    with pytest.raises(ValueError, match="positive"):
        Scale(0, 10, 0, 1, log=True)
    with pytest.raises(ValueError, match="two different"):
        Scale(1, 1, 0, 1)


def test_points_and_error_bars_land_where_the_scales_put_them() -> None:
    s = Series("rate", x=[1, 3], y=[0.5, 1.0], y_low=[0.25, 0.75], y_high=[0.75, 1.0], line=False)
    root = parse(line_chart([s], title="t", x_label="x", y_label="y", x_range=(0, 4), y_range=(0, 1), **FRAME))
    g = series_group(root, "rate")
    circles = [(float(c.get("cx")), float(c.get("cy"))) for c in g.iter(f"{SVG}circle")]
    # x = 100 + v / 4 * 400; the legend takes one row of 16 px above the plot, whose top is then 66: y = 250 - v * 184.
    top = 50 + 16
    assert circles == [(200.0, pytest.approx(250 - 0.5 * (250 - top))), (400.0, float(top))]
    vertical = [
        (float(line.get("y1")), float(line.get("y2")))
        for line in g.iter(f"{SVG}line")
        if line.get("x1") == line.get("x2") == "200"
    ]
    assert vertical == [(pytest.approx(250 - 0.25 * 184), pytest.approx(250 - 0.75 * 184))]
    assert not list(g.iter(f"{SVG}polyline"))  # line=False


def test_missing_values_break_the_line_and_infinite_interval_ends_reach_the_edge() -> None:
    s = Series("", x=[1, 2, 3, 4, 5], y=[0.1, 0.2, None, 0.4, float("nan")])
    threshold = Series("", x=[2], y=[0.5], x_low=[1.5], x_high=[math.inf], line=False)
    root = parse(
        line_chart([s, threshold], title="t", x_label="x", y_label="y", x_range=(0, 5), y_range=(0, 1), **FRAME)
    )
    lines = root.findall(f".//{SVG}polyline")
    assert [len(p.get("points").split()) for p in lines] == [2]  # (1, 2) joined; 4 alone; 5 missing
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 3 + 1
    horizontal = [
        ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "errorbar" and ln.get("y1") == ln.get("y2")
    ]
    assert (float(horizontal[0].get("x1")), float(horizontal[0].get("x2"))) == (100 + 1.5 / 5 * 400, 500.0)


def test_log_axis_reference_lines_and_points_outside_the_range() -> None:
    s = Series("d", x=[2, 8, 64], y=[0.2, 0.9, 1.0], line=False)
    svg = line_chart(
        [s],
        title="t",
        x_label="x",
        y_label="y",
        x_log=True,
        x_range=(1, 16),
        y_range=(0, 1),
        ref_lines=[RefLine(0.5, "50 %"), RefLine(0.25, "fa", anchor="start"), RefLine(4, "four", axis="x")],
        **FRAME,
    )
    root = parse(svg)
    cx = sorted(float(c.get("cx")) for c in root.iter(f"{SVG}circle"))
    assert cx == [pytest.approx(100 + 400 * math.log10(2) / math.log10(16)), pytest.approx(100 + 400 * 0.75)]
    refs = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "ref-line"]
    assert len(refs) == 3
    labels = {t.text: t.get("text-anchor") for t in root.iter(f"{SVG}text") if t.get("class") == "ref-label"}
    assert labels == {"50 %": "end", "fa": "start", "four": "start"}


def test_text_is_escaped_and_the_chart_is_labelled() -> None:
    nasty = '<script>alert("x")</script> & co'
    svg = line_chart([Series(nasty, x=[0, 1], y=[0, 1])], title=nasty, x_label=nasty, y_label="y")
    assert "<script>" not in svg
    root = parse(svg)
    assert root.get("role") == "img" and root.get("aria-label") == nasty
    assert root.find(f"{SVG}title").text == nasty
    assert nasty in [t.text for t in root.iter(f"{SVG}text")]


def test_series_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="y_low has 1 values, x has 2"):
        Series("s", x=[1, 2], y=[1, 2], y_low=[0])


def test_histogram_counts_and_edges() -> None:
    edges = [0.0, 1.0, 2.0, 3.0]
    # Left edges inclusive, the last bin also takes its right edge; outside, NaN and None are not counted.
    assert histogram_counts([0, 0.5, 1, 2.999, 3, 3.01, -1, None, float("nan")], edges) == [2, 1, 2]
    e = bin_edges([120, 480, 333, 999], n_bins=10, lo=0)
    assert e[0] == 0 and e[-1] >= 999 and all(b - a == pytest.approx(e[1] - e[0]) for a, b in itertools.pairwise(e))
    assert sum(histogram_counts([120, 480, 333, 999], e)) == 4
    assert bin_edges([]) == [0.0, 1.0]


def test_histogram_draws_one_bar_per_non_empty_bin_with_its_height() -> None:
    edges = [0, 10, 20, 30]
    svg = histogram([("a", [3, 0, 1]), ("b", [1, 2, 0])], edges, title="h", x_label="ms", **FRAME)
    root = parse(svg)
    bars = {g.get("data-label"): g.findall(f"{SVG}rect") for g in root.iter(f"{SVG}g") if g.get("data-label")}
    assert [int(r.get("data-count")) for r in bars["a"]] == [3, 1]
    assert [int(r.get("data-count")) for r in bars["b"]] == [1, 2]
    heights = {int(r.get("data-count")): float(r.get("height")) for rs in bars.values() for r in rs}
    assert heights[3] == pytest.approx(3 * heights[1], abs=0.02)  # coordinates have two decimals
    assert heights[2] == pytest.approx(2 * heights[1], abs=0.02)
    with pytest.raises(ValueError, match="one count per bin"):
        histogram([("a", [1])], edges, title="h", x_label="x")
