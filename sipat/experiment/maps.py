"""The salience maps of a dataset, compact (`MapSet`), and the variants an experiment makes of them: some maps
removed (``+unannotated``), or moved to other images (``+shuffled``, by a seeded random cyclic permutation)."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sipat.data import InMemoryDataset
from sipat.experiment.config import Variant
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


def variant_maps(base: MapSet, variant: Variant, seed: int) -> MapSet:
    """The maps of ``variant`` made from its source's maps ``base``: blanking first, then shuffling; seeded."""
    maps = base
    if variant.unannotated:
        maps = unannotate(maps, variant.unannotated, np.random.default_rng([seed, 101]))
    if variant.shuffled:
        maps = shuffle_maps(maps, np.random.default_rng([seed, 102]))
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
