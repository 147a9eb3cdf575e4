"""The dataset contract (`sipat.data.contract`): every dataset and every view of one declares classes,
num_classes, in_channels and image_size, and the views pass them on instead of copying them with setattr."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset, random_split

from sipat.cli import load_dataset
from sipat.data import (
    ArrayDataset,
    ImageFolderDataset,
    LabelledDataset,
    ManifestDataset,
    SubsetOf,
    contract,
    load_builtin,
    side,
)
from sipat.experiment import MapSet, WithSalience, dataset_maps, subset


def _contract(ds: object) -> tuple:
    return ds.classes, ds.num_classes, ds.in_channels, ds.image_size  # type: ignore[attr-defined]


@pytest.fixture
def manifest(tmp_path):
    """Ten 6x4 RGB images in two classes, every other one with a salience map."""
    rng = np.random.default_rng(0)
    rows = ["image_path,image_class,salience_map_path"]
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), "RGB").save(tmp_path / f"{i}.png")
        cell = ""
        if i % 2 == 0:
            Image.fromarray(np.full((4, 6), 255 * (i % 4 == 0), dtype=np.uint8), "L").save(tmp_path / f"m{i}.png")
            cell = f"m{i}.png"
        rows.append(f"{i}.png,{'ab'[i % 2]},{cell}")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_every_kind_of_dataset_keeps_the_contract(manifest, tmp_path):
    (tmp_path / "folder" / "x").mkdir(parents=True)
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8), "L").save(tmp_path / "folder" / "x" / "0.png")
    sets = [
        load_builtin("shapes", n_train=8, n_test=4, image_size=16),
        ManifestDataset(manifest),
        ImageFolderDataset(tmp_path / "folder"),
        ArrayDataset(np.zeros((3, 4, 6, 3), dtype=np.uint8), [0, 1, 0], ["a", "b"]),
    ]
    for ds in sets:
        assert isinstance(ds, LabelledDataset) and contract(ds) is ds
        assert len(ds.classes) == ds.num_classes and ds.in_channels in (1, 3)
    assert side(sets[1]) == 6 and sets[1].image_size == (4, 6)  # (H, W) when not square: the longer side
    with pytest.raises(TypeError, match="does not keep the dataset contract"):
        contract(TensorDataset(torch.zeros(2, 1, 2, 2)))


def test_views_pass_the_contract_on_and_read_the_items_of_their_base(manifest):
    full = ManifestDataset(manifest)
    part = SubsetOf(full, [7, 2, 4])
    assert _contract(part) == _contract(full) and isinstance(part, LabelledDataset) and len(part) == 3
    for i, j in enumerate([7, 2, 4]):
        x, y, s = part[i]
        fx, fy, fs = full[j]
        assert torch.equal(x, fx) and y == fy and torch.equal(s.nan_to_num(-1), fs.nan_to_num(-1))
    maps = dataset_maps(part)
    assert maps.has.tolist() == [False, True, True]
    swapped = WithSalience(part, MapSet.from_float(torch.zeros(3, 1, 4, 6)))
    assert _contract(swapped) == _contract(full) and float(swapped[0][2].sum()) == 0.0
    small = subset(full, 4, seed=1)
    assert isinstance(small, SubsetOf) and _contract(small) == _contract(full) and len(small) == 4
    again = pickle.loads(pickle.dumps(small))  # DataLoader workers pickle it
    assert again.indices == small.indices and torch.equal(again[1][0], small[1][0])
    with pytest.raises(ValueError, match="3 salience maps for 10 images"):
        WithSalience(full, MapSet.from_float(torch.zeros(3, 1, 4, 6)))


def test_the_cli_split_of_a_manifest_is_torchs_random_split_with_the_contract(manifest):
    full = ManifestDataset(manifest)
    train, test = (load_dataset(str(manifest), split, seed=3) for split in ("train", "test"))
    want = random_split(full, [8, 2], generator=torch.Generator().manual_seed(3))
    for got, ref in zip((train, test), want, strict=True):
        assert isinstance(got, SubsetOf) and got.indices == list(ref.indices)
        assert _contract(got) == _contract(full)
    assert sorted(train.indices + test.indices) == list(range(10))


def test_a_plain_torch_dataset_is_refused_with_a_message_not_an_attribute_error():
    class Bare(Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            return torch.zeros(1, 2, 2), 0, torch.zeros(1, 2, 2)

    with pytest.raises(TypeError, match=r"Bare does not keep the dataset contract \(lacks \['classes'"):
        SubsetOf(Bare(), [0])
