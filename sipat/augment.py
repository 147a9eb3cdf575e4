"""Joint image + salience augmentation with ``torchvision.transforms.v2`` (random crop with padding, flip).

The flip is optional (``flip=False``, `TrainConfig.flip`): a mirror image changes the class or the cue of some
data (digits; the 45 and 135 degree textures of ``shapes``), while a shift of a few pixels changes neither.

Why joint: SIP-AT's adversary spares the salient pixels of each image, so a map that stays put while its image
is shifted or mirrored protects the wrong pixels. ``transforms.v2`` applies one random draw to every
``tv_tensors`` input of a call, so an image wrapped as ``tv_tensors.Image`` and its map as ``tv_tensors.Mask``
move together by construction.

The padding is zero for both: black pixels, and a map value 0 (not salient, so the adversary may perturb the
padding). A sample without a map (all NaN, see `sipat.data`) is transformed as all zeros and handed back all
NaN, so it still counts as unannotated (``sipat.salience.has_salience``).

Randomness comes from torch's global RNG, which `sipat.training.train` forks and seeds, so augmented training is
reproducible; DataLoader workers get seeds derived from the loader's generator.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["Augmented", "joint_transform"]


def joint_transform(size: tuple[int, int], padding: int = 4, flip: bool = True) -> v2.Transform:
    """Random ``size`` crop of the image zero-padded by ``padding`` px on each side, then (with ``flip``) a
    horizontal flip with probability 1/2; for an ``(Image, Mask)`` pair, one draw for both."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0 pixels; got {padding}")
    steps: list[v2.Transform] = []
    if padding > 0:
        steps.append(v2.RandomCrop(size, padding=padding, fill={tv_tensors.Image: 0.0, tv_tensors.Mask: 0.0}))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps) if steps else v2.Identity()


class Augmented(Dataset):
    """A view of a dataset of ``(image (C,H,W) in [0,1], label, salience (1,H,W))`` with `joint_transform`
    applied afresh to every item read. Labels pass through; shapes and ranges are kept."""

    def __init__(self, base: Dataset, *, padding: int = 4, flip: bool = True) -> None:
        self.base = base
        self.padding = padding
        self.flip = flip
        self._transforms: dict[tuple[int, int], v2.Transform] = {}

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def _transform(self, size: tuple[int, int]) -> v2.Transform:
        if size not in self._transforms:
            self._transforms[size] = joint_transform(size, self.padding, self.flip)
        return self._transforms[size]

    def __getitem__(self, i: int) -> tuple[Tensor, object, Tensor]:
        x, y, s = self.base[i]
        if tuple(s.shape[-2:]) != tuple(x.shape[-2:]):
            raise ValueError(f"item {i}: image {tuple(x.shape)} and salience {tuple(s.shape)} differ in size")
        missing = bool(torch.isnan(s).all())
        s_in = torch.zeros_like(s) if missing else s
        size = (int(x.shape[-2]), int(x.shape[-1]))
        x_out, s_out = self._transform(size)(tv_tensors.Image(x), tv_tensors.Mask(s_in))
        x_t, s_t = x_out.as_subclass(Tensor), s_out.as_subclass(Tensor)
        if missing:
            s_t = torch.full_like(s_t, math.nan)
        return x_t, y, s_t
