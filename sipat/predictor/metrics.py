"""Saliency measures of a predicted map against a human map, per image, and the baselines to beat.

Definitions follow Bylinskii et al., "What do different evaluation metrics tell us about saliency models?"
(TPAMI 2019), with the human map in place of a fixation density. For the location-based measures (NSS, AUC)
the "fixations" are the pixels the mask threshold calls salient, ``human >= threshold`` (default 0.5, the
SIP-AT threshold), because that set is what SIP-AT spares.

- CC: Pearson correlation of the two maps.
- SIM: sum over pixels of min(P, Q), both maps normalised to sum 1 (1 = identical, 0 = disjoint).
- KL: sum Q * log(eps + Q / (P + eps)), Q the human distribution, P the prediction (lower is better;
  eps = 2.2e-16 as in the MIT benchmark code).
- NSS: mean of the standardised prediction over the salient pixels.
- AUC: AUC-Judd in its exact form: the area under the ROC curve of the prediction as a detector of salient
  pixels, every salient pixel a positive and every other pixel a negative, ties counted half (the
  Mann-Whitney statistic). Judd's version thresholds at the values of the fixated pixels; with every pixel a
  candidate the two coincide. Not AUC-Borji (random negatives), so it needs no seed.
- IoU: intersection over union of ``pred >= threshold`` and ``human >= threshold``: the overlap of the two
  regions SIP-AT would spare.

A constant prediction (the uniform baseline) has no spread: its CC and NSS are 0 and its AUC 0.5 by
definition, as in the reference code. An image whose human map has no salient pixel gets NaN for NSS, AUC
and (when neither map has one) IoU, and `evaluate_maps` averages over the images where a measure is defined.

Shapes: pred and human (N, 1, H, W) in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sipat.salience import has_salience

KL_EPS = 2.2e-16
MEASURES: tuple[str, ...] = ("cc", "sim", "kl", "nss", "auc", "iou")
HIGHER_IS_BETTER = {"cc": True, "sim": True, "kl": False, "nss": True, "auc": True, "iou": True}


def _flat(pred: Tensor, human: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != human.shape or pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred and human must both be (N, 1, H, W); got {tuple(pred.shape)}, {tuple(human.shape)}")
    if not has_salience(human).all():
        raise ValueError("every human map must be present (not NaN); select the annotated images first")
    return pred.double().flatten(1), human.double().flatten(1)


def _standardise(p: Tensor) -> Tensor:
    sd = p.std(dim=1, keepdim=True)
    return torch.where(sd > 0, (p - p.mean(dim=1, keepdim=True)) / sd.clamp_min(1e-300), torch.zeros_like(p))


def _distribution(p: Tensor) -> Tensor:
    total = p.sum(dim=1, keepdim=True)
    return torch.where(total > 0, p / total.clamp_min(1e-300), torch.full_like(p, 1.0 / p.shape[1]))


def cc(pred: Tensor, human: Tensor) -> Tensor:
    """(N,) Pearson correlation; 0 where either map is constant."""
    p, h = _flat(pred, human)
    return (_standardise(p) * _standardise(h)).sum(dim=1) / (p.shape[1] - 1)


def sim(pred: Tensor, human: Tensor) -> Tensor:
    """(N,) histogram intersection of the two maps as distributions, in [0, 1]."""
    p, h = _flat(pred, human)
    return torch.minimum(_distribution(p), _distribution(h)).sum(dim=1)


def kl(pred: Tensor, human: Tensor) -> Tensor:
    """(N,) KL(human || pred) of the maps as distributions, >= 0 (lower is better)."""
    p, h = _flat(pred, human)
    q, p = _distribution(h), _distribution(p)
    return (q * torch.log(KL_EPS + q / (p + KL_EPS))).sum(dim=1)


def nss(pred: Tensor, human: Tensor, *, threshold: float = 0.5) -> Tensor:
    """(N,) mean standardised prediction over the pixels with human >= threshold; NaN where there are none."""
    p, h = _flat(pred, human)
    fix = (h >= threshold).double()
    count = fix.sum(dim=1)
    return torch.where(count > 0, (_standardise(p) * fix).sum(dim=1) / count.clamp_min(1), torch.nan)


def auc(pred: Tensor, human: Tensor, *, threshold: float = 0.5) -> Tensor:
    """(N,) exact ROC AUC (AUC-Judd over all pixels, ties half) of pred as a detector of human >= threshold."""
    p, h = _flat(pred, human)
    out = torch.full((p.shape[0],), math.nan, dtype=torch.float64)
    for i in range(p.shape[0]):
        pos = h[i] >= threshold
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        # average ranks handle ties: rank of each value = mean of the positions it occupies
        _values, inverse, counts = torch.unique(p[i], return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        mean_rank = ends - (counts.double() - 1) / 2
        ranks = mean_rank[inverse]
        out[i] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def iou(pred: Tensor, human: Tensor, *, threshold: float = 0.5) -> Tensor:
    """(N,) IoU of the salient regions at the mask threshold; NaN where neither map has a salient pixel."""
    p, h = _flat(pred, human)
    a, b = p >= threshold, h >= threshold
    union = (a | b).sum(dim=1).double()
    return torch.where(union > 0, (a & b).sum(dim=1).double() / union.clamp_min(1), torch.nan)


def per_image(pred: Tensor, human: Tensor, *, threshold: float = 0.5) -> dict[str, Tensor]:
    """Every measure of `MEASURES`, each (N,) float64."""
    return {
        "cc": cc(pred, human),
        "sim": sim(pred, human),
        "kl": kl(pred, human),
        "nss": nss(pred, human, threshold=threshold),
        "auc": auc(pred, human, threshold=threshold),
        "iou": iou(pred, human, threshold=threshold),
    }


def evaluate_maps(pred: Tensor, human: Tensor, *, threshold: float = 0.5) -> dict[str, float]:
    """Mean of each measure over the images where it is defined (see the module docstring)."""
    return {k: float(torch.nanmean(v)) for k, v in per_image(pred, human, threshold=threshold).items()}


def centre_prior(n: int, height: int, width: int, *, sigma: float = 0.25) -> Tensor:
    """(n, 1, H, W) isotropic Gaussian centred on the image, std `sigma` x the image side, peak 1.

    The classic centre-bias baseline: what a predictor that never looks at the image would guess.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0; got {sigma}")
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
    return g.expand(n, 1, height, width).clone()


def uniform_map(n: int, height: int, width: int, *, value: float = 0.5) -> Tensor:
    """(n, 1, H, W) constant map: the floor every measure is judged against."""
    return torch.full((n, 1, height, width), float(value))


def compare(human: Tensor, candidates: dict[str, Tensor], *, threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """`evaluate_maps` of several methods on the same held-out images: {method: {measure: mean}}."""
    for name, m in candidates.items():
        if m.shape != human.shape:
            raise ValueError(f"{name}: maps {tuple(m.shape)} do not match the human maps {tuple(human.shape)}")
    return {name: evaluate_maps(m, human, threshold=threshold) for name, m in candidates.items()}


__all__ = [
    "HIGHER_IS_BETTER",
    "MEASURES",
    "auc",
    "cc",
    "centre_prior",
    "compare",
    "evaluate_maps",
    "iou",
    "kl",
    "nss",
    "per_image",
    "sim",
    "uniform_map",
]
