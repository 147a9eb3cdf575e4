"""How good the maps are that a k-curve run trained with, against the dataset's exact object masks (the truth).

Two groups of training images, each measured with `sipat.predictor.metrics.evaluate_maps` (CC, SIM, KL, NSS, AUC,
IoU at the mask threshold; means over the images where a measure is defined):

- ``filled``: the images WITHOUT a kept human map, with the map SIP-AT trained with there (Grad-CAM, the
  predictor's map, or none). An image with no map counts as an all-zero map (SIP-AT perturbs all of it, as if
  nothing were salient): CC 0, IoU 0, so no fill scores as the floor it is, and the three fills of one
  (share, choice) are averaged over the same images.
- ``kept``: the images that kept their human map (the exact mask, or the simulated annotators' mean), with that
  map: what the paintings themselves are worth.

Why against the truth and not the human maps: with simulated annotators the human maps are themselves degraded,
and the question is how close the training signal comes to the object.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sipat.experiment.maps import MapSet
from sipat.predictor.metrics import evaluate_maps


def _group(trained: MapSet, truth: MapSet, rows: Tensor, threshold: float) -> dict[str, Any]:
    idx = torch.nonzero(rows).flatten()
    if idx.numel() == 0:
        return {"n": 0}
    pred = trained.to_float(idx).nan_to_num(0.0)  # no map = all zero (see the module docstring)
    return {"n": int(idx.numel()), **evaluate_maps(pred, truth.to_float(idx), threshold=threshold)}


def map_quality(trained: MapSet, kept: Tensor, truth: MapSet, *, threshold: float | None = 0.5) -> dict[str, Any]:
    """{"filled": {...}, "kept": {...}}: `evaluate_maps` of the trained maps on the images without (filled) and
    with (kept) a kept human map, against ``truth``; each group also says how many images it has (``n``).

    Args:
        trained: the maps SIP-AT trained with (NaN / ``has`` False = no map).
        kept: (n,) bool, True where the image kept its human map.
        truth: the exact object masks of the same images; images without one are left out of both groups.
        threshold: the mask threshold of IoU, NSS and AUC (None, SIP-AT's soft budget: 0.5).
    """
    if len(trained) != len(truth) or kept.shape != (len(truth),):
        raise ValueError(f"{len(trained)} trained maps, {tuple(kept.shape)} kept flags and {len(truth)} true masks")
    t = 0.5 if threshold is None else float(threshold)
    known = truth.has
    return {"filled": _group(trained, truth, ~kept & known, t), "kept": _group(trained, truth, kept & known, t)}


__all__ = ["map_quality"]
