"""Control maps that tell *where* the annotator's region matters from *how much* of the image is spared.

The shuffled-map control of `sipat.experiment` gives each image another image's map; on centred objects that
still covers 45-65 % of the image's own salient pixels, so it is only partly "the wrong place". These controls
keep each image's salient pixel count exactly and move the pixels:

- `displace_maps`: the map itself, cyclically shifted (a permutation of the pixels: same shape, same
  coverage at every threshold) by the shift that overlaps the original the least; `overlap` measures the rest
  (0 whenever the salient region is small enough to fit beside itself, which holds for coverage well under 50 %).
- `random_maps`: the same number of salient pixels at random places (optionally smooth blobs); expected overlap
  = coverage.
- `topshare_maps`: soft maps (Grad-CAM) -> binary maps of exactly a fixed share of each image's pixels (the most
  salient), so that maps from different sources spare the same amount.

Maps are (N, 1, H, W) in [0, 1], 1 = salient, an all-NaN map = no map (kept as is by every function here).
"Salient" after binarisation means ``s >= threshold`` (default 0.5), i.e. ``sipat.salience.to_mask(s) == 0``:
the pixels SIP-AT never perturbs.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(s: Tensor) -> None:
    if s.dim() != 4 or s.shape[1] != 1:
        raise ValueError(f"maps must have shape (N, 1, H, W); got {tuple(s.shape)}")


def _has_map(s: Tensor) -> Tensor:
    return ~torch.isnan(s).flatten(1).all(dim=1)


def salient(s: Tensor, threshold: float = 0.5) -> Tensor:
    """Boolean (N, 1, H, W): the pixels SIP-AT spares (``s >= threshold``; NaN = no map = none spared)."""
    _check(s)
    return torch.nan_to_num(s, nan=0.0) >= threshold


def coverage(s: Tensor, threshold: float = 0.5) -> Tensor:
    """(N,) share of each image's pixels that are salient, in [0, 1]."""
    return salient(s, threshold).flatten(1).float().mean(dim=1)


def overlap(a: Tensor, b: Tensor, threshold: float = 0.5) -> Tensor:
    """(N,) share of a's salient pixels that are salient in b too (NaN where a has none): 0 = b is entirely
    elsewhere, 1 = b covers all of a."""
    sa, sb = salient(a, threshold).flatten(1), salient(b, threshold).flatten(1)
    n = sa.sum(dim=1).float()
    return torch.where(n > 0, (sa & sb).sum(dim=1).float() / n.clamp_min(1), torch.full_like(n, float("nan")))


def displace_maps(
    s: Tensor, *, margin: int = 1, threshold: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Each map cyclically shifted (``torch.roll`` over H and W) off its own salient region.

    For every shift d the overlap of the shifted salient region with the original one, grown by ``margin`` pixels
    (a (2 margin + 1)^2 max-pool, so the displaced map does not touch the object's edge either), is
    a circular cross-correlation, computed for all d at once with the FFT; the map is rolled by a shift of least
    overlap, drawn uniformly among the ties with ``generator``. When no shift clears the margin, the least
    overlap with the original itself decides. The soft values move with their pixels, so the coverage at every
    threshold is exactly the original's.

    Args:
        s: (N, 1, H, W) maps in [0, 1] (1 = salient); all-NaN rows (no map) are returned unchanged.
        margin: pixels of clearance around the original salient region (>= 0).
        threshold: what counts as salient when measuring overlap.
        generator: a CPU `torch.Generator` for the ties (seeded: reproducible controls).

    Returns:
        (N, 1, H, W), the displaced maps.
    """
    _check(s)
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels, got {margin}")
    b = salient(s, threshold).double()
    grown = F.max_pool2d(b, 2 * margin + 1, stride=1, padding=margin) if margin else b
    pick, least = _least_overlap_shift(grown, b, generator)
    stuck = least > 0
    if bool(stuck.any()):  # no shift clears the margin: least overlap with the region itself
        pick[stuck] = _least_overlap_shift(b[stuck], b[stuck], generator)[0]
    out = s.clone()
    w = s.shape[-1]
    for i in torch.nonzero(_has_map(s) & (b.flatten(1).sum(dim=1) > 0)).flatten().tolist():
        dy, dx = divmod(int(pick[i]), w)
        out[i] = torch.roll(s[i], shifts=(dy, dx), dims=(-2, -1))
    return out


def _least_overlap_shift(ref: Tensor, b: Tensor, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """For each row, a flat shift index d = dy * W + dx minimising sum_p ref(p) b(p - d) (the overlap of ref with
    b rolled by d: a circular cross-correlation, by FFT), drawn uniformly among ties; and that least overlap."""
    h, w = b.shape[-2:]
    corr = torch.fft.irfft2(torch.fft.rfft2(ref) * torch.conj(torch.fft.rfft2(b)), s=(h, w)).round().flatten(1)
    least = corr.min(dim=1, keepdim=True).values
    pick = torch.multinomial((corr == least).double(), 1, generator=gen)[:, 0]
    return pick, least[:, 0]


def random_maps(
    s: Tensor, *, smooth: float = 0.0, threshold: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Binary maps with exactly as many salient pixels as each original, at random places.

    The k salient pixels of an image are the top k of a noise field: white noise (``smooth=0``: scattered
    pixels) or white noise blurred by a Gaussian of std ``smooth`` pixels (blobs of about that size). Expected
    overlap with the original = its coverage.

    Returns:
        (N, 1, H, W) float {0, 1}; all-NaN rows (no map) unchanged.
    """
    _check(s)
    if smooth < 0:
        raise ValueError(f"smooth is a Gaussian std in pixels (>= 0), got {smooth}")
    noise = torch.rand(s.shape, generator=generator, dtype=torch.float64)
    if smooth > 0:
        radius = max(1, int(3 * smooth))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-(t**2) / (2 * smooth**2))
        k = k / k.sum()
        noise = F.conv2d(F.pad(noise, (radius, radius, 0, 0), mode="circular"), k.view(1, 1, 1, -1))
        noise = F.conv2d(F.pad(noise, (0, 0, radius, radius), mode="circular"), k.view(1, 1, -1, 1))
    counts = salient(s, threshold).flatten(1).sum(dim=1)
    return _top_k(noise, counts, s, generator)


def topshare_maps(s: Tensor, share: float, *, generator: torch.Generator | None = None) -> Tensor:
    """Binary maps of exactly round(share * H * W) pixels per image: the most salient ones of a soft map
    (e.g. Grad-CAM), ties (common: ReLU'd Grad-CAM is 0 over much of the image) broken at random with
    ``generator`` rather than in raster order. Warns when some maps are constant (the choice is then random).

    Returns:
        (N, 1, H, W) float {0, 1}; all-NaN rows (no map) unchanged.
    """
    _check(s)
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), the fraction of pixels kept salient; got {share}")
    flat = torch.nan_to_num(s, nan=0.0).flatten(1)
    constant = (flat.max(dim=1).values == flat.min(dim=1).values) & _has_map(s)
    if bool(constant.any()):
        warnings.warn(
            f"{int(constant.sum())} of {len(s)} maps are constant: their top-share pixels are chosen at random",
            stacklevel=2,
        )
    counts = torch.full((len(s),), round(share * flat.shape[1]), dtype=torch.long)
    return _top_k(torch.nan_to_num(s, nan=0.0), counts, s, generator)


def _top_k(score: Tensor, counts: Tensor, s: Tensor, gen: torch.Generator | None) -> Tensor:
    """1 at each row's ``counts[i]`` highest scores (equal scores in a random order: a random permutation, then
    a stable sort), 0 elsewhere; rows of s without a map stay NaN."""
    flat = score.flatten(1)
    perm = torch.argsort(torch.rand(flat.shape, generator=gen), dim=1)
    order = perm.gather(1, torch.argsort(flat.gather(1, perm), dim=1, descending=True, stable=True))
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    out = (ranks < counts[:, None]).to(s.dtype).view_as(s)
    return torch.where(_has_map(s).view(-1, 1, 1, 1), out, s)
