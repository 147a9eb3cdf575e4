"""Tensors held in memory in the item contract of `sipat.data`: what every built-in set is made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from sipat.data.contract import Item, _size_attr


class InMemoryDataset(Dataset):
    """Tensors held in memory: ``images`` (N, C, H, W) in [0, 1], ``labels`` (N,) int64, ``salience``
    (N, 1, H, W) in [0, 1] or NaN per image. ``params`` records how the set was made (for provenance)."""

    texture_classes: Tensor
    """``shapes`` only (set when made): (N,) the background texture class of each image, for analyses."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        salience: Tensor,
        classes: Sequence[str],
        *,
        name: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        n, c, h, w = images.shape
        if labels.shape != (n,) or salience.shape != (n, 1, h, w):
            raise ValueError(
                f"images {tuple(images.shape)}, labels {tuple(labels.shape)} and salience "
                f"{tuple(salience.shape)} disagree; need (N, C, H, W), (N,), (N, 1, H, W)"
            )
        self.images = images.float().contiguous()
        self.labels = labels.long().contiguous()
        self.salience = salience.float().contiguous()
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.in_channels = c
        self.image_size = _size_attr((h, w))
        self.name = name
        self.params = dict(params or {})

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Item:
        return self.images[i], int(self.labels[i]), self.salience[i]
