"""The per-epoch training log: a CSV beside the checkpoint and, when asked, TensorBoard scalars.

Why a CSV rewritten whole each epoch: a resumed run continues the history stored in its checkpoint, so the
file is always the checkpoint's history, written atomically, never an append that a crash could leave with
a duplicated or half-written row. The job page and notebooks read it without TensorBoard.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sipat.checkpoints import atomic_write_text

__all__ = ["EpochLog", "csv_beside"]


def csv_beside(checkpoint: str | Path) -> Path:
    """The log path of a checkpoint: ``run.pt`` -> ``run.csv`` in the same directory."""
    return Path(checkpoint).with_suffix(".csv")


class EpochLog:
    """Writes the history (one dict of numbers per epoch) to a CSV and/or a TensorBoard run directory.

    Args:
        csv_path: the CSV file, or None for none. Columns: every key any epoch has, in first-seen order.
        tensorboard: a directory for ``torch.utils.tensorboard.SummaryWriter`` (one scalar per key, tag
            ``train/<key>`` or ``val/<key>`` for ``val_`` keys, step = epoch), or None for none.
    """

    def __init__(self, csv_path: str | Path | None = None, tensorboard: str | Path | None = None) -> None:
        self.csv_path = None if csv_path is None else Path(csv_path)
        self._writer: Any = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package (the ml extra)

            self._writer = SummaryWriter(log_dir=str(tensorboard))

    def write(self, history: list[dict[str, float]]) -> None:
        """Record ``history`` (all epochs so far): rewrite the CSV, send the last epoch to TensorBoard."""
        if not history:
            return
        if self.csv_path is not None:
            columns: list[str] = []
            for row in history:
                columns += [k for k in row if k not in columns]
            buf = io.StringIO()
            out = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
            out.writeheader()
            out.writerows(history)
            atomic_write_text(self.csv_path, buf.getvalue())
        if self._writer is not None:
            last = history[-1]
            step = int(last.get("epoch", len(history)))
            for key, value in last.items():
                if key == "epoch":
                    continue
                tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                self._writer.add_scalar(tag, float(value), step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
