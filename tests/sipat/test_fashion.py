"""sipat.fashion: the IDX reader, the stratified subsets, and the errors that say how to get the files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sipat.fashion import DEFAULT_ROOT, FASHION_CLASSES, load_fashion, read_idx

installed = pytest.mark.skipif(  # in CI `make test` installs it, so there a missing file fails instead
    not (DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz").is_file() and os.environ.get("CI") != "true",
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


def _write_idx(path: Path, magic: int, array: np.ndarray, *, truncate: int = 0) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    body = array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + body[: len(body) - truncate])


def _fake_root(tmp_path: Path, n: int = 10_000) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28))
    labels = np.arange(n) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, labels)
    return tmp_path


def test_idx_roundtrip_exact(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    ds = load_fashion("test", root=root)
    raw = read_idx(root / "t10k-images-idx3-ubyte.gz", 0x803)
    assert ds.images.shape == (10_000, 1, 28, 28) and ds.images.dtype == torch.float32
    assert torch.equal(ds.images[:, 0], torch.from_numpy(raw.astype(np.float32) / 255))
    assert ds.labels.tolist() == [i % 10 for i in range(10_000)]
    assert torch.isnan(ds.salience).all() and ds.classes == list(FASHION_CLASSES)


def test_missing_files_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion("train", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion("train", root=tmp_path)  # folder exists, files do not


def test_truncated_and_wrong_magic_are_refused(tmp_path: Path) -> None:
    labels = np.zeros(5, dtype=np.uint8)
    _write_idx(tmp_path / "bad.gz", 0x801, labels, truncate=2)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "bad.gz", 0x801)
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad.gz", 0x803)


def test_subset_is_stratified_seeded_and_sized(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    a = load_fashion("test", seed=3, root=root, n_test=505)
    b = load_fashion("test", seed=3, root=root, n_test=505)
    c = load_fashion("test", seed=4, root=root, n_test=505)
    assert len(a) == 505
    counts = torch.bincount(a.labels, minlength=10)
    assert counts.max() - counts.min() <= 1  # balanced source: every class 50 or 51
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="n_test"):
        load_fashion("test", root=root, n_test=10_001)
    with pytest.raises(ValueError, match="split"):
        load_fashion("val", root=root)


@installed
def test_real_test_split() -> None:
    ds = load_fashion("test")
    assert len(ds) == 10_000 and ds.in_channels == 1 and ds.image_size == 28
    assert torch.bincount(ds.labels, minlength=10).tolist() == [1000] * 10  # the official split is balanced
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) == 1.0
    mean = float(ds.images.mean())
    assert 0.25 < mean < 0.32  # Fashion-MNIST's published pixel mean is 0.286


def test_config_parameters_are_the_loaders() -> None:
    import inspect
    import json

    config = json.loads((Path(__file__).parents[2] / "configs" / "fashion.json").read_text())
    assert config["dataset"] == "fashion"
    options = set(inspect.signature(load_fashion).parameters) - {"split", "seed"}
    assert set(config["dataset_params"]) <= options
    assert len(config["seeds"]) >= 8 and config["eval_limit"] >= 2000
