"""The experiment's data: the config's dataset split, seeded subsets of it, and a view with other maps.

The loaders themselves are in `sipat.data`; every view here keeps its contract (`sipat.data.Dataset`)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from sipat.data import BUILTIN_DATASETS, InMemoryDataset, SubsetOf, contract, load_builtin, load_cifar, load_cub
from sipat.experiment.config import ExperimentConfig
from sipat.experiment.maps import MapSet


class WithSalience(Dataset):
    """``base``'s images and labels with the maps of a `MapSet` in place of its own."""

    def __init__(self, base: Dataset, maps: MapSet) -> None:
        info = contract(base)
        if len(maps) != len(info):
            raise ValueError(f"{len(maps)} salience maps for {len(info)} images")
        self.base, self.maps = info, maps
        self.classes: list[str] = info.classes
        self.num_classes: int = info.num_classes
        self.in_channels: int = info.in_channels
        self.image_size: int | tuple[int, int] = info.image_size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, int, Tensor]:
        x, y, _ = self.base[i]
        return x, y, self.maps.get(i)


def subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of n items (all when n is None or >= len); in-memory sets stay in memory."""
    if n is None or n >= len(contract(ds)):
        return ds
    idx = torch.randperm(len(contract(ds)), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if isinstance(ds, InMemoryDataset):
        out = InMemoryDataset(
            ds.images[idx], ds.labels[idx], ds.salience[idx], ds.classes, name=ds.name, params=ds.params
        )
        if hasattr(ds, "texture_classes"):
            out.texture_classes = ds.texture_classes[idx]
        return out
    return SubsetOf(ds, idx.tolist())


# ----------------------------------------------------------------------------------------------------------
# the config's data (the loaders are in sipat.data)


def load_data(cfg: ExperimentConfig, split: str, data_seed: int) -> Dataset:
    """The config's dataset split in sipat's item contract (image, label, salience)."""
    params = dict(cfg.dataset_params)
    if cfg.dataset in BUILTIN_DATASETS:
        if "coverage" in params:
            params["coverage"] = tuple(params["coverage"])
        return load_builtin(cfg.dataset, split=split, seed=data_seed, **params)
    if cfg.dataset in ("cifar10", "cifar100"):
        unknown = set(params) - {"check_md5"}
        if unknown:
            raise ValueError(f"{cfg.dataset} takes dataset_params check_md5 only; got {sorted(unknown)}")
        return load_cifar(cfg.dataset, cfg.data_root, split, **params)
    unknown = set(params) - {"image_size", "segmentations"}
    if unknown:
        raise ValueError(f"cub200 takes dataset_params image_size and segmentations only; got {sorted(unknown)}")
    return load_cub(cfg.data_root, split, **params)
