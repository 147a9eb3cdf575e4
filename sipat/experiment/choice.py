"""Which annotated training images keep their human map in a ``+unannotated=u`` variant (``choice=``).

``random`` (the default) keeps a seeded random share 1 - u (`sipat.experiment.maps.unannotate`, the generator every
variant of one seed shares). ``active`` spends the same budget the way a study's active painting pool would:
a seeded random first half (the predictor needs maps to start from), then a salience predictor
(`sipat.predictor.train_predictor`, the experiment's ``predictor`` settings) trained on the maps kept so far picks
the rest with `sipat.predictor.select_active` (MC-dropout spread and disagreement with the reference model's
train Grad-CAM, balanced over the training labels), in ``rounds`` rounds of equal size, retrained before each.

Why one kept set per (share, choice, seed): the none / gradcam / predicted fills must compare on exactly the
same kept images, so the runner computes it once (`sipat.experiment.runner._SeedContext.kept`) and every fill
starts from it. The set records which images kept their map and which the predictor picked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sipat.experiment.maps import MapSet, unannotate
from sipat.predictor.active import select_active, select_random
from sipat.predictor.train import PredictorConfig, train_predictor
from sipat.training import pick_device


@dataclass(frozen=True)
class KeptSet:
    """The human maps with the unchosen ones blanked (``maps``), and which images the predictor picked."""

    maps: MapSet
    choice: str
    picked: Tensor
    """(n,) bool: kept because the predictor picked it (always False with random choice)."""

    def record(self) -> dict[str, Any]:
        """What a run stores: the choice, the kept images (indices into the training set), the predictor's picks."""
        kept = torch.nonzero(self.maps.has).flatten().tolist()
        picked = torch.nonzero(self.picked).flatten().tolist()
        return {"choice": self.choice, "kept": len(kept), "kept_images": kept, "picked_images": picked}


def random_kept(human: MapSet, unannotated: float, seed: int) -> KeptSet:
    """The kept set of ``choice=random``: the very maps `variant_maps` keeps for ``human+unannotated=u``."""
    maps = unannotate(human, unannotated, np.random.default_rng([seed, 101])) if unannotated else human
    return KeptSet(maps, "random", torch.zeros(len(human), dtype=torch.bool))


def budget(human: MapSet, unannotated: float) -> int:
    """How many annotated images keep their map: as many as `unannotate` leaves (it blanks round(u * n))."""
    n = int(human.has.sum())
    return n - round(unannotated * n)


def active_kept(
    images: Tensor,
    labels: Tensor,
    human: MapSet,
    gradcam: MapSet,
    *,
    unannotated: float,
    seed: int,
    settings: dict[str, Any],
    rounds: int = 1,
    device: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> KeptSet:
    """The kept set of ``choice=active`` (see the module docstring).

    Args:
        images: (n, C, H, W) training images; labels (n,) their classes (the balance of the picks).
        human: their human maps; gradcam: the reference model's Grad-CAM of the same images.
        unannotated: the share of the annotated images left without a map, in (0, 1).
        seed: seeds the random half, the predictors and the picks' MC-dropout draws and tie-breaks.
        settings: `PredictorConfig` fields other than ``seed``.  rounds: predictor rounds after the random half.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    if len(gradcam) != len(human) or len(images) != len(human) or labels.shape != (len(human),):
        raise ValueError("images, labels, human and Grad-CAM maps must all describe the same training images")
    n, keep = len(human), budget(human, unannotated)
    first = max(1, keep // 2) if keep else 0
    has = torch.zeros(n, dtype=torch.bool)
    has[select_random(n, first, candidates=human.has.clone(), seed=seed * 1009 + 105)] = True
    picked = torch.zeros(n, dtype=torch.bool)
    rest = keep - first
    sizes = [rest // rounds + (1 if r < rest % rounds else 0) for r in range(rounds)]
    dev = pick_device(device)
    cam = gradcam.to_float().nan_to_num(0.0)
    for r, k in enumerate(s for s in sizes if s > 0):
        maps = MapSet(human.values, has.clone()).to_float()
        cfg = PredictorConfig(**{**settings, "seed": seed * 1009 + 106 + r})
        log(f"seed {seed}: active choice round {r + 1}: predictor on {int(has.sum())} maps picks {k} more")
        model = train_predictor(images, maps, cfg, device=device).model
        candidates = human.has & ~has
        idx = select_active(
            model,
            images.to(dev),
            labels,
            cam.to(dev),
            k,
            candidates=candidates,
            painted=has,
            seed=seed * 1009 + 107 + r,
        )
        has[idx], picked[idx] = True, True
    return KeptSet(MapSet(human.values, has), "active", picked)


__all__ = ["KeptSet", "active_kept", "budget", "random_kept"]
