"""The `predicted` salience source of a train job: human maps where enough people painted, a predictor's elsewhere.

Why a module of its own: `train.py` reads the study's paintings the same way for `annotations` and
`predicted`; what `predicted` adds is training `sipat.predictor.SaliencyNet` on those (image, mean human map)
pairs and filling every other training image with its map (`sipat.predictor.fill_with_predictor`). The
predictor is seeded with the job's seed, trains `predictor_epochs` (a small budget), reports its progress
into the job's salience phase, and keeps a resumable checkpoint in the job's scratch directory, so a job
re-delivered after its worker died continues after the last finished predictor epoch.

The record says which image got which map: `sources = {"human": [image ids], "predicted": [image ids]}`
(sorted ids, compact), beside the counts and the predictor's per-epoch loss.

Sizes: the predictor needs sides divisible by 4; other sizes are padded by edge replication before it and
its maps cropped back, so every image size a train job accepts works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sipat.predictor import PredictorConfig, fill_with_predictor, train_predictor
from sipat.training import Progress
from worker.jobs.common import Phase


def pad4(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """x padded at the bottom and right (edge replication) to sides divisible by 4, and the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def predict_missing(
    images: Tensor,
    human: Tensor,
    image_ids: list[int],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    device: str | torch.device | None,
    phase: Phase,
    checkpoint: Path | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """(N, 1, H, W) maps: `human` where present (not NaN), the trained predictor's elsewhere, and the record.

    Args:
        images: (N, C, H, W) training images in [0, 1]; human: (N, 1, H, W) mean human maps, NaN = none.
        image_ids: the database id of each of the N images (for the record).
        phase: where the predictor's progress goes (its own 0..1).
    """
    if len(image_ids) != images.shape[0]:
        raise ValueError(f"{len(image_ids)} image ids for {images.shape[0]} images")
    x, (h, w) = pad4(images.float())
    s, _ = pad4(human.float())  # an all-NaN map stays all NaN: padding replicates its edge
    cfg = PredictorConfig(epochs=epochs, batch_size=batch_size, seed=seed)

    def on_batch(pr: Progress) -> None:
        phase(
            pr.fraction,
            f"salience predictor: epoch {pr.epoch + 1}/{pr.epochs}, batch {pr.step}/{pr.steps_per_epoch}: "
            f"loss {pr.loss:.3f}, pixel agreement {pr.accuracy:.3f}",
        )

    trained = train_predictor(x, s, cfg, device=device, progress=on_batch, checkpoint=checkpoint)
    model = trained.model
    dev = next(model.parameters()).device
    filled = fill_with_predictor(model, x.to(dev), s.to(dev))
    maps = filled.maps[..., :h, :w].cpu().clamp(0, 1)
    sources: dict[str, list[int]] = {"human": [], "predicted": []}
    for image_id, source in zip(image_ids, filled.source, strict=True):
        sources[source].append(image_id)
    record = {
        "counts": filled.counts(),
        "sources": {k: sorted(v) for k, v in sources.items()},
        "predictor": {
            "config": cfg.to_dict(),
            "trained_on": trained.trained_on,
            "history": [{k: round(float(v), 5) for k, v in e.items()} for e in trained.history],
        },
    }
    return maps, record


__all__ = ["pad4", "predict_missing"]
