"""Simulated annotators: exact object masks degraded the way people paint them.

Why: `shapes` knows the true object mask, but people never paint it exactly. To ask "how many paintings
are enough?" without a study, each simulated annotator has a profile of habits (`AnnotatorProfile`), and
every painting applies them to the true mask, in this order:

1. outline bias: dilated (``grow`` > 0, a broad brush) or eroded (``grow`` < 0, a careful one) by
   ``|grow|`` pixels, with a per-image jitter of one pixel in either direction with probability ``jitter``;
2. parts missed: with probability ``miss`` a square of a quarter of the image side, centred on a random
   object pixel, is left unpainted;
3. stray strokes: with probability ``stray`` a square of an eighth of the side at a random place is painted;
4. edge noise: each pixel of the object's boundary band (3 px wide) is flipped with probability ``edge_noise``.

A painting is never empty: if erosion and a missed part remove everything, the undegraded mask is kept
(nobody submits a blank canvas for an image that shows an object). Everything is drawn from one seeded
`torch.Generator`, so a seed fixes the profiles and all paintings.

Shapes: masks (N, 1, H, W) in {0, 1}; paintings (A, N, 1, H, W) in {0, 1}; their mean (N, 1, H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AnnotatorProfile:
    """One annotator's habits (see the module docstring)."""

    grow: int = 0
    jitter: float = 0.3
    miss: float = 0.15
    stray: float = 0.1
    edge_noise: float = 0.1

    def __post_init__(self) -> None:
        for name in ("jitter", "miss", "stray", "edge_noise"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} is a probability in [0, 1]; got {v}")


def random_profiles(n: int, *, generator: torch.Generator) -> list[AnnotatorProfile]:
    """`n` annotators with habits drawn from plausible ranges: grow in -1..2 px, miss 0-0.3, stray 0-0.2,
    edge noise 0-0.2."""
    if n < 1:
        raise ValueError(f"need at least one annotator; got {n}")
    out = []
    for _ in range(n):
        u = torch.rand(4, generator=generator).tolist()
        grow = int(torch.randint(-1, 3, (1,), generator=generator))
        out.append(AnnotatorProfile(grow=grow, jitter=0.3, miss=0.3 * u[0], stray=0.2 * u[1], edge_noise=0.2 * u[2]))
    return out


def _dilate(m: Tensor, r: int) -> Tensor:
    return F.max_pool2d(m, 2 * r + 1, stride=1, padding=r) if r > 0 else m


def _erode(m: Tensor, r: int) -> Tensor:
    return 1 - F.max_pool2d(1 - m, 2 * r + 1, stride=1, padding=r) if r > 0 else m


def _grow(m: Tensor, r: int) -> Tensor:
    return _dilate(m, r) if r >= 0 else _erode(m, -r)


def paint(mask: Tensor, profile: AnnotatorProfile, *, generator: torch.Generator) -> Tensor:
    """One annotator's paintings of every mask: (N, 1, H, W) {0, 1} in, the same shape out."""
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"masks must be (N, 1, H, W); got {tuple(mask.shape)}")
    m = (mask >= 0.5).float()
    n, _, h, w = m.shape
    jitter = torch.where(
        torch.rand(n, generator=generator) < profile.jitter,
        torch.randint(0, 2, (n,), generator=generator) * 2 - 1,
        torch.zeros(n, dtype=torch.long),
    )
    out = torch.empty_like(m)
    for shift in (-1, 0, 1):
        rows = jitter == shift
        if rows.any():
            out[rows] = _grow(m[rows], profile.grow + shift)
    band = _dilate(m, 1) - _erode(m, 2)
    flip = (torch.rand(m.shape, generator=generator) < profile.edge_noise) & (band > 0)
    miss = torch.rand(n, generator=generator) < profile.miss
    stray = torch.rand(n, generator=generator) < profile.stray
    side_miss, side_stray = max(2, h // 4), max(2, h // 8)
    for i in range(n):
        if miss[i]:
            ys, xs = torch.nonzero(m[i, 0], as_tuple=True)
            if ys.numel():
                j = int(torch.randint(0, ys.numel(), (1,), generator=generator))
                y0, x0 = int(ys[j]) - side_miss // 2, int(xs[j]) - side_miss // 2
                out[i, 0, max(y0, 0) : y0 + side_miss, max(x0, 0) : x0 + side_miss] = 0
        if stray[i]:
            y0 = int(torch.randint(0, h - side_stray + 1, (1,), generator=generator))
            x0 = int(torch.randint(0, w - side_stray + 1, (1,), generator=generator))
            out[i, 0, y0 : y0 + side_stray, x0 : x0 + side_stray] = 1
    out = torch.where(flip, 1 - out, out)
    empty = out.flatten(1).sum(1) == 0
    out[empty] = m[empty]
    return out


def simulate_annotators(
    masks: Tensor, *, n_annotators: int = 3, seed: int = 0, profiles: list[AnnotatorProfile] | None = None
) -> Tensor:
    """Paintings of every mask by `n_annotators` simulated people: (A, N, 1, H, W) in {0, 1}.

    Profiles are drawn with `random_profiles` unless given. The same masks and seed give the same paintings.
    """
    g = torch.Generator().manual_seed(seed)
    profiles = profiles if profiles is not None else random_profiles(n_annotators, generator=g)
    return torch.stack([paint(masks, p, generator=g) for p in profiles])


def human_mean(masks: Tensor, *, n_annotators: int = 3, seed: int = 0) -> Tensor:
    """The mean of the simulated paintings, (N, 1, H, W) in [0, 1]: what SIP-AT would receive."""
    return simulate_annotators(masks, n_annotators=n_annotators, seed=seed).mean(0)


__all__ = ["AnnotatorProfile", "human_mean", "paint", "random_profiles", "simulate_annotators"]
