"""The salience maps of a dataset, compact (`MapSet`), and the variants an experiment makes of them: binarised to
a fixed share of pixels (``+top=<share>``, `sipat.controls.topshare_maps`), some maps removed
(``+unannotated``), or moved at equal coverage: to other images (``+shuffled``, a seeded random cyclic
permutation), off their own salient region (``+displaced``, `sipat.controls.displace_maps`) or to random pixels
(``+random``, `sipat.controls.random_maps`)."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sipat.controls import displace_maps, random_maps, topshare_maps
from sipat.data import InMemoryDataset
from sipat.experiment.arms import Variant
from sipat.salience import has_salience, to_mask


@dataclass
class MapSet:
    """The salience maps of n images, compact: ``values`` (n, 1, H, W) uint8 = round(255 * s) and ``has`` (n,)
    bool (False: the image has no map). A binary mask at threshold 0.5 is the same from these as from s
    (255 * s < 127.5 exactly when s < 0.5); for CUB at 224 px this is 0.3 GB rather than 1.2 GB of float32."""

    values: Tensor
    has: Tensor

    @classmethod
    def from_float(cls, s: Tensor) -> MapSet:
        has = has_salience(s)
        values = torch.nan_to_num(s.float(), nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
        return cls(values, has)

    @classmethod
    def cat(cls, parts: Sequence[MapSet]) -> MapSet:
        return cls(torch.cat([p.values for p in parts]), torch.cat([p.has for p in parts]))

    def __len__(self) -> int:
        return self.values.shape[0]

    def get(self, i: int) -> Tensor:
        """(1, H, W) float32 in [0, 1], all NaN without a map."""
        if not bool(self.has[i]):
            return torch.full(self.values.shape[1:], float("nan"))
        return self.values[i].float() / 255

    def to_float(self, idx: Tensor | slice | None = None) -> Tensor:
        """(k, 1, H, W) float32 with NaN maps for images without one."""
        v = self.values if idx is None else self.values[idx]
        h = self.has if idx is None else self.has[idx]
        s = v.float() / 255
        return torch.where(h.view(-1, 1, 1, 1), s, torch.full_like(s, float("nan")))

    def coverage(self, threshold: float | None = 0.5, chunk: int = 1024) -> Tensor:
        """(n,) share of each image's pixels that SIP-AT leaves unperturbed: mean of 1 - to_mask(s); 0 without map."""
        out = [
            (1 - to_mask(self.to_float(slice(i, i + chunk)), threshold)).flatten(1).mean(1)
            for i in range(0, len(self), chunk)
        ]
        return torch.cat(out) if out else torch.zeros(0)


def unannotate(maps: MapSet, share: float, rng: np.random.Generator) -> MapSet:
    """Remove the maps of a random round(share * n) of the n annotated images (they become 'no map')."""
    annotated = np.flatnonzero(maps.has.numpy())
    k = round(share * len(annotated))
    has = maps.has.clone()
    has[torch.from_numpy(rng.choice(annotated, size=k, replace=False))] = False
    return MapSet(maps.values, has)


def cyclic_permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random n-cycle (Sattolo's algorithm): perm[i] != i for every i when n >= 2."""
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffle_maps(maps: MapSet, rng: np.random.Generator) -> MapSet:
    """Move every annotated image's map to another annotated image (a random cyclic permutation among them);
    images without a map keep none. Same multiset of maps, different placement."""
    annotated = np.flatnonzero(maps.has.numpy())
    if len(annotated) < 2:
        raise ValueError("shuffling salience maps needs at least 2 annotated images")
    src = annotated[cyclic_permutation(len(annotated), rng)]
    values = maps.values.clone()
    values[torch.from_numpy(annotated)] = maps.values[torch.from_numpy(src)]
    return MapSet(values, maps.has.clone())


def _per_chunk(maps: MapSet, fn, chunk: int = 4096) -> MapSet:
    """Apply ``fn`` ((k, 1, H, W) float maps, NaN = none -> same) chunk by chunk, so a large set (60,000
    Fashion-MNIST maps) never needs all its maps as float32 at once; the chunks are processed in order, so
    a seeded generator passed to ``fn`` gives the same result on every call."""
    parts = [MapSet.from_float(fn(maps.to_float(slice(i, i + chunk)))) for i in range(0, len(maps), chunk)]
    return MapSet.cat(parts) if parts else maps


def control_maps(maps: MapSet, control: str, seed: int, threshold: float | None = 0.5) -> MapSet:
    """``maps`` moved by ``control`` (shuffled, displaced or random), seeded; each keeps every image's coverage
    (shuffled: the multiset of coverages) at ``threshold`` (None, the soft budget: 0.5 decides what is salient)."""
    t = 0.5 if threshold is None else threshold
    if control == "shuffled":
        return shuffle_maps(maps, np.random.default_rng([seed, 102]))
    gen = torch.Generator().manual_seed(seed * 1009 + 103)
    if control == "displaced":
        return _per_chunk(maps, lambda s: displace_maps(s, margin=1, threshold=t, generator=gen))
    if control == "random":
        return _per_chunk(maps, lambda s: random_maps(s, threshold=t, generator=gen))
    raise ValueError(f"unknown control {control!r}; use shuffled, displaced or random")


def variant_maps(base: MapSet, variant: Variant, seed: int, threshold: float | None = 0.5) -> MapSet:
    """The maps of ``variant`` made from its source's maps ``base``, in this order: binarised to the top share,
    blanked (not for ``predicted``, a ``fill`` nor ``choice=active``: their source maps come blanked (and
    filled), see `sipat.experiment.sources` and `sipat.experiment.choice`), then
    moved by the control; every random step seeded by ``seed``."""
    maps = base
    if variant.top is not None:
        gen = torch.Generator().manual_seed(seed * 1009 + 104)
        share = variant.top
        maps = _per_chunk(maps, lambda s: topshare_maps(s, share, generator=gen))
    if variant.unannotated and variant.source != "predicted" and variant.fill is None and variant.choice == "random":
        maps = unannotate(maps, variant.unannotated, np.random.default_rng([seed, 101]))
    if variant.control is not None:
        maps = control_maps(maps, variant.control, seed, threshold)
    return maps


def dataset_maps(ds: Dataset, batch_size: int = 256) -> MapSet:
    """The salience maps a dataset carries (NaN = none), without decoding its images where it can."""
    if not isinstance(ds, Sized):
        raise TypeError(f"dataset_maps needs a dataset with a length; got {type(ds).__name__}")
    if isinstance(ds, InMemoryDataset):
        return MapSet.from_float(ds.salience)
    if getattr(ds, "has_no_salience", False):
        n = len(ds)
        _, _, s = ds[0]
        return MapSet(torch.zeros((n, *s.shape), dtype=torch.uint8), torch.zeros(n, dtype=torch.bool))
    if hasattr(ds, "load_salience"):
        parts = []
        for i in range(0, len(ds), batch_size):
            s = torch.stack([ds.load_salience(j) for j in range(i, min(i + batch_size, len(ds)))])
            parts.append(MapSet.from_float(s))
        return MapSet.cat(parts)
    parts = [MapSet.from_float(s) for _, _, s in DataLoader(ds, batch_size=batch_size)]
    return MapSet.cat(parts)
