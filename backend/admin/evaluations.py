"""What an evaluation says, for the job page and the model comparison: each attack's robust accuracy per eps, the
AutoAttack ensemble's per-sample worst case beside its members' columns, and the sanity checks' warnings.

Why the warnings travel with the numbers: a robust accuracy from a model that outputs probabilities, has zero
gradients or is beaten harder by the black-box Square than by the gradient attacks is an upper bound at best
(gradient masking). `sipat.attacks.checks` says so in words with the numbers; a table without them invites
quoting the number anyway. Torch-free: built from the stored metrics (`sipat.evaluation.EvalResult.to_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.admin.figures import Figure, Table
from backend.admin.plots import PALETTE, Series, line_chart
from backend.vocabulary import EVAL_ATTACKS, eps_label

#: The ensemble's columns: "autoattack" (the per-sample worst case), "autoattack/+<stage>" (still robust after
#: that stage and the ones before, AutoAttack's printout) and "autoattack/<stage>" (the stage's own accuracy).
ENSEMBLE = "autoattack"


def column_order(columns: Sequence[str]) -> list[str]:
    """The registry's order (pgd, apgd, ..., autoattack), each ensemble sub-column right after "autoattack",
    unknown names last: the worst case stands beside the columns it is the minimum of."""
    rank = {a: k for k, a in enumerate(EVAL_ATTACKS)}

    def key(c: str) -> tuple[int, int, str]:
        head, _, sub = c.partition("/")
        return (rank.get(head, len(rank)), 0 if not sub else 1 if sub.startswith("+") else 2, c)

    return sorted(columns, key=key)


def curves(metrics: dict[str, Any]) -> dict[str, dict[float, float]]:
    """column -> {eps: accuracy}, eps 0 being the clean accuracy (eps keys are strings in the stored metrics)."""
    clean = metrics.get("clean_acc")
    out: dict[str, dict[float, float]] = {}
    for column in column_order(list(metrics.get("robust_acc") or {})):
        grid = {float(e): float(a) for e, a in metrics["robust_acc"][column].items()}
        out[column] = {0.0: float(clean), **grid} if clean is not None else grid
    return out


def warnings_of(metrics: dict[str, Any] | None) -> list[str]:
    """The sanity checks' warnings stored with an evaluation (none for metrics written before they existed)."""
    return [str(w) for w in (metrics or {}).get("warnings") or []]


def _grid(metrics: dict[str, Any]) -> list[float]:
    return sorted({e for per in curves(metrics).values() for e in per if e > 0})


def accuracy_table(metrics: dict[str, Any], title: str = "") -> Table:
    """One row per attack column (the ensemble's worst case beside its stages), one column per eps; the
    clean accuracy and the number of images first."""
    grid = _grid(metrics)
    labels = [eps_label(e) for e in grid]
    rows: list[list[Any]] = []
    for column, per in curves(metrics).items():
        rows.append([column, metrics.get("n"), metrics.get("clean_acc"), *(per.get(e) for e in grid)])
    return Table(["attack", "n", "clean_acc", *(f"eps {lab}" for lab in labels)], rows, title)


def evaluation_figure(metrics: dict[str, Any], key: str = "evaluation") -> Figure:
    """An evaluate job's result: accuracy against eps per attack (the ensemble's stage columns only in the
    table), the table, and the warnings in the caption."""
    shown = {c: per for c, per in curves(metrics).items() if "/" not in c}
    series = [
        Series(
            label=column,
            x=[255 * e for e in sorted(per)],
            y=[per[e] for e in sorted(per)],
            dashed=column != ENSEMBLE,
            color=PALETTE[k % len(PALETTE)],
        )
        for k, (column, per) in enumerate(shown.items())
        if per
    ]
    svg = accuracy_chart(series, _grid(metrics)) if series else None
    warnings = warnings_of(metrics)
    caption = (
        "autoattack: the per-sample worst case over APGD-CE, APGD-T, FAB-T and Square (each run on the images "
        "still robust); autoattack/+stage: still robust after that stage; autoattack/stage: that attack alone. "
    )
    caption += (
        f"Sanity checks: {len(warnings)} warning(s), listed with this evaluation."
        if warnings
        else "Sanity checks: no warning."
    )
    table = accuracy_table(metrics)
    return Figure(key=key, title="Accuracy per attack and eps", svg=svg, tables=[table], caption=caption)


def evaluations_table(models: Sequence[Any]) -> Table:
    """Every stored evaluation of every model (`metrics["evaluations"][key]`, from evaluate jobs): one row
    each, with every attack column at every eps and the warnings, for the model comparison."""
    found = [
        (m, key, ev)
        for m in models
        for key, ev in sorted(((m.metrics or {}).get("evaluations") or {}).items())
        if isinstance(ev, dict) and "clean_acc" in ev
    ]
    columns = column_order(sorted({c for _, _, ev in found for c in (ev.get("robust_acc") or {})}))
    grid = sorted({e for _, _, ev in found for e in _grid(ev)})
    labels = [eps_label(e) for e in grid]
    rows: list[list[Any]] = []
    for m, key, ev in found:
        per = curves(ev)
        cells = [per.get(c, {}).get(e) for c in columns for e in grid]
        rows.append([m.id, m.name, m.method, key, ev.get("masked"), ev.get("n"), ev["clean_acc"], *cells])
        rows[-1].append("; ".join(warnings_of(ev)))
    head = ["model_id", "name", "method", "evaluation", "masked", "n", "clean_acc"]
    head += [f"{c}@{lab}" for c in columns for lab in labels]
    return Table([*head, "warnings"], rows, "Evaluations (evaluate jobs), with the sanity checks' warnings")


def accuracy_chart(series: Sequence[Series], grid: Sequence[float], *, width: int = 640, height: int = 360) -> str:
    """Accuracy against the attack's eps (in 1/255; 0 = clean), one line per series: the evaluation's and the
    model comparison's figure."""
    ticks = sorted({0.0, *(255 * e for e in grid)})
    return line_chart(
        series,
        title="Clean and robust accuracy by attack radius",
        x_label="eps of the attack (in 1/255 of the pixel range; 0 = clean accuracy)",
        y_label="accuracy",
        x_range=(0.0, max(ticks[-1], 1.0) * 1.04),
        y_range=(0.0, 1.0),
        x_ticks=ticks,
        x_format=lambda v: f"{v:.3g}",
        y_format=lambda v: f"{100 * v:.0f} %",
        width=width,
        height=height,
    )
