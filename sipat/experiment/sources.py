"""The filled salience sources of an experiment (issue 20): human maps where the image has one, and elsewhere
the maps of a salience predictor (`sipat.predictor`) trained on those human maps (``predicted``) or the reference
model's Grad-CAM (``human+...+fill=gradcam``).

Why it is trained per seed and per share: with ``predicted+unannotated=u`` the human maps of a seeded u share
of the annotated images are removed first (the same images `human+unannotated=u` blanks, same generator), and
the predictor learns from the rest only, so it never sees a map it is then asked to replace. The result says
which training image got which source, and the run records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sipat.data import InMemoryDataset
from sipat.experiment.maps import MapSet, unannotate
from sipat.predictor.fill import fill_with_predictor
from sipat.predictor.train import PredictorConfig, train_predictor
from sipat.training import pick_device


@dataclass(frozen=True)
class PredictedMaps:
    """The filled maps and, per training image, where its map came from."""

    maps: MapSet
    predicted: torch.Tensor
    """(n,) bool: True where the predictor made the map, False where the human map was kept."""
    history: list[dict[str, float]]

    def record(self) -> dict[str, Any]:
        """What a run stores: counts per source and the indices (into the training set) of predicted maps."""
        idx = torch.nonzero(self.predicted).flatten().tolist()
        return {"human": len(self.predicted) - len(idx), "predicted": len(idx), "predicted_images": idx}


@dataclass(frozen=True)
class FilledMaps:
    """Human maps completed from another ``source``'s maps, and, per training image, which one it got."""

    maps: MapSet
    filled: torch.Tensor
    """(n,) bool: True where the image got the ``source`` map, False where the human map was kept."""
    source: str

    def record(self) -> dict[str, Any]:
        """What a run stores, in the form `PredictedMaps.record` has: counts per source, the filled indices."""
        idx = torch.nonzero(self.filled).flatten().tolist()
        return {"human": len(self.filled) - len(idx), self.source: len(idx), f"{self.source}_images": idx}


def filled_maps(
    human: MapSet, fill: MapSet, *, unannotated: float, seed: int, source: str, kept: MapSet | None = None
) -> FilledMaps:
    """Blank a seeded ``unannotated`` share of the human maps (the very images `human+unannotated=u` blanks:
    same generator) and give every image left without a map its map from ``fill`` (e.g. Grad-CAM).
    ``kept``: the human maps already blanked another way (``choice=active``, `sipat.experiment.choice`)."""
    if len(fill) != len(human) or fill.values.shape != human.values.shape:
        raise ValueError(f"the {source} maps ({tuple(fill.values.shape)}) do not match the human maps "
                         f"({tuple(human.values.shape)})")  # fmt: skip
    if kept is None:
        kept = unannotate(human, unannotated, np.random.default_rng([seed, 101])) if unannotated else human
    filled = ~kept.has & fill.has
    values = torch.where(filled.view(-1, 1, 1, 1), fill.values, kept.values)
    return FilledMaps(MapSet(values, kept.has | fill.has), filled, source)


def train_images(ds: Dataset, batch_size: int = 512) -> torch.Tensor:
    if isinstance(ds, InMemoryDataset):
        return ds.images.float()
    return torch.cat([x for x, _, _ in DataLoader(ds, batch_size=batch_size)])


def predicted_maps(
    train: Dataset,
    human: MapSet,
    *,
    unannotated: float,
    seed: int,
    settings: dict[str, Any],
    device: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
    kept: MapSet | None = None,
) -> PredictedMaps:
    """Human maps (after blanking a seeded ``unannotated`` share) where present, predicted maps elsewhere.

    Args:
        train: the training set (its images feed the predictor).
        human: its human maps (`MapSet`); at least one must remain after blanking.
        unannotated: the share of annotated images whose human map is removed first, in [0, 1).
        seed: seeds the blanking (as `sipat.experiment.maps.variant_maps` does) and the predictor.
        settings: `PredictorConfig` fields other than ``seed``.
        kept: the human maps already blanked another way (``choice=active``); default: the seeded blanking.
    """
    if kept is None:
        kept = unannotate(human, unannotated, np.random.default_rng([seed, 101])) if unannotated else human
    if not bool(kept.has.any()):
        raise ValueError("the predicted source needs human maps to learn from; this training set has none left")
    cfg = PredictorConfig(**{**settings, "seed": seed})
    images = train_images(train)
    maps = kept.to_float()
    log(
        f"seed {seed}: training the salience predictor on {int(kept.has.sum())} human maps "
        f"({cfg.epochs} epochs) to fill {int((~kept.has).sum())} images"
    )
    result = train_predictor(images, maps, cfg, device=device)
    dev = pick_device(device)
    filled = fill_with_predictor(result.model, images.to(dev), maps.to(dev))
    return PredictedMaps(MapSet.from_float(filled.maps.cpu()), filled.predicted, result.history)


__all__ = ["FilledMaps", "PredictedMaps", "filled_maps", "predicted_maps", "train_images"]
