"""The model comparison of the training page: clean and robust accuracy against eps, one colour per model (or
per group of seeds), each legend entry naming the model and where its salience maps came from.

Why groups: a claim about SIP-AT rests on several seeds, and one line per seed hides the spread. Models whose
training differs only by the seed (same dataset, method, architecture, salience source, recipe) form a group,
drawn as its mean with ± sd bars and listed as one row "mean ± sd" with the seeds behind it; a model alone
is drawn and listed as it is. Why the salience column: a "SIP-AT" trained with 3 of 240 human maps is nearly
PGD-AT, so the source and its coverage ("human 3/240") belong next to every number.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.admin.evaluations import accuracy_chart, column_order, evaluations_table, warnings_of
from backend.admin.figures import Figure, Table
from backend.admin.plots import PALETTE, Series
from backend.vocabulary import MASKED_METHODS, eps_label

#: Params that may differ within a group of seeds (everything else must match).
_NOT_RECIPE = ("seed", "name")


@dataclass(frozen=True)
class ModelRow:
    """A trained model as the comparison shows it (`metrics` from its train job, or None while training)."""

    id: int
    name: str
    method: str
    arch: str
    seed: int | None
    dataset_id: int | None
    status: str | None
    metrics: dict[str, Any] | None
    params: dict[str, Any] | None = None
    planned_coverage: dict[str, Any] | None = None

    @property
    def salience(self) -> str:
        """Where its maps came from: 'human n/N' (of the training images; '+ predicted' when a salience
        predictor filled the rest), 'Grad-CAM', 'imported', 'none'."""
        params = self.params or {}
        if self.method not in MASKED_METHODS:
            return "none"
        source = params.get("salience", "none")
        coverage = (self.metrics or {}).get("coverage") or self.planned_coverage
        fallback = " + Grad-CAM" if params.get("fallback") == "gradcam" and source != "gradcam" else ""
        if source in ("annotations", "predicted"):
            human = f"human {coverage['human']}/{coverage['n_train']}" if coverage else "human"
            return human + (" + predicted" if source == "predicted" else fallback)
        return {"gradcam": "Grad-CAM", "imported": "imported"}.get(source, "none") + fallback

    def group_key(self) -> tuple[Any, ...]:
        recipe = {k: v for k, v in (self.params or {}).items() if k not in _NOT_RECIPE}
        return (self.dataset_id, self.method, self.arch, self.salience, repr(sorted(recipe.items())))


def _curves(m: ModelRow) -> dict[str, dict[float, float]]:
    """attack -> {eps: accuracy}, with eps 0 = the clean accuracy (eps keys are strings in the metrics)."""
    metrics = m.metrics or {}
    out: dict[str, dict[float, float]] = {}
    for attack, grid in (metrics.get("robust_acc") or {}).items():
        out[attack] = {0.0: float(metrics["clean_acc"]), **{float(e): float(a) for e, a in grid.items()}}
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(values: Sequence[float | None]) -> Any:
    """One value as is; several as 'mean ± sd' (3 decimals); None where a model lacks it."""
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        return values[0]
    mean, sd = _mean_sd([float(v) for v in values if v is not None])
    return f"{mean:.3f} ± {sd:.3f}"


def _warnings(group: list[ModelRow]) -> str:
    """The sanity checks' warnings of a row's models, each prefixed with its model when the row has several."""
    if len(group) == 1:
        return "; ".join(warnings_of(group[0].metrics))
    return "; ".join(f"#{m.id}: {w}" for m in group for w in warnings_of(m.metrics))


def group_models(models: Sequence[ModelRow]) -> list[list[ModelRow]]:
    """Evaluated models grouped by `ModelRow.group_key` (newest group first); unevaluated ones alone."""
    groups: dict[tuple[Any, ...], list[ModelRow]] = {}
    alone: list[list[ModelRow]] = []
    for m in models:
        if m.metrics and "clean_acc" in m.metrics:
            groups.setdefault(m.group_key(), []).append(m)
        else:
            alone.append([m])
    return sorted([*groups.values(), *alone], key=lambda g: -max(m.id for m in g))


def _label(group: list[ModelRow]) -> str:
    first = group[0]
    if len(group) == 1:
        return f"#{first.id} {first.name} · salience {first.salience}"
    seeds = ", ".join(str(m.seed) for m in sorted(group, key=lambda m: (m.seed is None, m.seed or 0)))
    return f"{first.method} {first.arch} · salience {first.salience} · mean ± sd of seeds {seeds}"


def models_figure(models: Sequence[ModelRow]) -> Figure:
    """Accuracy against the attack's eps: a colour per model or group of seeds (solid: the first attack,
    dashed: the others), the legend naming it and its salience source; the table one row per group."""
    groups = group_models(models)
    evaluated = [g for g in groups if g[0].metrics and "clean_acc" in g[0].metrics]
    attacks = column_order(sorted({a for g in evaluated for m in g for a in _curves(m)}))
    drawn = [a for a in attacks if "/" not in a]  # the ensemble's stage columns: in the table only
    grid = sorted({e for g in evaluated for m in g for per in _curves(m).values() for e in per if e > 0})
    series = []
    for k, group in enumerate(evaluated):
        color = PALETTE[k % len(PALETTE)]
        for j, attack in enumerate(drawn):
            xs = sorted({0.0, *grid})
            values = [[_curves(m).get(attack, {}).get(e) for m in group] for e in xs]
            kept = [(e, v) for e, v in zip(xs, values, strict=True) if all(x is not None for x in v)]
            if not kept:
                continue
            stats = [_mean_sd([float(x) for x in v if x is not None]) for _, v in kept]
            bars = len(group) > 1
            series.append(
                Series(
                    label=f"{_label(group)} ({attack})",
                    x=[255 * e for e, _ in kept],
                    y=[mean for mean, _ in stats],
                    y_low=[mean - sd for mean, sd in stats] if bars else None,
                    y_high=[mean + sd for mean, sd in stats] if bars else None,
                    dashed=j > 0,
                    color=color,
                )
            )
    svg = accuracy_chart(series, grid, width=880, height=420) if series else None
    columns = ["model_id", "name", "method", "arch", "seed", "dataset_id", "status", "salience", "clean_acc"]
    columns += [f"{a}@{eps_label(e)}" for a in attacks for e in grid]
    columns.append("warnings")
    rows = []
    for group in groups:
        first = group[0]
        ids = ", ".join(str(m.id) for m in group)
        seeds = ", ".join(str(m.seed) for m in group)
        clean = _cell([(m.metrics or {}).get("clean_acc") for m in group])
        cells = [_cell([_curves(m).get(a, {}).get(e) for m in group]) for a in attacks for e in grid]
        status = first.status if len(group) == 1 else "/".join(sorted({str(m.status) for m in group}))
        rows.append([ids, first.name, first.method, first.arch, seeds, first.dataset_id, status, first.salience])
        rows[-1] += [clean, *cells, _warnings(group)]
    tables = [Table(columns, rows, "Accuracy on the held-out images (mean ± sd over the seeds of a group)")]
    evaluations = evaluations_table(models)
    if evaluations.rows:
        tables.append(evaluations)
    return Figure(
        key="models",
        title="Models compared",
        svg=svg,
        tables=tables,
        caption="Robust accuracy under unmasked attacks (every method judged by the same adversary); solid: "
        f"{drawn[0] if drawn else 'first attack'}, dashed: the others (autoattack: the per-sample worst case "
        "over its four attacks; its stage columns and the sanity checks' warnings are in the tables). One colour "
        "per model, or per group of models that differ only by seed (drawn as mean ± sd). Salience: where the "
        "maps of SIP-AT came from (human n/N: training images with a human map).",
    )
