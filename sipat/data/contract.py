"""The dataset contract every sipat dataset keeps, written down once as a typed `Protocol`.

``dataset[i]`` is a tuple ``(image, label, salience)``:

- ``image``: float32 tensor (C, H, W), values in [0, 1];
- ``label``: int in [0, num_classes), the index into ``dataset.classes``;
- ``salience``: float32 tensor (1, H, W), values in [0, 1], 1 = salient to the annotator (never perturbed
  by SIP-AT once thresholded); or, when the image has no salience map, the same shape **filled with NaN**.
  NaN (rather than None) keeps torch's default collate working; `sipat.salience.has_salience` tells them apart,
  and `sipat.salience.to_mask` turns a NaN map into mask 1 (ordinary adversarial training for that image).

Besides items, a dataset declares ``classes: list[str]``, ``num_classes``, ``in_channels`` (1 or 3) and
``image_size`` (an int for square images, else ``(H, W)``): what a model is built for. `SubsetOf` is the one
view of a dataset that keeps them (a torch ``Subset`` does not), so no code copies them with ``setattr``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol, cast, runtime_checkable

import torch
from torch import Tensor
from torch.utils.data import Dataset

Item = tuple[Tensor, int, Tensor]


@runtime_checkable
class LabelledDataset(Protocol):
    """What `sipat.training`, the CLI and the experiments need of a dataset besides its items."""

    classes: list[str]
    num_classes: int
    in_channels: int
    image_size: int | tuple[int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Item: ...


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file (and CSV line) and the problem."""


def missing_salience(height: int, width: int) -> Tensor:
    """The (1, H, W) all-NaN map that stands for 'this image has no salience map'."""
    return torch.full((1, height, width), float("nan"), dtype=torch.float32)


def _size_attr(hw: tuple[int, int]) -> int | tuple[int, int]:
    return hw[0] if hw[0] == hw[1] else hw


def side(ds: object) -> int:
    """The longer image side in pixels (``image_size`` is an int for square images, else (H, W))."""
    size = contract(ds).image_size
    return size if isinstance(size, int) else max(size)


def contract(ds: object) -> LabelledDataset:
    """``ds`` as a `LabelledDataset`, after checking that it declares the contract's attributes.

    Torch's ``Dataset`` is a class, the contract a protocol, and Python has no type for both; data flow typed as
    ``Dataset`` and read its attributes through this, which names what a foreign dataset lacks (TypeError).
    """
    missing = [name for name in ("classes", "num_classes", "in_channels", "image_size") if not hasattr(ds, name)]
    if missing or not hasattr(ds, "__len__"):
        raise TypeError(
            f"{type(ds).__name__} does not keep the dataset contract (lacks {missing or ['__len__']}); "
            "see sipat.data.contract"
        )
    return cast(LabelledDataset, ds)


def _load_salience_at(load: Callable[[int], Tensor], indices: Sequence[int], i: int) -> Tensor:
    return load(indices[i])


class SubsetOf(Dataset):
    """Items ``indices`` of ``base``, keeping its contract (and `load_salience`, when it has one, so that the
    maps of a file-backed set can be read without decoding its images)."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        info = contract(base)
        self.base, self.indices = info, [int(i) for i in indices]
        self.classes: list[str] = info.classes
        self.num_classes: int = info.num_classes
        self.in_channels: int = info.in_channels
        self.image_size: int | tuple[int, int] = info.image_size
        self.has_no_salience: bool = getattr(base, "has_no_salience", False)
        load = getattr(base, "load_salience", None)
        if load is not None:  # a partial, not a lambda: picklable for DataLoader workers
            self.load_salience = functools.partial(_load_salience_at, load, self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Item:
        return self.base[self.indices[i]]
