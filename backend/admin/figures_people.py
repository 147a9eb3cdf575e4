"""The results page's participant-level figures, and people against models on one eps axis.

Built from `StudyResults.participants` (`backend.study.participants.participant_analysis`) so the page, its
tables and the CSV downloads show the same numbers. Eps are shown in 1/255 of the pixel range, as in
`backend.admin.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from backend.admin.comparison import ModelRow
from backend.admin.figures import GROUP_NAMES, Figure, Table, _x255
from backend.admin.plots import PALETTE, RefLine, Series, line_chart
from backend.services.results import StudyResults

CONDITION_NAMES = {"all": "perturbed", "unmasked": GROUP_NAMES[False], "masked": GROUP_NAMES[True]}
CONDITION_FLAGS: dict[str, bool | None] = {"all": None, "unmasked": False, "masked": True}
#: The trials view is drawn this factor to the right of the participant view, so both bars show.
_NUDGE = 1.06


def _inf(v: float | None) -> float:
    return math.inf if v is None else _x255(v)


def _nan(v: float | None) -> float:
    return math.nan if v is None else _x255(v)


def _xs(series: Sequence[Series]) -> list[float]:
    """The finite positive x of the series (for a log axis's range)."""
    return [float(v) for s in series for v in s.x if v is not None and math.isfinite(v) and v > 0]


def detection_by_people_figure(results: StudyResults) -> Figure:
    """Detection rate per eps with two 95 % intervals: bootstrap over participants (solid) and the pooled
    Wilson interval of the trials view (dashed, nudged right): where they differ, people differ."""
    people = results.participants or {}
    levels = [r for r in people.get("levels", []) if r["eps"] > 0]
    wilson = {(r["eps"], r["masked"]): r for r in results.eps}
    groups = [g for g in (None, False, True) if any(r["masked"] == g for r in levels)]
    series = []
    for k, group in enumerate(groups):
        rows = [r for r in levels if r["masked"] == group]
        name = GROUP_NAMES[group]
        series.append(
            Series(
                label=f"{name}: participants",
                x=[_x255(r["eps"]) for r in rows],
                y=[r["detection_rate"] for r in rows],
                y_low=[r["ci"][0] for r in rows],
                y_high=[r["ci"][1] for r in rows],
                color=PALETTE[k],
            )
        )
        pooled = [wilson[(r["eps"], r["masked"])] for r in rows]
        series.append(
            Series(
                label=f"{name}: trials view",
                x=[_x255(r["eps"]) * _NUDGE for r in pooled],
                y=[r["detection_rate"] for r in pooled],
                y_low=[r["ci_low"] for r in pooled],
                y_high=[r["ci_high"] for r in pooled],
                line=False,
                dashed=True,
                color=PALETTE[k],
            )
        )
    svg = None
    if levels:
        xs = sorted({_x255(r["eps"]) for r in levels})
        svg = line_chart(
            series,
            title="Detection rate: intervals over people vs over trials",
            x_label="eps (in 1/255 of the pixel range, log scale)",
            y_label="judged perturbed",
            x_log=True,
            x_range=(xs[0] / 1.5, xs[-1] * 1.5),
            y_range=(0.0, 1.0),
            x_ticks=xs,
            x_format=lambda v: f"{v:.3g}",
            y_format=lambda v: f"{100 * v:.0f} %",
        )
    columns = ["eps", "eps_255", "masked", "n", "n_participants", "min_trials_per_participant", "detection_rate"]
    columns += ["ci_low", "ci_high", "wilson_low", "wilson_high", "dprime", "dprime_ci_low", "dprime_ci_high"]
    rows_out = []
    for r in people.get("levels", []):
        w = wilson.get((r["eps"], r["masked"]), {})
        head = [r["eps"], _x255(r["eps"]), r["masked"], r["n"], r["n_participants"], r["min_trials_per_participant"]]
        rows_out.append(
            [*head, r["detection_rate"], *r["ci"], w.get("ci_low"), w.get("ci_high"), r["dprime"], *r["dprime_ci"]]
        )
    return Figure(
        key="people",
        title="Detection rate, participant level",
        svg=svg,
        tables=[Table(columns, rows_out, "Per eps level: participant bootstrap (ci, dprime_ci) and Wilson (trials)")],
        caption=f"Solid: 95 % intervals from {people.get('n_boot', 0)} resamples of participants (and their trials "
        "within). Dashed, nudged right: the pooled Wilson interval, which treats every trial as independent "
        "(the trials view); it is too narrow whenever people differ.",
    )


def thresholds_by_person_figure(results: StudyResults) -> Figure:
    """Each person's eps50 (their own fit), one row per person sorted by it, per condition; at the bottom
    (row 0) the group's eps50 with its participant-bootstrap interval. The spread is the finding."""
    people = results.participants or {}
    persons = people.get("per_participant", [])
    conds = [b["condition"] for b in people.get("thresholds", [])]
    first = conds[0] if conds else "all"
    order = sorted(persons, key=lambda p: p["fits"].get(first, {}).get("eps50") or math.inf)
    rank = {p["participant_id"]: i + 1 for i, p in enumerate(order)}
    series = []
    for k, block in enumerate(people.get("thresholds", [])):
        c = block["condition"]
        fitted = [p for p in persons if (p["fits"].get(c) or {}).get("eps50") is not None]
        series.append(
            Series(
                label=f"{CONDITION_NAMES[c]}: each person",
                x=[_x255(p["fits"][c]["eps50"]) for p in fitted],
                y=[rank[p["participant_id"]] for p in fitted],
                line=False,
                color=PALETTE[k],
            )
        )
        if block["eps50"] is not None:
            lo, hi = block["eps50_ci"]
            series.append(
                Series(
                    label=f"{CONDITION_NAMES[c]}: group (95 % CI over people)",
                    x=[_x255(block["eps50"])],
                    y=[-0.5 * k],
                    x_low=[_nan(lo)],
                    x_high=[_inf(hi)],
                    line=False,
                    color=PALETTE[k],
                )
            )
    xs = _xs(series)
    svg = None
    if xs:
        svg = line_chart(
            series,
            title="eps at 50 % detection, person by person",
            x_label="eps50 (in 1/255 of the pixel range, log scale)",
            y_label="participant (sorted); 0 = group",
            x_log=True,
            x_range=(min(xs) / 1.5, max(xs) * 1.5),
            y_range=(-1.0, len(persons) + 1.0),
            ref_lines=[RefLine(0.0, "")],
            height=max(300, 120 + 14 * len(persons)),
        )
    columns = ["participant_id", "n_trials", "n_clean", "false_alarm_rate", "hit_rate", "dprime"]
    for c in conds:
        columns += [f"{c}_eps50", f"{c}_eps75", f"{c}_at_bound", f"{c}_note"]
    rows = []
    for p in persons:
        row = [p["participant_id"], p["n_trials"], p["n_clean"], p["false_alarm_rate"], p["hit_rate"], p["dprime"]]
        for c in conds:
            f = p["fits"].get(c) or {}
            row += [f.get("eps50"), f.get("eps75"), " ".join(f.get("at_bound", [])) or None, f.get("reason")]
        rows.append(row)
    return Figure(
        key="participants",
        title="Participants: d' and thresholds",
        svg=svg,
        tables=[Table(columns, rows, "Per participant (their own psychometric fit; d' over all perturbed trials)")],
        caption="Dots: each participant's eps at 50 % detection from their own fit (none: too few trials or "
        "never reaching 50 %). Bottom: the group's eps50 with its 95 % interval over people.",
    )


def _robust(metrics: dict[str, Any]) -> dict[str, dict[float, float]]:
    """attack -> {eps: robust accuracy} from `metrics["robust_acc"]` (eps keys are strings there)."""
    grids = metrics.get("robust_acc") or {}
    return {a: {float(e): float(acc) for e, acc in grid.items()} for a, grid in grids.items()}


def people_vs_models_figure(results: StudyResults, models: Sequence[ModelRow], attack: str | None) -> Figure:
    """People's detection curve and the models' robust accuracy on one log eps axis, the human eps50 marked on
    each model's curve: where people notice vs where models fail. ``attack``: whose robust accuracy (the
    study's attack when the models were evaluated with it, else each model's first)."""
    people = results.participants or {}
    blocks = [b for b in people.get("thresholds", []) if b["eps50"] is not None]
    series: list[Series] = []
    for k, b in enumerate(blocks):
        flag = CONDITION_FLAGS[b["condition"]]
        rows = [r for r in people.get("levels", []) if r["eps"] > 0 and (flag is None or r["masked"] == flag)]
        series.append(
            Series(
                label=f"people: {CONDITION_NAMES[b['condition']]} detected",
                x=[_x255(r["eps"]) for r in rows],
                y=[r["detection_rate"] for r in rows],
                y_low=[r["ci"][0] for r in rows],
                y_high=[r["ci"][1] for r in rows],
                color=PALETTE[k],
            )
        )
    human50 = blocks[0]["eps50"] if blocks else None
    table_rows: list[list[Any]] = []
    for j, m in enumerate(m for m in models if m.metrics and _robust(m.metrics)):
        robust = _robust(m.metrics or {})
        name = attack if attack in robust else sorted(robust)[0]
        grid = sorted(e for e in robust[name] if e > 0)
        if not grid:
            continue
        accs = [robust[name][e] for e in grid]
        color = PALETTE[(len(blocks) + j) % len(PALETTE)]
        label = f"model #{m.id} {m.method} ({name}) accuracy"
        series.append(Series(label=label, x=[_x255(e) for e in grid], y=accs, dashed=True, color=color))
        at = None
        if human50 is not None and grid[0] <= human50 <= grid[-1]:
            at = float(np.interp(math.log(human50), np.log(grid), accs))
            series.append(Series(label="", x=[_x255(human50)], y=[at], line=False, color=color))
        table_rows.append([m.id, m.name, m.method, name, human50, at])
    svg = None
    xs = _xs(series)
    if xs and blocks:
        refs = [RefLine(_x255(human50), "people: 50 % notice", axis="x")] if human50 is not None else []
        svg = line_chart(
            series,
            title="Where people notice vs where models fail",
            x_label="eps (in 1/255 of the pixel range, log scale)",
            y_label="detected (people) / accuracy (models)",
            x_log=True,
            x_range=(min(xs) / 1.5, max(xs) * 1.5),
            y_range=(0.0, 1.0),
            y_format=lambda v: f"{100 * v:.0f} %",
            ref_lines=refs,
            width=880,
            height=420,
        )
    return Figure(
        key="people-vs-models",
        title="People and models on one eps axis",
        svg=svg,
        tables=[
            Table(
                ["model_id", "name", "method", "attack", "human_eps50", "model_accuracy_at_human_eps50"],
                table_rows,
                "Each model's robust accuracy where half the people notice the perturbation (log-eps interpolation)",
            )
        ],
        caption="Solid: share of images people judged perturbed (95 % intervals over participants). Dashed: "
        "each model's robust accuracy; the dot on it marks the human eps50 (the first condition's). A model "
        "still accurate there fails only where people already notice.",
    )
