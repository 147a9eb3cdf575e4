"""Which image to paint next: unpainted images ranked by the predictor's doubt, balanced over classes.

Two signals, each turned into a rank in [0, 1] over the candidates so that neither dominates by scale:

- spread: the mean per-pixel standard deviation of MC-dropout samples (`mc_dropout`): where the predictor
  is unsure, a painting teaches it most;
- disagreement: 1 - CC between the predicted map and Grad-CAM of the reference classifier: where the two
  automatic sources disagree, at least one is wrong, so a human map changes the training signal most.

score = weight * rank(spread) + (1 - weight) * rank(disagreement). Selection then walks the classes in a
seeded order, taking each class's best remaining candidate in turn, so the k picks differ by at most one
per class while every class has candidates left (class balance); ties are broken by a seeded permutation,
so the same scores and seed give the same picks. `select_random` is the default the issue keeps: uniform
over the candidates, seeded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sipat.predictor.metrics import cc
from sipat.predictor.model import mc_dropout


def _mask(n: int, mask: Tensor | None, name: str, meaning: str, *, default: bool) -> Tensor:
    """`mask` checked as an (n,) bool tensor (True = `meaning`), or all `default` when None."""
    if mask is None:
        return torch.full((n,), default, dtype=torch.bool)
    if mask.dtype != torch.bool or mask.shape != (n,):
        raise ValueError(f"{name} must be a bool tensor of shape ({n},) (True = {meaning})")
    return mask


def _candidates(n: int, candidates: Tensor | None) -> Tensor:
    return _mask(n, candidates, "candidates", "unpainted", default=True)


def _check_k(k: int, available: int) -> None:
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    if k > available:
        raise ValueError(f"asked for {k} images but only {available} candidates are unpainted")


def _rank01(v: Tensor, tie: Tensor) -> Tensor:
    """Rank of each value in [0, 1] (0 = smallest); equal values are ordered by `tie` (a permutation)."""
    n = v.numel()
    if n <= 1:
        return torch.zeros(n, dtype=torch.float64)
    order = sorted(range(n), key=lambda i: (float(v[i]), int(tie[i])))
    r = torch.empty(n, dtype=torch.float64)
    r[torch.tensor(order)] = torch.arange(n, dtype=torch.float64) / (n - 1)
    return r


def acquisition_scores(spread: Tensor, disagreement: Tensor, *, weight: float = 0.5, seed: int = 0) -> Tensor:
    """(N,) score in [0, 1], higher = paint sooner; ``weight`` is the share of the spread's rank."""
    if spread.shape != disagreement.shape or spread.dim() != 1:
        raise ValueError("spread and disagreement must be (N,) tensors of one length")
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1]; got {weight}")
    tie = torch.randperm(spread.numel(), generator=torch.Generator().manual_seed(seed))
    return weight * _rank01(spread, tie) + (1 - weight) * _rank01(disagreement, tie)


def select_balanced(
    scores: Tensor,
    labels: Tensor,
    k: int,
    *,
    candidates: Tensor | None = None,
    painted: Tensor | None = None,
    seed: int = 0,
) -> Tensor:
    """The k candidates with the highest scores, taken class by class in turn: (k,) indices in pick order.

    Each pick goes to the class with the fewest images so far, counting the `painted` ones ((N,) bool, default
    none), ties in a seeded class order. Why count them: a study paints only the head of each ranking before
    the next, and a ranking that always began with the same classes would let them run ahead, ranking after
    ranking (with 4 classes and 10 paintings per ranking, by one image per ranking). Without `painted` this is
    plain turn-taking.
    """
    n = scores.numel()
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},) like the scores; got {tuple(labels.shape)}")
    cand = _candidates(n, candidates)
    _check_k(k, int(cand.sum()))
    done = _mask(n, painted, "painted", "painted already", default=False).cpu()
    g = torch.Generator().manual_seed(seed)
    tie = torch.randperm(n, generator=g)
    queues: dict[int, list[int]] = {}
    for c in sorted({int(v) for v in labels[cand].tolist()}):
        idx = [i for i in torch.nonzero(cand & (labels == c)).flatten().tolist()]
        queues[c] = sorted(idx, key=lambda i: (-float(scores[i]), int(tie[i])))
    classes = list(queues)
    class_order = [classes[i] for i in torch.randperm(len(classes), generator=g).tolist()]
    rank = {c: r for r, c in enumerate(class_order)}
    have = {c: int((done & (labels == c)).sum()) for c in classes}
    picks: list[int] = []
    heads = dict.fromkeys(classes, 0)
    while len(picks) < k:
        c = min((c for c in classes if heads[c] < len(queues[c])), key=lambda c: (have[c], rank[c]))
        picks.append(queues[c][heads[c]])
        heads[c] += 1
        have[c] += 1
    return torch.tensor(picks, dtype=torch.long)


def select_random(n: int, k: int, *, candidates: Tensor | None = None, seed: int = 0) -> Tensor:
    """k candidates drawn uniformly without replacement (seeded): the default way to fill the pool."""
    cand = _candidates(n, candidates)
    _check_k(k, int(cand.sum()))
    idx = torch.nonzero(cand).flatten()
    return idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(seed))[:k]]


def select_active(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    gradcam_maps: Tensor,
    k: int,
    *,
    candidates: Tensor | None = None,
    painted: Tensor | None = None,
    seed: int = 0,
    samples: int = 16,
    weight: float = 0.5,
) -> Tensor:
    """The k unpainted images to paint next: MC-dropout spread and Grad-CAM disagreement, class-balanced.

    Args:
        model: the current `SaliencyNet` (with dropout > 0).
        images: (N, C, H, W) in [0, 1]; labels (N,); gradcam_maps (N, 1, H, W) in [0, 1].
        k: how many to pick.  candidates: (N,) bool, True = unpainted (default: all).
        painted: (N,) bool, the images painted so far, whose classes the balance counts (`select_balanced`).
        seed: fixes the MC-dropout draws, the tie-breaks and the class order.

    Returns (k,) indices into `images`, in the order they were picked.
    """
    n = images.shape[0]
    cand = _candidates(n, candidates)
    _check_k(k, int(cand.sum()))
    signals = acquisition_signals(
        model, images, gradcam_maps, candidates=cand, seed=seed, samples=samples, weight=weight
    )
    return select_balanced(signals["score"], labels.cpu(), k, candidates=cand.cpu(), painted=painted, seed=seed)


def acquisition_signals(
    model: nn.Module,
    images: Tensor,
    gradcam_maps: Tensor,
    *,
    candidates: Tensor | None = None,
    seed: int = 0,
    samples: int = 16,
    weight: float = 0.5,
) -> dict[str, Tensor]:
    """The per-image signals `select_active` ranks by, each (N,) float64: spread, disagreement and score.

    Why separate: a caller that shows the ranking (the dashboard's painting pool) needs the numbers behind
    each pick, not only the order. Non-candidates get NaN signals and a score of -1.
    """
    n = images.shape[0]
    cand = _candidates(n, candidates)
    if gradcam_maps.shape != (n, 1, *images.shape[-2:]):
        raise ValueError(f"gradcam_maps must be (N, 1, H, W) for the images; got {tuple(gradcam_maps.shape)}")
    out = {
        "spread": torch.full((n,), float("nan"), dtype=torch.float64),
        "disagreement": torch.full((n,), float("nan"), dtype=torch.float64),
        "score": torch.full((n,), -1.0, dtype=torch.float64),
    }
    idx = torch.nonzero(cand).flatten()
    if idx.numel():
        mean, std = mc_dropout(model, images[idx], samples=samples, seed=seed)
        spread = std.flatten(1).mean(1).double().cpu()
        disagreement = (1 - cc(mean.cpu(), gradcam_maps[idx].cpu())).double()
        out["spread"][idx], out["disagreement"][idx] = spread, disagreement
        out["score"][idx] = acquisition_scores(spread, disagreement, weight=weight, seed=seed)
    return out


__all__ = ["acquisition_scores", "acquisition_signals", "select_active", "select_balanced", "select_random"]
