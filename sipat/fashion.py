"""``fashion``: all 70,000 Fashion-MNIST product photos, read from Debian's ``dataset-fashion-mnist`` package.

Why this set: on ``mnist5k`` every background pixel is exactly 0, so an adversary that spares the strokes can
only add ink and SIP-AT cannot win or lose fairly. Fashion-MNIST has the same size (1x28x28, 10 classes) but
real textures (knit, print, sole patterns) on the object, which is where the paper's premise says the fragile,
predictive features live.

Files: the four IDX archives of Zalando's release as Debian installs them (`DEFAULT_ROOT`)::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (60,000)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    (10,000)

(uncompressed copies without ``.gz`` are read too). Nothing is downloaded: when the files are missing the loader
raises `FileNotFoundError` saying ``apt-get install dataset-fashion-mnist``.

Items follow `sipat.data`'s contract: image (1, 28, 28) float32 in [0, 1], label int, salience (1, 28, 28) all
NaN (Fashion-MNIST has no human maps; use Grad-CAM top-share maps, `sipat.controls.topshare_maps`).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch

from sipat.data.memory import InMemoryDataset

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801
INSTALL_HINT = (
    "install Debian's package (`sudo apt-get install dataset-fashion-mnist`, which puts the IDX files under "
    f"{DEFAULT_ROOT}/), or pass root= a folder holding the four *-ubyte(.gz) files"
)


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"Fashion-MNIST file {root / stem}(.gz) is missing: {INSTALL_HINT}")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (big-endian header: magic, then one uint32 per dimension; uint8 data) as a read-only
    array of shape (N,) for labels or (N, H, W) for images. Raises `ValueError` on a wrong magic or a size that
    disagrees with the header (a truncated download)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"{path} is not an IDX file with magic {magic:#010x}; reinstall it ({INSTALL_HINT})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} values, file holds {data.size}; the file is truncated")
    return data.reshape(dims)


@functools.lru_cache(maxsize=2)
def _arrays(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of one split, kept for the process (decompressing the
    training images takes ~0.5 s)."""
    images_stem, labels_stem, expected = _FILES[split]
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {base} does not exist: {INSTALL_HINT}")
    images = read_idx(_find(base, images_stem), _IMAGES_MAGIC)
    labels = read_idx(_find(base, labels_stem), _LABELS_MAGIC).astype(np.int64)
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise ValueError(
            f"Fashion-MNIST {split} under {base}: images {images.shape}, labels {labels.shape}; "
            f"expected ({expected}, 28, 28) and ({expected},)"
        )
    if labels.min() < 0 or labels.max() >= len(FASHION_CLASSES):
        raise ValueError(f"Fashion-MNIST {split} labels must lie in 0..9; got {labels.min()}..{labels.max()}")
    labels.setflags(write=False)
    return images, labels


def load_fashion(
    split: str = "train",
    seed: int = 0,
    *,
    root: str | Path | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
) -> InMemoryDataset:
    """Fashion-MNIST in the item contract of `sipat.data` (signature of a `sipat.data.BuiltinDataset` loader).

    Args:
        split: ``train`` (60,000 images) or ``test`` (10,000; the official split, never mixed with train).
        seed: chooses the subset when ``n_train``/``n_test`` is smaller than the split: a seeded, class-stratified
            subset (each class keeps its share, rounded), returned in file order. Unused for the full split.
        root: folder of the IDX files; default `DEFAULT_ROOT` (Debian's).
        n_train, n_test: images to keep from that split; None: all of it.

    Returns:
        `InMemoryDataset` named ``fashion``: images (N, 1, 28, 28) float32 in [0, 1] (uint8 / 255), labels (N,),
        salience all NaN (no human maps), ``classes`` = `FASHION_CLASSES`.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = _arrays(str(root if root is not None else DEFAULT_ROOT), split)
    n = n_train if split == "train" else n_test
    total = labels.shape[0]
    if n is not None and not 10 <= n <= total:
        raise ValueError(f"n_{split} must be between 10 and {total} images (or null: all), got {n}")
    idx = np.arange(total)
    if n is not None and n < total:
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        counts = np.bincount(labels, minlength=len(FASHION_CLASSES))
        want = np.floor(counts / total * n).astype(int)
        order = np.argsort(-(counts / total * n - want), kind="stable")  # largest remainders get the rest
        want[order[: n - int(want.sum())]] += 1
        idx = np.sort(
            np.concatenate(
                [rng.choice(np.flatnonzero(labels == c), size=int(want[c]), replace=False) for c in range(10)]
            )
        )
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[idx].copy())
    salience = torch.full_like(x, float("nan"))
    params = {"seed": seed, "split": split, "n": int(idx.size), "root": str(root or DEFAULT_ROOT)}
    return InMemoryDataset(x, y, salience, list(FASHION_CLASSES), name="fashion", params=params)
