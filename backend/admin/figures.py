"""The dashboard's figures: each an SVG, the numbers behind it as tables, and the first table as CSV.

Built from what the services return (`backend.services.results.StudyResults`, model rows with their metrics),
so the page, its `<details>` tables and the CSV downloads always show the same numbers. Eps are shown in
units of 1/255 of the pixel range (8 = 8/255 = 0.0314), the usual unit of L-inf radii.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.admin.plots import (
    PALETTE,
    RefLine,
    Series,
    bin_edges,
    histogram,
    histogram_counts,
    line_chart,
)
from backend.csvsafe import spreadsheet_safe
from backend.services.results import StudyResults

GROUP_NAMES = {None: "perturbed", False: "unmasked (whole image)", True: "masked (salient pixels spared)"}
GROUP_KEYS = {None: "all", False: "unmasked", True: "masked"}
FIT_PARAMETERS = ("alpha", "beta", "guess", "lapse", "eps50", "eps75")
CONFIDENCE_LABELS = {1: "1 guess", 2: "2", 3: "3", 4: "4 sure"}
#: Response times above this percentile are left out of the histogram (and counted in its caption).
RT_PERCENTILE = 99


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else spreadsheet_safe(v) for v in row])
        return out.getvalue()


@dataclass
class Figure:
    """One figure of a page: `key` names its CSV (`<key>.csv`, the first table)."""

    key: str
    title: str
    svg: str | None
    tables: list[Table] = field(default_factory=list)
    caption: str = ""


def _x255(eps: float) -> float:
    return eps * 255.0


def _groups(results: StudyResults) -> list[bool | None]:
    """The masked values of the perturbed levels, in the order None, False, True."""
    present = {row["masked"] for row in results.eps if row["eps"] > 0}
    return [g for g in (None, False, True) if g in present]


def _false_alarm_rate(results: StudyResults) -> float | None:
    return next((row["false_alarm_rate"] for row in results.eps if row["eps"] == 0), None)


# --- detection ----------------------------------------------------------------------------------------------


def detection_figure(results: StudyResults, fits: dict[bool | None, dict[str, Any] | None]) -> Figure:
    """Detection rate per eps (Wilson 95 % bars) per masked group, the fitted psychometric curves with eps50
    and eps75 (bootstrap 95 % intervals as horizontal bars), and the false-alarm rate of the clean trials.

    `fits`: group -> fitted curve (`PsychometricFit.to_dict()`), `None` key = all perturbed trials pooled.
    """
    groups = _groups(results)
    series: list[Series] = []
    levels = sorted({row["eps"] for row in results.eps if row["eps"] > 0})
    for k, group in enumerate(groups):
        rows = [r for r in results.eps if r["eps"] > 0 and r["masked"] == group]
        series.append(
            Series(
                label=f"{GROUP_NAMES[group]} (observed)",
                x=[_x255(r["eps"]) for r in rows],
                y=[r["detection_rate"] for r in rows],
                y_low=[r["ci_low"] for r in rows],
                y_high=[r["ci_high"] for r in rows],
                line=False,
                color=PALETTE[k],
            )
        )
    for k, group in enumerate(fits):
        fit = fits[group]
        if fit is None:
            continue
        color = PALETTE[groups.index(group)] if group in groups else PALETTE[len(groups) + k]
        series.append(
            Series(
                label=f"fit: {GROUP_NAMES[group]}",
                x=[_x255(e) for e in fit["grid_eps"]],
                y=fit["grid_p"],
                markers=False,
                color=color,
            )
        )
        for level, name in ((0.5, "eps50"), (0.75, "eps75")):
            value = fit.get(name)
            if value is None:
                continue
            lo, hi = (fit.get("ci") or {}).get(name) or (None, None)
            series.append(
                Series(
                    label="",
                    x=[_x255(value)],
                    y=[level],
                    x_low=[_x255(lo) if lo is not None else math.nan],
                    x_high=[_x255(hi) if hi is not None else math.inf],
                    line=False,
                    color=color,
                )
            )
    refs = [RefLine(0.5, "50 %"), RefLine(0.75, "75 %")]
    fa = _false_alarm_rate(results)
    if fa is not None:
        refs.append(RefLine(fa, f"false alarms on clean images: {100 * fa:.0f} %", anchor="start"))
    svg = None
    if levels:
        lo, hi = _x255(min(levels)) / 2, _x255(max(levels)) * 2
        svg = line_chart(
            series,
            title="Detection rate by perturbation size",
            x_label="eps (in 1/255 of the pixel range, log scale)",
            y_label="judged perturbed",
            x_log=True,
            x_range=(lo, hi),
            y_range=(0.0, 1.0),
            x_ticks=[_x255(e) for e in levels],
            x_format=lambda v: f"{v:.3g}",
            y_format=lambda v: f"{100 * v:.0f} %",
            ref_lines=refs,
        )
    return Figure(
        key="detection",
        title="Detection rate",
        svg=svg,
        tables=[_eps_table(results), _fit_table(fits)],
        caption="Points: share of main-phase trials judged perturbed, with Wilson 95 % intervals. Lines: "
        "psychometric function fitted by maximum likelihood; horizontal bars: eps at 50 % and 75 % detection with "
        "parametric-bootstrap 95 % intervals (an open end: not reached within the resamples).",
    )


#: Columns of the per-eps table and the `eps_table` key each comes from (eps_255 is computed).
EPS_COLUMNS = {
    "eps": "eps", "masked": "masked", "n": "n", "n_participants": "n_participants",
    "n_judged_perturbed": "n_perturbed_judgments", "detection_rate": "detection_rate", "ci_low": "ci_low",
    "ci_high": "ci_high", "hit_rate": "hit_rate", "false_alarm_rate": "false_alarm_rate", "dprime": "dprime",
    "mean_rt_ms": "mean_rt_ms", "median_rt_ms": "median_rt_ms", "mean_confidence": "mean_confidence",
}  # fmt: skip


def _eps_table(results: StudyResults) -> Table:
    columns = ["eps", "eps_255", *list(EPS_COLUMNS)[1:]]
    rows = [[r["eps"], _x255(r["eps"]), *(r[key] for key in list(EPS_COLUMNS.values())[1:])] for r in results.eps]
    return Table(columns, rows, "Per eps level (main phase)")


def _fit_table(fits: dict[bool | None, dict[str, Any] | None]) -> Table:
    rows: list[list[Any]] = []
    for group, fit in fits.items():
        if fit is None:
            continue
        ci = fit.get("ci") or {}
        for name in FIT_PARAMETERS:
            lo, hi = ci.get(name) or (None, None)
            rows.append([GROUP_KEYS[group], name, fit.get(name), lo, hi])
        rows.append([GROUP_KEYS[group], "n_trials", fit.get("n_trials"), None, None])
        rows.append([GROUP_KEYS[group], "log_likelihood", fit.get("log_likelihood"), None, None])
    return Table(["group", "parameter", "estimate", "ci_low", "ci_high"], rows, "Psychometric fit")


# --- sensitivity ------------------------------------------------------------------------------------------


def dprime_figure(results: StudyResults) -> Figure:
    """d' (log-linear corrected) per eps and group, with the hit and false-alarm counts behind it."""
    groups = _groups(results)
    clean = next((r for r in results.eps if r["eps"] == 0), None)
    fa_n = clean["n_perturbed_judgments"] if clean else 0
    cr_n = (clean["n"] - clean["n_perturbed_judgments"]) if clean else 0
    series, rows = [], []
    for k, group in enumerate(groups):
        levels = [r for r in results.eps if r["eps"] > 0 and r["masked"] == group]
        series.append(
            Series(
                label=GROUP_NAMES[group],
                x=[_x255(r["eps"]) for r in levels],
                y=[r["dprime"] for r in levels],
                color=PALETTE[k],
            )
        )
        for r in levels:
            hits = r["n_perturbed_judgments"]
            rows.append(
                [
                    r["eps"],
                    _x255(r["eps"]),
                    group,
                    hits,
                    r["n"] - hits,
                    r["hit_rate"],
                    fa_n,
                    cr_n,
                    r["false_alarm_rate"],
                    r["dprime"],
                ]
            )
    values = [v for s in series for v in s.y if v is not None]
    svg = None
    if values and clean is not None:
        top = max(1.0, max(values))
        bottom = min(0.0, min(values))
        levels_x = sorted({x for s in series for x in s.x if x is not None})
        svg = line_chart(
            series,
            title="Sensitivity d′ by perturbation size",
            x_label="eps (in 1/255 of the pixel range, log scale)",
            y_label="d′ (log-linear corrected)",
            x_log=True,
            x_range=(levels_x[0] / 1.5, levels_x[-1] * 1.5),
            y_range=(math.floor(bottom), math.ceil(top)),
            x_ticks=levels_x,
            x_format=lambda v: f"{v:.3g}",
            ref_lines=[RefLine(0.0, "chance")],
        )
    columns = ["eps", "eps_255", "masked", "hits", "misses", "hit_rate", "false_alarms", "correct_rejections",
               "false_alarm_rate", "dprime"]  # fmt: skip
    return Figure(
        key="dprime",
        title="Hits, false alarms and d′",
        svg=svg,
        tables=[Table(columns, rows, "Hits against the clean trials' false alarms")],
        caption="d′ = z(H) − z(F) with H = (hits + 0.5)/(signal trials + 1) and F likewise for the clean trials "
        "(log-linear correction), so rates of 0 or 1 stay finite."
        + ("" if clean is not None else " No clean trials yet: d′ needs them."),
    )


# --- distributions ----------------------------------------------------------------------------------------


def _response_groups(results: StudyResults) -> list[tuple[str, list[dict[str, Any]]]]:
    """Main-phase responses as: clean, then perturbed per masked group."""
    out = [("clean", [r for r in results.responses if r["eps"] == 0])]
    for group in _groups(results):
        out.append(
            (
                f"perturbed, {GROUP_NAMES[group]}" if group is not None else "perturbed",
                [
                    r
                    for r in results.responses
                    if r["eps"] > 0 and (r["masked"] if group is not None else None) == group
                ],
            )
        )
    return [(name, rows) for name, rows in out if rows]


def rt_figure(results: StudyResults) -> Figure:
    groups = _response_groups(results)
    all_rt = [float(r["rt_ms"]) for _, rows in groups for r in rows if r["rt_ms"] is not None]
    cut = float(np.percentile(all_rt, RT_PERCENTILE)) if all_rt else 1.0
    edges = bin_edges([v for v in all_rt if v <= cut], n_bins=20)
    counts = [(name, histogram_counts([r["rt_ms"] for r in rows], edges)) for name, rows in groups]
    beyond = sum(v > edges[-1] for v in all_rt)
    svg = None
    if all_rt:
        svg = histogram(counts, edges, title="Response times", x_label="response time (ms, from stimulus onset)")
    medians = ", ".join(
        f"{name}: median {np.median([r['rt_ms'] for r in rows]):.0f} ms (n = {len(rows)})" for name, rows in groups
    )
    rows = [[edges[i], edges[i + 1], *(c[i] for _, c in counts)] for i in range(len(edges) - 1)]
    return Figure(
        key="rt",
        title="Response times",
        svg=svg,
        tables=[Table(["bin_start_ms", "bin_end_ms", *(name for name, _ in counts)], rows, "Responses per bin")],
        caption=(medians + ". " if medians else "") + _beyond_note(beyond, edges[-1]),
    )


def _beyond_note(n: int, limit: float) -> str:
    if not n:
        return ""
    return f"{n} response{'s' * (n != 1)} above {limit:.0f} ms (beyond the {RT_PERCENTILE}th percentile) not drawn."


def confidence_figure(results: StudyResults) -> Figure:
    groups = _response_groups(results)
    edges = [0.5, 1.5, 2.5, 3.5, 4.5]
    counts = [(name, histogram_counts([r["confidence"] for r in rows], edges)) for name, rows in groups]
    svg = None
    if groups:
        svg = histogram(
            counts,
            edges,
            title="Confidence",
            x_label="confidence (1 = guessing … 4 = certain)",
            x_ticks=[1, 2, 3, 4],
            x_format=lambda v: CONFIDENCE_LABELS.get(round(v), ""),
        )
    rows = [[level, *(c[level - 1] for _, c in counts)] for level in (1, 2, 3, 4)]
    return Figure(
        key="confidence",
        title="Confidence",
        svg=svg,
        tables=[Table(["confidence", *(name for name, _ in counts)], rows, "Responses per confidence level")],
        caption="Main-phase responses per confidence rating, for clean and perturbed images.",
    )


def study_figures(results: StudyResults, split: dict[bool, StudyResults] | None = None) -> list[Figure]:
    """The results page's figures; `split` holds the results restricted to masked / unmasked stimuli when a
    study has both (their fits are drawn beside the pooled one)."""
    fits: dict[bool | None, dict[str, Any] | None] = {}
    if split:
        for group, sub in split.items():
            fits[group] = sub.psychometric
    else:
        groups = _groups(results)
        fits[groups[0] if len(groups) == 1 else None] = results.psychometric
    return [detection_figure(results, fits), dprime_figure(results), rt_figure(results), confidence_figure(results)]
