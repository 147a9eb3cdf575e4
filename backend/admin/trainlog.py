"""A train job's curves: loss, and training, clean and robust validation accuracy per epoch, from its per-epoch
log (the rows `sipat train` writes to train_log.csv; the worker keeps them in the job's result as it trains).

Two charts side by side rather than one with two y axes: the loss has no fixed range, the accuracies live in
[0, 1], and a second axis would make the reader guess which line belongs to which scale. The table under them
holds every column of the log (lr and the training eps too, which show the warm-up and the eps ramp).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from backend.admin.figures import Figure, Table
from backend.admin.plots import PALETTE, Series, line_chart
from backend.schemas.jobs import TRAIN_LOG_KEY

__all__ = ["job_train_log", "train_log_figure"]

#: Accuracy columns of the log and their legend names (validation ones only with a validation split).
_ACCURACIES = (
    ("accuracy", "training (on the examples trained on)"),
    ("val_clean", "validation, clean"),
    ("val_robust", "validation, robust (PGD at the training eps)"),
)


def job_train_log(result: dict[str, Any] | None, metrics: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The per-epoch rows of a train job: its result's log (written after every epoch while it runs), else the
    history in its model's metrics (jobs that finished before the log was in the result); [] when none."""
    rows = (result or {}).get(TRAIN_LOG_KEY) or (metrics or {}).get("history") or []
    return [row for row in rows if isinstance(row, dict) and isinstance(row.get("epoch"), int | float)]


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def train_log_figure(
    rows: Sequence[dict[str, Any]], *, best_epoch: int | None = None, target_eps: float | None = None
) -> Figure:
    """The loss and accuracy curves of `rows` (one dict per epoch) with the log as the table; `best_epoch`
    (the epoch whose weights were kept, with a validation split) is named in the caption, and so is a last
    training radius below `target_eps` (the job's eps): an eps ramp longer than the run never reaches it."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    table = Table(columns, [[row.get(c) for c in columns] for row in rows], "Per-epoch training log")
    if not rows:
        return Figure(key="train_log", title="Training curves", svg=None, tables=[table])
    epochs = [float(row["epoch"]) for row in rows]
    lo, hi = min(epochs), max(epochs)
    x_range = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
    x_ticks = epochs if len(epochs) <= 15 else None  # whole epochs (nice ticks of a short run would be 1.5, ...)
    loss = line_chart(
        [Series("training loss", epochs, [_value(r, "loss") for r in rows], color=PALETTE[6])],
        title="Loss per epoch",
        x_label="epoch",
        y_label="loss",
        x_range=x_range,
        x_ticks=x_ticks,
        x_format=lambda v: f"{v:g}",
        width=440,
        height=320,
    )
    accuracy = [
        Series(label, epochs, [_value(r, key) for r in rows], color=PALETTE[k], dashed=key == "accuracy")
        for k, (key, label) in enumerate(_ACCURACIES)
        if any(_value(r, key) is not None for r in rows)
    ]
    acc = line_chart(
        accuracy,
        title="Accuracy per epoch",
        x_label="epoch",
        y_label="accuracy",
        x_range=x_range,
        x_ticks=x_ticks,
        y_range=(0.0, 1.0),
        x_format=lambda v: f"{v:g}",
        y_format=lambda v: f"{100 * v:.0f} %",
        width=440,
        height=320,
    )
    kept = ""
    if best_epoch is not None:
        kept = f" The model holds the weights of epoch {best_epoch} (best robust validation accuracy)."
    last_eps = _value(rows[-1], "eps")
    if target_eps and last_eps is not None and last_eps < target_eps * (1 - 1e-6):
        kept += (
            f" Training ended at eps {last_eps:.4g}, below the job's eps {target_eps:.4g}: the eps ramp is longer "
            "than the run (set fewer eps_ramp_epochs or more epochs)."
        )
    return Figure(
        key="train_log",
        title="Training curves",
        svg=loss + acc,
        tables=[table],
        caption="Per epoch: the mean training loss and the accuracy on the examples trained on (adversarial ones "
        "for the adversarial methods; dashed), and with a validation split the clean and robust validation "
        "accuracy. The eps column is the training radius at the epoch's end (it grows during the eps ramp), lr "
        f"the learning rate used last (it grows during the warm-up).{kept}",
    )
