"""Experiments: every training method on one dataset, with salience variants, controls and several seeds.

    sipat experiment --config configs/mnist5k.json --out runs/mnist5k
    sipat experiment --config configs/shapes.json --out runs/shapes --seeds 0 1 2 3 4 --plan

What runs
---------
A *run* is (method, salience variant, seed). `standard`, `pgd_at` and `trades` use no salience (variant
``none``); `sip_at`, `sip_trades` and the control `clean_mix` run once per variant of the config (an entry
``"sip_trades@human"`` in ``methods`` runs with that variant only). Every run of one seed starts from the same
initial weights, sees the same data and has the same budget (epochs, eps, steps, alpha, batch size, lr schedule).

Salience variants, written ``<source>[+shuffled][+unannotated=<share>]``:

- ``human``: the dataset's own maps (mnist5k strokes, shapes object masks, CUB-200 segmentations).
- ``gradcam``: Grad-CAM (`sipat.salience.gradcam` at `sipat.models.gradcam_layer`, target = the label) of a
  reference model trained with ``standard`` for ``reference_epochs`` on the same training data; computed once
  per seed and cached under ``salience/``.
- ``+unannotated=u``: the maps of a seeded random round(u * n) of the n annotated training images are
  replaced by NaN (no map: SIP-AT perturbs those images everywhere).
- ``+shuffled`` (control: does *where* matter?): after the blanking above, the maps are permuted among the
  annotated images by a seeded random cyclic permutation (Sattolo's algorithm), so every annotated image gets
  another image's map: the same multiset of maps, hence of coverage, in the wrong place.

``clean_mix`` (control: does the mask matter, or only perturbing less?) is PGD-AT in which an expected share p
of every batch is trained on clean inputs (`sipat.training.TrainConfig.clean_share`: per batch of B images,
floor(p * B + u) of them, u ~ U(0, 1), chosen at random, stay unperturbed). p is the share of the perturbation
budget that sip_at with the same variant leaves unused:

    p = mean over training images i of  mean over pixels of (1 - to_mask(s_i))      (0 for an image without map)

i.e. the mean salient pixel coverage. So clean_mix and sip_at keep the same expected share of (image, pixel)
pairs clean: sip_at the annotator's pixels of every image, clean_mix all pixels of random images. A shuffled
variant has the p of its unshuffled one, so clean_mix skips shuffled variants.

Evaluation on the test split (``eval_limit``: a seeded random subset, the same for every run of a seed): clean
accuracy and robust accuracy under PGD (``eval_pgd_steps``, step 2.5 * eps / steps, random start) and APGD-CE
(``eval_apgd_steps``) at every eps of ``eval_eps``; unmasked (the adversary every method faces) and, with
``eval_masked``, also masked (only the non-salient pixels attacked; test maps: the dataset's own, or for a
dataset without maps the reference model's Grad-CAM of the test images).

Output under ``out/``: ``config.json``; ``runs/<run>.json`` per finished run (written atomically as it
finishes: results, settings, history, seconds); ``checkpoints/<run>.pt`` while a run trains (an interrupted run
resumes after its last finished epoch); ``models/<run>.pt`` (``save_models``); ``salience/`` (reference
Grad-CAM maps); ``results.md`` and ``results.csv`` (mean and sample standard deviation over seeds per method and
variant), ``runs.csv`` (one row per run) and ``accuracy_vs_eps.png`` / ``.svg``. A re-run skips every run
whose JSON exists with the same settings and refuses, naming the differences, one made with other settings.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sipat.data import BUILTIN_DATASETS, InMemoryDataset, load_builtin, load_cifar, load_cub
from sipat.salience import has_salience, to_mask
from sipat.training import METHODS, TrainConfig, model_meta, save_checkpoint, train

CONTROL_METHODS = ("clean_mix",)
EXPERIMENT_METHODS = (*METHODS, *CONTROL_METHODS)
SALIENCE_METHODS = frozenset({"sip_at", "sip_trades", "clean_mix"})
SOURCES = ("human", "gradcam")
EXTERNAL_DATASETS = ("cifar10", "cifar100", "cub200")
EVAL_ATTACKS = ("pgd", "apgd", "fgsm")


# ----------------------------------------------------------------------------------------------------------
# configuration


def parse_number(value: Any, name: str) -> float:
    """A number or a fraction string such as "8/255" -> float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"{name} must be a number or a fraction like 8/255, got {value!r}")


@dataclass(frozen=True)
class Variant:
    """A salience variant: its ``source`` (``none``, ``human`` or ``gradcam``), whether its maps are shuffled
    across images, and the share of annotated training images whose map is removed."""

    source: str = "none"
    shuffled: bool = False
    unannotated: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``human``, ``gradcam+shuffled``, ``human+unannotated=0.5`` ... (tokens after the source in any order)."""
        source, *mods = [t.strip() for t in str(text).split("+")]
        if source == "none" and not mods:
            return cls()
        if source not in SOURCES:
            raise ValueError(f"salience variant {text!r}: the source must be one of {', '.join(SOURCES)}")
        shuffled, unannotated = False, 0.0
        for mod in mods:
            key, _, value = mod.partition("=")
            if key == "shuffled" and not value:
                shuffled = True
            elif key == "unannotated" and value:
                unannotated = parse_number(value, f"{text}: unannotated")
                if not 0 <= unannotated <= 1:
                    raise ValueError(f"salience variant {text!r}: unannotated must be a share in [0, 1]")
            else:
                raise ValueError(
                    f"salience variant {text!r}: unknown part {mod!r}; write e.g. human, gradcam+shuffled, "
                    "human+unannotated=0.5"
                )
        return cls(source, shuffled, unannotated)

    @property
    def name(self) -> str:
        parts = [self.source]
        if self.shuffled:
            parts.append("shuffled")
        if self.unannotated:
            parts.append(f"unannotated={self.unannotated:g}")
        return "+".join(parts)


NO_SALIENCE = Variant()


@dataclass(frozen=True)
class RunSpec:
    method: str
    variant: Variant
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.method}__{self.variant.name}__seed{self.seed}"


# settings that decide a run's numbers (a changed one makes a finished run stale); the rest (device, out,
# save_models, num_workers) only decide where and how fast
_RESULT_FIELDS = (
    "dataset", "dataset_params", "data_seed", "train_limit", "arch", "weights_path", "epochs", "batch_size", "lr",
    "momentum", "weight_decay", "lr_step", "lr_gamma", "eps", "alpha", "steps", "trades_beta", "threshold",
    "amp", "eval_eps", "eval_attacks", "eval_pgd_steps", "eval_apgd_steps", "eval_masked", "eval_limit",
)  # fmt: skip


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: dataset, model, training budget, runs and evaluation (a `configs/*.json` file).

    Radii (``eps``, ``alpha``, ``eval_eps``) are in [0, 1] pixel units and may be given as "8/255". The training
    settings default to `TrainConfig`'s (read from it, so the two cannot drift apart), except the budget:
    ``epochs`` (10), ``steps`` (10) and ``alpha`` (derived from eps and steps).
    """

    name: str = "experiment"
    dataset: str = "mnist5k"
    """A built-in (mnist5k, shapes) or an external set (cifar10, cifar100, cub200; files under ``data_root``)."""
    dataset_params: dict[str, Any] = field(default_factory=dict)
    """Built-ins: `load_builtin` options (e.g. shapes' texture settings); cifar: check_md5; cub200:
    image_size, segmentations."""
    data_root: str | None = None
    data_seed: int | None = None
    """Seeds the built-in data (split or generated images) and the subsets; None: each run's seed does."""
    train_limit: int | None = None
    """Train on a seeded random subset of this many images (None: all)."""
    arch: str | None = None
    """A `sipat.models.ARCHITECTURES` key; None: `default_arch_for` the image size."""
    weights_path: str | None = None
    """A local state-dict file to start every model from (e.g. ImageNet weights for CUB); None: random init."""
    epochs: int = 10
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    momentum: float = TrainConfig.momentum
    weight_decay: float = TrainConfig.weight_decay
    lr_step: int = TrainConfig.lr_step
    lr_gamma: float = TrainConfig.lr_gamma
    eps: float = TrainConfig.eps
    alpha: float | None = None
    """PGD step in training; None: 2.5 * eps / steps."""
    steps: int = 10
    trades_beta: float = TrainConfig.trades_beta
    threshold: float | None = TrainConfig.threshold
    amp: str = TrainConfig.amp
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = EXPERIMENT_METHODS
    variants: tuple[str, ...] = ("human",)
    reference_epochs: int = 3
    """Epochs of ``standard`` training of the Grad-CAM reference model."""
    eval_eps: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
    eval_attacks: tuple[str, ...] = ("pgd", "apgd")
    eval_pgd_steps: int = 20
    eval_apgd_steps: int = 100
    eval_masked: bool = True
    eval_limit: int | None = None
    eval_batch_size: int = 256
    save_models: bool = True
    num_workers: int = TrainConfig.num_workers

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("eps", "lr", "momentum", "weight_decay", "lr_gamma", "trades_beta"):
            put(name, parse_number(getattr(self, name), name))
        if self.alpha is not None:
            put("alpha", parse_number(self.alpha, "alpha"))
        if self.threshold is not None:
            put("threshold", parse_number(self.threshold, "threshold"))
        put("eval_eps", tuple(sorted({parse_number(e, "eval_eps") for e in self.eval_eps})))
        put("seeds", tuple(int(s) for s in self.seeds))
        put("methods", tuple(self.methods))
        put("variants", tuple(Variant.parse(v).name for v in self.variants))
        put("eval_attacks", tuple(self.eval_attacks))
        put("dataset_params", dict(self.dataset_params or {}))
        if self.dataset not in BUILTIN_DATASETS and self.dataset not in EXTERNAL_DATASETS:
            raise ValueError(
                f"dataset must be one of {', '.join([*BUILTIN_DATASETS, *EXTERNAL_DATASETS])}; got {self.dataset!r}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers; got {list(self.seeds)}")
        for name in ("epochs", "batch_size", "lr_step", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("steps", "eval_pgd_steps", "eval_apgd_steps", "reference_epochs", "num_workers"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        for name in ("train_limit", "eval_limit"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1 images or null (all); got {getattr(self, name)}")
        unknown = [a for a in self.eval_attacks if a not in EVAL_ATTACKS]
        if unknown or not self.eval_attacks:
            raise ValueError(f"eval_attacks must be some of {', '.join(EVAL_ATTACKS)}; got {list(self.eval_attacks)}")
        plan_items(self)  # validates methods against variants

    @property
    def train_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / max(self.steps, 1)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown experiment settings {unknown}; known are {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentConfig:
        """Read a JSON (or, with PyYAML, YAML) config; keys are the field names of this class."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment config {path} does not exist (see configs/ for examples)")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except (json.JSONDecodeError, ImportError) as exc:
            raise ValueError(f"cannot read experiment config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"experiment config {path} must hold a mapping of settings")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` (None values are ignored: a CLI flag that was not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def plan_items(cfg: ExperimentConfig) -> list[tuple[str, Variant]]:
    """(method, variant) pairs in config order, without duplicates."""
    variants = [Variant.parse(v) for v in cfg.variants]
    items: list[tuple[str, Variant]] = []
    for entry in cfg.methods:
        name, at, only = str(entry).partition("@")
        if name not in EXPERIMENT_METHODS:
            raise ValueError(f"unknown method {name!r} in methods; choose from {', '.join(EXPERIMENT_METHODS)}")
        if name not in SALIENCE_METHODS:
            if at:
                raise ValueError(f"{entry!r}: {name} uses no salience, so it takes no @variant")
            items.append((name, NO_SALIENCE))
            continue
        chosen = [Variant.parse(v) for v in only.split(",")] if at else variants
        if not chosen:
            raise ValueError(f"{name} needs at least one salience variant (variants, or {name}@human)")
        for v in chosen:
            if name == "clean_mix" and v.shuffled:
                if at:
                    raise ValueError(f"{entry!r}: clean_mix depends only on coverage, which shuffling keeps")
                continue
            items.append((name, v))
    return list(dict.fromkeys(items))


def plan_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """All runs, seed by seed (so an interrupted experiment has whole seeds first)."""
    items = plan_items(cfg)
    return [RunSpec(m, v, s) for s in cfg.seeds for m, v in items]


def run_settings(cfg: ExperimentConfig, run: RunSpec) -> dict[str, Any]:
    """Everything that decides a run's numbers, as JSON values (compared on resume)."""
    settings = {k: getattr(cfg, k) for k in _RESULT_FIELDS}
    settings.update(method=run.method, variant=run.variant.name, seed=run.seed, alpha=cfg.train_alpha)
    if run.variant.source == "gradcam" or cfg.dataset in ("cifar10", "cifar100"):
        settings["reference_epochs"] = cfg.reference_epochs
    return json.loads(json.dumps(settings))


# ----------------------------------------------------------------------------------------------------------
# salience maps of a dataset, and the variants made from them


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


def _copy_attrs(dst: Any, src: Any) -> None:
    for attr in ("classes", "num_classes", "in_channels", "image_size"):
        setattr(dst, attr, getattr(src, attr))


class WithSalience(Dataset):
    """``base``'s images and labels with the maps of a `MapSet` in place of its own."""

    def __init__(self, base: Dataset, maps: MapSet) -> None:
        if len(maps) != len(base):
            raise ValueError(f"{len(maps)} salience maps for {len(base)} images")
        self.base, self.maps = base, maps
        _copy_attrs(self, base)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, int, Tensor]:
        x, y, _ = self.base[i]
        return x, y, self.maps.get(i)


def _load_salience_at(base: Any, indices: Sequence[int], i: int) -> Tensor:
    return base.load_salience(indices[i])


class SubsetOf(Dataset):
    """Items ``indices`` of ``base``, with its attributes (and `load_salience`, when it has one)."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base, self.indices = base, [int(i) for i in indices]
        _copy_attrs(self, base)
        self.has_no_salience = getattr(base, "has_no_salience", False)
        if hasattr(base, "load_salience"):  # a partial, not a lambda: picklable for DataLoader workers
            self.load_salience = functools.partial(_load_salience_at, base, self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int, Tensor]:
        return self.base[self.indices[i]]


def subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of n items (all when n is None or >= len); in-memory sets stay in memory."""
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
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


# ----------------------------------------------------------------------------------------------------------
# running


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # absent, or half-written by a killed process: run it again


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _size(ds: Any) -> int:
    return ds.image_size if isinstance(ds.image_size, int) else max(ds.image_size)


class _SeedContext:
    """What the runs of one seed share: data, maps, the evaluation subset, the reference Grad-CAM maps."""

    def __init__(self, cfg: ExperimentConfig, seed: int, out: Path, device: str | None, log: Callable) -> None:
        self.cfg, self.seed, self.out, self.device, self.log = cfg, seed, out, device, log
        self.data_seed = seed if cfg.data_seed is None else cfg.data_seed
        self.train = subset(load_data(cfg, "train", self.data_seed), cfg.train_limit, self.data_seed)
        self.test = subset(load_data(cfg, "test", self.data_seed), cfg.eval_limit, self.data_seed + 1)
        self._human: MapSet | None = None
        self._reference: dict[str, MapSet] | None = None
        self._maps: dict[str, MapSet] = {}
        self._masked_test: Dataset | None = None

    def new_model(self, seed: int):
        from sipat.models import build_model, default_arch_for

        ds = self.train
        arch = self.cfg.arch or default_arch_for(_size(ds), ds.in_channels)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_model(
                arch,
                num_classes=ds.num_classes,
                in_channels=ds.in_channels,
                image_size=_size(ds),
                weights_path=self.cfg.weights_path,
            )
        meta = model_meta(
            model, num_classes=ds.num_classes, in_channels=ds.in_channels, image_size=_size(ds), classes=ds.classes
        )
        return model, meta

    def human(self) -> MapSet:
        if self._human is None:
            maps = dataset_maps(self.train)
            if not bool(maps.has.any()):
                raise ValueError(f"{self.cfg.dataset} has no human salience maps; use the gradcam variant for it")
            self._human = maps
        return self._human

    def reference(self) -> dict[str, MapSet]:
        """Grad-CAM maps of the train and evaluation images from a ``standard`` reference model (cached)."""
        if self._reference is not None:
            return self._reference
        cfg = self.cfg
        path = self.out / "salience" / f"gradcam_seed{self.seed}.pt"
        keys = (
            "dataset",
            "dataset_params",
            "data_seed",
            "train_limit",
            "eval_limit",
            "arch",
            "weights_path",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "reference_epochs",
        )
        settings = {k: getattr(cfg, k) for k in keys}
        settings = json.loads(json.dumps({**settings, "seed": self.seed}))
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("settings") == json.dumps(settings, sort_keys=True):
                self._reference = {k: MapSet(*saved[k]) for k in ("train", "test")}
                return self._reference
        from sipat.models import gradcam_layer
        from sipat.salience import gradcam

        self.log(f"seed {self.seed}: training the Grad-CAM reference model ({cfg.reference_epochs} epochs standard)")
        model, _ = self.new_model(self.seed)
        rcfg = TrainConfig(
            method="standard", epochs=max(cfg.reference_epochs, 1), batch_size=cfg.batch_size, lr=cfg.lr,
            momentum=cfg.momentum, weight_decay=cfg.weight_decay, lr_step=cfg.lr_step, lr_gamma=cfg.lr_gamma,
            seed=self.seed, num_workers=cfg.num_workers,
        )  # fmt: skip
        train(model, self.train, rcfg, device=self.device)
        dev = next(model.parameters()).device
        layer = gradcam_layer(model)
        result = {}
        for split, ds in (("train", self.train), ("test", self.test)):
            parts = []
            for x, y, _ in DataLoader(ds, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers):
                parts.append(MapSet.from_float(gradcam(model, x.to(dev), y.to(dev), layer).cpu()))
            result[split] = MapSet.cat(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": json.dumps(settings, sort_keys=True)}
        payload.update({k: (v.values, v.has) for k, v in result.items()})
        torch.save(payload, path.with_name(path.name + ".tmp"))
        path.with_name(path.name + ".tmp").replace(path)
        self._reference = result
        return result

    def maps(self, variant: Variant) -> MapSet:
        if variant.name not in self._maps:
            base = self.human() if variant.source == "human" else self.reference()["train"]
            self._maps[variant.name] = variant_maps(base, variant, self.seed)
        return self._maps[variant.name]

    def masked_test(self) -> Dataset:
        """The evaluation set with the maps the masked attack spares: its own, else reference Grad-CAM."""
        if self._masked_test is None:
            own = dataset_maps(self.test)
            self._masked_test = self.test if bool(own.has.any()) else WithSalience(self.test, self.reference()["test"])
        return self._masked_test


def _train_config(cfg: ExperimentConfig, run: RunSpec, clean_share: float) -> TrainConfig:
    return TrainConfig(
        method="pgd_at" if run.method == "clean_mix" else run.method,
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, lr_step=cfg.lr_step, lr_gamma=cfg.lr_gamma, eps=cfg.eps,
        alpha=cfg.train_alpha, steps=cfg.steps, trades_beta=cfg.trades_beta, threshold=cfg.threshold,
        seed=run.seed, clean_share=clean_share, amp=cfg.amp, num_workers=cfg.num_workers,
    )  # fmt: skip


def _execute(run: RunSpec, ctx: _SeedContext, out: Path, bar_factory: Callable | None) -> dict[str, Any]:
    from sipat.evaluation import evaluate

    cfg = ctx.cfg
    train_set: Dataset = ctx.train
    salient_share = annotated_share = None
    clean_share = 0.0
    if run.method in SALIENCE_METHODS:
        maps = ctx.maps(run.variant)
        cover = maps.coverage(cfg.threshold)
        salient_share = float(cover.mean())
        annotated_share = float(maps.has.float().mean())
        train_set = WithSalience(ctx.train, maps)
        if run.method == "clean_mix":
            clean_share = salient_share
            if clean_share >= 1:
                raise ValueError(f"{run.run_id}: the maps cover every pixel, so clean_mix would never perturb")
    tcfg = _train_config(cfg, run, clean_share)
    model, meta = ctx.new_model(run.seed)
    ckpt = out / "checkpoints" / f"{run.run_id}.pt"
    bar = None

    def progress(p) -> None:
        nonlocal bar
        if bar_factory is None:
            return
        if bar is None:
            bar = bar_factory(p.steps_per_epoch * p.epochs, run.run_id)
            bar.update(p.epoch * p.steps_per_epoch + p.step - 1)
        bar.update(1)
        bar.set_postfix(epoch=p.epoch + 1, loss=f"{p.loss:.3f}", acc=f"{p.accuracy:.3f}")

    t0 = time.perf_counter()
    record = {
        "run": run.run_id,
        "method": run.method,
        "variant": run.variant.name,
        "seed": run.seed,
        "settings": run_settings(cfg, run),
        "arch": meta["arch"],
        "n_train": len(ctx.train),
        "salient_share": salient_share,
        "annotated_share": annotated_share,
        "clean_share": clean_share,
        "train_config": tcfg.to_dict(),
    }
    try:
        history = train(
            model, train_set, tcfg, device=ctx.device, progress=progress, checkpoint=ckpt, checkpoint_meta=meta
        ).history
    except FloatingPointError as exc:  # a diverged run is a result: kept, counted, left out of the means
        return {
            **record,
            "diverged": str(exc),
            "clean_acc": math.nan,
            "robust_acc": {},
            "robust_acc_masked": {},
            "train_seconds": time.perf_counter() - t0,
            "eval_seconds": 0.0,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        if bar is not None:
            bar.close()
    t1 = time.perf_counter()
    common = dict(
        eps_grid=cfg.eval_eps, attacks=cfg.eval_attacks, pgd_steps=cfg.eval_pgd_steps,
        apgd_steps=cfg.eval_apgd_steps, threshold=cfg.threshold, batch_size=cfg.eval_batch_size, seed=run.seed,
        device=ctx.device,
    )  # fmt: skip
    plain = evaluate(model, ctx.test, **common)
    masked = evaluate(model, ctx.masked_test(), masked=True, **common) if cfg.eval_masked else None
    t2 = time.perf_counter()
    if cfg.save_models:
        save_checkpoint(out / "models" / f"{run.run_id}.pt", model, tcfg, meta={**meta, "run": run.run_id})
    return {
        **record,
        "n_test": plain.n,
        "clean_acc": plain.clean_acc,
        "robust_acc": plain.to_dict()["robust_acc"],
        "robust_acc_masked": masked.to_dict()["robust_acc"] if masked is not None else None,
        "history": history,
        "train_seconds": t1 - t0,
        "eval_seconds": t2 - t1,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_path(out: Path, run: RunSpec) -> Path:
    return out / "runs" / f"{run.run_id}.json"


def finished_runs(cfg: ExperimentConfig, out: Path, runs: Sequence[RunSpec]) -> dict[str, dict[str, Any]]:
    """The planned runs whose result JSON exists with the same settings; ValueError for one with other settings."""
    done = {}
    for run in runs:
        payload = _read_json(run_path(out, run))
        if payload is None:
            continue
        want = run_settings(cfg, run)
        if payload.get("settings") != want:
            diff = _diff(payload.get("settings") or {}, want)
            raise ValueError(
                f"{run_path(out, run)} was made with other settings (they differ in {', '.join(diff)}); "
                "pass another --out for the new settings, or delete that file to redo the run"
            )
        done[run.run_id] = payload
    return done


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Run every planned run not finished yet (seed by seed), then write the report; returns its files.

    Each run's JSON is written as soon as it finishes, so an interrupted experiment loses at most the current
    run's unfinished epoch; the report is written also when interrupted (from the runs finished so far).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
    runs = plan_runs(cfg)
    done = finished_runs(cfg, out, runs)
    bar = tqdm(total=len(runs), initial=len(done), desc="runs", unit="run", dynamic_ncols=True, disable=not progress)
    say = log or (lambda msg: bar.write(msg))
    if done:
        say(f"{len(done)} of {len(runs)} runs already finished in {out}; skipping them")

    def inner(total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False, disable=not progress)

    try:
        for seed in cfg.seeds:
            todo = [r for r in runs if r.seed == seed and r.run_id not in done]
            if not todo:
                continue
            ctx = _SeedContext(cfg, seed, out, device, say)
            for run in todo:
                bar.set_postfix_str(run.run_id)
                payload = _execute(run, ctx, out, inner if progress else None)
                _atomic_write(run_path(out, run), json.dumps(payload, indent=2))
                (out / "checkpoints" / f"{run.run_id}.pt").unlink(missing_ok=True)
                done[run.run_id] = payload
                bar.update(1)
                outcome = (
                    f"DIVERGED ({payload['diverged']})"
                    if payload.get("diverged")
                    else (f"clean {payload['clean_acc']:.4f}")
                )
                seconds = f"train {payload['train_seconds']:.0f} s, eval {payload['eval_seconds']:.0f} s"
                say(f"{run.run_id}: {outcome}, {seconds}")
    finally:
        bar.close()
        files = write_report(cfg, out, [done[r.run_id] for r in runs if r.run_id in done], total=len(runs))
    return files


# ----------------------------------------------------------------------------------------------------------
# report


def in_255ths(grid: Sequence[float]) -> bool:
    """Whether every eps of the grid is a whole number of 1/255 steps (then labelled "8/255", else "0.3")."""
    return all(abs(e * 255 - round(e * 255)) < 1e-6 for e in grid) and max(grid, default=0) <= 64 / 255


def eps_label(e: float, in_255: bool = True) -> str:
    k = e * 255
    return f"{round(k)}/255" if in_255 and abs(k - round(k)) < 1e-6 and k > 0 else f"{e:g}"


def _key(cfg: ExperimentConfig, attack: str, masked: bool, e: float) -> str:
    return f"{attack}{'_masked' if masked else ''}_eps={eps_label(e, in_255ths(cfg.eval_eps))}"


def _metric_columns(cfg: ExperimentConfig) -> list[tuple[str, str, bool, float | None]]:
    """(column key, attack, masked, eps) for every metric; clean accuracy first."""
    cols: list[tuple[str, str, bool, float | None]] = [("clean_acc", "", False, None)]
    for masked in (False, True) if cfg.eval_masked else (False,):
        for a in cfg.eval_attacks:
            for e in cfg.eval_eps:
                cols.append((_key(cfg, a, masked, e), a, masked, e))
    return cols


def _value(payload: dict[str, Any], attack: str, masked: bool, eps: float | None) -> float:
    if eps is None:
        return payload["clean_acc"]
    grid = payload["robust_acc_masked" if masked else "robust_acc"] or {}
    return grid.get(attack, {}).get(f"{eps:.6g}", math.nan)


def summarise(cfg: ExperimentConfig, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, variant) in plan order: seeds, mean and sample std (ddof 1; NaN for one seed).

    Diverged runs (training loss became NaN) are counted in `diverged` and left out of the means and seeds.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m, v in plan_items(cfg):
        groups[(m, v.name)] = []
    for p in payloads:
        groups.setdefault((p["method"], p["variant"]), []).append(p)
    rows = []
    for (m, v), ps in groups.items():
        if not ps:
            continue
        diverged = [p for p in ps if p.get("diverged")]
        ps = sorted((p for p in ps if not p.get("diverged")), key=lambda p: p["seed"])
        row: dict[str, Any] = {
            "method": m,
            "variant": v,
            "n_seeds": len(ps),
            "seeds": " ".join(str(p["seed"]) for p in ps),
            "diverged": len(diverged),
        }
        shares = [p["clean_share"] if m == "clean_mix" else (p["salient_share"] or 0.0) for p in ps or diverged]
        row["unperturbed_share"] = round(float(np.mean(shares)), 6)
        for key, a, masked, e in _metric_columns(cfg):
            vals = np.array([_value(p, a, masked, e) for p in ps], dtype=float)
            row[f"{key}_mean"] = round(float(vals.mean()), 6) if len(vals) else math.nan
            row[f"{key}_std"] = round(float(vals.std(ddof=1)), 6) if len(vals) > 1 else math.nan
        rows.append(row)
    return rows


def _diverged_note(n: int) -> str:
    return f" (+{n} diverged)" if n else ""


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown(cfg: ExperimentConfig, rows: list[dict[str, Any]], n_done: int, total: int, arch: str) -> str:
    lines = [
        f"# Experiment `{cfg.name}` on {cfg.dataset}",
        "",
        f"{n_done} of {total} runs finished. Seeds {', '.join(map(str, cfg.seeds))}; arch {arch}; "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g} (StepLR {cfg.lr_step}, {cfg.lr_gamma:g}); "
        f"training eps {eps_label(cfg.eps, in_255ths([cfg.eps]))}, {cfg.steps} PGD steps of {cfg.train_alpha:.4g}. "
        f"Evaluation on {'all' if cfg.eval_limit is None else cfg.eval_limit} test images. Cells: mean ± sample "
        "standard deviation over seeds; runs whose training diverged (loss NaN) are counted apart and left out. "
        "*unperturbed share*: the share of the perturbation budget left clean "
        "(sip_*: salient pixel coverage; clean_mix: the share of images trained clean).",
        "",
        "## Clean accuracy",
        "",
        "| method | variant | seeds | unperturbed share | clean accuracy |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['variant']} | {r['n_seeds']}{_diverged_note(r['diverged'])}"
            f" | {r['unperturbed_share']:.3f} | "
            f"{_fmt(r['clean_acc_mean'], r['clean_acc_std'])} |"
        )
    titles = {"pgd": f"PGD-{cfg.eval_pgd_steps}", "apgd": f"APGD-CE-{cfg.eval_apgd_steps}", "fgsm": "FGSM"}
    for masked in (False, True) if cfg.eval_masked else (False,):
        for a in cfg.eval_attacks:
            where = "masked: only non-salient pixels attacked" if masked else "unmasked"
            lines += ["", f"## Robust accuracy, {titles[a]} ({where})", ""]
            lines.append(
                "| method | variant | "
                + " | ".join(f"eps {eps_label(e, in_255ths(cfg.eval_eps))}" for e in cfg.eval_eps)
                + " |"
            )
            lines.append("|---|---|" + "---|" * len(cfg.eval_eps))
            for r in rows:
                cells = []
                for e in cfg.eval_eps:
                    key = _key(cfg, a, masked, e)
                    cells.append(_fmt(r[f"{key}_mean"], r[f"{key}_std"]))
                lines.append(f"| {r['method']} | {r['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(cfg: ExperimentConfig, rows: list[dict[str, Any]], stem: Path) -> list[Path]:
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend; Figure renders PNG with Agg

    panels = [(a, m) for m in ((False, True) if cfg.eval_masked else (False,)) for a in cfg.eval_attacks]
    ncols = len(cfg.eval_attacks)
    nrows = len(panels) // ncols
    fig = Figure(figsize=(5.2 * ncols, 4.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    in_255 = in_255ths(cfg.eval_eps)
    xs = np.array([e * 255 if in_255 else e for e in cfg.eval_eps])
    palette = colormaps["tab10" if len(rows) <= 10 else "tab20"]
    colours = [palette(i % palette.N) for i in range(len(rows))]
    styles = {"standard": ":", "pgd_at": "--", "trades": "--", "sip_at": "-", "sip_trades": "-", "clean_mix": "-."}
    titles = {"pgd": f"PGD-{cfg.eval_pgd_steps}", "apgd": f"APGD-CE-{cfg.eval_apgd_steps}", "fgsm": "FGSM"}
    for ax, (a, masked) in zip(axes.flat, panels, strict=True):
        for i, r in enumerate(rows):
            keys = [_key(cfg, a, masked, e) for e in cfg.eval_eps]
            mean = np.array([r[f"{k}_mean"] for k in keys])
            std = np.nan_to_num(np.array([r[f"{k}_std"] for k in keys]))
            label = r["method"] if r["variant"] == "none" else f"{r['method']} ({r['variant']})"
            offset = (i - (len(rows) - 1) / 2) * 0.004 * (xs.max() - xs.min() or 1)  # keep error bars apart
            ax.errorbar(
                xs + offset, mean, yerr=std, label=label, color=colours[i], linestyle=styles.get(r["method"], "-"),
                marker="o", markersize=3, capsize=2, linewidth=1.2,
            )  # fmt: skip
        ax.set_title(f"{titles[a]}, {'masked (non-salient pixels)' if masked else 'unmasked'}")
        ax.set_xlabel("eps (x/255)" if in_255 else "eps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), fontsize="small")
    fig.suptitle(f"{cfg.name} ({cfg.dataset}): accuracy vs eps, mean ± std over seeds")
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def write_report(
    cfg: ExperimentConfig, out: str | Path, payloads: Sequence[dict[str, Any]], *, total: int | None = None
) -> dict[str, Path]:
    """results.md, results.csv, runs.csv and accuracy_vs_eps.png/.svg from finished runs' payloads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not payloads:
        return {}
    rows = summarise(cfg, payloads)
    files = {"markdown": out / "results.md", "csv": out / "results.csv", "runs_csv": out / "runs.csv"}
    arch = ", ".join(sorted({p["arch"] for p in payloads}))
    _atomic_write(files["markdown"], _markdown(cfg, rows, len(payloads), total or len(payloads), arch))
    with files["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = _metric_columns(cfg)
    with files["runs_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "variant", "seed", "unperturbed_share", *[k for k, *_ in cols],
                         "train_seconds", "eval_seconds"])  # fmt: skip
        for p in sorted(payloads, key=lambda p: (p["method"], p["variant"], p["seed"])):
            share = p["clean_share"] if p["method"] == "clean_mix" else (p["salient_share"] or 0.0)
            writer.writerow([p["method"], p["variant"], p["seed"], round(share, 6),
                             *[_value(p, a, m, e) for _, a, m, e in cols],
                             round(p["train_seconds"], 1), round(p["eval_seconds"], 1)])  # fmt: skip
    png, svg = _plot(cfg, rows, out / "accuracy_vs_eps")
    files.update(png=png, svg=svg)
    return files


def report_only(cfg: ExperimentConfig, out: str | Path) -> dict[str, Path]:
    """Rewrite the report from the finished runs under ``out`` (nothing is trained)."""
    out = Path(out)
    runs = plan_runs(cfg)
    done = finished_runs(cfg, out, runs)
    if not done:
        raise ValueError(f"{out} holds no finished runs of this config; run the experiment first")
    return write_report(cfg, out, [done[r.run_id] for r in runs if r.run_id in done], total=len(runs))


# ----------------------------------------------------------------------------------------------------------
# command line (`sipat experiment`)


def add_arguments(p: Any) -> None:
    """The `sipat experiment` flags; every given flag overrides the config file's value."""
    from sipat.cli import parse_eps

    p.add_argument("--config", help="a JSON (or YAML) experiment config, e.g. configs/mnist5k.json")
    p.add_argument("--out", help="results folder (default runs/<config name>); re-running resumes it")
    p.add_argument("--dataset", help="mnist5k, shapes, cifar10, cifar100, cub200")
    p.add_argument("--data-root", help="folder with the cifar/cub files (see docs/experiments.md)")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset parameter, value as JSON, e.g. --set texture_correlation=0.25")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--methods", nargs="+", help=f"of {', '.join(EXPERIMENT_METHODS)}; method@variant for one variant")
    p.add_argument("--variants", nargs="+", help="e.g. human gradcam human+shuffled human+unannotated=0.5")
    p.add_argument("--arch")
    p.add_argument("--weights-path", help="a local state-dict file every model starts from (never downloaded)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--eps", type=parse_eps, help="training radius")
    p.add_argument("--alpha", type=parse_eps, help="PGD step in training (default 2.5 * eps / steps)")
    p.add_argument("--steps", type=int, help="PGD steps in training")
    p.add_argument("--train-limit", type=int, help="train on a seeded random subset of this many images")
    p.add_argument("--reference-epochs", type=int, help="epochs of the Grad-CAM reference model")
    p.add_argument("--eval-eps", type=parse_eps, nargs="+")
    p.add_argument("--eval-attacks", nargs="+", choices=EVAL_ATTACKS)
    p.add_argument("--eval-steps", type=int, help="PGD steps in evaluation")
    p.add_argument("--apgd-steps", type=int, help="APGD steps in evaluation")
    p.add_argument("--eval-limit", type=int, help="evaluate on a seeded random subset of this many test images")
    p.add_argument("--masked-eval", dest="eval_masked", action="store_true", default=None)
    p.add_argument("--no-masked-eval", dest="eval_masked", action="store_false")
    p.add_argument("--no-save-models", dest="save_models", action="store_false", default=None)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest for small CNNs on a busy machine)")
    p.add_argument("--plan", action="store_true", help="list the runs (and which are finished) and stop")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the finished runs")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args: Any) -> ExperimentConfig:
    cfg = ExperimentConfig.from_file(args.config) if args.config else ExperimentConfig()
    params = dict(cfg.dataset_params)
    for item in args.params:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return cfg.replace(
        dataset=args.dataset, data_root=args.data_root, dataset_params=params if args.params else None,
        seeds=args.seeds, methods=args.methods, variants=args.variants, arch=args.arch,
        weights_path=args.weights_path, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, eps=args.eps, alpha=args.alpha, steps=args.steps,
        train_limit=args.train_limit, reference_epochs=args.reference_epochs, eval_eps=args.eval_eps,
        eval_attacks=args.eval_attacks, eval_pgd_steps=args.eval_steps, eval_apgd_steps=args.apgd_steps,
        eval_limit=args.eval_limit, eval_masked=args.eval_masked, save_models=args.save_models,
        num_workers=args.num_workers,
    )  # fmt: skip


def main_from_args(args: Any) -> int:
    cfg = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = Path(args.out or Path("runs") / cfg.name)
    if args.plan:
        runs = plan_runs(cfg)
        done = finished_runs(cfg, out, runs) if out.is_dir() else {}
        for r in runs:
            print(f"{'done' if r.run_id in done else 'todo'}  {r.run_id}")
        print(f"{len(runs)} runs ({len(done)} finished) -> {out}")
        return 0
    files = report_only(cfg, out) if args.report_only else run_experiment(cfg, out, device=args.device,
                                                                          progress=args.progress)  # fmt: skip
    for f in files.values():
        print(f"wrote {f}")
    return 0
