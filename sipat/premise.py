"""``premise``: a synthetic set built so that the paper's claim can win or lose fairly.

The paper's premise (Redgrave & Czajka 2025): annotators mark regions whose *fragile* features are genuinely
predictive; sparing those regions from the adversary lets the model keep them while it stays robust elsewhere.
``shapes`` has the reverse (its fragile cue lives in the background, the region SIP-AT still attacks) and
``mnist5k`` has no background to attack at all, so neither can decide the claim. Here:

- **on the object** (salient, the exact mask is the map): a fine sinusoidal texture whose orientation is the
  class (with probability ``texture_correlation``), of peak amplitude ``texture_amplitude`` (default 0.03 =
  7.65/255, below the customary eps 8/255, hence *fragile*: an L-inf adversary of that radius can erase it),
  and the object's shape, a *robust* but imperfect cue (the class shape with probability ``shape_correlation``,
  else another one);
- **off the object** (not salient): a flat background colour and ``clutter`` distractor patches of random
  shape, colour and texture orientation, drawn independently of the label (uninformative by construction),
  partly hidden by the object, which is drawn last.

So a standard model reads the texture; PGD-AT at eps >= amplitude must give it up and falls back on the shape
(about ``shape_correlation``); SIP-AT with the object masks may keep it. Parameters live in `PremiseParams`
(and ``dataset_params`` of configs/premise*.json); a seed fixes the set. ``python -m sipat.premise --config
configs/premise-pilot.json`` trains the pilot (a plain model) and measures how much it relies on the texture.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sipat.data.memory import InMemoryDataset
from sipat.vocabulary import RECIPE

KINDS = ("circle", "square", "triangle", "diamond", "cross", "ring")
_AREA = {"circle": math.pi, "square": 4.0, "triangle": 2.0, "diamond": 2.0, "cross": 20 / 9, "ring": 0.6975 * math.pi}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class PremiseParams:
    """How the ``premise`` set is drawn (every field is a ``dataset_params`` key). Radii are in [0, 1] pixels."""

    n_train: int = 2000
    n_test: int = 1000
    image_size: int = 32
    num_classes: int = 4
    """Classes = texture orientations pi * k / num_classes = object shapes `KINDS`[k]; 2..6."""
    coverage: tuple[float, float] = (0.15, 0.30)
    """Share of the image the object covers (each mask's pixel coverage lies in this range)."""
    texture_amplitude: float = 0.03
    """Peak amplitude of the object's texture (0.03 = 7.65/255): below eps means an adversary can erase it."""
    texture_period: float = 4.0
    """Period of the texture in pixels (fine: a few pixels)."""
    texture_correlation: float = 1.0
    """P(texture orientation = label); else uniform over the other orientations."""
    shape_correlation: float = 0.7
    """P(object shape = label's shape); else uniform over the other shapes: the robust, imperfect cue."""
    clutter: int = 6
    """Distractor patches in the background per image (random shape, colour, texture; label-independent)."""
    clutter_coverage: tuple[float, float] = (0.02, 0.06)
    """Share of the image each distractor covers."""
    noise_std: float = 0.02
    """Gaussian pixel noise everywhere, before clipping to [0, 1]."""
    min_contrast: float = 0.25
    """Least L-inf distance between the object's colour and the background's (the object stays visible)."""
    kinds: tuple[str, ...] | None = None
    """The class shapes, one per class (names from `KINDS`); None = the first ``num_classes`` of `KINDS`. The
    distractors draw from the same shapes. Distinct outlines (e.g. cross, triangle, ring, square) make the robust
    cue learnable at small budgets; circle/square/diamond differ little at 32 px."""

    def __post_init__(self) -> None:
        for name in ("coverage", "clutter_coverage"):
            value = tuple(float(v) for v in getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 2 or not 0 < value[0] <= value[1] <= 0.5:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high <= 0.5, got {list(value)}")
        if not 2 <= self.num_classes <= len(KINDS):
            raise ValueError(f"num_classes must be in 2..{len(KINDS)}, got {self.num_classes}")
        if self.kinds is not None:
            kinds = tuple(str(k) for k in self.kinds)
            object.__setattr__(self, "kinds", kinds)
            if len(kinds) != self.num_classes or len(set(kinds)) != len(kinds) or not set(kinds) <= set(KINDS):
                raise ValueError(f"kinds must be {self.num_classes} distinct names of {list(KINDS)}, got {list(kinds)}")
        if self.image_size < 16 or self.n_train < 1 or self.n_test < 1 or self.clutter < 0:
            raise ValueError("need image_size >= 16, n_train >= 1, n_test >= 1 and clutter >= 0")
        for name in ("texture_correlation", "shape_correlation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.texture_amplitude < 0 or self.noise_std < 0 or self.texture_period < 2 or self.min_contrast > 0.5:
            raise ValueError("need texture_amplitude >= 0, noise_std >= 0, texture_period >= 2, min_contrast <= 0.5")

    @property
    def shapes(self) -> tuple[str, ...]:
        """The shape of each class (``kinds``, or the first ``num_classes`` of `KINDS`)."""
        return self.kinds if self.kinds is not None else KINDS[: self.num_classes]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PremiseParams:
        """From a config's ``dataset_params``; an unknown key is an error naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TypeError(f"premise does not take {unknown}; its parameters are {sorted(known)}")
        return cls(**d)


def shape_mask(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Binary (size, size) mask of `kind` centred at (cx, cy) px with half-extent r px; a pixel belongs to the
    shape when at least half of its 4x4 sub-samples do (so the mask is exact, not anti-aliased)."""
    t = (np.arange(size * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    u, v = (t[None, :] - cx) / r, (t[:, None] - cy) / r
    a, b = np.abs(u), np.abs(v)
    inside = {
        "circle": lambda: u**2 + v**2 <= 1,
        "square": lambda: (a <= 1) & (b <= 1),
        "triangle": lambda: (v >= -1) & (v <= 1) & (a <= (v + 1) / 2),
        "diamond": lambda: a + b <= 1,
        "cross": lambda: ((a <= 1) & (b <= 1 / 3)) | ((a <= 1 / 3) & (b <= 1)),
        "ring": lambda: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.55**2),
    }[kind]()
    return inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3)) >= 0.5


def _place(kind: str, lo: float, hi: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of `kind` covering a share in [lo, hi] of the image at a uniform position (fully inside)."""
    target = rng.uniform(lo, hi)
    r = math.sqrt(target * size * size / _AREA[kind])
    for _ in range(50):
        r = min(r, (size - 2) / 2)
        cx, cy = rng.uniform(r + 1, size - 1 - r), rng.uniform(r + 1, size - 1 - r)
        mask = shape_mask(kind, cx, cy, r, size)
        cov = float(mask.mean())
        if lo <= cov <= hi:
            return mask
        r *= math.sqrt(target / max(cov, 1e-3))  # the pixel grid missed the range: rescale and retry
    raise RuntimeError(f"could not draw a {kind} covering {lo}-{hi} of a {size}px image; widen the range")


def _grating(k: int, num_classes: int, period: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """sin(2 pi / period * (x cos th + y sin th) + phase), th = pi k / num_classes, random phase: (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    th = math.pi * k / num_classes
    return np.sin(2 * math.pi / period * (xx * math.cos(th) + yy * math.sin(th)) + rng.uniform(0, 2 * math.pi))


def _other(k: int, p_same: float, n: int, rng: np.random.Generator) -> int:
    return k if rng.random() < p_same else int(rng.choice([c for c in range(n) if c != k]))


def make_premise(n: int, p: PremiseParams, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw n images; returns ``images`` (n, 3, S, S) float32 in [0, 1], ``labels`` (n,) int64 (balanced,
    shuffled), ``masks`` (n, 1, S, S) float32 {0, 1} (the object, exactly), ``texture`` and ``shape`` (n,) int64
    (each image's texture orientation and shape class, for analyses of which cue a model uses)."""
    s, c, shapes = p.image_size, p.num_classes, p.shapes
    labels = rng.permutation(np.arange(n) % c).astype(np.int64)
    out: dict[str, np.ndarray] = {
        "images": np.empty((n, 3, s, s), np.float32),
        "labels": labels,
        "masks": np.empty((n, 1, s, s), np.float32),
        "texture": np.empty(n, np.int64),
        "shape": np.empty(n, np.int64),
    }
    for i in range(n):
        k = int(labels[i])
        background = rng.uniform(0.3, 0.7, size=3)
        img = np.broadcast_to(background[:, None, None], (3, s, s)).copy()
        for _ in range(p.clutter):  # label-independent distractors: random kind, colour and texture
            m = _place(shapes[int(rng.integers(c))], *p.clutter_coverage, s, rng)
            g = _grating(int(rng.integers(c)), c, p.texture_period, s, rng)
            img = np.where(m[None], rng.uniform(0.1, 0.9, size=3)[:, None, None] + p.texture_amplitude * g, img)
        t, sh = _other(k, p.texture_correlation, c, rng), _other(k, p.shape_correlation, c, rng)
        mask = _place(shapes[sh], *p.coverage, s, rng)
        while True:
            colour = rng.uniform(0.1, 0.9, size=3)
            if np.abs(colour - background).max() >= p.min_contrast:
                break
        texture = p.texture_amplitude * _grating(t, c, p.texture_period, s, rng)
        img = np.where(mask[None], colour[:, None, None] + texture[None], img)
        img = img + rng.normal(0, p.noise_std, size=img.shape) if p.noise_std > 0 else img
        out["images"][i] = np.clip(img, 0, 1)
        out["masks"][i, 0] = mask
        out["texture"][i], out["shape"][i] = t, sh
    return out


def load_premise(split: str = "train", seed: int = 0, **params: Any) -> InMemoryDataset:
    """``premise`` in `sipat.data`'s item contract (signature of a `sipat.data.BuiltinDataset` loader).

    Train and test are independent draws (streams ``[seed, 0]`` and ``[seed, 1]``), each fixed by the seed.
    ``params`` are `PremiseParams` fields. Salience = the object's exact mask (1 = object). The returned set
    also carries ``texture_classes`` and ``shape_classes`` (N,) and ``masks`` is its ``salience``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = PremiseParams.from_dict(params)
    n = p.n_train if split == "train" else p.n_test
    d = make_premise(n, p, np.random.default_rng([seed, 0 if split == "train" else 1]))
    classes = [f"{p.shapes[k]}/{round(180 * k / p.num_classes)}deg" for k in range(p.num_classes)]
    ds = InMemoryDataset(
        torch.from_numpy(d["images"]),
        torch.from_numpy(d["labels"]),
        torch.from_numpy(d["masks"]),
        classes,
        name="premise",
        params={"seed": seed, "split": split, **dataclasses.asdict(p)},
    )
    ds.texture_classes = torch.from_numpy(d["texture"])
    ds.shape_classes = torch.from_numpy(d["shape"])  # type: ignore[attr-defined]
    return ds


# ----------------------------------------------------------------------------------------------------------
# the pilot: does the set train with a plain model, and does that model read the fragile texture?


#: Recipe keys of a config the pilot honours as `sipat experiment` does (so a pilot measures the same training):
#: the recipe's own keys, one definition in the vocabulary.
_PILOT_RECIPE_KEYS = tuple(RECIPE)


def run_pilot(
    config: dict[str, Any], *, seed: int = 0, method: str = "standard", device: str = "cpu"
) -> dict[str, Any]:
    """Train `method` (``standard`` or ``pgd_at``; no maps) on ``premise`` with the config's arch and budget,
    then report clean test accuracy, PGD robust accuracy at the config's ``eps`` (``eval_pgd_steps`` steps),
    accuracy on the same test images drawn without texture (same seed: only the texture term differs), and the
    share of predictions that follow the texture where texture and shape disagree. A model that reads the
    texture scores well above ``shape_correlation`` with it and far lower without it; one that does not
    (PGD-AT at eps >= ``texture_amplitude``) loses little without it."""
    from sipat.evaluation import evaluate
    from sipat.models import build_model
    from sipat.training import TrainConfig, train

    if method not in ("standard", "pgd_at"):
        raise ValueError(f"the pilot trains 'standard' or 'pgd_at' (no maps needed), got {method!r}")
    params = dict(config.get("dataset_params", {}))
    train_set = load_premise("train", seed, **params)
    test_set = load_premise("test", seed, **params)
    flat = load_premise("test", seed, **{**params, "texture_amplitude": 0.0})
    with torch.random.fork_rng():  # seeded initial weights, the caller's RNG state left as it was
        torch.manual_seed(seed)
        arch = config.get("arch", "cnn32")
        model = build_model(arch, num_classes=train_set.num_classes, in_channels=3, image_size=32)
    eps, steps = float(Fraction(str(config.get("eps", "8/255")))), int(config.get("steps", 4))
    cfg = TrainConfig(
        method=method,  # type: ignore[arg-type]
        epochs=int(config.get("epochs", 5)),
        batch_size=int(config.get("batch_size", 32)),
        lr=float(config.get("lr", 0.01)),
        lr_step=int(config.get("lr_step", 10)),
        lr_gamma=float(config.get("lr_gamma", 0.75)),
        eps=eps,
        steps=steps,
        alpha=2.5 * eps / max(steps, 1),
        seed=seed,
        **{k: config[k] for k in _PILOT_RECIPE_KEYS if k in config},
    )
    start = time.perf_counter()
    result = train(model, train_set, cfg, device=device)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x in test_set.images.to(device).split(256)]).cpu()
        pred_flat = torch.cat([model(x).argmax(1) for x in flat.images.to(device).split(256)]).cpu()
    robust = evaluate(
        model, test_set, eps_grid=[eps], attacks=["pgd"], pgd_steps=int(config.get("eval_pgd_steps", 10)),
        seed=seed, device=device,
    )  # fmt: skip
    texture, shape = test_set.texture_classes, test_set.shape_classes  # type: ignore[attr-defined]
    disagree = texture != shape
    return {
        "seed": seed,
        "method": method,
        "eps": eps,
        "train_seconds": round(seconds, 1),
        "final_train_accuracy": result.history[-1].get("accuracy") if result.history else None,
        "clean_accuracy": float((pred == test_set.labels).float().mean()),
        "pgd_accuracy": robust.robust_acc["pgd"][eps],
        "accuracy_without_texture": float((pred_flat == test_set.labels).float().mean()),
        "follows_texture_where_cues_disagree": float((pred[disagree] == texture[disagree]).float().mean()),
        "shape_correlation": PremiseParams.from_dict(params).shape_correlation,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m sipat.premise --config configs/premise-pilot.json``: run the pilot and print JSON."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=None, help="default: the config's first seed")
    ap.add_argument("--method", default="standard", choices=("standard", "pgd_at"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8"))
    seed = args.seed if args.seed is not None else int(config.get("seeds", [0])[0])
    print(json.dumps(run_pilot(config, seed=seed, method=args.method, device=args.device), indent=2))


if __name__ == "__main__":
    main()
